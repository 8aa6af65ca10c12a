// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: bytes as a WAL segment file, through the recovery reader (ScanSegment) and
// the recovery decision. Must never crash, hang or read out of bounds; what it reports must be
// consistent: frames are contiguous from 0, re-encode to the same bytes, a torn tail is cut
// exactly at the valid prefix, and the resync offset holds a whole valid frame.
// First byte even: the rest is the segment as is. Odd: the rest describes valid records that
// are framed and then damaged (cut, bit flip, inserted bytes), since random bytes almost never
// pass a CRC; this reaches the resynchronisation and recovery paths without a seed corpus.
// wal_format.cc and crc32c.cc are compiled into this target so libFuzzer sees their coverage.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/metering/wal_format.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// Reads fuzz input as fields; runs dry as zeros.
class Input {
 public:
  explicit Input(std::string_view s) : s_(s) {}
  uint8_t Byte() {
    if (s_.empty()) return 0;
    const auto b = static_cast<uint8_t>(s_.front());
    s_.remove_prefix(1);
    return b;
  }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
    return v;
  }
  std::string String() {
    const size_t n = std::min<size_t>(Byte() % 48, s_.size());
    std::string out(s_.substr(0, n));
    s_.remove_prefix(n);
    return out;
  }

 private:
  std::string_view s_;
};

std::string DamagedSegment(Input in) {
  std::string seg;
  const int n = in.Byte() % 8;
  for (int i = 0; i < n; ++i) {
    weft::gateway::UsageRecord r;
    r.request_id = in.String();
    r.tenant = in.String();
    r.deployment = in.String();
    r.prompt_tokens = static_cast<int64_t>(in.U64());
    r.completion_tokens = in.Byte();
    r.status = in.Byte() + 100;
    r.ttft_ms = static_cast<double>(in.Byte()) / 3;
    r.time_unix_ms = static_cast<int64_t>(in.U64());
    if (!weft::gateway::AppendWalFrame(r, seg).ok()) std::abort();
  }
  const uint64_t at = seg.empty() ? 0 : in.U64() % seg.size();
  switch (in.Byte() % 4) {
    case 0:
      break;
    case 1:
      seg.resize(at);
      break;
    case 2:
      if (!seg.empty()) seg[at] = static_cast<char>(seg[at] ^ (in.Byte() | 1));
      break;
    case 3:
      seg.insert(at, in.String());
      break;
  }
  return seg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace weft::gateway;
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string owned = (data[0] & 1) ? DamagedSegment(Input(input)) : std::string(input);
  const std::string_view bytes = owned;
  size = bytes.size();
  const SegmentScan scan = ScanSegment(bytes);

  uint64_t at = 0;
  for (const auto& frame : scan.frames) {
    Check(frame.offset == at && frame.end > frame.offset && frame.end <= size);
    std::string again;
    Check(AppendWalFrame(frame.record, again).ok());
    Check(again == bytes.substr(frame.offset, frame.end - frame.offset));
    at = frame.end;
  }
  Check(scan.valid_end == at);
  Check((scan.stop == SegmentScan::Stop::kEnd) == (scan.valid_end == size));
  if (scan.next_valid_offset) {
    Check(*scan.next_valid_offset > scan.valid_end && *scan.next_valid_offset < size);
    Check(ScanSegment(bytes.substr(*scan.next_valid_offset), 1).frames.size() == 1);
  }

  // Preallocated space: the end without the zero tail never cuts the valid frames, and only
  // zeros follow it; with it and a zero run appended, the same frames are found.
  const uint64_t end = EndWithoutZeroTail(bytes, scan.valid_end);
  Check(end >= scan.valid_end && end <= size);
  Check(bytes.substr(end).find_first_not_of('\0') == std::string_view::npos);
  if (scan.stop == SegmentScan::Stop::kEnd) {
    const std::string padded = std::string(bytes) + std::string(64, '\0');
    const SegmentScan with_tail = ScanSegment(padded);
    Check(with_tail.frames.size() == scan.frames.size() && with_tail.valid_end == scan.valid_end);
    Check(EndWithoutZeroTail(padded, with_tail.valid_end) == with_tail.valid_end);
  }

  for (bool last : {false, true}) {
    for (uint64_t window : {uint64_t{0}, kWalMaxFrameBytes, uint64_t{1} << 20}) {
      const SegmentRecovery plan = PlanSegmentRecovery(scan, size, last, window);
      if (scan.stop == SegmentScan::Stop::kEnd)
        Check(plan.action == SegmentRecovery::Action::kKeep);
      if (plan.action == SegmentRecovery::Action::kTruncate) {
        Check(last && plan.truncate_to == scan.valid_end);
        // What survives truncation scans clean.
        const SegmentScan kept = ScanSegment(bytes.substr(0, plan.truncate_to));
        Check(kept.stop == SegmentScan::Stop::kEnd && kept.frames.size() == scan.frames.size());
      }
      if (!last) Check(plan.action != SegmentRecovery::Action::kTruncate);
    }
  }
  return 0;
}
