// The equivalence catalogue: truth comes from full evaluation (the evaluator is
// deterministic, so "equivalent" means bit-identical results), and the functional hash must
// agree with it in both directions.
#include <string>
#include <vector>

#include "core/evaluator.h"
#include "core/pipeline_graph.h"
#include "core/text_proto.h"
#include "gtest/gtest.h"
#include "hashing/candidate_hasher.h"
#include "hashing/kv_probe.h"

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
    std::unique_ptr<KvHashSource> source;
    auto hasher = MakeKvCandidateHasher(*ctx, fec, &source);
    ASSERT_TRUE(hasher.ok()) << hasher.status();
    hasher_ = hasher->release();
    source_ = source.release();
  }
  static void TearDownTestSuite() {
    delete hasher_;
    delete source_;
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
  // The hasher's answer, with its functional hash checked against a fresh run of the probe:
  // the hasher may answer from its structural pre-check without running the probe, and the
  // catalogue must test what the probe computes.
  static CandidateHashes Hashes(const Candidate& c) {
    auto h = hasher_->Hash(c);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) return {};
    auto probed = hasher_->functional().Hash((*context_)->fingerprint(),
                                             [&](OutputSink& sink) { return source_->probe().Run(c, sink); });
    EXPECT_TRUE(probed.ok()) << probed.status();
    if (probed.ok()) {
      EXPECT_EQ(h->functional, *probed) << "the structural pre-check answered differently from the probe";
    }
    return *h;
  }

  static std::shared_ptr<EvaluationContext>* context_;
  static Evaluator* evaluator_;
  static CandidateHasher* hasher_;
  static KvHashSource* source_;
};
KvHashSource* EquivalenceTest::source_ = nullptr;
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
      {"... also for an eviction that scores keys by direction (temporal redundancy)",
       "layers { keys { format: FP16 pre_rope: true } eviction { policy: TEMPORAL_REDUNDANCY keep_ratio: 0.5 } }",
       "layers { keys { format: FP16 } eviction { policy: TEMPORAL_REDUNDANCY keep_ratio: 0.5 } }"},
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
  std::unique_ptr<KvHashSource> source2;
  auto h2 = MakeKvCandidateHasher(*context_, other_seed, &source2);
  ASSERT_TRUE(h2.ok());
  const Candidate c = Genome("layers { keys { format: INT bits: 2 } }");
  auto a = hasher_->Hash(c), b = (*h2)->Hash(c), a2 = hasher_->Hash(c);
  ASSERT_TRUE(a.ok() && b.ok() && a2.ok());
  EXPECT_EQ(a->functional, a2->functional);
  EXPECT_NE(a->functional, b->functional);
}

// Pipeline graphs through the same hasher and cache.
Candidate Graph(const std::string& layer_text) {
  Candidate c;
  EXPECT_TRUE(ParseTextProto(layer_text, "graph", c.mutable_pipeline()->add_layers()).ok()) << layer_text;
  return c;
}

std::string GraphText(const std::string& key_path, const std::string& extra_ops = "", const std::string& extra_edges = "",
                      const std::string& k_last = "") {
  // keys -> <key_path ops named k1..kn in order> -> cache; values -> cache.
  std::string ops = "ops { name: \"keys\" type: KEYS_INPUT } ops { name: \"values\" type: VALUES_INPUT } "
                    "ops { name: \"cache\" type: OUTPUT } " + key_path + extra_ops;
  std::string last = "keys", edges;
  size_t pos = 0;
  while ((pos = key_path.find("name: \"", pos)) != std::string::npos) {
    const size_t end = key_path.find('"', pos + 7);
    const std::string name = key_path.substr(pos + 7, end - pos - 7);
    edges += "edges { from: \"" + last + "\" to: \"" + name + "\" } ";
    last = name;
    pos = end;
  }
  edges += "edges { from: \"" + (k_last.empty() ? last : k_last) + "\" to: \"cache\" } ";
  edges += "edges { from: \"values\" to: \"cache\" } " + extra_edges;
  return ops + edges;
}

constexpr char kQ[] = "quantizer { format: INT bits: 3 symmetric: true group_size: 32 }";

TEST_F(EquivalenceTest, AGenomeAndItsGraphShareOneCacheEntry) {
  const std::string text =
      "keys { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 pre_rope: true sink_tokens: 4 } "
      "values { format: INT bits: 2 group_size: 32 recent_window: 32 } eviction { policy: H2O keep_ratio: 0.5 } "
      "head_clusters: 3";
  const Candidate genome = Genome("layers { " + text + " }");
  LayerCompression layer;
  ASSERT_TRUE(ParseTextProto(text, "t", &layer).ok());
  Candidate graph;
  *graph.mutable_pipeline()->add_layers() = GenomeLayerToPipeline(layer);
  ASSERT_TRUE(SameResult(Full(genome), Full(graph)));
  EXPECT_EQ(Hashes(genome).key, Hashes(graph).key);
  EXPECT_EQ(Hashes(genome).structural, Hashes(graph).structural);
  // The same pipeline written by hand (not by GenomeLayerToPipeline, which the evaluator
  // also uses for genomes): checks the conversion against an independent statement of what
  // the genome means. Vertex names and order differ on purpose.
  const std::string q_keys = "quantizer { format: NUQ bits: 3 axis: PER_CHANNEL group_size: 32 }";
  const std::string q_values = "quantizer { format: INT bits: 2 group_size: 32 }";
  const Candidate by_hand = Graph(
      "ops { name: \"out\" type: OUTPUT } ops { name: \"V\" type: VALUES_INPUT } ops { name: \"K\" type: KEYS_INPUT } "
      "ops { name: \"sinks\" type: KEEP_FP16 sink_tokens: 4 } ops { name: \"o\" type: SPLIT_OUTLIERS outlier_fraction: 0.01 } "
      "ops { name: \"qk\" type: QUANTIZE " + q_keys + " } ops { name: \"rope\" type: ROPE } "
      "ops { name: \"chai\" type: CLUSTER_HEADS clusters: 3 } "
      "ops { name: \"win\" type: KEEP_FP16 recent_window: 32 } ops { name: \"qv\" type: QUANTIZE " + q_values + " } "
      "ops { name: \"h2o\" type: EVICT eviction { policy: H2O keep_ratio: 0.5 } } "
      "edges { from: \"K\" to: \"sinks\" } edges { from: \"sinks\" to: \"o\" } edges { from: \"o\" to: \"qk\" } "
      "edges { from: \"qk\" to: \"rope\" } edges { from: \"rope\" to: \"chai\" } edges { from: \"chai\" to: \"out\" } "
      "edges { from: \"V\" to: \"win\" } edges { from: \"win\" to: \"qv\" } edges { from: \"qv\" to: \"out\" } "
      "edges { from: \"K\" to: \"h2o\" } edges { from: \"h2o\" to: \"out\" }");
  ASSERT_TRUE(SameResult(Full(genome), Full(by_hand)));
  EXPECT_EQ(Hashes(genome).key, Hashes(by_hand).key);
  // And a hand-written graph that differs in one parameter does not evaluate the same.
  std::string other_text = text;
  other_text.replace(other_text.find("keep_ratio: 0.5"), 15, "keep_ratio: 0.75");
  EXPECT_FALSE(SameResult(Full(Genome("layers { " + other_text + " }")), Full(by_hand)));
}

TEST_F(EquivalenceTest, GraphEquivalencesOnlyBehaviourReveals) {
  struct Pair {
    const char* why;
    std::string a, b;
  };
  const std::string q = std::string("type: QUANTIZE ") + kQ;
  const std::vector<Pair> pairs = {
      {"a repeated identical quantizer is idempotent",
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q + " }"),
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q + " } ops { name: \"k3\" " + q + " }")},
      {"an fp16 window commutes with the quantizer",
       GraphText("ops { name: \"k1\" type: KEEP_FP16 recent_window: 32 } ops { name: \"k2\" type: ROPE } ops { name: \"k3\" " + q + " }"),
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q + " } ops { name: \"k3\" type: KEEP_FP16 recent_window: 32 }")},
      {"head clustering commutes with per-token quantization",
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" type: CLUSTER_HEADS clusters: 2 } ops { name: \"k3\" " + q + " }"),
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q + " } ops { name: \"k3\" type: CLUSTER_HEADS clusters: 2 }")},
      {"eviction at keep ratio 1.0 evicts nothing",
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q + " }",
                 "ops { name: \"e\" type: EVICT eviction { policy: KEY_NORM keep_ratio: 1.0 } } ",
                 "edges { from: \"k2\" to: \"e\" } edges { from: \"e\" to: \"cache\" } "),
       GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q + " }")},
  };
  for (const Pair& p : pairs) {
    SCOPED_TRACE(p.why);
    const Candidate a = Graph(p.a), b = Graph(p.b);
    ASSERT_TRUE(SameResult(Full(a), Full(b))) << "not a real equivalence";
    const CandidateHashes ha = Hashes(a), hb = Hashes(b);
    EXPECT_EQ(ha.functional, hb.functional);
    EXPECT_NE(ha.structural, hb.structural) << "the structural hash should not see this one";
  }
}

TEST_F(EquivalenceTest, OutliersWithoutAQuantizerLeaveTheStreamInFp16) {
  // Splitting outliers off a stream nothing quantizes stores them twice: the stream stays
  // dense fp16 and the outliers cost 32 bits each on top.
  const Candidate split_only = Graph(GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" type: SPLIT_OUTLIERS outlier_fraction: 0.01 }"));
  const EvaluationResult r = Full(split_only);
  EXPECT_GT(r.objectives().effective_bits(), 16.0);
  EXPECT_GT(r.analytic_effective_bits(), 16.0);
}

TEST_F(EquivalenceTest, StructurallyDifferentGraphsThatComputeDifferentlyDoNotCollide) {
  const std::string q2 = "type: QUANTIZE quantizer { format: INT bits: 2 group_size: 32 }";
  const std::string r2 = "type: RESIDUAL_QUANTIZE quantizer { format: INT bits: 2 group_size: 32 }";
  const Candidate one = Graph(GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q2 + " }"));
  const Candidate two_stage =
      Graph(GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q2 + " } ops { name: \"k3\" " + r2 + " }"));
  const EvaluationResult r1 = Full(one), r2r = Full(two_stage);
  EXPECT_LT(r2r.objectives().mean_nll(), r1.objectives().mean_nll()) << "the residual stage recovers quality";
  EXPECT_GT(r2r.objectives().effective_bits(), r1.objectives().effective_bits()) << "and stores its codes";
  EXPECT_NE(Hashes(one).functional, Hashes(two_stage).functional);
  // Eviction scored on the original or on the dequantized keys.
  const std::string evict = "ops { name: \"e\" type: EVICT eviction { policy: KEY_NORM keep_ratio: 0.5 } } ";
  const Candidate original = Graph(GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q2 + " }", evict,
                                             "edges { from: \"k1\" to: \"e\" } edges { from: \"e\" to: \"cache\" } "));
  const Candidate dequantized = Graph(GraphText("ops { name: \"k1\" type: ROPE } ops { name: \"k2\" " + q2 + " }", evict,
                                                "edges { from: \"k2\" to: \"e\" } edges { from: \"e\" to: \"cache\" } "));
  ASSERT_FALSE(SameResult(Full(original), Full(dequantized)));
  EXPECT_NE(Hashes(original).functional, Hashes(dequantized).functional);
}

}  // namespace
}  // namespace fecsearch
