// SPDX-License-Identifier: Apache-2.0
#include "testing/fault_proxy.h"

#include <array>
#include <atomic>
#include <future>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"

namespace weft::testing {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

enum class Mode { kPass, kResetAfterBytes, kStall, kRefuse };

constexpr size_t kPumpBytes = 16 << 10;

// Closes with an RST instead of a FIN: SO_LINGER on with a zero timeout.
void AbortSocket(tcp::socket& s) {
  error_code ignored;
  if (!s.is_open()) return;
  s.set_option(net::socket_base::linger(true, 0), ignored);
  s.close(ignored);
}

}  // namespace

class Session;

// Everything below runs on the proxy's single I/O thread, except the atomics.
struct FaultProxy::Impl {
  FaultProxyOptions options;
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  uint16_t port = 0;

  Mode mode = Mode::kPass;
  uint64_t reset_after = 0;
  std::unordered_map<Session*, std::shared_ptr<Session>> sessions;

  std::atomic<uint64_t> connections{0};
  std::atomic<size_t> open{0};
  std::atomic<uint64_t> bytes_to_client{0};
  std::atomic<uint64_t> bytes_to_upstream{0};
  std::atomic<uint64_t> resets{0};

  void Accept();
  void Remove(Session* s);
  // A copy: what `fn` does may remove sessions from the map.
  std::vector<std::shared_ptr<Session>> Snapshot() const {
    std::vector<std::shared_ptr<Session>> all;
    for (const auto& [raw, s] : sessions) all.push_back(s);
    return all;
  }
  // Runs `fn` on the I/O thread and waits for it.
  template <typename F>
  void Apply(F fn) {
    std::promise<void> done;
    net::post(ioc, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
};

// One proxied connection: two pumps (client -> upstream, upstream -> client).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(FaultProxy::Impl* proxy, tcp::socket client)
      : proxy_(proxy), client_(std::move(client)), upstream_(proxy->ioc) {}

  uint64_t budget = 0;  // bytes upstream -> client left before a reset (kResetAfterBytes)

  void Start() {
    error_code ec;
    auto address = net::ip::make_address(proxy_->options.target_host, ec);
    if (ec) return Reset(false);
    upstream_.async_connect(tcp::endpoint(address, proxy_->options.target_port),
                            [self = shared_from_this()](error_code ec) {
                              if (self->closed_) return;
                              if (ec) return self->Reset(false);
                              error_code ignored;
                              self->upstream_.set_option(tcp::no_delay(true), ignored);
                              self->client_.set_option(tcp::no_delay(true), ignored);
                              self->connected_ = true;
                              self->Read(0);
                              self->Read(1);
                            });
  }

  // After a mode change: parked pumps try again.
  void Resume() {
    if (!connected_ || closed_) return;
    for (int d = 0; d < 2; ++d) {
      if (pumps_[d].parked) {
        pumps_[d].parked = false;
        Forward(d);
      }
    }
  }

  // RST both sides. `count`: a fault (counted in resets), not the end of a broken connection.
  void Reset(bool count) {
    if (closed_) return;
    closed_ = true;
    if (count) ++proxy_->resets;
    AbortSocket(client_);
    AbortSocket(upstream_);
    proxy_->Remove(this);
  }

 private:
  // Direction 0: client -> upstream; 1: upstream -> client.
  struct Pump {
    std::array<char, kPumpBytes> buf;
    size_t pending = 0;  // bytes read, not yet written
    bool eof = false;    // the source ended (after `pending`)
    bool parked = false;
    bool done = false;
  };
  tcp::socket& Src(int d) { return d == 0 ? client_ : upstream_; }
  tcp::socket& Dst(int d) { return d == 0 ? upstream_ : client_; }

  void Read(int d) {
    Src(d).async_read_some(net::buffer(pumps_[d].buf),
                           [self = shared_from_this(), d](error_code ec, size_t n) {
                             if (self->closed_) return;
                             Pump& p = self->pumps_[d];
                             if (ec == net::error::eof) {
                               p.eof = true;
                             } else if (ec) {
                               return self->Reset(false);  // a reset or error: pass it on as RST
                             }
                             p.pending = n;
                             self->Forward(d);
                           });
  }

  void Forward(int d) {
    Pump& p = pumps_[d];
    const Mode mode = proxy_->mode;
    if (mode == Mode::kStall) {
      p.parked = true;
      return;
    }
    if (p.pending == 0) {
      if (p.eof) return EndOfDirection(d);
      return Read(d);
    }
    size_t n = p.pending;
    bool reset_after = false;
    if (d == 1 && mode == Mode::kResetAfterBytes) {
      if (budget == 0) return Reset(true);
      if (n >= budget) {
        n = budget;
        reset_after = true;
      }
    }
    // Counted when handed to the socket (a loopback write completes at once), so that a test that
    // has read the bytes sees them counted.
    (d == 1 ? proxy_->bytes_to_client : proxy_->bytes_to_upstream) += n;
    if (d == 1 && mode == Mode::kResetAfterBytes) budget -= n;
    net::async_write(Dst(d), net::buffer(p.buf.data(), n),
                     [self = shared_from_this(), d, reset_after](error_code ec, size_t) {
                       if (self->closed_) return;
                       if (ec) return self->Reset(false);
                       Pump& p = self->pumps_[d];
                       if (reset_after) return self->Reset(true);
                       p.pending = 0;
                       if (p.eof) return self->EndOfDirection(d);
                       self->Forward(d);
                     });
  }

  void EndOfDirection(int d) {
    Pump& p = pumps_[d];
    if (p.done) return;
    p.done = true;
    error_code ignored;
    Dst(d).shutdown(tcp::socket::shutdown_send, ignored);
    if (pumps_[0].done && pumps_[1].done) {
      closed_ = true;
      client_.close(ignored);
      upstream_.close(ignored);
      proxy_->Remove(this);
    }
  }

  FaultProxy::Impl* proxy_;
  tcp::socket client_;
  tcp::socket upstream_;
  std::array<Pump, 2> pumps_;
  bool connected_ = false;
  bool closed_ = false;
};

void FaultProxy::Impl::Remove(Session* s) {
  auto it = sessions.find(s);
  if (it == sessions.end()) return;
  --open;
  // Destroy later: `s` is running a member function now.
  std::shared_ptr<Session> keep = std::move(it->second);
  sessions.erase(it);
  net::post(ioc, [keep = std::move(keep)] {});
}

void FaultProxy::Impl::Accept() {
  acceptor.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      ++connections;
      if (mode == Mode::kRefuse) {
        ++resets;
        AbortSocket(socket);
      } else {
        auto s = std::make_shared<Session>(this, std::move(socket));
        s->budget = reset_after;
        sessions.emplace(s.get(), s);
        ++open;
        s->Start();
      }
    }
    Accept();
  });
}

FaultProxy::FaultProxy(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(FaultProxyOptions options) {
  auto impl = std::make_shared<Impl>();
  impl->options = std::move(options);
  error_code ec;
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), impl->options.listen_port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("fault proxy: listen: ", ec.message()));
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  impl->thread = std::thread([raw = impl.get()] { raw->ioc.run(); });
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(impl)));
}

FaultProxy::~FaultProxy() {
  impl_->Apply([impl = impl_.get()] {
    error_code ignored;
    impl->acceptor.close(ignored);
    for (auto& s : impl->Snapshot()) s->Reset(false);
  });
  impl_->ioc.stop();
  impl_->thread.join();
}

uint16_t FaultProxy::port() const { return impl_->port; }

void FaultProxy::Pass() {
  impl_->Apply([impl = impl_.get()] {
    impl->mode = Mode::kPass;
    for (auto& s : impl->Snapshot()) s->Resume();
  });
}

void FaultProxy::ResetAfterBytes(uint64_t n) {
  impl_->Apply([impl = impl_.get(), n] {
    impl->mode = Mode::kResetAfterBytes;
    impl->reset_after = n;
    for (auto& s : impl->Snapshot()) {
      s->budget = n;
      s->Resume();
    }
  });
}

void FaultProxy::Stall() {
  impl_->Apply([impl = impl_.get()] { impl->mode = Mode::kStall; });
}

void FaultProxy::Refuse() {
  impl_->Apply([impl = impl_.get()] {
    impl->mode = Mode::kRefuse;
    for (auto& s : impl->Snapshot()) s->Resume();
  });
}

void FaultProxy::ResetAll() {
  impl_->Apply([impl = impl_.get()] {
    for (auto& s : impl->Snapshot()) s->Reset(true);
  });
}

uint64_t FaultProxy::connections() const { return impl_->connections.load(); }
size_t FaultProxy::open_connections() const { return impl_->open.load(); }
uint64_t FaultProxy::bytes_to_client() const { return impl_->bytes_to_client.load(); }
uint64_t FaultProxy::bytes_to_upstream() const { return impl_->bytes_to_upstream.load(); }
uint64_t FaultProxy::resets() const { return impl_->resets.load(); }

}  // namespace weft::testing
