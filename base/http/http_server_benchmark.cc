// SPDX-License-Identifier: Apache-2.0
// HttpServer throughput, plain TCP against TLS: requests over keep-alive connections (one blocking
// Beast client per benchmark thread), and a new connection per request (TCP connect, plus the TLS
// handshake, one request, close). Server: 2 I/O threads on loopback, a fixed small JSON answer.
// CPU time is the whole process (server and client): steadier than wall time on a busy machine.
#include <memory>
#include <optional>
#include <string>

#include "base/http/http_server.h"
#include "base/http/test_cert.h"
#include "benchmark/benchmark.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"

namespace weft::http {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

constexpr char kBody[] = R"({"id":"cmpl-1","object":"text_completion","choices":[{"text":"hi"}]})";

// One server per kind for the whole run (started on first use).
HttpServer& Server(bool tls) {
  static auto make = [](bool with_tls) {
    ServerOptions options;
    if (with_tls) {
      TestCert cert = MakeTestCert();
      options.tls = TlsOptions{.cert_pem = cert.cert_pem, .key_pem = cert.key_pem};
    }
    auto server = std::make_unique<HttpServer>(options);
    server->Handle("GET", "/hello", [](const Request&, std::shared_ptr<ResponseWriter> w) {
      w->Respond(Response{200, "application/json", {}, kBody});
    });
    if (!server->Start().ok()) std::abort();
    return server;
  };
  static std::unique_ptr<HttpServer> plain = make(false);
  static std::unique_ptr<HttpServer> secure = make(true);
  return tls ? *secure : *plain;
}

// A blocking client over plain TCP or TLS (no certificate check: throughput only).
class Client {
 public:
  Client(bool tls, uint16_t port) : ctx_(ssl::context::tls_client) {
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
    if (tls) {
      ctx_.set_verify_mode(ssl::verify_none);
      tls_.emplace(ioc_, ctx_);
      beast::get_lowest_layer(*tls_).connect(ep);
      beast::get_lowest_layer(*tls_).set_option(tcp::no_delay(true));
      tls_->handshake(ssl::stream_base::client);
    } else {
      plain_.emplace(ioc_);
      plain_->connect(ep);
      plain_->set_option(tcp::no_delay(true));
    }
    req_.set(bhttp::field::host, "localhost");
  }

  bool Get() {
    bhttp::response<bhttp::string_body> res;
    beast::error_code ec;
    if (tls_) {
      bhttp::write(*tls_, req_, ec);
      if (!ec) bhttp::read(*tls_, buffer_, res, ec);
    } else {
      bhttp::write(*plain_, req_, ec);
      if (!ec) bhttp::read(*plain_, buffer_, res, ec);
    }
    return !ec && res.result_int() == 200;
  }

 private:
  net::io_context ioc_;
  ssl::context ctx_;
  std::optional<tcp::socket> plain_;
  std::optional<beast::ssl_stream<tcp::socket>> tls_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::empty_body> req_{bhttp::verb::get, "/hello", 11};
};

// Arg 0: 0 = plain, 1 = TLS.
void BM_KeepAliveRequests(benchmark::State& state) {
  bool tls = state.range(0) != 0;
  Client client(tls, Server(tls).port());
  for (auto _ : state) {
    if (!client.Get()) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(tls ? "tls" : "plain");
}
BENCHMARK(BM_KeepAliveRequests)->Arg(0)->Arg(1)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(BM_KeepAliveRequests)->Arg(0)->Arg(1)->Threads(4)->MeasureProcessCPUTime()->UseRealTime();

void BM_ConnectionPerRequest(benchmark::State& state) {
  bool tls = state.range(0) != 0;
  uint16_t port = Server(tls).port();
  for (auto _ : state) {
    Client client(tls, port);
    if (!client.Get()) state.SkipWithError("request failed");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(tls ? "tls" : "plain");
}
BENCHMARK(BM_ConnectionPerRequest)->Arg(0)->Arg(1)->MeasureProcessCPUTime()->UseRealTime();

}  // namespace
}  // namespace weft::http

BENCHMARK_MAIN();
