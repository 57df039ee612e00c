// Thread pool and blocked matrix products.
#include "core/parallel.h"

#include <algorithm>

namespace fecsearch {
namespace {

// The pool whose task this thread is running (a nested ParallelFor on it runs inline).
thread_local const ThreadPool* running_in = nullptr;

}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  wake_.SignalAll();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunTasks() {
  const std::function<void(int)>* fn;
  int n;
  {
    absl::MutexLock lock(&mu_);
    fn = fn_;
    n = n_;
  }
  const ThreadPool* was = running_in;
  running_in = this;
  for (int i = next_.fetch_add(1); i < n; i = next_.fetch_add(1)) (*fn)(i);
  running_in = was;
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && generation_ == seen) wake_.Wait(&mu_);
      if (stop_) return;
      seen = generation_;
      ++active_;
    }
    RunTasks();
    {
      absl::MutexLock lock(&mu_);
      if (--active_ == 0) done_.SignalAll();
    }
  }
}

void ThreadPool::ParallelFor(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || running_in == this) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    ++generation_;
  }
  wake_.SignalAll();
  RunTasks();
  absl::MutexLock lock(&mu_);
  // Every index has been taken once next_ passed n; wait for the workers still running one.
  while (active_ > 0) done_.Wait(&mu_);
  fn_ = nullptr;
}

void ParallelFor(ThreadPool* pool, int n, const std::function<void(int)>& fn) {
  if (pool) {
    pool->ParallelFor(n, fn);
  } else {
    for (int i = 0; i < n; ++i) fn(i);
  }
}

namespace {

void Blocked(const RowMatrix& x, const RowMatrix& w, RowMatrix* out, ThreadPool* pool, bool add) {
  const int n = static_cast<int>(w.rows()), t = static_cast<int>(x.rows());
  const int col_blocks = (n + kColumnBlock - 1) / kColumnBlock;
  const int row_blocks = (t + kRowBlock - 1) / kRowBlock;
  ParallelFor(pool, col_blocks * row_blocks, [&](int b) {
    const int c0 = (b % col_blocks) * kColumnBlock, cn = std::min(kColumnBlock, n - c0);
    const int r0 = (b / col_blocks) * kRowBlock, rn = std::min(kRowBlock, t - r0);
    auto dst = out->block(r0, c0, rn, cn);
    if (add) {
      dst.noalias() += x.middleRows(r0, rn) * w.middleRows(c0, cn).transpose();
    } else {
      dst.noalias() = x.middleRows(r0, rn) * w.middleRows(c0, cn).transpose();
    }
  });
}

}  // namespace

void MatMulTransposed(const RowMatrix& x, const RowMatrix& w, RowMatrix* out, ThreadPool* pool) {
  out->resize(x.rows(), w.rows());
  Blocked(x, w, out, pool, false);
}

void MatMulTransposedAdd(const RowMatrix& x, const RowMatrix& w, RowMatrix* out, ThreadPool* pool) {
  Blocked(x, w, out, pool, true);
}

}  // namespace fecsearch
