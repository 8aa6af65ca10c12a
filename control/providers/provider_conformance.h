// SPDX-License-Identifier: Apache-2.0
// The provider conformance suite: the behaviour every Provider must show (provision -> ready, list,
// idempotent provision and terminate, terminate frees slots, capacity accounting, failure
// reporting, concurrent provisions). A provider's test instantiates it with a factory:
//   INSTANTIATE_TEST_SUITE_P(Fake, ProviderConformanceTest,
//       ::testing::Values(ProviderConformanceCase{"fake", &MakeFakeSubject}), ConformanceCaseName);
// Each test builds a fresh subject and destroys it at the end. Test-only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/providers/provider.h"
#include "gtest/gtest.h"

namespace weft::control {

// A provider under test, built fresh for each test.
struct ConformanceSubject {
  std::unique_ptr<Provider> provider;
  ReplicaSpec spec;  // provisions successfully; tests set id and deployment
  int slots = 2;     // free slots of spec.accelerator at the start (>= 2); spec takes one each
  // Makes a provisioned replica die behind the provider's back (SIGKILL its process, fail it).
  std::function<absl::Status(const ReplicaId&)> kill;
  // Called on every poll while a test waits for a phase (advance a fake clock); may be empty.
  std::function<void()> tick;
  double timeout_s = 30;  // the longest a phase change may take, real seconds
  std::function<void()>
      cleanup;  // after the provider is destroyed (remove temp dirs); may be empty
};

struct ProviderConformanceCase {
  std::string name;  // [A-Za-z0-9_] only: it names the test instance
  std::function<absl::StatusOr<ConformanceSubject>()> make;
};

// Prints a case as its name in test output.
void PrintTo(const ProviderConformanceCase& c, std::ostream* os);

// Names the instances after ProviderConformanceCase::name.
std::string ConformanceCaseName(const ::testing::TestParamInfo<ProviderConformanceCase>& info);

class ProviderConformanceTest : public ::testing::TestWithParam<ProviderConformanceCase> {
 protected:
  void SetUp() override;
  void TearDown() override;

  Provider& provider() { return *subject_.provider; }
  // subject_.spec with this id and deployment.
  ReplicaSpec Spec(const std::string& id, const std::string& deployment = "demo") const;
  // The listed status of `id` (nullopt when not listed); fails the test when List() fails.
  std::optional<ReplicaStatus> Find(const ReplicaId& id);
  // Polls List() (calling tick) until the replica's listed status satisfies `done` (nullopt = not
  // listed) or timeout_s passes; returns the last status seen.
  std::optional<ReplicaStatus> WaitFor(
      const ReplicaId& id, const std::function<bool(const std::optional<ReplicaStatus>&)>& done);
  std::optional<ReplicaStatus> WaitForPhase(const ReplicaId& id, ReplicaPhase phase);
  // Waits until `id` is no longer listed; true when it left.
  bool WaitGone(const ReplicaId& id);
  // Free slots of spec.accelerator now (-1 when the kind is missing).
  int FreeSlots();

  ConformanceSubject subject_;
};

}  // namespace weft::control
