// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: parse and render arbitrary templates against a fixed small conversation, under
// tight limits. Any outcome but a crash, a hang or a leak is fine; errors must be InvalidArgument.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/check.h"
#include "engine/tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using weft::tokenizer::ChatTemplate;
  static const auto* ctx = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi \u00e9"},
                 {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                  "function": {"name": "f", "arguments": {"a": 1, "b": [1.5, true]}}}]},
                 {"role": "tool", "content": "{\"r\": 2}"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": true, "n": 3})"));
  const std::string_view src(reinterpret_cast<const char*>(data), size);
  auto tmpl = ChatTemplate::Parse(src);
  if (!tmpl.ok()) {
    WEFT_CHECK(tmpl.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  weft::tokenizer::RenderOptions opt;
  opt.limits.max_output_bytes = 1 << 16;
  opt.limits.max_loop_iterations = 1 << 12;
  opt.limits.max_operations = 1 << 16;
  opt.strftime_now = [](std::string_view) { return std::string("26 Jul 2024"); };
  auto out = tmpl->Render(*ctx, opt);
  if (out.ok()) {
    WEFT_CHECK(static_cast<int64_t>(out->size()) <= opt.limits.max_output_bytes);
  } else {
    WEFT_CHECK(out.status().code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}
