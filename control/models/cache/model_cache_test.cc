// SPDX-License-Identifier: Apache-2.0
// ModelCache and DownloadFile against a scripted HTTP server on loopback (the tests never leave
// 127.0.0.1): Hugging Face's redirect with X-Linked-Etag, a full download with its checksum, a cut
// transfer resumed with a Range request, a server that ignores Range, checksum mismatches, 401,
// 404, a closed port, the size limit, and cache hits that make no request.
#include "control/models/cache/model_cache.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "control/models/cache/model_download.h"
#include "gtest/gtest.h"

namespace weft::control {
namespace {

namespace fs = std::filesystem;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "weft-model-cache-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 with scripted behaviour, recording the
// requests it saw. Files are served at /org/repo/resolve/main/<name>; with `redirect` that answers
// 302 (carrying X-Linked-Etag, as huggingface.co does) to /cdn/<name>, which serves the bytes.
class ScriptedServer {
 public:
  struct Request {
    std::string target;
    std::map<std::string, std::string> headers;  // lowercase names
  };

  ScriptedServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }

  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // Script (set before the requests they affect).
  std::string body;                   // the file's bytes
  std::string etag;                   // ETag of the bytes' response ("" = none)
  std::string linked_etag;            // X-Linked-Etag of the redirect
  bool redirect = true;               // resolve/ answers 302 to /cdn/
  bool honor_range = true;            // answer Range with 206
  int status = 0;                     // answer every request with this status (401, 404...)
  std::atomic<int> cut_responses{0};  // this many responses stop after cut_bytes of body
  size_t cut_bytes = 0;

  std::vector<Request> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      Handle(c);
      close(c);
    }
  }

  void Send(int c, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t w = send(c, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (w <= 0) return;
      off += static_cast<size_t>(w);
    }
  }

  void Handle(int c) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      const ssize_t r = recv(c, buf, sizeof(buf), 0);
      if (r <= 0) return;
      in.append(buf, static_cast<size_t>(r));
    }
    Request req;
    std::vector<std::string> lines = absl::StrSplit(in.substr(0, in.find("\r\n\r\n")), "\r\n");
    std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
    req.target = first.size() > 1 ? first[1] : "";
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      req.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    auto head = [](int code, const std::string& reason, const std::string& extra, size_t len) {
      return absl::StrCat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Length: ", len,
                          "\r\nConnection: close\r\n", extra, "\r\n");
    };
    if (status != 0) {
      const std::string msg = status == 404 ? "Entry not found" : "Access to model is restricted";
      Send(c, head(status, "Error", "", msg.size()) + msg);
      return;
    }
    const bool is_resolve = absl::StartsWith(req.target, "/org/repo/resolve/main/");
    const bool is_cdn = absl::StartsWith(req.target, "/cdn/");
    if (!is_resolve && !is_cdn) {
      Send(c, head(404, "Not Found", "", 0));
      return;
    }
    if (is_resolve && redirect) {
      const std::string name = req.target.substr(req.target.rfind('/') + 1);
      std::string extra = absl::StrCat("Location: /cdn/", name, "\r\n");
      if (!linked_etag.empty()) absl::StrAppend(&extra, "X-Linked-Etag: \"", linked_etag, "\"\r\n");
      Send(c, head(302, "Found", extra, 0));
      return;
    }
    std::string extra;
    if (!etag.empty()) absl::StrAppend(&extra, "ETag: \"", etag, "\"\r\n");
    size_t from = 0;
    int code = 200;
    if (auto r = req.headers.find("range"); r != req.headers.end() && honor_range) {
      absl::string_view v = r->second;
      int64_t start = 0;
      if (absl::ConsumePrefix(&v, "bytes=") && absl::SimpleAtoi(v.substr(0, v.find('-')), &start)) {
        if (static_cast<size_t>(start) >= body.size()) {
          Send(c, head(416, "Range Not Satisfiable",
                       absl::StrCat("Content-Range: bytes */", body.size(), "\r\n"), 0));
          return;
        }
        from = static_cast<size_t>(start);
        code = 206;
        absl::StrAppend(&extra, "Content-Range: bytes ", from, "-", body.size() - 1, "/",
                        body.size(), "\r\n");
      }
    }
    std::string part = body.substr(from);
    const std::string h = head(code, code == 206 ? "Partial Content" : "OK", extra, part.size());
    if (cut_responses.load() > 0) {
      cut_responses--;
      Send(c, h + part.substr(0, cut_bytes));
      return;  // closed mid-body
    }
    Send(c, h + part);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<Request> requests_;
};

ModelSource Hf(const std::string& file, const std::string& sha256 = "") {
  ModelSource s;
  s.uri = "hf://org/repo/" + file;
  s.kind = ModelSourceKind::kHuggingFace;
  s.format = ModelFormat::kGguf;
  s.hf_org = "org";
  s.hf_repo = "repo";
  s.hf_path = file;
  s.sha256 = sha256;
  return s;
}

std::string Sha256Of(const std::string& bytes, const std::string& dir) {
  const std::string p = dir + "/sha-input";
  std::ofstream(p, std::ios::binary) << bytes;
  return *Sha256OfFile(p);
}

ModelResolution WaitSettled(ModelResolver& r, const ModelSource& s, double timeout_s = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  ModelResolution res = r.Resolve(s);
  while (res.state == ModelState::kPending && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    res = r.Resolve(s);
  }
  return res;
}

class ModelCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    server_.body = RandomBytes(300 * 1024, 7);
    sha_ = Sha256Of(server_.body, dir_);
    server_.linked_etag = sha_;
    server_.etag = "cdn-opaque-etag";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ModelCache> Cache(std::string token = "") {
    ModelCacheOptions o;
    o.dir = dir_ + "/models";
    o.hf_endpoint = server_.endpoint();
    o.hf_token = std::move(token);
    o.connect_timeout_ms = 2000;
    o.resume_pause_ms = 10;
    auto c = ModelCache::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  std::string dir_;
  ScriptedServer server_;
  std::string sha_;
};

TEST_F(ModelCacheTest, DownloadsIntoTheContentAddressedStoreAndHitsWithoutARequest) {
  auto cache = Cache("hf_secret");
  const ModelSource src = Hf("sub/model.gguf");
  EXPECT_EQ(cache->Resolve(src).state, ModelState::kPending);
  ModelResolution r = WaitSettled(*cache, src);
  ASSERT_EQ(r.state, ModelState::kReady) << r.reason;
  EXPECT_EQ(r.path, dir_ + "/models/hf/org/repo/main/sub/model.gguf");
  EXPECT_TRUE(fs::is_symlink(r.path));
  EXPECT_EQ(fs::read_symlink(r.path).filename().string(), "sha256-" + sha_);
  EXPECT_EQ(ReadFile(r.path), server_.body);
  EXPECT_TRUE(fs::is_empty(dir_ + "/models/partial") ||
              !fs::exists(dir_ + "/models/partial/" + sha_ + ".partial"));
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);  // the 302 and the bytes
  EXPECT_EQ(reqs[0].target, "/org/repo/resolve/main/sub/model.gguf");
  EXPECT_EQ(reqs[0].headers["authorization"], "Bearer hf_secret");
  EXPECT_EQ(reqs[1].target, "/cdn/model.gguf");

  // Again, and from a new cache over the same directory: no request.
  EXPECT_EQ(cache->Resolve(src).state, ModelState::kReady);
  auto cache2 = Cache();
  ModelResolution again = cache2->Resolve(src);
  EXPECT_EQ(again.state, ModelState::kReady);
  EXPECT_EQ(again.path, r.path);
  // With the spec's sha256, under another name: the blob is found, still no request.
  ModelResolution other = cache2->Resolve(Hf("copy.gguf", sha_));
  EXPECT_EQ(other.state, ModelState::kReady);
  EXPECT_EQ(ReadFile(other.path), server_.body);
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(ModelCacheTest, ResumesACutTransferWithARangeRequest) {
  server_.redirect = false;
  server_.etag = sha_;  // no redirect: the ETag names the sha256
  server_.cut_responses = 1;
  server_.cut_bytes = 100 * 1024;
  DownloadOptions o;
  o.url = HfResolveUrl(server_.endpoint(), "org", "repo", "main", "m.gguf");
  o.partial_path = dir_ + "/m.partial";
  o.connect_timeout_ms = 2000;
  absl::StatusOr<DownloadResult> first = DownloadFile(o);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
  EXPECT_TRUE(absl::StrContains(first.status().message(), "cut")) << first.status();
  EXPECT_EQ(fs::file_size(o.partial_path), 100u * 1024);

  absl::StatusOr<DownloadResult> second = DownloadFile(o);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->resumed_from, 100 * 1024);
  EXPECT_TRUE(second->verified);
  EXPECT_EQ(second->sha256, sha_);
  EXPECT_EQ(ReadFile(o.partial_path), server_.body);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].headers.count("range"), 0u);
  EXPECT_EQ(reqs[1].headers["range"], "bytes=102400-");
}

TEST_F(ModelCacheTest, CacheResumesWithinOneFetch) {
  server_.cut_responses = 2;
  server_.cut_bytes = 64 * 1024;
  auto cache = Cache();
  ModelResolution r = WaitSettled(*cache, Hf("m.gguf"));
  ASSERT_EQ(r.state, ModelState::kReady) << r.reason;
  EXPECT_EQ(ReadFile(r.path), server_.body);
  auto reqs = server_.requests();
  ASSERT_EQ(reqs.size(), 6u);  // three tries, each a redirect and the bytes
  EXPECT_EQ(reqs[3].headers["range"], "bytes=65536-");
  EXPECT_EQ(reqs[5].headers["range"], "bytes=131072-");
}

TEST_F(ModelCacheTest, StartsOverWhenTheServerIgnoresRange) {
  server_.redirect = false;
  server_.honor_range = false;
  DownloadOptions o;
  o.url = HfResolveUrl(server_.endpoint(), "org", "repo", "main", "m.gguf");
  o.partial_path = dir_ + "/m.partial";
  o.expected_sha256 = sha_;
  std::ofstream(o.partial_path, std::ios::binary) << "stale bytes of another file";
  absl::StatusOr<DownloadResult> r = DownloadFile(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_from, 0);
  EXPECT_EQ(ReadFile(o.partial_path), server_.body);
  EXPECT_EQ(server_.requests()[0].headers["range"], "bytes=27-");
}

TEST_F(ModelCacheTest, ChecksumMismatchDeletesTheDownload) {
  auto cache = Cache();
  const std::string wrong(64, 'a');
  ModelResolution r = WaitSettled(*cache, Hf("m.gguf", wrong));
  ASSERT_EQ(r.state, ModelState::kFailed);
  EXPECT_TRUE(absl::StrContains(r.reason, "model hf://org/repo/m.gguf: checksum mismatch"))
      << r.reason;
  EXPECT_TRUE(absl::StrContains(r.reason, wrong)) << r.reason;
  EXPECT_TRUE(fs::is_empty(dir_ + "/models/blobs"));
  for (const auto& e : fs::directory_iterator(dir_ + "/models/partial")) {
    EXPECT_FALSE(absl::EndsWith(e.path().string(), ".partial")) << e.path();
  }

  // The server's own X-Linked-Etag disagreeing with the bytes is a mismatch too.
  server_.linked_etag = std::string(64, 'b');
  ModelResolution r2 = WaitSettled(*cache, Hf("n.gguf"));
  ASSERT_EQ(r2.state, ModelState::kFailed);
  EXPECT_TRUE(absl::StrContains(r2.reason, "X-Linked-Etag")) << r2.reason;
}

TEST_F(ModelCacheTest, NotFoundAndUnauthorizedSayWhy) {
  auto cache = Cache();
  server_.status = 404;
  ModelResolution r = WaitSettled(*cache, Hf("missing.gguf"));
  ASSERT_EQ(r.state, ModelState::kFailed);
  EXPECT_TRUE(absl::StrContains(r.reason, "model hf://org/repo/missing.gguf: HTTP 404"))
      << r.reason;
  server_.status = 401;
  ModelResolution r2 = WaitSettled(*cache, Hf("gated.gguf"));
  ASSERT_EQ(r2.state, ModelState::kFailed);
  EXPECT_TRUE(absl::StrContains(r2.reason, "HTTP 401")) << r2.reason;
  EXPECT_TRUE(absl::StrContains(r2.reason, "HF_TOKEN")) << r2.reason;
}

TEST_F(ModelCacheTest, FailureSticksUntilRetry) {
  auto cache = Cache();
  server_.status = 404;
  const ModelSource src = Hf("m.gguf");
  ASSERT_EQ(WaitSettled(*cache, src).state, ModelState::kFailed);
  const size_t seen = server_.requests().size();
  EXPECT_EQ(cache->Resolve(src).state, ModelState::kFailed);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(server_.requests().size(), seen);  // not retried silently
  server_.status = 0;
  cache->Retry(src);
  ModelResolution r = WaitSettled(*cache, src);
  EXPECT_EQ(r.state, ModelState::kReady) << r.reason;
}

TEST_F(ModelCacheTest, UnreachableHostFailsQuicklyWithTheHostNamed) {
  // A port that was just free and is closed now: connection refused.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  close(fd);
  ModelCacheOptions o;
  o.dir = dir_ + "/models";
  o.hf_endpoint = absl::StrCat("http://127.0.0.1:", port);
  o.connect_timeout_ms = 2000;
  auto cache = ModelCache::Create(o);
  ASSERT_TRUE(cache.ok());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> r = (*cache)->Fetch(Hf("m.gguf"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(
      absl::StrContains(r.status().message(),
                        absl::StrCat("model hf://org/repo/m.gguf: cannot reach 127.0.0.1:", port)))
      << r.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(ModelCacheTest, SizeLimit) {
  server_.redirect = false;
  DownloadOptions o;
  o.url = HfResolveUrl(server_.endpoint(), "org", "repo", "main", "m.gguf");
  o.partial_path = dir_ + "/m.partial";
  o.max_bytes = 1000;
  absl::StatusOr<DownloadResult> r = DownloadFile(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
}

TEST_F(ModelCacheTest, LocalSourcesMustExist) {
  auto cache = Cache();
  const std::string file = dir_ + "/local.gguf";
  std::ofstream(file) << "x";
  ModelSource s;
  s.uri = file;
  EXPECT_EQ(cache->Resolve(s).state, ModelState::kReady);
  EXPECT_EQ(cache->Resolve(s).path, file);
  s.uri = dir_ + "/absent.gguf";
  ModelResolution r = cache->Resolve(s);
  EXPECT_EQ(r.state, ModelState::kFailed);
  EXPECT_TRUE(absl::StrContains(r.reason, "no such file")) << r.reason;
  EXPECT_TRUE(server_.requests().empty());
}

TEST(ModelDownloadTest, Sha256FromEtag) {
  const std::string hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";
  EXPECT_EQ(Sha256FromEtag("\"" + hex + "\""), absl::AsciiStrToLower(hex));
  EXPECT_EQ(Sha256FromEtag("W/\"" + hex + "\""), absl::AsciiStrToLower(hex));
  EXPECT_EQ(Sha256FromEtag(hex), absl::AsciiStrToLower(hex));
  EXPECT_FALSE(Sha256FromEtag("\"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\""));  // git sha1
  EXPECT_FALSE(Sha256FromEtag("\"" + hex.substr(1) + "g\""));
  EXPECT_FALSE(Sha256FromEtag(""));
  EXPECT_FALSE(Sha256FromEtag("\""));
}

TEST(ModelDownloadTest, HfResolveUrl) {
  EXPECT_EQ(HfResolveUrl("https://huggingface.co/", "ggml-org", "models", "main",
                         "tinyllamas/stories260K.gguf"),
            "https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf");
  EXPECT_EQ(HfResolveUrl("http://h", "o", "r", "v1.0", "a b/c?d#e.gguf"),
            "http://h/o/r/resolve/v1.0/a%20b/c%3Fd%23e.gguf");
}

}  // namespace
}  // namespace weft::control
