// The equivalence catalogue: truth comes from full evaluation (the evaluator is
// deterministic, so "equivalent" means bit-identical results), and the functional hash must
// agree with it in both directions.
#include <string>
#include <vector>

#include "core/evaluator.h"
#include "core/text_proto.h"
#include "gtest/gtest.h"
#include "hashing/candidate_hasher.h"

namespace fecsearch {
namespace {

class EquivalenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EvaluationSpec spec;
    spec.set_threads(2);
    auto ctx = EvaluationContext::Create(spec);
    ASSERT_TRUE(ctx.ok()) << ctx.status();
    context_ = new std::shared_ptr<EvaluationContext>(*ctx);
    evaluator_ = new Evaluator(*ctx);
    FecSpec fec;
    auto hasher = CandidateHasher::Create(*ctx, fec);
    ASSERT_TRUE(hasher.ok()) << hasher.status();
    hasher_ = hasher->release();
  }
  static void TearDownTestSuite() {
    delete hasher_;
    delete evaluator_;
    delete context_;
  }

  static Candidate Genome(const std::string& text) {
    Candidate c;
    EXPECT_TRUE(ParseTextProto(text, "test", c.mutable_genome()).ok()) << text;
    return c;
  }
  static EvaluationResult Full(const Candidate& c) {
    EvaluationResult r = evaluator_->Evaluate(c);
    EXPECT_EQ(r.status().code(), 0) << r.status().message();
    return r;
  }
  static bool SameResult(const EvaluationResult& a, const EvaluationResult& b) {
    return a.objectives().mean_nll() == b.objectives().mean_nll() && a.cache_bytes() == b.cache_bytes() &&
           a.analytic_effective_bits() == b.analytic_effective_bits();
  }
  static CandidateHashes Hashes(const Candidate& c) {
    auto h = hasher_->Hash(c);
    EXPECT_TRUE(h.ok()) << h.status();
    return *h;
  }

  static std::shared_ptr<EvaluationContext>* context_;
  static Evaluator* evaluator_;
  static CandidateHasher* hasher_;
};
std::shared_ptr<EvaluationContext>* EquivalenceTest::context_ = nullptr;
Evaluator* EquivalenceTest::evaluator_ = nullptr;
CandidateHasher* EquivalenceTest::hasher_ = nullptr;

struct Pair {
  const char* why;
  const char* a;
  const char* b;
};

const std::vector<Pair>& Catalogue() {
  static const auto* pairs = new std::vector<Pair>{
      {"outlier settings are irrelevant at outlier fraction 0",
       "layers { keys { format: INT bits: 3 } }",
       "layers { keys { format: INT bits: 3 outlier_fraction: 0 } }"},
      {"outliers are irrelevant when nothing is quantized",
       "layers { keys { format: FP16 } }", "layers { keys { format: FP16 outlier_fraction: 0.02 } }"},
      {"keep ratio 1.0 under any eviction policy",
       "layers { values { format: INT bits: 4 } eviction { policy: H2O keep_ratio: 1.0 } }",
       "layers { values { format: INT bits: 4 } eviction { policy: SNAPKV keep_ratio: 1.0 pooling_kernel: 5 } }"},
      {"keep ratio 1.0 equals no eviction",
       "layers { values { format: INT bits: 4 } eviction { policy: KEY_NORM keep_ratio: 1.0 } }",
       "layers { values { format: INT bits: 4 } }"},
      {"head clusters equal to the KV head count", "layers { keys { format: INT bits: 4 } head_clusters: 4 }",
       "layers { keys { format: INT bits: 4 } }"},
      {"group size 'all' equals a group of the vector length",
       "layers { keys { format: INT bits: 2 group_size: 0 } }",
       "layers { keys { format: INT bits: 2 group_size: 64 } }"},
      {"the width gene is ignored by fixed-width formats",
       "layers { values { format: FP8_E4M3 bits: 3 } }", "layers { values { format: FP8_E4M3 bits: 8 } }"},
      {"one layer group equals the same settings repeated per layer",
       "layers { values { format: NF bits: 4 } }",
       "layers { values { format: NF bits: 4 } } layers { values { format: NF bits: 4 } } "
       "layers { values { format: NF bits: 4 } }"},
      {"an fp16 window on an fp16 stream changes nothing",
       "layers { keys { format: FP16 recent_window: 128 sink_tokens: 4 } }", "layers { }"},
      {"pre-RoPE is irrelevant without quantization", "layers { keys { format: FP16 pre_rope: true } }",
       "layers { keys { format: FP16 } }"},
  };
  return *pairs;
}

TEST_F(EquivalenceTest, CatalogueOfRealEquivalences) {
  int structural_misses = 0, exact_misses = 0;
  for (const Pair& p : Catalogue()) {
    SCOPED_TRACE(p.why);
    const Candidate a = Genome(p.a), b = Genome(p.b);
    const EvaluationResult ra = Full(a), rb = Full(b);
    ASSERT_TRUE(SameResult(ra, rb)) << "not a real equivalence: " << ra.objectives().mean_nll() << " vs "
                                    << rb.objectives().mean_nll();
    const CandidateHashes ha = Hashes(a), hb = Hashes(b);
    EXPECT_EQ(ha.functional, hb.functional);
    EXPECT_EQ(ha.key, hb.key);
    structural_misses += ha.structural != hb.structural;
    exact_misses += ha.exact != hb.exact;
  }
  // What functional hashing adds: the structural and exact hashes miss most of these.
  EXPECT_GE(structural_misses, 5);
  EXPECT_EQ(exact_misses, static_cast<int>(Catalogue().size()));
}

TEST_F(EquivalenceTest, SingleGeneChangesThatMatterChangeTheHash) {
  const std::string base =
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } "
      "values { format: INT bits: 3 group_size: 32 } ";
  const std::vector<std::string> variants = {
      "keys { format: INT bits: 2 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_TOKEN group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 16 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.02 } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 symmetric: true } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 pre_rope: true } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 sink_tokens: 4 } values { format: INT bits: 3 group_size: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 recent_window: 32 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 16 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 } eviction { policy: H2O keep_ratio: 0.5 }",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: INT bits: 3 group_size: 32 } head_clusters: 3",
      "keys { format: INT bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 } values { format: FP8_E4M3 }",
  };
  const Candidate b = Genome("layers { " + base + "}");
  const EvaluationResult rb = Full(b);
  const CandidateHashes hb = Hashes(b);
  int differing = 0;
  for (const std::string& v : variants) {
    SCOPED_TRACE(v);
    const Candidate c = Genome("layers { " + v + " }");
    const EvaluationResult rc = Full(c);
    if (SameResult(rb, rc)) continue;  // not a change that matters
    ++differing;
    EXPECT_NE(Hashes(c).functional, hb.functional);
  }
  EXPECT_EQ(differing, static_cast<int>(variants.size())) << "every listed change alters the evaluation";
  // A change in only one layer group changes the hash too.
  const Candidate mixed = Genome("layers { " + base + "} layers { " + base + "} layers { " + variants[0] + " }");
  EXPECT_NE(Hashes(mixed).functional, hb.functional);
}

TEST_F(EquivalenceTest, InvalidCandidatesDoNotHash) {
  auto h = hasher_->Hash(Genome("layers { keys { format: INT bits: 12 } }"));
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("genome.layers[0].keys.bits"), std::string::npos);
}

TEST_F(EquivalenceTest, ProbeIsIndependentOfTheSearchSeedButNotOfItsOwn) {
  FecSpec other_seed;
  other_seed.set_probe_seed(7);
  auto h2 = CandidateHasher::Create(*context_, other_seed);
  ASSERT_TRUE(h2.ok());
  const Candidate c = Genome("layers { keys { format: INT bits: 2 } }");
  auto a = hasher_->Hash(c), b = (*h2)->Hash(c), a2 = hasher_->Hash(c);
  ASSERT_TRUE(a.ok() && b.ok() && a2.ok());
  EXPECT_EQ(a->functional, a2->functional);
  EXPECT_NE(a->functional, b->functional);
}

}  // namespace
}  // namespace fecsearch
