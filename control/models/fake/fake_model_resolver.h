// SPDX-License-Identifier: Apache-2.0
// FakeModelResolver: an in-memory ModelResolver for controller tests and the simulator. Each source
// URI is given an outcome (ready at a path, or failed with a reason); a fetch takes `fetch_calls`
// Resolve calls (pending until then), and a failure sticks until Retry, as ModelCache's do. It
// counts fetches, so tests can check that failures are retried a bounded number of times.
// Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "control/models/model_resolver.h"

namespace weft::control {

class FakeModelResolver : public ModelResolver {
 public:
  // From now on fetching `uri` ends ready at `path`, or failed with `reason`. A URI given no
  // outcome resolves at once to itself (as a local file would).
  void SetReady(const std::string& uri, const std::string& path);
  void SetFailed(const std::string& uri, const std::string& reason);
  // How many Resolve calls a fetch stays pending for (default 1: the first call is pending).
  void SetFetchCalls(int32_t calls);

  ModelResolution Resolve(const ModelSource& source) override;
  void Retry(const ModelSource& source) override;

  int32_t fetches(const std::string& uri) const;  // fetches started for `uri`
  int32_t retries(const std::string& uri) const;  // Retry calls that cleared a failure

 private:
  struct Outcome {
    bool ok = true;
    std::string path_or_reason;
  };
  struct Entry {
    int32_t fetches = 0;
    int32_t retries = 0;
    int32_t calls_left = 0;  // of the running fetch; 0 = none running
    bool done = false;       // the fetch finished: `result` holds
    ModelResolution result;
  };

  mutable std::mutex mu_;
  std::map<std::string, Outcome> outcomes_;
  std::map<std::string, Entry> entries_;
  int32_t fetch_calls_ = 1;
};

}  // namespace weft::control
