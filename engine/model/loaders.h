// SPDX-License-Identifier: Apache-2.0
// The per-format steps behind LoadModel, exposed for tests and fuzzers: build a Model's views from
// an already parsed GGUF file or llama2.c bytes, and validate the result. Internal to engine/model
// and its tests; other code calls LoadModel. Pure functions; any thread.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/gguf.h"
#include "engine/model/model.h"

namespace weft::model {

// Hyper-parameters and weight views from a parsed GGUF (the Model takes ownership of it).
absl::StatusOr<std::unique_ptr<Model>> ModelFromGguf(std::unique_ptr<GgufFile> gguf);

// A llama2.c v0 checkpoint held in `bytes` (the caller keeps them alive, or moves the mapping
// into model->maps). `path` names the file in errors. Leaves the tokenizer path empty.
absl::StatusOr<std::unique_ptr<Model>> ModelFromLlama2c(std::span<const uint8_t> bytes,
                                                        const std::string& path);
absl::StatusOr<std::unique_ptr<Model>> LoadLlama2c(const std::string& path,
                                                   const LoadOptions& options);

// An HF checkpoint directory: config.json + model.safetensors or sharded *.safetensors with
// model.safetensors.index.json (+ tokenizer.json).
absl::StatusOr<std::unique_ptr<Model>> LoadHfCheckpoint(const std::string& dir,
                                                        const LoadOptions& options);

// Checks the config for sanity and every weight's presence, type and shape against it.
// InvalidArgument naming the model's path and the first problem found.
absl::Status ValidateModel(const Model& model);

// Replaces an F16/BF16 tensor (norms, biases) by an f32 copy kept in model.owned. F32 is left as
// is; other types are an error.
absl::Status ConvertToF32(Model& model, Tensor& t);

}  // namespace weft::model
