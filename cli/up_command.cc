// SPDX-License-Identifier: Apache-2.0
// `weft up`: everything on one machine: `weft control` (SQLite under --data, the local provider)
// and `weft gateway` following its routes, as two child processes of this one; an admin key and a
// demo tenant key (printed once); a demo deployment of --model (a path or hf://), else of
// hf://ggml-org/models/tinyllamas/stories260K.gguf (downloaded into control's model cache, with a
// short connect timeout), else offline of stories260K from $WEFT_TEST_DATA, ./shared or
// ../shared, else of a random-weight `weft model synth` model (with a loud warning: its output is
// noise); then a ready-to-paste curl line. SIGINT/SIGTERM stop both children. Control listens on
// loopback only, without a token (the gateway reads its routes).
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/process.h"
#include "base/status.h"
#include "cli/commands.h"
#include "control/models/cache/model_cache.h"
#include "control/reconciler/http_fetch.h"
#include "engine/model/gguf_writer.h"
#include "engine/model/synth.h"
#include "gateway/auth/sqlite_key_store.h"
#include "nlohmann/json.hpp"

namespace weft::cli {

namespace {

namespace fs = std::filesystem;

constexpr char kDemoModelUri[] = "hf://ggml-org/models/tinyllamas/stories260K.gguf";

std::vector<std::string> TestDataRoots() {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("WEFT_TEST_DATA"); env != nullptr && *env) roots.push_back(env);
  roots.insert(roots.end(), {"./shared", "../shared"});
  return roots;
}

std::string FindTestData(const std::string& relative) {
  for (const std::string& r : TestDataRoots()) {
    fs::path p = fs::path(r) / relative;
    std::error_code ec;
    if (fs::exists(p, ec)) return fs::absolute(p, ec).string();
  }
  return "";
}

// An hf:// URI as a model source (the parts the cache needs).
absl::StatusOr<control::ModelSource> HfSource(const std::string& uri) {
  control::DeploymentSpec spec;
  spec.name = "up";
  spec.model.uri = uri;
  if (absl::Status s = control::ValidateSpec(spec); !s.ok()) return s;
  return spec.model;
}

// A byte-level SentencePiece vocabulary (<unk>, <s>, </s> and the 256 byte tokens): enough for a
// random-weight model to load and "speak" when no vocab GGUF is at hand.
absl::Status WriteByteVocab(const std::string& path) {
  model::GgufWriter w;
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(absl::StrFormat("<0x%02X>", b));
    scores.push_back(0);
    types.push_back(6);  // byte
  }
  w.SetString("general.architecture", "llama");
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetArray("tokenizer.ggml.scores", model::GgufType::kFloat32, scores.data(), scores.size());
  w.SetArray("tokenizer.ggml.token_type", model::GgufType::kInt32, types.data(), types.size());
  w.SetU32("tokenizer.ggml.unknown_token_id", 0);
  w.SetU32("tokenizer.ggml.bos_token_id", 1);
  w.SetU32("tokenizer.ggml.eos_token_id", 2);
  return w.WriteFile(path);
}

// The demo model when --model is not given: the URI or path to deploy, or an error.
absl::StatusOr<std::string> ChooseDemoModel(const std::string& data) {
  control::ModelCacheOptions o;
  o.dir = (fs::path(data) / "control" / "models").string();  // control's own cache: a hit there
  if (const char* e = std::getenv("HF_ENDPOINT"); e != nullptr && *e) o.hf_endpoint = e;
  if (const char* t = std::getenv("HF_TOKEN"); t != nullptr && *t) o.hf_token = t;
  o.connect_timeout_ms = 3000;  // offline machines fall back quickly
  o.low_speed_time_s = 15;
  auto cache = control::ModelCache::Create(o);
  if (!cache.ok()) return cache.status();
  WEFT_ASSIGN_OR_RETURN(control::ModelSource src, HfSource(kDemoModelUri));
  if ((*cache)->Lookup(src)) {
    std::printf("model: %s (cached)\n", kDemoModelUri);
    return std::string(kDemoModelUri);
  }
  std::printf("model: downloading %s ...\n", kDemoModelUri);
  std::fflush(stdout);
  absl::StatusOr<std::string> fetched = (*cache)->Fetch(src);
  if (fetched.ok()) return std::string(kDemoModelUri);
  std::fprintf(stderr, "weft up: %s\n", std::string(fetched.status().message()).c_str());

  if (std::string local = FindTestData("models/stories260K/stories260K.gguf"); !local.empty()) {
    std::printf("model: offline; using the local copy of stories260K at %s\n", local.c_str());
    return local;
  }
  const fs::path dir = fs::path(data) / "models";
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string vocab = FindTestData("vocab/ggml-vocab-llama-spm.gguf");
  if (vocab.empty()) {
    vocab = (dir / "byte-vocab.gguf").string();
    WEFT_RETURN_IF_ERROR(WriteByteVocab(vocab));
  }
  model::SynthOptions so;
  so.shape = "tiny";
  so.type = "f32";
  so.vocab_path = vocab;
  so.seed = 42;
  so.output_path = (dir / "synth-tiny-noise.gguf").string();
  WEFT_RETURN_IF_ERROR(model::SynthesizeModel(so));
  std::fprintf(stderr,
               "\n"
               "##########################################################################\n"
               "# WARNING: offline and no stories260K copy found, so the demo deployment  #\n"
               "# serves a RANDOM-WEIGHT model (`weft model synth`). ITS OUTPUT IS NOISE.  #\n"
               "# Pass --model PATH.gguf (or run once online) for a real model.           #\n"
               "##########################################################################\n\n");
  std::printf("model: %s (random weights: output is noise)\n", so.output_path.c_str());
  return so.output_path;
}

bool WaitHttp(const std::string& url, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    control::FetchRequest r;
    r.url = url;
    r.timeout_ms = 500;
    auto resp = control::HttpFetch(r);
    if (resp.ok() && resp->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string RandomHex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) out += absl::StrFormat("%02x", rd() & 0xff);
  return out;
}

}  // namespace

int UpCommand(int argc, char** argv) {
  auto args =
      Args::Parse(argc, argv, 2,
                  {{{"--model"}}, {{"--port"}}, {{"--control-port"}}, {{"--data"}}, {{"--name"}}});
  if (!args.ok()) return Fail(args.status());
  const std::string data = fs::absolute(args->GetString("--data", "./weft-data")).string();
  auto port = args->GetInt("--port", 8080);
  auto control_port = args->GetInt("--control-port", 7070);
  if (!port.ok()) return Fail(port.status());
  if (!control_port.ok()) return Fail(control_port.status());
  const std::string name = args->GetString("--name", "demo");
  std::error_code ec;
  fs::create_directories(fs::path(data) / "gateway", ec);
  std::string model = args->GetString("--model", "");
  if (model.empty()) {
    auto chosen = ChooseDemoModel(data);
    if (!chosen.ok()) return Fail(chosen.status());
    model = *chosen;
  } else if (!model.starts_with("hf://")) {
    if (!fs::exists(model, ec)) {
      return Fail(absl::NotFoundError(absl::StrCat("--model ", model, ": no such file")));
    }
    model = fs::absolute(model).string();
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Keys: an admin key (the gateway's admin API) and a demo tenant with one key.
  auto store = auth::SqliteKeyStore::Open((fs::path(data) / "gateway" / "keys.sqlite").string());
  if (!store.ok()) return Fail(store.status());
  const std::string admin_key = "wft_admin_" + RandomHex(16);
  {
    std::ofstream f(fs::path(data) / "admin.key");
    f << admin_key << "\n";
  }
  auth::Tenant demo;
  demo.id = "demo";
  if (!(*store)->GetTenant("demo").ok()) {
    if (absl::Status s = (*store)->CreateTenant(demo).status(); !s.ok()) return Fail(s);
  }
  auto key = (*store)->CreateKey({"demo", "weft up", 0, {}});
  if (!key.ok()) return Fail(key.status());
  store->reset();

  std::error_code ec2;
  const std::string self = fs::read_symlink("/proc/self/exe", ec2).string();
  const std::string control_url = absl::StrCat("http://127.0.0.1:", *control_port);
  auto control = Process::Spawn({self, "control", "--data", (fs::path(data) / "control").string(),
                                 "--port", std::to_string(*control_port)},
                                (fs::path(data) / "control.log").string());
  if (!control.ok()) return Fail(control.status());
  if (!WaitHttp(control_url + "/health", 30)) {
    return Fail(absl::UnavailableError(
        absl::StrCat("weft control did not start; see ", data, "/control.log")));
  }
  {
    std::ofstream f(fs::path(data) / "gateway.yaml");
    f << "listen: 127.0.0.1:" << *port << "\nadmin_key_env: WEFT_ADMIN_KEY\n"
      << "data_dir: " << (fs::path(data) / "gateway").string() << "\n"
      << "routes:\n  control_url: " << control_url << "\n";
  }
  setenv("WEFT_ADMIN_KEY", admin_key.c_str(), 1);
  auto gateway =
      Process::Spawn({self, "gateway", "--config", (fs::path(data) / "gateway.yaml").string()},
                     (fs::path(data) / "gateway.log").string());
  if (!gateway.ok()) return Fail(gateway.status());

  nlohmann::json spec = {{"name", name}, {"model", model}, {"replicas", {{"min", 1}, {"max", 2}}}};
  control::FetchRequest deploy;
  deploy.method = "POST";
  deploy.url = control_url + "/v1/deployments";
  deploy.body = spec.dump();
  auto resp = control::HttpFetch(deploy);
  if (!resp.ok()) return Fail(resp.status());
  if (resp->status >= 300) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("deploy: ", resp->body)));
  }
  const std::string gw = absl::StrCat("http://127.0.0.1:", *port);
  if (!WaitHttp(gw + "/health", 30)) {
    return Fail(absl::UnavailableError(
        absl::StrCat("weft gateway did not start; see ", data, "/gateway.log")));
  }
  // Ready once the deployment has a ready replica in the routes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool ready = false;
  while (!ready && std::chrono::steady_clock::now() < deadline) {
    control::FetchRequest r;
    r.url = control_url + "/weft/v1/routes";
    auto t = control::HttpFetch(r);
    if (t.ok() && t->status == 200) {
      auto j = nlohmann::json::parse(t->body, nullptr, false);
      if (j.is_object()) {
        for (const auto& d : j["deployments"]) {
          if (d["name"] == name && !d["replicas"].empty()) ready = true;
        }
      }
    }
    if (ready) break;
    // A deployment that failed (its model could not be fetched) will not become ready: say why.
    control::FetchRequest dr;
    dr.url = control_url + "/v1/deployments/" + name;
    if (auto d = control::HttpFetch(dr); d.ok() && d->status == 200) {
      auto j = nlohmann::json::parse(d->body, nullptr, false);
      if (j.is_object() && j.value("status", "").starts_with("Failed")) {
        return Fail(absl::FailedPreconditionError(
            absl::StrCat("deployment ", name, ": ", j.value("status", ""))));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (!ready) {
    return Fail(absl::DeadlineExceededError(absl::StrCat("no replica became ready; see ", data,
                                                         "/control/logs and `weft describe "
                                                         "deployment ",
                                                         name, "`")));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the gateway's first route poll
  std::printf("weft is up: gateway %s, control %s, data %s\n", gw.c_str(), control_url.c_str(),
              data.c_str());
  std::printf("admin key (written to %s/admin.key): %s\n", data.c_str(), admin_key.c_str());
  std::printf("demo tenant key (shown once): %s\n\n", key->plaintext.c_str());
  std::printf(
      "curl %s/v1/completions -H 'Authorization: Bearer %s' -H 'Content-Type: "
      "application/json' -d '{\"model\": \"%s\", \"prompt\": \"Once upon a time\", "
      "\"max_tokens\": 32}'\n",
      gw.c_str(), key->plaintext.c_str(), name.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "weft up: stopping\n");
  gateway->Signal(SIGTERM);
  control->Signal(SIGTERM);
  gateway->Wait(35);
  control->Wait(35);
  return 0;
}

}  // namespace weft::cli
