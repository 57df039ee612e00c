// User-defined domains, no C++ needed (docs/DOMAINS.md): a gene space declared in the
// experiment spec (categorical, integer and float genes, conditional genes), objectives with
// directions, and commands that evaluate and probe a candidate through the versioned JSON
// protocol fecsearch.domain.v1 (or gRPC workers speaking EvaluateGenes / ProbeGenes).
#ifndef FECSEARCH_SEARCH_DOMAINS_USER_DOMAIN_H_
#define FECSEARCH_SEARCH_DOMAINS_USER_DOMAIN_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "protos/domain.pb.h"
#include "search/domain.h"

namespace fecsearch {

// The declared genes: random draws, mutation and crossover of each type (docs/DOMAINS.md,
// "Mutation and crossover"), validation. Immutable; thread-compatible.
class GeneSpace : public CandidateSpace {
 public:
  // `spec` must have passed ValidateUserDomain.
  explicit GeneSpace(const UserDomainSpec& spec) : spec_(spec) {}
  Candidate Random(Rng& rng) const override;
  Candidate Mutate(const Candidate& parent, Rng& rng) const override;
  Candidate Crossover(const Candidate& a, const Candidate& b, Rng& rng) const override;
  double Size() const override;
  // OK, or INVALID_ARGUMENT naming the gene ("genes.lr: 3 is outside 0.0001..0.1").
  absl::Status Validate(const Candidate& candidate) const;

 private:
  // Fills the genes after `from` in declaration order: active genes keep `keep`'s value when it
  // has a valid one, else get a random value; inactive genes are dropped.
  Candidate Complete(const std::vector<const GeneValue*>& keep, Rng& rng) const;
  GeneValue RandomValue(const GeneSpec& g, Rng& rng) const;
  // A value of `g` other than `v` (if `g` has another).
  GeneValue MutateValue(const GeneSpec& g, const GeneValue& v, Rng& rng) const;
  UserDomainSpec spec_;
};

// Field-by-field checks of a user domain's spec; errors name the field path under `prefix`
// ("search_space.user_domain.genes[2].active_if.gene: ...").
absl::Status ValidateUserDomain(const UserDomainSpec& spec, const std::string& prefix);

// A gene's value as protocol JSON (string, integer or number), and back.
nlohmann::json GeneJson(const GeneValue& v);
// The candidate's genes as the protocol's "genes" object.
nlohmann::json GenesJson(const Candidate& c);

// Thread-safe.
class UserDomain : public Domain {
 public:
  // `spec` is the experiment's; its search_space.user_domain must be set.
  static absl::StatusOr<std::unique_ptr<UserDomain>> Create(const ExperimentSpec& spec);

  const std::string& name() const override { return name_; }
  const CandidateSpace& space() const override { return space_; }
  std::vector<Candidate> Seeds() const override { return seeds_; }
  absl::Status Validate(const Candidate& candidate) const override { return space_.Validate(candidate); }
  std::string Describe(const Candidate& candidate) const override;
  std::vector<MetricInfo> Metrics() const override;
  std::vector<DefaultObjective> DefaultObjectives() const override;
  absl::StatusOr<EvaluationResult> Evaluate(const Candidate& candidate, int64_t candidate_id = 0,
                                            int attempt = 1) const override;
  std::vector<std::pair<std::string, std::string>> Facts() const override;

  // HashSource: no structure beyond the genes; the probe command (if any).
  const std::string& context_fingerprint() const override { return fingerprint_; }
  absl::StatusOr<Hash128> StructuralHash(const Candidate& candidate) const override;
  std::string ExactForm(const Candidate& candidate) const override;
  bool has_probe() const override;
  absl::Status Probe(const Candidate& candidate, OutputSink& sink) const override;

  // The probe's numbers for `candidate` (command or worker), without hashing.
  absl::StatusOr<std::vector<double>> ProbeOutputs(const Candidate& candidate) const;
  const UserDomainSpec& spec() const { return spec_; }
  // Probe runs done twice to check determinism (the first candidates').
  static constexpr int kDeterminismChecks = 3;

 private:
  explicit UserDomain(const UserDomainSpec& spec) : spec_(spec), space_(spec) {}
  // One command run with the protocol: the parsed response, or an error quoting the output.
  absl::StatusOr<nlohmann::json> RunCommand(const DomainCommand& command, const std::string& what,
                                            const nlohmann::json& request) const;

  UserDomainSpec spec_;
  GeneSpace space_;
  std::string name_, fingerprint_;
  std::vector<Candidate> seeds_;
  int64_t probe_identity_[2] = {0, 0};  // hashed before the probe's numbers
  int mantissa_bits_ = 8;  // for comparing the determinism check's two runs canonically
  mutable std::atomic<int> probes_checked_{0};
  std::shared_ptr<grpc::Channel> probe_channel_;  // probe_worker: one channel, the workers' TLS
  std::string probe_token_;                       // and token
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_USER_DOMAIN_H_
