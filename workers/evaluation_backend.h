// What a worker evaluates with: the built-in evaluator (the model), an external command per
// candidate, or a simulated evaluator that sleeps (for dispatch benchmarks).
#ifndef FECSEARCH_WORKERS_EVALUATION_BACKEND_H_
#define FECSEARCH_WORKERS_EVALUATION_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/evaluator.h"
#include "protos/worker.pb.h"

namespace fecsearch {

using rpc::EvaluateRequest;
using rpc::EvaluateResponse;

// Thread-safe: a worker calls Evaluate from several threads at once.
class EvaluationBackend {
 public:
  virtual ~EvaluationBackend() = default;
  // A response for the request, or an error when the evaluation itself could not run (the
  // candidate being invalid is a response whose result carries the status).
  virtual absl::StatusOr<EvaluateResponse> Evaluate(const EvaluateRequest& request) = 0;
  // Checks a candidate before it is admitted (cheap; no evaluation): an error names the bad
  // field. Backends that cannot tell accept everything.
  virtual absl::Status Validate(const Candidate&) const { return absl::OkStatus(); }
  // A user-defined domain's probe outputs for `candidate` (ProbeGenes); backends without a
  // probe answer UNIMPLEMENTED.
  virtual absl::StatusOr<std::vector<double>> Probe(const Candidate&) {
    return absl::UnimplementedError(absl::StrCat("this worker (mode ", mode(), ") has no probe"));
  }
  // How many evaluation windows it scores, which EvaluateRequest.windows indexes (protocol 2);
  // 0: whole evaluations only (requests naming windows are refused before they reach it).
  virtual int WindowCount() const { return 0; }
  // The user-defined domain it evaluates (GenesRequest.domain), or "" for the KV-cache domain.
  virtual std::string domain() const { return ""; }
  virtual std::string mode() const = 0;
  // Fingerprint of what this backend evaluates under ("" if it cannot tell).
  virtual std::string context_fingerprint() const = 0;
};

// The built-in evaluator on a loaded model; scores window subsets (EvaluateRequest.windows).
std::unique_ptr<EvaluationBackend> MakeModelBackend(std::shared_ptr<EvaluationContext> context);

// Runs `argv` (no shell) once per candidate: writes the request as protobuf's canonical JSON
// to its stdin, reads an EvaluateResponse (or EvaluationResult) as JSON from its stdout,
// kills it after `timeout`, and on failure reports the tail of its stderr.
std::unique_ptr<EvaluationBackend> MakeCommandBackend(std::vector<std::string> argv, absl::Duration timeout);

// Sleeps `seconds` and returns objectives computed from the candidate's bytes: a synthetic
// domain whose evaluation costs only time (dispatch and scaling benchmarks). Named
// "simulated" everywhere it reports itself.
std::unique_ptr<EvaluationBackend> MakeSimulatedBackend(double seconds);

}  // namespace fecsearch

#endif  // FECSEARCH_WORKERS_EVALUATION_BACKEND_H_
