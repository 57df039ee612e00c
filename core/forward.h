// The teacher-forced forward pass of one window, layer by layer, with every layer's
// attention running over the compressed cache of a ModelPlan. Layer-major order is exact:
// the cache of layer l depends only on layer l's keys, values and queries.
#ifndef FECSEARCH_CORE_FORWARD_H_
#define FECSEARCH_CORE_FORWARD_H_

#include <vector>

#include "absl/types/span.h"
#include "core/compressed_attention.h"
#include "core/layer_plan.h"
#include "core/decoder_model.h"

namespace fecsearch {

// One layer's attention inputs, kept for calibration, probes and tests.
struct CapturedLayer {
  RowMatrix q, k_pre, k, v;
  std::vector<float> attention_received;  // T x kv_heads (when requested)
};

struct ForwardCapture {
  bool layer_inputs = false;        // fill `layers`
  bool attention_received = false;  // and their attention_received
  bool want_logits = false;         // fill `logits`
  std::vector<CapturedLayer> layers;
  RowMatrix logits;
};

struct ForwardResult {
  double nll_sum = 0;  // nats, over positions 1..T-1
  int scored = 0;
  std::vector<LayerRunStats> layers;
  // Wall time of the attention over the (compressed) cache, all layers: the rest of the pass
  // is matrix products, norms and RoPE. Seconds.
  double attention_seconds = 0;
};

// `pool` (may be null) runs matrix products and attention heads in parallel; the result is
// the same for every thread count.
ForwardResult ForwardWindow(const DecoderModel& model, absl::Span<const int> tokens,
                            const ModelPlan& plan, int chunk, ForwardCapture* capture = nullptr,
                            ThreadPool* pool = nullptr);

// Runs every layer's compressed attention on captured inputs (no propagation between
// layers): the functional-hash probe and the per-layer error diagnostic.
void RunAttentionOnly(const DecoderModel& model, const ModelPlan& plan,
                      const std::vector<CapturedLayer>& inputs, int chunk,
                      std::vector<RowMatrix>* outputs, std::vector<LayerRunStats>* stats,
                      ThreadPool* pool = nullptr);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_FORWARD_H_
