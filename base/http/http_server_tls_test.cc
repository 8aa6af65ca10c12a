// SPDX-License-Identifier: Apache-2.0
// HttpServer over TLS: a self-signed certificate made at test time (OpenSSL C API), an ssl_stream
// client on loopback that verifies it, and the plain path's behaviours (keep-alive, streaming,
// disconnects, timeouts, graceful stop) checked again through TLS.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/http/http_server.h"
#include "base/http/test_cert.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "openssl/ssl.h"

namespace weft::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;

// ---- A small blocking TLS client: async Beast ops run to completion, bounded by a deadline. ----

class TlsClient {
 public:
  // `ca_pem` non-empty: verify the server's certificate against it and the name "localhost".
  // `max_version`: 0 = any, else e.g. TLS1_2_VERSION. `alpn`: offered protocols (wire format).
  explicit TlsClient(const std::string& ca_pem, int max_version = 0, std::string alpn = "")
      : ctx_(ssl::context::tls_client) {
    if (!ca_pem.empty()) {
      ctx_.add_certificate_authority(net::buffer(ca_pem));
      ctx_.set_verify_mode(ssl::verify_peer);
    } else {
      ctx_.set_verify_mode(ssl::verify_none);
    }
    if (max_version != 0) {
      SSL_CTX_set_min_proto_version(ctx_.native_handle(), 0);
      SSL_CTX_set_max_proto_version(ctx_.native_handle(), max_version);
      // Let OpenSSL build an old ClientHello at all (the server is what must refuse it).
      if (max_version < TLS1_2_VERSION)
        SSL_CTX_set_cipher_list(ctx_.native_handle(), "ALL:@SECLEVEL=0");
    }
    stream_.emplace(ioc_, ctx_);
    if (!ca_pem.empty()) stream_->set_verify_callback(ssl::host_name_verification("localhost"));
    SSL_set_tlsext_host_name(stream_->native_handle(), "localhost");
    if (!alpn.empty()) {
      SSL_set_alpn_protos(stream_->native_handle(),
                          reinterpret_cast<const unsigned char*>(alpn.data()),
                          static_cast<unsigned>(alpn.size()));
    }
  }

  beast::error_code Connect(uint16_t port) {
    return Run([&](auto h) {
      beast::get_lowest_layer(*stream_).async_connect(
          tcp::endpoint(net::ip::make_address("127.0.0.1"), port), std::move(h));
    });
  }
  beast::error_code Handshake() {
    return Run([&](auto h) { stream_->async_handshake(ssl::stream_base::client, std::move(h)); });
  }
  beast::error_code ConnectAndHandshake(uint16_t port) {
    beast::error_code ec = Connect(port);
    return ec ? ec : Handshake();
  }

  beast::error_code Send(const std::string& method, const std::string& target,
                         const std::string& body = "", bool keep_alive = true) {
    bhttp::request<bhttp::string_body> req(bhttp::string_to_verb(method), target, 11);
    req.set(bhttp::field::host, "localhost");
    req.keep_alive(keep_alive);
    req.body() = body;
    req.prepare_payload();
    return Run([&](auto h) { bhttp::async_write(*stream_, req, std::move(h)); });
  }

  beast::error_code Read(bhttp::response<bhttp::string_body>& res) {
    return Run([&](auto h) { bhttp::async_read(*stream_, buffer_, res, std::move(h)); });
  }

  bhttp::response<bhttp::string_body> Request(const std::string& method, const std::string& target,
                                              const std::string& body = "",
                                              bool keep_alive = true) {
    bhttp::response<bhttp::string_body> res;
    beast::error_code ec = Send(method, target, body, keep_alive);
    EXPECT_FALSE(ec) << ec.message();
    if (!ec) ec = Read(res);
    EXPECT_FALSE(ec) << ec.message();
    return res;
  }

  // One read of whatever comes next: the error tells how the server closed (eof = close_notify).
  beast::error_code ReadSome(std::string* got = nullptr) {
    char buf[4096];
    size_t n = 0;
    beast::error_code ec = Run([&](auto h) {
      stream_->async_read_some(net::buffer(buf),
                               [&n, h = std::move(h)](beast::error_code e, size_t k) mutable {
                                 n = k;
                                 h(e);
                               });
    });
    if (got != nullptr) got->append(buf, n);
    return ec;
  }

  void CloseTcp() { beast::get_lowest_layer(*stream_).close(); }

  beast::ssl_stream<beast::tcp_stream>& stream() { return *stream_; }
  beast::flat_buffer& buffer() { return buffer_; }

  // Runs one async operation to its end; the tcp_stream's deadline bounds it.
  template <typename Start>
  beast::error_code Run(Start&& start, double timeout_s = 5) {
    beast::error_code result = net::error::would_block;
    beast::get_lowest_layer(*stream_).expires_after(
        std::chrono::milliseconds(static_cast<int>(timeout_s * 1000)));
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

 private:
  net::io_context ioc_;
  ssl::context ctx_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream_;
  beast::flat_buffer buffer_;
};

// A plain TCP connection: sends `bytes` and returns all it gets until the server closes (or
// `timeout_s`); `closed` tells which.
std::string PlainExchange(uint16_t port, const std::string& bytes, double timeout_s, bool* closed) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  if (!bytes.empty()) net::write(s.socket(), net::buffer(bytes));
  std::string got;
  char buf[1024];
  s.expires_after(std::chrono::milliseconds(static_cast<int>(timeout_s * 1000)));
  std::function<void()> read = [&] {
    s.async_read_some(net::buffer(buf), [&](beast::error_code ec, size_t n) {
      got.append(buf, n);
      if (ec) {
        *closed = ec != beast::error::timeout;
        return;
      }
      read();
    });
  };
  read();
  ioc.run();
  return got;
}

bool WaitFor(const std::function<bool()>& cond, double seconds = 5) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

class HttpServerTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TestCert cert = MakeTestCert();
    ASSERT_FALSE(cert.cert_pem.empty());
    ASSERT_FALSE(cert.key_pem.empty());
    cert_pem_ = new std::string(cert.cert_pem);
    key_pem_ = new std::string(cert.key_pem);
    other_key_pem_ = new std::string(MakeTestKeyPem());
  }
  static void TearDownTestSuite() {
    delete key_pem_;
    delete cert_pem_;
    delete other_key_pem_;
  }

  static TlsOptions InMemory() { return TlsOptions{.cert_pem = *cert_pem_, .key_pem = *key_pem_}; }

  void StartServer(ServerOptions options = {}) {
    if (!options.tls) options.tls = InMemory();
    server_ = std::make_unique<HttpServer>(std::move(options));
    server_->Handle("GET", "/hello", [](const Request& req, std::shared_ptr<ResponseWriter> w) {
      w->Respond(Response{200, "text/plain", {}, "hello " + req.query});
    });
    server_->Handle("POST", "/echo", [](const Request& req, std::shared_ptr<ResponseWriter> w) {
      w->Respond(Response{200, "application/json", {}, req.body});
    });
    // Streams `n` events from another thread, one every step_ms_; records cancellation.
    server_->Handle("GET", "/stream",
                    [this](const Request& req, std::shared_ptr<ResponseWriter> w) {
                      int n = req.query.empty() ? 5 : std::stoi(req.query);
                      w->OnCancel([this] { cancelled_++; });
                      w->StartStream(200, "text/event-stream");
                      running_++;
                      std::thread([w, n, this] {
                        for (int i = 0; i < n && !w->cancelled(); ++i) {
                          w->Write("data: " + std::to_string(i) + "\n\n");
                          std::this_thread::sleep_for(std::chrono::milliseconds(step_ms_));
                        }
                        w->End();
                        running_--;
                      }).detach();
                    });
    absl::Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st;
  }
  void TearDown() override {
    if (server_) server_->Stop(5);
    EXPECT_TRUE(WaitFor([this] { return running_ == 0; }, 20));
  }

  static std::string* cert_pem_;
  static std::string* key_pem_;
  static std::string* other_key_pem_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> cancelled_{0};
  std::atomic<int> running_{0};
  int step_ms_ = 20;
};
std::string* HttpServerTlsTest::cert_pem_ = nullptr;
std::string* HttpServerTlsTest::key_pem_ = nullptr;
std::string* HttpServerTlsTest::other_key_pem_ = nullptr;

TEST_F(HttpServerTlsTest, RequestResponseAndKeepAliveWithVerifiedCert) {
  StartServer();
  TlsClient c(*cert_pem_);
  beast::error_code ec = c.ConnectAndHandshake(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_GE(SSL_version(c.stream().native_handle()), TLS1_2_VERSION);
  for (int i = 0; i < 3; ++i) {  // one TLS connection, three requests
    auto r = c.Request("GET", "/hello?x=" + std::to_string(i));
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r.body(), "hello x=" + std::to_string(i));
    EXPECT_TRUE(r.keep_alive());
  }
  auto echo = c.Request("POST", "/echo", std::string(100000, 'e'));
  EXPECT_EQ(echo.body(), std::string(100000, 'e'));
  auto missing = c.Request("GET", "/nope");
  EXPECT_EQ(missing.result_int(), 404);
  EXPECT_EQ(server_->connection_count(), 1u);

  // Connection: close ends with a close_notify (a clean eof, not a truncated stream).
  auto last = c.Request("GET", "/hello", "", /*keep_alive=*/false);
  EXPECT_EQ(last.result_int(), 200);
  EXPECT_FALSE(last.keep_alive());
  EXPECT_EQ(c.ReadSome(), net::error::eof);
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
}

TEST_F(HttpServerTlsTest, NegotiatesTls12AndHttp11AlpnRefusesTls11) {
  StartServer();
  TlsClient tls12(*cert_pem_, TLS1_2_VERSION, std::string("\x02h2\x08http/1.1", 12));
  ASSERT_FALSE(tls12.ConnectAndHandshake(server_->port()));
  EXPECT_EQ(SSL_version(tls12.stream().native_handle()), TLS1_2_VERSION);
  const unsigned char* proto = nullptr;
  unsigned proto_len = 0;
  SSL_get0_alpn_selected(tls12.stream().native_handle(), &proto, &proto_len);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(proto), proto_len), "http/1.1");
  EXPECT_EQ(tls12.Request("GET", "/hello?v12").body(), "hello v12");

  TlsClient tls11("", TLS1_1_VERSION);
  ASSERT_FALSE(tls11.Connect(server_->port()));
  EXPECT_TRUE(tls11.Handshake());
}

TEST_F(HttpServerTlsTest, StreamsChunksAsTheyArrive) {
  step_ms_ = 100;
  StartServer();
  TlsClient c(*cert_pem_);
  ASSERT_FALSE(c.ConnectAndHandshake(server_->port()));
  ASSERT_FALSE(c.Send("GET", "/stream?3"));
  bhttp::response_parser<bhttp::string_body> p;
  ASSERT_FALSE(c.Run([&](auto h) { bhttp::async_read_header(c.stream(), c.buffer(), p, h); }));
  EXPECT_EQ(p.get().result_int(), 200);
  EXPECT_EQ(p.get()[bhttp::field::transfer_encoding], "chunked");
  EXPECT_EQ(p.get()[bhttp::field::content_type], "text/event-stream");
  auto start = std::chrono::steady_clock::now();
  while (p.get().body().find("data: 0\n\n") == std::string::npos) {
    ASSERT_FALSE(c.Run([&](auto h) { bhttp::async_read_some(c.stream(), c.buffer(), p, h); }));
  }
  // The first event came before the producer finished (3 x 100 ms): nothing was buffered.
  EXPECT_LT(SecondsSince(start), 0.15);
  ASSERT_FALSE(c.Run([&](auto h) { bhttp::async_read(c.stream(), c.buffer(), p, h); }));
  EXPECT_EQ(p.get().body(), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  // Keep-alive after a chunked response.
  EXPECT_EQ(c.Request("GET", "/hello?again").body(), "hello again");
  EXPECT_EQ(cancelled_, 0);
}

TEST_F(HttpServerTlsTest, ClientDisconnectMidStreamCancels) {
  StartServer();
  TlsClient c(*cert_pem_);
  ASSERT_FALSE(c.ConnectAndHandshake(server_->port()));
  ASSERT_FALSE(c.Send("GET", "/stream?100000"));
  std::string got;
  while (got.find("data: 1") == std::string::npos) ASSERT_FALSE(c.ReadSome(&got));
  c.CloseTcp();  // gone without a close_notify
  EXPECT_TRUE(WaitFor([this] { return cancelled_ == 1; }));
  EXPECT_TRUE(WaitFor([this] { return server_->connection_count() == 0; }));
}

TEST_F(HttpServerTlsTest, PlainHttpOnTlsPortGets400AndClose) {
  StartServer();
  bool closed = false;
  std::string got =
      PlainExchange(server_->port(), "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 3, &closed);
  EXPECT_TRUE(closed);
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 400 Bad Request"));
  EXPECT_THAT(got, HasSubstr("TLS port"));
  EXPECT_THAT(got, HasSubstr("Connection: close"));
  // Bytes that are neither TLS nor a known method: closed without an answer.
  closed = false;
  got = PlainExchange(server_->port(), "BREW /pot HTTP/1.1\r\n\r\n", 3, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  // The server still serves TLS.
  TlsClient c(*cert_pem_);
  ASSERT_FALSE(c.ConnectAndHandshake(server_->port()));
  EXPECT_EQ(c.Request("GET", "/hello?ok").body(), "hello ok");
}

TEST_F(HttpServerTlsTest, HandshakeNeverFinishedIsCutAtHeaderTimeout) {
  ServerOptions options;
  options.header_timeout_s = 0.3;
  StartServer(options);
  for (std::string sent : {std::string(), std::string("\x16\x03\x01\x02", 4)}) {
    // Nothing at all, then the start of a TLS record that never completes.
    auto start = std::chrono::steady_clock::now();
    bool closed = false;
    PlainExchange(server_->port(), sent, 3, &closed);
    double elapsed = SecondsSince(start);
    EXPECT_TRUE(closed) << sent.size();
    EXPECT_GE(elapsed, 0.25);
    EXPECT_LT(elapsed, 2.0);
    EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  }
}

TEST_F(HttpServerTlsTest, GracefulStopFinishesInFlightAndClosesIdleWithCloseNotify) {
  step_ms_ = 50;
  StartServer();
  TlsClient idle(*cert_pem_);
  ASSERT_FALSE(idle.ConnectAndHandshake(server_->port()));
  EXPECT_EQ(idle.Request("GET", "/hello").result_int(), 200);
  TlsClient c(*cert_pem_);
  ASSERT_FALSE(c.ConnectAndHandshake(server_->port()));
  ASSERT_FALSE(c.Send("GET", "/stream?6"));
  std::string got;
  while (got.find("data: 0") == std::string::npos) ASSERT_FALSE(c.ReadSome(&got));
  std::thread stopper([this] { server_->Stop(5); });
  beast::error_code ec;
  while (!(ec = c.ReadSome(&got))) {
  }
  stopper.join();
  EXPECT_THAT(got, HasSubstr("data: 5\n\n"));
  EXPECT_EQ(ec, net::error::eof);
  EXPECT_EQ(cancelled_, 0);
  EXPECT_EQ(idle.ReadSome(), net::error::eof);
}

TEST_F(HttpServerTlsTest, CertificateAndKeyFromFiles) {
  std::string dir = ::testing::TempDir();
  std::string cert = dir + "/weft_tls_test_cert.pem";
  std::string key = dir + "/weft_tls_test_key.pem";
  std::ofstream(cert) << *cert_pem_;
  std::ofstream(key) << *key_pem_;
  ServerOptions options;
  options.tls = TlsOptions{.cert_file = cert, .key_file = key};
  StartServer(options);
  TlsClient c(*cert_pem_);
  ASSERT_FALSE(c.ConnectAndHandshake(server_->port()));
  EXPECT_EQ(c.Request("GET", "/hello?files").body(), "hello files");
  std::remove(cert.c_str());
  std::remove(key.c_str());
}

TEST_F(HttpServerTlsTest, BadCertificateOrKeyFailsStart) {
  auto start_with = [](TlsOptions tls) {
    ServerOptions options;
    options.tls = std::move(tls);
    HttpServer server(options);
    return server.Start();
  };
  TlsOptions mismatched = InMemory();
  mismatched.key_pem = *other_key_pem_;
  absl::Status st = start_with(mismatched);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("does not match"));

  TlsOptions garbage_cert = InMemory();
  garbage_cert.cert_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
  st = start_with(garbage_cert);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("certificate chain"));

  TlsOptions garbage_key = InMemory();
  garbage_key.key_pem = "no key here";
  st = start_with(garbage_key);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("private key"));

  st = start_with(
      TlsOptions{.cert_file = "/nonexistent/cert.pem", .key_file = "/nonexistent/key.pem"});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("/nonexistent/cert.pem"));

  st = start_with(TlsOptions{});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace weft::http
