// SPDX-License-Identifier: Apache-2.0
// StopMatcher: finds stop strings in a stream of decoded text pieces and decides what may be sent
// to the client now. Text that could still be the start of a stop string (or of an unfinished
// UTF-8 character) is held back; a found stop string and everything after it are never emitted.
// One per request; not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace weft::sampling {

class StopMatcher {
 public:
  struct Result {
    std::string emit;      // text safe to send now (before the stop string, if stopped)
    bool stopped = false;  // a stop string was found; generation should finish with "stop"
    int stop_index = -1;   // which entry of `stops` matched (the earliest in the text)
  };

  // Empty stop strings are ignored. With `hold_partial_utf8`, an incomplete UTF-8 sequence at the
  // end of the text is held until its last byte arrives (byte-fallback tokens split characters).
  explicit StopMatcher(std::vector<std::string> stops, bool hold_partial_utf8 = true);

  // Appends one decoded piece. After a stop, further pushes return an empty, stopped result.
  Result Push(std::string_view piece);
  // End of generation without a stop: returns everything still held back.
  std::string Flush();

  // Text received but not yet emitted (a possible stop-string prefix or partial character).
  std::string_view held() const { return held_; }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  bool hold_partial_utf8_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace weft::sampling
