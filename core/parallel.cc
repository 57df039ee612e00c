// Thread pool and blocked matrix products.
#include "core/parallel.h"

#include <algorithm>

namespace fecsearch {
namespace {

// The pool whose task this thread is running (a nested ParallelFor on it runs inline).
thread_local const ThreadPool* running_in = nullptr;

// Eigen sizes the blocks of its matrix products from the cache sizes CPUID reports, and the
// depth block (from L1) sets how a product's sums are split and accumulated: a 32 KiB L1
// (AMD Zen, Intel before Ice Lake) and a 48 KiB one (Intel since Ice Lake) give products that
// differ in their last bits, and CHAI's choice of representatives (a tie between the two
// members of a two-head cluster) turns that into ~0.1 nats of mean NLL. Fixed sizes, set
// before main, make every machine block, and so round, the same way. 48 KiB is the L1 of the
// machine that recorded tests/data/pre_domain.
const bool kFixedEigenCacheSizes = [] {
  Eigen::setCpuCacheSizes(48 << 10, 2 << 20, 32 << 20);
  return true;
}();

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

void ThreadPool::RunTasks(Job& job) {
  const ThreadPool* was = running_in;
  running_in = this;
  for (int i = job.next.fetch_add(1); i < job.n; i = job.next.fetch_add(1)) {
    (*job.fn)(i);
    if (job.pending.fetch_sub(1) == 1) {
      absl::MutexLock lock(&mu_);  // the last task: wake the caller
      done_.SignalAll();
    }
  }
  running_in = was;
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    std::shared_ptr<Job> job;
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && generation_ == seen) wake_.Wait(&mu_);
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    if (job) RunTasks(*job);
  }
}

void ThreadPool::ParallelFor(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1 || running_in == this) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->pending.store(n);
  {
    absl::MutexLock lock(&mu_);
    job_ = job;
    ++generation_;
  }
  wake_.SignalAll();
  RunTasks(*job);
  absl::MutexLock lock(&mu_);
  // Every task has been claimed; wait until the ones running elsewhere have finished.
  while (job->pending.load() > 0) done_.Wait(&mu_);
  job_.reset();
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
