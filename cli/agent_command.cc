// SPDX-License-Identifier: Apache-2.0
// `weft agent`: the per-host daemon of the hosts provider. It runs `weft engine` children on this
// machine (the local provider, with --slots slots of one --accelerator kind) and exposes them to
// the control plane over HTTP (control/agent/agent_api.h), behind a shared bearer token (--token,
// else WEFT_AGENT_TOKEN). Engines listen on --advertise, the address control and the gateway reach
// this host by. Model paths in replica specs must exist on this machine. SIGTERM/SIGINT: stop
// serving, stop the engines, exit 0.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "control/agent/agent_server.h"
#include "control/providers/local/local_provider.h"

namespace weft::cli {

namespace {

namespace fs = std::filesystem;

constexpr char kAgentUsage[] =
    "weft agent --token T [--host 127.0.0.1] [--port 7071] [--advertise ADDR] [--slots 1]\n"
    "           [--accelerator cpu] [--region local] [--usd-per-hour 0] [--data ./weft-agent]";

std::string SelfExe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

}  // namespace

int AgentCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2,
                          {{{"--host"}},
                           {{"--port"}},
                           {{"--advertise"}},
                           {{"--slots"}},
                           {{"--accelerator"}},
                           {{"--region"}},
                           {{"--usd-per-hour"}},
                           {{"--data"}},
                           {{"--token"}},
                           {{"-h", "--help"}, false}});
  if (!args.ok()) return Fail(args.status());
  if (args->Has("--help")) {
    std::printf("usage: %s\n", kAgentUsage);
    return 0;
  }
  if (!args->positional().empty()) return Usage(kAgentUsage);
  std::string token = args->GetString("--token", "");
  if (token.empty()) {
    if (const char* env = std::getenv("WEFT_AGENT_TOKEN"); env != nullptr) token = env;
  }
  if (token.empty()) {
    return Fail(absl::InvalidArgumentError(
        "--token: required (or WEFT_AGENT_TOKEN): the control plane's agents token"));
  }
  const std::string host = args->GetString("--host", "127.0.0.1");
  std::string advertise = args->GetString("--advertise", "");
  if (advertise.empty()) {
    if (host == "0.0.0.0" || host == "::" || host.empty()) {
      return Fail(absl::InvalidArgumentError(
          "--advertise: required with --host " + host +
          ": the address of this machine that control and the gateway reach its engines by"));
    }
    advertise = host;
  }
  auto port = args->GetInt("--port", 7071);
  auto slots = args->GetInt("--slots", 1);
  auto price = args->GetDouble("--usd-per-hour", 0);
  if (!port.ok()) return Fail(port.status());
  if (!slots.ok()) return Fail(slots.status());
  if (!price.ok()) return Fail(price.status());
  if (*port < 0 || *port > 65535) return Fail(absl::InvalidArgumentError("--port: 0..65535"));
  if (*slots < 1) return Fail(absl::InvalidArgumentError("--slots: must be >= 1"));
  const std::string data = args->GetString("--data", "./weft-agent");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  control::LocalProviderOptions lo;
  lo.weft_binary = SelfExe();
  lo.log_dir = (fs::path(data) / "logs").string();
  lo.slots = static_cast<int>(*slots);
  lo.accelerator = args->GetString("--accelerator", "cpu");
  lo.region = args->GetString("--region", "local");
  lo.usd_per_hour = *price;
  lo.host = advertise;
  auto local = control::LocalProvider::Create(lo);
  if (!local.ok()) return Fail(local.status());

  control::agent::AgentServerOptions ao;
  ao.http.host = host;
  ao.http.port = static_cast<uint16_t>(*port);
  ao.http.threads = 2;
  ao.token = token;
  auto server = control::agent::AgentServer::Start(local->get(), ao);
  if (!server.ok()) return Fail(server.status());
  std::printf("weft agent listening on http://%s:%u (engines on %s, %lld %s slots, region %s)\n",
              host.c_str(), (*server)->port(), advertise.c_str(), static_cast<long long>(*slots),
              lo.accelerator.c_str(), lo.region.c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "weft agent: %s, stopping\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Stop(2);
  local->reset();  // stops the engines
  return 0;
}

}  // namespace weft::cli
