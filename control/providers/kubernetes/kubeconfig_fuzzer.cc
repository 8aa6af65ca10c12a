// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: ParseKubeconfig on arbitrary bytes must return a value, never crash, hang or
// read files (read_files = false).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "control/providers/kubernetes/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  weft::control::KubeconfigParseOptions o;
  o.read_files = false;
  (void)weft::control::ParseKubeconfig(std::string_view(reinterpret_cast<const char*>(data), size),
                                       o);
  o.context = "other";
  (void)weft::control::ParseKubeconfig(std::string_view(reinterpret_cast<const char*>(data), size),
                                       o);
  return 0;
}
