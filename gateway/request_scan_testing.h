// SPDX-License-Identifier: Apache-2.0
// For request_scan's test and fuzzer: two parsed requests equal in every field (floats bit for
// bit, so 0 and -0 differ). Empty when equal, else the first field that differs.
#pragma once

#include <bit>
#include <cstdint>
#include <optional>
#include <string>

#include "api/openai.h"

namespace weft::gateway::testing {

inline std::string RequestDifference(const api::CompletionRequest& a,
                                     const api::CompletionRequest& b) {
  auto same_float = [](const std::optional<float>& x, const std::optional<float>& y) {
    return x.has_value() == y.has_value() &&
           (!x || std::bit_cast<uint32_t>(*x) == std::bit_cast<uint32_t>(*y));
  };
#define WEFT_SAME(field) \
  if (!(a.field == b.field)) return #field;
#define WEFT_SAME_FLOAT(field) \
  if (!same_float(a.field, b.field)) return #field;
  WEFT_SAME(endpoint)
  WEFT_SAME(model)
  WEFT_SAME(prompt)
  WEFT_SAME(prompt_tokens)
  WEFT_SAME(prompt_is_tokens)
  WEFT_SAME(messages)
  WEFT_SAME(chat_template_kwargs)
  WEFT_SAME(add_generation_prompt)
  WEFT_SAME(tools)
  WEFT_SAME(max_tokens)
  WEFT_SAME_FLOAT(temperature)
  WEFT_SAME_FLOAT(top_p)
  WEFT_SAME(top_k)
  WEFT_SAME_FLOAT(min_p)
  WEFT_SAME_FLOAT(frequency_penalty)
  WEFT_SAME_FLOAT(presence_penalty)
  WEFT_SAME_FLOAT(repetition_penalty)
  WEFT_SAME(logit_bias)
  WEFT_SAME(seed)
  WEFT_SAME(stop)
  WEFT_SAME(n)
  WEFT_SAME(logprobs)
  WEFT_SAME(top_logprobs)
  WEFT_SAME(stream)
  WEFT_SAME(include_usage)
  WEFT_SAME(user)
  WEFT_SAME(ignore_eos)
  WEFT_SAME(min_tokens)
  WEFT_SAME(batch_priority)
  WEFT_SAME(resume_tokens)
  WEFT_SAME(return_token_ids)
#undef WEFT_SAME
#undef WEFT_SAME_FLOAT
  return "";
}

}  // namespace weft::gateway::testing
