// SPDX-License-Identifier: Apache-2.0
// The LedgerStore conformance suite, run against every store: memory, SQLite and (when a
// throwaway server can start here) PostgreSQL. SQL query results are checked against the memory
// store over seeded random records and queries.
#include "gateway/metering/ledger_store.h"

#include <functional>
#include <map>
#include <random>

#include "gateway/metering/memory_ledger_store.h"
#include "gateway/metering/metering_testing.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gtest/gtest.h"
#include "sqlite3.h"
#ifdef WEFT_HAVE_POSTGRES
#include "gateway/metering/postgres_ledger_store.h"
#include "gateway/metering/postgres_test_server.h"
#endif

namespace weft::gateway {
namespace {

using testing::kDay0UnixMs;
using testing::ScopedTempDir;
using testing::TestRecord;

enum class Backend { kMemory, kSqlite, kPostgres };

class LedgerStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::kMemory:
        store_ = std::make_unique<MemoryLedgerStore>();
        break;
      case Backend::kSqlite: {
        auto s = SqliteLedgerStore::Open({.path = dir_ / "ledger.sqlite"});
        ASSERT_TRUE(s.ok()) << s.status();
        store_ = *std::move(s);
        break;
      }
      case Backend::kPostgres: {
#ifdef WEFT_HAVE_POSTGRES
        std::string why_not;
        auto* server = testing::PostgresTestServer::Shared(&why_not);
        if (server == nullptr) {
          GTEST_SKIP() << "no throwaway PostgreSQL server could start here: " << why_not;
        }
        auto conninfo = server->NewDatabase();
        ASSERT_TRUE(conninfo.ok()) << conninfo.status();
        auto s = PostgresLedgerStore::Open(*conninfo);
        ASSERT_TRUE(s.ok()) << s.status();
        store_ = *std::move(s);
#else
        GTEST_SKIP() << "built without PostgreSQL (libpq not found)";
#endif
        break;
      }
    }
  }

  std::vector<UsageRecord> ScanAll(int64_t since = INT64_MIN) {
    std::vector<UsageRecord> out;
    EXPECT_TRUE(store_->Scan(since, [&](const UsageRecord& r) { out.push_back(r); }).ok());
    return out;
  }

  ScopedTempDir dir_;
  std::unique_ptr<LedgerStore> store_;
};

TEST_P(LedgerStoreTest, InsertIsIdempotentByRequestId) {
  std::vector<UsageRecord> first;
  for (int i = 0; i < 10; ++i) first.push_back(TestRecord(i));
  EXPECT_EQ(store_->Insert(first).value(), 10);
  EXPECT_EQ(store_->Insert(first).value(), 0);  // shipped again after a crash
  EXPECT_EQ(store_->Insert({}).value(), 0);

  // Half old, half new; the old ids keep their first version.
  std::vector<UsageRecord> overlap;
  for (int i = 5; i < 15; ++i) {
    UsageRecord r = TestRecord(i);
    if (i < 10) r.completion_tokens = 999999;
    overlap.push_back(r);
  }
  EXPECT_EQ(store_->Insert(overlap).value(), 5);
  const auto all = ScanAll();
  ASSERT_EQ(all.size(), 15u);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(all[i], TestRecord(i)) << i;  // every field round-trips
}

TEST_P(LedgerStoreTest, DuplicatesInsideOneBatchStoreOnce) {
  std::vector<UsageRecord> batch = {TestRecord(1), TestRecord(2), TestRecord(1)};
  EXPECT_EQ(store_->Insert(batch).value(), 2);
  EXPECT_EQ(ScanAll().size(), 2u);
}

TEST_P(LedgerStoreTest, LargeBatches) {
  std::vector<UsageRecord> batch;
  for (int i = 0; i < 2500; ++i) batch.push_back(TestRecord(i, "big"));
  EXPECT_EQ(store_->Insert(batch).value(), 2500);
  EXPECT_EQ(ScanAll().size(), 2500u);
}

// Batches of every size around the stores' rows per statement, each with a duplicate of a stored
// record and one of its own: every new record counted and stored once, every field intact.
TEST_P(LedgerStoreTest, BatchesOfEverySizeCountNewRecordsOnce) {
  int next = 0;
  std::vector<UsageRecord> want;
  for (int size = 1; size <= 70; ++size) {
    std::vector<UsageRecord> batch;
    for (int i = 0; i < size; ++i) batch.push_back(TestRecord(next + i));
    if (!want.empty()) batch.push_back(want[size % want.size()]);  // stored before
    if (size > 1) batch.insert(batch.begin() + size / 2, TestRecord(next));  // twice in one
    ASSERT_EQ(store_->Insert(batch).value(), size) << size;
    for (int i = 0; i < size; ++i) want.push_back(TestRecord(next + i));
    next += size;
  }
  const auto all = ScanAll();
  ASSERT_EQ(all.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(all[i], want[i]) << i;
}

TEST_P(LedgerStoreTest, ScanFromATimeInTimeOrder) {
  std::vector<UsageRecord> records;
  for (int i = 9; i >= 0; --i) records.push_back(TestRecord(i));
  ASSERT_TRUE(store_->Insert(records).ok());
  const auto since5 = ScanAll(TestRecord(5).time_unix_ms);
  ASSERT_EQ(since5.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(since5[i], TestRecord(5 + i));
}

TEST_P(LedgerStoreTest, QueryGroupsExactly) {
  std::vector<UsageRecord> records;
  for (int i = 0; i < 12; ++i) records.push_back(TestRecord(i));  // 5 h apart: 3 days
  ASSERT_TRUE(store_->Insert(records).ok());

  auto by_day = store_->Query({.group_by = UsageGroupBy::kDay});
  ASSERT_TRUE(by_day.ok()) << by_day.status();
  // Records 0-4 on 05-01 (0..20 h), 5-9 on 05-02 (25..45 h), 10-11 on 05-03.
  auto sums = [](int from, int to) {
    UsageRow row;
    for (int i = from; i < to; ++i) {
      row.requests++;
      row.prompt_tokens += TestRecord(i).prompt_tokens;
      row.cached_tokens += TestRecord(i).cached_tokens;
      row.completion_tokens += TestRecord(i).completion_tokens;
    }
    return row;
  };
  UsageRow d1 = sums(0, 5), d2 = sums(5, 10), d3 = sums(10, 12);
  d1.group = "2024-05-01";
  d2.group = "2024-05-02";
  d3.group = "2024-05-03";
  EXPECT_EQ(*by_day, (std::vector<UsageRow>{d1, d2, d3}));

  auto tenant1 = store_->Query({.tenant = "tenant1",
                                .deployment = "",
                                .since_unix_ms = kDay0UnixMs,
                                .until_unix_ms = kDay0UnixMs + 86400000,
                                .group_by = UsageGroupBy::kDeployment});
  ASSERT_TRUE(tenant1.ok());
  // Day one, tenant1: records 1 and 4 (llama-8b and qwen-7b).
  ASSERT_EQ(tenant1->size(), 2u);
  EXPECT_EQ((*tenant1)[0].group, "llama-8b");
  EXPECT_EQ((*tenant1)[0].requests, 1);
  EXPECT_EQ((*tenant1)[0].prompt_tokens, TestRecord(1).prompt_tokens);
  EXPECT_EQ((*tenant1)[1].group, "qwen-7b");

  auto none = store_->Query({.tenant = "nobody"});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// The SQL (GROUP BY, strftime/to_char, filters, ORDER BY) against the memory store's C++.
class SqlLedgerStoreTest : public LedgerStoreTest {};

TEST_P(SqlLedgerStoreTest, QueryMatchesTheOracleOnRandomData) {
  std::mt19937_64 rng(20240501);
  MemoryLedgerStore oracle;
  std::vector<UsageRecord> records;
  for (int i = 0; i < 600; ++i) {
    UsageRecord r = TestRecord(i, "rnd");
    r.tenant = absl::StrCat("t", rng() % 4);
    r.deployment = rng() % 5 == 0 ? "" : absl::StrCat("dep-", rng() % 3);
    r.key_id = absl::StrCat("k", rng() % 6);
    r.time_unix_ms = kDay0UnixMs + static_cast<int64_t>(rng() % (40ull * 86400000)) -
                     5 * 86400000;  // ±, across day edges
    r.prompt_tokens = static_cast<int64_t>(rng() % 100000);
    r.cached_tokens = static_cast<int64_t>(rng() % 1000);
    r.completion_tokens = static_cast<int64_t>(rng() % 5000);
    records.push_back(r);
  }
  ASSERT_TRUE(oracle.Insert(records).ok());
  ASSERT_TRUE(store_->Insert(std::span(records).first(300)).ok());
  ASSERT_TRUE(store_->Insert(std::span(records).subspan(300)).ok());
  for (int q = 0; q < 60; ++q) {
    UsageQuery query;
    if (rng() % 2) query.tenant = absl::StrCat("t", rng() % 5);
    if (rng() % 3 == 0) query.deployment = absl::StrCat("dep-", rng() % 3);
    if (rng() % 2)
      query.since_unix_ms = kDay0UnixMs + static_cast<int64_t>(rng() % (20ull * 86400000));
    if (rng() % 2)
      query.until_unix_ms = query.since_unix_ms + static_cast<int64_t>(rng() % (20ull * 86400000));
    query.group_by = static_cast<UsageGroupBy>(rng() % 4);
    auto want = oracle.Query(query);
    auto got = store_->Query(query);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, *want) << "query " << q << " by " << UsageGroupByName(query.group_by);
  }
}

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kMemory:
      return "Memory";
    case Backend::kSqlite:
      return "Sqlite";
    case Backend::kPostgres:
      return "Postgres";
  }
  return "";
}

INSTANTIATE_TEST_SUITE_P(AllStores, LedgerStoreTest,
                         ::testing::Values(Backend::kMemory, Backend::kSqlite, Backend::kPostgres),
                         BackendName);
INSTANTIATE_TEST_SUITE_P(SqlStores, SqlLedgerStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

TEST(SqliteLedgerStoreTest, OpenWithoutCreateIsNotFound) {
  ScopedTempDir dir;
  auto s = SqliteLedgerStore::Open({.path = dir / "absent.sqlite", .create_if_missing = false});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound) << s.status();
}

TEST(SqliteLedgerStoreTest, TwoConnectionsShareTheFile) {
  ScopedTempDir dir;
  auto a = SqliteLedgerStore::Open({.path = dir / "l.sqlite"});
  auto b = SqliteLedgerStore::Open({.path = dir / "l.sqlite"});
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<UsageRecord> r = {TestRecord(1)};
  EXPECT_EQ((*a)->Insert(r).value(), 1);
  EXPECT_EQ((*b)->Insert(r).value(), 0);
  EXPECT_EQ((*b)->Query({}).value().at(0).requests, 1);
}

// One tenant's usage reads the (tenant, time) index, not every record in the time range.
TEST(SqliteLedgerStoreTest, OneTenantsQueryUsesTheTenantIndex) {
  ScopedTempDir dir;
  auto store = SqliteLedgerStore::Open({.path = dir / "l.sqlite"});
  ASSERT_TRUE(store.ok()) << store.status();
  auto tenant = (*store)->ExplainQuery({.tenant = "acme", .group_by = UsageGroupBy::kKey});
  ASSERT_TRUE(tenant.ok()) << tenant.status();
  EXPECT_NE(tenant->find("usage_records_tenant_time"), std::string::npos) << *tenant;
  auto all = (*store)->ExplainQuery({});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_NE(all->find("usage_records_time"), std::string::npos) << *all;
}

// Inserts commit without a flush (synchronous=NORMAL); Sync() commits one FULL transaction (a
// counter row, which the fsync of SQLite's WAL makes durable with every earlier frame), and only
// when something was inserted since the last one.
TEST(SqliteLedgerStoreTest, SyncCommitsOnceAfterInsertsAndKeepsRecordsReadable) {
  ScopedTempDir dir;
  const std::string path = dir / "l.sqlite";
  auto store = SqliteLedgerStore::Open({.path = path});
  ASSERT_TRUE(store.ok()) << store.status();
  auto syncs = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(syncs), 0) FROM ledger_syncs", -1, &st,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  };
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_EQ(syncs(), 0) << "nothing inserted: nothing to sync";
  std::vector<UsageRecord> batch = {TestRecord(1), TestRecord(2)};
  EXPECT_EQ((*store)->Insert(batch).value(), 2);
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_EQ(syncs(), 1);
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_EQ(syncs(), 1);
  EXPECT_EQ((*store)->Insert(batch).value(), 0);  // a commit all the same
  EXPECT_TRUE((*store)->Sync().ok());
  EXPECT_EQ(syncs(), 2);
  store->reset();
  auto again = SqliteLedgerStore::Open({.path = path, .create_if_missing = false});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->Query({}).value().at(0).requests, 2);
}

TEST(OpenLedgerStoreTest, Specs) {
  ScopedTempDir dir;
  EXPECT_TRUE(OpenLedgerStore(dir / "a.sqlite").ok());
  EXPECT_TRUE(OpenLedgerStore("sqlite:" + (dir / "b.sqlite")).ok());
  EXPECT_FALSE(OpenLedgerStore("").ok());
#ifdef WEFT_HAVE_POSTGRES
  // Nothing listens on this socket directory: a clear Unavailable, not a hang.
  auto pg = OpenLedgerStore("postgresql:///x?host=" + dir.path() + "&connect_timeout=2");
  EXPECT_EQ(pg.status().code(), absl::StatusCode::kUnavailable) << pg.status();
#else
  EXPECT_EQ(OpenLedgerStore("postgres://x/y").status().code(), absl::StatusCode::kUnimplemented);
#endif
}

TEST(UsageGroupByTest, NamesRoundTrip) {
  for (auto by :
       {UsageGroupBy::kDay, UsageGroupBy::kDeployment, UsageGroupBy::kKey, UsageGroupBy::kTenant}) {
    UsageGroupBy back;
    ASSERT_TRUE(ParseUsageGroupBy(UsageGroupByName(by), &back));
    EXPECT_EQ(back, by);
  }
  UsageGroupBy ignored;
  EXPECT_FALSE(ParseUsageGroupBy("month", &ignored));
}

}  // namespace
}  // namespace weft::gateway
