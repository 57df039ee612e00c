// Reader for Hugging Face checkpoints in the safetensors format (an 8-byte little-endian
// header length, a JSON header naming every tensor's dtype, shape and byte range, then the
// raw data), as one `model.safetensors` or as shards listed by `model.safetensors.index.json`.
// Tensors are read on demand with pread, so loading holds one tensor's bytes at a time.
#ifndef FECSEARCH_CORE_SAFETENSORS_H_
#define FECSEARCH_CORE_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
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

// One opened safetensors file: its validated header; the data stay on disk. Thread-safe
// after Open (reads use pread).
class SafetensorsFile {
 public:
  // Reads and validates the header: size, JSON, every tensor's byte range against its dtype,
  // shape and the file's size. Errors name the file and the offending tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

  // The tensor converted to fp32, row-major, into `out` (which must hold its elements).
  // Fails if it is missing, has another shape than `expected_shape` (then the message says
  // "expected [...]"), an unsupported dtype, or cannot be read.
  absl::Status ReadFloat(const std::string& name, const std::vector<int64_t>& expected_shape, float* out) const;
  absl::StatusOr<std::vector<float>> ReadFloat(const std::string& name,
                                               const std::vector<int64_t>& expected_shape) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t file_size_ = 0;
  uint64_t data_offset_ = 0;  // where the data section starts in the file
  std::map<std::string, TensorInfo> tensors_;
};

// A model directory's weights: `model.safetensors`, or every shard named by
// `model.safetensors.index.json` (its weight_map). Thread-safe after Open.
class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  bool Has(const std::string& name) const { return where_.count(name) > 0; }
  // The tensor's header entry (nullptr if absent).
  const TensorInfo* Info(const std::string& name) const;
  absl::Status ReadFloat(const std::string& name, const std::vector<int64_t>& expected_shape, float* out) const;
  // Every tensor name, sorted.
  std::vector<std::string> Names() const;
  // The files that hold the weights (one, or the shards in index order).
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // Total bytes of the weight files.
  uint64_t total_bytes() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
  std::string missing_hint_;  // what a missing tensor's error names (the file or the index)
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_SAFETENSORS_H_
