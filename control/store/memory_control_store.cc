// SPDX-License-Identifier: Apache-2.0
#include "control/store/memory_control_store.h"

#include <algorithm>
#include <deque>
#include <map>
#include <utility>

#include "control/store/row_store.h"

namespace weft::control {

using internal::Row;

struct MemoryControlStore::State {
  std::mutex mu;  // held for a whole transaction
  std::map<std::pair<int, std::string>, Row> rows;
  int64_t revision = 0;
  std::deque<EventRecord> events;  // ascending ids
  int64_t next_event_id = 1;
  internal::RevisionWaiter waiter;
};

namespace {

using Key = std::pair<int, std::string>;

// Applies writes in place and keeps an undo log for rollback.
class MemoryRowTxn : public internal::RowTxn {
 public:
  explicit MemoryRowTxn(MemoryControlStore::State* s)
      : s_(s), old_revision_(s->revision), old_next_event_id_(s->next_event_id) {}

  absl::StatusOr<std::optional<Row>> GetRow(RecordKind kind, const std::string& name) override {
    auto it = s_->rows.find(Key(static_cast<int>(kind), name));
    if (it == s_->rows.end()) return std::optional<Row>();
    return std::optional<Row>(it->second);
  }
  absl::StatusOr<std::vector<Row>> ListRows(RecordKind kind, const std::string& parent) override {
    std::vector<Row> out;
    const int k = static_cast<int>(kind);
    for (auto it = s_->rows.lower_bound(Key(k, "")); it != s_->rows.end() && it->first.first == k;
         ++it) {
      if (parent.empty() || it->second.parent == parent) out.push_back(it->second);
    }
    return out;
  }
  absl::StatusOr<int64_t> NextRevision() override { return ++s_->revision; }
  absl::Status WriteRow(const Row& row) override {
    const Key key(static_cast<int>(row.kind), row.name);
    Remember(key);
    s_->rows[key] = row;
    return absl::OkStatus();
  }
  absl::Status DeleteRow(RecordKind kind, const std::string& name) override {
    const Key key(static_cast<int>(kind), name);
    Remember(key);
    s_->rows.erase(key);
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> InsertEvent(const EventRecord& event) override {
    EventRecord e = event;
    e.id = s_->next_event_id++;
    s_->events.push_back(std::move(e));
    return s_->events.back().id;
  }
  absl::Status TrimEventsThrough(int64_t id) override {
    while (!s_->events.empty() && s_->events.front().id <= id) s_->events.pop_front();
    return absl::OkStatus();
  }

  void Rollback() {
    for (auto& [key, row] : undo_) {
      if (row) {
        s_->rows[key] = std::move(*row);
      } else {
        s_->rows.erase(key);
      }
    }
    s_->revision = old_revision_;
    while (!s_->events.empty() && s_->events.back().id >= old_next_event_id_) {
      s_->events.pop_back();
    }
    s_->next_event_id = old_next_event_id_;
  }

 private:
  void Remember(const Key& key) {
    if (undo_.count(key)) return;
    auto it = s_->rows.find(key);
    undo_[key] = it == s_->rows.end() ? std::nullopt : std::optional<Row>(it->second);
  }

  MemoryControlStore::State* s_;
  const int64_t old_revision_;
  const int64_t old_next_event_id_;
  std::map<Key, std::optional<Row>> undo_;  // each touched row as it was before this txn
};

}  // namespace

MemoryControlStore::MemoryControlStore(ControlStoreOptions options)
    : MemoryControlStore(std::make_shared<State>(), std::move(options)) {}

MemoryControlStore::MemoryControlStore(std::shared_ptr<State> state, ControlStoreOptions options)
    : state_(std::move(state)), options_(std::move(options)) {}

MemoryControlStore::~MemoryControlStore() = default;

std::unique_ptr<MemoryControlStore> MemoryControlStore::NewHandle(
    ControlStoreOptions options) const {
  return std::unique_ptr<MemoryControlStore>(new MemoryControlStore(state_, std::move(options)));
}

absl::Status MemoryControlStore::Transaction(const TxnFn& fn) {
  int64_t committed = 0;
  {
    std::lock_guard lock(state_->mu);
    MemoryRowTxn rows(state_.get());
    internal::RowControlTxn txn(&rows, &options_);
    absl::Status s = fn(txn);
    if (!s.ok()) {
      rows.Rollback();
      return s;
    }
    committed = txn.revision();
  }
  if (committed > 0) state_->waiter.Notify(committed);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MemoryControlStore::Revision() {
  std::lock_guard lock(state_->mu);
  return state_->revision;
}

absl::StatusOr<int64_t> MemoryControlStore::WaitForRevision(int64_t after, int64_t timeout_ms) {
  // All handles share one waiter, so there is nothing to poll for; the interval only bounds waits.
  return state_->waiter.Wait(after, timeout_ms, 1000, [this] { return Revision(); });
}

absl::StatusOr<std::vector<EventRecord>> MemoryControlStore::ListEvents(const EventQuery& query) {
  std::lock_guard lock(state_->mu);
  std::vector<EventRecord> out;
  for (auto it = state_->events.rbegin();
       it != state_->events.rend() && static_cast<int>(out.size()) < query.limit; ++it) {
    if (it->id <= query.after_id) break;
    if (query.object.empty() || it->object == query.object) out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace weft::control
