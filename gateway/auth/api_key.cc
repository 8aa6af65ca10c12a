// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/api_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "base/check.h"

namespace weft::auth {
namespace {

constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kHex = "0123456789abcdef";

absl::Status RandomBytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) {
    return absl::InternalError("the CSPRNG (RAND_bytes) failed");
  }
  return absl::OkStatus();
}

// The SHA-256 implementation, fetched once: an implicit fetch on every digest costs more than
// the digest of a few dozen bytes.
const EVP_MD* Sha256() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? static_cast<const EVP_MD*>(fetched) : EVP_sha256();
  }();
  return md;
}

std::array<uint8_t, 32> Sha256Of(std::string_view a, std::string_view b) {
  // One digest context per thread, reused: allocating one per call costs more than the digest.
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx t;
  WEFT_CHECK(t.ctx != nullptr);
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  bool ok = EVP_DigestInit_ex(t.ctx, Sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(t.ctx, a.data(), a.size()) == 1 &&
            EVP_DigestUpdate(t.ctx, b.data(), b.size()) == 1 &&
            EVP_DigestFinal_ex(t.ctx, out.data(), &len) == 1;
  WEFT_CHECK(ok && len == out.size());
  return out;
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsBase62(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

}  // namespace

absl::StatusOr<std::string> NewKeyId() {
  uint8_t bytes[kKeyIdChars / 2];
  if (auto s = RandomBytes(bytes, sizeof(bytes)); !s.ok()) return s;
  std::string id;
  id.reserve(kKeyIdChars);
  for (uint8_t b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

absl::StatusOr<std::string> NewSecret() {
  // Rejection sampling: bytes >= 248 (= 4 * 62) are dropped so that `b % 62` is uniform.
  std::string secret;
  secret.reserve(kSecretChars);
  while (secret.size() < kSecretChars) {
    uint8_t bytes[64];
    if (auto s = RandomBytes(bytes, sizeof(bytes)); !s.ok()) return s;
    for (uint8_t b : bytes) {
      if (b >= 248 || secret.size() == kSecretChars) continue;
      secret.push_back(kBase62[b % 62]);
    }
  }
  return secret;
}

absl::StatusOr<Salt> NewSalt() {
  Salt salt{};
  if (auto s = RandomBytes(salt.data(), salt.size()); !s.ok()) return s;
  return salt;
}

std::string FormatKey(std::string_view key_id, std::string_view secret) {
  std::string key;
  key.reserve(kKeyPrefix.size() + key_id.size() + 1 + secret.size());
  key.append(kKeyPrefix).append(key_id).append("_").append(secret);
  return key;
}

absl::StatusOr<ParsedKey> ParseKey(std::string_view key) {
  const size_t want = kKeyPrefix.size() + kKeyIdChars + 1 + kSecretChars;
  if (key.size() != want || key.substr(0, kKeyPrefix.size()) != kKeyPrefix ||
      key[kKeyPrefix.size() + kKeyIdChars] != '_') {
    return absl::UnauthenticatedError("malformed API key");
  }
  ParsedKey parsed;
  parsed.key_id = key.substr(kKeyPrefix.size(), kKeyIdChars);
  parsed.secret = key.substr(kKeyPrefix.size() + kKeyIdChars + 1);
  for (char c : parsed.key_id) {
    if (!IsHex(c)) return absl::UnauthenticatedError("malformed API key");
  }
  for (char c : parsed.secret) {
    if (!IsBase62(c)) return absl::UnauthenticatedError("malformed API key");
  }
  return parsed;
}

SecretHash HashSecret(const Salt& salt, std::string_view secret) {
  return Sha256Of(std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size()),
                  secret);
}

bool VerifySecret(const Salt& salt, const SecretHash& hash, std::string_view secret) {
  SecretHash got = HashSecret(salt, secret);
  return CRYPTO_memcmp(got.data(), hash.data(), hash.size()) == 0;
}

bool ConstantTimeEquals(std::string_view given, std::string_view expected) {
  auto a = Sha256Of(given, {});
  auto b = Sha256Of(expected, {});
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && absl::ascii_isspace(static_cast<unsigned char>(token.front()))) {
    token.remove_prefix(1);
  }
  while (!token.empty() && absl::ascii_isspace(static_cast<unsigned char>(token.back()))) {
    token.remove_suffix(1);
  }
  return token;
}

}  // namespace weft::auth
