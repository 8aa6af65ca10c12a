// SPDX-License-Identifier: Apache-2.0
#include "gateway/metering/wal_format.h"

#include <cmath>
#include <limits>

#include "gateway/metering/crc32c.h"
#include "gateway/metering/metering_testing.h"
#include "gtest/gtest.h"

namespace weft::gateway {
namespace {

using testing::TestRecord;

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);            // the standard check value
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  // Incremental equals one-shot, across the 8-byte steps of the hardware path.
  const std::string text = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    EXPECT_EQ(Crc32c(text.substr(cut), Crc32c(text.substr(0, cut))), Crc32c(text)) << cut;
  }
}

TEST(UsageRecordCodecTest, RoundTripsEveryField) {
  UsageRecord extreme;
  extreme.request_id = "chatcmpl-\xe2\x9c\x93-\0id";
  extreme.tenant = std::string(1000, 't');
  extreme.prompt_tokens = std::numeric_limits<int64_t>::max();
  extreme.cached_tokens = std::numeric_limits<int64_t>::min();
  extreme.completion_tokens = -1;
  extreme.status = -7;
  extreme.ttft_ms = std::numeric_limits<double>::infinity();
  extreme.duration_ms = -0.0;
  extreme.time_unix_ms = -1;
  for (const UsageRecord& r : {TestRecord(0), TestRecord(123456), UsageRecord{}, extreme}) {
    auto back = DecodeUsageRecord(EncodeUsageRecord(r));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, r);
  }
}

TEST(UsageRecordCodecTest, RejectsDamagedPayloads) {
  const std::string payload = EncodeUsageRecord(TestRecord(42));
  for (size_t n = 0; n < payload.size(); ++n) {
    EXPECT_FALSE(DecodeUsageRecord(payload.substr(0, n)).ok()) << "truncated to " << n;
  }
  EXPECT_FALSE(DecodeUsageRecord(payload + "x").ok());
  std::string v2 = payload;
  v2[0] = 2;
  EXPECT_EQ(DecodeUsageRecord(v2).status().code(), absl::StatusCode::kDataLoss);
}

TEST(WalFrameTest, RefusesOversizedRecords) {
  UsageRecord r = TestRecord(1);
  r.tenant = std::string(kWalMaxPayloadBytes, 'x');
  std::string out;
  EXPECT_EQ(AppendWalFrame(r, out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(out.empty());
}

std::string Frames(int n, std::vector<uint64_t>* offsets = nullptr) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (offsets) offsets->push_back(out.size());
    EXPECT_TRUE(AppendWalFrame(TestRecord(i), out).ok());
  }
  return out;
}

TEST(ScanSegmentTest, ReadsWholeFrames) {
  std::vector<uint64_t> offsets;
  const std::string bytes = Frames(3, &offsets);
  const SegmentScan scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, SegmentScan::Stop::kEnd);
  ASSERT_EQ(scan.frames.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(scan.frames[i].offset, offsets[i]);
    EXPECT_EQ(scan.frames[i].record, TestRecord(i));
  }
  EXPECT_EQ(scan.valid_end, bytes.size());
  EXPECT_EQ(ScanSegment(bytes, 2).frames.size(), 2u);
  EXPECT_EQ(ScanSegment(bytes, 2).valid_end, offsets[2]);
  EXPECT_EQ(ScanSegment("").stop, SegmentScan::Stop::kEnd);
}

TEST(ScanSegmentTest, EveryCutIsIncompleteWithTheWholeFramesBeforeIt) {
  std::vector<uint64_t> offsets;
  const std::string bytes = Frames(3, &offsets);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    const SegmentScan scan = ScanSegment(std::string_view(bytes).substr(0, cut));
    const size_t whole = cut < offsets[1] ? 0 : cut < offsets[2] ? 1 : 2;
    const bool at_boundary = cut == offsets[0] || cut == offsets[1] || cut == offsets[2];
    EXPECT_EQ(scan.frames.size(), whole) << cut;
    EXPECT_EQ(scan.valid_end, offsets[whole]) << cut;
    EXPECT_EQ(scan.stop, at_boundary ? SegmentScan::Stop::kEnd : SegmentScan::Stop::kIncomplete)
        << cut;
    EXPECT_FALSE(scan.next_valid_offset.has_value()) << cut;
  }
}

TEST(ScanSegmentTest, CorruptionResynchronisesAtTheNextFrame) {
  std::vector<uint64_t> offsets;
  std::string bytes = Frames(3, &offsets);
  bytes[offsets[1] + 20] ^= 0x40;  // a payload byte of frame 1
  SegmentScan scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, SegmentScan::Stop::kCorrupt);
  EXPECT_EQ(scan.problem, "checksum mismatch");
  EXPECT_EQ(scan.frames.size(), 1u);
  EXPECT_EQ(scan.valid_end, offsets[1]);
  EXPECT_EQ(scan.next_valid_offset, offsets[2]);

  bytes = Frames(3, &offsets);
  bytes[offsets[1] + 2] = 0x7f;  // length over the 64 KiB limit: impossible
  scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, SegmentScan::Stop::kCorrupt);
  EXPECT_EQ(scan.next_valid_offset, offsets[2]);

  bytes = Frames(3, &offsets);
  bytes[offsets[1] + 1] = 0x7f;  // a length past the end looks like a cut frame...
  scan = ScanSegment(bytes);
  EXPECT_EQ(scan.stop, SegmentScan::Stop::kIncomplete);
  EXPECT_EQ(scan.next_valid_offset, offsets[2]);  // ...but the data resynchronises after it
}

SegmentScan Scanned(SegmentScan::Stop stop, uint64_t valid_end, std::optional<uint64_t> next) {
  SegmentScan s;
  s.stop = stop;
  s.valid_end = valid_end;
  s.next_valid_offset = next;
  s.problem = "test";
  return s;
}

TEST(PlanSegmentRecoveryTest, TheRule) {
  using A = SegmentRecovery::Action;
  using S = SegmentScan::Stop;
  const uint64_t window = 1000;
  EXPECT_EQ(PlanSegmentRecovery(Scanned(S::kEnd, 500, {}), 500, true, window).action, A::kKeep);
  // Torn tails of the last segment are cut where the valid prefix ends.
  auto plan = PlanSegmentRecovery(Scanned(S::kIncomplete, 500, {}), 520, true, window);
  EXPECT_EQ(plan.action, A::kTruncate);
  EXPECT_EQ(plan.truncate_to, 500u);
  EXPECT_EQ(PlanSegmentRecovery(Scanned(S::kCorrupt, 500, {}), 5000, true, window).action,
            A::kTruncate);  // nothing valid after: nothing to save
  // Out-of-order page writes inside the last batch: valid frames after the damage, inside the
  // window, were never acknowledged.
  EXPECT_EQ(PlanSegmentRecovery(Scanned(S::kCorrupt, 500, 600), 1400, true, window).action,
            A::kTruncate);
  // Valid data further than one batch beyond the damage: the damage was durable once.
  plan = PlanSegmentRecovery(Scanned(S::kCorrupt, 500, 600), 1600, true, window);
  EXPECT_EQ(plan.action, A::kCorrupt);
  EXPECT_NE(plan.message.find("offset 500"), std::string::npos) << plan.message;
  // A sealed segment was whole before the next was created: any damage is corruption.
  EXPECT_EQ(PlanSegmentRecovery(Scanned(S::kIncomplete, 500, {}), 520, false, window).action,
            A::kCorrupt);
}

TEST(WalFormatTest, EndWithoutZeroTail) {
  std::string bytes;
  ASSERT_TRUE(AppendWalFrame(TestRecord(1), bytes).ok());
  const uint64_t end = bytes.size();
  EXPECT_EQ(EndWithoutZeroTail(bytes, end), end);
  bytes.resize(end + 4096, '\0');
  EXPECT_EQ(EndWithoutZeroTail(bytes, end), end);
  // A torn frame after the data: its non-zero bytes count, the zeros after them do not.
  bytes[end + 1] = 7;
  EXPECT_EQ(EndWithoutZeroTail(bytes, end), end + 2);
  // Never below the valid frames, even when they end in zero bytes.
  EXPECT_EQ(EndWithoutZeroTail(std::string(16, '\0'), 10), 10u);
  EXPECT_EQ(EndWithoutZeroTail(std::string(8, '\0'), 10), 8u);
}

}  // namespace
}  // namespace weft::gateway
