// SPDX-License-Identifier: Apache-2.0
// The `weft` binary: dispatches to a verb. Argument parsing and wiring only.
#include <cstdio>
#include <cstring>
#include <string>

#include <iostream>
#include <vector>

#include "cli/commands.h"
#include "gateway/metering/usage_command.h"
#include "gateway/admin/keys_command.h"

namespace {

constexpr char kUsage[] =
    "usage: weft <command> [args]\n"
    "\n"
    "  generate MODEL [--tokenizer FILE] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
    "                 [--min-p P] [--seed S] [--threads N] [--stop S]... [--ignore-eos]\n"
    "  model inspect MODEL\n"
    "  model tokenize MODEL TEXT [--bos] [--special]\n"
    "  model detokenize MODEL ID...\n"
    "  model synth --shape llama-1b|llama-110m --type q8_0|q4_0|f16 --vocab VOCAB.gguf -o OUT\n"
    "  bench MODEL [-p 512] [-n 128] [--threads N] [-r 5]\n"
    "  engine --model MODEL [--name ID] [--adapter NAME=PATH]... [--host H] [--port P]\n"
    "         [--threads N] [--ctx N] [--kv-blocks N | --kv-mem MIB] [--max-batch-tokens N]\n"
    "         [--chat-template-file F]\n"
    "  gateway [--config FILE] [--host H] [--port P] [--data DIR] [--drain SECONDS] [--quiet]\n"
    "  control [--data DIR] [--store URL] [--host H] [--port 7070] [--local-slots N] [--token T]\n"
    "          [--providers PROVIDERS.yaml]\n"
    "  deploy -f SPEC.yaml [--control URL] [--token T]\n"
    "  get deployments|replicas|providers [--control URL] [-o json]\n"
    "  describe deployment NAME | delete NAME | scale NAME [--min N] [--max M]\n"
    "  agent --token T [--host H] [--port 7071] [--advertise ADDR] [--slots N] [--accelerator K]\n"
    "        [--region R] [--data DIR]   (per-host daemon of the hosts provider)\n"
    "  up [--model M] [--port 8080] [--control-port 7070] [--data DIR] [--name demo]\n"
    "  keys create|list|revoke ...       (tenants and API keys; weft keys --help)\n"
    "  tenants create|list|set ...\n"
    "  usage [--data DIR] [--tenant T] [--deployment D] [--since DATE] [--by day|deployment|key]\n"
    "\n"
    "MODEL is a GGUF file, a llama2.c .bin checkpoint (with --tokenizer tokenizer.bin), or a\n"
    "Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json).\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string verb = argv[1];
  if (verb == "generate") return weft::cli::GenerateCommand(argc, argv);
  if (verb == "model") return weft::cli::ModelCommand(argc, argv);
  if (verb == "bench") return weft::cli::BenchCommand(argc, argv);
  if (verb == "engine") return weft::cli::EngineCommand(argc, argv);
  if (verb == "gateway") return weft::cli::GatewayCommand(argc, argv);
  if (verb == "control") return weft::cli::ControlCommand(argc, argv);
  if (verb == "deploy") return weft::cli::DeployCommand(argc, argv);
  if (verb == "get") return weft::cli::GetCommand(argc, argv);
  if (verb == "describe") return weft::cli::DescribeCommand(argc, argv);
  if (verb == "delete") return weft::cli::DeleteCommand(argc, argv);
  if (verb == "scale") return weft::cli::ScaleCommand(argc, argv);
  if (verb == "up") return weft::cli::UpCommand(argc, argv);
  if (verb == "agent") return weft::cli::AgentCommand(argc, argv);
  if (verb == "usage") {
    return weft::gateway::RunUsageCommand(std::vector<std::string>(argv + 2, argv + argc), std::cout,
                                          std::cerr);
  }
  if (verb == "keys") {
    return weft::admin::RunKeysCommand(std::vector<std::string>(argv + 2, argv + argc), std::cout,
                                       std::cerr);
  }
  if (verb == "tenants") {
    return weft::admin::RunTenantsCommand(std::vector<std::string>(argv + 2, argv + argc),
                                          std::cout, std::cerr);
  }
  std::fprintf(stderr, "weft: unknown command '%s'\n\n%s", verb.c_str(), kUsage);
  return 2;
}
