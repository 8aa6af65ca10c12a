// SPDX-License-Identifier: Apache-2.0
// The `weft` verbs and the small helpers they share. Each verb parses its own flags, wires the
// libraries together, prints, and returns the process exit status.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/args.h"
#include "engine/kernels/kernels.h"

namespace weft::model {
class Model;
}

namespace weft::cli {

int GenerateCommand(int argc, char** argv);  // weft generate
int ModelCommand(int argc, char** argv);     // weft model inspect|tokenize|detokenize|synth
int BenchCommand(int argc, char** argv);     // weft bench
int EngineCommand(int argc, char** argv);    // weft engine
int GatewayCommand(int argc, char** argv);   // weft gateway
int ControlCommand(int argc, char** argv);   // weft control
int DeployCommand(int argc, char** argv);    // weft deploy -f SPEC
int GetCommand(int argc, char** argv);       // weft get deployments|replicas|providers
int DescribeCommand(int argc, char** argv);  // weft describe deployment NAME
int DeleteCommand(int argc, char** argv);    // weft delete NAME
int ScaleCommand(int argc, char** argv);     // weft scale NAME --min N --max M
int UpCommand(int argc, char** argv);        // weft up
int AgentCommand(int argc, char** argv);     // weft agent

// Prints "weft: <status message>" to stderr; returns 1.
int Fail(const absl::Status& status);
// Prints "usage: <text>" to stderr; returns 2.
int Usage(const std::string& text);
// Physical cores are what matmul scales with; use the hardware threads, at most 8 by default.
int DefaultThreads();
// "" = the best level of this CPU; else scalar|avx2|avx512.
absl::StatusOr<kernels::Isa> ParseIsa(const std::string& name);
// "llama 1B Q8_0" as llama-bench names models.
std::string ModelDescription(const model::Model& model);
std::string HumanBytes(uint64_t bytes);          // "1.22 GiB"
std::string HumanParams(const model::Model& m);  // "1.24 B"

}  // namespace weft::cli
