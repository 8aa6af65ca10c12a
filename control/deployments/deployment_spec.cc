// SPDX-License-Identifier: Apache-2.0
#include "control/deployments/deployment_spec.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "yaml-cpp/yaml.h"

namespace weft::control {
namespace {

// ---- names and values -------------------------------------------------------------------------

bool IsNameChar(char c, bool allow_upper) {
  return absl::ascii_isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'z') ||
         (allow_upper && c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
}

// [a-z0-9][a-z0-9._-]{0,max-1} (upper case letters too when allow_upper).
bool IsName(std::string_view s, size_t max, bool allow_upper) {
  if (s.empty() || s.size() > max) return false;
  char first = s[0];
  if (first == '.' || first == '_' || first == '-') return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return IsNameChar(c, allow_upper); });
}

std::string NameRule(size_t max, bool allow_upper) {
  return absl::StrCat(allow_upper ? "letters, digits" : "lower-case letters, digits",
                      ", '.', '_' or '-', starting with a letter or digit, at most ", max,
                      " characters");
}

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return absl::ascii_isxdigit(static_cast<unsigned char>(c));
         });
}

// Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 4;
    if (n == 4 || (n > 0 && i + n >= s.size())) return false;
    uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

absl::Status Invalid(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(path), ": ", std::string(message)));
}

std::string Quote(std::string_view s) { return absl::StrCat("\"", std::string(s), "\""); }

// Validates and normalizes one model or adapter source; `path` is "model" or "adapters.NAME".
absl::Status ValidateSource(ModelSource& src, const std::string& path) {
  const std::string source_path = absl::StrCat(path, ".source");
  std::string_view uri = src.uri;
  if (uri.empty()) return Invalid(source_path, "required (a path or hf://org/repo/file.gguf)");
  if (uri.size() > 4096) return Invalid(source_path, "longer than 4096 characters");
  for (char c : uri) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Invalid(source_path, "contains a control character");
    }
  }
  if (!IsUtf8(uri)) return Invalid(source_path, "not valid UTF-8");
  src.hf_org.clear();
  src.hf_repo.clear();
  src.hf_path.clear();
  if (uri.starts_with("hf://")) {
    std::vector<std::string> parts = absl::StrSplit(std::string(uri.substr(5)), '/');
    if (parts.size() < 3) {
      return Invalid(source_path, "expected hf://org/repo/path/to/file (one file of the repo)");
    }
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string& p = parts[i];
      if (p.empty() || p == "." || p == "..") {
        return Invalid(source_path, absl::StrCat("empty, '.' or '..' component in ", Quote(uri)));
      }
      if (i < 2 && !IsName(p, 96, /*allow_upper=*/true)) {
        return Invalid(source_path, absl::StrCat("bad Hugging Face ", i == 0 ? "org" : "repo",
                                                 " name ", Quote(p)));
      }
    }
    src.kind = ModelSourceKind::kHuggingFace;
    src.hf_org = parts[0];
    src.hf_repo = parts[1];
    src.hf_path = absl::StrJoin(parts.begin() + 2, parts.end(), "/");
  } else if (uri.find("://") != std::string_view::npos) {
    return Invalid(source_path, absl::StrCat("unsupported scheme in ", Quote(uri),
                                             " (use a local path or hf://org/repo/file.gguf)"));
  }
  // The format: explicit, or from the file name.
  if (src.format == ModelFormat::kAuto) {
    std::string_view last =
        uri.substr(uri.find_last_of('/') == std::string_view::npos ? 0 : uri.find_last_of('/') + 1);
    std::string lower = absl::AsciiStrToLower(std::string(last));
    if (lower.ends_with(".gguf")) {
      src.format = ModelFormat::kGguf;
    } else if (lower.ends_with(".bin")) {
      src.format = ModelFormat::kLlama2c;
    } else if (last.empty() || last.find('.') == std::string_view::npos || last == "." ||
               last == "..") {
      src.format = ModelFormat::kHfCheckpoint;
    } else {
      return Invalid(absl::StrCat(path, ".format"),
                     absl::StrCat("cannot tell the format of ", Quote(last),
                                  " from its name; set gguf, llama2c or hf_checkpoint"));
    }
  }
  if (uri.starts_with("hf://")) {
    src.kind = ModelSourceKind::kHuggingFace;
    if (src.format == ModelFormat::kHfCheckpoint) {
      return Invalid(source_path,
                     "an hf:// source names one file (a .gguf or .bin); download a checkpoint "
                     "directory and give its local path instead");
    }
  } else {
    src.kind = src.format == ModelFormat::kHfCheckpoint ? ModelSourceKind::kCheckpointDir
                                                        : ModelSourceKind::kLocalFile;
  }
  std::string sha = src.sha256;
  if (absl::StartsWithIgnoreCase(absl::string_view(sha), "sha256:")) sha = sha.substr(7);
  if (!sha.empty()) {
    if (!IsHex64(sha)) return Invalid(absl::StrCat(path, ".sha256"), "expected 64 hex digits");
    if (src.kind == ModelSourceKind::kCheckpointDir) {
      return Invalid(absl::StrCat(path, ".sha256"),
                     "a checkpoint directory has no single checksum");
    }
  }
  src.sha256 = absl::AsciiStrToLower(sha);
  return absl::OkStatus();
}

absl::Status ValidateNameList(std::vector<std::string>& names, const std::string& path, size_t max,
                              bool allow_upper, std::string_view what) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (!IsName(names[i], max, allow_upper)) {
      return Invalid(absl::StrCat(path, "[", i, "]"),
                     absl::StrCat("bad ", std::string(what), " ", Quote(names[i]), " (",
                                  NameRule(max, allow_upper), ")"));
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return absl::OkStatus();
}

bool Contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ---- YAML reading -----------------------------------------------------------------------------

// Parsing context: names the source in errors and remembers where each field path was written,
// so that ValidateSpec's "path: message" errors on plain values still point at a line.
class Ctx {
 public:
  explicit Ctx(std::string_view source) : source_(source) {}

  absl::Status Error(const YAML::Node& node, std::string_view path, std::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(node), std::string(path), ": ", std::string(message)));
  }
  std::string Where(const YAML::Node& node) const {
    YAML::Mark mark = node.Mark();
    if (mark.line < 0) return source_.empty() ? "" : absl::StrCat(source_, ": ");
    return absl::StrCat(source_, ":", mark.line + 1, ": ");
  }
  void Remember(const std::string& path, const YAML::Node& node) {
    YAML::Mark mark = node.Mark();
    if (mark.line >= 0) lines_[path] = mark.line + 1;
  }
  // "path: message" -> "source:line: path: message", the line of the longest remembered prefix.
  absl::Status Locate(const absl::Status& status) const {
    std::string_view msg(status.message().data(), status.message().size());
    size_t colon = msg.find(": ");
    std::string path(msg.substr(0, colon == std::string_view::npos ? 0 : colon));
    while (!path.empty()) {
      auto it = lines_.find(path);
      if (it != lines_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source_, ":", it->second, ": ", std::string(msg)));
      }
      size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos) break;
      path.resize(cut);
    }
    if (source_.empty()) return status;
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", std::string(msg)));
  }

 private:
  std::string source_;
  std::map<std::string, int> lines_;
};

std::string Join(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return absl::StrCat(std::string(path), ".", std::string(key));
}

// A quoted YAML scalar (or a JSON string) carries the tag "!": it is text, never a number.
bool IsQuoted(const YAML::Node& n) { return n.Tag() == "!"; }

// A mapping whose keys are checked against the fields a section knows (`known` empty: any key,
// for maps keyed by user names such as adapters).
class MapReader {
 public:
  static absl::StatusOr<MapReader> Open(Ctx& ctx, const YAML::Node& node, std::string path,
                                        std::initializer_list<std::string_view> known,
                                        bool any_key = false) {
    MapReader r;
    r.path_ = std::move(path);
    if (!node.IsDefined() || node.IsNull()) return r;
    if (!node.IsMap()) {
      return ctx.Error(node, r.path_.empty() ? "(top)" : r.path_, "expected a mapping");
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      // Copies: the iterator's pair is a temporary (handles are cheap to copy).
      YAML::Node key = it->first;
      YAML::Node value = it->second;
      if (!key.IsScalar()) return ctx.Error(key, r.path_, "keys must be plain strings");
      std::string name = key.Scalar();
      if (!any_key && std::find(known.begin(), known.end(), name) == known.end()) {
        std::vector<std::string> names(known.begin(), known.end());
        return ctx.Error(key, Join(r.path_, name),
                         absl::StrCat("unknown field (known: ", absl::StrJoin(names, ", "), ")"));
      }
      for (const auto& [seen, unused] : r.fields_) {
        if (seen == name) return ctx.Error(key, Join(r.path_, name), "duplicate field");
      }
      // A null value's mark points past it; its key's mark names the right line.
      ctx.Remember(Join(r.path_, name), value.IsNull() ? key : value);
      r.keys_.push_back(key);
      r.fields_.emplace_back(std::move(name), value);
    }
    return r;
  }

  // The value of `key`, or nullptr if absent or null (the default applies).
  const YAML::Node* Get(std::string_view key) const {
    for (const auto& [name, node] : fields_) {
      if (name == key) return node.IsNull() ? nullptr : &node;
    }
    return nullptr;
  }
  std::string Path(std::string_view key) const { return Join(path_, key); }
  const std::vector<std::pair<std::string, YAML::Node>>& fields() const { return fields_; }
  const YAML::Node& key(size_t i) const { return keys_[i]; }

 private:
  std::string path_;
  std::vector<YAML::Node> keys_;
  std::vector<std::pair<std::string, YAML::Node>> fields_;
};

absl::Status ReadString(Ctx& ctx, const MapReader& m, std::string_view key, std::string* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  if (!n->IsScalar()) return ctx.Error(*n, m.Path(key), "expected a string");
  *out = n->Scalar();
  return absl::OkStatus();
}

absl::Status ReadBool(Ctx& ctx, const MapReader& m, std::string_view key, bool* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  if (n->IsScalar() && !IsQuoted(*n)) {
    std::string v = absl::AsciiStrToLower(n->Scalar());
    if (v == "true" || v == "yes" || v == "on") {
      *out = true;
      return absl::OkStatus();
    }
    if (v == "false" || v == "no" || v == "off") {
      *out = false;
      return absl::OkStatus();
    }
  }
  return ctx.Error(*n, m.Path(key), "expected true or false");
}

// An integer in [lo, hi]; `rule` replaces the range in the error ("must be > 0").
absl::Status ReadInt(Ctx& ctx, const MapReader& m, std::string_view key, int64_t lo, int64_t hi,
                     int64_t* out, std::string_view rule = "") {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  int64_t v = 0;
  if (!n->IsScalar() || IsQuoted(*n) || !absl::SimpleAtoi(n->Scalar(), &v)) {
    return ctx.Error(*n, m.Path(key), "expected an integer");
  }
  if (v < lo || v > hi) {
    return ctx.Error(*n, m.Path(key),
                     rule.empty() ? absl::StrCat("must be in [", lo, ", ", hi, "], got ", v)
                                  : absl::StrCat(std::string(rule), ", got ", v));
  }
  *out = v;
  return absl::OkStatus();
}

template <typename T>
absl::Status ReadIntAs(Ctx& ctx, const MapReader& m, std::string_view key, int64_t lo, int64_t hi,
                       T* out, std::string_view rule = "") {
  int64_t v = static_cast<int64_t>(*out);
  WEFT_RETURN_IF_ERROR(ReadInt(ctx, m, key, lo, hi, &v, rule));
  *out = static_cast<T>(v);
  return absl::OkStatus();
}

absl::Status ReadPositiveDouble(Ctx& ctx, const MapReader& m, std::string_view key, double hi,
                                double* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  double v = 0;
  if (!n->IsScalar() || IsQuoted(*n) || !absl::SimpleAtod(n->Scalar(), &v) || !std::isfinite(v)) {
    return ctx.Error(*n, m.Path(key), "expected a number");
  }
  if (!(v > 0)) return ctx.Error(*n, m.Path(key), absl::StrCat("must be > 0, got ", v));
  if (v > hi) return ctx.Error(*n, m.Path(key), absl::StrCat("must be at most ", hi, ", got ", v));
  *out = v;
  return absl::OkStatus();
}

absl::Status ReadStringList(Ctx& ctx, const MapReader& m, std::string_view key,
                            std::vector<std::string>* out) {
  const YAML::Node* n = m.Get(key);
  if (n == nullptr) return absl::OkStatus();
  if (n->IsScalar()) {  // a single name
    *out = {n->Scalar()};
    ctx.Remember(absl::StrCat(m.Path(key), "[0]"), *n);
    return absl::OkStatus();
  }
  if (!n->IsSequence()) return ctx.Error(*n, m.Path(key), "expected a list of strings");
  out->clear();
  for (size_t i = 0; i < n->size(); ++i) {
    YAML::Node item = (*n)[i];
    std::string path = absl::StrCat(m.Path(key), "[", i, "]");
    if (!item.IsScalar()) return ctx.Error(item, path, "expected a string");
    ctx.Remember(path, item);
    out->push_back(item.Scalar());
  }
  return absl::OkStatus();
}

absl::Status ReadFormat(Ctx& ctx, const MapReader& m, ModelFormat* out) {
  const YAML::Node* n = m.Get("format");
  if (n == nullptr) return absl::OkStatus();
  std::string v = n->IsScalar() ? n->Scalar() : "";
  for (ModelFormat f : {ModelFormat::kAuto, ModelFormat::kGguf, ModelFormat::kLlama2c,
                        ModelFormat::kHfCheckpoint}) {
    if (v == ModelFormatName(f)) {
      *out = f;
      return absl::OkStatus();
    }
  }
  return ctx.Error(*n, m.Path("format"), "expected auto, gguf, llama2c or hf_checkpoint");
}

// `model: <uri>` or `model: {source, sha256, format}` (adapters alike).
absl::Status ReadSource(Ctx& ctx, const YAML::Node& n, const std::string& path, ModelSource* out) {
  if (n.IsScalar()) {
    out->uri = n.Scalar();
    ctx.Remember(Join(path, "source"), n);
    return absl::OkStatus();
  }
  WEFT_ASSIGN_OR_RETURN(MapReader m, MapReader::Open(ctx, n, path, {"source", "sha256", "format"}));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "source", &out->uri));
  WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "sha256", &out->sha256));
  WEFT_RETURN_IF_ERROR(ReadFormat(ctx, m, &out->format));
  return absl::OkStatus();
}

absl::Status ReadAutoscaling(Ctx& ctx, const YAML::Node& n, AutoscalingSpec* a) {
  WEFT_ASSIGN_OR_RETURN(
      MapReader m, MapReader::Open(ctx, n, "autoscaling",
                                   {"target_concurrency", "target_tokens_in_flight", "ttft_p95_ms",
                                    "scale_down_delay_s", "scale_to_zero", "evaluation_period_s"}));
  const YAML::Node* conc = m.Get("target_concurrency");
  const YAML::Node* toks = m.Get("target_tokens_in_flight");
  if (conc != nullptr && toks != nullptr) {
    return ctx.Error(*toks, "autoscaling.target_tokens_in_flight",
                     "set either target_concurrency or target_tokens_in_flight, not both");
  }
  if (conc != nullptr) {
    a->metric = ScalingMetric::kConcurrency;
    WEFT_RETURN_IF_ERROR(
        ReadPositiveDouble(ctx, m, "target_concurrency", 1e6, &a->target_per_replica));
  }
  if (toks != nullptr) {
    a->metric = ScalingMetric::kTokensInFlight;
    WEFT_RETURN_IF_ERROR(
        ReadPositiveDouble(ctx, m, "target_tokens_in_flight", 1e12, &a->target_per_replica));
  }
  WEFT_RETURN_IF_ERROR(
      ReadInt(ctx, m, "ttft_p95_ms", 1, 3'600'000, &a->ttft_p95_ms, "must be > 0 (omit: no SLO)"));
  WEFT_RETURN_IF_ERROR(ReadInt(ctx, m, "scale_down_delay_s", 0, 7 * 86400, &a->scale_down_delay_s));
  WEFT_RETURN_IF_ERROR(ReadBool(ctx, m, "scale_to_zero", &a->scale_to_zero));
  WEFT_RETURN_IF_ERROR(ReadInt(ctx, m, "evaluation_period_s", 1, 3600, &a->evaluation_period_s));
  return absl::OkStatus();
}

absl::StatusOr<DeploymentSpec> ReadSpec(Ctx& ctx, const YAML::Node& root) {
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(ctx.Where(root), "empty deployment spec"));
  }
  WEFT_ASSIGN_OR_RETURN(
      MapReader top,
      MapReader::Open(ctx, root, "",
                      {"api_version", "name", "model", "adapters", "quantization", "accelerator",
                       "replicas", "autoscaling", "placement", "tenants", "engine", "rollout"}));
  DeploymentSpec spec;
  if (const YAML::Node* v = top.Get("api_version")) {
    if (!v->IsScalar() || v->Scalar() != kDeploymentApiVersion) {
      return ctx.Error(*v, "api_version",
                       absl::StrCat("expected ", std::string(kDeploymentApiVersion)));
    }
  }
  WEFT_RETURN_IF_ERROR(ReadString(ctx, top, "name", &spec.name));
  if (const YAML::Node* n = top.Get("model")) {
    WEFT_RETURN_IF_ERROR(ReadSource(ctx, *n, "model", &spec.model));
  }
  if (const YAML::Node* n = top.Get("adapters")) {
    WEFT_ASSIGN_OR_RETURN(MapReader m, MapReader::Open(ctx, *n, "adapters", {}, /*any_key=*/true));
    for (size_t i = 0; i < m.fields().size(); ++i) {
      const auto& [name, value] = m.fields()[i];
      if (value.IsNull()) return ctx.Error(m.key(i), m.Path(name), "expected a source");
      WEFT_RETURN_IF_ERROR(ReadSource(ctx, value, m.Path(name), &spec.adapters[name]));
    }
  }
  WEFT_RETURN_IF_ERROR(ReadString(ctx, top, "quantization", &spec.quantization));
  if (const YAML::Node* n = top.Get("accelerator")) {
    if (n->IsScalar()) {  // `accelerator: nvidia-h100`
      spec.accelerator.kind = n->Scalar();
      ctx.Remember("accelerator.kind", *n);
    } else {
      WEFT_ASSIGN_OR_RETURN(MapReader m,
                            MapReader::Open(ctx, *n, "accelerator", {"kind", "count"}));
      WEFT_RETURN_IF_ERROR(ReadString(ctx, m, "kind", &spec.accelerator.kind));
      WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "count", 1, 64, &spec.accelerator.count));
    }
  }
  if (const YAML::Node* n = top.Get("replicas")) {
    if (n->IsScalar()) {  // `replicas: 3` = min = max = 3
      WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, top, "replicas", 1, 1000, &spec.replicas.min));
      spec.replicas.max = spec.replicas.min;
    } else {
      WEFT_ASSIGN_OR_RETURN(MapReader m, MapReader::Open(ctx, *n, "replicas", {"min", "max"}));
      WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "min", 0, 1000, &spec.replicas.min));
      spec.replicas.max = std::max(spec.replicas.min, 1);  // default: max = min
      WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "max", 1, 1000, &spec.replicas.max));
    }
  }
  if (const YAML::Node* n = top.Get("autoscaling")) {
    WEFT_RETURN_IF_ERROR(ReadAutoscaling(ctx, *n, &spec.autoscaling));
  }
  if (const YAML::Node* n = top.Get("placement")) {
    WEFT_ASSIGN_OR_RETURN(
        MapReader m,
        MapReader::Open(ctx, *n, "placement", {"providers", "regions", "spread_min_providers"}));
    WEFT_RETURN_IF_ERROR(ReadStringList(ctx, m, "providers", &spec.placement.providers));
    WEFT_RETURN_IF_ERROR(ReadStringList(ctx, m, "regions", &spec.placement.regions));
    WEFT_RETURN_IF_ERROR(
        ReadIntAs(ctx, m, "spread_min_providers", 1, 64, &spec.placement.spread_min_providers));
  }
  WEFT_RETURN_IF_ERROR(ReadStringList(ctx, top, "tenants", &spec.tenants));
  if (const YAML::Node* n = top.Get("engine")) {
    WEFT_ASSIGN_OR_RETURN(MapReader m, MapReader::Open(ctx, *n, "engine", {"threads", "ctx"}));
    WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "threads", 0, 1024, &spec.engine.threads));
    WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "ctx", 0, 1 << 24, &spec.engine.ctx));
  }
  if (const YAML::Node* n = top.Get("rollout")) {
    WEFT_ASSIGN_OR_RETURN(MapReader m,
                          MapReader::Open(ctx, *n, "rollout", {"canary_percent", "canary_hold_s"}));
    WEFT_RETURN_IF_ERROR(ReadIntAs(ctx, m, "canary_percent", 0, 100, &spec.rollout.canary_percent,
                                   "must be in [0, 100] (0 = no canary)"));
    WEFT_RETURN_IF_ERROR(
        ReadInt(ctx, m, "canary_hold_s", 0, 7 * 86400, &spec.rollout.canary_hold_s));
  }
  absl::Status valid = ValidateSpec(spec);
  if (!valid.ok()) return ctx.Locate(valid);
  return spec;
}

// JSON -> YAML node, strings tagged "!" (as if quoted) so that "8" is not read as a number.
YAML::Node JsonToYaml(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      YAML::Node n(YAML::NodeType::Map);
      for (const auto& [key, value] : j.items()) n[key] = JsonToYaml(value);
      return n;
    }
    case nlohmann::json::value_t::array: {
      YAML::Node n(YAML::NodeType::Sequence);
      for (const auto& value : j) n.push_back(JsonToYaml(value));
      return n;
    }
    case nlohmann::json::value_t::string: {
      YAML::Node n(j.get<std::string>());
      n.SetTag("!");
      return n;
    }
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return YAML::Node(YAML::NodeType::Null);
    default: {  // numbers, booleans: their JSON text is also their YAML plain scalar
      YAML::Node n(j.dump());
      n.SetTag("?");
      return n;
    }
  }
}

// ---- JSON writing and digests -------------------------------------------------------------------

nlohmann::ordered_json SourceJson(const ModelSource& s) {
  nlohmann::ordered_json j;
  j["source"] = s.uri;
  j["format"] = std::string(ModelFormatName(s.format));
  j["sha256"] = s.sha256.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(s.sha256);
  return j;
}

nlohmann::ordered_json AdaptersJson(const DeploymentSpec& spec) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, src] : spec.adapters) j[name] = SourceJson(src);
  return j;
}

nlohmann::ordered_json QuantizationJson(const DeploymentSpec& spec) {
  return spec.quantization.empty() ? nlohmann::ordered_json()
                                   : nlohmann::ordered_json(spec.quantization);
}

nlohmann::ordered_json AcceleratorJson(const AcceleratorSpec& a) {
  return {{"kind", a.kind}, {"count", a.count}};
}

nlohmann::ordered_json EngineJson(const EngineSpec& e) {
  return {{"threads", e.threads}, {"ctx", e.ctx}};
}

// Never throws: invalid UTF-8 (only in specs that skipped ValidateSpec) becomes U+FFFD.
std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

std::string_view ModelSourceKindName(ModelSourceKind kind) {
  switch (kind) {
    case ModelSourceKind::kLocalFile:
      return "local";
    case ModelSourceKind::kHuggingFace:
      return "hf";
    case ModelSourceKind::kCheckpointDir:
      return "checkpoint_dir";
  }
  return "unknown";
}

std::string_view ModelFormatName(ModelFormat format) {
  switch (format) {
    case ModelFormat::kAuto:
      return "auto";
    case ModelFormat::kGguf:
      return "gguf";
    case ModelFormat::kLlama2c:
      return "llama2c";
    case ModelFormat::kHfCheckpoint:
      return "hf_checkpoint";
  }
  return "unknown";
}

std::string_view ScalingMetricName(ScalingMetric metric) {
  switch (metric) {
    case ScalingMetric::kConcurrency:
      return "concurrency";
    case ScalingMetric::kTokensInFlight:
      return "tokens_in_flight";
  }
  return "unknown";
}

const std::vector<std::string>& KnownAcceleratorKinds() {
  static const std::vector<std::string> kinds = {"cpu",         "nvidia-h100", "nvidia-h200",
                                                 "nvidia-b200", "nvidia-a100", "nvidia-a10g",
                                                 "nvidia-l4",   "nvidia-l40s", "amd-mi300x"};
  return kinds;
}

const std::vector<std::string>& KnownQuantizations() {
  static const std::vector<std::string> q = {"f32", "f16", "bf16", "q8_0", "q4_0"};
  return q;
}

absl::Status ValidateSpec(DeploymentSpec& spec) {
  if (spec.name.empty()) return Invalid("name", "required");
  if (!IsName(spec.name, 63, /*allow_upper=*/false)) {
    return Invalid("name", absl::StrCat("bad deployment name ", Quote(spec.name), " (",
                                        NameRule(63, false), ")"));
  }
  WEFT_RETURN_IF_ERROR(ValidateSource(spec.model, "model"));
  for (auto& [name, src] : spec.adapters) {
    std::string path = absl::StrCat("adapters.", name);
    if (!IsName(name, 64, /*allow_upper=*/true)) {
      return Invalid(path, absl::StrCat("bad adapter name (", NameRule(64, true), ")"));
    }
    WEFT_RETURN_IF_ERROR(ValidateSource(src, path));
  }
  if (!spec.quantization.empty() && !Contains(KnownQuantizations(), spec.quantization)) {
    return Invalid("quantization", absl::StrCat("unknown ", Quote(spec.quantization), " (known: ",
                                                absl::StrJoin(KnownQuantizations(), ", "), ")"));
  }
  if (!Contains(KnownAcceleratorKinds(), spec.accelerator.kind)) {
    return Invalid("accelerator.kind",
                   absl::StrCat("unknown ", Quote(spec.accelerator.kind),
                                " (known: ", absl::StrJoin(KnownAcceleratorKinds(), ", "), ")"));
  }
  if (spec.accelerator.count < 1 || spec.accelerator.count > 64) {
    return Invalid("accelerator.count",
                   absl::StrCat("must be in [1, 64], got ", spec.accelerator.count));
  }
  const ReplicasSpec& r = spec.replicas;
  AutoscalingSpec& a = spec.autoscaling;
  if (r.min < 0 || r.min > 1000) {
    return Invalid("replicas.min", absl::StrCat("must be in [0, 1000], got ", r.min));
  }
  if (r.max < 1 || r.max > 1000) {
    return Invalid("replicas.max", absl::StrCat("must be in [1, 1000], got ", r.max));
  }
  if (r.max < r.min) {
    return Invalid("replicas.max",
                   absl::StrCat("must be >= replicas.min (", r.min, "), got ", r.max));
  }
  if (r.min == 0 && !a.scale_to_zero) {
    return Invalid("replicas.min", "0 needs autoscaling.scale_to_zero: true");
  }
  if (!std::isfinite(a.target_per_replica) || !(a.target_per_replica > 0)) {
    return Invalid(a.metric == ScalingMetric::kConcurrency ? "autoscaling.target_concurrency"
                                                           : "autoscaling.target_tokens_in_flight",
                   "must be > 0");
  }
  if (a.ttft_p95_ms < 0 || a.ttft_p95_ms > 3'600'000) {
    return Invalid("autoscaling.ttft_p95_ms", "must be > 0 (0 or omitted: no SLO), at most 1h");
  }
  if (a.scale_down_delay_s < 0 || a.scale_down_delay_s > 7 * 86400) {
    return Invalid("autoscaling.scale_down_delay_s", "must be in [0, 604800]");
  }
  if (a.evaluation_period_s < 1 || a.evaluation_period_s > 3600) {
    return Invalid("autoscaling.evaluation_period_s", "must be in [1, 3600]");
  }
  PlacementSpec& p = spec.placement;
  WEFT_RETURN_IF_ERROR(
      ValidateNameList(p.providers, "placement.providers", 63, /*allow_upper=*/false, "provider"));
  WEFT_RETURN_IF_ERROR(
      ValidateNameList(p.regions, "placement.regions", 63, /*allow_upper=*/false, "region"));
  if (p.spread_min_providers < 1 || p.spread_min_providers > 64) {
    return Invalid("placement.spread_min_providers",
                   absl::StrCat("must be in [1, 64], got ", p.spread_min_providers));
  }
  if (p.spread_min_providers > r.max) {
    return Invalid("placement.spread_min_providers",
                   absl::StrCat(p.spread_min_providers, " needs replicas.max >= ",
                                p.spread_min_providers, ", got ", r.max));
  }
  if (!p.providers.empty() && p.spread_min_providers > static_cast<int32_t>(p.providers.size())) {
    return Invalid("placement.spread_min_providers",
                   absl::StrCat(p.spread_min_providers, " exceeds the ", p.providers.size(),
                                " allowed providers"));
  }
  WEFT_RETURN_IF_ERROR(
      ValidateNameList(spec.tenants, "tenants", 128, /*allow_upper=*/true, "tenant"));
  if (spec.engine.threads < 0 || spec.engine.threads > 1024) {
    return Invalid("engine.threads", "must be in [0, 1024] (0 = default)");
  }
  if (spec.engine.ctx != 0 && (spec.engine.ctx < 16 || spec.engine.ctx > (1 << 24))) {
    return Invalid("engine.ctx", absl::StrCat("must be 0 (the model's) or in [16, ", 1 << 24,
                                              "], got ", spec.engine.ctx));
  }
  if (spec.rollout.canary_percent < 0 || spec.rollout.canary_percent > 100) {
    return Invalid(
        "rollout.canary_percent",
        absl::StrCat("must be in [0, 100] (0 = no canary), got ", spec.rollout.canary_percent));
  }
  if (spec.rollout.canary_hold_s < 0 || spec.rollout.canary_hold_s > 7 * 86400) {
    return Invalid("rollout.canary_hold_s",
                   absl::StrCat("must be in [0, 604800], got ", spec.rollout.canary_hold_s));
  }
  return absl::OkStatus();
}

absl::StatusOr<DeploymentSpec> ParseDeploymentSpecYaml(std::string_view yaml,
                                                       std::string_view source) {
  Ctx ctx(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ":", e.mark.line + 1, ": ", e.msg));
  }
  try {
    return ReadSpec(ctx, root);
  } catch (const YAML::Exception& e) {  // defensive: node access should not throw
    return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": ", e.what()));
  }
}

absl::StatusOr<DeploymentSpec> LoadDeploymentSpec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseDeploymentSpecYaml(buf.str(), path);
}

nlohmann::ordered_json SpecToJson(const DeploymentSpec& spec) {
  nlohmann::ordered_json j;
  j["api_version"] = std::string(kDeploymentApiVersion);
  j["name"] = spec.name;
  j["model"] = SourceJson(spec.model);
  j["adapters"] = AdaptersJson(spec);
  j["quantization"] = QuantizationJson(spec);
  j["accelerator"] = AcceleratorJson(spec.accelerator);
  j["replicas"] = {{"min", spec.replicas.min}, {"max", spec.replicas.max}};
  const AutoscalingSpec& a = spec.autoscaling;
  nlohmann::ordered_json as;
  as[a.metric == ScalingMetric::kConcurrency ? "target_concurrency" : "target_tokens_in_flight"] =
      a.target_per_replica;
  as["ttft_p95_ms"] =
      a.ttft_p95_ms > 0 ? nlohmann::ordered_json(a.ttft_p95_ms) : nlohmann::ordered_json();
  as["scale_down_delay_s"] = a.scale_down_delay_s;
  as["scale_to_zero"] = a.scale_to_zero;
  as["evaluation_period_s"] = a.evaluation_period_s;
  j["autoscaling"] = std::move(as);
  j["placement"] = {{"providers", spec.placement.providers},
                    {"regions", spec.placement.regions},
                    {"spread_min_providers", spec.placement.spread_min_providers}};
  j["tenants"] = spec.tenants;
  j["engine"] = EngineJson(spec.engine);
  j["rollout"] = {{"canary_percent", spec.rollout.canary_percent},
                  {"canary_hold_s", spec.rollout.canary_hold_s}};
  return j;
}

absl::StatusOr<DeploymentSpec> SpecFromJson(const nlohmann::json& json) {
  Ctx ctx("");
  try {
    return ReadSpec(ctx, JsonToYaml(json));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
}

absl::StatusOr<DeploymentSpec> SpecFromJsonText(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("deployment spec: not valid JSON");
  return SpecFromJson(j);
}

std::string SpecDigest(const DeploymentSpec& spec) { return Sha256Hex(Dump(SpecToJson(spec))); }

std::string ReplicaTemplateDigest(const DeploymentSpec& spec) {
  nlohmann::ordered_json j;
  j["model"] = SourceJson(spec.model);
  j["adapters"] = AdaptersJson(spec);
  j["quantization"] = QuantizationJson(spec);
  j["accelerator"] = AcceleratorJson(spec.accelerator);
  j["engine"] = EngineJson(spec.engine);
  return Sha256Hex(Dump(j));
}

bool NeedsRollingUpdate(const DeploymentSpec& before, const DeploymentSpec& after) {
  return ReplicaTemplateDigest(before) != ReplicaTemplateDigest(after);
}

std::vector<std::string> ChangedFields(const DeploymentSpec& before, const DeploymentSpec& after) {
  nlohmann::ordered_json a = SpecToJson(before);
  nlohmann::ordered_json b = SpecToJson(after);
  std::vector<std::string> out;
  for (const auto& [key, value] : a.items()) {
    if (b[key] != value) out.push_back(key);
  }
  return out;
}

}  // namespace weft::control
