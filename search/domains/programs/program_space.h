// Random programs and AutoML-Zero's mutations (docs/PROGRAMS.md section 1): alter one
// parameter, randomise one instruction, randomise one component function, insert or remove an
// instruction where the component's size may change.
#ifndef FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_SPACE_H_
#define FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_SPACE_H_

#include <vector>

#include "protos/program.pb.h"
#include "search/candidate_space.h"
#include "search/domains/programs/program.h"

namespace fecsearch {
namespace programs {

struct SpaceSettings {
  Shape shape;
  std::vector<ProgramOp> ops[3];  // allowed per component (may be empty: the component stays empty)
  int size[3] = {10, 2, 8}, size_min[3] = {10, 2, 8}, size_max[3] = {10, 2, 8};
  // Mutation type weights: alter, randomize instruction, randomize component, insert, remove.
  double weights[5] = {1, 1, 1, 0, 0};
};

// Immutable; thread-compatible (each caller brings its Rng).
class ProgramSpace : public CandidateSpace {
 public:
  explicit ProgramSpace(SpaceSettings settings) : s_(std::move(settings)) {}
  Candidate Random(Rng& rng) const override;
  // One mutation of the spec's types; redrawn (up to 16 times) while the program's exact form
  // is unchanged (e.g. an address redrawn to its old value), so a mutation is never a copy.
  Candidate Mutate(const Candidate& parent, Rng& rng) const override;
  // Each component function from one of the parents.
  Candidate Crossover(const Candidate& a, const Candidate& b, Rng& rng) const override;
  double Size() const override;

  // A random instruction of `op` (AutoML-Zero's SetOpAndRandomizeParams).
  ProgramInstruction RandomInstruction(ProgramOp op, Rng& rng) const;
  // Alters one parameter (AutoML-Zero's AlterParam).
  void AlterParam(ProgramInstruction* ins, Rng& rng) const;
  const SpaceSettings& settings() const { return s_; }

 private:
  void MutateOnce(Program* p, Rng& rng) const;
  SpaceSettings s_;
};

}  // namespace programs
}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_SPACE_H_
