// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/special_tokens.h"

#include "gtest/gtest.h"

namespace weft::tokenizer {
namespace {

std::string Show(const std::vector<Fragment>& frags) {
  std::string s;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      s.append("[").append(std::to_string(f.token)).append("]");
    } else {
      s.append("'").append(f.text).append("'");
    }
  }
  return s;
}

Vocab MakeVocab() {
  Vocab v;
  v.tokens = {"x", "<a>", "<ab>", "<u>", "<r>", "<l>"};
  v.attrs = {kAttrNormal,
             kAttrControl,
             kAttrControl,
             kAttrUserDefined,
             kAttrControl | kAttrRstrip,
             kAttrControl | kAttrLstrip};
  return v;
}

TEST(SpecialTokens, LongestFirstAndEveryOccurrence) {
  const Vocab v = MakeVocab();
  SpecialTokenMatcher m(v);
  std::vector<Fragment> f;
  m.Partition("1<ab>2<a>3<a>", true, &f);
  EXPECT_EQ(Show(f), "'1'[2]'2'[1]'3'[1]");
  m.Partition("<a><a>", true, &f);
  EXPECT_EQ(Show(f), "[1][1]");
}

TEST(SpecialTokens, ParseSpecialOffMatchesOnlyUserDefined) {
  const Vocab v = MakeVocab();
  SpecialTokenMatcher m(v);
  std::vector<Fragment> f;
  m.Partition("a<a>b<u>c", false, &f);
  EXPECT_EQ(Show(f), "'a<a>b'[3]'c'");
  m.Partition("", true, &f);
  EXPECT_TRUE(f.empty());
}

TEST(SpecialTokens, Strip) {
  const Vocab v = MakeVocab();
  SpecialTokenMatcher m(v);
  std::vector<Fragment> f;
  m.Partition("a <r>  b", true, &f);
  EXPECT_EQ(Show(f), "'a '[4]'b'");
  m.Partition("a  <l> b", true, &f);
  EXPECT_EQ(Show(f), "'a'[5]' b'");
  m.Partition("<r>   ", true, &f);
  EXPECT_EQ(Show(f), "[4]");
}

}  // namespace
}  // namespace weft::tokenizer
