// SPDX-License-Identifier: Apache-2.0
#include "control/store/control_store.h"

namespace weft::control {

std::string_view RecordKindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kDeployment:
      return "deployment";
    case RecordKind::kReplica:
      return "replica";
    case RecordKind::kProvider:
      return "provider";
  }
  return "unknown";
}

const std::string& RecordName(const Record& r) {
  struct Visitor {
    const std::string& operator()(const DeploymentRecord& d) const { return d.name; }
    const std::string& operator()(const ReplicaRecord& x) const { return x.id; }
    const std::string& operator()(const ProviderRecord& p) const { return p.name; }
  };
  return std::visit(Visitor{}, r);
}

int64_t RecordVersion(const Record& r) {
  return std::visit([](const auto& x) { return x.version; }, r);
}

bool IsConflict(const absl::Status& s) {
  return s.code() == absl::StatusCode::kAborted || s.code() == absl::StatusCode::kAlreadyExists;
}

absl::StatusOr<int64_t> ControlStore::AppendEvent(EventRecord event) {
  absl::StatusOr<int64_t> id = absl::UnknownError("not run");
  absl::Status s = Transaction([&](ControlTxn& txn) {
    id = txn.AppendEvent(std::move(event));
    return id.status();
  });
  if (!s.ok()) return s;
  return id;
}

}  // namespace weft::control
