// SPDX-License-Identifier: Apache-2.0
#include "control/providers/provider_conformance.h"

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace weft::control {
namespace {

using Clock = std::chrono::steady_clock;

bool IsPhase(const std::optional<ReplicaStatus>& s, ReplicaPhase p) {
  return s.has_value() && s->phase == p;
}

std::string Describe(const std::optional<ReplicaStatus>& s) {
  if (!s) return "not listed";
  return absl::StrCat(s->id, " ", std::string(ReplicaPhaseName(s->phase)), " ", s->endpoint, " ",
                      s->failure_reason);
}

}  // namespace

void PrintTo(const ProviderConformanceCase& c, std::ostream* os) { *os << c.name; }

std::string ConformanceCaseName(const ::testing::TestParamInfo<ProviderConformanceCase>& info) {
  return info.param.name;
}

void ProviderConformanceTest::SetUp() {
  absl::StatusOr<ConformanceSubject> s = GetParam().make();
  ASSERT_TRUE(s.ok()) << s.status();
  subject_ = *std::move(s);
  ASSERT_NE(subject_.provider, nullptr);
  ASSERT_GE(subject_.slots, 2) << "the suite needs at least two slots";
  ASSERT_TRUE(subject_.kill) << "the subject must say how to kill a replica";
}

void ProviderConformanceTest::TearDown() {
  subject_.provider.reset();
  if (subject_.cleanup) subject_.cleanup();
}

ReplicaSpec ProviderConformanceTest::Spec(const std::string& id,
                                          const std::string& deployment) const {
  ReplicaSpec s = subject_.spec;
  s.id = id;
  s.deployment = deployment;
  return s;
}

std::optional<ReplicaStatus> ProviderConformanceTest::Find(const ReplicaId& id) {
  absl::StatusOr<std::vector<ReplicaStatus>> list = provider().List();
  EXPECT_TRUE(list.ok()) << list.status();
  if (!list.ok()) return std::nullopt;
  std::optional<ReplicaStatus> found;
  for (const ReplicaStatus& s : *list) {
    if (s.id == id) {
      EXPECT_FALSE(found.has_value()) << "listed twice: " << id;
      found = s;
    }
  }
  return found;
}

std::optional<ReplicaStatus> ProviderConformanceTest::WaitFor(
    const ReplicaId& id, const std::function<bool(const std::optional<ReplicaStatus>&)>& done) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(subject_.timeout_s));
  std::optional<ReplicaStatus> last;
  while (true) {
    if (subject_.tick) subject_.tick();
    last = Find(id);
    if (done(last) || Clock::now() >= deadline) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::optional<ReplicaStatus> ProviderConformanceTest::WaitForPhase(const ReplicaId& id,
                                                                   ReplicaPhase phase) {
  return WaitFor(id, [phase](const std::optional<ReplicaStatus>& s) {
    // A terminal phase other than the one awaited ends the wait early.
    return IsPhase(s, phase) || IsPhase(s, ReplicaPhase::kFailed) || !s.has_value();
  });
}

bool ProviderConformanceTest::WaitGone(const ReplicaId& id) {
  return !WaitFor(id, [](const std::optional<ReplicaStatus>& s) {
            return !s.has_value();
          }).has_value();
}

int ProviderConformanceTest::FreeSlots() {
  absl::StatusOr<ProviderCapacity> c = provider().Capacity();
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return -1;
  const AcceleratorSlots* a = c->Find(subject_.spec.accelerator);
  return a == nullptr ? -1 : a->free;
}

TEST_P(ProviderConformanceTest, HealthyAndOffersItsSlots) {
  EXPECT_TRUE(provider().Health().ok) << provider().Health().reason;
  absl::StatusOr<ProviderCapacity> c = provider().Capacity();
  ASSERT_TRUE(c.ok()) << c.status();
  const AcceleratorSlots* a = c->Find(subject_.spec.accelerator);
  ASSERT_NE(a, nullptr) << "no slots of kind " << subject_.spec.accelerator;
  EXPECT_EQ(a->total, subject_.slots);
  EXPECT_EQ(a->free, subject_.slots);
  EXPECT_GE(a->usd_per_hour, 0);
  EXPECT_FALSE(c->regions.empty());
  absl::StatusOr<std::vector<ReplicaStatus>> list = provider().List();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->empty());
}

TEST_P(ProviderConformanceTest, ProvisionStartsThenBecomesReady) {
  absl::StatusOr<ReplicaStatus> s = provider().Provision(Spec("r1", "demo"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->id, "r1");
  EXPECT_EQ(s->deployment, "demo");
  EXPECT_TRUE(s->phase == ReplicaPhase::kStarting || s->phase == ReplicaPhase::kReady)
      << ReplicaPhaseName(s->phase);
  EXPECT_TRUE(absl::StartsWith(s->endpoint, "http://")) << s->endpoint;
  EXPECT_GT(s->started_ms, 0);

  std::optional<ReplicaStatus> ready = WaitForPhase("r1", ReplicaPhase::kReady);
  ASSERT_TRUE(IsPhase(ready, ReplicaPhase::kReady)) << Describe(ready);
  EXPECT_EQ(ready->deployment, "demo");
  EXPECT_EQ(ready->endpoint, s->endpoint);
  EXPECT_EQ(ready->started_ms, s->started_ms);
  EXPECT_TRUE(ready->failure_reason.empty()) << ready->failure_reason;
}

TEST_P(ProviderConformanceTest, ListShowsEveryReplica) {
  ASSERT_TRUE(provider().Provision(Spec("a", "one")).ok());
  ASSERT_TRUE(provider().Provision(Spec("b", "two")).ok());
  absl::StatusOr<std::vector<ReplicaStatus>> list = provider().List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  std::set<std::string> seen;
  for (const ReplicaStatus& s : *list) seen.insert(absl::StrCat(s.id, "/", s.deployment));
  EXPECT_EQ(seen, (std::set<std::string>{"a/one", "b/two"}));
  EXPECT_NE((*list)[0].endpoint, (*list)[1].endpoint);
  EXPECT_TRUE(IsPhase(WaitForPhase("a", ReplicaPhase::kReady), ReplicaPhase::kReady));
  EXPECT_TRUE(IsPhase(WaitForPhase("b", ReplicaPhase::kReady), ReplicaPhase::kReady));
}

TEST_P(ProviderConformanceTest, ProvisionIsIdempotent) {
  absl::StatusOr<ReplicaStatus> first = provider().Provision(Spec("r1"));
  ASSERT_TRUE(first.ok()) << first.status();
  const int free_after_one = FreeSlots();
  EXPECT_EQ(free_after_one, subject_.slots - 1);
  absl::StatusOr<ReplicaStatus> again = provider().Provision(Spec("r1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, "r1");
  EXPECT_EQ(again->endpoint, first->endpoint);
  EXPECT_EQ(again->started_ms, first->started_ms);
  EXPECT_EQ(FreeSlots(), free_after_one);
  // Once ready, a retried Provision reports the ready replica, still without a second one.
  ASSERT_TRUE(IsPhase(WaitForPhase("r1", ReplicaPhase::kReady), ReplicaPhase::kReady));
  absl::StatusOr<ReplicaStatus> late = provider().Provision(Spec("r1"));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_EQ(late->phase, ReplicaPhase::kReady);
  EXPECT_EQ(late->endpoint, first->endpoint);
  absl::StatusOr<std::vector<ReplicaStatus>> list = provider().List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
  EXPECT_EQ(FreeSlots(), free_after_one);
}

TEST_P(ProviderConformanceTest, TerminateIsIdempotent) {
  EXPECT_TRUE(provider().Terminate("never-provisioned").ok());
  ASSERT_TRUE(provider().Provision(Spec("r1")).ok());
  EXPECT_TRUE(provider().Terminate("r1").ok());
  EXPECT_TRUE(provider().Terminate("r1").ok());
  EXPECT_TRUE(WaitGone("r1"));
  EXPECT_TRUE(provider().Terminate("r1").ok());
}

TEST_P(ProviderConformanceTest, TerminateRemovesReplicaAndFreesSlots) {
  ASSERT_TRUE(provider().Provision(Spec("r1")).ok());
  ASSERT_TRUE(IsPhase(WaitForPhase("r1", ReplicaPhase::kReady), ReplicaPhase::kReady));
  EXPECT_EQ(FreeSlots(), subject_.slots - 1);
  ASSERT_TRUE(provider().Terminate("r1").ok());
  // Until it is gone it may be listed, but only as draining.
  std::optional<ReplicaStatus> s = Find("r1");
  if (s) {
    EXPECT_EQ(s->phase, ReplicaPhase::kDraining) << Describe(s);
  }
  ASSERT_TRUE(WaitGone("r1"));
  EXPECT_EQ(FreeSlots(), subject_.slots);
  // The id can be used again for a new replica.
  absl::StatusOr<ReplicaStatus> again = provider().Provision(Spec("r1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(IsPhase(WaitForPhase("r1", ReplicaPhase::kReady), ReplicaPhase::kReady));
}

TEST_P(ProviderConformanceTest, CapacityIsAccounted) {
  for (int i = 0; i < subject_.slots; ++i) {
    absl::StatusOr<ReplicaStatus> s = provider().Provision(Spec(absl::StrCat("r", i)));
    ASSERT_TRUE(s.ok()) << i << ": " << s.status();
    EXPECT_EQ(FreeSlots(), subject_.slots - i - 1);
  }
  absl::StatusOr<ReplicaStatus> over = provider().Provision(Spec("one-too-many"));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted) << over.status();
  EXPECT_FALSE(Find("one-too-many").has_value());

  // A replica needing more slots than are free is refused too, even with slots free.
  ASSERT_TRUE(provider().Terminate("r0").ok());
  ASSERT_TRUE(WaitGone("r0"));
  EXPECT_EQ(FreeSlots(), 1);
  ReplicaSpec big = Spec("big");
  big.accelerator_count = 2;
  absl::StatusOr<ReplicaStatus> too_big = provider().Provision(big);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted) << too_big.status();

  absl::StatusOr<ReplicaStatus> fits = provider().Provision(Spec("after-free"));
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(FreeSlots(), 0);
}

TEST_P(ProviderConformanceTest, UnknownAcceleratorIsResourceExhausted) {
  ReplicaSpec s = Spec("r1");
  s.accelerator = "no-such-accelerator";
  absl::StatusOr<ReplicaStatus> r = provider().Provision(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_EQ(FreeSlots(), subject_.slots);
}

TEST_P(ProviderConformanceTest, MalformedSpecIsInvalidArgument) {
  absl::StatusOr<ReplicaStatus> r = provider().Provision(Spec(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  ReplicaSpec zero = Spec("r1");
  zero.accelerator_count = 0;
  r = provider().Provision(zero);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_EQ(FreeSlots(), subject_.slots);
}

TEST_P(ProviderConformanceTest, DeadReplicaIsReportedFailed) {
  ASSERT_TRUE(provider().Provision(Spec("victim")).ok());
  ASSERT_TRUE(provider().Provision(Spec("bystander")).ok());
  ASSERT_TRUE(IsPhase(WaitForPhase("victim", ReplicaPhase::kReady), ReplicaPhase::kReady));
  ASSERT_TRUE(IsPhase(WaitForPhase("bystander", ReplicaPhase::kReady), ReplicaPhase::kReady));
  ASSERT_TRUE(subject_.kill("victim").ok());
  std::optional<ReplicaStatus> failed = WaitForPhase("victim", ReplicaPhase::kFailed);
  ASSERT_TRUE(IsPhase(failed, ReplicaPhase::kFailed)) << Describe(failed);
  EXPECT_FALSE(failed->failure_reason.empty());
  EXPECT_TRUE(IsPhase(Find("bystander"), ReplicaPhase::kReady));
  // A failed replica keeps its slot (and its reason) until it is terminated.
  EXPECT_EQ(FreeSlots(), subject_.slots - 2);
  absl::StatusOr<ReplicaStatus> retried = provider().Provision(Spec("victim"));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->phase, ReplicaPhase::kFailed);
  ASSERT_TRUE(provider().Terminate("victim").ok());
  EXPECT_TRUE(WaitGone("victim"));
  EXPECT_EQ(FreeSlots(), subject_.slots - 1);
}

TEST_P(ProviderConformanceTest, ConcurrentProvisionsNeverOverbook) {
  const int n = subject_.slots + 3;
  std::vector<absl::StatusOr<ReplicaStatus>> results(n, absl::UnknownError("not run"));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = provider().Provision(Spec(absl::StrCat("c", i)));
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  int ok = 0;
  for (const auto& r : results) {
    if (r.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
    }
  }
  EXPECT_EQ(ok, subject_.slots);
  EXPECT_EQ(FreeSlots(), 0);
  absl::StatusOr<std::vector<ReplicaStatus>> list = provider().List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(static_cast<int>(list->size()), subject_.slots);
}

TEST_P(ProviderConformanceTest, ConcurrentRetriesOfOneIdMakeOneReplica) {
  constexpr int kThreads = 6;
  std::vector<absl::StatusOr<ReplicaStatus>> results(kThreads, absl::UnknownError("not run"));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      results[i] = provider().Provision(Spec("same"));
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->endpoint, results[0]->endpoint);
    EXPECT_EQ(r->started_ms, results[0]->started_ms);
  }
  EXPECT_EQ(FreeSlots(), subject_.slots - 1);
  absl::StatusOr<std::vector<ReplicaStatus>> list = provider().List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
  EXPECT_TRUE(IsPhase(WaitForPhase("same", ReplicaPhase::kReady), ReplicaPhase::kReady));
}

}  // namespace weft::control
