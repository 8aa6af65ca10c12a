// SPDX-License-Identifier: Apache-2.0
#include "engine/model/gguf.h"

#include <cstring>
#include <limits>
#include <utility>

#include "base/status.h"
#include "engine/model/cat.h"

namespace weft::model {
namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxArrayDepth = 8;            // nested arrays deeper than this are rejected
constexpr int kMaxDims = 4;

uint64_t FixedSize(uint32_t t) { return GgufTypeSize(static_cast<GgufType>(t)); }

bool KnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

template <typename T>
T LoadLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // Weft runs on little-endian hosts only.
  return v;
}

}  // namespace

uint64_t GgufTypeSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
  }
  return "unknown";
}

// A bounds-checked cursor over the file bytes. Every read that would pass the end is a DataLoss
// error naming the file, the offset and what was being read.
class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> bytes, const std::string& name) : b_(bytes), name_(name) {}

  absl::Status Run(GgufFile& f);

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(Cat("GGUF ", name_, ": ", what));
  }
  absl::Status Truncated(std::string_view what) const {
    return absl::DataLossError(Cat("GGUF ", name_, ": file truncated at byte ", pos_, " of ",
                                   b_.size(), " while reading ", what));
  }
  uint64_t Left() const { return b_.size() - pos_; }

  template <typename T>
  absl::Status Read(T& out, std::string_view what) {
    if (Left() < sizeof(T)) return Truncated(what);
    out = LoadLe<T>(b_.data() + pos_);
    pos_ += sizeof(T);
    return absl::OkStatus();
  }
  absl::Status ReadString(std::string_view& out, std::string_view what) {
    uint64_t len = 0;
    WEFT_RETURN_IF_ERROR(Read(len, what));
    if (len > Left()) {
      return absl::DataLossError(Cat("GGUF ", name_, ": ", what, " at byte ", pos_, " has length ",
                                     len, " but only ", Left(),
                                     " bytes remain (truncated or corrupt)"));
    }
    out = std::string_view(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return absl::OkStatus();
  }
  absl::Status ReadValue(uint32_t type, GgufValue& v, std::string_view key, int depth);

  std::span<const uint8_t> b_;
  const std::string& name_;
  uint64_t pos_ = 0;
};

absl::Status GgufParser::ReadValue(uint32_t type, GgufValue& v, std::string_view key, int depth) {
  if (!KnownType(type)) {
    return Error(Cat("key '", key, "' has unknown value type ", type));
  }
  v.type = static_cast<GgufType>(type);
  switch (v.type) {
    case GgufType::kUint8: {
      uint8_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.u = x;
      break;
    }
    case GgufType::kBool: {
      uint8_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      if (x > 1) return Error(Cat("key '", key, "' has bool value ", int{x}));
      v.u = x;
      break;
    }
    case GgufType::kUint16: {
      uint16_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.u = x;
      break;
    }
    case GgufType::kUint32: {
      uint32_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.u = x;
      break;
    }
    case GgufType::kUint64: {
      uint64_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.u = x;
      break;
    }
    case GgufType::kInt8: {
      int8_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.i = x;
      break;
    }
    case GgufType::kInt16: {
      int16_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.i = x;
      break;
    }
    case GgufType::kInt32: {
      int32_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.i = x;
      break;
    }
    case GgufType::kInt64: {
      int64_t x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.i = x;
      break;
    }
    case GgufType::kFloat32: {
      float x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.f = x;
      break;
    }
    case GgufType::kFloat64: {
      double x = 0;
      WEFT_RETURN_IF_ERROR(Read(x, key));
      v.f = x;
      break;
    }
    case GgufType::kString:
      WEFT_RETURN_IF_ERROR(ReadString(v.str, key));
      break;
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth) {
        return Error(Cat("key '", key, "' nests arrays deeper than ", kMaxArrayDepth));
      }
      uint32_t et = 0;
      WEFT_RETURN_IF_ERROR(Read(et, key));
      if (!KnownType(et)) {
        return Error(Cat("key '", key, "' is an array of unknown value type ", et));
      }
      v.elem_type = static_cast<GgufType>(et);
      WEFT_RETURN_IF_ERROR(Read(v.n, key));
      if (uint64_t es = FixedSize(et); es != 0) {
        if (v.n > Left() / es) {
          return absl::DataLossError(Cat("GGUF ", name_, ": array '", key, "' claims ", v.n,
                                         " elements of ", es, " bytes but only ", Left(),
                                         " bytes remain (truncated or corrupt)"));
        }
        v.raw = b_.data() + pos_;
        pos_ += v.n * es;
      } else if (v.elem_type == GgufType::kString) {
        // Each string needs at least its 8-byte length: bound the count before reserving.
        if (v.n > Left() / 8) {
          return absl::DataLossError(Cat("GGUF ", name_, ": string array '", key, "' claims ", v.n,
                                         " elements but only ", Left(), " bytes remain"));
        }
        v.strs.resize(v.n);
        for (uint64_t k = 0; k < v.n; ++k) WEFT_RETURN_IF_ERROR(ReadString(v.strs[k], key));
      } else {  // array of arrays: each needs at least 12 bytes (type + count)
        if (v.n > Left() / 12) {
          return absl::DataLossError(Cat("GGUF ", name_, ": nested array '", key, "' claims ", v.n,
                                         " elements but only ", Left(), " bytes remain"));
        }
        v.nested.resize(v.n);
        for (uint64_t k = 0; k < v.n; ++k) {
          WEFT_RETURN_IF_ERROR(ReadValue(et, v.nested[k], key, depth + 1));
        }
      }
      break;
    }
  }
  return absl::OkStatus();
}

absl::Status GgufParser::Run(GgufFile& f) {
  uint32_t magic = 0;
  if (b_.size() < 4) return Truncated("the magic (file shorter than 4 bytes)");
  WEFT_RETURN_IF_ERROR(Read(magic, "magic"));
  if (magic != kGgufMagic) {
    return Error(Cat("bad magic 0x", absl::Hex(magic, absl::kZeroPad8),
                     " (expected 'GGUF'): not a GGUF file"));
  }
  WEFT_RETURN_IF_ERROR(Read(f.version_, "version"));
  if (f.version_ == 1) {
    return Error("GGUF version 1 is not supported (only versions 2 and 3); re-convert the model");
  }
  if (f.version_ != 2 && f.version_ != 3) {
    return Error(Cat("unsupported GGUF version ", f.version_,
                     (f.version_ > 0xffff ? " (big-endian file?)" : ""),
                     "; only versions 2 and 3 are supported"));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  WEFT_RETURN_IF_ERROR(Read(n_tensors, "tensor count"));
  WEFT_RETURN_IF_ERROR(Read(n_kv, "metadata count"));
  // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
  // 8 + 4 + 4 + 8 bytes. Larger counts cannot fit in the file.
  if (n_kv > Left() / 13) {
    return absl::DataLossError(
        Cat("GGUF ", name_, ": metadata count ", n_kv, " cannot fit in ", b_.size(), " bytes"));
  }
  if (n_tensors > Left() / 24) {
    return absl::DataLossError(
        Cat("GGUF ", name_, ": tensor count ", n_tensors, " cannot fit in ", b_.size(), " bytes"));
  }
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key;
    WEFT_RETURN_IF_ERROR(ReadString(key, Cat("metadata key #", k)));
    uint32_t type = 0;
    WEFT_RETURN_IF_ERROR(Read(type, Cat("type of key '", key, "'")));
    GgufValue v;
    WEFT_RETURN_IF_ERROR(ReadValue(type, v, key, 0));
    if (!f.kv_.emplace(std::string(key), std::move(v)).second) {
      return Error(Cat("duplicate metadata key '", key, "'"));
    }
  }
  if (const GgufValue* a = f.Find("general.alignment")) {
    if (a->type != GgufType::kUint32) {
      return Error(Cat("general.alignment has type ", GgufTypeName(a->type), ", expected uint32"));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return Error(Cat("general.alignment ", a->u, " is not a power of two"));
    }
    f.alignment_ = a->u;
  }
  f.tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    std::string_view name;
    WEFT_RETURN_IF_ERROR(ReadString(name, Cat("name of tensor #", k)));
    t.name = std::string(name);
    uint32_t n_dims = 0;
    WEFT_RETURN_IF_ERROR(Read(n_dims, Cat("dimension count of tensor '", t.name, "'")));
    if (n_dims > kMaxDims) {
      return Error(Cat("tensor '", t.name, "' has ", n_dims, " dimensions (max ", kMaxDims, ")"));
    }
    t.n_dims = static_cast<int>(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      WEFT_RETURN_IF_ERROR(Read(ne, Cat("shape of tensor '", t.name, "'")));
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(
            Cat("tensor '", t.name, "' dimension ", d, " is ", ne, " (does not fit int64)"));
      }
      t.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t type = 0;
    WEFT_RETURN_IF_ERROR(Read(type, Cat("type of tensor '", t.name, "'")));
    std::optional<kernels::DTypeTraits> tr = kernels::TraitsOf(type);
    if (!tr) {
      return Error(Cat("tensor '", t.name, "' has unknown or unsupported tensor type ", type));
    }
    t.type = static_cast<kernels::DType>(type);
    WEFT_RETURN_IF_ERROR(Read(t.offset, Cat("offset of tensor '", t.name, "'")));
    // Element count and byte size, checked for int64 overflow.
    int64_t n = 1;
    for (int d = 0; d < kMaxDims; ++d) {
      if (t.ne[d] != 0 && n > std::numeric_limits<int64_t>::max() / t.ne[d]) {
        return Error(Cat("tensor '", t.name, "' element count overflows int64"));
      }
      n *= t.ne[d];
    }
    if (t.ne[0] % tr->block_size != 0) {
      return Error(Cat("tensor '", t.name, "' of type ", tr->name, " has row length ", t.ne[0],
                       ", not a multiple of the block size ", tr->block_size));
    }
    const int64_t blocks = n / tr->block_size;
    if (blocks != 0 && tr->block_bytes > std::numeric_limits<int64_t>::max() / blocks) {
      return Error(Cat("tensor '", t.name, "' byte size overflows int64"));
    }
    t.nbytes = static_cast<uint64_t>(blocks * tr->block_bytes);
    if (f.tensor_index_.count(t.name) != 0) {
      return Error(Cat("duplicate tensor name '", t.name, "'"));
    }
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  // The data section starts at the next multiple of the alignment.
  uint64_t data_start = pos_ + (f.alignment_ - pos_ % f.alignment_) % f.alignment_;
  if (n_tensors > 0 && data_start > b_.size()) {
    return absl::DataLossError(Cat("GGUF ", name_, ": file truncated: data section ",
                                   "would start at byte ", data_start, " but the file has ",
                                   b_.size(), " bytes"));
  }
  const uint64_t data_size = n_tensors > 0 ? b_.size() - data_start : 0;
  for (GgufTensorInfo& t : f.tensors_) {
    if (t.offset % f.alignment_ != 0) {
      return Error(Cat("tensor '", t.name, "' offset ", t.offset,
                       " is not a multiple of the alignment ", f.alignment_));
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      return absl::DataLossError(Cat("GGUF ", name_, ": tensor '", t.name, "' data [", t.offset,
                                     ", +", t.nbytes, ") lies outside the data section of ",
                                     data_size, " bytes (truncated or bad offset)"));
    }
    t.data = b_.data() + data_start + t.offset;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<MmapFile> map, MmapFile::Open(path));
  std::span<const uint8_t> bytes = map->bytes();
  WEFT_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, Parse(bytes, path));
  f->file_ = std::move(map);
  return f;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::span<const uint8_t> bytes,
                                                          std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->bytes_ = bytes;
  f->path_ = std::move(name);
  GgufParser parser(bytes, f->path_);
  WEFT_RETURN_IF_ERROR(parser.Run(*f));
  return f;
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

bool IsUnsigned(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
         t == GgufType::kUint64;
}
bool IsSigned(GgufType t) {
  return t == GgufType::kInt8 || t == GgufType::kInt16 || t == GgufType::kInt32 ||
         t == GgufType::kInt64;
}

}  // namespace

#define WEFT_GGUF_FIND_(v, key)                                                              \
  const GgufValue* v = Find(key);                                                            \
  if (v == nullptr) {                                                                        \
    return absl::NotFoundError(Cat("GGUF ", path_, ": metadata key '", key, "' not found")); \
  }

static absl::Status WrongType(const std::string& path, std::string_view key, const GgufValue& v,
                              std::string_view want) {
  std::string actual(GgufTypeName(v.type));
  if (v.type == GgufType::kArray) actual = Cat("array of ", GgufTypeName(v.elem_type));
  return absl::InvalidArgumentError(
      Cat("GGUF ", path, ": metadata key '", key, "' has type ", actual, ", expected ", want));
}

absl::StatusOr<std::string_view> GgufFile::GetString(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (v->type != GgufType::kString) return WrongType(path_, key, *v, "string");
  return v->str;
}

absl::StatusOr<int64_t> GgufFile::GetI64(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (IsSigned(v->type)) return v->i;
  if (IsUnsigned(v->type)) {
    if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(
          Cat("GGUF ", path_, ": metadata key '", key, "' value ", v->u, " does not fit int64"));
    }
    return static_cast<int64_t>(v->u);
  }
  return WrongType(path_, key, *v, "an integer");
}

absl::StatusOr<uint32_t> GgufFile::GetU32(std::string_view key) const {
  WEFT_ASSIGN_OR_RETURN(int64_t x, GetI64(key));
  if (x < 0 || x > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        Cat("GGUF ", path_, ": metadata key '", key, "' value ", x, " does not fit uint32"));
  }
  return static_cast<uint32_t>(x);
}

absl::StatusOr<float> GgufFile::GetF32(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (v->type == GgufType::kFloat32 || v->type == GgufType::kFloat64) {
    return static_cast<float>(v->f);
  }
  return WrongType(path_, key, *v, "float32");
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (v->type != GgufType::kBool) return WrongType(path_, key, *v, "bool");
  return v->u != 0;
}

absl::StatusOr<std::vector<std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString) {
    return WrongType(path_, key, *v, "array of string");
  }
  return v->strs;
}

absl::StatusOr<std::vector<float>> GgufFile::GetF32Array(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (v->type != GgufType::kArray) return WrongType(path_, key, *v, "array of float32");
  std::vector<float> out(v->n);
  if (v->elem_type == GgufType::kFloat32) {
    if (v->n != 0) std::memcpy(out.data(), v->raw, v->n * 4);
  } else if (v->elem_type == GgufType::kFloat64) {
    for (uint64_t k = 0; k < v->n; ++k) out[k] = static_cast<float>(LoadLe<double>(v->raw + 8 * k));
  } else {
    return WrongType(path_, key, *v, "array of float32");
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  WEFT_GGUF_FIND_(v, key);
  if (v->type != GgufType::kArray) return WrongType(path_, key, *v, "array of int32");
  std::vector<int32_t> out(v->n);
  auto bad = [&](auto x) {
    return absl::InvalidArgumentError(
        Cat("GGUF ", path_, ": array '", key, "' element ", x, " does not fit int32"));
  };
  for (uint64_t k = 0; k < v->n; ++k) {
    int64_t x = 0;
    switch (v->elem_type) {
      case GgufType::kInt8:
        x = LoadLe<int8_t>(v->raw + k);
        break;
      case GgufType::kUint8:
        x = LoadLe<uint8_t>(v->raw + k);
        break;
      case GgufType::kInt16:
        x = LoadLe<int16_t>(v->raw + 2 * k);
        break;
      case GgufType::kUint16:
        x = LoadLe<uint16_t>(v->raw + 2 * k);
        break;
      case GgufType::kInt32:
        x = LoadLe<int32_t>(v->raw + 4 * k);
        break;
      case GgufType::kUint32:
        x = LoadLe<uint32_t>(v->raw + 4 * k);
        break;
      case GgufType::kInt64:
        x = LoadLe<int64_t>(v->raw + 8 * k);
        break;
      case GgufType::kUint64: {
        uint64_t u = LoadLe<uint64_t>(v->raw + 8 * k);
        if (u > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) return bad(u);
        x = static_cast<int64_t>(u);
        break;
      }
      default:
        return WrongType(path_, key, *v, "array of int32");
    }
    if (x < std::numeric_limits<int32_t>::min() || x > std::numeric_limits<int32_t>::max()) {
      return bad(x);
    }
    out[k] = static_cast<int32_t>(x);
  }
  return out;
}

}  // namespace weft::model
