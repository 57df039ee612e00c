// What a search proposes: a portable random generator and the candidate-space interface every
// domain implements.
#ifndef FECSEARCH_SEARCH_CANDIDATE_SPACE_H_
#define FECSEARCH_SEARCH_CANDIDATE_SPACE_H_

#include <cstdint>

#include "protos/candidate.pb.h"

namespace fecsearch {

// A small portable generator (splitmix64): the same seed gives the same search on every
// platform, unlike the std distributions.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  int Uniform(int n) { return n <= 1 ? 0 : static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  // Uniform in [0, 1).
  double Real() { return (Next() >> 11) * 0x1.0p-53; }
  bool Bernoulli(double p) { return Real() < p; }
  uint64_t state() const { return state_; }

 private:
  uint64_t state_;
};

// What a search can propose: random candidates, mutations, crossovers. Each domain has one
// (search/domain.h): KV-cache genomes (search/domains/genome_space.h), pipeline graphs
// (search/domains/graph_space.h), user-declared genes (search/domains/user_domain.h).
// Immutable; thread-compatible (each caller brings its Rng).
class CandidateSpace {
 public:
  virtual ~CandidateSpace() = default;
  virtual Candidate Random(Rng& rng) const = 0;
  // Always valid; differs from the parent unless the space has nothing to change.
  virtual Candidate Mutate(const Candidate& parent, Rng& rng) const = 0;
  virtual Candidate Crossover(const Candidate& a, const Candidate& b, Rng& rng) const = 0;
  // Number of distinct candidates (capped at 2^62; for graphs, of the genome part); for logs.
  virtual double Size() const = 0;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_CANDIDATE_SPACE_H_
