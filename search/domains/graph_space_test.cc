// Pipeline-graph candidates: path form round trip, random graphs, every mutation kind valid.
#include "search/domains/graph_space.h"

#include <map>
#include <set>

#include "core/model_config.h"
#include "core/pipeline_graph.h"
#include "gtest/gtest.h"
#include "hashing/structural_hash.h"
#include "search/experiment.h"

namespace fecsearch {
namespace {

class GraphSpaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = *LoadModelConfig("data/tinylm-bytes-5m/config.json");
    auto e = LoadExperiment("search/experiments/pipeline_graphs.textproto");
    ASSERT_TRUE(e.ok()) << e.status();
    spec_ = e->spec;
    auto s = GraphSpace::Create(spec_.search_space(), model_, 1024);
    ASSERT_TRUE(s.ok()) << s.status();
    space_ = std::make_unique<GraphSpace>(std::move(*s));
  }
  bool Valid(const Candidate& c) { return CompileCandidate(c, model_, 1024).ok(); }
  ModelConfig model_;
  ExperimentSpec spec_;
  std::unique_ptr<GraphSpace> space_;
};

TEST_F(GraphSpaceTest, PathFormRoundTripsAnyValidGraph) {
  Rng rng(1);
  for (int i = 0; i < 100; ++i) {
    const Candidate c = space_->Random(rng);
    for (const LayerPipeline& layer : c.pipeline().layers()) {
      const LayerPipeline again = EncodeLayer(DecodeLayer(layer));
      auto a = PipelineGraph::FromProto(layer, model_, "a");
      auto b = PipelineGraph::FromProto(again, model_, "b");
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(StructuralHash(*a), StructuralHash(*b));
    }
  }
}

TEST_F(GraphSpaceTest, MutationsAlwaysYieldValidGraphsAndReachGraphOnlyPipelines) {
  Rng rng(2);
  Candidate c = space_->Random(rng);
  ASSERT_TRUE(Valid(c));
  std::set<std::string> seen;
  int residual = 0, dequantized_taps = 0, repeated = 0, reordered_rope = 0;
  for (int i = 0; i < 3000; ++i) {
    Candidate child = space_->Mutate(c, rng);
    ASSERT_TRUE(Valid(child)) << child.DebugString();
    seen.insert(child.SerializeAsString());
    for (const LayerPipeline& layer : child.pipeline().layers()) {
      const LayerPaths p = DecodeLayer(layer);
      int quantizers = 0;
      for (const PipelineOp& op : p.keys) {
        residual += op.type() == PipelineOp::RESIDUAL_QUANTIZE;
        quantizers += op.type() == PipelineOp::QUANTIZE;
      }
      repeated += quantizers > 1;
      for (const PipelineOp& op : p.keys) {
        if (op.type() == PipelineOp::ROPE) break;
        reordered_rope += op.type() == PipelineOp::QUANTIZE;  // a quantizer before RoPE
      }
    }
    // Counted by what the compiled plan does, not by how the graph looks: the tap matters
    // only for the policies that score tokens by their own vectors.
    dequantized_taps += GraphOnlyFeatures(child, model_).find("eviction scored on dequantized") != std::string::npos;
    c = rng.Uniform(4) == 0 ? space_->Random(rng) : child;  // random restarts keep the walk broad
  }
  EXPECT_GT(seen.size(), 1000u);
  EXPECT_GT(residual, 0) << "two-stage residual quantization is reachable";
  EXPECT_GT(dequantized_taps, 0) << "eviction scored on dequantized keys is reachable";
  EXPECT_GT(repeated, 0) << "repeated quantizers are reachable";
  EXPECT_GT(reordered_rope, 0) << "moving quantization before RoPE is reachable";
}

TEST_F(GraphSpaceTest, CopyToNeighbourAndCrossover) {
  Rng rng(3);
  int copies = 0;
  for (int i = 0; i < 400; ++i) {
    const Candidate c = space_->Random(rng);
    const Candidate child = space_->Mutate(c, rng);
    int changed = 0;
    for (int g = 0; g < 3; ++g) changed += child.pipeline().layers(g).SerializeAsString() != c.pipeline().layers(g).SerializeAsString();
    EXPECT_EQ(changed, 1) << "one layer group per mutation";
    for (int g = 0; g + 1 < 3; ++g) {
      if (c.pipeline().layers(g).SerializeAsString() != c.pipeline().layers(g + 1).SerializeAsString() &&
          child.pipeline().layers(g).SerializeAsString() == child.pipeline().layers(g + 1).SerializeAsString()) {
        ++copies;
      }
    }
    const Candidate x = space_->Crossover(c, child, rng);
    EXPECT_TRUE(Valid(x));
  }
  EXPECT_GT(copies, 0);
}

}  // namespace
}  // namespace fecsearch
