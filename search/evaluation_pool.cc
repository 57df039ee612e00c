// In-process evaluation threads.
#include "search/evaluation_pool.h"

#include "absl/strings/str_cat.h"

namespace fecsearch {

LocalPool::LocalPool(std::shared_ptr<const Evaluator> evaluator, int threads)
    : evaluator_(std::move(evaluator)), threads_(std::max(1, threads)), name_("in-process") {
  fn_ = [e = evaluator_.get()](int64_t, const Candidate& c) -> absl::StatusOr<EvaluationResult> { return e->Evaluate(c); };
  Start();
}

LocalPool::LocalPool(EvaluateFn fn, int threads, std::string name)
    : fn_(std::move(fn)), threads_(std::max(1, threads)), name_(std::move(name)) {
  Start();
}

void LocalPool::Start() {
  for (int i = 0; i < threads_; ++i) {
    workers_.emplace_back([this, i] {
      const std::string worker = absl::StrCat("local-", i);
      while (true) {
        Job job;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
          if (queue_.empty()) return;
          job = std::move(queue_.front());
          queue_.pop_front();
        }
        absl::StatusOr<EvaluationResult> r =
            job.fidelity < 0 ? fn_(job.id, job.candidate) : fidelity_fn_(job.id, job.candidate, job.fidelity, job.lower.get());
        job.done(std::move(r), worker, 1);
      }
    });
  }
}

LocalPool::~LocalPool() { Shutdown(); }

void LocalPool::Submit(int64_t candidate_id, const Candidate& candidate, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({candidate_id, candidate, std::move(done)});
  }
  cv_.notify_one();
}

void LocalPool::SubmitAt(int64_t candidate_id, const Candidate& candidate, int fidelity,
                         std::shared_ptr<const EvaluationResult> lower, Done done) {
  if (!fidelity_fn_) {
    done(absl::UnimplementedError("this pool evaluates at full fidelity only"), "", 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({candidate_id, candidate, std::move(done), fidelity, std::move(lower)});
  }
  cv_.notify_one();
}

std::string LocalPool::Describe() const { return absl::StrCat(threads_, " ", name_, " thread", threads_ == 1 ? "" : "s"); }

void LocalPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

}  // namespace fecsearch
