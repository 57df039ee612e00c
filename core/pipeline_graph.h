// The evaluator's per-layer operator pipeline as a graph (Boost.Graph behind this type):
// validation, compilation to the executable LayerPlan, and the genome -> graph conversion.
// Every candidate, genome or graph, is evaluated through PipelineGraph::Compile.
#ifndef FECSEARCH_CORE_PIPELINE_GRAPH_H_
#define FECSEARCH_CORE_PIPELINE_GRAPH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/graph/adjacency_list.hpp"
#include "core/layer_plan.h"
#include "core/model_config.h"
#include "protos/kv_compression.pb.h"
#include "protos/candidate.pb.h"
#include "protos/pipeline_graph.pb.h"

namespace fecsearch {

// A validated layer graph. Immutable; thread-compatible. Vertices are numbered 0..n-1 in
// the order of the proto's ops.
class PipelineGraph {
 public:
  // Validates `proto` (names, known operators, dangling edges, cycles, edge types, one
  // output, ROPE placement, parameter ranges) against the model's shape. Errors name the
  // vertex, prefixed by `where` (e.g. "layers[3]").
  static absl::StatusOr<PipelineGraph> FromProto(const LayerPipeline& proto,
                                                 const ModelConfig& model,
                                                 const std::string& where);

  LayerPipeline ToProto() const;
  int num_vertices() const { return static_cast<int>(boost::num_vertices(graph_)); }
  const PipelineOp& op(int v) const { return graph_[v]; }
  std::vector<int> successors(int v) const;
  std::vector<int> predecessors(int v) const;
  // The operator's type and parameters, without its name: what structural hashing sees.
  std::string Label(int v) const;

  // The executable plan (quantizers not yet resolved; see ResolvePlan).
  LayerPlan Compile() const;

 private:
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, PipelineOp>;
  Graph graph_;
  int head_dim_ = 0;
};

// Converts one genome layer entry into the graph of the fixed pipeline it describes.
LayerPipeline GenomeLayerToPipeline(const LayerCompression& layer);

// Layer groups: N entries (1 <= N <= num_layers) split the layers into N consecutive groups
// as equal as possible, entry i covering layers [floor(i L / N), floor((i + 1) L / N)) (with
// N dividing L, blocks of L / N). The entry that applies to `layer`:
int LayerGroupOf(int layer, int groups, int num_layers);
// OK if `entries` groups fit `num_layers` layers; else an error naming `field`.
absl::Status CheckLayerGroupCount(int entries, int num_layers, const std::string& field);

// A candidate's graphs: one per entry (layer group), and which entry each model layer uses.
struct CandidateGraphs {
  std::vector<PipelineGraph> entries;
  std::vector<int> entry_of_layer;
  const PipelineGraph& layer(int l) const { return entries[entry_of_layer[l]]; }
};
// Validates and converts every entry. Errors name the field ("genome.layers[1].keys.bits").
absl::StatusOr<CandidateGraphs> CandidateToGraphEntries(const Candidate& candidate, const ModelConfig& model);

// All layers of a candidate as validated graphs, one per model layer (layer groups
// expanded).
absl::StatusOr<std::vector<PipelineGraph>> CandidateToGraphs(const Candidate& candidate,
                                                             const ModelConfig& model);

// Graphs -> plan, with per-candidate consistency checks against the evaluation windows
// (a sink count or recent window beyond the window length is an error).
absl::StatusOr<ModelPlan> CompileCandidate(const Candidate& candidate, const ModelConfig& model,
                                           int window_length);

// What a pipeline-graph candidate does that no genome can express (e.g. "residual
// quantization of keys", "eviction scored on dequantized keys"), comma-separated; "" when an
// equivalent genome exists (always for genomes).
std::string GraphOnlyFeatures(const Candidate& candidate, const ModelConfig& model);

// One line per layer group, e.g. "K nuq3-sym-chan32+1%out preRoPE | V int2-asym-tok32 r128 |
// H2O keep 50%".
std::string CandidateSummary(const Candidate& candidate, const ModelConfig& model);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_PIPELINE_GRAPH_H_
