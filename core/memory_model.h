// Analytic memory accounting (docs/DOMAIN.md section 3): effective bits per cached element.
#ifndef FECSEARCH_CORE_MEMORY_MODEL_H_
#define FECSEARCH_CORE_MEMORY_MODEL_H_

#include "core/layer_plan.h"
#include "core/model_config.h"

namespace fecsearch {

// b_eff = B + (s + z)/g + p (outlier_bits) + (n_fp16 / L)(16 - B) + codebook / elements.
struct AnalyticParams {
  double code_bits = 16;        // B
  double scale_bits = 0;        // s
  double zero_bits = 0;         // z
  double group_elements = 1;    // g: elements sharing one scale / zero point
  double outlier_fraction = 0;  // p
  double outlier_bits = 32;     // fp16 value + 16-bit index
  double fp16_tokens = 0;       // n_fp16: sinks + recent window
  double context = 1;           // L, tokens
  double codebook_bits = 0;     // per layer (e.g. 2^B x 16 for NUQ)
  double elements_per_layer = 1;
};

double AnalyticEffectiveBits(const AnalyticParams& p);

// The analytic figure of a whole plan at `context` tokens: per stream the formula above with
// the plan's parameters (codes of the stored stages summed), times the kept-token ratio of
// eviction, keys times clusters / KV heads under CHAI; averaged over keys, values and layers.
double AnalyticPlanBits(const ModelPlan& plan, const ModelConfig& model, double context);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_MEMORY_MODEL_H_
