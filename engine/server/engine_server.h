// SPDX-License-Identifier: Apache-2.0
// EngineServer: the engine's OpenAI-compatible HTTP front. Wires routes to one Engine (which it
// does not own and which must outlive it): completions and chat completions (plain and SSE),
// /weft/v1/render, /v1/models, /health, /metrics, /weft/v1/load and the adapter control API.
// Requests are parsed, templated and tokenized on the HTTP I/O threads; engine events are posted to
// each connection's strand; a client that disconnects gets its requests cancelled in the engine.
//
// Use (cli `weft engine`):
//   ServerOptions o{.host = h, .port = p, .threads = t, .model_id = id};
//   o.chat_template = <--chat-template-file text, else GGUF "tokenizer.chat_template", else "">;
//   WEFT_ASSIGN_OR_RETURN(auto server, EngineServer::Create(engine, std::move(o)));
//   WEFT_RETURN_IF_ERROR(server->Start());   // listening; /health is 200 (SetReady(false) first to
//   ...                                        // listen before the weights are loaded)
//   on SIGTERM: server->Stop(deadline);  then engine.Shutdown(0);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/runtime/engine.h"

namespace weft::engine {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 = ephemeral (tests); see EngineServer::port()
  int threads = 2;       // HTTP I/O threads
  // The served model id; "" = engine.model_id(). Requests may name it, "<id>:<adapter>", or an
  // alias; anything else is 404.
  std::string model_id;
  std::map<std::string, std::string> aliases;  // alias -> adapter name ("" = the base model)
  // Chat template source (Jinja): the --chat-template-file override or the model's GGUF
  // "tokenizer.chat_template"; "" = tokenizer::DefaultChatTemplate() (ChatML).
  std::string chat_template;
  // max_tokens when the client gives none: /v1/completions uses OpenAI's 16; chat runs to the
  // context (<= 0 = no limit but the context).
  int32_t default_completion_max_tokens = 16;
  int32_t default_chat_max_tokens = -1;
  int retry_after_s = 1;  // Retry-After on 429/503
  size_t max_body_bytes = 8 << 20;
  double header_timeout_s = 10;
  double idle_timeout_s = 60;
  double write_timeout_s = 60;
};

class EngineServer {
 public:
  // Fails (InvalidArgument, naming the line) if the chat template does not parse.
  static absl::StatusOr<std::unique_ptr<EngineServer>> Create(Engine& engine,
                                                              ServerOptions options);
  ~EngineServer();  // Stop(0) if running

  // Binds and serves. Unavailable if the address cannot be bound.
  absl::Status Start();
  uint16_t port() const;  // the bound port, after Start()

  // /health answers 200 only while ready (default true; false from Stop() on).
  void SetReady(bool ready);

  // Graceful: /health turns 503, the listener closes, in-flight requests (streams included) run
  // on for up to `deadline_s`, then are cut and cancelled in the engine. Blocks. Does not shut the
  // engine down.
  void Stop(double deadline_s);

  const std::string& model_id() const;

  struct State;

 private:
  explicit EngineServer(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace weft::engine
