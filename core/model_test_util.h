// Test helpers: model fixture paths and rewritten variants of a fixture (dtype, config).
#ifndef FECSEARCH_CORE_MODEL_TEST_UTIL_H_
#define FECSEARCH_CORE_MODEL_TEST_UTIL_H_

#include <functional>
#include <string>

#include "nlohmann/json.hpp"

namespace fecsearch {

inline constexpr char kShippedModel[] = "data/tinylm-bytes-5m";
inline constexpr char kGqaFixture[] = "tests/data/tiny-gqa-bf16";

// A fresh directory under $TEST_TMPDIR.
std::string TestTempDir(const std::string& name);

// Copies `src` model dir to `dst`, rewriting config.json through `edit_config` and the
// weights (one model.safetensors, even from a sharded source) so that every tensor is stored as `dtype` ("F32", "F16", "BF16", or
// "" to keep). `edit_header` may change the safetensors header JSON afterwards.
void WriteModelVariant(const std::string& src, const std::string& dst, const std::string& dtype,
                       const std::function<void(nlohmann::json&)>& edit_config,
                       const std::function<void(nlohmann::json&)>& edit_header = nullptr);

nlohmann::json ReadJson(const std::string& path);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_MODEL_TEST_UTIL_H_
