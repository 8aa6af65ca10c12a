// SPDX-License-Identifier: Apache-2.0
#include "control/store/control_store_conformance.h"

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "control/store/memory_control_store.h"
#include "control/store/sqlite_control_store.h"
#include "testing/test_data.h"
#ifdef WEFT_HAVE_POSTGRES
#include "control/store/postgres_control_store.h"
#include "gateway/metering/postgres_test_server.h"
#endif

namespace weft::control::testing {
namespace {

using Clock = std::chrono::steady_clock;

class MemoryHarness : public ControlStoreHarness {
 public:
  absl::StatusOr<std::unique_ptr<ControlStore>> Open(ControlStoreOptions options) override {
    if (!root_) root_ = std::make_unique<MemoryControlStore>();
    return std::unique_ptr<ControlStore>(root_->NewHandle(std::move(options)));
  }

 private:
  std::unique_ptr<MemoryControlStore> root_;
};

class SqliteHarness : public ControlStoreHarness {
 public:
  SqliteHarness() : dir_(weft::testing::MakeTempDir("weft-control-store-")) {}
  ~SqliteHarness() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  absl::StatusOr<std::unique_ptr<ControlStore>> Open(ControlStoreOptions options) override {
    options.poll_interval_ms = 20;
    auto s = SqliteControlStore::Open({.path = dir_ + "/control.sqlite", .store = options});
    if (!s.ok()) return s.status();
    return std::unique_ptr<ControlStore>(*std::move(s));
  }

 private:
  std::string dir_;
};

#ifdef WEFT_HAVE_POSTGRES
class PostgresHarness : public ControlStoreHarness {
 public:
  explicit PostgresHarness(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  absl::StatusOr<std::unique_ptr<ControlStore>> Open(ControlStoreOptions options) override {
    options.poll_interval_ms = 20;
    auto s = PostgresControlStore::Open(conninfo_, std::move(options));
    if (!s.ok()) return s.status();
    return std::unique_ptr<ControlStore>(*std::move(s));
  }

 private:
  std::string conninfo_;
};
#endif

DeploymentRecord Deployment(const std::string& name, const std::string& spec = "model: a\n") {
  DeploymentRecord d;
  d.name = name;
  d.spec = spec;
  return d;
}

ReplicaRecord Replica(const std::string& id, const std::string& deployment) {
  ReplicaRecord r;
  r.id = id;
  r.deployment = deployment;
  r.provider = "local";
  return r;
}

ProviderRecord Provider(const std::string& name) {
  ProviderRecord p;
  p.name = name;
  p.kind = "fake";
  p.config = R"({"slots": 4})";
  return p;
}

}  // namespace

void PrintTo(const ControlStoreBackend& backend, std::ostream* os) { *os << backend.name; }

std::string ControlStoreBackendName(const ::testing::TestParamInfo<ControlStoreBackend>& info) {
  return info.param.name;
}

ControlStoreBackend MemoryBackend() {
  return {"Memory", []() -> absl::StatusOr<std::unique_ptr<ControlStoreHarness>> {
            return std::make_unique<MemoryHarness>();
          }};
}

ControlStoreBackend SqliteBackend() {
  return {"Sqlite", []() -> absl::StatusOr<std::unique_ptr<ControlStoreHarness>> {
            return std::make_unique<SqliteHarness>();
          }};
}

ControlStoreBackend PostgresBackend() {
  return {"Postgres", []() -> absl::StatusOr<std::unique_ptr<ControlStoreHarness>> {
#ifdef WEFT_HAVE_POSTGRES
            std::string why_not;
            auto* server = weft::gateway::testing::PostgresTestServer::Shared(&why_not);
            if (server == nullptr) {
              return absl::UnimplementedError(
                  absl::StrCat("no throwaway PostgreSQL server could start here: ", why_not));
            }
            auto conninfo = server->NewDatabase();
            if (!conninfo.ok()) return conninfo.status();
            return std::make_unique<PostgresHarness>(*conninfo);
#else
            return absl::UnimplementedError("built without PostgreSQL (libpq not found)");
#endif
          }};
}

void ControlStoreConformanceTest::SetUp() {
  auto h = GetParam().make();
  if (h.status().code() == absl::StatusCode::kUnimplemented) {
    GTEST_SKIP() << h.status().message();
  }
  ASSERT_TRUE(h.ok()) << h.status();
  harness_ = *std::move(h);
  store_ = OpenHandle();
  ASSERT_NE(store_, nullptr);
}

std::unique_ptr<ControlStore> ControlStoreConformanceTest::OpenHandle() {
  ControlStoreOptions options;
  options.now_ms = [this] { return now_ms_.load(); };
  auto s = harness_->Open(std::move(options));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

namespace {

TEST_P(ControlStoreConformanceTest, EmptyStore) {
  EXPECT_EQ(store_->Revision().value(), 0);
  EXPECT_FALSE(store_->Get<DeploymentRecord>("nope").value().has_value());
  EXPECT_TRUE(store_->List<DeploymentRecord>().value().empty());
  EXPECT_TRUE(store_->List<ReplicaRecord>().value().empty());
  EXPECT_TRUE(store_->List<ProviderRecord>().value().empty());
  EXPECT_TRUE(store_->ListEvents({}).value().empty());
}

TEST_P(ControlStoreConformanceTest, DeploymentRoundTripWithStoreOwnedFields) {
  DeploymentRecord d =
      Deployment("chat", "name: chat\nmodel: \"hf://x/y.gguf\"\n  quotes ' \" \\\n");
  d.status = "ready 2/2 — ünïcödé";
  d.generation = 99;  // ignored: the store owns it
  d.created_ms = 5;   // ignored
  auto put = store_->Put(d);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->generation, 1);
  EXPECT_EQ(put->created_ms, now_ms_.load());
  EXPECT_EQ(put->updated_ms, now_ms_.load());
  EXPECT_EQ(put->version, 1);
  EXPECT_EQ(store_->Revision().value(), 1);

  auto got = store_->Get<DeploymentRecord>("chat").value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->name, "chat");
  EXPECT_EQ(got->spec, d.spec);
  EXPECT_EQ(got->status, d.status);
  EXPECT_FALSE(got->deleted);
  EXPECT_EQ(got->generation, 1);
  EXPECT_EQ(got->created_ms, put->created_ms);
  EXPECT_EQ(got->version, 1);
}

TEST_P(ControlStoreConformanceTest, GenerationBumpsOnlyOnSpecChange) {
  auto v1 = store_->Put(Deployment("chat", "a")).value();
  now_ms_ += 1000;
  DeploymentRecord d = v1;
  d.status = "scaling";
  auto v2 = store_->Put(d).value();
  EXPECT_EQ(v2.generation, 1);
  EXPECT_GT(v2.version, v1.version);
  EXPECT_EQ(v2.created_ms, v1.created_ms);
  EXPECT_EQ(v2.updated_ms, v1.updated_ms + 1000);
  d = v2;
  d.spec = "b";
  auto v3 = store_->Put(d).value();
  EXPECT_EQ(v3.generation, 2);
  d = v3;
  d.deleted = true;
  auto v4 = store_->Put(d).value();
  EXPECT_EQ(v4.generation, 2);
  EXPECT_TRUE(store_->Get<DeploymentRecord>("chat").value()->deleted);
}

TEST_P(ControlStoreConformanceTest, OptimisticConcurrency) {
  auto v1 = store_->Put(Deployment("chat")).value();
  // Create over an existing record.
  auto again = store_->Put(Deployment("chat"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_TRUE(IsConflict(again.status()));

  // Two writers read v1; the first wins, the second is stale.
  DeploymentRecord a = v1, b = v1;
  a.status = "a";
  b.status = "b";
  auto wa = store_->Put(a);
  ASSERT_TRUE(wa.ok()) << wa.status();
  auto wb = store_->Put(b);
  EXPECT_EQ(wb.status().code(), absl::StatusCode::kAborted) << wb.status();
  EXPECT_TRUE(IsConflict(wb.status()));
  EXPECT_EQ(store_->Get<DeploymentRecord>("chat").value()->status, "a");

  // Update of something that does not exist.
  DeploymentRecord ghost = Deployment("ghost");
  ghost.version = 7;
  EXPECT_EQ(store_->Put(ghost).status().code(), absl::StatusCode::kNotFound);

  // Upsert ignores versions.
  DeploymentRecord any = Deployment("chat", "other");
  any.version = kAnyVersion;
  auto up = store_->Put(any);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->generation, 2);
  any.name = "fresh";
  EXPECT_TRUE(store_->Put(any).ok());
  any.version = -5;
  EXPECT_EQ(store_->Put(any).status().code(), absl::StatusCode::kInvalidArgument);

  // Failed writes changed nothing visible.
  EXPECT_EQ(store_->Get<DeploymentRecord>("chat").value()->spec, "other");
  EXPECT_EQ(store_->List<DeploymentRecord>().value().size(), 2u);
}

TEST_P(ControlStoreConformanceTest, EmptyNamesAreRejected) {
  EXPECT_EQ(store_->Put(Deployment("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put(Replica("", "chat")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put(Replica("r1", "")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put(Provider("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Revision().value(), 0);
}

TEST_P(ControlStoreConformanceTest, ReplicasRoundTripEveryPhaseAndFilterByDeployment) {
  const ReplicaPhase phases[] = {ReplicaPhase::kPending, ReplicaPhase::kStarting,
                                 ReplicaPhase::kReady,   ReplicaPhase::kDraining,
                                 ReplicaPhase::kGone,    ReplicaPhase::kFailed};
  int i = 0;
  for (ReplicaPhase phase : phases) {
    ReplicaRecord r = Replica(absl::StrCat("r", i), i % 2 ? "chat" : "code");
    r.phase = phase;
    r.provider = i % 3 ? "aws" : "local";
    r.endpoint = absl::StrCat("http://127.0.0.1:", 9000 + i);
    r.spec_generation = i + 1;
    r.failure_reason = phase == ReplicaPhase::kFailed ? "exit status 137\nOOM" : "";
    ASSERT_TRUE(store_->Put(r).ok());
    ++i;
  }
  auto all = store_->List<ReplicaRecord>().value();
  ASSERT_EQ(all.size(), 6u);
  for (int j = 0; j < 6; ++j) {
    const ReplicaRecord& r = all[j];
    EXPECT_EQ(r.id, absl::StrCat("r", j));
    EXPECT_EQ(r.phase, phases[j]) << ReplicaPhaseName(r.phase);
    EXPECT_EQ(r.deployment, j % 2 ? "chat" : "code");
    EXPECT_EQ(r.provider, j % 3 ? "aws" : "local");
    EXPECT_EQ(r.endpoint, absl::StrCat("http://127.0.0.1:", 9000 + j));
    EXPECT_EQ(r.spec_generation, j + 1);
    EXPECT_EQ(r.failure_reason, phases[j] == ReplicaPhase::kFailed ? "exit status 137\nOOM" : "");
    EXPECT_EQ(r.created_ms, now_ms_.load());
  }
  auto chat = store_->List<ReplicaRecord>({.deployment = "chat"}).value();
  ASSERT_EQ(chat.size(), 3u);
  EXPECT_EQ(chat[0].id, "r1");
  EXPECT_EQ(chat[2].id, "r5");
  EXPECT_TRUE(store_->List<ReplicaRecord>({.deployment = "none"}).value().empty());
  // The filter is for replicas only.
  ASSERT_TRUE(store_->Put(Deployment("x")).ok());
  EXPECT_EQ(store_->List<DeploymentRecord>({.deployment = "chat"}).value().size(), 1u);

  // Moving a replica to another deployment moves it between filtered lists.
  ReplicaRecord moved = all[1];
  moved.deployment = "code";
  ASSERT_TRUE(store_->Put(moved).ok());
  EXPECT_EQ(store_->List<ReplicaRecord>({.deployment = "chat"}).value().size(), 2u);
}

TEST_P(ControlStoreConformanceTest, ProvidersRoundTrip) {
  ProviderRecord p = Provider("aws-east");
  p.kind = "hosts";
  p.config = R"({"hosts": ["10.0.0.1:7000"], "token": "s3cr\"et"})";
  p.degraded = true;
  p.successes = 41;
  p.failures = 3;
  ASSERT_TRUE(store_->Put(p).ok());
  auto got = store_->Get<ProviderRecord>("aws-east").value();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->kind, "hosts");
  EXPECT_EQ(got->config, p.config);
  EXPECT_TRUE(got->degraded);
  EXPECT_EQ(got->successes, 41);
  EXPECT_EQ(got->failures, 3);
  // Kinds are separate namespaces.
  EXPECT_FALSE(store_->Get<DeploymentRecord>("aws-east").value().has_value());
  ASSERT_TRUE(store_->Put(Deployment("aws-east")).ok());
  EXPECT_EQ(store_->List<ProviderRecord>().value().size(), 1u);
}

TEST_P(ControlStoreConformanceTest, ListsAreOrderedByName) {
  for (const char* n : {"b", "a", "C", "aa", "b-2", "Z"})
    ASSERT_TRUE(store_->Put(Provider(n)).ok());
  std::vector<std::string> names;
  const auto providers = store_->List<ProviderRecord>().value();
  for (const auto& p : providers) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"C", "Z", "a", "aa", "b", "b-2"}));
}

TEST_P(ControlStoreConformanceTest, DeleteWithVersions) {
  auto d = store_->Put(Deployment("chat")).value();
  const int64_t rev = store_->Revision().value();
  EXPECT_EQ(store_->Delete<DeploymentRecord>("nope").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete<DeploymentRecord>("chat", d.version + 100).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(store_->Delete<DeploymentRecord>("chat", kCreate).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Revision().value(), rev);  // failed deletes change nothing
  EXPECT_TRUE(store_->Delete<DeploymentRecord>("chat", d.version).ok());
  EXPECT_EQ(store_->Revision().value(), rev + 1);
  EXPECT_FALSE(store_->Get<DeploymentRecord>("chat").value().has_value());
  // Created again from scratch: generation restarts.
  auto again = store_->Put(Deployment("chat", "new")).value();
  EXPECT_EQ(again.generation, 1);
  ASSERT_TRUE(store_->Put(Replica("r", "chat")).ok());
  EXPECT_TRUE(store_->Delete<ReplicaRecord>("r").ok());
  EXPECT_EQ(store_->Delete<ReplicaRecord>("r").code(), absl::StatusCode::kNotFound);
}

TEST_P(ControlStoreConformanceTest, TransactionCommitsAtomicallyAtOneRevision) {
  ASSERT_TRUE(store_->Put(Provider("p")).ok());
  const int64_t before = store_->Revision().value();
  absl::Status s = store_->Transaction([&](ControlTxn& txn) {
    auto d = txn.Put(Deployment("chat"));
    if (!d.ok()) return d.status();
    // Reads see the transaction's own writes.
    auto seen = txn.Get<DeploymentRecord>("chat");
    EXPECT_TRUE(seen.ok() && seen->has_value());
    for (int i = 0; i < 3; ++i) {
      auto r = txn.Put(Replica(absl::StrCat("chat-", i), "chat"));
      if (!r.ok()) return r.status();
    }
    EXPECT_EQ(txn.List<ReplicaRecord>({.deployment = "chat"}).value().size(), 3u);
    // Writing the same record twice in one transaction: its version is this revision.
    auto again = txn.Get<DeploymentRecord>("chat").value();
    again->status = "placing";
    auto d2 = txn.Put(*again);
    if (!d2.ok()) return d2.status();
    EXPECT_EQ(d2->version, d->version);
    if (auto e = txn.AppendEvent({.object = "deployment/chat", .message = "planned 3"}); !e.ok()) {
      return e.status();
    }
    return txn.Delete(RecordKind::kProvider, "p", kAnyVersion);
  });
  ASSERT_TRUE(s.ok()) << s;
  const int64_t after = store_->Revision().value();
  EXPECT_EQ(after, before + 1);
  const auto replicas = store_->List<ReplicaRecord>().value();
  for (const auto& r : replicas) EXPECT_EQ(r.version, after);
  EXPECT_EQ(store_->Get<DeploymentRecord>("chat").value()->status, "placing");
  EXPECT_EQ(store_->Get<DeploymentRecord>("chat").value()->version, after);
  EXPECT_FALSE(store_->Get<ProviderRecord>("p").value().has_value());
  EXPECT_EQ(store_->ListEvents({}).value().size(), 1u);
}

TEST_P(ControlStoreConformanceTest, FailedTransactionLeavesNothing) {
  auto keep = store_->Put(Deployment("keep", "v1")).value();
  ASSERT_TRUE(store_->Put(Provider("p")).ok());
  const int64_t before = store_->Revision().value();
  absl::Status s = store_->Transaction([&](ControlTxn& txn) {
    EXPECT_TRUE(txn.Put(Deployment("new")).ok());
    DeploymentRecord k = keep;
    k.spec = "v2";
    EXPECT_TRUE(txn.Put(k).ok());
    EXPECT_TRUE(txn.Put(Replica("r", "new")).ok());
    EXPECT_TRUE(txn.Delete(RecordKind::kProvider, "p", kAnyVersion).ok());
    EXPECT_TRUE(txn.AppendEvent({.object = "deployment/new", .message = "x"}).ok());
    // A stale write fails the plan; the whole transaction goes.
    return txn.Put(keep).status();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_EQ(store_->Revision().value(), before);
  EXPECT_FALSE(store_->Get<DeploymentRecord>("new").value().has_value());
  EXPECT_FALSE(store_->Get<ReplicaRecord>("r").value().has_value());
  EXPECT_TRUE(store_->Get<ProviderRecord>("p").value().has_value());
  auto k = store_->Get<DeploymentRecord>("keep").value();
  EXPECT_EQ(k->spec, "v1");
  EXPECT_EQ(k->generation, 1);
  EXPECT_EQ(k->version, keep.version);
  EXPECT_TRUE(store_->ListEvents({}).value().empty());
  // The store is usable afterwards and the revision continues from where it was.
  EXPECT_EQ(store_->Put(Deployment("after")).value().version, before + 1);
}

TEST_P(ControlStoreConformanceTest, ReadOnlyTransactionsKeepTheRevision) {
  ASSERT_TRUE(store_->Put(Deployment("chat")).ok());
  const int64_t rev = store_->Revision().value();
  ASSERT_TRUE(
      store_->Transaction([](ControlTxn& txn) { return txn.List<DeploymentRecord>().status(); })
          .ok());
  EXPECT_TRUE(store_->Get<DeploymentRecord>("chat").ok());
  EXPECT_TRUE(store_->AppendEvent({.object = "deployment/chat", .message = "m"}).ok());
  EXPECT_EQ(store_->Revision().value(), rev);
}

TEST_P(ControlStoreConformanceTest, EventsFilterAndLimit) {
  for (int i = 0; i < 10; ++i) {
    now_ms_ += 10;
    auto id = store_->AppendEvent(
        {.object = i % 2 ? "deployment/a" : "replica/b", .message = absl::StrCat("m", i)});
    ASSERT_TRUE(id.ok()) << id.status();
  }
  ASSERT_TRUE(store_->AppendEvent({.time_ms = 42, .object = "x", .message = "explicit time"}).ok());
  auto all = store_->ListEvents({}).value();
  ASSERT_EQ(all.size(), 11u);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].id, all[i - 1].id);
  EXPECT_EQ(all[0].message, "m0");
  EXPECT_EQ(all[0].time_ms, now_ms_.load() - 90);
  EXPECT_EQ(all[10].time_ms, 42);

  auto a = store_->ListEvents({.object = "deployment/a"}).value();
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0].message, "m1");
  EXPECT_EQ(a[4].message, "m9");
  auto newest = store_->ListEvents({.object = "deployment/a", .after_id = 0, .limit = 2}).value();
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].message, "m7");
  EXPECT_EQ(newest[1].message, "m9");
  auto since = store_->ListEvents({.object = "", .after_id = all[7].id}).value();
  ASSERT_EQ(since.size(), 3u);
  EXPECT_EQ(since[0].id, all[8].id);
  EXPECT_TRUE(store_->ListEvents({.object = "", .after_id = 0, .limit = 0}).value().empty());
}

TEST_P(ControlStoreConformanceTest, WaitForRevision) {
  // Already past: returns at once.
  ASSERT_TRUE(store_->Put(Deployment("a")).ok());
  EXPECT_EQ(store_->WaitForRevision(0, 10'000).value(), 1);
  // Times out with the current revision.
  const auto t0 = Clock::now();
  EXPECT_EQ(store_->WaitForRevision(1, 150).value(), 1);
  const auto waited = Clock::now() - t0;
  EXPECT_GE(waited, std::chrono::milliseconds(140));
  EXPECT_LT(waited, std::chrono::seconds(5));
  // Woken by a write on another thread.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(store_->Put(Deployment("b")).ok());
  });
  const auto t1 = Clock::now();
  EXPECT_EQ(store_->WaitForRevision(1, 20'000).value(), 2);
  EXPECT_LT(Clock::now() - t1, std::chrono::seconds(10));
  writer.join();
}

TEST_P(ControlStoreConformanceTest, SecondHandleSeesWritesAndWakesWaiters) {
  auto other = OpenHandle();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(store_->Put(Deployment("a")).ok());
  EXPECT_TRUE(other->Get<DeploymentRecord>("a").value().has_value());
  EXPECT_EQ(other->Revision().value(), 1);
  // Writes through one handle wake waiters on the other (by polling when they are processes).
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(other->Put(Deployment("b")).ok());
  });
  const auto t0 = Clock::now();
  EXPECT_EQ(store_->WaitForRevision(1, 20'000).value(), 2);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
  writer.join();
  // Versions are checked across handles.
  auto a = store_->Get<DeploymentRecord>("a").value().value();
  a.status = "via other";
  ASSERT_TRUE(other->Put(a).ok());
  a.status = "stale";
  EXPECT_EQ(store_->Put(a).status().code(), absl::StatusCode::kAborted);
}

TEST_P(ControlStoreConformanceTest, DataOutlivesTheHandle) {
  ASSERT_TRUE(store_->Put(Deployment("chat", "spec")).ok());
  ASSERT_TRUE(store_->AppendEvent({.object = "deployment/chat", .message = "created"}).ok());
  store_.reset();
  store_ = OpenHandle();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->Get<DeploymentRecord>("chat").value()->spec, "spec");
  EXPECT_EQ(store_->Revision().value(), 1);
  EXPECT_EQ(store_->ListEvents({}).value().size(), 1u);
  EXPECT_EQ(store_->Put(Deployment("next")).value().version, 2);
}

// Read-modify-write with retry on conflict from several threads and two handles: no increment is
// lost (optimistic concurrency is what keeps the counters right).
TEST_P(ControlStoreConformanceTest, ConcurrentIncrementsWithRetryLoseNothing) {
  ASSERT_TRUE(store_->Put(Provider("p")).ok());
  auto other = OpenHandle();
  ASSERT_NE(other, nullptr);
  constexpr int kThreads = 4;
  constexpr int kEach = 25;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    ControlStore* s = t % 2 ? other.get() : store_.get();
    threads.emplace_back([&, s] {
      for (int i = 0; i < kEach; ++i) {
        while (true) {
          auto p = s->Get<ProviderRecord>("p");
          ASSERT_TRUE(p.ok() && p->has_value()) << p.status();
          ProviderRecord rec = **p;
          ++rec.successes;
          auto w = s->Put(rec);
          if (w.ok()) break;
          ASSERT_TRUE(IsConflict(w.status())) << w.status();
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->Get<ProviderRecord>("p").value()->successes, kThreads * kEach);
  EXPECT_EQ(store_->Revision().value(), 1 + kThreads * kEach);
}

TEST_P(ControlStoreConformanceTest, EventLogIsTrimmedToAboutMaxEvents) {
  ControlStoreOptions options;
  options.max_events = 100;
  auto small = harness_->Open(options);
  ASSERT_TRUE(small.ok()) << small.status();
  ASSERT_TRUE((*small)
                  ->Transaction([](ControlTxn& txn) {
                    for (int i = 0; i < 300; ++i) {
                      auto id = txn.AppendEvent({.object = "o", .message = absl::StrCat(i)});
                      if (!id.ok()) return id.status();
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  auto events = (*small)->ListEvents({.object = "", .after_id = 0, .limit = 1000}).value();
  EXPECT_GE(events.size(), 100u);
  EXPECT_LE(events.size(), 100u + 64u);
  EXPECT_EQ(events.back().message, "299");
}

}  // namespace
}  // namespace weft::control::testing
