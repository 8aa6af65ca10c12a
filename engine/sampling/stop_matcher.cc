// SPDX-License-Identifier: Apache-2.0
#include "engine/sampling/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace weft::sampling {
namespace {

// Length of a trailing UTF-8 sequence in `s` that is missing continuation bytes (0 if none).
size_t IncompleteUtf8Tail(std::string_view s) {
  // A sequence is at most 4 bytes: look back over at most 3 continuation bytes for its lead byte.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = 1;
    if ((c & 0xE0) == 0xC0)
      need = 2;
    else if ((c & 0xF0) == 0xE0)
      need = 3;
    else if ((c & 0xF8) == 0xF0)
      need = 4;
    return need > back ? back : 0;  // ASCII or invalid lead bytes count as complete
  }
  return 0;  // only continuation bytes (invalid UTF-8): nothing to wait for
}

}  // namespace

StopMatcher::StopMatcher(std::vector<std::string> stops, bool hold_partial_utf8)
    : hold_partial_utf8_(hold_partial_utf8) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopMatcher::Result StopMatcher::Push(std::string_view piece) {
  Result result;
  if (stopped_) {
    result.stopped = true;
    return result;
  }
  held_.append(piece);

  // The earliest occurrence of any stop string wins (the text before it is what the client sees).
  size_t best_pos = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t pos = held_.find(stops_[i]);
    if (pos < best_pos) {
      best_pos = pos;
      result.stop_index = static_cast<int>(i);
    }
  }
  if (best_pos != std::string::npos) {
    result.emit = held_.substr(0, best_pos);
    result.stopped = true;
    stopped_ = true;
    held_.clear();
    return result;
  }

  // No stop yet: hold the longest suffix that is a proper prefix of some stop string. (A full
  // occurrence would have been found above.)
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > hold; --len) {
      if (std::string_view(held_).substr(held_.size() - len) ==
          std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  if (hold_partial_utf8_) hold = std::max(hold, IncompleteUtf8Tail(held_));
  result.emit = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return result;
}

std::string StopMatcher::Flush() {
  if (stopped_) return {};
  return std::exchange(held_, {});
}

}  // namespace weft::sampling
