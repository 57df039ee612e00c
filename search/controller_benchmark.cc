// Controller overhead per candidate with a zero-cost evaluator (target >= 20,000 candidates/s,
// the probe hash excluded): propose, structural check, exact hash, cache lookup, dispatch,
// durable record, population update. The baseline, measured in the same run, is the bare
// algorithm: propose and tell with nothing else.
//   bazel run //search:controller_benchmark
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "benchmark/benchmark.h"
#include "core/model_config.h"
#include "core/pipeline_graph.h"
#include "hashing/cache_store.h"
#include "hashing/candidate_hasher.h"
#include "hashing/fec_cache.h"
#include "hashing/kv_probe.h"
#include "search/controller.h"
#include "search/domains/genome_space.h"
#include "search/domains/kv_domain.h"
#include "search/experiment.h"
#include "search/simple_domain.h"
#include "hashing/metrics.h"

namespace fecsearch {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// A zero-cost "evaluation": objectives from the candidate's bytes.
EvaluationResult ZeroCost(const Candidate& c) {
  EvaluationResult r;
  const Hash128 h = HashBytes(c.SerializeAsString());
  r.mutable_status()->set_code(0);
  SetMetric(r.mutable_objectives(), "effective_bits", 2 + (h.lo % 1000) / 100.0);
  SetMetric(r.mutable_objectives(), "perplexity_increase_percent", (h.hi % 1000) / 20.0);
  SetMetric(r.mutable_objectives(), "mean_nll", 1.6);
  SetMetric(r.mutable_objectives(), "perplexity", 5.0);
  return r;
}

struct Setup {
  ModelConfig model;
  ExperimentSpec spec;
  std::unique_ptr<GenomeSpace> space;
  std::unique_ptr<SimpleDomain> domain;
  std::unique_ptr<ObjectiveSet> objectives;
  Setup() {
    auto m = LoadModelConfig("data/tinylm-bytes-5m/config.json");
    if (!m.ok()) std::abort();
    model = *m;
    spec = LoadExperiment("")->spec;
    spec.mutable_search()->clear_fidelity();  // one zero-cost evaluation per candidate
    spec.mutable_search()->clear_screen();    // and no predictions
    space = std::make_unique<GenomeSpace>(*GenomeSpace::Create(spec.search_space(), model));
    domain = std::make_unique<SimpleDomain>(
        "zero-cost", space.get(), KvMetrics(),
        std::vector<DefaultObjective>{{"effective_bits"}, {"perplexity_increase_percent"}},
        [](const Candidate& c) -> absl::StatusOr<EvaluationResult> { return ZeroCost(c); });
    objectives = std::make_unique<ObjectiveSet>(*ObjectiveSet::Create(spec.search(), domain->Metrics(), domain->DefaultObjectives()));
  }
};

double bare_rate = 0;

void BM_BareAlgorithm(benchmark::State& state) {
  Setup s;
  auto alg = MakeAlgorithm(s.spec.search(), *s.space, {}, [&](const Individual& i) { return s.objectives->Scalarize(i); });
  Rng rng(1);
  int64_t id = 0;
  const double t0 = Now();
  for (auto _ : state) {
    Proposal p = alg->Propose(rng);
    Individual ind;
    ind.id = ++id;
    ind.candidate = std::move(p.candidate);
    s.objectives->Score(ZeroCost(ind.candidate).objectives(), &ind);
    alg->Tell(ind);
  }
  bare_rate = state.iterations() / (Now() - t0);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BareAlgorithm)->Unit(benchmark::kMicrosecond)->MinTime(2);

void BM_ControllerZeroCost(benchmark::State& state) {
  Setup s;
  const int64_t candidates = 20000;
  s.spec.mutable_search()->set_max_evaluations(0);
  s.spec.mutable_search()->set_max_candidates(candidates);
  const char* tmp = std::getenv("TMPDIR");
  for (auto _ : state) {
    state.PauseTiming();
    const std::string db_path = std::string(tmp ? tmp : "/tmp") + "/controller_benchmark_" + std::to_string(getpid()) + ".db";
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((db_path + suffix).c_str());
    auto db = ExperimentDb::Open(db_path, false);
    auto store = CacheStore::Open(db_path, false);
    auto cache = FecCache::Create(FecCacheOptions(), store->get());
    ExperimentRecord rec;
    rec.name = "benchmark";
    const int64_t id = *(*db)->StartExperiment(rec);
    LocalPool pool([](int64_t, const Candidate& c) -> absl::StatusOr<EvaluationResult> { return ZeroCost(c); },
                   static_cast<int>(state.range(0)), "zero-cost");
    const std::string context = "benchmark";
    const ModelConfig& model = s.model;
    // Structural check and exact hash, as --dedup=exact: everything but the probe.
    StructuralHasher structural(model, 1024);
    Keyer keyer = [&](const Candidate& c) -> absl::StatusOr<CandidateHashes> {
      auto hash = structural.Hash(c);
      if (!hash.ok()) return hash.status();
      CandidateHashes h;
      h.structural = *hash;
      h.exact = ExactHash(context, c);
      h.key = h.exact;
      return h;
    };
    ControllerOptions o;
    o.spec = s.spec;
    o.experiment_id = id;
    Controller controller(o, *s.domain, *s.objectives, keyer, cache->get(), &pool, db->get(), nullptr);
    state.ResumeTiming();
    const double t0 = Now();
    auto result = controller.Run();
    const double dt = Now() - t0;
    state.PauseTiming();
    if (!result.ok()) state.SkipWithError(std::string(result.status().message()).c_str());
    state.counters["candidates/s"] = result->progress.candidates / dt;
    state.counters["us/candidate"] = 1e6 * dt / result->progress.candidates;
    state.counters["hit_rate"] = result->progress.hit_rate();
    if (bare_rate > 0) state.counters["vs_bare_algorithm"] = result->progress.candidates / dt / bare_rate;
    pool.Shutdown();
    cache->reset();
    store->reset();
    db->reset();
    for (const char* suffix : {"", "-wal", "-shm"}) unlink((db_path + suffix).c_str());
    state.ResumeTiming();
  }
}
BENCHMARK(BM_ControllerZeroCost)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
}  // namespace fecsearch
