// SPDX-License-Identifier: Apache-2.0
#include "gateway/routing/watch_route_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace weft::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxSnapshotBytes = 64 << 20;

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

auto Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

}  // namespace

// A one-request-at-a-time HTTP client on a private io_context: each Get runs the io_context on
// the calling thread until the exchange ends; Interrupt (any thread) makes it return at once.
struct WatchRouteSource::Client {
  struct Reply {
    int status = 0;
    std::string body;
  };

  asio::io_context ioc;
  std::string host;
  uint16_t port = 0;
  std::atomic<bool> interrupted{false};

  void Interrupt() {
    interrupted = true;
    ioc.stop();
  }

  absl::StatusOr<Reply> Get(const std::string& target, const std::string& bearer,
                            double connect_timeout_s, double timeout_s) {
    ioc.restart();
    if (interrupted) return absl::CancelledError("stopped");
    tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, absl::StrCat(host, ":", port));
    req.set(bhttp::field::user_agent, "weft-gateway");
    req.set(bhttp::field::accept, "application/json");
    if (!bearer.empty()) req.set(bhttp::field::authorization, absl::StrCat("Bearer ", bearer));
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kMaxSnapshotBytes);
    absl::Status result = absl::UnavailableError("watch request did not complete");
    auto fail = [&](const char* what, beast::error_code ec) {
      result = absl::UnavailableError(absl::StrCat(what, ": ", ec.message()));
    };

    resolver.async_resolve(
        host, std::to_string(port), [&](beast::error_code ec, tcp::resolver::results_type results) {
          if (ec) return fail("resolve", ec);
          stream.expires_after(Seconds(connect_timeout_s));
          stream.async_connect(results, [&](beast::error_code ec, const tcp::endpoint&) {
            if (ec) return fail("connect", ec);
            stream.expires_after(Seconds(timeout_s));
            bhttp::async_write(stream, req, [&](beast::error_code ec, size_t) {
              if (ec) return fail("write", ec);
              bhttp::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) {
                if (ec) return fail("read", ec);
                result = absl::OkStatus();
              });
            });
          });
        });
    ioc.run();
    if (interrupted) return absl::CancelledError("stopped");
    if (!result.ok()) return result;
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    Reply reply;
    reply.status = static_cast<int>(parser.get().result_int());
    reply.body = std::move(parser.get().body());
    return reply;
  }
};

WatchRouteSource::WatchRouteSource(WatchRouteSourceOptions options)
    : options_(std::move(options)), client_(std::make_shared<Client>()) {}

WatchRouteSource::~WatchRouteSource() { Stop(); }

absl::Status WatchRouteSource::Start(Callback callback) {
  absl::StatusOr<HostPort> hp = ParseHttpUrl(options_.control_url);
  if (!hp.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("routes.control_url: ", std::string(hp.status().message())));
  }
  if (thread_.joinable()) return absl::FailedPreconditionError("already started");
  client_->host = hp->host;
  client_->port = hp->port;
  callback_ = std::move(callback);
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void WatchRouteSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  client_->Interrupt();
  if (thread_.joinable()) thread_.join();
}

std::string WatchRouteSource::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

int64_t WatchRouteSource::errors() const { return errors_.load(); }
int64_t WatchRouteSource::polls() const { return polls_.load(); }

void WatchRouteSource::Loop() {
  double backoff_s = options_.min_backoff_s;
  std::string version;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    std::string target =
        absl::StrCat(options_.path, "?watch=1&version=", UrlEncode(version),
                     "&timeout_s=", static_cast<int64_t>(std::ceil(options_.watch_timeout_s)));
    absl::StatusOr<Client::Reply> reply = client_->Get(
        target, options_.bearer_token, options_.connect_timeout_s, options_.watch_timeout_s + 5);
    if (reply.ok() && reply->status == 304) {
      ++polls_;
      backoff_s = options_.min_backoff_s;
      continue;
    }
    absl::Status error = reply.status();
    if (reply.ok()) {
      if (reply->status == 200) {
        absl::StatusOr<std::shared_ptr<const RouteTable>> table = RouteTableFromJson(reply->body);
        if (table.ok() && (*table)->version().empty()) {
          table = absl::InvalidArgumentError("route table: a watch snapshot needs a version");
        }
        if (table.ok()) {
          ++polls_;
          backoff_s = options_.min_backoff_s;
          if ((*table)->version() != version) {
            version = (*table)->version();
            {
              std::lock_guard<std::mutex> lock(mu_);
              if (stopping_) return;
              version_ = version;
            }
            callback_(*std::move(table));
          }
          continue;
        }
        error = table.status();
      } else {
        error = absl::UnavailableError(absl::StrCat("control plane answered ", reply->status));
      }
    }
    if (absl::IsCancelled(error)) return;
    ++errors_;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, Seconds(backoff_s), [this] { return stopping_; })) return;
    backoff_s = std::min(backoff_s * 2, options_.max_backoff_s);
  }
}

}  // namespace weft::gateway
