// SPDX-License-Identifier: Apache-2.0
// Fuzzes what the gateway reads of replicas' answers (upstream bytes are untrusted):
//  - the SSE splitter: arbitrary bytes fed in arbitrary pieces must never crash, and feeding in
//    pieces equals feeding at once;
//  - ScanAnswer (a hand-written scanner): never crashes, and agrees with a parsed document
//    (nlohmann DOM, the reference) on whether the bytes are valid JSON and one object, on the
//    model check and on every non-negative integer usage count;
//  - ScanCompletionRequest (the request fast path): never crashes, and whatever body it takes the
//    parser (nlohmann DOM + ParseCompletionRequestJson) takes too, with every field the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "api/openai.h"
#include "gateway/answer_scan.h"
#include "gateway/request_scan.h"
#include "gateway/request_scan_testing.h"
#include "gateway/sse.h"
#include "nlohmann/json.hpp"

namespace {

using json = nlohmann::ordered_json;

// The count a parsed document holds at `j[key]`, as ScanAnswer defines it (0 unless a
// non-negative integer).
int64_t Count(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return 0;
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    return v > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(v);
  }
  if (it->is_number_integer() && it->get<int64_t>() >= 0) return it->get<int64_t>();
  return 0;
}

void CheckScan(const std::string& s) {
  const std::string model = "m";
  std::optional<weft::gateway::AnswerFacts> f = weft::gateway::ScanAnswer(s, model);
  const json j = json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    if (f.has_value()) std::abort();  // invalid JSON: both reject
    return;
  }
  if (f.has_value() != j.is_object()) std::abort();
  if (!f.has_value()) return;
  auto m = j.find("model");
  const bool matches =
      m == j.end() || (m->is_string() && m->get_ref<const std::string&>() == model);
  if (f->model_matches != matches) std::abort();
  auto u = j.find("usage");
  const bool has_usage = u != j.end() && u->is_object();
  if (f->has_usage != has_usage) std::abort();
  if (!has_usage) return;
  if (f->prompt_tokens != Count(*u, "prompt_tokens")) std::abort();
  if (f->completion_tokens != Count(*u, "completion_tokens")) std::abort();
  auto d = u->find("prompt_tokens_details");
  const int64_t cached = d != u->end() && d->is_object() ? Count(*d, "cached_tokens") : 0;
  if (f->cached_tokens != cached) std::abort();
}

void CheckRequest(const std::string& s) {
  std::optional<weft::api::CompletionRequest> fast = weft::gateway::ScanCompletionRequest(s);
  if (!fast.has_value()) return;
  const json j = json::parse(s, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) std::abort();
  auto ref = weft::api::ParseCompletionRequestJson(j, weft::api::Endpoint::kCompletions);
  if (!ref.ok()) std::abort();
  if (!weft::gateway::testing::RequestDifference(*fast, *ref).empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t cut = data[0] % size;
  const std::string s(reinterpret_cast<const char*>(data) + 1, size - 1);
  weft::gateway::SseSplitter whole(1 << 12), pieces(1 << 12);
  std::vector<std::string> a, b;
  const bool ok_whole = whole.Feed(s, &a);
  bool ok_pieces = pieces.Feed(s.substr(0, std::min(cut, s.size())), &b);
  ok_pieces = pieces.Feed(s.substr(std::min(cut, s.size())), &b) && ok_pieces;
  if (ok_whole && ok_pieces && a != b) std::abort();
  CheckScan(s);
  CheckRequest(s);
  for (const std::string& event : a) CheckScan(event);
  return 0;
}
