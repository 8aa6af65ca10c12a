// SPDX-License-Identifier: Apache-2.0
#include "control/providers/kubernetes/kubeconfig.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

using ::testing::HasSubstr;

constexpr char kCa[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
constexpr char kKey[] = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

std::string Config(const std::string& extra_user = "") {
  return absl::StrReplaceAll(R"(apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: CA
- name: dev-cluster
  cluster:
    server: http://127.0.0.1:8001
    insecure-skip-tls-verify: true
contexts:
- name: prod
  context: {cluster: prod-cluster, user: robot, namespace: inference}
- name: dev
  context: {cluster: dev-cluster, user: dev}
users:
- name: robot
  user:
    token: abc.def
- name: dev
  user:
EXTRA)",
                             {{"CA", absl::Base64Escape(kCa)}, {"EXTRA", extra_user}});
}

absl::StatusOr<Kubeconfig> Parse(const std::string& text, const std::string& context = "") {
  KubeconfigParseOptions o;
  o.context = context;
  return ParseKubeconfig(text, o);
}

void ExpectError(const std::string& text, const std::string& field,
                 const std::string& context = "") {
  absl::StatusOr<Kubeconfig> k = Parse(text, context);
  ASSERT_FALSE(k.ok()) << text;
  EXPECT_EQ(k.status().code(), absl::StatusCode::kInvalidArgument) << k.status();
  EXPECT_THAT(std::string(k.status().message()), HasSubstr(field));
}

TEST(KubeconfigTest, CurrentContextWithTokenAndCaData) {
  absl::StatusOr<Kubeconfig> k = Parse(Config("    token: dev-token\n"));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->context, "prod");
  EXPECT_EQ(k->cluster, "prod-cluster");
  EXPECT_EQ(k->user, "robot");
  EXPECT_EQ(k->server, "https://10.0.0.1:6443");  // trailing slash dropped
  EXPECT_EQ(k->namespace_name, "inference");
  EXPECT_EQ(k->ca_pem, kCa);
  EXPECT_FALSE(k->insecure_skip_tls_verify);
  EXPECT_EQ(k->token, "abc.def");
  EXPECT_TRUE(k->client_cert_pem.empty());
}

TEST(KubeconfigTest, NamedContextWithClientCertificateData) {
  absl::StatusOr<Kubeconfig> k =
      Parse(Config(absl::StrCat("    client-certificate-data: ", absl::Base64Escape(kCa),
                                "\n    client-key-data: ", absl::Base64Escape(kKey), "\n")),
            "dev");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->server, "http://127.0.0.1:8001");
  EXPECT_TRUE(k->insecure_skip_tls_verify);
  EXPECT_TRUE(k->namespace_name.empty());
  EXPECT_EQ(k->client_cert_pem, kCa);
  EXPECT_EQ(k->client_key_pem, kKey);
  EXPECT_TRUE(k->token.empty());
}

TEST(KubeconfigTest, FilesResolveAgainstTheKubeconfigFolder) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("weft-kubeconfig-", getpid());
  std::filesystem::create_directories(dir / "certs");
  std::ofstream(dir / "certs/ca.crt") << kCa;
  std::ofstream(dir / "certs/client.crt") << kCa;
  std::ofstream(dir / "certs/client.key") << kKey;
  std::ofstream(dir / "token") << "file-token\n";
  std::string text = R"(current-context: c
clusters: [{name: k, cluster: {server: "https://api:6443", certificate-authority: certs/ca.crt}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {client-certificate: certs/client.crt, client-key: certs/client.key, tokenFile: token}}]
)";
  std::ofstream(dir / "config") << text;
  absl::StatusOr<Kubeconfig> k = LoadKubeconfig((dir / "config").string());
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->ca_pem, kCa);
  EXPECT_EQ(k->client_key_pem, kKey);
  EXPECT_EQ(k->token, "file-token");

  KubeconfigParseOptions no_files;
  no_files.read_files = false;
  absl::StatusOr<Kubeconfig> refused = ParseKubeconfig(text, no_files);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("clusters[name=k].cluster.certificate-authority"));

  std::filesystem::remove(dir / "certs/client.key");
  absl::StatusOr<Kubeconfig> missing = LoadKubeconfig((dir / "config").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("users[name=u].user.client-key"));
  std::filesystem::remove_all(dir);
  EXPECT_EQ(LoadKubeconfig((dir / "config").string()).status().code(), absl::StatusCode::kNotFound);
}

TEST(KubeconfigTest, ErrorsNameTheField) {
  ExpectError("a: [", "not valid YAML");
  ExpectError("- 1\n", "(top level)");
  ExpectError("clusters: []\n", "current-context");
  ExpectError(Config(), "contexts: no entry named \"nope\"", "nope");
  ExpectError(absl::StrReplaceAll(Config(), {{"server: https://10.0.0.1:6443/", "server: ''"}}),
              "clusters[name=prod-cluster].cluster.server: missing");
  ExpectError(
      absl::StrReplaceAll(Config(), {{"server: https://10.0.0.1:6443/", "server: ftp://x"}}),
      "clusters[name=prod-cluster].cluster.server");
  ExpectError(absl::StrReplaceAll(Config(), {{"cluster: prod-cluster,", "cluster: gone,"}}),
              "clusters: no entry named \"gone\"");
  ExpectError(absl::StrReplaceAll(Config(), {{"cluster: prod-cluster, ", ""}}),
              "contexts[name=prod].context.cluster: missing");
  ExpectError(Config("    client-key-data: '!!!not base64'\n"),
              "users[name=dev].user.client-key-data: not valid base64", "dev");
  ExpectError(Config(absl::StrCat("    client-key-data: ", absl::Base64Escape("plain text"), "\n")),
              "users[name=dev].user.client-key-data: not PEM", "dev");
  ExpectError(Config(absl::StrCat("    client-certificate-data: ", absl::Base64Escape(kCa), "\n")),
              "users[name=dev].user.client-key: missing", "dev");
  ExpectError(Config("    exec: {command: aws}\n"), "users[name=dev].user.exec", "dev");
  ExpectError(absl::StrReplaceAll(Config(), {{"insecure-skip-tls-verify: true",
                                              "insecure-skip-tls-verify: maybe"}}),
              "clusters[name=dev-cluster].cluster.insecure-skip-tls-verify", "dev");
  ExpectError(absl::StrReplaceAll(Config(), {{"token: abc.def", "token: [1, 2]"}}),
              "users[name=robot].user.token: must be a string");
  ExpectError("current-context: c\ncontexts: {c: 1}\n", "contexts: must be a list");
}

}  // namespace
}  // namespace weft::control
