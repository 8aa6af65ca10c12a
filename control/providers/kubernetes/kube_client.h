// SPDX-License-Identifier: Apache-2.0
// KubeApiClient: blocking calls of the Kubernetes REST API with the credentials of a kubeconfig,
// over libcurl. libcurl rather than the project's own clients because the API server speaks HTTPS
// with a private CA and may want a client certificate, both given as in-memory PEM (curl's *_BLOB
// options), and a watch is a long chunked stream read line by line; HttpFetch is plain HTTP only
// and UpstreamClient is the gateway's asynchronous pool. Owned by the provider; thread-safe: calls
// may run at once from several threads, each on its own curl handle (kept for connection reuse).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/providers/kubernetes/kubeconfig.h"

namespace weft::control {

struct KubeResponse {
  int status = 0;    // HTTP status
  std::string body;  // the whole body (for a watch: only when status != 200)
};

class KubeApiClient {
 public:
  // InvalidArgument when the client certificate or CA cannot be used by curl at all.
  static absl::StatusOr<std::unique_ptr<KubeApiClient>> Create(Kubeconfig config,
                                                               int timeout_ms = 10000);
  ~KubeApiClient();
  KubeApiClient(const KubeApiClient&) = delete;
  KubeApiClient& operator=(const KubeApiClient&) = delete;

  // One request of `path` ("/api/v1/namespaces/ns/pods?...") with an optional JSON body; any HTTP
  // status is a response. Unavailable when nothing answers (refused, reset, TLS failure);
  // DeadlineExceeded after the timeout.
  absl::StatusOr<KubeResponse> Call(const std::string& method, const std::string& path,
                                    const std::string& body = "");

  // A watch: GETs `path` and calls `on_line` with each newline-terminated line of a 200 body as it
  // arrives, until the server ends the stream (the response, body empty), an error (Unavailable),
  // `on_line` returns false or CancelStreams() is called (Cancelled). Blocks; no overall timeout
  // (the server's timeoutSeconds bounds it), but no byte for `idle_timeout_s` is an error.
  absl::StatusOr<KubeResponse> Stream(const std::string& path,
                                      const std::function<bool(std::string_view line)>& on_line,
                                      double idle_timeout_s);

  // Ends every Stream in progress (and every later one) with Cancelled, promptly. For shutdown.
  void CancelStreams();

  const Kubeconfig& config() const { return config_; }

 private:
  KubeApiClient(Kubeconfig config, int timeout_ms);
  void* TakeHandle();           // a CURL*, reset, from the pool or new
  void GiveHandle(void* curl);  // back to the pool
  void Configure(void* curl, const std::string& method, const std::string& path,
                 const std::string* body, void* headers) const;

  const Kubeconfig config_;
  const int timeout_ms_;
  std::mutex mu_;
  std::vector<void*> idle_;  // CURL*, guarded by mu_
  std::set<void*> streams_;  // CURLM* of running Streams, guarded by mu_
  std::atomic<bool> cancelled_{false};
};

}  // namespace weft::control
