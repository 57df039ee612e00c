// The executable form of a candidate: per layer, what the compressed KV cache does after
// every chunk. Produced only by compiling a PipelineGraph (core/pipeline_graph.h); genomes
// reach it through their graphs, so there is one implementation of every operator.
#ifndef FECSEARCH_CORE_LAYER_PLAN_H_
#define FECSEARCH_CORE_LAYER_PLAN_H_

#include <memory>
#include <string>
#include <vector>

#include "core/quantizer.h"
#include "protos/kv_compression.pb.h"

namespace fecsearch {

enum class StageKind { kSplitOutliers, kQuantize, kResidualQuantize };

// One operator on a stream's path, applied to each block of tokens when it is quantized.
struct Stage {
  StageKind kind = StageKind::kQuantize;
  double outlier_fraction = 0;                  // kSplitOutliers
  QuantizerConfig quantizer;                    // kQuantize, kResidualQuantize
  std::shared_ptr<const Quantizer> resolved;    // set by ResolvePlan (NUQ needs a codebook)
  bool stored = false;  // whether this stage's codes are part of what the cache stores
};

// Keys or values of one layer.
struct StreamPlan {
  int sink_tokens = 0;
  int recent_window = 0;
  std::vector<Stage> stages;
  // Keys only: the stages act before the rotary embedding (KVQuant's pre-RoPE keys).
  bool quantize_before_rope = false;
  // Largest PER_CHANNEL group among the stages (tokens); 0 if none. A token is quantized
  // once every token of its aligned group of this size has left the fp16 region.
  int channel_alignment = 0;

  bool quantizes() const { return !stages.empty(); }
  // True when no stored quantizer encodes the stream (e.g. only an outlier split): the
  // quantized tokens are still held densely in fp16, and charged so.
  bool dense_fp16() const {
    for (const Stage& s : stages)
      if (s.stored && s.kind != StageKind::kSplitOutliers) return false;
    return true;
  }
};

struct EvictionPlan {
  EvictionPolicy policy = NO_EVICTION;
  double keep_ratio = 1.0;
  int observation_window = 32;
  int pooling_kernel = 1;
  // Where norms and similarities are read: the keys (or values) after this many stages of
  // their path, rotated or not.
  bool tap_values = false;
  int tap_after_stages = 0;
  bool tap_rotated = true;

  bool active() const { return policy != NO_EVICTION && keep_ratio < 1.0; }
};

struct LayerPlan {
  StreamPlan keys, values;
  EvictionPlan eviction;
  int head_clusters = 0;  // CHAI clusters; 0 = off
  std::string summary;    // one line, for reports
};

struct ModelPlan {
  std::vector<LayerPlan> layers;
  // The uncompressed reference: the cache holds the model's fp32 keys and values and no
  // operator runs (not even fp16 storage).
  bool exact = false;
};

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_LAYER_PLAN_H_
