// SPDX-License-Identifier: Apache-2.0
// Internal to control/store: what the three stores share. Each backend provides RowTxn (rows of
// (kind, name, parent, version, JSON body) plus a revision counter and an event table inside one
// open transaction); RowControlTxn turns that into ControlTxn (codec, the version rule,
// generations, timestamps) so every backend follows exactly the same rules. RevisionWaiter is
// WaitForRevision: in-process wakeups plus polling for other processes' writes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/store/control_store.h"

namespace weft::control::internal {

struct Row {
  RecordKind kind = RecordKind::kDeployment;
  std::string name;
  std::string parent;  // the deployment, for replicas; "" otherwise
  int64_t version = 0;
  std::string body;  // JSON of the record's fields (version excluded)
};

// One open backend transaction. Used from one thread.
class RowTxn {
 public:
  virtual ~RowTxn() = default;
  virtual absl::StatusOr<std::optional<Row>> GetRow(RecordKind kind, const std::string& name) = 0;
  // Rows of `kind` ordered by name (bytewise); `parent` "" = all.
  virtual absl::StatusOr<std::vector<Row>> ListRows(RecordKind kind, const std::string& parent) = 0;
  // Raises the stored revision by one and returns it; called once, before the first write. On
  // PostgreSQL this also serialises writers (row lock), so reads after it see the latest commits.
  virtual absl::StatusOr<int64_t> NextRevision() = 0;
  virtual absl::Status WriteRow(const Row& row) = 0;  // insert or replace
  virtual absl::Status DeleteRow(RecordKind kind, const std::string& name) = 0;
  // Inserts the event and returns its id (ids increase in insertion order).
  virtual absl::StatusOr<int64_t> InsertEvent(const EventRecord& event) = 0;
  // Deletes events with id <= `id`.
  virtual absl::Status TrimEventsThrough(int64_t id) = 0;
};

class RowControlTxn : public ControlTxn {
 public:
  RowControlTxn(RowTxn* rows, const ControlStoreOptions* options) : rows_(rows), opts_(options) {}

  using ControlTxn::Get;
  using ControlTxn::List;
  using ControlTxn::Put;
  absl::StatusOr<std::optional<Record>> Get(RecordKind kind, const std::string& name) override;
  absl::StatusOr<std::vector<Record>> List(RecordKind kind, const ListOptions& opts) override;
  absl::StatusOr<Record> Put(Record record) override;
  absl::Status Delete(RecordKind kind, const std::string& name, int64_t version) override;
  absl::StatusOr<int64_t> AppendEvent(EventRecord event) override;

  // The revision this transaction writes at; 0 when it wrote nothing.
  int64_t revision() const { return revision_; }

 private:
  absl::Status EnsureRevision();
  absl::Status CheckVersion(RecordKind kind, const std::string& name,
                            const std::optional<Row>& existing, int64_t want) const;

  RowTxn* rows_;
  const ControlStoreOptions* opts_;
  int64_t revision_ = 0;
};

// The record <-> row codec.
Row EncodeRecord(const Record& record);
absl::StatusOr<Record> DecodeRow(const Row& row);

int64_t NowMs(const ControlStoreOptions& options);

// WaitForRevision for one store (or several handles sharing one in-process state).
class RevisionWaiter {
 public:
  // Records a committed revision and wakes the waiters.
  void Notify(int64_t revision);
  // Waits until `read()` > after or timeout_ms passes, calling `read` at least every
  // poll_interval_ms (to see other processes' writes) and on each Notify.
  absl::StatusOr<int64_t> Wait(int64_t after, int64_t timeout_ms, int64_t poll_interval_ms,
                               const std::function<absl::StatusOr<int64_t>()>& read);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t notified_ = 0;  // the highest revision committed through this process
};

}  // namespace weft::control::internal
