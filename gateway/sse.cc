// SPDX-License-Identifier: Apache-2.0
#include "gateway/sse.h"

namespace weft::gateway {

bool SseSplitter::Feed(std::string_view bytes, std::vector<std::string>* events) {
  if (failed_) return false;
  buf_.append(bytes);
  // Events end with a blank line: "\n\n" (or "\r\n\r\n"; a lone "\r" line ending is not used by
  // any engine and is not supported).
  size_t start = 0;
  while (true) {
    size_t end = buf_.find("\n\n", start);
    size_t crlf = buf_.find("\r\n\r\n", start);
    size_t sep_len = 2;
    if (crlf != std::string::npos && (end == std::string::npos || crlf < end)) {
      end = crlf;
      sep_len = 4;
    }
    if (end == std::string::npos) break;
    ParseEvent(std::string_view(buf_).substr(start, end - start), events);
    start = end + sep_len;
  }
  buf_.erase(0, start);
  if (buf_.size() > max_event_bytes_) {
    failed_ = true;
    buf_.clear();
    return false;
  }
  return true;
}

void SseSplitter::ParseEvent(std::string_view block, std::vector<std::string>* events) const {
  std::string data;
  bool has_data = false;
  while (!block.empty()) {
    size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block = nl == std::string_view::npos ? std::string_view() : block.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.substr(0, 5) != "data:") continue;  // comments, event:, id:, retry:
    line.remove_prefix(5);
    if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (has_data) data.push_back('\n');
    data.append(line);
    has_data = true;
  }
  if (has_data) events->push_back(std::move(data));
}

}  // namespace weft::gateway
