// SPDX-License-Identifier: Apache-2.0
#include "base/http/http_server.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "boost/asio.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/http_client.h"

namespace weft::http {
namespace {

using ::testing::HasSubstr;
using weft::testing::HttpClient;

std::unique_ptr<HttpClient> Connect(uint16_t port) {
  auto c = HttpClient::Connect("127.0.0.1", port);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

bool WaitFor(const std::function<bool()>& cond, double seconds = 5) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(std::move(options));
    server_->Handle("GET", "/hello", [](const Request& req, std::shared_ptr<ResponseWriter> w) {
      Response r;
      r.content_type = "text/plain";
      r.body = "hello " + req.query;
      w->Respond(std::move(r));
    });
    server_->Handle("POST", "/echo", [](const Request& req, std::shared_ptr<ResponseWriter> w) {
      Response r;
      r.body = req.body;
      r.headers.emplace_back("X-Len", std::to_string(req.body.size()));
      w->Respond(std::move(r));
    });
    server_->Handle(
        "DELETE", "/items/{name}", [](const Request& req, std::shared_ptr<ResponseWriter> w) {
          w->Respond(Response{200, "text/plain", {}, "deleted " + req.params.at("name")});
        });
    server_->Handle("GET", "/items/special", [](const Request&, std::shared_ptr<ResponseWriter> w) {
      w->Respond(Response{200, "text/plain", {}, "special"});
    });
    // Streams `n` events from another thread, one every `ms`; records cancellation.
    server_->Handle("GET", "/stream",
                    [this](const Request& req, std::shared_ptr<ResponseWriter> w) {
                      int n = req.query.empty() ? 5 : std::stoi(req.query);
                      w->OnCancel([this] { cancelled_++; });
                      w->StartStream(200, "text/event-stream");
                      started_streams_++;
                      std::thread([w, n, this] {
                        for (int i = 0; i < n && !w->cancelled(); ++i) {
                          w->Write("data: " + std::to_string(i) + "\n\n");
                          std::this_thread::sleep_for(std::chrono::milliseconds(step_ms_));
                        }
                        w->End();
                        finished_++;
                        started_streams_--;
                      }).detach();
                    });
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Stop(5);
    // Detached producers stop once their writer is cancelled or done.
    EXPECT_TRUE(WaitFor([this] { return started_streams_ == 0; }, 30));
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> cancelled_{0};
  std::atomic<int> finished_{0};
  std::atomic<int> started_streams_{0};
  int step_ms_ = 20;
};

TEST_F(HttpServerTest, RoutesKeepAliveAndParams) {
  StartServer();
  auto c = Connect(server_->port());
  for (int i = 0; i < 3; ++i) {  // one connection, three requests
    auto r = c->Request("GET", "/hello?x=" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello x=" + std::to_string(i));
    EXPECT_TRUE(r->keep_alive);
  }
  EXPECT_EQ(server_->connection_count(), 1u);
  auto echo = c->Request("POST", "/echo", R"({"a":1})");
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(echo->body, R"({"a":1})");
  EXPECT_EQ(echo->Header("x-len"), "7");
  auto del = c->Request("DELETE", "/items/foo");
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->body, "deleted foo");
  auto special = c->Request("GET", "/items/special");
  ASSERT_TRUE(special.ok());
  EXPECT_EQ(special->body, "special");
}

TEST_F(HttpServerTest, NotFoundAndMethodNotAllowed) {
  StartServer();
  auto c = Connect(server_->port());
  auto r = c->Request("GET", "/nope");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(r->body, HasSubstr("\"error\""));
  r = c->Request("POST", "/hello", "{}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("Allow"), "GET");
}

TEST_F(HttpServerTest, OversizeBodyGets413) {
  ServerOptions options;
  options.max_body_bytes = 1000;
  StartServer(options);
  auto c = Connect(server_->port());
  auto r = c->Request("POST", "/echo", std::string(5000, 'x'));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 413);
  EXPECT_FALSE(r->keep_alive);
  auto ok = Connect(server_->port())->Request("POST", "/echo", std::string(1000, 'x'));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST_F(HttpServerTest, MalformedRequestGets400) {
  StartServer();
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  boost::asio::write(s, boost::asio::buffer(std::string("GARBAGE\x01 / HTTP/1.1\r\n\r\n")));
  std::string got;
  boost::system::error_code ec;
  char buf[512];
  while (!ec) {
    size_t n = s.read_some(boost::asio::buffer(buf), ec);
    got.append(buf, n);
  }
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 400"));
}

// Reads from `s` until `want` has arrived (or the peer closes); what came.
std::string ReadUntil(boost::asio::ip::tcp::socket& s, std::string_view want) {
  std::string got;
  boost::system::error_code ec;
  char buf[512];
  while (!ec && got.find(want) == std::string::npos) {
    size_t n = s.read_some(boost::asio::buffer(buf), ec);
    got.append(buf, n);
  }
  return got;
}

TEST_F(HttpServerTest, ChunkedBodiesContinueAndHeadersAsSent) {
  server_ = std::make_unique<HttpServer>(ServerOptions{});
  server_->Handle("POST", "/echo", [](const Request& req, std::shared_ptr<ResponseWriter> w) {
    std::string seen = req.method + " " + req.target + " " + req.path + " " + req.query + "|";
    for (const auto& [k, v] : req.headers) seen += k + "=" + v + ";";
    w->Respond(Response{200, "text/plain", {}, seen + "|" + req.body});
  });
  ASSERT_TRUE(server_->Start().ok());
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  // A chunked body, a repeated header kept twice in order, and a path written with a trailing
  // slash (routed like the route's own form).
  boost::asio::write(s, boost::asio::buffer(std::string(
                            "POST /echo/?a=1 HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\n"
                            "Transfer-Encoding: chunked\r\nX-Tag: two\r\n\r\n"
                            "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")));
  std::string got = ReadUntil(s, "|abcde");
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(got, HasSubstr("POST /echo/?a=1 /echo/ a=1|Host=x;X-Tag=one;"
                             "Transfer-Encoding=chunked;X-Tag=two;|abcde"));
  // Expect: 100-continue: the interim answer first, then the body is read and answered.
  boost::asio::write(s, boost::asio::buffer(std::string(
                            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            "Expect: 100-Continue\r\n\r\n")));
  got = ReadUntil(s, "\r\n\r\n");
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 100 Continue"));
  boost::asio::write(s, boost::asio::buffer(std::string("hello")));
  got = ReadUntil(s, "|hello");
  EXPECT_THAT(got, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(got, HasSubstr("Content-Length=5;Expect=100-Continue;|hello"));
}

TEST_F(HttpServerTest, SlowHeadersAreCut) {
  ServerOptions options;
  options.header_timeout_s = 0.3;
  StartServer(options);
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket s(ioc);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  auto start = std::chrono::steady_clock::now();
  // Slowloris: a byte every 50 ms never finishes the head; the server must close within the
  // header timeout (not reset it on every byte).
  std::string head = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  boost::system::error_code ec;
  for (int i = 0; i < 100 && !ec; ++i) {
    boost::asio::write(s, boost::asio::buffer(head.data() + (i % head.size()), 1), ec);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (server_->connection_count() == 0) break;
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_LT(elapsed, 2.0);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionIsClosed) {
  ServerOptions options;
  options.idle_timeout_s = 0.2;
  StartServer(options);
  auto c = Connect(server_->port());
  ASSERT_TRUE(c->Request("GET", "/hello").ok());
  EXPECT_TRUE(c->ServerClosed(3));
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
}

// The idle deadline counts from the end of the last exchange, not from the first: a client that
// keeps asking more often than the timeout keeps its connection, and loses it once it stops.
TEST_F(HttpServerTest, IdleTimeoutCountsFromTheLastExchange) {
  ServerOptions options;
  options.idle_timeout_s = 0.3;
  StartServer(options);
  auto c = Connect(server_->port());
  for (int i = 0; i < 8; ++i) {  // 8 x 100 ms: well past one timeout in all
    auto r = c->Request("GET", "/hello");
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c->ServerClosed(3));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
}

TEST_F(HttpServerTest, StreamsChunksAsTheyArrive) {
  step_ms_ = 100;
  StartServer();
  auto c = Connect(server_->port());
  auto head = c->StartStream("GET", "/stream?3");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("Content-Type"), "text/event-stream");
  EXPECT_EQ(head->Header("Transfer-Encoding"), "chunked");
  auto start = std::chrono::steady_clock::now();
  auto first = c->NextEvent();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(**first, "0");
  // The first event came before the producer finished (3 x 100 ms): nothing was buffered.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.15);
  std::vector<std::string> rest;
  while (true) {
    auto e = c->NextEvent();
    ASSERT_TRUE(e.ok()) << e.status();
    if (!e->has_value()) break;
    rest.push_back(**e);
  }
  EXPECT_EQ(rest, (std::vector<std::string>{"1", "2"}));
  // Keep-alive after a chunked response.
  auto r = c->Request("GET", "/hello");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(cancelled_, 0);
}

TEST_F(HttpServerTest, ClientDisconnectMidStreamCancels) {
  step_ms_ = 20;
  StartServer();
  auto c = Connect(server_->port());
  ASSERT_TRUE(c->StartStream("GET", "/stream?1000").ok());
  ASSERT_TRUE(c->NextEvent().ok());
  c->Close();
  EXPECT_TRUE(WaitFor([this] { return cancelled_ == 1; }));
  EXPECT_TRUE(WaitFor([this] { return finished_ == 1; }));
  EXPECT_TRUE(WaitFor([this] { return server_->connection_count() == 0; }));
}

TEST_F(HttpServerTest, GracefulShutdownFinishesInFlight) {
  step_ms_ = 50;
  StartServer();
  auto idle = Connect(server_->port());
  ASSERT_TRUE(idle->Request("GET", "/hello").ok());
  auto c = Connect(server_->port());
  ASSERT_TRUE(c->StartStream("GET", "/stream?6").ok());
  std::thread stopper([this] { server_->Stop(5); });
  auto body = c->ReadRestOfStream();
  stopper.join();
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("data: 5\n\n"));
  EXPECT_EQ(cancelled_, 0);
  EXPECT_TRUE(idle->ServerClosed(1));
  EXPECT_FALSE(HttpClient::Connect("127.0.0.1", server_->port(), 1).ok());
}

TEST_F(HttpServerTest, ShutdownDeadlineCancelsStragglers) {
  step_ms_ = 50;
  StartServer();
  auto c = Connect(server_->port());
  ASSERT_TRUE(c->StartStream("GET", "/stream?1000").ok());
  ASSERT_TRUE(c->NextEvent().ok());
  auto start = std::chrono::steady_clock::now();
  server_->Stop(0.2);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2);
  EXPECT_EQ(cancelled_, 1);
}

// A handler starts a stream on its I/O thread and hands the body to a producer thread that
// writes at once: the head goes first and no chunk is lost, every time (call order holds across
// the two threads).
TEST_F(HttpServerTest, WritesFromAnotherThreadFollowTheHandlersStartStream) {
  ServerOptions options;
  options.threads = 2;
  std::vector<std::thread> producers;
  std::mutex producers_mu;
  server_ = std::make_unique<HttpServer>(options);
  server_->Handle("GET", "/quick", [&](const Request&, std::shared_ptr<ResponseWriter> w) {
    w->StartStream(200, "text/event-stream");
    std::lock_guard lock(producers_mu);
    producers.emplace_back([w] {
      w->Write("data: first\n\n");
      w->End();
    });
  });
  ASSERT_TRUE(server_->Start().ok());
  auto c = Connect(server_->port());
  for (int i = 0; i < 200; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(c->StartStream("GET", "/quick").ok());
    auto body = c->ReadRestOfStream();
    ASSERT_TRUE(body.ok()) << body.status();
    ASSERT_EQ(*body, "data: first\n\n");
  }
  std::lock_guard lock(producers_mu);
  for (auto& t : producers) t.join();
}

// Stop closes the listener at once, whatever the I/O threads were doing: a connection attempt
// right after it is refused (clients probing a stopped server must not be answered).
TEST_F(HttpServerTest, StopClosesTheListenerAtOnce) {
  for (int round = 0; round < 50; ++round) {
    SCOPED_TRACE(round);
    ServerOptions options;
    options.threads = 2;
    StartServer(options);
    const uint16_t port = server_->port();
    {
      auto c = Connect(port);
      ASSERT_TRUE(c->Request("GET", "/hello").ok());
    }
    server_->Stop(0);
    EXPECT_FALSE(HttpClient::Connect("127.0.0.1", port, 1).ok());
    server_.reset();
  }
}

TEST_F(HttpServerTest, ConcurrentClients) {
  ServerOptions options;
  options.threads = 4;
  StartServer(options);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      auto c = HttpClient::Connect("127.0.0.1", server_->port());
      if (!c.ok()) return;
      for (int i = 0; i < 20; ++i) {
        auto r = (*c)->Request("POST", "/echo", std::to_string(i));
        if (r.ok() && r->body == std::to_string(i)) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok, 16 * 20);
}

}  // namespace
}  // namespace weft::http
