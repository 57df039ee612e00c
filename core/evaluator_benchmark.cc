// Benchmarks of the evaluator on one core: the uncompressed forward pass in tokens/s and
// GFLOP/s against this machine's single-core matrix-multiply peak measured in the same run,
// one full evaluation (4 windows x 1024 tokens), and what compression adds on top.
//   bazel run //core:evaluator_benchmark
#include <chrono>
#include <cmath>
#include <memory>

#include "Eigen/Core"
#include "benchmark/benchmark.h"
#include "core/evaluator.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"

namespace fecsearch {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Single-core GEMM rate (Eigen, 1024^3, fp32), measured once per process: the peak the
// forward pass is compared with.
double MatmulPeakGflops() {
  static const double peak = [] {
    Eigen::setNbThreads(1);
    const int n = 1024;
    Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
    c.noalias() = a * b;  // warm up
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const double t0 = Now();
      c.noalias() = a * b;
      const double dt = Now() - t0;
      best = std::max(best, 2.0 * n * n * n / dt / 1e9);
    }
    benchmark::DoNotOptimize(c.data());
    return best;
  }();
  return peak;
}

std::shared_ptr<EvaluationContext> Context() {
  static std::shared_ptr<EvaluationContext> ctx = [] {
    EvaluationSpec spec;
    spec.set_threads(1);
    auto c = EvaluationContext::Create(spec);
    if (!c.ok()) {
      std::fprintf(stderr, "%s\n", std::string(c.status().message()).c_str());
      std::abort();
    }
    (*c)->baseline();
    return *c;
  }();
  return ctx;
}

// FLOPs of one window's forward pass: linear layers, lm_head and causal attention.
double WindowFlops(const ModelConfig& c, int T) {
  const double q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const double linear = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3.0 * c.hidden_size * c.intermediate_size;
  const double per_token = 2 * (linear * c.num_layers + c.hidden_size * c.vocab_size);
  const double attention = 4.0 * c.head_dim * c.num_heads * c.num_layers * (T * (T + 1.0) / 2);
  return per_token * T + attention;
}

void BM_MatmulPeak(benchmark::State& state) {
  const int n = 1024;
  Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * n * n * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_MatmulPeak)->Unit(benchmark::kMillisecond)->UseRealTime();

// The uncompressed forward pass of the 4 evaluation windows.
double uncompressed_seconds = 0;

void BM_UncompressedForward(benchmark::State& state) {
  auto ctx = Context();
  ModelPlan exact;
  exact.exact = true;
  const auto& windows = ctx->spec().eval_windows();
  double seconds = 0;
  int64_t iters = 0;
  for (auto _ : state) {
    const double t0 = Now();
    for (int w : windows) benchmark::DoNotOptimize(ForwardWindow(ctx->model(), ctx->Window(w), exact, ctx->chunk()).nll_sum);
    seconds += Now() - t0;
    ++iters;
  }
  const double per_eval = seconds / iters;
  uncompressed_seconds = per_eval;
  const double flops = windows.size() * WindowFlops(ctx->config(), ctx->window_length());
  const double tokens = windows.size() * ctx->window_length();
  state.counters["tokens/s"] = tokens / per_eval;
  state.counters["GFLOP/s"] = flops / per_eval / 1e9;
  state.counters["GFLOP"] = flops / 1e9;
  state.counters["peak_GFLOP/s"] = MatmulPeakGflops();
  state.counters["fraction_of_peak"] = flops / per_eval / 1e9 / MatmulPeakGflops();
}
BENCHMARK(BM_UncompressedForward)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);

// One full evaluation (Evaluator::Evaluate: compile, resolve, 4 windows, memory accounting,
// probe diagnostics) of a compressed configuration; overhead against the uncompressed
// forward pass measured above in the same run.
void BM_FullEvaluation(benchmark::State& state, const std::string& genome) {
  auto ctx = Context();
  Evaluator evaluator(ctx);
  Candidate c;
  if (!ParseTextProto(genome, "benchmark", c.mutable_genome()).ok()) std::abort();
  evaluator.Evaluate(c);  // fits NUQ codebooks once, outside the timing
  double seconds = 0;
  int64_t iters = 0;
  for (auto _ : state) {
    const double t0 = Now();
    EvaluationResult r = evaluator.Evaluate(c);
    seconds += Now() - t0;
    ++iters;
    if (r.status().code() != 0) state.SkipWithError(r.status().message().c_str());
  }
  const double per_eval = seconds / iters;
  state.counters["seconds/eval"] = per_eval;
  if (uncompressed_seconds > 0) state.counters["overhead_vs_uncompressed"] = per_eval / uncompressed_seconds - 1;
  const double flops = ctx->spec().eval_windows_size() * WindowFlops(ctx->config(), ctx->window_length());
  state.counters["GFLOP/s"] = flops / per_eval / 1e9;
}
BENCHMARK_CAPTURE(BM_FullEvaluation, fp16_cache, std::string("layers {}"))
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);
BENCHMARK_CAPTURE(BM_FullEvaluation, kivi2_int2_chan32_tok32_r128,
                  std::string("layers { keys { format: INT bits: 2 axis: PER_CHANNEL group_size: 32 recent_window: 128 } "
                              "values { format: INT bits: 2 group_size: 32 recent_window: 128 } }"))
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);
BENCHMARK_CAPTURE(BM_FullEvaluation, kvquant_nuq3_1pct_outliers_prerope,
                  std::string("layers { keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 64 pre_rope: true "
                              "outlier_fraction: 0.01 sink_tokens: 1 } values { format: NUQ bits: 3 outlier_fraction: 0.01 } }"))
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);
BENCHMARK_CAPTURE(BM_FullEvaluation, fp8_posit8_h2o50,
                  std::string("layers { keys { format: FP8_E4M3 } values { format: POSIT bits: 8 posit_es: 1 } "
                              "eviction { policy: H2O keep_ratio: 0.5 } }"))
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);
BENCHMARK_CAPTURE(BM_FullEvaluation, int4_snapkv25_chai2,
                  std::string("layers { keys { format: INT bits: 4 sink_tokens: 4 } values { format: INT bits: 4 } "
                              "eviction { policy: SNAPKV keep_ratio: 0.25 observation_window: 32 pooling_kernel: 5 } "
                              "head_clusters: 2 }"))
    ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3);

}  // namespace
}  // namespace fecsearch
