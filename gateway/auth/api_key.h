// SPDX-License-Identifier: Apache-2.0
// API key material: generation from the OS CSPRNG (OpenSSL RAND_bytes), the plaintext shape
// `wft_<key_id>_<secret>`, parsing, and the salted hash the stores keep instead of the key.
// Pure functions apart from the CSPRNG; safe from any thread.
//
// Why a fast hash: the secret is 256 bits from a CSPRNG, so brute force over the hash is hopeless
// and a slow password hash (bcrypt, Argon2) would only burn CPU on every cache miss. A per-key
// random salt still keeps equal secrets (which never happen) and precomputed tables apart.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace weft::auth {

inline constexpr std::string_view kKeyPrefix = "wft_";
inline constexpr size_t kKeyIdChars = 16;   // lowercase hex (64 random bits)
inline constexpr size_t kSecretChars = 43;  // base62 (256 random bits)

using Salt = std::array<uint8_t, 16>;
using SecretHash = std::array<uint8_t, 32>;  // SHA-256(salt || secret)

struct ParsedKey {
  std::string_view key_id;  // views into the parsed text
  std::string_view secret;
};

// A fresh random key id (kKeyIdChars lowercase hex). Fails only if the CSPRNG does.
absl::StatusOr<std::string> NewKeyId();
// A fresh random secret (kSecretChars base62 characters, uniform: rejection sampling).
absl::StatusOr<std::string> NewSecret();
absl::StatusOr<Salt> NewSalt();

// "wft_" + key_id + "_" + secret.
std::string FormatKey(std::string_view key_id, std::string_view secret);
// Splits a plaintext key; Unauthenticated ("malformed API key") unless it has exactly the shape
// FormatKey writes.
absl::StatusOr<ParsedKey> ParseKey(std::string_view key);

SecretHash HashSecret(const Salt& salt, std::string_view secret);
// Constant-time (CRYPTO_memcmp) check of `secret` against `hash`.
bool VerifySecret(const Salt& salt, const SecretHash& hash, std::string_view secret);
// Constant-time equality of two strings of any lengths (compares their SHA-256 digests, so
// neither the content nor the length of `expected` leaks through timing).
bool ConstantTimeEquals(std::string_view given, std::string_view expected);

// The token of an `Authorization: Bearer <token>` header value ("" when the scheme is not Bearer,
// compared case-insensitively, or the token is empty).
std::string_view BearerToken(std::string_view authorization);

}  // namespace weft::auth
