// What the cache's hits were: exact copies of an earlier candidate, or functional equivalents
// (different genes, same key: what only the probe finds); and, with `search --verify_hits`,
// whether each equivalent really has the fitness the cache returned, by evaluating it again.
// Domain-free: it compares every metric a result holds.
#ifndef FECSEARCH_SEARCH_HIT_AUDIT_H_
#define FECSEARCH_SEARCH_HIT_AUDIT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "search/evaluation_pool.h"
#include "search/experiment_db.h"

namespace fecsearch {

struct HitAudit {
  struct Hit {
    int64_t id = -1;
    bool exact_copy = false;
    bool checked = false;  // evaluated again (now or by an earlier run of the audit)
    HitCheckRecord check;
  };
  std::vector<Hit> hits;  // HIT and MERGED rows of the experiment, by id
  int64_t exact_copies = 0, equivalents = 0;
  // Of the checked equivalents.
  int64_t checked = 0, confirmed = 0, false_hits = 0, failed = 0;
  double max_relative_difference = 0;

  // "18 cache hits: 5 exact copies, 13 functional equivalents"; with checks, "; 13 evaluated
  // again: 13 confirmed, 0 false hits (largest relative difference 0)".
  std::string Summary() const;
};

// Classifies the experiment's hits: an exact copy when a candidate with a lower id (any
// experiment in the database) had the same exact hash under the same cache key.
absl::StatusOr<HitAudit> ClassifyHits(ExperimentDb* db, int64_t experiment_id,
                                      const std::vector<CandidateRecord>& records);

// The relative difference of two results' metrics (the largest over the metrics of `cached`;
// infinity when `fresh` lacks one).
double MaxRelativeDifference(const Objectives& cached, const Objectives& fresh);

// Evaluates every functional equivalent not yet checked once more on `pool`, compares it with
// the cached objectives the search used (relative `tolerance`), records each check in `db`
// (so an interrupted audit resumes) and updates `audit`. `progress(done, total)` after each.
// `stop` (may be null) ends it early; what was checked is kept.
absl::Status VerifyHits(HitAudit* audit, const std::vector<CandidateRecord>& records, EvaluationPool* pool,
                        double tolerance, ExperimentDb* db, const std::function<void(int, int)>& progress,
                        const std::atomic<bool>* stop);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_HIT_AUDIT_H_
