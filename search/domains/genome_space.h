// The genes a search may change and their allowed values, from the experiment's
// SearchSpaceSpec: random valid genomes, single-gene / single-group mutation, crossover.
#ifndef FECSEARCH_SEARCH_DOMAINS_GENOME_SPACE_H_
#define FECSEARCH_SEARCH_DOMAINS_GENOME_SPACE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model_config.h"
#include "protos/experiment.pb.h"
#include "protos/candidate.pb.h"
#include "protos/pipeline_graph.pb.h"
#include "search/candidate_space.h"

namespace fecsearch {

// The genome space. Immutable after Create; thread-compatible (each caller brings its Rng).
class GenomeSpace : public CandidateSpace {
 public:
  // `spec` must have been validated; the model fixes head_dim and the layer count.
  static absl::StatusOr<GenomeSpace> Create(const SearchSpaceSpec& spec, const ModelConfig& model);

  // A uniformly random genome (every gene of every layer group drawn independently).
  Candidate Random(Rng& rng) const override;
  // Changes one gene of one layer group to another allowed value, or (1 time in 8)
  // redraws one whole layer group. The result is always valid and always differs from the
  // parent unless the space has nothing to change.
  Candidate Mutate(const Candidate& parent, Rng& rng) const override;
  // Uniform crossover: each layer group's genes come from either parent.
  Candidate Crossover(const Candidate& a, const Candidate& b, Rng& rng) const override;

  int layer_groups() const { return layer_groups_; }
  // Number of distinct genomes (capped at 2^62); for logs.
  double Size() const override;
  // One random layer group (used by the graph space to seed graphs).
  LayerCompression RandomGroup(Rng& rng) const;
  const SearchSpaceSpec& spec() const { return spec_; }

 private:
  // One searched gene of a layer group (see the GeneId enum in the .cc) and how many
  // values it may take.
  struct Gene {
    int id = 0;
    int values = 1;
  };
  void SetGene(int gene, int value, Rng& rng, LayerCompression* layer) const;

  SearchSpaceSpec spec_;
  int layer_groups_ = 1;
  int head_dim_ = 0;
  std::vector<Gene> genes_;
};

// The space the experiment's representation calls for (genomes or pipeline graphs).
absl::StatusOr<std::unique_ptr<CandidateSpace>> MakeCandidateSpace(const SearchSpaceSpec& spec,
                                                                   const ModelConfig& model, int window_length);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_GENOME_SPACE_H_
