// A Llama-architecture language model in fp32 (Eigen), loaded from a Hugging Face
// checkpoint, exposed as the per-layer pieces the KV-cache evaluator drives layer by layer.
#ifndef FECSEARCH_CORE_LLAMA_MODEL_H_
#define FECSEARCH_CORE_LLAMA_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model_config.h"

namespace fecsearch {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// cos/sin of the rotary embedding for every position (HF "rotate_half" layout, fp32 angles
// as transformers computes them).
class RopeTable {
 public:
  RopeTable(int head_dim, double theta, int max_positions);
  // Rotates one head vector x (head_dim floats) of position `pos` in place.
  void Apply(int pos, float* x) const;
  // Undoes Apply (rotation by -angle).
  void Unapply(int pos, float* x) const;
  int head_dim() const { return head_dim_; }
  int max_positions() const { return max_positions_; }

 private:
  int head_dim_, max_positions_;
  std::vector<float> cos_, sin_;  // [pos][head_dim / 2]
};

// Immutable after Load; all methods are const and thread-safe.
class LlamaModel {
 public:
  // Loads `dir`/config.json and `dir`/model.safetensors (F32, F16 or BF16 tensors).
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const std::string& dir);

  const ModelConfig& config() const { return config_; }
  const RopeTable& rope() const { return *rope_; }
  // Hex XXH3-128 of config.json and the weights.
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& dir() const { return dir_; }

  // h = embedding rows of `tokens` (T x hidden).
  void Embed(absl::Span<const int> tokens, RowMatrix* h) const;
  // From the residual stream h (T x hidden) of `layer`: queries after RoPE (T x heads*hd),
  // keys before and after RoPE and values (T x kv_heads*hd). Positions are 0..T-1.
  void AttentionInputs(int layer, const RowMatrix& h, RowMatrix* q, RowMatrix* k_pre, RowMatrix* k,
                       RowMatrix* v) const;
  // h += o_proj(attn); h += mlp(norm(h)).
  void FinishLayer(int layer, const RowMatrix& attn, RowMatrix* h) const;
  // logits = lm_head(norm(h)) (T x vocab).
  void Logits(const RowMatrix& h, RowMatrix* logits) const;

 private:
  struct Layer {
    RowMatrix wqkv;     // (q + 2 kv) x hidden
    RowMatrix wo;       // hidden x q
    RowMatrix wgate_up; // 2 intermediate x hidden
    RowMatrix wdown;    // hidden x intermediate
    Eigen::RowVectorXf attn_norm, mlp_norm;
  };
  void RmsNorm(const RowMatrix& x, const Eigen::RowVectorXf& w, RowMatrix* out) const;

  ModelConfig config_;
  std::string dir_, fingerprint_;
  RowMatrix embed_, lm_head_;
  Eigen::RowVectorXf final_norm_;
  std::vector<Layer> layers_;
  std::unique_ptr<RopeTable> rope_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_LLAMA_MODEL_H_
