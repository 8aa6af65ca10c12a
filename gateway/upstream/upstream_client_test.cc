// SPDX-License-Identifier: Apache-2.0
#include "gateway/upstream/upstream_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/http/http_server.h"
#include "base/http/io_context_pool.h"
#include "boost/asio.hpp"
#include "gtest/gtest.h"
#include "testing/fault_proxy.h"

namespace weft::gateway::upstream {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A blocking loopback server for misbehaving upstreams: each connection runs `handler` on its own
// thread; the socket is closed when the handler returns.
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
        ++connections_;
        std::lock_guard lock(mu_);
        sockets_.push_back(socket);
        threads_.emplace_back([this, socket] {
          handler_(*socket);
          // Closed here (under mu_: the destructor may be shutting it down): a FIN, or an RST
          // where the handler set SO_LINGER 0.
          std::lock_guard lock(mu_);
          error_code ignored;
          socket->close(ignored);
        });
      }
    });
  }
  ~RawServer() {
    stopping_ = true;
    error_code ignored;
    tcp::socket poke(ioc_);  // unblocks accept()
    poke.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ignored);
    accept_thread_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_) s->shutdown(tcp::socket::shutdown_both, ignored);
    }
    for (auto& t : threads_) t.join();  // no more added: the accept thread is gone
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }

 private:
  std::function<void(tcp::socket&)> handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
};

// Reads one request head (up to the blank line) from `s`; false on EOF/error.
bool ReadRequestHead(tcp::socket& s, std::string* head = nullptr) {
  std::string data;
  char c;
  while (data.find("\r\n\r\n") == std::string::npos) {
    error_code ec;
    if (s.read_some(net::buffer(&c, 1), ec) != 1 || ec) return false;
    data += c;
  }
  if (head != nullptr) *head = std::move(data);
  return true;
}

void WriteAll(tcp::socket& s, const std::string& data) {
  error_code ec;
  net::write(s, net::buffer(data), ec);
}

void Sleep(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

template <typename F>
bool WaitFor(F cond, double timeout_s = 5) {
  auto end = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (Clock::now() < end) {
    if (cond()) return true;
    Sleep(0.002);
  }
  return cond();
}

std::unique_ptr<testing::FaultProxy> ProxyTo(uint16_t port) {
  testing::FaultProxyOptions o;
  o.target_port = port;
  auto proxy = testing::FaultProxy::Start(o);
  WEFT_CHECK(proxy.ok());
  return std::move(proxy).value();
}

// Waits (up to 5 s) until the peer closes; keeps a socket open as a stalled server would.
void HoldOpen(tcp::socket& s, double max_s = 5) {
  pollfd p{s.native_handle(), POLLIN, 0};
  auto end = Clock::now() + std::chrono::duration<double>(max_s);
  while (Clock::now() < end) {
    if (::poll(&p, 1, 20) > 0) {
      char buf[256];
      error_code ec;
      s.read_some(net::buffer(buf), ec);
      if (ec) return;
    }
  }
}

// Everything the callbacks saw, with a way to wait for on_done.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  int status = 0;
  Headers headers;
  std::vector<std::string> chunks;
  std::string body;
  std::optional<absl::Status> done;
  int done_calls = 0;
  bool head_after_done = false;

  Callbacks Make() {
    Callbacks cb;
    cb.on_head = [this](int s, const Headers& h) {
      std::lock_guard lock(mu);
      status = s;
      headers = h;
      if (done) head_after_done = true;
    };
    cb.on_data = [this](std::string_view chunk) {
      std::lock_guard lock(mu);
      chunks.emplace_back(chunk);
      body.append(chunk);
      cv.notify_all();
    };
    cb.on_done = [this](absl::Status s) {
      std::lock_guard lock(mu);
      done = std::move(s);
      ++done_calls;
      cv.notify_all();
    };
    return cb;
  }
  absl::Status Wait(double timeout_s = 10) {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::duration<double>(timeout_s),
                     [&] { return done.has_value(); })) {
      return absl::InternalError("test: on_done never ran");
    }
    return *done;
  }
  std::string Header(std::string_view name) {
    std::lock_guard lock(mu);
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

UpstreamRequest Get(std::string path) {
  UpstreamRequest r;
  r.method = "GET";
  r.target = std::move(path);
  return r;
}

class UpstreamClientTest : public ::testing::Test {
 protected:
  void StartServer(int threads = 2) {
    http::ServerOptions o;
    o.threads = threads;
    server_ = std::make_unique<http::HttpServer>(o);
    server_->Handle("GET", "/small", [](const http::Request&, auto w) {
      http::Response r;
      r.body = R"({"ok":true})";
      w->Respond(std::move(r));
    });
    server_->Handle("POST", "/echo", [](const http::Request& req, auto w) {
      http::Response r;
      r.content_type = "text/plain";
      r.body = req.body;
      r.headers.emplace_back("X-Traceparent-Seen", std::string(req.Header("traceparent")));
      r.headers.emplace_back("X-Host-Seen", std::string(req.Header("host")));
      w->Respond(std::move(r));
    });
    server_->Handle("GET", "/big", [](const http::Request&, auto w) {
      http::Response r;
      r.content_type = "application/octet-stream";
      r.body = std::string(1 << 20, 'b');
      w->Respond(std::move(r));
    });
    // Streams `n` SSE events, each sent only once the test has seen the previous one
    // (stream_gate_): a client that buffered the body would never see the first.
    server_->Handle("GET", "/gated", [this](const http::Request&, auto w) {
      w->StartStream(200, "text/event-stream");
      std::lock_guard threads_lock(gate_threads_mu_);
      gate_threads_.emplace_back([this, w] {
        for (int i = 0; i < 5; ++i) {
          w->Write(absl::StrCat("data: event ", i, "\n\n"));
          std::unique_lock lock(gate_mu_);
          if (!gate_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return gate_ > i; })) break;
        }
        w->Write("data: [DONE]\n\n");
        w->End();
      });
    });
    // 10 events, 5 ms apart, from the stream ticker thread.
    server_->Handle("GET", "/stream", [this](const http::Request&, auto w) {
      w->StartStream(200, "text/event-stream");
      std::lock_guard lock(ticker_mu_);
      streams_.push_back({w, 0});
    });
    ASSERT_TRUE(server_->Start().ok());
    target_.port = server_->port();
    ticker_ = std::thread([this] {
      while (!stop_ticker_) {
        {
          std::lock_guard lock(ticker_mu_);
          for (auto it = streams_.begin(); it != streams_.end();) {
            it->w->Write(absl::StrCat("data: ", it->sent, "\n\n"));
            if (++it->sent == 10) {
              it->w->End();
              it = streams_.erase(it);
            } else {
              ++it;
            }
          }
        }
        Sleep(0.005);
      }
    });
  }
  void TearDown() override {
    OpenGate(1000);
    {
      std::lock_guard lock(gate_threads_mu_);
      for (auto& t : gate_threads_) t.join();
    }
    stop_ticker_ = true;
    if (ticker_.joinable()) ticker_.join();
    if (server_) server_->Stop(1);
  }
  void OpenGate(int n) {
    std::lock_guard lock(gate_mu_);
    gate_ = n;
    gate_cv_.notify_all();
  }

  struct Stream {
    std::shared_ptr<http::ResponseWriter> w;
    int sent;
  };
  std::unique_ptr<http::HttpServer> server_;
  Target target_;
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  int gate_ = 0;
  std::mutex gate_threads_mu_;
  std::vector<std::thread> gate_threads_;
  std::mutex ticker_mu_;
  std::vector<Stream> streams_;
  std::atomic<bool> stop_ticker_{false};
  std::thread ticker_;
};

TEST_F(UpstreamClientTest, SmallGetAndPostWithHeaders) {
  StartServer();
  UpstreamClient client;
  Recorder rec;
  client.Send(target_, Get("/small"), rec.Make());
  ASSERT_TRUE(rec.Wait().ok()) << rec.Wait(0);
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.body, R"({"ok":true})");
  EXPECT_EQ(rec.Header("Content-Type"), "application/json");
  EXPECT_EQ(rec.Header("Content-Length"), "");  // framing is not passed on
  EXPECT_EQ(rec.done_calls, 1);

  UpstreamRequest post;
  post.method = "POST";
  post.target = "/echo";
  post.body = "payload";
  post.headers = {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                  {"Connection", "close"},  // hop-by-hop: dropped
                  {"Content-Type", "text/plain"}};
  Recorder rec2;
  client.Send(target_, post, rec2.Make());
  ASSERT_TRUE(rec2.Wait().ok()) << rec2.Wait(0);
  EXPECT_EQ(rec2.body, "payload");
  EXPECT_EQ(rec2.Header("X-Traceparent-Seen"),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(rec2.Header("X-Host-Seen"), target_.Key());
  EXPECT_EQ(client.Stats(target_).connects, 1u);  // Connection: close was not sent upstream

  // A caller that does not want the headers gets the status and the body all the same.
  Recorder rec3;
  Callbacks cb3 = rec3.Make();
  cb3.want_headers = false;
  client.Send(target_, Get("/small"), std::move(cb3));
  ASSERT_TRUE(rec3.Wait().ok()) << rec3.Wait(0);
  EXPECT_EQ(rec3.status, 200);
  EXPECT_EQ(rec3.body, R"({"ok":true})");
  EXPECT_TRUE(rec3.headers.empty());
}

TEST_F(UpstreamClientTest, GetConvenience) {
  StartServer();
  UpstreamClient client;
  auto r = client.Get(target_, "/small", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, R"({"ok":true})");
  EXPECT_EQ(r->Header("content-type"), "application/json");
  auto missing = client.Get(target_, "/nope", 5);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  auto big = client.Get(target_, "/big", 5);
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->body.size(), 1u << 20);
}

TEST_F(UpstreamClientTest, HostNameIsResolved) {
  StartServer();  // "localhost" comes from /etc/hosts: no DNS query leaves the machine
  UpstreamClient client;
  auto r = client.Get(Target{"localhost", server_->port()}, "/small", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

TEST_F(UpstreamClientTest, FetchBodyLimit) {
  StartServer();
  ClientOptions o;
  o.max_buffered_body_bytes = 1000;
  UpstreamClient client(o);
  auto r = client.Get(target_, "/big", 5);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  auto small = client.Get(target_, "/small", 5);
  EXPECT_TRUE(small.ok()) << small.status();
}

TEST_F(UpstreamClientTest, StreamingDeliversEachChunkAsItArrives) {
  StartServer();
  UpstreamClient client;
  Recorder rec;
  client.Send(target_, Get("/gated"), rec.Make());
  for (int i = 0; i < 5; ++i) {
    std::string want = absl::StrCat("data: event ", i, "\n\n");
    std::unique_lock lock(rec.mu);
    ASSERT_TRUE(rec.cv.wait_for(lock, std::chrono::seconds(5),
                                [&] { return rec.body.find(want) != std::string::npos; }))
        << "event " << i << " not delivered before the response ended; body so far: " << rec.body;
    EXPECT_FALSE(rec.done.has_value());
    lock.unlock();
    OpenGate(i + 1);
  }
  ASSERT_TRUE(rec.Wait().ok()) << rec.Wait(0);
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.Header("Content-Type"), "text/event-stream");
  EXPECT_TRUE(rec.body.ends_with("data: [DONE]\n\n"));
  EXPECT_GE(rec.chunks.size(), 6u);
}

TEST_F(UpstreamClientTest, PoolReusesOneConnectionForSequentialRequests) {
  std::atomic<int> served{0};
  RawServer server([&](tcp::socket& s) {
    while (ReadRequestHead(s)) {
      ++served;
      WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  for (int i = 0; i < 100; ++i) {
    auto r = client.Get(t, "/x", 5);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->body, "ok");
  }
  EXPECT_EQ(served.load(), 100);
  EXPECT_EQ(server.connections(), 1);
  PoolStats stats = client.Stats(t);
  EXPECT_EQ(stats.connects, 1u);
  EXPECT_EQ(stats.reuses, 99u);
  EXPECT_EQ(stats.idle, 1u);
}

TEST_F(UpstreamClientTest, ConnectionCloseAndStaleConnectionsAreNotReused) {
  // The server answers one request per connection; the first says Connection: close, the
  // second does not but closes anyway (a stale pooled connection the client must replace).
  std::atomic<int> n{0};
  RawServer server([&](tcp::socket& s) {
    if (!ReadRequestHead(s)) return;
    if (n++ == 0) {
      WriteAll(s, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na");
    } else {
      WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    }
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  for (int i = 0; i < 5; ++i) {
    auto r = client.Get(t, "/x", 5);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
  }
  EXPECT_EQ(server.connections(), 5);
}

TEST_F(UpstreamClientTest, StalePooledConnectionIsRetriedTransparently) {
  // Keeps the connection after the response but closes it 50 ms later, before the next request:
  // the pooled socket is dead when reused. Whether the liveness check or the retry catches it,
  // the caller sees success.
  RawServer server([&](tcp::socket& s) {
    if (!ReadRequestHead(s)) return;
    WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    Sleep(0.05);
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  for (int i = 0; i < 4; ++i) {
    auto r = client.Get(t, "/x", 5);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    Sleep(0.1);
  }
  EXPECT_EQ(server.connections(), 4);
}

TEST_F(UpstreamClientTest, ConnectionClosedUnderANewRequestIsRetriedOnAFreshOne) {
  // The server answers the first request of each connection and closes the connection when the
  // second arrives (the race of a keep-alive timeout): the pooled socket looked alive, the
  // request fails before any response byte, and the client resends it on a new connection.
  RawServer server([&](tcp::socket& s) {
    if (!ReadRequestHead(s)) return;
    WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    ReadRequestHead(s);
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  for (int i = 0; i < 3; ++i) {
    auto r = client.Get(t, "/x", 5);
    ASSERT_TRUE(r.ok()) << i << ": " << r.status();
    EXPECT_EQ(r->body, "a");
  }
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(client.Stats(t).connects, 3u);
}

// A keep-alive server that counts the connections its clients closed. (Not HttpServer's
// connection_count(): with Boost 1.81's Asio a read issued after a read that returned EOF never
// completes, and HttpServer can do that, so a connection its client closed may linger there.)
class CountingServer {
 public:
  CountingServer()
      : server_([this](tcp::socket& s) {
          while (ReadRequestHead(s)) WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
          ++closed_;
        }) {}
  Target target() const { return Target{"127.0.0.1", server_.port()}; }
  int closed() const { return closed_.load(); }
  int connections() const { return server_.connections(); }

 private:
  std::atomic<int> closed_{0};
  RawServer server_;
};

TEST_F(UpstreamClientTest, CloseIdleEmptiesThePool) {
  CountingServer server;
  UpstreamClient client;
  ASSERT_TRUE(client.Get(server.target(), "/small", 5).ok());
  EXPECT_EQ(client.Stats(server.target()).idle, 1u);
  client.CloseIdle(server.target());
  EXPECT_EQ(client.Stats(server.target()).idle, 0u);
  EXPECT_EQ(client.Stats(server.target()).total, 0u);
  EXPECT_TRUE(WaitFor([&] { return server.closed() == 1; }));
  ASSERT_TRUE(client.Get(server.target(), "/small", 5).ok());
  EXPECT_EQ(client.Stats(server.target()).connects, 2u);
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(UpstreamClientTest, IdleTimeoutClosesPooledConnections) {
  CountingServer server;
  ClientOptions o;
  o.idle_timeout_s = 0.1;
  UpstreamClient client(o);
  ASSERT_TRUE(client.Get(server.target(), "/small", 5).ok());
  EXPECT_TRUE(WaitFor([&] { return client.Stats(server.target()).idle == 0u; }));
  EXPECT_TRUE(WaitFor([&] { return server.closed() == 1; }));
}

TEST_F(UpstreamClientTest, PoolLimitsQueueAndIdleCap) {
  StartServer(4);
  ClientOptions o;
  o.max_total_per_host = 3;
  o.max_idle_per_host = 2;
  o.max_pending_per_host = 100;
  UpstreamClient client(o);
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < 12; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    client.Send(target_, Get("/stream"), recs.back()->Make());
  }
  // While the first three stream, the others wait for a connection.
  size_t max_total = 0;
  for (int i = 0; i < 50; ++i) {
    max_total = std::max(max_total, client.Stats(target_).total);
    Sleep(0.002);
  }
  for (auto& r : recs) {
    ASSERT_TRUE(r->Wait().ok()) << r->Wait(0);
    EXPECT_NE(r->body.find("data: 9\n\n"), std::string::npos);
  }
  PoolStats stats = client.Stats(target_);
  EXPECT_LE(max_total, 3u);
  EXPECT_LE(stats.connects, 3u);
  EXPECT_EQ(stats.idle, 2u);
  EXPECT_EQ(stats.total, 2u);
  EXPECT_EQ(stats.pending, 0u);
}

TEST_F(UpstreamClientTest, IdleCapClosesSurplusConnections) {
  // Each connection serves requests until the client closes it; the server counts the closes.
  std::atomic<int> closed{0};
  RawServer server([&](tcp::socket& s) {
    while (ReadRequestHead(s)) {
      Sleep(0.01);  // slow enough that requests queue for the 3 connections
      WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    ++closed;
  });
  ClientOptions o;
  o.max_total_per_host = 3;
  o.max_idle_per_host = 2;
  UpstreamClient client(o);
  Target t{"127.0.0.1", server.port()};
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < 12; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    client.Send(t, Get("/x"), recs.back()->Make());
  }
  for (auto& r : recs) {
    absl::Status s = r->Wait();
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(r->body, "ok");
  }
  EXPECT_EQ(server.connections(), 3);
  EXPECT_TRUE(WaitFor([&] { return closed.load() == 1; })) << closed.load();
  EXPECT_EQ(client.Stats(t).idle, 2u);
  EXPECT_EQ(client.Stats(t).reuses, 9u);
}

TEST_F(UpstreamClientTest, PendingQueueOverflowIsResourceExhausted) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    HoldOpen(s);
  });
  ClientOptions o;
  o.max_total_per_host = 1;
  o.max_pending_per_host = 1;
  UpstreamClient client(o);
  Target t{"127.0.0.1", server.port()};
  Recorder a, b, c;
  auto ea = client.Send(t, Get("/a"), a.Make());
  ASSERT_TRUE(WaitFor([&] { return client.Stats(t).total == 1; }));
  auto eb = client.Send(t, Get("/b"), b.Make());
  ASSERT_TRUE(WaitFor([&] { return client.Stats(t).pending == 1; }));
  client.Send(t, Get("/c"), c.Make());
  EXPECT_EQ(c.Wait().code(), absl::StatusCode::kResourceExhausted) << c.Wait(0);
  // The queued one times out on its connect budget if never served; cancel both instead.
  eb->Cancel();
  EXPECT_EQ(b.Wait().code(), absl::StatusCode::kCancelled);
  ea->Cancel();
  EXPECT_EQ(a.Wait().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(client.Stats(t).total, 0u);
}

TEST_F(UpstreamClientTest, QueuedRequestTimesOutOnConnectBudget) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    HoldOpen(s, 3);
  });
  ClientOptions o;
  o.max_total_per_host = 1;
  UpstreamClient client(o);
  Target t{"127.0.0.1", server.port()};
  Recorder a, b;
  auto ea = client.Send(t, Get("/a"), a.Make(), Timeouts{5, 5, 5});
  Sleep(0.05);
  auto start = Clock::now();
  client.Send(t, Get("/b"), b.Make(), Timeouts{0.2, 5, 5});
  absl::Status s = b.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("pool full"), std::string::npos) << s;
  EXPECT_LT(SecondsSince(start), 2.0);
  ea->Cancel();
  EXPECT_EQ(a.Wait().code(), absl::StatusCode::kCancelled);
}

TEST_F(UpstreamClientTest, CancelMidStream) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    HoldOpen(s);
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  Recorder rec;
  auto ex = client.Send(t, Get("/s"), rec.Make());
  {
    std::unique_lock lock(rec.mu);
    ASSERT_TRUE(rec.cv.wait_for(lock, std::chrono::seconds(5), [&] { return !rec.body.empty(); }));
  }
  EXPECT_FALSE(ex->done());
  ex->Cancel();
  EXPECT_EQ(rec.Wait().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(ex->done());
  ex->Cancel();  // again: no second on_done
  Sleep(0.05);
  EXPECT_EQ(rec.done_calls, 1);
  EXPECT_EQ(rec.body, "hello");
  EXPECT_EQ(client.Stats(t).total, 0u);  // closed, not pooled
}

TEST_F(UpstreamClientTest, ResetMidBodyIsUnavailable) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    WriteAll(s, std::string(100, 'x'));
    Sleep(0.05);
    error_code ignored;
    s.set_option(net::socket_base::linger(true, 0), ignored);  // closed with an RST
  });
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/r"), rec.Make());
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.body, std::string(100, 'x'));
}

TEST_F(UpstreamClientTest, EofMidChunkIsUnavailable) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA\r\nabc");
  });
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/e"), rec.Make());
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("mid-body"), std::string::npos) << s;
  EXPECT_EQ(rec.body.substr(0, 5), "hello");
}

TEST_F(UpstreamClientTest, EofBeforeHeadIsUnavailable) {
  RawServer server([](tcp::socket& s) { ReadRequestHead(s); });
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/e"), rec.Make());
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(rec.status, 0);  // on_head never ran
}

TEST_F(UpstreamClientTest, StallMidBodyIsDeadlineExceededWithinTheStallTimeout) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    HoldOpen(s);
  });
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/s"), rec.Make(), Timeouts{5, 5, 0.3});
  {
    std::unique_lock lock(rec.mu);
    ASSERT_TRUE(rec.cv.wait_for(lock, std::chrono::seconds(5), [&] { return !rec.body.empty(); }));
  }
  auto start = Clock::now();
  absl::Status s = rec.Wait();
  double waited = SecondsSince(start);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("stalled"), std::string::npos) << s;
  EXPECT_GE(waited, 0.2);
  EXPECT_LT(waited, 2.0);
}

// The phases' limits share one timer that moves lazily: a body whose pieces come faster than the
// stall limit but whose whole takes several times that is not a stall, and a first-byte limit
// longer than the connect limit is measured from the request, not cut at the connect limit.
TEST_F(UpstreamClientTest, LimitsMoveWithProgress) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    Sleep(0.5);  // past the connect limit (0.3 s), within the first-byte limit (1 s)
    WriteAll(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 6; ++i) {
      Sleep(0.15);  // under the stall limit (0.4 s); all six take 0.9 s
      WriteAll(s, "1\r\nx\r\n");
    }
    WriteAll(s, "0\r\n\r\n");
  });
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/slow"), rec.Make(), Timeouts{0.3, 1, 0.4});
  absl::Status s = rec.Wait();
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(rec.body, "xxxxxx");
}

TEST_F(UpstreamClientTest, SlowFirstByteIsDeadlineExceeded) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    HoldOpen(s, 3);
  });
  UpstreamClient client;
  Recorder rec;
  auto start = Clock::now();
  client.Send(Target{"127.0.0.1", server.port()}, Get("/slow"), rec.Make(), Timeouts{5, 0.3, 5});
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("no response head"), std::string::npos) << s;
  EXPECT_GE(SecondsSince(start), 0.25);
  EXPECT_LT(SecondsSince(start), 2.5);
  EXPECT_EQ(rec.status, 0);
}

TEST_F(UpstreamClientTest, ConnectRefusedIsUnavailable) {
  uint16_t dead_port;
  {
    net::io_context ioc;
    tcp::acceptor probe(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    dead_port = probe.local_endpoint().port();
  }
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", dead_port}, Get("/"), rec.Make());
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("refused"), std::string::npos) << s;
  EXPECT_EQ(client.Stats(Target{"127.0.0.1", dead_port}).total, 0u);
}

TEST_F(UpstreamClientTest, ConnectTimeoutIsDeadlineExceeded) {
  // A listener whose backlog is full never completes new handshakes.
  net::io_context ioc;
  tcp::acceptor full(ioc);
  full.open(tcp::v4());
  full.bind(tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  full.listen(0);
  uint16_t port = full.local_endpoint().port();
  // Non-blocking connects (raw: Asio would wait for them) fill the accept queue.
  std::vector<int> fillers;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  UpstreamClient client;
  Recorder rec;
  auto start = Clock::now();
  client.Send(Target{"127.0.0.1", port}, Get("/"), rec.Make(), Timeouts{0.3, 5, 5});
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("no connection"), std::string::npos) << s;
  EXPECT_LT(SecondsSince(start), 2.5);
  for (int fd : fillers) ::close(fd);
}

TEST_F(UpstreamClientTest, MalformedResponseIsAClearError) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "SMTP/9 what is this\r\n\r\n");
  });
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/m"), rec.Make());
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("malformed response"), std::string::npos) << s;

  RawServer bad_chunk([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
    HoldOpen(s, 1);
  });
  Recorder rec2;
  client.Send(Target{"127.0.0.1", bad_chunk.port()}, Get("/m"), rec2.Make());
  absl::Status s2 = rec2.Wait();
  EXPECT_EQ(s2.code(), absl::StatusCode::kUnavailable) << s2;
  EXPECT_NE(s2.message().find("malformed response"), std::string::npos) << s2;
}

TEST_F(UpstreamClientTest, InterimResponseIsSkipped) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi");
    HoldOpen(s, 1);
  });
  UpstreamClient client;
  auto r = client.Get(Target{"127.0.0.1", server.port()}, "/", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "hi");
}

TEST_F(UpstreamClientTest, EofDelimitedBody) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  auto r = client.Get(t, "/", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "until the end");
  EXPECT_EQ(client.Stats(t).idle, 0u);
}

// The response parser reads the head however it is split, hands the body over without the chunk
// framing, and keeps the connection only when nothing follows the response.
TEST_F(UpstreamClientTest, HeadSplitAcrossWritesAndChunkedBodyInOneRead) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    const std::string head =
        "HTTP/1.1 200 OK\r\nX-One: 1\r\nConnection: keep-alive\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (char c : head) {  // a byte at a time: the parser sees the head grow
      WriteAll(s, std::string(1, c));
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    WriteAll(s, "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
    HoldOpen(s, 1);
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  Recorder rec;
  client.Send(t, Get("/"), rec.Make());
  ASSERT_TRUE(rec.Wait().ok());
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.body, "hello world");
  EXPECT_EQ(rec.Header("X-One"), "1");
  EXPECT_EQ(rec.Header("Connection"), "");  // hop-by-hop: not passed on
  EXPECT_EQ(rec.Header("Transfer-Encoding"), "");
  EXPECT_EQ(client.Stats(t).idle, 1u);
}

TEST_F(UpstreamClientTest, BytesPastTheResponseMakeTheConnectionUnsafeToReuse) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n");
    HoldOpen(s, 1);
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  auto r = client.Get(t, "/", 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "hi");
  EXPECT_EQ(client.Stats(t).idle, 0u);
}

TEST_F(UpstreamClientTest, OversizedHeadIsAClearError) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nX-Big: " + std::string(8 << 10, 'x') + "\r\n");
    HoldOpen(s, 2);
  });
  ClientOptions o;
  o.max_header_bytes = 4 << 10;
  UpstreamClient client(o);
  Recorder rec;
  client.Send(Target{"127.0.0.1", server.port()}, Get("/"), rec.Make(), Timeouts{5, 5, 5});
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("head larger than 4096 bytes"), std::string::npos) << s;
}

TEST_F(UpstreamClientTest, HeadRequestHasNoBodyWhateverItsLength) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    WriteAll(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    HoldOpen(s, 1);
  });
  UpstreamClient client;
  Target t{"127.0.0.1", server.port()};
  UpstreamRequest head = Get("/");
  head.method = "HEAD";
  Recorder rec;
  client.Send(t, std::move(head), rec.Make(), Timeouts{5, 5, 5});
  ASSERT_TRUE(rec.Wait(5).ok());
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.body, "");
  EXPECT_EQ(client.Stats(t).idle, 1u);
}

TEST_F(UpstreamClientTest, FaultProxyResetMidStream) {
  StartServer();
  auto proxy = ProxyTo(server_->port());
  proxy->ResetAfterBytes(200);  // the head (~150 bytes) and a few events
  UpstreamClient client;
  Recorder rec;
  client.Send(Target{"127.0.0.1", proxy->port()}, Get("/stream"), rec.Make());
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(rec.status, 200);
  EXPECT_LT(rec.body.size(), 200u);
  EXPECT_EQ(proxy->resets(), 1u);
}

TEST_F(UpstreamClientTest, FaultProxyStallMidStream) {
  StartServer();
  auto proxy = ProxyTo(server_->port());
  UpstreamClient client;
  Recorder rec;
  OpenGate(0);
  client.Send(Target{"127.0.0.1", proxy->port()}, Get("/gated"), rec.Make(), Timeouts{5, 5, 0.3});
  {
    std::unique_lock lock(rec.mu);
    ASSERT_TRUE(rec.cv.wait_for(lock, std::chrono::seconds(5), [&] { return !rec.body.empty(); }));
  }
  proxy->Stall();
  OpenGate(10);  // the server sends the rest; the proxy holds it
  auto start = Clock::now();
  absl::Status s = rec.Wait();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_LT(SecondsSince(start), 2.0);
  proxy->Pass();
}

TEST_F(UpstreamClientTest, ManyConcurrentStreams) {
  StartServer(2);
  UpstreamClient client;
  constexpr int kStreams = 200;
  std::vector<std::unique_ptr<Recorder>> recs;
  for (int i = 0; i < kStreams; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    client.Send(target_, Get("/stream"), recs.back()->Make());
  }
  std::string want;
  for (int i = 0; i < 10; ++i) want += absl::StrCat("data: ", i, "\n\n");
  for (auto& r : recs) {
    ASSERT_TRUE(r->Wait(20).ok()) << r->Wait(0);
    EXPECT_EQ(r->body, want);
    EXPECT_EQ(r->done_calls, 1);
  }
  PoolStats stats = client.Stats(target_);
  EXPECT_LE(stats.connects, static_cast<uint64_t>(kStreams));
  EXPECT_EQ(stats.idle, 64u);  // max_idle_per_host
}

TEST_F(UpstreamClientTest, ShutdownCancelsExchangesInFlight) {
  RawServer server([](tcp::socket& s) {
    ReadRequestHead(s);
    HoldOpen(s, 3);
  });
  Recorder rec;
  {
    UpstreamClient client;
    client.Send(Target{"127.0.0.1", server.port()}, Get("/"), rec.Make());
    Sleep(0.05);
    client.Shutdown();
    EXPECT_EQ(rec.Wait(1).code(), absl::StatusCode::kCancelled);
    Recorder after;
    client.Send(Target{"127.0.0.1", server.port()}, Get("/"), after.Make());
    EXPECT_EQ(after.Wait(1).code(), absl::StatusCode::kCancelled);
  }
  EXPECT_EQ(rec.done_calls, 1);
}

TEST_F(UpstreamClientTest, CallerProvidedIoContext) {
  StartServer();
  net::io_context ioc;
  auto guard = net::make_work_guard(ioc);
  std::thread runner([&] { ioc.run(); });
  {
    ClientOptions o;
    o.io_context = &ioc;
    UpstreamClient client(o);
    auto r = client.Get(target_, "/small", 5);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
  }
  guard.reset();
  ioc.stop();
  runner.join();
}

// Shards on a caller's IoContextPool (as the gateway runs it): an exchange sent from loop i runs
// its callbacks on loop i and takes its connection from loop i's pool; Shutdown returns once the
// exchanges' callbacks have run.
TEST_F(UpstreamClientTest, ShardsOnTheCallersLoops) {
  StartServer();
  http::IoContextPool pool(2);
  pool.Start();
  ClientOptions o;
  o.io_contexts = pool.contexts();
  auto client = std::make_unique<UpstreamClient>(o);
  for (int round = 0; round < 3; ++round) {
    for (int loop = 0; loop < 2; ++loop) {
      std::promise<std::pair<int, int>> seen;  // (loop of on_head, loop of on_done)
      auto head_loop = std::make_shared<std::atomic<int>>(-2);
      net::post(*pool.contexts()[loop], [&, head_loop] {
        Callbacks cb;
        cb.on_head = [&pool, head_loop](int, const Headers&) { *head_loop = pool.Current(); };
        cb.on_done = [&pool, &seen, head_loop](absl::Status s) {
          EXPECT_TRUE(s.ok()) << s;
          seen.set_value({head_loop->load(), pool.Current()});
        };
        client->Send(target_, Get("/small"), std::move(cb));
      });
      auto [on_head, on_done] = seen.get_future().get();
      EXPECT_EQ(on_head, loop);
      EXPECT_EQ(on_done, loop);
    }
  }
  // One kept-alive connection per loop, each reused by that loop's later requests.
  const PoolStats stats = client->Stats(target_);
  EXPECT_EQ(stats.connects, 2u);
  EXPECT_EQ(stats.reuses, 4u);
  EXPECT_EQ(stats.idle, 2u);

  // A stream held open by the server: Shutdown ends it (Cancelled) before returning.
  Recorder rec;
  net::post(*pool.contexts()[1], [&] { client->Send(target_, Get("/gated"), rec.Make()); });
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(rec.mu);
    return !rec.chunks.empty();
  }));
  client->Shutdown();
  {
    std::lock_guard lock(rec.mu);
    ASSERT_TRUE(rec.done.has_value()) << "Shutdown returned before on_done ran";
    EXPECT_EQ(rec.done->code(), absl::StatusCode::kCancelled);
  }
  client.reset();
  pool.Stop();
}

}  // namespace
}  // namespace weft::gateway::upstream
