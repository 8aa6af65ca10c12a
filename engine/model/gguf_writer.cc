// SPDX-License-Identifier: Apache-2.0
#include "engine/model/gguf_writer.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "base/check.h"
#include "base/status.h"
#include "engine/model/cat.h"

namespace weft::model {
namespace {

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void PutString(std::string& out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out.append(s);
}

// The value's bytes without its leading type (arrays start with their element type).
void PutValueBody(std::string& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::kUint8:
    case GgufType::kBool:
      Put<uint8_t>(out, v.u);
      break;
    case GgufType::kUint16:
      Put<uint16_t>(out, v.u);
      break;
    case GgufType::kUint32:
      Put<uint32_t>(out, v.u);
      break;
    case GgufType::kUint64:
      Put<uint64_t>(out, v.u);
      break;
    case GgufType::kInt8:
      Put<int8_t>(out, v.i);
      break;
    case GgufType::kInt16:
      Put<int16_t>(out, v.i);
      break;
    case GgufType::kInt32:
      Put<int32_t>(out, v.i);
      break;
    case GgufType::kInt64:
      Put<int64_t>(out, v.i);
      break;
    case GgufType::kFloat32:
      Put<float>(out, static_cast<float>(v.f));
      break;
    case GgufType::kFloat64:
      Put<double>(out, v.f);
      break;
    case GgufType::kString:
      PutString(out, v.str);
      break;
    case GgufType::kArray:
      Put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      Put<uint64_t>(out, v.n);
      if (v.elem_type == GgufType::kString) {
        for (std::string_view s : v.strs) PutString(out, s);
      } else if (v.elem_type == GgufType::kArray) {
        for (const GgufValue& e : v.nested) PutValueBody(out, e);
      } else if (v.n != 0) {
        out.append(reinterpret_cast<const char*>(v.raw), v.n * GgufTypeSize(v.elem_type));
      }
      break;
  }
}

std::string Typed(GgufType t, std::string body) {
  std::string out;
  Put<uint32_t>(out, static_cast<uint32_t>(t));
  return out + body;
}

template <typename T>
std::string Scalar(GgufType t, T v) {
  std::string body;
  Put<T>(body, v);
  return Typed(t, std::move(body));
}

}  // namespace

void GgufWriter::SetSerialized(std::string_view key, std::string bytes) {
  for (auto& [k, b] : kv_) {
    if (k == key) {
      b = std::move(bytes);
      return;
    }
  }
  kv_.emplace_back(std::string(key), std::move(bytes));
}

void GgufWriter::Erase(std::string_view key) {
  std::erase_if(kv_, [&](const auto& kv) { return kv.first == key; });
}

void GgufWriter::SetU8(std::string_view k, uint8_t v) {
  SetSerialized(k, Scalar(GgufType::kUint8, v));
}
void GgufWriter::SetI8(std::string_view k, int8_t v) {
  SetSerialized(k, Scalar(GgufType::kInt8, v));
}
void GgufWriter::SetU16(std::string_view k, uint16_t v) {
  SetSerialized(k, Scalar(GgufType::kUint16, v));
}
void GgufWriter::SetI16(std::string_view k, int16_t v) {
  SetSerialized(k, Scalar(GgufType::kInt16, v));
}
void GgufWriter::SetU32(std::string_view k, uint32_t v) {
  SetSerialized(k, Scalar(GgufType::kUint32, v));
}
void GgufWriter::SetI32(std::string_view k, int32_t v) {
  SetSerialized(k, Scalar(GgufType::kInt32, v));
}
void GgufWriter::SetU64(std::string_view k, uint64_t v) {
  SetSerialized(k, Scalar(GgufType::kUint64, v));
}
void GgufWriter::SetI64(std::string_view k, int64_t v) {
  SetSerialized(k, Scalar(GgufType::kInt64, v));
}
void GgufWriter::SetF32(std::string_view k, float v) {
  SetSerialized(k, Scalar(GgufType::kFloat32, v));
}
void GgufWriter::SetF64(std::string_view k, double v) {
  SetSerialized(k, Scalar(GgufType::kFloat64, v));
}
void GgufWriter::SetBool(std::string_view k, bool v) {
  SetSerialized(k, Scalar<uint8_t>(GgufType::kBool, v ? 1 : 0));
}
void GgufWriter::SetString(std::string_view k, std::string_view v) {
  std::string body;
  PutString(body, v);
  SetSerialized(k, Typed(GgufType::kString, std::move(body)));
}
void GgufWriter::SetStringArray(std::string_view k, std::span<const std::string> v) {
  std::string body;
  Put<uint32_t>(body, static_cast<uint32_t>(GgufType::kString));
  Put<uint64_t>(body, v.size());
  for (const std::string& s : v) PutString(body, s);
  SetSerialized(k, Typed(GgufType::kArray, std::move(body)));
}
void GgufWriter::SetArray(std::string_view k, GgufType elem, const void* raw, uint64_t n) {
  WEFT_CHECK(GgufTypeSize(elem) != 0);
  std::string body;
  Put<uint32_t>(body, static_cast<uint32_t>(elem));
  Put<uint64_t>(body, n);
  if (n != 0) body.append(static_cast<const char*>(raw), n * GgufTypeSize(elem));
  SetSerialized(k, Typed(GgufType::kArray, std::move(body)));
}
void GgufWriter::SetValue(std::string_view k, const GgufValue& v) {
  std::string body;
  PutValueBody(body, v);
  SetSerialized(k, Typed(v.type, std::move(body)));
}
void GgufWriter::SetAlignment(uint32_t alignment) {
  WEFT_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0);
  alignment_ = alignment;
  SetU32("general.alignment", alignment);
}

absl::Status GgufWriter::AddTensor(std::string_view name, kernels::DType type,
                                   std::vector<int64_t> ne, FillRows fill) {
  if (ne.empty() || ne.size() > 4) {
    return absl::InvalidArgumentError(
        Cat("GgufWriter: tensor '", name, "' needs 1 to 4 dimensions, got ", ne.size()));
  }
  const kernels::DTypeTraits& tr = kernels::Traits(type);
  if (ne[0] % tr.block_size != 0) {
    return absl::InvalidArgumentError(Cat("GgufWriter: tensor '", name, "' row length ", ne[0],
                                          " is not a multiple of ", tr.block_size));
  }
  PendingTensor t;
  t.name = std::string(name);
  t.type = type;
  t.row_bytes = kernels::RowBytes(type, ne[0]);
  t.n_rows = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 0) return absl::InvalidArgumentError("GgufWriter: negative dimension");
    if (d > 0) t.n_rows *= ne[d];
  }
  t.nbytes = static_cast<uint64_t>(t.row_bytes) * t.n_rows;
  t.ne = std::move(ne);
  t.fill = std::move(fill);
  tensors_.push_back(std::move(t));
  return absl::OkStatus();
}

absl::Status GgufWriter::AddTensor(std::string_view name, kernels::DType type,
                                   std::vector<int64_t> ne, std::span<const uint8_t> data) {
  auto copy = std::make_shared<std::vector<uint8_t>>(data.begin(), data.end());
  const uint64_t size = data.size();
  WEFT_RETURN_IF_ERROR(AddTensor(
      name, type, std::move(ne), [copy](int64_t first_row, int64_t n_rows, std::span<uint8_t> out) {
        const uint64_t row_bytes = n_rows == 0 ? 0 : out.size() / n_rows;
        std::memcpy(out.data(), copy->data() + first_row * row_bytes, out.size());
        return absl::OkStatus();
      }));
  if (tensors_.back().nbytes != size) {
    uint64_t want = tensors_.back().nbytes;
    tensors_.pop_back();
    return absl::InvalidArgumentError(
        Cat("GgufWriter: tensor '", name, "' needs ", want, " bytes, got ", size));
  }
  return absl::OkStatus();
}

std::string GgufWriter::Header() const {
  std::string h;
  Put<uint32_t>(h, 0x46554747);
  Put<uint32_t>(h, version_);
  Put<uint64_t>(h, tensors_.size());
  Put<uint64_t>(h, kv_.size());
  for (const auto& [k, b] : kv_) {
    PutString(h, k);
    h += b;
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    PutString(h, t.name);
    Put<uint32_t>(h, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) Put<uint64_t>(h, static_cast<uint64_t>(n));
    Put<uint32_t>(h, static_cast<uint32_t>(t.type));
    Put<uint64_t>(h, offset);
    offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  h.resize((h.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  return h;
}

absl::Status GgufWriter::WriteTo(
    const std::function<absl::Status(std::span<const uint8_t>)>& sink) const {
  std::string header = Header();
  WEFT_RETURN_IF_ERROR(sink({reinterpret_cast<const uint8_t*>(header.data()), header.size()}));
  constexpr int64_t kChunkBytes = 16 << 20;
  std::vector<uint8_t> buf;
  for (const PendingTensor& t : tensors_) {
    const int64_t rows_per_chunk =
        std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(1, t.row_bytes));
    for (int64_t r = 0; r < t.n_rows; r += rows_per_chunk) {
      const int64_t n = std::min(rows_per_chunk, t.n_rows - r);
      buf.assign(static_cast<size_t>(n * t.row_bytes), 0);
      WEFT_RETURN_IF_ERROR(t.fill(r, n, buf));
      WEFT_RETURN_IF_ERROR(sink(buf));
    }
    const uint64_t pad = (alignment_ - t.nbytes % alignment_) % alignment_;
    buf.assign(pad, 0);
    if (pad != 0) WEFT_RETURN_IF_ERROR(sink(buf));
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::WriteFile(const std::string& path) const {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return absl::PermissionDeniedError(Cat("cannot create ", path));
  WEFT_RETURN_IF_ERROR(WriteTo([&](std::span<const uint8_t> b) -> absl::Status {
    if (std::fwrite(b.data(), 1, b.size(), f.get()) != b.size()) {
      return absl::DataLossError(Cat("error writing ", path));
    }
    return absl::OkStatus();
  }));
  if (std::fclose(f.release()) != 0) return absl::DataLossError(Cat("error closing ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> GgufWriter::WriteToBytes() const {
  std::vector<uint8_t> out;
  WEFT_RETURN_IF_ERROR(WriteTo([&](std::span<const uint8_t> b) {
    out.insert(out.end(), b.begin(), b.end());
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace weft::model
