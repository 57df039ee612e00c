// The Llama-architecture configuration read from a Hugging Face config.json.
#ifndef FECSEARCH_CORE_MODEL_CONFIG_H_
#define FECSEARCH_CORE_MODEL_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"

namespace fecsearch {

struct ModelConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;  // num_key_value_heads; defaults to num_heads
  int head_dim = 0;      // defaults to hidden_size / num_heads
  int vocab_size = 0;
  int max_positions = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;  // `rope_theta` or `rope_parameters.rope_theta`
  bool tie_word_embeddings = false;

  // KV heads share each query-head group of this size.
  int group_size() const { return num_heads / num_kv_heads; }
};

// Parses and validates config.json text; `where` names the file in errors.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& where);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_MODEL_CONFIG_H_
