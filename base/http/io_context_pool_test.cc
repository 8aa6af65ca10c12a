// SPDX-License-Identifier: Apache-2.0
#include "base/http/io_context_pool.h"

#include <atomic>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <vector>
#include <thread>

#include "base/http/http_server.h"
#include "boost/asio.hpp"
#include "gtest/gtest.h"
#include "testing/http_client.h"

namespace weft::http {
namespace {

namespace net = boost::asio;
using weft::testing::HttpClient;

TEST(IoContextPoolTest, EachContextRunsOnItsOwnThread) {
  IoContextPool pool(3);
  ASSERT_EQ(pool.contexts().size(), 3u);
  EXPECT_EQ(pool.Current(), -1);
  pool.Start();
  std::thread::id ids[3];
  for (int i = 0; i < 3; ++i) {
    std::promise<std::pair<int, std::thread::id>> p;
    net::post(*pool.contexts()[i], [&] { p.set_value({pool.Current(), std::this_thread::get_id()}); });
    auto [current, id] = p.get_future().get();
    EXPECT_EQ(current, i);
    ids[i] = id;
  }
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_NE(ids[1], ids[2]);
  EXPECT_NE(ids[0], ids[2]);
  pool.Stop();
  pool.Stop();  // idempotent
  EXPECT_LE(IoContextPool(0).contexts().size(), 1u);
}

// Handlers left queued when the pool goes may own objects with timers on another of its contexts:
// every context's handlers are destroyed before any context is.
TEST(IoContextPoolTest, QueuedHandlersOwningTimersOfAnotherContextDieSafely) {
  auto pool = std::make_unique<IoContextPool>(2);
  // The timer belongs to context 0; the last handler owning it is queued on context 1, which is
  // destroyed after context 0.
  auto timer = std::make_shared<net::steady_timer>(*pool->contexts()[0]);
  timer->expires_after(std::chrono::hours(1));
  timer->async_wait([timer](const boost::system::error_code&) {});
  net::post(*pool->contexts()[1], [timer] {});  // never runs: the pool never starts
  timer.reset();
  pool.reset();  // ASan would see a timer destroyed after its context
}

// An HttpServer on a caller's pool: it serves, Stop() leaves the loops running, and connections
// still referenced by queued handlers when the server is destroyed die safely later.
TEST(IoContextPoolTest, HttpServerOnACallersPool) {
  IoContextPool pool(2);
  pool.Start();
  ServerOptions o;
  o.io_contexts = pool.contexts();
  auto server = std::make_unique<HttpServer>(o);
  server->Handle("GET", "/where", [&pool](const Request&, std::shared_ptr<ResponseWriter> w) {
    w->Respond(Response{200, "text/plain", {}, std::to_string(pool.Current())});
  });
  ASSERT_TRUE(server->Start().ok());
  std::set<std::string> loops;
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < 4; ++i) {
    auto c = HttpClient::Connect("127.0.0.1", server->port());
    ASSERT_TRUE(c.ok()) << c.status();
    auto r = (*c)->Request("GET", "/where");
    ASSERT_TRUE(r.ok()) << r.status();
    loops.insert(r->body);
    clients.push_back(*std::move(c));
  }
  EXPECT_EQ(loops, (std::set<std::string>{"0", "1"})) << "connections spread over the loops";
  server->Stop(0);
  server.reset();
  std::promise<int> still;
  net::post(*pool.contexts()[1], [&] { still.set_value(pool.Current()); });
  EXPECT_EQ(still.get_future().get(), 1) << "the caller's loops keep running";
  for (auto& c : clients) EXPECT_TRUE(c->ServerClosed(1));
  pool.Stop();
}

}  // namespace
}  // namespace weft::http
