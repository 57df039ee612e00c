#include "core/number_formats.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace fecsearch {
namespace {

TEST(Fp8Test, E4M3EveryCodeRoundTrips) {
  const ValueTable& t = Fp8E4M3Table();
  int finite = 0;
  for (int code = 0; code < 256; ++code) {
    const float v = DecodeFp8E4M3(static_cast<uint8_t>(code));
    if (std::isnan(v)) continue;
    ++finite;
    EXPECT_EQ(t.Round(v), v) << "code " << code;
  }
  EXPECT_EQ(finite, 254);          // 0x7f and 0xff are NaN
  EXPECT_EQ(t.size(), 253);        // +0 and -0 merge
  EXPECT_EQ(t.max_abs(), 448.0f);  // OCP E4M3fn
  EXPECT_EQ(DecodeFp8E4M3(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
}

TEST(Fp8Test, E5M2EveryCodeRoundTrips) {
  const ValueTable& t = Fp8E5M2Table();
  int finite = 0;
  for (int code = 0; code < 256; ++code) {
    const float v = DecodeFp8E5M2(static_cast<uint8_t>(code));
    if (!std::isfinite(v)) continue;
    ++finite;
    EXPECT_EQ(t.Round(v), v) << "code " << code;
  }
  EXPECT_EQ(finite, 248);
  EXPECT_EQ(t.max_abs(), 57344.0f);
  EXPECT_TRUE(std::isinf(DecodeFp8E5M2(0x7c)));
}

// Every code decoded by the formats' definitions (OCP FP8: E4M3fn bias 7, no infinities, NaN
// at S.1111.111; E5M2 bias 15, IEEE-style infinities and NaNs), subnormals included.
TEST(Fp8Test, DecodersMatchTheFormatDefinitions) {
  for (int code = 0; code < 256; ++code) {
    const int sign = code >> 7 ? -1 : 1;
    {
      const int e = (code >> 3) & 15, m = code & 7;
      const float v = DecodeFp8E4M3(static_cast<uint8_t>(code));
      if (e == 15 && m == 7) {
        EXPECT_TRUE(std::isnan(v)) << code;
      } else {
        const double want = sign * (e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1 + m / 8.0, e - 7));
        EXPECT_EQ(v, static_cast<float>(want)) << "E4M3 code " << code;
      }
    }
    {
      const int e = (code >> 2) & 31, m = code & 3;
      const float v = DecodeFp8E5M2(static_cast<uint8_t>(code));
      if (e == 31) {
        EXPECT_TRUE(m == 0 ? std::isinf(v) && (v > 0) == (sign > 0) : std::isnan(v)) << code;
      } else {
        const double want = sign * (e == 0 ? std::ldexp(m / 4.0, -14) : std::ldexp(1 + m / 4.0, e - 15));
        EXPECT_EQ(v, static_cast<float>(want)) << "E5M2 code " << code;
      }
    }
  }
  EXPECT_EQ(DecodeFp8E5M2(0x01), std::ldexp(1.0f, -16));  // smallest E5M2 subnormal
}

TEST(Fp8Test, TiesGoToEvenMantissa) {
  // Between 1.0 (0x38, mantissa 000) and 1.125 (0x39, mantissa 001): 1.0625 -> 1.0.
  EXPECT_EQ(Fp8E4M3Table().Round(1.0625f), 1.0f);
  // Between 1.125 (odd) and 1.25 (0x3a, even): 1.1875 -> 1.25.
  EXPECT_EQ(Fp8E4M3Table().Round(1.1875f), 1.25f);
  // Saturates instead of overflowing.
  EXPECT_EQ(Fp8E4M3Table().Round(1e6f), 448.0f);
  EXPECT_EQ(Fp8E4M3Table().Round(-1e6f), -448.0f);
}

TEST(PositTest, EveryPosit8CodeRoundTripsForEveryEs) {
  for (int es = 0; es <= 3; ++es) {
    auto table = PositTable(8, es);
    ASSERT_TRUE(table.ok());
    int finite = 0;
    for (uint32_t code = 0; code < 256; ++code) {
      const double v = DecodePosit(code, 8, es);
      if (std::isnan(v)) {
        EXPECT_EQ(code, 0x80u) << "only 10000000 is NaR";
        continue;
      }
      ++finite;
      EXPECT_EQ((*table)->Round(static_cast<float>(v)), static_cast<float>(v)) << "es " << es << " code " << code;
    }
    EXPECT_EQ(finite, 255);
    EXPECT_EQ((*table)->size(), 255) << "posit codes are unique values";
  }
}

TEST(PositTest, KnownValues) {
  // posit(8,0): 0x40 = 1, 0x60 = 2, 0x7f = maxpos = 64, 0x01 = minpos = 1/64.
  EXPECT_EQ(DecodePosit(0x40, 8, 0), 1.0);
  EXPECT_EQ(DecodePosit(0x60, 8, 0), 2.0);
  EXPECT_EQ(DecodePosit(0x7f, 8, 0), 64.0);
  EXPECT_EQ(DecodePosit(0x01, 8, 0), 1.0 / 64);
  EXPECT_EQ(DecodePosit(0xc0, 8, 0), -1.0);
  // posit(8,1): useed = 4; 0x7f = 4^6 = 4096; 0x50 = 1 * 2^1 = 2.
  EXPECT_EQ(DecodePosit(0x7f, 8, 1), 4096.0);
  EXPECT_EQ(DecodePosit(0x50, 8, 1), 2.0);
  // posit(16,1): 0x4000 = 1.
  EXPECT_EQ(DecodePosit(0x4000, 16, 1), 1.0);
  EXPECT_FALSE(PositTable(17, 0).ok());
  EXPECT_FALSE(PositTable(8, 4).ok());
}

TEST(PositTest, Posit16TableIsSortedAndDense) {
  auto table = PositTable(16, 1);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ((*table)->size(), 65535);
  for (int i = 1; i < (*table)->size(); ++i) EXPECT_LT((*table)->value(i - 1), (*table)->value(i));
}

TEST(HalfTest, Fp16AndBf16Rounding) {
  EXPECT_EQ(RoundToFp16(1.0f), 1.0f);
  EXPECT_EQ(RoundToFp16(1.0f + std::ldexp(1.0f, -11)), 1.0f);  // tie -> even
  EXPECT_EQ(RoundToFp16(1.0f + 3 * std::ldexp(1.0f, -11)), 1.0f + std::ldexp(1.0f, -9));
  EXPECT_EQ(RoundToBf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);  // tie -> even
  EXPECT_EQ(RoundToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  for (float x : {0.1f, -3.7f, 1e-6f, 1234.5f}) {
    EXPECT_GE(RoundToFp16Up(x), x);
    EXPECT_LE(RoundToFp16Down(x), x);
    EXPECT_EQ(RoundToFp16(RoundToFp16Up(x)), RoundToFp16Up(x));
  }
  EXPECT_GT(RoundToFp16Up(0.0f + 1e-9f), 0.0f);
}

TEST(NormalFloatTest, Nf4MatchesQLoRA) {
  auto t = NormalFloatTable(4);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ((*t)->size(), 16);
  // QLoRA's published NF4 levels (bitsandbytes), to 4 decimals.
  const double nf4[16] = {-1.0,    -0.6962, -0.5251, -0.3949, -0.2844, -0.1848, -0.0911, 0.0,
                          0.0796, 0.1609,  0.2461,  0.3379,  0.4407,  0.5626,  0.7230,  1.0};
  for (int i = 0; i < 16; ++i) EXPECT_NEAR((*t)->value(i), nf4[i], 1e-4) << i;
  EXPECT_FALSE(NormalFloatTable(9).ok());
}

TEST(ValueTableTest, NearestWithoutCodesTiesToSmallerMagnitude) {
  ValueTable t({-1.0, 0.0, 1.0, 3.0});
  EXPECT_EQ(t.Round(0.5f), 0.0f);
  EXPECT_EQ(t.Round(-0.5f), 0.0f);
  EXPECT_EQ(t.Round(2.0f), 1.0f);
  EXPECT_EQ(t.Round(2.1f), 3.0f);
  EXPECT_EQ(t.Round(100.0f), 3.0f);
  EXPECT_EQ(t.Round(-100.0f), -1.0f);
}

TEST(ValueTableTest, BucketIndexAgreesWithBinarySearch) {
  std::vector<const ValueTable*> tables = {&Fp8E4M3Table(), &Fp8E5M2Table(), *PositTable(8, 1), *PositTable(16, 2),
                                           *PositTable(5, 0), *NormalFloatTable(3)};
  ValueTable irregular({-0.93, -0.41, -0.05, 0.0, 0.02, 0.3, 0.31, 0.99});
  tables.push_back(&irregular);
  uint32_t state = 12345;
  for (const ValueTable* t : tables) {
    for (int i = 0; i < 200000; ++i) {
      state = state * 1664525u + 1013904223u;
      float x;
      if (i % 2) {
        std::memcpy(&x, &state, 4);  // any bit pattern
      } else {
        x = (static_cast<float>(state >> 8) / (1 << 24) * 2 - 1) * t->max_abs() * 1.2f;
      }
      ASSERT_EQ(t->NearestIndex(x), t->NearestIndexSlow(x)) << "x = " << x;
    }
    // Every entry and every exact midpoint.
    for (int i = 0; i + 1 < t->size(); ++i) {
      const float v = t->value(i);
      EXPECT_EQ(t->NearestIndex(v), i);
      const float mid = static_cast<float>(0.5 * (double{v} + t->value(i + 1)));
      EXPECT_EQ(t->NearestIndex(mid), t->NearestIndexSlow(mid));
    }
  }
}

}  // namespace
}  // namespace fecsearch
