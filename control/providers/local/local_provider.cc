// SPDX-License-Identifier: Apache-2.0
#include "control/providers/local/local_provider.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "control/providers/http_probe.h"

namespace weft::control {
namespace {

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The last non-empty line of a log (at most ~200 characters), to make a failure reason useful.
std::string LastLogLine(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 4096);
  f.seekg(start);
  std::string tail(static_cast<size_t>(size - start), '\0');
  f.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back()))) tail.pop_back();
  if (const size_t nl = tail.rfind('\n'); nl != std::string::npos) tail.erase(0, nl + 1);
  if (tail.size() > 200) tail.erase(0, tail.size() - 200);
  return tail;
}

}  // namespace

std::vector<std::string> LocalProvider::EngineArgv(const LocalProviderOptions& options,
                                                   const ReplicaSpec& spec, uint16_t port) {
  std::vector<std::string> argv = {options.weft_binary, "engine", "--model", spec.model_path,
                                   "--host", options.host, "--port", std::to_string(port), "--name",
                                   spec.deployment.empty() ? spec.id : spec.deployment,
                                   // The engine stops when this process dies, even by SIGKILL.
                                   "--exit-with-parent", std::to_string(getpid())};
  if (spec.engine.threads > 0) {
    argv.insert(argv.end(), {"--threads", std::to_string(spec.engine.threads)});
  }
  if (spec.engine.ctx > 0) argv.insert(argv.end(), {"--ctx", std::to_string(spec.engine.ctx)});
  for (const auto& [name, path] : spec.adapters) {
    argv.insert(argv.end(), {"--adapter", absl::StrCat(name, "=", path)});
  }
  argv.insert(argv.end(), spec.engine.extra.begin(), spec.engine.extra.end());
  return argv;
}

absl::StatusOr<std::unique_ptr<LocalProvider>> LocalProvider::Create(LocalProviderOptions options) {
  if (options.weft_binary.empty() || access(options.weft_binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("local provider: weft binary '", options.weft_binary, "' is not executable"));
  }
  if (options.slots < 0) return absl::InvalidArgumentError("local provider: slots < 0");
  if (options.log_dir.empty()) return absl::InvalidArgumentError("local provider: log_dir: empty");
  std::error_code ec;
  std::filesystem::create_directories(options.log_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("local provider: log_dir ", options.log_dir, ": ", ec.message()));
  }
  return std::unique_ptr<LocalProvider>(new LocalProvider(std::move(options)));
}

LocalProvider::LocalProvider(LocalProviderOptions options) : options_(std::move(options)) {
  monitor_ = std::thread([this] { MonitorLoop(); });
}

LocalProvider::~LocalProvider() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  monitor_.join();
  // Stop every engine gracefully, all at once, then SIGKILL what is left after the grace period
  // (the Process destructors do that and reap).
  std::lock_guard lock(mu_);
  for (auto& [id, r] : replicas_) {
    if (r.process) r.process->Signal(SIGTERM);
  }
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(options_.terminate_grace_s));
  for (auto& [id, r] : replicas_) {
    if (!r.process) continue;
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    r.process->Wait(std::max(0.0, left));
  }
  replicas_.clear();
}

int LocalProvider::UsedSlotsLocked() const {
  int used = 0;
  for (const auto& [id, r] : replicas_) used += std::max(1, r.spec.accelerator_count);
  return used;
}

absl::StatusOr<uint16_t> LocalProvider::PickPortLocked() const {
  std::set<uint16_t> taken;
  for (const auto& [id, r] : replicas_) taken.insert(r.port);
  // The kernel rarely hands the same ephemeral port out twice in a row; skip our own engines'
  // ports anyway. A port taken by someone else in between makes that engine exit (kFailed).
  for (int attempt = 0; attempt < 16; ++attempt) {
    absl::StatusOr<uint16_t> port = FreeLoopbackPort();
    if (!port.ok()) return port.status();
    if (!taken.contains(*port)) return *port;
  }
  return absl::InternalError("local provider: no free port");
}

absl::StatusOr<ProviderCapacity> LocalProvider::Capacity() {
  std::lock_guard lock(mu_);
  ReapLocked();
  ProviderCapacity c;
  c.accelerators.push_back({options_.accelerator, options_.slots,
                            std::max(0, options_.slots - UsedSlotsLocked()),
                            options_.usd_per_hour});
  c.regions.push_back(options_.region);
  return c;
}

absl::StatusOr<ReplicaStatus> LocalProvider::Provision(const ReplicaSpec& spec) {
  if (spec.id.empty()) return absl::InvalidArgumentError("replica id: empty");
  if (spec.id.find('/') != std::string::npos || spec.id.front() == '.') {
    return absl::InvalidArgumentError(absl::StrCat("replica id '", spec.id, "': not a file name"));
  }
  if (spec.model_path.empty()) return absl::InvalidArgumentError("model_path: empty");
  if (spec.accelerator_count < 1) return absl::InvalidArgumentError("accelerator_count: < 1");
  std::lock_guard lock(mu_);
  ReapLocked();
  if (auto it = replicas_.find(spec.id); it != replicas_.end()) return it->second.status;
  if (spec.accelerator != options_.accelerator) {
    return absl::ResourceExhaustedError(
        absl::StrCat("local provider has no ", spec.accelerator, " slots"));
  }
  const int free = options_.slots - UsedSlotsLocked();
  if (spec.accelerator_count > free) {
    return absl::ResourceExhaustedError(absl::StrCat("local provider: ", free, " free ",
                                                     options_.accelerator, " slots, replica needs ",
                                                     spec.accelerator_count));
  }
  auto port = PickPortLocked();
  if (!port.ok()) return port.status();
  Replica r;
  r.spec = spec;
  r.serial = next_serial_++;
  r.port = *port;
  r.log_path = absl::StrCat(options_.log_dir, "/", spec.id, ".log");
  auto process = Process::Spawn(EngineArgv(options_, spec, *port), r.log_path);
  if (!process.ok()) return process.status();
  r.process = *std::move(process);
  r.status.id = spec.id;
  r.status.deployment = spec.deployment;
  r.status.phase = ReplicaPhase::kStarting;
  r.status.endpoint = absl::StrCat("http://", options_.host, ":", *port);
  r.status.started_ms = WallMs();
  r.ready_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(options_.ready_timeout_s));
  ReplicaStatus out = r.status;
  replicas_.emplace(spec.id, std::move(r));
  cv_.notify_all();  // probe the new engine soon
  return out;
}

absl::Status LocalProvider::Terminate(const ReplicaId& id) {
  std::lock_guard lock(mu_);
  ReapLocked();
  auto it = replicas_.find(id);
  if (it == replicas_.end() || it->second.terminating) return absl::OkStatus();
  Replica& r = it->second;
  if (!r.process) {  // already exited (failed): nothing to stop
    replicas_.erase(it);
    return absl::OkStatus();
  }
  r.terminating = true;
  r.status.phase = ReplicaPhase::kDraining;
  r.kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(options_.terminate_grace_s));
  r.process->Signal(SIGTERM);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReplicaStatus>> LocalProvider::List() {
  std::lock_guard lock(mu_);
  ReapLocked();
  std::vector<ReplicaStatus> out;
  out.reserve(replicas_.size());
  for (const auto& [id, r] : replicas_) out.push_back(r.status);
  return out;
}

ProviderHealth LocalProvider::Health() {
  if (access(options_.weft_binary.c_str(), X_OK) != 0) {
    return {false, absl::StrCat("weft binary ", options_.weft_binary, ": ", std::strerror(errno))};
  }
  return {};
}

std::optional<pid_t> LocalProvider::PidOf(const ReplicaId& id) const {
  std::lock_guard lock(mu_);
  auto it = replicas_.find(id);
  if (it == replicas_.end() || !it->second.process) return std::nullopt;
  return it->second.process->pid();
}

void LocalProvider::ReapLocked() {
  const Clock::time_point now = Clock::now();
  for (auto it = replicas_.begin(); it != replicas_.end();) {
    Replica& r = it->second;
    if (r.process) {
      if (std::optional<int> ws = r.process->Poll()) {
        r.process.reset();
        if (r.terminating) {  // stopped as asked: the slot is free again
          it = replicas_.erase(it);
          continue;
        }
        if (r.status.phase != ReplicaPhase::kFailed) {
          r.status.phase = ReplicaPhase::kFailed;
          r.status.failure_reason = absl::StrCat("engine ", DescribeWaitStatus(*ws));
          if (std::string last = LastLogLine(r.log_path); !last.empty()) {
            absl::StrAppend(&r.status.failure_reason, ": ", last);
          }
          absl::StrAppend(&r.status.failure_reason, " (log ", r.log_path, ")");
        }
      } else if (r.terminating && now >= r.kill_at) {
        r.process->Signal(SIGKILL);
      } else if (r.status.phase == ReplicaPhase::kStarting && now >= r.ready_deadline) {
        r.status.phase = ReplicaPhase::kFailed;
        r.status.failure_reason = absl::StrCat(
            "engine not healthy within ", options_.ready_timeout_s, " s (log ", r.log_path, ")");
        r.process->Signal(SIGKILL);  // reaped on a later pass; keeps its slot until Terminate
      }
    }
    ++it;
  }
}

void LocalProvider::MonitorLoop() {
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options_.poll_interval_s));
  std::unique_lock lock(mu_);
  while (!stop_) {
    ReapLocked();
    // Probe starting engines without holding the lock (each probe may take up to its timeout).
    std::vector<std::tuple<ReplicaId, uint64_t, uint16_t>> starting;
    for (const auto& [id, r] : replicas_) {
      if (r.status.phase == ReplicaPhase::kStarting && r.process)
        starting.emplace_back(id, r.serial, r.port);
    }
    if (!starting.empty()) {
      lock.unlock();
      std::vector<std::pair<ReplicaId, uint64_t>> healthy;
      for (const auto& [id, serial, port] : starting) {
        absl::StatusOr<int> code = HttpGetStatus(options_.host, port, "/health", 1000);
        if (code.ok() && *code == 200) healthy.emplace_back(id, serial);
      }
      lock.lock();
      for (const auto& [id, serial] : healthy) {
        auto it = replicas_.find(id);
        // Still the same starting engine (not terminated, failed or replaced meanwhile).
        if (it != replicas_.end() && it->second.serial == serial &&
            it->second.status.phase == ReplicaPhase::kStarting && it->second.process) {
          it->second.status.phase = ReplicaPhase::kReady;
        }
      }
    }
    if (stop_) break;
    cv_.wait_for(lock, period);
  }
}

}  // namespace weft::control
