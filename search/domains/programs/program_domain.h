// The programs domain ("programs", docs/PROGRAMS.md): AutoML-Zero's algorithm discovery
// behind the domain interface. Candidates are Setup/Predict/Learn programs; fitness is the
// mean squashed validation error (or accuracy) over generated tasks; the functional hash runs
// the program on a small fixed probe task.
#ifndef FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_DOMAIN_H_
#define FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_DOMAIN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protos/experiment.pb.h"
#include "search/domain.h"
#include "search/domains/programs/executor.h"
#include "search/domains/programs/program_space.h"

namespace fecsearch {
namespace programs {

// Version of the executor's semantics: part of the context fingerprint.
inline constexpr char kExecutorVersion[] = "fecsearch-programs-1";

// OK, or INVALID_ARGUMENT naming the field ("search_space.program_domain.feature_size: ...").
absl::Status ValidateProgramDomain(const ProgramDomainSpec& spec, const std::string& prefix);
// The spec with every default filled in (ops lists, size limits, task sets).
ProgramDomainSpec Normalized(const ProgramDomainSpec& spec);

// Immutable after Create; thread-safe.
class ProgramDomain : public Domain {
 public:
  // `spec.search_space().program_domain()` (absent: the demo's settings); the probe's seed
  // comes from `fec`.
  static absl::StatusOr<std::unique_ptr<ProgramDomain>> Create(const ExperimentSpec& spec, const FecSpec& fec);

  const std::string& name() const override { return name_; }
  const CandidateSpace& space() const override { return *space_; }
  absl::Status Validate(const Candidate& candidate) const override;
  std::string Describe(const Candidate& candidate) const override;
  std::vector<MetricInfo> Metrics() const override;
  std::vector<DefaultObjective> DefaultObjectives() const override;
  absl::StatusOr<EvaluationResult> Evaluate(const Candidate& candidate, int64_t candidate_id = 0,
                                            int attempt = 1) const override;
  std::vector<std::pair<std::string, std::string>> Facts() const override;
  // The live instruction count (a hit's program may be longer or shorter than the one it hit).
  void OwnMetrics(const Candidate& candidate, Objectives* objectives) const override;
  std::vector<DetailsTable> ResultDetails(const Candidate& candidate, const EvaluationResult& result) const override;

  // HashSource
  const std::string& context_fingerprint() const override { return fingerprint_; }
  absl::StatusOr<Hash128> StructuralHash(const Candidate& candidate) const override;
  bool has_probe() const override { return true; }
  absl::Status Probe(const Candidate& candidate, OutputSink& sink) const override;

  // Mean fitness over the selection tasks (docs/PROGRAMS.md section 1).
  absl::StatusOr<double> SelectionFitness(const Candidate& candidate) const;
  // Mean fitness over the given tasks.
  absl::StatusOr<double> MeanFitness(const Candidate& candidate, const std::vector<Task>& tasks) const;
  // The probe task's outputs (what Probe hashes), for the collision study and tests.
  absl::StatusOr<std::vector<double>> ProbeOutputs(const Candidate& candidate, int64_t* reached = nullptr) const;
  const ProgramDomainSpec& spec() const { return spec_; }
  const Shape& shape() const { return shape_; }
  const std::vector<Task>& search_tasks() const { return search_tasks_; }
  const ProgramSpace& program_space() const { return *space_; }

 private:
  ProgramDomain() = default;
  std::vector<Task> MakeTasks(const ProgramTaskSpec& t, uint64_t first_seed) const;

  ProgramDomainSpec spec_;
  Shape shape_;
  std::string name_ = "programs";
  std::string fingerprint_;
  std::unique_ptr<ProgramSpace> space_;
  std::vector<Task> search_tasks_;  // empty when resampled per evaluation
  std::vector<Task> selection_tasks_;
  Task probe_task_;
  uint64_t probe_seed_ = 0;
};

}  // namespace programs
}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_PROGRAMS_PROGRAM_DOMAIN_H_
