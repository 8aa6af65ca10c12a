// SPDX-License-Identifier: Apache-2.0
// DeploymentSpec: what a user declares with `weft deploy -f spec.yaml` (or POSTs as JSON to the
// control API): a model (+ adapters) to serve, on which accelerator, how many replicas, how to
// autoscale, where to place, who may call it, how to roll out a new version. Plain values; parsing
// is strict (unknown keys, wrong types and bad values are errors naming source, line and field
// path) and pure. Safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace weft::control {

// The spec format this library reads and writes (`api_version:`; optional on input).
inline constexpr std::string_view kDeploymentApiVersion = "weft/v1";

// Where model (or adapter) weights come from. The kind is derived from `uri` and `format`.
enum class ModelSourceKind {
  kLocalFile,      // a file on the provider's machine: "/models/x.gguf", "./stories.bin"
  kHuggingFace,    // "hf://org/repo/path/file.gguf": one file downloaded into the model cache
  kCheckpointDir,  // a local Hugging Face checkpoint directory (config.json + *.safetensors)
};
std::string_view ModelSourceKindName(ModelSourceKind kind);  // "local" | "hf" | "checkpoint_dir"

// On-disk format of the weights. kAuto on input is resolved by the parser: ".gguf" -> kGguf,
// ".bin" -> kLlama2c, a path ending in "/" or without extension -> kHfCheckpoint.
enum class ModelFormat { kAuto, kGguf, kLlama2c, kHfCheckpoint };
std::string_view ModelFormatName(ModelFormat format);  // "auto"|"gguf"|"llama2c"|"hf_checkpoint"

struct ModelSource {
  std::string uri;  // as written: a path or "hf://org/repo/path/file"
  ModelSourceKind kind = ModelSourceKind::kLocalFile;
  ModelFormat format = ModelFormat::kAuto;  // never kAuto after parsing or ValidateSpec
  std::string sha256;                       // 64 lowercase hex digits, or "" = not checked
  // For kHuggingFace: the parts of the URI (hf://<hf_org>/<hf_repo>/<hf_path>).
  std::string hf_org;
  std::string hf_repo;
  std::string hf_path;

  friend bool operator==(const ModelSource&, const ModelSource&) = default;
};

struct AcceleratorSpec {
  std::string kind = "cpu";  // one of KnownAcceleratorKinds()
  int32_t count = 1;         // devices (slots for cpu) per replica, in [1, 64]

  friend bool operator==(const AcceleratorSpec&, const AcceleratorSpec&) = default;
};

struct ReplicasSpec {
  int32_t min = 1;  // 0 only with autoscaling.scale_to_zero
  int32_t max = 1;  // >= max(min, 1)

  friend bool operator==(const ReplicasSpec&, const ReplicasSpec&) = default;
};

// What the autoscaler compares against its per-replica target.
enum class ScalingMetric {
  kConcurrency,    // running + waiting requests per replica (YAML: target_concurrency)
  kTokensInFlight  // tokens in flight per replica (YAML: target_tokens_in_flight)
};
std::string_view ScalingMetricName(ScalingMetric metric);  // "concurrency" | "tokens_in_flight"

struct AutoscalingSpec {
  ScalingMetric metric = ScalingMetric::kConcurrency;
  double target_per_replica = 8;  // in the metric's unit; > 0
  int64_t ttft_p95_ms = 0;        // time-to-first-token p95 SLO; 0 = none
  int64_t scale_down_delay_s = 300;
  // Idle (no load, no held request) for scale_down_delay_s -> zero replicas; the gateway holds
  // requests while the first replica starts again. replicas.min is then the floor while active.
  bool scale_to_zero = false;
  int64_t evaluation_period_s = 15;

  friend bool operator==(const AutoscalingSpec&, const AutoscalingSpec&) = default;
};

struct PlacementSpec {
  std::vector<std::string> providers;  // allowed provider names; empty = any (sorted, unique)
  std::vector<std::string> regions;    // allowed regions; empty = any (sorted, unique)
  int32_t spread_min_providers = 1;    // spread replicas over at least this many providers

  friend bool operator==(const PlacementSpec&, const PlacementSpec&) = default;
};

struct EngineSpec {
  int32_t threads = 0;  // 0 = the engine's default
  int32_t ctx = 0;      // context length in tokens; 0 = the model's

  friend bool operator==(const EngineSpec&, const EngineSpec&) = default;
};

// How a rolling update (a change of model, adapters or other replica template fields) proceeds.
// With canary_percent > 0 it first brings up ceil(desired x canary_percent / 100) replicas (at
// least 1) of the new generation beside all the old ones, routes about that share of the traffic
// to them (route weights; approximate, the balancers treat weight as capacity), holds for
// canary_hold_s once they are ready, then rolls on (surge one, drain one). A canary that fails
// during the hold pauses the rollout until the next spec change.
struct RolloutSpec {
  int32_t canary_percent = 0;   // in [0, 100]; 0 = no canary (surge one, drain one at once)
  int64_t canary_hold_s = 120;  // in [0, 604800]; how long the ready canaries are watched

  friend bool operator==(const RolloutSpec&, const RolloutSpec&) = default;
};

struct DeploymentSpec {
  std::string name;  // [a-z0-9][a-z0-9._-]{0,62}; what clients put in `model`
  ModelSource model;
  std::map<std::string, ModelSource> adapters;  // adapter name -> source (LoRA GGUF)
  std::string quantization;                     // "" = as stored; else KnownQuantizations()
  AcceleratorSpec accelerator;
  ReplicasSpec replicas;
  AutoscalingSpec autoscaling;
  PlacementSpec placement;
  std::vector<std::string> tenants;  // tenants allowed to call it; empty = any (sorted, unique)
  EngineSpec engine;
  RolloutSpec rollout;

  friend bool operator==(const DeploymentSpec&, const DeploymentSpec&) = default;
};

// Accepted values of accelerator.kind and quantization.
const std::vector<std::string>& KnownAcceleratorKinds();  // "cpu", "nvidia-h100", ...
const std::vector<std::string>& KnownQuantizations();     // "f32", "f16", "bf16", "q8_0", "q4_0"

// Parses a YAML document. `source` names it in errors: "spec.yaml:7: autoscaling.ttft_p95_ms:
// must be > 0". InvalidArgument for syntax errors, unknown keys, wrong types, invalid values.
// The result has passed ValidateSpec.
absl::StatusOr<DeploymentSpec> ParseDeploymentSpecYaml(std::string_view yaml,
                                                       std::string_view source = "<spec>");
// Reads and parses a file: NotFound if it cannot be read, otherwise as ParseDeploymentSpecYaml.
absl::StatusOr<DeploymentSpec> LoadDeploymentSpec(const std::string& path);

// Canonical JSON (the control API's body; the same shape as the YAML). Every field is written.
nlohmann::ordered_json SpecToJson(const DeploymentSpec& spec);
// Strict like the YAML parser (errors name the field path: "replicas.min: ..."); JSON strings
// are not accepted where numbers or booleans are expected. The result has passed ValidateSpec.
absl::StatusOr<DeploymentSpec> SpecFromJson(const nlohmann::json& json);
// Parses JSON text first (InvalidArgument when it is not JSON).
absl::StatusOr<DeploymentSpec> SpecFromJsonText(std::string_view text);

// Checks a spec built in code (or edited after parsing): names, ranges, cross-field rules.
// Normalizes as the parsers do (resolves kAuto formats and source kinds, splits hf:// URIs,
// lowercases sha256, sorts and dedups lists). InvalidArgument "field.path: message".
absl::Status ValidateSpec(DeploymentSpec& spec);

// Stable content hashes (64 hex digits, SHA-256 of canonical JSON), equal across processes and
// versions for equal specs. SpecDigest covers everything; ReplicaTemplateDigest only what a
// replica is built from (model, adapters, quantization, accelerator, engine args): when it
// changes, running replicas must be replaced (rolling update); other changes apply in place.
std::string SpecDigest(const DeploymentSpec& spec);
std::string ReplicaTemplateDigest(const DeploymentSpec& spec);
bool NeedsRollingUpdate(const DeploymentSpec& before, const DeploymentSpec& after);
// The top-level fields that differ ("model", "adapters", "replicas", ...), in declaration order.
std::vector<std::string> ChangedFields(const DeploymentSpec& before, const DeploymentSpec& after);

}  // namespace weft::control
