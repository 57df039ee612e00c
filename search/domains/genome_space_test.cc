#include "search/domains/genome_space.h"

#include <set>

#include "core/model_config.h"
#include "core/pipeline_graph.h"
#include "gtest/gtest.h"
#include "search/experiment.h"

namespace fecsearch {
namespace {

class SearchSpaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = LoadModelConfig("data/tinylm-bytes-5m/config.json");
    ASSERT_TRUE(m.ok());
    model_ = *m;
    auto e = LoadExperiment("");
    ASSERT_TRUE(e.ok());
    spec_ = e->spec;
    auto s = GenomeSpace::Create(spec_.search_space(), model_);
    ASSERT_TRUE(s.ok()) << s.status();
    space_ = std::make_unique<GenomeSpace>(*s);
  }
  bool Valid(const Candidate& c) { return CompileCandidate(c, model_, 1024).ok(); }
  ModelConfig model_;
  ExperimentSpec spec_;
  std::unique_ptr<GenomeSpace> space_;
};

TEST_F(SearchSpaceTest, RandomGenomesAreValidAndDiverse) {
  Rng rng(1);
  std::set<std::string> distinct;
  for (int i = 0; i < 300; ++i) {
    Candidate c = space_->Random(rng);
    ASSERT_EQ(c.genome().layers_size(), 3);
    ASSERT_TRUE(Valid(c)) << c.DebugString();
    distinct.insert(c.SerializeAsString());
  }
  EXPECT_EQ(distinct.size(), 300u);
}

TEST_F(SearchSpaceTest, MutationChangesOneGroupAndStaysValid) {
  Rng rng(2);
  Candidate c = space_->Random(rng);
  for (int i = 0; i < 500; ++i) {
    Candidate child = space_->Mutate(c, rng);
    ASSERT_TRUE(Valid(child)) << child.DebugString();
    EXPECT_NE(child.SerializeAsString(), c.SerializeAsString()) << "mutation must change something";
    int changed_groups = 0;
    for (int g = 0; g < 3; ++g)
      changed_groups += child.genome().layers(g).SerializeAsString() != c.genome().layers(g).SerializeAsString();
    EXPECT_EQ(changed_groups, 1);
    c = child;
  }
}

TEST_F(SearchSpaceTest, ValuesComeFromTheSpec) {
  Rng rng(3);
  std::set<int> key_bits, recent;
  std::set<double> ratios;
  for (int i = 0; i < 400; ++i) {
    Candidate c = space_->Random(rng);
    for (const LayerCompression& l : c.genome().layers()) {
      if (l.keys().format() == INT) key_bits.insert(l.keys().bits());
      recent.insert(l.values().recent_window());
      ratios.insert(l.eviction().keep_ratio());
      EXPECT_FALSE(l.values().pre_rope());
      EXPECT_NE(l.values().axis(), PER_CHANNEL);
      if (l.keys().axis() == PER_CHANNEL) {
        EXPECT_TRUE(l.keys().group_size() == 16 || l.keys().group_size() == 32 || l.keys().group_size() == 64);
      }
    }
  }
  EXPECT_EQ(key_bits, (std::set<int>{2, 3, 4, 8}));
  EXPECT_EQ(recent, (std::set<int>{0, 32, 128}));
  EXPECT_EQ(ratios, (std::set<double>{0.25, 0.5, 0.75, 1.0}));
}

TEST_F(SearchSpaceTest, CrossoverTakesWholeGroupsFromParents) {
  Rng rng(4);
  const Candidate a = space_->Random(rng), b = space_->Random(rng);
  for (int i = 0; i < 50; ++i) {
    Candidate c = space_->Crossover(a, b, rng);
    ASSERT_TRUE(Valid(c));
    for (int g = 0; g < 3; ++g) {
      const std::string s = c.genome().layers(g).SerializeAsString();
      EXPECT_TRUE(s == a.genome().layers(g).SerializeAsString() || s == b.genome().layers(g).SerializeAsString());
    }
  }
}

TEST_F(SearchSpaceTest, SameSeedSameCandidates) {
  Rng r1(9), r2(9);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(space_->Random(r1).SerializeAsString(), space_->Random(r2).SerializeAsString());
}

}  // namespace
}  // namespace fecsearch
