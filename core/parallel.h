// Data-parallel loops inside one evaluation: a small thread pool, and matrix products split
// into fixed column blocks so that results are bit-identical whatever the thread count.
#ifndef FECSEARCH_CORE_PARALLEL_H_
#define FECSEARCH_CORE_PARALLEL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "Eigen/Core"
#include "absl/synchronization/mutex.h"

namespace fecsearch {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// `threads` threads in all, the caller included (threads - 1 are started). One ParallelFor
// at a time; a ParallelFor called from inside a task runs inline. Not copyable.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs fn(i) for every i in [0, n) and returns when all are done. Indices are handed out
  // dynamically: fn's result must not depend on which thread runs it.
  void ParallelFor(int n, const std::function<void(int)>& fn);

 private:
  // One ParallelFor: its tasks are claimed through `next` and counted down in `pending`.
  // Shared with the workers, so a worker that wakes late holds the job it saw, never a newer
  // one's function.
  struct Job {
    const std::function<void(int)>* fn = nullptr;
    int n = 0;
    std::atomic<int> next{0};
    std::atomic<int> pending{0};
  };
  void WorkerLoop();
  // Runs tasks of `job` until none is left unclaimed.
  void RunTasks(Job& job);

  std::vector<std::thread> workers_;
  absl::Mutex mu_;
  absl::CondVar wake_, done_;
  std::shared_ptr<Job> job_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

// fn(i) for i in [0, n): on `pool` when there is one, else in order on this thread.
void ParallelFor(ThreadPool* pool, int n, const std::function<void(int)>& fn);

// out = x * w^T (x: T x K, w: N x K, out: T x N), computed in tiles of kRowBlock x
// kColumnBlock outputs, each tile a task on `pool` (may be null). The tiling is fixed, so the
// result does not depend on the number of threads.
inline constexpr int kRowBlock = 256;
inline constexpr int kColumnBlock = 128;
void MatMulTransposed(const RowMatrix& x, const RowMatrix& w, RowMatrix* out, ThreadPool* pool);

// The same with `out += x * w^T`.
void MatMulTransposedAdd(const RowMatrix& x, const RowMatrix& w, RowMatrix* out, ThreadPool* pool);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_PARALLEL_H_
