// Where evaluations run: an interface the controller fills up to its capacity. In-process
// worker threads by default; the gRPC worker pool (workers/grpc_pool.h) implements the same.
#ifndef FECSEARCH_SEARCH_EVALUATION_POOL_H_
#define FECSEARCH_SEARCH_EVALUATION_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/evaluator.h"
#include "protos/evaluation.pb.h"
#include "protos/candidate.pb.h"
#include "protos/pipeline_graph.pb.h"

namespace fecsearch {

class EvaluationPool {
 public:
  // `result` not OK: the pool gave up on the candidate (e.g. every attempt failed). A result
  // whose status is not OK means the candidate itself is invalid.
  using Done = std::function<void(absl::StatusOr<EvaluationResult> result, const std::string& worker, int attempts)>;
  virtual ~EvaluationPool() = default;
  // Queues an evaluation; `done` runs exactly once, on a pool thread.
  virtual void Submit(int64_t candidate_id, const Candidate& candidate, Done done) = 0;
  // Multi-fidelity searches: evaluates at the domain's fidelity `fidelity`
  // (Domain::EvaluateAt) or, given `lower` (the candidate's result at a lower fidelity),
  // promotes it there, doing only the work `lower` lacks (Domain::Promote). Pools that cannot
  // (SupportsFidelities() false) answer UNIMPLEMENTED.
  virtual bool SupportsFidelities() const { return false; }
  virtual void SubmitAt(int64_t /*candidate_id*/, const Candidate& /*candidate*/, int /*fidelity*/,
                        std::shared_ptr<const EvaluationResult> /*lower*/, Done done) {
    done(absl::UnimplementedError("this pool evaluates at full fidelity only"), "", 0);
  }
  // How many evaluations may be in flight now.
  virtual int Capacity() const = 0;
  // One line for logs, e.g. "2 in-process threads".
  virtual std::string Describe() const = 0;
  // Finishes (or hands back) queued work and stops.
  virtual void Shutdown() = 0;
  // The search is stopping: work not yet handed to an evaluator completes now with
  // CANCELLED instead of waiting for one (--resume dispatches it again). Work already
  // running finishes.
  virtual void CancelQueued() {}
};

// Runs evaluations on local threads. Thread-safe.
class LocalPool : public EvaluationPool {
 public:
  // An error: the evaluation could not run (the pool reports it as failed).
  using EvaluateFn = std::function<absl::StatusOr<EvaluationResult>(int64_t candidate_id, const Candidate&)>;
  // Evaluates with `evaluator` (shared, thread-safe) on `threads` threads.
  LocalPool(std::shared_ptr<const Evaluator> evaluator, int threads);
  // Any evaluation function (benchmarks, tests).
  LocalPool(EvaluateFn fn, int threads, std::string name);
  ~LocalPool() override;

  // What SubmitAt runs (lower: null for a fresh evaluation at `fidelity`). Set before the
  // first SubmitAt.
  using FidelityFn = std::function<absl::StatusOr<EvaluationResult>(int64_t candidate_id, const Candidate&, int fidelity,
                                                                   const EvaluationResult* lower)>;
  void SetFidelityFn(FidelityFn fn) { fidelity_fn_ = std::move(fn); }

  void Submit(int64_t candidate_id, const Candidate& candidate, Done done) override;
  bool SupportsFidelities() const override { return static_cast<bool>(fidelity_fn_); }
  void SubmitAt(int64_t candidate_id, const Candidate& candidate, int fidelity, std::shared_ptr<const EvaluationResult> lower,
                Done done) override;
  int Capacity() const override { return threads_; }
  std::string Describe() const override;
  void Shutdown() override;

 private:
  void Start();
  EvaluateFn fn_;
  FidelityFn fidelity_fn_;
  std::shared_ptr<const Evaluator> evaluator_;
  int threads_;
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  struct Job {
    int64_t id;
    Candidate candidate;
    Done done;
    int fidelity = -1;  // -1: Submit (the full evaluation)
    std::shared_ptr<const EvaluationResult> lower;
  };
  std::deque<Job> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_EVALUATION_POOL_H_
