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
  auto ckpt = Checkpoint::Open(src);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const std::string& name : (*ckpt)->Names()) {
    const TensorInfo& info = *(*ckpt)->Info(name);
    const std::string out_dtype = dtype.empty() ? info.dtype : dtype;
    size_t n = 1;
    for (int64_t d : info.shape) n *= static_cast<size_t>(d);
    std::vector<float> values(n);
    ASSERT_TRUE((*ckpt)->ReadFloat(name, info.shape, values.data()).ok()) << name;
    const size_t begin = data.size();
    for (float v : values) {
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
  // Keep the evaluation text and the tokenizer next to the model.
  for (const char* extra : {"eval.txt", "tokenizer.json", "tokenizer_config.json"}) {
    std::ifstream in(src + "/" + extra, std::ios::binary);
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    std::ofstream(dst + "/" + extra, std::ios::binary) << ss.str();
  }
}

}  // namespace fecsearch
