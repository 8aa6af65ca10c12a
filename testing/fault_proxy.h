// SPDX-License-Identifier: Apache-2.0
// FaultProxy: an in-process TCP proxy on loopback for tests. It forwards each accepted connection
// to a target host:port and injects faults switched at run time: pass, reset after N bytes, stall,
// refuse, reset everything now. Owns one I/O thread; every method may be called from any thread
// but that one, and a fault setter returns once the proxy applies it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace weft::testing {

struct FaultProxyOptions {
  std::string target_host = "127.0.0.1";  // an IP literal
  uint16_t target_port = 0;
  uint16_t listen_port = 0;  // on 127.0.0.1; 0 = ephemeral (see port())
};

class FaultProxy {
 public:
  // Binds, listens and starts forwarding (in Pass mode). Fails if the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(FaultProxyOptions options);
  ~FaultProxy();  // closes every connection and joins the thread
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  uint16_t port() const;

  // Forward everything both ways (again: data held by Stall flows on).
  void Pass();
  // Each connection, open now or accepted later, is reset (RST on both sides, SO_LINGER 0) once it
  // has forwarded `n` more bytes upstream -> client (counted from this call or from its accept);
  // exactly those n bytes are forwarded before the reset. Client -> upstream flows freely.
  void ResetAfterBytes(uint64_t n);
  // Forward nothing, either way, on any connection (new ones are accepted and connected upstream
  // but stay silent); the sockets stay open. Pass() resumes.
  void Stall();
  // New connections are accepted and reset at once; open ones keep their mode of Pass.
  void Refuse();
  // Resets every open connection now (both sides); the mode stays as it is.
  void ResetAll();

  uint64_t connections() const;      // accepted so far, refused ones included
  size_t open_connections() const;   // proxied now
  uint64_t bytes_to_client() const;  // forwarded upstream -> client
  uint64_t bytes_to_upstream() const;
  uint64_t resets() const;  // connections reset by ResetAfterBytes, ResetAll or Refuse

  struct Impl;

 private:
  explicit FaultProxy(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace weft::testing
