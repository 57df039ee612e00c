// Structural hashing of pipeline graphs: iterative neighbour-label refinement (the
// Weisfeiler-Lehman scheme NAS-Bench-101 uses), invariant to vertex numbering and names.
// Equal structural hashes imply equal computation; the converse does not hold, which is
// what functional hashing adds.
#ifndef FECSEARCH_HASHING_STRUCTURAL_HASH_H_
#define FECSEARCH_HASHING_STRUCTURAL_HASH_H_

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/pipeline_graph.h"
#include "hashing/hash128.h"

namespace fecsearch {

// One layer's graph.
Hash128 StructuralHash(const PipelineGraph& graph);
// A whole candidate: the per-layer hashes in layer order.
Hash128 StructuralHash(const std::vector<PipelineGraph>& layers);
// The same, hashing each distinct entry (layer group) once.
Hash128 StructuralHash(const CandidateGraphs& graphs);

// Validates candidates and computes their structural hash, remembering each distinct layer
// entry (a genome's LayerCompression or a LayerPipeline) so that the many candidates that
// share most of their layer groups with a parent are not rebuilt as graphs again.
// Thread-safe.
class StructuralHasher {
 public:
  // `window_length` bounds sink counts, windows and channel groups (as CompileCandidate).
  StructuralHasher(const ModelConfig& model, int window_length, size_t max_remembered = 100000)
      : model_(model), window_length_(window_length), max_remembered_(max_remembered) {}
  // INVALID_ARGUMENT naming the field for a candidate that does not compile.
  absl::StatusOr<Hash128> Hash(const Candidate& candidate) const;

 private:
  struct Entry {
    absl::Status status;
    Hash128 hash;
  };
  Entry Analyse(const LayerPipeline& pipeline, const std::string& where) const;
  ModelConfig model_;
  int window_length_;
  size_t max_remembered_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, Entry> remembered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_STRUCTURAL_HASH_H_
