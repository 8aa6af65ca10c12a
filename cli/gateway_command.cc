// SPDX-License-Identifier: Apache-2.0
// `weft gateway [--config FILE] [--host H] [--port P] [--data DIR] [--drain SECONDS]`: the front
// door. Routes, limits and balancer come from the YAML config (docs/gateway.md); flags override the
// listener and the data folder. State: DIR/keys.sqlite (tenants, hashed keys), DIR/ledger-wal (the
// usage WAL) shipped to DIR/ledger.sqlite or PostgreSQL (`store:` in the config).
// SIGTERM/SIGINT: drain (stop accepting, finish streams up to --drain seconds), flush, exit 0.
// SIGHUP: re-read the config's deployments.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "gateway/auth/sqlite_key_store.h"
#include "gateway/config/gateway_config.h"
#include "gateway/gateway.h"
#include "gateway/metering/ledger.h"
#include "gateway/metering/sqlite_ledger_store.h"
#include "gateway/routing/static_route_source.h"
#include "gateway/routing/watch_route_source.h"
#ifdef WEFT_HAVE_POSTGRES
#include "gateway/metering/postgres_ledger_store.h"
#endif

namespace weft::cli {

int GatewayCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2,
                          {{{"--config"}}, {{"--host"}}, {{"--port"}}, {{"--data"}}, {{"--drain"}},
                           {{"--quiet"}, false}});
  if (!args.ok()) {
    std::fprintf(stderr, "weft gateway: %s\nusage: weft gateway [--config FILE] [--host H] "
                 "[--port P] [--data DIR] [--drain SECONDS] [--quiet]\n",
                 std::string(args.status().message()).c_str());
    return 2;
  }
  gateway::GatewayConfig config;
  const std::string config_path = args->GetString("--config", "");
  if (!config_path.empty()) {
    auto c = gateway::LoadGatewayConfig(config_path);
    if (!c.ok()) {
      std::fprintf(stderr, "weft gateway: %s\n", std::string(c.status().message()).c_str());
      return 2;
    }
    config = *std::move(c);
  }
  if (auto h = args->Get("--host")) config.listen_host = *h;
  auto port = args->GetInt("--port", config.listen_port);
  auto drain = args->GetDouble("--drain", 30);
  if (!port.ok() || !drain.ok() || *port < 0 || *port > 65535) {
    std::fprintf(stderr, "weft gateway: --port and --drain must be numbers\n");
    return 2;
  }
  config.listen_port = static_cast<uint16_t>(*port);
  config.data_dir = args->GetString("--data", config.data_dir);
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "weft gateway: cannot create %s: %s\n", config.data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  auto admin_key = gateway::ResolveAdminKey(config);
  if (!admin_key.ok()) {
    std::fprintf(stderr, "weft gateway: %s\n", std::string(admin_key.status().message()).c_str());
    return 2;
  }

  gateway::GatewayOptions o;
  o.config = config;
  o.admin_key = *admin_key;
  o.access_log = !args->Has("--quiet");
  // Signals are taken by sigwait below; block them before any thread starts (the ledger's WAL
  // writer and shipper are the first): a thread that leaves SIGTERM unblocked would take a second
  // SIGTERM during the drain with its default action and end the process mid-drain.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto keys = auth::SqliteKeyStore::Open(config.data_dir + "/keys.sqlite");
  if (!keys.ok()) {
    std::fprintf(stderr, "weft gateway: %s\n", std::string(keys.status().message()).c_str());
    return 1;
  }
  o.keys = *std::move(keys);
  gateway::LedgerOptions lo;
  lo.dir = gateway::LedgerWalDir(config.data_dir);
  if (config.store.kind == gateway::StoreConfig::Kind::kPostgres) {
#ifdef WEFT_HAVE_POSTGRES
    auto pg = gateway::PostgresLedgerStore::Open(config.store.postgres_url);
    if (!pg.ok()) {
      std::fprintf(stderr, "weft gateway: %s\n", std::string(pg.status().message()).c_str());
      return 1;
    }
    lo.store = *std::move(pg);
#else
    std::fprintf(stderr, "weft gateway: this build has no PostgreSQL support (libpq)\n");
    return 1;
#endif
  } else {
    gateway::SqliteLedgerStoreOptions so;
    so.path = gateway::LedgerStorePath(config.data_dir);
    auto store = gateway::SqliteLedgerStore::Open(so);
    if (!store.ok()) {
      std::fprintf(stderr, "weft gateway: %s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    lo.store = *std::move(store);
  }
  auto ledger = gateway::Ledger::Open(std::move(lo));
  if (!ledger.ok()) {
    std::fprintf(stderr, "weft gateway: %s\n", std::string(ledger.status().message()).c_str());
    return 1;
  }
  o.ledger = *std::move(ledger);
  gateway::StaticRouteSource* routes = nullptr;  // SIGHUP reloads it
  if (!config.routes.control_url.empty()) {
    // Routes from the control plane's watch stream (weft control serves /weft/v1/routes).
    gateway::WatchRouteSourceOptions wo;
    wo.control_url = config.routes.control_url;
    wo.path = "/weft/v1/routes";
    if (!config.routes.control_token_env.empty()) {
      if (const char* t = std::getenv(config.routes.control_token_env.c_str()); t != nullptr) {
        wo.bearer_token = t;
      }
    }
    o.control_token = wo.bearer_token;  // also for the demand reports (scale from zero)
    o.routes = std::make_unique<gateway::WatchRouteSource>(wo);
  } else {
    routes = new gateway::StaticRouteSource(
        config.deployments, gateway::StaticRouteSourceOptions{
                                config_path, config_path.empty() ? 0 : config.routes.reload_poll_s});
    o.routes.reset(routes);
  }

  auto gw = gateway::Gateway::Create(std::move(o));
  if (!gw.ok()) {
    std::fprintf(stderr, "weft gateway: %s\n", std::string(gw.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = (*gw)->Start(); !s.ok()) {
    std::fprintf(stderr, "weft gateway: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "weft gateway: listening on http://%s:%u (%zu deployments, data %s)\n",
               config.listen_host.c_str(), static_cast<unsigned>((*gw)->port()),
               config.deployments.size(), config.data_dir.c_str());
  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      absl::Status s = routes != nullptr ? routes->Reload()
                                         : absl::FailedPreconditionError("routes come from control");
      std::fprintf(stderr, "weft gateway: SIGHUP: %s\n",
                   s.ok() ? "routes reloaded" : std::string(s.message()).c_str());
      continue;
    }
    std::fprintf(stderr, "weft gateway: %s: draining for up to %.0f s\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", *drain);
    break;
  }
  (*gw)->Stop(*drain);
  std::fprintf(stderr, "weft gateway: stopped\n");
  return 0;
}

}  // namespace weft::cli
