// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace weft::tokenizer {
namespace {

using json = nlohmann::ordered_json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Where two strings first differ, with a little context from each.
std::string DiffAt(const std::string& want, const std::string& got) {
  size_t k = 0;
  while (k < want.size() && k < got.size() && want[k] == got[k]) ++k;
  const size_t from = k > 40 ? k - 40 : 0;
  return "first difference at byte " + std::to_string(k) + "\n  expected: ..." +
         json(want.substr(from, 100)).dump() + "\n  actual:   ..." +
         json(got.substr(from, 100)).dump();
}

RenderOptions TestRenderOptions() {
  RenderOptions o;
  o.strftime_now = [](std::string_view) { return std::string("26 Jul 2024"); };
  return o;
}

// Every template in shared/chat-templates against every case of its .expected.json.
TEST(ChatTemplateGoldenTest, AllTemplatesMatchJinja2) {
  const std::string dir = weft::testing::RequireTestData("chat-templates/cases.json");
  const std::filesystem::path root = std::filesystem::path(dir).parent_path();
  const json cases = json::parse(ReadFile(dir));
  int templates = 0, checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (entry.path().extension() != ".jinja") continue;
    ++templates;
    const std::string name = entry.path().stem().string();
    const std::string expected_path = (root / (name + ".expected.json")).string();
    ASSERT_TRUE(std::filesystem::exists(expected_path)) << "missing " << expected_path;
    const json expected = json::parse(ReadFile(expected_path));
    auto tmpl = ChatTemplate::Parse(ReadFile(entry.path().string()));
    ASSERT_TRUE(tmpl.ok()) << name << ": " << tmpl.status();
    for (const auto& [key, want] : expected.items()) {
      const size_t slash = key.rfind('/');
      ASSERT_NE(slash, std::string::npos) << name << ": bad key " << key;
      const std::string case_name = key.substr(0, slash);
      const std::string mode = key.substr(slash + 1);
      ASSERT_TRUE(cases.contains(case_name)) << name << ": unknown case " << case_name;
      ChatTemplateOptions opt;
      opt.bos_token = "<BOS>";
      opt.eos_token = "<EOS>";
      opt.add_generation_prompt = mode == "gen";
      opt.render = TestRenderOptions();
      auto got = RenderChat(*tmpl, cases[case_name], opt);
      ++checked;
      if (want["ok"].get<bool>()) {
        ASSERT_TRUE(got.ok()) << name << " / " << key << ": " << got.status();
        const std::string text = want["text"].get<std::string>();
        EXPECT_EQ(*got, text) << name << " / " << key << ": " << DiffAt(text, *got);
      } else {
        ASSERT_FALSE(got.ok()) << name << " / " << key << ": rendered but should fail with "
                               << want["error"] << "\n"
                               << *got;
        EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_EQ(got.status().message(), want["error"].get<std::string>()) << name << " / " << key;
      }
    }
  }
  EXPECT_GE(templates, 8);
  EXPECT_GE(checked, 64);
}

}  // namespace
}  // namespace weft::tokenizer
