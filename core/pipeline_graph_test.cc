// Pipeline graphs: validation errors name the vertex; compilation; genome conversion.
#include "core/pipeline_graph.h"

#include <algorithm>
#include <random>
#include <vector>

#include "core/model_config.h"
#include "core/text_proto.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

ModelConfig Model() { return *LoadModelConfig("data/tinylm-bytes-5m/config.json"); }

LayerPipeline Parse(const std::string& text) {
  LayerPipeline p;
  EXPECT_TRUE(ParseTextProto(text, "t", &p).ok()) << text;
  return p;
}

constexpr char kBase[] = R"pb(
  ops { name: "keys" type: KEYS_INPUT }
  ops { name: "rope" type: ROPE }
  ops { name: "q" type: QUANTIZE quantizer { format: INT bits: 2 } }
  ops { name: "values" type: VALUES_INPUT }
  ops { name: "cache" type: OUTPUT }
  edges { from: "keys" to: "rope" }
  edges { from: "rope" to: "q" }
  edges { from: "q" to: "cache" }
  edges { from: "values" to: "cache" }
)pb";

TEST(PipelineGraphTest, AValidGraphCompiles) {
  auto g = PipelineGraph::FromProto(Parse(kBase), Model(), "layers[0]");
  ASSERT_TRUE(g.ok()) << g.status();
  const LayerPlan plan = g->Compile();
  ASSERT_EQ(plan.keys.stages.size(), 1u);
  EXPECT_EQ(plan.keys.stages[0].quantizer.bits, 2);
  EXPECT_FALSE(plan.keys.quantize_before_rope);
  EXPECT_TRUE(plan.values.stages.empty());
}

TEST(PipelineGraphTest, MalformedGraphsNameTheVertex) {
  struct Case {
    std::string text;
    const char* expect;
  };
  const std::string base = kBase;
  for (const Case& c : std::vector<Case>{
           {base + "edges { from: \"q\" to: \"rope\" }", "lies on a cycle"},
           // The vertex named is on the cycle, not merely behind it (here listed first).
           {R"pb(ops { name: "cache" type: OUTPUT } ops { name: "keys" type: KEYS_INPUT }
                 ops { name: "rope" type: ROPE } ops { name: "q" type: QUANTIZE quantizer { format: INT bits: 2 } }
                 ops { name: "values" type: VALUES_INPUT }
                 edges { from: "keys" to: "rope" } edges { from: "rope" to: "q" } edges { from: "q" to: "rope" }
                 edges { from: "q" to: "cache" } edges { from: "values" to: "cache" })pb",
            "lies on a cycle (q -> rope -> q)"},
           {base + "edges { from: \"q\" to: \"nowhere\" }", "dangling: vertex 'nowhere' does not exist"},
           {base + "ops { name: \"x\" }", "vertex 'x' has no operator type, or one this version does not know"},
           {R"pb(ops { name: "keys" type: KEYS_INPUT } ops { name: "rope" type: ROPE }
                 ops { name: "values" type: VALUES_INPUT } ops { name: "vrope" type: ROPE }
                 ops { name: "cache" type: OUTPUT }
                 edges { from: "keys" to: "rope" } edges { from: "rope" to: "cache" }
                 edges { from: "values" to: "vrope" } edges { from: "vrope" to: "cache" })pb",
            "vertex 'vrope' (ROPE): ROPE on the value stream (type mismatch"},
           {R"pb(ops { name: "keys" type: KEYS_INPUT } ops { name: "rope" type: ROPE }
                 ops { name: "values" type: VALUES_INPUT } ops { name: "r" type: RESIDUAL_QUANTIZE quantizer {} }
                 ops { name: "cache" type: OUTPUT }
                 edges { from: "keys" to: "rope" } edges { from: "rope" to: "cache" }
                 edges { from: "values" to: "r" } edges { from: "r" to: "cache" })pb",
            "vertex 'r' (RESIDUAL_QUANTIZE): RESIDUAL_QUANTIZE needs a QUANTIZE before it"},
           {base + R"pb(ops { name: "e" type: EVICT eviction { policy: KEY_NORM keep_ratio: 0.5 } }
                        edges { from: "values" to: "e" } edges { from: "e" to: "cache" })pb",
            "vertex 'e' (EVICT): KEY_NORM must tap the key stream (type mismatch)"},
           {R"pb(ops { name: "keys" type: KEYS_INPUT } ops { name: "rope" type: ROPE }
                 ops { name: "q2" type: QUANTIZE quantizer { format: INT bits: 9 } }
                 ops { name: "values" type: VALUES_INPUT } ops { name: "cache" type: OUTPUT }
                 edges { from: "keys" to: "rope" } edges { from: "rope" to: "q2" }
                 edges { from: "q2" to: "cache" } edges { from: "values" to: "cache" })pb",
            "vertex 'q2'.quantizer.bits: 9 is out of range"},
           {R"pb(ops { name: "keys" type: KEYS_INPUT } ops { name: "values" type: VALUES_INPUT }
                 ops { name: "cache" type: OUTPUT }
                 edges { from: "keys" to: "cache" } edges { from: "values" to: "cache" })pb",
            "the key path has no ROPE vertex"},
           {R"pb(ops { name: "keys" type: KEYS_INPUT } ops { name: "a" type: QUANTIZE quantizer {} }
                 ops { name: "rope" type: ROPE } ops { name: "b" type: QUANTIZE quantizer {} }
                 ops { name: "values" type: VALUES_INPUT } ops { name: "cache" type: OUTPUT }
                 edges { from: "keys" to: "a" } edges { from: "a" to: "rope" } edges { from: "rope" to: "b" }
                 edges { from: "b" to: "cache" } edges { from: "values" to: "cache" })pb",
            "quantizes both before and after ROPE"},
           {base + R"pb(ops { name: "extra" type: QUANTIZE quantizer {} } edges { from: "q" to: "extra" })pb",
            "vertex 'q' (QUANTIZE): its stream forks"},
           {base + R"pb(ops { name: "lonely" type: KEEP_FP16 } edges { from: "lonely" to: "cache" })pb",
            "vertex 'lonely' (KEEP_FP16): has 0 inputs"},
           {base + R"pb(ops { name: "cache2" type: OUTPUT })pb", "vertex 'cache2' (OUTPUT): a second OUTPUT"},
           {R"pb(ops { name: "keys" type: KEYS_INPUT } ops { name: "rope" type: ROPE }
                 ops { name: "c" type: CLUSTER_HEADS clusters: 9 }
                 ops { name: "values" type: VALUES_INPUT } ops { name: "cache" type: OUTPUT }
                 edges { from: "keys" to: "rope" } edges { from: "rope" to: "c" }
                 edges { from: "c" to: "cache" } edges { from: "values" to: "cache" })pb",
            "clusters 9 is outside 1..4"},
       }) {
    auto g = PipelineGraph::FromProto(Parse(c.text), Model(), "pipeline.layers[2]");
    ASSERT_FALSE(g.ok()) << c.text;
    EXPECT_NE(g.status().message().find(c.expect), std::string::npos) << g.status().message();
    EXPECT_NE(g.status().message().find("pipeline.layers[2]"), std::string::npos) << g.status().message();
  }
}

TEST(PipelineGraphTest, UnknownOperatorNamesFailToParseWithTheirLocation) {
  LayerPipeline p;
  absl::Status s = ParseTextProto("ops { name: \"x\"\n type: MAGIC_COMPRESSION }", "graph.textproto", &p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("graph.textproto:2:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("MAGIC_COMPRESSION"), std::string::npos) << s;
}

TEST(PipelineGraphTest, GenomesConvertToTheGraphsTheyDescribe) {
  LayerCompression l;
  ASSERT_TRUE(ParseTextProto("keys { format: NUQ bits: 3 pre_rope: true outlier_fraction: 0.01 sink_tokens: 4 } "
                             "values { format: INT bits: 2 recent_window: 32 } "
                             "eviction { policy: SNAPKV keep_ratio: 0.5 } head_clusters: 2",
                             "t", &l)
                  .ok());
  auto g = PipelineGraph::FromProto(GenomeLayerToPipeline(l), Model(), "genome");
  ASSERT_TRUE(g.ok()) << g.status();
  const LayerPlan plan = g->Compile();
  EXPECT_TRUE(plan.keys.quantize_before_rope);
  ASSERT_EQ(plan.keys.stages.size(), 2u);
  EXPECT_EQ(plan.keys.stages[0].kind, StageKind::kSplitOutliers);
  EXPECT_EQ(plan.keys.sink_tokens, 4);
  EXPECT_EQ(plan.values.recent_window, 32);
  EXPECT_EQ(plan.eviction.policy, SNAPKV);
  EXPECT_FALSE(plan.eviction.tap_rotated) << "pre-RoPE genome: the original keys are read before rotation";
  EXPECT_EQ(plan.head_clusters, 2);
}

// Every genome means, gene by gene, the plan its graph compiles to: checked on 2,000 random
// genomes against the genome's documented semantics (kv_compression.proto), stated here
// without going through the conversion.
TEST(PipelineGraphTest, RandomGenomesCompileToThePlansTheirGenesDescribe) {
  const ModelConfig model = Model();
  std::mt19937 rng(11);
  auto pick = [&](std::vector<int> v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; };
  auto stream = [&](StreamCompression* s, bool keys) {
    const NumberFormat f = static_cast<NumberFormat>(pick({FP16, BF16, INT, FP8_E4M3, FP8_E5M2, NUQ, NF, POSIT}));
    s->set_format(f);
    s->set_bits(f == POSIT ? 8 : pick({2, 3, 4}));
    s->set_symmetric(pick({0, 1}));
    s->set_axis(pick({0, 1}) ? PER_CHANNEL : PER_TOKEN);
    s->set_group_size(s->axis() == PER_CHANNEL ? pick({16, 32, 64}) : pick({0, 16, 32, 64}));
    s->set_pre_rope(keys && pick({0, 1}));
    s->set_outlier_fraction(pick({0, 0, 1}) * 0.01);
    s->set_sink_tokens(pick({0, 4}));
    s->set_recent_window(pick({0, 32}));
  };
  int compiled = 0;
  for (int i = 0; i < 2000; ++i) {
    Candidate c;
    LayerCompression* l = c.mutable_genome()->add_layers();
    stream(l->mutable_keys(), true);
    stream(l->mutable_values(), false);
    const EvictionPolicy policy =
        static_cast<EvictionPolicy>(pick({NO_EVICTION, STREAMING_LLM, H2O, SNAPKV, KEY_NORM, VALUE_NORM, TEMPORAL_REDUNDANCY}));
    if (policy != NO_EVICTION) {
      l->mutable_eviction()->set_policy(policy);
      l->mutable_eviction()->set_keep_ratio(pick({25, 50, 100}) / 100.0);
      l->mutable_eviction()->set_observation_window(pick({16, 32}));
      l->mutable_eviction()->set_pooling_kernel(pick({1, 5}));
    }
    l->set_head_clusters(pick({0, 1, 2}));
    auto plan = CompileCandidate(c, model, 1024);
    ASSERT_TRUE(plan.ok()) << plan.status() << "\n" << c.DebugString();
    ++compiled;
    ASSERT_EQ(static_cast<int>(plan->layers.size()), model.num_layers);
    const LayerPlan& lp = plan->layers.back();  // one genome layer applies to every layer
    for (int stream_index = 0; stream_index < 2; ++stream_index) {
      const StreamCompression& g = stream_index == 0 ? l->keys() : l->values();
      const StreamPlan& sp = stream_index == 0 ? lp.keys : lp.values;
      SCOPED_TRACE(absl::StrCat(stream_index == 0 ? "keys" : "values", " of ", c.ShortDebugString()));
      EXPECT_EQ(sp.sink_tokens, g.sink_tokens());
      EXPECT_EQ(sp.recent_window, g.recent_window());
      const bool quantizes = g.format() != FP16;
      const size_t want_stages = !quantizes ? 0 : g.outlier_fraction() > 0 ? 2 : 1;
      ASSERT_EQ(sp.stages.size(), want_stages);
      if (!quantizes) continue;
      if (want_stages == 2) {
        EXPECT_EQ(sp.stages[0].kind, StageKind::kSplitOutliers);
        EXPECT_DOUBLE_EQ(sp.stages[0].outlier_fraction, g.outlier_fraction());
      }
      const Stage& q = sp.stages.back();
      EXPECT_EQ(q.kind, StageKind::kQuantize);
      EXPECT_TRUE(q.stored);
      EXPECT_EQ(q.quantizer.format, g.format());
      if (g.format() == INT || g.format() == NUQ || g.format() == NF) {
        EXPECT_EQ(q.quantizer.bits, g.bits());
      }
      if (g.format() != BF16) {  // bf16 rounds each element: no groups, no axis
        EXPECT_EQ(q.quantizer.axis, g.axis());
        if (g.axis() == PER_CHANNEL) {
          EXPECT_EQ(sp.channel_alignment, g.group_size());
        }
      }
      if (stream_index == 0) {
        EXPECT_EQ(sp.quantize_before_rope, g.pre_rope());
      }
    }
    EXPECT_EQ(lp.head_clusters, l->head_clusters());
    EXPECT_EQ(lp.eviction.policy, policy);
    if (policy != NO_EVICTION) {
      EXPECT_DOUBLE_EQ(lp.eviction.keep_ratio, l->eviction().keep_ratio());
      EXPECT_EQ(lp.eviction.observation_window, l->eviction().observation_window());
      EXPECT_EQ(lp.eviction.pooling_kernel, l->eviction().pooling_kernel());
      // The genome scores original tokens: values for VALUE_NORM, else keys, rotated unless
      // the keys are quantized before RoPE.
      EXPECT_EQ(lp.eviction.tap_values, policy == VALUE_NORM);
      EXPECT_EQ(lp.eviction.tap_after_stages, 0);
      if (policy != VALUE_NORM) {
        EXPECT_EQ(lp.eviction.tap_rotated, !(l->keys().pre_rope() && l->keys().format() != FP16));
      }
    }
  }
  EXPECT_EQ(compiled, 2000);
}

TEST(PipelineGraphTest, GraphOnlyFeaturesAreRecognised) {
  LayerCompression l;
  ASSERT_TRUE(ParseTextProto("keys { format: INT bits: 2 outlier_fraction: 0.01 } eviction { policy: KEY_NORM keep_ratio: 0.5 }",
                             "t", &l).ok());
  Candidate genome_graph;
  *genome_graph.mutable_pipeline()->add_layers() = GenomeLayerToPipeline(l);
  EXPECT_EQ(GraphOnlyFeatures(genome_graph, Model()), "") << "a genome's own graph";
  Candidate residual = genome_graph;
  LayerPipeline* p = residual.mutable_pipeline()->mutable_layers(0);
  PipelineOp* r = p->add_ops();
  r->set_name("res");
  r->set_type(PipelineOp::RESIDUAL_QUANTIZE);
  r->mutable_quantizer()->set_bits(2);
  for (PipelineEdge& e : *p->mutable_edges()) {
    if (e.from() == "k_quant" && e.to() == "cache") e.set_from("res");
  }
  PipelineEdge* e = p->add_edges();
  e->set_from("k_quant");
  e->set_to("res");
  EXPECT_EQ(GraphOnlyFeatures(residual, Model()), "residual quantization of keys");
  Candidate dequantized = genome_graph;
  for (PipelineEdge& e2 : *dequantized.mutable_pipeline()->mutable_layers(0)->mutable_edges()) {
    if (e2.to() == "evict") e2.set_from("k_quant");
  }
  EXPECT_EQ(GraphOnlyFeatures(dequantized, Model()), "eviction scored on dequantized keys");
}

}  // namespace
}  // namespace fecsearch

namespace fecsearch {
namespace {

// Layer groups of any size: N groups split L layers into consecutive runs whose sizes differ
// by at most one (so a spec's layer_groups fits models of 16, 22, 28, 30 or 32 layers).
TEST(LayerGroupTest, GroupsAreConsecutiveAndAsEqualAsPossible) {
  for (int layers : {1, 6, 16, 22, 28, 30, 32}) {
    for (int groups = 1; groups <= layers; ++groups) {
      std::vector<int> size(groups, 0);
      int previous = 0;
      for (int l = 0; l < layers; ++l) {
        const int g = LayerGroupOf(l, groups, layers);
        ASSERT_GE(g, previous) << layers << " layers, " << groups << " groups, layer " << l;
        ASSERT_LE(g, previous + 1);
        ASSERT_LT(g, groups);
        previous = g;
        ++size[g];
      }
      EXPECT_EQ(previous, groups - 1);
      const auto [lo, hi] = std::minmax_element(size.begin(), size.end());
      EXPECT_LE(*hi - *lo, 1) << layers << " layers, " << groups << " groups";
      EXPECT_GE(*lo, 1);
    }
  }
  // The examples the docs give.
  std::vector<int> sizes(4, 0);
  for (int l = 0; l < 22; ++l) ++sizes[LayerGroupOf(l, 4, 22)];
  EXPECT_EQ(sizes, (std::vector<int>{5, 6, 5, 6}));
  for (int l = 0; l < 30; ++l) EXPECT_EQ(LayerGroupOf(l, 3, 30), l / 10);
  // Divisors keep the earlier mapping: blocks of L / N.
  for (int l = 0; l < 32; ++l) EXPECT_EQ(LayerGroupOf(l, 8, 32), l / 4);
  EXPECT_FALSE(CheckLayerGroupCount(7, 6, "f").ok());
  EXPECT_TRUE(CheckLayerGroupCount(4, 6, "f").ok());
}

}  // namespace
}  // namespace fecsearch
