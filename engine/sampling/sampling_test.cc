// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "engine/sampling/generation_limits.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/sampling_params.h"
#include "gtest/gtest.h"

namespace weft::sampling {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = logits[i] == -kInf ? 0.0 : std::exp((logits[i] - max) / temperature);
    sum += p[i];
  }
  for (double& x : p) x /= sum;
  return p;
}

// Draws `n` tokens (each at a fresh generated position) and returns the empirical frequencies.
std::vector<double> Empirical(const SamplingParams& params, const std::vector<float>& logits,
                              int n) {
  Sampler sampler(params, static_cast<int32_t>(logits.size()));
  std::vector<double> freq(logits.size(), 0.0);
  std::vector<int32_t> history;
  for (int i = 0; i < n; ++i) {
    std::vector<float> scratch = logits;
    // Only the history length matters here (no penalties): it selects the random draw.
    history.push_back(0);
    int32_t t = sampler.Sample(scratch, std::span<const int32_t>(history).first(i), 0);
    EXPECT_GE(t, 0);
    freq[t] += 1.0;
  }
  for (double& f : freq) f /= n;
  return freq;
}

// Pearson chi-square statistic of counts `freq * n` against `expected` probabilities.
double ChiSquare(const std::vector<double>& freq, const std::vector<double>& expected, int n) {
  double chi2 = 0;
  for (size_t i = 0; i < freq.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(freq[i], 0.0) << "token " << i << " has probability 0 but was drawn";
      continue;
    }
    const double e = expected[i] * n, o = freq[i] * n;
    chi2 += (o - e) * (o - e) / e;
  }
  return chi2;
}

const std::vector<float> kLogits = {1.0f, 2.5f, 0.3f, -1.0f, 2.0f, 0.0f, 1.7f, -0.5f};

TEST(SamplerTest, GreedyIsArgmaxWithTiesToLowestId) {
  Sampler sampler(SamplingParams::Greedy(), 6);
  std::vector<float> logits = {0.0f, 3.0f, -1.0f, 3.0f, 2.9f, 3.0f};
  EXPECT_EQ(sampler.Sample(logits, {}, 0), 1);
  std::vector<float> logits2 = {-5.0f, -4.0f, -3.0f, -2.0f, -1.0f, -1.5f};
  EXPECT_EQ(sampler.Sample(logits2, {}, 0), 4);
}

TEST(SamplerTest, TopKOneEqualsGreedy) {
  SamplingParams params;
  params.temperature = 1.5f;
  params.top_k = 1;
  params.seed = 7;
  Sampler top1(params, 8);
  Sampler greedy(SamplingParams::Greedy(), 8);
  std::vector<int32_t> history;
  for (int step = 0; step < 50; ++step) {
    std::vector<float> logits(8);
    for (int i = 0; i < 8; ++i) logits[i] = std::sin(step * 1.3 + i * 0.7);
    logits[step % 8] = logits[(step + 3) % 8];  // force ties sometimes
    std::vector<float> copy = logits;
    EXPECT_EQ(top1.Sample(logits, history, 0), greedy.Sample(copy, history, 0)) << step;
    history.push_back(step % 8);
  }
}

TEST(SamplerTest, TopKSmallOnLargeVocabMatchesGreedyTieRule) {
  // Exercise the bounded-heap path (k * 16 < V) with many ties.
  std::vector<float> logits(5000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 7919) % 97);
  std::vector<Sampler::Candidate> top;
  SelectTopK(logits, 10, &top);
  std::vector<Sampler::Candidate> all;
  for (size_t i = 0; i < logits.size(); ++i) all.push_back({logits[i], static_cast<int32_t>(i)});
  std::stable_sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.logit > b.logit; });
  ASSERT_EQ(top.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(top[i].id, all[i].id) << i;
    EXPECT_EQ(top[i].logit, all[i].logit) << i;
  }
  // Large-k path (nth_element) gives the same prefix.
  std::vector<Sampler::Candidate> big;
  SelectTopK(logits, 2000, &big);
  ASSERT_EQ(big.size(), 2000u);
  for (int i = 0; i < 2000; ++i) EXPECT_EQ(big[i].id, all[i].id) << i;
}

TEST(SamplerTest, SelectTopKSkipsDeadLogits) {
  std::vector<float> logits = {-kInf, 1.0f, std::numeric_limits<float>::quiet_NaN(), 0.5f};
  std::vector<Sampler::Candidate> top;
  SelectTopK(logits, 3, &top);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].id, 1);
  EXPECT_EQ(top[1].id, 3);
}

TEST(SamplerTest, NanLogitsAreIgnored) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Sampler greedy(SamplingParams::Greedy(), 11);
  std::vector<float> logits = {nan, 1.0f, nan, 3.0f, nan, nan, nan, nan, nan, 2.0f, nan};
  EXPECT_EQ(greedy.Sample(logits, {}, 0), 3);
  SamplingParams params;
  params.top_p = 0.99f;
  params.seed = 4;
  const std::vector<float> base = logits;
  for (int k : {0, 2}) {
    params.top_k = k;
    std::vector<double> freq = Empirical(params, base, 500);
    for (int i : {0, 2, 4, 5, 6, 7, 8, 10}) EXPECT_EQ(freq[i], 0.0) << i;
  }
}

TEST(SamplerTest, LogitBiasBansAndForces) {
  SamplingParams params;
  params.seed = 1;
  params.logit_bias = {{1, -kInf}, {4, -kInf}};
  const int n = 3000;
  std::vector<double> freq = Empirical(params, kLogits, n);
  EXPECT_EQ(freq[1], 0.0);
  EXPECT_EQ(freq[4], 0.0);
  std::vector<float> biased = kLogits;
  biased[1] = biased[4] = -kInf;
  EXPECT_LT(ChiSquare(freq, Softmax(biased, 1.0), n), 24.3);  // df 5, p = 0.0002

  // Greedy with a bias that makes token 7 the argmax.
  SamplingParams g = SamplingParams::Greedy();
  g.logit_bias = {{7, 3.1f}};  // -0.5 + 3.1 = 2.6 > 2.5
  Sampler sampler(g, 8);
  std::vector<float> logits = kLogits;
  EXPECT_EQ(sampler.Sample(logits, {}, 0), 7);
  EXPECT_FLOAT_EQ(logits[7], 2.6f);
}

TEST(SamplerTest, AllBannedGivesNoToken) {
  SamplingParams params;
  params.logit_bias = {{0, -kInf}, {1, -kInf}};
  for (float t : {0.0f, 1.0f}) {
    params.temperature = t;
    for (int k : {0, 1, 2}) {
      params.top_k = k;
      Sampler sampler(params, 2);
      std::vector<float> logits = {1.0f, 2.0f};
      EXPECT_EQ(sampler.Sample(logits, {}, 0), kNoToken) << t << " " << k;
    }
  }
}

TEST(SamplerTest, RepetitionPenaltyFormula) {
  SamplingParams params = SamplingParams::Greedy();
  params.repetition_penalty = 2.0f;
  params.penalty_last_n = 3;
  params.logit_bias = {{5, 10.0f}};  // keep the argmax away from the penalized ids
  Sampler sampler(params, 6);
  std::vector<float> logits = {4.0f, -3.0f, 1.0f, 0.0f, 6.0f, 0.0f};
  // Window = last 3 tokens {1, 2, 1}: ids 1 and 2 once each; 4 is outside the window.
  std::vector<int32_t> history = {4, 4, 1, 2, 1};
  EXPECT_EQ(sampler.Sample(logits, history, 5), 5);
  EXPECT_FLOAT_EQ(logits[0], 4.0f);
  EXPECT_FLOAT_EQ(logits[1], -6.0f);  // negative: multiplied
  EXPECT_FLOAT_EQ(logits[2], 0.5f);   // positive: divided
  EXPECT_FLOAT_EQ(logits[4], 6.0f);   // outside the window
  EXPECT_FLOAT_EQ(logits[5], 10.0f);

  // penalty_last_n = -1: the whole history, prompt included.
  params.penalty_last_n = -1;
  Sampler whole(params, 6);
  std::vector<float> logits2 = {4.0f, -3.0f, 1.0f, 0.0f, 6.0f, 0.0f};
  whole.Sample(logits2, history, 5);
  EXPECT_FLOAT_EQ(logits2[4], 3.0f);
  EXPECT_FLOAT_EQ(logits2[0], 4.0f);
}

TEST(SamplerTest, FrequencyAndPresencePenaltiesCountGeneratedTokensOnly) {
  SamplingParams params = SamplingParams::Greedy();
  params.frequency_penalty = 0.5f;
  params.presence_penalty = 0.25f;
  Sampler sampler(params, 5);
  std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  // Prompt {0, 0, 3}; generated {1, 1, 1, 2, 0}.
  std::vector<int32_t> history = {0, 0, 3, 1, 1, 1, 2, 0};
  EXPECT_EQ(sampler.Sample(logits, history, 3), 3);
  EXPECT_FLOAT_EQ(logits[0], 1.0f - 1 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f - 3 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[2], 1.0f - 1 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(logits[3], 1.0f);  // only in the prompt
  EXPECT_FLOAT_EQ(logits[4], 1.0f);
}

TEST(SamplerTest, PenaltiesCombineRepetitionFirst) {
  SamplingParams params = SamplingParams::Greedy();
  params.repetition_penalty = 1.25f;
  params.penalty_last_n = 64;
  params.frequency_penalty = 0.1f;
  Sampler sampler(params, 3);
  std::vector<float> logits = {2.5f, -1.0f, 0.0f};
  std::vector<int32_t> history = {0, 1, 0};
  sampler.Sample(logits, history, 1);  // generated {1, 0}
  EXPECT_FLOAT_EQ(logits[0], 2.5f / 1.25f - 0.1f);
  EXPECT_FLOAT_EQ(logits[1], -1.0f * 1.25f - 0.1f);
  EXPECT_FLOAT_EQ(logits[2], 0.0f);
}

std::vector<int32_t> Generate(const SamplingParams& params, int steps) {
  Sampler sampler(params, 8);
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) {
    std::vector<float> logits = kLogits;
    out.push_back(sampler.Sample(logits, out, 0));
  }
  return out;
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferent) {
  SamplingParams params;
  params.temperature = 1.2f;
  params.seed = 42;
  std::vector<int32_t> a = Generate(params, 200);
  std::vector<int32_t> b = Generate(params, 200);
  EXPECT_EQ(a, b);
  params.seed = 43;
  std::vector<int32_t> c = Generate(params, 200);
  EXPECT_NE(a, c);
  // With filters too.
  SamplingParams f = SamplingParams::LlamaCppDefaults();
  f.seed = 9;
  EXPECT_EQ(Generate(f, 100), Generate(f, 100));
}

TEST(SamplerTest, ResumedRequestContinuesWithTheSameTokens) {
  SamplingParams params;
  params.seed = 1234;
  params.frequency_penalty = 0.3f;
  std::vector<int32_t> full = Generate(params, 40);
  // A fresh sampler given the first 25 generated tokens produces token 25 onwards identically.
  Sampler resumed(params, 8);
  std::vector<int32_t> history(full.begin(), full.begin() + 25);
  for (int i = 25; i < 40; ++i) {
    std::vector<float> logits = kLogits;
    history.push_back(resumed.Sample(logits, history, 0));
  }
  EXPECT_EQ(history, full);
}

TEST(SamplerTest, UniformIsSplitMix64) {
  // Reference values: SplitMix64 with state 0 produces 0xe220a8397b1dcdaf first.
  EXPECT_EQ(Sampler::Uniform(0, 0), static_cast<double>(0xe220a8397b1dcdafULL >> 11) * 0x1.0p-53);
  for (uint64_t i = 0; i < 1000; ++i) {
    double u = Sampler::Uniform(99, i);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
}

// Golden sequences: the logits are exact (integer arithmetic), the RNG and the exp are plain IEEE
// float/integer code, so every machine and compiler must produce these tokens. A change here
// breaks seeded reproducibility for users: only update with a note in the changelog.
TEST(SamplerTest, GoldenSequencesAreStableAcrossMachines) {
  auto run = [](const SamplingParams& params) {
    const int v = 5000;
    Sampler sampler(params, v);
    std::vector<int32_t> out;
    for (int step = 0; step < 16; ++step) {
      std::vector<float> logits(v);
      for (int i = 0; i < v; ++i) {
        logits[i] = static_cast<float>((i * 7919 + step * 104729) % 1000) * 0.01f - 5.0f;
      }
      out.push_back(sampler.Sample(logits, out, 0));
    }
    return out;
  };
  SamplingParams plain;
  plain.seed = 20261127;
  EXPECT_EQ(run(plain), (std::vector<int32_t>{2285, 4738, 228, 1114, 2308, 4342, 3772, 3867, 1567,
                                              3345, 4152, 877, 3591, 81, 3694, 3345}));
  SamplingParams llama = SamplingParams::LlamaCppDefaults();
  llama.seed = 20261127;
  EXPECT_EQ(run(llama), (std::vector<int32_t>{1284, 577, 1339, 3669, 2320, 2292, 3980, 4989, 1035,
                                              7, 1337, 1741, 1034, 438, 2052, 4740}));
  SamplingParams nucleus = plain;
  nucleus.top_p = 0.9f;
  nucleus.temperature = 0.7f;
  nucleus.min_p = 0.01f;
  EXPECT_EQ(run(nucleus), (std::vector<int32_t>{2285, 4738, 229, 1115, 2309, 4342, 3771, 3878, 1567,
                                                3353, 4152, 877, 3602, 80, 3694, 3345}));
}

TEST(SamplerTest, EmpiricalDistributionMatchesSoftmaxWithTemperature) {
  const int n = 20000;
  for (float t : {1.0f, 0.7f, 1.8f}) {
    SamplingParams params;
    params.temperature = t;
    params.seed = 2024;
    std::vector<double> freq = Empirical(params, kLogits, n);
    std::vector<double> expected = Softmax(kLogits, t);
    // df = 7; the 0.9999 quantile of chi-square(7) is 29.9 (fixed seed, so deterministic).
    EXPECT_LT(ChiSquare(freq, expected, n), 29.9) << "T=" << t;
    for (size_t i = 0; i < freq.size(); ++i) EXPECT_NEAR(freq[i], expected[i], 0.015) << i;
  }
}

TEST(SamplerTest, WrongDistributionIsDetected) {
  // The test above can fail: sampling at T=1 does not pass as T=0.7.
  SamplingParams params;
  params.seed = 2024;
  std::vector<double> freq = Empirical(params, kLogits, 20000);
  EXPECT_GT(ChiSquare(freq, Softmax(kLogits, 0.7), 20000), 100.0);
}

TEST(SamplerTest, TopPKeepsMinimalSetWithMassAtLeastP) {
  // Probabilities (T = 1): 0.5, 0.25, 0.125, 0.0625, 0.0625.
  const std::vector<float> logits = {std::log(8.0f), std::log(4.0f), std::log(2.0f), 0.0f, 0.0f};
  struct Case {
    float top_p;
    int kept;
  };
  for (Case c : {Case{0.5f, 1}, Case{0.6f, 2}, Case{0.75f, 2}, Case{0.8f, 3}, Case{0.9f, 4},
                 Case{0.0f, 1}}) {
    SamplingParams params;
    params.top_p = c.top_p;
    params.seed = 5;
    const int n = 4000;
    std::vector<double> freq = Empirical(params, logits, n);
    std::vector<float> kept = logits;
    for (size_t i = c.kept; i < kept.size(); ++i) kept[i] = -kInf;
    EXPECT_LT(ChiSquare(freq, Softmax(kept, 1.0), n), 25.0) << "top_p=" << c.top_p;
    for (int i = 0; i < c.kept; ++i) EXPECT_GT(freq[i], 0.0) << "top_p=" << c.top_p << " " << i;
  }
}

TEST(SamplerTest, TopPOnLargeVocabWithoutTopK) {
  // 3000 tokens: the growing partial sort must go past its first chunks.
  std::vector<float> logits(3000);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = -0.001f * ((i * 37) % 3000);
  std::vector<double> p = Softmax(logits, 1.0);
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  SamplingParams params;
  params.top_p = 0.9f;
  double cum = 0;
  size_t kept = 0;
  while (cum < 0.9) cum += p[order[kept++]];
  std::vector<bool> allowed(logits.size(), false);
  for (size_t i = 0; i < kept; ++i) allowed[order[i]] = true;
  Sampler sampler(params, 3000);
  std::vector<int32_t> history;
  for (int i = 0; i < 3000; ++i) {
    std::vector<float> scratch = logits;
    int32_t t = sampler.Sample(scratch, history, 0);
    ASSERT_TRUE(allowed[t]) << t;
    history.push_back(t);
  }
}

TEST(SamplerTest, MinPThresholdIsFractionOfMaxProbability) {
  // p ∝ 8, 4, 2, 1, 1: with min_p = 0.25 the threshold is 0.25 * p_max = p(8)/4 = p(2).
  const std::vector<float> logits = {std::log(8.0f), std::log(4.0f), std::log(2.0f), 0.0f, 0.0f};
  SamplingParams params;
  params.min_p = 0.25f;
  params.seed = 77;
  const int n = 4000;
  std::vector<double> freq = Empirical(params, logits, n);
  EXPECT_EQ(freq[3], 0.0);
  EXPECT_EQ(freq[4], 0.0);
  EXPECT_GT(freq[2], 0.0);
  std::vector<float> kept = {logits[0], logits[1], logits[2], -kInf, -kInf};
  EXPECT_LT(ChiSquare(freq, Softmax(kept, 1.0), n), 25.0);

  // Through the candidate path (top_k on) the threshold is the same.
  params.top_k = 4;
  std::vector<double> freq_k = Empirical(params, logits, n);
  EXPECT_EQ(freq_k[3], 0.0);
  EXPECT_EQ(freq_k[4], 0.0);
  EXPECT_GT(freq_k[2], 0.0);
}

TEST(SamplerTest, FiltersUseUntemperedProbabilities) {
  // top_p = 0.6 keeps {0, 1} from T = 1 probabilities; at T = 5 the draw is close to uniform over
  // the two, which it would not be if temperature ran before top-p (it would keep 4 tokens).
  const std::vector<float> logits = {std::log(8.0f), std::log(4.0f), std::log(2.0f), 0.0f, 0.0f};
  SamplingParams params;
  params.top_p = 0.6f;
  params.temperature = 5.0f;
  params.seed = 3;
  const int n = 4000;
  std::vector<double> freq = Empirical(params, logits, n);
  EXPECT_EQ(freq[2] + freq[3] + freq[4], 0.0);
  std::vector<float> kept = {logits[0], logits[1], -kInf, -kInf, -kInf};
  EXPECT_LT(ChiSquare(freq, Softmax(kept, 5.0), n), 15.0);
}

TEST(SamplerTest, TopKWithTemperatureMatchesRenormalizedSoftmax) {
  SamplingParams params;
  params.top_k = 3;
  params.temperature = 0.8f;
  params.seed = 11;
  const int n = 20000;
  std::vector<double> freq = Empirical(params, kLogits, n);
  std::vector<float> kept(kLogits.size(), -kInf);
  for (int id : {1, 4, 6}) kept[id] = kLogits[id];
  EXPECT_LT(ChiSquare(freq, Softmax(kept, 0.8), n), 20.0);  // df 2
}

TEST(SamplerTest, LogprobsComeFromRawLogits) {
  SamplingParams params = SamplingParams::Greedy();
  params.top_logprobs = 3;
  params.logit_bias = {{3, 100.0f}};
  Sampler sampler(params, 8);
  std::vector<float> logits = kLogits;
  TokenLogprobs lp;
  const int32_t t = sampler.Sample(logits, {}, 0, &lp);
  EXPECT_EQ(t, 3);
  std::vector<double> p = Softmax(kLogits, 1.0);
  EXPECT_NEAR(lp.chosen, std::log(p[3]), 1e-5);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].id, 1);
  EXPECT_EQ(lp.top[1].id, 4);
  EXPECT_EQ(lp.top[2].id, 6);
  EXPECT_NEAR(lp.top[0].logprob, std::log(p[1]), 1e-5);
  EXPECT_NEAR(lp.top[2].logprob, std::log(p[6]), 1e-5);
}

TEST(SamplingParamsTest, Validate) {
  SamplingParams p;
  EXPECT_TRUE(p.Validate(100).ok());
  EXPECT_TRUE(SamplingParams::LlamaCppDefaults().Validate(100).ok());
  p.top_p = 1.5f;
  EXPECT_FALSE(p.Validate(100).ok());
  p = {};
  p.logit_bias = {{100, 1.0f}};
  EXPECT_FALSE(p.Validate(100).ok());
  p.logit_bias = {{99, -kInf}};
  EXPECT_TRUE(p.Validate(100).ok());
  p = {};
  p.stop = {"a", ""};
  EXPECT_FALSE(p.Validate(100).ok());
  p = {};
  p.repetition_penalty = 0.0f;
  EXPECT_FALSE(p.Validate(100).ok());
  p = {};
  p.temperature = std::nanf("");
  EXPECT_FALSE(p.Validate(100).ok());
  p = {};
  p.min_tokens = 10;
  p.max_tokens = 5;
  EXPECT_FALSE(p.Validate(100).ok());
}

TEST(GenerationLimitsTest, EogMaskAndFinishReasons) {
  SamplingParams params;
  params.min_tokens = 2;
  params.max_tokens = 4;
  GenerationLimits limits(params, {7, 2, 7});
  std::vector<float> logits(8, 1.0f);
  limits.MaskLogits(logits, 0);
  EXPECT_EQ(logits[2], -kInf);
  EXPECT_EQ(logits[7], -kInf);
  EXPECT_EQ(logits[0], 1.0f);
  std::vector<float> later(8, 1.0f);
  limits.MaskLogits(later, 2);
  EXPECT_EQ(later[2], 1.0f);

  EXPECT_EQ(limits.Check(0, 1), std::nullopt);
  EXPECT_EQ(limits.Check(2, 3), FinishReason::kEndOfGeneration);
  EXPECT_EQ(limits.Check(0, 4), FinishReason::kLength);
  EXPECT_EQ(limits.Check(7, 4), FinishReason::kEndOfGeneration);
  EXPECT_EQ(FinishReasonName(FinishReason::kLength), "length");
  EXPECT_EQ(FinishReasonName(FinishReason::kEndOfGeneration), "stop");
  EXPECT_EQ(FinishReasonName(FinishReason::kStopString), "stop");
}

TEST(GenerationLimitsTest, IgnoreEosMasksAlwaysAndNeverFinishes) {
  SamplingParams params;
  params.ignore_eos = true;
  GenerationLimits limits(params, {2});
  std::vector<float> logits(4, 0.0f);
  limits.MaskLogits(logits, 1000);
  EXPECT_EQ(logits[2], -kInf);
  EXPECT_EQ(limits.Check(2, 1000), std::nullopt);  // max_tokens <= 0: no limit
}

TEST(GenerationLimitsTest, MinTokensPreventsEogThroughTheSampler) {
  SamplingParams params = SamplingParams::Greedy();
  params.min_tokens = 3;
  GenerationLimits limits(params, {0});
  Sampler sampler(params, 4);
  std::vector<int32_t> out;
  for (int i = 0; i < 5; ++i) {
    std::vector<float> logits = {5.0f, 1.0f, 2.0f, 0.0f};  // EOG is the argmax
    limits.MaskLogits(logits, static_cast<int32_t>(out.size()));
    out.push_back(sampler.Sample(logits, out, 0));
    if (limits.Check(out.back(), static_cast<int32_t>(out.size()))) break;
  }
  EXPECT_EQ(out, (std::vector<int32_t>{2, 2, 2, 0}));
}

}  // namespace
}  // namespace weft::sampling
