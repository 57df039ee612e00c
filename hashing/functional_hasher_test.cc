#include "hashing/functional_hasher.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace fecsearch {
namespace {

Hash128 HashOf(const std::vector<float>& v, int m, const std::string& context = "ctx") {
  FunctionalHasher h(m);
  auto r = h.Hash(context, [&](OutputSink& sink) {
    sink.AddFloats(v);
    return absl::OkStatus();
  });
  EXPECT_TRUE(r.ok());
  return *r;
}

TEST(CanonicalTest, SpecialValues) {
  EXPECT_EQ(CanonicalFloatBits(-0.0f, 23), CanonicalFloatBits(0.0f, 23));
  EXPECT_EQ(CanonicalFloatBits(std::nanf("1"), 8), CanonicalFloatBits(-std::nanf("7"), 8));
  EXPECT_NE(CanonicalFloatBits(INFINITY, 8), CanonicalFloatBits(-INFINITY, 8));
  EXPECT_NE(CanonicalFloatBits(INFINITY, 8), CanonicalFloatBits(std::nanf(""), 8));
  EXPECT_NE(CanonicalFloatBits(1.0f, 8), CanonicalFloatBits(-1.0f, 8));
}

TEST(CanonicalTest, MantissaTruncation) {
  // 1 + 2^-10 differs from 1 in mantissa bit 10: kept at m >= 10, dropped below.
  const float a = 1.0f, b = 1.0f + std::ldexp(1.0f, -10);
  EXPECT_EQ(CanonicalFloatBits(a, 9), CanonicalFloatBits(b, 9));
  EXPECT_NE(CanonicalFloatBits(a, 10), CanonicalFloatBits(b, 10));
  EXPECT_EQ(CanonicalFloatBits(3.0f, 0), CanonicalFloatBits(2.5f, 0));  // same exponent, m=0
  EXPECT_NE(CanonicalFloatBits(4.0f, 0), CanonicalFloatBits(2.5f, 0));
}

TEST(FunctionalHasherTest, HashesAnyProgramByItsOutputs) {
  // Two differently written "programs" with the same outputs share a hash.
  FunctionalHasher h(23);
  auto square = [](float x) { return x * x; };
  auto product = [](float x) { return x * x * 1.0f; };
  auto run = [&](auto fn) {
    return *h.Hash("ctx", [&](OutputSink& sink) {
      for (float x : {0.5f, -2.0f, 3.25f}) sink.AddFloat(fn(x));
      return absl::OkStatus();
    });
  };
  EXPECT_EQ(run(square), run(product));
  EXPECT_NE(run(square), run([](float x) { return x * x + 1e-3f; }));
}

TEST(FunctionalHasherTest, ContextLengthsAndErrorsMatter) {
  EXPECT_NE(HashOf({1, 2, 3}, 23, "a"), HashOf({1, 2, 3}, 23, "b"));
  EXPECT_NE(HashOf({1, 2, 3}, 23), HashOf({1, 2, 3}, 22)) << "mantissa bits are part of the key";
  FunctionalHasher h(8);
  auto split = [&](std::vector<std::vector<float>> parts) {
    return *h.Hash("c", [&](OutputSink& sink) {
      for (const auto& p : parts) sink.AddFloats(p);
      return absl::OkStatus();
    });
  };
  EXPECT_NE(split({{1}, {2, 3}}), split({{1, 2}, {3}}));
  auto failed = h.Hash("c", [](OutputSink&) { return absl::InvalidArgumentError("bad gene"); });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(), "bad gene");
}

TEST(FunctionalHasherTest, HashAtWidthsEqualsSeparateHashes) {
  const std::vector<float> v = {1.0f, 1.0f + std::ldexp(1.0f, -10), -3.5f, 0.0f};
  auto program = [&](OutputSink& sink) {
    sink.AddFloats(v);
    sink.AddInt(42);
    return absl::OkStatus();
  };
  auto many = FunctionalHasher::HashAtWidths("ctx", program, {0, 9, 10, 23});
  ASSERT_TRUE(many.ok());
  ASSERT_EQ(many->size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const int m = std::vector<int>{0, 9, 10, 23}[i];
    EXPECT_EQ((*many)[i], *FunctionalHasher(m).Hash("ctx", program)) << m;
  }
}

TEST(Hash128Test, HexRoundTrip) {
  const Hash128 h = HashOf({1.5f}, 23);
  Hash128 back;
  ASSERT_TRUE(Hash128::FromHex(h.Hex(), &back));
  EXPECT_EQ(back, h);
  EXPECT_FALSE(Hash128::FromHex("xyz", &back));
  EXPECT_EQ(h.Hex().size(), 32u);
}

}  // namespace
}  // namespace fecsearch

namespace fecsearch {
namespace {

// The vectorised canonicalisation the sink uses agrees with CanonicalFloatBits everywhere.
TEST(CanonicalTest, VectorisedMatchesTheScalarDefinition) {
  std::vector<float> values = {0.0f, -0.0f, 1.0f, -2.5f, 1e-40f, -1e-42f, INFINITY, -INFINITY, std::nanf("3"),
                               -std::nanf("9"), 3.14159f, 65504.0f};
  for (uint32_t bits = 1; bits < 0xfffff000u; bits += 104729u) {
    float f;
    std::memcpy(&f, &bits, 4);
    values.push_back(f);
  }
  for (int m : {0, 1, 8, 13, 22, 23}) {
    std::vector<uint32_t> fast(values.size());
    CanonicalizeFloats(values, m, fast.data());
    for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(fast[i], CanonicalFloatBits(values[i], m)) << i << " m=" << m;
  }
}

}  // namespace
}  // namespace fecsearch
