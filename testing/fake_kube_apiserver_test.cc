// SPDX-License-Identifier: Apache-2.0
#include "testing/fake_kube_apiserver.h"

#include <chrono>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "testing/http_client.h"

namespace weft::testing {
namespace {

using json = nlohmann::json;

constexpr char kNs[] = "weft";
constexpr char kDeployments[] = "/apis/apps/v1/namespaces/weft/deployments";
constexpr char kPods[] = "/api/v1/namespaces/weft/pods";

json Deployment(const std::string& name, const std::string& image = "ghcr.io/weft/weft:latest") {
  json labels = {{"app", name}, {"weft.dev/managed-by", "weft"}};
  return {
      {"apiVersion", "apps/v1"},
      {"kind", "Deployment"},
      {"metadata", {{"name", name}, {"labels", labels}}},
      {"spec",
       {{"replicas", 1},
        {"selector", {{"matchLabels", {{"app", name}}}}},
        {"template",
         {{"metadata", {{"labels", labels}}},
          {"spec", {{"containers", json::array({{{"name", "engine"}, {"image", image}}})}}}}}}}};
}

class FakeKubeApiServerTest : public ::testing::Test {
 protected:
  void Start(FakeKubeApiServerOptions o = {}) {
    if (o.token.empty()) o.token = "secret";
    auto s = FakeKubeApiServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  absl::StatusOr<HttpResponse> Call(const std::string& method, const std::string& target,
                                    const std::string& body = "",
                                    const std::string& token = "secret") {
    auto c = HttpClient::Connect("127.0.0.1", server_->port(), 5);
    if (!c.ok()) return c.status();
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    return (*c)->Request(method, target, body, headers);
  }
  json CallJson(const std::string& method, const std::string& target, int want_status,
                const std::string& body = "") {
    absl::StatusOr<HttpResponse> r = Call(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return json();
    EXPECT_EQ(r->status, want_status) << method << " " << target << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  // The watch stream's events until the server ends it (timeoutSeconds).
  std::vector<json> WatchEvents(const std::string& query) {
    auto c = HttpClient::Connect("127.0.0.1", server_->port(), 5);
    EXPECT_TRUE(c.ok());
    if (!c.ok()) return {};
    auto head = (*c)->StartStream("GET", std::string(kPods) + "?" + query, "",
                                  {{"Authorization", "Bearer secret"}});
    EXPECT_TRUE(head.ok()) << head.status();
    if (!head.ok()) return {};
    EXPECT_EQ(head->status, 200);
    auto rest = (*c)->ReadRestOfStream();
    EXPECT_TRUE(rest.ok()) << rest.status();
    std::vector<json> out;
    for (absl::string_view line : absl::StrSplit(rest.value_or(""), '\n', absl::SkipEmpty())) {
      out.push_back(json::parse(std::string(line), nullptr, false));
    }
    return out;
  }
  // Polls until `pred` holds for the pods of `app` (up to 5 s).
  bool WaitPods(const std::string& app, const std::function<bool(const json& items)>& pred) {
    for (int i = 0; i < 500; ++i) {
      json list = CallJson("GET", absl::StrCat(kPods, "?labelSelector=app%3D", app), 200);
      if (pred(list["items"])) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::unique_ptr<FakeKubeApiServer> server_;
};

bool IsReady(const json& pod) {
  for (const json& c : pod["status"].value("conditions", json::array())) {
    if (c["type"] == "Ready") return c["status"] == "True";
  }
  return false;
}

TEST(LabelSelectorTest, EqualityAndExistence) {
  json labels = {{"a", "1"}, {"weft.dev/x", "y"}};
  EXPECT_TRUE(*MatchesLabelSelector(labels, ""));
  EXPECT_TRUE(*MatchesLabelSelector(labels, "a=1"));
  EXPECT_TRUE(*MatchesLabelSelector(labels, "a==1,weft.dev/x=y"));
  EXPECT_FALSE(*MatchesLabelSelector(labels, "a=2"));
  EXPECT_TRUE(*MatchesLabelSelector(labels, "a!=2"));
  EXPECT_TRUE(*MatchesLabelSelector(labels, "a,!b"));
  EXPECT_FALSE(*MatchesLabelSelector(labels, "b"));
  EXPECT_FALSE(*MatchesLabelSelector(json(), "a"));
  EXPECT_FALSE(MatchesLabelSelector(labels, "a in (1,2)").ok());
  EXPECT_FALSE(MatchesLabelSelector(labels, "=x").ok());
}

TEST_F(FakeKubeApiServerTest, CreateGetListDeleteWithRealStatusObjects) {
  Start();
  json created = CallJson("POST", kDeployments, 201, Deployment("d1").dump());
  EXPECT_EQ(created["kind"], "Deployment");
  EXPECT_EQ(created["metadata"]["namespace"], kNs);
  EXPECT_FALSE(created["metadata"]["uid"].get<std::string>().empty());
  EXPECT_FALSE(created["metadata"]["resourceVersion"].get<std::string>().empty());
  EXPECT_TRUE(created["metadata"].contains("creationTimestamp"));

  json conflict = CallJson("POST", kDeployments, 409, Deployment("d1").dump());
  EXPECT_EQ(conflict["kind"], "Status");
  EXPECT_EQ(conflict["reason"], "AlreadyExists");
  EXPECT_EQ(conflict["code"], 409);
  EXPECT_EQ(conflict["message"], "deployments.apps \"d1\" already exists");

  json missing = CallJson("GET", std::string(kDeployments) + "/nope", 404);
  EXPECT_EQ(missing["reason"], "NotFound");
  EXPECT_EQ(missing["details"]["name"], "nope");

  CallJson("POST", kDeployments, 201, Deployment("d2").dump());
  json list = CallJson("GET", std::string(kDeployments) + "?labelSelector=app%3Dd2", 200);
  EXPECT_EQ(list["kind"], "DeploymentList");
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "d2");
  EXPECT_FALSE(list["items"][0].contains("kind"));  // as the real API: items carry no kind
  EXPECT_FALSE(list["metadata"]["resourceVersion"].get<std::string>().empty());

  json bad = CallJson("GET", std::string(kDeployments) + "?labelSelector=a+in+(b)", 400);
  EXPECT_EQ(bad["reason"], "BadRequest");

  CallJson("DELETE", std::string(kDeployments) + "/d2", 200);
  CallJson("GET", std::string(kDeployments) + "/d2", 404);
  CallJson("DELETE", std::string(kDeployments) + "/d2", 404);
  EXPECT_EQ(server_->VerbsUsed(),
            (std::set<std::string>{"create deployments", "get deployments", "list deployments",
                                   "delete deployments"}));
}

TEST_F(FakeKubeApiServerTest, ValidatesLikeTheApiServer) {
  Start();
  json mismatch = Deployment("d1");
  mismatch["spec"]["selector"]["matchLabels"]["app"] = "other";
  json r = CallJson("POST", kDeployments, 422, mismatch.dump());
  EXPECT_EQ(r["reason"], "Invalid");
  EXPECT_EQ(r["details"]["causes"][0]["field"], "spec.template.metadata.labels");
  CallJson("POST", kDeployments, 422, Deployment("Not_A_Name").dump());
  json bad_label = Deployment("d1");
  bad_label["metadata"]["labels"]["x"] = "-bad-";
  CallJson("POST", kDeployments, 422, bad_label.dump());
  json wrong_kind = Deployment("d1");
  wrong_kind["kind"] = "Service";
  CallJson("POST", kDeployments, 400, wrong_kind.dump());
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "1svc"}}},
              {"spec", {{"ports", json::array({{{"port", 8080}}})}}}};
  CallJson("POST", "/api/v1/namespaces/weft/services", 422, svc.dump());
  svc["metadata"]["name"] = "svc";
  json made = CallJson("POST", "/api/v1/namespaces/weft/services", 201, svc.dump());
  EXPECT_EQ(made["spec"]["type"], "ClusterIP");
  EXPECT_FALSE(made["spec"]["clusterIP"].get<std::string>().empty());
  EXPECT_EQ(made["spec"]["ports"][0]["targetPort"], 8080);
}

TEST_F(FakeKubeApiServerTest, BearerTokenIsRequired) {
  Start();
  absl::StatusOr<HttpResponse> r = Call("GET", kPods, "", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["reason"], "Unauthorized");
  r = Call("GET", kPods, "", "wrong");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401);
  server_->SetForbidden(true);
  r = Call("GET", kPods);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(json::parse(r->body)["reason"], "Forbidden");
}

TEST_F(FakeKubeApiServerTest, DeploymentGetsAPodThatBecomesReady) {
  Start();
  CallJson("POST", kDeployments, 201, Deployment("d1").dump());
  ASSERT_TRUE(WaitPods("d1", [](const json& items) {
    return items.size() == 1 && IsReady(items[0]) && items[0]["status"]["phase"] == "Running";
  }));
  json pod = CallJson("GET", absl::StrCat(kPods, "?labelSelector=app%3Dd1"), 200)["items"][0];
  EXPECT_TRUE(pod["metadata"]["name"].get<std::string>().starts_with("d1-"));
  EXPECT_TRUE(pod["metadata"]["labels"].contains("pod-template-hash"));
  EXPECT_EQ(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
  EXPECT_EQ(pod["status"]["containerStatuses"][0]["ready"], true);
  json dep = CallJson("GET", std::string(kDeployments) + "/d1", 200);
  for (int i = 0; i < 100 && dep["status"].value("readyReplicas", 0) != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    dep = CallJson("GET", std::string(kDeployments) + "/d1", 200);
  }
  EXPECT_EQ(dep["status"]["readyReplicas"], 1);

  // A deleted pod is replaced by the deployment controller.
  const std::string first = pod["metadata"]["name"];
  ASSERT_TRUE(server_->DeletePod(kNs, first).ok());
  ASSERT_TRUE(WaitPods("d1", [&](const json& items) {
    return items.size() == 1 && items[0]["metadata"]["name"] != first && IsReady(items[0]);
  }));
}

TEST_F(FakeKubeApiServerTest, WatchStreamsEventsFromAResourceVersion) {
  Start();
  const int64_t from = server_->resource_version();
  CallJson("POST", kDeployments, 201, Deployment("d1").dump());
  ASSERT_TRUE(
      WaitPods("d1", [](const json& items) { return items.size() == 1 && IsReady(items[0]); }));
  CallJson(
      "DELETE", std::string(kDeployments) + "/d1", 200,
      json{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", "Background"}}
          .dump());
  ASSERT_TRUE(WaitPods("d1", [](const json& items) { return items.empty(); }));

  std::vector<json> events = WatchEvents(
      absl::StrCat("labelSelector=app%3Dd1&watch=1&timeoutSeconds=1&resourceVersion=", from));
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.front()["type"], "ADDED");
  EXPECT_EQ(events.front()["object"]["kind"], "Pod");
  EXPECT_EQ(events.back()["type"], "DELETED");
  int64_t last = from;
  for (const json& e : events) {
    int64_t rv = std::stoll(e["object"]["metadata"]["resourceVersion"].get<std::string>());
    EXPECT_GT(rv, last) << "resourceVersions must increase along a watch";
    last = rv;
  }
  // A watch with no resourceVersion starts with the current state (nothing left here).
  EXPECT_TRUE(WatchEvents("labelSelector=app%3Dd1&watch=1&timeoutSeconds=1").empty());
}

TEST_F(FakeKubeApiServerTest, TooOldResourceVersionIsGone) {
  Start();
  CallJson("POST", kDeployments, 201, Deployment("d1").dump());
  const int64_t old_rv = server_->resource_version();
  server_->CompactHistory();
  std::vector<json> events = WatchEvents(absl::StrCat("watch=1&resourceVersion=", old_rv));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ERROR");
  EXPECT_EQ(events[0]["object"]["code"], 410);
  EXPECT_EQ(events[0]["object"]["reason"], "Expired");
  EXPECT_EQ(server_->gone_answers(), 1);
}

TEST_F(FakeKubeApiServerTest, TooOldResourceVersionAsHttp410) {
  FakeKubeApiServerOptions o;
  o.gone_as_http_status = true;
  o.event_history = 2;  // history this short forgets at once
  Start(o);
  const int64_t old_rv = server_->resource_version();
  CallJson("POST", kDeployments, 201, Deployment("d1").dump());
  CallJson("POST", kDeployments, 201, Deployment("d2").dump());
  CallJson("POST", kDeployments, 201, Deployment("d3").dump());
  json gone = CallJson("GET", absl::StrCat(kPods, "?watch=1&resourceVersion=", old_rv), 410);
  EXPECT_EQ(gone["code"], 410);
}

TEST_F(FakeKubeApiServerTest, CrashingPodAndFailedImagePull) {
  Start();
  server_->FailImagePulls("example.com/missing:1");
  CallJson("POST", kDeployments, 201, Deployment("bad", "example.com/missing:1").dump());
  CallJson("POST", kDeployments, 201, Deployment("crash").dump());
  ASSERT_TRUE(WaitPods("bad", [](const json& items) {
    return items.size() == 1 &&
           items[0]["status"].value("containerStatuses", json::array()).size() == 1 &&
           items[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] ==
               "ImagePullBackOff";
  }));
  std::string pod;
  ASSERT_TRUE(WaitPods("crash", [&](const json& items) {
    if (items.size() != 1 || !IsReady(items[0])) return false;
    pod = items[0]["metadata"]["name"];
    return true;
  }));
  ASSERT_TRUE(server_->CrashPod(kNs, pod, 137).ok());
  ASSERT_TRUE(WaitPods("crash", [](const json& items) {
    if (items.size() != 1) return false;
    const json& cs = items[0]["status"]["containerStatuses"][0];
    return !IsReady(items[0]) && cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" &&
           cs["restartCount"].get<int>() >= 2 && cs["lastState"]["terminated"]["exitCode"] == 137;
  }));
  EXPECT_FALSE(server_->CrashPod(kNs, "no-such-pod").ok());
}

TEST_F(FakeKubeApiServerTest, ForegroundDeletionWaitsForThePods) {
  Start();
  CallJson("POST", kDeployments, 201, Deployment("d1").dump());
  ASSERT_TRUE(WaitPods("d1", [](const json& items) { return items.size() == 1; }));
  json deleting =
      CallJson("DELETE", std::string(kDeployments) + "/d1?propagationPolicy=Foreground", 200);
  EXPECT_TRUE(deleting["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ(deleting["metadata"]["finalizers"][0], "foregroundDeletion");
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    absl::StatusOr<HttpResponse> r = Call("GET", std::string(kDeployments) + "/d1");
    ASSERT_TRUE(r.ok());
    if (r->status == 404) {
      gone = true;
      EXPECT_TRUE(server_->Names("pods", kNs, "app=d1").empty())
          << "deployment left before its pods";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(gone);
}

TEST_F(FakeKubeApiServerTest, StopsAndResumesAnswering) {
  Start();
  ASSERT_TRUE(Call("GET", kPods).ok());
  server_->StopAnswering();
  EXPECT_FALSE(Call("GET", kPods).ok());
  ASSERT_TRUE(server_->ResumeAnswering().ok());
  absl::StatusOr<HttpResponse> r = Call("GET", kPods);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace weft::testing
