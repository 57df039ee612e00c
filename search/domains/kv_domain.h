// The KV-cache compression domain (docs/DOMAIN.md): genomes ("kv-genome") or pipeline graphs
// ("kv-pipeline") of a language model's cache compression, evaluated by teacher-forced
// perplexity and exact memory accounting (core/evaluator.h), probed by each layer's
// compressed attention on captured queries, keys and values (hashing/kv_probe.h).
#ifndef FECSEARCH_SEARCH_DOMAINS_KV_DOMAIN_H_
#define FECSEARCH_SEARCH_DOMAINS_KV_DOMAIN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/evaluator.h"
#include "hashing/kv_probe.h"
#include "search/domain.h"

namespace fecsearch {

// The fidelities of `spec`'s search.fidelity ladder (its rungs, then the full evaluation) over
// `num_windows` evaluation windows, and in `windows` (when given) the window indices each
// scores: what KvDomain::Create uses, and what inspect uses to name the cache entries of lower
// rungs without loading the model. INVALID_ARGUMENT for a rung outside the windows.
absl::StatusOr<std::vector<Fidelity>> KvFidelities(const ExperimentSpec& spec, int num_windows,
                                                   std::vector<std::vector<int>>* windows = nullptr);

// Immutable after Create; thread-safe.
class KvDomain : public Domain {
 public:
  // `spec` must have been validated against the model; `fec` decides whether the probe is
  // captured (not for exact deduplication).
  static absl::StatusOr<std::unique_ptr<KvDomain>> Create(const ExperimentSpec& spec, const FecSpec& fec,
                                                          std::shared_ptr<EvaluationContext> context);

  const std::string& name() const override { return name_; }
  const CandidateSpace& space() const override { return *space_; }
  std::vector<Candidate> Seeds() const override { return seeds_; }
  absl::Status Validate(const Candidate& candidate) const override;
  std::string Describe(const Candidate& candidate) const override;
  std::string Remark(const Candidate& candidate) const override;
  std::vector<MetricInfo> Metrics() const override;
  std::vector<DefaultObjective> DefaultObjectives() const override;
  absl::StatusOr<EvaluationResult> Evaluate(const Candidate& candidate, int64_t candidate_id = 0,
                                            int attempt = 1) const override;
  // Fidelities: the spec's search.fidelity rungs (nested subsets of the evaluation windows),
  // then the full evaluation; none without search.fidelity.
  std::vector<Fidelity> Fidelities() const override { return fidelities_; }
  absl::StatusOr<EvaluationResult> EvaluateAt(const Candidate& candidate, int fidelity, int64_t candidate_id = 0,
                                              int attempt = 1) const override;
  absl::StatusOr<EvaluationResult> ResultAt(const EvaluationResult& higher, int fidelity) const override;
  absl::StatusOr<EvaluationResult> Promote(const Candidate& candidate, const EvaluationResult& lower, int fidelity,
                                           int64_t candidate_id = 0, int attempt = 1) const override;
  absl::StatusOr<FidelityWork> WorkAt(int fidelity, const EvaluationResult* lower) const override;
  absl::StatusOr<EvaluationResult> CompleteAt(int fidelity, const EvaluationResult* lower,
                                              const EvaluationResult& scored) const override;
  // Screening: (exact bits at the deployment context, mean probe attention error).
  absl::StatusOr<std::vector<double>> Predict(const Candidate& candidate) const override;
  absl::StatusOr<std::vector<double>> PredictedOf(const EvaluationResult& result) const override;
  // The indices into evaluation.eval_windows that Fidelities()[fidelity] scores.
  const std::vector<int>& FidelityWindows(int fidelity) const { return rung_windows_.at(fidelity); }
  std::vector<std::pair<std::string, std::string>> Facts() const override;
  std::vector<std::pair<std::string, std::string>> FrontColumns(const Objectives& objectives,
                                                                const ObjectiveSet& chosen) const override;
  std::vector<DetailsTable> ResultDetails(const Candidate& candidate, const EvaluationResult& result) const override;

  // HashSource
  const std::string& context_fingerprint() const override { return context_->fingerprint(); }
  absl::StatusOr<Hash128> StructuralHash(const Candidate& candidate) const override {
    return hashes_->StructuralHash(candidate);
  }
  bool has_probe() const override { return hashes_->has_probe(); }
  absl::Status Probe(const Candidate& candidate, OutputSink& sink) const override {
    return hashes_->Probe(candidate, sink);
  }

  const EvaluationContext& context() const { return *context_; }
  std::shared_ptr<const Evaluator> evaluator() const { return evaluator_; }

 private:
  KvDomain() = default;
  std::string name_;
  std::shared_ptr<EvaluationContext> context_;
  std::shared_ptr<const Evaluator> evaluator_;
  std::unique_ptr<CandidateSpace> space_;
  std::unique_ptr<KvHashSource> hashes_;
  std::vector<Candidate> seeds_;
  absl::Status CheckFidelity(int fidelity) const;
  absl::StatusOr<EvaluationResult> RunAt(const Candidate& candidate, int fidelity, const EvaluationResult* lower) const;
  std::vector<Fidelity> fidelities_;
  std::vector<std::vector<int>> rung_windows_;  // per fidelity, the last all windows
};

// The four quantities a KV-cache evaluation measures, under the names Objectives.metrics
// uses (core/evaluator.cc fills them).
std::vector<MetricInfo> KvMetrics();

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_KV_DOMAIN_H_
