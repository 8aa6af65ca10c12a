// SPDX-License-Identifier: Apache-2.0
// The KeyStore contract, run against every implementation (in memory and SQLite).
#include "gateway/auth/key_store.h"

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>

#include "gateway/auth/in_memory_key_store.h"
#include "gateway/auth/sqlite_key_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::auth {
namespace {

using ::testing::ElementsAre;

struct TestClock {
  std::mutex mu;
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  absl::Time Now() {
    std::lock_guard lock(mu);
    return now;
  }
  void Advance(absl::Duration d) {
    std::lock_guard lock(mu);
    now += d;
  }
};

enum class Kind { kInMemory, kSqlite };

class KeyStoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    auto clock = [this] { return clock_.Now(); };
    if (GetParam() == Kind::kInMemory) {
      store_ = std::make_unique<InMemoryKeyStore>(clock);
    } else {
      dir_ = weft::testing::MakeTempDir("key_store_test");
      SqliteKeyStoreOptions options;
      options.clock = clock;
      auto s = SqliteKeyStore::Open(dir_ + "/keys.sqlite", options);
      ASSERT_TRUE(s.ok()) << s.status();
      store_ = *std::move(s);
    }
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Tenant MakeTenant(const std::string& id, std::vector<std::string> deployments = {"*"}) {
    Tenant t;
    t.id = id;
    t.deployments = std::move(deployments);
    auto created = store_->CreateTenant(t);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : t;
  }
  CreatedKey MakeKey(const std::string& tenant, int64_t expires_unix_s = 0) {
    KeySpec spec;
    spec.tenant = tenant;
    spec.name = "k";
    spec.expires_unix_s = expires_unix_s;
    auto created = store_->CreateKey(spec);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : CreatedKey{};
  }

  TestClock clock_;
  std::string dir_;
  std::unique_ptr<KeyStore> store_;
};

TEST_P(KeyStoreTest, TenantCrud) {
  Tenant t;
  t.id = "acme";
  t.deployments = {"llama", "qwen"};
  t.quotas = {.requests_per_min = 60, .tokens_per_min = 1000, .tokens_per_month = 0};
  auto created = store_->CreateTenant(t);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name, "acme");  // defaults to the id
  EXPECT_EQ(created->created_unix_s, 1'700'000'000);
  EXPECT_TRUE(absl::IsAlreadyExists(store_->CreateTenant(t).status()));

  auto got = store_->GetTenant("acme");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, *created);
  EXPECT_TRUE(absl::IsNotFound(store_->GetTenant("nope").status()));

  TenantPatch patch;
  patch.deployments = std::vector<std::string>{"*"};
  patch.tokens_per_month = 5000;
  auto updated = store_->UpdateTenant("acme", patch);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_THAT(updated->deployments, ElementsAre("*"));
  EXPECT_EQ(updated->quotas.tokens_per_month, 5000);
  EXPECT_EQ(updated->quotas.requests_per_min, 60);  // untouched
  EXPECT_EQ(*store_->GetTenant("acme"), *updated);
  EXPECT_TRUE(absl::IsNotFound(store_->UpdateTenant("nope", patch).status()));

  MakeTenant("beta");
  auto list = store_->ListTenants();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "acme");
  EXPECT_EQ((*list)[1].id, "beta");
}

TEST_P(KeyStoreTest, TenantValidation) {
  for (std::string bad_id :
       std::vector<std::string>{"", "has space", "a/b", std::string(65, 'a'), "é"}) {
    Tenant t;
    t.id = bad_id;
    EXPECT_TRUE(absl::IsInvalidArgument(store_->CreateTenant(t).status())) << bad_id;
  }
  Tenant t;
  t.id = "ok";
  t.deployments = {"a,b"};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->CreateTenant(t).status()));
  t.deployments = {""};
  EXPECT_TRUE(absl::IsInvalidArgument(store_->CreateTenant(t).status()));
  t.deployments = {"*"};
  t.quotas.requests_per_min = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->CreateTenant(t).status()));
  t.quotas.requests_per_min = 0;
  ASSERT_TRUE(store_->CreateTenant(t).ok());
  TenantPatch patch;
  patch.tokens_per_min = -5;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateTenant("ok", patch).status()));
  EXPECT_EQ(store_->GetTenant("ok")->quotas.tokens_per_min, 0);  // nothing applied
}

TEST_P(KeyStoreTest, KeyLifecycle) {
  Tenant t;
  t.id = "acme";
  t.deployments = {"llama"};
  t.quotas = {.requests_per_min = 10, .tokens_per_min = 100, .tokens_per_month = 1000};
  ASSERT_TRUE(store_->CreateTenant(t).ok());
  KeySpec spec;
  spec.tenant = "acme";
  spec.name = "ci";
  spec.quotas = {.requests_per_min = 5, .tokens_per_min = 50};
  auto created = store_->CreateKey(spec);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->key.tenant, "acme");
  EXPECT_EQ(created->key.name, "ci");
  EXPECT_FALSE(created->key.revoked);
  EXPECT_EQ(created->plaintext.rfind("wft_" + created->key.key_id + "_", 0), 0u);

  auto p = store_->Authenticate(created->plaintext);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tenant, "acme");
  EXPECT_EQ(p->key_id, created->key.key_id);
  EXPECT_EQ(p->tenant_quotas, t.quotas);
  EXPECT_EQ(p->key_quotas, spec.quotas);
  EXPECT_THAT(p->deployments, ElementsAre("llama"));
  EXPECT_TRUE(MayUse(*p, "llama"));
  EXPECT_FALSE(MayUse(*p, "qwen"));

  auto keys = store_->ListKeys("acme");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0], created->key);

  auto revoked = store_->RevokeKey(created->key.key_id);
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_TRUE(revoked->revoked);
  auto after = store_->Authenticate(created->plaintext);
  EXPECT_TRUE(absl::IsUnauthenticated(after.status())) << after.status();
  EXPECT_TRUE(store_->ListKeys("acme")->at(0).revoked);
  EXPECT_TRUE(store_->RevokeKey(created->key.key_id).ok());  // twice is fine
  EXPECT_TRUE(absl::IsNotFound(store_->RevokeKey("0123456789abcdef").status()));
}

TEST_P(KeyStoreTest, KeyNeedsTenant) {
  KeySpec spec;
  spec.tenant = "ghost";
  EXPECT_TRUE(absl::IsNotFound(store_->CreateKey(spec).status()));
  spec.tenant = "bad tenant";
  EXPECT_TRUE(absl::IsInvalidArgument(store_->CreateKey(spec).status()));
}

TEST_P(KeyStoreTest, UnknownMalformedAndWrongKeys) {
  MakeTenant("acme");
  CreatedKey key = MakeKey("acme");
  ASSERT_TRUE(store_->Authenticate(key.plaintext).ok());
  std::string wrong_secret = key.plaintext;
  wrong_secret.back() = wrong_secret.back() == 'a' ? 'b' : 'a';
  std::string unknown_id = key.plaintext;
  unknown_id[4] = unknown_id[4] == '0' ? '1' : '0';
  for (const std::string& bad : {std::string(), std::string("garbage"), wrong_secret, unknown_id,
                                 key.plaintext.substr(0, 30), std::string("sk-") + key.plaintext}) {
    auto p = store_->Authenticate(bad);
    EXPECT_TRUE(absl::IsUnauthenticated(p.status())) << bad << ": " << p.status();
  }
  // The good key still works after the wrong ones (no poisoned cache entry).
  EXPECT_TRUE(store_->Authenticate(key.plaintext).ok());
}

TEST_P(KeyStoreTest, ExpiredKeys) {
  MakeTenant("acme");
  int64_t now = absl::ToUnixSeconds(clock_.Now());
  CreatedKey key = MakeKey("acme", now + 3600);
  CreatedKey forever = MakeKey("acme");
  EXPECT_EQ(key.key.expires_unix_s, now + 3600);
  EXPECT_TRUE(store_->Authenticate(key.plaintext).ok());
  clock_.Advance(absl::Seconds(3599));
  EXPECT_TRUE(store_->Authenticate(key.plaintext).ok());
  clock_.Advance(absl::Seconds(1));
  auto p = store_->Authenticate(key.plaintext);
  EXPECT_TRUE(absl::IsUnauthenticated(p.status())) << p.status();
  EXPECT_EQ(p.status().message(), "API key expired");
  EXPECT_TRUE(store_->Authenticate(forever.plaintext).ok());
}

TEST_P(KeyStoreTest, TenantChangesReachPrincipals) {
  MakeTenant("acme", {"llama"});
  CreatedKey key = MakeKey("acme");
  ASSERT_FALSE(MayUse(*store_->Authenticate(key.plaintext), "qwen"));
  TenantPatch patch;
  patch.deployments = std::vector<std::string>{"llama", "qwen"};
  patch.requests_per_min = 7;
  ASSERT_TRUE(store_->UpdateTenant("acme", patch).ok());
  auto p = store_->Authenticate(key.plaintext);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(MayUse(*p, "qwen"));
  EXPECT_EQ(p->tenant_quotas.requests_per_min, 7);
}

TEST_P(KeyStoreTest, ListKeysByTenantInCreationOrder) {
  MakeTenant("a");
  MakeTenant("b");
  CreatedKey a1 = MakeKey("a");
  clock_.Advance(absl::Seconds(1));
  CreatedKey b1 = MakeKey("b");
  CreatedKey a2 = MakeKey("a");
  auto all = store_->ListKeys("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].key_id, a1.key.key_id);
  EXPECT_EQ((*all)[1].key_id, b1.key.key_id);
  EXPECT_EQ((*all)[2].key_id, a2.key.key_id);
  auto a = store_->ListKeys("a");
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[1].key_id, a2.key.key_id);
  EXPECT_TRUE(store_->ListKeys("nobody")->empty());
}

INSTANTIATE_TEST_SUITE_P(All, KeyStoreTest, ::testing::Values(Kind::kInMemory, Kind::kSqlite),
                         [](const auto& info) {
                           return info.param == Kind::kInMemory ? "InMemory" : "Sqlite";
                         });

}  // namespace
}  // namespace weft::auth
