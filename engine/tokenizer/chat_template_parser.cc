// SPDX-License-Identifier: Apache-2.0
// The lexer follows jinja2/lexer.py (3.1) rule by rule: newline normalization and the dropped
// trailing newline (keep_trailing_newline=False), `-`/`+` whitespace control, trim_blocks (one
// newline after %} and #}), lstrip_blocks (spaces/tabs before {% and {# on their own line), raw
// blocks, and end tags only recognised while brackets are balanced. The parser mirrors
// jinja2/parser.py's precedence: condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** <
// unary < postfix, filters and tests.
#include "engine/tokenizer/chat_template_parser.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace weft::tokenizer::jinja {
namespace {

constexpr int kMaxParseDepth = 256;
constexpr int kMaxExprDepth = 64;

enum class Tok {
  kText,
  kVarBegin,
  kVarEnd,
  kBlockBegin,
  kBlockEnd,
  kName,
  kString,
  kInt,
  kFloat,
  kOp,
  kEof
};

struct Token {
  Tok type;
  std::string value;
  int line = 1;
  int64_t ival = 0;
  double fval = 0;
};

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsNameStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

std::string_view RStrip(std::string_view s) {
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

absl::Status SyntaxError(int line, const std::string& msg) {
  return absl::InvalidArgumentError(
      absl::StrCat("chat template syntax error: line ", line, ": ", msg));
}

// Decodes a Jinja string literal body the way the lexer does (Python unicode-escape on top of
// backslashreplace): \n \t \r \\ \' \" \xHH \uXXXX \UXXXXXXXX \ooo, backslash-newline removed,
// unknown escapes kept verbatim.
std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto append_cp = [&out](uint32_t cp) {
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  };
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] != '\\' || k + 1 >= s.size()) {
      out += s[k];
      continue;
    }
    const char c = s[++k];
    switch (c) {
      case '\n':
        break;
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        bool ok = true;
        uint32_t cp = 0;
        for (size_t d = 1; d <= n; ++d) {
          if (k + d >= s.size() || !absl::ascii_isxdigit(s[k + d])) {
            ok = false;
            break;
          }
          const char h = absl::ascii_tolower(s[k + d]);
          cp = cp * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : h - 'a' + 10);
        }
        if (!ok) {
          out += '\\';
          out += c;
        } else {
          append_cp(cp);
          k += n;
        }
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          uint32_t cp = 0;
          size_t d = 0;
          while (d < 3 && k + d < s.size() && s[k + d] >= '0' && s[k + d] <= '7') {
            cp = cp * 8 + static_cast<uint32_t>(s[k + d] - '0');
            ++d;
          }
          append_cp(cp);
          k += d - 1;
        } else {
          out += '\\';
          out += c;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view src) {
    // Newlines normalised to \n, and one trailing newline dropped (keep_trailing_newline=False).
    src_.reserve(src.size());
    for (size_t k = 0; k < src.size(); ++k) {
      if (src[k] == '\r') {
        src_ += '\n';
        if (k + 1 < src.size() && src[k + 1] == '\n') ++k;
      } else {
        src_ += src[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t start = src_.find('{', pos);
      while (start != std::string::npos && start + 1 < src_.size() && src_[start + 1] != '{' &&
             src_[start + 1] != '%' && src_[start + 1] != '#') {
        start = src_.find('{', start + 1);
      }
      if (start == std::string::npos || start + 1 >= src_.size()) {
        Emit(Tok::kText, src_.substr(pos), pos);
        break;
      }
      const char kind = src_[start + 1];
      char sign = 0;
      size_t p = start + 2;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      std::string_view text = std::string_view(src_).substr(pos, start - pos);
      if (sign == '-') {
        text = RStrip(text);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool all_ws = true;
          for (size_t k = l_pos; k < text.size(); ++k) all_ws = all_ws && IsSpace(text[k]);
          if (all_ws) text = text.substr(0, l_pos);
        }
      }
      if (!text.empty()) Emit(Tok::kText, std::string(text), pos);
      if (kind == '#') {
        // The first of "+#}", "-#}", "#}" wins (the regex's lazy (.*?)).
        size_t q = src_.find("#}", p);
        if (q == std::string::npos) return SyntaxError(LineAt(start), "Missing end of comment tag");
        size_t end = q + 2;
        if (q > p && src_[q - 1] == '-') {
          while (end < src_.size() && IsSpace(src_[end])) ++end;
        } else if (q > p && src_[q - 1] == '+') {
        } else if (end < src_.size() && src_[end] == '\n') {
          ++end;
        }
        line_starting = src_[end - 1] == '\n';
        pos = end;
        continue;
      }
      if (kind == '%' && IsRawBegin(p)) {
        WEFT_RETURN_IF_ERROR(LexRaw(start, &pos, &line_starting));
        continue;
      }
      Emit(kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, "", start);
      auto end = LexTag(kind == '%', p, &line_starting);
      if (!end.ok()) return end.status();
      pos = *end;
    }
    Emit(Tok::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  int LineAt(size_t pos) {
    // Incremental: positions only move forward, except for error reports.
    if (pos < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
    }
    for (; line_pos_ < pos && line_pos_ < src_.size(); ++line_pos_) {
      if (src_[line_pos_] == '\n') ++line_;
    }
    return line_;
  }

  void Emit(Tok type, std::string value, size_t pos) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    t.line = LineAt(pos);
    tokens_.push_back(std::move(t));
  }

  bool IsRawBegin(size_t p) {
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    if (p < src_.size() && IsNameChar(src_[p])) return false;
    while (p < src_.size() && IsSpace(src_[p])) ++p;
    return src_.compare(p, 2, "%}") == 0 || src_.compare(p, 3, "-%}") == 0;
  }

  absl::Status LexRaw(size_t start, size_t* pos, bool* line_starting) {
    size_t p = src_.find("raw", start) + 3;
    while (IsSpace(src_[p])) ++p;
    if (src_[p] == '-') {
      p += 3;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
    } else {
      p += 2;
    }
    // Find {%[-+]? endraw ... %}
    size_t q = p;
    while (true) {
      q = src_.find("{%", q);
      if (q == std::string::npos) return SyntaxError(LineAt(start), "Missing end of raw directive");
      size_t r = q + 2;
      char sign = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) sign = src_[r++];
      while (r < src_.size() && IsSpace(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) {
        q += 2;
        continue;
      }
      r += 6;
      while (r < src_.size() && IsSpace(src_[r])) ++r;
      std::string_view text = std::string_view(src_).substr(p, q - p);
      if (sign == '-') {
        text = RStrip(text);
      } else if (sign != '+') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        bool all_ws = l_pos < text.size();
        for (size_t k = l_pos; k < text.size(); ++k) all_ws = all_ws && IsSpace(text[k]);
        if (all_ws && l_pos > 0) text = text.substr(0, l_pos);
      }
      if (src_.compare(r, 3, "+%}") == 0) {
        r += 3;
      } else if (src_.compare(r, 3, "-%}") == 0) {
        r += 3;
        while (r < src_.size() && IsSpace(src_[r])) ++r;
      } else if (src_.compare(r, 2, "%}") == 0) {
        r += 2;
        if (r < src_.size() && src_[r] == '\n') ++r;
      } else {
        return SyntaxError(LineAt(q), "Missing end of raw directive");
      }
      if (!text.empty()) Emit(Tok::kText, std::string(text), p);
      *line_starting = src_[r - 1] == '\n';
      *pos = r;
      return absl::OkStatus();
    }
  }

  // Lexes the inside of {{ }} or {% %} from p; returns the position after the end tag.
  absl::StatusOr<size_t> LexTag(bool block, size_t p, bool* line_starting) {
    std::vector<char> balance;
    const size_t tag_start = p;
    while (true) {
      if (p >= src_.size()) {
        return SyntaxError(LineAt(src_.size()),
                           block ? "unexpected end of template, expected end of statement block"
                                 : "unexpected end of template, expected end of print statement");
      }
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (src_.compare(p, 3, "+%}") == 0) {
            end = p + 3;
          } else if (src_.compare(p, 3, "-%}") == 0) {
            end = p + 3;
            while (end < src_.size() && IsSpace(src_[end])) ++end;
          } else if (src_.compare(p, 2, "%}") == 0) {
            end = p + 2;
            if (end < src_.size() && src_[end] == '\n') ++end;
          }
        } else {
          if (src_.compare(p, 3, "-}}") == 0) {
            end = p + 3;
            while (end < src_.size() && IsSpace(src_[end])) ++end;
          } else if (src_.compare(p, 2, "}}") == 0) {
            end = p + 2;
          }
        }
        if (end != 0) {
          Emit(block ? Tok::kBlockEnd : Tok::kVarEnd, "", p);
          *line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      const char c = src_[p];
      if (IsSpace(c)) {
        ++p;
        continue;
      }
      if (absl::ascii_isdigit(c)) {
        size_t q = p;
        auto digits = [&](size_t at) {
          // (\d+_)*\d+
          size_t k = at;
          if (k >= src_.size() || !absl::ascii_isdigit(src_[k])) return at;
          while (true) {
            while (k < src_.size() && absl::ascii_isdigit(src_[k])) ++k;
            if (k + 1 < src_.size() && src_[k] == '_' && absl::ascii_isdigit(src_[k + 1])) {
              ++k;
              continue;
            }
            return k;
          }
        };
        q = digits(p);
        bool is_float = false;
        size_t f = q;
        if (f + 1 < src_.size() && src_[f] == '.' && absl::ascii_isdigit(src_[f + 1]) &&
            !(p > tag_start && src_[p - 1] == '.')) {
          f = digits(f + 1);
          is_float = true;
        }
        if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
          size_t e = f + 1;
          if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
          const size_t ee = digits(e);
          if (ee != e && !(p > tag_start && src_[p - 1] == '.')) {
            f = ee;
            is_float = true;
          }
        }
        std::string num;
        for (size_t k = p; k < (is_float ? f : q); ++k) {
          if (src_[k] != '_') num += src_[k];
        }
        Token t;
        t.line = LineAt(p);
        t.value = num;
        if (is_float) {
          t.type = Tok::kFloat;
          t.fval = std::strtod(num.c_str(), nullptr);
          p = f;
        } else {
          t.type = Tok::kInt;
          errno = 0;
          t.ival = std::strtoll(num.c_str(), nullptr, 10);
          if (errno == ERANGE) return SyntaxError(t.line, "integer literal too large");
          p = q;
        }
        tokens_.push_back(std::move(t));
        continue;
      }
      if (IsNameStart(c)) {
        size_t q = p;
        while (q < src_.size() && IsNameChar(src_[q])) ++q;
        Emit(Tok::kName, src_.substr(p, q - p), p);
        p = q;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t q = p + 1;
        while (q < src_.size() && src_[q] != c) {
          if (src_[q] == '\\') ++q;
          ++q;
        }
        if (q >= src_.size()) return SyntaxError(LineAt(p), "unexpected end of string");
        Emit(Tok::kString, Unescape(std::string_view(src_).substr(p + 1, q - p - 1)), p);
        p = q + 1;
        continue;
      }
      static constexpr std::string_view kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                                  "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                                  ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};
      std::string_view op;
      for (std::string_view o : kOps) {
        if (src_.compare(p, o.size(), o) == 0) {
          op = o;
          break;
        }
      }
      if (op.empty()) {
        return SyntaxError(LineAt(p), absl::StrCat("unexpected char '", std::string(1, c), "'"));
      }
      if (op == "(" || op == "[" || op == "{") {
        balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (balance.empty())
          return SyntaxError(LineAt(p), absl::StrCat("unexpected '", std::string(op), "'"));
        if (balance.back() != op[0]) {
          return SyntaxError(LineAt(p),
                             absl::StrCat("unexpected '", std::string(op), "', expected '",
                                          std::string(1, balance.back()), "'"));
        }
        balance.pop_back();
      }
      Emit(Tok::kOp, std::string(op), p);
      p += op.size();
    }
  }

  std::string src_;
  std::vector<Token> tokens_;
  size_t line_pos_ = 0;
  int line_ = 1;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  absl::StatusOr<std::unique_ptr<TemplateNode>> Run() {
    auto root = std::make_unique<TemplateNode>();
    auto body = ParseBody({});
    if (!body.ok()) return body.status();
    root->body = std::move(*body);
    return root;
  }

 private:
  const Token& Cur() const { return t_[pos_]; }
  const Token& Ahead(size_t k) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  bool IsOp(std::string_view op) const { return Cur().type == Tok::kOp && Cur().value == op; }
  bool IsName(std::string_view n) const { return Cur().type == Tok::kName && Cur().value == n; }
  bool SkipOp(std::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(std::string_view n) {
    if (!IsName(n)) return false;
    Next();
    return true;
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kText:
        return "template data";
      case Tok::kVarBegin:
        return "begin of print statement";
      case Tok::kVarEnd:
        return "end of print statement";
      case Tok::kBlockBegin:
        return "begin of statement block";
      case Tok::kBlockEnd:
        return "end of statement block";
      case Tok::kEof:
        return "end of template";
      case Tok::kString:
        return "string";
      default:
        return absl::StrCat("'", t.value, "'");
    }
  }
  absl::Status Unexpected(const std::string& expected = "") const {
    if (expected.empty())
      return SyntaxError(Cur().line, absl::StrCat("unexpected ", Describe(Cur())));
    return SyntaxError(Cur().line, absl::StrCat("expected ", expected, ", got ", Describe(Cur())));
  }
  absl::Status ExpectOp(std::string_view op) {
    if (!SkipOp(op)) return Unexpected(absl::StrCat("'", std::string(op), "'"));
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) return Unexpected("end of statement block");
    Next();
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Cur().type != Tok::kName) return Unexpected("a name");
    std::string n = Cur().value;
    Next();
    return n;
  }

  struct DepthGuard {
    explicit DepthGuard(int* d) : d_(d) { ++*d_; }
    ~DepthGuard() { --*d_; }
    int* d_;
  };
#define WEFT_PARSE_DEPTH()          \
  DepthGuard depth_guard_(&depth_); \
  if (depth_ > kMaxParseDepth) return SyntaxError(Cur().line, "template nested too deeply")

  // Sets e.depth from its children; expressions deeper than kMaxExprDepth are rejected here, so
  // that evaluating (and destroying) a tree never recurses without bound.
  absl::Status Seal(Expr& e) {
    int d = 0;
    for (const ExprPtr& c : e.a) {
      if (c) d = std::max(d, c->depth);
    }
    for (const auto& kv : e.kwargs) d = std::max(d, kv.second->depth);
    e.depth = d + 1;
    if (e.depth > kMaxExprDepth) return SyntaxError(e.line, "expression nested too deeply");
    return absl::OkStatus();
  }

  ExprPtr Make(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // Statements until `{% <one of end_names>` (not consumed) or the end of the template.
  absl::StatusOr<Body> ParseBody(const std::vector<std::string_view>& end_names) {
    WEFT_PARSE_DEPTH();
    Body body;
    while (true) {
      const Token& tok = Cur();
      if (tok.type == Tok::kEof) {
        if (!end_names.empty()) {
          return SyntaxError(tok.line, absl::StrCat("unexpected end of template, expected '",
                                                    std::string(end_names.back()), "'"));
        }
        return body;
      }
      if (tok.type == Tok::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->line = tok.line;
        s->text = tok.value;
        body.push_back(std::move(s));
        Next();
        continue;
      }
      if (tok.type == Tok::kVarBegin) {
        const int line = tok.line;
        Next();
        auto e = ParseTuple(true, false, {});
        if (!e.ok()) return e.status();
        if (Cur().type != Tok::kVarEnd) return Unexpected("end of print statement");
        Next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = line;
        s->e.push_back(std::move(*e));
        body.push_back(std::move(s));
        continue;
      }
      if (tok.type != Tok::kBlockBegin) return Unexpected();
      const Token& name = Ahead(1);
      if (name.type != Tok::kName) {
        Next();
        return Unexpected("a statement name");
      }
      if (std::find(end_names.begin(), end_names.end(), name.value) != end_names.end()) {
        return body;
      }
      Next();
      auto s = ParseStatement();
      if (!s.ok()) return s.status();
      body.push_back(std::move(*s));
    }
  }

  // After the body of a block: consumes `{% endX %}`.
  absl::Status ParseEnd(std::string_view end_name) {
    Next();  // block begin
    if (!SkipName(end_name)) return Unexpected(absl::StrCat("'", std::string(end_name), "'"));
    return ExpectBlockEnd();
  }

  absl::StatusOr<StmtPtr> ParseStatement() {
    const Token& tok = Cur();
    auto s = std::make_unique<Stmt>();
    s->line = tok.line;
    const std::string kw = tok.value;
    Next();
    if (kw == "if") {
      s->kind = Stmt::Kind::kIf;
      while (true) {
        auto cond = ParseExpression(true);
        if (!cond.ok()) return cond.status();
        s->e.push_back(std::move(*cond));
        WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
        auto body = ParseBody({"elif", "else", "endif"});
        if (!body.ok()) return body.status();
        s->bodies.push_back(std::move(*body));
        Next();  // block begin
        if (SkipName("elif")) continue;
        if (SkipName("else")) {
          WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
          auto else_body = ParseBody({"endif"});
          if (!else_body.ok()) return else_body.status();
          s->bodies.push_back(std::move(*else_body));
          Next();
        }
        if (!SkipName("endif")) return Unexpected("'endif'");
        WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
        return s;
      }
    }
    if (kw == "for") {
      s->kind = Stmt::Kind::kFor;
      WEFT_RETURN_IF_ERROR(ParseTargets(&s->names));
      if (!SkipName("in")) return Unexpected("'in'");
      auto iter = ParseTuple(false, false, {"recursive"});
      if (!iter.ok()) return iter.status();
      s->e.push_back(std::move(*iter));
      if (SkipName("if")) {
        auto cond = ParseExpression(true);
        if (!cond.ok()) return cond.status();
        s->e.push_back(std::move(*cond));
      } else {
        s->e.push_back(nullptr);
      }
      if (IsName("recursive")) return SyntaxError(Cur().line, "recursive loops are not supported");
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      ++loop_depth_;
      auto body = ParseBody({"else", "endfor"});
      --loop_depth_;
      if (!body.ok()) return body.status();
      s->bodies.push_back(std::move(*body));
      Next();
      if (SkipName("else")) {
        WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
        auto else_body = ParseBody({"endfor"});
        if (!else_body.ok()) return else_body.status();
        s->bodies.push_back(std::move(*else_body));
        Next();
      }
      if (!SkipName("endfor")) return Unexpected("'endfor'");
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (kw == "set") {
      auto first = ExpectName();
      if (!first.ok()) return first.status();
      s->names.push_back(*first);
      if (SkipOp(".")) {
        auto attr = ExpectName();
        if (!attr.ok()) return attr.status();
        s->attr = *attr;
      } else {
        while (SkipOp(",")) {
          auto n = ExpectName();
          if (!n.ok()) return n.status();
          s->names.push_back(*n);
        }
      }
      if (SkipOp("=")) {
        s->kind = Stmt::Kind::kSet;
        auto e = ParseTuple(true, false, {});
        if (!e.ok()) return e.status();
        s->e.push_back(std::move(*e));
        WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
        return s;
      }
      if (s->names.size() != 1 || !s->attr.empty()) return Unexpected("'='");
      s->kind = Stmt::Kind::kSetBlock;
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      auto body = ParseBody({"endset"});
      if (!body.ok()) return body.status();
      s->bodies.push_back(std::move(*body));
      WEFT_RETURN_IF_ERROR(ParseEnd("endset"));
      return s;
    }
    if (kw == "macro") {
      s->kind = Stmt::Kind::kMacro;
      auto name = ExpectName();
      if (!name.ok()) return name.status();
      s->text = *name;
      WEFT_RETURN_IF_ERROR(ExpectOp("("));
      while (!IsOp(")")) {
        if (!s->names.empty()) WEFT_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(")")) break;
        auto param = ExpectName();
        if (!param.ok()) return param.status();
        s->names.push_back(*param);
        if (SkipOp("=")) {
          auto def = ParseExpression(true);
          if (!def.ok()) return def.status();
          s->e.push_back(std::move(*def));
        } else {
          s->e.push_back(nullptr);
        }
      }
      Next();
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      const int saved_loops = loop_depth_;
      loop_depth_ = 0;
      auto body = ParseBody({"endmacro"});
      loop_depth_ = saved_loops;
      if (!body.ok()) return body.status();
      s->bodies.push_back(std::move(*body));
      WEFT_RETURN_IF_ERROR(ParseEnd("endmacro"));
      return s;
    }
    if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) {
        return SyntaxError(s->line, absl::StrCat("'", kw, "' outside of a for loop"));
      }
      s->kind = kw == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      return s;
    }
    if (kw == "generation") {
      s->kind = Stmt::Kind::kScope;
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      auto body = ParseBody({"endgeneration"});
      if (!body.ok()) return body.status();
      s->bodies.push_back(std::move(*body));
      WEFT_RETURN_IF_ERROR(ParseEnd("endgeneration"));
      return s;
    }
    if (kw == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      auto f = ParseFilter(nullptr, s->line);
      if (!f.ok()) return f.status();
      s->e.push_back(std::move(*f));
      WEFT_RETURN_IF_ERROR(ExpectBlockEnd());
      auto body = ParseBody({"endfilter"});
      if (!body.ok()) return body.status();
      s->bodies.push_back(std::move(*body));
      WEFT_RETURN_IF_ERROR(ParseEnd("endfilter"));
      return s;
    }
    return SyntaxError(s->line, absl::StrCat("Encountered unknown tag '", kw, "'"));
  }

  absl::Status ParseTargets(std::vector<std::string>* names) {
    const bool paren = SkipOp("(");
    while (true) {
      auto n = ExpectName();
      if (!n.ok()) return n.status();
      names->push_back(*n);
      if (!SkipOp(",")) break;
      if (paren && IsOp(")")) break;
    }
    if (paren) return ExpectOp(")");
    return absl::OkStatus();
  }

  // parse_tuple: one expression, or a tuple of comma-separated ones.
  absl::StatusOr<ExprPtr> ParseTuple(bool with_condexpr, bool explicit_parens,
                                     const std::vector<std::string_view>& extra_end) {
    WEFT_PARSE_DEPTH();
    const int line = Cur().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) WEFT_RETURN_IF_ERROR(ExpectOp(","));
      const bool end = Cur().type == Tok::kVarEnd || Cur().type == Tok::kBlockEnd || IsOp(")") ||
                       (Cur().type == Tok::kName && std::find(extra_end.begin(), extra_end.end(),
                                                              Cur().value) != extra_end.end());
      if (end) break;
      auto e = ParseExpression(with_condexpr);
      if (!e.ok()) return e.status();
      args.push_back(std::move(*e));
      if (IsOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) return Unexpected("an expression");
    }
    auto t = Make(Expr::Kind::kTuple, line);
    t->a = std::move(args);
    WEFT_RETURN_IF_ERROR(Seal(*t));
    return t;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condexpr) {
    WEFT_PARSE_DEPTH();
    if (!with_condexpr) return ParseOr();
    auto e = ParseOr();
    if (!e.ok()) return e;
    ExprPtr expr = std::move(*e);
    while (IsName("if")) {
      const int line = Cur().line;
      Next();
      auto cond = ParseOr();
      if (!cond.ok()) return cond;
      ExprPtr else_expr;
      if (SkipName("else")) {
        auto el = ParseExpression(true);
        if (!el.ok()) return el;
        else_expr = std::move(*el);
      }
      auto c = Make(Expr::Kind::kCond, line);
      c->a.push_back(std::move(expr));
      c->a.push_back(std::move(*cond));
      c->a.push_back(std::move(else_expr));
      WEFT_RETURN_IF_ERROR(Seal(*c));
      expr = std::move(c);
    }
    return expr;
  }

  absl::StatusOr<ExprPtr> Binary(std::string op, ExprPtr l, ExprPtr r, int line) {
    auto b = Make(Expr::Kind::kBinary, line);
    b->name = std::move(op);
    b->a.push_back(std::move(l));
    b->a.push_back(std::move(r));
    WEFT_RETURN_IF_ERROR(Seal(*b));
    return b;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    WEFT_PARSE_DEPTH();
    auto l = ParseAnd();
    if (!l.ok()) return l;
    ExprPtr left = std::move(*l);
    while (IsName("or")) {
      const int line = Cur().line;
      Next();
      auto r = ParseAnd();
      if (!r.ok()) return r;
      auto b = Binary("or", std::move(left), std::move(*r), line);
      if (!b.ok()) return b;
      left = std::move(*b);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    WEFT_PARSE_DEPTH();
    auto l = ParseNot();
    if (!l.ok()) return l;
    ExprPtr left = std::move(*l);
    while (IsName("and")) {
      const int line = Cur().line;
      Next();
      auto r = ParseNot();
      if (!r.ok()) return r;
      auto b = Binary("and", std::move(left), std::move(*r), line);
      if (!b.ok()) return b;
      left = std::move(*b);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    WEFT_PARSE_DEPTH();
    if (IsName("not")) {
      const int line = Cur().line;
      Next();
      auto inner = ParseNot();
      if (!inner.ok()) return inner;
      auto u = Make(Expr::Kind::kUnary, line);
      u->name = "not";
      u->a.push_back(std::move(*inner));
      WEFT_RETURN_IF_ERROR(Seal(*u));
      return u;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    WEFT_PARSE_DEPTH();
    const int line = Cur().line;
    auto l = ParseMath1();
    if (!l.ok()) return l;
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp &&
          (Cur().value == "==" || Cur().value == "!=" || Cur().value == "<" || Cur().value == ">" ||
           Cur().value == "<=" || Cur().value == ">=")) {
        op = Cur().value;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Ahead(1).type == Tok::kName && Ahead(1).value == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      auto r = ParseMath1();
      if (!r.ok()) return r;
      if (!cmp) {
        cmp = Make(Expr::Kind::kCompare, line);
        cmp->a.push_back(std::move(*l));
      }
      cmp->ops.push_back(op);
      cmp->a.push_back(std::move(*r));
    }
    if (cmp) {
      WEFT_RETURN_IF_ERROR(Seal(*cmp));
      return cmp;
    }
    return l;
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    WEFT_PARSE_DEPTH();
    auto l = ParseConcat();
    if (!l.ok()) return l;
    ExprPtr left = std::move(*l);
    while (IsOp("+") || IsOp("-")) {
      const std::string op = Cur().value;
      const int line = Cur().line;
      Next();
      auto r = ParseConcat();
      if (!r.ok()) return r;
      auto b = Binary(op, std::move(left), std::move(*r), line);
      if (!b.ok()) return b;
      left = std::move(*b);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    WEFT_PARSE_DEPTH();
    auto l = ParseMath2();
    if (!l.ok()) return l;
    ExprPtr left = std::move(*l);
    while (IsOp("~")) {
      const int line = Cur().line;
      Next();
      auto r = ParseMath2();
      if (!r.ok()) return r;
      auto b = Binary("~", std::move(left), std::move(*r), line);
      if (!b.ok()) return b;
      left = std::move(*b);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    WEFT_PARSE_DEPTH();
    auto l = ParsePow();
    if (!l.ok()) return l;
    ExprPtr left = std::move(*l);
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const std::string op = Cur().value;
      const int line = Cur().line;
      Next();
      auto r = ParsePow();
      if (!r.ok()) return r;
      auto b = Binary(op, std::move(left), std::move(*r), line);
      if (!b.ok()) return b;
      left = std::move(*b);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    WEFT_PARSE_DEPTH();
    auto l = ParseUnary(true);
    if (!l.ok()) return l;
    ExprPtr left = std::move(*l);
    while (IsOp("**")) {
      const int line = Cur().line;
      Next();
      auto r = ParseUnary(true);
      if (!r.ok()) return r;
      auto b = Binary("**", std::move(left), std::move(*r), line);
      if (!b.ok()) return b;
      left = std::move(*b);
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    WEFT_PARSE_DEPTH();
    const int line = Cur().line;
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const std::string op = Cur().value;
      Next();
      auto inner = ParseUnary(false);
      if (!inner.ok()) return inner;
      node = Make(Expr::Kind::kUnary, line);
      node->name = op;
      node->a.push_back(std::move(*inner));
      WEFT_RETURN_IF_ERROR(Seal(*node));
    } else {
      auto p = ParsePrimary();
      if (!p.ok()) return p;
      node = std::move(*p);
    }
    auto post = ParsePostfix(std::move(node));
    if (!post.ok()) return post;
    node = std::move(*post);
    if (with_filter) return ParseFilterExpr(std::move(node));
    return node;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    WEFT_PARSE_DEPTH();
    const Token& tok = Cur();
    const int line = tok.line;
    if (tok.type == Tok::kName) {
      auto e = Make(Expr::Kind::kLiteral, line);
      if (tok.value == "true" || tok.value == "True") {
        e->literal = Value::Bool(true);
      } else if (tok.value == "false" || tok.value == "False") {
        e->literal = Value::Bool(false);
      } else if (tok.value == "none" || tok.value == "None") {
        e->literal = Value::None();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = tok.value;
      }
      Next();
      return e;
    }
    if (tok.type == Tok::kString) {
      std::string s;
      while (Cur().type == Tok::kString) {
        s += Cur().value;
        Next();
      }
      auto e = Make(Expr::Kind::kLiteral, line);
      e->literal = Value::Str(std::move(s));
      return e;
    }
    if (tok.type == Tok::kInt || tok.type == Tok::kFloat) {
      auto e = Make(Expr::Kind::kLiteral, line);
      e->literal = tok.type == Tok::kInt ? Value::Int(tok.ival) : Value::Float(tok.fval);
      Next();
      return e;
    }
    if (IsOp("(")) {
      Next();
      auto e = ParseTuple(true, true, {});
      if (!e.ok()) return e;
      WEFT_RETURN_IF_ERROR(ExpectOp(")"));
      return e;
    }
    if (IsOp("[") || IsOp("{")) {
      const bool is_list = IsOp("[");
      Next();
      auto e = Make(is_list ? Expr::Kind::kList : Expr::Kind::kDict, line);
      const std::string_view close = is_list ? "]" : "}";
      while (!IsOp(close)) {
        if (!e->a.empty()) WEFT_RETURN_IF_ERROR(ExpectOp(","));
        if (IsOp(close)) break;
        auto item = ParseExpression(true);
        if (!item.ok()) return item;
        e->a.push_back(std::move(*item));
        if (!is_list) {
          WEFT_RETURN_IF_ERROR(ExpectOp(":"));
          auto value = ParseExpression(true);
          if (!value.ok()) return value;
          e->a.push_back(std::move(*value));
        }
      }
      Next();
      WEFT_RETURN_IF_ERROR(Seal(*e));
      return e;
    }
    return Unexpected();
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      WEFT_PARSE_DEPTH();
      const int line = Cur().line;
      if (IsOp(".")) {
        Next();
        if (Cur().type == Tok::kName) {
          auto e = Make(Expr::Kind::kGetAttr, line);
          e->name = Cur().value;
          e->a.push_back(std::move(node));
          WEFT_RETURN_IF_ERROR(Seal(*e));
          node = std::move(e);
          Next();
        } else if (Cur().type == Tok::kInt) {
          auto e = Make(Expr::Kind::kGetItem, line);
          e->a.push_back(std::move(node));
          auto idx = Make(Expr::Kind::kLiteral, line);
          idx->literal = Value::Int(Cur().ival);
          e->a.push_back(std::move(idx));
          WEFT_RETURN_IF_ERROR(Seal(*e));
          node = std::move(e);
          Next();
        } else {
          return Unexpected("an attribute name");
        }
      } else if (IsOp("[")) {
        Next();
        auto sub = ParseSubscript(std::move(node), line);
        if (!sub.ok()) return sub;
        node = std::move(*sub);
      } else if (IsOp("(")) {
        auto call = Make(Expr::Kind::kCall, line);
        call->a.push_back(std::move(node));
        WEFT_RETURN_IF_ERROR(ParseCallArgs(call.get()));
        WEFT_RETURN_IF_ERROR(Seal(*call));
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr node, int line) {
    ExprPtr parts[3];
    bool is_slice = false;
    int idx = 0;
    while (true) {
      if (IsOp(":")) {
        is_slice = true;
        Next();
        if (++idx > 2) return Unexpected();
        continue;
      }
      if (IsOp("]")) break;
      if (parts[idx]) return Unexpected("']'");
      auto e = ParseExpression(true);
      if (!e.ok()) return e;
      parts[idx] = std::move(*e);
    }
    Next();
    if (!is_slice) {
      if (!parts[0]) return SyntaxError(line, "expected a subscript expression");
      auto e = Make(Expr::Kind::kGetItem, line);
      e->a.push_back(std::move(node));
      e->a.push_back(std::move(parts[0]));
      WEFT_RETURN_IF_ERROR(Seal(*e));
      return e;
    }
    auto e = Make(Expr::Kind::kSlice, line);
    e->a.push_back(std::move(node));
    for (auto& p : parts) e->a.push_back(std::move(p));
    WEFT_RETURN_IF_ERROR(Seal(*e));
    return e;
  }

  absl::Status ParseCallArgs(Expr* call) {
    WEFT_RETURN_IF_ERROR(ExpectOp("("));
    bool first = true;
    while (!IsOp(")")) {
      if (!first) WEFT_RETURN_IF_ERROR(ExpectOp(","));
      first = false;
      if (IsOp(")")) break;
      if (Cur().type == Tok::kName && Ahead(1).type == Tok::kOp && Ahead(1).value == "=") {
        std::string key = Cur().value;
        Next();
        Next();
        auto v = ParseExpression(true);
        if (!v.ok()) return v.status();
        call->kwargs.emplace_back(std::move(key), std::move(*v));
      } else {
        if (!call->kwargs.empty()) {
          return SyntaxError(Cur().line, "positional argument follows keyword argument");
        }
        auto v = ParseExpression(true);
        if (!v.ok()) return v.status();
        call->a.push_back(std::move(*v));
      }
    }
    Next();
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ParseDottedName() {
    auto n = ExpectName();
    if (!n.ok()) return n;
    std::string name = *n;
    while (IsOp(".") && Ahead(1).type == Tok::kName) {
      Next();
      name += "." + Cur().value;
      Next();
    }
    return name;
  }

  // `| name(args)` with the subject already parsed (null for filter blocks).
  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr subject, int line) {
    auto name = ParseDottedName();
    if (!name.ok()) return name.status();
    auto f = Make(Expr::Kind::kFilter, line);
    f->name = *name;
    f->a.push_back(std::move(subject));
    if (IsOp("(")) WEFT_RETURN_IF_ERROR(ParseCallArgs(f.get()));
    WEFT_RETURN_IF_ERROR(Seal(*f));
    return f;
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      WEFT_PARSE_DEPTH();
      const int line = Cur().line;
      if (IsOp("|")) {
        Next();
        auto f = ParseFilter(std::move(node), line);
        if (!f.ok()) return f;
        node = std::move(*f);
      } else if (IsName("is")) {
        Next();
        auto t = Make(Expr::Kind::kTest, line);
        t->negated = SkipName("not");
        auto name = ParseDottedName();
        if (!name.ok()) return name.status();
        t->name = *name;
        t->a.push_back(std::move(node));
        if (IsOp("(")) {
          WEFT_RETURN_IF_ERROR(ParseCallArgs(t.get()));
        } else if ((Cur().type == Tok::kName || Cur().type == Tok::kString ||
                    Cur().type == Tok::kInt || Cur().type == Tok::kFloat || IsOp("[") ||
                    IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          if (IsName("is")) return SyntaxError(line, "You cannot chain multiple tests with is");
          auto arg = ParsePrimary();
          if (!arg.ok()) return arg;
          auto post = ParsePostfix(std::move(*arg));
          if (!post.ok()) return post;
          t->a.push_back(std::move(*post));
        }
        WEFT_RETURN_IF_ERROR(Seal(*t));
        node = std::move(t);
      } else if (IsOp("(")) {
        auto call = Make(Expr::Kind::kCall, line);
        call->a.push_back(std::move(node));
        WEFT_RETURN_IF_ERROR(ParseCallArgs(call.get()));
        WEFT_RETURN_IF_ERROR(Seal(*call));
        node = std::move(call);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TemplateNode>> ParseTemplate(std::string_view source) {
  Lexer lexer(source);
  auto tokens = lexer.Run();
  if (!tokens.ok()) return tokens.status();
  Parser parser(std::move(*tokens));
  return parser.Run();
}

}  // namespace weft::tokenizer::jinja
