// Pipeline graphs as evolvable candidates (docs/PIPELINE_GRAPHS.md): per layer group, a
// key path and a value path of cache operators (ROPE, KEEP_FP16, SPLIT_OUTLIERS, QUANTIZE,
// RESIDUAL_QUANTIZE, CLUSTER_HEADS) and an optional EVICT tapping either path anywhere.
// Mutations insert, delete or replace an operator, change a parameter, swap two adjacent
// operators, or copy a layer group's graph to its neighbour; every result is validated
// (PipelineGraph::FromProto and the window limits) and mutations that would make an invalid
// graph are redrawn.
#ifndef FECSEARCH_SEARCH_GRAPH_SPACE_H_
#define FECSEARCH_SEARCH_GRAPH_SPACE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "protos/experiment.pb.h"
#include "search/domains/genome_space.h"

namespace fecsearch {

// A layer graph in path form: what every valid LayerPipeline is (two chains and a tap).
struct LayerPaths {
  std::vector<PipelineOp> keys;    // between KEYS_INPUT and OUTPUT, in order (ROPE included)
  std::vector<PipelineOp> values;  // between VALUES_INPUT and OUTPUT
  bool has_evict = false;
  PipelineOp evict;
  bool tap_values = false;
  int tap = -1;  // the tapped vertex: -1 = the input, i = keys[i] (or values[i])
};
// `pipeline` must be valid (PipelineGraph::FromProto accepted it).
LayerPaths DecodeLayer(const LayerPipeline& pipeline);
// Names vertices "keys", "k1".., "values", "v1".., "evict", "cache".
LayerPipeline EncodeLayer(const LayerPaths& paths);

class GraphSpace : public CandidateSpace {
 public:
  static absl::StatusOr<GraphSpace> Create(const SearchSpaceSpec& spec, const ModelConfig& model, int window_length);

  // A random genome's graphs, each group then mutated 0-2 times.
  Candidate Random(Rng& rng) const override;
  Candidate Mutate(const Candidate& parent, Rng& rng) const override;
  Candidate Crossover(const Candidate& a, const Candidate& b, Rng& rng) const override;
  double Size() const override { return genomes_.Size(); }

  // Whether `pipeline` is valid here (graph rules, window limits, path length).
  bool Valid(const LayerPipeline& pipeline) const;

 private:
  GraphSpace(GenomeSpace genomes, const SearchSpaceSpec& spec, const ModelConfig& model, int window_length)
      : genomes_(std::move(genomes)), spec_(spec), model_(model), window_length_(window_length) {}
  // One mutation of one layer group's paths (may produce an invalid graph; the caller checks).
  void MutateLayer(LayerPaths* p, Rng& rng) const;
  PipelineOp RandomOp(bool values, const LayerPaths& p, int position, Rng& rng) const;
  QuantizerParams RandomQuantizer(bool values, Rng& rng) const;
  void ChangeParameter(PipelineOp* op, bool values, Rng& rng) const;
  TokenEviction RandomEviction(Rng& rng) const;

  GenomeSpace genomes_;
  SearchSpaceSpec spec_;
  ModelConfig model_;
  int window_length_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_GRAPH_SPACE_H_
