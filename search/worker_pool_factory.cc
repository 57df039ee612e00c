// Evaluation pool selection.
#include "search/worker_pool_factory.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/paths.h"
#include "core/text_proto.h"
#include "workers/grpc_pool.h"

namespace fecsearch {

absl::StatusOr<std::unique_ptr<EvaluationPool>> MakeEvaluationPool(const ExperimentSpec& spec, const Domain& domain,
                                                                   int threads) {
  if (!spec.has_workers() || spec.workers().targets_size() == 0) {
    auto pool = std::make_unique<LocalPool>([&domain](int64_t id, const Candidate& c) { return domain.Evaluate(c, id); },
                                            threads, "in-process");
    if (!domain.Fidelities().empty()) {
      pool->SetFidelityFn([&domain](int64_t id, const Candidate& c, int fidelity, const EvaluationResult* lower) {
        return lower ? domain.Promote(c, *lower, fidelity, id) : domain.EvaluateAt(c, fidelity, id);
      });
    }
    return std::unique_ptr<EvaluationPool>(std::move(pool));
  }
  if (!domain.Fidelities().empty()) {
    // Workers score a rung's window subsets (worker protocol 2); the domain must say which.
    auto probe = domain.WorkAt(0, nullptr);
    if (absl::IsUnimplemented(probe.status())) {
      return absl::UnimplementedError(absl::StrCat("search.fidelity: domain ", domain.name(),
                                                   " evaluates its fidelities in process only; leave out `workers` or "
                                                   "search.fidelity"));
    }
  }
  const WorkerSpec& w = spec.workers();
  GrpcPoolOptions options;
  options.targets.assign(w.targets().begin(), w.targets().end());
  options.per_worker_concurrency = w.per_worker_concurrency();
  options.deadline = absl::Seconds(w.deadline_seconds());
  options.max_attempts = w.max_attempts();
  options.resolve_interval = absl::Seconds(w.resolve_interval_seconds());
  options.context_fingerprint = domain.context_fingerprint();
  if (!domain.Fidelities().empty()) options.fidelity_domain = &domain;
  // User-defined domains speak the domain-free EvaluateGenes.
  if (spec.search_space().representation() == SearchSpaceSpec::USER_DEFINED) {
    options.genes_domain = spec.search_space().user_domain().name();
  }
  if (w.has_tls()) {
    if (!w.tls().ca_cert_path().empty()) {
      absl::Status s = ReadFile(ResolveInputPath(w.tls().ca_cert_path()), &options.ca_cert_pem);
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("workers.tls.ca_cert_path: ", s.message()));
    } else {
      return absl::InvalidArgumentError("workers.tls.ca_cert_path: TLS needs the CA certificate that signed the workers'");
    }
    options.server_name = w.tls().server_name();
  }
  if (!w.auth_token_file().empty()) {
    std::string token;
    absl::Status s = ReadFile(ResolveInputPath(w.auth_token_file()), &token);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("workers.auth_token_file: ", s.message()));
    options.auth_token = std::string(absl::StripAsciiWhitespace(token));
  }
  auto pool = GrpcWorkerPool::Create(std::move(options));
  if (!pool.ok()) return absl::Status(pool.status().code(), absl::StrCat("workers.targets: ", pool.status().message()));
  return std::unique_ptr<EvaluationPool>(std::move(*pool));
}

}  // namespace fecsearch
