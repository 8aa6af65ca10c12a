// SPDX-License-Identifier: Apache-2.0
#include "base/http/io_context_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <string>

#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"

namespace weft::http {

namespace net = boost::asio;

namespace {
// An io_context whose services can be shut down without destroying it (execution_context's
// shutdown() is protected).
class PoolContext : public net::io_context {
 public:
  // The default concurrency hint, not 1: with 1, Asio queues a post made on the context's own
  // thread privately until the running handler returns, so a post from another thread made later
  // can run first. HttpServer's ResponseWriter promises call order (a handler's StartStream, then
  // a producer thread's Write), which needs every post in one FIFO.
  PoolContext() = default;
  void Shutdown() { shutdown(); }
};
}  // namespace

IoContextPool::IoContextPool(int threads, bool pin_threads) : pin_threads_(pin_threads) {
  const int n = std::max(1, threads);
  for (int i = 0; i < n; ++i) {
    owned_.push_back(std::make_unique<PoolContext>());
    contexts_.push_back(owned_.back().get());
  }
}

IoContextPool::~IoContextPool() {
  Stop();
  // Every context's queued handlers go before any context does: an object one of them owns may
  // hold sockets or timers of another context (an exchange's pool, a client's sweep timer).
  for (auto& ioc : owned_) static_cast<PoolContext*>(ioc.get())->Shutdown();
  owned_.clear();
}

void IoContextPool::Start() {
  if (!threads_.empty()) return;
  std::vector<int> cpus;  // the CPUs this process may run on, in order
  if (pin_threads_) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
      }
    }
  }
  for (net::io_context* ioc : contexts_) {
    ioc->restart();
    guards_.push_back(std::make_shared<net::executor_work_guard<net::io_context::executor_type>>(
        ioc->get_executor()));
    const std::string name = "weft-io-" + std::to_string(threads_.size());
    const int cpu = cpus.empty() ? -1 : cpus[threads_.size() % cpus.size()];
    threads_.emplace_back([ioc, name, cpu] {
      pthread_setname_np(pthread_self(), name.c_str());  // at most 15 characters
      if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        (void)pthread_setaffinity_np(pthread_self(), sizeof(one), &one);  // best effort
      }
      ioc->run();
    });
  }
}

void IoContextPool::Stop() {
  guards_.clear();
  for (net::io_context* ioc : contexts_) ioc->stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

int IoContextPool::Current() const {
  for (size_t i = 0; i < contexts_.size(); ++i) {
    if (contexts_[i]->get_executor().running_in_this_thread()) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace weft::http
