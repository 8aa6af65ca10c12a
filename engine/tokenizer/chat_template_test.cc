// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/tokenizer/chat_template_test_cases.h"
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

std::string RenderOrError(std::string_view src, const json& ctx,
                          RenderOptions opt = TestRenderOptions()) {
  auto t = ChatTemplate::Parse(src);
  if (!t.ok()) return "ERROR: " + std::string(t.status().message());
  auto r = t->Render(ctx, opt);
  if (!r.ok()) return "ERROR: " + std::string(r.status().message());
  return *r;
}

// The language, case by case, against Python Jinja2's own renderings (chat_template_test_cases.h).
TEST(ChatTemplateLanguageTest, MatchesJinja2) {
  int n = 0;
  for (const auto& c : weft::tokenizer::testing::kJinjaCases) {
    const char* ctx_text = c.ctx == nullptr ? weft::tokenizer::testing::kCommonContext
                           : std::string_view(c.ctx) == "2"
                               ? weft::tokenizer::testing::kCommonContext2
                               : c.ctx;
    const json ctx = json::parse(ctx_text);
    const std::string got = RenderOrError(c.src, ctx);
    if (c.ok) {
      EXPECT_EQ(got, c.want) << "template: " << c.src << "\n" << DiffAt(c.want, got);
    } else {
      EXPECT_THAT(got, ::testing::StartsWith("ERROR: ")) << "template: " << c.src;
      EXPECT_THAT(got, ::testing::HasSubstr(c.want)) << "template: " << c.src;
    }
    ++n;
  }
  EXPECT_GE(n, 130);
}

// Tool calls, tool results, tojson (indent=4 too), reasoning content and content parts through the
// real templates, against Jinja2's renderings.
TEST(ChatTemplateGoldenTest, ToolConversationsMatchJinja2) {
  for (const auto& c : weft::tokenizer::testing::kToolCases) {
    const std::string path =
        weft::testing::RequireTestData(std::string("chat-templates/") + c.file);
    const std::string got = RenderOrError(ReadFile(path), json::parse(c.ctx));
    if (c.ok) {
      EXPECT_EQ(got, c.want) << c.file << " with " << c.ctx << "\n" << DiffAt(c.want, got);
    } else {
      EXPECT_THAT(got, ::testing::StartsWith("ERROR: ")) << c.file;
      EXPECT_THAT(got, ::testing::HasSubstr(c.want)) << c.file;
    }
  }
}

TEST(ChatTemplateTest, ParseErrorsNameTheLine) {
  auto t = ChatTemplate::Parse("a\nb\n{% if x %}\n{{ y }}\n{% endfor %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("line 5"));
  for (const char* bad : {"{{ 1 +", "{% for %}", "{{ (1 }}", "{# open", "{% set %}", "{{ a.}}",
                          "{% macro m( %}{% endmacro %}", "{% break %}", "{% raw %}x", "{{ [1, }}",
                          "{{ 'unterminated }}", "{% include 'x' %}", "{{ a | }}"}) {
    auto r = ChatTemplate::Parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("line 1")) << bad;
  }
}

TEST(ChatTemplateTest, RenderErrorsNameTheLine) {
  EXPECT_EQ(
      RenderOrError("x\n{{ 1 + 'a' }}", json::object()),
      "ERROR: chat template error: line 2: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(RenderOrError("{{ raise_exception('Only user and assistant roles') }}", json::object()),
            "ERROR: Only user and assistant roles");
}

TEST(ChatTemplateTest, TrimAndLstripBlocks) {
  // trim_blocks eats the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(RenderOrError("<\n  {% if true %}\n  x\n  {% endif %}\n>", json::object()),
            "<\n  x\n>");
  // Not after {{ }}, and `+` turns both off.
  EXPECT_EQ(RenderOrError("  {{ 1 }}\n", json::object()), "  1");
  EXPECT_EQ(RenderOrError("a\n  {%+ if true %}b{% endif +%}\nc", json::object()), "a\n  b\nc");
  // `-` strips all whitespace, newlines included, on its side.
  EXPECT_EQ(RenderOrError("a \n {{- 'b' -}} \n c", json::object()), "abc");
  // A single trailing newline of the template is dropped (keep_trailing_newline=False).
  EXPECT_EQ(RenderOrError("x\n", json::object()), "x");
  EXPECT_EQ(RenderOrError("x\n\n", json::object()), "x\n");
}

TEST(ChatTemplateTest, LoopScopesAndNamespace) {
  // A fresh scope per iteration: `set` inside a loop never leaks out, namespace attributes do.
  EXPECT_EQ(
      RenderOrError("{% set x = 0 %}{% set ns = namespace(x=0) %}{% for i in [1, 2] %}"
                    "{{ x }}{% set x = i %}{% set ns.x = ns.x + i %}{% endfor %}{{ x }}/{{ ns.x }}",
                    json::object()),
      "000/3");
  EXPECT_EQ(RenderOrError("{% set x = 1 %}{% set x.y = 2 %}", json::object()),
            "ERROR: chat template error: line 1: cannot assign attribute on non-namespace object");
}

TEST(ChatTemplateTest, UndefinedSemantics) {
  const json ctx = {{"m", {{"role", "user"}}}};
  EXPECT_EQ(RenderOrError("[{{ nope }}][{{ m.content }}][{{ nope|length }}]"
                          "{% for x in nope %}x{% endfor %}{{ m.content is defined }}",
                          ctx),
            "[][][0]False");
  EXPECT_THAT(RenderOrError("{{ nope.attr }}", ctx), ::testing::HasSubstr("'nope' is undefined"));
  EXPECT_THAT(RenderOrError("{{ nope() }}", ctx), ::testing::HasSubstr("'nope' is undefined"));
}

TEST(ChatTemplateTest, TojsonStyles) {
  const json ctx = json::parse(R"({"v": {"z": "<a href='x'>&é", "a": [1, 2.50, null, true]}})");
  EXPECT_EQ(RenderOrError("{{ v|tojson }}", ctx),
            R"({"z": "<a href='x'>&é", "a": [1, 2.5, null, true]})");
  RenderOptions jinja = TestRenderOptions();
  jinja.tojson = TojsonStyle::kJinja2;
  // What plain Jinja2 3.1 emits: sorted keys, ASCII only, HTML-safe.
  EXPECT_EQ(RenderOrError("{{ v|tojson }}", ctx, jinja),
            R"({"a": [1, 2.5, null, true], "z": "\u003ca href=\u0027x\u0027\u003e\u0026\u00e9"})");
  EXPECT_EQ(RenderOrError("{{ v.a|tojson(indent=2) }}", ctx),
            "[\n  1,\n  2.5,\n  null,\n  true\n]");
}

// Known divergence: integers are 64-bit here (Python's are unbounded); beyond that is an error.
TEST(ChatTemplateTest, BigIntegersAreAClearError) {
  EXPECT_EQ(RenderOrError("{{ 12345678901234567890 }}", json::object()),
            "ERROR: chat template syntax error: line 1: integer literal too large");
  EXPECT_EQ(RenderOrError("{{ 9223372036854775807 + 1 }}", json::object()),
            "ERROR: chat template error: line 1: integer overflow");
}

TEST(ChatTemplateTest, PythonPrinting) {
  EXPECT_EQ(
      RenderOrError("{{ 1.0 }} {{ 1e16 }} {{ 0.0001 }} {{ 0.00001 }} {{ -2.5e-10 }} {{ 3 / 3 }}"
                    " {{ none }} {{ true }} {{ [none, false, 'it\\'s', \"q\"] }}",
                    json::object()),
      "1.0 1e+16 0.0001 1e-05 -2.5e-10 1.0 None True [None, False, \"it's\", 'q']");
}

TEST(ChatTemplateTest, HostileTemplatesHitLimits) {
  RenderOptions opt = TestRenderOptions();
  opt.limits.max_output_bytes = 1 << 16;
  opt.limits.max_loop_iterations = 10000;
  opt.limits.max_operations = 1'000'000;
  auto err = [&](std::string_view src) { return RenderOrError(src, json::object(), opt); };
  EXPECT_THAT(err("{% for i in range(100000) %}x{% endfor %}"), ::testing::HasSubstr("ERROR"));
  EXPECT_THAT(err("{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}"),
              ::testing::HasSubstr("too many loop iterations"));
  EXPECT_THAT(err("{{ 'x' * 100000000 }}"), ::testing::HasSubstr("longer than the limit"));
  EXPECT_THAT(err("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                  "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
              ::testing::HasSubstr("longer than the limit"));
  EXPECT_THAT(err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
              ::testing::HasSubstr("nested too deeply"));
  EXPECT_THAT(err("{% set ns = namespace(x=0) %}{% for i in range(9999) %}{% for c in 'abcdefgh' %}"
                  "{% set ns.x = ns.x + 1 %}{% endfor %}{% endfor %}"),
              ::testing::HasSubstr("ERROR"));
  EXPECT_THAT(err("{{ 2 ** 64 }}"), ::testing::HasSubstr("integer overflow"));
  auto parse_err = [](const std::string& src) {
    auto t = ChatTemplate::Parse(src);
    return t.ok() ? std::string("parsed") : std::string(t.status().message());
  };
  EXPECT_THAT(parse_err("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
              ::testing::HasSubstr("nested too deeply"));
  std::string long_sum = "{{ 1";
  for (int k = 0; k < 100000; ++k) long_sum += " + 1";
  EXPECT_THAT(parse_err(long_sum + " }}"), ::testing::HasSubstr("nested too deeply"));
  std::string long_chain = "{{ x";
  for (int k = 0; k < 100000; ++k) long_chain += "|trim";
  EXPECT_THAT(parse_err(long_chain + " }}"), ::testing::HasSubstr("nested too deeply"));
  // Values built up without bound in a loop stop at the nesting limit.
  EXPECT_THAT(err("{% set ns = namespace(v=[]) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}"
                  "{% endfor %}"),
              ::testing::HasSubstr("nested too deeply"));
  EXPECT_THAT(err("{% macro f(v, n) %}{% if n %}{{ f([v], n - 1) }}{% endif %}{% endmacro %}"
                  "{{ f([], 100) }}"),
              ::testing::HasSubstr("nested too deeply"));
  std::string deep_ifs;
  for (int k = 0; k < 1000; ++k) deep_ifs += "{% if true %}";
  EXPECT_THAT(parse_err(deep_ifs), ::testing::HasSubstr("nested too deeply"));
  // A namespace cannot hold a namespace (no cycles, no stale nesting bounds).
  EXPECT_THAT(err("{% set ns = namespace() %}{% set ns.me = ns %}"),
              ::testing::HasSubstr("too deeply to store in a namespace"));
  EXPECT_EQ(err("{% set ns = namespace(l=[]) %}{% for i in range(3) %}{% set ns.l = ns.l + [i] %}"
                "{% endfor %}{{ ns.l }}"),
            "[0, 1, 2]");
}

TEST(ChatTemplateTest, RenderChatPassesOptions) {
  auto t = ChatTemplate::Parse(
      "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor "
      "%}"
      "{% if tools is defined %}T{{ tools|length }}{% endif %}{{ date }}"
      "{% if add_generation_prompt %}>{% endif %}");
  ASSERT_TRUE(t.ok()) << t.status();
  ChatTemplateOptions opt;
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  opt.extra_vars = {{"date", "today"}};
  const json msgs = json::parse(R"([{"role": "user", "content": "hi"}])");
  EXPECT_EQ(*RenderChat(*t, msgs, opt), "<s>user:hi</s>today>");
  opt.add_generation_prompt = false;
  opt.tools = json::parse(R"([{"type": "function"}])");
  EXPECT_EQ(*RenderChat(*t, msgs, opt), "<s>user:hi</s>T1today");
  EXPECT_FALSE(RenderChat(*t, json::object(), opt).ok());
}

TEST(ChatTemplateTest, StrftimeNowDefaultsToTheClock) {
  const std::string year =
      RenderOrError("{{ strftime_now('%Y') }}", json::object(), RenderOptions{});
  ASSERT_EQ(year.size(), 4u) << year;
  EXPECT_GE(std::stoi(year), 2024);
}

TEST(ChatTemplateTest, DefaultTemplateIsChatMl) {
  auto t = ChatTemplate::Parse(DefaultChatTemplate());
  ASSERT_TRUE(t.ok()) << t.status();
  ChatTemplateOptions opt;
  const json msgs = json::parse(R"([{"role": "system", "content": "S"},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]},
      {"role": "assistant", "content": "c"}])");
  EXPECT_EQ(*RenderChat(*t, msgs, opt),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n"
            "<|im_start|>assistant\nc<|im_end|>\n<|im_start|>assistant\n");
  opt.add_generation_prompt = false;
  EXPECT_EQ(*RenderChat(*t, json::array(), opt), "");
}

}  // namespace
}  // namespace weft::tokenizer
