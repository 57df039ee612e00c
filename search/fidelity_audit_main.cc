// fidelity_audit: what a multi-fidelity or screened search discarded (docs/BENCHMARKS.md,
// "Multi-fidelity"). It evaluates in full every candidate of a KV-cache experiment that
// stopped below the full evaluation (a promotion decision) or was skipped by the probe screen
// (SCREENED), and counts those that would be on the final front (feasible, non-dominated among
// the experiment's full evaluations and the re-evaluated ones):
//   bazel run //search:fidelity_audit -- --db=PATH [--experiment_id=N]
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "core/evaluator.h"
#include "core/process_init.h"
#include "search/algorithms.h"
#include "search/controller.h"
#include "search/domains/kv_domain.h"
#include "search/experiment.h"
#include "search/experiment_db.h"
#include "search/objectives.h"

ABSL_FLAG(std::string, db, "", "Search database of a multi-fidelity or screened KV-cache search.");
ABSL_FLAG(int64_t, experiment_id, 0, "Experiment (default: the latest).");
ABSL_FLAG(int, threads, 2, "Threads for each evaluation.");

namespace fecsearch {
namespace {

int Fail(const std::string& m) {
  std::fprintf(stderr, "fidelity_audit: %s\n", m.c_str());
  return 2;
}

int Main() {
  auto db = ExperimentDb::Open(absl::GetFlag(FLAGS_db), true);
  if (!db.ok()) return Fail(std::string(db.status().message()));
  auto e = absl::GetFlag(FLAGS_experiment_id) > 0 ? (*db)->GetExperiment(absl::GetFlag(FLAGS_experiment_id))
                                                   : (*db)->LatestExperiment();
  if (!e.ok()) return Fail(std::string(e.status().message()));
  auto loaded = ParseExperiment(e->spec_text, "the experiment's spec");
  if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
  ExperimentSpec spec = loaded->spec;
  if (!spec.search().has_fidelity() && !spec.search().has_screen()) {
    return Fail(absl::StrFormat("experiment %d has neither search.fidelity nor search.screen: it discarded nothing", e->id));
  }
  spec.mutable_evaluation()->set_threads(absl::GetFlag(FLAGS_threads));
  auto ctx = EvaluationContext::Create(spec.evaluation());
  if (!ctx.ok()) return Fail(std::string(ctx.status().message()));
  FecSpec fec = spec.fec();
  fec.set_dedup(FecSpec::EXACT);  // no probe needed
  auto domain = KvDomain::Create(AdaptToModel(spec, (*ctx)->config(), nullptr), fec, *ctx);
  if (!domain.ok()) return Fail(std::string(domain.status().message()));
  const int top = static_cast<int>((*domain)->Fidelities().size()) - 1;
  auto objectives = ObjectiveSet::Create(spec.search(), (*domain)->Metrics(), (*domain)->DefaultObjectives());
  if (!objectives.ok()) return Fail(std::string(objectives.status().message()));
  auto rows = (*db)->Candidates(e->id);
  if (!rows.ok()) return Fail(std::string(rows.status().message()));

  // Unique configurations (cache key): the full evaluations, and the discarded ones evaluated now.
  struct Point {
    int64_t id;
    Individual ind;
    bool discarded;
    bool screened = false;
    bool pool = false;  // passed over for the initial population (search.screen.initial_pool)
  };
  std::vector<Point> points;
  std::set<std::string> seen;
  int discarded = 0;
  for (const CandidateRecord& r : *rows) {
    if (!r.has_objectives || (r.rung < 0 && top > 0)) continue;
    if (r.rung == top || (top <= 0 && r.outcome != Outcome::kScreened)) {
      if (!seen.insert(r.cache_key.empty() ? r.exact_hash : r.cache_key).second) continue;
      seen.insert(r.candidate.SerializeAsString());  // a pool row (unhashed) of the same candidate is no new point
      Point p{r.id, {}, false};
      objectives->Score(r.objectives, &p.ind);
      points.push_back(p);
    }
  }
  int screened = 0, passed_over = 0;
  for (const CandidateRecord& r : *rows) {
    const bool by_screen = r.outcome == Outcome::kScreened;
    if (!by_screen && (!r.has_objectives || r.rung < 0 || r.rung == top || r.outcome != Outcome::kMiss)) continue;
    // The initial population's pool was never hashed: its candidates are told apart by their bytes.
    const std::string key = !r.cache_key.empty() ? r.cache_key : !r.exact_hash.empty() ? r.exact_hash : r.candidate.SerializeAsString();
    if (!seen.insert(key).second) continue;
    ++discarded;
    screened += by_screen;
    passed_over += r.operation == kInitialPoolOperation;
    auto full = top > 0 ? (*domain)->EvaluateAt(r.candidate, top) : (*domain)->Evaluate(r.candidate);
    if (!full.ok() || full->status().code() != 0) {
      return Fail(absl::StrFormat("candidate %d: evaluation failed", r.id));
    }
    Point p{r.id, {}, true, by_screen, r.operation == kInitialPoolOperation};
    objectives->Score(full->objectives(), &p.ind);
    points.push_back(p);
    std::fprintf(stderr, "fidelity_audit: evaluated %d discarded candidates in full\r", discarded);
  }
  std::fprintf(stderr, "\n");
  // The feasible front (first two objectives) over both.
  std::vector<Individual> pair;
  for (const Point& p : points) {
    Individual i = p.ind;
    if (i.objectives.size() > 2) i.objectives.resize(2);
    pair.push_back(i);
  }
  int on_front = 0, discarded_on_front = 0, screened_on_front = 0, pool_on_front = 0;
  std::vector<Individual> front, front_without;
  for (size_t i = 0; i < pair.size(); ++i) {
    if (pair[i].violation > 0) continue;
    bool dominated = false;
    for (size_t j = 0; j < pair.size() && !dominated; ++j) dominated = j != i && Dominates(pair[j], pair[i]);
    if (dominated) continue;
    ++on_front;
    front.push_back(pair[i]);
    if (points[i].discarded) {
      ++discarded_on_front;
      screened_on_front += points[i].screened;
      pool_on_front += points[i].pool;
      std::printf("%s candidate %lld would be on the front\n",
                  points[i].pool ? "passed-over pool" : points[i].screened ? "screened" : "discarded",
                  static_cast<long long>(points[i].id));
    }
  }
  for (const Point& p : points) {
    if (!p.discarded) front_without.push_back(p.ind);
  }
  const std::vector<double> ref = objectives->Reference(front_without);
  const double hv_with = ref.size() >= 2 ? Hypervolume2D(pair, ref[0], ref[1]) : 0;
  std::vector<Individual> kept;
  for (size_t i = 0; i < pair.size(); ++i) {
    if (!points[i].discarded) kept.push_back(pair[i]);
  }
  const double hv_without = ref.size() >= 2 ? Hypervolume2D(kept, ref[0], ref[1]) : 0;
  std::printf("experiment %lld: %zu full evaluations; discarded (evaluated now in full): %d below the full evaluation by a "
              "promotion decision, %d by the probe screen\n",
              static_cast<long long>(e->id), points.size() - discarded, discarded - screened, screened);
  if (passed_over > 0) {
    std::printf("the probe screen's %d include %d candidates of the initial population's pool that were not chosen\n", screened,
                passed_over);
  }
  std::printf("front of both: %d configurations, %d of them discarded by a promotion decision, %d by the screen (%.1f %% in all)%s\n",
              on_front, discarded_on_front - screened_on_front, screened_on_front,
              on_front ? 100.0 * discarded_on_front / on_front : 0.0,
              passed_over > 0 ? absl::StrFormat("; %d of those by the initial population's choice", pool_on_front).c_str() : "");
  std::printf("hypervolume: %.3f of the search's full evaluations, %.3f with the discarded ones evaluated in full\n", hv_without,
              hv_with);
  return 0;
}

}  // namespace
}  // namespace fecsearch

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  absl::ParseCommandLine(argc, argv);
  return fecsearch::Main();
}
