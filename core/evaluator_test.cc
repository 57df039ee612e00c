// The evaluator end to end on the shipped model: fidelity findings, memory accounting,
// determinism and errors.
#include "core/evaluator.h"

#include <cmath>
#include <fstream>

#include "core/memory_model.h"
#include "core/model_test_util.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

class EvaluatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EvaluationSpec spec;
    spec.set_threads(2);
    auto ctx = EvaluationContext::Create(spec);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    evaluator_ = new Evaluator(*ctx);
  }
  static void TearDownTestSuite() { delete evaluator_; }

  static EvaluationResult Eval(const std::string& genome_text) {
    Candidate c;
    EXPECT_TRUE(ParseTextProto(genome_text, "test", c.mutable_genome()).ok()) << genome_text;
    EvaluationResult r = evaluator_->Evaluate(c);
    EXPECT_EQ(r.status().code(), 0) << r.status().message();
    return r;
  }
  static Evaluator* evaluator_;
};
Evaluator* EvaluatorTest::evaluator_ = nullptr;

TEST_F(EvaluatorTest, BaselineMatchesTheGoldenWindows) {
  const nlohmann::json golden = ReadJson(std::string(kShippedModel) + "/golden.json");
  double sum = 0;
  for (int w = 0; w < 4; ++w) sum += golden["windows"][w]["nll_sum"].get<double>();
  EXPECT_NEAR(evaluator_->context().baseline().mean_nll, sum / (4 * 1023), 1e-5);
}

TEST_F(EvaluatorTest, EightBitKeysAndValuesAreWithinATenthOfAPercent) {
  EvaluationResult r = Eval("layers { keys { format: INT bits: 8 } values { format: INT bits: 8 } }");
  EXPECT_LT(std::fabs(r.objectives().perplexity_increase_percent()), 0.1);
  EXPECT_NEAR(r.objectives().effective_bits(), 8.5, 1e-9);  // 8 + (16 + 16) / 64
  EXPECT_NEAR(r.compression_ratio(), 16 / 8.5, 1e-9);
}

TEST_F(EvaluatorTest, AtTwoBitsPerChannelKeysBeatPerTokenKeys) {
  const EvaluationResult per_token = Eval(
      "layers { keys { format: INT bits: 2 axis: PER_TOKEN group_size: 32 } "
      "values { format: INT bits: 2 group_size: 32 } }");
  const EvaluationResult per_channel = Eval(
      "layers { keys { format: INT bits: 2 axis: PER_CHANNEL group_size: 32 } "
      "values { format: INT bits: 2 group_size: 32 } }");
  EXPECT_LT(per_channel.objectives().mean_nll(), per_token.objectives().mean_nll());
  EXPECT_GT(per_token.objectives().perplexity_increase_percent(), 1.0);
  // Same memory either way: 2 bits + (16 + 16) / 32.
  EXPECT_NEAR(per_token.end_of_window_effective_bits(), 3.0, 1e-9);
  EXPECT_NEAR(per_channel.end_of_window_effective_bits(), 3.0, 1e-9);
}

TEST_F(EvaluatorTest, DeterministicForAGenome) {
  const std::string g =
      "layers { keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } "
      "values { format: INT bits: 3 } eviction { policy: H2O keep_ratio: 0.6 } }";
  EvaluationResult a = Eval(g), b = Eval(g);
  EXPECT_EQ(a.objectives().mean_nll(), b.objectives().mean_nll());
  EXPECT_EQ(a.cache_bytes(), b.cache_bytes());
}

TEST_F(EvaluatorTest, ALowerFidelityFromAHigherOneIsEvaluatingOnItsWindows) {
  // Fidelities score nested subsets of the evaluation windows: the objectives of windows
  // {0, 2} taken from a full result's per-window shares must be what evaluating on those
  // windows alone gives, bit for bit, against the uncompressed model on the same windows
  // (whose NLL comes from the golden file, transformers' figures).
  Candidate c;
  ASSERT_TRUE(ParseTextProto("layers { keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 } values { format: INT bits: 3 } "
                             "eviction { policy: H2O keep_ratio: 0.6 } }",
                             "test", c.mutable_genome())
                  .ok());
  const EvaluationResult full = evaluator_->Evaluate(c);
  ASSERT_EQ(full.status().code(), 0) << full.status().message();
  ASSERT_EQ(full.windows_size(), 4);
  double nll = 0;
  int64_t tokens = 0;
  for (const WindowResult& w : full.windows()) nll += w.nll_sum(), tokens += w.tokens_scored();
  EXPECT_EQ(nll / tokens, full.objectives().mean_nll());
  const std::vector<int> subset = {0, 2};
  const EvaluationResult direct = evaluator_->Evaluate(c, &subset);
  ASSERT_EQ(direct.status().code(), 0) << direct.status().message();
  auto derived = ResultOnWindows(full, subset);
  ASSERT_TRUE(derived.ok()) << derived.status();
  ASSERT_EQ(direct.windows_size(), 2);
  EXPECT_EQ(direct.windows(1).index(), 2);
  for (const EvaluationResult* r : std::vector<const EvaluationResult*>{&direct, &*derived}) {
    EXPECT_EQ(r->tokens_scored(), 2 * 1023);
    EXPECT_EQ(r->objectives().mean_nll(), direct.objectives().mean_nll());
    EXPECT_EQ(r->objectives().perplexity_increase_percent(), direct.objectives().perplexity_increase_percent());
    EXPECT_EQ(r->objectives().effective_bits(), direct.objectives().effective_bits());
    EXPECT_EQ(r->cache_bytes(), direct.cache_bytes());
    EXPECT_EQ(r->end_of_window_effective_bits(), direct.end_of_window_effective_bits());
    EXPECT_EQ(r->objectives().metrics().at("perplexity_increase_percent"), direct.objectives().perplexity_increase_percent());
  }
  EXPECT_NE(direct.objectives().mean_nll(), full.objectives().mean_nll());
  const nlohmann::json golden = ReadJson(std::string(kShippedModel) + "/golden.json");
  const double golden_base = (golden["windows"][0]["nll_sum"].get<double>() + golden["windows"][2]["nll_sum"].get<double>()) / (2 * 1023);
  EXPECT_NEAR(direct.baseline_mean_nll(), golden_base, 1e-5);
  // The whole set from the full result is the full result.
  auto all = ResultOnWindows(full, {0, 1, 2, 3});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->objectives().mean_nll(), full.objectives().mean_nll());
  EXPECT_EQ(all->objectives().perplexity_increase_percent(), full.objectives().perplexity_increase_percent());
  EXPECT_EQ(all->objectives().effective_bits(), full.objectives().effective_bits());
  EXPECT_EQ(all->end_of_window_effective_bits(), full.end_of_window_effective_bits());
  EXPECT_EQ(all->objectives().metrics().size(), full.objectives().metrics().size());
  for (const auto& [name, value] : full.objectives().metrics()) EXPECT_EQ(all->objectives().metrics().at(name), value) << name;
  EXPECT_EQ(all->baseline_mean_nll(), evaluator_->context().baseline().mean_nll);
  // A promotion scores only the windows the lower rung lacks: {0, 2} merged with {1, 3} is
  // the full evaluation, bit for bit, and merging results that share a window is refused.
  const std::vector<int> rest = {1, 3};
  const EvaluationResult missing = evaluator_->Evaluate(c, &rest);
  ASSERT_EQ(missing.status().code(), 0) << missing.status().message();
  auto merged = MergeWindowResults(direct, missing);
  ASSERT_TRUE(merged.ok()) << merged.status();
  ASSERT_EQ(merged->windows_size(), 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(merged->windows(i).index(), i);
  for (const auto& [name, value] : full.objectives().metrics()) EXPECT_EQ(merged->objectives().metrics().at(name), value) << name;
  EXPECT_EQ(merged->cache_bytes(), full.cache_bytes());
  EXPECT_EQ(merged->end_of_window_effective_bits(), full.end_of_window_effective_bits());
  EXPECT_EQ(merged->analytic_effective_bits(), full.analytic_effective_bits());
  EXPECT_EQ(merged->cost_seconds(), direct.cost_seconds() + missing.cost_seconds());
  EXPECT_NE(MergeWindowResults(direct, full).status().message().find("both results scored evaluation window 0"), std::string::npos);
  // Bad subsets and results that lack the windows are named.
  const std::vector<int> unordered = {2, 1}, outside = {0, 4};
  EXPECT_NE(evaluator_->Evaluate(c, &unordered).status().message().find("must increase: 2 then 1"), std::string::npos);
  EXPECT_NE(evaluator_->Evaluate(c, &outside).status().message().find("window index 4 is outside 0..3"), std::string::npos);
  EXPECT_EQ(ResultOnWindows(direct, {1}).status().code(), absl::StatusCode::kNotFound);
  EvaluationResult old = full;
  old.clear_windows();
  EXPECT_NE(ResultOnWindows(old, {0}).status().message().find("earlier version"), std::string::npos);
}

TEST_F(EvaluatorTest, MeasuredMemoryMatchesTheAnalyticFigure) {
  // Per-token int4 with a 64-token fp16 window: at the end of a 1024-token window, 960 tokens
  // hold 4 + 32/64 bits and 64 hold 16; the analytic formula charges (n_fp16/L)(16 - B).
  EvaluationResult r = Eval(
      "layers { keys { format: INT bits: 4 recent_window: 64 } values { format: INT bits: 4 "
      "recent_window: 64 } }");
  const double measured_end = (960 * 4.5 + 64 * 16) / 1024.0;
  EXPECT_NEAR(r.end_of_window_effective_bits(), measured_end, 1e-9);
  ModelPlan plan = *CompileCandidate(
      [] {
        Candidate c;
        ParseTextProto("layers { keys { format: INT bits: 4 recent_window: 64 } values { format: "
                       "INT bits: 4 recent_window: 64 } }",
                       "t", c.mutable_genome())
            .IgnoreError();
        return c;
      }(),
      evaluator_->context().config(), 1024);
  const double analytic_1024 = AnalyticPlanBits(plan, evaluator_->context().config(), 1024);
  EXPECT_NEAR(analytic_1024, 4.5 + 64.0 / 1024 * 12, 1e-9);
  EXPECT_NEAR(r.end_of_window_effective_bits(), analytic_1024, 0.05);
  EXPECT_NEAR(r.analytic_effective_bits(), 4.5 + 64.0 / 32768 * 12, 1e-9);
  // Averaged over chunk boundaries the fp16 window weighs more than at the end.
  EXPECT_GT(r.objectives().effective_bits(), r.end_of_window_effective_bits());
  // The bytes stored at each window's end: every layer, KV head, channel, keys and values.
  const ModelConfig& m = evaluator_->context().config();
  const double elements_per_token = 2.0 * m.num_layers * m.num_kv_heads * m.head_dim;
  ASSERT_EQ(r.end_of_window_cache_bytes_size(), evaluator_->context().spec().eval_windows_size());
  for (int64_t bytes : r.end_of_window_cache_bytes()) {
    EXPECT_EQ(bytes, std::llround((960 * 4.5 + 64 * 16) * elements_per_token / 8));
  }
}

TEST_F(EvaluatorTest, MeasuredMemoryMatchesTheAnalyticFigureAcrossFormats) {
  // The bytes the simulated cache stores at the end of a 1024-token window against the
  // analytic formula at the same context, for the published configurations' shapes. The
  // formula (docs/DOMAIN.md section 3) charges fp16 tokens (16 - B) and keeps charging them the
  // group overhead; the cache stores no scales for them. `fp16_overhead` is that term (bits
  // per element, averaged over keys and values), worked out by hand for each case.
  struct Case {
    const char* text;
    double fp16_overhead;
  };
  for (const Case& c : std::vector<Case>{
           // KIVI-2: per-channel int2 keys (g32: 32/32 bits per element of overhead),
           // per-token int2 values (likewise), 128 fp16 tokens of 1024 in both.
           {"layers { keys { format: INT bits: 2 axis: PER_CHANNEL group_size: 32 recent_window: 128 } "
            "values { format: INT bits: 2 group_size: 32 recent_window: 128 } }",
            128.0 / 1024 * 1.0},
           // KVQuant: NUQ-3 pre-RoPE keys per channel with 1 % outliers, NUQ-3 values (and
           // their codebooks); no fp16 tokens.
           {"layers { keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 64 outlier_fraction: 0.01 pre_rope: true } "
            "values { format: NUQ bits: 3 outlier_fraction: 0.01 } }",
            0.0},
           // Table formats, 4 fp16 sink keys (fp8 asymmetric, whole-vector groups: 32/64).
           {"layers { keys { format: FP8_E4M3 sink_tokens: 4 } values { format: POSIT bits: 8 posit_es: 1 group_size: 16 } }",
            0.5 * (4.0 / 1024 * 0.5)},
       }) {
    SCOPED_TRACE(c.text);
    const EvaluationResult r = Eval(c.text);
    Candidate candidate;
    ASSERT_TRUE(ParseTextProto(c.text, "t", candidate.mutable_genome()).ok());
    const ModelPlan plan = *CompileCandidate(candidate, evaluator_->context().config(), 1024);
    const double analytic = AnalyticPlanBits(plan, evaluator_->context().config(), 1024);
    EXPECT_NEAR(r.end_of_window_effective_bits(), analytic - c.fp16_overhead, 0.005 * analytic)
        << "measured " << r.end_of_window_effective_bits() << " bits, analytic " << analytic;
  }
}

TEST_F(EvaluatorTest, EvictionAndClusteringCutMemory) {
  EvaluationResult h2o = Eval("layers { eviction { policy: H2O keep_ratio: 0.5 } }");
  EXPECT_NEAR(h2o.end_of_window_effective_bits(), 8.0, 0.05);
  for (const LayerMetrics& l : h2o.layers()) EXPECT_NEAR(l.kept_token_fraction(), 0.5, 0.01);
  EXPECT_GT(h2o.objectives().perplexity_increase_percent(), 0.0);
  EvaluationResult chai = Eval("layers { head_clusters: 2 }");
  // Keys of 2 of 4 heads, all values: (0.5 x 16 + 16) / 2.
  EXPECT_NEAR(chai.objectives().effective_bits(), 12.0, 1e-9);
  EvaluationResult chai_all = Eval("layers { head_clusters: 4 }");
  EXPECT_NEAR(chai_all.objectives().effective_bits(), 16.0, 1e-9);
}

TEST_F(EvaluatorTest, EveryEvictionPolicyRuns) {
  double previous_nll = -1;
  for (const char* policy : {"STREAMING_LLM", "H2O", "SNAPKV", "KEY_NORM", "VALUE_NORM", "TEMPORAL_REDUNDANCY"}) {
    EvaluationResult r = Eval(absl::StrCat("layers { keys { sink_tokens: 4 } eviction { policy: ", policy,
                                           " keep_ratio: 0.3 observation_window: 32 pooling_kernel: 5 } }"));
    EXPECT_TRUE(std::isfinite(r.objectives().mean_nll())) << policy;
    EXPECT_NEAR(r.end_of_window_effective_bits(), 16 * 0.3, 0.1) << policy;
    EXPECT_NE(r.objectives().mean_nll(), previous_nll) << policy << " scores like the previous policy";
    previous_nll = r.objectives().mean_nll();
  }
}

TEST_F(EvaluatorTest, EveryNumberFormatRuns) {
  for (const char* stream : {"format: BF16", "format: FP8_E4M3", "format: FP8_E5M2", "format: POSIT bits: 8 posit_es: 1",
                             "format: NUQ bits: 3", "format: NF bits: 4", "format: INT bits: 3 symmetric: true"}) {
    EvaluationResult r = Eval(absl::StrCat("layers { keys { ", stream, " } values { ", stream, " } }"));
    EXPECT_TRUE(std::isfinite(r.objectives().mean_nll())) << stream;
    EXPECT_LT(r.objectives().perplexity_increase_percent(), 50) << stream;
  }
}

TEST_F(EvaluatorTest, ResultCarriesDiagnosticsAndCost) {
  EvaluationResult r = Eval("layers { keys { format: INT bits: 2 } values { format: INT bits: 2 } }");
  ASSERT_EQ(r.layers_size(), 6);
  for (const LayerMetrics& l : r.layers()) {
    EXPECT_GT(l.attention_relative_error(), 0.01);
    EXPECT_LT(l.attention_relative_error(), 2.0);
  }
  EXPECT_GT(r.cost_seconds(), 0);
  EXPECT_EQ(r.tokens_scored(), 4 * 1023);
  EXPECT_EQ(r.context_fingerprint(), evaluator_->context().fingerprint());
  EvaluationResult fp16 = Eval("");
  EXPECT_NEAR(fp16.objectives().effective_bits(), 16.0, 1e-12);
  EXPECT_LT(std::fabs(fp16.objectives().perplexity_increase_percent()), 0.01);
}

TEST_F(EvaluatorTest, RememberedProbeErrorsAreTheOnesComputedAfresh) {
  // An evaluator remembers each candidate's probe errors (screen, rung 0, promotion): every
  // result must carry what ProbeAttentionErrors computes for that candidate's plan, whatever
  // ran before it on the same evaluator, and one candidate's must never answer another's.
  auto candidate = [](const std::string& text) {
    Candidate c;
    EXPECT_TRUE(ParseTextProto(text, "test", c.mutable_genome()).ok()) << text;
    return c;
  };
  const Candidate a = candidate("layers { keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 32 } values { format: INT bits: 3 } }");
  const Candidate b = candidate("layers { keys { format: INT bits: 2 } values { format: INT bits: 2 } }");
  const EvaluationContext& ctx = evaluator_->context();
  auto fresh = [&](const Candidate& c) {
    auto plan = CompileCandidate(c, ctx.config(), ctx.window_length());
    EXPECT_TRUE(plan.ok()) << plan.status();
    EXPECT_TRUE(ctx.ResolvePlan(&*plan).ok());
    auto errors = ProbeAttentionErrors(ctx, *plan);
    EXPECT_TRUE(errors.ok()) << errors.status();
    return *errors;
  };
  const std::vector<double> want_a = fresh(a), want_b = fresh(b);
  ASSERT_EQ(want_a.size(), 6u);
  ASSERT_NE(want_a, want_b);
  Evaluator e(evaluator_->shared_context());
  auto screened = e.Screen(a);
  ASSERT_TRUE(screened.ok()) << screened.status();
  double mean = 0;
  for (double x : want_a) mean += x / want_a.size();
  EXPECT_EQ(screened->error, mean);
  const std::vector<int> first = {0}, rest = {1, 2, 3};
  for (const EvaluationResult& r : {e.Evaluate(a, &first), e.Evaluate(b, &first), e.Evaluate(a, &rest), e.Evaluate(b)}) {
    ASSERT_EQ(r.status().code(), 0) << r.status().message();
    ASSERT_EQ(r.layers_size(), 6);
  }
  const EvaluationResult ra = e.Evaluate(a, &rest), rb = e.Evaluate(b);
  for (int l = 0; l < 6; ++l) {
    EXPECT_EQ(ra.layers(l).attention_relative_error(), want_a[l]) << "layer " << l;
    EXPECT_EQ(rb.layers(l).attention_relative_error(), want_b[l]) << "layer " << l;
  }
}

TEST_F(EvaluatorTest, BadGenesAreNamed) {
  struct Case {
    const char* genome;
    const char* expect;
  };
  for (Case c : std::vector<Case>{
           {"layers { keys { format: INT bits: 9 } }", "genome.layers[0].keys.bits"},
           {"layers { values { pre_rope: true } }", "genome.layers[0].values.pre_rope"},
           {"layers { keys { sink_tokens: 2000 } }", "sink_tokens 2000 exceeds the evaluation window"},
           {"layers { eviction { policy: H2O keep_ratio: 0 } }", "keep_ratio"},
           {"layers { head_clusters: 5 }", "head_clusters"},
           {"layers {} layers {} layers {} layers {} layers {} layers {} layers {}", "7 entries exceed the model's 6 layers"},
           {"layers { keys { format: INT bits: 4 axis: PER_TOKEN group_size: 48 } }", "group_size"},
       }) {
    Candidate cand;
    ASSERT_TRUE(ParseTextProto(c.genome, "t", cand.mutable_genome()).ok());
    EvaluationResult r = evaluator_->Evaluate(cand);
    EXPECT_EQ(r.status().code(), static_cast<int>(absl::StatusCode::kInvalidArgument)) << c.genome;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
}

TEST(EvaluationContextTest, BadSpecsAreNamed) {
  EvaluationSpec spec;
  spec.set_model_path("no/such/model");
  auto ctx = EvaluationContext::Create(spec);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("no/such/model"), std::string::npos);
  spec = EvaluationSpec();
  spec.add_eval_windows(70);
  ctx = EvaluationContext::Create(spec);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("eval_windows[0]: window 70"), std::string::npos) << ctx.status();
  spec = EvaluationSpec();
  spec.add_eval_windows(60);
  ctx = EvaluationContext::Create(spec);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("calibration_windows"), std::string::npos) << ctx.status();
  spec = EvaluationSpec();
  spec.set_window_length(4096);
  ctx = EvaluationContext::Create(spec);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("window_length"), std::string::npos) << ctx.status();
  spec = EvaluationSpec();
  spec.set_chunk_length(0);
  ctx = EvaluationContext::Create(spec);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.status().message().find("chunk_length"), std::string::npos) << ctx.status();
}

TEST(EvaluationContextTest, TokenIdInputEvaluatesLikeTheSameBytes) {
  // The shipped text written as decimal token ids: the same tokens, the same uncompressed NLL.
  auto bytes = LoadTokens("data/tinylm-bytes-5m/eval.txt", EvaluationSpec::BYTES, 256);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::string ids_path = TestTempDir("token_ids") + "/eval.ids";
  {
    std::ofstream out(ids_path);
    for (size_t i = 0; i < bytes->size(); ++i) out << (*bytes)[i] << (i % 20 == 19 ? '\n' : ' ');
  }
  auto ids = LoadTokens(ids_path, EvaluationSpec::TOKEN_IDS, 256);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, *bytes);
  EvaluationSpec spec;
  spec.add_eval_windows(1);
  spec.set_threads(2);
  auto from_bytes = EvaluationContext::Create(spec);
  spec.set_input_format(EvaluationSpec::TOKEN_IDS);
  spec.set_text_path(ids_path);
  auto from_ids = EvaluationContext::Create(spec);
  ASSERT_TRUE(from_bytes.ok() && from_ids.ok()) << from_ids.status();
  EXPECT_EQ((*from_ids)->baseline().mean_nll, (*from_bytes)->baseline().mean_nll);
  // Bad ids are named with their position.
  std::ofstream(ids_path) << "1 2 x3";
  auto bad = LoadTokens(ids_path, EvaluationSpec::TOKEN_IDS, 256);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token 2 ('x3') is not a decimal integer"), std::string::npos) << bad.status();
  std::ofstream(ids_path) << "1 2 300";
  bad = LoadTokens(ids_path, EvaluationSpec::TOKEN_IDS, 256);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token 2 = 300 is outside the vocabulary 0..255"), std::string::npos) << bad.status();
}

TEST(MemoryModelTest, PublishedExamplesWithTheirOwnParameters) {
  // KVQuant nuq3 with 1% outliers: B=3, s=z=16, g=4096, p=0.01, one fp16 sink at L=2048.
  AnalyticParams kvquant;
  kvquant.code_bits = 3;
  kvquant.scale_bits = kvquant.zero_bits = 16;
  kvquant.group_elements = 4096;
  kvquant.outlier_fraction = 0.01;
  kvquant.fp16_tokens = 1;
  kvquant.context = 2048;
  EXPECT_NEAR(AnalyticEffectiveBits(kvquant), 3.33, 0.005);
  // KIVI-2: B=2, fp16 scale and zero, g=32, R=128 fp16 tokens at L=32768.
  AnalyticParams kivi;
  kivi.code_bits = 2;
  kivi.scale_bits = kivi.zero_bits = 16;
  kivi.group_elements = 32;
  kivi.fp16_tokens = 128;
  kivi.context = 32768;
  EXPECT_NEAR(AnalyticEffectiveBits(kivi), 3.05, 0.006);
}

}  // namespace
}  // namespace fecsearch
