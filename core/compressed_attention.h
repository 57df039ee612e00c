// One layer's attention over a window, processed in chunks, with the KV cache compressed
// by a LayerPlan exactly as the evaluation protocol prescribes (docs/DOMAIN.md section 4): queries
// see the dequantized surviving cache plus their own chunk uncompressed; after each chunk the
// chunk joins the cache, tokens leaving the fp16 region are quantized once, eviction runs, and
// the bytes the cache stores are counted.
#ifndef FECSEARCH_CORE_COMPRESSED_ATTENTION_H_
#define FECSEARCH_CORE_COMPRESSED_ATTENTION_H_

#include <vector>

#include "core/layer_plan.h"
#include "core/decoder_model.h"
#include "core/parallel.h"

namespace fecsearch {

// One layer's attention inputs for positions 0..T-1 (see DecoderModel::AttentionInputs).
struct LayerTensors {
  const RowMatrix* q = nullptr;      // T x heads*hd, after RoPE
  const RowMatrix* k_pre = nullptr;  // T x kv_heads*hd, before RoPE
  const RowMatrix* k = nullptr;      // after RoPE
  const RowMatrix* v = nullptr;
};

// Memory and eviction figures of one layer over one window.
struct LayerRunStats {
  // Bits the compressed cache stores, summed over chunk boundaries, and what an fp16 cache
  // would store at the same boundaries.
  double cache_bits = 0;
  double fp16_bits = 0;
  // The same at the last boundary only.
  double end_cache_bits = 0;
  double end_fp16_bits = 0;
  // Tokens still cached at the end, summed over KV heads; and tokens seen x KV heads.
  long end_kept_tokens = 0;
  long end_total_tokens = 0;
};

struct LayerRunOptions {
  int chunk = 16;
  bool exact = false;  // uncompressed fp32 reference: no operator runs
  // If set, receives the attention each (position, KV head) received, summed over all
  // queries and the group's query heads: T x kv_heads, row-major. Calibration weights.
  std::vector<float>* attention_received = nullptr;
  // Runs KV heads (CHAI clusters) in parallel when set; the result is the same without.
  ThreadPool* pool = nullptr;
};

// Computes `out` (T x heads*hd): the attention output before o_proj. `plan` must have been
// resolved (quantizers created) for this model.
void RunCompressedAttention(const ModelConfig& config, const RopeTable& rope,
                            const LayerPlan& plan, const LayerTensors& in,
                            const LayerRunOptions& options, RowMatrix* out, LayerRunStats* stats);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_COMPRESSED_ATTENTION_H_
