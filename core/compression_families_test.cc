// The KV-compression protocol on every supported family: the invariants evaluator_test checks
// on the shipped model (an fp16 cache is nearly exact, 8-bit is close, memory is charged as the
// formula says, eviction keeps its ratio, CHAI stores one key set per cluster, pre-RoPE keys
// are re-rotated by the model's own RoPE) hold for llama (every RoPE variant), mistral, qwen2
// with its key biases, and qwen3 with its k_norm; and results do not depend on threads.
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/evaluator.h"
#include "core/text_proto.h"
#include "core/tokenizer.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

const char* const kFixtures[] = {
    "tests/data/llama3-rope-bf16",  "tests/data/llama-yarn-sharded", "tests/data/llama-linear-bias",
    "tests/data/llama-dynamic",     "tests/data/mistral-gqa",        "tests/data/qwen2-bias-tied",
    "tests/data/qwen2-bias-untied-bf16", "tests/data/qwen3-qknorm-sharded-bf16",
};

constexpr int kWindow = 128;

std::shared_ptr<EvaluationContext> Context(const std::string& dir, int threads, int windows = 4) {
  EvaluationSpec spec;
  for (int w = 0; w < windows; ++w) spec.add_eval_windows(w);
  spec.set_model_path(dir);
  // The shipped text: tokenized where the fixture carries a tokenizer.json, else as bytes.
  spec.set_text_path("data/tinylm-bytes-5m/eval.txt");
  spec.set_window_length(kWindow);
  spec.set_chunk_length(16);
  spec.set_threads(threads);
  auto ctx = EvaluationContext::Create(spec);
  EXPECT_TRUE(ctx.ok()) << dir << ": " << ctx.status();
  return ctx.ok() ? *ctx : nullptr;
}

class CompressionFamilyTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    context_ = Context(GetParam(), 2);
    ASSERT_NE(context_, nullptr);
    evaluator_ = std::make_unique<Evaluator>(context_);
  }
  EvaluationResult Eval(const std::string& genome) {
    Candidate c;
    EXPECT_TRUE(ParseTextProto(genome, "test", c.mutable_genome()).ok()) << genome;
    EvaluationResult r = evaluator_->Evaluate(c);
    EXPECT_EQ(r.status().code(), 0) << GetParam() << ": " << r.status().message();
    return r;
  }
  double HeadDim() const { return context_->config().head_dim; }
  static double MeanAttentionError(const EvaluationResult& r) {
    double sum = 0;
    for (const LayerMetrics& l : r.layers()) sum += l.attention_relative_error();
    return r.layers_size() > 0 ? sum / r.layers_size() : 0;
  }

  std::shared_ptr<EvaluationContext> context_;
  std::unique_ptr<Evaluator> evaluator_;
};

TEST_P(CompressionFamilyTest, Fp16CacheIsNearlyExactAndEightBitsIsClose) {
  const EvaluationResult fp16 = Eval("");
  EXPECT_NEAR(fp16.objectives().effective_bits(), 16.0, 1e-12);
  const EvaluationResult int8 = Eval("layers { keys { format: INT bits: 8 } values { format: INT bits: 8 } }");
  const EvaluationResult int2 = Eval("layers { keys { format: INT bits: 2 } values { format: INT bits: 2 } }");
  // Per-token groups of a whole head vector: 8 bits + an fp16 scale and zero per vector.
  EXPECT_NEAR(int8.objectives().effective_bits(), 8 + 32 / HeadDim(), 1e-9);
  const double d16 = std::fabs(fp16.delta_nll()), d8 = std::fabs(int8.delta_nll());
  EXPECT_LT(d16, 1e-3) << "fp16 rounding of the cache moves the NLL by " << d16 << " nats";
  EXPECT_LT(d8, 0.02) << "8-bit keys and values move the NLL by " << d8 << " nats";
  // A random-weight model's NLL can move either way under compression; the attention error
  // on the probe window orders the settings.
  const double e16 = MeanAttentionError(fp16), e8 = MeanAttentionError(int8), e2 = MeanAttentionError(int2);
  EXPECT_LT(e16, 1e-3);
  EXPECT_LT(e8, 0.02);
  EXPECT_GT(e8, e16);
  EXPECT_GT(e2, 10 * e8) << "2 bits should distort attention far more than 8 bits";
}

TEST_P(CompressionFamilyTest, PreRopeKeysAreReRotatedWithTheModelsRope) {
  // Quantized before RoPE (after the bias and k_norm) and rotated after dequantization by the
  // model's own tables: at 8 bits as close to the uncompressed model as post-RoPE keys.
  const EvaluationResult pre = Eval("layers { keys { format: INT bits: 8 axis: PER_CHANNEL group_size: 16 pre_rope: true } }");
  const EvaluationResult post = Eval("layers { keys { format: INT bits: 8 axis: PER_CHANNEL group_size: 16 } }");
  EXPECT_LT(std::fabs(pre.delta_nll()), 0.02) << "pre-RoPE keys moved the NLL by " << pre.delta_nll();
  EXPECT_LT(std::fabs(pre.delta_nll()), 3 * std::fabs(post.delta_nll()) + 2e-3);
  EXPECT_NE(pre.objectives().mean_nll(), post.objectives().mean_nll()) << "pre_rope had no effect";
}

TEST_P(CompressionFamilyTest, MemoryIsChargedAsTheFormulaSays) {
  // int4 per-token keys and values with a 64-token fp16 window: at the end of a 128-token
  // window, 64 tokens hold 4 + 32/head_dim bits and 64 hold 16.
  const EvaluationResult r = Eval(
      "layers { keys { format: INT bits: 4 recent_window: 64 } values { format: INT bits: 4 recent_window: 64 } }");
  EXPECT_NEAR(r.end_of_window_effective_bits(), (64 * (4 + 32 / HeadDim()) + 64 * 16) / 128.0, 1e-9);
  const ModelConfig& m = context_->config();
  const double elements_per_token = 2.0 * m.num_layers * m.num_kv_heads * m.head_dim;
  for (int64_t bytes : r.end_of_window_cache_bytes()) {
    EXPECT_EQ(bytes, std::llround((64 * (4 + 32 / HeadDim()) + 64 * 16) * elements_per_token / 8));
  }
}

TEST_P(CompressionFamilyTest, EveryEvictionPolicyKeepsItsRatio) {
  for (const char* policy : {"STREAMING_LLM", "H2O", "SNAPKV", "KEY_NORM", "VALUE_NORM", "TEMPORAL_REDUNDANCY"}) {
    const EvaluationResult r =
        Eval(absl::StrCat("layers { keys { sink_tokens: 4 } eviction { policy: ", policy, " keep_ratio: 0.5 } }"));
    EXPECT_TRUE(std::isfinite(r.objectives().mean_nll())) << policy;
    EXPECT_NEAR(r.end_of_window_effective_bits(), 8.0, 0.2) << policy;
    for (const LayerMetrics& l : r.layers()) EXPECT_NEAR(l.kept_token_fraction(), 0.5, 0.02) << policy;
    EXPECT_GT(MeanAttentionError(r), 1e-3) << policy << ": evicting half of the cache changed nothing";
    EXPECT_NE(r.delta_nll(), 0) << policy;
  }
}

TEST_P(CompressionFamilyTest, ChaiStoresOneKeySetPerCluster) {
  // The fixtures have 2 KV heads: one cluster keeps one of the two key sets and both values.
  const EvaluationResult r = Eval("layers { head_clusters: 1 }");
  EXPECT_NEAR(r.objectives().effective_bits(), (0.5 * 16 + 16) / 2, 1e-9);
}

TEST_P(CompressionFamilyTest, ResultsDoNotDependOnTheThreadCount) {
  const std::string genome =
      "layers { keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 16 outlier_fraction: 0.01 pre_rope: true } "
      "values { format: INT bits: 3 } eviction { policy: H2O keep_ratio: 0.6 } head_clusters: 1 }";
  Candidate c;
  ASSERT_TRUE(ParseTextProto(genome, "test", c.mutable_genome()).ok());
  // One window, so that 2 and 3 threads run inside it (tiled products, per-cluster tasks with
  // quantisation, eviction and CHAI); and four windows on 3 and 5 threads.
  for (int windows : {1, 4}) {
    const EvaluationResult one = Evaluator(Context(GetParam(), 1, windows)).Evaluate(c);
    ASSERT_EQ(one.status().code(), 0) << one.status().message();
    for (int threads : {2, 3, 5}) {
      const EvaluationResult r = Evaluator(Context(GetParam(), threads, windows)).Evaluate(c);
      EXPECT_EQ(r.objectives().mean_nll(), one.objectives().mean_nll()) << threads << " threads, " << windows << " windows";
      EXPECT_EQ(r.cache_bytes(), one.cache_bytes()) << threads << " threads";
      ASSERT_EQ(r.layers_size(), one.layers_size());
      for (int l = 0; l < r.layers_size(); ++l) {
        EXPECT_EQ(r.layers(l).attention_relative_error(), one.layers(l).attention_relative_error()) << "layer " << l;
      }
      EXPECT_EQ(r.context_fingerprint(), one.context_fingerprint());
    }
  }
}

// Windows of 8192 tokens run with the chunked protocol (the shipped text as bytes yields 8 of
// them for the 64 KiB eval.txt, so the windows are placed explicitly).
TEST(LongWindowTest, EightThousandTokenWindowsEvaluate) {
  EvaluationSpec spec;
  spec.set_model_path("tests/data/qwen2-bias-tied");
  spec.set_text_path("data/tinylm-bytes-5m/eval.txt");
  spec.set_input_format(EvaluationSpec::BYTES);
  spec.set_window_length(8192);
  spec.add_eval_windows(0);
  spec.set_probe_window(1);
  for (int w : {4, 5, 6, 7}) spec.add_calibration_windows(w);
  spec.set_threads(2);
  auto ctx = EvaluationContext::Create(spec);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  Evaluator evaluator(*ctx);
  Candidate c;
  ASSERT_TRUE(ParseTextProto("layers { keys { format: INT bits: 4 } values { format: INT bits: 4 } "
                             "eviction { policy: H2O keep_ratio: 0.5 } }",
                             "test", c.mutable_genome()).ok());
  const EvaluationResult r = evaluator.Evaluate(c);
  ASSERT_EQ(r.status().code(), 0) << r.status().message();
  EXPECT_EQ(r.tokens_scored(), 8191);
  EXPECT_TRUE(std::isfinite(r.objectives().mean_nll()));
  for (const LayerMetrics& l : r.layers()) EXPECT_NEAR(l.kept_token_fraction(), 0.5, 0.01);
}

// Windows cut from a tokenized text: BOS first (counted in the window), N = tokens / (W - 1),
// the probe at N-8 and calibration at N-4..N-1; the shipped text keeps 0-3 / 56 / 60-63.
TEST(WindowPlacementTest, TokenizedWindowsStartWithBosAndArePlacedRelativeToTheirCount) {
  for (const auto& [dir, bos] : std::vector<std::pair<std::string, int>>{{"tests/data/llama3-rope-bf16", 511},
                                                                         {"tests/data/mistral-gqa", 1}}) {
    auto tokenizer = Tokenizer::Load(dir);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    ASSERT_EQ((*tokenizer)->bos_id(), bos) << dir;
    std::ifstream in("data/tinylm-bytes-5m/eval.txt", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    auto ids = (*tokenizer)->Encode(text.str(), /*add_special_tokens=*/false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    auto ctx = Context(dir, 1, 0);  // default placement
    ASSERT_NE(ctx, nullptr);
    const int W = kWindow, N = static_cast<int>(ids->size() / (W - 1));
    EXPECT_EQ(ctx->window_count(), N) << dir;
    EXPECT_EQ(ctx->spec().probe_window(), N - 8);
    EXPECT_EQ(std::vector<int>(ctx->spec().calibration_windows().begin(), ctx->spec().calibration_windows().end()),
              (std::vector<int>{N - 4, N - 3, N - 2, N - 1}));
    EXPECT_EQ(std::vector<int>(ctx->spec().eval_windows().begin(), ctx->spec().eval_windows().end()),
              (std::vector<int>{0, 1, 2, 3}));
    for (int w : {0, 1, 3, N - 8, N - 1}) {
      absl::Span<const int> win = ctx->Window(w);
      ASSERT_EQ(static_cast<int>(win.size()), W) << dir << " window " << w;
      EXPECT_EQ(win[0], bos) << dir << " window " << w;
      for (int t = 1; t < W; ++t) ASSERT_EQ(win[t], (*ids)[static_cast<size_t>(w) * (W - 1) + t - 1]) << dir << " window " << w << " token " << t;
    }
  }
}

TEST(WindowPlacementTest, TheShippedTextKeepsItsPlacementAndBytesHaveNoBos) {
  EvaluationSpec spec;
  auto ctx = EvaluationContext::Create(spec);
  ASSERT_TRUE(ctx.ok()) << ctx.status();
  EXPECT_EQ((*ctx)->window_count(), 64);
  EXPECT_EQ((*ctx)->spec().probe_window(), 56);
  EXPECT_EQ(std::vector<int>((*ctx)->spec().calibration_windows().begin(), (*ctx)->spec().calibration_windows().end()),
            (std::vector<int>{60, 61, 62, 63}));
  std::ifstream in("data/tinylm-bytes-5m/eval.txt", std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  const std::string bytes = text.str();
  absl::Span<const int> w56 = (*ctx)->Window(56);
  ASSERT_EQ(w56.size(), 1024u);
  for (int t = 0; t < 1024; ++t) ASSERT_EQ(w56[t], static_cast<unsigned char>(bytes[56 * 1024 + t]));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CompressionFamilyTest, ::testing::ValuesIn(kFixtures),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param + std::string("tests/data/").size();
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace fecsearch
