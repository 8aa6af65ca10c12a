// SPDX-License-Identifier: Apache-2.0
#include "control/store/row_store.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "nlohmann/json.hpp"

namespace weft::control::internal {
namespace {

using json = nlohmann::json;

std::optional<ReplicaPhase> ParsePhase(std::string_view s) {
  for (ReplicaPhase p : {ReplicaPhase::kPending, ReplicaPhase::kStarting, ReplicaPhase::kReady,
                         ReplicaPhase::kDraining, ReplicaPhase::kGone, ReplicaPhase::kFailed}) {
    if (ReplicaPhaseName(p) == s) return p;
  }
  return std::nullopt;
}

std::string Describe(RecordKind kind, const std::string& name) {
  return absl::StrCat(std::string(RecordKindName(kind)), " \"", name, "\"");
}

// Sets the store-owned fields of `r` (timestamps, generation, version) for a write at `revision`
// over `old` (nullopt on create).
void Stamp(Record& r, const std::optional<Record>& old, int64_t now_ms, int64_t revision) {
  std::visit(
      [&](auto& rec) {
        using R = std::decay_t<decltype(rec)>;
        const R* prev = old ? std::get_if<R>(&*old) : nullptr;
        rec.created_ms = prev ? prev->created_ms : now_ms;
        rec.updated_ms = now_ms;
        rec.version = revision;
        if constexpr (std::is_same_v<R, DeploymentRecord>) {
          rec.generation =
              prev == nullptr ? 1 : prev->generation + (prev->spec != rec.spec ? 1 : 0);
        }
      },
      r);
}

}  // namespace

int64_t NowMs(const ControlStoreOptions& options) {
  if (options.now_ms) return options.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Row EncodeRecord(const Record& record) {
  Row row;
  row.kind = static_cast<RecordKind>(record.index());
  row.name = RecordName(record);
  row.version = RecordVersion(record);
  json j;
  if (const auto* d = std::get_if<DeploymentRecord>(&record)) {
    j = {{"spec", d->spec},     {"generation", d->generation}, {"deleted", d->deleted},
         {"status", d->status}, {"created_ms", d->created_ms}, {"updated_ms", d->updated_ms}};
  } else if (const auto* r = std::get_if<ReplicaRecord>(&record)) {
    row.parent = r->deployment;
    j = {{"deployment", r->deployment},
         {"provider", r->provider},
         {"phase", std::string(ReplicaPhaseName(r->phase))},
         {"endpoint", r->endpoint},
         {"spec_generation", r->spec_generation},
         {"failure_reason", r->failure_reason},
         {"created_ms", r->created_ms},
         {"updated_ms", r->updated_ms}};
  } else if (const auto* p = std::get_if<ProviderRecord>(&record)) {
    j = {{"kind", p->kind},
         {"config", p->config},
         {"degraded", p->degraded},
         {"successes", p->successes},
         {"failures", p->failures},
         {"created_ms", p->created_ms},
         {"updated_ms", p->updated_ms}};
  }
  // Invalid UTF-8 in a caller's text is replaced rather than thrown on.
  row.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return row;
}

absl::StatusOr<Record> DecodeRow(const Row& row) {
  try {
    const json j = json::parse(row.body);
    switch (row.kind) {
      case RecordKind::kDeployment: {
        DeploymentRecord d;
        d.name = row.name;
        d.spec = j.at("spec").get<std::string>();
        d.generation = j.at("generation").get<int64_t>();
        d.deleted = j.at("deleted").get<bool>();
        d.status = j.at("status").get<std::string>();
        d.created_ms = j.at("created_ms").get<int64_t>();
        d.updated_ms = j.at("updated_ms").get<int64_t>();
        d.version = row.version;
        return d;
      }
      case RecordKind::kReplica: {
        ReplicaRecord r;
        r.id = row.name;
        r.deployment = j.at("deployment").get<std::string>();
        r.provider = j.at("provider").get<std::string>();
        const std::string phase = j.at("phase").get<std::string>();
        const auto p = ParsePhase(phase);
        if (!p) return absl::DataLossError(absl::StrCat("replica ", row.name, ": phase ", phase));
        r.phase = *p;
        r.endpoint = j.at("endpoint").get<std::string>();
        r.spec_generation = j.at("spec_generation").get<int64_t>();
        r.failure_reason = j.at("failure_reason").get<std::string>();
        r.created_ms = j.at("created_ms").get<int64_t>();
        r.updated_ms = j.at("updated_ms").get<int64_t>();
        r.version = row.version;
        return r;
      }
      case RecordKind::kProvider: {
        ProviderRecord p;
        p.name = row.name;
        p.kind = j.at("kind").get<std::string>();
        p.config = j.at("config").get<std::string>();
        p.degraded = j.at("degraded").get<bool>();
        p.successes = j.at("successes").get<int64_t>();
        p.failures = j.at("failures").get<int64_t>();
        p.created_ms = j.at("created_ms").get<int64_t>();
        p.updated_ms = j.at("updated_ms").get<int64_t>();
        p.version = row.version;
        return p;
      }
    }
  } catch (const json::exception& e) {
    return absl::DataLossError(
        absl::StrCat("control store: bad ", Describe(row.kind, row.name), ": ", e.what()));
  }
  return absl::DataLossError(absl::StrCat("control store: bad kind for ", row.name));
}

absl::StatusOr<std::optional<Record>> RowControlTxn::Get(RecordKind kind, const std::string& name) {
  WEFT_ASSIGN_OR_RETURN(std::optional<Row> row, rows_->GetRow(kind, name));
  if (!row) return std::optional<Record>();
  WEFT_ASSIGN_OR_RETURN(Record r, DecodeRow(*row));
  return std::optional<Record>(std::move(r));
}

absl::StatusOr<std::vector<Record>> RowControlTxn::List(RecordKind kind, const ListOptions& opts) {
  WEFT_ASSIGN_OR_RETURN(
      std::vector<Row> rows,
      rows_->ListRows(kind, kind == RecordKind::kReplica ? opts.deployment : std::string()));
  std::vector<Record> out;
  out.reserve(rows.size());
  for (const Row& row : rows) {
    WEFT_ASSIGN_OR_RETURN(Record r, DecodeRow(row));
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status RowControlTxn::EnsureRevision() {
  if (revision_ != 0) return absl::OkStatus();
  WEFT_ASSIGN_OR_RETURN(revision_, rows_->NextRevision());
  return absl::OkStatus();
}

absl::Status RowControlTxn::CheckVersion(RecordKind kind, const std::string& name,
                                         const std::optional<Row>& existing, int64_t want) const {
  if (want == kAnyVersion) return absl::OkStatus();
  if (want < kAnyVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(kind, name), ": bad expected version ", want));
  }
  if (want == kCreate) {
    if (existing) {
      return absl::AlreadyExistsError(absl::StrCat(Describe(kind, name), " already exists"));
    }
    return absl::OkStatus();
  }
  if (!existing) {
    return absl::NotFoundError(
        absl::StrCat(Describe(kind, name), " not found (expected version ", want, ")"));
  }
  if (existing->version != want) {
    return absl::AbortedError(absl::StrCat(Describe(kind, name), ": version ", want,
                                           " is stale (now ", existing->version, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Record> RowControlTxn::Put(Record record) {
  const RecordKind kind = static_cast<RecordKind>(record.index());
  const std::string name = RecordName(record);
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(RecordKindName(kind)), ": empty name"));
  }
  if (const auto* r = std::get_if<ReplicaRecord>(&record); r && r->deployment.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("replica \"", name, "\": empty deployment"));
  }
  // Take the revision first: on PostgreSQL it serialises writers, so the version check below reads
  // the latest committed row.
  WEFT_RETURN_IF_ERROR(EnsureRevision());
  WEFT_ASSIGN_OR_RETURN(std::optional<Row> existing, rows_->GetRow(kind, name));
  WEFT_RETURN_IF_ERROR(CheckVersion(kind, name, existing, RecordVersion(record)));
  std::optional<Record> old;
  if (existing) {
    WEFT_ASSIGN_OR_RETURN(old, DecodeRow(*existing));
  }
  Stamp(record, old, NowMs(*opts_), revision_);
  WEFT_RETURN_IF_ERROR(rows_->WriteRow(EncodeRecord(record)));
  return record;
}

absl::Status RowControlTxn::Delete(RecordKind kind, const std::string& name, int64_t version) {
  if (version == kCreate) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(kind, name), ": delete needs a version or kAnyVersion"));
  }
  WEFT_RETURN_IF_ERROR(EnsureRevision());
  WEFT_ASSIGN_OR_RETURN(std::optional<Row> existing, rows_->GetRow(kind, name));
  if (!existing) return absl::NotFoundError(absl::StrCat(Describe(kind, name), " not found"));
  WEFT_RETURN_IF_ERROR(CheckVersion(kind, name, existing, version));
  return rows_->DeleteRow(kind, name);
}

absl::StatusOr<int64_t> RowControlTxn::AppendEvent(EventRecord event) {
  if (event.time_ms == 0) event.time_ms = NowMs(*opts_);
  WEFT_ASSIGN_OR_RETURN(int64_t id, rows_->InsertEvent(event));
  // Trim now and then rather than on every append: one indexed range delete per 64 events.
  if (opts_->max_events > 0 && id % 64 == 0 && id > opts_->max_events) {
    WEFT_RETURN_IF_ERROR(rows_->TrimEventsThrough(id - opts_->max_events));
  }
  return id;
}

void RevisionWaiter::Notify(int64_t revision) {
  {
    std::lock_guard lock(mu_);
    notified_ = std::max(notified_, revision);
  }
  cv_.notify_all();
}

absl::StatusOr<int64_t> RevisionWaiter::Wait(int64_t after, int64_t timeout_ms,
                                             int64_t poll_interval_ms,
                                             const std::function<absl::StatusOr<int64_t>()>& read) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0));
  const auto poll = std::chrono::milliseconds(std::max<int64_t>(poll_interval_ms, 1));
  while (true) {
    WEFT_ASSIGN_OR_RETURN(int64_t rev, read());
    if (rev > after) return rev;
    const auto now = Clock::now();
    if (now >= deadline) return rev;
    std::unique_lock lock(mu_);
    // Woken by a local commit past `after`, else re-read at the poll interval or the deadline.
    cv_.wait_until(lock, std::min(deadline, now + poll), [&] { return notified_ > after; });
  }
}

}  // namespace weft::control::internal
