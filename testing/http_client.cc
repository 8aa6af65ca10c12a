// SPDX-License-Identifier: Apache-2.0
#include "testing/http_client.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace weft::testing {
namespace {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

std::chrono::steady_clock::duration Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}
}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, absl::string_view(name.data(), name.size()))) return v;
  }
  return "";
}

struct HttpClient::Impl {
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  double timeout_s = 10;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  std::string chunk_data;  // streamed body received, not yet returned
  std::function<size_t(uint64_t, std::string_view, beast::error_code&)> on_chunk;

  // Runs one async operation to completion; the stream's expiry bounds it (sync Beast calls
  // would ignore the timeout).
  template <typename Start>
  beast::error_code Run(Start start) {
    beast::error_code result = net::error::operation_aborted;
    start([&result](beast::error_code ec, size_t) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  absl::Status Send(const std::string& method, const std::string& target, const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
    bhttp::request<bhttp::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, "localhost");
    bool has_type = false;
    for (const auto& [k, v] : headers) {
      req.set(k, v);
      if (absl::EqualsIgnoreCase(k, "content-type")) has_type = true;
    }
    if (!body.empty() && !has_type) req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    stream.expires_after(Seconds(timeout_s));
    ec = Run([&](auto h) { bhttp::async_write(stream, req, h); });
    if (ec) return absl::UnavailableError(absl::StrCat("write: ", ec.message()));
    return absl::OkStatus();
  }

  HttpResponse Head() {
    HttpResponse r;
    auto& msg = parser->get();
    r.status = static_cast<int>(msg.result_int());
    for (const auto& f : msg) {
      r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    r.keep_alive = msg.keep_alive();
    return r;
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() { Close(); }

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Connect(const std::string& host,
                                                                uint16_t port, double timeout_s) {
  auto impl = std::make_unique<Impl>();
  impl->timeout_s = timeout_s;
  beast::error_code ec;
  auto address = net::ip::make_address(host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("bad host ", host));
  impl->stream.expires_after(Seconds(timeout_s));
  ec = impl->Run([&](auto h) {
    impl->stream.async_connect(tcp::endpoint(address, port),
                               [h](beast::error_code e) mutable { h(e, 0); });
  });
  if (ec) return absl::UnavailableError(absl::StrCat("connect: ", ec.message()));
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

absl::StatusOr<HttpResponse> HttpClient::Request(
    const std::string& method, const std::string& target, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (absl::Status s = impl_->Send(method, target, body, headers); !s.ok()) return s;
  impl_->parser.emplace();
  impl_->parser->body_limit(1ull << 30);
  if (method == "HEAD") impl_->parser->skip(true);
  beast::error_code ec;
  impl_->stream.expires_after(Seconds(impl_->timeout_s));
  ec = impl_->Run(
      [&](auto h) { bhttp::async_read(impl_->stream, impl_->buffer, *impl_->parser, h); });
  if (ec) return absl::UnavailableError(absl::StrCat("read: ", ec.message()));
  HttpResponse r = impl_->Head();
  r.body = std::move(impl_->parser->get().body());
  impl_->parser.reset();
  return r;
}

absl::StatusOr<HttpResponse> HttpClient::StartStream(
    const std::string& method, const std::string& target, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  if (absl::Status s = impl_->Send(method, target, body, headers); !s.ok()) return s;
  impl_->parser.emplace();
  impl_->parser->body_limit(1ull << 30);
  impl_->chunk_data.clear();
  impl_->on_chunk = [this](uint64_t, std::string_view data, beast::error_code&) {
    impl_->chunk_data.append(data);
    return data.size();
  };
  impl_->parser->on_chunk_body(impl_->on_chunk);
  beast::error_code ec;
  impl_->stream.expires_after(Seconds(impl_->timeout_s));
  ec = impl_->Run(
      [&](auto h) { bhttp::async_read_header(impl_->stream, impl_->buffer, *impl_->parser, h); });
  if (ec) return absl::UnavailableError(absl::StrCat("read header: ", ec.message()));
  return impl_->Head();
}

absl::StatusOr<std::optional<std::string>> HttpClient::NextEvent() {
  if (!impl_->parser) return absl::FailedPreconditionError("no stream");
  while (true) {
    std::string& data = impl_->chunk_data;
    size_t end = data.find("\n\n");
    if (end != std::string::npos) {
      std::string event = data.substr(0, end);
      data.erase(0, end + 2);
      std::string payload;
      size_t pos = 0;
      bool any = false;
      while (pos <= event.size()) {
        size_t nl = event.find('\n', pos);
        std::string_view line(event.data() + pos,
                              (nl == std::string::npos ? event.size() : nl) - pos);
        if (line.starts_with("data:")) {
          line.remove_prefix(5);
          if (line.starts_with(" ")) line.remove_prefix(1);
          if (any) payload += '\n';
          payload.append(line);
          any = true;
        }
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
      if (!any) continue;  // comment or other fields only
      return std::optional<std::string>(std::move(payload));
    }
    if (impl_->parser->is_done()) {
      // A non-chunked body (an error answer) arrives whole.
      std::string& body = impl_->parser->get().body();
      if (!body.empty()) {
        data += body;
        body.clear();
        if (data.find("\n\n") == std::string::npos) data += "\n\n";
        continue;
      }
      impl_->parser.reset();
      return std::optional<std::string>();
    }
    beast::error_code ec;
    impl_->stream.expires_after(Seconds(impl_->timeout_s));
    ec = impl_->Run(
        [&](auto h) { bhttp::async_read_some(impl_->stream, impl_->buffer, *impl_->parser, h); });
    if (ec) return absl::UnavailableError(absl::StrCat("read: ", ec.message()));
  }
}

absl::StatusOr<std::string> HttpClient::ReadRestOfStream() {
  if (!impl_->parser) return absl::FailedPreconditionError("no stream");
  while (!impl_->parser->is_done()) {
    beast::error_code ec;
    impl_->stream.expires_after(Seconds(impl_->timeout_s));
    ec = impl_->Run(
        [&](auto h) { bhttp::async_read_some(impl_->stream, impl_->buffer, *impl_->parser, h); });
    if (ec) return absl::UnavailableError(absl::StrCat("read: ", ec.message()));
  }
  std::string out = std::move(impl_->chunk_data);
  out += impl_->parser->get().body();
  impl_->parser.reset();
  impl_->chunk_data.clear();
  return out;
}

absl::Status HttpClient::Send(const std::string& method, const std::string& target,
                              const std::string& body) {
  return impl_->Send(method, target, body, {});
}

absl::Status HttpClient::SendRaw(const std::string& bytes) {
  impl_->stream.expires_after(Seconds(impl_->timeout_s));
  beast::error_code ec =
      impl_->Run([&](auto h) { net::async_write(impl_->stream, net::buffer(bytes), h); });
  if (ec) return absl::UnavailableError(absl::StrCat("write: ", ec.message()));
  return absl::OkStatus();
}

void HttpClient::Close() {
  beast::error_code ignored;
  impl_->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  impl_->stream.close();
}

bool HttpClient::ServerClosed(double wait_s) {
  char byte;
  beast::error_code ec;
  impl_->stream.expires_after(Seconds(wait_s));
  ec = impl_->Run([&](auto h) { impl_->stream.async_read_some(net::buffer(&byte, 1), h); });
  return ec == net::error::eof || ec == net::error::connection_reset;
}

}  // namespace weft::testing
