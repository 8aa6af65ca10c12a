// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: OpenAI request bodies (both endpoints). Parsing must never crash or throw;
// a parsed request must serialize back without throwing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "api/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  for (auto endpoint : {weft::api::Endpoint::kCompletions, weft::api::Endpoint::kChatCompletions}) {
    auto req = weft::api::ParseCompletionRequest(body, endpoint);
    if (!req.ok()) {
      weft::api::ErrorJson(weft::api::ErrorFromStatus(req.status()));
      continue;
    }
    weft::api::ResponseHead head{endpoint, "id", 0, req->model};
    weft::api::Choice choice;
    choice.text = req->prompt;
    for (const auto& m : req->messages) choice.text += m["content"].get<std::string>();
    weft::api::Dump(weft::api::ResponseJson(head, {choice}, {}));
    weft::api::SseEvent(weft::api::ChunkJson(head, choice, true, req->include_usage));
  }
  return 0;
}
