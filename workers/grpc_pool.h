// The controller's gRPC worker pool, behind the same EvaluationPool interface as the
// in-process threads: one channel per worker address (from a list, a DNS name re-resolved
// periodically, or a file re-read when it changes), the capacity each worker reports, a
// deadline on every call, retries on UNAVAILABLE declared in the channel's service config,
// health-checked channels, and failed calls dispatched again to another worker.
#ifndef FECSEARCH_WORKERS_GRPC_POOL_H_
#define FECSEARCH_WORKERS_GRPC_POOL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "search/domain.h"
#include "search/evaluation_pool.h"

namespace fecsearch {

struct GrpcPoolOptions {
  // "host:port", "dns:///name:port" or "file:PATH".
  std::vector<std::string> targets;
  // Candidates in flight per worker; 0 = what the worker reports.
  int per_worker_concurrency = 0;
  absl::Duration deadline = absl::Seconds(600);
  // Dispatches per candidate before it is reported failed.
  int max_attempts = 5;
  // TLS when set: PEM of the CA that signed the workers' certificates.
  std::string ca_cert_pem;
  // Host name the certificates are checked against, if not the target's.
  std::string server_name;
  std::string auth_token;
  absl::Duration resolve_interval = absl::Seconds(10);
  // Workers evaluating under another context are not used ("" = accept any).
  std::string context_fingerprint;
  // Set: candidates are a user-defined domain's genes, sent with the domain-free EvaluateGenes
  // under this domain name; else Evaluate.
  std::string genes_domain;
  // Set (a multi-fidelity search): SubmitAt asks this domain what to score (Domain::WorkAt),
  // sends that window subset to a worker of protocol 2 that scores windows
  // (DescribeResponse.evaluation_windows > 0), checks the answer and completes the rung's
  // result (Domain::CompleteAt). Must outlive the pool.
  const Domain* fidelity_domain = nullptr;
};

// Expands the targets into backend addresses: a list stays as it is, a dns:/// name becomes one
// address per A/AAAA record, a file: its non-empty, non-comment lines. Errors name the target.
absl::StatusOr<std::vector<std::string>> ResolveTargets(const std::vector<std::string>& targets);

class GrpcWorkerPool : public EvaluationPool {
 public:
  // Validates the targets (at least one must resolve) and starts connecting.
  static absl::StatusOr<std::unique_ptr<GrpcWorkerPool>> Create(GrpcPoolOptions options);
  ~GrpcWorkerPool() override;

  void Submit(int64_t candidate_id, const Candidate& candidate, Done done) override;
  bool SupportsFidelities() const override;
  void SubmitAt(int64_t candidate_id, const Candidate& candidate, int fidelity, std::shared_ptr<const EvaluationResult> lower,
                Done done) override;
  int Capacity() const override;
  std::string Describe() const override;
  void Shutdown() override;
  void CancelQueued() override;

  // Backends currently known, healthy or not ("address (name, capacity c, healthy)").
  std::vector<std::string> Backends() const;

  class Impl;

 private:
  explicit GrpcWorkerPool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_WORKERS_GRPC_POOL_H_
