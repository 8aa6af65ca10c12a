// SPDX-License-Identifier: Apache-2.0
// `weft control`: the control plane in one process: the store (SQLite under --data, or --store
// postgres://...), the providers (--providers FILE.yaml, control/providers/provider_config.h; by
// default one local provider: engines as child processes of this one), the control loop
// (only while this instance is the leader; others on the same store stand by) and the HTTP API.
// And its clients: `weft deploy -f SPEC`, `weft get deployments|replicas|providers`,
// `weft describe deployment NAME`, `weft delete NAME`, `weft scale NAME --min N --max M`.
// SIGTERM/SIGINT: stop the loop, stop the engines, exit 0.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "control/deployments/deployment_spec.h"
#include "control/models/cache/model_cache.h"
#include "control/providers/provider_config.h"
#include "control/reconciler/controller.h"
#include "control/reconciler/http_fetch.h"
#include "control/server/control_server.h"
#include "control/store/open_control_store.h"
#include "nlohmann/json.hpp"

namespace weft::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr char kDefaultControlUrl[] = "http://127.0.0.1:7070";

std::string SelfExe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

// The model cache under --data: hf:// files are downloaded there (HF_ENDPOINT, HF_TOKEN as the
// Hugging Face tools read them); local paths must exist on this machine.
absl::StatusOr<std::unique_ptr<control::ModelCache>> OpenModelCache(const std::string& data) {
  control::ModelCacheOptions o;
  o.dir = (fs::path(data) / "models").string();
  if (const char* e = std::getenv("HF_ENDPOINT"); e != nullptr && *e) o.hf_endpoint = e;
  if (const char* t = std::getenv("HF_TOKEN"); t != nullptr && *t) o.hf_token = t;
  return control::ModelCache::Create(std::move(o));
}

std::string ControlUrl(const Args& args) {
  if (auto u = args.Get("--control")) return *u;
  if (const char* env = std::getenv("WEFT_CONTROL_URL"); env != nullptr && *env) return env;
  return kDefaultControlUrl;
}
std::string Token(const Args& args) {
  if (auto t = args.Get("--token")) return *t;
  if (const char* env = std::getenv("WEFT_TOKEN"); env != nullptr) return env;
  return "";
}

// One API call; prints the error and returns nullopt when it fails or answers >= 400.
std::optional<json> Api(const Args& args, const std::string& method, const std::string& path,
                        const std::string& body = "", const std::string& content_type = "") {
  control::FetchRequest r;
  r.method = method;
  r.url = ControlUrl(args) + path;
  r.body = body;
  if (!content_type.empty()) r.content_type = content_type;
  r.bearer_token = Token(args);
  r.timeout_ms = 15000;
  absl::StatusOr<control::FetchResponse> resp = control::HttpFetch(r);
  if (!resp.ok()) {
    std::fprintf(stderr, "weft: %s: %s\n", r.url.c_str(),
                 std::string(resp.status().message()).c_str());
    return std::nullopt;
  }
  json j = json::parse(resp->body, nullptr, /*allow_exceptions=*/false);
  if (resp->status >= 400) {
    std::string message = resp->body;
    if (!j.is_discarded() && j.contains("error") && j["error"].contains("message")) {
      message = j["error"]["message"].get<std::string>();
    }
    std::fprintf(stderr, "weft: %s (HTTP %d)\n", message.c_str(), resp->status);
    return std::nullopt;
  }
  if (j.is_discarded()) return json::object();
  return j;
}

const std::vector<FlagSpec> kClientFlags = {{{"--control"}}, {{"--token"}}, {{"-o", "--output"}}};

std::vector<FlagSpec> WithClientFlags(std::vector<FlagSpec> more) {
  for (const FlagSpec& f : kClientFlags) more.push_back(f);
  return more;
}

bool WantJson(const Args& args) { return args.GetString("--output", "") == "json"; }

}  // namespace

int ControlCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2,
                          {{{"--data"}},
                           {{"--store"}},
                           {{"--host"}},
                           {{"--port"}},
                           {{"--local-slots"}},
                           {{"--providers"}},
                           {{"--token"}},
                           {{"--tick"}}});
  if (!args.ok()) return Fail(args.status());
  const std::string data = args->GetString("--data", "./weft-data");
  const std::string store_spec =
      args->GetString("--store", (fs::path(data) / "control.sqlite").string());
  const std::string host = args->GetString("--host", "127.0.0.1");
  auto port = args->GetInt("--port", 7070);
  auto slots = args->GetInt("--local-slots", 2);
  auto tick = args->GetDouble("--tick", 0.5);
  if (!port.ok()) return Fail(port.status());
  if (!slots.ok()) return Fail(slots.status());
  if (!tick.ok()) return Fail(tick.status());
  std::error_code ec;
  fs::create_directories(data, ec);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto store = control::OpenControlStore(store_spec);
  if (!store.ok()) return Fail(store.status());
  auto elector = control::OpenLeaderElector(store_spec);
  if (!elector.ok()) return Fail(elector.status());

  // The providers: from --providers, else one local provider with --local-slots slots.
  std::vector<control::ProviderConfig> configs;
  if (auto file = args->Get("--providers")) {
    if (args->Has("--local-slots")) {
      return Fail(absl::InvalidArgumentError(
          "--local-slots: not with --providers (give slots: in the providers file)"));
    }
    auto loaded = control::LoadProvidersFile(*file);
    if (!loaded.ok()) return Fail(loaded.status());
    configs = *std::move(loaded);
  } else {
    control::ProviderConfig local;
    local.name = "local";
    local.kind = "local";
    local.slots = static_cast<int>(*slots);
    configs.push_back(local);
  }
  control::ProviderEnvironment penv;
  penv.weft_binary = SelfExe();
  penv.data_dir = data;
  auto providers = control::BuildProviders(configs, penv);
  if (!providers.ok()) return Fail(providers.status());
  std::vector<control::ProviderEntry> entries;
  for (const control::BuiltProvider& p : *providers) {
    entries.push_back({p.name, p.kind, p.provider.get()});
  }

  auto models = OpenModelCache(data);
  if (!models.ok()) return Fail(models.status());

  // Requests the gateways hold for deployments with no ready replica (POST /weft/v1/demand): the
  // autoscaler scales those from zero.
  control::DemandBook demand;
  control::ControllerOptions co;
  co.tick_interval_s = *tick;
  co.held_requests = [&demand](const std::string& d) { return demand.Held(d); };
  co.models = models->get();
  control::Controller controller(store->get(), entries, co);

  control::ControlServerOptions so;
  so.http.host = host;
  so.http.port = static_cast<uint16_t>(*port);
  so.http.threads = 2;
  so.admin_token = args->GetString("--token", "");
  so.demand = &demand;
  control::LeaderElector* el = elector->get();
  so.is_leader = [el] { return el->IsLeader(); };
  control::ControlServer server(store->get(), so);
  if (absl::Status s = server.Start(); !s.ok()) return Fail(s);

  absl::Status campaign = el->Campaign([&](bool leader) {
    if (leader) {
      if (absl::Status s = controller.Init(); !s.ok()) {
        std::fprintf(stderr, "weft control: registering providers: %s\n",
                     std::string(s.message()).c_str());
      }
      controller.Start();
      std::fprintf(stderr, "weft control: leader; reconciling\n");
    } else {
      controller.Stop();
      std::fprintf(stderr, "weft control: standby\n");
    }
  });
  if (!campaign.ok()) return Fail(campaign);
  std::printf("weft control listening on http://%s:%u (store %s)\n", host.c_str(), server.port(),
              store_spec.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "weft control: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  el->Resign();
  controller.Stop();
  server.Stop();
  providers->clear();  // stops the local engines (agents keep theirs)
  return 0;
}

int DeployCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2, WithClientFlags({{{"-f", "--file"}}}));
  if (!args.ok()) return Fail(args.status());
  auto file = args->Get("--file");
  if (!file) return Usage("weft deploy -f SPEC.yaml [--control URL] [--token T]");
  std::ifstream in(*file, std::ios::binary);
  if (!in) return Fail(absl::NotFoundError(absl::StrCat("cannot read ", *file)));
  std::stringstream ss;
  ss << in.rdbuf();
  // Validate here first so errors name the file and line.
  const std::string text = ss.str();
  const size_t first = text.find_first_not_of(" \t\r\n");
  auto spec = first != std::string::npos && text[first] == '{'
                  ? control::SpecFromJsonText(text)
                  : control::ParseDeploymentSpecYaml(text, *file);
  if (!spec.ok()) return Fail(spec.status());
  auto r = Api(*args, "POST", "/v1/deployments", control::SpecToJson(*spec).dump());
  if (!r) return 1;
  if (WantJson(*args)) {
    std::cout << r->dump(2) << "\n";
  } else if ((*r)["created"] == true) {
    std::cout << "deployment/" << spec->name << " created\n";
  } else if ((*r)["unchanged"] == true && r->value("retry", false)) {
    std::cout << "deployment/" << spec->name << " unchanged; it had failed, retrying\n";
  } else if ((*r)["unchanged"] == true) {
    std::cout << "deployment/" << spec->name << " unchanged\n";
  } else {
    std::cout << "deployment/" << spec->name << " updated (generation " << (*r)["generation"].dump()
              << ((*r)["rolling_update"] == true ? ", rolling update" : "") << ")\n";
  }
  return 0;
}

int GetCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2, WithClientFlags({}));
  if (!args.ok()) return Fail(args.status());
  const std::string usage = "weft get deployments|replicas|providers [--control URL] [-o json]";
  if (args->positional().size() != 1) return Usage(usage);
  const std::string what = args->positional()[0];
  std::string path, key;
  if (what == "deployments" || what == "deployment" || what == "deploy") {
    path = "/v1/deployments", key = "deployments";
  } else if (what == "replicas" || what == "replica") {
    path = "/v1/replicas", key = "replicas";
  } else if (what == "providers" || what == "provider") {
    path = "/v1/providers", key = "providers";
  } else {
    return Usage(usage);
  }
  auto r = Api(*args, "GET", path);
  if (!r) return 1;
  if (WantJson(*args)) {
    std::cout << r->dump(2) << "\n";
    return 0;
  }
  if (key == "deployments") {
    std::printf("%-24s %-6s %-5s %s\n", "NAME", "READY", "GEN", "STATUS");
    for (const auto& d : (*r)[key]) {
      std::printf(
          "%-24s %-6s %-5lld %s%s\n", d["name"].get<std::string>().c_str(),
          absl::StrCat(d["ready"].get<int>(), "/", d["spec"]["replicas"]["min"].get<int>()).c_str(),
          static_cast<long long>(d["generation"].get<int64_t>()),
          d["deleted"] == true ? "deleting: " : "", d["status"].get<std::string>().c_str());
    }
  } else if (key == "replicas") {
    std::printf("%-28s %-20s %-10s %-9s %-4s %s\n", "ID", "DEPLOYMENT", "PROVIDER", "PHASE", "GEN",
                "ENDPOINT");
    for (const auto& x : (*r)[key]) {
      std::string tail = x["endpoint"].get<std::string>();
      if (!x["failure_reason"].get<std::string>().empty()) {
        tail += " (" + x["failure_reason"].get<std::string>() + ")";
      }
      std::printf("%-28s %-20s %-10s %-9s %-4lld %s\n", x["id"].get<std::string>().c_str(),
                  x["deployment"].get<std::string>().c_str(),
                  x["provider"].get<std::string>().c_str(), x["phase"].get<std::string>().c_str(),
                  static_cast<long long>(x["generation"].get<int64_t>()), tail.c_str());
    }
  } else {
    std::printf("%-16s %-12s %-9s %-9s %s\n", "NAME", "KIND", "DEGRADED", "SUCCESSES", "FAILURES");
    for (const auto& p : (*r)[key]) {
      std::printf("%-16s %-12s %-9s %-9lld %lld\n", p["name"].get<std::string>().c_str(),
                  p["kind"].get<std::string>().c_str(), p["degraded"] == true ? "yes" : "no",
                  static_cast<long long>(p["successes"].get<int64_t>()),
                  static_cast<long long>(p["failures"].get<int64_t>()));
    }
  }
  return 0;
}

int DescribeCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2, WithClientFlags({}));
  if (!args.ok()) return Fail(args.status());
  const auto& pos = args->positional();
  if (pos.size() != 2 || (pos[0] != "deployment" && pos[0] != "deployments")) {
    return Usage("weft describe deployment NAME [--control URL] [-o json]");
  }
  auto r = Api(*args, "GET", "/v1/deployments/" + pos[1]);
  if (!r) return 1;
  if (WantJson(*args)) {
    std::cout << r->dump(2) << "\n";
    return 0;
  }
  std::cout << "Name:        " << (*r)["name"].get<std::string>() << "\n"
            << "Generation:  " << (*r)["generation"].dump() << "\n"
            << "Deleted:     " << ((*r)["deleted"] == true ? "yes" : "no") << "\n"
            << "Status:      " << (*r)["status"].get<std::string>() << "\n"
            << "Held:        " << r->value("held", int64_t{0}) << " (requests the gateways hold)\n"
            << "Spec:\n"
            << (*r)["spec"].dump(2) << "\nReplicas:\n";
  for (const auto& x : (*r)["replicas"]) {
    std::cout << "  " << x["id"].get<std::string>() << "  " << x["provider"].get<std::string>()
              << "  " << x["phase"].get<std::string>() << "  gen " << x["generation"].dump() << "  "
              << x["endpoint"].get<std::string>();
    if (!x["failure_reason"].get<std::string>().empty()) {
      std::cout << "  (" << x["failure_reason"].get<std::string>() << ")";
    }
    std::cout << "\n";
  }
  std::cout << "Events:\n";
  for (const auto* list : {&(*r)["events"], &(*r)["replica_events"]}) {
    for (const auto& e : *list) {
      std::cout << "  " << e["time_ms"].dump() << "  " << e["object"].get<std::string>() << "  "
                << e["message"].get<std::string>() << "\n";
    }
  }
  return 0;
}

int DeleteCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2, WithClientFlags({}));
  if (!args.ok()) return Fail(args.status());
  const auto& pos = args->positional();
  std::string name;
  if (pos.size() == 1) name = pos[0];
  if (pos.size() == 2 && (pos[0] == "deployment" || pos[0] == "deployments")) name = pos[1];
  if (name.empty()) return Usage("weft delete NAME [--control URL]");
  if (!Api(*args, "DELETE", "/v1/deployments/" + name)) return 1;
  std::cout << "deployment/" << name << " deleting (replicas drain, then it is removed)\n";
  return 0;
}

int ScaleCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2, WithClientFlags({{{"--min"}}, {{"--max"}}}));
  if (!args.ok()) return Fail(args.status());
  const std::string usage = "weft scale NAME [--min N] [--max M] [--control URL]";
  if (args->positional().size() != 1 || (!args->Has("--min") && !args->Has("--max"))) {
    return Usage(usage);
  }
  json body = json::object();
  for (const char* flag : {"--min", "--max"}) {
    if (!args->Has(flag)) continue;
    auto v = args->GetInt(flag, 0);
    if (!v.ok()) return Fail(v.status());
    body[std::string(flag + 2)] = *v;
  }
  const std::string name = args->positional()[0];
  if (!Api(*args, "POST", "/v1/deployments/" + name + "/scale", body.dump())) return 1;
  std::cout << "deployment/" << name << " scaled\n";
  return 0;
}

}  // namespace weft::cli
