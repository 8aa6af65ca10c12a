// SPDX-License-Identifier: Apache-2.0
// Test-only: the ControlStore conformance suite, one set of TEST_Ps run against every backend.
// To run it on a store, instantiate it with a backend:
//   INSTANTIATE_TEST_SUITE_P(Mine, ControlStoreConformanceTest,
//                            ::testing::Values(MyBackend()), ControlStoreBackendName);
// and link `weft_control_store_conformance` (an object library, so the tests are kept).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "control/store/control_store.h"
#include "gtest/gtest.h"

namespace weft::control::testing {

// One instance of a backend: every Open() is a new handle on the same data (as another process
// would open the same database).
class ControlStoreHarness {
 public:
  virtual ~ControlStoreHarness() = default;
  virtual absl::StatusOr<std::unique_ptr<ControlStore>> Open(ControlStoreOptions options) = 0;
};

struct ControlStoreBackend {
  std::string name;
  // A fresh, empty instance. Unimplemented(reason): the backend cannot run here; the tests skip.
  std::function<absl::StatusOr<std::unique_ptr<ControlStoreHarness>>()> make;
};

void PrintTo(const ControlStoreBackend& backend, std::ostream* os);  // its name, in gtest output
std::string ControlStoreBackendName(const ::testing::TestParamInfo<ControlStoreBackend>& info);

// The built-in backends. PostgresBackend() starts one throwaway server per test binary
// (initdb + pg_ctl on a unix socket) and skips with the reason when it cannot.
ControlStoreBackend MemoryBackend();
ControlStoreBackend SqliteBackend();
ControlStoreBackend PostgresBackend();

class ControlStoreConformanceTest : public ::testing::TestWithParam<ControlStoreBackend> {
 protected:
  void SetUp() override;
  // A new handle on the test's data, on the fixture's clock.
  std::unique_ptr<ControlStore> OpenHandle();

  std::atomic<int64_t> now_ms_{1'700'000'000'000};
  std::unique_ptr<ControlStoreHarness> harness_;
  std::unique_ptr<ControlStore> store_;
};

}  // namespace weft::control::testing
