// Rotary position embedding tables for every RoPE variant the supported families use
// (default, linear, dynamic NTK, llama3, yarn), computed as transformers'
// modeling_rope_utils.py does, in the rotate_half layout.
#ifndef FECSEARCH_CORE_ROPE_H_
#define FECSEARCH_CORE_ROPE_H_

#include <vector>

#include "core/model_config.h"

namespace fecsearch {

// cos/sin for positions 0..positions-1. Immutable; thread-safe.
class RopeTable {
 public:
  // `positions` is the window length: dynamic NTK RoPE rescales its frequencies for a
  // sequence of that length (transformers' forward pass over the whole window does the same).
  RopeTable(const ModelConfig& config, int positions);

  // Rotates one head vector x (head_dim floats) of position `pos` in place (and scales it
  // by attention_scaling(), which only yarn sets).
  void Apply(int pos, float* x) const;

  int head_dim() const { return head_dim_; }
  int positions() const { return positions_; }
  // The inverse frequencies (head_dim / 2) and the cos/sin multiplier actually used.
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  double attention_scaling() const { return attention_scaling_; }

 private:
  int head_dim_, positions_;
  double attention_scaling_ = 1.0;
  std::vector<float> inv_freq_;
  std::vector<float> cos_, sin_;  // [pos][head_dim / 2]
};

// The inverse frequencies and cos/sin multiplier of `config`'s RoPE for a sequence of
// `seq_len` tokens (only dynamic RoPE depends on it).
std::vector<float> RopeInverseFrequencies(const ModelConfig& config, int seq_len, double* attention_scaling);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_ROPE_H_
