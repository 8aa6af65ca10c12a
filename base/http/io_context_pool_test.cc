// SPDX-License-Identifier: Apache-2.0
#include "base/http/io_context_pool.h"

#include <sched.h>

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

// Pinned: thread i runs only on the i-th allowed CPU (round robin over the process's affinity
// mask), so with at least two CPUs two threads never share one.
TEST(IoContextPoolTest, PinnedThreadsEachRunOnOneAllowedCpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  const int n = 3;
  IoContextPool pool(n, /*pin_threads=*/true);
  pool.Start();
  for (int i = 0; i < n; ++i) {
    std::promise<std::vector<int>> p;
    net::post(*pool.contexts()[i], [&] {
      cpu_set_t mine;
      CPU_ZERO(&mine);
      std::vector<int> on;
      if (sched_getaffinity(0, sizeof(mine), &mine) == 0) {
        for (int c = 0; c < CPU_SETSIZE; ++c) {
          if (CPU_ISSET(c, &mine)) on.push_back(c);
        }
      }
      p.set_value(on);
    });
    EXPECT_EQ(p.get_future().get(), std::vector<int>{cpus[i % cpus.size()]}) << "thread " << i;
  }
  pool.Stop();
  // Unpinned (the default): threads keep the whole mask.
  IoContextPool free_pool(1);
  free_pool.Start();
  std::promise<int> count;
  net::post(*free_pool.contexts()[0], [&] {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    count.set_value(sched_getaffinity(0, sizeof(mine), &mine) == 0 ? CPU_COUNT(&mine) : -1);
  });
  EXPECT_EQ(count.get_future().get(), static_cast<int>(cpus.size()));
  free_pool.Stop();
}

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
