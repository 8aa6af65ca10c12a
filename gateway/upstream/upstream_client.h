// SPDX-License-Identifier: Apache-2.0
// UpstreamClient: the gateway's asynchronous HTTP/1.1 client (Boost.Asio/Beast) with bounded
// keep-alive connection pools per upstream host:port. Responses stream: the head, then each piece
// of the body as it arrives (chunked decoding by Beast), then exactly one end status. Owned by the
// gateway; thread-safe; its callbacks run on its I/O threads and must not block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace boost::asio {
class io_context;
}

namespace weft::gateway::upstream {

class ExchangeImpl;  // upstream_client.cc

using Headers = std::vector<std::pair<std::string, std::string>>;  // same type as http::Headers

// An upstream endpoint; also the key of its connection pool. `host` is an IP literal or a name
// (resolved on each new connection).
struct Target {
  std::string host = "127.0.0.1";
  uint16_t port = 0;

  std::string Key() const;  // "host:port"

  friend bool operator==(const Target&, const Target&) = default;
};

struct UpstreamRequest {
  std::string method = "GET";
  std::string target = "/";  // path + optional "?query"
  // Passed through as given (traceparent included), except the hop-by-hop headers (Connection,
  // Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) and Host / Content-Length,
  // which the client sets itself.
  Headers headers;
  std::string body;
};

// A whole (buffered) response, for Fetch and Get.
struct UpstreamResponse {
  int status = 0;
  Headers headers;  // as received, less the hop-by-hop headers
  std::string body;

  std::string_view Header(std::string_view name) const;  // case-insensitive; "" if absent
};

// Limits of one exchange, in seconds; <= 0 disables that limit.
struct Timeouts {
  double connect_s = 5;      // waiting for a pooled connection + TCP connect
  double first_byte_s = 60;  // writing the request + receiving the response head
  double stall_s = 30;       // mid-body: no progress for this long
};

// What one exchange reports. All three run on the client's I/O threads, one at a time and in this
// order: on_head at most once, on_data zero or more times after it, on_done exactly once, last.
// They must not block (post real work elsewhere); they may call Send or Exchange::Cancel.
struct Callbacks {
  // The final (non-1xx) response head. Headers less the hop-by-hop ones and Content-Length.
  std::function<void(int status, const Headers& headers)> on_head;
  // A piece of the (de-chunked) body, as it arrives; the view is valid during the call only.
  std::function<void(std::string_view chunk)> on_data;
  // OK once the whole response was read (any HTTP status). Unavailable: connect refused, reset,
  // EOF before the end, or malformed HTTP ("malformed response" in the message). DeadlineExceeded:
  // connect (pool wait included) / first-byte / stall timeout. ResourceExhausted: the target's
  // pool queue is full. Cancelled: Cancel() or the client shutting down. Whether anything reached
  // the caller before a failure is whether on_head ran.
  std::function<void(absl::Status status)> on_done;
  // false: on_head gets an empty list (a caller that never reads the headers saves their copies).
  bool want_headers = true;
};

// One request in flight. Keeping the pointer is optional: the exchange runs to its end anyway.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // Aborts the exchange from any thread: its connection is closed (never pooled again) and
  // on_done(Cancelled) runs on an I/O thread, unless on_done already ran. Does not block.
  virtual void Cancel() = 0;
  // True once on_done has run or is running (any thread).
  virtual bool done() const = 0;
};

// A callback scheduled with UpstreamClient::RunAfter.
class Timer {
 public:
  virtual ~Timer() = default;
  // From any thread: the callback will not run (unless it already started). Does not block.
  virtual void Cancel() = 0;
};

struct ClientOptions {
  int threads = 2;  // I/O threads the client starts (ignored with io_context / io_contexts)
  boost::asio::io_context* io_context = nullptr;  // run by the caller instead; must outlive us
  // Shards run by the caller instead (each by one thread, e.g. an http::IoContextPool shared with
  // the HttpServer): an exchange runs on the shard whose thread calls Send (else round robin),
  // with connection pools per shard; the limits below then hold per shard. Must outlive us.
  std::vector<boost::asio::io_context*> io_contexts = {};
  size_t max_idle_per_host = 64;                  // kept-alive idle connections per host:port
  size_t max_total_per_host = 1024;  // open connections (idle + busy + connecting) per host:port
  // Requests waiting for a connection when max_total_per_host are open; past it ResourceExhausted.
  size_t max_pending_per_host = 4096;
  double idle_timeout_s = 30;          // an idle pooled connection older than this is closed
  size_t max_header_bytes = 64 << 10;  // response head; larger: Unavailable (malformed response)
  size_t max_buffered_body_bytes = 64 << 20;  // Fetch / Get only; larger: ResourceExhausted
};

// Pool counters for one host:port (tests, metrics).
struct PoolStats {
  size_t idle = 0;
  size_t total = 0;       // idle + busy + connecting
  size_t pending = 0;     // requests waiting for a connection
  uint64_t connects = 0;  // connections opened so far
  uint64_t reuses = 0;    // requests served on a pooled connection
};

class UpstreamClient {
 public:
  explicit UpstreamClient(ClientOptions options = {});
  // Shutdown(): exchanges in flight end with Cancelled; joins the client's own threads.
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // Starts one exchange and returns at once. A connection comes from the target's pool (the most
  // recently used idle one, checked for liveness first), or is opened, or (pool at its limit) the
  // request waits in a FIFO queue. A pooled connection that fails before any byte of the response
  // (the server closed it as it sat idle) is replaced and the request resent, at most twice, so a
  // server that drops a request without answering may see it again. A connection returns to the
  // pool only after a fully read response that allows keep-alive. After Shutdown,
  // on_done(Cancelled) runs on the calling thread.
  std::shared_ptr<Exchange> Send(const Target& target, UpstreamRequest request, Callbacks callbacks,
                                 Timeouts timeouts = {});

  // Send, with the body buffered (up to max_buffered_body_bytes): `done` runs once, on an I/O
  // thread, with the response (any status) or the exchange's error.
  std::shared_ptr<Exchange> Fetch(const Target& target, UpstreamRequest request,
                                  std::function<void(absl::StatusOr<UpstreamResponse>)> done,
                                  Timeouts timeouts = {});

  // Blocking GET (polling, tools): `timeout_s` bounds connect, first byte and each stall. Must not
  // be called from the client's I/O threads (or a callback).
  absl::StatusOr<UpstreamResponse> Get(const Target& target, const std::string& path,
                                       double timeout_s = 5);

  // Runs `fn` on an I/O thread once `delay_s` has passed, unless the timer is cancelled first or
  // the client shuts down (then `fn` never runs). For deadlines of the callers' own (hedging).
  std::shared_ptr<Timer> RunAfter(double delay_s, std::function<void()> fn);

  PoolStats Stats(const Target& target) const;
  // Closes every idle pooled connection (e.g. when a replica leaves the route table).
  void CloseIdle(const Target& target);

  // Ends every exchange in flight with Cancelled, closes the pools, and joins the client's own
  // threads (with a caller's io_context: does not wait; with io_contexts: waits up to 5 s for the
  // exchanges' callbacks, unless they are stopped). Later Sends fail at once. Idempotent; must not be called from an I/O
  // thread.
  void Shutdown();

  struct Core;

 private:
  void Launch(const std::shared_ptr<ExchangeImpl>& ex);

  std::shared_ptr<Core> core_;
  std::shared_ptr<void> work_guard_;  // keeps the own threads' run() going until Shutdown
  std::vector<std::thread> threads_;
  bool shut_down_ = false;
};

}  // namespace weft::gateway::upstream
