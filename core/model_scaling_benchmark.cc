// How evaluation scales with the model: random-weight checkpoints of SmolLM2-135M's and
// Qwen2.5-0.5B's shapes (written as BF16 safetensors, then loaded like a user's model), their
// forward pass in tokens/s and matrix-product GFLOP/s against the 1- and 2-thread GEMM peak
// measured in the same run, evaluation cost against window length (1024..8192) uncompressed
// and with int4 per-token keys and values under every eviction policy (keep ratio 0.5), and
// peak resident memory. Long (about 15 minutes on 2 cores); docs/BENCHMARKS.md.
//   bazel run //core:model_scaling_benchmark
//   bazel run //core:model_scaling_benchmark -- --benchmark_filter=Smol   # one shape
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "core/decoder_model.h"
#include "core/forward.h"
#include "core/parallel.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"
#include "nlohmann/json.hpp"

namespace fecsearch {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Peak resident set size of the process so far. Bytes.
double PeakRssBytes() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return 1024.0 * static_cast<double>(u.ru_maxrss);
}
// Resident set size now. Bytes.
double RssBytes() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * sysconf(_SC_PAGESIZE);
}

struct Shape {
  const char* name;
  const char* model_type;
  int vocab, hidden, intermediate, layers, heads, kv_heads;
  bool qkv_bias;
};
const Shape kSmol = {"SmolLM2-135M", "llama", 49152, 576, 1536, 30, 9, 3, false};
const Shape kQwen = {"Qwen2.5-0.5B", "qwen2", 151936, 896, 4864, 24, 14, 2, true};

// Writes a random-weight BF16 checkpoint of `shape` (tied embeddings, as both models have).
std::string WriteCheckpoint(const Shape& s) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/fecsearch_bench_", s.name);
  mkdir(dir.c_str(), 0755);
  if (access((dir + "/model.safetensors").c_str(), R_OK) == 0) return dir;  // from an earlier run
  const int hd = s.hidden / s.heads, q = s.heads * hd, kv = s.kv_heads * hd;
  nlohmann::json config = {{"model_type", s.model_type}, {"hidden_size", s.hidden}, {"intermediate_size", s.intermediate},
                           {"num_hidden_layers", s.layers}, {"num_attention_heads", s.heads},
                           {"num_key_value_heads", s.kv_heads}, {"vocab_size", s.vocab},
                           {"max_position_embeddings", 32768}, {"rms_norm_eps", 1e-6}, {"rope_theta", 100000.0},
                           {"tie_word_embeddings", true}, {"hidden_act", "silu"}};
  std::ofstream(dir + "/config.json") << config.dump(1);
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {{"model.embed_tokens.weight", {s.vocab, s.hidden}},
                                                                       {"model.norm.weight", {s.hidden}}};
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    for (auto t : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"self_attn.q_proj.weight", {q, s.hidden}}, {"self_attn.k_proj.weight", {kv, s.hidden}},
             {"self_attn.v_proj.weight", {kv, s.hidden}}, {"self_attn.o_proj.weight", {s.hidden, q}},
             {"mlp.gate_proj.weight", {s.intermediate, s.hidden}}, {"mlp.up_proj.weight", {s.intermediate, s.hidden}},
             {"mlp.down_proj.weight", {s.hidden, s.intermediate}}, {"input_layernorm.weight", {s.hidden}},
             {"post_attention_layernorm.weight", {s.hidden}}}) {
      tensors.push_back({p + t.first, t.second});
    }
    if (s.qkv_bias) {
      for (auto t : std::vector<std::pair<std::string, int64_t>>{
               {"self_attn.q_proj.bias", q}, {"self_attn.k_proj.bias", kv}, {"self_attn.v_proj.bias", kv}}) {
        tensors.push_back({p + t.first, {t.second}});
      }
    }
  }
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= d;
    header[name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {offset, offset + 2 * n}}};
    offset += 2 * n;
  }
  const std::string h = header.dump();
  const uint64_t len = h.size();
  std::ofstream out(dir + "/model.safetensors.tmp", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << h;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0, 1);
  for (const auto& [name, shape] : tensors) {
    uint64_t n = 1;
    for (int64_t d : shape) n *= d;
    const bool norm = shape.size() == 1 && name.find("norm") != std::string::npos;
    const float scale = shape.size() == 2 ? 1.0f / std::sqrt(static_cast<float>(shape[1])) : 0.1f;
    std::vector<uint16_t> buf(n);
    for (uint64_t i = 0; i < n; ++i) {
      const float v = norm ? 1.0f + 0.1f * normal(rng) : scale * normal(rng);
      buf[i] = Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(v));
    }
    out.write(reinterpret_cast<const char*>(buf.data()), 2 * n);
  }
  out.close();
  std::rename((dir + "/model.safetensors.tmp").c_str(), (dir + "/model.safetensors").c_str());
  return dir;
}

// The model of a shape, loaded once (RoPE table for the longest window) with the resident
// memory it took.
struct Loaded {
  std::unique_ptr<DecoderModel> model;
  double load_seconds = 0, rss_after_load = 0, rss_before = 0;
};
Loaded& Load(const Shape& s) {
  static std::map<std::string, Loaded> loaded;
  Loaded& l = loaded[s.name];
  if (!l.model) {
    const std::string dir = WriteCheckpoint(s);
    l.rss_before = RssBytes();
    const double t0 = Now();
    auto m = DecoderModel::Load(dir, 8192);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", std::string(m.status().message()).c_str());
      std::abort();
    }
    l.load_seconds = Now() - t0;
    l.model = std::move(*m);
    l.rss_after_load = RssBytes();
  }
  return l;
}

std::vector<int> Tokens(int n, int vocab) {
  std::mt19937 rng(7);
  std::vector<int> t(n);
  for (int& x : t) x = static_cast<int>(rng() % vocab);
  return t;
}

// Matrix-product FLOPs of one window (linear layers and lm_head), and of causal attention.
double MatmulFlops(const ModelConfig& c, double T) {
  const double q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  const double linear = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3.0 * c.hidden_size * c.intermediate_size;
  return 2 * T * (linear * c.num_layers + static_cast<double>(c.hidden_size) * c.vocab_size);
}
double AttentionFlops(const ModelConfig& c, double T) { return 4.0 * c.head_dim * c.num_heads * c.num_layers * T * (T + 1) / 2; }

double GemmPeak(int threads) {
  static std::map<int, double> peaks;
  double& peak = peaks[threads];
  if (peak == 0) {
    const int n = 1024;
    RowMatrix a = RowMatrix::Random(n, n), b = RowMatrix::Random(n, n), c;
    std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
    MatMulTransposed(a, b, &c, pool.get());
    // The best of 20: the machine is shared, and a peak is the least disturbed run.
    for (int rep = 0; rep < 20; ++rep) {
      const double t0 = Now();
      MatMulTransposed(a, b, &c, pool.get());
      peak = std::max(peak, 2.0 * n * n * n / (Now() - t0) / 1e9);
    }
  }
  return peak;
}

void BM_GemmPeak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) state.SetIterationTime(1);
  state.counters["GFLOP/s"] = GemmPeak(threads);
}
BENCHMARK(BM_GemmPeak)->Arg(1)->Arg(2)->Iterations(1)->UseManualTime();

// One plain Eigen product (no tiles, one thread): how close the tiled product comes to it.
void BM_EigenGemm(benchmark::State& state) {
  const int n = 1024;
  RowMatrix a = RowMatrix::Random(n, n), b = RowMatrix::Random(n, n), c(n, n);
  c.noalias() = a * b.transpose();
  double best = 0;
  for (auto _ : state) {
    for (int rep = 0; rep < 20; ++rep) {
      const double t0 = Now();
      c.noalias() = a * b.transpose();
      best = std::max(best, 2.0 * n * n * n / (Now() - t0) / 1e9);
    }
    state.SetIterationTime(1);
  }
  benchmark::DoNotOptimize(c.data());
  state.counters["GFLOP/s"] = best;
  state.counters["tiled_1_thread_vs_plain"] = GemmPeak(1) / best;
}
BENCHMARK(BM_EigenGemm)->Iterations(1)->UseManualTime();

// The uncompressed forward pass of one window: tokens/s, matrix-product GFLOP/s (time outside
// attention) against the GEMM peak of the same thread count.
void BM_Forward(benchmark::State& state, const Shape* shape) {
  const int T = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  Loaded& l = Load(*shape);
  const ModelConfig& c = l.model->config();
  const std::vector<int> tokens = Tokens(T, c.vocab_size);
  ModelPlan exact;
  exact.exact = true;
  std::unique_ptr<ThreadPool> pool = threads > 1 ? std::make_unique<ThreadPool>(threads) : nullptr;
  double seconds = 0, attention = 0;
  for (auto _ : state) {
    const double t0 = Now();
    ForwardResult r = ForwardWindow(*l.model, tokens, exact, 16, nullptr, pool.get());
    seconds = Now() - t0;
    attention = r.attention_seconds;
    state.SetIterationTime(seconds);
  }
  const double matmul_gflops = MatmulFlops(c, T) / (seconds - attention) / 1e9;
  state.counters["tokens/s"] = T / seconds;
  state.counters["matmul_GFLOP/s"] = matmul_gflops;
  state.counters["of_peak"] = matmul_gflops / GemmPeak(threads);
  state.counters["attention_GFLOP/s"] = AttentionFlops(c, T) / attention / 1e9;
  state.counters["attention_share"] = attention / seconds;
  state.counters["params_M"] = l.model->parameter_count() / 1e6;
  state.counters["load_s"] = l.load_seconds;
  state.counters["rss_load_GiB"] = (l.rss_after_load - l.rss_before) / (1 << 30);
  state.counters["peak_rss_GiB"] = PeakRssBytes() / (1 << 30);
}

// One window under a compressed cache against the uncompressed pass of the same length (the
// latest BM_Forward of that length and thread count in this run).
std::map<std::pair<std::string, int>, double> uncompressed;

void BM_Window(benchmark::State& state, const Shape* shape, std::string genome) {
  const int T = static_cast<int>(state.range(0)), threads = 2;
  Loaded& l = Load(*shape);
  const ModelConfig& c = l.model->config();
  const std::vector<int> tokens = Tokens(T, c.vocab_size);
  ModelPlan plan;
  if (genome == "exact") {
    plan.exact = true;
  } else {
    Candidate cand;
    if (!ParseTextProto(genome, "benchmark", cand.mutable_genome()).ok()) std::abort();
    auto compiled = CompileCandidate(cand, c, T);
    if (!compiled.ok()) std::abort();
    plan = *compiled;
    for (LayerPlan& lp : plan.layers)
      for (StreamPlan* sp : {&lp.keys, &lp.values})
        for (Stage& st : sp->stages)
          if (st.kind != StageKind::kSplitOutliers) st.resolved = std::make_shared<const Quantizer>(*Quantizer::Create(st.quantizer, nullptr));
  }
  ThreadPool pool(threads);
  double seconds = 0;
  for (auto _ : state) {
    const double t0 = Now();
    benchmark::DoNotOptimize(ForwardWindow(*l.model, tokens, plan, 16, nullptr, &pool).nll_sum);
    seconds = Now() - t0;
    state.SetIterationTime(seconds);
  }
  const auto key = std::make_pair(std::string(shape->name), T);
  if (genome == "exact") uncompressed[key] = seconds;
  state.counters["seconds/window"] = seconds;
  state.counters["tokens/s"] = T / seconds;
  if (genome != "exact" && uncompressed.count(key)) state.counters["vs_uncompressed"] = seconds / uncompressed[key] - 1;
  state.counters["peak_rss_GiB"] = PeakRssBytes() / (1 << 30);
}

const char kInt4[] = "keys { format: INT bits: 4 } values { format: INT bits: 4 } ";
std::string Policy(const char* p) {
  return absl::StrCat("layers { ", kInt4, "eviction { policy: ", p, " keep_ratio: 0.5 observation_window: 32 pooling_kernel: 5 } }");
}

void Register() {
  for (const Shape* s : {&kSmol, &kQwen}) {
    benchmark::RegisterBenchmark(absl::StrCat("Forward/", s->name).c_str(), BM_Forward, s)
        ->Args({1024, 1})->Args({1024, 2})->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
  }
  // Window length against cost: SmolLM2's shape at every length, Qwen2.5's at the shortest.
  for (const Shape* s : {&kSmol, &kQwen}) {
    std::vector<int64_t> lengths = s == &kSmol ? std::vector<int64_t>{1024, 2048, 4096, 8192} : std::vector<int64_t>{1024};
    for (int64_t T : lengths) {
      benchmark::RegisterBenchmark(absl::StrCat("Window/", s->name, "/uncompressed").c_str(), BM_Window, s, std::string("exact"))
          ->Arg(T)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(absl::StrCat("Window/", s->name, "/int4").c_str(), BM_Window, s,
                                   absl::StrCat("layers { ", kInt4, "}"))
          ->Arg(T)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
      for (const char* p : {"STREAMING_LLM", "H2O", "SNAPKV", "KEY_NORM", "VALUE_NORM", "TEMPORAL_REDUNDANCY"}) {
        benchmark::RegisterBenchmark(absl::StrCat("Window/", s->name, "/int4_", p, "_50").c_str(), BM_Window, s, Policy(p))
            ->Arg(T)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
      }
    }
  }
}

const bool registered = (Register(), true);

}  // namespace
}  // namespace fecsearch
