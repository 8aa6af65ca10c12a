// SPDX-License-Identifier: Apache-2.0
#include "engine/tokenizer/chat_template_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace weft::tokenizer::jinja {

Value Value::MakeList(List items, bool tuple) {
  Value v;
  v.kind = Kind::kList;
  v.is_tuple = tuple;
  v.list = std::make_shared<List>(std::move(items));
  ComputeDepth(v);
  return v;
}

void ComputeDepth(Value& v) {
  int d = 0;
  if (v.kind == Value::Kind::kList) {
    for (const Value& e : *v.list) d = std::max(d, NestDepth(e));
  } else if (v.kind == Value::Kind::kDict) {
    for (const auto& kv : v.dict->items) d = std::max(d, NestDepth(kv.second));
  } else {
    return;
  }
  v.depth = d + 1;
}

Value Value::MakeDict() {
  Value v;
  v.kind = Kind::kDict;
  v.dict = std::make_shared<Dict>();
  return v;
}

const Value* Dict::Find(std::string_view key, bool is_int) const {
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k].first == key && IsIntKey(k) == is_int) return &items[k].second;
  }
  return nullptr;
}

void Dict::Set(std::string_view key, Value v, bool is_int) {
  for (size_t k = 0; k < items.size(); ++k) {
    if (items[k].first == key && IsIntKey(k) == is_int) {
      items[k].second = std::move(v);
      return;
    }
  }
  items.emplace_back(std::string(key), std::move(v));
  if (is_int || !int_key.empty()) {
    int_key.resize(items.size(), false);
    int_key.back() = is_int;
  }
}

Value Dict::KeyAt(size_t k) const {
  if (IsIntKey(k)) return Value::Int(std::strtoll(items[k].first.c_str(), nullptr, 10));
  return Value::Str(items[k].first);
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.b;
    case Value::Kind::kInt:
      return v.i != 0;
    case Value::Kind::kFloat:
      return v.f != 0;
    case Value::Kind::kString:
      return !v.s.empty();
    case Value::Kind::kList:
      return !v.list->empty();
    case Value::Kind::kDict:
      return v.dict->is_namespace || v.dict->is_loop || !v.dict->items.empty();
    case Value::Kind::kCallable:
      return true;
  }
  return false;
}

const char* TypeName(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return v.is_tuple ? "tuple" : "list";
    case Value::Kind::kDict:
      return v.dict->is_namespace ? "Namespace" : (v.dict->is_loop ? "LoopContext" : "dict");
    case Value::Kind::kCallable:
      return "function";
  }
  return "?";
}

std::string FormatPyFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // Shortest round-trip digits in scientific form, then Python's repr rule: fixed notation when
  // -4 <= exponent < 16, else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = false;
  if (!sci.empty() && sci[0] == '-') {
    neg = true;
    sci.erase(0, 1);
  }
  const size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  const int exp = std::atoi(sci.c_str() + e_pos + 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else {
      const size_t int_len = static_cast<size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits;
        out.append(int_len - digits.size(), '0');
        out += ".0";
      } else {
        out += digits.substr(0, int_len);
        out += '.';
        out += digits.substr(int_len);
      }
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    char eb[16];
    std::snprintf(eb, sizeof(eb), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += eb;
  }
  return out;
}

namespace {

// Decodes one UTF-8 sequence at s[*pos]; an invalid byte decodes as U+FFFD, one byte long.
uint32_t DecodeUtf8(std::string_view s, size_t* pos) {
  const auto c = static_cast<unsigned char>(s[*pos]);
  int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || *pos + len > s.size()) {
    ++*pos;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[*pos + k]);
    if ((cc & 0xC0) != 0x80) {
      ++*pos;
      return 0xFFFD;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  *pos += len;
  return cp;
}

std::string PyStrRepr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == q || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char b[8];
      std::snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else {
      out += ch;
    }
  }
  out += q;
  return out;
}

void JsonString(std::string_view s, const DumpsOptions& o, std::string& out) {
  out += '"';
  size_t pos = 0;
  while (pos < s.size()) {
    const auto c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
      ++pos;
      switch (c) {
        case '"':
          out += "\\\"";
          continue;
        case '\\':
          out += "\\\\";
          continue;
        case '\n':
          out += "\\n";
          continue;
        case '\r':
          out += "\\r";
          continue;
        case '\t':
          out += "\\t";
          continue;
        case '\b':
          out += "\\b";
          continue;
        case '\f':
          out += "\\f";
          continue;
        default:
          break;
      }
      // json.dumps escapes control characters, DEL too when ensure_ascii; Jinja2's htmlsafe
      // variant also < > & '.
      const bool escape = c < 0x20 || (c == 0x7F && o.ensure_ascii) ||
                          (o.html_safe && (c == '<' || c == '>' || c == '&' || c == '\''));
      if (escape) {
        char b[8];
        std::snprintf(b, sizeof(b), "\\u%04x", c);
        out += b;
      } else {
        out += static_cast<char>(c);
      }
      continue;
    }
    const size_t start = pos;
    const uint32_t cp = DecodeUtf8(s, &pos);
    if (!o.ensure_ascii) {
      out.append(s.substr(start, pos - start));
      continue;
    }
    char b[16];
    if (cp >= 0x10000) {
      const uint32_t v = cp - 0x10000;
      std::snprintf(b, sizeof(b), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
    } else {
      std::snprintf(b, sizeof(b), "\\u%04x", cp);
    }
    out += b;
  }
  out += '"';
}

absl::Status Dumps(const Value& v, const DumpsOptions& o, int level, std::string& out) {
  if (level > 512) return absl::InvalidArgumentError("tojson: value nested too deeply");
  const std::string item_sep =
      !o.item_separator.empty() ? o.item_separator : (o.indent >= 0 ? "," : ", ");
  const std::string key_sep = !o.key_separator.empty() ? o.key_separator : ": ";
  auto newline = [&](int lvl) {
    if (o.indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(o.indent) * lvl, ' ');
  };
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return absl::InvalidArgumentError("Object of type Undefined is not JSON serializable");
    case Value::Kind::kCallable:
      return absl::InvalidArgumentError("Object of type function is not JSON serializable");
    case Value::Kind::kNone:
      out += "null";
      return absl::OkStatus();
    case Value::Kind::kBool:
      out += v.b ? "true" : "false";
      return absl::OkStatus();
    case Value::Kind::kInt:
      out += std::to_string(v.i);
      return absl::OkStatus();
    case Value::Kind::kFloat:
      if (std::isnan(v.f)) {
        out += "NaN";
      } else if (std::isinf(v.f)) {
        out += v.f < 0 ? "-Infinity" : "Infinity";
      } else {
        out += FormatPyFloat(v.f);
      }
      return absl::OkStatus();
    case Value::Kind::kString:
      JsonString(v.s, o, out);
      return absl::OkStatus();
    case Value::Kind::kList: {
      if (v.list->empty()) {
        out += "[]";
        return absl::OkStatus();
      }
      out += '[';
      bool first = true;
      for (const Value& e : *v.list) {
        if (!first) out += item_sep;
        first = false;
        newline(level + 1);
        if (auto s = Dumps(e, o, level + 1, out); !s.ok()) return s;
      }
      newline(level);
      out += ']';
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      if (v.dict->is_namespace || v.dict->is_loop) {
        return absl::InvalidArgumentError(
            absl::StrCat("Object of type ", TypeName(v), " is not JSON serializable"));
      }
      if (v.dict->items.empty()) {
        out += "{}";
        return absl::OkStatus();
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict->items) items.push_back(&kv);
      if (o.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out += '{';
      bool first = true;
      for (const auto* kv : items) {
        if (!first) out += item_sep;
        first = false;
        newline(level + 1);
        JsonString(kv->first, o, out);
        out += key_sep;
        if (auto s = Dumps(kv->second, o, level + 1, out); !s.ok()) return s;
      }
      newline(level);
      out += '}';
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

std::string Repr(const Value& v, int depth) {
  if (depth > 256) return "...";
  switch (v.kind) {
    case Value::Kind::kString:
      return PyStrRepr(v.s);
    case Value::Kind::kList: {
      std::string out = v.is_tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += Repr((*v.list)[k], depth + 1);
      }
      if (v.is_tuple && v.list->size() == 1) out += ',';
      out += v.is_tuple ? ")" : "]";
      return out;
    }
    case Value::Kind::kDict: {
      if (v.dict->is_namespace) return "<Namespace>";
      if (v.dict->is_loop) return "<LoopContext>";
      std::string out = "{";
      bool first = true;
      for (size_t n = 0; n < v.dict->items.size(); ++n) {
        const auto& [k, e] = v.dict->items[n];
        if (!first) out += ", ";
        first = false;
        out += v.dict->IsIntKey(n) ? k : PyStrRepr(k);
        out += ": ";
        out += Repr(e, depth + 1);
      }
      out += '}';
      return out;
    }
    case Value::Kind::kUndefined:
      return "Undefined";
    default:
      return ToPyStr(v);
  }
}

}  // namespace

std::string ToPyStr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kUndefined:
      return "";
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return v.b ? "True" : "False";
    case Value::Kind::kInt:
      return std::to_string(v.i);
    case Value::Kind::kFloat:
      return FormatPyFloat(v.f);
    case Value::Kind::kString:
      return v.s;
    case Value::Kind::kCallable:
      return "<function>";
    case Value::Kind::kList:
    case Value::Kind::kDict:
      return Repr(v, 0);
  }
  return "";
}

std::string ToPyRepr(const Value& v) { return Repr(v, 0); }

bool PyEquals(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.kind == Value::Kind::kFloat || b.kind == Value::Kind::kFloat) {
      return a.AsDouble() == b.AsDouble();
    }
    return a.AsInt() == b.AsInt();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.s == b.s;
    case Value::Kind::kList: {
      if (a.list == b.list) return true;
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) {
        if (!PyEquals((*a.list)[k], (*b.list)[k])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      if (a.dict == b.dict) return true;
      if (a.dict->is_namespace || b.dict->is_namespace) return false;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (size_t n = 0; n < a.dict->items.size(); ++n) {
        const auto& [k, e] = a.dict->items[n];
        const Value* o = b.dict->Find(k, a.dict->IsIntKey(n));
        if (o == nullptr || !PyEquals(e, *o)) return false;
      }
      return true;
    }
    case Value::Kind::kCallable:
      return a.fn == b.fn;
    default:
      return false;
  }
}

absl::StatusOr<std::string> PyJsonDumps(const Value& v, const DumpsOptions& options) {
  std::string out;
  if (auto s = Dumps(v, options, 0, out); !s.ok()) return s;
  return out;
}

namespace {

absl::StatusOr<Value> FromJsonAt(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth / 2) {
    return absl::InvalidArgumentError("chat template variables nest too deeply");
  }
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::Float(static_cast<double>(u));
      return Value::Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::Str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) {
        auto v = FromJsonAt(e, depth + 1);
        if (!v.ok()) return v.status();
        items.push_back(*std::move(v));
      }
      return Value::MakeList(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Value::MakeDict();
      d.dict->items.reserve(j.size());
      for (const auto& [k, e] : j.items()) {
        auto v = FromJsonAt(e, depth + 1);
        if (!v.ok()) return v.status();
        d.dict->items.emplace_back(k, *std::move(v));
      }
      ComputeDepth(d);
      return d;
    }
    default:
      return Value::None();
  }
}

}  // namespace

absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j) { return FromJsonAt(j, 0); }

std::vector<std::string_view> SplitCodePoints(std::string_view s) {
  std::vector<std::string_view> out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    DecodeUtf8(s, &pos);
    out.push_back(s.substr(start, pos - start));
  }
  return out;
}

}  // namespace weft::tokenizer::jinja
