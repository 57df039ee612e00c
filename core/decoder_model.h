// A decoder-only transformer in fp32 (Eigen) — the llama, mistral, qwen2 and qwen3 families
// of Hugging Face transformers — loaded from a checkpoint directory and exposed as the
// per-layer pieces the KV-cache evaluator drives layer by layer.
#ifndef FECSEARCH_CORE_DECODER_MODEL_H_
#define FECSEARCH_CORE_DECODER_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/model_config.h"
#include "core/parallel.h"
#include "core/rope.h"

namespace fecsearch {

// Immutable after Load; all methods are const and thread-safe. `pool` arguments may be null
// (single-threaded); results do not depend on the pool's thread count.
class DecoderModel {
 public:
  // Loads `dir`/config.json and the weights (model.safetensors, or the shards of
  // model.safetensors.index.json; F32, F16 or BF16), converting them to fp32 tensor by tensor.
  // The RoPE table covers `positions` tokens (the evaluation window; 0 = the smaller of
  // max_position_embeddings and 4096); a window longer than the model allows is refused.
  static absl::StatusOr<std::unique_ptr<DecoderModel>> Load(const std::string& dir, int positions = 0);

  const ModelConfig& config() const { return config_; }
  const RopeTable& rope() const { return *rope_; }
  // Hex XXH3-128 of config.json and the weight files.
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& dir() const { return dir_; }
  // Parameters held in memory (tied embeddings counted once).
  int64_t parameter_count() const { return parameters_; }

  // h = embedding rows of `tokens` (T x hidden).
  void Embed(absl::Span<const int> tokens, RowMatrix* h) const;
  // From the residual stream h (T x hidden) of `layer`: queries after RoPE (T x heads*hd),
  // keys before RoPE (after the bias and, for qwen3, k_norm), keys after RoPE, and values
  // (T x kv_heads*hd). Positions are 0..T-1.
  void AttentionInputs(int layer, const RowMatrix& h, RowMatrix* q, RowMatrix* k_pre, RowMatrix* k, RowMatrix* v,
                       ThreadPool* pool = nullptr) const;
  // h += o_proj(attn); h += mlp(norm(h)).
  void FinishLayer(int layer, const RowMatrix& attn, RowMatrix* h, ThreadPool* pool = nullptr) const;
  // Sum over t = 0..T-2 of -log p(tokens[t+1] | h[t]) in nats, with logits computed in blocks
  // of rows (a window's full logits would be T x vocab floats). If `logits` is set, it
  // receives all of them (tests).
  double NextTokenNll(const RowMatrix& h, absl::Span<const int> tokens, ThreadPool* pool = nullptr,
                      RowMatrix* logits = nullptr) const;

 private:
  struct Layer {
    RowMatrix wqkv;      // (q + 2 kv) x hidden
    Eigen::RowVectorXf bqkv;  // q + 2 kv, when the family has q/k/v biases
    RowMatrix wo;        // hidden x q
    Eigen::RowVectorXf bo;
    RowMatrix wgate_up;  // 2 intermediate x hidden
    Eigen::RowVectorXf bgate_up;
    RowMatrix wdown;     // hidden x intermediate
    Eigen::RowVectorXf bdown;
    Eigen::RowVectorXf attn_norm, mlp_norm;
    Eigen::RowVectorXf q_norm, k_norm;  // qwen3: head_dim each
  };
  void RmsNorm(const RowMatrix& x, const Eigen::RowVectorXf& w, RowMatrix* out) const;
  const RowMatrix& lm_head() const { return config_.tie_word_embeddings ? embed_ : lm_head_; }

  ModelConfig config_;
  std::string dir_, fingerprint_;
  int64_t parameters_ = 0;
  RowMatrix embed_, lm_head_;
  Eigen::RowVectorXf final_norm_;
  std::vector<Layer> layers_;
  std::unique_ptr<RopeTable> rope_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_DECODER_MODEL_H_
