// SPDX-License-Identifier: Apache-2.0
#include "control/models/cache/model_download.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "openssl/evp.h"

namespace weft::control {

namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string HostOf(std::string_view url) {
  size_t start = url.find("://");
  start = start == std::string_view::npos ? 0 : start + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string_view host = url.substr(start, end == std::string_view::npos ? url.npos : end - start);
  if (const size_t at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  return std::string(host);
}

std::string Mib(int64_t bytes) {
  return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

// One transfer's state, shared with curl's callbacks (called on the thread running perform).
struct Transfer {
  const DownloadOptions* options = nullptr;
  CURL* curl = nullptr;
  int fd = -1;
  int64_t offset = 0;  // bytes in the partial file before this request (sent as Range)
  int64_t kept = 0;    // of those, kept (206: offset, 200: 0)
  int64_t written = 0;
  int64_t total = -1;  // the whole file's size, when the response says
  bool started = false;
  long code = 0;  // the final response's status
  std::string linked_etag, etag, content_range;
  std::string error_body;  // the body of a non-2xx response (capped)
  absl::Status abort;      // why a callback stopped the transfer
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    t->etag.clear();  // a new response (after a redirect): its own headers
    t->content_range.clear();
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  const std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)));
  const std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  if (name == "x-linked-etag") t->linked_etag = value;
  if (name == "etag") t->etag = value;
  if (name == "content-range") t->content_range = value;
  return size * n;
}

// "bytes START-END/TOTAL" (TOTAL may be "*"): START and TOTAL (-1 for "*").
bool ParseContentRange(absl::string_view v, int64_t* start, int64_t* total) {
  if (!absl::ConsumePrefix(&v, "bytes ")) return false;
  const size_t dash = v.find('-'), slash = v.find('/');
  if (dash == v.npos || slash == v.npos || slash < dash) return false;
  if (!absl::SimpleAtoi(v.substr(0, dash), start)) return false;
  const absl::string_view t = v.substr(slash + 1);
  if (t == "*") {
    *total = -1;
    return true;
  }
  return absl::SimpleAtoi(t, total);
}

bool StartBody(Transfer* t) {
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->code);
  if (t->code == 206) {
    int64_t start = 0, total = -1;
    if (!ParseContentRange(t->content_range, &start, &total) || start != t->offset) {
      t->abort = absl::InternalError(absl::StrCat("the server resumed at \"", t->content_range,
                                                  "\", not at byte ", t->offset));
      return false;
    }
    t->kept = t->offset;
    t->total = total;
  } else if (t->code == 200) {
    // The server ignored the Range (or none was sent): start over.
    if (ftruncate(t->fd, 0) != 0) {
      t->abort = absl::InternalError(absl::StrCat("truncate: ", std::strerror(errno)));
      return false;
    }
    t->kept = 0;
    curl_off_t len = -1;
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    t->total = len;
  } else {
    return true;  // an error page: collected, not written
  }
  if (lseek(t->fd, t->kept, SEEK_SET) < 0) {
    t->abort = absl::InternalError(absl::StrCat("seek: ", std::strerror(errno)));
    return false;
  }
  if (t->total > t->options->max_bytes) {
    t->abort = absl::ResourceExhaustedError(absl::StrCat(
        "the file is ", Mib(t->total), ", over the limit of ", Mib(t->options->max_bytes)));
    return false;
  }
  return true;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (!t->started) {
    t->started = true;
    if (!StartBody(t)) return 0;  // CURLE_WRITE_ERROR; t->abort says why
  }
  if (t->code != 200 && t->code != 206) {
    t->error_body.append(data,
                         std::min(len, size_t{512} - std::min<size_t>(512, t->error_body.size())));
    return len;
  }
  if (t->kept + t->written + static_cast<int64_t>(len) > t->options->max_bytes) {
    t->abort = absl::ResourceExhaustedError(
        absl::StrCat("the file is over the limit of ", Mib(t->options->max_bytes)));
    return 0;
  }
  size_t off = 0;
  while (off < len) {
    const ssize_t w = write(t->fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      t->abort = absl::InternalError(
          absl::StrCat("write ", t->options->partial_path, ": ", std::strerror(errno)));
      return 0;
    }
    off += static_cast<size_t>(w);
  }
  t->written += static_cast<int64_t>(len);
  return len;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->options->progress) return 0;
  if (!t->options->progress(t->kept + t->written, t->total)) {
    t->abort = absl::CancelledError("download cancelled");
    return 1;
  }
  return 0;
}

// One request (with a Range when the partial file is not empty).
absl::Status Perform(Transfer* t, bool use_range) {
  const DownloadOptions& o = *t->options;
  CURL* c = t->curl;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, o.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "weft/0.1");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(o.low_speed_bytes_per_s));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(o.low_speed_time_s));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(o.max_bytes));
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
  // A Range set by hand (not CURLOPT_RESUME_FROM) so that a 200 answer restarts the file instead
  // of failing the transfer.
  const std::string range = absl::StrCat(t->offset, "-");
  if (use_range && t->offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_slist* headers = nullptr;
  const std::string auth = "Authorization: Bearer " + o.bearer_token;
  if (!o.bearer_token.empty()) headers = curl_slist_append(headers, auth.c_str());
  if (headers != nullptr) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (!t->started) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t->code);

  const std::string host = HostOf(o.url);
  const std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
  if (!t->abort.ok()) return t->abort;
  switch (rc) {
    case CURLE_OK:
      return absl::OkStatus();
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return absl::UnavailableError(
          absl::StrCat("cannot reach ", host, ": cannot resolve the host name (", detail, ")"));
    case CURLE_COULDNT_CONNECT:
      return absl::UnavailableError(absl::StrCat("cannot reach ", host, ": ", detail));
    case CURLE_OPERATION_TIMEDOUT:
      if (t->code == 0) {
        return absl::UnavailableError(absl::StrCat("cannot reach ", host, ": no connection within ",
                                                   o.connect_timeout_ms, " ms (", detail, ")"));
      }
      return absl::UnavailableError(absl::StrCat("transfer from ", host, " stalled after ",
                                                 Mib(t->kept + t->written), " (under ",
                                                 o.low_speed_bytes_per_s, " bytes/s for ",
                                                 o.low_speed_time_s, " s); the next try resumes"));
    case CURLE_FILESIZE_EXCEEDED:
      return absl::ResourceExhaustedError(
          absl::StrCat("the file is over the limit of ", Mib(o.max_bytes)));
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return absl::UnavailableError(
          absl::StrCat("transfer from ", host, " cut after ", Mib(t->kept + t->written),
                       t->total >= 0 ? absl::StrCat(" of ", Mib(t->total)) : "", " (", detail,
                       "); the partial file is kept and the next try resumes"));
    default:
      return absl::UnavailableError(absl::StrCat("download from ", host, " failed: ", detail));
  }
}

absl::Status HttpError(const Transfer& t) {
  const std::string host = HostOf(t.options->url);
  std::string body(absl::StripAsciiWhitespace(t.error_body));
  for (char& ch : body) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  const std::string tail = body.empty() ? "" : absl::StrCat(": ", body.substr(0, 200));
  switch (t.code) {
    case 401:
    case 403:
      return absl::PermissionDeniedError(absl::StrCat(
          "HTTP ", t.code, " from ", host,
          " (a gated or private repository needs HF_TOKEN, and access granted)", tail));
    case 404:
      return absl::NotFoundError(absl::StrCat("HTTP 404 from ", host, ": no such file (check the ",
                                              "org, repo, file name and revision)", tail));
    default:
      if (t.code == 429 || t.code >= 500) {
        return absl::UnavailableError(absl::StrCat("HTTP ", t.code, " from ", host, tail));
      }
      return absl::FailedPreconditionError(absl::StrCat("HTTP ", t.code, " from ", host, tail));
  }
}

}  // namespace

std::optional<std::string> Sha256FromEtag(std::string_view raw) {
  absl::string_view value = absl::StripAsciiWhitespace(absl::string_view(raw.data(), raw.size()));
  absl::ConsumePrefix(&value, "W/");
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  if (value.size() != 64) return std::nullopt;
  for (char c : value) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  return absl::AsciiStrToLower(value);
}

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? absl::NotFoundError(absl::StrCat(path, ": no such file"))
                           : absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::string buf(1 << 20, '\0');
  absl::Status status;
  for (;;) {
    const ssize_t r = read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      status = absl::InternalError(absl::StrCat("read ", path, ": ", std::strerror(errno)));
      break;
    }
    if (r == 0) break;
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(r));
  }
  close(fd);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  if (!status.ok()) return status;
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += absl::StrFormat("%02x", digest[i]);
  return hex;
}

std::string HfResolveUrl(std::string_view endpoint, std::string_view org, std::string_view repo,
                         std::string_view revision, std::string_view path) {
  auto escape = [](std::string_view s, bool keep_slash) {
    std::string out;
    for (unsigned char c : s) {
      if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
          (keep_slash && c == '/')) {
        out += static_cast<char>(c);
      } else {
        out += absl::StrFormat("%%%02X", c);
      }
    }
    return out;
  };
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.remove_suffix(1);
  return absl::StrCat(std::string(endpoint), "/", escape(org, false), "/", escape(repo, false),
                      "/resolve/", escape(revision, false), "/", escape(path, true));
}

absl::StatusOr<DownloadResult> DownloadFile(const DownloadOptions& options) {
  GlobalInit();
  Transfer t;
  t.options = &options;
  t.fd = open(options.partial_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (t.fd < 0) {
    return absl::InternalError(
        absl::StrCat("open ", options.partial_path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  fstat(t.fd, &st);
  t.offset = st.st_size;
  t.curl = curl_easy_init();
  absl::Status s = Perform(&t, /*use_range=*/true);
  if (s.ok() && t.code == 416) {
    // The partial file is not a prefix the server can continue (the file changed, or the partial
    // is already whole): start over once.
    (void)ftruncate(t.fd, 0);
    t.offset = 0;
    t.started = false;
    t.error_body.clear();
    t.linked_etag.clear();
    s = Perform(&t, /*use_range=*/false);
  }
  curl_easy_cleanup(t.curl);
  if (s.ok() && t.code != 200 && t.code != 206) s = HttpError(t);
  if (s.ok() && fsync(t.fd) != 0) {
    s = absl::InternalError(
        absl::StrCat("fsync ", options.partial_path, ": ", std::strerror(errno)));
  }
  fstat(t.fd, &st);
  close(t.fd);
  if (!s.ok()) return s;
  const int64_t size = st.st_size;
  if (t.total >= 0 && size != t.total) {
    return absl::UnavailableError(absl::StrCat("transfer from ", HostOf(options.url), " ended at ",
                                               size, " of ", t.total,
                                               " bytes; the next try resumes"));
  }

  std::string expected = options.expected_sha256, from = "the spec";
  if (expected.empty()) {
    if (auto h = Sha256FromEtag(t.linked_etag)) {
      expected = *h, from = "X-Linked-Etag";
    } else if (auto e = Sha256FromEtag(t.etag)) {
      expected = *e, from = "ETag";
    }
  }
  absl::StatusOr<std::string> actual = Sha256OfFile(options.partial_path);
  if (!actual.ok()) return actual.status();
  if (!expected.empty() && *actual != expected) {
    unlink(options.partial_path.c_str());
    return absl::DataLossError(absl::StrCat(
        "checksum mismatch: sha256 ", *actual, ", expected ", expected, " (from ", from,
        "); the download was deleted", t.kept > 0 ? " (it had resumed a partial file)" : ""));
  }
  return DownloadResult{
      .sha256 = *actual, .bytes = size, .verified = !expected.empty(), .resumed_from = t.kept};
}

}  // namespace weft::control
