// SPDX-License-Identifier: Apache-2.0
// Values of the chat-template (Jinja subset) interpreter: Python-like undefined/None/bool/int/
// float/str/list/dict plus callables, with Python str()/repr() and json.dumps printing. Internal to
// chat_template.cc and its tests; values are plain data, one render (one thread) owns them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace weft::tokenizer::jinja {

struct Value;
struct Dict;
struct Callable;
using List = std::vector<Value>;

struct Value {
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kCallable
  };
  Kind kind = Kind::kUndefined;
  bool b = false;
  bool is_tuple = false;  // kList printed as a Python tuple
  bool safe = false;      // kString that is a markupsafe.Markup (from |safe, |escape)
  int depth = 0;  // nesting bound for kList/kDict/kCallable: 1 + the deepest child (NestDepth)
  int64_t i = 0;
  double f = 0;
  std::string s;  // kString; for kUndefined the reason ("'x' is undefined")
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<Callable> fn;

  static Value Undefined(std::string why) {
    Value v;
    v.s = std::move(why);
    return v;
  }
  static Value None() {
    Value v;
    v.kind = Kind::kNone;
    return v;
  }
  static Value Bool(bool x) {
    Value v;
    v.kind = Kind::kBool;
    v.b = x;
    return v;
  }
  static Value Int(int64_t x) {
    Value v;
    v.kind = Kind::kInt;
    v.i = x;
    return v;
  }
  static Value Float(double x) {
    Value v;
    v.kind = Kind::kFloat;
    v.f = x;
    return v;
  }
  static Value Str(std::string x) {
    Value v;
    v.kind = Kind::kString;
    v.s = std::move(x);
    return v;
  }
  static Value MakeList(List items, bool tuple = false);
  static Value MakeDict();

  bool IsUndefined() const { return kind == Kind::kUndefined; }
  bool IsNone() const { return kind == Kind::kNone; }
  bool IsString() const { return kind == Kind::kString; }
  bool IsList() const { return kind == Kind::kList; }
  bool IsDict() const { return kind == Kind::kDict; }
  bool IsNumber() const {
    return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool;
  }
  bool IsIntLike() const { return kind == Kind::kInt || kind == Kind::kBool; }
  int64_t AsInt() const { return kind == Kind::kBool ? (b ? 1 : 0) : i; }
  double AsDouble() const { return kind == Kind::kFloat ? f : static_cast<double>(AsInt()); }
};

// An insertion-ordered string-keyed map (Python dict semantics for JSON data). A namespace() is a
// Dict whose attributes may be assigned by `{% set ns.x = ... %}`.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  // Python dicts may have int keys ({0: 'a'}): once one does, int_key runs parallel to items and
  // marks the keys that are decimal ints rather than strings.
  std::vector<bool> int_key;
  bool is_namespace = false;
  bool is_loop = false;

  const Value* Find(std::string_view key, bool is_int = false) const;
  void Set(std::string_view key, Value v, bool is_int = false);
  bool IsIntKey(size_t k) const { return k < int_key.size() && int_key[k]; }
  Value KeyAt(size_t k) const;  // items[k]'s key as a str or int value
};

// Values nest at most kMaxValueDepth deep, so recursive printing, comparison and destruction are
// bounded. A namespace (mutable) counts as kNamespaceDepth wherever it is held, and only values
// shallower than that may be stored in one, so a nesting bound never goes stale.
inline constexpr int kMaxValueDepth = 256;
inline constexpr int kNamespaceDepth = 64;
inline int NestDepth(const Value& v) {
  return v.kind == Value::Kind::kDict && v.dict->is_namespace ? kNamespaceDepth : v.depth;
}
// Sets v.depth from v's direct children (dicts and lists).
void ComputeDepth(Value& v);

// Python's truthiness.
bool Truthy(const Value& v);
// Python's type name, for error messages ("str", "int", "list", "dict", "NoneType", ...).
const char* TypeName(const Value& v);
// Python str(): strings as is, repr() inside containers, True/False/None, float repr.
std::string ToPyStr(const Value& v);
// Python repr().
std::string ToPyRepr(const Value& v);
// Python float repr (shortest round-trip, "1e+20", "0.0001", "1.5e-05", "inf", "nan").
std::string FormatPyFloat(double d);
// Python == (1 == 1.0 == True, lists and dicts by content).
bool PyEquals(const Value& a, const Value& b);

struct DumpsOptions {
  int indent = -1;  // < 0: single line
  bool ensure_ascii = false;
  bool sort_keys = false;
  bool html_safe = false;      // Jinja2's htmlsafe_json_dumps: < > & ' as \u00XX
  std::string item_separator;  // empty: Python's default ("," with indent, ", " without)
  std::string key_separator;   // empty: ": "
};
// Python json.dumps. Fails for undefined values and callables (not JSON serializable).
absl::StatusOr<std::string> PyJsonDumps(const Value& v, const DumpsOptions& options);

// Converts JSON data; fails (InvalidArgument) when it nests deeper than kMaxValueDepth / 2.
absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j);

// UTF-8 helpers: code point boundaries (an invalid byte counts as one code point).
std::vector<std::string_view> SplitCodePoints(std::string_view s);

}  // namespace weft::tokenizer::jinja
