// Analytic effective-bits formula and its application to plans.
#include "core/memory_model.h"

#include <algorithm>

namespace fecsearch {

double AnalyticEffectiveBits(const AnalyticParams& p) {
  return p.code_bits + (p.scale_bits + p.zero_bits) / p.group_elements +
         p.outlier_fraction * p.outlier_bits +
         std::min(1.0, p.fp16_tokens / p.context) * (16.0 - p.code_bits) +
         p.codebook_bits / p.elements_per_layer;
}

namespace {

double StreamBits(const StreamPlan& sp, const ModelConfig& model, double context, double keep) {
  const double kept_tokens = std::max(1.0, keep * context);
  if (!sp.quantizes()) return 16.0 * keep;
  double code = 0, overhead = 0, outliers = 0, codebook = 0;
  for (const Stage& s : sp.stages) {
    if (!s.stored) continue;
    if (s.kind == StageKind::kSplitOutliers) {
      outliers += s.outlier_fraction;
      continue;
    }
    code += s.quantizer.bits;
    const double group_overhead =
        (s.quantizer.format == FP16 || s.quantizer.format == BF16) ? 0.0
        : s.quantizer.symmetric                                   ? 16.0
                                                                  : 32.0;
    overhead += group_overhead / s.quantizer.group_size;
    if (s.quantizer.format == NUQ) codebook += 16.0 * (1 << s.quantizer.bits);
  }
  AnalyticParams p;
  // No stored quantizer (only outliers split off): the rest is held densely in fp16.
  p.code_bits = sp.dense_fp16() ? 16.0 : code;
  p.scale_bits = overhead;  // already per element
  p.group_elements = 1;
  p.outlier_fraction = outliers;
  p.fp16_tokens = sp.sink_tokens + sp.recent_window;
  p.context = kept_tokens;
  p.codebook_bits = codebook;
  p.elements_per_layer = kept_tokens * model.num_kv_heads * model.head_dim;
  return keep * AnalyticEffectiveBits(p);
}

}  // namespace

double AnalyticPlanBits(const ModelPlan& plan, const ModelConfig& model, double context) {
  if (plan.layers.empty()) return 16.0;
  double sum = 0;
  for (const LayerPlan& l : plan.layers) {
    const double keep = l.eviction.active() ? l.eviction.keep_ratio : 1.0;
    const double cluster_share =
        l.head_clusters > 0 ? static_cast<double>(l.head_clusters) / model.num_kv_heads : 1.0;
    sum += 0.5 * (cluster_share * StreamBits(l.keys, model, context, keep) +
                  StreamBits(l.values, model, context, keep));
  }
  return sum / plan.layers.size();
}

}  // namespace fecsearch
