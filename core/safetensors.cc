// Safetensors reader with validation of every header field, and sharded checkpoints.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
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
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

std::string ShapeString(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// Reads exactly `n` bytes at `offset`; DataLoss naming the file otherwise.
absl::Status PreadAll(int fd, const std::string& path, uint64_t offset, size_t n, char* out) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      return absl::DataLossError(absl::StrCat(path, ": cannot read ", n, " bytes at offset ", offset, " (",
                                              r < 0 ? std::strerror(errno) : "unexpected end of file", ")"));
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file->fd_ < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
  struct stat st;
  if (fstat(file->fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  file->file_size_ = static_cast<uint64_t>(st.st_size);
  const uint64_t size = file->file_size_;
  if (size < 8) {
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes is too short for a safetensors file"));
  }
  unsigned char len_bytes[8];
  absl::Status s = PreadAll(file->fd_, path, 0, 8, reinterpret_cast<char*>(len_bytes));
  if (!s.ok()) return s;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > size - 8 || header_len > (100u << 20)) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len, " exceeds the file size ", size,
                                            " (corrupt or not a safetensors file)"));
  }
  std::string header_text(header_len, '\0');
  s = PreadAll(file->fd_, path, 8, header_len, header_text.data());
  if (!s.ok()) return s;
  nlohmann::json header = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header is not a JSON object"));
  }
  file->data_offset_ = 8 + header_len;
  const uint64_t data_size = size - file->data_offset_;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& t = it.value();
    const std::string where = absl::StrCat(path, ": tensor '", it.key(), "'");
    if (!t.is_object() || !t.contains("dtype") || !t["dtype"].is_string() || !t.contains("shape") ||
        !t["shape"].is_array() || !t.contains("data_offsets") || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2) {
      return absl::DataLossError(absl::StrCat(where, ": needs dtype, shape and data_offsets"));
    }
    TensorInfo info;
    info.dtype = t["dtype"].get<std::string>();
    uint64_t elements = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t{1} << 40)) {
        return absl::DataLossError(absl::StrCat(where, ": shape has an invalid dimension ", d.dump()));
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
    const int esize = DtypeSize(info.dtype);
    if (esize == 0) return absl::DataLossError(absl::StrCat(where, ": unknown dtype ", info.dtype));
    if (info.begin > info.end || info.end > data_size) {
      return absl::DataLossError(absl::StrCat(where, ": byte range [", info.begin, ", ", info.end,
                                              ") lies outside the data section of ", data_size,
                                              " bytes (truncated file?)"));
    }
    if (info.end - info.begin != elements * esize) {
      return absl::DataLossError(absl::StrCat(where, ": ", info.end - info.begin, " bytes do not match shape ",
                                              ShapeString(info.shape), " of ", info.dtype));
    }
    file->tensors_[it.key()] = std::move(info);
  }
  return file;
}

absl::Status SafetensorsFile::ReadFloat(const std::string& name, const std::vector<int64_t>& expected_shape,
                                        float* out) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return absl::NotFoundError(absl::StrCat(path_, ": tensor '", name, "' is missing"));
  const TensorInfo& info = it->second;
  if (info.shape != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has shape ", ShapeString(info.shape),
                                                   ", expected ", ShapeString(expected_shape)));
  }
  if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16") {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' has dtype ", info.dtype,
                                                   "; supported dtypes are F32, F16 and BF16"));
  }
  const size_t bytes = info.end - info.begin;
  const size_t n = bytes / DtypeSize(info.dtype);
  if (info.dtype == "F32") return PreadAll(fd_, path_, data_offset_ + info.begin, bytes, reinterpret_cast<char*>(out));
  // 16-bit tensors are read in pieces and widened, so no second full-size buffer is needed.
  constexpr size_t kPiece = 1 << 20;
  std::vector<uint16_t> buf(std::min(n, kPiece));
  for (size_t first = 0; first < n; first += kPiece) {
    const size_t m = std::min(kPiece, n - first);
    absl::Status s = PreadAll(fd_, path_, data_offset_ + info.begin + 2 * first, 2 * m, reinterpret_cast<char*>(buf.data()));
    if (!s.ok()) return s;
    if (info.dtype == "F16") {
      for (size_t i = 0; i < m; ++i) out[first + i] = static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(buf[i]));
    } else {
      for (size_t i = 0; i < m; ++i) {
        const uint32_t u = static_cast<uint32_t>(buf[i]) << 16;
        std::memcpy(&out[first + i], &u, 4);
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(const std::string& name,
                                                              const std::vector<int64_t>& expected_shape) const {
  size_t n = 1;
  for (int64_t d : expected_shape) n *= static_cast<size_t>(d);
  std::vector<float> out(n);
  absl::Status s = ReadFloat(name, expected_shape, out.data());
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  auto ckpt = std::make_unique<Checkpoint>();
  const std::string single = dir + "/model.safetensors";
  const std::string index_path = dir + "/model.safetensors.index.json";
  struct stat st;
  if (stat(single.c_str(), &st) == 0) {
    auto f = SafetensorsFile::Open(single);
    if (!f.ok()) return f.status();
    for (const auto& [name, info] : (*f)->tensors()) ckpt->where_[name] = f->get();
    ckpt->files_.push_back(std::move(*f));
    ckpt->missing_hint_ = single;
    return ckpt;
  }
  std::ifstream in(index_path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(dir, ": has neither model.safetensors nor model.safetensors.index.json"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json index = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": field 'weight_map' is missing or not an object"));
  }
  std::map<std::string, SafetensorsFile*> shards;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map['", it.key(), "'] must be a file name"));
    }
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map['", it.key(), "'] = '", shard, "' is not a file name in ", dir));
    }
    auto found = shards.find(shard);
    if (found == shards.end()) {
      auto f = SafetensorsFile::Open(dir + "/" + shard);
      if (!f.ok()) {
        if (absl::IsNotFound(f.status())) {
          return absl::NotFoundError(absl::StrCat(index_path, ": weight_map['", it.key(), "'] names shard '", shard,
                                                  "', which cannot be opened (", f.status().message(), ")"));
        }
        return f.status();
      }
      found = shards.emplace(shard, f->get()).first;
      ckpt->files_.push_back(std::move(*f));
    }
    if (!found->second->tensors().count(it.key())) {
      return absl::DataLossError(absl::StrCat(index_path, ": weight_map puts tensor '", it.key(), "' in shard '", shard,
                                              "', whose header does not have it"));
    }
    ckpt->where_[it.key()] = found->second;
  }
  ckpt->missing_hint_ = index_path;
  return ckpt;
}

const TensorInfo* Checkpoint::Info(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : &it->second->tensors().at(name);
}

absl::Status Checkpoint::ReadFloat(const std::string& name, const std::vector<int64_t>& expected_shape, float* out) const {
  auto it = where_.find(name);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat(missing_hint_, ": tensor '", name, "' is missing"));
  return it->second->ReadFloat(name, expected_shape, out);
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : where_) names.push_back(name);
  return names;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_) total += f->file_size();
  return total;
}

}  // namespace fecsearch
