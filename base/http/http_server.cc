// SPDX-License-Identifier: Apache-2.0
#include "base/http/http_server.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <type_traits>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/http/io_context_pool.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "openssl/err.h"
#include "openssl/ssl.h"
#include "openssl/x509.h"

namespace weft::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

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
// TLS: the most a close_notify alert may take to leave before the socket is closed anyway.
constexpr double kCloseNotifyTimeoutS = 1;

// Mozilla's "intermediate" TLS 1.2 suites (forward secrecy, AEAD only); TLS 1.3 keeps OpenSSL's.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// ALPN: we speak HTTP/1.1 only; a client offering nothing we know gets no ALPN answer.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof(kHttp11), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

std::string SslErrorText(const beast::error_code& ec) {
  std::string text = ec.message();
  ERR_clear_error();  // what asio left on this thread's queue
  return text;
}

std::string MismatchMessage(const TlsOptions& o) {
  auto name = [](const std::string& pem, const std::string& file) {
    return pem.empty() ? absl::StrCat(" ('", file, "')") : std::string();
  };
  return absl::StrCat("TLS: the private key", name(o.key_pem, o.key_file),
                      " does not match the certificate", name(o.cert_pem, o.cert_file));
}

// The server's TLS context: certificate chain and key from `o` (checked to match), TLS 1.2+.
absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const TlsOptions& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* h = ctx->native_handle();
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  SSL_CTX_set_options(
      h, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(h, kTls12Ciphers) != 1) {
    ERR_clear_error();
    return absl::InternalError("TLS: cannot configure the OpenSSL context");
  }
  SSL_CTX_set_alpn_select_cb(h, SelectAlpn, nullptr);
  // An encrypted key fails to load instead of OpenSSL prompting on the terminal.
  ctx->set_password_callback([](size_t, ssl::context::password_purpose) { return std::string(); });

  beast::error_code ec;
  if (!o.cert_pem.empty()) {
    ctx->use_certificate_chain(net::buffer(o.cert_pem), ec);
  } else if (!o.cert_file.empty()) {
    ctx->use_certificate_chain_file(o.cert_file, ec);
  } else {
    return absl::InvalidArgumentError("TLS: no certificate (set cert_file or cert_pem)");
  }
  if (ec) {
    std::string from = o.cert_pem.empty() ? absl::StrCat("'", o.cert_file, "'") : "memory";
    return absl::InvalidArgumentError(
        absl::StrCat("TLS: cannot load the certificate chain from ", from, ": ", SslErrorText(ec)));
  }
  if (!o.key_pem.empty()) {
    ctx->use_private_key(net::buffer(o.key_pem), ssl::context::pem, ec);
  } else if (!o.key_file.empty()) {
    ctx->use_private_key_file(o.key_file, ssl::context::pem, ec);
  } else {
    return absl::InvalidArgumentError("TLS: no private key (set key_file or key_pem)");
  }
  if (ec && ERR_GET_LIB(static_cast<unsigned long>(ec.value())) == ERR_LIB_X509 &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    return absl::InvalidArgumentError(MismatchMessage(o));
  }
  if (ec) {
    std::string from = o.key_pem.empty() ? absl::StrCat("'", o.key_file, "'") : "memory";
    return absl::InvalidArgumentError(
        absl::StrCat("TLS: cannot load the private key from ", from, ": ", SslErrorText(ec)));
  }
  if (SSL_CTX_check_private_key(h) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(MismatchMessage(o));
  }
  return ctx;
}

// OpenSSL saw a plain HTTP request where a TLS ClientHello should be.
bool IsPlainHttpOnTls(const beast::error_code& ec) {
  if (ec.category() != net::error::get_ssl_category()) return false;
  int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
  return reason == SSL_R_HTTP_REQUEST || reason == SSL_R_HTTPS_PROXY_REQUEST;
}

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

namespace {

// A whole (non-chunked) response, head and body.
std::string SerializeResponse(const Response& r, bool keep_alive, bool with_body) {
  std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ", AV(StatusReason(r.status)), "\r\n");
  if (!r.content_type.empty()) absl::StrAppend(&out, "Content-Type: ", r.content_type, "\r\n");
  absl::StrAppend(&out, "Content-Length: ", r.body.size(), "\r\n");
  for (const auto& [k, v] : r.headers) absl::StrAppend(&out, k, ": ", v, "\r\n");
  absl::StrAppend(&out, "Connection: ", keep_alive ? "keep-alive" : "close", "\r\n\r\n");
  if (with_body) out += r.body;
  return out;
}

}  // namespace

// What the server needs of a connection of either kind (plain or TLS): shutting it down.
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual net::any_io_executor strand() = 0;
  virtual void BeginShutdown() = 0;  // on the strand
  virtual void ForceClose() = 0;     // on the strand
};

// One request, read by Beast's parser straight into a Request: its fields go to `req.headers` as
// they are parsed (Beast's own field container would allocate one element per field, and Dispatch
// then copied them out again), its body to `req.body`.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  Request req;
  bool expect_continue = false;  // "Expect: 100-continue"

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target, int,
                       beast::error_code&) override {
    req.method.assign(method.data(), method.size());
    req.target.assign(target.data(), target.size());
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
  void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    if (f == bhttp::field::expect &&
        EqualsIgnoreCase(std::string_view(value.data(), value.size()), "100-continue")) {
      expect_continue = true;
    }
    req.headers.emplace_back(std::piecewise_construct,
                             std::forward_as_tuple(name.data(), name.size()),
                             std::forward_as_tuple(value.data(), value.size()));
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    // The parser has held the length to body_limit already.
    if (length) req.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    req.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    req.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}
};

// A route's "{name}" segment (matches any one path segment, passed as params["name"]).
bool IsParamSegment(std::string_view s) {
  return s.size() > 2 && s.front() == '{' && s.back() == '}';
}

struct Route {
  std::string method;
  std::vector<std::string> segments;
  Handler handler;
};

// Connections and the accept handler own the Impl (shared_ptr), so it outlives every handler queued
// on a caller's io_contexts. With the server's own pool that is a cycle (the pool is a member),
// which Stop() breaks: once its threads are joined it destroys the pool and the handlers in it.
struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  ServerOptions options;
  std::vector<Route> routes;
  // "METHOD /a/b" of each route without "{name}" segments (its first one), for a path as the
  // route writes it (SplitPath's form: no empty segments).
  absl::flat_hash_map<std::string, const Handler*> literal_routes;
  std::atomic<bool> stopping{false};
  std::atomic<bool> stopped{false};

  mutable std::mutex mu;
  std::unordered_map<ConnectionBase*, std::weak_ptr<ConnectionBase>> connections;  // guarded by mu

  std::unique_ptr<ssl::context> tls;  // set when ServerOptions::tls is

  // Declared last: destroyed first, so the connections its queued handlers own unregister while
  // the members above still exist.
  std::unique_ptr<IoContextPool> own_pool;  // unless ServerOptions::io_contexts
  std::vector<net::io_context*> iocs;       // the pool's or the caller's
  std::atomic<size_t> next_ioc{0};          // round robin of accepted connections
  std::optional<tcp::acceptor> acceptor;    // on iocs[0]

  void IndexLiteralRoutes() {
    literal_routes.clear();
    for (const Route& route : routes) {
      std::string key = route.method + " ";
      bool literal = true;
      for (const std::string& seg : route.segments) {
        if (IsParamSegment(seg)) literal = false;
        absl::StrAppend(&key, "/", seg);
      }
      if (route.segments.empty()) key += "/";
      if (literal) literal_routes.emplace(std::move(key), &route.handler);
    }
  }
  const Handler* FindLiteral(std::string_view method, std::string_view path) const {
    char key[256];
    if (literal_routes.empty() || method.size() + 1 + path.size() > sizeof(key)) return nullptr;
    std::memcpy(key, method.data(), method.size());
    key[method.size()] = ' ';
    std::memcpy(key + method.size() + 1, path.data(), path.size());
    auto it = literal_routes.find(absl::string_view(key, method.size() + 1 + path.size()));
    return it == literal_routes.end() ? nullptr : it->second;
  }
  Response Error(int status, std::string message) const {
    if (options.error_response) return options.error_response(status, std::move(message));
    return DefaultErrorResponse(status, std::move(message));
  }
  void Accept();
  template <typename Conn>
  void Launch(std::shared_ptr<Conn> conn);
  void Unregister(ConnectionBase* c) {
    std::lock_guard lock(mu);
    connections.erase(c);
  }
  std::vector<std::shared_ptr<ConnectionBase>> Snapshot() {
    std::vector<std::shared_ptr<ConnectionBase>> out;
    std::lock_guard lock(mu);
    for (auto& [p, w] : connections) {
      if (auto c = w.lock()) out.push_back(std::move(c));
    }
    return out;
  }
};

// The ResponseWriter of one exchange on a `Conn` (a Connection<Stream>). Holds the server weakly:
// posting after the server is gone is a no-op.
template <typename Conn>
class Exchange : public ResponseWriter, public std::enable_shared_from_this<Exchange<Conn>> {
 public:
  Exchange(std::weak_ptr<HttpServer::Impl> server, std::weak_ptr<Conn> conn,
           net::any_io_executor strand)
      : server_(std::move(server)), conn_(std::move(conn)), strand_(std::move(strand)) {}

  void Respond(Response response) override {
    PostRaw([self = this->shared_from_this(), r = std::move(response)]() mutable {
      if (auto c = self->conn_.lock()) c->DoRespond(self.get(), std::move(r));
    });
  }
  void StartStream(int status, std::string content_type, Headers headers) override {
    PostRaw([self = this->shared_from_this(), status, ct = std::move(content_type),
             h = std::move(headers)]() {
      if (auto c = self->conn_.lock()) c->DoStartStream(self.get(), status, ct, h);
    });
  }
  void Write(std::string data) override {
    PostRaw([self = this->shared_from_this(), d = std::move(data)]() mutable {
      if (auto c = self->conn_.lock()) c->DoWriteChunk(self.get(), std::move(d));
    });
  }
  void End() override {
    PostRaw([self = this->shared_from_this()]() {
      if (auto c = self->conn_.lock()) c->DoEnd(self.get());
    });
  }
  void Post(std::function<void()> fn) override { PostRaw(std::move(fn)); }
  void OnCancel(std::function<void()> fn) override {
    PostRaw([self = this->shared_from_this(), fn = std::move(fn)]() mutable {
      if (self->cancelled()) return fn();
      if (self->ended) return;
      self->on_cancel = std::move(fn);
    });
  }
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
  std::weak_ptr<Conn> conn_;
  net::any_io_executor strand_;
  std::atomic<bool> cancelled_{false};
};

// One client connection over `Stream`: PlainStream (a beast::tcp_stream) or TlsStream (an
// ssl_stream over one). Timeouts live on the tcp_stream at the bottom of either; the TLS variant
// adds a handshake before the first request and a close_notify on graceful closes.
template <typename Stream>
class Connection : public ConnectionBase, public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using Ex = Exchange<Connection>;

  // `stream_args`: the ssl::context for TlsStream, nothing for PlainStream.
  template <typename... StreamArgs>
  Connection(tcp::socket socket, std::shared_ptr<HttpServer::Impl> server,
             StreamArgs&... stream_args)
      : stream_(std::move(socket), stream_args...),
        server_(std::move(server)),
        idle_timer_(stream_.get_executor()) {
    beast::error_code ec;
    auto ep = Tcp().socket().remote_endpoint(ec);
    if (!ec) remote_ = absl::StrCat(ep.address().to_string(), ":", ep.port());
  }
  ~Connection() override { server_->Unregister(this); }

  void Start() {
    if constexpr (kTls) {
      // The handshake shares the header deadline: a client that never finishes it is cut.
      phase_ = Phase::kHandshake;
      Tcp().expires_after(Seconds(server_->options.header_timeout_s));
      stream_.async_handshake(ssl::stream_base::server,
                              [self = Self()](beast::error_code ec) { self->OnHandshake(ec); });
    } else {
      DoIdleRead();
    }
  }

  // Called by HttpServer::Stop (posted to the strand).
  void BeginShutdown() override {
    keep_alive_ = false;
    if (phase_ != Phase::kHandling) Close(/*notify=*/phase_ == Phase::kIdle);
  }
  void ForceClose() override {
    if constexpr (kTls) {
      // A close_notify still on its way: give up on it.
      if (phase_ == Phase::kClosed) return CloseSocket();
    }
    ClientGone();
  }

  net::any_io_executor strand() override { return stream_.get_executor(); }

  // Exchange operations, on the strand.
  void DoRespond(Ex* ex, Response r) {
    if (!Current(ex) || head_sent_) return;
    head_sent_ = true;
    KeepAliveDecision();
    response_complete_ = true;
    QueueWrite(SerializeResponse(r, keep_alive_, method_ != "HEAD"));
  }
  void DoStartStream(Ex* ex, int status, const std::string& content_type, const Headers& headers) {
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
  void DoWriteChunk(Ex* ex, std::string data) {
    if (!Current(ex) || !streaming_ || response_complete_ || data.empty()) return;
    QueueWrite(absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n"));
  }
  void DoEnd(Ex* ex) {
    if (!Current(ex) || !streaming_ || response_complete_) return;
    response_complete_ = true;
    QueueWrite("0\r\n\r\n");
  }

 private:
  enum class Phase { kHandshake, kIdle, kHeader, kBody, kHandling, kDraining, kLinger, kClosed };

  std::shared_ptr<Connection> Self() { return this->shared_from_this(); }
  // The TCP layer under either stream: its timers bound every read and write above it.
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  bool Current(Ex* ex) const {
    return exchange_ != nullptr && exchange_.get() == ex && !ex->ended && phase_ != Phase::kClosed;
  }
  void KeepAliveDecision() {
    if (server_->stopping.load()) keep_alive_ = false;
  }

  void OnHandshake(beast::error_code ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      if (IsPlainHttpOnTls(ec)) return RejectPlainHttp();
      return Close();  // timeout, reset, a bad ClientHello, no common version or cipher
    }
    handshake_done_ = true;
    DoIdleRead();
  }

  // A plain HTTP request on the TLS port: answer 400 in plain text (what the client can read),
  // then close like after any error answered mid-request.
  void RejectPlainHttp() {
    phase_ = Phase::kLinger;
    writing_ = SerializeResponse(
        server_->Error(400, "plain HTTP request sent to a TLS port; use https"), false, true);
    Tcp().expires_after(Seconds(server_->options.write_timeout_s));
    net::async_write(Tcp(), net::buffer(writing_), [self = Self()](beast::error_code ec, size_t) {
      if (self->phase_ == Phase::kClosed) return;
      if (ec) return self->Close();
      self->LingerTcp();
    });
  }

  void DoIdleRead() {
    if (server_->stopping.load()) return Close(/*notify=*/true);
    phase_ = Phase::kIdle;
    if (buffer_.size() > 0) return DoReadHeader();
    Tcp().expires_after(Seconds(server_->options.idle_timeout_s));
    stream_.async_read_some(buffer_.prepare(kWatchReadBytes),
                            [self = Self()](beast::error_code ec, size_t n) {
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
    // The common case: the whole request came in one read. Parsed here, it needs no asynchronous
    // read per part (each with its deadline timer armed and cancelled, and a posted completion).
    if (buffer_.size() > 0) {
      parser_->eager(true);  // on into the body once the head is parsed
      beast::error_code ec;
      while (!parser_->is_done() && buffer_.size() > 0) {
        const size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec || used == 0) break;
      }
      if (ec == bhttp::error::need_more) ec = {};
      if (ec) return OnReadError(ec);
      if (parser_->is_done()) {
        phase_ = Phase::kBody;
        return Dispatch();
      }
      if (parser_->is_header_done()) return OnHeader({});  // the rest of the body: read below
    }
    // One deadline for the whole head: a client trickling bytes (slowloris) is cut at it.
    Tcp().expires_after(Seconds(server_->options.header_timeout_s));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    phase_ = Phase::kBody;
    if (parser_->expect_continue && !parser_->is_done()) {
      continue_.assign("HTTP/1.1 100 Continue\r\n\r\n");
      Tcp().expires_after(Seconds(server_->options.write_timeout_s));
      net::async_write(stream_, net::buffer(continue_),
                       [self = Self()](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->DoReadBody();
                       });
      return;
    }
    DoReadBody();
  }

  void DoReadBody() {
    Tcp().expires_after(Seconds(server_->options.body_timeout_s));
    bhttp::async_read(stream_, buffer_, *parser_, [self = Self()](beast::error_code ec, size_t) {
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
    exchange_ = std::make_shared<Ex>(server_->weak_from_this(), this->weak_from_this(), strand());
    head_sent_ = streaming_ = response_complete_ = false;
    method_.clear();
    DoRespond(exchange_.get(), server_->Error(status, std::move(message)));
  }

  void Dispatch() {
    phase_ = Phase::kHandling;
    keep_alive_ = parser_->keep_alive();
    Request req = std::move(parser_->req);
    parser_.reset();
    size_t q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    req.remote = remote_;
    method_ = req.method;

    exchange_ = std::make_shared<Ex>(server_->weak_from_this(), this->weak_from_this(), strand());
    head_sent_ = streaming_ = response_complete_ = false;
    Tcp().expires_never();
    StartWatch();

    // A path with no "{name}" segment is looked up; the others are matched segment by segment
    // (the most literal segments win; a known path with another method is a 405).
    const Handler* handler = server_->FindLiteral(req.method, req.path);
    bool path_known = handler != nullptr;
    std::string allow;
    if (handler == nullptr) {
      std::vector<std::string> segments = SplitPath(req.path);
      int best_score = -1;
      for (const Route& route : server_->routes) {
        if (route.segments.size() != segments.size()) continue;
        std::map<std::string, std::string> params;
        int score = 0;
        bool match = true;
        for (size_t i = 0; i < segments.size() && match; ++i) {
          const std::string& s = route.segments[i];
          if (IsParamSegment(s)) {
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
  // reset) so its work can be cancelled; bytes it reads are kept for the next request. Plain: on
  // the raw socket, past the tcp_stream's timers. TLS: through the ssl_stream (the bytes must be
  // decrypted), whose reads Dispatch left without a deadline; asio's ssl::stream allows this read
  // alongside the response's writes.
  void StartWatch() {
    if (watch_in_flight_ || buffer_.size() >= kMaxReadAhead) return;
    watch_in_flight_ = true;
    auto on_read = [self = Self()](beast::error_code ec, size_t n) { self->OnWatch(ec, n); };
    if constexpr (kTls) {
      stream_.async_read_some(buffer_.prepare(kWatchReadBytes), std::move(on_read));
    } else {
      stream_.socket().async_read_some(buffer_.prepare(kWatchReadBytes),
                                       net::bind_executor(strand(), std::move(on_read)));
    }
  }

  void OnWatch(beast::error_code ec, size_t n) {
    watch_in_flight_ = false;
    if (phase_ == Phase::kClosed || phase_ == Phase::kLinger) return;
    if (!ec) buffer_.commit(n);
    if (idle_on_watch_) {
      // The next request's first bytes (or the client's close) while idle.
      idle_on_watch_ = false;
      if (ec) return Close();
      return DoIdleRead();
    }
    if (phase_ == Phase::kDraining) {
      // The client closed while we drained: close now (a read after EOF never completes, which
      // would leave the socket in CLOSE-WAIT until the idle timeout).
      if (ec && ec != net::error::operation_aborted) return Close();
      return DoIdleRead();
    }
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
    Tcp().expires_after(Seconds(server_->options.write_timeout_s));
    net::async_write(stream_, net::buffer(writing_),
                     [self = Self()](beast::error_code ec, size_t) { self->OnWrite(ec); });
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
    Tcp().expires_never();
    if (linger_) return LingeringClose();
    if (!keep_alive_ || server_->stopping.load()) return Close(/*notify=*/true);
    if constexpr (!kTls) {
      if (watch_in_flight_ && buffer_.size() == 0) {
        // The watch read goes on as the idle read: no cancel, no new read (whose speculative
        // recv would find nothing yet), and the idle deadline is checked by a lazy timer.
        phase_ = Phase::kIdle;
        idle_on_watch_ = true;
        idle_since_ = std::chrono::steady_clock::now();
        if (!idle_timer_armed_) ArmIdleTimer(idle_since_ + IdleTimeout());
        return;
      }
    }
    if (watch_in_flight_) {
      // The watch read must finish before the next request's read starts.
      phase_ = Phase::kDraining;
      beast::error_code ignored;
      Tcp().socket().cancel(ignored);
      return;
    }
    DoIdleRead();
  }

  // After an error answered mid-request (the client may still be sending its body): stop sending,
  // then read and discard for a moment before closing, so that the kernel does not reset the
  // connection (and destroy our answer) because of unread bytes. TLS sends its close_notify first.
  void LingeringClose() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kLinger;
    if constexpr (kTls) {
      return SendCloseNotify([self = Self()] {
        if (self->phase_ != Phase::kClosed) self->LingerTcp();
      });
    }
    LingerTcp();
  }
  void LingerTcp() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().expires_after(std::chrono::seconds(1));
    buffer_.clear();
    DrainRead();
  }
  // Discards what the client still sends, below TLS if any.
  void DrainRead() {
    Tcp().async_read_some(buffer_.prepare(kWatchReadBytes),
                          [self = Self()](beast::error_code ec, size_t n) {
                            self->drained_ += n;
                            if (ec || self->drained_ > kMaxReadAhead * 16) return self->Close();
                            self->DrainRead();
                          });
  }

  // TLS: sends close_notify without waiting for the client's (SSL_RECEIVED_SHUTDOWN makes
  // SSL_shutdown complete once ours is out), bounded by kCloseNotifyTimeoutS; then `done`.
  template <typename F>
  void SendCloseNotify(F done) {
    SSL* ssl = stream_.native_handle();
    SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_RECEIVED_SHUTDOWN);
    Tcp().expires_after(Seconds(std::min(kCloseNotifyTimeoutS, server_->options.write_timeout_s)));
    stream_.async_shutdown([done = std::move(done)](beast::error_code) { done(); });
  }

  std::chrono::steady_clock::duration IdleTimeout() const {
    return Seconds(server_->options.idle_timeout_s);
  }
  // One timer armed at most once per idle timeout, not once per request: when it fires it closes
  // a connection idle (on its watch read) for the whole timeout, or waits for the rest of it.
  void ArmIdleTimer(std::chrono::steady_clock::time_point when) {
    idle_timer_armed_ = true;
    idle_timer_.expires_at(when);
    idle_timer_.async_wait([self = Self()](beast::error_code ec) { self->OnIdleTimer(ec); });
  }
  void OnIdleTimer(beast::error_code ec) {
    idle_timer_armed_ = false;
    if (ec || phase_ == Phase::kClosed || !idle_on_watch_) return;  // busy: re-armed when idle
    const auto deadline = idle_since_ + IdleTimeout();
    if (std::chrono::steady_clock::now() >= deadline) return Close(/*notify=*/true);
    ArmIdleTimer(deadline);
  }

  void ClientGone() {
    if (phase_ == Phase::kClosed) return;
    std::shared_ptr<Ex> ex = std::move(exchange_);
    Close();
    if (ex != nullptr && !ex->ended) ex->MarkCancelled();
  }

  // `notify`: a graceful close after a complete exchange or while idle; TLS then sends its
  // close_notify first, and the connection counts as open until it is out.
  void Close(bool notify = false) {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    if (exchange_ != nullptr && !exchange_->ended) {
      std::shared_ptr<Ex> ex = std::move(exchange_);
      ex->MarkCancelled();
    }
    exchange_.reset();
    if (idle_timer_armed_) idle_timer_.cancel();
    if constexpr (kTls) {
      if (notify && handshake_done_ && !write_in_flight_ && Tcp().socket().is_open()) {
        return SendCloseNotify([self = Self()] {
          self->CloseSocket();
          self->server_->Unregister(self.get());
        });
      }
    }
    CloseSocket();
    server_->Unregister(this);
  }
  void CloseSocket() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Tcp().close();
  }

  Stream stream_;
  std::shared_ptr<HttpServer::Impl> server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  Phase phase_ = Phase::kIdle;
  bool keep_alive_ = true;
  bool handshake_done_ = false;  // TLS
  std::string method_;
  std::string continue_;

  std::shared_ptr<Ex> exchange_;
  bool head_sent_ = false;
  bool streaming_ = false;
  bool response_complete_ = false;
  bool watch_in_flight_ = false;
  // Plain TCP: the watch read left running after an exchange is the idle read.
  bool idle_on_watch_ = false;
  std::chrono::steady_clock::time_point idle_since_;
  net::steady_timer idle_timer_;  // lazy idle deadline while idle_on_watch_
  bool idle_timer_armed_ = false;
  bool linger_ = false;
  size_t drained_ = 0;

  std::string pending_;  // queued, not yet handed to the socket
  std::string writing_;  // the write in flight
  bool write_in_flight_ = false;
};

template <typename Conn>
void HttpServer::Impl::Launch(std::shared_ptr<Conn> conn) {
  {
    std::lock_guard lock(mu);
    connections[conn.get()] = conn;
  }
  net::any_io_executor strand = conn->strand();
  net::dispatch(strand, [conn = std::move(conn)] { conn->Start(); });
}

void HttpServer::Impl::Accept() {
  // Each connection lives on one io_context (one thread): its handlers need no strand.
  net::io_context& target = *iocs[next_ioc.fetch_add(1) % iocs.size()];
  acceptor->async_accept(target, [self = shared_from_this()](beast::error_code ec,
                                                             tcp::socket socket) {
    if (self->stopping.load() || !self->acceptor->is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (self->tls != nullptr) {
        self->Launch(std::make_shared<Connection<TlsStream>>(std::move(socket), self, *self->tls));
      } else {
        self->Launch(std::make_shared<Connection<PlainStream>>(std::move(socket), self));
      }
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
  impl_->IndexLiteralRoutes();
  if (impl_->options.tls.has_value()) {
    auto tls = MakeTlsContext(*impl_->options.tls);
    if (!tls.ok()) return tls.status();
    impl_->tls = std::move(tls).value();
  }
  beast::error_code ec;
  auto address = net::ip::make_address(impl_->options.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad host '", impl_->options.host, "'"));
  tcp::endpoint endpoint(address, impl_->options.port);
  if (impl_->options.io_contexts.empty()) {
    impl_->own_pool = std::make_unique<IoContextPool>(impl_->options.threads);
    impl_->iocs = impl_->own_pool->contexts();
  } else {
    impl_->iocs = impl_->options.io_contexts;
  }
  auto& acceptor = impl_->acceptor.emplace(*impl_->iocs[0]);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    impl_->acceptor.reset();
    impl_->own_pool.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", impl_->options.host, ":",
                                               impl_->options.port, ": ", ec.message()));
  }
  port_ = acceptor.local_endpoint().port();
  started_ = true;
  impl_->Accept();
  if (impl_->own_pool != nullptr) impl_->own_pool->Start();
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
  net::post(*impl_->iocs[0], [impl = impl_] {
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
  if (impl_->own_pool != nullptr) {
    impl_->own_pool->Stop();
    // The acceptor and the handlers still queued (owning connections, which own the Impl) go
    // before the pool's io_contexts do.
    impl_->acceptor.reset();
    impl_->own_pool.reset();
  }
}

}  // namespace weft::http
