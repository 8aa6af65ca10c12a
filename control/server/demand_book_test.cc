// SPDX-License-Identifier: Apache-2.0
#include "control/server/demand_book.h"

#include <atomic>

#include "gtest/gtest.h"

namespace weft::control {
namespace {

TEST(DemandBookTest, SumsFreshReportsAndForgetsStaleOnes) {
  std::atomic<int64_t> now{1000};
  DemandBook book({.ttl_ms = 3000, .now_ms = [&] { return now.load(); }});
  EXPECT_EQ(book.Held("chat"), 0);
  book.Report("gw-1", {{"chat", 2}, {"code", 1}});
  book.Report("gw-2", {{"chat", 3}});
  EXPECT_EQ(book.Held("chat"), 5);
  EXPECT_EQ(book.Held("code"), 1);
  EXPECT_EQ(book.Held("other"), 0);

  // A new report replaces the gateway's previous one.
  now += 1000;
  book.Report("gw-1", {{"code", 4}});
  EXPECT_EQ(book.Held("chat"), 3);
  EXPECT_EQ(book.Held("code"), 4);

  // gw-2 stops reporting (it died): its demand expires after the TTL; gw-1 keeps renewing.
  now += 2500;
  book.Report("gw-1", {{"code", 4}});
  EXPECT_EQ(book.Held("chat"), 0);
  EXPECT_EQ(book.Held("code"), 4);

  // Holding nothing (the last report a gateway sends when its requests went through).
  book.Report("gw-1", {{"code", 0}});
  EXPECT_EQ(book.Held("code"), 0);
  now += 10'000;
  EXPECT_EQ(book.Held("code"), 0);
}

}  // namespace
}  // namespace weft::control
