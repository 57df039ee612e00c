// The user-domain worker backend.
#include "workers/domain_backend.h"

#include <utility>

namespace fecsearch {
namespace {

// A command that failed or timed out is the candidate's evaluation failing, not the worker:
// ABORTED (the pool retries it once elsewhere and keeps the worker).
absl::Status AsEvaluationFailure(const absl::Status& s) {
  if (absl::IsFailedPrecondition(s) || absl::IsDeadlineExceeded(s)) return absl::AbortedError(s.message());
  return s;
}

// One evaluation of a whole candidate by `domain`, as an EvaluateResponse.
absl::StatusOr<EvaluateResponse> EvaluateWith(const Domain& domain, const EvaluateRequest& request) {
  auto result = domain.Evaluate(request.candidate(), request.candidate_id(), request.attempt());
  if (!result.ok()) return AsEvaluationFailure(result.status());
  EvaluateResponse response;
  response.set_candidate_id(request.candidate_id());
  *response.mutable_result() = std::move(*result);
  return response;
}

class UserDomainBackend : public EvaluationBackend {
 public:
  explicit UserDomainBackend(std::unique_ptr<UserDomain> domain) : domain_(std::move(domain)) {}

  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    return EvaluateWith(*domain_, request);
  }
  absl::Status Validate(const Candidate& candidate) const override { return domain_->Validate(candidate); }
  absl::StatusOr<std::vector<double>> Probe(const Candidate& candidate) override {
    if (!domain_->spec().has_probe()) {
      return absl::UnimplementedError(absl::StrCat("domain '", domain_->spec().name(), "' declares no probe command"));
    }
    auto outputs = domain_->ProbeOutputs(candidate);
    if (!outputs.ok()) return AsEvaluationFailure(outputs.status());
    return outputs;
  }
  std::string domain() const override { return domain_->spec().name(); }
  std::string mode() const override { return "domain"; }
  std::string context_fingerprint() const override { return domain_->context_fingerprint(); }

 private:
  std::unique_ptr<UserDomain> domain_;
};

// Any in-process domain (the programs domain): Evaluate only; the controller probes locally.
class GenericDomainBackend : public EvaluationBackend {
 public:
  explicit GenericDomainBackend(std::unique_ptr<Domain> domain) : domain_(std::move(domain)) {}
  absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) override {
    return EvaluateWith(*domain_, request);
  }
  absl::Status Validate(const Candidate& candidate) const override { return domain_->Validate(candidate); }
  absl::StatusOr<std::vector<double>> Probe(const Candidate&) override {
    return absl::UnimplementedError(absl::StrCat("domain '", domain_->name(), "' is probed by the controller"));
  }
  // Empty: this backend speaks Evaluate with whole candidates (as model workers do), not the
  // gene messages of user-defined domains.
  std::string domain() const override { return ""; }
  std::string mode() const override { return "domain"; }
  std::string context_fingerprint() const override { return domain_->context_fingerprint(); }

 private:
  std::unique_ptr<Domain> domain_;
};

}  // namespace

std::unique_ptr<EvaluationBackend> MakeDomainBackend(std::unique_ptr<Domain> domain) {
  return std::make_unique<GenericDomainBackend>(std::move(domain));
}

std::unique_ptr<EvaluationBackend> MakeUserDomainBackend(std::unique_ptr<UserDomain> domain) {
  return std::make_unique<UserDomainBackend>(std::move(domain));
}

}  // namespace fecsearch
