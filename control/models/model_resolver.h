// SPDX-License-Identifier: Apache-2.0
// ModelResolver: turns a deployment's model source (a local path, an hf:// file, a checkpoint
// directory) into a path on this machine that a provider can hand to an engine. Resolve never
// blocks: a source that must be downloaded is fetched in the background and reported pending until
// it is ready or has failed. Implementations: ModelCache (cache/: a content-addressed cache filled
// over HTTPS with libcurl) and FakeModelResolver (fake/: scripted, in memory). Owned by whoever
// wires the control loop; outlives the Controller. Every method is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "control/deployments/deployment_spec.h"

namespace weft::control {

enum class ModelState { kPending, kReady, kFailed };
std::string_view ModelStateName(ModelState state);  // "pending" | "ready" | "failed"

struct ModelResolution {
  ModelState state = ModelState::kPending;
  std::string path;    // kReady: the local file (or directory) to load
  std::string reason;  // kFailed: "model hf://org/repo/f.gguf: cannot reach huggingface.co: ..."
  int64_t bytes_done = 0;    // kPending: bytes on disk so far (a resumed download counts them)
  int64_t bytes_total = -1;  // kPending: the full size when known, else -1
};

class ModelResolver {
 public:
  virtual ~ModelResolver() = default;

  // Where `source` stands now; never blocks. The first call for a source that is neither cached
  // nor being fetched starts fetching it (kPending). A failed fetch is reported by every call
  // (kFailed + reason) until Retry(source): failures are never retried silently.
  virtual ModelResolution Resolve(const ModelSource& source) = 0;
  // Forgets a recorded failure of `source`, so that the next Resolve fetches it again. No-op
  // when it has not failed.
  virtual void Retry(const ModelSource& source) = 0;
};

inline std::string_view ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kPending:
      return "pending";
    case ModelState::kReady:
      return "ready";
    case ModelState::kFailed:
      return "failed";
  }
  return "unknown";
}

}  // namespace weft::control
