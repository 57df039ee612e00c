// The thread pool under repeated short jobs (late-waking workers must never run a newer
// job's tasks), nested loops, and tiled matrix products that do not depend on the threads.
#include "core/parallel.h"

#include <atomic>
#include <vector>

#include "gtest/gtest.h"

namespace fecsearch {
namespace {

TEST(ThreadPoolTest, EveryTaskRunsOnceAcrossManyShortJobs) {
  ThreadPool pool(3);
  for (int job = 0; job < 20000; ++job) {
    const int n = 1 + job % 5;
    std::vector<std::atomic<int>> runs(n);
    pool.ParallelFor(n, [&](int i) { runs[i].fetch_add(1); });
    for (int i = 0; i < n; ++i) ASSERT_EQ(runs[i].load(), 1) << "job " << job << " task " << i;
  }
}

TEST(ThreadPoolTest, NestedLoopsRunInlineAndOtherPoolsStillRunInParallel) {
  ThreadPool outer(2), inner(2);
  std::atomic<int> total{0};
  outer.ParallelFor(4, [&](int) {
    outer.ParallelFor(3, [&](int) { total.fetch_add(1); });  // same pool: inline
    inner.ParallelFor(2, [&](int) { total.fetch_add(10); });
  });
  EXPECT_EQ(total.load(), 4 * (3 + 20));
}

TEST(ThreadPoolTest, OneThreadAndNullPoolRunInOrder) {
  ThreadPool single(1);
  std::vector<int> order;
  single.ParallelFor(5, [&](int i) { order.push_back(i); });
  ParallelFor(nullptr, 3, [&](int i) { order.push_back(10 + i); });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 10, 11, 12}));
}

TEST(MatMulTest, TiledProductMatchesEigenAndIsTheSameForEveryThreadCount) {
  // Shapes that are not multiples of the tiles.
  const RowMatrix x = RowMatrix::Random(300, 70), w = RowMatrix::Random(290, 70);
  const RowMatrix expected = x * w.transpose();
  RowMatrix one;
  MatMulTransposed(x, w, &one, nullptr);
  EXPECT_LT((one - expected).cwiseAbs().maxCoeff(), 1e-4);
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    RowMatrix out;
    MatMulTransposed(x, w, &out, &pool);
    EXPECT_EQ(out, one) << threads << " threads";
    RowMatrix acc = RowMatrix::Ones(300, 290);
    MatMulTransposedAdd(x, w, &acc, &pool);
    EXPECT_LT((acc - (one + RowMatrix::Ones(300, 290))).cwiseAbs().maxCoeff(), 1e-5);
  }
}

}  // namespace
}  // namespace fecsearch
