// SPDX-License-Identifier: Apache-2.0
// ChatTemplate: a Jinja2 subset engine for HF `tokenizer.chat_template`s, rendering as Python
// Jinja2 3.1 does in HF transformers' environment (trim_blocks, lstrip_blocks, loopcontrols,
// `generation` blocks, raise_exception, strftime_now, non-HTML-escaping tojson). A parsed
// ChatTemplate is immutable and cheap to copy; Render may run on many threads at once. Parse once
// per model (~0.3 ms); hostile templates and inputs are bounded by ChatTemplateLimits.
// Not supported (clear InvalidArgument): extends/include/import, call blocks, recursive loops,
// macro varargs/kwargs/caller, integers beyond 64 bits, str % formatting (the |format filter is).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace weft::tokenizer {

namespace jinja {
struct TemplateNode;  // the parsed program (chat_template.cc)
}

// Resource bounds for one Render. A template that exceeds one fails with InvalidArgument.
struct ChatTemplateLimits {
  int64_t max_output_bytes = 16 << 20;    // rendered text, and any single string value
  int64_t max_loop_iterations = 1 << 20;  // all loop iterations of one render together
  int64_t max_operations = 50'000'000;    // expression evaluations, a bound on CPU time
  int max_call_depth = 32;                // nested macro calls
};

// How `|tojson` serializes. kTransformers (default) is what HF transformers installs over
// Jinja's filter and what chat templates are written against: json.dumps(x, ensure_ascii=False,
// sort_keys=False) with no HTML escaping, key order preserved. kJinja2 is plain Jinja2 3.1:
// sort_keys=True, ensure_ascii=True, and <, >, &, ' written as \u003c \u003e \u0026 \u0027.
enum class TojsonStyle { kTransformers, kJinja2 };

struct RenderOptions {
  ChatTemplateLimits limits;
  TojsonStyle tojson = TojsonStyle::kTransformers;
  // strftime_now(fmt) global; empty = the current local time formatted with strftime.
  std::function<std::string(std::string_view fmt)> strftime_now;
};

class ChatTemplate {
 public:
  // Parses `source`. Errors are InvalidArgument naming the line ("line 3: unexpected 'endif'").
  static absl::StatusOr<ChatTemplate> Parse(std::string_view source);

  // Renders with `context` (a JSON object) as the template's variables; the globals range, dict,
  // namespace, raise_exception and strftime_now are always there. Errors (raise_exception's
  // message verbatim, type errors, undefined errors, limits) are InvalidArgument.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context,
                                     const RenderOptions& options = {}) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const jinja::TemplateNode> root) : root_(std::move(root)) {}
  std::shared_ptr<const jinja::TemplateNode> root_;
};

struct ChatTemplateOptions {
  std::string bos_token;
  std::string eos_token;
  bool add_generation_prompt = true;
  nlohmann::ordered_json tools;  // null = not passed (the template sees `tools` undefined)
  nlohmann::ordered_json extra_vars = nlohmann::ordered_json::object();  // e.g. enable_thinking
  RenderOptions render;
};

// Renders `messages` (a JSON array of {"role", "content", ...}) with bos_token, eos_token,
// add_generation_prompt, tools (when not null) and every key of extra_vars as variables.
absl::StatusOr<std::string> RenderChat(const ChatTemplate& tmpl,
                                       const nlohmann::ordered_json& messages,
                                       const ChatTemplateOptions& options);

// The template for models without one: ChatML, i.e. for each message
// "<|im_start|>{role}\n{content}<|im_end|>\n", then "<|im_start|>assistant\n" when
// add_generation_prompt. Content that is a list of parts renders the text parts concatenated.
std::string_view DefaultChatTemplate();

}  // namespace weft::tokenizer
