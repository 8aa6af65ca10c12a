// SPDX-License-Identifier: Apache-2.0
// End-to-end checks of the `weft` binary: each verb on the real stories260K files, and clear
// errors (non-zero exit, message naming the problem) for bad input.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "testing/test_data.h"

namespace {

struct CmdResult {
  int exit_code;
  std::string out;  // stdout and stderr together
};

CmdResult Weft(const std::string& args) {
  std::string cmd = absl::StrCat(WEFT_BINARY, " ", args, " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  CmdResult r{-1, ""};
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string Gguf() { return weft::testing::RequireTestData("models/stories260K/stories260K.gguf"); }

TEST(CliTest, GenerateGreedyMatchesGoldenText) {
  CmdResult r = Weft(absl::StrCat("generate ", Gguf(),
                                  " --quiet -p 'Once upon a time' -n 20 --temp 0 --threads 2"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << r.out;
}

TEST(CliTest, GenerateLlama2cWithTokenizer) {
  std::string bin = weft::testing::RequireTestData("models/stories260K/stories260K.bin");
  std::string tok = weft::testing::RequireTestData("models/stories260K/tok512.bin");
  CmdResult r = Weft(absl::StrCat("generate ", bin, " --tokenizer ", tok,
                                  " --quiet -p 'Once upon a time' -n 12 --temp 0"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl", 0), 0u) << r.out;
}

TEST(CliTest, SeededSamplingIsReproducible) {
  std::string args = absl::StrCat("generate ", Gguf(), " --quiet -p 'Zoo' -n 40 --temp 1 --seed 7");
  CmdResult a = Weft(args);
  CmdResult b = Weft(args);
  ASSERT_EQ(a.exit_code, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
  CmdResult c =
      Weft(absl::StrCat("generate ", Gguf(), " --quiet -p 'Zoo' -n 40 --temp 1 --seed 8"));
  EXPECT_NE(a.out, c.out);
}

TEST(CliTest, StopStringEndsGeneration) {
  CmdResult r = Weft(absl::StrCat("generate ", Gguf(),
                                  " --quiet -p 'Once upon a time' -n 100 --temp 0 --stop Lily"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out, "Once upon a time, there was a little girl named \n");
}

TEST(CliTest, TokenizeAndDetokenize) {
  CmdResult t = Weft(absl::StrCat("model tokenize ", Gguf(), " 'Once upon a time'"));
  ASSERT_EQ(t.exit_code, 0) << t.out;
  EXPECT_EQ(t.out, "[403,407,261,378]\n");
  CmdResult tb = Weft(absl::StrCat("model tokenize ", Gguf(), " 'Once upon a time' --bos"));
  EXPECT_EQ(tb.out, "[1,403,407,261,378]\n");
  CmdResult d = Weft(absl::StrCat("model detokenize ", Gguf(), " 403 407 261 378"));
  ASSERT_EQ(d.exit_code, 0) << d.out;
  EXPECT_EQ(d.out, "Once upon a time\n");
  CmdResult bad = Weft(absl::StrCat("model detokenize ", Gguf(), " 403 99999"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("99999"), std::string::npos) << bad.out;
}

TEST(CliTest, InspectDescribesTheModel) {
  CmdResult r = Weft(absl::StrCat("model inspect ", Gguf()));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("architecture: llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("n_layers 5, d_model 64, n_heads 8, n_kv_heads 4"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("vocab_size 512"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokenizer: spm, 512 tokens"), std::string::npos) << r.out;
}

TEST(CliTest, SynthWritesALoadableModel) {
  std::string dir = weft::testing::MakeTempDir("weft_cli_synth_");
  std::string out = dir + "/tiny.gguf";
  std::string vocab = weft::testing::RequireTestData("vocab/ggml-vocab-llama-spm.gguf");
  CmdResult s =
      Weft(absl::StrCat("model synth --shape tiny --type q8_0 --vocab ", vocab, " -o ", out));
  ASSERT_EQ(s.exit_code, 0) << s.out;
  CmdResult i = Weft(absl::StrCat("model inspect ", out));
  ASSERT_EQ(i.exit_code, 0) << i.out;
  EXPECT_NE(i.out.find("q8_0"), std::string::npos) << i.out;
  CmdResult g = Weft(absl::StrCat("generate ", out, " --quiet -p 'Hello' -n 5 --temp 0"));
  EXPECT_EQ(g.exit_code, 0) << g.out;
  CmdResult b = Weft(absl::StrCat("bench ", out, " -p 16 -n 4 -r 1 --threads 1"));
  ASSERT_EQ(b.exit_code, 0) << b.out;
  EXPECT_NE(b.out.find("| pp16 |"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("| tg4 |"), std::string::npos) << b.out;
  std::filesystem::remove_all(dir);
}

TEST(CliTest, BadInputGivesClearErrors) {
  CmdResult missing = Weft("generate /nonexistent/model.gguf -p hi");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find("/nonexistent/model.gguf"), std::string::npos) << missing.out;

  std::string dir = weft::testing::MakeTempDir("weft_cli_bad_");
  std::string junk = dir + "/junk.gguf";
  std::ofstream(junk) << "GGUF this is not a model";
  CmdResult j = Weft(absl::StrCat("model inspect ", junk));
  EXPECT_EQ(j.exit_code, 1);
  EXPECT_NE(j.out.find("junk.gguf"), std::string::npos) << j.out;

  CmdResult flag = Weft(absl::StrCat("generate ", Gguf(), " --no-such-flag 1"));
  EXPECT_NE(flag.exit_code, 0);
  EXPECT_NE(flag.out.find("--no-such-flag"), std::string::npos) << flag.out;

  CmdResult num = Weft(absl::StrCat("generate ", Gguf(), " -n lots"));
  EXPECT_NE(num.exit_code, 0);
  EXPECT_NE(num.out.find("lots"), std::string::npos) << num.out;
  std::filesystem::remove_all(dir);
}

}  // namespace
