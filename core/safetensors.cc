// Safetensors reader with validation of every header field.
#include "core/safetensors.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace fecsearch {
namespace {

int DtypeSize(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" ||
      dtype == "F8_E5M2")
    return 1;
  return 0;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = buffer.str();
  if (bytes.size() < 8) {
    return absl::DataLossError(absl::StrCat(path, ": ", bytes.size(),
                                            " bytes is too short for a safetensors file"));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > bytes.size() - 8 || header_len > (100u << 20)) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len,
                                            " exceeds the file size ", bytes.size(),
                                            " (corrupt or not a safetensors file)"));
  }
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len,
                                                nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header is not a JSON object"));
  }
  SafetensorsFile file;
  file.path_ = path;
  file.data_ = bytes.substr(8 + header_len);
  const uint64_t data_size = file.data_.size();
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& t = it.value();
    const std::string where = absl::StrCat(path, ": tensor '", it.key(), "'");
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() ||
        !t.contains("shape") || !t["shape"].is_array() || !t.contains("data_offsets") ||
        !t["data_offsets"].is_array() || t["data_offsets"].size() != 2) {
      return absl::DataLossError(absl::StrCat(where, ": needs dtype, shape and data_offsets"));
    }
    TensorInfo info;
    info.dtype = t["dtype"].get<std::string>();
    uint64_t elements = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) {
        return absl::DataLossError(absl::StrCat(where, ": shape has a non-integer dimension"));
      }
      info.shape.push_back(d.get<int64_t>());
      elements *= static_cast<uint64_t>(d.get<int64_t>());
    }
    for (const auto& o : t["data_offsets"]) {
      if (!o.is_number_unsigned()) {
        return absl::DataLossError(absl::StrCat(where, ": data_offsets must be non-negative integers"));
      }
    }
    info.begin = t["data_offsets"][0].get<uint64_t>();
    info.end = t["data_offsets"][1].get<uint64_t>();
    const int size = DtypeSize(info.dtype);
    if (size == 0) {
      return absl::DataLossError(absl::StrCat(where, ": unknown dtype ", info.dtype));
    }
    if (info.begin > info.end || info.end > data_size) {
      return absl::DataLossError(absl::StrCat(where, ": byte range [", info.begin, ", ", info.end,
                                              ") lies outside the data section of ", data_size,
                                              " bytes (truncated file?)"));
    }
    if (info.end - info.begin != elements * size) {
      return absl::DataLossError(absl::StrCat(where, ": ", info.end - info.begin,
                                              " bytes do not match shape ", ShapeString(info.shape),
                                              " of ", info.dtype));
    }
    file.tensors_[it.key()] = std::move(info);
  }
  return file;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(
    const std::string& name, const std::vector<int64_t>& expected_shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": tensor '", name, "' is missing"));
  }
  const TensorInfo& info = it->second;
  if (info.shape != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has shape ",
                                                   ShapeString(info.shape), ", expected ",
                                                   ShapeString(expected_shape)));
  }
  const char* src = data_.data() + info.begin;
  const size_t n = (info.end - info.begin) / DtypeSize(info.dtype);
  std::vector<float> out(n);
  if (info.dtype == "F32") {
    std::memcpy(out.data(), src, n * 4);
  } else if (info.dtype == "F16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      out[i] = static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(b));
    }
  } else if (info.dtype == "BF16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t b;
      std::memcpy(&b, src + 2 * i, 2);
      uint32_t u = static_cast<uint32_t>(b) << 16;
      std::memcpy(&out[i], &u, 4);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has dtype ",
                                                   info.dtype,
                                                   "; supported dtypes are F32, F16 and BF16"));
  }
  return out;
}

}  // namespace fecsearch
