// SPDX-License-Identifier: Apache-2.0
// LoraRegistry: load/alias/remove/list, errors, an unloaded adapter stays alive while a request
// holds it, and concurrent loads, lookups and unloads (run under TSan/ASan in CI).
#include "engine/lora/lora_registry.h"

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "engine/lora/lora_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::lora {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class LoraRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = weft::testing::MakeTempDir("weft_lora_registry_");
    auto pair = testing::WriteTinyBasePair(dir_);
    ASSERT_TRUE(pair.ok()) << pair.status();
    auto base = model::LoadModel(pair->gguf_path);
    ASSERT_TRUE(base.ok()) << base.status();
    base_ = std::move(*base);
    testing::RandomLora r8 = testing::MakeRandomLora(*base_, 8, 16.0f, testing::AllTargets(), 1);
    testing::RandomLora r4 = testing::MakeRandomLora(*base_, 4, 8.0f, {LoraTarget::kV}, 2);
    ASSERT_TRUE(testing::WriteGgufLora(r8, base_->config, dir_ + "/a.gguf").ok());
    ASSERT_TRUE(testing::WritePeftLora(r4, dir_ + "/b").ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::unique_ptr<model::Model> base_;
};

TEST_F(LoraRegistryTest, LoadAliasListRemove) {
  LoraRegistry reg(*base_);
  auto a = reg.Load("alpha", dir_ + "/a.gguf");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = reg.Load("beta", dir_ + "/b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(reg.size(), 2u);
  EXPECT_EQ(reg.Find("alpha"), *a);
  EXPECT_EQ(reg.Find("beta"), *b);
  EXPECT_EQ(reg.Find("gamma"), nullptr);

  ASSERT_TRUE(reg.AddAlias("customer-1", "alpha").ok());
  ASSERT_TRUE(reg.AddAlias("customer-2", "alpha").ok());
  EXPECT_EQ(reg.Find("customer-1"), *a);
  EXPECT_EQ(reg.AddAlias("customer-1", "beta").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(reg.AddAlias("beta", "alpha").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(reg.AddAlias("x", "nope").code(), absl::StatusCode::kNotFound);

  std::vector<LoraInfo> list = reg.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "alpha");
  EXPECT_EQ(list[0].format, LoraFormat::kGguf);
  EXPECT_EQ(list[0].max_rank, 8);
  EXPECT_EQ(list[0].n_targets, 14);
  EXPECT_THAT(list[0].aliases, ElementsAre("customer-1", "customer-2"));
  EXPECT_EQ(list[1].name, "beta");
  EXPECT_EQ(list[1].format, LoraFormat::kPeft);
  EXPECT_EQ(list[1].max_rank, 4);
  EXPECT_GT(list[1].bytes, 0u);

  // Removing by alias drops the adapter and all its aliases; a holder keeps it alive.
  std::shared_ptr<const LoraAdapter> held = reg.Find("alpha");
  ASSERT_TRUE(reg.Remove("customer-2").ok());
  EXPECT_EQ(reg.Find("alpha"), nullptr);
  EXPECT_EQ(reg.Find("customer-1"), nullptr);
  EXPECT_EQ(reg.Remove("alpha").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(held->max_rank, 8);
  EXPECT_EQ(held->Find(1, LoraTarget::kDown)->rank, 8);
  a->reset();
  EXPECT_EQ(held.use_count(), 1);
  // The name is free again.
  EXPECT_TRUE(reg.Load("alpha", dir_ + "/a.gguf").ok());
}

TEST_F(LoraRegistryTest, Errors) {
  LoraRegistry reg(*base_);
  ASSERT_TRUE(reg.Load("a", dir_ + "/a.gguf").ok());
  EXPECT_EQ(reg.Load("a", dir_ + "/b").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(reg.Load("", dir_ + "/b").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.Load("base:x", dir_ + "/b").status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = reg.Load("m", dir_ + "/nothing.gguf");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nothing.gguf"));
  EXPECT_EQ(reg.Find("m"), nullptr);
  EXPECT_EQ(reg.Add("n", nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg.size(), 1u);
}

TEST_F(LoraRegistryTest, ConcurrentLoadFindRemove) {
  LoraRegistry reg(*base_);
  ASSERT_TRUE(reg.Load("steady", dir_ + "/b").ok());
  auto shared = LoadLoraAdapter(dir_ + "/a.gguf", *base_);
  ASSERT_TRUE(shared.ok());
  std::shared_ptr<const LoraAdapter> adapter = std::move(*shared);
  std::atomic<bool> stop{false};
  std::atomic<int> found{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        if (auto a = reg.Find("flip")) {
          found += a->max_rank == 8;  // holding it while it may be removed
        }
        EXPECT_NE(reg.Find("steady"), nullptr);
        (void)reg.List();
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(reg.Add("flip", adapter).ok());
    ASSERT_TRUE(reg.AddAlias("flop", "flip").ok());
    ASSERT_TRUE(reg.Remove(i % 2 ? "flip" : "flop").ok());
  }
  ASSERT_TRUE(reg.Load("flip", dir_ + "/a.gguf").ok());
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(reg.size(), 2u);
  EXPECT_EQ(adapter.use_count(), 1);
}

}  // namespace
}  // namespace weft::lora
