// SPDX-License-Identifier: Apache-2.0
// HttpClient: a small blocking HTTP/1.1 client over one keep-alive connection (Boost.Beast), for
// tests of the engine server and the gateway: plain requests, and streamed responses read event by
// event (SSE over chunked encoding). One thread at a time; every operation has a timeout.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace weft::testing {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;  // the server did not say Connection: close

  std::string Header(std::string_view name) const;  // case-insensitive; "" if absent
};

class HttpClient {
 public:
  // Connects to host:port. Unavailable if nothing listens.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Connect(const std::string& host, uint16_t port,
                                                             double timeout_s = 10);
  ~HttpClient();

  // One request and its whole response on this connection (reused across calls while the server
  // keeps it alive). `body` non-empty: sent with Content-Type application/json unless `headers`
  // says otherwise.
  absl::StatusOr<HttpResponse> Request(
      const std::string& method, const std::string& target, const std::string& body = "",
      const std::vector<std::pair<std::string, std::string>>& headers = {});

  // Streaming: sends a request and reads the response head only (status + headers; body empty).
  absl::StatusOr<HttpResponse> StartStream(
      const std::string& method, const std::string& target, const std::string& body = "",
      const std::vector<std::pair<std::string, std::string>>& headers = {});
  // The next SSE event's data (the text after "data: ", joined over data lines) of the streamed
  // body, or nullopt once the body has ended. Reads as little as it can (one event at a time).
  absl::StatusOr<std::optional<std::string>> NextEvent();
  // The rest of the streamed body, raw (chunk framing removed).
  absl::StatusOr<std::string> ReadRestOfStream();

  // Only sends a request (its response is left unread), e.g. to walk away while it runs.
  absl::Status Send(const std::string& method, const std::string& target,
                    const std::string& body = "");

  // Writes raw bytes (malformed or partial requests).
  absl::Status SendRaw(const std::string& bytes);

  // Closes the connection at once (a client that goes away).
  void Close();
  // True once the server closed the connection (EOF seen on a read of ~timeout).
  bool ServerClosed(double wait_s = 2);

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft::testing
