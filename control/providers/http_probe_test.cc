// SPDX-License-Identifier: Apache-2.0
#include "control/providers/http_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "base/process.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

// A listening socket on 127.0.0.1; with `reply` set, a thread answers each connection with it.
class RawServer {
 public:
  explicit RawServer(std::string reply = "", int connections = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 8);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (connections > 0) {
      thread_ = std::thread([this, reply, connections] {
        for (int i = 0; i < connections; ++i) {
          const int c = accept(fd_, nullptr, nullptr);
          if (c < 0) return;
          char buf[1024];
          std::string req;
          while (req.find("\r\n\r\n") == std::string::npos) {
            const ssize_t n = read(c, buf, sizeof(buf));
            if (n <= 0) break;
            req.append(buf, static_cast<size_t>(n));
          }
          requests_ += req;
          (void)!write(c, reply.data(), reply.size());
          close(c);
        }
      });
    }
  }
  ~RawServer() {
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string requests() {
    if (thread_.joinable()) thread_.join();
    return requests_;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string requests_;
};

TEST(HttpProbeTest, ReportsTheStatusCode) {
  RawServer ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1);
  absl::StatusOr<int> r = HttpGetStatus("127.0.0.1", ok.port(), "/health", 2000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 200);
  EXPECT_EQ(ok.requests().rfind("GET /health HTTP/1.1\r\n", 0), 0u);

  RawServer busy("HTTP/1.0 503 Service Unavailable\r\n\r\n", 1);
  r = HttpGetStatus("localhost", busy.port(), "/health", 2000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 503);
}

TEST(HttpProbeTest, GarbageIsInternal) {
  RawServer junk("SSH-2.0-OpenSSH\r\n", 1);
  absl::StatusOr<int> r = HttpGetStatus("127.0.0.1", junk.port(), "/health", 2000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal) << r.status();
}

TEST(HttpProbeTest, NothingListeningIsUnavailable) {
  absl::StatusOr<uint16_t> port = FreeLoopbackPort();
  ASSERT_TRUE(port.ok());
  absl::StatusOr<int> r = HttpGetStatus("127.0.0.1", *port, "/health", 2000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(HttpProbeTest, SilentServerTimesOut) {
  RawServer silent;  // the kernel completes the handshake; nobody ever answers
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<int> r = HttpGetStatus("127.0.0.1", silent.port(), "/health", 200);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(took, 0.15);
  EXPECT_LT(took, 2.0);
}

}  // namespace
}  // namespace weft::control
