// SPDX-License-Identifier: Apache-2.0
// weft_ratebench: an HTTP/1.1 load generator for small non-streaming requests over keep-alive
// connections (bench/compare_gateway.sh). Three modes:
//  - open (default): requests are due at a fixed rate R for D seconds (after W seconds of warm-up
//    at the same rate) and go out over C keep-alive connections; a due request waits in a queue
//    while every connection is busy, and its latency runs from its SCHEDULED time to the end of its
//    response, so a server that stalls is charged for every request it delayed (no coordinated
//    omission, as in wrk2). Prints one JSON object with the percentiles.
//  - closed (--closed): each connection sends its next request as soon as the previous answer
//    ends, for W + D seconds; prints the requests/s of the last D seconds.
//  - hold (--hold N): opens N connections that send nothing, prints {"held":...} once all are up,
//    and keeps them until SIGTERM/SIGINT or --duration; then prints how many the server dropped.
// Threads: --threads T workers, each with its own io_context, C/T of the connections and R/T of the
// rate (phases interleaved, so the T streams add up to one evenly spaced one). Responses are parsed
// by Beast; requests are pre-serialized bytes.
//
// Usage: weft_ratebench --url http://HOST:PORT/PATH [--rate R] [--duration D] [--warmup W]
//   [--connections C] [--threads T] [--closed] [--hold N] [--method M] [--body TEXT |
//   --body-file F] [-H 'Name: value']... [--drain S]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/gateway/latency_stats.h"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using weft::bench::RequestsBefore;
using weft::bench::ScheduledOffsetS;

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "8080";
  std::string path = "/";
  std::string method;  // "" = POST with a body, GET without
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
  double rate = 1000;                // requests/s (open loop)
  double duration_s = 10;            // hold mode: 0 (until a signal) unless given
  bool duration_given = false;
  double warmup_s = 1;
  double drain_s = 5;  // after the last due request: how long answers may still come
  int connections = 64;
  int threads = 1;
  bool closed = false;
  int hold = 0;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "weft_ratebench: %s\n", message.c_str());
  std::exit(2);
}

// "http://host:port/path" (port defaults to 80, path to "/").
void ParseUrl(const std::string& url, Options* o) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) Die("--url must start with http://");
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = slash == std::string::npos ? rest : rest.substr(0, slash);
  o->path = slash == std::string::npos ? "/" : rest.substr(slash);
  const size_t colon = authority.rfind(':');
  if (colon == std::string::npos) {
    o->host = authority;
    o->port = "80";
  } else {
    o->host = authority.substr(0, colon);
    o->port = authority.substr(colon + 1);
  }
  if (o->host.empty() || o->port.empty()) Die("bad --url " + url);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) Die(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  auto number = [&](int& i) -> double {
    std::string v = value(i);
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0') Die(std::string(argv[i - 1]) + ": not a number: " + v);
    return d;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--url") {
      ParseUrl(value(i), &o);
    } else if (a == "--rate") {
      o.rate = number(i);
    } else if (a == "--duration") {
      o.duration_s = number(i);
      o.duration_given = true;
    } else if (a == "--warmup") {
      o.warmup_s = number(i);
    } else if (a == "--drain") {
      o.drain_s = number(i);
    } else if (a == "--connections" || a == "-c") {
      o.connections = static_cast<int>(number(i));
    } else if (a == "--threads" || a == "-t") {
      o.threads = static_cast<int>(number(i));
    } else if (a == "--closed") {
      o.closed = true;
    } else if (a == "--hold") {
      o.hold = static_cast<int>(number(i));
    } else if (a == "--method") {
      o.method = value(i);
    } else if (a == "--body") {
      o.body = value(i);
    } else if (a == "--body-file") {
      std::ifstream f(value(i), std::ios::binary);
      if (!f) Die("cannot read --body-file");
      std::stringstream ss;
      ss << f.rdbuf();
      o.body = ss.str();
    } else if (a == "-H" || a == "--header") {
      std::string h = value(i);
      if (h.find(':') == std::string::npos) Die("-H wants 'Name: value', got " + h);
      o.headers.push_back(h);
    } else if (a == "-h" || a == "--help") {
      std::fprintf(stderr,
                   "usage: weft_ratebench --url http://HOST:PORT/PATH [--rate R] [--duration D] "
                   "[--warmup W]\n  [--connections C] [--threads T] [--closed] [--hold N] "
                   "[--method M] [--body TEXT | --body-file F]\n  [-H 'Name: value']... "
                   "[--drain S]\n");
      std::exit(0);
    } else {
      Die("unknown argument " + a);
    }
  }
  if (o.hold > 0 && !o.duration_given) o.duration_s = 0;
  if (o.method.empty()) o.method = o.body.empty() ? "GET" : "POST";
  if (o.threads < 1) Die("--threads must be >= 1");
  if (o.hold == 0) {
    if (o.connections < o.threads) Die("--connections must be >= --threads");
    if (!o.closed && o.rate <= 0) Die("--rate must be > 0");
    if (o.duration_s <= 0) Die("--duration must be > 0");
    if (o.warmup_s < 0) Die("--warmup must be >= 0");
  }
  return o;
}

std::string SerializeRequest(const Options& o) {
  std::string r = o.method + " " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + o.port + "\r\n";
  bool has_type = false;
  for (const std::string& h : o.headers) {
    r += h + "\r\n";
    std::string name = h.substr(0, h.find(':'));
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    if (name == "content-type") has_type = true;
  }
  if (!o.body.empty() || o.method == "POST" || o.method == "PUT") {
    if (!has_type) r += "Content-Type: application/json\r\n";
    r += "Content-Length: " + std::to_string(o.body.size()) + "\r\n";
  }
  r += "\r\n" + o.body;
  return r;
}

void RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct WorkerResult {
  int64_t sent = 0;    // due (open) or written (closed) inside the measured window
  int64_t ok = 0;      // 2xx answers to those
  int64_t errors = 0;  // other statuses, transport errors, and those unanswered at the end
  int64_t unanswered = 0;
  int64_t reconnects = 0;
  size_t max_queue = 0;              // most due requests waiting for a free connection
  std::vector<double> latencies_ms;  // of the ok ones
  std::vector<double> send_lag_ms;   // open loop: due -> written to the socket
};

// One thread's share of the load: its connections, its schedule, its results. Everything runs on
// its own io_context thread.
class Worker {
 public:
  Worker(const Options& o, int index, const tcp::resolver::results_type& endpoints,
         const std::string& request)
      : o_(o),
        endpoints_(endpoints),
        request_(request),
        timer_(ioc_),
        deadline_(ioc_),
        rate_(o.rate / o.threads),
        phase_(static_cast<double>(index) / o.threads) {
    const int n = o.connections / o.threads + (index < o.connections % o.threads ? 1 : 0);
    for (int i = 0; i < n; ++i) conns_.push_back(std::make_unique<Conn>(ioc_));
    if (!o.closed) {
      total_ = RequestsBefore(o.warmup_s + o.duration_s, rate_, phase_);
      warm_ = RequestsBefore(o.warmup_s, rate_, phase_);
      r_.latencies_ms.reserve(static_cast<size_t>((total_ - warm_) * 1.05) + 16);
      r_.send_lag_ms.reserve(static_cast<size_t>((total_ - warm_) * 1.05) + 16);
    }
  }

  // Blocking connects (before the clock starts).
  void Connect() {
    for (auto& c : conns_) {
      beast::error_code ec;
      net::connect(c->socket, endpoints_, ec);
      if (ec) Die("connect to " + o_.host + ":" + o_.port + ": " + ec.message());
      c->socket.set_option(tcp::no_delay(true));
    }
  }

  void Run(Clock::time_point t0) {
    t0_ = t0;
    measure_from_ = t0 + ToDuration(o_.warmup_s);
    end_ = measure_from_ + ToDuration(o_.duration_s);
    net::post(ioc_, [this] {
      if (o_.closed) {
        timer_.expires_at(t0_);
        timer_.async_wait([this](beast::error_code) {
          for (auto& c : conns_) Send(c.get(), Clock::now());
        });
        deadline_.expires_at(end_ + ToDuration(o_.drain_s));
      } else {
        for (auto& c : conns_) idle_.push_back(c.get());
        ArmScheduleTimer();
        deadline_.expires_at(t0_ +
                             ToDuration(ScheduledOffsetS(total_, rate_, phase_) + o_.drain_s));
      }
      deadline_.async_wait([this](beast::error_code ec) {
        if (!ec) Stop();
      });
    });
    ioc_.run();
    r_.unanswered = std::max<int64_t>(0, r_.sent - r_.ok - r_.errors);
    r_.errors += r_.unanswered;
  }

  WorkerResult& result() { return r_; }
  const std::string& first_error() const { return first_error_; }

 private:
  struct Conn {
    explicit Conn(net::io_context& ioc) : socket(ioc), retry(ioc) {}
    tcp::socket socket;
    net::steady_timer retry;
    beast::flat_buffer buffer;
    std::optional<bhttp::response_parser<bhttp::string_body>> parser;
    Clock::time_point due;  // of the request in flight
    bool measured = false;  // it counts (due inside the measured window)
  };

  static Clock::duration ToDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  Clock::time_point Due(int64_t i) const {
    return t0_ + ToDuration(ScheduledOffsetS(i, rate_, phase_));
  }

  void ArmScheduleTimer() {
    if (next_ >= total_) return;
    timer_.expires_at(Due(next_));
    timer_.async_wait([this](beast::error_code ec) {
      if (ec || stopping_) return;
      const Clock::time_point now = Clock::now();
      while (next_ < total_ && Due(next_) <= now) {
        if (next_ >= warm_) r_.sent++;
        queue_.push_back({Due(next_), next_ >= warm_});
        ++next_;
      }
      r_.max_queue = std::max(r_.max_queue, queue_.size());
      Dispatch();
      ArmScheduleTimer();
      MaybeFinish();
    });
  }

  void Dispatch() {
    while (!queue_.empty() && !idle_.empty()) {
      Conn* c = idle_.back();
      idle_.pop_back();
      const Pending p = queue_.front();
      queue_.pop_front();
      c->measured = p.measured;
      if (p.measured) r_.send_lag_ms.push_back(Ms(Clock::now() - p.due));
      Send(c, p.due);
    }
  }

  void Send(Conn* c, Clock::time_point due) {
    c->due = due;
    if (o_.closed) {
      c->measured = due >= measure_from_ && due < end_;
      if (c->measured) r_.sent++;
    }
    ++busy_;
    net::async_write(c->socket, net::buffer(request_), [this, c](beast::error_code ec, size_t) {
      if (ec) return Fail(c);
      c->parser.emplace();
      c->parser->body_limit(64 << 20);
      bhttp::async_read(c->socket, c->buffer, *c->parser,
                        [this, c](beast::error_code ec, size_t) { OnResponse(c, ec); });
    });
  }

  void OnResponse(Conn* c, beast::error_code ec) {
    if (ec) return Fail(c);
    const Clock::time_point now = Clock::now();
    --busy_;
    const unsigned status = c->parser->get().result_int();
    const bool keep_alive = c->parser->keep_alive();
    if (c->measured) {
      if (status >= 200 && status < 300) {
        r_.ok++;
        r_.latencies_ms.push_back(Ms(now - c->due));
      } else {
        r_.errors++;
        if (first_error_.empty())
          first_error_ =
              "HTTP " + std::to_string(status) + ": " + c->parser->get().body().substr(0, 200);
      }
    }
    if (!keep_alive) return Reconnect(c);
    Release(c, now);
  }

  // The connection is free again: the closed loop sends at once, the open loop takes the queue.
  void Release(Conn* c, Clock::time_point now) {
    if (stopping_) return;
    if (o_.closed) {
      if (now < end_) return Send(c, now);
      return MaybeFinish();
    }
    idle_.push_back(c);
    Dispatch();
    MaybeFinish();
  }

  void Fail(Conn* c) {
    --busy_;
    if (c->measured) {
      r_.errors++;
      if (first_error_.empty()) first_error_ = "transport error";
    }
    Reconnect(c);
  }

  void Reconnect(Conn* c) {
    if (stopping_) return;
    r_.reconnects++;
    beast::error_code ignored;
    c->socket.close(ignored);
    c->buffer.clear();
    StartConnect(c);
  }

  // The connection counts as busy until it is up again; a refused connect is retried every 100 ms
  // (until the deadline stops everything).
  void StartConnect(Conn* c) {
    ++busy_;
    net::async_connect(c->socket, endpoints_,
                       [this, c](beast::error_code ec, const tcp::endpoint&) {
                         --busy_;
                         if (stopping_) return;
                         if (ec) {
                           ++busy_;
                           c->retry.expires_after(std::chrono::milliseconds(100));
                           c->retry.async_wait([this, c](beast::error_code) {
                             --busy_;
                             if (stopping_) return;
                             StartConnect(c);
                           });
                           return;
                         }
                         beast::error_code ignored;
                         c->socket.set_option(tcp::no_delay(true), ignored);
                         Release(c, Clock::now());
                       });
  }

  // Done when nothing more is due and nothing is in flight (or queued).
  void MaybeFinish() {
    if (stopping_ || busy_ > 0 || !queue_.empty()) return;
    if (o_.closed ? Clock::now() >= end_ : next_ >= total_) Stop();
  }

  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    timer_.cancel();
    deadline_.cancel();
    for (auto& c : conns_) {
      beast::error_code ignored;
      c->socket.close(ignored);
      c->retry.cancel();
    }
    ioc_.stop();
  }

  struct Pending {
    Clock::time_point due;
    bool measured;
  };

  const Options& o_;
  net::io_context ioc_{1};
  const tcp::resolver::results_type endpoints_;
  const std::string& request_;
  net::steady_timer timer_;
  net::steady_timer deadline_;
  const double rate_;
  const double phase_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;
  std::deque<Pending> queue_;
  int64_t total_ = 0;  // requests due in warm-up + window (open loop)
  int64_t warm_ = 0;   // of which in the warm-up
  int64_t next_ = 0;   // next request to fall due
  int busy_ = 0;       // connections with a request (or a reconnect) in flight
  bool stopping_ = false;
  bool stopped_ = false;
  Clock::time_point t0_, measure_from_, end_;
  WorkerResult r_;
  std::string first_error_;
};

int RunLoad(const Options& o) {
  net::io_context resolver_ioc;
  tcp::resolver resolver(resolver_ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(o.host, o.port, ec);
  if (ec) Die("resolve " + o.host + ": " + ec.message());
  const std::string request = SerializeRequest(o);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.threads; ++i) {
    workers.push_back(std::make_unique<Worker>(o, i, endpoints, request));
    workers.back()->Connect();
  }
  const Clock::time_point t0 = Clock::now() + std::chrono::milliseconds(20);
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w, t0] { w->Run(t0); });
  for (auto& t : threads) t.join();

  WorkerResult all;
  std::string first_error;
  for (auto& w : workers) {
    WorkerResult& r = w->result();
    all.sent += r.sent;
    all.ok += r.ok;
    all.errors += r.errors;
    all.unanswered += r.unanswered;
    all.reconnects += r.reconnects;
    all.max_queue = std::max(all.max_queue, r.max_queue);
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    all.send_lag_ms.insert(all.send_lag_ms.end(), r.send_lag_ms.begin(), r.send_lag_ms.end());
    if (first_error.empty()) first_error = w->first_error();
  }
  const weft::bench::LatencySummary s = weft::bench::Summarize(all.latencies_ms);
  const weft::bench::LatencySummary lag = weft::bench::Summarize(all.send_lag_ms);
  const double rps = static_cast<double>(all.ok) / o.duration_s;
  if (!first_error.empty())
    std::fprintf(stderr, "weft_ratebench: first error: %s\n", first_error.c_str());
  std::printf(
      "{\"mode\":\"%s\",\"rate\":%.1f,\"duration_s\":%.1f,\"connections\":%d,\"threads\":%d,"
      "\"sent\":%lld,\"ok\":%lld,\"errors\":%lld,\"unanswered\":%lld,\"reconnects\":%lld,"
      "\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,"
      "\"mean_ms\":%.4f,\"achieved_rps\":%.1f,\"max_queue\":%zu,\"send_lag_p99_ms\":%.4f}\n",
      o.closed ? "closed" : "open", o.closed ? 0.0 : o.rate, o.duration_s, o.connections, o.threads,
      static_cast<long long>(all.sent), static_cast<long long>(all.ok),
      static_cast<long long>(all.errors), static_cast<long long>(all.unanswered),
      static_cast<long long>(all.reconnects), s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms,
      s.mean_ms, rps, all.max_queue, lag.p99_ms);
  std::fflush(stdout);
  return all.errors == 0 ? 0 : 1;
}

// Hold mode: N idle connections. Connects run at most 256 at a time (the listener's backlog).
int RunHold(const Options& o) {
  net::io_context ioc{1};
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(o.host, o.port, ec);
  if (ec) Die("resolve " + o.host + ": " + ec.message());
  struct Held {
    explicit Held(net::io_context& ioc) : socket(ioc) {}
    tcp::socket socket;
    char byte = 0;
  };
  std::vector<std::unique_ptr<Held>> held;
  held.reserve(o.hold);
  int next = 0, in_flight = 0, up = 0, failed = 0, dropped = 0;
  bool ready_printed = false;
  std::string first_error;
  std::function<void()> pump;
  auto maybe_ready = [&] {
    if (ready_printed || next < o.hold || in_flight > 0) return;
    ready_printed = true;
    std::printf("{\"held\":%d,\"failed\":%d}\n", up, failed);
    std::fflush(stdout);
    if (!first_error.empty())
      std::fprintf(stderr, "weft_ratebench: first error: %s\n", first_error.c_str());
  };
  pump = [&] {
    while (next < o.hold && in_flight < 256) {
      held.push_back(std::make_unique<Held>(ioc));
      Held* h = held.back().get();
      ++next;
      ++in_flight;
      net::async_connect(h->socket, endpoints, [&, h](beast::error_code ec, const tcp::endpoint&) {
        --in_flight;
        if (ec) {
          ++failed;
          if (first_error.empty()) first_error = ec.message();
        } else {
          ++up;
          // Never answered: completes only when the server closes the connection.
          h->socket.async_read_some(net::buffer(&h->byte, 1), [&](beast::error_code e, size_t) {
            if (e != net::error::operation_aborted) ++dropped;
          });
        }
        pump();
        maybe_ready();
      });
    }
  };
  pump();
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  net::steady_timer limit(ioc);
  auto finish = [&] {
    signals.cancel();
    limit.cancel();
    ioc.stop();
  };
  signals.async_wait([&](beast::error_code e, int) {
    if (!e) finish();
  });
  if (o.duration_s > 0) {
    limit.expires_after(
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s)));
    limit.async_wait([&](beast::error_code e) {
      if (!e) finish();
    });
  }
  ioc.run();
  std::printf("{\"held\":%d,\"failed\":%d,\"dropped\":%d}\n", up, failed, dropped);
  std::fflush(stdout);
  return failed == 0 && dropped == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);
  return o.hold > 0 ? RunHold(o) : RunLoad(o);
}
