#include "search/algorithms.h"

#include <algorithm>

#include "core/model_config.h"
#include "gtest/gtest.h"
#include "search/domains/genome_space.h"
#include "search/experiment.h"

namespace fecsearch {
namespace {

// Single-objective fitness as the default experiment weighs it: the sum of both objectives.
double Sum(const Individual& i) { return i.objectives[0] + i.objectives[1]; }

Individual Ind(int64_t id, double a, double b, double violation = 0) {
  Individual i;
  i.id = id;
  i.objectives = {a, b};
  i.violation = violation;
  return i;
}

TEST(ParetoTest, DominanceWithConstraints) {
  EXPECT_TRUE(Dominates(Ind(1, 1, 1), Ind(2, 2, 2)));
  EXPECT_FALSE(Dominates(Ind(1, 1, 3), Ind(2, 2, 2)));
  EXPECT_FALSE(Dominates(Ind(1, 1, 1), Ind(2, 1, 1)));
  EXPECT_TRUE(Dominates(Ind(1, 9, 9), Ind(2, 1, 1, 0.5))) << "feasible beats infeasible";
  EXPECT_TRUE(Dominates(Ind(1, 9, 9, 0.1), Ind(2, 1, 1, 0.5))) << "less violation wins";
  std::vector<Individual> all = {Ind(1, 1, 5), Ind(2, 2, 2), Ind(3, 5, 1), Ind(4, 3, 3), Ind(5, 0.5, 0.5, 1)};
  std::vector<int> front = ParetoFront(all);
  std::sort(front.begin(), front.end());
  EXPECT_EQ(front, (std::vector<int>{0, 1, 2}));
}

TEST(ParetoTest, Hypervolume2D) {
  // Points (1,3), (2,2), (3,1) against (4,4): staircase area 3 + 2 + 1 = 6.
  std::vector<Individual> all = {Ind(1, 1, 3), Ind(2, 2, 2), Ind(3, 3, 1), Ind(4, 3.5, 3.5), Ind(5, 0, 0, 1)};
  EXPECT_DOUBLE_EQ(Hypervolume2D(all, 4, 4), 6.0);
  EXPECT_DOUBLE_EQ(Hypervolume2D({}, 4, 4), 0.0);
}

class AlgorithmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = LoadModelConfig("data/tinylm-bytes-5m/config.json");
    ASSERT_TRUE(m.ok());
    auto e = LoadExperiment("");
    ASSERT_TRUE(e.ok());
    spec_ = e->spec;
    spec_.mutable_search()->set_population_size(6);
    space_ = std::make_unique<GenomeSpace>(*GenomeSpace::Create(spec_.search_space(), *m));
  }
  ExperimentSpec spec_;
  std::unique_ptr<GenomeSpace> space_;
};

TEST_F(AlgorithmTest, RegularizedEvolutionAgesOutTheOldest) {
  spec_.mutable_search()->set_algorithm(SearchSpec::REGULARIZED_EVOLUTION);
  spec_.mutable_search()->set_mutation_probability(1.0);
  auto alg = MakeAlgorithm(spec_.search(), *space_, {}, Sum);
  Rng rng(1);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(alg->Propose(rng).operation, "random");
  for (int i = 0; i < 6; ++i) {
    Individual ind = Ind(i, 10 - i, 0);  // later ones are better
    alg->Tell(ind);
  }
  // The best (id 5) ages out after 6 more, even though it is the best.
  for (int i = 6; i < 12; ++i) alg->Tell(Ind(i, 100, 0));
  const auto& pop = alg->population();
  ASSERT_EQ(pop.size(), 6u);
  for (const Individual& ind : pop) EXPECT_GE(ind.id, 6);
  Proposal p = alg->Propose(rng);
  EXPECT_EQ(p.operation, "mutation");
  ASSERT_EQ(p.parents.size(), 1u);
}

TEST_F(AlgorithmTest, TournamentPrefersBetterScalarFitness) {
  spec_.mutable_search()->set_algorithm(SearchSpec::REGULARIZED_EVOLUTION);
  spec_.mutable_search()->set_tournament_size(6);
  auto alg = MakeAlgorithm(spec_.search(), *space_, {}, Sum);
  Rng rng(2);
  for (int i = 0; i < 6; ++i) alg->Propose(rng);
  for (int i = 0; i < 6; ++i) alg->Tell(Ind(i, i == 3 ? 1 : 50, i == 3 ? 1 : 50));
  int from_best = 0;
  for (int k = 0; k < 50; ++k) from_best += alg->Propose(rng).parents[0] == 3;
  // A tournament of 6 draws over 6 contains the best with probability 1 - (5/6)^6 = 0.67;
  // uniform parent choice would pick it 1 time in 6.
  EXPECT_GT(from_best, 25);
}

TEST_F(AlgorithmTest, Nsga2KeepsTheNonDominated) {
  spec_.mutable_search()->set_algorithm(SearchSpec::NSGA2);
  auto alg = MakeAlgorithm(spec_.search(), *space_, {}, Sum);
  Rng rng(3);
  for (int i = 0; i < 6; ++i) alg->Propose(rng);
  // A front of 4 and 8 dominated points.
  alg->Tell(Ind(1, 1, 4));
  alg->Tell(Ind(2, 2, 3));
  alg->Tell(Ind(3, 3, 2));
  alg->Tell(Ind(4, 4, 1));
  for (int i = 0; i < 8; ++i) alg->Tell(Ind(10 + i, 5 + i, 5 + i));
  std::vector<int64_t> ids;
  for (const Individual& ind : alg->population()) ids.push_back(ind.id);
  std::sort(ids.begin(), ids.end());
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 4), (std::vector<int64_t>{1, 2, 3, 4}));
  // Infeasible points lose to feasible ones.
  alg->Tell(Ind(99, 0, 0, 5.0));
  for (const Individual& ind : alg->population()) EXPECT_NE(ind.id, 99);
}

TEST_F(AlgorithmTest, RandomSearchIgnoresResultsAndSeedsComeFirst) {
  spec_.mutable_search()->set_algorithm(SearchSpec::RANDOM_SEARCH);
  Candidate seed;
  seed.mutable_genome()->add_layers()->set_head_clusters(2);
  auto alg = MakeAlgorithm(spec_.search(), *space_, {seed}, Sum);
  Rng rng(4);
  Proposal first = alg->Propose(rng);
  EXPECT_EQ(first.operation, "seed");
  EXPECT_EQ(first.candidate.SerializeAsString(), seed.SerializeAsString());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(alg->Propose(rng).operation, "random");
  // Resumed: a seed the earlier run proposed is not proposed again.
  Candidate second = seed;
  second.mutable_genome()->mutable_layers(0)->set_head_clusters(3);
  auto resumed = MakeAlgorithm(spec_.search(), *space_, {seed, second}, Sum);
  resumed->CountRecordedProposal();
  Proposal next = resumed->Propose(rng);
  EXPECT_EQ(next.operation, "seed");
  EXPECT_EQ(next.candidate.SerializeAsString(), second.SerializeAsString());
  EXPECT_EQ(resumed->Propose(rng).operation, "random");
}

}  // namespace
}  // namespace fecsearch
