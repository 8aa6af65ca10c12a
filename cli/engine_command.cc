// SPDX-License-Identifier: Apache-2.0
// `weft engine --model M [--name ID] [--adapter NAME=PATH]... [--host H] [--port P] [--threads N]
//  [--ctx N] [--kv-blocks N | --kv-mem MIB] [--max-batch-tokens N] [--chat-template-file F]
//  [--exit-with-parent PID]`:
// one replica serving the OpenAI API. SIGTERM/SIGINT: stop admitting, finish running requests up
// to --drain-seconds, exit. --exit-with-parent PID: the same once PID is no longer our parent.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/mmap_file.h"
#include "cli/commands.h"
#include "engine/model/gguf.h"
#include "engine/model/model.h"
#include "engine/runtime/llama_engine.h"
#include "engine/server/engine_server.h"
#include "engine/tokenizer/tokenizer.h"

namespace weft::cli {

namespace {
// The served model id: the model file's stem ("stories260K" for stories260K.gguf).
std::string ModelStem(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::string base =
      p.substr(p.find_last_of('/') == std::string::npos ? 0 : p.find_last_of('/') + 1);
  auto dot = base.find_last_of('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// --exit-with-parent: a detached thread polls getppid() every 500 ms and, once the process that
// spawned the engine has died (the kernel reparents us to init or a subreaper, so getppid() changes
// and never returns to `parent`), sends the engine its own SIGTERM: the usual drain-and-exit path.
// Polling getppid() rather than a pipe whose EOF means the parent died: Process::Spawn closes every
// descriptor above 2 in the child on purpose, and a pipe's EOF means "every copy of the write end
// is closed", which a copy inherited by any other child of the parent would postpone forever; the
// parent's pid, given on the command line, also closes the race of a parent that dies before the
// engine starts watching. PR_SET_PDEATHSIG is not usable: posix_spawn cannot set it, and it fires
// on the death of the spawning *thread*, not process.
void ExitWithParent(pid_t parent) {
  std::thread([parent] {
    while (getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::fprintf(stderr, "weft engine: parent process %d is gone\n", static_cast<int>(parent));
    kill(getpid(), SIGTERM);
  }).detach();
}
}  // namespace

int EngineCommand(int argc, char** argv) {
  auto args = Args::Parse(argc, argv, 2,
                          {{{"-m", "--model"}},
                           {{"--name"}},
                           {{"--adapter"}, true, true},
                           {{"--host"}},
                           {{"--port"}},
                           {{"-t", "--threads"}},
                           {{"--http-threads"}},
                           {{"-c", "--ctx"}},
                           {{"--kv-blocks"}},
                           {{"--kv-mem"}},
                           {{"--max-batch-tokens"}},
                           {{"--max-running"}},
                           {{"--max-waiting"}},
                           {{"--tokenizer"}},
                           {{"--chat-template-file"}},
                           {{"--isa"}},
                           {{"--drain-seconds"}},
                           {{"--exit-with-parent"}}});
  if (!args.ok()) return Fail(args.status());
  std::string path = args->GetString("--model", "");
  if (path.empty() && args->positional().size() == 1) path = args->positional()[0];
  if (path.empty()) {
    return Usage(
        "weft engine --model M [--name ID] [--adapter NAME=PATH]... [--host H] "
        "[--port P] [--threads N] [--ctx N] [--kv-blocks N | --kv-mem MIB] "
        "[--max-batch-tokens N] [--chat-template-file F] [--exit-with-parent PID]");
  }
  auto port = args->GetInt("--port", 8080);
  auto threads = args->GetInt("--threads", DefaultThreads());
  auto http_threads = args->GetInt("--http-threads", 2);
  auto ctx = args->GetInt("--ctx", 0);
  auto kv_blocks = args->GetInt("--kv-blocks", 0);
  auto kv_mem = args->GetInt("--kv-mem", 0);
  auto max_batch = args->GetInt("--max-batch-tokens", 512);
  auto max_running = args->GetInt("--max-running", 64);
  auto max_waiting = args->GetInt("--max-waiting", 1024);
  auto drain = args->GetDouble("--drain-seconds", 30);
  auto parent = args->GetInt("--exit-with-parent", 0);
  for (const absl::Status& s :
       {port.status(), threads.status(), http_threads.status(), ctx.status(), kv_blocks.status(),
        kv_mem.status(), max_batch.status(), max_running.status(), max_waiting.status(),
        drain.status(), parent.status()}) {
    if (!s.ok()) return Fail(s);
  }
  if (*port < 0 || *port > 65535) return Fail(absl::InvalidArgumentError("--port: 0..65535"));
  if (*parent < 0 || *parent > INT32_MAX) {
    return Fail(absl::InvalidArgumentError("--exit-with-parent: a process id"));
  }
  if (*parent > 0 && getppid() != static_cast<pid_t>(*parent)) {
    // The parent died before we got here (or PID was never our parent): nobody will stop us.
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "--exit-with-parent ", *parent, ": not this process's parent (", getppid(), ")")));
  }
  auto isa = ParseIsa(args->GetString("--isa", ""));
  if (!isa.ok()) return Fail(isa.status());

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (*parent > 0) ExitWithParent(static_cast<pid_t>(*parent));  // its thread keeps them blocked

  model::LoadOptions lo;
  lo.tokenizer_path = args->GetString("--tokenizer", "");
  auto model = model::LoadModel(path, lo);
  if (!model.ok()) return Fail(model.status());
  auto tok = tokenizer::LoadTokenizer(**model, lo.tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  std::string chat_template;
  if (auto f = args->Get("--chat-template-file")) {
    auto text = ReadFileToString(*f);
    if (!text.ok()) return Fail(text.status());
    chat_template = *text;
  } else if ((*model)->gguf != nullptr) {
    auto t = (*model)->gguf->GetString("tokenizer.chat_template");
    if (t.ok()) chat_template = std::string(*t);
  }

  engine::LlamaEngineOptions eo;
  eo.model_id = args->GetString("--name", ModelStem(path));
  eo.n_threads = static_cast<int>(*threads);
  eo.n_ctx = static_cast<int>(*ctx);
  eo.kv_blocks = static_cast<int>(*kv_blocks);
  eo.kv_mem_bytes = *kv_mem * (1LL << 20);
  eo.max_batch_tokens = static_cast<int>(*max_batch);
  eo.max_running = static_cast<int>(*max_running);
  eo.max_waiting = static_cast<int>(*max_waiting);
  eo.isa = *isa;
  auto engine = engine::LlamaEngine::Create(*std::move(model), *std::move(tok), eo);
  if (!engine.ok()) return Fail(engine.status());
  for (const std::string& spec : args->GetAll("--adapter")) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("--adapter ", spec, ": expected NAME=PATH")));
    }
    absl::Status s = (*engine)->LoadAdapter(spec.substr(0, eq), spec.substr(eq + 1));
    if (!s.ok()) return Fail(s);
  }

  engine::ServerOptions so;
  so.host = args->GetString("--host", "127.0.0.1");
  so.port = static_cast<uint16_t>(*port);
  so.threads = static_cast<int>(*http_threads);
  so.model_id = eo.model_id;
  so.chat_template = chat_template;
  auto server = engine::EngineServer::Create(**engine, so);
  if (!server.ok()) return Fail(server.status());
  if (absl::Status s = (*server)->Start(); !s.ok()) return Fail(s);
  std::fprintf(stderr, "weft engine: serving %s on http://%s:%u (%d threads, ctx %d)\n",
               eo.model_id.c_str(), so.host.c_str(), (*server)->port(), eo.n_threads,
               (*engine)->n_ctx());

  int sig = 0;
  sigwait(&signals, &sig);
  std::fprintf(stderr, "weft engine: %s, draining for up to %.0f s\n",
               sig == SIGTERM ? "SIGTERM" : "SIGINT", *drain);
  (*server)->Stop(*drain);
  (*engine)->Shutdown(0);
  return 0;
}

}  // namespace weft::cli
