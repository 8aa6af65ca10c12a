// SPDX-License-Identifier: Apache-2.0
#include "control/reconciler/http_fetch.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace weft::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;

absl::Status SplitHttpUrl(const std::string& url, std::string* host, std::string* port,
                          std::string* target) {
  const std::string kScheme = "http://";
  if (!absl::StartsWith(url, kScheme)) {
    return absl::InvalidArgumentError(absl::StrCat("not an http:// URL: ", url));
  }
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  *target = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos) {
    *host = authority;
    *port = "80";
  } else {
    *host = authority.substr(0, colon);
    *port = authority.substr(colon + 1);
  }
  if (host->empty() || port->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed URL: ", url));
  }
  return absl::OkStatus();
}

absl::StatusOr<FetchResponse> HttpFetch(const FetchRequest& request) {
  std::string host, port, target;
  if (absl::Status s = SplitHttpUrl(request.url, &host, &port, &target); !s.ok()) return s;
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::milliseconds(request.timeout_ms));
    beast::error_code ec;
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", ec.message()));
    // Asynchronous operations on one io_context: beast::tcp_stream's deadline (expires_after)
    // applies to asynchronous operations only; synchronous ones would wait forever on a host
    // that never answers (a blackholed connect, a server that accepts but does not respond).
    auto run = [&io] {
      io.restart();
      io.run();
    };
    stream.async_connect(endpoints, [&ec](beast::error_code e, const auto&) { ec = e; });
    run();
    if (ec) {
      if (ec == beast::error::timeout) return absl::DeadlineExceededError("connect timed out");
      return absl::UnavailableError(absl::StrCat("connect ", host, ":", port, ": ", ec.message()));
    }
    bhttp::request<bhttp::string_body> req;
    req.method_string(request.method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, host);
    req.set(bhttp::field::connection, "close");
    if (!request.bearer_token.empty()) {
      req.set(bhttp::field::authorization, "Bearer " + request.bearer_token);
    }
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      req.set(bhttp::field::content_type, request.content_type);
      req.body() = request.body;
      req.prepare_payload();
    }
    bhttp::async_write(stream, req, [&ec](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec) return absl::UnavailableError(absl::StrCat("write: ", ec.message()));
    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 << 20);
    bhttp::async_read(stream, buffer, parser, [&ec](beast::error_code e, size_t) { ec = e; });
    run();
    if (ec == beast::error::timeout) return absl::DeadlineExceededError("request timed out");
    if (ec) return absl::UnavailableError(absl::StrCat("read: ", ec.message()));
    FetchResponse out;
    out.status = static_cast<int>(parser.get().result_int());
    out.body = std::move(parser.get().body());
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("http: ", e.what()));
  }
}

}  // namespace weft::control
