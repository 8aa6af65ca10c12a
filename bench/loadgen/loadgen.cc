// SPDX-License-Identifier: Apache-2.0
// weft_loadgen: a small load generator for OpenAI-compatible completion servers (weft engine,
// llama-server, vLLM...). N client threads each loop: POST /v1/completions with stream=true, a
// prompt of P random token ids (distinct per request, so no prefix cache helps), max_tokens M,
// temperature 0, ignore_eos; read the SSE stream over plain blocking sockets (HTTP/1.1, one
// connection per request, chunked or not), count completion tokens (the `usage` the server reports,
// else one per chunk with a choice) and time TTFT (send -> first chunk with a choice). Only the
// JSON envelope is read; the generated text is never looked at. Prints a table or one JSON object.
//
// Usage: weft_loadgen --port P [--host H] [--clients N] [--duration S | --requests R]
//   [--prompt-tokens P] [--max-tokens M] [--model ID] [--token-range LO:HI] [--warmup R]
//   [--warmup-max-tokens M] [--timeout S] [--seed N] [--label TEXT] [--json]

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  int clients = 1;
  double duration_s = 0;  // > 0: each client starts requests until this much time has passed.
  int requests = 0;       // > 0: each client sends exactly this many (when duration_s == 0).
  int prompt_tokens = 128;
  int max_tokens = 64;
  std::string model;                     // Empty: the first id of GET /v1/models.
  int token_lo = 1000, token_hi = 8000;  // Prompt token ids are drawn from [lo, hi).
  int warmup = 1;                        // Uncounted requests per client before the run.
  int warmup_max_tokens = 4;             // max_tokens of warm-up requests (prompts: <= 8 tokens).
  double timeout_s = 600;                // Socket receive timeout per read.
  uint64_t seed = 1;
  std::string label;
  bool json_out = false;
};

struct RequestResult {
  bool ok = false;
  std::string error;  // When !ok: what went wrong.
  int completion_tokens = 0;
  double ttft_ms = -1;  // Send -> first chunk carrying a choice.
  double total_ms = 0;  // Send -> end of stream.
};

// ---- A blocking HTTP/1.1 exchange over one TCP connection. ----

class Conn {
 public:
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  // Returns an empty string on success, else the error.
  std::string Open(const std::string& host, int port, double timeout_s) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port_str = std::to_string(port);
    if (int rc = getaddrinfo(host.c_str(), port_str.c_str(), &hints, &res); rc != 0) {
      return std::string("getaddrinfo: ") + gai_strerror(rc);
    }
    std::string err = "connect: no address";
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        fd_ = fd;
        err.clear();
        break;
      }
      err = std::string("connect: ") + std::strerror(errno);
      close(fd);
    }
    freeaddrinfo(res);
    if (!err.empty()) return err;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_s);
    tv.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(tv.tv_sec)) * 1e6);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return "";
  }
  std::string SendAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::string("send: ") + std::strerror(errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return "";
  }
  // Appends what arrives to *buf. Returns bytes read (0 at EOF) or -1 with *err set.
  ssize_t Read(std::string* buf, std::string* err) {
    char tmp[16384];
    for (;;) {
      ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        *err = (errno == EAGAIN || errno == EWOULDBLOCK) ? "recv: timeout"
                                                         : std::string("recv: ") + strerror(errno);
        return -1;
      }
      buf->append(tmp, static_cast<size_t>(n));
      return n;
    }
  }

 private:
  int fd_ = -1;
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads a response: status line and headers, then hands the decoded body (chunked or plain) to
// on_body piece by piece as it arrives. on_body returns false to stop early. Returns "" or error.
template <typename OnBody>
std::string ReadResponse(Conn& conn, int* status, OnBody on_body) {
  std::string buf, err;
  size_t head_end;
  while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = conn.Read(&buf, &err);
    if (n < 0) return err;
    if (n == 0) return "connection closed before the response headers";
    if (buf.size() > (1 << 20)) return "response headers too large";
  }
  std::string head = buf.substr(0, head_end);
  buf.erase(0, head_end + 4);
  if (std::sscanf(head.c_str(), "HTTP/%*d.%*d %d", status) != 1) return "bad status line";
  bool chunked = false;
  std::optional<size_t> content_length;
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line =
        head.substr(pos + 2, (next == std::string::npos ? head.size() : next) - (pos + 2));
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = Lower(line.substr(0, colon));
      std::string value = Lower(line.substr(colon + 1));
      if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) chunked = true;
      if (name == "content-length") content_length = std::strtoull(value.c_str(), nullptr, 10);
    }
    pos = next;
  }
  if (!chunked) {
    size_t got = 0;
    for (;;) {
      if (!buf.empty()) {
        got += buf.size();
        if (!on_body(std::string_view(buf))) return "";
        buf.clear();
      }
      if (content_length && got >= *content_length) return "";
      ssize_t n = conn.Read(&buf, &err);
      if (n < 0) return err;
      if (n == 0) return content_length ? "connection closed mid-body" : "";
    }
  }
  // Chunked: <hex size>[;ext]\r\n<data>\r\n ... 0\r\n\r\n
  for (;;) {
    size_t eol;
    while ((eol = buf.find("\r\n")) == std::string::npos) {
      ssize_t n = conn.Read(&buf, &err);
      if (n < 0) return err;
      if (n == 0) return "connection closed in a chunk header";
    }
    size_t size = std::strtoull(buf.c_str(), nullptr, 16);
    buf.erase(0, eol + 2);
    if (size == 0) return "";
    while (buf.size() < size + 2) {
      ssize_t n = conn.Read(&buf, &err);
      if (n < 0) return err;
      if (n == 0) return "connection closed mid-chunk";
    }
    if (!on_body(std::string_view(buf.data(), size))) return "";
    buf.erase(0, size + 2);
  }
}

std::string HttpRequest(const Options& o, const std::string& method, const std::string& path,
                        const std::string& body) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + o.host + ":" +
                    std::to_string(o.port) +
                    "\r\nUser-Agent: weft_loadgen\r\nAccept: */*\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST") {
    req +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  return req;
}

// GET path; returns the body or nullopt (with *err).
std::optional<std::string> Get(const Options& o, const std::string& path, std::string* err) {
  Conn c;
  if (std::string e = c.Open(o.host, o.port, 10); !e.empty()) {
    *err = e;
    return std::nullopt;
  }
  if (std::string e = c.SendAll(HttpRequest(o, "GET", path, "")); !e.empty()) {
    *err = e;
    return std::nullopt;
  }
  std::string body;
  int status = 0;
  std::string e = ReadResponse(c, &status, [&](std::string_view piece) {
    body.append(piece);
    return true;
  });
  if (!e.empty()) {
    *err = e;
    return std::nullopt;
  }
  if (status != 200) {
    *err = "status " + std::to_string(status) + ": " + body.substr(0, 200);
    return std::nullopt;
  }
  return body;
}

// ---- One streaming completion. ----

RequestResult RunOne(const Options& o, int prompt_tokens, int max_tokens, std::mt19937_64& rng) {
  RequestResult r;
  std::uniform_int_distribution<int> tok(o.token_lo, o.token_hi - 1);
  json prompt = json::array();
  for (int i = 0; i < prompt_tokens; ++i) prompt.push_back(tok(rng));
  json body = {{"model", o.model},
               {"prompt", prompt},
               {"max_tokens", max_tokens},
               {"n_predict", max_tokens},
               {"temperature", 0.0},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"ignore_eos", true}};
  std::string request = HttpRequest(o, "POST", "/v1/completions", body.dump());

  Conn c;
  Clock::time_point t0 = Clock::now();
  if (std::string e = c.Open(o.host, o.port, o.timeout_s); !e.empty()) {
    r.error = e;
    return r;
  }
  if (std::string e = c.SendAll(request); !e.empty()) {
    r.error = e;
    return r;
  }
  int status = 0;
  std::string pending;  // SSE text not yet split into events.
  std::string error_body;
  int chunks_with_choice = 0;
  int usage_tokens = -1;
  bool done = false;
  std::string parse_error;
  auto on_body = [&](std::string_view piece) {
    if (status != 200) {
      if (error_body.size() < 512) error_body.append(piece.substr(0, 512));
      return true;
    }
    pending.append(piece);
    // Events end with a blank line ("\n\n" or "\r\n\r\n"); handle both by normalizing \r.
    for (;;) {
      size_t end = pending.find("\n\n");
      size_t sep = 2;
      if (size_t crlf = pending.find("\r\n\r\n");
          crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
        end = crlf;
        sep = 4;
      }
      if (end == std::string::npos) break;
      std::string event = pending.substr(0, end);
      pending.erase(0, end + sep);
      // Join the event's data: lines.
      std::string data;
      size_t p = 0;
      while (p <= event.size()) {
        size_t nl = event.find('\n', p);
        std::string line = event.substr(p, nl == std::string::npos ? std::string::npos : nl - p);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.rfind("data:", 0) == 0) {
          std::string_view v(line);
          v.remove_prefix(5);
          if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
          if (!data.empty()) data += '\n';
          data.append(v);
        }
        if (nl == std::string::npos) break;
        p = nl + 1;
      }
      if (data.empty()) continue;
      if (data == "[DONE]") {
        done = true;
        return false;
      }
      json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        parse_error = "unparsable SSE event: " + data.substr(0, 120);
        return false;
      }
      if (auto e = j.find("error"); e != j.end()) {
        parse_error = "error event: " + e->dump().substr(0, 200);
        return false;
      }
      if (auto ch = j.find("choices"); ch != j.end() && ch->is_array() && !ch->empty()) {
        if (chunks_with_choice++ == 0) {
          r.ttft_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        }
      }
      if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
        if (auto ct = u->find("completion_tokens"); ct != u->end() && ct->is_number_integer()) {
          usage_tokens = ct->get<int>();
        }
      }
    }
    return true;
  };
  std::string e = ReadResponse(c, &status, on_body);
  r.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (!e.empty()) {
    r.error = e;
  } else if (status != 200) {
    r.error = "status " + std::to_string(status) + ": " + error_body.substr(0, 200);
  } else if (!parse_error.empty()) {
    r.error = parse_error;
  } else if (!done) {
    r.error = "stream ended without [DONE]";
  } else if (chunks_with_choice == 0) {
    r.error = "stream carried no choices";
  } else {
    r.ok = true;
    r.completion_tokens = usage_tokens >= 0 ? usage_tokens : chunks_with_choice;
  }
  return r;
}

// ---- Driver. ----

[[noreturn]] void Usage(int rc) {
  std::fprintf(
      rc == 0 ? stdout : stderr,
      "usage: weft_loadgen --port P [--host H] [--clients N] [--duration S | --requests "
      "R]\n  [--prompt-tokens P] [--max-tokens M] [--model ID] [--token-range LO:HI]\n"
      "  [--warmup R] [--warmup-max-tokens M] [--timeout S] [--seed N] [--label TEXT] [--json]\n"
      "Defaults: 1 client, --requests 4 unless --duration, P=128, M=64; warm-up: 1 request per\n"
      "client (min(P, 8) prompt tokens, 4 new tokens, not counted); model: the first id of\n"
      "GET /v1/models; prompt token ids drawn from [1000, 8000).\n");
  std::exit(rc);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  auto need = [&](int& i) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", argv[i]);
      Usage(2);
    }
    return argv[++i];
  };
  auto to_int = [](const std::string& s, const char* name) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0') {
      std::fprintf(stderr, "%s: not an integer: %s\n", name, s.c_str());
      Usage(2);
    }
    return static_cast<int>(v);
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host")
      o.host = need(i);
    else if (a == "--port")
      o.port = to_int(need(i), "--port");
    else if (a == "--clients" || a == "-c")
      o.clients = to_int(need(i), "--clients");
    else if (a == "--duration")
      o.duration_s = std::atof(need(i).c_str());
    else if (a == "--requests")
      o.requests = to_int(need(i), "--requests");
    else if (a == "--prompt-tokens")
      o.prompt_tokens = to_int(need(i), "--prompt-tokens");
    else if (a == "--max-tokens")
      o.max_tokens = to_int(need(i), "--max-tokens");
    else if (a == "--model")
      o.model = need(i);
    else if (a == "--warmup")
      o.warmup = to_int(need(i), "--warmup");
    else if (a == "--warmup-max-tokens")
      o.warmup_max_tokens = to_int(need(i), "--warmup-max-tokens");
    else if (a == "--timeout")
      o.timeout_s = std::atof(need(i).c_str());
    else if (a == "--seed")
      o.seed = std::strtoull(need(i).c_str(), nullptr, 10);
    else if (a == "--label")
      o.label = need(i);
    else if (a == "--json")
      o.json_out = true;
    else if (a == "--token-range") {
      std::string v = need(i);
      if (std::sscanf(v.c_str(), "%d:%d", &o.token_lo, &o.token_hi) != 2) Usage(2);
    } else if (a == "-h" || a == "--help")
      Usage(0);
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      Usage(2);
    }
  }
  if (o.duration_s <= 0 && o.requests <= 0) o.requests = 4;
  if (o.clients < 1 || o.prompt_tokens < 1 || o.max_tokens < 1 || o.warmup < 0 ||
      o.warmup_max_tokens < 1 || o.token_lo < 0 || o.token_hi <= o.token_lo || o.timeout_s <= 0) {
    std::fprintf(stderr, "bad option values\n");
    Usage(2);
  }
  return o;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank.
  size_t rank = static_cast<size_t>(std::ceil(q / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  if (o.model.empty()) {
    std::string err;
    std::optional<std::string> models = Get(o, "/v1/models", &err);
    if (!models) {
      std::fprintf(stderr, "weft_loadgen: GET /v1/models on %s:%d failed: %s\n", o.host.c_str(),
                   o.port, err.c_str());
      return 1;
    }
    json j = json::parse(*models, nullptr, false);
    if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
        !j["data"][0].contains("id") || !j["data"][0]["id"].is_string()) {
      std::fprintf(stderr, "weft_loadgen: no model id in /v1/models: %s\n",
                   models->substr(0, 200).c_str());
      return 1;
    }
    o.model = j["data"][0]["id"].get<std::string>();
  }

  // Warm-up: every client runs its warm-up requests at once (not counted).
  std::atomic<int> warm_errors{0};
  std::string warm_error;
  std::mutex mu;
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c) {
      threads.emplace_back([&, c] {
        std::mt19937_64 rng(o.seed * 1000003u + static_cast<uint64_t>(c) + 7777777u);
        for (int i = 0; i < o.warmup; ++i) {
          RequestResult r = RunOne(o, std::min(o.prompt_tokens, 8), o.warmup_max_tokens, rng);
          if (!r.ok) {
            ++warm_errors;
            std::lock_guard<std::mutex> l(mu);
            warm_error = r.error;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  }

  std::vector<std::vector<RequestResult>> per_client(static_cast<size_t>(o.clients));
  Clock::time_point start = Clock::now();
  Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(o.duration_s > 0 ? o.duration_s : 0));
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < o.clients; ++c) {
      threads.emplace_back([&, c] {
        std::mt19937_64 rng(o.seed * 1000003u + static_cast<uint64_t>(c));
        auto& out = per_client[static_cast<size_t>(c)];
        for (int i = 0;; ++i) {
          if (o.duration_s > 0 ? Clock::now() >= deadline : i >= o.requests) break;
          out.push_back(RunOne(o, o.prompt_tokens, o.max_tokens, rng));
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  double wall_s = std::chrono::duration<double>(Clock::now() - start).count();

  int requests = 0, errors = 0, short_requests = 0;
  int64_t tokens = 0;
  std::vector<double> ttft, itl;
  std::map<std::string, int> error_kinds;
  for (const auto& results : per_client) {
    for (const RequestResult& r : results) {
      ++requests;
      if (!r.ok) {
        ++errors;
        ++error_kinds[r.error.substr(0, 160)];
        continue;
      }
      tokens += r.completion_tokens;
      if (r.completion_tokens < o.max_tokens) ++short_requests;
      ttft.push_back(r.ttft_ms);
      if (r.completion_tokens > 1) {
        itl.push_back((r.total_ms - r.ttft_ms) / (r.completion_tokens - 1));
      }
    }
  }
  double tok_s = wall_s > 0 ? static_cast<double>(tokens) / wall_s : 0;
  double ttft50 = Percentile(ttft, 50), ttft99 = Percentile(ttft, 99);
  double itl50 = Percentile(itl, 50);

  if (o.json_out) {
    json out = {{"label", o.label},
                {"model", o.model},
                {"clients", o.clients},
                {"prompt_tokens", o.prompt_tokens},
                {"max_tokens", o.max_tokens},
                {"requests", requests},
                {"errors", errors},
                {"short_requests", short_requests},
                {"warmup_errors", warm_errors.load()},
                {"completion_tokens", tokens},
                {"wall_s", wall_s},
                {"tok_s", tok_s},
                {"ttft_p50_ms", ttft50},
                {"ttft_p99_ms", ttft99},
                {"itl_p50_ms", itl50},
                {"error_kinds", error_kinds}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%-12s %7s %8s %6s %10s %9s %10s %10s %9s\n", "label", "clients", "requests",
                "errors", "tokens", "tok/s", "TTFT p50", "TTFT p99", "ITL p50");
    std::printf("%-12s %7d %8d %6d %10" PRId64 " %9.1f %8.1fms %8.1fms %7.1fms\n",
                o.label.empty() ? o.model.substr(o.model.rfind('/') + 1).substr(0, 12).c_str()
                                : o.label.c_str(),
                o.clients, requests, errors, tokens, tok_s, ttft50, ttft99, itl50);
    if (short_requests > 0) {
      std::printf("note: %d requests returned fewer than %d tokens (ignore_eos not honoured?)\n",
                  short_requests, o.max_tokens);
    }
  }
  if (warm_errors > 0) {
    std::fprintf(stderr, "weft_loadgen: %d warm-up errors, e.g. %s\n", warm_errors.load(),
                 warm_error.c_str());
  }
  for (const auto& [what, n] : error_kinds) {
    std::fprintf(stderr, "weft_loadgen: %d x %s\n", n, what.c_str());
  }
  return (errors > 0 || requests == 0) ? 1 : 0;
}
