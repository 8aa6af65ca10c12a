// SPDX-License-Identifier: Apache-2.0
// GatewayConfig: the one typed configuration of `weft gateway`, read from YAML at the edge
// (`weft gateway --config gateway.yaml`). Plain values with defaults for every field; parsing is
// strict (unknown keys, wrong types and bad values are errors naming file, line and field path)
// and pure apart from LoadGatewayConfig reading the file. Safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::gateway {

// A replica's administrative state. Only kReady replicas receive new requests; kDraining ones
// finish what they run; kDown ones are skipped entirely.
enum class ReplicaState { kReady, kDraining, kDown };
std::string_view ReplicaStateName(ReplicaState state);  // "ready" | "draining" | "down"
std::optional<ReplicaState> ParseReplicaState(std::string_view name);

struct ReplicaConfig {
  std::string id;        // unique across the whole route table
  std::string url;       // "http://host:port" as written
  std::string host;      // from url
  uint16_t port = 0;     // from url
  std::string provider;  // e.g. "local", "aws"; "" if unknown
  std::string region;    // e.g. "eu-west-1"; "" if unknown
  ReplicaState state = ReplicaState::kReady;
  double weight = 1;  // relative capacity (> 0): scales virtual nodes and load comparisons

  friend bool operator==(const ReplicaConfig&, const ReplicaConfig&) = default;
};

// One deployment: a base model served by replicas, reachable as `name`, `name:adapter` and by its
// aliases.
struct DeploymentConfig {
  std::string name;  // no ':'
  std::vector<ReplicaConfig> replicas;
  // Adapters clients may ask for as "name:adapter". Empty: any adapter name is passed through
  // (the engine answers 404 for one it cannot load).
  std::vector<std::string> adapters;
  // Extra model names: alias -> adapter of this deployment ("" = the base model).
  std::map<std::string, std::string> aliases;
  // Replicas on these providers / in these regions are preferred; others take the spill-over when
  // the preferred ones are saturated or unhealthy. Empty: no preference.
  std::vector<std::string> preferred_providers;
  std::vector<std::string> preferred_regions;

  friend bool operator==(const DeploymentConfig&, const DeploymentConfig&) = default;
};

enum class BalancerPolicy { kLeastTokens, kPrefix, kLatency, kP2c, kRoundRobin };
// "least_tokens" | "prefix" | "latency" | "p2c" | "round_robin"
std::string_view BalancerPolicyName(BalancerPolicy policy);
std::optional<BalancerPolicy> ParseBalancerPolicy(std::string_view name);

struct BalancerConfig {
  BalancerPolicy policy = BalancerPolicy::kLeastTokens;
  bool adapter_affinity = true;  // prefer replicas whose load report lists the adapter
  // Prefix keys (every policy computes them; `prefix` routes on them): the prompt text is cut into
  // blocks of block_chars characters and the first max_blocks full blocks are hashed cumulatively.
  size_t prefix_block_chars = 256;
  size_t prefix_max_blocks = 16;
  // prefix: the ring is keyed by the hash of the first min(n, affinity_blocks) blocks.
  size_t prefix_affinity_blocks = 4;
  int prefix_virtual_nodes = 100;     // ring points per replica of weight 1
  double prefix_load_epsilon = 0.25;  // bounded load: capacity = ceil((1+eps) x average)
  // latency: EWMA smoothing of TTFT / inter-token samples, and how a replica without recent
  // samples decays toward the fleet mean (so a once-slow replica is tried again).
  double latency_ewma_alpha = 0.3;
  double latency_stale_after_s = 10;
  double latency_decay_s = 30;
  int64_t latency_output_tokens = 128;  // expected output length for the inter-token term
  // Random source for p2c and tie breaks; 0 = seeded from the clock at start.
  uint64_t seed = 0;

  friend bool operator==(const BalancerConfig&, const BalancerConfig&) = default;
};

struct LimitsConfig {
  size_t max_body_bytes = 8 << 20;  // larger request bodies: 413
  double header_timeout_s = 10;     // first byte to end of request head
  double idle_timeout_s = 60;       // keep-alive idle
  double upstream_connect_timeout_s = 2;
  double upstream_first_byte_timeout_s = 60;  // request sent -> first response byte
  double upstream_stall_timeout_s = 15;       // gap between stream chunks before migration
  int retries = 2;                            // extra attempts before the first byte
  double retry_budget_ratio = 0.2;            // retries allowed per recent request
  double retry_budget_min_per_s = 3;          // retries always allowed per second
  int hedge_after_ms = 0;                     // 0 = no hedging
  int max_outstanding_per_replica = 256;      // at this many a replica counts as saturated
  // Scale from zero: a request for a deployment with no ready replica waits (held) this long for
  // one, at most this many per deployment; past either, 503 with Retry-After.
  double hold_timeout_s = 60;
  int max_held_per_deployment = 256;

  friend bool operator==(const LimitsConfig&, const LimitsConfig&) = default;
};

// Passive outlier ejection and per-replica circuit breaking (routing/outlier_detector.h,
// routing/circuit_breaker.h).
struct OutlierConfig {
  int consecutive_failures = 5;  // 5xx or connect failures in a row -> ejection
  double base_ejection_s = 30;   // ejection time = base x times ejected, capped
  double max_ejection_s = 300;
  double max_ejection_percent = 50;  // at most this share of a deployment's replicas (>= 1 replica)
  int breaker_failures = 5;          // consecutive failures that open a replica's breaker
  double breaker_open_s = 10;        // open -> half-open after this long

  friend bool operator==(const OutlierConfig&, const OutlierConfig&) = default;
};

// Active health checks and load polling of replicas (GET /health, GET /weft/v1/load).
struct HealthConfig {
  double interval_s = 5;
  double timeout_s = 2;
  int unhealthy_threshold = 2;  // failed checks in a row -> unhealthy
  int healthy_threshold = 1;    // passed checks in a row -> healthy again
  double load_poll_interval_s = 1;

  friend bool operator==(const HealthConfig&, const HealthConfig&) = default;
};

struct TlsConfig {
  std::string cert;  // PEM file path
  std::string key;   // PEM file path

  friend bool operator==(const TlsConfig&, const TlsConfig&) = default;
};

struct StoreConfig {
  enum class Kind { kSqlite, kPostgres };
  Kind kind = Kind::kSqlite;
  std::string sqlite_path;   // "" = <data_dir>/gateway.db
  std::string postgres_url;  // libpq connection string, when kind == kPostgres

  friend bool operator==(const StoreConfig&, const StoreConfig&) = default;
};

// Where routes come from: the deployments below (static) or the control plane's watch stream.
struct RoutesConfig {
  std::string control_url;   // "http://host:port" of `weft control`; "" = static deployments
  // The environment variable holding the control plane's bearer token (`weft control --token`);
  // unset or empty variable: no Authorization header.
  std::string control_token_env = "WEFT_CONTROL_TOKEN";
  double reload_poll_s = 2;  // static: re-read the config file when it changes (0 = only SIGHUP)

  friend bool operator==(const RoutesConfig&, const RoutesConfig&) = default;
};

struct GatewayConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  int io_threads = 2;
  // Pin I/O thread i to the i-th CPU the process may use (nginx's worker_cpu_affinity auto): for
  // a host whose CPUs are the gateway's; see IoContextPool.
  bool io_cpu_affinity = false;
  std::optional<TlsConfig> tls;
  std::string admin_key;      // literal admin key; prefer admin_key_env
  std::string admin_key_env;  // name of an environment variable holding it
  std::string data_dir = "./weft-data";
  StoreConfig store;
  LimitsConfig limits;
  BalancerConfig balancer;
  OutlierConfig outlier;
  HealthConfig health;
  RoutesConfig routes;
  std::vector<DeploymentConfig> deployments;  // sorted by name

  friend bool operator==(const GatewayConfig&, const GatewayConfig&) = default;
};

// Parses a YAML document. `source` names it in errors ("gateway.yaml:12: limits.retries: ...").
// InvalidArgument for YAML syntax errors, unknown keys, wrong types and invalid values.
absl::StatusOr<GatewayConfig> ParseGatewayConfig(std::string_view yaml,
                                                 std::string_view source = "<config>");
// Reads and parses a file: NotFound if it cannot be read, otherwise as ParseGatewayConfig.
absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path);

// The admin key: `admin_key`, or the value of the variable `admin_key_env` (FailedPrecondition if
// that is unset or empty), or "" when neither is configured (admin API off).
absl::StatusOr<std::string> ResolveAdminKey(const GatewayConfig& config);

// Splits "http://host:port" (an optional trailing "/" allowed). InvalidArgument otherwise.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
absl::StatusOr<HostPort> ParseHttpUrl(std::string_view url);

// Checks what the YAML parser checks for deployments built elsewhere (route table JSON): names,
// unique replica ids, URLs, weights, alias collisions. Fills host/port from url.
absl::Status ValidateDeployments(std::vector<DeploymentConfig>& deployments);

}  // namespace weft::gateway
