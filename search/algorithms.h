// Search algorithms behind one ask/tell interface: regularized (aging) evolution, steady-state
// NSGA-II, random search. They never see evaluation timing: the controller may tell results in
// any order and propose while others are in flight.
#ifndef FECSEARCH_SEARCH_ALGORITHMS_H_
#define FECSEARCH_SEARCH_ALGORITHMS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "protos/evaluation.pb.h"
#include "protos/experiment.pb.h"
#include "search/candidate_space.h"

namespace fecsearch {

// A finished candidate as the algorithms see it.
struct Individual {
  int64_t id = -1;
  Candidate candidate;
  std::vector<double> objectives;  // minimised, in the spec's objective order
  double violation = 0;            // 0 = feasible; else summed relative excess over constraints
};

struct Proposal {
  Candidate candidate;
  std::vector<int64_t> parents;
  std::string operation;  // "random", "mutation", "copy", "crossover", "seed"
};

// Constraint domination (Deb): feasible beats infeasible, less violation beats more, then
// Pareto dominance.
bool Dominates(const Individual& a, const Individual& b);
// Indices of the non-dominated individuals (constraint domination).
std::vector<int> ParetoFront(const std::vector<Individual>& all);
// Indices of `all`, best first, as multi-fidelity promotion ranks a rung's results: by
// non-dominated rank (constraint domination), then larger crowding distance, then id; with a
// scalarizer (single-objective algorithms) by violation, then scalarised fitness, then id.
std::vector<int> PromotionOrder(const std::vector<Individual>& all, const std::function<double(const Individual&)>* scalarize);
// 2-D hypervolume of the feasible individuals' first two objectives against `reference`.
double Hypervolume2D(const std::vector<Individual>& all, double ref0, double ref1);

// Not thread-safe: the controller calls it from one thread.
class Algorithm {
 public:
  virtual ~Algorithm() = default;
  virtual Proposal Propose(Rng& rng) = 0;
  // A proposal made by an earlier run of the same search (resume): counts towards the
  // initial population like Propose, without drawing anything.
  virtual void CountRecordedProposal() {}
  virtual void Tell(const Individual& individual) = 0;
  virtual const std::vector<Individual>& population() const = 0;
  virtual std::string name() const = 0;
};

// The single-objective fitness of an individual (lower is better; ObjectiveSet::Scalarize).
using Scalarizer = std::function<double(const Individual&)>;

// `space` and `spec` must outlive the algorithm.
std::unique_ptr<Algorithm> MakeAlgorithm(const SearchSpec& spec, const CandidateSpace& space,
                                         std::vector<Candidate> seeds, Scalarizer scalarize);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_ALGORITHMS_H_
