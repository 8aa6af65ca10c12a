// SPDX-License-Identifier: Apache-2.0
// Test helper: campaigns for leadership and writes "leader" or "standby" to a status file on each
// change, until killed (SIGTERM resigns first).
//   control_store_elector_helper --status FILE (--lockfile PATH | --postgres CONNINFO)
//                                [--retry-ms N]
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "control/store/leader_elector.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;

void WriteStatus(const std::string& path, const char* what) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << what << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());  // readers never see a half-written file
}

}  // namespace

int main(int argc, char** argv) {
  std::string status, lockfile, postgres;
  weft::control::LeaderElectorOptions options;
  options.name = "weft-control-test";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--status")
      status = argv[i + 1];
    else if (flag == "--lockfile")
      lockfile = argv[i + 1];
    else if (flag == "--postgres")
      postgres = argv[i + 1];
    else if (flag == "--retry-ms")
      options.retry_interval_ms = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (status.empty() || lockfile.empty() == postgres.empty()) {
    std::fprintf(stderr, "usage: --status FILE (--lockfile PATH | --postgres CONNINFO)\n");
    return 2;
  }
  std::unique_ptr<weft::control::LeaderElector> elector;
  if (!lockfile.empty()) {
    elector = std::make_unique<weft::control::FlockLeaderElector>(lockfile, options);
  } else {
#ifdef WEFT_HAVE_POSTGRES
    elector = weft::control::NewPostgresLeaderElector(postgres, options);
#else
    std::fprintf(stderr, "built without PostgreSQL\n");
    return 2;
#endif
  }
  WriteStatus(status, "standby");
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  auto s =
      elector->Campaign([&](bool leader) { WriteStatus(status, leader ? "leader" : "standby"); });
  if (!s.ok()) return 1;
  while (!g_stop) {
    struct timespec ts {
      0, 50'000'000
    };
    nanosleep(&ts, nullptr);
  }
  elector->Resign();
  return 0;
}
