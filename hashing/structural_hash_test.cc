#include "hashing/structural_hash.h"

#include <algorithm>

#include "core/model_config.h"
#include "core/text_proto.h"
#include "gtest/gtest.h"

namespace fecsearch {
namespace {

ModelConfig Model() {
  auto c = LoadModelConfig("data/tinylm-bytes-5m/config.json");
  EXPECT_TRUE(c.ok());
  return *c;
}

PipelineGraph Graph(const LayerPipeline& p) {
  auto g = PipelineGraph::FromProto(p, Model(), "t");
  EXPECT_TRUE(g.ok()) << g.status();
  return *g;
}

LayerPipeline FromGenome(const std::string& text) {
  LayerCompression l;
  EXPECT_TRUE(ParseTextProto(text, "t", &l).ok());
  return GenomeLayerToPipeline(l);
}

TEST(StructuralHashTest, InvariantToVertexNumberingAndNames) {
  LayerPipeline p = FromGenome(
      "keys { format: INT bits: 2 axis: PER_CHANNEL group_size: 32 outlier_fraction: 0.01 sink_tokens: 4 } "
      "values { format: INT bits: 2 } eviction { policy: H2O keep_ratio: 0.5 }");
  const Hash128 h = StructuralHash(Graph(p));
  // Reverse the vertex order and rename every vertex.
  LayerPipeline q;
  std::vector<PipelineOp> ops(p.ops().begin(), p.ops().end());
  std::reverse(ops.begin(), ops.end());
  for (PipelineOp op : ops) {
    op.set_name("renamed_" + op.name());
    *q.add_ops() = op;
  }
  for (const PipelineEdge& e : p.edges()) {
    PipelineEdge* n = q.add_edges();
    n->set_from("renamed_" + e.from());
    n->set_to("renamed_" + e.to());
  }
  EXPECT_EQ(StructuralHash(Graph(q)), h);
}

TEST(StructuralHashTest, ParametersAndWiringMatter) {
  const Hash128 a = StructuralHash(Graph(FromGenome("keys { format: INT bits: 2 }")));
  EXPECT_NE(a, StructuralHash(Graph(FromGenome("keys { format: INT bits: 3 }"))));
  EXPECT_NE(a, StructuralHash(Graph(FromGenome("values { format: INT bits: 2 }"))))
      << "the same quantizer on the other stream";
  EXPECT_NE(StructuralHash(Graph(FromGenome("keys { format: INT bits: 2 pre_rope: true }"))), a)
      << "quantizer before vs after RoPE";
  // Eviction tapping original vs dequantized keys.
  LayerPipeline original = FromGenome("keys { format: INT bits: 2 } eviction { policy: KEY_NORM keep_ratio: 0.5 }");
  LayerPipeline dequantized = original;
  for (PipelineEdge& e : *dequantized.mutable_edges())
    if (e.to() == "evict") e.set_from("k_quant");
  EXPECT_NE(StructuralHash(Graph(original)), StructuralHash(Graph(dequantized)));
}

TEST(StructuralHashTest, LayerOrderMatters) {
  const PipelineGraph a = Graph(FromGenome("keys { format: INT bits: 2 }"));
  const PipelineGraph b = Graph(FromGenome("keys { format: INT bits: 4 }"));
  EXPECT_NE(StructuralHash(std::vector<PipelineGraph>{a, b}), StructuralHash(std::vector<PipelineGraph>{b, a}));
  EXPECT_EQ(StructuralHash(std::vector<PipelineGraph>{a, b}), StructuralHash(std::vector<PipelineGraph>{a, b}));
}

TEST(StructuralHasherTest, MatchesTheGraphHashAndRemembersEntries) {
  const ModelConfig model = Model();
  StructuralHasher hasher(model, 1024);
  for (const char* text : {"layers { keys { format: INT bits: 2 } }",
                           "layers { keys { format: INT bits: 2 } } layers { values { format: NF bits: 4 } } layers { }",
                           ""}) {
    Candidate c;
    ASSERT_TRUE(ParseTextProto(text, "t", c.mutable_genome()).ok());
    auto graphs = CandidateToGraphEntries(c, model);
    ASSERT_TRUE(graphs.ok());
    for (int round = 0; round < 2; ++round) {  // second round answered from memory
      auto h = hasher.Hash(c);
      ASSERT_TRUE(h.ok()) << h.status();
      EXPECT_EQ(*h, StructuralHash(*graphs)) << text;
      EXPECT_EQ(*h, StructuralHash(*CandidateToGraphs(c, model))) << text;
    }
  }
}

TEST(StructuralHasherTest, ErrorsNameTheEntryEvenWhenRemembered) {
  StructuralHasher hasher(Model(), 1024);
  Candidate a, b;
  ASSERT_TRUE(ParseTextProto("layers { keys { format: INT bits: 9 } }", "t", a.mutable_genome()).ok());
  ASSERT_TRUE(ParseTextProto("layers { } layers { } layers { keys { format: INT bits: 9 } }", "t", b.mutable_genome()).ok());
  auto ea = hasher.Hash(a);
  ASSERT_FALSE(ea.ok());
  EXPECT_NE(ea.status().message().find("genome.layers[0].keys.bits"), std::string::npos) << ea.status();
  auto eb = hasher.Hash(b);
  ASSERT_FALSE(eb.ok());
  EXPECT_NE(eb.status().message().find("genome.layers[2].keys.bits"), std::string::npos) << eb.status();
  Candidate sinks;
  ASSERT_TRUE(ParseTextProto("layers { keys { sink_tokens: 5000 } }", "t", sinks.mutable_genome()).ok());
  auto es = hasher.Hash(sinks);
  ASSERT_FALSE(es.ok());
  EXPECT_NE(es.status().message().find("genome.layers[0] keys: sink_tokens 5000"), std::string::npos) << es.status();
}

}  // namespace
}  // namespace fecsearch
