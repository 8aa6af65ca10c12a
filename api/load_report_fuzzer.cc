// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: replica load reports (GET /weft/v1/load answers, which the gateway's load
// poller reads from every replica). Parsing must never crash, throw or convert a number with
// undefined behavior; a report that parses serializes back to JSON that parses to the same report.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/load_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto report = weft::api::ParseLoadReport(body);
  if (!report.ok()) return 0;
  const std::string text = weft::api::LoadReportJson(*report).dump();
  auto back = weft::api::ParseLoadReport(text);
  if (!back.ok() || weft::api::LoadReportJson(*back).dump() != text) std::abort();
  return 0;
}
