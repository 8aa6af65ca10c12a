// SPDX-License-Identifier: Apache-2.0
#include "gateway/config/gateway_config.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "yaml-cpp/yaml.h"

namespace weft::gateway {
namespace {

// Parsing context: names the source in errors and remembers where each field path was written,
// so that semantic checks run on plain values (ValidateDeployments) still point at a line.
class Ctx {
 public:
  explicit Ctx(std::string_view source) : source_(source) {}

  absl::Status Error(const YAML::Node& node, std::string_view path, std::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(node), std::string(path), ": ", std::string(message)));
  }
  std::string Where(const YAML::Node& node) const {
    YAML::Mark mark = node.Mark();
    if (mark.line < 0) return absl::StrCat(source_, ": ");
    return absl::StrCat(source_, ":", mark.line + 1, ": ");
  }
  void Remember(const std::string& path, const YAML::Node& node) {
    YAML::Mark mark = node.Mark();
    if (mark.line >= 0) lines_[path] = mark.line + 1;
  }
  // "path: message" from ValidateDeployments -> "source:line: path: message".
  absl::Status Locate(const absl::Status& status) const {
    std::string_view msg(status.message().data(), status.message().size());
    size_t colon = msg.find(": ");
    std::string path(msg.substr(0, colon == std::string_view::npos ? 0 : colon));
    // The longest remembered path that prefixes the error's path.
    while (!path.empty()) {
      auto it = lines_.find(path);
      if (it != lines_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source_, ":", it->second, ": ", std::string(msg)));
      }
      size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos) break;
      path.resize(cut);
    }
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", std::string(msg)));
  }

 private:
  std::string source_;
  std::map<std::string, int> lines_;
};

std::string Join(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrCat(std::string(path), ".", std::string(key));
}

// A YAML mapping whose keys are checked against the fields a section knows.
class MapReader {
 public:
  static absl::StatusOr<MapReader> Open(Ctx& ctx, const YAML::Node& node, std::string path,
                                        std::initializer_list<std::string_view> known) {
    MapReader r;
    r.path_ = std::move(path);
    if (!node.IsDefined() || node.IsNull()) return r;
    if (!node.IsMap())
      return ctx.Error(node, r.path_.empty() ? "(top)" : r.path_, "expected a mapping");
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: the iterator's pair is a temporary (handles are cheap to copy).
      YAML::Node key = it->first;
      YAML::Node value = it->second;
      if (!key.IsScalar()) return ctx.Error(key, r.path_, "keys must be plain strings");
      std::string name = key.Scalar();
      bool ok = false;
      for (std::string_view k : known) ok = ok || k == name;
      if (!ok) {
        std::vector<std::string> names(known.begin(), known.end());
        return ctx.Error(key, Join(r.path_, name),
                         absl::StrCat("unknown field (known: ", absl::StrJoin(names, ", "), ")"));
      }
      for (const auto& [seen, unused] : r.fields_) {
        if (seen == name) return ctx.Error(key, Join(r.path_, name), "duplicate field");
      }
      ctx.Remember(Join(r.path_, name), value);
      r.fields_.emplace_back(std::move(name), value);
    }
    return r;
  }

  // The value of `key`, or nullptr if absent or null (the default applies).
  const YAML::Node* Get(std::string_view key) const {
    for (const auto& [name, node] : fields_) {
      if (name == key) return node.IsNull() ? nullptr : &node;
    }
    return nullptr;
  }
  std::string Path(std::string_view key) const { return Join(path_, key); }

 private:
  std::string path_;
  std::vector<std::pair<std::string, YAML::Node>> fields_;
};

absl::Status ReadString(Ctx& ctx, const MapReader& m, std::string_view key, std::string* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  if (!n->IsScalar()) return ctx.Error(*n, m.Path(key), "expected a string");
  *out = n->Scalar();
  return absl::OkStatus();
}

absl::Status ReadBool(Ctx& ctx, const MapReader& m, std::string_view key, bool* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  if (n->IsScalar()) {
    std::string v = absl::AsciiStrToLower(n->Scalar());
    if (v == "true" || v == "yes" || v == "on") {
      *out = true;
      return absl::OkStatus();
    }
    if (v == "false" || v == "no" || v == "off") {
      *out = false;
      return absl::OkStatus();
    }
  }
  return ctx.Error(*n, m.Path(key), "expected true or false");
}

absl::Status ReadInt(Ctx& ctx, const MapReader& m, std::string_view key, int64_t lo, int64_t hi,
                     int64_t* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  int64_t v = 0;
  if (!n->IsScalar() || !absl::SimpleAtoi(n->Scalar(), &v)) {
    return ctx.Error(*n, m.Path(key), "expected an integer");
  }
  if (v < lo || v > hi) {
    return ctx.Error(*n, m.Path(key), absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
  }
  *out = v;
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadIntAs(Ctx& ctx, const MapReader& m, std::string_view key, int64_t lo, int64_t hi,
                       T* out) {
  int64_t v = static_cast<int64_t>(*out);
  WEFT_RETURN_IF_ERROR(ReadInt(ctx, m, key, lo, hi, &v));
  *out = static_cast<T>(v);
  return absl::OkStatus();
}

absl::Status ReadDouble(Ctx& ctx, const MapReader& m, std::string_view key, double lo, double hi,
                        double* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  double v = 0;
  if (!n->IsScalar() || !absl::SimpleAtod(n->Scalar(), &v) || !std::isfinite(v)) {
    return ctx.Error(*n, m.Path(key), "expected a number");
  }
  if (v < lo || v > hi) {
    return ctx.Error(*n, m.Path(key), absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
  }
  *out = v;
  return absl::OkStatus();
}

// A byte count: an integer, optionally with a unit (K/KB/KiB = 1024, M..., G...).
absl::Status ReadBytes(Ctx& ctx, const MapReader& m, std::string_view key, size_t* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  auto bad = [&] {
    return ctx.Error(*n, m.Path(key), "expected a byte count such as 1048576 or 8MiB");
  };
  if (!n->IsScalar()) return bad();
  std::string s = n->Scalar();
  size_t digits = 0;
  while (digits < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  uint64_t v = 0;
  if (digits == 0 || digits > 15 || !absl::SimpleAtoi(s.substr(0, digits), &v)) return bad();
  std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(digits)));
  uint64_t scale = 1;
  if (unit.empty() || unit == "b") {
    scale = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    scale = uint64_t{1} << 10;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    scale = uint64_t{1} << 20;
  } else if (unit == "g" || unit == "gb" || unit == "gib") {
    scale = uint64_t{1} << 30;
  } else {
    return bad();
  }
  if (v == 0 || v > (uint64_t{1} << 40) / scale) {
    return ctx.Error(*n, m.Path(key), "must be between 1 byte and 1TiB");
  }
  *out = static_cast<size_t>(v * scale);
  return absl::OkStatus();
}

absl::Status ReadStringList(Ctx& ctx, const MapReader& m, std::string_view key,
                            std::vector<std::string>* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  if (n->IsScalar()) {  // a single name
    *out = {n->Scalar()};
    return absl::OkStatus();
  }
  if (!n->IsSequence()) return ctx.Error(*n, m.Path(key), "expected a list of strings");
  out->clear();
  for (size_t i = 0; i < n->size(); ++i) {
    YAML::Node item = (*n)[i];
    std::string path = absl::StrCat(m.Path(key), "[", i, "]");
    if (!item.IsScalar()) return ctx.Error(item, path, "expected a string");
    ctx.Remember(path, item);
    out->push_back(item.Scalar());
  }
  return absl::OkStatus();
}

absl::Status ReadListen(Ctx& ctx, const MapReader& top, GatewayConfig* c) {
  const YAML::Node* n = top.Get("listen");
  if (n == nullptr) return absl::OkStatus();
  if (n->IsScalar()) {  // "host:port"
    std::string s = n->Scalar();
    size_t colon = s.rfind(':');
    int64_t port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(s.substr(colon + 1), &port) || port < 0 ||
        port > 65535) {
      return ctx.Error(*n, "listen", "expected host:port or {host, port}");
    }
    std::string host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    if (!host.empty()) c->listen_host = host;
    c->listen_port = static_cast<uint16_t>(port);
    return absl::OkStatus();
  }
  WEFT_ASSIGN_OR_RETURN(MapReader m, MapReader::Open(ctx, *n, "listen", {"host", "port"}));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "host", &c->listen_host));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "port", 0, 65535, &c->listen_port));
  if (c->listen_host.empty()) return ctx.Error(*n, "listen.host", "must not be empty");
  return absl::OkStatus();
}

absl::Status ReadTls(Ctx& ctx, const MapReader& top, GatewayConfig* c) {
  const YAML::Node* n = top.Get("tls");
  if (n == nullptr) return absl::OkStatus();
  WEFT_ASSIGN_OR_RETURN(MapReader m, MapReader::Open(ctx, *n, "tls", {"cert", "key"}));
  TlsConfig tls;
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "cert", &tls.cert));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "key", &tls.key));
  if (tls.cert.empty()) return ctx.Error(*n, "tls.cert", "required when tls is set");
  if (tls.key.empty()) return ctx.Error(*n, "tls.key", "required when tls is set");
  c->tls = std::move(tls);
  return absl::OkStatus();
}

bool IsPostgresUrl(std::string_view s) {
  return s.starts_with("postgres://") || s.starts_with("postgresql://");
}

absl::Status ReadStore(Ctx& ctx, const MapReader& top, GatewayConfig* c) {
  const YAML::Node* n = top.Get("store");
  if (n == nullptr) return absl::OkStatus();
  StoreConfig& s = c->store;
  if (n->IsScalar()) {  // "sqlite" or a PostgreSQL URL
    std::string v = n->Scalar();
    if (v == "sqlite") {
      s.kind = StoreConfig::Kind::kSqlite;
    } else if (IsPostgresUrl(v)) {
      s.kind = StoreConfig::Kind::kPostgres;
      s.postgres_url = v;
    } else {
      return ctx.Error(*n, "store", "expected sqlite, a postgres:// URL, or {kind, ...}");
    }
    return absl::OkStatus();
  }
  WEFT_ASSIGN_OR_RETURN(MapReader m,
                        MapReader::Open(ctx, *n, "store", {"kind", "sqlite_path", "postgres_url"}));
  std::string kind = "sqlite";
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "kind", &kind));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "sqlite_path", &s.sqlite_path));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "postgres_url", &s.postgres_url));
  if (kind == "sqlite") {
    s.kind = StoreConfig::Kind::kSqlite;
    if (!s.postgres_url.empty()) {
      return ctx.Error(*m.Get("postgres_url"), "store.postgres_url", "set, but kind is sqlite");
    }
  } else if (kind == "postgres" || kind == "postgresql") {
    s.kind = StoreConfig::Kind::kPostgres;
    if (s.postgres_url.empty()) return ctx.Error(*n, "store.postgres_url", "required for postgres");
  } else {
    return ctx.Error(*m.Get("kind"), "store.kind", "expected sqlite or postgres");
  }
  return absl::OkStatus();
}

absl::Status ReadLimits(Ctx& ctx, const MapReader& top, LimitsConfig* l) {
  const YAML::Node* n = top.Get("limits");
  if (n == nullptr) return absl::OkStatus();
  WEFT_ASSIGN_OR_RETURN(
      MapReader m,
      MapReader::Open(ctx, *n, "limits",
                      {"max_body_bytes", "header_timeout_s", "idle_timeout_s",
                       "upstream_connect_timeout_s", "upstream_first_byte_timeout_s",
                       "upstream_stall_timeout_s", "retries", "retry_budget_ratio",
                       "retry_budget_min_per_s", "hedge_after_ms", "max_outstanding_per_replica",
                       "hold_timeout_s", "max_held_per_deployment"}));
  constexpr double kDay = 86400;
  WEFT_RETURN_IF_ERROR(ReadBytes(ctx, m, "max_body_bytes", &l->max_body_bytes));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "header_timeout_s", 0.001, kDay, &l->header_timeout_s));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "idle_timeout_s", 0.001, kDay, &l->idle_timeout_s));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "upstream_connect_timeout_s", 0.001, kDay,
                                  &l->upstream_connect_timeout_s));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "upstream_first_byte_timeout_s", 0.001, kDay,
                                  &l->upstream_first_byte_timeout_s));
  WEFT_RETURN_IF_ERROR(
      ReadDouble(ctx, m, "upstream_stall_timeout_s", 0.001, kDay, &l->upstream_stall_timeout_s));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "retries", 0, 100, &l->retries));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "retry_budget_ratio", 0, 100, &l->retry_budget_ratio));
  WEFT_RETURN_IF_ERROR(
      ReadDouble(ctx, m, "retry_budget_min_per_s", 0, 1e6, &l->retry_budget_min_per_s));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "hedge_after_ms", 0, 3600 * 1000, &l->hedge_after_ms));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "max_outstanding_per_replica", 1, 1 << 24,
                                 &l->max_outstanding_per_replica));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "hold_timeout_s", 0, kDay, &l->hold_timeout_s));
  WEFT_RETURN_IF_ERROR(
      ReadIntAs(ctx, m, "max_held_per_deployment", 0, 1 << 20, &l->max_held_per_deployment));
  return absl::OkStatus();
}

absl::Status ReadBalancer(Ctx& ctx, const MapReader& top, BalancerConfig* b) {
  const YAML::Node* n = top.Get("balancer");
  if (n == nullptr) return absl::OkStatus();
  auto policy = [&](const YAML::Node& node, const std::string& path) -> absl::Status {
    std::optional<BalancerPolicy> p =
        node.IsScalar() ? ParseBalancerPolicy(node.Scalar()) : std::nullopt;
    if (!p) {
      return ctx.Error(node, path, "expected least_tokens, prefix, latency, p2c or round_robin");
    }
    b->policy = *p;
    return absl::OkStatus();
  };
  if (n->IsScalar()) return policy(*n, "balancer");  // shorthand: `balancer: prefix`
  WEFT_ASSIGN_OR_RETURN(
      MapReader m, MapReader::Open(ctx, *n, "balancer",
                                   {"policy", "adapter_affinity", "prefix", "latency", "seed"}));
  if (const YAML::Node* p = m.Get("policy")) WEFT_RETURN_IF_ERROR(policy(*p, "balancer.policy"));
  WEFT_RETURN_IF_ERROR(ReadBool(ctx, m, "adapter_affinity", &b->adapter_affinity));
  if (const YAML::Node* s = m.Get("seed")) {
    if (!s->IsScalar() || !absl::SimpleAtoi(s->Scalar(), &b->seed)) {
      return ctx.Error(*s, "balancer.seed", "expected an unsigned integer");
    }
  }
  if (const YAML::Node* p = m.Get("prefix")) {
    WEFT_ASSIGN_OR_RETURN(MapReader pm,
                          MapReader::Open(ctx, *p, "balancer.prefix",
                                          {"block_chars", "max_blocks", "affinity_blocks",
                                           "virtual_nodes", "load_epsilon"}));
    WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, pm, "block_chars", 1, 1 << 20, &b->prefix_block_chars));
    WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, pm, "max_blocks", 1, 4096, &b->prefix_max_blocks));
    WEFT_RETURN_IF_ERROR(
        ReadIntAs(ctx, pm, "affinity_blocks", 1, 4096, &b->prefix_affinity_blocks));
    WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, pm, "virtual_nodes", 1, 10000, &b->prefix_virtual_nodes));
    WEFT_RETURN_IF_ERROR(ReadDouble(ctx, pm, "load_epsilon", 0, 100, &b->prefix_load_epsilon));
  }
  if (const YAML::Node* l = m.Get("latency")) {
    WEFT_ASSIGN_OR_RETURN(
        MapReader lm, MapReader::Open(ctx, *l, "balancer.latency",
                                      {"ewma_alpha", "stale_after_s", "decay_s", "output_tokens"}));
    WEFT_RETURN_IF_ERROR(ReadDouble(ctx, lm, "ewma_alpha", 0.001, 1, &b->latency_ewma_alpha));
    WEFT_RETURN_IF_ERROR(ReadDouble(ctx, lm, "stale_after_s", 0, 86400, &b->latency_stale_after_s));
    WEFT_RETURN_IF_ERROR(ReadDouble(ctx, lm, "decay_s", 0.001, 86400, &b->latency_decay_s));
    WEFT_RETURN_IF_ERROR(
        ReadIntAs(ctx, lm, "output_tokens", 0, 1 << 24, &b->latency_output_tokens));
  }
  return absl::OkStatus();
}

absl::Status ReadOutlier(Ctx& ctx, const MapReader& top, OutlierConfig* o) {
  const YAML::Node* n = top.Get("outlier");
  if (n == nullptr) return absl::OkStatus();
  WEFT_ASSIGN_OR_RETURN(
      MapReader m, MapReader::Open(ctx, *n, "outlier",
                                   {"consecutive_failures", "base_ejection_s", "max_ejection_s",
                                    "max_ejection_percent", "breaker_failures", "breaker_open_s"}));
  WEFT_RETURN_IF_ERROR(
      ReadIntAs(ctx, m, "consecutive_failures", 1, 1000000, &o->consecutive_failures));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "base_ejection_s", 0.001, 86400, &o->base_ejection_s));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "max_ejection_s", 0.001, 86400 * 7, &o->max_ejection_s));
  WEFT_RETURN_IF_ERROR(
      ReadDouble(ctx, m, "max_ejection_percent", 0, 100, &o->max_ejection_percent));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "breaker_failures", 1, 1000000, &o->breaker_failures));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "breaker_open_s", 0.001, 86400, &o->breaker_open_s));
  if (o->max_ejection_s < o->base_ejection_s) {
    return ctx.Error(*n, "outlier.max_ejection_s", "must be at least base_ejection_s");
  }
  return absl::OkStatus();
}

absl::Status ReadHealth(Ctx& ctx, const MapReader& top, HealthConfig* h) {
  const YAML::Node* n = top.Get("health");
  if (n == nullptr) return absl::OkStatus();
  WEFT_ASSIGN_OR_RETURN(MapReader m,
                        MapReader::Open(ctx, *n, "health",
                                        {"interval_s", "timeout_s", "unhealthy_threshold",
                                         "healthy_threshold", "load_poll_interval_s"}));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "interval_s", 0.01, 86400, &h->interval_s));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "timeout_s", 0.001, 3600, &h->timeout_s));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "unhealthy_threshold", 1, 1000, &h->unhealthy_threshold));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "healthy_threshold", 1, 1000, &h->healthy_threshold));
  WEFT_RETURN_IF_ERROR(
      ReadDouble(ctx, m, "load_poll_interval_s", 0.01, 3600, &h->load_poll_interval_s));
  return absl::OkStatus();
}

absl::Status ReadRoutes(Ctx& ctx, const MapReader& top, RoutesConfig* r) {
  const YAML::Node* n = top.Get("routes");
  if (n == nullptr) return absl::OkStatus();
  WEFT_ASSIGN_OR_RETURN(MapReader m,
                        MapReader::Open(ctx, *n, "routes",
                                        {"control_url", "control_token_env", "reload_poll_s"}));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "control_url", &r->control_url));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "control_token_env", &r->control_token_env));
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "reload_poll_s", 0, 86400, &r->reload_poll_s));
  if (!r->control_url.empty()) {
    if (absl::Status s = ParseHttpUrl(r->control_url).status(); !s.ok()) {
      return ctx.Error(*m.Get("control_url"), "routes.control_url", std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadReplica(Ctx& ctx, const YAML::Node& node, const std::string& path,
                         ReplicaConfig* r) {
  WEFT_ASSIGN_OR_RETURN(
      MapReader m,
      MapReader::Open(ctx, node, path, {"id", "url", "provider", "region", "state", "weight"}));
  if (!node.IsMap()) return ctx.Error(node, path, "expected a mapping {id, url, ...}");
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "id", &r->id));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "url", &r->url));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "provider", &r->provider));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "region", &r->region));
  if (const YAML::Node* s = m.Get("state")) {
    std::optional<ReplicaState> st = s->IsScalar() ? ParseReplicaState(s->Scalar()) : std::nullopt;
    if (!st) return ctx.Error(*s, m.Path("state"), "expected ready, draining or down");
    r->state = *st;
  }
  WEFT_RETURN_IF_ERROR(ReadDouble(ctx, m, "weight", 0, 1e6, &r->weight));
  if (m.Get("url") == nullptr) return ctx.Error(node, m.Path("url"), "required");
  return absl::OkStatus();
}

absl::Status ReadDeployments(Ctx& ctx, const MapReader& top, GatewayConfig* c) {
  const YAML::Node* n = top.Get("deployments");
  if (n == nullptr) return absl::OkStatus();
  if (!n->IsMap()) return ctx.Error(*n, "deployments", "expected a mapping name -> deployment");
  std::set<std::string> names;
  for (auto it = n->begin(); it != n->end(); ++it) {
    YAML::Node key = it->first;
    YAML::Node value = it->second;
    if (!key.IsScalar()) return ctx.Error(key, "deployments", "names must be strings");
    DeploymentConfig d;
    d.name = key.Scalar();
    std::string path = Join("deployments", d.name);
    if (!names.insert(d.name).second) return ctx.Error(key, path, "duplicate deployment");
    ctx.Remember(path, key);
    WEFT_ASSIGN_OR_RETURN(MapReader m,
                          MapReader::Open(ctx, value, path,
                                          {"replicas", "adapters", "aliases", "preferred_providers",
                                           "preferred_regions"}));
    if (const YAML::Node* rs = m.Get("replicas")) {
      if (!rs->IsSequence()) return ctx.Error(*rs, m.Path("replicas"), "expected a list");
      for (size_t i = 0; i < rs->size(); ++i) {
        std::string rpath = absl::StrCat(m.Path("replicas"), "[", i, "]");
        YAML::Node rn = (*rs)[i];
        ctx.Remember(rpath, rn);
        ReplicaConfig r;
        WEFT_RETURN_IF_ERROR(ReadReplica(ctx, rn, rpath, &r));
        if (r.id.empty()) r.id = absl::StrCat(d.name, "-", i);
        d.replicas.push_back(std::move(r));
      }
    }
    WEFT_RETURN_IF_ERROR(ReadStringList(ctx, m, "adapters", &d.adapters));
    WEFT_RETURN_IF_ERROR(ReadStringList(ctx, m, "preferred_providers", &d.preferred_providers));
    WEFT_RETURN_IF_ERROR(ReadStringList(ctx, m, "preferred_regions", &d.preferred_regions));
    if (const YAML::Node* as = m.Get("aliases")) {
      if (!as->IsMap()) return ctx.Error(*as, m.Path("aliases"), "expected alias: adapter pairs");
      for (auto a = as->begin(); a != as->end(); ++a) {
        YAML::Node alias = a->first;
        YAML::Node adapter = a->second;
        if (!alias.IsScalar() || !(adapter.IsScalar() || adapter.IsNull())) {
          return ctx.Error(alias, m.Path("aliases"), "expected alias: adapter pairs");
        }
        std::string apath = Join(m.Path("aliases"), alias.Scalar());
        ctx.Remember(apath, alias);
        std::string target = adapter.IsNull() ? "" : adapter.Scalar();
        if (!d.aliases.emplace(alias.Scalar(), target).second) {
          return ctx.Error(alias, apath, "duplicate alias");
        }
      }
    }
    c->deployments.push_back(std::move(d));
  }
  std::sort(c->deployments.begin(), c->deployments.end(),
            [](const DeploymentConfig& a, const DeploymentConfig& b) { return a.name < b.name; });
  if (absl::Status s = ValidateDeployments(c->deployments); !s.ok()) return ctx.Locate(s);
  return absl::OkStatus();
}

absl::StatusOr<GatewayConfig> ParseRoot(Ctx& ctx, const YAML::Node& root) {
  GatewayConfig c;
  WEFT_ASSIGN_OR_RETURN(
      MapReader top, MapReader::Open(ctx, root, "",
                                     {"listen", "io_threads", "io_cpu_affinity", "tls", "admin_key",
                                      "admin_key_env", "data_dir", "store", "limits", "balancer", "outlier",
                                      "health", "routes", "deployments"}));
  WEFT_RETURN_IF_ERROR(ReadListen(ctx, top, &c));
  WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, top, "io_threads", 1, 1024, &c.io_threads));
  WEFT_RETURN_IF_ERROR(ReadBool(ctx, top, "io_cpu_affinity", &c.io_cpu_affinity));
  WEFT_RETURN_IF_ERROR(ReadTls(ctx, top, &c));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, top, "admin_key", &c.admin_key));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, top, "admin_key_env", &c.admin_key_env));
  if (!c.admin_key.empty() && !c.admin_key_env.empty()) {
    return ctx.Error(*top.Get("admin_key_env"), "admin_key_env",
                     "set together with admin_key; use one");
  }
  WEFT_RETURN_IF_ERROR(ReadString(ctx, top, "data_dir", &c.data_dir));
  if (c.data_dir.empty()) return ctx.Error(*top.Get("data_dir"), "data_dir", "must not be empty");
  WEFT_RETURN_IF_ERROR(ReadStore(ctx, top, &c));
  WEFT_RETURN_IF_ERROR(ReadLimits(ctx, top, &c.limits));
  WEFT_RETURN_IF_ERROR(ReadBalancer(ctx, top, &c.balancer));
  WEFT_RETURN_IF_ERROR(ReadOutlier(ctx, top, &c.outlier));
  WEFT_RETURN_IF_ERROR(ReadHealth(ctx, top, &c.health));
  WEFT_RETURN_IF_ERROR(ReadRoutes(ctx, top, &c.routes));
  WEFT_RETURN_IF_ERROR(ReadDeployments(ctx, top, &c));
  if (!c.routes.control_url.empty() && !c.deployments.empty()) {
    return ctx.Error(
        *top.Get("deployments"), "deployments",
        "routes.control_url is set: routes come from the control plane, not this file");
  }
  return c;
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (char ch : name) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (ch == ':' || u <= ' ' || u == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string_view ReplicaStateName(ReplicaState state) {
  switch (state) {
    case ReplicaState::kReady:
      return "ready";
    case ReplicaState::kDraining:
      return "draining";
    case ReplicaState::kDown:
      return "down";
  }
  return "down";
}

std::optional<ReplicaState> ParseReplicaState(std::string_view name) {
  if (name == "ready") return ReplicaState::kReady;
  if (name == "draining") return ReplicaState::kDraining;
  if (name == "down") return ReplicaState::kDown;
  return std::nullopt;
}

std::string_view BalancerPolicyName(BalancerPolicy policy) {
  switch (policy) {
    case BalancerPolicy::kLeastTokens:
      return "least_tokens";
    case BalancerPolicy::kPrefix:
      return "prefix";
    case BalancerPolicy::kLatency:
      return "latency";
    case BalancerPolicy::kP2c:
      return "p2c";
    case BalancerPolicy::kRoundRobin:
      return "round_robin";
  }
  return "least_tokens";
}

std::optional<BalancerPolicy> ParseBalancerPolicy(std::string_view name) {
  for (BalancerPolicy p :
       {BalancerPolicy::kLeastTokens, BalancerPolicy::kPrefix, BalancerPolicy::kLatency,
        BalancerPolicy::kP2c, BalancerPolicy::kRoundRobin}) {
    if (BalancerPolicyName(p) == name) return p;
  }
  return std::nullopt;
}

absl::StatusOr<HostPort> ParseHttpUrl(std::string_view url) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("expected http://host:port, got '", std::string(url.substr(0, 200)), "'"));
  };
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return bad();
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos || rest.find('@') != std::string_view::npos) {
    return bad();
  }
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return bad();
  HostPort hp;
  hp.host = std::string(rest.substr(0, colon));
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') {
    hp.host = hp.host.substr(1, hp.host.size() - 2);  // [::1]
  } else if (hp.host.find(':') != std::string::npos) {
    return bad();
  }
  int64_t port = 0;
  if (hp.host.empty() || !absl::SimpleAtoi(std::string(rest.substr(colon + 1)), &port) ||
      port <= 0 || port > 65535) {
    return bad();
  }
  for (char ch : hp.host) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (u <= ' ' || u == 0x7f) return bad();
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

absl::Status ValidateDeployments(std::vector<DeploymentConfig>& deployments) {
  auto err = [](const std::string& path, std::string_view message) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::string(message)));
  };
  std::set<std::string> names;
  for (const DeploymentConfig& d : deployments) names.insert(d.name);
  std::map<std::string, std::string> replica_ids;  // id -> path of its first use
  std::set<std::string> model_names = names;       // deployment names and aliases
  std::set<std::string> seen;
  for (DeploymentConfig& d : deployments) {
    std::string path = Join("deployments", d.name);
    if (!ValidName(d.name)) {
      return err(path, "a deployment name must be non-empty, without ':' or spaces");
    }
    if (!seen.insert(d.name).second) return err(path, "duplicate deployment");
    for (size_t i = 0; i < d.replicas.size(); ++i) {
      ReplicaConfig& r = d.replicas[i];
      std::string rpath = absl::StrCat(path, ".replicas[", i, "]");
      if (r.id.empty() || r.id.size() > 256) return err(rpath + ".id", "must be non-empty");
      auto [it, fresh] = replica_ids.emplace(r.id, rpath);
      if (!fresh) {
        return err(rpath + ".id",
                   absl::StrCat("duplicate replica id '", r.id, "' (also at ", it->second, ")"));
      }
      absl::StatusOr<HostPort> hp = ParseHttpUrl(r.url);
      if (!hp.ok()) return err(rpath + ".url", std::string(hp.status().message()));
      r.host = hp->host;
      r.port = hp->port;
      if (!(r.weight > 0) || !std::isfinite(r.weight)) {
        return err(rpath + ".weight", "must be greater than 0");
      }
    }
    std::set<std::string> adapters;
    for (size_t i = 0; i < d.adapters.size(); ++i) {
      std::string apath = absl::StrCat(path, ".adapters[", i, "]");
      if (!ValidName(d.adapters[i])) return err(apath, "an adapter name must be non-empty, no ':'");
      if (!adapters.insert(d.adapters[i]).second) return err(apath, "duplicate adapter");
    }
    for (const auto& [alias, adapter] : d.aliases) {
      std::string apath = Join(path + ".aliases", alias);
      if (!ValidName(alias)) return err(apath, "an alias must be non-empty, without ':' or spaces");
      if (!model_names.insert(alias).second) {
        return err(apath, "alias collides with a deployment or another alias");
      }
      if (!adapter.empty() && !d.adapters.empty() && adapters.count(adapter) == 0) {
        return err(apath, absl::StrCat("adapter '", adapter, "' is not in adapters"));
      }
      if (!adapter.empty() && !ValidName(adapter)) return err(apath, "bad adapter name");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<GatewayConfig> ParseGatewayConfig(std::string_view yaml, std::string_view source) {
  Ctx ctx(source);
  // yaml-cpp reports errors by throwing (deep nesting included: its depth guard throws
  // DeepRecursion); this is the boundary where they become values.
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    return ParseRoot(ctx, root);
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(source), ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
    }
    return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": invalid YAML: ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ": invalid YAML: ", e.what()));
  }
}

absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  return ParseGatewayConfig(text.str(), path);
}

absl::StatusOr<std::string> ResolveAdminKey(const GatewayConfig& config) {
  if (!config.admin_key.empty()) return config.admin_key;
  if (config.admin_key_env.empty()) return std::string();
  const char* v = std::getenv(config.admin_key_env.c_str());
  if (v == nullptr || *v == '\0') {
    return absl::FailedPreconditionError(absl::StrCat("admin_key_env: environment variable ",
                                                      config.admin_key_env, " is unset or empty"));
  }
  return std::string(v);
}

}  // namespace weft::gateway
