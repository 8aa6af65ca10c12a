// SPDX-License-Identifier: Apache-2.0
#include "engine/model/arch/llama.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace weft::model {

namespace {
constexpr int kBlockSize = 16;
}

absl::StatusOr<std::unique_ptr<LlamaForward>> LlamaForward::Create(const Model& model,
                                                                   const ForwardOptions& options) {
  if (options.n_batch <= 0) return absl::InvalidArgumentError("n_batch must be positive");
  auto f = std::make_unique<LlamaForward>();
  // Default as llama.cpp: the trained context, at least 512 (tiny models declare less than their
  // tests run) and at most 4096 (a 128K-context model would otherwise reserve gigabytes of KV).
  f->n_ctx_ = options.n_ctx > 0 ? options.n_ctx : std::clamp(model.config.max_ctx, 512, 4096);
  f->n_batch_ = std::min(options.n_batch, f->n_ctx_);
  const int n_blocks = (f->n_ctx_ + kBlockSize - 1) / kBlockSize;
  BatchForwardOptions bo;
  bo.n_blocks = n_blocks;
  bo.block_size = kBlockSize;
  bo.max_batch_tokens = f->n_batch_;
  bo.n_threads = options.n_threads;
  bo.isa = options.isa;
  auto batch = BatchForward::Create(model, bo);
  if (!batch.ok()) return batch.status();
  f->batch_ = *std::move(batch);
  f->block_table_.resize(n_blocks);
  for (int i = 0; i < n_blocks; ++i) f->block_table_[i] = i;
  return f;
}

absl::StatusOr<std::span<const float>> LlamaForward::Forward(std::span<const int32_t> tokens,
                                                             bool all_logits) {
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens to run");
  if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx_) {
    return absl::InvalidArgumentError(absl::StrCat("context overflow: ", n_past_, " + ",
                                                   tokens.size(), " tokens > n_ctx ", n_ctx_));
  }
  const int64_t vocab = config().vocab_size;
  if (all_logits) all_logits_.resize(tokens.size() * vocab);
  std::span<const float> last;
  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min<size_t>(n_batch_, tokens.size() - done);
    chunks_.clear();
    if (all_logits) {
      // One chunk per token: every chunk's K/V is written before any attends, so chunk i sees
      // positions up to its own, and each yields its logits.
      for (size_t i = 0; i < n; ++i) {
        chunks_.push_back({tokens.subspan(done + i, 1), n_past_ + static_cast<int32_t>(i),
                           block_table_, true, -1});
      }
    } else {
      chunks_.push_back(
          {tokens.subspan(done, n), n_past_, block_table_, done + n == tokens.size(), -1});
    }
    auto out = batch_->Forward(chunks_);
    if (!out.ok()) return out.status();
    if (all_logits) std::copy(out->begin(), out->end(), all_logits_.begin() + done * vocab);
    last = *out;
    n_past_ += static_cast<int>(n);
    done += n;
  }
  if (all_logits) return std::span<const float>(all_logits_);
  return last;
}

}  // namespace weft::model
