// SPDX-License-Identifier: Apache-2.0
#include "control/placement/placement.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace weft::control {
namespace {

ProviderView Provider(std::string name, double price, int32_t free = 8, double reliability = 0.99,
                      std::vector<std::string> accelerators = {"cpu"}) {
  ProviderView p;
  p.name = std::move(name);
  p.kind = "fake";
  p.regions = {"eu-west-1"};
  p.accelerators = std::move(accelerators);
  p.free_slots = free;
  p.usd_per_hour = price;
  p.reliability = reliability;
  return p;
}

PlacementRequest Request(int32_t count, int32_t min_replicas = 1) {
  PlacementRequest r;
  r.count = count;
  r.min_replicas = min_replicas;
  return r;
}

std::vector<std::string> Names(const PlacementDecision& d) {
  std::vector<std::string> out;
  for (const Placement& p : d.placements) out.push_back(p.provider);
  return out;
}

TEST(PlacementTest, CheapestWhenNoSpreadNeeded) {
  std::vector<ProviderView> ps = {Provider("a", 2.0), Provider("b", 1.0), Provider("c", 3.0)};
  PlacementDecision d = Place(Request(1), ps);
  EXPECT_EQ(Names(d), std::vector<std::string>{"b"});
  EXPECT_EQ(d.placements[0].region, "eu-west-1");
  EXPECT_EQ(d.unplaced, 0);
  EXPECT_EQ(d.reason, "");
}

TEST(PlacementTest, MinTwoSpreadsOverTwoProviders) {
  std::vector<ProviderView> ps = {Provider("a", 1.0), Provider("b", 2.0)};
  EXPECT_EQ(Names(Place(Request(2, 2), ps)), (std::vector<std::string>{"a", "b"}));
  // Cheaper a takes the extra replicas once the spread rule is met.
  EXPECT_EQ(Names(Place(Request(4, 2), ps)), (std::vector<std::string>{"a", "b", "a", "a"}));
  // With min 1 the cheap provider takes both.
  EXPECT_EQ(Names(Place(Request(2, 1), ps)), (std::vector<std::string>{"a", "a"}));
}

TEST(PlacementTest, ReplacementGoesToTheOtherProvider) {
  std::vector<ProviderView> ps = {Provider("a", 1.0), Provider("b", 5.0)};
  PlacementRequest r = Request(1, 2);
  r.existing = {"a"};
  EXPECT_EQ(Names(Place(r, ps)), std::vector<std::string>{"b"});
  r.existing = {"a", "b"};
  EXPECT_EQ(Names(Place(r, ps)), std::vector<std::string>{"a"});
}

TEST(PlacementTest, SpreadMinProviders) {
  std::vector<ProviderView> ps = {Provider("a", 1.0), Provider("b", 2.0), Provider("c", 9.0)};
  PlacementRequest r = Request(3, 1);
  r.constraints.spread_min_providers = 3;
  EXPECT_EQ(Names(Place(r, ps)), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(SpreadTarget(r), 3);
}

TEST(PlacementTest, OneFittingProviderTakesAll) {
  std::vector<ProviderView> ps = {Provider("a", 1.0), Provider("b", 1.0, 8, 0.99, {"nvidia-h100"})};
  EXPECT_EQ(Names(Place(Request(2, 2), ps)), (std::vector<std::string>{"a", "a"}));
}

TEST(PlacementTest, FiltersAndReasons) {
  std::vector<ProviderView> ps = {Provider("gpu", 1.0, 8, 0.99, {"nvidia-h100"}),
                                  Provider("full", 1.0, 1), Provider("other", 1.0),
                                  Provider("far", 1.0)};
  ps[3].regions = {"us-east-1"};
  PlacementRequest r = Request(1);
  r.accelerator.count = 2;
  r.constraints.providers = {"far", "full", "gpu"};
  r.constraints.regions = {"eu-west-1"};
  PlacementDecision d = Place(r, ps);
  EXPECT_TRUE(d.placements.empty());
  EXPECT_EQ(d.unplaced, 1);
  EXPECT_EQ(d.reason,
            "no provider can take replica 1 of 1: gpu: accelerator cpu not offered; full: 1 free "
            "slots, needs 2; other: not in placement.providers; far: no region in "
            "placement.regions (has: us-east-1)");
  EXPECT_EQ(Place(r, {}).reason, "no provider can take replica 1 of 1: no providers");
}

TEST(PlacementTest, PartialPlacementWhenCapacityRunsOut) {
  std::vector<ProviderView> ps = {Provider("a", 1.0, 2), Provider("b", 1.0, 1)};
  PlacementDecision d = Place(Request(5, 2), ps);
  EXPECT_EQ(d.placements.size(), 3u);
  EXPECT_EQ(d.unplaced, 2);
  EXPECT_EQ(d.reason,
            "no provider can take replica 4 of 5: a: 0 free slots, needs 1; b: 0 free slots, "
            "needs 1");
}

TEST(PlacementTest, DegradedOnlyWhenNothingElse) {
  std::vector<ProviderView> ps = {Provider("cheap-broken", 0.1), Provider("ok", 5.0, 1)};
  ps[0].degraded = true;
  PlacementDecision d = Place(Request(2, 2), ps);
  EXPECT_EQ(Names(d), (std::vector<std::string>{"ok", "cheap-broken"}));
  EXPECT_TRUE(d.used_degraded);
  ps[1].free_slots = 8;
  d = Place(Request(2, 2), ps);
  EXPECT_EQ(Names(d), (std::vector<std::string>{"ok", "ok"}));
  EXPECT_FALSE(d.used_degraded);
}

TEST(PlacementTest, ReliabilityOutweighsSmallPriceDifferences) {
  std::vector<ProviderView> ps = {Provider("flaky", 1.0, 8, 0.5), Provider("solid", 1.2, 8, 0.99)};
  EXPECT_EQ(Names(Place(Request(1), ps)), std::vector<std::string>{"solid"});
  ps[0].reliability = 0.99;
  EXPECT_EQ(Names(Place(Request(1), ps)), std::vector<std::string>{"flaky"});
}

TEST(PlacementTest, RegionIsTheFirstAllowedOne) {
  std::vector<ProviderView> ps = {Provider("a", 1.0)};
  ps[0].regions = {"us-east-1", "eu-west-1"};
  PlacementRequest r = Request(1);
  r.constraints.regions = {"eu-west-1"};
  EXPECT_EQ(Place(r, ps).placements.at(0).region, "eu-west-1");
  EXPECT_EQ(Place(Request(1), ps).placements.at(0).region, "us-east-1");
}

}  // namespace
}  // namespace weft::control
