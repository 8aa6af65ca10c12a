// SPDX-License-Identifier: Apache-2.0
// The conformance suite over the three stores, plus OpenControlStore and the row codec.
#include <unistd.h>

#include <filesystem>

#include "control/store/control_store_conformance.h"
#include "control/store/open_control_store.h"
#include "control/store/row_store.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"
#ifdef WEFT_HAVE_POSTGRES
#include "control/store/postgres_control_store.h"
#include "gateway/metering/postgres_test_server.h"
#endif

namespace weft::control {
namespace {

using testing::ControlStoreBackendName;
using testing::ControlStoreConformanceTest;

INSTANTIATE_TEST_SUITE_P(Stores, ControlStoreConformanceTest,
                         ::testing::Values(testing::MemoryBackend(), testing::SqliteBackend(),
                                           testing::PostgresBackend()),
                         ControlStoreBackendName);

class TempDir {
 public:
  TempDir() : path_(weft::testing::MakeTempDir("weft-open-store-")) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(OpenControlStoreTest, PathOpensSqliteCreatingDirectories) {
  TempDir dir;
  const std::string path = dir.path() + "/a/b/control.sqlite";
  {
    auto store = OpenControlStore(path);
    ASSERT_TRUE(store.ok()) << store.status();
    DeploymentRecord d;
    d.name = "chat";
    ASSERT_TRUE((*store)->Put(d).ok());
  }
  EXPECT_TRUE(std::filesystem::exists(path));
  auto again = OpenControlStore(path);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE((*again)->Get<DeploymentRecord>("chat").value().has_value());
}

TEST(OpenControlStoreTest, EmptySpecIsTheDefaultPath) {
  TempDir dir;
  char old[4096];
  ASSERT_NE(::getcwd(old, sizeof(old)), nullptr);
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  {
    auto store = OpenControlStore("");
    EXPECT_TRUE(store.ok()) << store.status();
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/weft-data/control.sqlite"));
  ASSERT_EQ(::chdir(old), 0);
}

TEST(OpenControlStoreTest, UnopenablePathIsUnavailable) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/is-a-dir");
  auto store = OpenControlStore(dir.path() + "/is-a-dir");
  EXPECT_FALSE(store.ok());
}

TEST(OpenControlStoreTest, PostgresUrls) {
  EXPECT_TRUE(IsPostgresStoreSpec("postgres://u@h/db"));
  EXPECT_TRUE(IsPostgresStoreSpec("postgresql://u@h/db"));
  EXPECT_FALSE(IsPostgresStoreSpec("./postgres://x"));
  EXPECT_FALSE(IsPostgresStoreSpec("control.sqlite"));
  // No server behind this socket directory: a clear error, quickly.
  auto store = OpenControlStore("postgresql:///weft?host=/nonexistent-weft-dir&connect_timeout=2");
  ASSERT_FALSE(store.ok());
#ifdef WEFT_HAVE_POSTGRES
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
#else
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnimplemented) << store.status();
#endif
}

TEST(OpenControlStoreTest, ElectorForSqliteLocksNextToTheDatabase) {
  TempDir dir;
  const std::string path = dir.path() + "/control.sqlite";
  auto elector = OpenLeaderElector(path, {.name = "x", .retry_interval_ms = 20});
  ASSERT_TRUE(elector.ok()) << elector.status();
  ASSERT_TRUE((*elector)->Campaign(nullptr).ok());
  for (int i = 0; i < 500 && !(*elector)->IsLeader(); ++i) ::usleep(10'000);
  EXPECT_TRUE((*elector)->IsLeader());
  EXPECT_TRUE(std::filesystem::exists(LeaderLockPathFor(path)));
  (*elector)->Resign();
  EXPECT_FALSE((*elector)->IsLeader());
}

#ifdef WEFT_HAVE_POSTGRES
// A statement error inside the callback aborts a PostgreSQL transaction; a callback that ignores
// it must not get an OK (COMMIT of an aborted transaction is a silent ROLLBACK).
TEST(PostgresControlStoreTest, IgnoredStatementErrorFailsTheTransaction) {
  std::string why_not;
  auto* server = weft::gateway::testing::PostgresTestServer::Shared(&why_not);
  if (server == nullptr) GTEST_SKIP() << "no throwaway PostgreSQL server here: " << why_not;
  auto conninfo = server->NewDatabase();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status();
  auto store = PostgresControlStore::Open(*conninfo);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::Status s = (*store)->Transaction([](ControlTxn& txn) {
    DeploymentRecord ok;
    ok.name = "ok";
    EXPECT_TRUE(txn.Put(ok).ok());
    DeploymentRecord bad;
    bad.name = "bad\xff\xfe";  // not UTF-8: the server rejects the statement
    EXPECT_FALSE(txn.Put(bad).ok());
    return absl::OkStatus();
  });
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE((*store)->Get<DeploymentRecord>("ok").value().has_value());
  EXPECT_EQ((*store)->Revision().value(), 0);
  // The connection is usable afterwards.
  DeploymentRecord d;
  d.name = "after";
  EXPECT_TRUE((*store)->Put(d).ok());
}
#endif

TEST(RowCodecTest, CorruptRowsAreDataLoss) {
  internal::Row row{RecordKind::kReplica, "r", "d", 3, "{not json"};
  EXPECT_EQ(internal::DecodeRow(row).status().code(), absl::StatusCode::kDataLoss);
  row.body = R"({"deployment": "d"})";  // fields missing
  EXPECT_EQ(internal::DecodeRow(row).status().code(), absl::StatusCode::kDataLoss);
  ReplicaRecord r;
  r.id = "r";
  r.deployment = "d";
  r.phase = ReplicaPhase::kDraining;
  internal::Row good = internal::EncodeRecord(r);
  EXPECT_EQ(good.parent, "d");
  auto back = internal::DecodeRow(good);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<ReplicaRecord>(*back).phase, ReplicaPhase::kDraining);
  good.body.replace(good.body.find("draining"), 8, "sleeping");
  EXPECT_EQ(internal::DecodeRow(good).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace weft::control
