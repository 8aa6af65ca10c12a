// SPDX-License-Identifier: Apache-2.0
#include "control/providers/kubernetes/kube_client.h"

#include <curl/curl.h>

#include <chrono>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace weft::control {
namespace {

void GlobalInit() {
  // curl_global_init is not thread-safe before curl 7.84; once per process.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

absl::Status CurlError(CURLcode code, const char* errbuf, const std::string& what) {
  const std::string detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code);
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return absl::DeadlineExceededError(absl::StrCat(what, ": ", detail));
  }
  return absl::UnavailableError(absl::StrCat(what, ": ", detail));
}

// What a Stream's write callback needs.
struct StreamState {
  CURL* curl = nullptr;
  const std::function<bool(std::string_view)>* on_line = nullptr;
  std::string pending;  // a partial line
  std::string body;     // the body of a non-200 answer
  bool stopped = false;
  std::chrono::steady_clock::time_point last_byte = std::chrono::steady_clock::now();
};

size_t StreamWrite(char* data, size_t size, size_t n, void* user) {
  StreamState* s = static_cast<StreamState*>(user);
  s->last_byte = std::chrono::steady_clock::now();
  long code = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
  if (code != 200) {
    s->body.append(data, size * n);
    return size * n;
  }
  s->pending.append(data, size * n);
  size_t start = 0;
  for (size_t nl; (nl = s->pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    if (nl > start && !(*s->on_line)(std::string_view(s->pending).substr(start, nl - start))) {
      s->stopped = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
  }
  s->pending.erase(0, start);
  return size * n;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeApiClient>> KubeApiClient::Create(Kubeconfig config,
                                                                     int timeout_ms) {
  GlobalInit();
  if (config.server.empty()) return absl::InvalidArgumentError("kubernetes: no API server URL");
  const curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
  if ((v->features & CURL_VERSION_SSL) == 0 && config.server.starts_with("https://")) {
    return absl::InvalidArgumentError("kubernetes: this libcurl has no TLS support");
  }
  return std::unique_ptr<KubeApiClient>(new KubeApiClient(std::move(config), timeout_ms));
}

KubeApiClient::KubeApiClient(Kubeconfig config, int timeout_ms)
    : config_(std::move(config)), timeout_ms_(timeout_ms) {}

KubeApiClient::~KubeApiClient() {
  CancelStreams();
  std::lock_guard lock(mu_);
  for (void* c : idle_) curl_easy_cleanup(static_cast<CURL*>(c));
}

void* KubeApiClient::TakeHandle() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      CURL* c = static_cast<CURL*>(idle_.back());
      idle_.pop_back();
      curl_easy_reset(c);  // keeps its live connections and TLS session cache
      return c;
    }
  }
  return curl_easy_init();
}

void KubeApiClient::GiveHandle(void* curl) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 8) {
    idle_.push_back(curl);
  } else {
    curl_easy_cleanup(static_cast<CURL*>(curl));
  }
}

void KubeApiClient::Configure(void* handle, const std::string& method, const std::string& path,
                              const std::string* body, void* headers) const {
  CURL* c = static_cast<CURL*>(handle);
  const std::string url = config_.server + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());  // curl copies strings it is given
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(headers));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "weft-control/kubernetes-provider");
  if (method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (body != nullptr && !body->empty()) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body->c_str());
  }
  if (config_.insecure_skip_tls_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!config_.ca_pem.empty()) {
    curl_blob ca{const_cast<char*>(config_.ca_pem.data()), config_.ca_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
  }
  if (!config_.client_cert_pem.empty()) {
    curl_blob cert{const_cast<char*>(config_.client_cert_pem.data()),
                   config_.client_cert_pem.size(), CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(config_.client_key_pem.data()), config_.client_key_pem.size(),
                  CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
  }
}

namespace {

curl_slist* Headers(const Kubeconfig& config, bool has_body) {
  curl_slist* h = curl_slist_append(nullptr, "Accept: application/json");
  if (has_body) h = curl_slist_append(h, "Content-Type: application/json");
  if (!config.token.empty()) {
    h = curl_slist_append(h, absl::StrCat("Authorization: Bearer ", config.token).c_str());
  }
  return h;
}

}  // namespace

absl::StatusOr<KubeResponse> KubeApiClient::Call(const std::string& method, const std::string& path,
                                                 const std::string& body) {
  CURL* c = static_cast<CURL*>(TakeHandle());
  if (c == nullptr) return absl::InternalError("kubernetes: curl_easy_init failed");
  curl_slist* headers = Headers(config_, !body.empty());
  Configure(c, method, path, &body, headers);
  KubeResponse r;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  const CURLcode code = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  GiveHandle(c);
  if (code != CURLE_OK) {
    return CurlError(code, errbuf, absl::StrCat(method, " ", config_.server, path));
  }
  r.status = static_cast<int>(status);
  return r;
}

absl::StatusOr<KubeResponse> KubeApiClient::Stream(
    const std::string& path, const std::function<bool(std::string_view line)>& on_line,
    double idle_timeout_s) {
  if (cancelled_) return absl::CancelledError("kubernetes: client shutting down");
  CURL* c = static_cast<CURL*>(TakeHandle());
  if (c == nullptr) return absl::InternalError("kubernetes: curl_easy_init failed");
  CURLM* multi = curl_multi_init();
  curl_slist* headers = Headers(config_, false);
  Configure(c, "GET", path, nullptr, headers);
  StreamState state;
  state.curl = c;
  state.on_line = &on_line;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &StreamWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &state);
  curl_multi_add_handle(multi, c);
  {
    std::lock_guard lock(mu_);
    streams_.insert(multi);
  }
  // A multi handle with curl_multi_poll, so CancelStreams can wake it at once (curl_multi_wakeup).
  absl::Status result = absl::OkStatus();
  CURLcode done_code = CURLE_OK;
  bool done = false;
  const auto idle = std::chrono::duration<double>(idle_timeout_s);
  while (!done) {
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      result = absl::InternalError("kubernetes: curl_multi_perform failed");
      break;
    }
    int queued = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
      if (m->msg == CURLMSG_DONE) {
        done = true;
        done_code = m->data.result;
      }
    }
    if (done) break;
    if (cancelled_) {
      result = absl::CancelledError("kubernetes: watch cancelled");
      break;
    }
    if (idle_timeout_s > 0 && std::chrono::steady_clock::now() - state.last_byte > idle) {
      result = absl::DeadlineExceededError(
          absl::StrCat("GET ", config_.server, path, ": no data for ", idle_timeout_s, " s"));
      break;
    }
    curl_multi_poll(multi, nullptr, 0, 200, nullptr);
  }
  {
    std::lock_guard lock(mu_);
    streams_.erase(multi);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(multi, c);
  curl_multi_cleanup(multi);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  // A stream cut short leaves its connection in an unknown state: do not pool the handle.
  if (done && done_code == CURLE_OK) {
    GiveHandle(c);
  } else {
    curl_easy_cleanup(c);
  }
  if (!result.ok()) return result;
  if (state.stopped) return absl::CancelledError("kubernetes: watch stopped by its reader");
  if (done_code != CURLE_OK) {
    return CurlError(done_code, errbuf, absl::StrCat("GET ", config_.server, path));
  }
  return KubeResponse{.status = static_cast<int>(status), .body = std::move(state.body)};
}

void KubeApiClient::CancelStreams() {
  cancelled_ = true;
  std::lock_guard lock(mu_);
  for (void* m : streams_) curl_multi_wakeup(static_cast<CURLM*>(m));
}

}  // namespace weft::control
