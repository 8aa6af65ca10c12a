// SPDX-License-Identifier: Apache-2.0
// ControlStore: the control plane's durable state (deployments, replicas, providers, events) with
// optimistic concurrency and one global revision that watchers wait on. Implementations:
// MemoryControlStore (the fake), SqliteControlStore (default), PostgresControlStore (fleets).
// Every method is thread-safe; a store is owned by its opener and outlives its transactions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/types.h"

namespace weft::control {

// Versions. Each record carries `version`: the store revision of its last write (so versions rise
// across the whole store). On Put, the caller's `version` says what it expects to replace:
//   kCreate (0)    the record must not exist            (else AlreadyExists)
//   kAnyVersion    unconditional create-or-replace      (an upsert)
//   v > 0          the stored version must be exactly v (else Aborted; NotFound if gone)
inline constexpr int64_t kCreate = 0;
inline constexpr int64_t kAnyVersion = -1;

// A declared deployment. `spec` is opaque text (YAML or JSON) parsed by control/deployments.
struct DeploymentRecord {
  std::string name;
  std::string spec;
  int64_t generation = 0;  // set by the store: 1 on create, +1 on each change of `spec`
  bool deleted = false;    // `weft delete` marks it; the reconciler drains, then Deletes it
  std::string status;      // human-readable summary written by the reconciler
  int64_t created_ms = 0;  // set by the store (unix ms)
  int64_t updated_ms = 0;  // set by the store on every write (unix ms)
  int64_t version = 0;
};

// One replica of a deployment on one provider.
struct ReplicaRecord {
  ReplicaId id;
  std::string deployment;
  std::string provider;
  ReplicaPhase phase = ReplicaPhase::kPending;
  std::string endpoint;         // base URL, e.g. "http://10.0.0.7:8080"; "" until known
  int64_t spec_generation = 0;  // the deployment generation this replica runs
  std::string failure_reason;   // why it is kFailed; "" otherwise
  int64_t created_ms = 0;       // set by the store
  int64_t updated_ms = 0;       // set by the store
  int64_t version = 0;
};

// A configured provider and its measured reliability (placement reads successes/failures).
struct ProviderRecord {
  std::string name;
  std::string kind;    // "local", "hosts", "kubernetes", "fake"
  std::string config;  // opaque JSON for the provider's factory
  bool degraded = false;
  int64_t successes = 0;  // provisions that became ready
  int64_t failures = 0;   // provisions that failed, replicas that died
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  int64_t version = 0;
};

// One line of the append-only event log that `weft describe` shows.
struct EventRecord {
  int64_t id = 0;       // set by the store: increasing in append order
  int64_t time_ms = 0;  // unix ms; 0 = the store's clock at append
  std::string object;   // e.g. "deployment/chat", "replica/chat-3f2a", "provider/aws"
  std::string message;
};

struct EventQuery {
  std::string object;    // "" = every object; else exact match
  int64_t after_id = 0;  // only events with id > after_id
  int limit = 1000;      // the newest `limit` matching events (returned oldest first)
};

// Selects records for List. `deployment` filters replicas by their deployment ("" = all); it is
// ignored for the other kinds. Results are ordered by name (bytewise).
struct ListOptions {
  std::string deployment;
};

using Record = std::variant<DeploymentRecord, ReplicaRecord, ProviderRecord>;
enum class RecordKind { kDeployment = 0, kReplica = 1, kProvider = 2 };

template <typename R>
constexpr RecordKind KindOf() {
  if constexpr (std::is_same_v<R, DeploymentRecord>) {
    return RecordKind::kDeployment;
  } else if constexpr (std::is_same_v<R, ReplicaRecord>) {
    return RecordKind::kReplica;
  } else {
    static_assert(std::is_same_v<R, ProviderRecord>, "not a control store record type");
    return RecordKind::kProvider;
  }
}
std::string_view RecordKindName(RecordKind kind);  // "deployment", "replica", "provider"
const std::string& RecordName(const Record& r);    // its key: name or id
int64_t RecordVersion(const Record& r);

// True for the statuses that mean "someone else wrote first; re-read and retry" (Aborted,
// AlreadyExists).
bool IsConflict(const absl::Status& s);

// Reads and writes inside one transaction: they see the transaction's own writes, and commit
// together or not at all. Used only on the thread running ControlStore::Transaction's callback.
class ControlTxn {
 public:
  virtual ~ControlTxn() = default;

  // The record named `name`, or nullopt when there is none.
  virtual absl::StatusOr<std::optional<Record>> Get(RecordKind kind, const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<Record>> List(RecordKind kind, const ListOptions& opts) = 0;
  // Writes a record under the version rule above; returns it as stored (version, generation,
  // timestamps filled in). InvalidArgument for an empty name.
  virtual absl::StatusOr<Record> Put(Record record) = 0;
  // Deletes under the same version rule (kAnyVersion: whatever is there). NotFound when absent.
  virtual absl::Status Delete(RecordKind kind, const std::string& name, int64_t version) = 0;
  // Appends to the event log (does not change the revision); returns the event's id.
  virtual absl::StatusOr<int64_t> AppendEvent(EventRecord event) = 0;

  // Typed conveniences.
  template <typename R>
  absl::StatusOr<std::optional<R>> Get(const std::string& name) {
    auto r = Get(KindOf<R>(), name);
    if (!r.ok()) return r.status();
    if (!r->has_value()) return std::optional<R>();
    return std::optional<R>(std::get<R>(std::move(**r)));
  }
  template <typename R>
  absl::StatusOr<std::vector<R>> List(const ListOptions& opts = {}) {
    auto rs = List(KindOf<R>(), opts);
    if (!rs.ok()) return rs.status();
    std::vector<R> out;
    out.reserve(rs->size());
    for (Record& r : *rs) out.push_back(std::get<R>(std::move(r)));
    return out;
  }
  template <typename R>
  absl::StatusOr<R> Put(R record) {
    auto r = Put(Record(std::move(record)));
    if (!r.ok()) return r.status();
    return std::get<R>(std::move(*r));
  }
};

class ControlStore {
 public:
  using TxnFn = std::function<absl::Status(ControlTxn&)>;
  virtual ~ControlStore() = default;

  // Runs `fn` once inside one atomic transaction: committed when it returns OK, rolled back
  // otherwise (its error is returned). A transaction with writes raises Revision() by exactly one
  // and every record it writes gets that revision as its version. `fn` must use only `txn`; calling
  // this store from inside `fn` deadlocks. Blocks while other writers (threads or processes)
  // hold the store.
  virtual absl::Status Transaction(const TxnFn& fn) = 0;
  // The current revision (0 for an empty store); it never goes down.
  virtual absl::StatusOr<int64_t> Revision() = 0;
  // Blocks until Revision() > `after` or `timeout_ms` passes; returns the revision then (so a
  // result <= after means a timeout). Sees writes from other processes within a poll interval.
  virtual absl::StatusOr<int64_t> WaitForRevision(int64_t after, int64_t timeout_ms) = 0;
  // Events matching `query`, oldest first.
  virtual absl::StatusOr<std::vector<EventRecord>> ListEvents(const EventQuery& query) = 0;

  // One-operation transactions.
  template <typename R>
  absl::StatusOr<std::optional<R>> Get(const std::string& name) {
    absl::StatusOr<std::optional<R>> out;
    absl::Status s = Transaction([&](ControlTxn& txn) {
      out = txn.Get<R>(name);
      return out.status();
    });
    if (!s.ok()) return s;
    return out;
  }
  template <typename R>
  absl::StatusOr<std::vector<R>> List(const ListOptions& opts = {}) {
    absl::StatusOr<std::vector<R>> out;
    absl::Status s = Transaction([&](ControlTxn& txn) {
      out = txn.List<R>(opts);
      return out.status();
    });
    if (!s.ok()) return s;
    return out;
  }
  template <typename R>
  absl::StatusOr<R> Put(R record) {
    absl::StatusOr<R> out = absl::UnknownError("not run");
    absl::Status s = Transaction([&](ControlTxn& txn) {
      out = txn.Put<R>(std::move(record));
      return out.status();
    });
    if (!s.ok()) return s;
    return out;
  }
  template <typename R>
  absl::Status Delete(const std::string& name, int64_t version = kAnyVersion) {
    return Transaction([&](ControlTxn& txn) { return txn.Delete(KindOf<R>(), name, version); });
  }
  absl::StatusOr<int64_t> AppendEvent(EventRecord event);
};

// Options shared by every store.
struct ControlStoreOptions {
  std::function<int64_t()> now_ms{};  // the clock for timestamps; empty = system clock (unix ms)
  int64_t poll_interval_ms = 100;     // WaitForRevision's poll for other processes' writes
  int64_t max_events = 10000;         // the event log keeps about the newest this many
};

}  // namespace weft::control
