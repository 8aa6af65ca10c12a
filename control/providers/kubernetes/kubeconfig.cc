// SPDX-License-Identifier: Apache-2.0
#include "control/providers/kubernetes/kubeconfig.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace weft::control {
namespace {

absl::Status Invalid(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("kubeconfig: ", field, ": ", why));
}

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("kubeconfig: ", field, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scalar string field of `map`, or nullopt when absent; InvalidArgument when not a scalar.
absl::StatusOr<std::optional<std::string>> Scalar(const YAML::Node& map, const std::string& key,
                                                  const std::string& field) {
  const YAML::Node n = map[key];
  if (!n || n.IsNull()) return std::optional<std::string>();
  if (!n.IsScalar()) return Invalid(absl::StrCat(field, ".", key), "must be a string");
  return std::optional<std::string>(n.Scalar());
}

// The `inner` map of the entry named `name` in the list `list` ("clusters", "users",
// "contexts"): each entry is {name: ..., <inner>: {...}}.
absl::StatusOr<YAML::Node> Entry(const YAML::Node& root, const std::string& list,
                                 const std::string& inner, const std::string& name,
                                 std::string* field) {
  const YAML::Node entries = root[list];
  if (!entries || entries.IsNull()) return Invalid(list, "missing");
  if (!entries.IsSequence()) return Invalid(list, "must be a list");
  for (size_t i = 0; i < entries.size(); ++i) {
    const YAML::Node e = entries[i];
    if (!e.IsMap()) return Invalid(absl::StrCat(list, "[", i, "]"), "must be a map");
    const YAML::Node n = e["name"];
    if (!n || !n.IsScalar()) return Invalid(absl::StrCat(list, "[", i, "].name"), "missing");
    if (n.Scalar() != name) continue;
    *field = absl::StrCat(list, "[name=", name, "].", inner);
    const YAML::Node body = e[inner];
    if (!body || body.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!body.IsMap()) return Invalid(*field, "must be a map");
    return body;
  }
  return Invalid(list, absl::StrCat("no entry named \"", name, "\""));
}

// `<key>-data` (base64, inline) or `<key>` (a file): the PEM text, or "" when neither is set.
absl::StatusOr<std::string> PemField(const YAML::Node& map, const std::string& key,
                                     const std::string& field,
                                     const KubeconfigParseOptions& options) {
  absl::StatusOr<std::optional<std::string>> data = Scalar(map, key + "-data", field);
  if (!data.ok()) return data.status();
  if (data->has_value()) {
    std::string decoded;
    std::string text(absl::StripAsciiWhitespace(**data));
    if (!absl::Base64Unescape(text, &decoded)) {
      return Invalid(absl::StrCat(field, ".", key, "-data"), "not valid base64");
    }
    if (!absl::StrContains(decoded, "-----BEGIN ")) {
      return Invalid(absl::StrCat(field, ".", key, "-data"), "not PEM (no -----BEGIN line)");
    }
    return decoded;
  }
  absl::StatusOr<std::optional<std::string>> file = Scalar(map, key, field);
  if (!file.ok()) return file.status();
  if (!file->has_value()) return std::string();
  const std::string f = absl::StrCat(field, ".", key);
  if (!options.read_files) return Invalid(f, "files are not allowed here");
  std::filesystem::path p(**file);
  if (p.is_relative() && !options.base_dir.empty()) p = std::filesystem::path(options.base_dir) / p;
  absl::StatusOr<std::string> text = ReadFile(p.string(), f);
  if (!text.ok()) return text.status();
  if (!absl::StrContains(*text, "-----BEGIN "))
    return Invalid(f, absl::StrCat(p.string(), " is not PEM"));
  return *text;
}

absl::StatusOr<Kubeconfig> Parse(const YAML::Node& root, const KubeconfigParseOptions& options) {
  if (!root.IsMap()) return Invalid("(top level)", "must be a map");
  Kubeconfig k;
  if (!options.context.empty()) {
    k.context = options.context;
  } else {
    absl::StatusOr<std::optional<std::string>> current = Scalar(root, "current-context", "");
    if (!current.ok()) return Invalid("current-context", "must be a string");
    if (!current->has_value() || (*current)->empty()) {
      return Invalid("current-context", "missing (and no context was named)");
    }
    k.context = **current;
  }

  std::string ctx_field;
  absl::StatusOr<YAML::Node> ctx = Entry(root, "contexts", "context", k.context, &ctx_field);
  if (!ctx.ok()) return ctx.status();
  absl::StatusOr<std::optional<std::string>> cluster = Scalar(*ctx, "cluster", ctx_field);
  if (!cluster.ok()) return cluster.status();
  if (!cluster->has_value() || (*cluster)->empty())
    return Invalid(ctx_field + ".cluster", "missing");
  k.cluster = **cluster;
  absl::StatusOr<std::optional<std::string>> user = Scalar(*ctx, "user", ctx_field);
  if (!user.ok()) return user.status();
  k.user = user->value_or("");
  absl::StatusOr<std::optional<std::string>> ns = Scalar(*ctx, "namespace", ctx_field);
  if (!ns.ok()) return ns.status();
  k.namespace_name = ns->value_or("");

  std::string cl_field;
  absl::StatusOr<YAML::Node> cl = Entry(root, "clusters", "cluster", k.cluster, &cl_field);
  if (!cl.ok()) return cl.status();
  absl::StatusOr<std::optional<std::string>> server = Scalar(*cl, "server", cl_field);
  if (!server.ok()) return server.status();
  if (!server->has_value() || (*server)->empty()) return Invalid(cl_field + ".server", "missing");
  k.server = std::string(absl::StripSuffix(**server, "/"));
  if (!absl::StartsWith(k.server, "https://") && !absl::StartsWith(k.server, "http://")) {
    return Invalid(cl_field + ".server", absl::StrCat("\"", k.server, "\" is not an http(s) URL"));
  }
  absl::StatusOr<std::optional<std::string>> insecure =
      Scalar(*cl, "insecure-skip-tls-verify", cl_field);
  if (!insecure.ok()) return insecure.status();
  if (insecure->has_value()) {
    if (**insecure == "true") {
      k.insecure_skip_tls_verify = true;
    } else if (**insecure != "false") {
      return Invalid(cl_field + ".insecure-skip-tls-verify", "must be true or false");
    }
  }
  absl::StatusOr<std::string> ca = PemField(*cl, "certificate-authority", cl_field, options);
  if (!ca.ok()) return ca.status();
  k.ca_pem = *ca;

  if (k.user.empty()) return k;  // anonymous (e.g. a local proxy)
  std::string u_field;
  absl::StatusOr<YAML::Node> u = Entry(root, "users", "user", k.user, &u_field);
  if (!u.ok()) return u.status();
  for (const char* plugin : {"exec", "auth-provider"}) {
    if ((*u)[plugin] && !(*u)[plugin].IsNull()) {
      return Invalid(absl::StrCat(u_field, ".", plugin),
                     "credential plugins are not supported; use a token or a client certificate");
    }
  }
  absl::StatusOr<std::optional<std::string>> token = Scalar(*u, "token", u_field);
  if (!token.ok()) return token.status();
  if (token->has_value()) {
    k.token = std::string(absl::StripAsciiWhitespace(**token));
  } else {
    absl::StatusOr<std::optional<std::string>> token_file = Scalar(*u, "tokenFile", u_field);
    if (!token_file.ok()) return token_file.status();
    if (token_file->has_value()) {
      if (!options.read_files) return Invalid(u_field + ".tokenFile", "files are not allowed here");
      std::filesystem::path p(**token_file);
      if (p.is_relative() && !options.base_dir.empty()) {
        p = std::filesystem::path(options.base_dir) / p;
      }
      absl::StatusOr<std::string> text = ReadFile(p.string(), u_field + ".tokenFile");
      if (!text.ok()) return text.status();
      k.token = std::string(absl::StripAsciiWhitespace(*text));
    }
  }
  absl::StatusOr<std::string> cert = PemField(*u, "client-certificate", u_field, options);
  if (!cert.ok()) return cert.status();
  k.client_cert_pem = *cert;
  absl::StatusOr<std::string> key = PemField(*u, "client-key", u_field, options);
  if (!key.ok()) return key.status();
  k.client_key_pem = *key;
  if (k.client_cert_pem.empty() != k.client_key_pem.empty()) {
    return Invalid(u_field + (k.client_cert_pem.empty() ? ".client-certificate" : ".client-key"),
                   "missing (a client certificate needs both the certificate and its key)");
  }
  return k;
}

}  // namespace

absl::StatusOr<Kubeconfig> ParseKubeconfig(std::string_view yaml,
                                           const KubeconfigParseOptions& options) {
  // yaml-cpp throws on malformed input; failures from the outside world are values here.
  try {
    return Parse(YAML::Load(std::string(yaml)), options);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig: not valid YAML: ", e.what()));
  }
}

absl::StatusOr<Kubeconfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("kubeconfig: cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  KubeconfigParseOptions o;
  o.context = context;
  o.base_dir = std::filesystem::path(path).parent_path().string();
  absl::StatusOr<Kubeconfig> k = ParseKubeconfig(ss.str(), o);
  if (!k.ok()) {
    return absl::Status(k.status().code(), absl::StrCat(path, ": ", k.status().message()));
  }
  return k;
}

}  // namespace weft::control
