// SPDX-License-Identifier: Apache-2.0
// `weft up`: everything on one machine: `weft control` (SQLite under --data, the local provider)
// and `weft gateway` following its routes, as two child processes of this one; an admin key and a
// demo tenant key (printed once); a demo deployment of --model (else stories260K from
// $WEFT_TEST_DATA or ./shared, ../shared); then a ready-to-paste curl line. SIGINT/SIGTERM stop
// both children. Control listens on loopback only, without a token (the gateway reads its routes).
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
#include "cli/commands.h"
#include "control/reconciler/http_fetch.h"
#include "gateway/auth/sqlite_key_store.h"
#include "nlohmann/json.hpp"

namespace weft::cli {

namespace {

namespace fs = std::filesystem;

std::string FindDemoModel() {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("WEFT_TEST_DATA"); env != nullptr && *env) roots.push_back(env);
  roots.insert(roots.end(), {"./shared", "../shared", "/work/shared"});
  for (const std::string& r : roots) {
    fs::path p = fs::path(r) / "models/stories260K/stories260K.gguf";
    std::error_code ec;
    if (fs::exists(p, ec)) return fs::absolute(p, ec).string();
  }
  return "";
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
  std::string model = args->GetString("--model", "");
  if (model.empty()) model = FindDemoModel();
  if (model.empty()) {
    return Fail(absl::NotFoundError(
        "no model: pass --model PATH.gguf (stories260K was not found under $WEFT_TEST_DATA, "
        "./shared or ../shared; hf:// downloads and the `weft model synth` fallback are not "
        "wired into `weft up` yet)"));
  }
  model = fs::absolute(model).string();
  std::error_code ec;
  fs::create_directories(fs::path(data) / "gateway", ec);

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
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(200));
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
