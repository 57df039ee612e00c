// Chunked attention over a compressed cache, on synthetic tensors, against a naive causal
// attention written here: the evaluation protocol's invariants one operator at a time.
#include "core/compressed_attention.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/number_formats.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

constexpr int kT = 96, kHeads = 4, kKvHeads = 2, kHeadDim = 8, kChunk = 16;

ModelConfig TestConfig() {
  ModelConfig c;
  c.num_heads = kHeads;
  c.num_kv_heads = kKvHeads;
  c.head_dim = kHeadDim;
  c.hidden_size = kHeads * kHeadDim;
  c.num_layers = 1;
  c.max_positions = kT;
  return c;
}

class CompressedAttentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0, 1);
    auto fill = [&](RowMatrix* m, int cols) {
      m->resize(kT, cols);
      for (int i = 0; i < m->size(); ++i) m->data()[i] = normal(rng);
    };
    fill(&q_, kHeads * kHeadDim);
    fill(&k_pre_, kKvHeads * kHeadDim);
    fill(&v_, kKvHeads * kHeadDim);
    // A few large channels, as real keys have: quantization then visibly hurts.
    for (int t = 0; t < kT; ++t) k_pre_(t, 3) *= 8;
    k_ = k_pre_;
    for (int t = 0; t < kT; ++t)
      for (int g = 0; g < kKvHeads; ++g) rope_.Apply(t, k_.data() + static_cast<size_t>(t) * k_.cols() + g * kHeadDim);
    in_.q = &q_;
    in_.k_pre = &k_pre_;
    in_.k = &k_;
    in_.v = &v_;
  }

  // softmax(q k^T / sqrt(d)) v over positions <= t, in double; head h reads KV head
  // h / (heads / kv_heads).
  RowMatrix Naive() const {
    RowMatrix out(kT, kHeads * kHeadDim);
    const int rep = kHeads / kKvHeads;
    for (int h = 0; h < kHeads; ++h) {
      const int g = h / rep;
      for (int t = 0; t < kT; ++t) {
        std::vector<double> s(t + 1);
        double m = -1e300;
        for (int u = 0; u <= t; ++u) {
          double dot = 0;
          for (int i = 0; i < kHeadDim; ++i) dot += double{q_(t, h * kHeadDim + i)} * k_(u, g * kHeadDim + i);
          s[u] = dot / std::sqrt(double{kHeadDim});
          m = std::max(m, s[u]);
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - m));
        for (int i = 0; i < kHeadDim; ++i) {
          double o = 0;
          for (int u = 0; u <= t; ++u) o += s[u] / z * v_(u, g * kHeadDim + i);
          out(t, h * kHeadDim + i) = static_cast<float>(o);
        }
      }
    }
    return out;
  }

  RowMatrix Run(const LayerPlan& plan, LayerRunStats* stats = nullptr, bool exact = false) const {
    LayerRunOptions o;
    o.chunk = kChunk;
    o.exact = exact;
    LayerRunStats local;
    RowMatrix out;
    RunCompressedAttention(config_, rope_, plan, in_, o, &out, stats ? stats : &local);
    return out;
  }

  static Stage IntStage(int bits, bool symmetric, QuantAxis axis, int group) {
    Stage s;
    s.kind = StageKind::kQuantize;
    s.stored = true;
    s.quantizer.format = INT;
    s.quantizer.bits = bits;
    s.quantizer.symmetric = symmetric;
    s.quantizer.axis = axis;
    s.quantizer.group_size = group;
    auto q = Quantizer::Create(s.quantizer);
    EXPECT_TRUE(q.ok()) << q.status();
    s.resolved = std::make_shared<const Quantizer>(std::move(*q));
    return s;
  }

  static LayerPlan Int2Plan() {
    LayerPlan p;
    p.keys.stages.push_back(IntStage(2, false, PER_TOKEN, kHeadDim));
    p.values.stages.push_back(IntStage(2, false, PER_TOKEN, kHeadDim));
    return p;
  }

  // Output of query head h at the last position when the cache before the last chunk holds
  // `cached` (positions, stored as fp16) and the last chunk is seen uncompressed.
  std::vector<double> LastRow(int h, const std::vector<int>& cached) const {
    const int t = kT - 1, s = kT - kChunk, g = h / (kHeads / kKvHeads);
    std::vector<int> pos = cached;
    for (int u = s; u <= t; ++u) pos.push_back(u);
    std::vector<double> w;
    double m = -1e300;
    for (int u : pos) {
      double dot = 0;
      for (int i = 0; i < kHeadDim; ++i) {
        const float k = u < s ? RoundToFp16(k_(u, g * kHeadDim + i)) : k_(u, g * kHeadDim + i);
        dot += double{q_(t, h * kHeadDim + i)} * k;
      }
      w.push_back(dot / std::sqrt(double{kHeadDim}));
      m = std::max(m, w.back());
    }
    double z = 0;
    for (double& x : w) z += (x = std::exp(x - m));
    std::vector<double> out(kHeadDim, 0);
    for (int i = 0; i < kHeadDim; ++i) {
      for (size_t j = 0; j < pos.size(); ++j) {
        const int u = pos[j];
        const float v = u < s ? RoundToFp16(v_(u, g * kHeadDim + i)) : v_(u, g * kHeadDim + i);
        out[i] += w[j] / z * v;
      }
    }
    return out;
  }

  // Greedy eviction with a fixed score per token, as the protocol runs it: after every chunk
  // the cache keeps the ceil(ratio x tokens seen) best-scoring tokens (ties: the more recent).
  // Returns the cached positions before the last chunk.
  static std::vector<int> GreedyKept(const std::vector<double>& score, double ratio) {
    std::vector<int> alive;
    for (int e = kChunk; e < kT; e += kChunk) {
      for (int p = e - kChunk; p < e; ++p) alive.push_back(p);
      const size_t budget = static_cast<size_t>(std::ceil(ratio * e - 1e-9));
      std::sort(alive.begin(), alive.end(), [&](int a, int b) { return score[a] != score[b] ? score[a] > score[b] : a > b; });
      if (alive.size() > budget) alive.resize(budget);
      std::sort(alive.begin(), alive.end());
    }
    return alive;
  }

  static double MaxAbsDiff(const RowMatrix& a, const RowMatrix& b, int first_row = 0, int rows = kT) {
    return (a.middleRows(first_row, rows) - b.middleRows(first_row, rows)).cwiseAbs().maxCoeff();
  }

  ModelConfig config_ = TestConfig();
  RopeTable rope_{TestConfig(), kT};
  RowMatrix q_, k_pre_, k_, v_;
  LayerTensors in_;
};

TEST_F(CompressedAttentionTest, ExactModeIsCausalGroupedQueryAttention) {
  LayerRunStats stats;
  EXPECT_LT(MaxAbsDiff(Run(LayerPlan(), &stats, /*exact=*/true), Naive()), 1e-5);
  EXPECT_EQ(stats.end_kept_tokens, static_cast<long>(kT) * kKvHeads);
}

TEST_F(CompressedAttentionTest, AnFp16CacheDiffersOnlyByFp16Rounding) {
  LayerRunStats stats;
  const RowMatrix out = Run(LayerPlan(), &stats);
  const double d = MaxAbsDiff(out, Naive());
  EXPECT_GT(d, 0) << "cached rows are stored as fp16";
  EXPECT_LT(d, 5e-3);
  EXPECT_DOUBLE_EQ(stats.end_cache_bits, stats.end_fp16_bits);
  EXPECT_DOUBLE_EQ(stats.end_fp16_bits, 2.0 * 16 * kHeadDim * kKvHeads * kT);
}

TEST_F(CompressedAttentionTest, QueriesSeeTheirOwnChunkUncompressed) {
  // In the first chunk nothing is cached yet: exact even at 2 bits. Later chunks read the
  // quantized cache and are not.
  const RowMatrix exact = Run(LayerPlan(), nullptr, /*exact=*/true);
  const RowMatrix int2 = Run(Int2Plan());
  EXPECT_LT(MaxAbsDiff(int2, exact, 0, kChunk), 1e-6);
  EXPECT_GT(MaxAbsDiff(int2, exact, kChunk, kT - kChunk), 0.05);
}

TEST_F(CompressedAttentionTest, SinksAndRecentWindowCoveringEverythingKeepTheCacheFp16) {
  LayerPlan covered = Int2Plan();
  covered.keys.sink_tokens = covered.values.sink_tokens = kT;
  EXPECT_EQ(MaxAbsDiff(Run(covered), Run(LayerPlan())), 0);
  LayerPlan recent = Int2Plan();
  recent.keys.recent_window = recent.values.recent_window = kT;
  EXPECT_EQ(MaxAbsDiff(Run(recent), Run(LayerPlan())), 0);
  // A window of 32 keeps only the last 32 tokens exact: error between none and full 2-bit.
  LayerPlan partial = Int2Plan();
  partial.keys.recent_window = partial.values.recent_window = 32;
  const RowMatrix exact = Run(LayerPlan(), nullptr, true);
  const double e_partial = (Run(partial) - exact).squaredNorm(), e_full = (Run(Int2Plan()) - exact).squaredNorm();
  EXPECT_GT(e_partial, 0);
  EXPECT_LT(e_partial, e_full);
}

TEST_F(CompressedAttentionTest, IntCodesAreChargedPerTokenGroup) {
  // Symmetric int4 per token over the whole head: 4 bits per element plus one fp16 scale per
  // token and head, for keys and values; every token has left the (empty) fp16 region.
  LayerPlan p;
  p.keys.stages.push_back(IntStage(4, true, PER_TOKEN, kHeadDim));
  p.values.stages.push_back(IntStage(4, true, PER_TOKEN, kHeadDim));
  LayerRunStats stats;
  Run(p, &stats);
  EXPECT_DOUBLE_EQ(stats.end_cache_bits, 2.0 * kKvHeads * kT * (4 * kHeadDim + 16));
  // Asymmetric adds a zero point; two groups per token double the parameters.
  p.keys.stages[0] = IntStage(4, false, PER_TOKEN, kHeadDim / 2);
  LayerRunStats asym;
  Run(p, &asym);
  EXPECT_DOUBLE_EQ(asym.end_cache_bits,
                   kKvHeads * kT * ((4 * kHeadDim + 2 * 32) + (4 * kHeadDim + 16)));
}

TEST_F(CompressedAttentionTest, EvictionKeepsTheRatioAndRatioOneChangesNothing) {
  for (EvictionPolicy policy : {STREAMING_LLM, H2O, SNAPKV, KEY_NORM, VALUE_NORM, TEMPORAL_REDUNDANCY}) {
    LayerPlan p;
    p.eviction.policy = policy;
    p.eviction.keep_ratio = 1.0;
    EXPECT_EQ(MaxAbsDiff(Run(p), Run(LayerPlan())), 0) << EvictionPolicy_Name(policy);
    p.eviction.keep_ratio = 0.5;
    LayerRunStats stats;
    const RowMatrix out = Run(p, &stats);
    EXPECT_EQ(stats.end_total_tokens, static_cast<long>(kT) * kKvHeads);
    EXPECT_NEAR(static_cast<double>(stats.end_kept_tokens) / stats.end_total_tokens, 0.5, 0.02)
        << EvictionPolicy_Name(policy);
    EXPECT_LT(stats.end_cache_bits, 0.52 * stats.end_fp16_bits) << EvictionPolicy_Name(policy);
    EXPECT_GT(MaxAbsDiff(out, Run(LayerPlan())), 1e-3) << EvictionPolicy_Name(policy);
    // Eviction never touches the first chunk's outputs (nothing was cached before them).
    EXPECT_EQ(MaxAbsDiff(out, Run(LayerPlan()), 0, kChunk), 0) << EvictionPolicy_Name(policy);
  }
}

TEST_F(CompressedAttentionTest, StreamingLlmKeepsTheMostRecentTokens) {
  // With keys and values otherwise exact, StreamingLLM at ratio 1/2 equals attention over
  // the most recent half: before the last chunk the cache held 80 tokens and kept the newest
  // 40; the last chunk's queries see those plus their own chunk.
  LayerPlan p;
  p.eviction.policy = STREAMING_LLM;
  p.eviction.keep_ratio = 0.5;
  const RowMatrix out = Run(p);
  std::vector<int> kept;
  for (int u = 40; u < kT - kChunk; ++u) kept.push_back(u);
  for (int h = 0; h < kHeads; ++h) {
    const std::vector<double> want = LastRow(h, kept);
    for (int i = 0; i < kHeadDim; ++i) EXPECT_NEAR(out(kT - 1, h * kHeadDim + i), want[i], 1e-4) << h << " " << i;
  }
}

TEST_F(CompressedAttentionTest, NormPoliciesKeepTheTokensTheirScoresRank) {
  // Key-norm keeps the smallest key norms, value-norm (VaN) the largest value norms, per KV
  // head, re-selected after every chunk.
  for (EvictionPolicy policy : {KEY_NORM, VALUE_NORM}) {
    LayerPlan p;
    p.eviction.policy = policy;
    p.eviction.keep_ratio = 0.5;
    p.eviction.tap_values = policy == VALUE_NORM;
    const RowMatrix out = Run(p);
    for (int h = 0; h < kHeads; ++h) {
      const int g = h / (kHeads / kKvHeads);
      std::vector<double> score(kT);
      for (int u = 0; u < kT; ++u) {
        double n = 0;
        for (int i = 0; i < kHeadDim; ++i) {
          const double x = policy == KEY_NORM ? k_(u, g * kHeadDim + i) : v_(u, g * kHeadDim + i);
          n += x * x;
        }
        score[u] = policy == KEY_NORM ? -std::sqrt(n) : std::sqrt(n);
      }
      const std::vector<double> want = LastRow(h, GreedyKept(score, 0.5));
      for (int i = 0; i < kHeadDim; ++i) {
        EXPECT_NEAR(out(kT - 1, h * kHeadDim + i), want[i], 1e-4) << EvictionPolicy_Name(policy) << " head " << h;
      }
    }
  }
}

TEST_F(CompressedAttentionTest, HeadClustersEqualToTheKvHeadsChangeNothing) {
  LayerPlan p;
  p.head_clusters = kKvHeads;
  LayerRunStats a, b;
  EXPECT_EQ(MaxAbsDiff(Run(p, &a), Run(LayerPlan(), &b)), 0);
  EXPECT_DOUBLE_EQ(a.end_cache_bits, b.end_cache_bits);
  p.head_clusters = 1;  // one key cache serves both KV heads: keys are charged once
  LayerRunStats c;
  Run(p, &c);
  EXPECT_DOUBLE_EQ(c.end_cache_bits, 0.75 * b.end_cache_bits);
}

}  // namespace
}  // namespace fecsearch
