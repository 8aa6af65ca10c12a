// SPDX-License-Identifier: Apache-2.0
#include "base/http/http_server.h"

#include <chrono>
#include <exception>
#include <optional>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace weft::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > pos) out.emplace_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

// absl here predates std::string_view aliasing; compare by hand.
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr size_t kWatchReadBytes = 4096;
// Bytes a client may send ahead (pipelining) while its current request runs; past this the
// disconnect watch stops reading (a failed write still detects a gone client).
constexpr size_t kMaxReadAhead = 64 << 10;

}  // namespace

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

std::string_view StatusReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

Response DefaultErrorResponse(int status, std::string message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      escaped += ' ';
      continue;
    }
    escaped += c;
  }
  Response r;
  r.status = status;
  r.body = absl::StrCat(R"({"error":{"message":")", escaped, R"(","code":)", status, "}}");
  return r;
}

class Connection;

struct Route {
  std::string method;
  std::vector<std::string> segments;
  Handler handler;
};

// Handlers queued in `ioc` refer to the Impl by raw pointer (never owning it): the io_context is
// its member, so an owning capture would be a cycle that leaks whatever stop left queued.
struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  ServerOptions options;
  std::vector<Route> routes;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};

  mutable std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;  // guarded by mu

  // Declared last: destroyed first, so the connections its queued handlers own unregister while
  // the members above still exist.
  net::io_context ioc;
  std::optional<tcp::acceptor> acceptor;

  Response Error(int status, std::string message) const {
    if (options.error_response) return options.error_response(status, std::move(message));
    return DefaultErrorResponse(status, std::move(message));
  }
  void Accept();
  void Register(const std::shared_ptr<Connection>& c);
  void Unregister(Connection* c) {
    std::lock_guard lock(mu);
    connections.erase(c);
  }
  std::vector<std::shared_ptr<Connection>> Snapshot() {
    std::vector<std::shared_ptr<Connection>> out;
    std::lock_guard lock(mu);
    for (auto& [p, w] : connections) {
      if (auto c = w.lock()) out.push_back(std::move(c));
    }
    return out;
  }
};

// The ResponseWriter of one exchange. Holds the server weakly: posting after the server is gone
// is a no-op.
class Exchange : public ResponseWriter, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::weak_ptr<HttpServer::Impl> server, std::weak_ptr<Connection> conn,
           net::any_io_executor strand)
      : server_(std::move(server)), conn_(std::move(conn)), strand_(std::move(strand)) {}

  void Respond(Response response) override;
  void StartStream(int status, std::string content_type, Headers headers) override;
  void Write(std::string data) override;
  void End() override;
  void Post(std::function<void()> fn) override { PostRaw(std::move(fn)); }
  void OnCancel(std::function<void()> fn) override;
  bool cancelled() const override { return cancelled_.load(); }

  // Strand-only state, used by Connection.
  bool ended = false;
  std::function<void()> on_cancel;
  void MarkCancelled() {
    cancelled_ = true;
    ended = true;
    if (auto fn = std::move(on_cancel)) {
      on_cancel = nullptr;
      fn();
    }
  }

 private:
  template <typename F>
  void PostRaw(F&& fn) {
    auto server = server_.lock();
    if (server == nullptr || server->stopped.load()) return;
    net::post(strand_, std::forward<F>(fn));
  }

  std::weak_ptr<HttpServer::Impl> server_;
  std::weak_ptr<Connection> conn_;
  net::any_io_executor strand_;
  std::atomic<bool> cancelled_{false};
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, HttpServer::Impl* server)
      : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = absl::StrCat(ep.address().to_string(), ":", ep.port());
  }
  ~Connection() { server_->Unregister(this); }

  void Start() { DoIdleRead(); }

  // Called by HttpServer::Stop (posted to the strand).
  void BeginShutdown() {
    keep_alive_ = false;
    if (phase_ != Phase::kHandling) Close();
  }
  void ForceClose() { ClientGone(); }

  net::any_io_executor strand() { return stream_.get_executor(); }

  // Exchange operations, on the strand.
  void DoRespond(Exchange* ex, Response r) {
    if (!Current(ex) || head_sent_) return;
    head_sent_ = true;
    KeepAliveDecision();
    std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ", AV(StatusReason(r.status)), "\r\n");
    if (!r.content_type.empty()) absl::StrAppend(&out, "Content-Type: ", r.content_type, "\r\n");
    absl::StrAppend(&out, "Content-Length: ", r.body.size(), "\r\n");
    for (const auto& [k, v] : r.headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    absl::StrAppend(&out, "Connection: ", keep_alive_ ? "keep-alive" : "close", "\r\n\r\n");
    if (method_ != "HEAD") out += r.body;
    response_complete_ = true;
    QueueWrite(std::move(out));
  }
  void DoStartStream(Exchange* ex, int status, const std::string& content_type,
                     const Headers& headers) {
    if (!Current(ex) || head_sent_) return;
    head_sent_ = true;
    streaming_ = true;
    KeepAliveDecision();
    std::string out = absl::StrCat("HTTP/1.1 ", status, " ", AV(StatusReason(status)), "\r\n");
    absl::StrAppend(&out, "Content-Type: ", content_type, "\r\n");
    if (content_type.starts_with("text/event-stream")) {
      absl::StrAppend(&out, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    }
    for (const auto& [k, v] : headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
    absl::StrAppend(&out, "Transfer-Encoding: chunked\r\nConnection: ",
                    keep_alive_ ? "keep-alive" : "close", "\r\n\r\n");
    QueueWrite(std::move(out));
  }
  void DoWriteChunk(Exchange* ex, std::string data) {
    if (!Current(ex) || !streaming_ || response_complete_ || data.empty()) return;
    QueueWrite(absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n"));
  }
  void DoEnd(Exchange* ex) {
    if (!Current(ex) || !streaming_ || response_complete_) return;
    response_complete_ = true;
    QueueWrite("0\r\n\r\n");
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kHandling, kDraining, kLinger, kClosed };

  bool Current(Exchange* ex) const {
    return exchange_ != nullptr && exchange_.get() == ex && !ex->ended && phase_ != Phase::kClosed;
  }
  void KeepAliveDecision() {
    if (server_->stopping.load()) keep_alive_ = false;
  }

  void DoIdleRead() {
    if (server_->stopping.load()) return Close();
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) return DoReadHeader();
    stream_.expires_after(Seconds(server_->options.idle_timeout_s));
    stream_.async_read_some(buffer_.prepare(kWatchReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->buffer_.commit(n);
                              self->DoReadHeader();
                            });
  }

  void DoReadHeader() {
    phase_ = Phase::kHeader;
    parser_.emplace();
    parser_->body_limit(server_->options.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    // One deadline for the whole head: a client trickling bytes (slowloris) is cut at it.
    stream_.expires_after(Seconds(server_->options.header_timeout_s));
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    phase_ = Phase::kBody;
    auto& req = parser_->get();
    if (EqualsIgnoreCase(std::string_view(req[bhttp::field::expect]), "100-continue") &&
        !parser_->is_done()) {
      continue_.assign("HTTP/1.1 100 Continue\r\n\r\n");
      stream_.expires_after(Seconds(server_->options.write_timeout_s));
      net::async_write(stream_, net::buffer(continue_),
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->DoReadBody();
                       });
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    stream_.expires_after(Seconds(server_->options.body_timeout_s));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->OnReadError(ec);
                        self->Dispatch();
                      });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) return ErrorAndClose(413, "request body too large");
    if (ec == bhttp::error::header_limit) return ErrorAndClose(431, "request header too large");
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return Close();
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category()) {
      return ErrorAndClose(400, absl::StrCat("malformed HTTP request: ", ec.message()));
    }
    Close();  // timeout, reset, eof
  }

  // Answers an error the server detected itself and closes afterwards.
  void ErrorAndClose(int status, std::string message) {
    phase_ = Phase::kHandling;
    keep_alive_ = false;
    linger_ = true;
    exchange_ = std::make_shared<Exchange>(server_->weak_from_this(), weak_from_this(), strand());
    head_sent_ = streaming_ = response_complete_ = false;
    method_.clear();
    DoRespond(exchange_.get(), server_->Error(status, std::move(message)));
  }

  void Dispatch() {
    phase_ = Phase::kHandling;
    bhttp::request<bhttp::string_body> msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    for (const auto& field : msg) {
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    req.body = std::move(msg.body());
    req.remote = remote_;
    method_ = req.method;

    exchange_ = std::make_shared<Exchange>(server_->weak_from_this(), weak_from_this(), strand());
    head_sent_ = streaming_ = response_complete_ = false;
    stream_.expires_never();
    StartWatch();

    const Handler* handler = nullptr;
    bool path_known = false;
    std::string allow;
    std::vector<std::string> segments = SplitPath(req.path);
    int best_score = -1;
    for (const Route& route : server_->routes) {
      if (route.segments.size() != segments.size()) continue;
      std::map<std::string, std::string> params;
      int score = 0;
      bool match = true;
      for (size_t i = 0; i < segments.size() && match; ++i) {
        const std::string& s = route.segments[i];
        if (s.size() > 2 && s.front() == '{' && s.back() == '}') {
          params[s.substr(1, s.size() - 2)] = segments[i];
        } else if (s == segments[i]) {
          ++score;
        } else {
          match = false;
        }
      }
      if (!match) continue;
      path_known = true;
      if (route.method != req.method) {
        absl::StrAppend(&allow, allow.empty() ? "" : ", ", route.method);
        continue;
      }
      if (score > best_score) {
        best_score = score;
        handler = &route.handler;
        req.params = std::move(params);
      }
    }
    std::shared_ptr<ResponseWriter> writer = exchange_;
    if (handler == nullptr) {
      Response r = path_known
                       ? server_->Error(405, absl::StrCat("method ", req.method, " not allowed"))
                       : server_->Error(404, absl::StrCat("no route for ", req.path));
      if (path_known) r.headers.emplace_back("Allow", allow);
      return DoRespond(exchange_.get(), std::move(r));
    }
    try {
      (*handler)(req, writer);
    } catch (const std::exception& e) {
      DoRespond(exchange_.get(), server_->Error(500, absl::StrCat("internal error: ", e.what())));
    }
  }

  // While a request is handled, a read on the socket notices a client that goes away (EOF or
  // reset) so its work can be cancelled; bytes it reads are kept for the next request.
  void StartWatch() {
    if (watch_in_flight_ || buffer_.size() >= kMaxReadAhead) return;
    watch_in_flight_ = true;
    stream_.socket().async_read_some(
        buffer_.prepare(kWatchReadBytes),
        net::bind_executor(strand(), [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->OnWatch(ec, n);
        }));
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watch_in_flight_ = false;
    if (phase_ == Phase::kClosed || phase_ == Phase::kLinger) return;
    if (!ec) buffer_.commit(n);
    if (phase_ == Phase::kDraining) return DoIdleRead();
    if (!ec) return StartWatch();
    ClientGone();
  }

  void QueueWrite(std::string data) {
    if (phase_ == Phase::kClosed) return;
    pending_ += data;
    if (pending_.size() > server_->options.max_pending_write_bytes) return ClientGone();
    if (!write_in_flight_) DoWrite();
  }

  void DoWrite() {
    writing_.swap(pending_);
    pending_.clear();
    write_in_flight_ = true;
    stream_.expires_after(Seconds(server_->options.write_timeout_s));
    net::async_write(
        stream_, net::buffer(writing_),
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    write_in_flight_ = false;
    writing_.clear();
    if (phase_ == Phase::kClosed) return;
    if (ec) return ClientGone();
    if (!pending_.empty()) return DoWrite();
    if (response_complete_) ExchangeDone();
  }

  void ExchangeDone() {
    if (exchange_ != nullptr) {
      exchange_->ended = true;
      exchange_->on_cancel = nullptr;
      exchange_.reset();
    }
    stream_.expires_never();
    if (linger_) return LingeringClose();
    if (!keep_alive_ || server_->stopping.load()) return Close();
    if (watch_in_flight_) {
      // The watch read must finish before the next request's read starts.
      phase_ = Phase::kDraining;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
      return;
    }
    DoIdleRead();
  }

  // After an error answered mid-request (the client may still be sending its body): stop sending,
  // then read and discard for a moment before closing, so that the kernel does not reset the
  // connection (and destroy our answer) because of unread bytes.
  void LingeringClose() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kLinger;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(1));
    buffer_.clear();
    DrainRead();
  }
  void DrainRead() {
    stream_.async_read_some(buffer_.prepare(kWatchReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxReadAhead * 16) return self->Close();
                              self->DrainRead();
                            });
  }

  void ClientGone() {
    if (phase_ == Phase::kClosed) return;
    std::shared_ptr<Exchange> ex = std::move(exchange_);
    Close();
    if (ex != nullptr && !ex->ended) ex->MarkCancelled();
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    if (exchange_ != nullptr && !exchange_->ended) {
      std::shared_ptr<Exchange> ex = std::move(exchange_);
      ex->MarkCancelled();
    }
    exchange_.reset();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
    server_->Unregister(this);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Phase phase_ = Phase::kIdle;
  bool keep_alive_ = true;
  std::string method_;
  std::string continue_;

  std::shared_ptr<Exchange> exchange_;
  bool head_sent_ = false;
  bool streaming_ = false;
  bool response_complete_ = false;
  bool watch_in_flight_ = false;
  bool linger_ = false;
  size_t drained_ = 0;

  std::string pending_;  // queued, not yet handed to the socket
  std::string writing_;  // the write in flight
  bool write_in_flight_ = false;
};

void Exchange::Respond(Response response) {
  PostRaw([self = shared_from_this(), r = std::move(response)]() mutable {
    if (auto c = self->conn_.lock()) c->DoRespond(self.get(), std::move(r));
  });
}
void Exchange::StartStream(int status, std::string content_type, Headers headers) {
  PostRaw(
      [self = shared_from_this(), status, ct = std::move(content_type), h = std::move(headers)]() {
        if (auto c = self->conn_.lock()) c->DoStartStream(self.get(), status, ct, h);
      });
}
void Exchange::Write(std::string data) {
  PostRaw([self = shared_from_this(), d = std::move(data)]() mutable {
    if (auto c = self->conn_.lock()) c->DoWriteChunk(self.get(), std::move(d));
  });
}
void Exchange::End() {
  PostRaw([self = shared_from_this()]() {
    if (auto c = self->conn_.lock()) c->DoEnd(self.get());
  });
}
void Exchange::OnCancel(std::function<void()> fn) {
  PostRaw([self = shared_from_this(), fn = std::move(fn)]() mutable {
    if (self->cancelled()) return fn();
    if (self->ended) return;
    self->on_cancel = std::move(fn);
  });
}

void HttpServer::Impl::Register(const std::shared_ptr<Connection>& c) {
  std::lock_guard lock(mu);
  connections[c.get()] = c;
}

void HttpServer::Impl::Accept() {
  acceptor->async_accept(net::make_strand(ioc),
                         [self = this](beast::error_code ec, tcp::socket socket) {
                           if (self->stopping.load() || !self->acceptor->is_open()) return;
                           if (!ec) {
                             beast::error_code ignored;
                             socket.set_option(tcp::no_delay(true), ignored);
                             auto conn = std::make_shared<Connection>(std::move(socket), self);
                             self->Register(conn);
                             net::dispatch(conn->strand(), [conn] { conn->Start(); });
                           }
                           self->Accept();
                         });
}

HttpServer::HttpServer(ServerOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  if (impl_->options.threads < 1) impl_->options.threads = 1;
}

HttpServer::~HttpServer() { Stop(0); }

void HttpServer::Handle(std::string method, std::string pattern, Handler handler) {
  WEFT_CHECK(!started_);
  impl_->routes.push_back(Route{std::move(method), SplitPath(pattern), std::move(handler)});
}

absl::Status HttpServer::Start() {
  WEFT_CHECK(!started_);
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad host '", impl_->options.host, "'"));
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& acceptor = impl_->acceptor.emplace(impl_->ioc);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl_->options.host, ":",
                                               impl_->options.port, ": ", ec.message()));
  }
  port_ = acceptor.local_endpoint().port();
  started_ = true;
  impl_->Accept();
  for (int i = 0; i < impl_->options.threads; ++i) {
    threads_.emplace_back([impl = impl_.get()] { impl->ioc.run(); });
  }
  return absl::OkStatus();
}

size_t HttpServer::connection_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->connections.size();
}

void HttpServer::Stop(double deadline_s) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  impl_->stopping = true;
  net::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor->close(ignored);
  });
  for (auto& c : impl_->Snapshot()) net::post(c->strand(), [c] { c->BeginShutdown(); });
  auto wait_until = [&](double seconds) {
    auto end = std::chrono::steady_clock::now() + Seconds(seconds);
    while (connection_count() > 0 && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  wait_until(deadline_s);
  for (auto& c : impl_->Snapshot()) net::post(c->strand(), [c] { c->ForceClose(); });
  wait_until(1.0);
  impl_->stopped = true;
  impl_->ioc.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace weft::http
