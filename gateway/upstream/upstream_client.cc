// SPDX-License-Identifier: Apache-2.0
#include "gateway/upstream/upstream_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace weft::gateway::upstream {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
// Where an exchange's handlers run: the io_context's own executor where one thread runs it (the
// shards; no strand needed), a strand where several may (the client's own threads, a caller's
// io_context).
using Executor = net::any_io_executor;

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

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

// Hop-by-hop headers (RFC 9110 section 7.6.1) and the framing headers the client sets itself.
bool IsHopByHop(std::string_view name) {
  static constexpr std::string_view kNames[] = {"connection",
                                                "keep-alive",
                                                "proxy-connection",
                                                "proxy-authenticate",
                                                "proxy-authorization",
                                                "te",
                                                "trailer",
                                                "transfer-encoding",
                                                "upgrade",
                                                "content-length",
                                                "host"};
  for (std::string_view n : kNames) {
    if (EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

std::string Fmt(double s) { return absl::StrCat(s, "s"); }

// A pooled connection's liveness without blocking: a closed or reset peer, or stray bytes (a
// response we never asked for), make it unusable.
bool IdleSocketAlive(tcp::socket& socket) {
  char byte;
  ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || n > 0) return false;
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

// Bytes asked of one read of a response (the buffer grows past it only for a head that does not
// fit, up to the head limit).
constexpr size_t kReadBytes = 16 << 10;
constexpr int kMaxStaleRetries = 2;
// A pooled connection idle for less than this is reused without a liveness probe (a recv per
// request showed up in profiles); one the server closed meanwhile fails before any response byte
// and is replaced by the stale retry.
constexpr auto kProbeIdleAfter = std::chrono::seconds(1);

}  // namespace

std::string Target::Key() const { return absl::StrCat(host, ":", port); }

std::string_view UpstreamResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return {};
}

class ExchangeImpl;

// A connection slot granted by a pool: either a kept-alive socket, or the right to open one.
struct Grant {
  std::optional<tcp::socket> socket;
};

struct Pool {
  struct Idle {
    tcp::socket socket;
    Clock::time_point since;
  };
  std::vector<Idle> idle;  // back = most recently used (tried first: likeliest alive)
  size_t total = 0;
  std::deque<std::shared_ptr<ExchangeImpl>> waiters;
  uint64_t connects = 0;
  uint64_t reuses = 0;
};

struct UpstreamClient::Core : std::enable_shared_from_this<UpstreamClient::Core> {
  explicit Core(ClientOptions o)
      : options(std::move(o)),
        own_ioc(options.io_context == nullptr && options.io_contexts.empty()
                    ? std::make_unique<net::io_context>()
                    : nullptr),
        iocs(!options.io_contexts.empty()    ? options.io_contexts
             : options.io_context != nullptr ? std::vector<net::io_context*>{options.io_context}
                                             : std::vector<net::io_context*>{own_ioc.get()}),
        single_threaded(!options.io_contexts.empty() ||
                        (own_ioc != nullptr && options.threads <= 1)),
        sweep_strand(ExecutorOn(0)),
        sweep_timer(sweep_strand) {
    for (size_t i = 0; i < iocs.size(); ++i) shards.push_back(std::make_unique<Shard>());
  }

  ClientOptions options;
  std::unique_ptr<net::io_context> own_ioc;
  // The shards: an exchange runs on one (the caller's own, when it is one of them) and takes its
  // connections from that shard's pools, so a proxied request never changes threads.
  std::vector<net::io_context*> iocs;
  std::atomic<size_t> next_shard{0};
  // Each io_context is run by one thread: handlers need no strand.
  const bool single_threaded;
  Executor sweep_strand;
  net::steady_timer sweep_timer;  // on sweep_strand

  // Per shard: its pools and its exchanges in flight, under the shard's own lock (an exchange only
  // takes its own shard's, so the I/O threads never share one on the request path).
  struct Shard {
    std::mutex mu;
    bool stopping = false;                                                // guarded by mu
    std::unordered_map<std::string, Pool> pools;                          // guarded by mu
    std::unordered_map<ExchangeImpl*, std::weak_ptr<ExchangeImpl>> live;  // guarded by mu
  };
  std::vector<std::unique_ptr<Shard>> shards;  // one per io_context

  mutable std::mutex mu;
  bool stopping = false;                                    // guarded by mu (timers)
  std::unordered_map<Timer*, std::weak_ptr<Timer>> timers;  // guarded by mu

  Executor ExecutorOn(size_t shard) const {
    if (single_threaded) return iocs[shard]->get_executor();
    return net::make_strand(*iocs[shard]);
  }
  size_t PickShard() {
    if (iocs.size() == 1) return 0;
    for (size_t i = 0; i < iocs.size(); ++i) {
      if (iocs[i]->get_executor().running_in_this_thread()) return i;
    }
    return next_shard.fetch_add(1, std::memory_order_relaxed) % iocs.size();
  }
  // The pool of `key` on `shard` (shard 0 keeps the plain key).
  static std::string PoolKey(const std::string& key, size_t shard) {
    return shard == 0 ? key : absl::StrCat(key, "#", shard);
  }

  enum class AcquireResult { kGranted, kQueued, kFull, kStopping };
  AcquireResult Acquire(size_t shard, const std::string& key,
                        const std::shared_ptr<ExchangeImpl>& ex, Grant* grant);
  // Gives a slot back: a reusable socket goes to a waiter or the idle list; otherwise the slot is
  // freed (and a waiter may open a connection in it).
  void Release(size_t shard, const std::string& key, std::optional<tcp::socket> socket,
               bool reusable);
  void RemoveWaiter(size_t shard, const std::string& key, ExchangeImpl* ex);
  void CountConnect(size_t shard, const std::string& key) {
    Shard& sh = *shards[shard];
    std::lock_guard lock(sh.mu);
    if (auto it = sh.pools.find(key); it != sh.pools.end()) ++it->second.connects;
  }
  bool Register(size_t shard, const std::shared_ptr<ExchangeImpl>& ex);
  void Unregister(size_t shard, ExchangeImpl* ex) {
    Shard& sh = *shards[shard];
    std::lock_guard lock(sh.mu);
    sh.live.erase(ex);
  }
  bool AnyLive() {
    for (auto& sh : shards) {
      std::lock_guard lock(sh->mu);
      if (!sh->live.empty()) return true;
    }
    return false;
  }
  void ScheduleSweep();
  void Sweep();
  void HandOff(std::shared_ptr<ExchangeImpl> ex, Grant grant);  // the shard's mu held; posts
};

// One response, read by Beast's parser without its field container: the head's fields are copied
// only for a caller that wants them (hop-by-hop ones left out), and body bytes are not copied at
// all: each put() leaves views into the bytes it was given in `pieces` (chunk framing removed).
class ResponseParser final : public bhttp::basic_parser<false> {
 public:
  int status = 0;
  bool want_headers = false;
  Headers headers;
  std::vector<std::string_view> pieces;

 private:
  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                       beast::error_code&) override {}
  void on_response_impl(int code, beast::string_view, int, beast::error_code&) override {
    status = code;
  }
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     beast::error_code&) override {
    if (want_headers && !IsHopByHop(std::string_view(name.data(), name.size()))) {
      headers.emplace_back(std::string(name), std::string(value));
    }
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
  size_t on_body_impl(beast::string_view body, beast::error_code&) override {
    if (!body.empty()) pieces.emplace_back(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code&) override {
    if (!body.empty()) pieces.emplace_back(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(beast::error_code&) override {}
};

// One request/response. Everything below runs on `strand_` except Cancel/done.
class ExchangeImpl : public Exchange, public std::enable_shared_from_this<ExchangeImpl> {
 public:
  ExchangeImpl(std::shared_ptr<UpstreamClient::Core> core, Target target, UpstreamRequest request,
               Callbacks cb, Timeouts timeouts)
      : core_(std::move(core)),
        target_(std::move(target)),
        key_(target_.Key()),
        shard_(core_->PickShard()),
        pool_key_(UpstreamClient::Core::PoolKey(key_, shard_)),
        request_(std::move(request)),
        cb_(std::move(cb)),
        timeouts_(timeouts),
        strand_(core_->ExecutorOn(shard_)),
        timer_(strand_) {}

  void Cancel() override {
    net::post(strand_, [self = shared_from_this()] {
      self->Finish(absl::CancelledError(absl::StrCat("exchange with ", self->key_, " cancelled")));
    });
  }
  bool done() const override { return done_.load(); }

  // On strand_ only.
  void Start();
  void OnGrant(Grant grant);
  void Finish(absl::Status status, bool reusable = false);
  void set_callbacks(Callbacks cb) { cb_ = std::move(cb); }
  const Executor& strand() const { return strand_; }
  size_t shard() const { return shard_; }

 private:
  enum class Phase { kStart, kQueued, kConnecting, kWaitingHead, kBody, kDone };

  template <typename F>
  auto Bind(F&& f) {
    return net::bind_executor(strand_, std::forward<F>(f));
  }
  // The current phase's limit, from now; <= 0: none.
  void ArmTimer(double seconds);
  void WaitUntil(Clock::time_point when);
  void OnTimeout();
  void Connect();
  void OnConnected(beast::error_code ec);
  void WriteRequest();
  void ReadHead();
  void NewParser();
  void ReadMore();
  void OnRead(beast::error_code ec, size_t n);
  void Parse();
  bool MaybeRetryStale(beast::error_code ec);
  absl::Status MapError(beast::error_code ec) const;
  void CloseSocket();

  // Declared first: destroyed last (the socket and timers below belong to its io_context).
  std::shared_ptr<UpstreamClient::Core> core_;
  Target target_;
  std::string key_;  // host:port
  size_t shard_;
  std::string pool_key_;  // key_ on shard_
  UpstreamRequest request_;
  Callbacks cb_;
  Timeouts timeouts_;
  Executor strand_;
  // One timer for every phase's limit: armed at most once at a time and moved only when a limit
  // comes earlier; a wake-up before the current deadline re-arms (no cancel + re-arm per phase).
  net::steady_timer timer_;
  std::optional<Clock::time_point> deadline_;  // the current phase's limit; none: no limit
  std::optional<Clock::time_point> armed_at_;  // when the pending wait expires; none: no wait
  std::optional<tcp::resolver> resolver_;
  std::optional<tcp::socket> socket_;
  std::string wire_;  // the serialized request, head and body
  beast::flat_buffer buffer_;
  std::optional<ResponseParser> parser_;
  bool head_seen_ = false;  // the current parser's head was passed on

  Phase phase_ = Phase::kStart;
  std::atomic<bool> done_{false};
  bool holds_slot_ = false;
  bool reused_ = false;  // socket_ came from the pool
  int stale_retries_ = 0;
  uint64_t wait_gen_ = 0;  // the pending wait's; older wake-ups are ignored
};

// ---- Core ----

bool UpstreamClient::Core::Register(size_t shard, const std::shared_ptr<ExchangeImpl>& ex) {
  Shard& sh = *shards[shard];
  std::lock_guard lock(sh.mu);
  if (sh.stopping) return false;
  sh.live.emplace(ex.get(), ex);
  return true;
}

UpstreamClient::Core::AcquireResult UpstreamClient::Core::Acquire(
    size_t shard, const std::string& key, const std::shared_ptr<ExchangeImpl>& ex, Grant* grant) {
  Shard& sh = *shards[shard];
  std::lock_guard lock(sh.mu);
  if (sh.stopping) return AcquireResult::kStopping;
  Pool& pool = sh.pools[key];
  const Clock::time_point now = Clock::now();
  while (!pool.idle.empty()) {
    Pool::Idle idle = std::move(pool.idle.back());
    pool.idle.pop_back();
    const Clock::duration idle_for = now - idle.since;
    if (idle_for < Seconds(options.idle_timeout_s) &&
        (idle_for < kProbeIdleAfter || IdleSocketAlive(idle.socket))) {
      ++pool.reuses;
      grant->socket.emplace(std::move(idle.socket));
      return AcquireResult::kGranted;
    }
    beast::error_code ignored;
    idle.socket.close(ignored);
    --pool.total;
  }
  if (pool.total < options.max_total_per_host) {
    ++pool.total;
    return AcquireResult::kGranted;
  }
  if (pool.waiters.size() >= options.max_pending_per_host) return AcquireResult::kFull;
  pool.waiters.push_back(ex);
  return AcquireResult::kQueued;
}

void UpstreamClient::Core::HandOff(std::shared_ptr<ExchangeImpl> ex, Grant grant) {
  const Executor& strand = ex->strand();
  net::post(strand, [ex = std::move(ex), grant = std::move(grant)]() mutable {
    ex->OnGrant(std::move(grant));
  });
}

void UpstreamClient::Core::Release(size_t shard, const std::string& key,
                                   std::optional<tcp::socket> socket, bool reusable) {
  Shard& sh = *shards[shard];
  std::lock_guard lock(sh.mu);
  auto it = sh.pools.find(key);
  WEFT_CHECK(it != sh.pools.end());
  Pool& pool = it->second;
  beast::error_code ignored;
  const bool stopping = sh.stopping;
  if (reusable && socket.has_value() && !stopping) {
    if (!pool.waiters.empty()) {
      std::shared_ptr<ExchangeImpl> waiter = std::move(pool.waiters.front());
      pool.waiters.pop_front();
      ++pool.reuses;
      Grant grant;
      grant.socket.emplace(std::move(*socket));
      HandOff(std::move(waiter), std::move(grant));
      return;
    }
    if (pool.idle.size() < options.max_idle_per_host) {
      pool.idle.push_back(Pool::Idle{std::move(*socket), Clock::now()});
      return;
    }
  }
  if (socket.has_value()) socket->close(ignored);
  --pool.total;
  if (!pool.waiters.empty() && !stopping && pool.total < options.max_total_per_host) {
    std::shared_ptr<ExchangeImpl> waiter = std::move(pool.waiters.front());
    pool.waiters.pop_front();
    ++pool.total;
    HandOff(std::move(waiter), Grant{});
  }
}

void UpstreamClient::Core::RemoveWaiter(size_t shard, const std::string& key, ExchangeImpl* ex) {
  Shard& sh = *shards[shard];
  std::lock_guard lock(sh.mu);
  auto it = sh.pools.find(key);
  if (it == sh.pools.end()) return;
  auto& waiters = it->second.waiters;
  for (auto w = waiters.begin(); w != waiters.end(); ++w) {
    if (w->get() == ex) {
      waiters.erase(w);
      return;
    }
  }
}

void UpstreamClient::Core::ScheduleSweep() {
  double period = std::clamp(options.idle_timeout_s / 2, 0.05, 1.0);
  sweep_timer.expires_after(Seconds(period));
  sweep_timer.async_wait(
      net::bind_executor(sweep_strand, [weak = weak_from_this()](beast::error_code ec) {
        if (ec) return;
        if (auto core = weak.lock()) core->Sweep();
      }));
}

// Closes idle connections past the idle timeout or closed by the peer, and forgets empty pools.
void UpstreamClient::Core::Sweep() {
  for (auto& shard : shards) {
    Shard& sh = *shard;
    std::lock_guard lock(sh.mu);
    if (sh.stopping) return;
    const Clock::time_point now = Clock::now();
    for (auto it = sh.pools.begin(); it != sh.pools.end();) {
      Pool& pool = it->second;
      std::vector<Pool::Idle> keep;
      for (Pool::Idle& idle : pool.idle) {
        if (now - idle.since < Seconds(options.idle_timeout_s) && IdleSocketAlive(idle.socket)) {
          keep.push_back(std::move(idle));
        } else {
          beast::error_code ignored;
          idle.socket.close(ignored);
          --pool.total;
        }
      }
      pool.idle = std::move(keep);
      if (pool.total == 0 && pool.waiters.empty()) {
        it = sh.pools.erase(it);
      } else {
        ++it;
      }
    }
  }
  ScheduleSweep();
}

// ---- ExchangeImpl ----

void ExchangeImpl::ArmTimer(double seconds) {
  if (seconds <= 0) {
    deadline_.reset();  // a pending wait finds no limit when it wakes and ends
    return;
  }
  const Clock::time_point deadline = Clock::now() + Seconds(seconds);
  deadline_ = deadline;
  if (armed_at_.has_value() && *armed_at_ <= deadline) return;  // wakes in time and re-arms then
  WaitUntil(deadline);
}

void ExchangeImpl::WaitUntil(Clock::time_point when) {
  armed_at_ = when;
  const uint64_t gen = ++wait_gen_;
  timer_.expires_at(when);  // a pending wait (if any) completes with operation_aborted
  timer_.async_wait(Bind([self = shared_from_this(), gen](beast::error_code ec) {
    if (ec || gen != self->wait_gen_ || self->phase_ == Phase::kDone) return;
    self->armed_at_.reset();
    if (!self->deadline_.has_value()) return;
    if (Clock::now() < *self->deadline_) return self->WaitUntil(*self->deadline_);
    self->OnTimeout();
  }));
}

void ExchangeImpl::OnTimeout() {
  switch (phase_) {
    case Phase::kQueued:
    case Phase::kStart:
    case Phase::kConnecting:
      return Finish(absl::DeadlineExceededError(
          absl::StrCat("no connection to ", key_, " within ", Fmt(timeouts_.connect_s),
                       phase_ == Phase::kQueued ? " (connection pool full)" : "")));
    case Phase::kWaitingHead:
      return Finish(absl::DeadlineExceededError(
          absl::StrCat("no response head from ", key_, " within ", Fmt(timeouts_.first_byte_s))));
    case Phase::kBody:
      return Finish(absl::DeadlineExceededError(
          absl::StrCat("upstream ", key_, " stalled: no body bytes for ", Fmt(timeouts_.stall_s))));
    case Phase::kDone:
      return;
  }
}

void ExchangeImpl::Start() {
  if (phase_ == Phase::kDone) return;  // cancelled before it started
  // Serialized once, head and body in one buffer (one write; resent as is by a stale retry).
  const bool with_length = !request_.body.empty() || request_.method == "POST" ||
                           request_.method == "PUT" || request_.method == "PATCH";
  size_t head_bytes = request_.method.size() + request_.target.size() + key_.size() + 64;
  for (const auto& [k, v] : request_.headers) head_bytes += k.size() + v.size() + 4;
  wire_.reserve(head_bytes + request_.body.size());
  absl::StrAppend(&wire_, request_.method, " ", request_.target, " HTTP/1.1\r\nHost: ", key_,
                  "\r\n");
  for (const auto& [k, v] : request_.headers) {
    // A name or value that would break the framing (CR/LF) is dropped, never sent.
    if (IsHopByHop(k) || k.find_first_of("\r\n:") != std::string::npos ||
        v.find_first_of("\r\n") != std::string::npos) {
      continue;
    }
    absl::StrAppend(&wire_, k, ": ", v, "\r\n");
  }
  if (with_length) absl::StrAppend(&wire_, "Content-Length: ", request_.body.size(), "\r\n");
  wire_.append("\r\n");
  wire_.append(request_.body);
  request_.body.clear();
  request_.body.shrink_to_fit();
  ArmTimer(timeouts_.connect_s);
  Grant grant;
  switch (core_->Acquire(shard_, pool_key_, shared_from_this(), &grant)) {
    case UpstreamClient::Core::AcquireResult::kGranted:
      return OnGrant(std::move(grant));
    case UpstreamClient::Core::AcquireResult::kQueued:
      phase_ = Phase::kQueued;
      return;
    case UpstreamClient::Core::AcquireResult::kFull:
      return Finish(absl::ResourceExhaustedError(
          absl::StrCat("connection pool for ", key_, " is full (",
                       core_->options.max_pending_per_host, " requests waiting)")));
    case UpstreamClient::Core::AcquireResult::kStopping:
      return Finish(absl::CancelledError("upstream client shutting down"));
  }
}

void ExchangeImpl::OnGrant(Grant grant) {
  if (phase_ == Phase::kDone) {
    // Cancelled or timed out while the grant was on its way: give the slot back.
    bool reusable = grant.socket.has_value();
    core_->Release(shard_, pool_key_, std::move(grant.socket), reusable);
    return;
  }
  holds_slot_ = true;
  if (grant.socket.has_value()) {
    socket_.emplace(std::move(*grant.socket));
    reused_ = true;
    return WriteRequest();
  }
  Connect();
}

void ExchangeImpl::Connect() {
  phase_ = Phase::kConnecting;
  reused_ = false;
  core_->CountConnect(shard_, pool_key_);
  socket_.emplace(*core_->iocs[shard_]);
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(target_.host, ec);
  if (!ec) {
    socket_->async_connect(
        tcp::endpoint(address, target_.port),
        Bind([self = shared_from_this()](beast::error_code ec) { self->OnConnected(ec); }));
    return;
  }
  resolver_.emplace(*core_->iocs[shard_]);
  resolver_->async_resolve(
      target_.host, std::to_string(target_.port),
      Bind([self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
        if (self->phase_ == Phase::kDone) return;
        if (ec) {
          return self->Finish(absl::UnavailableError(
              absl::StrCat("cannot resolve ", self->target_.host, ": ", ec.message())));
        }
        net::async_connect(*self->socket_, results,
                           self->Bind([self](beast::error_code ec, const tcp::endpoint&) {
                             self->OnConnected(ec);
                           }));
      }));
}

void ExchangeImpl::OnConnected(beast::error_code ec) {
  if (phase_ == Phase::kDone) return;
  if (ec) {
    if (ec == net::error::connection_refused) {
      return Finish(absl::UnavailableError(absl::StrCat("connection to ", key_, " refused")));
    }
    return Finish(absl::UnavailableError(absl::StrCat("connect to ", key_, ": ", ec.message())));
  }
  beast::error_code ignored;
  socket_->set_option(tcp::no_delay(true), ignored);
  WriteRequest();
}

void ExchangeImpl::WriteRequest() {
  phase_ = Phase::kWaitingHead;
  ArmTimer(timeouts_.first_byte_s);
  buffer_.clear();
  net::async_write(*socket_, net::buffer(wire_),
                   Bind([self = shared_from_this()](beast::error_code ec, size_t) {
                     if (self->phase_ == Phase::kDone) return;
                     if (ec) {
                       if (self->MaybeRetryStale(ec)) return;
                       return self->Finish(self->MapError(ec));
                     }
                     self->ReadHead();
                   }));
}

void ExchangeImpl::ReadHead() {
  NewParser();
  ReadMore();
}

void ExchangeImpl::NewParser() {
  parser_.emplace();
  parser_->eager(true);  // on into the body in the same put() as the head
  parser_->header_limit(static_cast<uint32_t>(core_->options.max_header_bytes));
  parser_->body_limit(boost::none);
  parser_->want_headers = cb_.want_headers;
  if (request_.method == "HEAD") parser_->skip(true);
  head_seen_ = false;
}

void ExchangeImpl::ReadMore() {
  const size_t room = buffer_.capacity() - buffer_.size();
  socket_->async_read_some(
      buffer_.prepare(std::max(room, kReadBytes)),
      Bind([self = shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); }));
}

void ExchangeImpl::OnRead(beast::error_code ec, size_t n) {
  if (phase_ == Phase::kDone) return;
  if (ec == net::error::eof) {
    // What Beast's reads do at the end of the stream: a body delimited by the close ends here;
    // anything else was cut short (or never began).
    if (parser_->got_some()) {
      ec = {};
      parser_->put_eof(ec);
      if (!ec) return Parse();
    } else {
      ec = bhttp::error::end_of_stream;
    }
  }
  if (ec) {
    if (MaybeRetryStale(ec)) return;
    return Finish(MapError(ec));
  }
  buffer_.commit(n);
  Parse();
}

// Feeds the buffered bytes to the parser: the head to on_head once, the body's bytes to on_data
// straight from the buffer, and the end to Finish; reads on while more is needed. A small answer
// that arrived in one read goes through here once, with no timer moved.
void ExchangeImpl::Parse() {
  while (true) {
    beast::error_code ec;
    parser_->pieces.clear();
    size_t used = 0;
    if (buffer_.size() > 0 && !parser_->is_done()) used = parser_->put(buffer_.data(), ec);
    if (ec == bhttp::error::need_more) ec = {};
    if (ec) return Finish(MapError(ec));
    if (!head_seen_ && parser_->is_header_done()) {
      head_seen_ = true;
      const int status = parser_->status;
      if (status == 101) {
        return Finish(absl::UnavailableError(absl::StrCat(
            "malformed response from ", key_, ": unexpected 101 Switching Protocols")));
      }
      if (status >= 100 && status < 200) {  // interim response: the real one follows
        buffer_.consume(used);
        NewParser();
        continue;
      }
      phase_ = Phase::kBody;
      if (cb_.on_head) cb_.on_head(status, parser_->headers);
      if (phase_ == Phase::kDone) return;
    }
    for (std::string_view piece : parser_->pieces) {
      if (cb_.on_data) cb_.on_data(piece);
      if (phase_ == Phase::kDone) return;
    }
    buffer_.consume(used);
    if (parser_->is_done()) {
      // Bytes past the response (an unasked-for extra) make the connection unsafe to reuse.
      return Finish(absl::OkStatus(), parser_->keep_alive() && buffer_.size() == 0);
    }
    if (used == 0 || buffer_.size() == 0) break;
  }
  if (phase_ == Phase::kBody) ArmTimer(timeouts_.stall_s);
  ReadMore();
}

// A kept-alive connection the server closed while it sat in the pool fails before any byte of the
// response; the request is sent again on a fresh connection (the server never saw it).
bool ExchangeImpl::MaybeRetryStale(beast::error_code ec) {
  if (!reused_ || stale_retries_ >= kMaxStaleRetries) return false;
  if (parser_.has_value() && parser_->got_some()) return false;
  if (buffer_.size() > 0) return false;
  if (ec != net::error::eof && ec != bhttp::error::end_of_stream &&
      ec != net::error::connection_reset && ec != net::error::broken_pipe) {
    return false;
  }
  ++stale_retries_;
  CloseSocket();
  ArmTimer(timeouts_.connect_s);
  Connect();  // in the slot the stale connection held
  return true;
}

absl::Status ExchangeImpl::MapError(beast::error_code ec) const {
  const bool in_body = phase_ == Phase::kBody;
  if (ec == bhttp::error::partial_message) {
    return absl::UnavailableError(absl::StrCat(key_, " closed the connection mid-body"));
  }
  if (ec == bhttp::error::end_of_stream || ec == net::error::eof) {
    return absl::UnavailableError(absl::StrCat(key_, " closed the connection ",
                                               in_body ? "mid-body" : "before the response head"));
  }
  if (ec == net::error::connection_reset || ec == net::error::broken_pipe) {
    return absl::UnavailableError(absl::StrCat(key_, " reset the connection ",
                                               in_body ? "mid-body" : "before the response head"));
  }
  if (ec == bhttp::error::header_limit) {
    return absl::UnavailableError(absl::StrCat("malformed response from ", key_,
                                               ": head larger than ",
                                               core_->options.max_header_bytes, " bytes"));
  }
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category()) {
    return absl::UnavailableError(
        absl::StrCat("malformed response from ", key_, ": ", ec.message()));
  }
  return absl::UnavailableError(absl::StrCat("upstream ", key_, ": ", ec.message()));
}

void ExchangeImpl::CloseSocket() {
  if (!socket_.has_value()) return;
  beast::error_code ignored;
  socket_->close(ignored);
}

void ExchangeImpl::Finish(absl::Status status, bool reusable) {
  if (phase_ == Phase::kDone) return;
  const Phase was = phase_;
  phase_ = Phase::kDone;
  done_ = true;
  deadline_.reset();
  if (armed_at_.has_value()) {
    armed_at_.reset();
    ++wait_gen_;
    timer_.cancel();
  }
  if (resolver_.has_value()) resolver_->cancel();
  if (was == Phase::kQueued) core_->RemoveWaiter(shard_, pool_key_, this);
  if (holds_slot_) {
    holds_slot_ = false;
    if (reusable && socket_.has_value()) {
      std::optional<tcp::socket> socket(std::move(*socket_));
      socket_.reset();
      core_->Release(shard_, pool_key_, std::move(socket), true);
    } else {
      CloseSocket();  // pending operations complete with operation_aborted
      core_->Release(shard_, pool_key_, std::nullopt, false);
    }
  }
  core_->Unregister(shard_, this);
  Callbacks cb = std::move(cb_);
  cb_ = {};
  if (cb.on_done) cb.on_done(std::move(status));
}

// ---- Timers ----

namespace {

class TimerImpl final : public Timer, public std::enable_shared_from_this<TimerImpl> {
 public:
  explicit TimerImpl(std::shared_ptr<UpstreamClient::Core> core)
      : core_(std::move(core)), strand_(core_->ExecutorOn(core_->PickShard())), timer_(strand_) {}

  void Start(double delay_s, std::function<void()> fn) {
    fn_ = std::move(fn);
    net::post(strand_, [self = shared_from_this(), delay_s] {
      if (self->cancelled_) return self->Done();
      self->timer_.expires_after(
          std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, delay_s) * 1e6)));
      self->timer_.async_wait(
          net::bind_executor(self->strand_, [self](beast::error_code ec) { self->Fire(ec); }));
    });
  }
  void Cancel() override {
    net::post(strand_, [self = shared_from_this()] {
      self->cancelled_ = true;
      self->timer_.cancel();
    });
  }

 private:
  void Fire(beast::error_code ec) {
    std::function<void()> fn = std::move(fn_);
    Done();
    if (!ec && !cancelled_ && fn) fn();
  }
  void Done() {
    fn_ = nullptr;
    std::lock_guard lock(core_->mu);
    core_->timers.erase(this);
  }

  std::shared_ptr<UpstreamClient::Core> core_;
  Executor strand_;
  net::steady_timer timer_;  // on strand_
  std::function<void()> fn_;
  bool cancelled_ = false;  // on strand_
};

}  // namespace

// ---- UpstreamClient ----

UpstreamClient::UpstreamClient(ClientOptions options)
    : core_(std::make_shared<Core>(std::move(options))) {
  net::post(core_->sweep_strand, [core = core_] { core->ScheduleSweep(); });
  if (core_->own_ioc != nullptr) {
    work_guard_ = std::make_shared<net::executor_work_guard<net::io_context::executor_type>>(
        core_->own_ioc->get_executor());
    int n = std::max(1, core_->options.threads);
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([ioc = core_->own_ioc.get()] { ioc->run(); });
    }
  }
}

UpstreamClient::~UpstreamClient() { Shutdown(); }

std::shared_ptr<Exchange> UpstreamClient::Send(const Target& target, UpstreamRequest request,
                                               Callbacks callbacks, Timeouts timeouts) {
  auto ex = std::make_shared<ExchangeImpl>(core_, target, std::move(request), std::move(callbacks),
                                           timeouts);
  Launch(ex);
  return ex;
}

// The callbacks are in place before the exchange is registered: from then on Shutdown may end it.
void UpstreamClient::Launch(const std::shared_ptr<ExchangeImpl>& ex) {
  if (!core_->Register(ex->shard(), ex)) {
    // Never started, never registered: nothing else touches it; end it on this thread.
    ex->Finish(absl::CancelledError("upstream client shut down"));
    return;
  }
  net::post(ex->strand(), [ex] { ex->Start(); });
}

std::shared_ptr<Timer> UpstreamClient::RunAfter(double delay_s, std::function<void()> fn) {
  auto t = std::make_shared<TimerImpl>(core_);
  {
    std::lock_guard lock(core_->mu);
    if (core_->stopping) return t;  // never runs
    core_->timers.emplace(t.get(), t);
  }
  t->Start(delay_s, std::move(fn));
  return t;
}

std::shared_ptr<Exchange> UpstreamClient::Fetch(
    const Target& target, UpstreamRequest request,
    std::function<void(absl::StatusOr<UpstreamResponse>)> done, Timeouts timeouts) {
  auto ex =
      std::make_shared<ExchangeImpl>(core_, target, std::move(request), Callbacks{}, timeouts);
  // The callbacks run inside `ex` (which clears them after on_done): a raw pointer is safe.
  ExchangeImpl* raw = ex.get();
  auto response = std::make_shared<UpstreamResponse>();
  const size_t limit = core_->options.max_buffered_body_bytes;
  Callbacks cb;
  cb.on_head = [response](int status, const Headers& headers) {
    response->status = status;
    response->headers = headers;
  };
  cb.on_data = [response, raw, limit](std::string_view chunk) {
    if (response->status < 0) return;  // over the limit; the exchange is ending
    if (response->body.size() + chunk.size() > limit) {
      response->status = -1;
      // Not Finish() from here: that would destroy this callback while it runs.
      net::post(raw->strand(), [ex = raw->shared_from_this(), limit] {
        ex->Finish(absl::ResourceExhaustedError(
            absl::StrCat("response body larger than ", limit, " bytes")));
      });
      return;
    }
    response->body.append(chunk);
  };
  cb.on_done = [response, done = std::move(done)](absl::Status status) {
    if (!status.ok()) return done(std::move(status));
    done(std::move(*response));
  };
  ex->set_callbacks(std::move(cb));
  Launch(ex);
  return ex;
}

absl::StatusOr<UpstreamResponse> UpstreamClient::Get(const Target& target, const std::string& path,
                                                     double timeout_s) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<UpstreamResponse>>>();
  std::future<absl::StatusOr<UpstreamResponse>> future = promise->get_future();
  UpstreamRequest request;
  request.method = "GET";
  request.target = path;
  std::shared_ptr<Exchange> ex = Fetch(
      target, std::move(request),
      [promise](absl::StatusOr<UpstreamResponse> r) { promise->set_value(std::move(r)); },
      Timeouts{timeout_s, timeout_s, timeout_s});
  // The per-phase timeouts bound every wait but a body trickling in forever; cap the whole call.
  if (future.wait_for(Seconds(3 * timeout_s + 1)) != std::future_status::ready) {
    ex->Cancel();
    future.wait();
    return absl::DeadlineExceededError(
        absl::StrCat("GET ", target.Key(), path, " took longer than ", Fmt(3 * timeout_s + 1)));
  }
  return future.get();
}

PoolStats UpstreamClient::Stats(const Target& target) const {
  PoolStats stats;
  const std::string key = target.Key();
  for (size_t shard = 0; shard < core_->shards.size(); ++shard) {
    Core::Shard& sh = *core_->shards[shard];
    std::lock_guard lock(sh.mu);
    auto it = sh.pools.find(Core::PoolKey(key, shard));
    if (it == sh.pools.end()) continue;
    stats.idle += it->second.idle.size();
    stats.total += it->second.total;
    stats.pending += it->second.waiters.size();
    stats.connects += it->second.connects;
    stats.reuses += it->second.reuses;
  }
  return stats;
}

void UpstreamClient::CloseIdle(const Target& target) {
  const std::string key = target.Key();
  for (size_t shard = 0; shard < core_->shards.size(); ++shard) {
    Core::Shard& sh = *core_->shards[shard];
    std::lock_guard lock(sh.mu);
    auto it = sh.pools.find(Core::PoolKey(key, shard));
    if (it == sh.pools.end()) continue;
    for (Pool::Idle& idle : it->second.idle) {
      beast::error_code ignored;
      idle.socket.close(ignored);
      --it->second.total;
    }
    it->second.idle.clear();
  }
}

void UpstreamClient::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  std::vector<std::shared_ptr<ExchangeImpl>> live;
  std::vector<std::shared_ptr<Timer>> timers;
  {
    std::lock_guard lock(core_->mu);
    core_->stopping = true;
    for (auto& [raw, weak] : core_->timers) {
      if (auto t = weak.lock()) timers.push_back(std::move(t));
    }
  }
  for (auto& shard : core_->shards) {
    std::lock_guard lock(shard->mu);
    shard->stopping = true;
    for (auto& [raw, weak] : shard->live) {
      if (auto ex = weak.lock()) live.push_back(std::move(ex));
    }
    for (auto& [key, pool] : shard->pools) {
      for (Pool::Idle& idle : pool.idle) {
        beast::error_code ignored;
        idle.socket.close(ignored);
        --pool.total;
      }
      pool.idle.clear();
    }
  }
  for (auto& ex : live) {
    net::post(ex->strand(),
              [ex] { ex->Finish(absl::CancelledError("upstream client shutting down")); });
  }
  live.clear();
  for (auto& t : timers) t->Cancel();
  timers.clear();
  net::post(core_->sweep_strand, [core = core_] { core->sweep_timer.cancel(); });
  work_guard_.reset();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  if (!core_->options.io_contexts.empty()) {
    // The caller's io_contexts run the cancellations: wait (bounded) for the exchanges to end, so
    // their callbacks are done when Shutdown returns, as with the client's own threads. Not from
    // one of those threads: that would wait for itself.
    for (net::io_context* ioc : core_->iocs) {
      if (ioc->get_executor().running_in_this_thread() || ioc->stopped()) return;
    }
    const auto end = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < end) {
      if (!core_->AnyLive()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

}  // namespace weft::gateway::upstream
