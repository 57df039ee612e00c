// A domain assembled from parts: a candidate space, the metrics, and an evaluation function;
// no probe (candidates are keyed by their exact form). For tests and benchmarks that drive the
// generic engine with synthetic evaluations, which their names say.
#ifndef FECSEARCH_SEARCH_SIMPLE_DOMAIN_H_
#define FECSEARCH_SEARCH_SIMPLE_DOMAIN_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "search/domain.h"

namespace fecsearch {

// Thread-safe if `evaluate` and `describe` are.
class SimpleDomain : public Domain {
 public:
  using EvaluateFn = std::function<absl::StatusOr<EvaluationResult>(const Candidate&)>;
  // `space` must outlive the domain.
  SimpleDomain(std::string name, const CandidateSpace* space, std::vector<MetricInfo> metrics,
               std::vector<DefaultObjective> defaults, EvaluateFn evaluate,
               std::function<std::string(const Candidate&)> describe = nullptr)
      : name_(std::move(name)),
        context_(absl::StrCat("simple:", name_)),
        space_(space),
        metrics_(std::move(metrics)),
        defaults_(std::move(defaults)),
        evaluate_(std::move(evaluate)),
        describe_(std::move(describe)) {}

  const std::string& name() const override { return name_; }
  const CandidateSpace& space() const override { return *space_; }
  absl::Status Validate(const Candidate&) const override { return absl::OkStatus(); }
  std::string Describe(const Candidate& c) const override { return describe_ ? describe_(c) : c.ShortDebugString(); }
  std::vector<MetricInfo> Metrics() const override { return metrics_; }
  std::vector<DefaultObjective> DefaultObjectives() const override { return defaults_; }
  absl::StatusOr<EvaluationResult> Evaluate(const Candidate& c, int64_t, int) const override { return evaluate_(c); }
  const std::string& context_fingerprint() const override { return context_; }
  absl::StatusOr<Hash128> StructuralHash(const Candidate& c) const override { return ExactHash(context_, c); }
  bool has_probe() const override { return false; }
  absl::Status Probe(const Candidate&, OutputSink&) const override {
    return absl::UnimplementedError("a simple domain has no probe");
  }

 private:
  std::string name_, context_;
  const CandidateSpace* space_;
  std::vector<MetricInfo> metrics_;
  std::vector<DefaultObjective> defaults_;
  EvaluateFn evaluate_;
  std::function<std::string(const Candidate&)> describe_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_SIMPLE_DOMAIN_H_
