// Multi-fidelity search in the controller (search.fidelity), with a synthetic domain whose
// "windows" cost nothing: rung r scores the first 1, 2 or 4 windows, a window's value depends
// only on what the candidate computes and on the window, and every window scored is counted,
// so the tests can check what was evaluated, what it cost and what the front is made of.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/memory_model.h"
#include "core/model_config.h"
#include "core/model_test_util.h"
#include "core/pipeline_graph.h"
#include "gtest/gtest.h"
#include "hashing/functional_hasher.h"
#include "search/controller.h"
#include "search/domains/genome_space.h"
#include "search/domains/kv_domain.h"
#include "search/experiment.h"
#include "search/simple_domain.h"

namespace fecsearch {
namespace {

constexpr int kWindows = 4;
const int kRungWindows[] = {1, 2, 4};  // windows scored at rungs 0, 1, 2 (the full evaluation)

// A KV-style domain (effective bits, perplexity increase) with three fidelities. Its
// synthetic windows: the value of window w is 1.6 + 0.5 / bits plus a per-(function, window)
// offset of up to +-0.05 nats, so one window ranks candidates differently from four.
class SyntheticFidelityDomain : public SimpleDomain {
 public:
  SyntheticFidelityDomain(const CandidateSpace* space, const ModelConfig* model)
      : SimpleDomain("synthetic-fidelities", space, KvMetrics(),
                     std::vector<DefaultObjective>{{"effective_bits", 1, false, 0}, {"perplexity_increase_percent", 1, false, 0}},
                     [this](const Candidate& c) { return EvaluateAt(c, 2); }),
        model_(model) {}

  std::vector<Fidelity> Fidelities() const override {
    return {{"1 window", 0.25, "w1"}, {"2 windows", 0.5, "w2"}, {"4 windows (full)", 1.0, "w4"}};
  }
  absl::StatusOr<EvaluationResult> EvaluateAt(const Candidate& c, int fidelity, int64_t = 0, int = 1) const override {
    std::vector<int> windows;
    for (int w = 0; w < kRungWindows[fidelity]; ++w) windows.push_back(w);
    return Score(c, windows, {});
  }
  absl::StatusOr<EvaluationResult> ResultAt(const EvaluationResult& higher, int fidelity) const override {
    if (higher.windows_size() < kRungWindows[fidelity]) return absl::NotFoundError("fewer windows");
    EvaluationResult r = higher;
    r.clear_windows();
    for (int w = 0; w < kRungWindows[fidelity]; ++w) *r.add_windows() = higher.windows(w);
    Aggregate(&r);
    return r;
  }
  absl::StatusOr<EvaluationResult> Promote(const Candidate& c, const EvaluationResult& lower, int fidelity, int64_t,
                                           int) const override {
    std::vector<int> missing;
    for (int w = lower.windows_size(); w < kRungWindows[fidelity]; ++w) missing.push_back(w);
    ++promotes_;
    if (fail_promotions && HashBytes(CandidateSummary(c, *model_)).lo % 4 == 0) {
      ++failed_promotions;
      return absl::UnavailableError("synthetic promotion failure");  // before any window is scored
    }
    return Score(c, missing, lower);
  }

  // The probe screen's predictor: the bits, and 0.5 / bits with a per-function error of up
  // to +-0.05 (what the windows measure, seen through a noisy probe). A result carries the
  // same point (analytic bits, layer 0's probe error), as the KV-cache evaluator's do.
  absl::StatusOr<std::vector<double>> Predict(const Candidate& c) const override {
    auto plan = CompileCandidate(c, *model_, 1024);
    if (!plan.ok()) return plan.status();
    ++predictions;
    predicted_log.push_back(c);  // the controller predicts from its own thread only
    return Predicted(c, *plan);
  }
  absl::StatusOr<std::vector<double>> PredictedOf(const EvaluationResult& r) const override {
    if (r.layers_size() == 0) return absl::NotFoundError("no probe errors");
    return std::vector<double>{r.analytic_effective_bits(), r.layers(0).attention_relative_error()};
  }
  std::vector<double> Predicted(const Candidate& c, const ModelPlan& plan) const {
    const double bits = AnalyticPlanBits(plan, *model_, 1024);
    const std::string function = CandidateSummary(c, *model_);
    return {bits, 0.5 / bits + 0.1 * ((HashBytes(absl::StrCat(function, "#probe")).lo % 1000) / 1000.0 - 0.5)};
  }
  mutable std::atomic<int> predictions{0};
  mutable std::vector<Candidate> predicted_log;

  // Windows scored per function (its summary) so far, and in all.
  std::map<std::string, std::map<int, int>> scored() const {
    std::lock_guard<std::mutex> lock(mu_);
    return scored_;
  }
  int64_t windows_scored() const {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t n = 0;
    for (const auto& [f, w] : scored_)
      for (const auto& [i, k] : w) n += k;
    return n;
  }
  mutable std::atomic<int> promotes_{0};
  mutable std::atomic<int> failed_promotions{0};
  int eval_millis = 0;
  bool fail_promotions = false;  // a quarter of the functions' promotions fail

 private:
  EvaluationResult Score(const Candidate& c, const std::vector<int>& windows, const EvaluationResult& lower) const {
    if (eval_millis > 0) absl::SleepFor(absl::Milliseconds(eval_millis));
    EvaluationResult r = lower;
    r.mutable_status()->set_code(0);
    auto plan = CompileCandidate(c, *model_, 1024);
    if (!plan.ok()) {
      r.mutable_status()->set_code(3);
      r.mutable_status()->set_message(std::string(plan.status().message()));
      return r;
    }
    const std::string function = CandidateSummary(c, *model_);
    const double bits = AnalyticPlanBits(*plan, *model_, 1024);
    for (int w : windows) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++scored_[function][w];
      }
      WindowResult* wr = r.add_windows();
      wr->set_index(w);
      wr->set_tokens_scored(1);
      wr->set_nll_sum(1.6 + 0.5 / bits + 0.1 * ((HashBytes(absl::StrCat(function, "#", w)).lo % 1000) / 1000.0 - 0.5));
      wr->set_cache_bits(bits);
    }
    r.set_analytic_effective_bits(bits);
    r.clear_layers();
    r.add_layers()->set_attention_relative_error(Predicted(c, *plan)[1]);
    Aggregate(&r);
    r.set_cost_seconds(0.001 * r.windows_size());
    return r;
  }
  static void Aggregate(EvaluationResult* r) {
    double nll = 0;
    for (const WindowResult& w : r->windows()) nll += w.nll_sum();
    nll /= std::max(1, r->windows_size());
    Objectives* o = r->mutable_objectives();
    o->set_effective_bits(r->analytic_effective_bits());
    o->set_mean_nll(nll);
    o->set_perplexity(std::exp(nll));
    o->set_perplexity_increase_percent(100 * (std::exp(nll - 1.6) - 1));
    (*o->mutable_metrics())["effective_bits"] = o->effective_bits();
    (*o->mutable_metrics())["mean_nll"] = nll;
    (*o->mutable_metrics())["perplexity"] = o->perplexity();
    (*o->mutable_metrics())["perplexity_increase_percent"] = o->perplexity_increase_percent();
  }
  const ModelConfig* model_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::map<int, int>> scored_;
};

class FidelityControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = *LoadModelConfig("data/tinylm-bytes-5m/config.json");
    spec_ = LoadExperiment("")->spec;
    spec_.mutable_search()->set_max_evaluations(20);  // full-evaluation equivalents
    spec_.mutable_search()->set_population_size(8);
    spec_.mutable_search()->clear_fidelity();  // the default's ladder is replaced by three rungs
    spec_.mutable_search()->clear_screen();    // the tests that screen set their own
    FidelitySpec* f = spec_.mutable_search()->mutable_fidelity();
    f->set_eta(3);
    f->add_rungs()->add_windows(0);
    f->add_rungs()->add_windows(0);
    f->mutable_rungs(1)->add_windows(1);
    SearchSpaceSpec* ss = spec_.mutable_search_space();
    ss->set_layer_groups(1);
    ss->clear_eviction();
    ss->clear_head_clusters();
    ss->mutable_keys()->clear_outlier_fractions();
    ss->mutable_values()->clear_outlier_fractions();
    space_ = std::make_unique<GenomeSpace>(*GenomeSpace::Create(*ss, model_));
    domain_ = std::make_unique<SyntheticFidelityDomain>(space_.get(), &model_);
  }

  Keyer FunctionalKeyer() {
    return [this](const Candidate& c) -> absl::StatusOr<CandidateHashes> {
      auto plan = CompileCandidate(c, model_, 1024);
      if (!plan.ok()) return plan.status();
      CandidateHashes h;
      h.functional = HashBytes(CandidateSummary(c, model_));
      h.exact = HashBytes(c.SerializeAsString());
      h.key = exact_keys_ ? h.exact : h.functional;  // --dedup=exact keys the cache by the exact hash
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
    auto cache = FecCache::Create(cache_options_, store->get());
    EXPECT_TRUE(cache.ok());
    int64_t id;
    if (resume) {
      id = (*db)->LatestExperiment()->id;
    } else {
      ExperimentRecord rec;
      rec.name = "t";
      id = *(*db)->StartExperiment(rec);
    }
    const Domain& d = *domain_;
    LocalPool pool([&d](int64_t id, const Candidate& c) { return d.Evaluate(c, id); }, threads, "synthetic");
    pool.SetFidelityFn([&d](int64_t id, const Candidate& c, int fidelity, const EvaluationResult* lower) {
      return lower ? d.Promote(c, *lower, fidelity, id) : d.EvaluateAt(c, fidelity, id);
    });
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
    run.rows = *(*db)->Candidates(id, /*with_results=*/true);
    return run;
  }

  // The run's evaluated candidates (in id order) with their rung-0 results as the search
  // ranks them.
  std::vector<std::pair<const CandidateRecord*, Individual>> Rung0Results(const Run& run) {
    auto objectives = ObjectiveSet::Create(spec_.search(), domain_->Metrics(), domain_->DefaultObjectives());
    std::vector<std::pair<const CandidateRecord*, Individual>> out;
    for (const CandidateRecord& c : run.rows) {
      if (c.outcome != Outcome::kMiss) continue;
      auto at0 = domain_->ResultAt(c.result, 0);
      EXPECT_TRUE(at0.ok()) << c.id;
      if (!at0.ok()) continue;
      Individual ind;
      ind.id = c.id;
      objectives->Score(at0->objectives(), &ind);
      out.emplace_back(&c, ind);
    }
    return out;
  }

  std::string Db(const std::string& name) {
    const std::string p = TestTempDir("fidelity_controller") + "/" + name + ".db";
    unlink(p.c_str());
    return p;
  }

  // What every run must hold: rows at a rung carry that rung's windows and objectives; the
  // front is of full evaluations; compute is the windows scored over the windows of a full
  // evaluation; no function had a window scored twice.
  void ExpectConsistent(const Run& run, bool unique_windows) {
    ASSERT_TRUE(run.result.ok()) << run.result.status();
    const SearchResult& r = *run.result;
    const Progress& p = r.progress;
    EXPECT_TRUE(p.multi_fidelity);
    EXPECT_NEAR(p.compute, static_cast<double>(domain_->windows_scored()) / kWindows, 1e-9);
    EXPECT_LE(p.compute, spec_.search().max_evaluations() + 4.0) << "the budget, plus what was in flight";
    std::map<int, int> at_rung;
    for (const CandidateRecord& c : run.rows) {
      EXPECT_NE(c.outcome, Outcome::kPending) << c.id;
      if (!c.has_objectives) continue;
      ASSERT_GE(c.rung, 0) << c.id;
      ASSERT_LE(c.rung, 2) << c.id;
      ++at_rung[c.rung];
      if (c.outcome == Outcome::kMiss) {
        ASSERT_EQ(c.result.windows_size(), kRungWindows[c.rung]) << c.id;
        EXPECT_EQ(c.objectives.mean_nll(), c.result.objectives().mean_nll()) << c.id;
      }
    }
    EXPECT_GT(at_rung[0], 0) << "some candidates stop at the cheapest rung";
    EXPECT_GT(at_rung[2], 0) << "some reach the full evaluation";
    EXPECT_GT(p.promotions, 0);
    ASSERT_FALSE(r.front.empty());
    for (int i : r.front) EXPECT_EQ(r.records[i].rung, 2) << "only full evaluations are on the front";
    // The hypervolume the search reports is that of its full evaluations alone.
    auto objectives = ObjectiveSet::Create(spec_.search(), domain_->Metrics(), domain_->DefaultObjectives());
    std::vector<Individual> full;
    for (const CandidateRecord& c : run.rows) {
      if (!c.has_objectives || c.rung != 2) continue;
      Individual ind;
      objectives->Score(c.objectives, &ind);
      full.push_back(ind);
    }
    ASSERT_GE(r.hypervolume_reference.size(), 2u);
    EXPECT_NEAR(p.hypervolume, Hypervolume2D(full, r.hypervolume_reference[0], r.hypervolume_reference[1]), 1e-9);
    if (unique_windows) {
      for (const auto& [function, windows] : domain_->scored()) {
        for (const auto& [w, n] : windows) EXPECT_EQ(n, 1) << "window " << w << " of one function scored twice";
      }
    }
  }

  ModelConfig model_;
  ExperimentSpec spec_;
  std::unique_ptr<GenomeSpace> space_;
  std::unique_ptr<SyntheticFidelityDomain> domain_;
  FecCacheOptions cache_options_;
  bool exact_keys_ = false;
};

TEST_F(FidelityControllerTest, OnlyFullEvaluationsReachTheFrontAndComputeIsTheWindowsScored) {
  Run run = Search(Db("basic"), 2, false);
  ExpectConsistent(run, true);
  const Progress& p = run.result->progress;
  // Promotions scored only the windows the lower rung lacked.
  EXPECT_EQ(domain_->promotes_.load(), p.promotions);
  EXPECT_GT(p.evaluations, 20) << "cheap rungs let the budget of 20 full evaluations try more candidates";
}

TEST_F(FidelityControllerTest, PromotionsAreTheTopThirdOfEachRung) {
  spec_.mutable_search()->set_max_evaluations(30);
  Run run = Search(Db("top"), 1, false);
  ExpectConsistent(run, true);
  // The final ranking of rung 0 (by the controller's order, over every candidate evaluated
  // there): at least all but the last-ranked of its top floor(n/3) were promoted (one may have
  // entered the top after the budget ran out).
  auto objectives = ObjectiveSet::Create(spec_.search(), domain_->Metrics(), domain_->DefaultObjectives());
  std::vector<Individual> rung0;
  std::set<int64_t> promoted;
  for (const CandidateRecord& c : run.rows) {
    if (c.outcome != Outcome::kMiss) continue;
    auto at0 = domain_->ResultAt(c.result, 0);
    ASSERT_TRUE(at0.ok());
    Individual ind;
    ind.id = c.id;
    objectives->Score(at0->objectives(), &ind);
    rung0.push_back(ind);
    if (c.rung > 0) promoted.insert(c.id);
  }
  const std::vector<int> order = PromotionOrder(rung0, nullptr);
  const size_t k = rung0.size() / 3;
  ASSERT_GT(k, 2u);
  size_t in_top = 0;
  for (size_t i = 0; i < k; ++i) in_top += promoted.count(rung0[order[i]].id);
  EXPECT_GE(in_top + 1, k);
}

TEST_F(FidelityControllerTest, AtArrivalPromotesWhatNoEarlierResultAtTheRungDominates) {
  spec_.mutable_search()->mutable_fidelity()->set_promotion(FidelitySpec::AT_ARRIVAL);
  spec_.mutable_search()->set_max_evaluations(30);
  Run run = Search(Db("arrival"), 1, false);
  ExpectConsistent(run, true);
  // With one thread, rung-0 results arrive in id order and a decided promotion starts at the
  // next free slot, before any other result arrives: a candidate is promoted from rung 0
  // exactly when no earlier rung-0 result dominates it (the last one may have found the
  // budget spent).
  std::vector<Individual> earlier;
  int agree = 0, disagree = 0, promoted = 0, dominated = 0;
  for (const auto& [row, ind] : Rung0Results(run)) {  // in id order
    const CandidateRecord& c = *row;
    bool is_dominated = false;
    for (const Individual& e : earlier) is_dominated = is_dominated || Dominates(e, ind);
    earlier.push_back(ind);
    const bool was_promoted = c.rung > 0;
    promoted += was_promoted;
    dominated += is_dominated;
    (was_promoted == !is_dominated ? agree : disagree) += 1;
    EXPECT_FALSE(was_promoted && is_dominated) << "candidate " << c.id << " was promoted though dominated on arrival";
  }
  EXPECT_LE(disagree, 1);
  EXPECT_GT(promoted, 2);
  EXPECT_GT(dominated, 2) << "the rule must have had something to refuse";
}

// search.fidelity.min_gain: of the candidates no earlier rung-0 result dominates, only those
// whose point raises the rung's hypervolume by the fraction are promoted.
TEST_F(FidelityControllerTest, AMinimumGainPromotesOnlyWhatAddsEnoughHypervolume) {
  spec_.mutable_search()->mutable_fidelity()->set_promotion(FidelitySpec::AT_ARRIVAL);
  spec_.mutable_search()->mutable_fidelity()->set_min_gain(0.01);
  spec_.mutable_search()->set_max_evaluations(30);
  Run run = Search(Db("min_gain"), 1, false);
  ExpectConsistent(run, true);
  ASSERT_TRUE(run.result.ok());
  const std::vector<double>& ref = run.result->hypervolume_reference;
  ASSERT_GE(ref.size(), 2u);
  std::vector<Individual> earlier;
  int disagree = 0, promoted = 0, refused_for_gain = 0;
  for (const auto& [row, ind] : Rung0Results(run)) {  // in id order
    const CandidateRecord& c = *row;
    bool is_dominated = false;
    for (const Individual& e : earlier) is_dominated = is_dominated || Dominates(e, ind);
    const double before = Hypervolume2D(earlier, ref[0], ref[1]);
    earlier.push_back(ind);
    const double gain = Hypervolume2D(earlier, ref[0], ref[1]) - before;
    const bool earns = !is_dominated && (ind.violation > 0 || gain >= 0.01 * before);
    refused_for_gain += !is_dominated && !earns;
    const bool was_promoted = c.rung > 0;
    promoted += was_promoted;
    disagree += was_promoted != earns;
    EXPECT_FALSE(was_promoted && !earns) << "candidate " << c.id << " was promoted with a gain of " << gain << " of " << before;
  }
  EXPECT_LE(disagree, 1);
  EXPECT_GT(promoted, 2);
  EXPECT_GT(refused_for_gain, 2) << "the minimum gain must have refused some undominated points";
}

TEST_F(FidelityControllerTest, AFailedPromotionLeavesTheCandidateAtItsRungAndGivesItsComputeBack) {
  domain_->fail_promotions = true;
  Run run = Search(Db("failing"), 2, false);
  ExpectConsistent(run, true);  // compute = windows scored: failed promotions charged nothing
  EXPECT_GT(domain_->failed_promotions.load(), 0);
  EXPECT_EQ(run.result->progress.failed, 0) << "the candidate itself did not fail";
  for (const CandidateRecord& c : run.rows) EXPECT_NE(c.outcome, Outcome::kFailed) << c.id;
}

TEST_F(FidelityControllerTest, AnAggregatingCacheReevaluatesPerRung) {
  // max_num_evals 2: a function's second candidate at a rung is evaluated again and averaged
  // (a partial hit), so windows may be scored twice; the rest must hold.
  cache_options_.max_num_evals = 2;
  Run run = Search(Db("aggregating"), 2, false);
  ExpectConsistent(run, /*unique_windows=*/false);
  EXPECT_GT(run.result->progress.partial_hits, 0);
}

TEST_F(FidelityControllerTest, OneThreadIsReproducible) {
  Run a = Search(Db("repro_a"), 1, false);
  SetUp();  // a fresh domain (its counters)
  Run b = Search(Db("repro_b"), 1, false);
  ASSERT_TRUE(a.result.ok() && b.result.ok());
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t i = 0; i < a.rows.size(); ++i) {
    EXPECT_EQ(a.rows[i].candidate.SerializeAsString(), b.rows[i].candidate.SerializeAsString()) << i;
    EXPECT_EQ(a.rows[i].rung, b.rows[i].rung) << i;
    EXPECT_EQ(a.rows[i].objectives.mean_nll(), b.rows[i].objectives.mean_nll()) << i;
  }
}

TEST_F(FidelityControllerTest, ResumeRepeatsNoWindowAndKeepsEveryRung) {
  const std::string db = Db("resume");
  std::atomic<bool> stop{false};
  class StopAfter : public ProgressSink {
   public:
    explicit StopAfter(std::atomic<bool>* stop) : stop_(stop) {}
    void Update(const Progress& p) override {
      if (p.compute >= 8) stop_->store(true);
    }
    std::atomic<bool>* stop_;
  } sink(&stop);
  domain_->eval_millis = 5;
  Run first = Search(db, 2, false, &stop, &sink);
  domain_->eval_millis = 0;
  ASSERT_TRUE(first.result.ok());
  EXPECT_NE(first.result->progress.stop_reason.find("interrupted"), std::string::npos);
  const double compute_first = first.result->progress.compute;
  EXPECT_LT(compute_first, 20);
  Run second = Search(db, 2, true);
  ExpectConsistent(second, true);  // over both runs: no window of a function scored twice
  EXPECT_GE(second.result->progress.compute, 20 - 1e-9);
  EXPECT_GE(second.rows.size(), first.rows.size());
  // Rungs never go down across the resume.
  std::map<int64_t, int> rung_before;
  for (const CandidateRecord& c : first.rows) rung_before[c.id] = c.rung;
  for (const CandidateRecord& c : second.rows) {
    if (rung_before.count(c.id) && c.has_objectives) {
      EXPECT_GE(c.rung, rung_before[c.id]) << c.id;
    }
  }
}

TEST_F(FidelityControllerTest, APromotionDurableOnlyInTheCacheIsRecoveredOnResume) {
  // A kill -9 between a promotion's cache write and its row's: the row still says the lower
  // rung. Made here by rolling a promoted row back one rung; with no budget left, only the
  // recovery can bring it back, and it must score nothing.
  const std::string db = Db("recover");
  Run first = Search(db, 1, false);
  ASSERT_TRUE(first.result.ok()) << first.result.status();
  const int64_t scored_before = domain_->windows_scored();
  const CandidateRecord* promoted = nullptr;
  for (const CandidateRecord& c : first.rows) {
    if (c.outcome == Outcome::kMiss && c.rung >= 1 && c.worker != "cache") {
      promoted = &c;
      break;
    }
  }
  ASSERT_NE(promoted, nullptr);
  CandidateRecord rolled = *promoted;
  rolled.rung = promoted->rung - 1;
  auto lower = domain_->ResultAt(promoted->result, rolled.rung);
  ASSERT_TRUE(lower.ok()) << lower.status();
  rolled.result = *lower;
  rolled.objectives = lower->objectives();
  {
    auto handle = ExperimentDb::Open(db, false);
    ASSERT_TRUE(handle.ok()) << handle.status();
    (*handle)->Put(rolled);
    ASSERT_TRUE((*handle)->Flush().ok());
  }
  spec_.mutable_search()->set_max_evaluations(1);  // spent: nothing new may start
  Run second = Search(db, 1, true);
  ASSERT_TRUE(second.result.ok()) << second.result.status();
  EXPECT_EQ(domain_->windows_scored(), scored_before) << "the recovery scored windows again";
  EXPECT_NEAR(second.result->progress.compute, first.result->progress.compute, 1e-9) << "its compute was spent before";
  bool found = false;
  for (const CandidateRecord& c : second.rows) {
    if (c.id != promoted->id) continue;
    found = true;
    EXPECT_EQ(c.rung, promoted->rung) << "recovered at the rung its promotion reached";
    EXPECT_EQ(c.objectives.mean_nll(), promoted->objectives.mean_nll());
    EXPECT_EQ(c.result.windows_size(), promoted->result.windows_size());
  }
  EXPECT_TRUE(found);
}

TEST_F(FidelityControllerTest, AnAtArrivalPromotionNotStartedAtAKillIsDecidedAgainOnResume) {
  // A promotion decided when its rung-0 result arrived but not started before a kill: the row
  // says rung 0 and nothing was scored above it. Made by rolling a promoted row back to rung 0
  // (without a cache, so nothing can recover it); it must be promoted again on resume, before
  // any new candidate, since nothing at rung 0 dominates it.
  spec_.mutable_search()->mutable_fidelity()->set_promotion(FidelitySpec::AT_ARRIVAL);
  const std::string db = Db("arrival_resume");
  Run first = Search(db, 1, false, nullptr, nullptr, /*use_cache=*/false);
  ASSERT_TRUE(first.result.ok()) << first.result.status();
  std::vector<Individual> rung0;
  std::vector<const CandidateRecord*> rows;
  for (const auto& [row, ind] : Rung0Results(first)) {
    rung0.push_back(ind);
    rows.push_back(row);
  }
  const CandidateRecord* promoted = nullptr;
  for (int i : ParetoFront(rung0)) {
    if (rows[i]->rung >= 1 && rung0[i].violation == 0) promoted = rows[i];
  }
  ASSERT_NE(promoted, nullptr) << "no promoted candidate on rung 0's front";
  CandidateRecord rolled = *promoted;
  rolled.rung = 0;
  auto lower = domain_->ResultAt(promoted->result, 0);
  ASSERT_TRUE(lower.ok()) << lower.status();
  rolled.result = *lower;
  rolled.objectives = lower->objectives();
  {
    auto handle = ExperimentDb::Open(db, false);
    ASSERT_TRUE(handle.ok()) << handle.status();
    (*handle)->Put(rolled);
    ASSERT_TRUE((*handle)->Flush().ok());
  }
  const int promotes_before = domain_->promotes_.load();
  spec_.mutable_search()->set_max_evaluations(static_cast<int>(std::ceil(first.result->progress.compute)) + 1);
  Run second = Search(db, 1, true, nullptr, nullptr, /*use_cache=*/false);
  ASSERT_TRUE(second.result.ok()) << second.result.status();
  EXPECT_GT(domain_->promotes_.load(), promotes_before);
  bool found = false;
  for (const CandidateRecord& c : second.rows) {
    if (c.id != promoted->id) continue;
    found = true;
    EXPECT_GE(c.rung, 1) << "the promotion decided before the kill was not made on resume";
  }
  EXPECT_TRUE(found);
}

TEST_F(FidelityControllerTest, AResumedSearchChargesWhatItsHitsPromotionsCost) {
  // A warm cache answers candidates at rung 0 (an earlier experiment that promoted nothing:
  // eta 1000); this experiment promotes some of those hits, paying for the windows they lack.
  // Resumed with the budget spent, the search must count that compute and those promotions
  // again from its rows and the cache, not only the candidates it evaluated.
  const std::string db = Db("warm_resume");
  spec_.mutable_search()->mutable_fidelity()->set_eta(1000);
  Run warm = Search(db, 1, false);
  ASSERT_TRUE(warm.result.ok()) << warm.result.status();
  EXPECT_EQ(warm.result->progress.promotions, 0);
  spec_.mutable_search()->mutable_fidelity()->set_eta(3);
  Run second = Search(db, 1, false);
  ASSERT_TRUE(second.result.ok()) << second.result.status();
  int promoted_hits = 0;
  for (const CandidateRecord& c : second.rows) promoted_hits += c.outcome == Outcome::kHit && c.rung > 0;
  ASSERT_GT(promoted_hits, 0) << "no hit was promoted: the test needs some";
  Run third = Search(db, 1, true);
  ASSERT_TRUE(third.result.ok()) << third.result.status();
  EXPECT_EQ(third.rows.size(), second.rows.size()) << "the budget was spent: nothing new";
  EXPECT_NEAR(third.result->progress.compute, second.result->progress.compute, 1e-9);
  EXPECT_EQ(third.result->progress.promotions, second.result->progress.promotions);
}

TEST_F(FidelityControllerTest, TheScreenSkipsWhatAFullEvaluationsPredictionDominatesAndRecordsIt) {
  // Fidelities and the probe screen together; one thread, so that "the full evaluations so
  // far" are the rows completed before.
  spec_.mutable_search()->mutable_screen()->set_margin(0.05);
  spec_.mutable_search()->mutable_screen()->set_warmup(3);
  Run run = Search(Db("screen"), 1, false);
  ExpectConsistent(run, true);  // compute = windows scored: a screened candidate scored none
  const Progress& p = run.result->progress;
  EXPECT_TRUE(p.screening);
  ASSERT_GT(p.screened, 0);
  int screened_rows = 0, full_before = 0;
  for (const CandidateRecord& c : run.rows) {
    if (c.outcome != Outcome::kScreened) continue;  // read back from the database: SCREENED
    ++screened_rows;
    EXPECT_FALSE(c.has_objectives) << c.id;
    EXPECT_EQ(c.rung, -1) << c.id << ": never evaluated at any rung";
    EXPECT_NE(c.error.find("screened: predicted"), std::string::npos) << c.error;
    // Some full evaluation completed before it predicts a point that dominates its own by
    // the margin.
    auto plan = CompileCandidate(c.candidate, model_, 1024);
    ASSERT_TRUE(plan.ok());
    const std::vector<double> mine = domain_->Predicted(c.candidate, *plan);
    bool dominated = false;
    int full = 0;
    for (const CandidateRecord& f : run.rows) {
      if (f.rung != 2 || !f.has_objectives || f.completion_seq > c.completion_seq) continue;
      ++full;
      auto q = domain_->PredictedOf(f.result);
      if (!q.ok()) continue;  // a cache hit keeps no result
      dominated = dominated || ((*q)[0] <= mine[0] && (*q)[1] <= 0.95 * mine[1]);
    }
    EXPECT_TRUE(dominated) << "candidate " << c.id << " was screened without a dominating prediction";
    full_before = std::max(full_before, full);
    EXPECT_GE(full, 3) << "screened before the warmup's 3 full evaluations";
  }
  EXPECT_EQ(screened_rows, p.screened);
  EXPECT_GT(domain_->predictions.load(), 0);
}

TEST_F(FidelityControllerTest, AScreenedInitialPopulationIsThePoolsPredictedFront) {
  // search.screen { initial_pool: 48 skip: false }: 48 random candidates are predicted, the
  // population's 8 are taken from them by non-dominated rank (then crowding), and nothing is
  // skipped afterwards.
  spec_.mutable_search()->mutable_screen()->set_initial_pool(48);
  spec_.mutable_search()->mutable_screen()->set_skip(false);
  Run run = Search(Db("initial_pool"), 1, false);
  ExpectConsistent(run, true);
  const Progress& p = run.result->progress;
  EXPECT_EQ(p.screened, 0);
  EXPECT_EQ(p.initial_pool, 48);
  ASSERT_EQ(domain_->predicted_log.size(), 48u) << "the pool is predicted, and nothing else (skip: false)";
  std::vector<Individual> pool;
  std::map<std::string, int> index;
  for (size_t i = 0; i < domain_->predicted_log.size(); ++i) {
    const Candidate& c = domain_->predicted_log[i];
    auto plan = CompileCandidate(c, model_, 1024);
    ASSERT_TRUE(plan.ok());
    Individual ind;
    ind.id = static_cast<int64_t>(i);
    ind.objectives = domain_->Predicted(c, *plan);
    pool.push_back(ind);
    index[c.SerializeAsString()] = static_cast<int>(i);
  }
  std::set<int> front;
  for (int i : ParetoFront(pool)) front.insert(i);
  std::set<int> chosen, passed_over;
  std::vector<const CandidateRecord*> proposals;
  for (const CandidateRecord& c : run.rows) {
    if (c.operation != kInitialPoolOperation) {
      proposals.push_back(&c);
      continue;
    }
    // Passed over: recorded SCREENED, never evaluated, with why.
    EXPECT_EQ(c.outcome, Outcome::kScreened) << c.id;
    EXPECT_FALSE(c.has_objectives) << c.id;
    EXPECT_NE(c.error.find("not chosen for the initial population"), std::string::npos) << c.error;
    auto at = index.find(c.candidate.SerializeAsString());
    ASSERT_NE(at, index.end()) << "row " << c.id << " is not from the pool";
    passed_over.insert(at->second);
  }
  EXPECT_EQ(p.pool_rejected, 40);
  EXPECT_EQ(passed_over.size(), 40u);
  EXPECT_EQ(p.candidates, static_cast<int64_t>(proposals.size())) << "passed-over pool members are no proposals";
  for (size_t k = 0; k < 8 && k < proposals.size(); ++k) {  // the first proposals, by id
    auto at = index.find(proposals[k]->candidate.SerializeAsString());
    ASSERT_NE(at, index.end()) << "initial candidate " << proposals[k]->id << " is not from the pool";
    EXPECT_EQ(passed_over.count(at->second), 0u);
    chosen.insert(at->second);
  }
  ASSERT_EQ(chosen.size(), 8u);
  for (int i : (front.size() >= 8 ? chosen : front)) {
    EXPECT_TRUE(front.size() >= 8 ? front.count(i) > 0 : chosen.count(i) > 0)
        << "pool member " << i << ": the initial population is not the pool's predicted front";
  }
  // Reproducible: the same seed draws the same pool and chooses the same population.
  const std::vector<Candidate> first_log = domain_->predicted_log;
  domain_->predicted_log.clear();
  const std::string again_db = Db("initial_pool_again");
  Run again = Search(again_db, 1, false);
  ASSERT_EQ(again.rows.size(), run.rows.size());
  for (size_t k = 0; k < run.rows.size(); ++k) {
    EXPECT_EQ(again.rows[k].candidate.SerializeAsString(), run.rows[k].candidate.SerializeAsString()) << k;
  }
  // A resumed search records the pool again nowhere and counts it as before.
  Run resumed = Search(again_db, 1, true);
  ASSERT_TRUE(resumed.result.ok()) << resumed.result.status();
  EXPECT_EQ(resumed.rows.size(), again.rows.size()) << "the budget was spent: nothing new, the pool not recorded twice";
  EXPECT_EQ(resumed.result->progress.pool_rejected, 40);
  EXPECT_EQ(resumed.result->progress.candidates, again.result->progress.candidates);
}

TEST_F(FidelityControllerTest, WithoutCacheAndWithRegularizedEvolution) {
  Run none = Search(Db("nocache"), 2, false, nullptr, nullptr, /*use_cache=*/false);
  ExpectConsistent(none, false);
  EXPECT_EQ(none.result->progress.hits, 0);
  SetUp();
  spec_.mutable_search()->set_algorithm(SearchSpec::REGULARIZED_EVOLUTION);
  Run re = Search(Db("re"), 2, false);
  ExpectConsistent(re, true);
}

TEST_F(FidelityControllerTest, ExactDeduplicationAnswersOnlyExactCopiesAtEveryRung) {
  exact_keys_ = true;
  spec_.mutable_search()->set_max_evaluations(40);
  Run run = Search(Db("exact"), 2, false);
  ExpectConsistent(run, false);
  // Every hit is of a candidate whose exact copy had a result before it (in id order); the
  // cache keys are the exact hashes, at every rung.
  std::set<std::string> seen;
  int hits = 0;
  for (const CandidateRecord& c : run.rows) {
    const std::string bytes = c.candidate.SerializeAsString();
    if (c.outcome == Outcome::kHit) {
      ++hits;
      EXPECT_TRUE(seen.count(bytes)) << "candidate " << c.id << " was answered without an exact copy evaluated before";
    }
    if (c.has_objectives) seen.insert(bytes);
    if (!c.cache_key.empty()) {
      EXPECT_EQ(c.cache_key, c.exact_hash) << c.id;
    }
  }
  ASSERT_GT(hits, 0) << "the test needs exact repeats";
}

TEST(PromotionOrderTest, RanksByFrontThenCrowdingOrByScalarFitness) {
  // Hand-ranked: (1,5), (5,1) and (3,3) are non-dominated (their ends have infinite crowding,
  // (3,3) finite); (4,4) is dominated by (3,3); (2,6) by (1,5); the infeasible (0,0) is last.
  std::vector<Individual> all(6);
  const double pts[6][2] = {{3, 3}, {4, 4}, {1, 5}, {5, 1}, {2, 6}, {0, 0}};
  for (int i = 0; i < 6; ++i) {
    all[i].id = i;
    all[i].objectives = {pts[i][0], pts[i][1]};
  }
  all[5].violation = 1;
  const std::vector<int> order = PromotionOrder(all, nullptr);
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(std::set<int>(order.begin(), order.begin() + 2), (std::set<int>{2, 3}));  // the ends
  EXPECT_EQ(order[2], 0);
  EXPECT_EQ(std::set<int>(order.begin() + 3, order.begin() + 5), (std::set<int>{1, 4}));
  EXPECT_EQ(order[5], 5);
  const std::function<double(const Individual&)> sum = [](const Individual& i) { return i.objectives[0] + i.objectives[1]; };
  const std::vector<int> scalar = PromotionOrder(all, &sum);
  EXPECT_EQ(scalar, (std::vector<int>{0, 2, 3, 1, 4, 5}));  // sums 6, 6, 6 (by id), 8, 8; infeasible last
}

}  // namespace
}  // namespace fecsearch
