// SPDX-License-Identifier: Apache-2.0
// Parsing of the providers file (the factory is in provider_factory.cc, so that the fuzzer links
// the parser alone).
#include "control/providers/provider_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/status.h"
#include "yaml-cpp/yaml.h"

namespace weft::control {
namespace {

// Errors point at the YAML line of the offending node: "source:line: path: message".
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  absl::Status Error(const YAML::Node& node, const std::string& path,
                     const std::string& message) const {
    const YAML::Mark mark = node.Mark();
    const std::string where =
        mark.line < 0 ? source_ + ": " : absl::StrCat(source_, ":", mark.line + 1, ": ");
    return absl::InvalidArgumentError(absl::StrCat(where, path, ": ", message));
  }

  absl::Status String(const YAML::Node& n, const std::string& path, std::string* out) const {
    if (!n.IsScalar()) return Error(n, path, "want a string");
    *out = n.Scalar();
    return absl::OkStatus();
  }

  absl::Status Int(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi,
                   int* out) const {
    int64_t v = 0;
    if (!n.IsScalar() || n.Tag() == "!" || !YAML::convert<int64_t>::decode(n, v)) {
      return Error(n, path, "want an integer");
    }
    if (v < lo || v > hi) return Error(n, path, absl::StrCat("must be in [", lo, ", ", hi, "]"));
    *out = static_cast<int>(v);
    return absl::OkStatus();
  }

  absl::Status Number(const YAML::Node& n, const std::string& path, double* out) const {
    double v = 0;
    if (!n.IsScalar() || n.Tag() == "!" || !YAML::convert<double>::decode(n, v) ||
        !std::isfinite(v)) {
      return Error(n, path, "want a number");
    }
    *out = v;
    return absl::OkStatus();
  }

 private:
  std::string source_;
};

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
  }
  return true;
}

bool ValidEnvName(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

// "http://host:port" with a host and a port, nothing after.
bool ValidAgentUrl(const std::string& url) {
  if (!absl::StartsWith(url, "http://")) return false;
  std::string rest = url.substr(7);
  while (absl::EndsWith(rest, "/")) rest.pop_back();
  if (rest.empty() || rest.find('/') != std::string::npos) return false;
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) return false;
  const std::string port = rest.substr(colon + 1);
  if (port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  const int p = std::stoi(port);
  return p >= 1 && p <= 65535;
}

// A DNS-1123 label (Kubernetes namespaces): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool ValidDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// A DNS-1123 subdomain (PersistentVolumeClaim names): dot-separated labels, at most 253.
bool ValidDnsSubdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  const std::vector<std::string> labels = absl::StrSplit(s, '.');
  for (const std::string& label : labels) {
    if (!ValidDnsLabel(label)) return false;
  }
  return true;
}

// The keys each kind accepts (beyond name and kind), for unknown-key errors.
const std::vector<std::string>& KeysOf(const std::string& kind) {
  static const std::vector<std::string> kLocal = {"region", "usd_per_hour", "slots", "accelerator"};
  static const std::vector<std::string> kHosts = {"region", "usd_per_hour", "hosts",
                                                  "token",  "token_env",    "timeout_ms"};
  static const std::vector<std::string> kKubernetes = {"region",    "usd_per_hour", "kubeconfig",
                                                       "context",   "namespace",    "image",
                                                       "model_pvc", "slots"};
  static const std::vector<std::string> kNone;
  if (kind == "local") return kLocal;
  if (kind == "hosts") return kHosts;
  if (kind == "kubernetes") return kKubernetes;
  return kNone;
}

absl::StatusOr<ProviderConfig> ReadProvider(const Reader& r, const YAML::Node& node,
                                            const std::string& path) {
  if (!node.IsMap()) return r.Error(node, path, "want a map (name:, kind:, ...)");
  ProviderConfig c;
  const YAML::Node name = node["name"];
  if (!name) return r.Error(node, path + ".name", "required");
  WEFT_RETURN_IF_ERROR(r.String(name, path + ".name", &c.name));
  if (!ValidName(c.name)) {
    return r.Error(name, path + ".name",
                   absl::StrCat("'", c.name, "' is not a name ([a-z0-9][a-z0-9._-]{0,62})"));
  }
  const YAML::Node kind = node["kind"];
  if (!kind)
    return r.Error(node, path + ".kind",
                   "required (" + absl::StrJoin(ProviderKinds(), " | ") + ")");
  WEFT_RETURN_IF_ERROR(r.String(kind, path + ".kind", &c.kind));
  const std::vector<std::string>& keys = KeysOf(c.kind);
  if (keys.empty()) {
    return r.Error(
        kind, path + ".kind",
        absl::StrCat("unknown kind '", c.kind, "' (", absl::StrJoin(ProviderKinds(), " | "), ")"));
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    std::string key;
    WEFT_RETURN_IF_ERROR(r.String(it->first, path, &key));
    if (key == "name" || key == "kind") continue;
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      return r.Error(it->first, path + "." + key,
                     absl::StrCat("unknown key for kind ", c.kind, " (known: name, kind, ",
                                  absl::StrJoin(keys, ", "), ")"));
    }
    const YAML::Node v = it->second;
    const std::string field = path + "." + key;
    if (key == "region") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.region));
      if (c.region.empty()) return r.Error(v, field, "empty");
    } else if (key == "usd_per_hour") {
      WEFT_RETURN_IF_ERROR(r.Number(v, field, &c.usd_per_hour));
      if (c.usd_per_hour < 0) return r.Error(v, field, "must be >= 0");
    } else if (key == "slots" && c.kind == "kubernetes") {
      if (!v.IsMap() || v.size() == 0) {
        return r.Error(v, field, "want a map of accelerator kind to slots ({cpu: 8, h100: 4})");
      }
      for (auto s = v.begin(); s != v.end(); ++s) {
        std::string accelerator;
        WEFT_RETURN_IF_ERROR(r.String(s->first, field, &accelerator));
        const std::string item = field + "." + accelerator;
        if (!ValidName(accelerator)) {
          return r.Error(s->first, item,
                         absl::StrCat("'", accelerator,
                                      "' is not an accelerator kind ([a-z0-9][a-z0-9._-]{0,62})"));
        }
        int n = 0;
        WEFT_RETURN_IF_ERROR(r.Int(s->second, item, 1, 4096, &n));
        if (!c.accelerator_slots.emplace(accelerator, n).second) {
          return r.Error(s->first, item, "listed twice");
        }
      }
    } else if (key == "slots") {
      WEFT_RETURN_IF_ERROR(r.Int(v, field, 1, 4096, &c.slots));
    } else if (key == "kubeconfig") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.kubeconfig));
      if (c.kubeconfig.empty()) return r.Error(v, field, "empty");
    } else if (key == "context") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.context));  // "" = current-context
    } else if (key == "namespace") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.namespace_name));
      if (!c.namespace_name.empty() && !ValidDnsLabel(c.namespace_name)) {
        return r.Error(v, field,
                       absl::StrCat("'", c.namespace_name,
                                    "' is not a namespace name ([a-z0-9]([-a-z0-9]*[a-z0-9])?)"));
      }
    } else if (key == "image") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.image));
      if (c.image.empty()) return r.Error(v, field, "empty");
    } else if (key == "model_pvc") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.model_pvc));
      if (!ValidDnsSubdomain(c.model_pvc)) {
        return r.Error(v, field,
                       absl::StrCat("'", c.model_pvc, "' is not a PersistentVolumeClaim name"));
      }
    } else if (key == "accelerator") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.accelerator));
      if (c.accelerator.empty()) return r.Error(v, field, "empty");
    } else if (key == "hosts") {
      if (!v.IsSequence() || v.size() == 0) {
        return r.Error(v, field, "want a non-empty list of agent URLs (http://host:port)");
      }
      std::set<std::string> seen;
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string item = absl::StrCat(field, "[", i, "]");
        std::string url;
        WEFT_RETURN_IF_ERROR(r.String(v[i], item, &url));
        if (!ValidAgentUrl(url)) {
          return r.Error(v[i], item,
                         absl::StrCat("'", url, "' is not an agent URL (http://host:port)"));
        }
        while (absl::EndsWith(url, "/")) url.pop_back();
        if (!seen.insert(url).second)
          return r.Error(v[i], item, absl::StrCat("'", url, "' listed twice"));
        c.hosts.push_back(url);
      }
    } else if (key == "token") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.token));
      if (c.token.empty()) return r.Error(v, field, "empty");
    } else if (key == "token_env") {
      WEFT_RETURN_IF_ERROR(r.String(v, field, &c.token_env));
      if (!ValidEnvName(c.token_env)) {
        return r.Error(v, field,
                       absl::StrCat("'", c.token_env, "' is not an environment variable name"));
      }
    } else if (key == "timeout_ms") {
      WEFT_RETURN_IF_ERROR(r.Int(v, field, 50, 60000, &c.timeout_ms));
    }
  }
  if (c.kind == "kubernetes") {
    if (c.kubeconfig.empty()) {
      return r.Error(node, path + ".kubeconfig", "required for kind kubernetes (a file path)");
    }
    if (c.accelerator_slots.empty()) {
      return r.Error(node, path + ".slots",
                     "required for kind kubernetes (accelerator kind to slots: {cpu: 8})");
    }
  }
  if (c.kind == "hosts") {
    if (c.hosts.empty()) return r.Error(node, path + ".hosts", "required for kind hosts");
    if (c.token.empty() == c.token_env.empty()) {
      return r.Error(node, path + ".token",
                     "give exactly one of token and token_env (the agents' shared token)");
    }
  }
  return c;
}

}  // namespace

const std::vector<std::string>& ProviderKinds() {
  static const std::vector<std::string> kKinds = {"hosts", "kubernetes", "local"};
  return kKinds;
}

absl::StatusOr<std::vector<ProviderConfig>> ParseProvidersYaml(std::string_view yaml,
                                                               std::string_view source) {
  const Reader r(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(source), ":", e.mark.line + 1, ": not YAML: ", e.msg));
  }
  try {
    if (!root.IsMap()) return r.Error(root, "providers", "want a map with a providers: list");
    for (auto it = root.begin(); it != root.end(); ++it) {
      std::string key;
      WEFT_RETURN_IF_ERROR(r.String(it->first, "<top>", &key));
      if (key != "providers") return r.Error(it->first, key, "unknown key (known: providers)");
    }
    const YAML::Node list = root["providers"];
    if (!list || !list.IsSequence() || list.size() == 0) {
      return r.Error(list ? list : root, "providers", "want a non-empty list of providers");
    }
    std::vector<ProviderConfig> out;
    std::set<std::string> names;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string path = absl::StrCat("providers[", i, "]");
      absl::StatusOr<ProviderConfig> c = ReadProvider(r, list[i], path);
      if (!c.ok()) return c.status();
      if (!names.insert(c->name).second) {
        return r.Error(list[i]["name"], path + ".name",
                       absl::StrCat("'", c->name, "' is used by an earlier provider"));
      }
      out.push_back(*std::move(c));
    }
    return out;
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed accesses; never let it escape.
    return absl::InvalidArgumentError(absl::StrCat(std::string(source), ": ", e.what()));
  }
}

absl::StatusOr<std::vector<ProviderConfig>> LoadProvidersFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("providers file ", path, ": cannot read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseProvidersYaml(ss.str(), path);
}

}  // namespace weft::control
