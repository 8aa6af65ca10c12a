// SPDX-License-Identifier: Apache-2.0
#include "testing/fault_proxy.h"

#include <poll.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/http/http_server.h"
#include "boost/asio.hpp"
#include "gtest/gtest.h"
#include "testing/http_client.h"

namespace weft::testing {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

// A blocking loopback server: each connection runs `handler` on its own thread.
class RawServer {
 public:
  explicit RawServer(std::function<void(tcp::socket&)> handler)
      : handler_(std::move(handler)),
        acceptor_(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] {
      while (true) {
        error_code ec;
        auto socket = std::make_shared<tcp::socket>(ioc_);
        acceptor_.accept(*socket, ec);
        if (ec || stopping_) return;
        std::lock_guard lock(mu_);
        sockets_.push_back(socket);
        threads_.emplace_back([this, socket] {
          handler_(*socket);
          error_code ignored;
          socket->shutdown(tcp::socket::shutdown_send, ignored);  // FIN when the handler ends
        });
      }
    });
  }
  ~RawServer() {
    stopping_ = true;
    error_code ignored;
    // Unblocks accept(): a connection to ourselves.
    tcp::socket poke(ioc_);
    poke.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ignored);
    accept_thread_.join();
    std::lock_guard lock(mu_);
    for (auto& s : sockets_) s->shutdown(tcp::socket::shutdown_both, ignored);
    for (auto& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }

 private:
  std::function<void(tcp::socket&)> handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
};

void Echo(tcp::socket& s) {
  char buf[4096];
  while (true) {
    error_code ec;
    size_t n = s.read_some(net::buffer(buf), ec);
    if (ec) return;
    net::write(s, net::buffer(buf, n), ec);
    if (ec) return;
  }
}

// Waits up to `timeout_s` for bytes; returns them ("" on timeout), or sets `ec` (eof, reset).
std::string ReadSome(tcp::socket& s, double timeout_s, error_code& ec) {
  ec = {};
  pollfd p{s.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout_s * 1000)) <= 0) return "";
  char buf[65536];
  size_t n = s.read_some(net::buffer(buf), ec);
  return std::string(buf, n);
}

// Reads until `want` bytes arrived (or an error / timeout).
std::string ReadN(tcp::socket& s, size_t want, double timeout_s = 5) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    error_code ec;
    out += ReadSome(s, 0.1, ec);
    if (ec) break;
  }
  return out;
}

// Reads until an error; returns the bytes and the error.
std::string ReadToError(tcp::socket& s, error_code& ec, double timeout_s = 5) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    out += ReadSome(s, 0.1, ec);
    if (ec) return out;
  }
  ec = net::error::timed_out;
  return out;
}

template <typename F>
bool WaitFor(F cond, double timeout_s = 5) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

class FaultProxyTest : public ::testing::Test {
 protected:
  std::unique_ptr<FaultProxy> StartProxy(uint16_t target_port) {
    FaultProxyOptions o;
    o.target_port = target_port;
    auto proxy = FaultProxy::Start(o);
    EXPECT_TRUE(proxy.ok()) << proxy.status();
    return std::move(proxy).value();
  }
  tcp::socket Connect(uint16_t port) {
    tcp::socket s(ioc_);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    return s;
  }
  net::io_context ioc_;
};

TEST_F(FaultProxyTest, PassForwardsBothWaysAndCounts) {
  RawServer echo(Echo);
  auto proxy = StartProxy(echo.port());
  tcp::socket c = Connect(proxy->port());
  net::write(c, net::buffer(std::string("hello")));
  EXPECT_EQ(ReadN(c, 5), "hello");
  EXPECT_EQ(proxy->connections(), 1u);
  EXPECT_EQ(proxy->open_connections(), 1u);
  EXPECT_EQ(proxy->bytes_to_upstream(), 5u);
  EXPECT_EQ(proxy->bytes_to_client(), 5u);
  c.close();
  EXPECT_TRUE(WaitFor([&] { return proxy->open_connections() == 0; }));
  EXPECT_EQ(proxy->resets(), 0u);
}

TEST_F(FaultProxyTest, ResetAfterBytesCutsUpstreamToClient) {
  std::atomic<bool> server_saw_error{false};
  RawServer firehose([&](tcp::socket& s) {
    std::string block(4096, 'x');
    for (int i = 0; i < 1000; ++i) {
      error_code ec;
      net::write(s, net::buffer(block), ec);
      if (ec) {
        server_saw_error = true;
        return;
      }
    }
  });
  auto proxy = StartProxy(firehose.port());
  proxy->ResetAfterBytes(10000);
  tcp::socket c = Connect(proxy->port());
  error_code ec;
  std::string got = ReadToError(c, ec);
  EXPECT_EQ(ec, net::error::connection_reset) << ec.message();
  EXPECT_LE(got.size(), 10000u);
  EXPECT_GT(got.size(), 0u);
  EXPECT_EQ(proxy->bytes_to_client(), 10000u);
  EXPECT_EQ(proxy->resets(), 1u);
  EXPECT_TRUE(WaitFor([&] { return server_saw_error.load(); }));
  EXPECT_EQ(proxy->open_connections(), 0u);
}

TEST_F(FaultProxyTest, ResetAfterBytesCountsFromTheCallOnOpenConnections) {
  RawServer echo(Echo);
  auto proxy = StartProxy(echo.port());
  tcp::socket c = Connect(proxy->port());
  net::write(c, net::buffer(std::string(100, 'a')));
  EXPECT_EQ(ReadN(c, 100).size(), 100u);
  proxy->ResetAfterBytes(150);
  net::write(c, net::buffer(std::string(100, 'b')));
  EXPECT_EQ(ReadN(c, 100), std::string(100, 'b'));  // 100 of the 150
  net::write(c, net::buffer(std::string(100, 'c')));
  error_code ec;
  std::string got = ReadToError(c, ec);
  EXPECT_EQ(ec, net::error::connection_reset) << ec.message();
  EXPECT_LE(got.size(), 50u);
  EXPECT_EQ(proxy->bytes_to_client(), 250u);
  EXPECT_EQ(proxy->bytes_to_upstream(), 300u);  // client -> upstream is never cut
}

TEST_F(FaultProxyTest, StallHoldsDataUntilPass) {
  RawServer echo(Echo);
  auto proxy = StartProxy(echo.port());
  tcp::socket c = Connect(proxy->port());
  net::write(c, net::buffer(std::string("a")));
  EXPECT_EQ(ReadN(c, 1), "a");
  proxy->Stall();
  net::write(c, net::buffer(std::string("b")));
  error_code ec;
  EXPECT_EQ(ReadSome(c, 0.3, ec), "");
  EXPECT_FALSE(ec);
  EXPECT_EQ(proxy->open_connections(), 1u);
  proxy->Pass();
  EXPECT_EQ(ReadN(c, 1), "b");

  // A connection accepted while stalled is silent too.
  proxy->Stall();
  tcp::socket c2 = Connect(proxy->port());
  net::write(c2, net::buffer(std::string("z")));
  EXPECT_EQ(ReadSome(c2, 0.3, ec), "");
  proxy->Pass();
  EXPECT_EQ(ReadN(c2, 1), "z");
}

TEST_F(FaultProxyTest, RefuseResetsNewConnectionsOnly) {
  RawServer echo(Echo);
  auto proxy = StartProxy(echo.port());
  tcp::socket open = Connect(proxy->port());
  net::write(open, net::buffer(std::string("1")));
  EXPECT_EQ(ReadN(open, 1), "1");
  proxy->Refuse();
  tcp::socket refused = Connect(proxy->port());
  error_code ec;
  ReadToError(refused, ec);
  EXPECT_TRUE(ec == net::error::connection_reset || ec == net::error::eof) << ec.message();
  EXPECT_EQ(proxy->resets(), 1u);
  EXPECT_EQ(proxy->connections(), 2u);
  net::write(open, net::buffer(std::string("2")));  // the open one still flows
  EXPECT_EQ(ReadN(open, 1), "2");
  proxy->Pass();
  tcp::socket again = Connect(proxy->port());
  net::write(again, net::buffer(std::string("3")));
  EXPECT_EQ(ReadN(again, 1), "3");
}

TEST_F(FaultProxyTest, ResetAllCutsEveryOpenConnection) {
  RawServer echo(Echo);
  auto proxy = StartProxy(echo.port());
  tcp::socket a = Connect(proxy->port());
  tcp::socket b = Connect(proxy->port());
  net::write(a, net::buffer(std::string("a")));
  net::write(b, net::buffer(std::string("b")));
  EXPECT_EQ(ReadN(a, 1), "a");
  EXPECT_EQ(ReadN(b, 1), "b");
  proxy->ResetAll();
  for (tcp::socket* s : {&a, &b}) {
    error_code ec;
    ReadToError(*s, ec);
    EXPECT_EQ(ec, net::error::connection_reset) << ec.message();
  }
  EXPECT_EQ(proxy->resets(), 2u);
  EXPECT_EQ(proxy->open_connections(), 0u);
}

TEST_F(FaultProxyTest, TargetDownClosesTheClient) {
  uint16_t dead_port;
  {
    tcp::acceptor probe(ioc_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    dead_port = probe.local_endpoint().port();
  }
  auto proxy = StartProxy(dead_port);
  tcp::socket c = Connect(proxy->port());
  error_code ec;
  ReadToError(c, ec);
  EXPECT_TRUE(ec == net::error::connection_reset || ec == net::error::eof) << ec.message();
  EXPECT_EQ(proxy->resets(), 0u);
}

TEST_F(FaultProxyTest, HttpThroughTheProxy) {
  http::ServerOptions so;
  http::HttpServer server(so);
  server.Handle("GET", "/ping", [](const http::Request&, std::shared_ptr<http::ResponseWriter> w) {
    http::Response r;
    r.body = R"({"pong":true})";
    w->Respond(std::move(r));
  });
  ASSERT_TRUE(server.Start().ok());
  auto proxy = StartProxy(server.port());
  auto client = HttpClient::Connect("127.0.0.1", proxy->port());
  ASSERT_TRUE(client.ok()) << client.status();
  for (int i = 0; i < 3; ++i) {
    auto r = (*client)->Request("GET", "/ping");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, R"({"pong":true})");
  }
  EXPECT_EQ(proxy->connections(), 1u);  // keep-alive through the proxy
  proxy->ResetAll();
  auto r = (*client)->Request("GET", "/ping");
  EXPECT_FALSE(r.ok());
  server.Stop(1);
}

}  // namespace
}  // namespace weft::testing
