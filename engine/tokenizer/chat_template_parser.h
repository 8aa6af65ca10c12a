// SPDX-License-Identifier: Apache-2.0
// Lexer and parser of the chat-template Jinja subset: source text to an immutable syntax tree,
// with Jinja2's trim_blocks + lstrip_blocks whitespace rules applied while lexing. Internal to
// chat_template.cc; the tree is shared read-only by concurrent renders.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/chat_template_value.h"

namespace weft::tokenizer::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    kLiteral,  // literal
    kName,     // name
    kGetAttr,  // a[0].name
    kGetItem,  // a[0][a[1]]
    kSlice,    // a[0][a[1]:a[2]:a[3]] (null parts absent)
    kCall,     // a[0](a[1:]..., kw...)
    kFilter,   // a[0]|name(a[1:]..., kw...)
    kTest,     // a[0] is [not] name(a[1:]...)
    kUnary,    // op a[0]: "-", "+", "not"
    kBinary,   // a[0] op a[1]: + - * / // % ** ~ and or
    kCompare,  // a[0] ops[0] a[1] ops[1] a[2] ...: == != < > <= >= in notin
    kCond,     // a[0] if a[1] else a[2] (a[2] may be null)
    kList,     // [a...]
    kTuple,    // (a...)
    kDict,     // {a[0]: a[1], a[2]: a[3], ...}
  };
  Kind kind;
  int line = 0;
  int depth = 1;  // 1 + the deepest child; the parser bounds it (evaluation recurses over it)
  Value literal;
  std::string name;  // name, attribute, filter, test or operator
  bool negated = false;
  std::vector<ExprPtr> a;
  std::vector<std::string> ops;  // kCompare operators
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ e[0] }}
    kIf,        // if e[0] bodies[0] elif e[1] bodies[1] ... [else bodies[n]]
    kFor,       // for names in e[0] [if e[1]] bodies[0] [else bodies[1]]
    kSet,       // set names = e[0]; with attr: set names[0].attr = e[0]
    kSetBlock,  // set names[0] %} bodies[0] {% endset
    kMacro,     // macro text(names with defaults e, null where none) bodies[0]
    kBreak,
    kContinue,
    kFilterBlock,  // filter e[0] (a kFilter over a null subject) bodies[0]
    kScope,        // bodies[0] rendered inline (generation blocks)
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::string attr;
  std::vector<std::string> names;
  std::vector<ExprPtr> e;
  std::vector<Body> bodies;
};

struct TemplateNode {
  Body body;
};

// Parses a template. Errors are InvalidArgument "line N: ...".
absl::StatusOr<std::unique_ptr<TemplateNode>> ParseTemplate(std::string_view source);

}  // namespace weft::tokenizer::jinja
