// SPDX-License-Identifier: Apache-2.0
#include "control/models/fake/fake_model_resolver.h"

namespace weft::control {

void FakeModelResolver::SetReady(const std::string& uri, const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  outcomes_[uri] = {true, path};
}

void FakeModelResolver::SetFailed(const std::string& uri, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  outcomes_[uri] = {false, reason};
}

void FakeModelResolver::SetFetchCalls(int32_t calls) {
  std::lock_guard<std::mutex> lock(mu_);
  fetch_calls_ = calls;
}

ModelResolution FakeModelResolver::Resolve(const ModelSource& source) {
  std::lock_guard<std::mutex> lock(mu_);
  auto out = outcomes_.find(source.uri);
  if (out == outcomes_.end()) {
    return {.state = ModelState::kReady,
            .path = source.uri,
            .reason = "",
            .bytes_done = 0,
            .bytes_total = -1};
  }
  Entry& e = entries_[source.uri];
  if (e.done) return e.result;
  if (e.calls_left == 0) {
    e.fetches++;
    e.calls_left = fetch_calls_ + 1;
  }
  if (--e.calls_left > 0) return ModelResolution{};  // pending
  e.done = true;
  e.result = out->second.ok ? ModelResolution{.state = ModelState::kReady,
                                              .path = out->second.path_or_reason,
                                              .reason = "",
                                              .bytes_done = 0,
                                              .bytes_total = -1}
                            : ModelResolution{.state = ModelState::kFailed,
                                              .path = "",
                                              .reason = out->second.path_or_reason,
                                              .bytes_done = 0,
                                              .bytes_total = -1};
  return e.result;
}

void FakeModelResolver::Retry(const ModelSource& source) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(source.uri);
  if (it == entries_.end() || !it->second.done || it->second.result.state != ModelState::kFailed) {
    return;
  }
  it->second.done = false;
  it->second.calls_left = 0;
  it->second.retries++;
}

int32_t FakeModelResolver::fetches(const std::string& uri) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(uri);
  return it == entries_.end() ? 0 : it->second.fetches;
}

int32_t FakeModelResolver::retries(const std::string& uri) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(uri);
  return it == entries_.end() ? 0 : it->second.retries;
}

}  // namespace weft::control
