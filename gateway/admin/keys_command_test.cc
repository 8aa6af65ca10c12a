// SPDX-License-Identifier: Apache-2.0
// `weft keys` and `weft tenants` against a key store in a temporary folder.
#include "gateway/admin/keys_command.h"

#include <filesystem>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gateway/auth/sqlite_key_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/test_data.h"

namespace weft::admin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out, err;
};

class KeysCommandTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = weft::testing::MakeTempDir("keys_command_test") + "/data"; }
  void TearDown() override {
    std::filesystem::remove_all(std::filesystem::path(dir_).parent_path());
  }

  Result Keys(std::vector<std::string> args) { return Run(args, RunKeysCommand); }
  Result Tenants(std::vector<std::string> args) { return Run(args, RunTenantsCommand); }
  Result Run(std::vector<std::string> args,
             int (*command)(const std::vector<std::string>&, std::ostream&, std::ostream&)) {
    args.push_back("--data");
    args.push_back(dir_);
    std::ostringstream out, err;
    int code = command(args, out, err);
    return {code, out.str(), err.str()};
  }
  std::unique_ptr<auth::SqliteKeyStore> Store() {
    auto s = auth::SqliteKeyStore::Open(dir_ + "/keys.sqlite");
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  std::string dir_;
};

TEST_F(KeysCommandTest, CreateMakesTheTenantAndPrintsTheKeyOnce) {
  Result r = Keys({"create", "--tenant", "acme", "--name", "ci", "--deployments", "llama,qwen"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.out.back(), '\n');
  std::string key = r.out.substr(0, r.out.size() - 1);
  EXPECT_EQ(key.find('\n'), std::string::npos);  // the key alone: KEY=$(weft keys create ...)
  EXPECT_EQ(key.rfind("wft_", 0), 0u);
  EXPECT_THAT(r.err, HasSubstr("created tenant acme"));
  EXPECT_THAT(r.err, HasSubstr("only time"));

  auto store = Store();
  auto p = store->Authenticate(key);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tenant, "acme");
  EXPECT_THAT(p->deployments, ElementsAre("llama", "qwen"));
  EXPECT_EQ(store->ListKeys("acme")->at(0).name, "ci");

  // A second key for the same tenant: no new tenant; same deployments are fine.
  r = Keys({"create", "--tenant", "acme", "--deployments", "llama,qwen"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("created tenant")));
  // Different deployments for an existing tenant are refused (other keys would change too).
  r = Keys({"create", "--tenant", "acme", "--deployments", "other"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("weft tenants set acme"));
  EXPECT_EQ(Store()->ListKeys("acme")->size(), 2u);
}

TEST_F(KeysCommandTest, CreateOptions) {
  Result r = Keys({"create", "--tenant=t", "--expires-in", "30d", "--rpm", "5", "--tpm=100"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto keys = Store()->ListKeys("t");
  ASSERT_EQ(keys->size(), 1u);
  const auth::ApiKey& k = keys->at(0);
  EXPECT_NEAR(k.expires_unix_s - absl::ToUnixSeconds(absl::Now()), 30 * 86400, 10);
  EXPECT_EQ(k.quotas.requests_per_min, 5);
  EXPECT_EQ(k.quotas.tokens_per_min, 100);
  EXPECT_THAT(Store()->GetTenant("t")->deployments, ElementsAre("*"));
}

TEST_F(KeysCommandTest, ListAndRevoke) {
  std::string key_a = Keys({"create", "--tenant", "a", "--name", "first"}).out;
  std::string key_b = Keys({"create", "--tenant", "b"}).out;
  key_a.pop_back();
  key_b.pop_back();
  std::string id_a = key_a.substr(4, 16), id_b = key_b.substr(4, 16);

  Result r = Keys({"list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id_a));
  EXPECT_THAT(r.out, HasSubstr(id_b));
  EXPECT_THAT(r.out, HasSubstr("first"));
  EXPECT_THAT(r.out, HasSubstr("active"));
  EXPECT_EQ(r.out.find(key_a.substr(21)), std::string::npos);  // never the secret

  r = Keys({"list", "--tenant", "a", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], id_a);

  r = Keys({"revoke", id_a});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("revoked " + id_a));
  EXPECT_TRUE(absl::IsUnauthenticated(Store()->Authenticate(key_a).status()));
  EXPECT_TRUE(Store()->Authenticate(key_b).ok());
  EXPECT_THAT(Keys({"list"}).out, HasSubstr("revoked"));
  // The whole key is accepted too (its id is inside).
  ASSERT_EQ(Keys({"revoke", key_b}).code, 0);
  EXPECT_TRUE(absl::IsUnauthenticated(Store()->Authenticate(key_b).status()));
  r = Keys({"revoke", "0000000000000000"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("not found"));
}

TEST_F(KeysCommandTest, NoStoreYet) {
  Result r = Keys({"list"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("no key store"));
  EXPECT_FALSE(std::filesystem::exists(dir_));  // listing does not create it
  EXPECT_EQ(Keys({"revoke", "0123456789abcdef"}).code, 1);
}

TEST_F(KeysCommandTest, UsageErrors) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"create"},
                                             {"create", "--tenant"},
                                             {"create", "--tenant", "a", "--expires-in", "soon"},
                                             {"create", "--tenant", "a", "--rpm", "-3"},
                                             {"create", "--tenant", "bad id"},
                                             {"create", "--tenant", "a", "--bogus", "1"},
                                             {"create", "--tenant", "a", "extra"},
                                             {"create", "--tenant", "a", "--deployments", ","},
                                             {"revoke"},
                                             {"list", "--json=yes"},
                                             {"frobnicate"}}) {
    std::ostringstream out, err;
    EXPECT_EQ(RunKeysCommand(args, out, err), 2) << args[0] << " " << err.str();
    EXPECT_THAT(err.str(), HasSubstr("usage: weft keys"));
  }
  std::ostringstream out, err;
  EXPECT_EQ(RunKeysCommand({}, out, err), 2);
  EXPECT_EQ(RunKeysCommand({"--help"}, out, err), 0);
  EXPECT_THAT(out.str(), HasSubstr("weft keys create"));
}

TEST_F(KeysCommandTest, Tenants) {
  Result r = Tenants({"create", "acme", "--deployments", "llama", "--rpm", "60", "--monthly-tokens",
                      "1000000", "--name", "Acme"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("acme"));
  EXPECT_EQ(Tenants({"create", "acme"}).code, 1);  // exists
  r = Tenants({"set", "acme", "--tpm", "5000", "--deployments", "llama,qwen"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto t = Store()->GetTenant("acme");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->name, "Acme");
  EXPECT_EQ(t->quotas.requests_per_min, 60);
  EXPECT_EQ(t->quotas.tokens_per_min, 5000);
  EXPECT_EQ(t->quotas.tokens_per_month, 1000000);
  EXPECT_THAT(t->deployments, ElementsAre("llama", "qwen"));
  EXPECT_EQ(Tenants({"set", "acme"}).code, 2);  // nothing to set
  EXPECT_EQ(Tenants({"set", "ghost", "--rpm", "1"}).code, 1);
  EXPECT_EQ(Tenants({"create", "x", "--rpm", "many"}).code, 2);

  // `keys create` for an existing tenant uses it as it is.
  ASSERT_EQ(Keys({"create", "--tenant", "acme"}).code, 0);
  r = Tenants({"list"});
  ASSERT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("llama,qwen"));
  r = Tenants({"list", "--json"});
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["quotas"]["tokens_per_min"], 5000);
}

}  // namespace
}  // namespace weft::admin
