// The programs executor against a compiled, hand-written C++ loop doing the same arithmetic
// for the demo's solution program (gradient-descent linear regression), in the same run:
//   bazel run -c opt //search:programs_benchmark
// Prints both times and their ratio (docs/BENCHMARKS.md; target: the executor at >= 50 % of
// the hand-written loop's speed), and checks both compute the same fitness bit for bit.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "search/domains/programs/executor.h"

namespace fecsearch {
namespace programs {
namespace {

ProgramInstruction I(ProgramOp op, int in1, int in2, int out, double data = 0) {
  ProgramInstruction i;
  i.set_op(op), i.set_in1(in1), i.set_in2(in2), i.set_out(out), i.set_data(data);
  return i;
}

// Setup: s2 = lr. Predict: s1 = dot(v1, v0). Learn: s3 = s0 - s1; s3 = s2 * s3;
// v2 = s3 * v0; v1 = v1 + v2.
Program Solution(double lr) {
  Program p;
  *p.add_setup() = I(SCALAR_CONST_SET, 0, 0, 2, lr);
  *p.add_predict() = I(VECTOR_INNER_PRODUCT, 1, 0, 1);
  *p.add_learn() = I(SCALAR_DIFF, 0, 1, 3);
  *p.add_learn() = I(SCALAR_PRODUCT, 2, 3, 3);
  *p.add_learn() = I(SCALAR_VECTOR_PRODUCT, 3, 0, 2);
  *p.add_learn() = I(VECTOR_SUM, 1, 2, 1);
  return p;
}

// The same arithmetic, written by hand for F = 4 (the protocol's error bound included).
__attribute__((noinline)) double HandWritten(const Task& t, double lr, double max_abs_error) {
  constexpr int F = 4;
  double w[F] = {0, 0, 0, 0};
  for (int i = 0; i < t.num_train(); ++i) {
    const double* x = t.train_x.data() + i * F;
    double p = 0;
    for (int j = 0; j < F; ++j) p += w[j] * x[j];
    const double y = t.train_y[i];
    const double err = std::fabs(y - p);
    if (std::isnan(err) || err > max_abs_error) return 0;
    double d = y - p;
    d = lr * d;
    double g[F];
    for (int j = 0; j < F; ++j) g[j] = d * x[j];
    for (int j = 0; j < F; ++j) w[j] = w[j] + g[j];
  }
  double loss = 0;
  for (int i = 0; i < t.num_valid(); ++i) {
    const double* x = t.valid_x.data() + i * F;
    double p = 0;
    for (int j = 0; j < F; ++j) p += w[j] * x[j];
    if (!std::isfinite(p)) return 0;
    const double e = t.valid_y[i] - p;
    if (std::isnan(e) || std::fabs(e) > max_abs_error) return 0;
    loss += e * e;
  }
  return 1.0 - (2.0 / M_PI) * std::atan(std::sqrt(loss / t.num_valid()));
}

template <typename Fn>
double BestSeconds(int repeats, int inner, Fn fn) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < inner; ++k) fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
  }
  return best;
}

int Main() {
  const Shape shape{4, 4, 3, 1};
  const double lr = 0.01;
  const Task task = GenerateTask(ProgramTaskSpec::SCALAR_LINEAR_REGRESSION, 1, 4, 100000, 1000);
  auto compiled = CompiledProgram::Compile(Solution(lr), shape);
  if (!compiled.ok()) return 1;
  RunOptions options;
  options.max_abs_error = 100;
  volatile double sink = 0;
  const double a = RunTask(*compiled, task, options).fitness;
  const double b = HandWritten(task, lr, 100);
  std::printf("fitness: executor %.17g, hand-written %.17g (%s)\n", a, b, a == b ? "identical" : "DIFFERENT");
  const int repeats = 15, inner = 3;
  const double exec = BestSeconds(repeats, inner, [&] { sink = sink + RunTask(*compiled, task, options).fitness; });
  const double hand = BestSeconds(repeats, inner, [&] { sink = sink + HandWritten(task, lr, 100); });
  const double examples = task.num_train() + task.num_valid();
  std::printf("executor:     %.3f ms per task (%.1f ns per example)\n", 1e3 * exec, 1e9 * exec / examples);
  std::printf("hand-written: %.3f ms per task (%.1f ns per example)\n", 1e3 * hand, 1e9 * hand / examples);
  std::printf("executor speed / hand-written speed: %.2f (target >= 0.50)\n", hand / exec);
  return a == b ? 0 : 1;
}

}  // namespace
}  // namespace programs
}  // namespace fecsearch

int main() { return fecsearch::programs::Main(); }
