// Reader for the safetensors format (Hugging Face): an 8-byte little-endian header length,
// a JSON header naming every tensor's dtype, shape and byte range, then the raw data.
#ifndef FECSEARCH_CORE_SAFETENSORS_H_
#define FECSEARCH_CORE_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fecsearch {

struct TensorInfo {
  std::string dtype;  // "F32", "F16" or "BF16" (others are rejected when read)
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};

// An opened safetensors file held in memory. Thread-compatible; immutable after Open.
class SafetensorsFile {
 public:
  // Reads and validates the whole file: header size, JSON, every tensor's byte range against
  // its dtype and shape. Errors name the file and the offending tensor.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::string& path() const { return path_; }

  // The tensor converted to fp32, row-major. Fails if it is missing, has another shape than
  // `expected_shape`, or an unsupported dtype.
  absl::StatusOr<std::vector<float>> ReadFloat(const std::string& name,
                                               const std::vector<int64_t>& expected_shape) const;

  // Raw bytes of the data section (for fingerprinting).
  const std::string& data() const { return data_; }

 private:
  std::string path_;
  std::map<std::string, TensorInfo> tensors_;
  std::string data_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_SAFETENSORS_H_
