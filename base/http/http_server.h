// SPDX-License-Identifier: Apache-2.0
// HttpServer: a small HTTP/1.1 server on Boost.Asio/Beast with a method+path route table,
// keep-alive, body limits (413), slowloris-safe header/idle timeouts, chunked streaming responses
// (SSE) written as they are produced, client-disconnect detection, N I/O threads and graceful
// shutdown, and optional TLS (OpenSSL, TLS 1.2+) on the listener. Handlers run on the connection's
// strand (an I/O thread) and must not block; they answer through a ResponseWriter, whose methods
// may be called from any thread (they post to the strand).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace boost::asio {
class io_context;
}

namespace weft::http {

class IoContextPool;

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path + "?" + query
  std::string path;    // target without the query
  std::string query;   // after '?', undecoded; "" if none
  Headers headers;     // names as sent
  std::string body;
  std::map<std::string, std::string> params;  // "{name}" segments of the matched route
  std::string remote;                         // "ip:port" of the peer

  // First header with this name (case-insensitive), or "".
  std::string_view Header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  Headers headers;  // extra headers (e.g. Retry-After); no Content-Length / Connection
  std::string body;
};

// The standard reason phrase ("Not Found") for a status code; "Unknown" for others.
std::string_view StatusReason(int status);

// One request's answer: either Respond() once, or StartStream() + Write()* + End(). Thread-safe;
// every call is posted to the connection's strand and applied in call order (per calling thread).
// Calls after the exchange ended (answered, or the client gone) are ignored.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;

  virtual void Respond(Response response) = 0;
  // Sends the head of a chunked response (Transfer-Encoding: chunked); `content_type` e.g.
  // "text/event-stream" (SSE also gets Cache-Control: no-cache).
  virtual void StartStream(int status, std::string content_type, Headers headers = {}) = 0;
  // Sends one chunk as soon as the socket takes it. Chunks queued behind a slow reader are
  // coalesced; past ServerOptions::max_pending_write_bytes the client counts as gone.
  virtual void Write(std::string data) = 0;
  virtual void End() = 0;  // the terminating chunk

  // Runs `fn` on the connection's strand (for handlers that keep per-request state there).
  virtual void Post(std::function<void()> fn) = 0;
  // `fn` runs once, on the strand, if the client disconnects (EOF/reset seen by a read, a failed
  // write, a write timeout, or a forced shutdown) before the exchange ended. Set it from the
  // handler (before returning) so no disconnect is missed.
  virtual void OnCancel(std::function<void()> fn) = 0;
  virtual bool cancelled() const = 0;  // any thread
};

using Handler = std::function<void(const Request&, std::shared_ptr<ResponseWriter>)>;

// The listener's certificate chain and private key, PEM: each from a file, or given in memory (the
// *_pem field wins when set; for tests). The key must not be encrypted. (The "= {}" lets a
// designated initializer name only the pair it uses.)
struct TlsOptions {
  std::string cert_file = {};  // certificate chain, leaf first
  std::string key_file = {};   // the leaf's private key
  std::string cert_pem = {};   // in memory instead of cert_file
  std::string key_pem = {};    // in memory instead of key_file
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                   // 0 = an ephemeral port (see HttpServer::port())
  int threads = 2;                     // I/O threads
  size_t max_body_bytes = 8 << 20;     // larger bodies: 413
  size_t max_header_bytes = 64 << 10;  // larger heads: 431
  double header_timeout_s = 10;        // first byte of a request to the end of its head
  double body_timeout_s = 30;          // end of head to end of body
  double idle_timeout_s = 60;   // keep-alive: end of a response to the next request's first byte
  double write_timeout_s = 60;  // one write (a stalled reader is cut)
  size_t max_pending_write_bytes = 16 << 20;  // queued, unsent response bytes per connection
  // Set: every connection first does a TLS handshake (TLS 1.2 or 1.3), bounded by header_timeout_s,
  // then is served exactly like a plain one. A plain HTTP request on the port gets a plain 400.
  std::optional<TlsOptions> tls;
  // Builds the body of errors the server itself answers (400 malformed HTTP, 404, 405, 413, 431,
  // 503 while shutting down). Default: {"error": {"message": ..., "code": status}}.
  std::function<Response(int status, std::string message)> error_response;
  // Non-empty: the server runs on these io_contexts (each run by one thread of the caller's, e.g.
  // an IoContextPool's; `threads` is ignored), accepting on the first and spreading connections
  // over all. They must outlive the server's connections: stop running them only after Stop().
  std::vector<boost::asio::io_context*> io_contexts = {};
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();  // Stop(0) if still running
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Registers `handler` for `method` and `pattern`: an exact path, where a whole segment may be
  // "{name}" (captured into Request::params). Exact segments win over captures. Before Start().
  void Handle(std::string method, std::string pattern, Handler handler);

  // Binds, listens and starts the I/O threads. Fails if the address cannot be bound, or (TLS) if
  // the certificate or key cannot be loaded or do not match (InvalidArgument).
  absl::Status Start();
  uint16_t port() const { return port_; }  // the bound port, after Start()

  // Graceful shutdown: stops accepting, closes idle connections, lets requests in flight finish for
  // up to `deadline_s`, then closes the rest (their cancel callbacks run) and joins the threads
  // (the server's own; the caller's io_contexts keep running). Blocks. Idempotent.
  void Stop(double deadline_s);

  // Number of open connections (for tests and metrics).
  size_t connection_count() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

// The default error body: {"error": {"message": message, "code": status}}.
Response DefaultErrorResponse(int status, std::string message);

}  // namespace weft::http
