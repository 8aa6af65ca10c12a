// SPDX-License-Identifier: Apache-2.0
// MemoryControlStore: the in-memory fake ControlStore for tests and the simulator. It follows the
// same rules as the SQL stores (it shares their row logic). NewHandle() opens a second handle on
// the same data, as a second process would open the same database. Thread-safe; one mutex held for
// each whole transaction.
#pragma once

#include <memory>

#include "control/store/control_store.h"

namespace weft::control {

class MemoryControlStore : public ControlStore {
 public:
  explicit MemoryControlStore(ControlStoreOptions options = {});
  ~MemoryControlStore() override;

  // Another store object over the same data, with this one's options or with `options`.
  std::unique_ptr<MemoryControlStore> NewHandle() const { return NewHandle(options_); }
  std::unique_ptr<MemoryControlStore> NewHandle(ControlStoreOptions options) const;

  absl::Status Transaction(const TxnFn& fn) override;
  absl::StatusOr<int64_t> Revision() override;
  absl::StatusOr<int64_t> WaitForRevision(int64_t after, int64_t timeout_ms) override;
  absl::StatusOr<std::vector<EventRecord>> ListEvents(const EventQuery& query) override;

  struct State;

 private:
  MemoryControlStore(std::shared_ptr<State> state, ControlStoreOptions options);

  std::shared_ptr<State> state_;
  ControlStoreOptions options_;
};

}  // namespace weft::control
