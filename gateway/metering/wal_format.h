// SPDX-License-Identifier: Apache-2.0
// The WAL's on-disk format: a segment file is a run of frames
//   [u32 le payload length][u32 le CRC32C(length bytes + payload)][payload]
// where the payload is a UsageRecord in a compact versioned binary encoding. This file holds the
// pure parts (encode, decode, scan, the recovery decision); Wal does the I/O. Any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/metering/usage_record.h"

namespace weft::gateway {

inline constexpr uint64_t kWalFrameHeaderBytes = 8;
inline constexpr uint64_t kWalMaxPayloadBytes = 64 * 1024;  // a record larger than this is refused
inline constexpr uint64_t kWalMaxFrameBytes = kWalFrameHeaderBytes + kWalMaxPayloadBytes;

// Payload encoding (version byte 1, then varint-length strings, zigzag varints, le doubles).
std::string EncodeUsageRecord(const UsageRecord& record);
absl::StatusOr<UsageRecord> DecodeUsageRecord(std::string_view payload);

// Appends one frame holding `record` to `out`. InvalidArgument if the payload is too large.
absl::Status AppendWalFrame(const UsageRecord& record, std::string& out);

// Result of scanning a segment's bytes from offset 0.
struct SegmentScan {
  struct Frame {
    uint64_t offset = 0;  // where the frame starts
    uint64_t end = 0;     // one past its last byte
    UsageRecord record;
  };
  enum class Stop {
    kEnd,         // the bytes are whole valid frames
    kIncomplete,  // the bytes end inside a frame (a torn write, or a read that cut a frame)
    kCorrupt,     // a frame fails its checksum, has an impossible length or an undecodable payload
  };
  std::vector<Frame> frames;  // the valid prefix, in order
  uint64_t valid_end = 0;     // end of the valid prefix
  Stop stop = Stop::kEnd;
  std::string problem;  // why the scan stopped, when it is not kEnd
  // When stop != kEnd: the first offset after valid_end where a whole valid frame starts (the
  // data resynchronises), if any.
  std::optional<uint64_t> next_valid_offset;
};

// Scans `bytes` as a segment. Never fails; what it found is in the result. `max_frames` stops the
// scan early (stop = kEnd, valid_end = end of the last frame returned).
SegmentScan ScanSegment(std::string_view bytes, size_t max_frames = SIZE_MAX);

// A segment is extended with zeros ahead of its data (preallocation: an fdatasync after an
// overwrite then flushes data only, not the file size). The end of `bytes` without its trailing
// run of zero bytes, never below `valid_end` (the end of the scanned valid frames): equal to
// `valid_end` when everything after the valid frames is preallocated space.
uint64_t EndWithoutZeroTail(std::string_view bytes, uint64_t valid_end);

// What recovery does with one segment after scanning it.
struct SegmentRecovery {
  enum class Action {
    kKeep,      // intact
    kTruncate,  // a torn or corrupt tail: cut the file at truncate_to (log a warning)
    kCorrupt,   // damage before durable data: report it, do not guess
  };
  Action action = Action::kKeep;
  uint64_t truncate_to = 0;
  std::string message;  // for the warning or the error
};

// The recovery rule. Only the last segment can hold unacknowledged bytes: sealed segments were
// fully fsynced before the next one was created, so any damage there is corruption. In the last
// segment only the final group-commit batch can be torn; a batch is at most `tail_window` bytes,
// so damage followed by valid frames further than that from the damage is corruption, anything
// else is a torn tail (possibly written out of order by the page cache) and is truncated.
SegmentRecovery PlanSegmentRecovery(const SegmentScan& scan, uint64_t size, bool last_segment,
                                    uint64_t tail_window);

}  // namespace weft::gateway
