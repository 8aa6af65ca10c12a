// SPDX-License-Identifier: Apache-2.0
// FakeKubeApiServer: an in-process fake of the parts of the Kubernetes API the kubernetes provider
// uses (apps/v1 Deployments, v1 Services and Pods in namespaces: create, get, list with a
// labelSelector, delete with a propagationPolicy, watch with resourceVersion semantics), served
// over HTTP or HTTPS on loopback with the real API's JSON shapes and Status errors (401, 403, 404,
// 409, 410, 422). A simulation thread plays the deployment controller, garbage collector and
// kubelet: a Deployment gets Pods that go Pending -> Running -> Ready after configurable delays.
// Test hooks crash pods, fail image pulls, delete pods, forbid everything or stop answering.
// Test-only; owned by the test; every method is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/http/http_server.h"
#include "nlohmann/json.hpp"

namespace weft::testing {

struct FakeKubeApiServerOptions {
  std::string token;                    // required "Authorization: Bearer" token; empty = no auth
  std::optional<http::TlsOptions> tls;  // set: serve HTTPS with this certificate
  int64_t pod_schedule_delay_ms = 20;   // created -> scheduled on the node, image pulled
  int64_t pod_start_delay_ms = 30;      // scheduled -> Running (container started, not yet ready)
  int64_t pod_ready_delay_ms = 30;      // Running -> Ready (the readiness probe passed)
  int64_t pod_terminate_delay_ms = 30;  // deletionTimestamp set -> gone (graceful termination)
  int64_t crash_restart_interval_ms = 40;  // a crashing container restarts (restartCount + 1)
  size_t event_history = 1000;  // watch events kept; a watch from an older resourceVersion is Gone
  // A watch from a too-old resourceVersion: false (the API server's way) = 200 and one ERROR event
  // carrying a 410 Expired Status; true = a plain HTTP 410 Gone Status response.
  bool gone_as_http_status = false;
  std::string node_name = "fake-node-1";
};

class FakeKubeApiServer {
 public:
  // Listens on 127.0.0.1 (an ephemeral port) and starts the simulation thread.
  static absl::StatusOr<std::unique_ptr<FakeKubeApiServer>> Start(FakeKubeApiServerOptions options);
  ~FakeKubeApiServer();
  FakeKubeApiServer(const FakeKubeApiServer&) = delete;
  FakeKubeApiServer& operator=(const FakeKubeApiServer&) = delete;

  std::string url() const;  // "http://127.0.0.1:PORT" (https:// with TLS)
  uint16_t port() const;

  // --- test hooks -------------------------------------------------------------------------------
  // The pod's container exits with `exit_code` and keeps being restarted: CrashLoopBackOff, Ready
  // False, restartCount climbing. NotFound for an unknown pod.
  absl::Status CrashPod(const std::string& ns, const std::string& name, int exit_code = 1);
  // Every pod whose container runs `image` (now or later) fails to pull it: Pending with
  // ErrImagePull, then ImagePullBackOff.
  void FailImagePulls(const std::string& image);
  // Deletes a pod as `kubectl delete pod` does (graceful); its Deployment makes a replacement.
  absl::Status DeletePod(const std::string& ns, const std::string& name);
  // Closes the listener and every connection (watches end; new connections are refused).
  void StopAnswering();
  // Listens again on the same port.
  absl::Status ResumeAnswering();
  // While on, every request is answered 403 Forbidden.
  void SetForbidden(bool on);
  // Forgets every watch event so far: a watch from any resourceVersion handed out until now is
  // Gone.
  void CompactHistory();

  // --- inspection -------------------------------------------------------------------------------
  // The stored object (`resource` is "deployments", "services" or "pods"), or nullopt.
  std::optional<nlohmann::json> Get(const std::string& resource, const std::string& ns,
                                    const std::string& name) const;
  // Names of the stored objects of `resource` in `ns` whose labels match `label_selector`.
  std::vector<std::string> Names(const std::string& resource, const std::string& ns,
                                 const std::string& label_selector = "") const;
  // Every (verb, resource) an authenticated, permitted client asked for so far (whatever the
  // answer), as "verb resource" ("create deployments", "watch pods", ...) in RBAC's verbs: get,
  // list, watch, create, delete.
  std::set<std::string> VerbsUsed() const;
  int watches_started() const;       // watch requests accepted (streams opened)
  int gone_answers() const;          // watches answered 410 (either way)
  int64_t resource_version() const;  // the newest resourceVersion handed out

  struct State;

 private:
  explicit FakeKubeApiServer(FakeKubeApiServerOptions options);
  absl::Status Listen(uint16_t port);

  const FakeKubeApiServerOptions options_;
  std::shared_ptr<State> state_;
  std::unique_ptr<http::HttpServer> server_;  // guarded by server_mu_ in the .cc
  uint16_t port_ = 0;
};

// True when `labels` (a metadata.labels object, possibly null) satisfy a Kubernetes equality- or
// set-based-lite selector: "a=b,c!=d,e,!f" (also "a==b"). Empty matches everything. InvalidArgument
// for a malformed selector.
absl::StatusOr<bool> MatchesLabelSelector(const nlohmann::json& labels,
                                          const std::string& selector);

}  // namespace weft::testing
