// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/wal_format.h"

#include <algorithm>

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/metering/crc32c.h"

namespace weft::gateway {
namespace {

constexpr uint8_t kPayloadVersion = 1;

void PutU32(uint32_t v, std::string& out) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

void PutVarint(uint64_t v, std::string& out) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void PutSigned(int64_t v, std::string& out) {
  PutVarint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63), out);  // zigzag
}
void PutString(const std::string& s, std::string& out) {
  PutVarint(s.size(), out);
  out += s;
}
void PutDouble(double d, std::string& out) {
  const auto bits = std::bit_cast<uint64_t>(d);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

// Reads from a payload; every getter fails (returns false) on truncated or malformed input.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  bool Varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (s_.empty()) return false;
      const auto b = static_cast<unsigned char>(s_.front());
      s_.remove_prefix(1);
      if (shift == 63 && b > 1) return false;  // more than 64 bits
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool Signed(int64_t& v) {
    uint64_t u;
    if (!Varint(u)) return false;
    v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool Int(int& v) {
    int64_t w;
    if (!Signed(w) || w < INT32_MIN || w > INT32_MAX) return false;
    v = static_cast<int>(w);
    return true;
  }
  bool String(std::string& v) {
    uint64_t n;
    if (!Varint(n) || n > s_.size()) return false;
    v.assign(s_.data(), n);
    s_.remove_prefix(n);
    return true;
  }
  bool Double(double& d) {
    if (s_.size() < 8) return false;
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i)
      bits |= static_cast<uint64_t>(static_cast<unsigned char>(s_[i])) << (8 * i);
    s_.remove_prefix(8);
    d = std::bit_cast<double>(bits);
    return true;
  }
  bool Byte(uint8_t& b) {
    if (s_.empty()) return false;
    b = static_cast<uint8_t>(s_.front());
    s_.remove_prefix(1);
    return true;
  }
  bool AtEnd() const { return s_.empty(); }

 private:
  std::string_view s_;
};

// The frame at `offset`, if a whole valid one starts there.
enum class FrameCheck { kValid, kIncomplete, kCorrupt };
FrameCheck CheckFrame(std::string_view bytes, uint64_t offset, SegmentScan::Frame* frame,
                      std::string* problem) {
  const uint64_t left = bytes.size() - offset;
  if (left < kWalFrameHeaderBytes) {
    if (problem) *problem = absl::StrCat("frame header cut after ", left, " of 8 bytes");
    return FrameCheck::kIncomplete;
  }
  const char* p = bytes.data() + offset;
  const uint32_t len = GetU32(p);
  if (len == 0 || len > kWalMaxPayloadBytes) {
    if (problem) *problem = absl::StrCat("impossible payload length ", len);
    return FrameCheck::kCorrupt;
  }
  if (left < kWalFrameHeaderBytes + len) {
    if (problem) {
      *problem =
          absl::StrCat("frame of ", len, " payload bytes cut after ", left - kWalFrameHeaderBytes);
    }
    return FrameCheck::kIncomplete;
  }
  const uint32_t crc =
      Crc32c(std::string_view(p + kWalFrameHeaderBytes, len), Crc32c(std::string_view(p, 4)));
  if (crc != GetU32(p + 4)) {
    if (problem) *problem = "checksum mismatch";
    return FrameCheck::kCorrupt;
  }
  auto record = DecodeUsageRecord(std::string_view(p + kWalFrameHeaderBytes, len));
  if (!record.ok()) {
    if (problem) *problem = std::string(record.status().message());
    return FrameCheck::kCorrupt;
  }
  if (frame) *frame = {offset, offset + kWalFrameHeaderBytes + len, *std::move(record)};
  return FrameCheck::kValid;
}

}  // namespace

std::string EncodeUsageRecord(const UsageRecord& r) {
  std::string out;
  out.reserve(64 + r.request_id.size() + r.tenant.size() + r.key_id.size() + r.deployment.size() +
              r.adapter.size() + r.replica.size() + r.provider.size());
  out.push_back(static_cast<char>(kPayloadVersion));
  for (const std::string* s :
       {&r.request_id, &r.tenant, &r.key_id, &r.deployment, &r.adapter, &r.replica, &r.provider}) {
    PutString(*s, out);
  }
  PutSigned(r.prompt_tokens, out);
  PutSigned(r.cached_tokens, out);
  PutSigned(r.completion_tokens, out);
  PutSigned(r.status, out);
  PutDouble(r.ttft_ms, out);
  PutDouble(r.duration_ms, out);
  PutSigned(r.time_unix_ms, out);
  return out;
}

absl::StatusOr<UsageRecord> DecodeUsageRecord(std::string_view payload) {
  Reader in(payload);
  uint8_t version = 0;
  if (!in.Byte(version)) return absl::DataLossError("empty usage record payload");
  if (version != kPayloadVersion) {
    return absl::DataLossError(absl::StrCat("unknown usage record version ", version));
  }
  UsageRecord r;
  bool ok = true;
  for (std::string* s :
       {&r.request_id, &r.tenant, &r.key_id, &r.deployment, &r.adapter, &r.replica, &r.provider}) {
    ok = ok && in.String(*s);
  }
  ok = ok && in.Signed(r.prompt_tokens) && in.Signed(r.cached_tokens) &&
       in.Signed(r.completion_tokens) && in.Int(r.status) && in.Double(r.ttft_ms) &&
       in.Double(r.duration_ms) && in.Signed(r.time_unix_ms);
  if (!ok) return absl::DataLossError("truncated or malformed usage record payload");
  if (!in.AtEnd()) return absl::DataLossError("trailing bytes after usage record payload");
  return r;
}

absl::Status AppendWalFrame(const UsageRecord& record, std::string& out) {
  const std::string payload = EncodeUsageRecord(record);
  if (payload.size() > kWalMaxPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat("usage record of ", payload.size(),
                                                   " bytes exceeds the WAL limit of ",
                                                   kWalMaxPayloadBytes));
  }
  const size_t start = out.size();
  PutU32(static_cast<uint32_t>(payload.size()), out);
  const uint32_t crc = Crc32c(payload, Crc32c(std::string_view(out).substr(start, 4)));
  PutU32(crc, out);
  out += payload;
  return absl::OkStatus();
}

SegmentScan ScanSegment(std::string_view bytes, size_t max_frames) {
  SegmentScan scan;
  uint64_t offset = 0;
  while (offset < bytes.size() && scan.frames.size() < max_frames) {
    SegmentScan::Frame frame;
    const FrameCheck check = CheckFrame(bytes, offset, &frame, &scan.problem);
    if (check != FrameCheck::kValid) {
      scan.stop = check == FrameCheck::kIncomplete ? SegmentScan::Stop::kIncomplete
                                                   : SegmentScan::Stop::kCorrupt;
      break;
    }
    offset = frame.end;
    scan.frames.push_back(std::move(frame));
  }
  scan.valid_end = offset;
  if (scan.stop != SegmentScan::Stop::kEnd) {
    // Resynchronise: a CRC32C over the length and payload makes a false match about 2^-32 per
    // candidate offset, and the 64 KiB length cap skips most offsets without hashing.
    for (uint64_t at = offset + 1; at + kWalFrameHeaderBytes < bytes.size(); ++at) {
      if (CheckFrame(bytes, at, nullptr, nullptr) == FrameCheck::kValid) {
        scan.next_valid_offset = at;
        break;
      }
    }
  }
  return scan;
}

uint64_t EndWithoutZeroTail(std::string_view bytes, uint64_t valid_end) {
  uint64_t end = bytes.size();
  while (end > valid_end && bytes[end - 1] == '\0') --end;
  return std::max(end, std::min<uint64_t>(valid_end, bytes.size()));
}

SegmentRecovery PlanSegmentRecovery(const SegmentScan& scan, uint64_t size, bool last_segment,
                                    uint64_t tail_window) {
  SegmentRecovery plan;
  if (scan.stop == SegmentScan::Stop::kEnd) return plan;
  const uint64_t damaged = size - scan.valid_end;
  if (!last_segment) {
    plan.action = SegmentRecovery::Action::kCorrupt;
    plan.message = absl::StrCat(
        "corruption at offset ", scan.valid_end, " of a sealed segment (", scan.problem, "); ",
        damaged, " bytes after it",
        scan.next_valid_offset
            ? absl::StrCat(", valid records resume at offset ", *scan.next_valid_offset)
            : std::string(", no valid record after it"));
    return plan;
  }
  if (scan.next_valid_offset.has_value() && damaged > tail_window) {
    plan.action = SegmentRecovery::Action::kCorrupt;
    plan.message =
        absl::StrCat("corruption at offset ", scan.valid_end, " (", scan.problem,
                     ") with valid records after it at offset ", *scan.next_valid_offset, ", ",
                     damaged - tail_window, " bytes beyond the last write batch: not a torn write");
    return plan;
  }
  plan.action = SegmentRecovery::Action::kTruncate;
  plan.truncate_to = scan.valid_end;
  plan.message = absl::StrCat(
      "torn tail at offset ", scan.valid_end, " (", scan.problem, "): truncating ", damaged,
      " bytes",
      scan.next_valid_offset ? " (valid-looking frames inside were never acknowledged)" : "");
  return plan;
}

}  // namespace weft::gateway
