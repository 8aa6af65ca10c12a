// SPDX-License-Identifier: Apache-2.0
#include "control/providers/http_probe.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace weft::control {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Milliseconds left before `deadline`, at least 0.
int LeftMs(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline: OK, or DeadlineExceeded.
absl::Status WaitFor(int fd, short events, Clock::time_point deadline, const std::string& what) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, LeftMs(deadline));
    if (n > 0) return absl::OkStatus();
    if (n == 0) return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
    if (errno != EINTR) return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
  }
}

}  // namespace

absl::StatusOr<int> HttpGetStatus(const std::string& host, uint16_t port, const std::string& path,
                                  int timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string where = absl::StrCat(host, ":", port, path);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(absl::StrCat(where, ": resolve: ", gai_strerror(rc)));
  }
  Fd fd(socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    freeaddrinfo(res);
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  const int c = connect(fd.get(), res->ai_addr, res->ai_addrlen);
  const int connect_errno = errno;
  freeaddrinfo(res);
  if (c != 0 && connect_errno != EINPROGRESS) {
    return absl::UnavailableError(absl::StrCat(where, ": connect: ", std::strerror(connect_errno)));
  }
  if (c != 0) {
    if (absl::Status s = WaitFor(fd.get(), POLLOUT, deadline, where); !s.ok()) return s;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return absl::UnavailableError(absl::StrCat(where, ": connect: ", std::strerror(err)));
    }
  }
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host, ":", port,
                                           "\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (absl::Status s = WaitFor(fd.get(), POLLOUT, deadline, where); !s.ok()) return s;
    } else {
      return absl::UnavailableError(absl::StrCat(where, ": send: ", std::strerror(errno)));
    }
  }
  // Only the status line matters: "HTTP/1.1 200 OK\r\n".
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 1024) {
    char buf[256];
    const ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status s = WaitFor(fd.get(), POLLIN, deadline, where); !s.ok()) return s;
    } else {
      return absl::UnavailableError(absl::StrCat(where, ": recv: ", std::strerror(errno)));
    }
  }
  int code = 0;
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0 ||
      !absl::SimpleAtoi(head.substr(9, 3), &code)) {
    return absl::InternalError(absl::StrCat(where, ": not an HTTP reply"));
  }
  return code;
}

}  // namespace weft::control
