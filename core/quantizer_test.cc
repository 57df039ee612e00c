#include "core/quantizer.h"

#include <cmath>
#include <random>
#include <set>

#include "core/number_formats.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

QuantizerConfig Config(NumberFormat f, int bits, bool sym, QuantAxis axis, int group, int es = 0) {
  QuantizerParams p;
  p.set_format(f);
  p.set_bits(bits);
  p.set_symmetric(sym);
  p.set_axis(axis);
  p.set_group_size(group);
  p.set_posit_es(es);
  auto c = ResolveQuantizerConfig(p, 64, "test");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

Block RandomBlock(int rows, int cols, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  Block b;
  b.rows = rows;
  b.cols = cols;
  for (int i = 0; i < rows * cols; ++i) b.x.push_back(dist(rng) + (i % cols == 3 ? 4.0f : 0.0f));
  b.ref = b.x;
  b.fixed.assign(b.x.size(), 0);
  for (int r = 0; r < rows; ++r) b.positions.push_back(r);
  return b;
}

// A 3-bit non-uniform codebook in the normalised range, as NUQ fitting would produce.
ValueTable Nuq3Codebook() { return ValueTable({-1.0, -0.55, -0.25, -0.07, 0.07, 0.25, 0.55, 1.0}); }

// Every table format rounds to the nearest point of its group's grid: an element is never
// farther from its reconstruction than from any other value the same group reconstructs to
// (those are grid points too). Format-agnostic, so it covers fp8, posit, NF and NUQ, symmetric
// and asymmetric, where "half a step" has no single step.
TEST(QuantizerTest, TableFormatsRoundToTheNearestGridPoint) {
  const ValueTable nuq3 = Nuq3Codebook();
  struct Case {
    NumberFormat f;
    int bits, es;
  };
  for (Case c : std::vector<Case>{{FP8_E4M3, 8, 0}, {FP8_E5M2, 8, 0}, {POSIT, 8, 1}, {POSIT, 6, 0},
                                  {NF, 4, 0}, {NF, 3, 0}, {NUQ, 3, 0}, {INT, 3, 0}}) {
    for (bool sym : {true, false}) {
      auto q = Quantizer::Create(Config(c.f, c.bits, sym, PER_TOKEN, 32, c.es), &nuq3);
      ASSERT_TRUE(q.ok()) << q.status();
      Block b = RandomBlock(16, 64, 5 + c.bits);
      const Block original = b;
      QuantizeBlock(*q, false, &b);
      for (int r = 0; r < 16; ++r) {
        for (int g = 0; g < 2; ++g) {
          std::set<float> grid;
          for (int i = 0; i < 32; ++i) grid.insert(b.x[r * 64 + g * 32 + i]);
          for (int i = 0; i < 32; ++i) {
            const float x = original.x[r * 64 + g * 32 + i], qx = b.x[r * 64 + g * 32 + i];
            for (float y : grid) {
              EXPECT_LE(std::fabs(x - qx), std::fabs(x - y) + 1e-5f * std::fabs(x) + 1e-6f)
                  << NumberFormat_Name(c.f) << c.bits << (sym ? " sym" : " asym") << ": " << x << " went to " << qx
                  << " but " << y << " is closer";
            }
          }
        }
      }
    }
  }
}

// The largest reconstruction error of one group relative to its quantization step.
TEST(QuantizerTest, IntErrorIsAtMostHalfAStep) {
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool sym : {false, true}) {
      for (QuantAxis axis : {PER_TOKEN, PER_CHANNEL}) {
        const int group = axis == PER_TOKEN ? 16 : 32;
        auto q = Quantizer::Create(Config(INT, bits, sym, axis, group));
        ASSERT_TRUE(q.ok());
        Block b = RandomBlock(64, 64, bits * 7 + sym);
        const Block original = b;
        QuantizeBlock(*q, false, &b);
        // Check every group: error <= step / 2 (+ float slack), step from the group's range.
        for (int r = 0; r < 64; ++r) {
          for (int c = 0; c < 64; ++c) {
            float lo = INFINITY, hi = -INFINITY;
            for (int i = 0; i < group; ++i) {
              const int rr = axis == PER_TOKEN ? r : (r / group) * group + i;
              const int cc = axis == PER_TOKEN ? (c / group) * group + i : c;
              lo = std::min(lo, original.x[rr * 64 + cc]);
              hi = std::max(hi, original.x[rr * 64 + cc]);
            }
            const float amax = std::max(std::fabs(lo), std::fabs(hi));
            const float step = sym ? amax / ((1 << (bits - 1)) - 1) : (hi - lo) / ((1 << bits) - 1);
            const float err = std::fabs(b.x[r * 64 + c] - original.x[r * 64 + c]);
            // fp16 storage of the scale and zero point widens the step by at most 2^-10.
            EXPECT_LE(err, 0.5f * step * (1 + 2e-3f) + 1e-6f)
                << "bits " << bits << " sym " << sym << " axis " << axis;
          }
        }
      }
    }
  }
}

TEST(QuantizerTest, IdempotentOnItsOwnOutput) {
  struct Case {
    NumberFormat f;
    int bits;
    bool sym;
    int es;
  };
  const ValueTable nuq3 = Nuq3Codebook();
  for (Case c : std::vector<Case>{{INT, 2, true, 0}, {INT, 4, true, 0}, {INT, 3, false, 0},
                                  {INT, 8, false, 0}, {FP8_E4M3, 8, true, 0}, {FP8_E5M2, 8, true, 0},
                                  {FP8_E4M3, 8, false, 0}, {FP8_E5M2, 8, false, 0},
                                  {POSIT, 8, true, 1}, {POSIT, 8, false, 1}, {NF, 4, true, 0},
                                  {NF, 4, false, 0}, {NUQ, 3, true, 0}, {NUQ, 3, false, 0},
                                  {FP16, 16, false, 0}, {BF16, 16, false, 0}}) {
    auto q = Quantizer::Create(Config(c.f, c.bits, c.sym, PER_TOKEN, 32, c.es), &nuq3);
    ASSERT_TRUE(q.ok());
    Block b = RandomBlock(16, 64, 11);
    QuantizeBlock(*q, false, &b);
    Block again = b;
    QuantizeBlock(*q, false, &again);
    for (size_t i = 0; i < b.x.size(); ++i) {
      // Exact for symmetric grids; asymmetric grids may move by float rounding of the
      // recomputed zero point only.
      EXPECT_NEAR(again.x[i], b.x[i], c.sym ? 0.0f : 1e-5f * std::fabs(b.x[i]) + 1e-6f)
          << NumberFormat_Name(c.f) << c.bits << " at " << i;
    }
  }
}

TEST(QuantizerTest, ZeroRangeGroupsAreExactAndFinite) {
  for (NumberFormat f : {INT, FP8_E4M3, POSIT, NF}) {
    for (bool sym : {false, true}) {
      auto q = Quantizer::Create(Config(f, f == POSIT ? 8 : 4, sym, PER_TOKEN, 64));
      ASSERT_TRUE(q.ok());
      std::vector<float> zeros(64, 0.0f), constant(64, 0.375f);
      q->QuantizeGroup(zeros.data(), 64, 1, nullptr, 0);
      for (float v : zeros) EXPECT_EQ(v, 0.0f) << NumberFormat_Name(f);
      q->QuantizeGroup(constant.data(), 64, 1, nullptr, 0);
      for (float v : constant) {
        EXPECT_TRUE(std::isfinite(v));
        EXPECT_NEAR(v, 0.375f, 1e-3f) << NumberFormat_Name(f) << " sym " << sym;
      }
    }
  }
}

TEST(QuantizerTest, CodesAreLimitedToTheFormat) {
  // int2 asymmetric: at most 4 distinct values per group; symmetric: 3.
  for (bool sym : {false, true}) {
    auto q = Quantizer::Create(Config(INT, 2, sym, PER_TOKEN, 64));
    Block b = RandomBlock(1, 64, 5);
    QuantizeBlock(*q, false, &b);
    std::set<float> distinct(b.x.begin(), b.x.end());
    EXPECT_LE(distinct.size(), sym ? 3u : 4u);
  }
}

TEST(QuantizerTest, OutliersAreKeptAndChargedByCount) {
  Block b = RandomBlock(8, 64, 3);
  b.x[100] = 50.0f;
  b.x[200] = -40.0f;
  b.ref = b.x;
  const int count = SplitOutliers(2.0 / 512.0, &b);
  EXPECT_EQ(count, 2);
  EXPECT_TRUE(b.fixed[100]);
  EXPECT_TRUE(b.fixed[200]);
  auto q = Quantizer::Create(Config(INT, 2, false, PER_TOKEN, 64));
  QuantizeBlock(*q, false, &b);
  EXPECT_EQ(b.x[100], 50.0f);
  EXPECT_EQ(b.x[200], -40.0f);
  // The outliers no longer stretch their groups' range: the rest of row 1 is finer.
  Block without = RandomBlock(8, 64, 3);
  without.x[100] = 50.0f;
  QuantizeBlock(*q, false, &without);
  double err_with = 0, err_without = 0;
  for (int c = 0; c < 64; ++c) {
    if (64 + c == 100) continue;
    err_with += std::fabs(b.x[64 + c] - b.ref[64 + c]);
    err_without += std::fabs(without.x[64 + c] - b.ref[64 + c]);
  }
  EXPECT_LT(err_with, err_without / 4);
  EXPECT_EQ(SplitOutliers(0.0, &b), 0);
}

TEST(QuantizerTest, ResidualStageReducesError) {
  auto q = Quantizer::Create(Config(INT, 2, false, PER_TOKEN, 64));
  Block b = RandomBlock(16, 64, 9);
  QuantizeBlock(*q, false, &b);
  double e1 = 0;
  for (size_t i = 0; i < b.x.size(); ++i) e1 += std::fabs(b.x[i] - b.ref[i]);
  QuantizeBlock(*q, true, &b);
  double e2 = 0;
  for (size_t i = 0; i < b.x.size(); ++i) e2 += std::fabs(b.x[i] - b.ref[i]);
  EXPECT_LT(e2, e1 / 2);
}

TEST(QuantizerTest, ChannelGroupsFollowPositions) {
  auto q = Quantizer::Create(Config(INT, 4, false, PER_CHANNEL, 16));
  Block b = RandomBlock(40, 64, 2);
  for (int r = 0; r < 40; ++r) b.positions[r] = 8 + r;  // groups [0,16), [16,32), [32,48)
  StageCharges ch = QuantizeBlock(*q, false, &b);
  ASSERT_EQ(ch.channel_groups.size(), 3u);
  EXPECT_EQ(ch.channel_group_rows[0].size(), 8u);
  EXPECT_EQ(ch.channel_group_rows[1].size(), 16u);
  EXPECT_EQ(ch.channel_group_rows[2].size(), 16u);
  EXPECT_EQ(ch.channel_groups[0].second, 32.0 * 64);  // fp16 scale + zero per channel
}

TEST(QuantizerTest, ConfigErrorsNameTheField) {
  QuantizerParams p;
  p.set_format(INT);
  p.set_bits(9);
  auto c = ResolveQuantizerConfig(p, 64, "layers[2].keys");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("layers[2].keys.bits"), std::string::npos);
  p.set_bits(4);
  p.set_group_size(24);
  c = ResolveQuantizerConfig(p, 64, "layers[0].values");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("group_size"), std::string::npos);
}

}  // namespace
}  // namespace fecsearch
