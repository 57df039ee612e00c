// The decoder-only transformer configuration read from a Hugging Face config.json: the
// families llama (Llama 2, Llama 3.x, SmolLM, TinyLlama), mistral, qwen2 (Qwen2, Qwen2.5) and
// qwen3, with the RoPE variants their configs use. docs/MODELS.md lists what is supported.
#ifndef FECSEARCH_CORE_MODEL_CONFIG_H_
#define FECSEARCH_CORE_MODEL_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fecsearch {

// Rotary position embedding, as transformers' modeling_rope_utils.py computes it.
struct RopeConfig {
  enum class Type { kDefault, kLinear, kDynamic, kLlama3, kYarn };
  Type type = Type::kDefault;
  std::string type_name = "default";
  double theta = 10000.0;
  double factor = 1.0;                // linear, dynamic, llama3, yarn
  double low_freq_factor = 1.0;       // llama3
  double high_freq_factor = 4.0;      // llama3
  int original_max_positions = 0;     // llama3, yarn (pre-extension training length)
  double beta_fast = 32, beta_slow = 1;  // yarn
  double attention_factor = 0;        // yarn; 0 = derived from factor (and mscale)
  double mscale = 0, mscale_all_dim = 0;  // yarn
  bool truncate = true;               // yarn: round the correction range outwards
};

struct ModelConfig {
  std::string model_type = "llama";  // llama | mistral | qwen2 | qwen3
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;  // num_key_value_heads; defaults to num_heads
  int head_dim = 0;      // explicit `head_dim`, else hidden_size / num_heads
  int vocab_size = 0;
  // max_position_embeddings. For `dynamic` RoPE it is the pre-extension length and
  // longer windows are allowed (the frequencies are rescaled for the window's length).
  int max_positions = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  // Biases: q/k/v projections (qwen2 always; llama and qwen3 with attention_bias), the
  // output projection (llama and qwen3 with attention_bias), the MLP (llama's mlp_bias).
  bool qkv_bias = false;
  bool o_bias = false;
  bool mlp_bias = false;
  // qwen3: RMSNorm over each query and key head vector (q_norm, k_norm) before RoPE.
  bool qk_norm = false;
  // Sliding-window attention: the window (tokens) and the layers that use it. Windows up to
  // `sliding_window` tokens are exact; longer evaluation windows are refused.
  int sliding_window = 0;
  std::vector<int> sliding_layers;

  // KV heads share each query-head group of this size.
  int group_size() const { return num_heads / num_kv_heads; }
};

// Parses and validates config.json text; `where` names the file in errors. Anything the
// config asks for that is not implemented (another model_type, MoE, partial rotary, an
// unknown RoPE type, a non-SiLU activation) is refused with the key's name.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& where);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Whether windows of `window_length` tokens can be evaluated exactly: within the context
// (except dynamic RoPE) and no longer than an active sliding window. The error names the key.
absl::Status CheckWindowLength(const ModelConfig& config, int window_length, const std::string& field);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_MODEL_CONFIG_H_
