// The controller with a zero-cost synthetic evaluator: budgets, counting, determinism,
// failures and resume.
#include "search/controller.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <map>
#include <set>

#include "absl/time/clock.h"
#include "core/memory_model.h"
#include "core/model_config.h"
#include "core/model_test_util.h"
#include "core/pipeline_graph.h"
#include "gtest/gtest.h"
#include "hashing/functional_hasher.h"
#include "search/domains/genome_space.h"
#include "search/domains/kv_domain.h"
#include "search/experiment.h"
#include "search/simple_domain.h"

namespace fecsearch {
namespace {

class StopAfter : public ProgressSink {
 public:
  StopAfter(std::atomic<bool>* stop, int64_t evaluations) : stop_(stop), n_(evaluations) {}
  void Update(const Progress& p) override {
    if (p.evaluations >= n_) stop_->store(true);
    last = p;
  }
  Progress last;

 private:
  std::atomic<bool>* stop_;
  int64_t n_;
};

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = *LoadModelConfig("data/tinylm-bytes-5m/config.json");
    spec_ = LoadExperiment("")->spec;
    // The full-fidelity controller (search/fidelity_controller_test.cc tests the ladder).
    spec_.mutable_search()->clear_fidelity();
    spec_.mutable_search()->clear_screen();  // the default's predicted initial population
    spec_.mutable_search()->set_max_evaluations(30);
    spec_.mutable_search()->set_population_size(8);
    // A small space so that duplicates happen.
    SearchSpaceSpec* ss = spec_.mutable_search_space();
    ss->set_layer_groups(1);
    ss->clear_values();
    ss->clear_eviction();
    ss->clear_head_clusters();
    ss->mutable_keys()->clear_outlier_fractions();
    ss->mutable_keys()->clear_sink_tokens();
    ss->mutable_keys()->clear_recent_windows();
    space_ = std::make_unique<GenomeSpace>(*GenomeSpace::Create(*ss, model_));
    // The KV-cache metrics and objectives with a synthetic evaluation.
    domain_ = std::make_unique<SimpleDomain>(
        "synthetic-kv", space_.get(), KvMetrics(),
        std::vector<DefaultObjective>{{"effective_bits", 1, false, 0}, {"perplexity_increase_percent", 1, false, 0}},
        [this](const Candidate& c) -> absl::StatusOr<EvaluationResult> { return Evaluate(c); });
  }

  // Synthetic objectives from the compiled plan: analytic bits, and an NLL that grows as bits
  // shrink. Depends only on what the candidate computes, like a real evaluation.
  EvaluationResult Evaluate(const Candidate& c) {
    ++calls_;
    if (eval_millis_ > 0) absl::SleepFor(absl::Milliseconds(eval_millis_));
    EvaluationResult r;
    auto plan = CompileCandidate(c, model_, 1024);
    if (!plan.ok()) {
      r.mutable_status()->set_code(3);
      r.mutable_status()->set_message(std::string(plan.status().message()));
      return r;
    }
    const double bits = AnalyticPlanBits(*plan, model_, 1024);
    const double nll = 1.6 + 0.5 / bits + 1e-3 * (HashBytes(CandidateSummary(c, model_)).lo % 1000) / 1000.0;
    r.mutable_status()->set_code(0);
    r.mutable_objectives()->set_effective_bits(bits);
    r.mutable_objectives()->set_mean_nll(nll);
    r.mutable_objectives()->set_perplexity(std::exp(nll));
    r.mutable_objectives()->set_perplexity_increase_percent(100 * (std::exp(nll - 1.6) - 1));
    r.set_cost_seconds(0.001);
    return r;
  }

  // The key is a hash of what the synthetic evaluator computes from the candidate.
  Keyer FunctionalKeyer() {
    return [this](const Candidate& c) -> absl::StatusOr<CandidateHashes> {
      auto plan = CompileCandidate(c, model_, 1024);
      if (!plan.ok()) return plan.status();
      CandidateHashes h;
      // CandidateSummary shows resolved settings, so it is equal exactly when the synthetic
      // evaluation is.
      h.functional = HashBytes(CandidateSummary(c, model_));
      h.key = h.functional;
      h.exact = HashBytes(c.SerializeAsString());
      return h;
    };
  }

  struct Run {
    absl::StatusOr<SearchResult> result = absl::UnknownError("");
    std::vector<CandidateRecord> rows;
  };
  Run Search(const std::string& db_path, int threads, bool resume, std::atomic<bool>* stop = nullptr,
             ProgressSink* sink = nullptr, bool use_cache = true) {
    auto db = ExperimentDb::Open(db_path, false);
    EXPECT_TRUE(db.ok()) << db.status();
    auto store = CacheStore::Open(db_path, false);
    EXPECT_TRUE(store.ok());
    auto cache = FecCache::Create(FecCacheOptions(), store->get());
    EXPECT_TRUE(cache.ok());
    int64_t id;
    if (resume) {
      id = (*db)->LatestExperiment()->id;
    } else {
      ExperimentRecord rec;
      rec.name = "t";
      id = *(*db)->StartExperiment(rec);
    }
    LocalPool pool([this](int64_t, const Candidate& c) -> absl::StatusOr<EvaluationResult> { return Evaluate(c); },
                   threads, "synthetic");
    auto objectives = ObjectiveSet::Create(spec_.search(), domain_->Metrics(), domain_->DefaultObjectives());
    EXPECT_TRUE(objectives.ok()) << objectives.status();
    ControllerOptions o;
    o.spec = spec_;
    o.experiment_id = id;
    o.resume = resume;
    o.use_cache = use_cache;
    o.stop = stop;
    Controller controller(o, *domain_, *objectives, FunctionalKeyer(), cache->get(), &pool, db->get(), sink);
    Run run;
    run.result = controller.Run();
    pool.Shutdown();
    run.rows = *(*db)->Candidates(id);
    return run;
  }

  std::string Db(const std::string& name) {
    const std::string p = TestTempDir("controller") + "/" + name + ".db";
    unlink(p.c_str());
    return p;
  }

  ModelConfig model_;
  ExperimentSpec spec_;
  std::unique_ptr<GenomeSpace> space_;
  std::unique_ptr<SimpleDomain> domain_;
  std::atomic<int> calls_{0};
  int eval_millis_ = 0;
};

TEST_F(ControllerTest, RunsToTheBudgetAndRecordsEveryCandidate) {
  Run run = Search(Db("budget"), 4, false);
  ASSERT_TRUE(run.result.ok()) << run.result.status();
  const Progress& p = run.result->progress;
  EXPECT_EQ(p.dispatched, 30);
  EXPECT_EQ(calls_.load(), 30);
  EXPECT_EQ(p.misses, 30);
  EXPECT_GT(p.hits + p.merges, 0) << "a small space produces functional duplicates";
  EXPECT_EQ(p.hits + p.merges + p.misses + p.invalid, p.candidates);
  EXPECT_EQ(static_cast<int64_t>(run.rows.size()), p.candidates);
  std::set<int64_t> ids;
  for (const CandidateRecord& r : run.rows) {
    EXPECT_NE(r.outcome, Outcome::kPending);
    EXPECT_TRUE(ids.insert(r.id).second);
    EXPECT_TRUE(r.has_objectives);
    EXPECT_FALSE(r.cache_key.empty());
  }
  // Every functional hash was evaluated exactly once.
  std::map<std::string, int> evaluated;
  for (const CandidateRecord& r : run.rows)
    if (r.outcome == Outcome::kMiss) ++evaluated[r.cache_key];
  for (const auto& [k, n] : evaluated) EXPECT_EQ(n, 1) << k;
  EXPECT_FALSE(run.result->front.empty());
  EXPECT_FALSE(run.result->trace.empty());
}

TEST_F(ControllerTest, OneThreadIsReproducible) {
  Run a = Search(Db("repro_a"), 1, false), b = Search(Db("repro_b"), 1, false);
  ASSERT_TRUE(a.result.ok() && b.result.ok());
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].candidate.SerializeAsString(), b.rows[i].candidate.SerializeAsString()) << i;
    EXPECT_EQ(a.rows[i].outcome, b.rows[i].outcome);
    EXPECT_EQ(a.rows[i].objectives.mean_nll(), b.rows[i].objectives.mean_nll());
    EXPECT_EQ(a.rows[i].parents, b.rows[i].parents);
  }
  spec_.mutable_search()->set_seed(2);
  Run c = Search(Db("repro_c"), 1, false);
  bool differs = false;
  for (size_t i = 0; i < std::min(a.rows.size(), c.rows.size()); ++i)
    differs |= a.rows[i].candidate.SerializeAsString() != c.rows[i].candidate.SerializeAsString();
  EXPECT_TRUE(differs) << "another seed, another search";
}

TEST_F(ControllerTest, ResumeLosesAndRepeatsNoEvaluation) {
  const std::string db = Db("resume");
  std::atomic<bool> stop{false};
  StopAfter sink(&stop, 12);
  eval_millis_ = 20;  // 12+ evaluations on 3 threads: the first run lasts >= 80 ms
  Run first = Search(db, 3, false, &stop, &sink);
  eval_millis_ = 0;
  ASSERT_TRUE(first.result.ok());
  const int64_t done_first = first.result->progress.evaluations;
  EXPECT_GE(done_first, 12);
  EXPECT_LT(done_first, 30);
  EXPECT_NE(first.result->progress.stop_reason.find("interrupted"), std::string::npos);
  // Simulate candidates left in flight by a kill: mark two finished rows as PENDING again.
  {
    auto edb = ExperimentDb::Open(db, false);
    std::vector<CandidateRecord> rows = *(*edb)->Candidates(first.rows[0].experiment_id);
    int marked = 0;
    for (CandidateRecord& r : rows) {
      if (r.outcome == Outcome::kMiss && marked < 2) {
        r.outcome = Outcome::kPending;
        r.has_objectives = false;
        (*edb)->Put(r);
        ++marked;
      }
    }
    ASSERT_TRUE((*edb)->Flush().ok());
  }
  const int calls_before = calls_.load();
  Run second = Search(db, 3, true);
  ASSERT_TRUE(second.result.ok()) << second.result.status();
  // The two "in flight" ones are recovered from the cache (their evaluations were durable
  // there), so the evaluation budget is exactly met with no repeats.
  EXPECT_EQ(calls_.load(), 30);
  EXPECT_EQ(calls_.load() - calls_before, 30 - done_first);
  std::set<int64_t> ids;
  for (const CandidateRecord& r : second.rows) {
    EXPECT_NE(r.outcome, Outcome::kPending) << r.id;
    EXPECT_TRUE(ids.insert(r.id).second);
  }
  EXPECT_GE(second.rows.size(), first.rows.size());
  EXPECT_EQ(second.result->progress.dispatched, 30);
  int recovered = 0;
  for (const CandidateRecord& r : second.rows) recovered += r.worker == "recovered from cache";
  EXPECT_EQ(recovered, 2);
  // The wall-time trace continues the first run's instead of restarting at 0: replayed
  // results sit at their recorded times, and time never goes backwards.
  const auto& trace = second.result->trace;
  ASSERT_GE(trace.size(), first.rows.size());
  const size_t replayed = first.rows.size() - 2;
  EXPECT_GE(trace[replayed - 1].seconds, 0.03);
  EXPECT_GE(trace[replayed - 1].seconds, 0.5 * first.result->trace.back().seconds);
  for (size_t i = 1; i < trace.size(); ++i) EXPECT_GE(trace[i].seconds, trace[i - 1].seconds) << i;
}

TEST_F(ControllerTest, WithoutCacheEveryCandidateIsEvaluated) {
  Run run = Search(Db("nocache"), 2, false, nullptr, nullptr, /*use_cache=*/false);
  ASSERT_TRUE(run.result.ok());
  EXPECT_EQ(run.result->progress.candidates, 30);
  EXPECT_EQ(run.result->progress.hits, 0);
  EXPECT_EQ(calls_.load(), 30);
}

}  // namespace
}  // namespace fecsearch
