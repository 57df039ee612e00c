// Layer-major forward pass with compressed attention.
#include "core/forward.h"

#include <chrono>
#include <cmath>

namespace fecsearch {

ForwardResult ForwardWindow(const DecoderModel& model, absl::Span<const int> tokens,
                            const ModelPlan& plan, int chunk, ForwardCapture* capture, ThreadPool* pool) {
  const ModelConfig& c = model.config();
  ForwardResult result;
  result.layers.resize(c.num_layers);
  RowMatrix h, q, k_pre, k, v, attn;
  model.Embed(tokens, &h);
  if (capture && capture->layer_inputs) capture->layers.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    model.AttentionInputs(l, h, &q, &k_pre, &k, &v, pool);
    LayerTensors in{&q, &k_pre, &k, &v};
    LayerRunOptions opt;
    opt.chunk = chunk;
    opt.exact = plan.exact;
    opt.pool = pool;
    std::vector<float> received;
    if (capture && capture->attention_received) opt.attention_received = &received;
    const auto t0 = std::chrono::steady_clock::now();
    RunCompressedAttention(c, model.rope(), plan.layers.empty() ? LayerPlan() : plan.layers[l], in,
                           opt, &attn, &result.layers[l]);
    result.attention_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (capture && capture->layer_inputs) {
      CapturedLayer& cl = capture->layers[l];
      cl.q = q;
      cl.k_pre = k_pre;
      cl.k = k;
      cl.v = v;
      cl.attention_received = std::move(received);
    }
    model.FinishLayer(l, attn, &h, pool);
  }
  result.nll_sum = model.NextTokenNll(h, tokens, pool, capture && capture->want_logits ? &capture->logits : nullptr);
  result.scored = static_cast<int>(tokens.size()) - 1;
  return result;
}

void RunAttentionOnly(const DecoderModel& model, const ModelPlan& plan,
                      const std::vector<CapturedLayer>& inputs, int chunk,
                      std::vector<RowMatrix>* outputs, std::vector<LayerRunStats>* stats, ThreadPool* pool) {
  const ModelConfig& c = model.config();
  outputs->resize(inputs.size());
  stats->assign(inputs.size(), LayerRunStats());
  // Layers are independent here (each reads its captured inputs): one task per layer.
  ParallelFor(pool, static_cast<int>(inputs.size()), [&](int l) {
    const CapturedLayer& cl = inputs[l];
    LayerTensors in{&cl.q, &cl.k_pre, &cl.k, &cl.v};
    LayerRunOptions opt;
    opt.chunk = chunk;
    opt.exact = plan.exact;
    RunCompressedAttention(c, model.rope(), plan.layers.empty() ? LayerPlan() : plan.layers[l], in,
                           opt, &(*outputs)[l], &(*stats)[l]);
  });
}

}  // namespace fecsearch
