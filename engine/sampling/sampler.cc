// SPDX-License-Identifier: Apache-2.0
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/check.h"

namespace weft::sampling {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Below this, 1 / T overflows the logit scale: treat as greedy (which it is in the limit).
constexpr float kMinTemperature = 1e-6f;

// Strict weak order "a comes before b": larger logit first, then lower id.
inline bool Better(const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// True for a usable logit (finite or +inf); false for -inf and NaN.
inline bool Live(float x) { return x > kNegInf; }

// e^x for x <= 0 (0 below -87 and for NaN), within ~2 ulp. Plain IEEE float
// arithmetic with contraction off (-std=c++20), so every machine computes the same bits, unlike
// libm's expf; branch-free so loops over the vocabulary vectorize. Cody-Waite range reduction
// x = n ln2 + r, |r| <= ln2 / 2, then a degree-6 Taylor polynomial for e^r.
inline float FastExp(float x) {
  const float xc = x > -87.0f ? x : -87.0f;
  // Round xc / ln2 to the nearest integer with the 1.5 * 2^23 trick (no SSE4.1 round needed).
  constexpr float kShift = 12582912.0f;
  const float t = xc * 1.44269504088896341f + kShift;
  const float n = t - kShift;
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kShift) + 127) << 23;
  const float result = p * std::bit_cast<float>(bits);
  return x > -87.0f ? result : 0.0f;  // also 0 for NaN
}

// GCC/Clang vector extension: four floats, so the scans below use SIMD without intrinsics.
typedef float Float4 __attribute__((vector_size(16)));

// The largest and smallest live logits (NaN and -inf ignored); max is -inf if none is live.
struct LiveRange {
  float max;
  float min;
};
LiveRange LiveLogitRange(std::span<const float> logits) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  Float4 hi = {kNegInf, kNegInf, kNegInf, kNegInf}, lo = {kInf, kInf, kInf, kInf};
  const Float4 dead = {kNegInf, kNegInf, kNegInf, kNegInf};
  size_t i = 0;
  for (; i + 4 <= logits.size(); i += 4) {
    Float4 x;
    std::memcpy(&x, logits.data() + i, sizeof(x));
    hi = x > hi ? x : hi;                   // NaN compares false: ignored
    lo = ((x < lo) & (x > dead)) ? x : lo;  // -inf and NaN ignored
  }
  LiveRange r = {kNegInf, kInf};
  for (int j = 0; j < 4; ++j) {
    r.max = hi[j] > r.max ? hi[j] : r.max;
    r.min = lo[j] < r.min ? lo[j] : r.min;
  }
  for (; i < logits.size(); ++i) {
    const float x = logits[i];
    if (x > r.max) r.max = x;
    if (x < r.min && Live(x)) r.min = x;
  }
  return r;
}

float MaxLive(std::span<const float> logits) { return LiveLogitRange(logits).max; }

constexpr size_t kBlock = 1024;  // weights are summed and searched in blocks of this many

// Sums `w` in a fixed order (eight float lanes per block of kBlock, block sums in double), so the
// result is the same on every machine; records each block's sum in `blocks` for Draw.
double BlockSums(std::span<const float> w, std::vector<double>* blocks) {
  blocks->clear();
  double total = 0.0;
  for (size_t begin = 0; begin < w.size(); begin += kBlock) {
    const size_t end = std::min(w.size(), begin + kBlock);
    float lanes[8] = {};
    size_t i = begin;
    for (; i + 8 <= end; i += 8) {
      for (size_t j = 0; j < 8; ++j) lanes[j] += w[i + j];
    }
    double block = 0.0;
    for (; i < end; ++i) block += w[i];
    for (float l : lanes) block += l;
    blocks->push_back(block);
    total += block;
  }
  return total;
}

// Index of the largest logit, ties to the lowest id; kNoToken if none is live. One vectorized
// max per block of kBlock, then a scalar scan of the first block holding the maximum.
int32_t Argmax(std::span<const float> logits) {
  float best = kNegInf;
  size_t best_block = 0;
  for (size_t begin = 0; begin < logits.size(); begin += kBlock) {
    const size_t len = std::min(logits.size() - begin, kBlock);
    const float m = LiveLogitRange(logits.subspan(begin, len)).max;
    if (m > best) {
      best = m;
      best_block = begin;
    }
  }
  if (!Live(best)) return kNoToken;
  for (size_t i = best_block; i < logits.size(); ++i) {
    if (logits[i] == best) return static_cast<int32_t>(i);
  }
  return kNoToken;
}

// Inverse-CDF draw from unnormalized `w` at u * total: finds the block, then scans it in index
// order. Returns the index, the last positive weight if rounding runs past the end, -1 if none.
int64_t Draw(std::span<const float> w, const std::vector<double>& blocks, double total, double u) {
  double target = u * total;
  int64_t last = -1;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const bool last_block = b + 1 == blocks.size();
    if (blocks[b] == 0.0 || (target >= blocks[b] && !last_block)) {
      target -= blocks[b];
      continue;
    }
    double cum = 0.0;
    const size_t begin = b * kBlock, end = std::min(w.size(), begin + kBlock);
    for (size_t i = begin; i < end; ++i) {
      if (w[i] == 0.0f) continue;
      cum += w[i];
      last = static_cast<int64_t>(i);
      if (target < cum) return last;
    }
    if (last >= 0) return last;  // rounding inside the block
  }
  // Rounding past the end: the last positive weight.
  for (size_t i = w.size(); i-- > 0;) {
    if (w[i] > 0.0f) return static_cast<int64_t>(i);
  }
  return -1;
}

}  // namespace

void SelectTopK(std::span<const float> logits, int32_t k, std::vector<Sampler::Candidate>* out) {
  out->clear();
  if (k <= 0) return;
  const size_t n = logits.size();
  if (static_cast<size_t>(k) * 16 >= n) {
    // Large k: collect everything live and partition (O(V)).
    for (size_t i = 0; i < n; ++i) {
      if (Live(logits[i])) out->push_back({logits[i], static_cast<int32_t>(i)});
    }
    if (out->size() > static_cast<size_t>(k)) {
      std::nth_element(out->begin(), out->begin() + k, out->end(), Better);
      out->resize(k);
    }
    std::sort(out->begin(), out->end(), Better);
    return;
  }
  // Small k: bounded heap whose front is the worst kept candidate. Ids arrive in increasing order,
  // so an equal logit never displaces a kept one (ties go to the lowest id).
  out->reserve(k);
  size_t i = 0;
  for (; i < n && out->size() < static_cast<size_t>(k); ++i) {
    if (Live(logits[i])) {
      out->push_back({logits[i], static_cast<int32_t>(i)});
      std::push_heap(out->begin(), out->end(), Better);
    }
  }
  float worst = out->empty() ? kNegInf : out->front().logit;
  for (; i < n; ++i) {
    const float x = logits[i];
    if (!(x > worst)) continue;  // the common case: one compare per token
    std::pop_heap(out->begin(), out->end(), Better);
    out->back() = {x, static_cast<int32_t>(i)};
    std::push_heap(out->begin(), out->end(), Better);
    worst = out->front().logit;
  }
  std::sort_heap(out->begin(), out->end(), Better);
}

TokenLogprobs ComputeLogprobs(std::span<const float> logits, int32_t token, int32_t n_top) {
  TokenLogprobs result;
  result.chosen = kNegInf;
  const float max_logit = MaxLive(logits);
  if (!Live(max_logit) || std::isinf(max_logit)) return result;  // no distribution to report
  // Chunked through a stack buffer so the exp loop vectorizes and the sum order is fixed.
  double sum = 0.0;
  float chunk[kBlock];
  for (size_t begin = 0; begin < logits.size(); begin += kBlock) {
    const size_t end = std::min(logits.size(), begin + kBlock);
    for (size_t i = begin; i < end; ++i) chunk[i - begin] = FastExp(logits[i] - max_logit);
    float lanes[8] = {};
    size_t i = 0;
    for (; i + 8 <= end - begin; i += 8) {
      for (size_t j = 0; j < 8; ++j) lanes[j] += chunk[i + j];
    }
    for (; i < end - begin; ++i) sum += chunk[i];
    for (float l : lanes) sum += l;
  }
  const double log_z = max_logit + std::log(sum);
  auto logprob = [&](float x) -> float {
    return Live(x) ? static_cast<float>(x - log_z) : kNegInf;
  };
  if (token >= 0 && static_cast<size_t>(token) < logits.size())
    result.chosen = logprob(logits[token]);
  if (n_top > 0) {
    std::vector<Sampler::Candidate> top;
    SelectTopK(logits, n_top, &top);
    result.top.reserve(top.size());
    for (const auto& c : top) result.top.push_back({c.id, logprob(c.logit)});
  }
  return result;
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab), greedy_(!(params.temperature >= kMinTemperature)) {
  WEFT_CHECK(n_vocab > 0);
  // top_k == 1 is greedy by definition (same tie rule), and skips the draw.
  if (params_.top_k == 1) greedy_ = true;
}

double Sampler::Uniform(uint64_t seed, uint64_t index) {
  // SplitMix64: state_i = seed + (i + 1) * golden gamma; output = mix(state_i).
  uint64_t z = seed + (index + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

void Sampler::ApplyPenalties(std::span<float> logits, std::span<const int32_t> history,
                             size_t n_prompt) {
  const bool repeat = params_.repetition_penalty != 1.0f && params_.penalty_last_n != 0;
  const bool openai = params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
  if (!repeat && !openai) return;
  if (counts_.empty()) counts_.assign(n_vocab_, 0);

  // Counts the tokens of `window` into counts_/touched_, calls apply(id, count) once per distinct
  // id, then returns counts_ to all-zero.
  auto for_each_count = [&](std::span<const int32_t> window, auto apply) {
    touched_.clear();
    for (int32_t t : window) {
      WEFT_CHECK(t >= 0 && t < n_vocab_);
      if (counts_[t]++ == 0) touched_.push_back(t);
    }
    for (int32_t t : touched_) {
      apply(t, counts_[t]);
      counts_[t] = 0;
    }
  };

  if (repeat) {
    // llama.cpp / CTRL (Keskar et al. 2019): each distinct recent token once, regardless of count.
    size_t n = history.size();
    if (params_.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(params_.penalty_last_n));
    const float penalty = params_.repetition_penalty;
    for_each_count(history.last(n), [&](int32_t t, int32_t) {
      float& x = logits[t];
      x = x <= 0.0f ? x * penalty : x / penalty;
    });
  }
  if (openai) {
    const float freq = params_.frequency_penalty;
    const float pres = params_.presence_penalty;
    for_each_count(history.subspan(n_prompt), [&](int32_t t, int32_t count) {
      logits[t] -= static_cast<float>(count) * freq + pres;
    });
  }
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> history, size_t n_prompt,
                        TokenLogprobs* logprobs) {
  WEFT_CHECK(logits.size() == static_cast<size_t>(n_vocab_));
  WEFT_CHECK(n_prompt <= history.size());
  if (logprobs != nullptr) raw_.assign(logits.begin(), logits.end());

  for (const auto& [id, bias] : params_.logit_bias) {
    WEFT_CHECK(id >= 0 && id < n_vocab_);
    logits[id] += bias;
  }
  ApplyPenalties(logits, history, n_prompt);

  int32_t token;
  if (greedy_) {
    token = Argmax(logits);
  } else {
    const double u = Uniform(params_.seed, history.size() - n_prompt);
    const bool top_k = params_.top_k > 0 && params_.top_k < n_vocab_;
    token = top_k ? SampleTopK(logits, u) : SampleDense(logits, u);
  }

  if (logprobs != nullptr) *logprobs = ComputeLogprobs(raw_, token, params_.top_logprobs);
  return token;
}

// top-p over the whole vocabulary without sorting it: the last token (best first) of the shortest
// prefix whose mass >= target. Bucket the tokens by logit (monotone, so buckets are ordered), find
// the bucket where the running mass crosses the target, and sort only that bucket (as llama.cpp
// does). `weights` = exp(logit - max_logit) for live tokens, 0 otherwise.
Sampler::Candidate Sampler::TopPCutoff(std::span<const float> logits, float max_logit,
                                       float min_logit, double target) {
  constexpr int kBuckets = 1024;
  // Tokens more than 87 below the max have weight 0 (FastExp) and never enter a bucket.
  const float range = std::min(max_logit - min_logit, 88.0f);
  const float scale = (range > 0.0f && std::isfinite(range)) ? (kBuckets - 1) / range : 0.0f;
  // Bucket per token (kBuckets for weight 0: below the range or dead); vectorizes.
  const size_t n = logits.size();
  buckets_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float d = (max_logit - logits[i]) * scale;
    const int32_t b = static_cast<int32_t>(d < kBuckets - 1 ? d : kBuckets - 1);
    buckets_[i] = weights_[i] > 0.0f ? b : kBuckets;
  }
  double mass[kBuckets + 1] = {};
  for (size_t i = 0; i < n; ++i) mass[buckets_[i]] += weights_[i];
  double cum = 0.0;
  int crossing = -1;
  for (int b = 0; b < kBuckets; ++b) {
    if (cum + mass[b] >= target) {
      crossing = b;
      break;
    }
    cum += mass[b];
  }
  if (crossing < 0) return {kNegInf, n_vocab_};  // rounding: keep every live token
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    if (buckets_[i] == crossing) {
      candidates_.push_back({logits[i], static_cast<int32_t>(i)});
    }
  }
  std::sort(candidates_.begin(), candidates_.end(), Better);
  for (const Candidate& c : candidates_) {
    cum += weights_[c.id];
    if (cum >= target) return c;
  }
  return candidates_.back();
}

// No top-k: weights over the whole vocabulary, drawn in id order. top-p becomes a cutoff
// candidate, min-p a logit threshold, so nothing is sorted but one top-p bucket.
int32_t Sampler::SampleDense(std::span<const float> logits, double u) {
  const LiveRange range = LiveLogitRange(logits);
  const float max_logit = range.max;
  if (!Live(max_logit)) return kNoToken;
  if (std::isinf(max_logit)) return Argmax(logits);  // +inf dominates everything
  const size_t n = logits.size();
  weights_.resize(n);

  // top-p on softmax(logits) at T = 1 (temperature comes last, as in llama.cpp).
  Candidate cut = {kNegInf, n_vocab_};  // keep tokens at least as good as `cut`
  if (params_.top_p < 1.0f) {
    for (size_t i = 0; i < n; ++i) weights_[i] = FastExp(logits[i] - max_logit);
    cut =
        TopPCutoff(logits, max_logit, range.min, params_.top_p * BlockSums(weights_, &block_sums_));
  }

  // min-p (llama.cpp): keep p_i >= min_p * p_max  <=>  logit_i >= max + log(min_p). With the
  // top-p cut (logit c, id k): ids <= k need logit >= c, ids > k need logit > c.
  const float threshold = params_.min_p > 0.0f ? max_logit + std::log(params_.min_p) : kNegInf;
  const float inv_t = 1.0f / params_.temperature;
  const size_t split = std::min(n, static_cast<size_t>(cut.id) + 1);
  auto fill = [&](size_t begin, size_t end, float min_logit) {
    for (size_t i = begin; i < end; ++i) {
      const float x = logits[i];
      const float w = FastExp((x - max_logit) * inv_t);  // 0 for -inf and NaN
      weights_[i] = x >= min_logit ? w : 0.0f;
    }
  };
  fill(0, split, std::max(threshold, cut.logit));
  fill(split, n, std::max(threshold, std::nextafter(cut.logit, max_logit + 1.0f)));
  const double total = BlockSums(weights_, &block_sums_);
  return static_cast<int32_t>(Draw(weights_, block_sums_, total, u));
}

// top-k on: the k best, sorted best first, then top-p and min-p on that short list.
int32_t Sampler::SampleTopK(std::span<const float> logits, double u) {
  SelectTopK(logits, params_.top_k, &candidates_);
  if (candidates_.empty()) return kNoToken;
  const float max_logit = candidates_.front().logit;
  if (std::isinf(max_logit)) return candidates_.front().id;
  size_t n = candidates_.size();

  // top-p over the renormalized top-k at T = 1: the shortest prefix with mass >= top_p.
  if (params_.top_p < 1.0f) {
    weights_.resize(n);
    for (size_t i = 0; i < n; ++i) weights_[i] = FastExp(candidates_[i].logit - max_logit);
    const double target = params_.top_p * BlockSums(weights_, &block_sums_);
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      cum += weights_[i];
      if (cum >= target) {
        n = i + 1;
        break;
      }
    }
  }

  // min-p relative to the most likely token (a ratio, so unaffected by renormalization).
  const float threshold = params_.min_p > 0.0f ? max_logit + std::log(params_.min_p) : kNegInf;
  const float inv_t = 1.0f / params_.temperature;
  weights_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float x = candidates_[i].logit;
    weights_[i] = x >= threshold ? FastExp((x - max_logit) * inv_t) : 0.0f;
  }
  const double total = BlockSums(weights_, &block_sums_);
  const int64_t i = Draw(weights_, block_sums_, total, u);
  return i < 0 ? kNoToken : candidates_[i].id;
}

}  // namespace weft::sampling
