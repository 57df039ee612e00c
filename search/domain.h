// The domain interface: everything the engine knows about what is searched. The controller,
// the cache, the database, `inspect`, the report and the worker protocol go through it and
// hold no domain-specific code (docs/DOMAINS.md). Domains: the KV-cache compression genome
// and pipeline graphs (search/domains/kv_domain.h), and domains a user declares in the
// experiment spec (search/domains/user_domain.h).
#ifndef FECSEARCH_SEARCH_DOMAIN_H_
#define FECSEARCH_SEARCH_DOMAIN_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "hashing/candidate_hasher.h"
#include "protos/candidate.pb.h"
#include "protos/evaluation.pb.h"
#include "protos/experiment.pb.h"
#include "search/objectives.h"
#include "search/candidate_space.h"

namespace fecsearch {

// A table of text for reports: a title, a header row and rows.
struct DetailsTable {
  std::string id;  // HTML id of the table
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

// A cheaper way to evaluate a candidate than the full evaluation (fewer windows, fewer epochs):
// multi-fidelity search and probe screening use them through the domain.
struct Fidelity {
  std::string name;             // "1 window", "epochs/4"
  double relative_cost = 1;     // against the full evaluation (0 < cost <= 1)
  // What the fidelity measures, stably across runs ("eval_windows 0,2"): the cache keys
  // results of lower fidelities by (functional hash, this), so that two ladders sharing a
  // database never answer each other's rungs.
  std::string key;
};

// The cache key of a lower fidelity's result for a candidate whose full result is cached under
// `key` (the full evaluation keeps `key` itself): what the controller looks up and stores, and
// what inspect derives to name the rung of an entry.
Hash128 FidelityCacheKey(const Hash128& key, const Fidelity& fidelity);

// Immutable after creation; thread-safe (the controller, hasher threads and evaluation
// threads call it concurrently).
class Domain : public HashSource {
 public:
  ~Domain() override = default;

  // "kv-genome", "kv-pipeline", "user:NAME": recorded with every candidate and experiment.
  virtual const std::string& name() const = 0;

  // Candidates: random ones, mutations, crossovers (each caller brings its Rng).
  virtual const CandidateSpace& space() const = 0;
  // Candidates the search starts from besides random ones.
  virtual std::vector<Candidate> Seeds() const { return {}; }
  // OK, or INVALID_ARGUMENT naming the field ("genes.lr: 3 is outside 1e-4..0.1").
  virtual absl::Status Validate(const Candidate& candidate) const = 0;
  // One line ("L0-1: K int4-asym-tok16 | V int4-asym-tok16"; "lr=0.003 hidden=32").
  virtual std::string Describe(const Candidate& candidate) const = 0;
  // What the candidate does that the report should flag, or "" (e.g. graph-only operators).
  virtual std::string Remark(const Candidate&) const { return ""; }

  // What it measures and what the search optimises by default.
  virtual std::vector<MetricInfo> Metrics() const = 0;
  virtual std::vector<DefaultObjective> DefaultObjectives() const = 0;

  // Evaluates in this process. An error: the evaluation could not run (retried or recorded
  // as failed); a result whose status is not OK: the candidate is invalid.
  virtual absl::StatusOr<EvaluationResult> Evaluate(const Candidate& candidate, int64_t candidate_id = 0,
                                                    int attempt = 1) const = 0;

  // Metrics that belong to the candidate rather than to the function it computes (a
  // program's live instruction count): set on every result, cache hits included, since a hit
  // shares only its function's objectives. Default: none.
  virtual void OwnMetrics(const Candidate&, Objectives*) const {}

  // The domain's fidelities, cheapest first, the full evaluation last; empty: only the full
  // evaluation (today every shipped domain).
  virtual std::vector<Fidelity> Fidelities() const { return {}; }
  // Evaluates at Fidelities()[fidelity]; the last (or any, for a domain without fidelities) is
  // Evaluate.
  virtual absl::StatusOr<EvaluationResult> EvaluateAt(const Candidate& candidate, int fidelity, int64_t candidate_id = 0,
                                                      int attempt = 1) const {
    const int n = static_cast<int>(Fidelities().size());
    if (n == 0 || fidelity == n - 1) return Evaluate(candidate, candidate_id, attempt);
    return absl::InvalidArgumentError("fidelity " + std::to_string(fidelity) + " is not one of this domain's");
  }
  // The result Fidelities()[fidelity] gives, taken from `higher`, a result of the same
  // candidate at that fidelity or above (so a cache entry of a higher rung answers a lookup for
  // a lower one); NOT_FOUND if `higher` does not hold it (e.g. stored before fidelities).
  virtual absl::StatusOr<EvaluationResult> ResultAt(const EvaluationResult& higher, int fidelity) const {
    const int n = static_cast<int>(Fidelities().size());
    if (n == 0 || fidelity == n - 1) return higher;
    return absl::UnimplementedError("this domain cannot derive a lower fidelity's result from a higher one's");
  }
  // Promotes a candidate evaluated at a lower fidelity (`lower`) to `fidelity`, doing only the
  // work `lower` lacks where the domain can (the KV-cache domain scores only the missing
  // windows). The result is what EvaluateAt(candidate, fidelity) gives. Default: EvaluateAt.
  virtual absl::StatusOr<EvaluationResult> Promote(const Candidate& candidate, const EvaluationResult& /*lower*/, int fidelity,
                                                   int64_t candidate_id = 0, int attempt = 1) const {
    return EvaluateAt(candidate, fidelity, candidate_id, attempt);
  }

  // Remote evaluation at fidelities (the worker protocol's window subsets, protos/worker.proto):
  // what a worker must score to take a candidate whose result at a lower fidelity is `lower`
  // (null: none) to `fidelity`, and how its answer becomes the result at `fidelity`.
  // Promote(c, *lower, f) gives what CompleteAt(f, lower, <the worker's answer to WorkAt>)
  // does. Default: UNIMPLEMENTED (the domain's fidelities run in process only).
  struct FidelityWork {
    bool whole = false;        // a whole evaluation: the request names no windows
    std::vector<int> windows;  // otherwise the windows to score; empty: `lower` already answers
  };
  virtual absl::StatusOr<FidelityWork> WorkAt(int /*fidelity*/, const EvaluationResult* /*lower*/) const {
    return absl::UnimplementedError("this domain's fidelities are not evaluated by remote workers");
  }
  // INVALID_ARGUMENT if `scored` is not what WorkAt asked for (a worker answered other windows).
  virtual absl::StatusOr<EvaluationResult> CompleteAt(int /*fidelity*/, const EvaluationResult* /*lower*/,
                                                      const EvaluationResult& /*scored*/) const {
    return absl::UnimplementedError("this domain's fidelities are not evaluated by remote workers");
  }

  // Probe screening (search.screen): a predicted point of the candidate, lower better in each
  // coordinate, computed without evaluating it (the KV-cache domain: exact bits, mean probe
  // attention error); PredictedOf gives the same point from a full result. UNIMPLEMENTED: the
  // domain has no predictor.
  virtual absl::StatusOr<std::vector<double>> Predict(const Candidate&) const {
    return absl::UnimplementedError("this domain has no predictor for search.screen");
  }
  virtual absl::StatusOr<std::vector<double>> PredictedOf(const EvaluationResult&) const {
    return absl::UnimplementedError("this domain has no predictor for search.screen");
  }

  // Lines about the evaluation context for the report and logs ("uncompressed perplexity",
  // "5.0294").
  virtual std::vector<std::pair<std::string, std::string>> Facts() const { return {}; }
  // The front table's columns for one result, as (header, value) pairs; by default each
  // objective under "name (unit)". The KV-cache domain shows bits, ratio, perplexity, increase.
  virtual std::vector<std::pair<std::string, std::string>> FrontColumns(const Objectives& objectives,
                                                                        const ObjectiveSet& chosen) const;
  // More about one result for the report (e.g. per-layer diagnostics), or none.
  virtual std::vector<DetailsTable> ResultDetails(const Candidate&, const EvaluationResult&) const { return {}; }
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAIN_H_
