// SPDX-License-Identifier: Apache-2.0
#include "control/deployments/deployment_spec.h"

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace weft::control {
namespace {

constexpr char kFull[] = R"(api_version: weft/v1
name: support-bot
model:
  source: hf://acme/llama-tune/gguf/model-q8_0.gguf
  sha256: SHA256:ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789
adapters:
  billing: ./adapters/billing.gguf
  legal: {source: /srv/adapters/legal, format: hf_checkpoint}
quantization: q8_0
accelerator: {kind: nvidia-h100, count: 2}
replicas: {min: 2, max: 8}
autoscaling:
  target_concurrency: 6
  ttft_p95_ms: 500
  scale_down_delay_s: 120
  scale_to_zero: false
  evaluation_period_s: 10
placement:
  providers: [lambda, coreweave, lambda]
  regions: [us-east-1]
  spread_min_providers: 2
tenants: [acme, Beta_Corp]
engine: {threads: 8, ctx: 4096}
rollout: {canary_percent: 10, canary_hold_s: 300}
)";

TEST(DeploymentSpecTest, ParsesEveryField) {
  auto spec = ParseDeploymentSpecYaml(kFull, "spec.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "support-bot");
  EXPECT_EQ(spec->model.kind, ModelSourceKind::kHuggingFace);
  EXPECT_EQ(spec->model.format, ModelFormat::kGguf);
  EXPECT_EQ(spec->model.hf_org, "acme");
  EXPECT_EQ(spec->model.hf_repo, "llama-tune");
  EXPECT_EQ(spec->model.hf_path, "gguf/model-q8_0.gguf");
  EXPECT_EQ(spec->model.sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  ASSERT_EQ(spec->adapters.size(), 2u);
  EXPECT_EQ(spec->adapters.at("billing").kind, ModelSourceKind::kLocalFile);
  EXPECT_EQ(spec->adapters.at("billing").format, ModelFormat::kGguf);
  EXPECT_EQ(spec->adapters.at("legal").kind, ModelSourceKind::kCheckpointDir);
  EXPECT_EQ(spec->quantization, "q8_0");
  EXPECT_EQ(spec->accelerator.kind, "nvidia-h100");
  EXPECT_EQ(spec->accelerator.count, 2);
  EXPECT_EQ(spec->replicas.min, 2);
  EXPECT_EQ(spec->replicas.max, 8);
  EXPECT_EQ(spec->autoscaling.metric, ScalingMetric::kConcurrency);
  EXPECT_EQ(spec->autoscaling.target_per_replica, 6);
  EXPECT_EQ(spec->autoscaling.ttft_p95_ms, 500);
  EXPECT_EQ(spec->autoscaling.scale_down_delay_s, 120);
  EXPECT_FALSE(spec->autoscaling.scale_to_zero);
  EXPECT_EQ(spec->autoscaling.evaluation_period_s, 10);
  EXPECT_EQ(spec->placement.providers, (std::vector<std::string>{"coreweave", "lambda"}));
  EXPECT_EQ(spec->placement.regions, (std::vector<std::string>{"us-east-1"}));
  EXPECT_EQ(spec->placement.spread_min_providers, 2);
  EXPECT_EQ(spec->tenants, (std::vector<std::string>{"Beta_Corp", "acme"}));
  EXPECT_EQ(spec->engine.threads, 8);
  EXPECT_EQ(spec->engine.ctx, 4096);
  EXPECT_EQ(spec->rollout.canary_percent, 10);
  EXPECT_EQ(spec->rollout.canary_hold_s, 300);
}

TEST(DeploymentSpecTest, MinimalSpecGetsDefaults) {
  auto spec = ParseDeploymentSpecYaml("name: tiny\nmodel: ./stories260K.bin\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model.kind, ModelSourceKind::kLocalFile);
  EXPECT_EQ(spec->model.format, ModelFormat::kLlama2c);
  EXPECT_EQ(spec->accelerator.kind, "cpu");
  EXPECT_EQ(spec->accelerator.count, 1);
  EXPECT_EQ(spec->replicas.min, 1);
  EXPECT_EQ(spec->replicas.max, 1);
  EXPECT_EQ(spec->autoscaling.metric, ScalingMetric::kConcurrency);
  EXPECT_EQ(spec->autoscaling.ttft_p95_ms, 0);
  EXPECT_EQ(spec->placement.spread_min_providers, 1);
  EXPECT_TRUE(spec->tenants.empty());
  EXPECT_TRUE(spec->adapters.empty());
}

TEST(DeploymentSpecTest, Shorthands) {
  auto spec = ParseDeploymentSpecYaml(
      "name: a\nmodel: /m/hf-dir/\naccelerator: nvidia-l4\nreplicas: 3\ntenants: acme\n"
      "autoscaling: {target_tokens_in_flight: 4096}\nplacement: {providers: local}\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model.kind, ModelSourceKind::kCheckpointDir);
  EXPECT_EQ(spec->accelerator.kind, "nvidia-l4");
  EXPECT_EQ(spec->replicas.min, 3);
  EXPECT_EQ(spec->replicas.max, 3);
  EXPECT_EQ(spec->tenants, std::vector<std::string>{"acme"});
  EXPECT_EQ(spec->placement.providers, std::vector<std::string>{"local"});
  EXPECT_EQ(spec->autoscaling.metric, ScalingMetric::kTokensInFlight);
  EXPECT_EQ(spec->autoscaling.target_per_replica, 4096);
  // replicas.max defaults to min.
  auto r = ParseDeploymentSpecYaml("name: a\nmodel: m.gguf\nreplicas: {min: 4}\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->replicas.max, 4);
}

// Every error: the YAML, and the exact prefix of the message (source:line: path: ...).
struct ErrorCase {
  const char* yaml;
  const char* want;  // a prefix of the error message
};

constexpr char kBase[] = "name: a\nmodel: m.gguf\n";  // lines 1-2; cases append from line 3

const ErrorCase kErrorCases[] = {
    // syntax and shape
    {"name: [a\n", "spec.yaml:2: "},
    {"", "spec.yaml: empty deployment spec"},
    {"- a\n- b\n", "spec.yaml:1: (top): expected a mapping"},
    {"name: a\nmodel: m.gguf\nmodle: x\n", "spec.yaml:3: modle: unknown field (known: "},
    {"name: a\nname: b\nmodel: m.gguf\n", "spec.yaml:2: name: duplicate field"},
    {"api_version: weft/v2\nname: a\nmodel: m.gguf\n",
     "spec.yaml:1: api_version: expected weft/v1"},
    {"? [a]\n: b\n", "spec.yaml:1: : keys must be plain strings"},
    // name
    {"model: m.gguf\n", "spec.yaml: name: required"},
    {"name: Bad_Name\nmodel: m.gguf\n", "spec.yaml:1: name: bad deployment name \"Bad_Name\""},
    {"name: a:b\nmodel: m.gguf\n", "spec.yaml:1: name: bad deployment name"},
    {"name: [a]\nmodel: m.gguf\n", "spec.yaml:1: name: expected a string"},
    // model
    {"name: a\n", "spec.yaml: model.source: required"},
    {"name: a\nmodel: {sha256: ab}\n", "spec.yaml:2: model.source: required"},
    {"name: a\nmodel: {source: m.gguf, sha: x}\n", "spec.yaml:2: model.sha: unknown field"},
    {"name: a\nmodel: s3://bucket/m.gguf\n", "spec.yaml:2: model.source: unsupported scheme"},
    {"name: a\nmodel: hf://org/file.gguf\n", "spec.yaml:2: model.source: expected hf://org/repo/"},
    {"name: a\nmodel: hf://org/repo/../x.gguf\n", "spec.yaml:2: model.source: empty, '.' or '..'"},
    {"name: a\nmodel: hf://o rg/repo/x.gguf\n", "spec.yaml:2: model.source: bad Hugging Face org"},
    {"name: a\nmodel: hf://org/re$po/x.gguf\n", "spec.yaml:2: model.source: bad Hugging Face repo"},
    {"name: a\nmodel: hf://org/repo/dir/\n", "spec.yaml:2: model.source: empty, '.' or '..'"},
    {"name: a\nmodel: {source: hf://org/repo/dir, format: hf_checkpoint}\n",
     "spec.yaml:2: model.source: an hf:// source names one file"},
    {"name: a\nmodel: m.safetensors\n", "spec.yaml:2: model.format: cannot tell the format"},
    {"name: a\nmodel: {source: m.gguf, format: onnx}\n",
     "spec.yaml:2: model.format: expected auto, gguf, llama2c or hf_checkpoint"},
    {"name: a\nmodel:\n  source: m.gguf\n  sha256: 1234\n",
     "spec.yaml:4: model.sha256: expected 64 hex digits"},
    {"name: a\nmodel:\n  source: ./dir/\n  sha256: "
     "0000000000000000000000000000000000000000000000000000000000000000\n",
     "spec.yaml:4: model.sha256: a checkpoint directory has no single checksum"},
    {"name: a\nmodel: \"m\\x01.gguf\"\n",
     "spec.yaml:2: model.source: contains a control character"},
    {"name: a\nmodel: ./sto\xb6ries.bin\n", "spec.yaml:2: model.source: not valid UTF-8"},
    {"name: a\nmodel: ./\xed\xa0\x80.bin\n", "spec.yaml:2: model.source: not valid UTF-8"},
    {"name: a\nmodel: ./\xc0\xaf.bin\n", "spec.yaml:2: model.source: not valid UTF-8"},
    // adapters
    {"name: a\nmodel: m.gguf\nadapters: [x]\n", "spec.yaml:3: adapters: expected a mapping"},
    {"name: a\nmodel: m.gguf\nadapters:\n  ok: a.gguf\n  \"b c\": b.gguf\n",
     "spec.yaml:5: adapters.b c: bad adapter name"},
    {"name: a\nmodel: m.gguf\nadapters:\n  x:\n", "spec.yaml:4: adapters.x: expected a source"},
    {"name: a\nmodel: m.gguf\nadapters:\n  x: {path: a.gguf}\n",
     "spec.yaml:4: adapters.x.path: unknown field"},
    {"name: a\nmodel: m.gguf\nadapters:\n  x: ftp://a/b.gguf\n",
     "spec.yaml:4: adapters.x.source: unsupported scheme"},
    // quantization, accelerator
    {"name: a\nmodel: m.gguf\nquantization: q3_k\n", "spec.yaml:3: quantization: unknown \"q3_k\""},
    {"name: a\nmodel: m.gguf\naccelerator: {kind: nvidia-h10}\n",
     "spec.yaml:3: accelerator.kind: unknown \"nvidia-h10\""},
    {"name: a\nmodel: m.gguf\naccelerator: tpu\n", "spec.yaml:3: accelerator.kind: unknown"},
    {"name: a\nmodel: m.gguf\naccelerator: {kind: cpu, count: 0}\n",
     "spec.yaml:3: accelerator.count: must be in [1, 64], got 0"},
    {"name: a\nmodel: m.gguf\naccelerator:\n  count: two\n",
     "spec.yaml:4: accelerator.count: expected an integer"},
    {"name: a\nmodel: m.gguf\naccelerator: {kind: cpu, cores: 2}\n",
     "spec.yaml:3: accelerator.cores: unknown field"},
    // replicas
    {"name: a\nmodel: m.gguf\nreplicas:\n  min: 3\n  max: 2\n",
     "spec.yaml:5: replicas.max: must be >= replicas.min (3), got 2"},
    {"name: a\nmodel: m.gguf\nreplicas: {min: 0, max: 2}\n",
     "spec.yaml:3: replicas.min: 0 needs autoscaling.scale_to_zero: true"},
    {"name: a\nmodel: m.gguf\nreplicas: {min: -1}\n",
     "spec.yaml:3: replicas.min: must be in [0, 1000]"},
    {"name: a\nmodel: m.gguf\nreplicas: {min: 1, max: 1001}\n",
     "spec.yaml:3: replicas.max: must be in [1, 1000]"},
    {"name: a\nmodel: m.gguf\nreplicas: {min: \"2\"}\n",
     "spec.yaml:3: replicas.min: expected an integer"},
    {"name: a\nmodel: m.gguf\nreplicas: 0\n", "spec.yaml:3: replicas: must be in [1, 1000]"},
    {"name: a\nmodel: m.gguf\nreplicas: {min: 1.5}\n",
     "spec.yaml:3: replicas.min: expected an integer"},
    // autoscaling
    {"name: a\nmodel: m.gguf\nautoscaling: {target_concurrency: 0}\n",
     "spec.yaml:3: autoscaling.target_concurrency: must be > 0, got 0"},
    {"name: a\nmodel: m.gguf\nautoscaling: {target_concurrency: nan}\n",
     "spec.yaml:3: autoscaling.target_concurrency: expected a number"},
    {"name: a\nmodel: m.gguf\nautoscaling:\n  target_concurrency: 4\n  target_tokens_in_flight: "
     "9\n",
     "spec.yaml:5: autoscaling.target_tokens_in_flight: set either target_concurrency or"},
    {"name: a\nmodel: m.gguf\nautoscaling: {target_tokens_in_flight: -5}\n",
     "spec.yaml:3: autoscaling.target_tokens_in_flight: must be > 0"},
    {"name: a\nmodel: m.gguf\nreplicas: 2\nautoscaling:\n  scale_to_zero: true\n  ttft_p95_ms: 0\n",
     "spec.yaml:6: autoscaling.ttft_p95_ms: must be > 0"},
    {"name: a\nmodel: m.gguf\nautoscaling: {scale_down_delay_s: -1}\n",
     "spec.yaml:3: autoscaling.scale_down_delay_s: must be in [0, 604800]"},
    {"name: a\nmodel: m.gguf\nautoscaling: {evaluation_period_s: 0}\n",
     "spec.yaml:3: autoscaling.evaluation_period_s: must be in [1, 3600]"},
    {"name: a\nmodel: m.gguf\nautoscaling: {scale_to_zero: maybe}\n",
     "spec.yaml:3: autoscaling.scale_to_zero: expected true or false"},
    {"name: a\nmodel: m.gguf\nautoscaling: {scale_to_zero: \"true\"}\n",
     "spec.yaml:3: autoscaling.scale_to_zero: expected true or false"},
    {"name: a\nmodel: m.gguf\nautoscaling: {target: 3}\n",
     "spec.yaml:3: autoscaling.target: unknown field"},
    // placement
    {"name: a\nmodel: m.gguf\nplacement: {spread_min_providers: 2}\n",
     "spec.yaml:3: placement.spread_min_providers: 2 needs replicas.max >= 2, got 1"},
    {"name: a\nmodel: m.gguf\nreplicas: {min: 1, max: 4}\nplacement:\n  providers: [a]\n"
     "  spread_min_providers: 2\n",
     "spec.yaml:6: placement.spread_min_providers: 2 exceeds the 1 allowed providers"},
    {"name: a\nmodel: m.gguf\nplacement:\n  providers: [ok, \"Not OK\"]\n",
     "spec.yaml:4: placement.providers[1]: bad provider \"Not OK\""},
    {"name: a\nmodel: m.gguf\nplacement:\n  regions: [{a: b}]\n",
     "spec.yaml:4: placement.regions[0]: expected a string"},
    {"name: a\nmodel: m.gguf\nplacement:\n  regions: {a: b}\n",
     "spec.yaml:4: placement.regions: expected a list of strings"},
    {"name: a\nmodel: m.gguf\nplacement: {spread_min_providers: 0}\n",
     "spec.yaml:3: placement.spread_min_providers: must be in [1, 64]"},
    {"name: a\nmodel: m.gguf\nplacement: {zones: [a]}\n",
     "spec.yaml:3: placement.zones: unknown field"},
    // tenants, engine
    {"name: a\nmodel: m.gguf\ntenants:\n  - acme\n  - \"*\"\n",
     "spec.yaml:5: tenants[1]: bad tenant \"*\""},
    {"name: a\nmodel: m.gguf\nengine: {threads: -1}\n",
     "spec.yaml:3: engine.threads: must be in [0, 1024]"},
    {"name: a\nmodel: m.gguf\nengine:\n  ctx: 8\n",
     "spec.yaml:4: engine.ctx: must be 0 (the model's) or in [16,"},
    {"name: a\nmodel: m.gguf\nengine: {batch: 8}\n", "spec.yaml:3: engine.batch: unknown field"},
    // rollout
    {"name: a\nmodel: m.gguf\nrollout: {canary_percent: 101}\n",
     "spec.yaml:3: rollout.canary_percent: must be in [0, 100] (0 = no canary), got 101"},
    {"name: a\nmodel: m.gguf\nrollout:\n  canary_percent: -5\n",
     "spec.yaml:4: rollout.canary_percent: must be in [0, 100]"},
    {"name: a\nmodel: m.gguf\nrollout: {canary_percent: \"10\"}\n",
     "spec.yaml:3: rollout.canary_percent: expected an integer"},
    {"name: a\nmodel: m.gguf\nrollout: {canary_hold_s: -1}\n",
     "spec.yaml:3: rollout.canary_hold_s: must be in [0, 604800], got -1"},
    {"name: a\nmodel: m.gguf\nrollout: {canary: 10}\n",
     "spec.yaml:3: rollout.canary: unknown field"},
    {"name: a\nmodel: m.gguf\nrollout: 10\n", "spec.yaml:3: rollout: expected a mapping"},
};

TEST(DeploymentSpecTest, EveryErrorNamesLineAndField) {
  for (const ErrorCase& c : kErrorCases) {
    auto spec = ParseDeploymentSpecYaml(c.yaml, "spec.yaml");
    ASSERT_FALSE(spec.ok()) << c.yaml;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << c.yaml;
    std::string msg(spec.status().message());
    EXPECT_TRUE(msg.starts_with(c.want)) << "yaml:\n"
                                         << c.yaml << "got:  " << msg << "\nwant: " << c.want;
  }
}

TEST(DeploymentSpecTest, Utf8PathsAreFine) {
  auto spec = ParseDeploymentSpecYaml("name: a\nmodel: ./modèles/日本/m\xf0\x9f\x98\x80.gguf\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto back = SpecFromJsonText(SpecToJson(*spec).dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, *spec);
}

TEST(DeploymentSpecTest, BriefExampleMessage) {
  std::string yaml = std::string(kBase) +
                     "replicas: {min: 1, max: 3}\nautoscaling:\n  target_concurrency: 4\n"
                     "  scale_down_delay_s: 60\n  ttft_p95_ms: -3\n";
  auto spec = ParseDeploymentSpecYaml(yaml, "spec.yaml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(),
            "spec.yaml:7: autoscaling.ttft_p95_ms: must be > 0 (omit: no SLO), got -3");
}

// A random valid spec: every field drawn from its valid range.
DeploymentSpec RandomSpec(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  DeploymentSpec s;
  s.name = "dep-" + std::to_string(pick(1000));
  const char* sources[] = {"./m.gguf", "/models/x.bin", "/ckpt/llama/", "hf://org/repo/a/b.gguf",
                           "hf://Org.X/re_po/m.bin"};
  s.model.uri = sources[pick(5)];
  if (pick(2) && !s.model.uri.ends_with("/")) s.model.sha256 = std::string(64, "0af"[pick(3)]);
  for (int i = pick(4); i > 0; --i) {
    ModelSource a;
    a.uri =
        pick(2) ? "hf://o/r/ad" + std::to_string(i) + ".gguf" : "/adapters/a" + std::to_string(i);
    s.adapters["ad" + std::to_string(pick(10))] = a;
  }
  if (pick(2)) s.quantization = KnownQuantizations()[pick(5)];
  s.accelerator.kind =
      KnownAcceleratorKinds()[pick(static_cast<int>(KnownAcceleratorKinds().size()))];
  s.accelerator.count = 1 + pick(8);
  s.autoscaling.scale_to_zero = pick(2);
  s.replicas.min = pick(5) + (s.autoscaling.scale_to_zero ? 0 : 1);
  s.replicas.max = std::max(s.replicas.min, 1) + pick(10);
  s.autoscaling.metric = pick(2) ? ScalingMetric::kConcurrency : ScalingMetric::kTokensInFlight;
  s.autoscaling.target_per_replica = pick(2) ? 1 + pick(64) : 0.25 + pick(1000) / 7.0;
  s.autoscaling.ttft_p95_ms = pick(2) ? 0 : 1 + pick(5000);
  s.autoscaling.scale_down_delay_s = pick(1000);
  s.autoscaling.evaluation_period_s = 1 + pick(60);
  for (int i = pick(4); i > 0; --i) s.placement.providers.push_back("p" + std::to_string(pick(6)));
  for (int i = pick(3); i > 0; --i) s.placement.regions.push_back("r" + std::to_string(pick(6)));
  int limit = std::min<int>(s.replicas.max,
                            s.placement.providers.empty() ? 64 : s.placement.providers.size());
  s.placement.spread_min_providers = 1 + pick(std::max(1, limit));
  for (int i = pick(4); i > 0; --i) s.tenants.push_back("t" + std::to_string(pick(6)));
  s.engine.threads = pick(17);
  s.engine.ctx = pick(2) ? 0 : 16 << pick(10);
  s.rollout.canary_percent = pick(2) ? 0 : pick(101);
  s.rollout.canary_hold_s = pick(3) ? pick(3600) : 604800;
  return s;
}

TEST(DeploymentSpecTest, SeededJsonRoundTrip) {
  std::mt19937_64 rng(20240517);
  for (int i = 0; i < 1000; ++i) {
    DeploymentSpec s = RandomSpec(rng);
    absl::Status valid = ValidateSpec(s);
    // Spread may exceed the deduplicated provider list: then the error names the field.
    if (!valid.ok()) {
      EXPECT_TRUE(std::string(valid.message()).starts_with("placement.spread_min_providers"))
          << valid;
      continue;
    }
    nlohmann::ordered_json j = SpecToJson(s);
    auto back = SpecFromJsonText(j.dump());
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << j.dump(2);
    EXPECT_EQ(*back, s) << j.dump(2);
    EXPECT_EQ(SpecDigest(*back), SpecDigest(s));
    EXPECT_EQ(SpecToJson(*back), j);
    // The JSON is also valid YAML with the same meaning.
    auto yaml = ParseDeploymentSpecYaml(j.dump(2), "json.yaml");
    ASSERT_TRUE(yaml.ok()) << yaml.status();
    EXPECT_EQ(*yaml, s);
  }
}

TEST(DeploymentSpecTest, JsonIsStrictAboutTypes) {
  auto base = SpecToJson(*ParseDeploymentSpecYaml(kFull));
  {
    auto j = base;
    j["replicas"]["min"] = "2";
    auto s = SpecFromJson(j);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(std::string(s.status().message()).starts_with("replicas.min: expected an integer"))
        << s.status();
  }
  {
    auto j = base;
    j["autoscaling"]["scale_to_zero"] = "yes";
    auto s = SpecFromJson(j);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(std::string(s.status().message()).starts_with("autoscaling.scale_to_zero"));
  }
  {
    auto j = base;
    j["extra"] = 1;
    auto s = SpecFromJson(j);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(std::string(s.status().message()).starts_with("extra: unknown field"));
  }
  {
    auto j = base;
    j["placement"]["spread_min_providers"] = 9;
    auto s = SpecFromJson(j);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(std::string(s.status().message())
                    .starts_with("placement.spread_min_providers: 9 needs replicas.max >= 9"))
        << s.status();
  }
  EXPECT_FALSE(SpecFromJsonText("{not json").ok());
  EXPECT_FALSE(SpecFromJsonText("[]").ok());
  EXPECT_FALSE(SpecFromJsonText("null").ok());
}

TEST(DeploymentSpecTest, DigestsTellWhatChanged) {
  DeploymentSpec a = *ParseDeploymentSpecYaml(kFull);
  EXPECT_EQ(SpecDigest(a).size(), 64u);
  EXPECT_EQ(ReplicaTemplateDigest(a).size(), 64u);
  // Stable across runs and builds: pinned.
  DeploymentSpec tiny = *ParseDeploymentSpecYaml("name: tiny\nmodel: ./stories260K.bin\n");
  EXPECT_EQ(SpecToJson(tiny).dump(),
            R"({"api_version":"weft/v1","name":"tiny","model":{"source":"./stories260K.bin",)"
            R"("format":"llama2c","sha256":null},"adapters":{},"quantization":null,)"
            R"("accelerator":{"kind":"cpu","count":1},"replicas":{"min":1,"max":1},)"
            R"("autoscaling":{"target_concurrency":8.0,"ttft_p95_ms":null,)"
            R"("scale_down_delay_s":300,"scale_to_zero":false,"evaluation_period_s":15},)"
            R"("placement":{"providers":[],"regions":[],"spread_min_providers":1},)"
            R"("tenants":[],"engine":{"threads":0,"ctx":0},)"
            R"("rollout":{"canary_percent":0,"canary_hold_s":120}})");

  DeploymentSpec scaled = a;
  scaled.replicas.max = 9;
  scaled.autoscaling.ttft_p95_ms = 300;
  EXPECT_NE(SpecDigest(scaled), SpecDigest(a));
  EXPECT_EQ(ReplicaTemplateDigest(scaled), ReplicaTemplateDigest(a));
  EXPECT_FALSE(NeedsRollingUpdate(a, scaled));
  EXPECT_EQ(ChangedFields(a, scaled), (std::vector<std::string>{"replicas", "autoscaling"}));

  DeploymentSpec retuned = a;
  retuned.adapters["billing"].uri = "./adapters/billing-v2.gguf";
  EXPECT_TRUE(NeedsRollingUpdate(a, retuned));
  EXPECT_EQ(ChangedFields(a, retuned), std::vector<std::string>{"adapters"});

  DeploymentSpec remodel = a;
  remodel.model.sha256.clear();
  EXPECT_TRUE(NeedsRollingUpdate(a, remodel));
  EXPECT_EQ(ChangedFields(a, remodel), std::vector<std::string>{"model"});
  EXPECT_TRUE(ChangedFields(a, a).empty());

  // The rollout policy says how to roll, not what replicas run: changing it rolls nothing.
  DeploymentSpec canary = a;
  canary.rollout.canary_percent = 25;
  EXPECT_FALSE(NeedsRollingUpdate(a, canary));
  EXPECT_EQ(ChangedFields(a, canary), std::vector<std::string>{"rollout"});
}

TEST(DeploymentSpecTest, ValidateSpecOnCodeBuiltSpecs) {
  DeploymentSpec s;
  EXPECT_EQ(ValidateSpec(s).message(), "name: required");
  s.name = "x";
  s.model.uri = "hf://a/b/c.gguf";
  ASSERT_TRUE(ValidateSpec(s).ok());
  EXPECT_EQ(s.model.kind, ModelSourceKind::kHuggingFace);
  EXPECT_EQ(s.model.hf_path, "c.gguf");
  s.autoscaling.target_per_replica = 0;
  EXPECT_EQ(ValidateSpec(s).message(), "autoscaling.target_concurrency: must be > 0");
  s.autoscaling.target_per_replica = 1;
  s.autoscaling.ttft_p95_ms = -1;
  EXPECT_TRUE(std::string(ValidateSpec(s).message()).starts_with("autoscaling.ttft_p95_ms: "));
  s.autoscaling.ttft_p95_ms = 0;
  s.rollout.canary_percent = 101;
  EXPECT_EQ(ValidateSpec(s).message(),
            "rollout.canary_percent: must be in [0, 100] (0 = no canary), got 101");
  s.rollout.canary_percent = 100;
  s.rollout.canary_hold_s = -1;
  EXPECT_EQ(ValidateSpec(s).message(), "rollout.canary_hold_s: must be in [0, 604800], got -1");
  s.rollout.canary_hold_s = 0;
  ASSERT_TRUE(ValidateSpec(s).ok());
  s.adapters["a b"].uri = "x.gguf";
  EXPECT_TRUE(std::string(ValidateSpec(s).message()).starts_with("adapters.a b: bad adapter name"));
}

TEST(DeploymentSpecTest, LoadFromFile) {
  EXPECT_EQ(LoadDeploymentSpec("/nonexistent/spec.yaml").status().code(),
            absl::StatusCode::kNotFound);
  std::string path = ::testing::TempDir() + "/weft_spec_test.yaml";
  {
    std::ofstream out(path);
    out << kBase << "engine: {ctx: 1}\n";
  }
  auto s = LoadDeploymentSpec(path);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(std::string(s.status().message()).starts_with(path + ":3: engine.ctx: "))
      << s.status();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace weft::control
