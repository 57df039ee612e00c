// Test tool: re-evaluates in process every candidate a search recorded as evaluated and
// checks that the recorded objectives are exactly what the in-process evaluator returns (at the
// rung the candidate reached, for a multi-fidelity search).
//   reevaluate --db=PATH [--experiment_id=N]
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/evaluator.h"
#include "core/process_init.h"
#include "search/experiment.h"
#include "search/experiment_db.h"
#include "search/domains/kv_domain.h"

ABSL_FLAG(std::string, db, "", "Search database.");
ABSL_FLAG(int64_t, experiment_id, 0, "Experiment (default: the latest).");

int main(int argc, char** argv) {
  fecsearch::InitProcess();
  absl::ParseCommandLine(argc, argv);
  using namespace fecsearch;
  auto db = ExperimentDb::Open(absl::GetFlag(FLAGS_db), true);
  if (!db.ok()) return std::fprintf(stderr, "%s\n", std::string(db.status().message()).c_str()), 2;
  auto e = absl::GetFlag(FLAGS_experiment_id) > 0 ? (*db)->GetExperiment(absl::GetFlag(FLAGS_experiment_id))
                                                   : (*db)->LatestExperiment();
  if (!e.ok()) return std::fprintf(stderr, "%s\n", std::string(e.status().message()).c_str()), 2;
  auto spec = ParseExperiment(e->spec_text, "db");
  if (!spec.ok()) return 2;
  EvaluationSpec eval = spec->spec.evaluation();
  eval.set_threads(2);
  auto ctx = EvaluationContext::Create(eval);
  if (!ctx.ok()) return std::fprintf(stderr, "%s\n", std::string(ctx.status().message()).c_str()), 2;
  Evaluator evaluator(*ctx);
  auto domain = KvDomain::Create(spec->spec, spec->spec.fec(), *ctx);
  if (!domain.ok()) return std::fprintf(stderr, "%s\n", std::string(domain.status().message()).c_str()), 2;
  const int top = static_cast<int>((*domain)->Fidelities().size()) - 1;
  int below_full = 0;
  auto candidates = (*db)->Candidates(e->id);
  if (!candidates.ok()) return 2;
  int checked = 0, mismatched = 0;
  for (const CandidateRecord& c : *candidates) {
    if (c.outcome != Outcome::kMiss) continue;
    EvaluationResult r;
    if (top > 0 && c.rung >= 0 && c.rung < top) {
      auto at = (*domain)->EvaluateAt(c.candidate, c.rung);
      if (!at.ok()) return std::fprintf(stderr, "candidate %lld: %s\n", static_cast<long long>(c.id), std::string(at.status().message()).c_str()), 2;
      r = *at;
      ++below_full;
    } else {
      r = evaluator.Evaluate(c.candidate);
    }
    ++checked;
    if (r.objectives().mean_nll() != c.objectives.mean_nll() ||
        r.objectives().effective_bits() != c.objectives.effective_bits()) {
      ++mismatched;
      std::fprintf(stderr, "candidate %lld (worker %s): recorded NLL %.17g bits %.17g, in-process %.17g %.17g\n",
                   static_cast<long long>(c.id), c.worker.c_str(), c.objectives.mean_nll(), c.objectives.effective_bits(),
                   r.objectives().mean_nll(), r.objectives().effective_bits());
    }
  }
  std::printf("%d evaluated candidates re-evaluated in process (%d below the full evaluation, at their rung), %d mismatched\n",
              checked, below_full, mismatched);
  return mismatched == 0 && checked > 0 ? 0 : 1;
}
