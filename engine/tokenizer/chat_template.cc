// SPDX-License-Identifier: Apache-2.0
// The interpreter: walks the tree of chat_template_parser.h over Python-like values, following
// Jinja2 3.1 semantics (default Undefined: prints empty, is falsy, iterates empty, but raises on
// attribute access, calls and arithmetic; a fresh scope per loop iteration; dict attribute access
// prefers dict methods, then keys). Filters, tests and str/dict methods are the ones chat
// templates use; anything else is a clear InvalidArgument.
#include "engine/tokenizer/chat_template.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "engine/tokenizer/chat_template_parser.h"
#include "engine/tokenizer/chat_template_value.h"

namespace weft::tokenizer {
namespace jinja {

struct Callable {
  std::string name;  // builtin ("range", "str.strip", "loop.cycle", ...) or macro name
  Value self;        // bound receiver for methods
  const Stmt* macro = nullptr;
};

namespace {

using Kwargs = std::vector<std::pair<std::string, Value>>;

// Python float(s) for an already stripped s: decimal or exponent notation, inf, nan, digits
// grouped by single underscores; nullopt when Python would raise ValueError.
std::optional<double> PyFloat(const std::string& t) {
  std::string clean;
  for (size_t k = 0; k < t.size(); ++k) {
    const char c = t[k];
    if (c == '_') {
      if (k == 0 || k + 1 >= t.size() || !absl::ascii_isdigit(t[k - 1]) ||
          !absl::ascii_isdigit(t[k + 1])) {
        return std::nullopt;
      }
      continue;
    }
    if (!absl::ascii_isdigit(c) &&
        std::string_view("+-.eEinfatyINFATY").find(c) == std::string_view::npos) {
      return std::nullopt;
    }
    clean += c;
  }
  if (clean.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

absl::Status Error(int line, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("chat template error: line ", line, ": ", msg));
}

// ---- Unicode helpers (Python str semantics on UTF-8) ----

uint32_t CodePoint(std::string_view cp) {
  const auto c = static_cast<unsigned char>(cp[0]);
  if (cp.size() == 1) return c;
  uint32_t v = cp.size() == 2 ? (c & 0x1F) : cp.size() == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < cp.size(); ++k) v = (v << 6) | (static_cast<unsigned char>(cp[k]) & 0x3F);
  return v;
}

void AppendCp(std::string& out, uint32_t cp) {
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
}

bool PyIsSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Simple case mapping: ASCII, Latin-1, Greek and Cyrillic basic letters.
uint32_t ToUpperCp(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
uint32_t ToLowerCp(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
bool IsCased(uint32_t c) { return ToUpperCp(c) != c || ToLowerCp(c) != c; }

template <typename F>
std::string MapCps(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (std::string_view cp : SplitCodePoints(s)) AppendCp(out, f(CodePoint(cp)));
  return out;
}
std::string Upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::string_view cp : SplitCodePoints(s)) {
    const uint32_t c = CodePoint(cp);
    if (c == 0xDF) {
      out += "SS";  // Python: 'ß'.upper() == 'SS'
    } else {
      AppendCp(out, ToUpperCp(c));
    }
  }
  return out;
}
std::string Lower(std::string_view s) { return MapCps(s, ToLowerCp); }

std::string Capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (std::string_view cp : SplitCodePoints(s)) {
    AppendCp(out, first ? ToUpperCp(CodePoint(cp)) : ToLowerCp(CodePoint(cp)));
    first = false;
  }
  return out;
}

// Python str.title(): a cased char after an uncased one is upper-cased, the others lower-cased.
std::string PyTitle(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (std::string_view cp : SplitCodePoints(s)) {
    const uint32_t c = CodePoint(cp);
    AppendCp(out, prev_cased ? ToLowerCp(c) : ToUpperCp(c));
    prev_cased = IsCased(c);
  }
  return out;
}

// Jinja's |title: words split at runs of [-\s({\[<]; each word's first char upper, rest lower.
std::string JinjaTitle(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (std::string_view cp : SplitCodePoints(s)) {
    const uint32_t c = CodePoint(cp);
    const bool sep = PyIsSpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      AppendCp(out, c);
      word_start = true;
    } else {
      AppendCp(out, word_start ? ToUpperCp(c) : ToLowerCp(c));
      word_start = false;
    }
  }
  return out;
}

enum class StripSide { kBoth, kLeft, kRight };
std::string PyStrip(std::string_view s, const Value* chars, StripSide side) {
  const auto cps = SplitCodePoints(s);
  std::vector<std::string_view> set;
  const bool ws = chars == nullptr || chars->IsNone() || chars->IsUndefined();
  if (!ws) set = SplitCodePoints(chars->s);
  auto strip_it = [&](std::string_view cp) {
    if (ws) return PyIsSpace(CodePoint(cp));
    return std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (side != StripSide::kRight) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (side != StripSide::kLeft) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  std::string out;
  for (size_t k = b; k < e; ++k) out.append(cps[k]);
  return out;
}

std::string PyReplace(std::string_view s, std::string_view from, std::string_view to,
                      int64_t count) {
  std::string out;
  if (from.empty()) {
    int64_t n = 0;
    for (std::string_view cp : SplitCodePoints(s)) {
      if (count < 0 || n < count) {
        out.append(to);
        ++n;
      }
      out.append(cp);
    }
    if (count < 0 || n < count) out.append(to);
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t f = s.find(from, pos);
    if (f == std::string_view::npos) break;
    out.append(s.substr(pos, f - pos));
    out.append(to);
    pos = f + from.size();
    ++n;
  }
  out.append(s.substr(pos));
  return out;
}

// Python str.split(sep=None, maxsplit=-1).
List PySplit(std::string_view s, const Value* sep, int64_t maxsplit) {
  List out;
  if (sep == nullptr || sep->IsNone()) {
    const auto cps = SplitCodePoints(s);
    size_t k = 0;
    while (true) {
      while (k < cps.size() && PyIsSpace(CodePoint(cps[k]))) ++k;
      if (k >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        std::string rest;
        for (size_t j = k; j < cps.size(); ++j) rest.append(cps[j]);
        // Python strips trailing whitespace of the remainder only when it was split off.
        out.push_back(Value::Str(PyStrip(rest, nullptr, StripSide::kRight)));
        break;
      }
      std::string word;
      while (k < cps.size() && !PyIsSpace(CodePoint(cps[k]))) word.append(cps[k++]);
      out.push_back(Value::Str(std::move(word)));
    }
    return out;
  }
  const std::string& d = sep->s;
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    const size_t f = s.find(d, pos);
    if (f == std::string_view::npos) break;
    out.push_back(Value::Str(std::string(s.substr(pos, f - pos))));
    pos = f + d.size();
  }
  out.push_back(Value::Str(std::string(s.substr(pos))));
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Python slice indices over a sequence of `len` items.
absl::StatusOr<std::vector<int64_t>> SliceIndices(int64_t len, const Value& start,
                                                  const Value& stop, const Value& step, int line) {
  int64_t st = 1;
  if (!step.IsNone() && !step.IsUndefined()) {
    if (!step.IsIntLike()) return Error(line, "slice indices must be integers or None");
    st = step.AsInt();
    if (st == 0) return Error(line, "slice step cannot be zero");
  }
  auto norm = [&](const Value& v, int64_t def, bool* ok) -> int64_t {
    if (v.IsNone() || v.IsUndefined()) return def;
    if (!v.IsIntLike()) {
      *ok = false;
      return 0;
    }
    int64_t x = v.AsInt();
    if (x < 0) {
      x += len;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= len) {
      x = st < 0 ? len - 1 : len;
    }
    return x;
  };
  bool ok = true;
  const int64_t b = norm(start, st < 0 ? len - 1 : 0, &ok);
  const int64_t e = norm(stop, st < 0 ? -1 : len, &ok);
  if (!ok) return Error(line, "slice indices must be integers or None");
  std::vector<int64_t> idx;
  if (st > 0) {
    for (int64_t k = b; k < e; k += st) idx.push_back(k);
  } else {
    for (int64_t k = b; k > e; k += st) idx.push_back(k);
  }
  return idx;
}

const Value* FindKw(const Kwargs& kw, std::string_view name) {
  for (const auto& [k, v] : kw) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Argument k by position or by keyword; nullptr when neither.
const Value* Arg(const List& args, const Kwargs& kw, size_t k, std::string_view name) {
  if (k < args.size()) return &args[k];
  return FindKw(kw, name);
}

bool IsDictMethod(std::string_view n) {
  return n == "items" || n == "keys" || n == "values" || n == "get";
}
bool IsStrMethod(std::string_view n) {
  static constexpr std::string_view kNames[] = {
      "strip",   "lstrip",  "rstrip",     "split",    "rsplit",     "startswith", "endswith",
      "upper",   "lower",   "replace",    "title",    "capitalize", "join",       "find",
      "rfind",   "count",   "format",     "isdigit",  "isalpha",    "isalnum",    "isspace",
      "isupper", "islower", "splitlines", "swapcase", "index"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

Value Method(const Value& self, std::string name) {
  Value v;
  v.kind = Value::Kind::kCallable;
  v.depth = NestDepth(self) + 1;
  v.fn = std::make_shared<Callable>();
  v.fn->name = std::move(name);
  v.fn->self = self;
  return v;
}

Value Builtin(std::string name) { return Method(Value(), std::move(name)); }

// d[key] for a str or int key (True/False count as 1/0, as in Python).
const Value* FindKey(const Dict& d, const Value& key) {
  if (key.IsString()) return d.Find(key.s);
  if (key.IsIntLike()) return d.Find(std::to_string(key.AsInt()), /*is_int=*/true);
  return nullptr;
}

std::string ValueTypeForError(const Value& v) { return absl::StrCat(TypeName(v), " object"); }

}  // namespace

class Renderer {
 public:
  Renderer(const RenderOptions& options, Value context)
      : opt_(options), limits_(options.limits), ctx_(std::move(context)) {
    frames_.emplace_back();
  }
  ~Renderer() {
    // Namespaces can hold themselves (set ns.x = ns): break the cycles.
    for (auto& d : namespaces_) d->items.clear();
  }

  absl::Status Run(const Body& body, std::string& out) {
    auto flow = Exec(body, out);
    if (!flow.ok()) return flow.status();
    return absl::OkStatus();
  }

 private:
  using Frame = std::vector<std::pair<std::string, Value>>;
  enum class Flow { kNormal, kBreak, kContinue };

  // ---- scopes ----
  Value Lookup(const std::string& name) {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      for (auto it = f->rbegin(); it != f->rend(); ++it) {
        if (it->first == name) return it->second;
      }
    }
    if (ctx_.IsDict()) {
      if (const Value* v = ctx_.dict->Find(name)) return *v;
    }
    if (name == "range" || name == "dict" || name == "namespace" || name == "raise_exception" ||
        name == "strftime_now") {
      return Builtin(name);
    }
    return Value::Undefined(absl::StrCat("'", name, "' is undefined"));
  }

  void Assign(const std::string& name, Value v) {
    Frame& f = frames_.back();
    for (auto& [k, old] : f) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    f.emplace_back(name, std::move(v));
  }

  absl::Status Charge(int64_t n, int line) {
    ops_ += n;
    if (ops_ > limits_.max_operations) {
      return Error(
          line, absl::StrCat("too much work (more than ", limits_.max_operations, " operations)"));
    }
    return absl::OkStatus();
  }

  absl::Status CheckSize(size_t n, int line) const {
    if (static_cast<int64_t>(n) > limits_.max_output_bytes) {
      return Error(line, absl::StrCat("output or string longer than the limit (",
                                      limits_.max_output_bytes, " bytes)"));
    }
    return absl::OkStatus();
  }

  absl::Status Emit(std::string& out, std::string_view s, int line) {
    WEFT_RETURN_IF_ERROR(CheckSize(out.size() + s.size(), line));
    out.append(s);
    return absl::OkStatus();
  }

  // ---- statements ----
  absl::StatusOr<Flow> Exec(const Body& body, std::string& out) {
    NestingGuard guard(&nesting_);
    if (nesting_ > kMaxNesting) return Error(0, "template evaluation nested too deeply");
    for (const StmtPtr& sp : body) {
      const Stmt& s = *sp;
      WEFT_RETURN_IF_ERROR(Charge(1, s.line));
      switch (s.kind) {
        case Stmt::Kind::kText:
          WEFT_RETURN_IF_ERROR(Emit(out, s.text, s.line));
          break;
        case Stmt::Kind::kOutput: {
          WEFT_ASSIGN_OR_RETURN(Value v, Eval(*s.e[0]));
          if (v.IsString()) {
            WEFT_RETURN_IF_ERROR(Emit(out, v.s, s.line));
          } else {
            WEFT_RETURN_IF_ERROR(Emit(out, ToPyStr(v), s.line));
          }
          break;
        }
        case Stmt::Kind::kIf: {
          size_t k = 0;
          for (; k < s.e.size(); ++k) {
            WEFT_ASSIGN_OR_RETURN(Value c, Eval(*s.e[k]));
            if (Truthy(c)) break;
          }
          if (k < s.bodies.size()) {
            WEFT_ASSIGN_OR_RETURN(Flow f, Exec(s.bodies[k], out));
            if (f != Flow::kNormal) return f;
          }
          break;
        }
        case Stmt::Kind::kFor:
          WEFT_RETURN_IF_ERROR(ExecFor(s, out));
          break;
        case Stmt::Kind::kSet: {
          WEFT_ASSIGN_OR_RETURN(Value v, Eval(*s.e[0]));
          if (!s.attr.empty()) {
            Value target = Lookup(s.names[0]);
            if (!target.IsDict() || !target.dict->is_namespace) {
              return Error(s.line, "cannot assign attribute on non-namespace object");
            }
            if (NestDepth(v) >= kNamespaceDepth - 1) {
              return Error(s.line, "value nested too deeply to store in a namespace");
            }
            target.dict->Set(s.attr, std::move(v));
          } else if (s.names.size() == 1) {
            Assign(s.names[0], std::move(v));
          } else {
            WEFT_RETURN_IF_ERROR(Unpack(s.names, v, s.line));
          }
          break;
        }
        case Stmt::Kind::kSetBlock: {
          std::string inner;
          frames_.emplace_back();
          auto f = Exec(s.bodies[0], inner);
          frames_.pop_back();
          if (!f.ok()) return f.status();
          Assign(s.names[0], Value::Str(std::move(inner)));
          break;
        }
        case Stmt::Kind::kMacro: {
          Value m = Builtin(s.text);
          m.fn->macro = &s;
          Assign(s.text, std::move(m));
          break;
        }
        case Stmt::Kind::kBreak:
          return Flow::kBreak;
        case Stmt::Kind::kContinue:
          return Flow::kContinue;
        case Stmt::Kind::kFilterBlock: {
          std::string inner;
          frames_.emplace_back();
          auto f = Exec(s.bodies[0], inner);
          frames_.pop_back();
          if (!f.ok()) return f.status();
          WEFT_ASSIGN_OR_RETURN(Value v, FilterExpr(*s.e[0], Value::Str(std::move(inner))));
          WEFT_RETURN_IF_ERROR(Emit(out, ToPyStr(v), s.line));
          break;
        }
        case Stmt::Kind::kScope: {
          WEFT_ASSIGN_OR_RETURN(Flow f, Exec(s.bodies[0], out));
          if (f != Flow::kNormal) return f;
          break;
        }
      }
    }
    return Flow::kNormal;
  }

  absl::Status Unpack(const std::vector<std::string>& names, const Value& v, int line) {
    WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
    if (items.size() != names.size()) {
      return Error(
          line, items.size() > names.size()
                    ? absl::StrCat("too many values to unpack (expected ", names.size(), ")")
                    : absl::StrCat("not enough values to unpack (expected ", names.size(), ", got ",
                                   items.size(), ")"));
    }
    for (size_t k = 0; k < names.size(); ++k) Assign(names[k], std::move(items[k]));
    return absl::OkStatus();
  }

  void BindTargets(const std::vector<std::string>& names, const Value& item, int line,
                   absl::Status* st) {
    if (names.size() == 1) {
      Assign(names[0], item);
    } else {
      *st = Unpack(names, item, line);
    }
  }

  absl::Status ExecFor(const Stmt& s, std::string& out) {
    WEFT_ASSIGN_OR_RETURN(Value seq, Eval(*s.e[0]));
    WEFT_ASSIGN_OR_RETURN(List items, Iterate(seq, s.line));
    if (s.e[1]) {
      List kept;
      for (Value& item : items) {
        WEFT_RETURN_IF_ERROR(CountIteration(s.line));
        frames_.emplace_back();
        absl::Status st;
        BindTargets(s.names, item, s.line, &st);
        absl::StatusOr<Value> c = st.ok() ? Eval(*s.e[1]) : absl::StatusOr<Value>(st);
        frames_.pop_back();
        if (!c.ok()) return c.status();
        if (Truthy(*c)) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (s.bodies.size() > 1) {
        frames_.emplace_back();
        auto f = Exec(s.bodies[1], out);
        frames_.pop_back();
        if (!f.ok()) return f.status();
      }
      return absl::OkStatus();
    }
    Value loop = Value::MakeDict();
    loop.dict->is_loop = true;
    for (const Value& item : items) loop.depth = std::max(loop.depth, NestDepth(item) + 1);
    const int64_t n = static_cast<int64_t>(items.size());
    Value cycle = Builtin("loop.cycle");
    for (int64_t k = 0; k < n; ++k) {
      WEFT_RETURN_IF_ERROR(CountIteration(s.line));
      Dict& d = *loop.dict;
      d.items.clear();
      d.items.emplace_back("index", Value::Int(k + 1));
      d.items.emplace_back("index0", Value::Int(k));
      d.items.emplace_back("revindex", Value::Int(n - k));
      d.items.emplace_back("revindex0", Value::Int(n - k - 1));
      d.items.emplace_back("first", Value::Bool(k == 0));
      d.items.emplace_back("last", Value::Bool(k == n - 1));
      d.items.emplace_back("length", Value::Int(n));
      d.items.emplace_back("depth", Value::Int(1));
      d.items.emplace_back("depth0", Value::Int(0));
      d.items.emplace_back("previtem",
                           k > 0 ? items[k - 1] : Value::Undefined("there is no previous item"));
      d.items.emplace_back("nextitem",
                           k + 1 < n ? items[k + 1] : Value::Undefined("there is no next item"));
      cycle.fn->self = Value::Int(k);
      d.items.emplace_back("cycle", cycle);
      frames_.emplace_back();
      absl::Status st;
      BindTargets(s.names, items[k], s.line, &st);
      Assign("loop", loop);
      absl::StatusOr<Flow> f = st.ok() ? Exec(s.bodies[0], out) : absl::StatusOr<Flow>(st);
      frames_.pop_back();
      if (!f.ok()) {
        d.items.clear();
        return f.status();
      }
      if (*f == Flow::kBreak) break;
    }
    loop.dict->items.clear();  // drops the cycle -> loop reference
    return absl::OkStatus();
  }

  absl::Status CountIteration(int line) {
    if (++iterations_ > limits_.max_loop_iterations) {
      return Error(line, absl::StrCat("too many loop iterations (more than ",
                                      limits_.max_loop_iterations, ")"));
    }
    return absl::OkStatus();
  }

  // ---- expressions ----
  absl::StatusOr<Value> Eval(const Expr& e) {
    WEFT_RETURN_IF_ERROR(Charge(1, e.line));
    NestingGuard guard(&nesting_);
    if (nesting_ > kMaxNesting) return Error(e.line, "template evaluation nested too deeply");
    auto v = EvalInner(e);
    if (v.ok()) {
      if (v->IsString()) WEFT_RETURN_IF_ERROR(CheckSize(v->s.size(), e.line));
      if (v->depth > kMaxValueDepth) return Error(e.line, "value nested too deeply");
    }
    return v;
  }

  struct NestingGuard {
    explicit NestingGuard(int* n) : n_(n) { ++*n_; }
    ~NestingGuard() { --*n_; }
    int* n_;
  };
  // Bounds the interpreter's recursion (expressions, blocks, macro calls together).
  static constexpr int kMaxNesting = 768;

  absl::StatusOr<List> EvalArgs(const Expr& e, size_t first, Kwargs* kwargs) {
    List args;
    for (size_t k = first; k < e.a.size(); ++k) {
      WEFT_ASSIGN_OR_RETURN(Value v, Eval(*e.a[k]));
      args.push_back(std::move(v));
    }
    for (const auto& [name, ex] : e.kwargs) {
      WEFT_ASSIGN_OR_RETURN(Value v, Eval(*ex));
      kwargs->emplace_back(name, std::move(v));
    }
    return args;
  }

  absl::StatusOr<Value> EvalInner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.literal;
      case Expr::Kind::kName:
        return Lookup(e.name);
      case Expr::Kind::kGetAttr: {
        WEFT_ASSIGN_OR_RETURN(Value obj, Eval(*e.a[0]));
        return GetAttr(obj, e.name, e.line);
      }
      case Expr::Kind::kGetItem: {
        WEFT_ASSIGN_OR_RETURN(Value obj, Eval(*e.a[0]));
        WEFT_ASSIGN_OR_RETURN(Value key, Eval(*e.a[1]));
        return GetItem(obj, key, e.line);
      }
      case Expr::Kind::kSlice: {
        WEFT_ASSIGN_OR_RETURN(Value obj, Eval(*e.a[0]));
        Value parts[3] = {Value::None(), Value::None(), Value::None()};
        for (int k = 0; k < 3; ++k) {
          if (e.a[k + 1]) {
            WEFT_ASSIGN_OR_RETURN(parts[k], Eval(*e.a[k + 1]));
          }
        }
        return Slice(obj, parts[0], parts[1], parts[2], e.line);
      }
      case Expr::Kind::kCall: {
        WEFT_ASSIGN_OR_RETURN(Value callee, Eval(*e.a[0]));
        Kwargs kwargs;
        WEFT_ASSIGN_OR_RETURN(List args, EvalArgs(e, 1, &kwargs));
        return Call(callee, args, kwargs, e.line);
      }
      case Expr::Kind::kFilter: {
        WEFT_ASSIGN_OR_RETURN(Value subject, Eval(*e.a[0]));
        return FilterExpr(e, std::move(subject));
      }
      case Expr::Kind::kTest: {
        WEFT_ASSIGN_OR_RETURN(Value subject, Eval(*e.a[0]));
        Kwargs kwargs;
        WEFT_ASSIGN_OR_RETURN(List args, EvalArgs(e, 1, &kwargs));
        WEFT_ASSIGN_OR_RETURN(bool r, ApplyTest(e.name, subject, args, e.line));
        return Value::Bool(r != e.negated);
      }
      case Expr::Kind::kUnary: {
        WEFT_ASSIGN_OR_RETURN(Value v, Eval(*e.a[0]));
        if (e.name == "not") return Value::Bool(!Truthy(v));
        if (v.IsUndefined()) return Error(e.line, v.s);
        if (!v.IsNumber()) {
          return Error(
              e.line, absl::StrCat("bad operand type for unary ", e.name, ": '", TypeName(v), "'"));
        }
        if (e.name == "+") return v.kind == Value::Kind::kBool ? Value::Int(v.AsInt()) : v;
        if (v.kind == Value::Kind::kFloat) return Value::Float(-v.f);
        if (v.AsInt() == std::numeric_limits<int64_t>::min()) {
          return Error(e.line, "integer overflow");
        }
        return Value::Int(-v.AsInt());
      }
      case Expr::Kind::kBinary: {
        WEFT_ASSIGN_OR_RETURN(Value l, Eval(*e.a[0]));
        if (e.name == "and") {
          if (!Truthy(l)) return l;
          return Eval(*e.a[1]);
        }
        if (e.name == "or") {
          if (Truthy(l)) return l;
          return Eval(*e.a[1]);
        }
        WEFT_ASSIGN_OR_RETURN(Value r, Eval(*e.a[1]));
        return Arith(e.name, l, r, e.line);
      }
      case Expr::Kind::kCompare: {
        WEFT_ASSIGN_OR_RETURN(Value l, Eval(*e.a[0]));
        for (size_t k = 0; k < e.ops.size(); ++k) {
          WEFT_ASSIGN_OR_RETURN(Value r, Eval(*e.a[k + 1]));
          WEFT_ASSIGN_OR_RETURN(bool ok, Compare(e.ops[k], l, r, e.line));
          if (!ok) return Value::Bool(false);
          l = std::move(r);
        }
        return Value::Bool(true);
      }
      case Expr::Kind::kCond: {
        WEFT_ASSIGN_OR_RETURN(Value c, Eval(*e.a[1]));
        if (Truthy(c)) return Eval(*e.a[0]);
        if (e.a[2]) return Eval(*e.a[2]);
        return Value::Undefined(
            "the inline if-expression evaluated to false and no else section was defined.");
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        for (const ExprPtr& x : e.a) {
          WEFT_ASSIGN_OR_RETURN(Value v, Eval(*x));
          items.push_back(std::move(v));
        }
        return Value::MakeList(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Value d = Value::MakeDict();
        for (size_t k = 0; k + 1 < e.a.size(); k += 2) {
          WEFT_ASSIGN_OR_RETURN(Value key, Eval(*e.a[k]));
          WEFT_ASSIGN_OR_RETURN(Value v, Eval(*e.a[k + 1]));
          if (key.IsString()) {
            d.dict->Set(key.s, std::move(v));
          } else if (key.IsIntLike()) {
            d.dict->Set(std::to_string(key.AsInt()), std::move(v), /*is_int=*/true);
          } else {
            return Error(e.line, "only str and int dict keys are supported");
          }
        }
        ComputeDepth(d);
        return d;
      }
    }
    return Error(e.line, "unknown expression");
  }

  absl::StatusOr<Value> GetAttr(const Value& obj, const std::string& name, int line) {
    switch (obj.kind) {
      case Value::Kind::kUndefined:
        return Error(line, obj.s);
      case Value::Kind::kDict:
        if (!obj.dict->is_namespace && !obj.dict->is_loop && IsDictMethod(name)) {
          return Method(obj, absl::StrCat("dict.", name));
        }
        if (const Value* v = obj.dict->Find(name)) return *v;
        break;
      case Value::Kind::kString:
        if (IsStrMethod(name)) return Method(obj, absl::StrCat("str.", name));
        break;
      case Value::Kind::kList:
        if (name == "index" || name == "count") return Method(obj, absl::StrCat("list.", name));
        break;
      default:
        break;
    }
    return Value::Undefined(
        absl::StrCat("'", ValueTypeForError(obj), "' has no attribute '", name, "'"));
  }

  absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, int line) {
    switch (obj.kind) {
      case Value::Kind::kUndefined:
        return Error(line, obj.s);
      case Value::Kind::kDict:
        if (const Value* v = FindKey(*obj.dict, key)) return *v;
        if (key.IsString()) return GetAttr(obj, key.s, line);
        break;
      case Value::Kind::kList:
      case Value::Kind::kString:
        if (key.IsIntLike()) {
          int64_t i = key.AsInt();
          if (obj.IsList()) {
            const int64_t n = static_cast<int64_t>(obj.list->size());
            if (i < 0) i += n;
            if (i >= 0 && i < n) return (*obj.list)[static_cast<size_t>(i)];
          } else {
            const auto cps = SplitCodePoints(obj.s);
            const int64_t n = static_cast<int64_t>(cps.size());
            if (i < 0) i += n;
            if (i >= 0 && i < n) return Value::Str(std::string(cps[static_cast<size_t>(i)]));
          }
        } else if (key.IsString()) {
          return GetAttr(obj, key.s, line);
        }
        break;
      default:
        if (key.IsString()) return GetAttr(obj, key.s, line);
        break;
    }
    return Value::Undefined(
        absl::StrCat("'", ValueTypeForError(obj), "' has no attribute '", ToPyStr(key), "'"));
  }

  absl::StatusOr<Value> Slice(const Value& obj, const Value& b, const Value& e, const Value& st,
                              int line) {
    if (obj.IsUndefined()) return Error(line, obj.s);
    if (obj.IsList()) {
      WEFT_ASSIGN_OR_RETURN(auto idx,
                            SliceIndices(static_cast<int64_t>(obj.list->size()), b, e, st, line));
      List out;
      out.reserve(idx.size());
      for (int64_t k : idx) out.push_back((*obj.list)[static_cast<size_t>(k)]);
      return Value::MakeList(std::move(out), obj.is_tuple);
    }
    if (obj.IsString()) {
      const auto cps = SplitCodePoints(obj.s);
      WEFT_ASSIGN_OR_RETURN(auto idx,
                            SliceIndices(static_cast<int64_t>(cps.size()), b, e, st, line));
      std::string out;
      for (int64_t k : idx) out.append(cps[static_cast<size_t>(k)]);
      return Value::Str(std::move(out));
    }
    return Error(line, absl::StrCat("'", TypeName(obj), "' object is not subscriptable"));
  }

  absl::StatusOr<List> Iterate(const Value& v, int line) {
    switch (v.kind) {
      case Value::Kind::kUndefined:
        return List{};
      case Value::Kind::kList:
        return *v.list;
      case Value::Kind::kDict: {
        if (v.dict->is_namespace || v.dict->is_loop) break;
        List keys;
        for (size_t k = 0; k < v.dict->items.size(); ++k) keys.push_back(v.dict->KeyAt(k));
        return keys;
      }
      case Value::Kind::kString: {
        List chars;
        for (std::string_view cp : SplitCodePoints(v.s))
          chars.push_back(Value::Str(std::string(cp)));
        return chars;
      }
      default:
        break;
    }
    return Error(line, absl::StrCat("'", TypeName(v), "' object is not iterable"));
  }

  static absl::Status OperandError(const std::string& op, const Value& l, const Value& r,
                                   int line) {
    if (l.IsUndefined()) return Error(line, l.s);
    if (r.IsUndefined()) return Error(line, r.s);
    if (op == "+" && l.IsString()) {
      return Error(line,
                   absl::StrCat("can only concatenate str (not \"", TypeName(r), "\") to str"));
    }
    if (op == "+" && l.IsList() && !l.is_tuple) {
      return Error(line,
                   absl::StrCat("can only concatenate list (not \"", TypeName(r), "\") to list"));
    }
    return Error(line, absl::StrCat("unsupported operand type(s) for ", op, ": '", TypeName(l),
                                    "' and '", TypeName(r), "'"));
  }

  absl::StatusOr<Value> Arith(const std::string& op, const Value& l, const Value& r, int line) {
    if (op == "~") {
      std::string s = ToPyStr(l);
      s += ToPyStr(r);
      return Value::Str(std::move(s));
    }
    const bool nums = l.IsNumber() && r.IsNumber();
    const bool ints = l.IsIntLike() && r.IsIntLike();
    if (op == "+") {
      if (ints) {
        int64_t out;
        if (__builtin_add_overflow(l.AsInt(), r.AsInt(), &out))
          return Error(line, "integer overflow");
        return Value::Int(out);
      }
      if (nums) return Value::Float(l.AsDouble() + r.AsDouble());
      if (l.IsString() && r.IsString()) {
        if (l.safe || r.safe) {
          // markupsafe: Markup + str escapes the plain str, and the result is Markup.
          std::string out = l.safe ? l.s : HtmlEscape(l.s);
          out += r.safe ? r.s : HtmlEscape(r.s);
          WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
          Value v = Value::Str(std::move(out));
          v.safe = true;
          return v;
        }
        WEFT_RETURN_IF_ERROR(CheckSize(l.s.size() + r.s.size(), line));
        return Value::Str(l.s + r.s);
      }
      if (l.IsList() && r.IsList() && l.is_tuple == r.is_tuple) {
        WEFT_RETURN_IF_ERROR(CheckListSize(l.list->size() + r.list->size(), line));
        List out = *l.list;
        out.insert(out.end(), r.list->begin(), r.list->end());
        return Value::MakeList(std::move(out), l.is_tuple);
      }
      return OperandError(op, l, r, line);
    }
    if (op == "-") {
      if (ints) {
        int64_t out;
        if (__builtin_sub_overflow(l.AsInt(), r.AsInt(), &out))
          return Error(line, "integer overflow");
        return Value::Int(out);
      }
      if (nums) return Value::Float(l.AsDouble() - r.AsDouble());
      return OperandError(op, l, r, line);
    }
    if (op == "*") {
      if (ints) {
        int64_t out;
        if (__builtin_mul_overflow(l.AsInt(), r.AsInt(), &out))
          return Error(line, "integer overflow");
        return Value::Int(out);
      }
      if (nums) return Value::Float(l.AsDouble() * r.AsDouble());
      const Value* seq = l.IsIntLike() ? &r : &l;
      const Value* count = l.IsIntLike() ? &l : &r;
      if (count->IsIntLike() && (seq->IsString() || seq->IsList())) {
        const int64_t n = std::max<int64_t>(0, count->AsInt());
        if (seq->IsString()) {
          if (n > 0 && !seq->s.empty()) {
            WEFT_RETURN_IF_ERROR(
                CheckSize(static_cast<size_t>(std::min<int64_t>(n, limits_.max_output_bytes + 1)) *
                              seq->s.size(),
                          line));
          }
          std::string out;
          for (int64_t k = 0; k < n && !seq->s.empty(); ++k) out += seq->s;
          return Value::Str(std::move(out));
        }
        if (n > 0 && !seq->list->empty()) {
          WEFT_RETURN_IF_ERROR(CheckListSize(
              static_cast<size_t>(std::min<int64_t>(n, limits_.max_loop_iterations + 1)) *
                  seq->list->size(),
              line));
        }
        List out;
        for (int64_t k = 0; k < n && !seq->list->empty(); ++k) {
          out.insert(out.end(), seq->list->begin(), seq->list->end());
        }
        return Value::MakeList(std::move(out), seq->is_tuple);
      }
      return OperandError(op, l, r, line);
    }
    if (!nums) return OperandError(op, l, r, line);
    if (op == "/") {
      if (r.AsDouble() == 0) return Error(line, "division by zero");
      return Value::Float(l.AsDouble() / r.AsDouble());
    }
    if (op == "//" || op == "%") {
      if (ints) {
        const int64_t a = l.AsInt(), b = r.AsInt();
        if (b == 0) return Error(line, "integer division or modulo by zero");
        if (a == std::numeric_limits<int64_t>::min() && b == -1)
          return Error(line, "integer overflow");
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {
          --q;
          m += b;
        }
        return Value::Int(op == "//" ? q : m);
      }
      const double a = l.AsDouble(), b = r.AsDouble();
      if (b == 0) return Error(line, "float division by zero");
      if (op == "//") return Value::Float(std::floor(a / b));
      double m = std::fmod(a, b);
      if (m != 0 && ((m < 0) != (b < 0))) m += b;
      return Value::Float(m);
    }
    if (op == "**") {
      if (ints && r.AsInt() >= 0) {
        int64_t base = l.AsInt(), exp = r.AsInt(), out = 1;
        while (exp > 0) {
          if (exp & 1) {
            if (__builtin_mul_overflow(out, base, &out)) return Error(line, "integer overflow");
          }
          exp >>= 1;
          if (exp > 0 && __builtin_mul_overflow(base, base, &base)) {
            return Error(line, "integer overflow");
          }
        }
        return Value::Int(out);
      }
      return Value::Float(std::pow(l.AsDouble(), r.AsDouble()));
    }
    return Error(line, absl::StrCat("unknown operator ", op));
  }

  absl::Status CheckListSize(size_t n, int line) const {
    if (static_cast<int64_t>(n) > limits_.max_loop_iterations) {
      return Error(line, "list longer than the limit");
    }
    return absl::OkStatus();
  }

  // Python `<` for sortable values; `fold` compares strings case-insensitively.
  absl::StatusOr<bool> Less(const Value& a, const Value& b, bool fold, int line) {
    if (a.IsNumber() && b.IsNumber()) {
      if (a.kind == Value::Kind::kFloat || b.kind == Value::Kind::kFloat) {
        return a.AsDouble() < b.AsDouble();
      }
      return a.AsInt() < b.AsInt();
    }
    if (a.IsString() && b.IsString()) return fold ? Lower(a.s) < Lower(b.s) : a.s < b.s;
    if (a.IsList() && b.IsList()) {
      const size_t n = std::min(a.list->size(), b.list->size());
      for (size_t k = 0; k < n; ++k) {
        const Value& x = (*a.list)[k];
        const Value& y = (*b.list)[k];
        if (PyEquals(x, y)) continue;
        return Less(x, y, fold, line);
      }
      return a.list->size() < b.list->size();
    }
    if (a.IsUndefined()) return Error(line, a.s);
    if (b.IsUndefined()) return Error(line, b.s);
    return Error(line, absl::StrCat("'<' not supported between instances of '", TypeName(a),
                                    "' and '", TypeName(b), "'"));
  }

  absl::StatusOr<bool> Contains(const Value& container, const Value& item, int line) {
    switch (container.kind) {
      case Value::Kind::kString:
        if (!item.IsString()) {
          if (item.IsUndefined()) return Error(line, item.s);
          return Error(line, absl::StrCat("'in <string>' requires string as left operand, not ",
                                          TypeName(item)));
        }
        return container.s.find(item.s) != std::string::npos;
      case Value::Kind::kList:
        for (const Value& v : *container.list) {
          if (PyEquals(v, item)) return true;
        }
        return false;
      case Value::Kind::kDict:
        return FindKey(*container.dict, item) != nullptr;
      case Value::Kind::kUndefined:
        return false;
      default:
        return Error(line,
                     absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
    }
  }

  absl::StatusOr<bool> Compare(const std::string& op, const Value& l, const Value& r, int line) {
    if (op == "==") return PyEquals(l, r);
    if (op == "!=") return !PyEquals(l, r);
    if (op == "in") return Contains(r, l, line);
    if (op == "notin") {
      WEFT_ASSIGN_OR_RETURN(bool c, Contains(r, l, line));
      return !c;
    }
    if (op == "<") return Less(l, r, false, line);
    if (op == ">") return Less(r, l, false, line);
    if (op == "<=") {
      WEFT_ASSIGN_OR_RETURN(bool gt, Less(r, l, false, line));
      return !gt;
    }
    if (op == ">=") {
      WEFT_ASSIGN_OR_RETURN(bool lt, Less(l, r, false, line));
      return !lt;
    }
    return Error(line, absl::StrCat("unknown comparison ", op));
  }

  // ---- calls ----
  absl::StatusOr<Value> Call(const Value& callee, const List& args, const Kwargs& kw, int line) {
    if (callee.IsUndefined()) return Error(line, callee.s);
    if (callee.kind != Value::Kind::kCallable) {
      return Error(line, absl::StrCat("'", TypeName(callee), "' object is not callable"));
    }
    const Callable& fn = *callee.fn;
    if (fn.macro != nullptr) return CallMacro(fn, args, kw, line);
    const std::string& n = fn.name;
    if (n == "raise_exception") {
      const Value* msg = Arg(args, kw, 0, "message");
      return absl::InvalidArgumentError(msg ? ToPyStr(*msg) : "raise_exception called");
    }
    if (n == "strftime_now") {
      const Value* fmt = Arg(args, kw, 0, "format");
      const std::string f = fmt ? ToPyStr(*fmt) : "";
      if (opt_.strftime_now) return Value::Str(opt_.strftime_now(f));
      std::time_t now = std::time(nullptr);
      std::tm tm_buf{};
      localtime_r(&now, &tm_buf);
      char buf[256];
      const size_t len = f.empty() ? 0 : std::strftime(buf, sizeof(buf), f.c_str(), &tm_buf);
      return Value::Str(std::string(buf, len));
    }
    if (n == "namespace" || n == "dict") {
      Value d = Value::MakeDict();
      for (const Value& a : args) {
        if (!a.IsDict())
          return Error(line, absl::StrCat(n, "() positional argument must be a dict"));
        for (const auto& [k, v] : a.dict->items) d.dict->Set(k, v);
      }
      for (const auto& [k, v] : kw) d.dict->Set(k, v);
      ComputeDepth(d);
      if (n == "namespace") {
        if (d.depth >= kNamespaceDepth)
          return Error(line, "value nested too deeply to store in a namespace");
        d.dict->is_namespace = true;
        namespaces_.push_back(d.dict);
      }
      return d;
    }
    if (n == "range") {
      int64_t start = 0, stop = 0, step = 1;
      for (const Value& a : args) {
        if (!a.IsIntLike()) return Error(line, "range() arguments must be integers");
      }
      if (args.size() == 1) {
        stop = args[0].AsInt();
      } else if (args.size() == 2 || args.size() == 3) {
        start = args[0].AsInt();
        stop = args[1].AsInt();
        if (args.size() == 3) step = args[2].AsInt();
      } else {
        return Error(line, "range expected 1 to 3 arguments");
      }
      if (step == 0) return Error(line, "range() arg 3 must not be zero");
      List out;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        if (static_cast<int64_t>(out.size()) >= limits_.max_loop_iterations) {
          return Error(line, "range() longer than the loop iteration limit");
        }
        out.push_back(Value::Int(k));
        if ((step > 0 && k > std::numeric_limits<int64_t>::max() - step) ||
            (step < 0 && k < std::numeric_limits<int64_t>::min() - step)) {
          break;
        }
      }
      return Value::MakeList(std::move(out));
    }
    if (n == "loop.cycle") {
      if (args.empty()) return Error(line, "no items for cycling given");
      return args[static_cast<size_t>(fn.self.AsInt() % static_cast<int64_t>(args.size()))];
    }
    if (n.rfind("dict.", 0) == 0) return DictMethod(n.substr(5), fn.self, args, kw, line);
    if (n.rfind("str.", 0) == 0) return StrMethod(n.substr(4), fn.self, args, kw, line);
    if (n.rfind("list.", 0) == 0) {
      if (args.size() != 1) return Error(line, absl::StrCat(n, "() takes exactly one argument"));
      int64_t count = 0;
      for (size_t k = 0; k < fn.self.list->size(); ++k) {
        if (PyEquals((*fn.self.list)[k], args[0])) {
          if (n == "list.index") return Value::Int(static_cast<int64_t>(k));
          ++count;
        }
      }
      if (n == "list.index") return Error(line, "value is not in list");
      return Value::Int(count);
    }
    return Error(line, absl::StrCat("'", n, "' is not callable"));
  }

  absl::StatusOr<Value> CallMacro(const Callable& fn, const List& args, const Kwargs& kw,
                                  int line) {
    const Stmt& m = *fn.macro;
    if (call_depth_ >= limits_.max_call_depth) {
      return Error(line, "macro calls nested too deeply");
    }
    if (args.size() > m.names.size()) {
      return Error(line, absl::StrCat("macro '", m.text, "' takes not more than ", m.names.size(),
                                      " argument(s)"));
    }
    for (const auto& [k, v] : kw) {
      if (std::find(m.names.begin(), m.names.end(), k) == m.names.end()) {
        return Error(line,
                     absl::StrCat("macro '", m.text, "' takes no keyword argument '", k, "'"));
      }
    }
    // A macro sees the template's top-level names and its parameters; defaults may use the
    // parameters before them.
    std::vector<Frame> saved = std::move(frames_);
    frames_.clear();
    frames_.push_back(saved.front());
    frames_.emplace_back();
    ++call_depth_;
    std::string out;
    absl::StatusOr<Flow> f = Flow::kNormal;
    for (size_t k = 0; k < m.names.size() && f.ok(); ++k) {
      if (k < args.size()) {
        Assign(m.names[k], args[k]);
      } else if (const Value* v = FindKw(kw, m.names[k])) {
        Assign(m.names[k], *v);
      } else if (m.e[k]) {
        auto d = Eval(*m.e[k]);
        if (d.ok()) {
          Assign(m.names[k], *std::move(d));
        } else {
          f = d.status();
        }
      } else {
        Assign(m.names[k], Value::Undefined(absl::StrCat("'", m.names[k], "' is undefined")));
      }
    }
    if (f.ok()) f = Exec(m.bodies[0], out);
    --call_depth_;
    frames_ = std::move(saved);
    if (!f.ok()) return f.status();
    return Value::Str(std::move(out));
  }

  absl::StatusOr<Value> DictMethod(const std::string& n, const Value& self, const List& args,
                                   const Kwargs& kw, int line) {
    const Dict& d = *self.dict;
    if (n == "items" || n == "keys" || n == "values") {
      List out;
      for (size_t k = 0; k < d.items.size(); ++k) {
        if (n == "items") {
          out.push_back(Value::MakeList({d.KeyAt(k), d.items[k].second}, true));
        } else {
          out.push_back(n == "keys" ? d.KeyAt(k) : d.items[k].second);
        }
      }
      return Value::MakeList(std::move(out));
    }
    if (n == "get") {
      const Value* key = Arg(args, kw, 0, "key");
      if (key == nullptr) return Error(line, "get expected at least 1 argument");
      if (const Value* v = FindKey(d, *key)) return *v;
      const Value* def = Arg(args, kw, 1, "default");
      return def ? *def : Value::None();
    }
    return Error(line, absl::StrCat("dict has no method ", n));
  }

  absl::StatusOr<Value> StrMethod(const std::string& n, const Value& self, const List& args,
                                  const Kwargs& kw, int line) {
    const std::string& s = self.s;
    auto str_arg = [&](size_t k, std::string_view name) -> absl::StatusOr<const Value*> {
      const Value* v = Arg(args, kw, k, name);
      if (v != nullptr && !v->IsString() && !v->IsNone()) {
        return Error(
            line, absl::StrCat("str.", n, "() argument must be str or None, not ", TypeName(*v)));
      }
      return v;
    };
    if (n == "strip" || n == "lstrip" || n == "rstrip") {
      WEFT_ASSIGN_OR_RETURN(const Value* chars, str_arg(0, "chars"));
      return Value::Str(PyStrip(s, chars,
                                n == "strip"    ? StripSide::kBoth
                                : n == "lstrip" ? StripSide::kLeft
                                                : StripSide::kRight));
    }
    if (n == "split" || n == "rsplit") {
      WEFT_ASSIGN_OR_RETURN(const Value* sep, str_arg(0, "sep"));
      const Value* ms = Arg(args, kw, 1, "maxsplit");
      const int64_t maxsplit = ms && ms->IsIntLike() ? ms->AsInt() : -1;
      if (sep && sep->IsString() && sep->s.empty()) return Error(line, "empty separator");
      if (n == "rsplit" && maxsplit >= 0) {
        // rsplit with a limit: split everything, then re-join the leading pieces.
        List all = PySplit(s, sep, -1);
        if (static_cast<int64_t>(all.size()) <= maxsplit + 1 || sep == nullptr || sep->IsNone()) {
          if (sep == nullptr || sep->IsNone()) {
            if (static_cast<int64_t>(all.size()) <= maxsplit + 1)
              return Value::MakeList(std::move(all));
            return Error(line, "rsplit(None, maxsplit) is not supported");
          }
          return Value::MakeList(std::move(all));
        }
        const size_t head = all.size() - static_cast<size_t>(maxsplit);
        std::string first;
        for (size_t k = 0; k < head; ++k) {
          if (k) first += sep->s;
          first += all[k].s;
        }
        List out{Value::Str(std::move(first))};
        out.insert(out.end(), all.begin() + static_cast<std::ptrdiff_t>(head), all.end());
        return Value::MakeList(std::move(out));
      }
      return Value::MakeList(PySplit(s, sep, maxsplit));
    }
    if (n == "startswith" || n == "endswith") {
      const Value* p = Arg(args, kw, 0, "prefix");
      if (p == nullptr) return Error(line, absl::StrCat(n, "() takes at least 1 argument"));
      std::vector<std::string> cands;
      if (p->IsString()) {
        cands.push_back(p->s);
      } else if (p->IsList() && p->is_tuple) {
        for (const Value& v : *p->list) {
          if (!v.IsString()) return Error(line, absl::StrCat(n, "() tuple items must be str"));
          cands.push_back(v.s);
        }
      } else {
        return Error(
            line, absl::StrCat(n, " first arg must be str or a tuple of str, not ", TypeName(*p)));
      }
      for (const std::string& c : cands) {
        if (n == "startswith"
                ? s.rfind(c, 0) == 0
                : (s.size() >= c.size() && s.compare(s.size() - c.size(), c.size(), c) == 0)) {
          return Value::Bool(true);
        }
      }
      return Value::Bool(false);
    }
    if (n == "upper") return Value::Str(Upper(s));
    if (n == "lower") return Value::Str(Lower(s));
    if (n == "title") return Value::Str(PyTitle(s));
    if (n == "capitalize") return Value::Str(Capitalize(s));
    if (n == "swapcase") {
      return Value::Str(MapCps(s, [](uint32_t c) {
        const uint32_t u = ToUpperCp(c);
        return u != c ? u : ToLowerCp(c);
      }));
    }
    if (n == "replace") {
      const Value* from = Arg(args, kw, 0, "old");
      const Value* to = Arg(args, kw, 1, "new");
      const Value* count = Arg(args, kw, 2, "count");
      if (!from || !to || !from->IsString() || !to->IsString()) {
        return Error(line, "replace() arguments must be str");
      }
      if (!from->s.empty() || !to->s.empty()) {
        WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(s.size()), line));
      }
      std::string out =
          PyReplace(s, from->s, to->s, count && count->IsIntLike() ? count->AsInt() : -1);
      WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
      return Value::Str(std::move(out));
    }
    if (n == "join") {
      const Value* it = Arg(args, kw, 0, "iterable");
      if (it == nullptr) return Error(line, "join() takes exactly one argument");
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(*it, line));
      std::string out;
      for (size_t k = 0; k < items.size(); ++k) {
        if (!items[k].IsString()) {
          return Error(line, absl::StrCat("sequence item ", k, ": expected str instance, ",
                                          TypeName(items[k]), " found"));
        }
        if (k) out += s;
        out += items[k].s;
        WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
      }
      return Value::Str(std::move(out));
    }
    if (n == "find" || n == "rfind" || n == "index" || n == "count") {
      const Value* sub = Arg(args, kw, 0, "sub");
      if (sub == nullptr || !sub->IsString())
        return Error(line, absl::StrCat(n, "() argument must be str"));
      if (n == "count") {
        if (sub->s.empty()) return Value::Int(static_cast<int64_t>(SplitCodePoints(s).size()) + 1);
        int64_t c = 0;
        for (size_t p = s.find(sub->s); p != std::string::npos;
             p = s.find(sub->s, p + sub->s.size()))
          ++c;
        return Value::Int(c);
      }
      const size_t p = n == "rfind" ? s.rfind(sub->s) : s.find(sub->s);
      if (p == std::string::npos) {
        if (n == "index") return Error(line, "substring not found");
        return Value::Int(-1);
      }
      return Value::Int(
          static_cast<int64_t>(SplitCodePoints(std::string_view(s).substr(0, p)).size()));
    }
    if (n == "isdigit" || n == "isalpha" || n == "isalnum" || n == "isspace" || n == "isupper" ||
        n == "islower") {
      if (s.empty()) return Value::Bool(false);
      bool all = true, any_cased = false;
      for (std::string_view cp : SplitCodePoints(s)) {
        const uint32_t c = CodePoint(cp);
        const bool digit = c >= '0' && c <= '9';
        const bool alpha = IsCased(c);
        if (n == "isdigit") all = all && digit;
        if (n == "isalpha") all = all && alpha;
        if (n == "isalnum") all = all && (alpha || digit);
        if (n == "isspace") all = all && PyIsSpace(c);
        if (n == "isupper") {
          all = all && ToUpperCp(c) == c;
          any_cased = any_cased || alpha;
        }
        if (n == "islower") {
          all = all && ToLowerCp(c) == c;
          any_cased = any_cased || alpha;
        }
      }
      if (n == "isupper" || n == "islower") return Value::Bool(all && any_cased);
      return Value::Bool(all);
    }
    if (n == "splitlines") {
      List out;
      std::string cur;
      for (size_t k = 0; k < s.size(); ++k) {
        if (s[k] == '\n' || s[k] == '\r') {
          out.push_back(Value::Str(std::move(cur)));
          cur.clear();
          if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
        } else {
          cur += s[k];
        }
      }
      if (!cur.empty()) out.push_back(Value::Str(std::move(cur)));
      return Value::MakeList(std::move(out));
    }
    if (n == "format") return Format(s, args, kw, line);
    return Error(line, absl::StrCat("str has no method ", n));
  }

  // str.format with {} / {0} / {name} fields (no format specs or conversions).
  absl::StatusOr<Value> Format(const std::string& s, const List& args, const Kwargs& kw, int line) {
    std::string out;
    size_t auto_idx = 0;
    for (size_t k = 0; k < s.size(); ++k) {
      const char c = s[k];
      if (c == '{' && k + 1 < s.size() && s[k + 1] == '{') {
        out += '{';
        ++k;
        continue;
      }
      if (c == '}' && k + 1 < s.size() && s[k + 1] == '}') {
        out += '}';
        ++k;
        continue;
      }
      if (c == '}') return Error(line, "Single '}' encountered in format string");
      if (c != '{') {
        out += c;
        continue;
      }
      const size_t close = s.find('}', k);
      if (close == std::string::npos) return Error(line, "Single '{' encountered in format string");
      const std::string field = s.substr(k + 1, close - k - 1);
      if (field.find_first_of(":!.[") != std::string::npos) {
        return Error(line, "format specs and conversions are not supported in str.format");
      }
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_idx < args.size()) v = &args[auto_idx++];
      } else if (std::all_of(field.begin(), field.end(),
                             [](char ch) { return ch >= '0' && ch <= '9'; })) {
        const size_t idx = static_cast<size_t>(std::strtoull(field.c_str(), nullptr, 10));
        if (idx < args.size()) v = &args[idx];
      } else {
        v = FindKw(kw, field);
      }
      if (v == nullptr)
        return Error(line, absl::StrCat("format: no value for field '", field, "'"));
      out += ToPyStr(*v);
      WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
      k = close;
    }
    return Value::Str(std::move(out));
  }

  // ---- filters ----
  absl::StatusOr<Value> FilterExpr(const Expr& e, Value subject) {
    Kwargs kwargs;
    WEFT_ASSIGN_OR_RETURN(List args, EvalArgs(e, 1, &kwargs));
    return ApplyFilter(e.name, subject, args, kwargs, e.line);
  }

  // Jinja's attribute lookup for map/selectattr/sort(attribute=...): dotted path, items first.
  absl::StatusOr<Value> AttrPath(const Value& v, const std::string& path, int line) {
    Value cur = v;
    size_t pos = 0;
    while (true) {
      const size_t dot = path.find('.', pos);
      const std::string part =
          path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
      Value key = Value::Str(part);
      if (!part.empty() &&
          std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        key = Value::Int(std::strtoll(part.c_str(), nullptr, 10));
      }
      WEFT_ASSIGN_OR_RETURN(cur, GetItem(cur, key, line));
      if (dot == std::string::npos) return cur;
      pos = dot + 1;
    }
  }

  absl::StatusOr<std::vector<Value>> SortedValues(List items, bool reverse, bool case_sensitive,
                                                  const Value* attribute, int line) {
    std::vector<std::pair<Value, Value>> keyed;
    for (Value& v : items) {
      Value key = v;
      if (attribute && attribute->IsString()) {
        WEFT_ASSIGN_OR_RETURN(key, AttrPath(v, attribute->s, line));
      }
      keyed.emplace_back(std::move(key), std::move(v));
    }
    WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(keyed.size()) * 20, line));
    absl::Status st;
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
      if (!st.ok()) return false;
      auto lt = reverse ? Less(b.first, a.first, !case_sensitive, line)
                        : Less(a.first, b.first, !case_sensitive, line);
      if (!lt.ok()) {
        st = lt.status();
        return false;
      }
      return *lt;
    });
    if (!st.ok()) return st;
    List out;
    for (auto& kv : keyed) out.push_back(std::move(kv.second));
    return out;
  }

  absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, const List& args,
                                    const Kwargs& kw, int line) {
    WEFT_RETURN_IF_ERROR(Charge(1, line));
    auto arg = [&](size_t k, std::string_view n) { return Arg(args, kw, k, n); };
    auto flag = [&](size_t k, std::string_view n, bool def) {
      const Value* a = arg(k, n);
      return a ? Truthy(*a) : def;
    };
    auto str_of = [](const Value& x) { return ToPyStr(x); };
    if (name == "safe" || name == "string") {
      if (v.IsString() && (name == "safe" || v.safe)) {
        Value m = v;
        m.safe = true;
        return m;
      }
      return Value::Str(str_of(v));
    }
    if (name == "trim") return Value::Str(PyStrip(str_of(v), arg(0, "chars"), StripSide::kBoth));
    if (name == "upper") return Value::Str(Upper(str_of(v)));
    if (name == "lower") return Value::Str(Lower(str_of(v)));
    if (name == "capitalize") return Value::Str(Capitalize(str_of(v)));
    if (name == "title") return Value::Str(JinjaTitle(str_of(v)));
    if (name == "escape" || name == "e" || name == "forceescape") {
      if (v.IsString() && v.safe && name != "forceescape") return v;
      Value m = Value::Str(HtmlEscape(str_of(v)));
      m.safe = true;
      return m;
    }
    if (name == "length" || name == "count") {
      switch (v.kind) {
        case Value::Kind::kString:
          return Value::Int(static_cast<int64_t>(SplitCodePoints(v.s).size()));
        case Value::Kind::kList:
          return Value::Int(static_cast<int64_t>(v.list->size()));
        case Value::Kind::kDict:
          return Value::Int(static_cast<int64_t>(v.dict->items.size()));
        case Value::Kind::kUndefined:
          return Value::Int(0);
        default:
          return Error(line, absl::StrCat("object of type '", TypeName(v), "' has no len()"));
      }
    }
    if (name == "default" || name == "d") {
      const Value* def = arg(0, "default_value");
      const bool boolean = flag(1, "boolean", false);
      if (v.IsUndefined() || (boolean && !Truthy(v))) return def ? *def : Value::Str("");
      return v;
    }
    if (name == "replace") {
      const Value* from = arg(0, "old");
      const Value* to = arg(1, "new");
      const Value* count = arg(2, "count");
      if (!from || !to) return Error(line, "replace filter needs old and new");
      const std::string s = str_of(v);
      WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(s.size()), line));
      std::string out = PyReplace(s, str_of(*from), str_of(*to),
                                  count && count->IsIntLike() ? count->AsInt() : -1);
      WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
      return Value::Str(std::move(out));
    }
    if (name == "first" || name == "last") {
      if (v.IsDict() && name == "first") {
        if (v.dict->items.empty()) return Value::Undefined("No first item, sequence was empty.");
        return v.dict->KeyAt(0);
      }
      if (v.IsDict()) return Error(line, "'dict' object is not reversible");
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      if (items.empty()) {
        return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
      }
      return name == "first" ? items.front() : items.back();
    }
    if (name == "join") {
      const Value* sep = arg(0, "d");
      const Value* attribute = arg(1, "attribute");
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(items.size()), line));
      std::string out;
      const std::string sep_s = sep ? str_of(*sep) : "";
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += sep_s;
        if (attribute && !attribute->IsNone()) {
          WEFT_ASSIGN_OR_RETURN(Value a, AttrPath(items[k], str_of(*attribute), line));
          out += str_of(a);
        } else {
          out += str_of(items[k]);
        }
        WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
      }
      return Value::Str(std::move(out));
    }
    if (name == "items") {
      if (v.IsUndefined()) return Value::MakeList({});
      if (!v.IsDict()) return Error(line, "Can only get item pairs from a mapping.");
      return DictMethod("items", v, {}, {}, line);
    }
    if (name == "list") {
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      return Value::MakeList(std::move(items));
    }
    if (name == "reverse") {
      if (v.IsString()) {
        auto cps = SplitCodePoints(v.s);
        std::string out;
        for (auto it = cps.rbegin(); it != cps.rend(); ++it) out.append(*it);
        return Value::Str(std::move(out));
      }
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      std::reverse(items.begin(), items.end());
      return Value::MakeList(std::move(items));
    }
    if (name == "tojson") return ToJson(v, args, kw, line);
    if (name == "map") {
      // Jinja's map/select/reject iterate only a truthy value (none|map(...) is empty).
      WEFT_ASSIGN_OR_RETURN(List items, Truthy(v) ? Iterate(v, line) : List{});
      WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(items.size()), line));
      List out;
      if (const Value* attribute = FindKw(kw, "attribute")) {
        const Value* def = FindKw(kw, "default");
        for (const Value& item : items) {
          WEFT_ASSIGN_OR_RETURN(Value a, AttrPath(item, str_of(*attribute), line));
          if (a.IsUndefined() && def) a = *def;
          out.push_back(std::move(a));
        }
        return Value::MakeList(std::move(out));
      }
      if (args.empty() || !args[0].IsString())
        return Error(line, "map filter needs a filter name or attribute=");
      const List rest(args.begin() + 1, args.end());
      for (const Value& item : items) {
        WEFT_ASSIGN_OR_RETURN(Value a, ApplyFilter(args[0].s, item, rest, kw, line));
        out.push_back(std::move(a));
      }
      return Value::MakeList(std::move(out));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      const bool by_attr = name == "selectattr" || name == "rejectattr";
      const bool want = name == "select" || name == "selectattr";
      WEFT_ASSIGN_OR_RETURN(List items, Truthy(v) ? Iterate(v, line) : List{});
      WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(items.size()), line));
      size_t k = 0;
      std::string attribute;
      if (by_attr) {
        if (args.empty()) return Error(line, absl::StrCat(name, " needs an attribute name"));
        attribute = str_of(args[0]);
        k = 1;
      }
      std::string test;
      if (k < args.size()) test = str_of(args[k++]);
      const List test_args(args.begin() + static_cast<std::ptrdiff_t>(std::min(k, args.size())),
                           args.end());
      List out;
      for (const Value& item : items) {
        Value subject = item;
        if (by_attr) {
          WEFT_ASSIGN_OR_RETURN(subject, AttrPath(item, attribute, line));
        }
        bool r;
        if (test.empty()) {
          r = Truthy(subject);
        } else {
          WEFT_ASSIGN_OR_RETURN(r, ApplyTest(test, subject, test_args, line));
        }
        if (r == want) out.push_back(item);
      }
      return Value::MakeList(std::move(out));
    }
    if (name == "unique") {
      const bool cs = flag(0, "case_sensitive", false);
      const Value* attribute = arg(1, "attribute");
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      WEFT_RETURN_IF_ERROR(Charge(static_cast<int64_t>(items.size() * items.size() / 8 + 1), line));
      List out, seen;
      for (const Value& item : items) {
        Value key = item;
        if (attribute && attribute->IsString()) {
          WEFT_ASSIGN_OR_RETURN(key, AttrPath(item, attribute->s, line));
        }
        if (!cs && key.IsString()) key = Value::Str(Lower(key.s));
        bool dup = false;
        for (const Value& s : seen) dup = dup || PyEquals(s, key);
        if (!dup) {
          seen.push_back(key);
          out.push_back(item);
        }
      }
      return Value::MakeList(std::move(out));
    }
    if (name == "sort") {
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      WEFT_ASSIGN_OR_RETURN(
          List out, SortedValues(std::move(items), flag(0, "reverse", false),
                                 flag(1, "case_sensitive", false), arg(2, "attribute"), line));
      return Value::MakeList(std::move(out));
    }
    if (name == "dictsort") {
      if (!v.IsDict()) return Error(line, "dictsort expects a mapping");
      const bool cs = flag(0, "case_sensitive", false);
      const Value* by = arg(1, "by");
      const bool by_value = by && by->IsString() && by->s == "value";
      WEFT_ASSIGN_OR_RETURN(Value pairs, DictMethod("items", v, {}, {}, line));
      Value index = Value::Int(by_value ? 1 : 0);
      Value attr_name = Value::Str(by_value ? "1" : "0");
      WEFT_ASSIGN_OR_RETURN(
          List out, SortedValues(*pairs.list, flag(2, "reverse", false), cs, &attr_name, line));
      return Value::MakeList(std::move(out));
    }
    if (name == "min" || name == "max") {
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      if (items.empty())
        return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
      WEFT_ASSIGN_OR_RETURN(List sorted,
                            SortedValues(std::move(items), false, flag(0, "case_sensitive", false),
                                         arg(1, "attribute"), line));
      return name == "min" ? sorted.front() : sorted.back();
    }
    if (name == "sum") {
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      const Value* attribute = arg(0, "attribute");
      const Value* start = arg(1, "start");
      Value total = start ? *start : Value::Int(0);
      for (const Value& item : items) {
        Value x = item;
        if (attribute && attribute->IsString()) {
          WEFT_ASSIGN_OR_RETURN(x, AttrPath(item, attribute->s, line));
        }
        WEFT_ASSIGN_OR_RETURN(total, Arith("+", total, x, line));
      }
      return total;
    }
    if (name == "abs") {
      if (v.kind == Value::Kind::kFloat) return Value::Float(std::fabs(v.f));
      if (v.IsIntLike()) {
        if (v.AsInt() == std::numeric_limits<int64_t>::min())
          return Error(line, "integer overflow");
        return Value::Int(std::llabs(v.AsInt()));
      }
      return Error(line, absl::StrCat("bad operand type for abs(): '", TypeName(v), "'"));
    }
    if (name == "int") {
      const Value* def = arg(0, "default");
      const Value fallback = def ? *def : Value::Int(0);
      if (v.IsIntLike()) return Value::Int(v.AsInt());
      if (v.kind == Value::Kind::kFloat) {
        if (!std::isfinite(v.f) || std::fabs(v.f) > 9.2e18) return fallback;
        return Value::Int(static_cast<int64_t>(v.f));
      }
      if (v.IsString()) {
        // Python int(s), else int(float(s)): decimal digits with single underscores between.
        std::string t = PyStrip(v.s, nullptr, StripSide::kBoth);
        std::string digits;
        bool ok = !t.empty();
        for (size_t k = 0; k < t.size() && ok; ++k) {
          const char c = t[k];
          if ((c == '+' || c == '-') && k == 0) {
            digits += c;
          } else if (absl::ascii_isdigit(c)) {
            digits += c;
          } else if (c == '_' && k > 0 && absl::ascii_isdigit(t[k - 1]) && k + 1 < t.size() &&
                     absl::ascii_isdigit(t[k + 1])) {
          } else {
            ok = false;
          }
        }
        if (ok) {
          char* end = nullptr;
          errno = 0;
          const long long i = std::strtoll(digits.c_str(), &end, 10);
          if (end == digits.c_str() + digits.size() && errno == 0) return Value::Int(i);
        }
        if (auto d = PyFloat(t); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) {
          return Value::Int(static_cast<int64_t>(*d));
        }
      }
      return fallback;
    }
    if (name == "float") {
      const Value* def = arg(0, "default");
      const Value fallback = def ? *def : Value::Float(0.0);
      if (v.IsNumber()) return Value::Float(v.AsDouble());
      if (v.IsString()) {
        if (auto d = PyFloat(PyStrip(v.s, nullptr, StripSide::kBoth))) return Value::Float(*d);
      }
      return fallback;
    }
    if (name == "round") {
      const Value* prec = arg(0, "precision");
      const Value* method = arg(1, "method");
      if (!v.IsNumber())
        return Error(line, absl::StrCat("round: ", TypeName(v), " is not a number"));
      const int64_t p = prec && prec->IsIntLike() ? prec->AsInt() : 0;
      if (p < -20 || p > 20) return Error(line, "round precision out of range");
      const double scale = std::pow(10.0, static_cast<double>(p));
      const std::string m = method ? str_of(*method) : "common";
      if (m == "common" && v.IsIntLike()) return Value::Int(v.AsInt());  // round(int) is an int
      if (m == "common" && p >= 0 && std::isfinite(v.f)) {
        // Python's round(x, p) rounds the exact binary value, ties to even: as printf does.
        char buf[512];
        std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(p), v.f);
        return Value::Float(std::strtod(buf, nullptr));
      }
      double x = v.AsDouble() * scale;
      if (m == "common") {
        x = std::nearbyint(x);  // ties to even
      } else if (m == "ceil") {
        x = std::ceil(x);
      } else if (m == "floor") {
        x = std::floor(x);
      } else {
        return Error(line, "method must be 'common', 'ceil' or 'floor'.");
      }
      return Value::Float(x / scale);
    }
    if (name == "indent") {
      const Value* width = arg(0, "width");
      const bool first = flag(1, "first", false);
      const bool blank = flag(2, "blank", false);
      std::string pad =
          width && width->IsString()
              ? width->s
              : std::string(static_cast<size_t>(std::clamp<int64_t>(
                                width && width->IsIntLike() ? width->AsInt() : 4, 0, 256)),
                            ' ');
      std::string s = str_of(v) + "\n";
      List lines = PySplitLines(s);
      std::string out;
      for (size_t k = 0; k < lines.size(); ++k) {
        const std::string& l = lines[k].s;
        if (k == 0) {
          out += l;
          continue;
        }
        out += '\n';
        if (blank || !l.empty()) out += pad;
        out += l;
        WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
      }
      if (first) out = pad + out;
      return Value::Str(std::move(out));
    }
    if (name == "wordcount")
      return Value::Int(static_cast<int64_t>(PySplit(str_of(v), nullptr, -1).size()));
    if (name == "attr") {
      const Value* a = arg(0, "name");
      if (a == nullptr) return Error(line, "attr filter needs a name");
      return GetAttr(v, str_of(*a), line);
    }
    if (name == "pprint") return Value::Str(ToPyRepr(v));
    if (name == "format") return PercentFormat(str_of(v), args, line);
    if (name == "batch") {
      const Value* count = arg(0, "linecount");
      const Value* fill = arg(1, "fill_with");
      if (!count || !count->IsIntLike() || count->AsInt() <= 0)
        return Error(line, "batch needs a positive count");
      WEFT_ASSIGN_OR_RETURN(List items, Iterate(v, line));
      List out, cur;
      for (Value& item : items) {
        cur.push_back(std::move(item));
        if (static_cast<int64_t>(cur.size()) == count->AsInt()) {
          out.push_back(Value::MakeList(std::move(cur)));
          cur.clear();
        }
      }
      if (!cur.empty()) {
        while (fill && !fill->IsNone() && static_cast<int64_t>(cur.size()) < count->AsInt())
          cur.push_back(*fill);
        out.push_back(Value::MakeList(std::move(cur)));
      }
      return Value::MakeList(std::move(out));
    }
    return Error(line, absl::StrCat("No filter named '", name, "'."));
  }

  // printf-style `"%s, %d" | format(a, b)`: conversions s r d i f g e x % with flags, width and
  // precision.
  absl::StatusOr<Value> PercentFormat(const std::string& fmt, const List& args, int line) {
    std::string out;
    size_t next = 0;
    for (size_t k = 0; k < fmt.size(); ++k) {
      if (fmt[k] != '%') {
        out += fmt[k];
        continue;
      }
      size_t j = k + 1;
      while (j < fmt.size() && std::string_view("-+ #0").find(fmt[j]) != std::string_view::npos)
        ++j;
      while (j < fmt.size() && (absl::ascii_isdigit(fmt[j]) || fmt[j] == '.')) ++j;
      if (j >= fmt.size()) return Error(line, "format: incomplete format");
      const char conv = fmt[j];
      const std::string spec = fmt.substr(k, j - k);
      k = j;
      if (conv == '%') {
        out += '%';
        continue;
      }
      if (next >= args.size()) return Error(line, "format: not enough arguments for format string");
      const Value& a = args[next++];
      char buf[512];
      if (conv == 's' || conv == 'r') {
        const std::string text = conv == 's' ? ToPyStr(a) : ToPyRepr(a);
        std::snprintf(buf, sizeof(buf), (spec + "s").c_str(), "");
        const size_t width = std::strlen(buf);
        if (text.size() >= width || spec.size() <= 1) {
          out += text;
        } else if (spec.find('-') != std::string::npos) {
          out += text + std::string(width - text.size(), ' ');
        } else {
          out += std::string(width - text.size(), ' ') + text;
        }
      } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
        if (!a.IsNumber())
          return Error(line, absl::StrCat("format: %", std::string(1, conv),
                                          " format: a real number is required, not ", TypeName(a)));
        const long long x = a.kind == Value::Kind::kFloat ? static_cast<long long>(a.f) : a.AsInt();
        std::snprintf(buf, sizeof(buf), (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), x);
        out += buf;
      } else if (conv == 'f' || conv == 'F' || conv == 'g' || conv == 'G' || conv == 'e' ||
                 conv == 'E') {
        if (!a.IsNumber())
          return Error(line, absl::StrCat("format: must be real number, not ", TypeName(a)));
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), a.AsDouble());
        out += buf;
      } else {
        return Error(line, absl::StrCat("format: unsupported format character '",
                                        std::string(1, conv), "'"));
      }
      WEFT_RETURN_IF_ERROR(CheckSize(out.size(), line));
    }
    if (next < args.size())
      return Error(line, "format: not all arguments converted during string formatting");
    return Value::Str(std::move(out));
  }

  static List PySplitLines(const std::string& s) {
    List out;
    std::string cur;
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k] == '\n' || s[k] == '\r') {
        out.push_back(Value::Str(std::move(cur)));
        cur.clear();
        if (s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ++k;
      } else {
        cur += s[k];
      }
    }
    if (!cur.empty()) out.push_back(Value::Str(std::move(cur)));
    return out;
  }

  absl::StatusOr<Value> ToJson(const Value& v, const List& args, const Kwargs& kw, int line) {
    DumpsOptions o;
    const bool jinja = opt_.tojson == TojsonStyle::kJinja2;
    o.sort_keys = jinja;
    o.ensure_ascii = jinja;
    o.html_safe = jinja;
    if (const Value* indent = Arg(args, kw, 0, "indent"); indent && !indent->IsNone()) {
      if (!indent->IsIntLike()) return Error(line, "tojson indent must be an integer");
      o.indent = static_cast<int>(std::clamp<int64_t>(indent->AsInt(), 0, 64));
    }
    if (!jinja) {
      if (const Value* a = FindKw(kw, "ensure_ascii")) o.ensure_ascii = Truthy(*a);
      if (const Value* a = FindKw(kw, "sort_keys")) o.sort_keys = Truthy(*a);
      if (const Value* a = FindKw(kw, "separators"); a && a->IsList() && a->list->size() == 2) {
        o.item_separator = ToPyStr((*a->list)[0]);
        o.key_separator = ToPyStr((*a->list)[1]);
      }
    }
    auto s = PyJsonDumps(v, o);
    if (!s.ok()) return Error(line, std::string(s.status().message()));
    WEFT_RETURN_IF_ERROR(CheckSize(s->size(), line));
    Value out = Value::Str(*std::move(s));
    out.safe = jinja;  // Jinja2's tojson returns Markup; transformers' returns str
    return out;
  }

  // ---- tests ----
  absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const List& args,
                                 int line) {
    auto need_arg = [&]() -> absl::Status {
      if (args.empty()) return Error(line, absl::StrCat("test '", name, "' needs an argument"));
      return absl::OkStatus();
    };
    if (name == "defined") return !v.IsUndefined();
    if (name == "undefined") return v.IsUndefined();
    if (name == "none") return v.IsNone();
    if (name == "boolean") return v.kind == Value::Kind::kBool;
    if (name == "true") return v.kind == Value::Kind::kBool && v.b;
    if (name == "false") return v.kind == Value::Kind::kBool && !v.b;
    if (name == "string") return v.IsString();
    if (name == "mapping") return v.IsDict() && !v.dict->is_loop;
    if (name == "number") return v.IsNumber();
    if (name == "integer") return v.kind == Value::Kind::kInt;
    if (name == "float") return v.kind == Value::Kind::kFloat;
    if (name == "iterable")
      return v.IsString() || v.IsList() || (v.IsDict() && !v.dict->is_namespace) || v.IsUndefined();
    if (name == "sequence")
      return v.IsString() || v.IsList() || (v.IsDict() && !v.dict->is_namespace);
    if (name == "callable") return v.kind == Value::Kind::kCallable;
    if (name == "lower") return v.IsString() && Lower(v.s) == v.s;
    if (name == "upper") return v.IsString() && Upper(v.s) == v.s;
    if (name == "odd" || name == "even") {
      if (!v.IsIntLike()) return Error(line, absl::StrCat("test '", name, "' needs an integer"));
      const bool odd = (v.AsInt() % 2) != 0;
      return name == "odd" ? odd : !odd;
    }
    if (name == "divisibleby") {
      WEFT_RETURN_IF_ERROR(need_arg());
      if (!v.IsIntLike() || !args[0].IsIntLike() || args[0].AsInt() == 0) {
        return Error(line, "divisibleby needs nonzero integers");
      }
      return v.AsInt() % args[0].AsInt() == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==") {
      WEFT_RETURN_IF_ERROR(need_arg());
      return PyEquals(v, args[0]);
    }
    if (name == "ne" || name == "!=") {
      WEFT_RETURN_IF_ERROR(need_arg());
      return !PyEquals(v, args[0]);
    }
    if (name == "lt" || name == "lessthan" || name == "<") {
      WEFT_RETURN_IF_ERROR(need_arg());
      return Less(v, args[0], false, line);
    }
    if (name == "gt" || name == "greaterthan" || name == ">") {
      WEFT_RETURN_IF_ERROR(need_arg());
      return Less(args[0], v, false, line);
    }
    if (name == "le" || name == "<=") {
      WEFT_RETURN_IF_ERROR(need_arg());
      WEFT_ASSIGN_OR_RETURN(bool gt, Less(args[0], v, false, line));
      return !gt;
    }
    if (name == "ge" || name == ">=") {
      WEFT_RETURN_IF_ERROR(need_arg());
      WEFT_ASSIGN_OR_RETURN(bool lt, Less(v, args[0], false, line));
      return !lt;
    }
    if (name == "in") {
      WEFT_RETURN_IF_ERROR(need_arg());
      return Contains(args[0], v, line);
    }
    if (name == "sameas") {
      WEFT_RETURN_IF_ERROR(need_arg());
      const Value& o = args[0];
      if (v.kind != o.kind) return false;
      switch (v.kind) {
        case Value::Kind::kNone:
        case Value::Kind::kUndefined:
          return true;
        case Value::Kind::kBool:
          return v.b == o.b;
        case Value::Kind::kList:
          return v.list == o.list;
        case Value::Kind::kDict:
          return v.dict == o.dict;
        default:
          return PyEquals(v, o);
      }
    }
    if (name == "escaped") return v.IsString() && v.safe;
    return Error(line, absl::StrCat("No test named '", name, "'."));
  }

  const RenderOptions& opt_;
  const ChatTemplateLimits& limits_;
  Value ctx_;
  std::vector<Frame> frames_;
  std::vector<std::shared_ptr<Dict>> namespaces_;
  int64_t ops_ = 0;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;
};

}  // namespace jinja

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source) {
  auto root = jinja::ParseTemplate(source);
  if (!root.ok()) return root.status();
  return ChatTemplate(std::shared_ptr<const jinja::TemplateNode>(std::move(*root)));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context,
                                                 const RenderOptions& options) const {
  if (!context.is_object() && !context.is_null()) {
    return absl::InvalidArgumentError("chat template context must be a JSON object");
  }
  jinja::Value ctx = jinja::Value::MakeDict();
  if (!context.is_null()) {
    WEFT_ASSIGN_OR_RETURN(ctx, jinja::FromJson(context));
  }
  jinja::Renderer renderer(options, std::move(ctx));
  std::string out;
  WEFT_RETURN_IF_ERROR(renderer.Run(root_->body, out));
  return out;
}

absl::StatusOr<std::string> RenderChat(const ChatTemplate& tmpl,
                                       const nlohmann::ordered_json& messages,
                                       const ChatTemplateOptions& options) {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages must be a JSON array");
  if (!options.extra_vars.is_object() && !options.extra_vars.is_null()) {
    return absl::InvalidArgumentError("extra chat template variables must be a JSON object");
  }
  nlohmann::ordered_json ctx = nlohmann::ordered_json::object();
  ctx["messages"] = messages;
  ctx["bos_token"] = options.bos_token;
  ctx["eos_token"] = options.eos_token;
  ctx["add_generation_prompt"] = options.add_generation_prompt;
  if (!options.tools.is_null()) ctx["tools"] = options.tools;
  if (options.extra_vars.is_object()) {
    for (const auto& [k, v] : options.extra_vars.items()) ctx[k] = v;
  }
  return tmpl.Render(ctx, options.render);
}

std::string_view DefaultChatTemplate() {
  static constexpr std::string_view kTemplate =
      "{%- for message in messages -%}\n"
      "{{- '<|im_start|>' + message['role'] + '\\n' -}}\n"
      "{%- if message['content'] is string -%}\n"
      "{{- message['content'] -}}\n"
      "{%- elif message['content'] is iterable -%}\n"
      "{%- for part in message['content'] -%}\n"
      "{%- if part is mapping and part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}\n"
      "{%- endfor -%}\n"
      "{%- endif -%}\n"
      "{{- '<|im_end|>\\n' -}}\n"
      "{%- endfor -%}\n"
      "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}\n";
  return kTemplate;
}

}  // namespace weft::tokenizer
