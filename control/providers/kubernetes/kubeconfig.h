// SPDX-License-Identifier: Apache-2.0
// Kubeconfig: the cluster and credentials of one kubeconfig context (the file `kubectl` reads),
// parsed with yaml-cpp: current-context (or a named one) -> cluster server, certificate authority,
// insecure-skip-tls-verify -> user bearer token (token / tokenFile) or client certificate and key
// (*-data inline as base64, or files relative to the kubeconfig's folder). Free functions; no
// shared state; any thread. Exec and auth-provider plugins are refused (they run programs).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace weft::control {

struct Kubeconfig {
  std::string context;         // the context used
  std::string cluster;         // its cluster's name
  std::string user;            // its user's name
  std::string server;          // API server URL, "https://host:6443"
  std::string namespace_name;  // the context's namespace; "" when unset
  std::string ca_pem;          // certificate authority, PEM; "" = the system's CAs
  bool insecure_skip_tls_verify = false;
  std::string token;            // bearer token; "" when the user has none
  std::string client_cert_pem;  // client certificate, PEM; "" when none
  std::string client_key_pem;   // its private key, PEM
};

struct KubeconfigParseOptions {
  std::string context;     // "" = the file's current-context
  std::string base_dir;    // relative file paths resolve against this ("" = the working directory)
  bool read_files = true;  // false: fields naming files are refused (the fuzzer sets this)
};

// Parses kubeconfig YAML. InvalidArgument naming the field on any problem, e.g.
// "kubeconfig: users[name=admin].user.client-key-data: not valid base64"; NotFound naming the field
// when a referenced file cannot be read.
absl::StatusOr<Kubeconfig> ParseKubeconfig(std::string_view yaml,
                                           const KubeconfigParseOptions& options = {});

// Reads and parses the kubeconfig at `path` (relative files resolve against its folder). `context`
// "" = its current-context. NotFound when the file cannot be read.
absl::StatusOr<Kubeconfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

}  // namespace weft::control
