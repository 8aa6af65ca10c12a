// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/api_key.h"

#include <set>

#include "gateway/auth/principal.h"
#include "gtest/gtest.h"

namespace weft::auth {
namespace {

// Unwrapped draws (the CSPRNG does not fail in tests).
std::string Id() {
  absl::StatusOr<std::string> id = NewKeyId();
  EXPECT_TRUE(id.ok());
  return id.ok() ? *id : std::string();
}
std::string Secret() {
  absl::StatusOr<std::string> secret = NewSecret();
  EXPECT_TRUE(secret.ok());
  return secret.ok() ? *secret : std::string();
}
Salt NewSaltOrZero() {
  absl::StatusOr<Salt> salt = NewSalt();
  EXPECT_TRUE(salt.ok());
  return salt.ok() ? *salt : Salt{};
}

TEST(ApiKeyTest, FormatParseRoundTrip) {
  auto id = NewKeyId();
  auto secret = NewSecret();
  ASSERT_TRUE(id.ok() && secret.ok());
  EXPECT_EQ(id->size(), kKeyIdChars);
  EXPECT_EQ(secret->size(), kSecretChars);
  std::string key = FormatKey(*id, *secret);
  EXPECT_EQ(key.rfind("wft_", 0), 0u);
  auto parsed = ParseKey(key);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->key_id, *id);
  EXPECT_EQ(parsed->secret, *secret);
}

TEST(ApiKeyTest, FreshKeysDiffer) {
  std::set<std::string> ids, secrets;
  for (int i = 0; i < 1000; ++i) {
    ids.insert(Id());
    secrets.insert(Secret());
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(secrets.size(), 1000u);
}

TEST(ApiKeyTest, SecretCharactersCoverTheAlphabet) {
  // Rejection sampling keeps all 62 symbols in play (a bias bug would usually drop some).
  std::set<char> seen;
  for (int i = 0; i < 200; ++i) {
    for (char c : Secret()) seen.insert(c);
  }
  EXPECT_EQ(seen.size(), 62u);
}

TEST(ApiKeyTest, MalformedKeys) {
  std::string good = FormatKey(Id(), Secret());
  ASSERT_TRUE(ParseKey(good).ok());
  std::vector<std::string> bad = {
      "",
      "wft_",
      "sk-" + good.substr(4),
      good.substr(0, good.size() - 1),
      good + "x",
      "WFT_" + good.substr(4),
  };
  std::string wrong_sep = good;
  wrong_sep[4 + kKeyIdChars] = '-';
  bad.push_back(wrong_sep);
  std::string upper_id = good;
  upper_id[4] = 'G';
  bad.push_back(upper_id);
  std::string bad_secret = good;
  bad_secret.back() = '_';
  bad.push_back(bad_secret);
  std::string nul = good;
  nul[10] = '\0';
  bad.push_back(nul);
  for (const std::string& k : bad) {
    auto parsed = ParseKey(k);
    EXPECT_TRUE(absl::IsUnauthenticated(parsed.status())) << k;
  }
}

TEST(ApiKeyTest, HashAndVerify) {
  Salt salt = NewSaltOrZero();
  Salt other_salt = NewSaltOrZero();
  std::string secret = Secret();
  SecretHash hash = HashSecret(salt, secret);
  EXPECT_TRUE(VerifySecret(salt, hash, secret));
  EXPECT_FALSE(VerifySecret(other_salt, hash, secret));
  std::string flipped = secret;
  flipped[0] = flipped[0] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(VerifySecret(salt, hash, flipped));
  EXPECT_FALSE(VerifySecret(salt, hash, ""));
  EXPECT_NE(HashSecret(salt, secret), HashSecret(other_salt, secret));
}

TEST(ApiKeyTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("admin-secret", "admin-secret"));
  EXPECT_FALSE(ConstantTimeEquals("admin-secret", "admin-secreT"));
  EXPECT_FALSE(ConstantTimeEquals("admin-secret", "admin-secret2"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

TEST(ApiKeyTest, BearerToken) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer   abc  "), "abc");
  EXPECT_EQ(BearerToken("BEARER abc"), "abc");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken("Bearer"), "");
  EXPECT_EQ(BearerToken(""), "");
}

TEST(PrincipalTest, MayUse) {
  Principal p;
  p.deployments = {"llama", "qwen:support"};
  EXPECT_TRUE(MayUse(p, "llama"));
  EXPECT_TRUE(MayUse(p, "llama:any-adapter"));
  EXPECT_TRUE(MayUse(p, "qwen:support"));
  EXPECT_FALSE(MayUse(p, "qwen"));
  EXPECT_FALSE(MayUse(p, "qwen:other"));
  EXPECT_FALSE(MayUse(p, "llam"));
  EXPECT_FALSE(MayUse(p, "llama2"));
  EXPECT_FALSE(MayUse(p, ""));
  p.deployments = {"*"};
  EXPECT_TRUE(MayUse(p, "anything:at-all"));
  EXPECT_FALSE(MayUse(p, ""));
  p.deployments = {};
  EXPECT_FALSE(MayUse(p, "llama"));
}

}  // namespace
}  // namespace weft::auth
