// SPDX-License-Identifier: Apache-2.0
#include "control/agent/agent_api.h"

#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::control::agent {
namespace {

using nlohmann::json;

absl::Status TypeError(const std::string& field, const std::string& want) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": want ", want));
}

// Each Get* reads an optional member into `out` (left as is when absent or null).
absl::Status GetString(const json& j, const char* key, const std::string& field, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return TypeError(field, "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

template <typename Int>
absl::Status GetInt(const json& j, const char* key, const std::string& field, Int* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return TypeError(field, "an integer");
  const int64_t v = it->get<int64_t>();
  if (v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
      v > static_cast<int64_t>(std::numeric_limits<Int>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": out of range"));
  }
  *out = static_cast<Int>(v);
  return absl::OkStatus();
}

absl::Status GetDouble(const json& j, const char* key, const std::string& field, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return TypeError(field, "a number");
  *out = it->get<double>();
  return absl::OkStatus();
}

absl::Status GetBool(const json& j, const char* key, const std::string& field, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return TypeError(field, "true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}

absl::Status GetStrings(const json& j, const char* key, const std::string& field,
                        std::vector<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return TypeError(field, "a list of strings");
  out->clear();
  for (const json& e : *it) {
    if (!e.is_string()) return TypeError(field, "a list of strings");
    out->push_back(e.get<std::string>());
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplicaPhase> PhaseFromName(std::string_view name) {
  for (ReplicaPhase p : {ReplicaPhase::kPending, ReplicaPhase::kStarting, ReplicaPhase::kReady,
                         ReplicaPhase::kDraining, ReplicaPhase::kGone, ReplicaPhase::kFailed}) {
    if (ReplicaPhaseName(p) == name) return p;
  }
  return absl::InvalidArgumentError(absl::StrCat("phase: unknown '", std::string(name), "'"));
}

bool Unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

json ToJson(const ReplicaSpec& spec) {
  return json{
      {"id", spec.id},
      {"deployment", spec.deployment},
      {"model_path", spec.model_path},
      {"adapters", spec.adapters},
      {"engine",
       {{"threads", spec.engine.threads}, {"ctx", spec.engine.ctx}, {"extra", spec.engine.extra}}},
      {"accelerator", spec.accelerator},
      {"accelerator_count", spec.accelerator_count}};
}

json ToJson(const ReplicaStatus& s) {
  return json{{"id", s.id},
              {"deployment", s.deployment},
              {"phase", std::string(ReplicaPhaseName(s.phase))},
              {"endpoint", s.endpoint},
              {"failure_reason", s.failure_reason},
              {"started_ms", s.started_ms}};
}

json ToJson(const ProviderCapacity& c) {
  json acc = json::array();
  for (const AcceleratorSlots& a : c.accelerators) {
    acc.push_back(
        {{"kind", a.kind}, {"total", a.total}, {"free", a.free}, {"usd_per_hour", a.usd_per_hour}});
  }
  return json{{"accelerators", std::move(acc)}, {"regions", c.regions}};
}

json ToJson(const ProviderHealth& h) { return json{{"ok", h.ok}, {"reason", h.reason}}; }

absl::StatusOr<ReplicaSpec> ReplicaSpecFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("replica spec: want an object");
  ReplicaSpec s;
  WEFT_RETURN_IF_ERROR(GetString(j, "id", "id", &s.id));
  WEFT_RETURN_IF_ERROR(GetString(j, "deployment", "deployment", &s.deployment));
  WEFT_RETURN_IF_ERROR(GetString(j, "model_path", "model_path", &s.model_path));
  if (auto it = j.find("adapters"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return TypeError("adapters", "an object of name: path");
    for (const auto& [name, path] : it->items()) {
      if (!path.is_string()) return TypeError(absl::StrCat("adapters.", name), "a string");
      s.adapters[name] = path.get<std::string>();
    }
  }
  if (auto it = j.find("engine"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return TypeError("engine", "an object");
    WEFT_RETURN_IF_ERROR(GetInt(*it, "threads", "engine.threads", &s.engine.threads));
    WEFT_RETURN_IF_ERROR(GetInt(*it, "ctx", "engine.ctx", &s.engine.ctx));
    WEFT_RETURN_IF_ERROR(GetStrings(*it, "extra", "engine.extra", &s.engine.extra));
  }
  WEFT_RETURN_IF_ERROR(GetString(j, "accelerator", "accelerator", &s.accelerator));
  WEFT_RETURN_IF_ERROR(GetInt(j, "accelerator_count", "accelerator_count", &s.accelerator_count));
  return s;
}

absl::StatusOr<ReplicaStatus> ReplicaStatusFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("replica status: want an object");
  ReplicaStatus s;
  WEFT_RETURN_IF_ERROR(GetString(j, "id", "id", &s.id));
  WEFT_RETURN_IF_ERROR(GetString(j, "deployment", "deployment", &s.deployment));
  std::string phase = std::string(ReplicaPhaseName(s.phase));
  WEFT_RETURN_IF_ERROR(GetString(j, "phase", "phase", &phase));
  absl::StatusOr<ReplicaPhase> p = PhaseFromName(phase);
  if (!p.ok()) return p.status();
  s.phase = *p;
  WEFT_RETURN_IF_ERROR(GetString(j, "endpoint", "endpoint", &s.endpoint));
  WEFT_RETURN_IF_ERROR(GetString(j, "failure_reason", "failure_reason", &s.failure_reason));
  WEFT_RETURN_IF_ERROR(GetInt(j, "started_ms", "started_ms", &s.started_ms));
  return s;
}

absl::StatusOr<ProviderCapacity> CapacityFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("capacity: want an object");
  ProviderCapacity c;
  if (auto it = j.find("accelerators"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return TypeError("accelerators", "a list");
    for (const json& e : *it) {
      if (!e.is_object()) return TypeError("accelerators[]", "an object");
      AcceleratorSlots a;
      WEFT_RETURN_IF_ERROR(GetString(e, "kind", "accelerators[].kind", &a.kind));
      WEFT_RETURN_IF_ERROR(GetInt(e, "total", "accelerators[].total", &a.total));
      WEFT_RETURN_IF_ERROR(GetInt(e, "free", "accelerators[].free", &a.free));
      WEFT_RETURN_IF_ERROR(
          GetDouble(e, "usd_per_hour", "accelerators[].usd_per_hour", &a.usd_per_hour));
      c.accelerators.push_back(std::move(a));
    }
  }
  WEFT_RETURN_IF_ERROR(GetStrings(j, "regions", "regions", &c.regions));
  return c;
}

absl::StatusOr<ProviderHealth> HealthFromJson(const json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("health: want an object");
  ProviderHealth h;
  WEFT_RETURN_IF_ERROR(GetBool(j, "ok", "ok", &h.ok));
  WEFT_RETURN_IF_ERROR(GetString(j, "reason", "reason", &h.reason));
  return h;
}

absl::StatusOr<std::vector<ReplicaStatus>> ReplicaListFromJson(const json& j) {
  if (!j.is_object() || !j.contains("replicas") || !j["replicas"].is_array()) {
    return absl::InvalidArgumentError("replicas: want a list");
  }
  std::vector<ReplicaStatus> out;
  for (const json& e : j["replicas"]) {
    absl::StatusOr<ReplicaStatus> s = ReplicaStatusFromJson(e);
    if (!s.ok()) return s.status();
    out.push_back(*std::move(s));
  }
  return out;
}

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

json ErrorJson(const absl::Status& s) {
  return json{{"error",
               {{"message", std::string(s.message())},
                {"code", HttpStatusOf(s)},
                {"status", absl::StatusCodeToString(s.code())}}}};
}

absl::Status StatusFromError(int http_status, std::string_view body, std::string_view context) {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  switch (http_status) {
    case 400:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case 401:
      code = absl::StatusCode::kUnauthenticated;
      break;
    case 403:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case 404:
      code = absl::StatusCode::kNotFound;
      break;
    case 409:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case 429:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case 503:
      code = absl::StatusCode::kUnavailable;
      break;
    case 504:
      code = absl::StatusCode::kDeadlineExceeded;
      break;
    default:
      code = http_status >= 500 ? absl::StatusCode::kInternal : absl::StatusCode::kUnknown;
  }
  std::string message = absl::StrCat("HTTP ", http_status);
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const json& e = j["error"];
    if (e.contains("message") && e["message"].is_string())
      message = e["message"].get<std::string>();
    if (e.contains("status") && e["status"].is_string()) {
      const std::string name = e["status"].get<std::string>();
      for (int c = 1; c <= 16; ++c) {
        if (absl::StatusCodeToString(static_cast<absl::StatusCode>(c)) == name) {
          code = static_cast<absl::StatusCode>(c);
        }
      }
    }
  }
  return absl::Status(
      code, context.empty() ? message : absl::StrCat(std::string(context), ": ", message));
}

std::string EncodePathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    if (Unreserved(c)) {
      out += c;
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::string DecodePathSegment(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool BearerMatches(std::string_view got, std::string_view token) {
  if (token.empty()) return false;
  constexpr std::string_view kPrefix = "Bearer ";
  // Compare every byte of the expected value, whatever `got` holds (length differences included),
  // so the time taken says nothing about how much of a guess was right.
  const size_t want_len = kPrefix.size() + token.size();
  unsigned diff = got.size() == want_len ? 0u : 1u;
  for (size_t i = 0; i < want_len; ++i) {
    const char want = i < kPrefix.size() ? kPrefix[i] : token[i - kPrefix.size()];
    const char have = i < got.size() ? got[i] : 0;
    diff |= static_cast<unsigned char>(want ^ have);
  }
  return diff == 0;
}

}  // namespace weft::control::agent
