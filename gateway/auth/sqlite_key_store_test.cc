// SPDX-License-Identifier: Apache-2.0
// SqliteKeyStore specifics: what the file holds, persistence, the principal cache and its
// invalidation (same process at once, other processes within the refresh interval).
#include "gateway/auth/sqlite_key_store.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::auth {
namespace {

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

class SqliteKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = weft::testing::MakeTempDir("sqlite_key_store_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteKeyStore> Open() {
    SqliteKeyStoreOptions options;
    options.clock = [this] { return clock_.Now(); };
    auto s = SqliteKeyStore::Open(path(), options);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  std::string path() const { return dir_ + "/keys.sqlite"; }

  // Every byte of every file in the data folder (the database, its WAL and shared memory).
  std::string AllBytes() const {
    std::string all;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      std::ifstream in(entry.path(), std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }

  static CreatedKey NewKey(KeyStore& store, const std::string& tenant) {
    KeySpec spec;
    spec.tenant = tenant;
    auto k = store.CreateKey(spec);
    EXPECT_TRUE(k.ok()) << k.status();
    return k.ok() ? *k : CreatedKey{};
  }
  static void NewTenant(KeyStore& store, const std::string& id) {
    Tenant t;
    t.id = id;
    ASSERT_TRUE(store.CreateTenant(t).ok());
  }

  TestClock clock_;
  std::string dir_;
};

TEST_F(SqliteKeyStoreTest, FileHoldsHashesNeverKeys) {
  std::vector<CreatedKey> keys;
  {
    auto store = Open();
    NewTenant(*store, "acme");
    for (int i = 0; i < 5; ++i) keys.push_back(NewKey(*store, "acme"));
    for (const auto& k : keys) ASSERT_TRUE(store->Authenticate(k.plaintext).ok());
    ASSERT_TRUE(store->RevokeKey(keys[0].key.key_id).ok());
    // While open: the WAL holds the recent pages.
    std::string bytes = AllBytes();
    for (const auto& k : keys) {
      ASSERT_NE(bytes.find(k.key.key_id), std::string::npos);  // the scan does see the rows
      auto parsed = ParseKey(k.plaintext);
      ASSERT_TRUE(parsed.ok());
      EXPECT_EQ(bytes.find(parsed->secret), std::string::npos);
      EXPECT_EQ(bytes.find(k.plaintext), std::string::npos);
    }
  }
  // After close (checkpointed into the main file).
  std::string bytes = AllBytes();
  ASSERT_FALSE(bytes.empty());
  for (const auto& k : keys) {
    ASSERT_NE(bytes.find(k.key.key_id), std::string::npos);
    EXPECT_EQ(bytes.find(ParseKey(k.plaintext)->secret), std::string::npos);
  }
}

TEST_F(SqliteKeyStoreTest, SurvivesReopen) {
  CreatedKey live, dead;
  {
    auto store = Open();
    NewTenant(*store, "acme");
    live = NewKey(*store, "acme");
    dead = NewKey(*store, "acme");
    ASSERT_TRUE(store->RevokeKey(dead.key.key_id).ok());
  }
  auto store = Open();
  auto p = store->Authenticate(live.plaintext);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tenant, "acme");
  EXPECT_TRUE(absl::IsUnauthenticated(store->Authenticate(dead.plaintext).status()));
  EXPECT_EQ(store->ListKeys("acme")->size(), 2u);
}

TEST_F(SqliteKeyStoreTest, CacheAnswersRepeatedKeys) {
  auto store = Open();
  NewTenant(*store, "acme");
  CreatedKey k = NewKey(*store, "acme");
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(store->Authenticate(k.plaintext).ok());
  EXPECT_EQ(store->key_reads(), 1);
  EXPECT_EQ(store->cached_keys(), 1u);
  // A wrong secret for a cached key id is refused from the cache too.
  std::string wrong = k.plaintext;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  EXPECT_TRUE(absl::IsUnauthenticated(store->Authenticate(wrong).status()));
  EXPECT_EQ(store->key_reads(), 1);
}

TEST_F(SqliteKeyStoreTest, RevokeInvalidatesCacheAtOnce) {
  auto store = Open();
  NewTenant(*store, "acme");
  CreatedKey k = NewKey(*store, "acme");
  CreatedKey other = NewKey(*store, "acme");
  ASSERT_TRUE(store->Authenticate(k.plaintext).ok());
  ASSERT_TRUE(store->Authenticate(other.plaintext).ok());
  ASSERT_TRUE(store->RevokeKey(k.key.key_id).ok());
  auto p = store->Authenticate(k.plaintext);
  EXPECT_TRUE(absl::IsUnauthenticated(p.status()));
  EXPECT_EQ(p.status().message(), "API key revoked");
  EXPECT_TRUE(store->Authenticate(other.plaintext).ok());
}

TEST_F(SqliteKeyStoreTest, ChangesByAnotherProcessSeenWithinRefreshInterval) {
  auto gateway = Open();  // e.g. `weft gateway`
  auto admin = Open();    // e.g. `weft keys revoke` in another process
  NewTenant(*admin, "acme");
  CreatedKey k = NewKey(*admin, "acme");
  auto p = gateway->Authenticate(k.plaintext);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(MayUse(*p, "llama"));

  TenantPatch patch;
  patch.deployments = std::vector<std::string>{"qwen"};
  ASSERT_TRUE(admin->UpdateTenant("acme", patch).ok());
  clock_.Advance(absl::Milliseconds(1001));
  p = gateway->Authenticate(k.plaintext);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(MayUse(*p, "llama"));
  EXPECT_TRUE(MayUse(*p, "qwen"));

  ASSERT_TRUE(admin->RevokeKey(k.key.key_id).ok());
  clock_.Advance(absl::Milliseconds(1001));
  EXPECT_TRUE(absl::IsUnauthenticated(gateway->Authenticate(k.plaintext).status()));
}

TEST_F(SqliteKeyStoreTest, NoAuthenticationSucceedsAfterRevokeReturns) {
  auto store = Open();
  NewTenant(*store, "acme");
  std::vector<CreatedKey> keys;
  for (int i = 0; i < 8; ++i) keys.push_back(NewKey(*store, "acme"));
  std::atomic<bool> revoked{false};
  std::atomic<bool> stop{false};
  std::atomic<int> late_successes{0};
  std::atomic<int> other_failures{0};
  std::atomic<int64_t> checks{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int i = t;
      while (!stop.load()) {
        bool after = revoked.load();
        const CreatedKey& k = keys[i++ % keys.size()];
        auto p = store->Authenticate(k.plaintext);
        bool is_revoked_key = k.key.key_id == keys[0].key.key_id;
        if (after && is_revoked_key && p.ok()) late_successes++;
        if (!is_revoked_key && !p.ok()) other_failures++;
        checks++;
      }
    });
  }
  while (checks.load() < 2000) std::this_thread::yield();
  ASSERT_TRUE(store->RevokeKey(keys[0].key.key_id).ok());
  revoked = true;
  int64_t at = checks.load();
  while (checks.load() < at + 2000) std::this_thread::yield();
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(late_successes.load(), 0);
  EXPECT_EQ(other_failures.load(), 0);
}

TEST_F(SqliteKeyStoreTest, OpenFailsOnABadPath) {
  auto s = SqliteKeyStore::Open(dir_ + "/no/such/dir/keys.sqlite");
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace weft::auth
