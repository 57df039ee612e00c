// Pipeline graphs: validation errors name the vertex; compilation; genome conversion.
#include "core/pipeline_graph.h"

#include "core/model_config.h"
#include "core/text_proto.h"
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
