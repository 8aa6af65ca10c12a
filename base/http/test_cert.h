// SPDX-License-Identifier: Apache-2.0
// TestCert: a self-signed certificate for "localhost" / 127.0.0.1 and its key, made at run time
// with OpenSSL's C API (EC P-256, fast) for TLS tests and benchmarks; nothing is committed to disk.
// Free functions, no shared state: any thread.
#pragma once

#include <string>

namespace weft::http {

struct TestCert {
  std::string cert_pem;  // X.509, valid from an hour ago for a day, SAN localhost + 127.0.0.1
  std::string key_pem;   // its private key (PKCS#8, unencrypted)
};

// A fresh certificate and key; empty strings if OpenSSL fails.
TestCert MakeTestCert();
// A fresh private key that matches no certificate (for mismatch tests).
std::string MakeTestKeyPem();

}  // namespace weft::http
