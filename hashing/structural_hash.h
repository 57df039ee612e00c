// Structural hashing of pipeline graphs: iterative neighbour-label refinement (the
// Weisfeiler-Lehman scheme NAS-Bench-101 uses), invariant to vertex numbering and names.
// Equal structural hashes imply equal computation; the converse does not hold, which is
// what functional hashing adds.
#ifndef FECSEARCH_HASHING_STRUCTURAL_HASH_H_
#define FECSEARCH_HASHING_STRUCTURAL_HASH_H_

#include <vector>

#include "core/pipeline_graph.h"
#include "hashing/hash128.h"

namespace fecsearch {

// One layer's graph.
Hash128 StructuralHash(const PipelineGraph& graph);
// A whole candidate: the per-layer hashes in layer order.
Hash128 StructuralHash(const std::vector<PipelineGraph>& layers);

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_STRUCTURAL_HASH_H_
