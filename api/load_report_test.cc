// SPDX-License-Identifier: Apache-2.0
#include "api/load_report.h"

#include <limits>

#include "gtest/gtest.h"

namespace weft::api {
namespace {

TEST(LoadReportTest, RoundTrip) {
  LoadReport r;
  r.model = "m";
  r.ready = true;
  r.running = 3;
  r.waiting = 2;
  r.tokens_in_flight = 1000;
  r.kv_blocks_total = 64;
  r.kv_blocks_free = 10;
  r.kv_block_size = 16;
  r.prefill_tokens_per_s = 1234.5;
  r.decode_tokens_per_s = 99.25;
  r.adapters = {"a", "b"};
  r.prefix_digest = {0xFFFFFFFFFFFFFFFFull, 1};
  r.prefix_hit_tokens = 77;
  r.step_count = 5;
  r.ttft_p95_ms = 42.5;
  r.ttft_samples = 17;
  std::string text = LoadReportJson(r).dump();
  EXPECT_NE(text.find("\"ffffffffffffffff\""), std::string::npos);
  auto back = ParseLoadReport(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(LoadReportJson(*back).dump(), text);
}

TEST(LoadReportTest, TolerantButTyped) {
  auto r = ParseLoadReport(R"({"running": 2, "unknown": [1]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->running, 2);
  EXPECT_FALSE(ParseLoadReport("[1]").ok());
  EXPECT_FALSE(ParseLoadReport("{").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"running": "x"})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"prefix_digest": ["zz"]})").ok());
}

TEST(LoadReportTest, NumbersOutOfTheirFieldsRangeAreRefused) {
  // A replica's report is untrusted input: no value may reach a conversion with undefined
  // behavior (a float past int32_t) or come back from LoadReportJson as null (inf, NaN).
  EXPECT_FALSE(ParseLoadReport(R"({"running": 1e300})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"running": 2147483648})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"running": -2147483649})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"running": 2.5})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"tokens_in_flight": 18446744073709551615})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"tokens_in_flight": 9.3e18})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"decode_tokens_per_s": 1e999})").ok());
  auto r = ParseLoadReport(
      R"({"running": 2147483647, "waiting": 3.0, "tokens_in_flight": -9223372036854775808,
          "decode_tokens_per_s": 1.5e300})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->running, 2147483647);
  EXPECT_EQ(r->waiting, 3);
  EXPECT_EQ(r->tokens_in_flight, std::numeric_limits<int64_t>::min());
  auto back = ParseLoadReport(LoadReportJson(*r).dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(LoadReportJson(*back).dump(), LoadReportJson(*r).dump());
}

TEST(LoadReportTest, TtftIsOptional) {
  // An engine from before the TTFT signal: no samples.
  auto old = ParseLoadReport(R"({"running": 1})");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->ttft_p95_ms, 0);
  EXPECT_EQ(old->ttft_samples, 0);
  auto r = ParseLoadReport(R"({"ttft_p95_ms": 812.25, "ttft_samples": 9})");
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->ttft_p95_ms, 812.25);
  EXPECT_EQ(r->ttft_samples, 9);
  EXPECT_FALSE(ParseLoadReport(R"({"ttft_p95_ms": "slow"})").ok());
  EXPECT_FALSE(ParseLoadReport(R"({"ttft_p95_ms": -1})").ok());
}

}  // namespace
}  // namespace weft::api
