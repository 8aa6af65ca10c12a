// SPDX-License-Identifier: Apache-2.0
// SseSplitter: incremental parser of a text/event-stream body as upstream engines send it. Bytes
// arrive in arbitrary pieces; each complete event (terminated by a blank line) comes out once with
// its `data:` lines joined by "\n". Comments (":...") and other fields are ignored. A pending,
// incomplete event is what a broken stream loses. Bounded: an event over `max_event_bytes` is an
// error (the stream is treated as broken). Not thread-safe; one per upstream exchange.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace weft::gateway {

class SseSplitter {
 public:
  explicit SseSplitter(size_t max_event_bytes = 4 << 20) : max_event_bytes_(max_event_bytes) {}

  // Appends `bytes`; appends the data of each completed event to `events`. False once the buffered
  // incomplete event exceeds the limit (sticky).
  bool Feed(std::string_view bytes, std::vector<std::string>* events);

  // Bytes of the incomplete event buffered so far.
  size_t pending() const { return buf_.size(); }
  void Reset() { buf_.clear(); }

 private:
  void ParseEvent(std::string_view block, std::vector<std::string>* events) const;

  size_t max_event_bytes_;
  std::string buf_;
  bool failed_ = false;
};

}  // namespace weft::gateway
