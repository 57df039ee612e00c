// Test helpers for model fixtures.
#include "core/model_test_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "Eigen/Core"
#include "core/safetensors.h"
#include "gtest/gtest.h"

namespace fecsearch {

std::string TestTempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

void WriteModelVariant(const std::string& src, const std::string& dst, const std::string& dtype,
                       const std::function<void(nlohmann::json&)>& edit_config,
                       const std::function<void(nlohmann::json&)>& edit_header) {
  nlohmann::json config = ReadJson(src + "/config.json");
  if (edit_config) edit_config(config);
  std::ofstream(dst + "/config.json") << config.dump(1);
  auto file = SafetensorsFile::Open(src + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, info] : file->tensors()) {
    const std::string out_dtype = dtype.empty() ? info.dtype : dtype;
    auto values = file->ReadFloat(name, info.shape);
    ASSERT_TRUE(values.ok());
    const size_t begin = data.size();
    for (float v : *values) {
      if (out_dtype == "F32") {
        data.append(reinterpret_cast<const char*>(&v), 4);
      } else if (out_dtype == "F16") {
        uint16_t b = Eigen::numext::bit_cast<uint16_t>(Eigen::half(v));
        data.append(reinterpret_cast<const char*>(&b), 2);
      } else {
        uint16_t b = Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(v));
        data.append(reinterpret_cast<const char*>(&b), 2);
      }
    }
    header[name] = {{"dtype", out_dtype}, {"shape", info.shape}, {"data_offsets", {begin, data.size()}}};
  }
  if (edit_header) edit_header(header);
  const std::string h = header.dump();
  const uint64_t len = h.size();
  std::ofstream out(dst + "/model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << h << data;
  // Keep the evaluation text next to the model.
  std::ifstream text(src + "/eval.txt", std::ios::binary);
  if (text) {
    std::stringstream ss;
    ss << text.rdbuf();
    std::ofstream(dst + "/eval.txt", std::ios::binary) << ss.str();
  }
}

}  // namespace fecsearch
