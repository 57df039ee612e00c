// Hit classification and verification.
#include "search/hit_audit.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <map>
#include <set>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "hashing/metrics.h"

namespace fecsearch {

namespace {

// The checked equivalents' counts, from their checks.
void CountChecks(HitAudit* audit) {
  audit->checked = audit->confirmed = audit->false_hits = audit->failed = 0;
  audit->max_relative_difference = 0;
  for (const HitAudit::Hit& h : audit->hits) {
    if (!h.checked || h.exact_copy) continue;
    ++audit->checked;
    if (!h.check.error.empty()) {
      ++audit->failed;
    } else {
      (h.check.matched ? audit->confirmed : audit->false_hits)++;
      audit->max_relative_difference = std::max(audit->max_relative_difference, h.check.max_relative_difference);
    }
  }
}

}  // namespace

std::string HitAudit::Summary() const {
  std::string s = absl::StrCat(hits.size(), " cache hits: ", exact_copies, " exact copies of an earlier candidate, ",
                               equivalents, " functional equivalents (other genes, same key)");
  if (checked > 0) {
    absl::StrAppend(&s, "; ", checked, " equivalents evaluated again: ", confirmed, " confirmed, ", false_hits, " false hits",
                    failed > 0 ? absl::StrCat(", ", failed, " failed to evaluate") : "",
                    absl::StrFormat(" (largest relative difference %.3g)", max_relative_difference));
  }
  return s;
}

absl::StatusOr<HitAudit> ClassifyHits(ExperimentDb* db, int64_t experiment_id, const std::vector<CandidateRecord>& records) {
  HitAudit audit;
  auto checks = db->HitChecks(experiment_id);
  if (!checks.ok()) return checks.status();
  std::map<int64_t, HitCheckRecord> checked;
  for (HitCheckRecord& c : *checks) checked[c.candidate_id] = std::move(c);
  // Exact hashes seen so far under each key, in id order: from this experiment's own records,
  // and from the database only for keys this experiment did not evaluate first (a cache
  // shared with earlier experiments), fetched once per such key.
  std::vector<const CandidateRecord*> ordered;
  for (const CandidateRecord& r : records) ordered.push_back(&r);
  std::sort(ordered.begin(), ordered.end(), [](const CandidateRecord* a, const CandidateRecord* b) { return a->id < b->id; });
  std::map<std::string, std::set<std::string>> exact_by_key;
  std::set<std::string> fetched;
  for (const CandidateRecord* rp : ordered) {
    const CandidateRecord& r = *rp;
    const bool hit = r.outcome == Outcome::kHit || r.outcome == Outcome::kMerged;
    if (!hit) {
      if (!r.cache_key.empty()) exact_by_key[r.cache_key].insert(r.exact_hash);
      continue;
    }
    HitAudit::Hit h;
    h.id = r.id;
    if (!exact_by_key.count(r.cache_key) && fetched.insert(r.cache_key).second) {
      auto same = db->CandidatesWithHash(r.cache_key);
      if (!same.ok()) return same.status();
      for (const CandidateRecord& other : *same) {
        if (other.id < r.id && other.cache_key == r.cache_key) exact_by_key[r.cache_key].insert(other.exact_hash);
      }
    }
    auto& seen = exact_by_key[r.cache_key];
    h.exact_copy = !r.exact_hash.empty() && seen.count(r.exact_hash) > 0;
    seen.insert(r.exact_hash);
    auto c = checked.find(r.id);
    if (c != checked.end()) {
      h.checked = true;
      h.check = c->second;
    }
    (h.exact_copy ? audit.exact_copies : audit.equivalents)++;
    audit.hits.push_back(std::move(h));
  }
  CountChecks(&audit);
  return audit;
}

double MaxRelativeDifference(const Objectives& cached, const Objectives& fresh) {
  double worst = 0;
  for (const auto& [name, a] : AllMetrics(cached)) {
    const double b = MetricValue(fresh, name);
    if (std::isnan(b)) return std::numeric_limits<double>::infinity();
    if (a == b) continue;
    const double scale = std::max(std::fabs(a), std::fabs(b));
    worst = std::max(worst, std::fabs(a - b) / (scale > 0 ? scale : 1));
  }
  return worst;
}

absl::Status VerifyHits(HitAudit* audit, const std::vector<CandidateRecord>& records, EvaluationPool* pool,
                        double tolerance, ExperimentDb* db, const std::function<void(int, int)>& progress,
                        const std::atomic<bool>* stop) {
  std::map<int64_t, const CandidateRecord*> by_id;
  for (const CandidateRecord& r : records) by_id[r.id] = &r;
  std::vector<HitAudit::Hit*> todo;
  for (HitAudit::Hit& h : audit->hits)
    if (!h.exact_copy && !h.checked) todo.push_back(&h);
  const int total = static_cast<int>(todo.size());
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, submitted = 0;
  absl::Status first_error;
  size_t next = 0;
  auto submit_more = [&](std::unique_lock<std::mutex>& lock) {
    while (next < todo.size() && submitted - done < std::max(1, pool->Capacity()) && !(stop && stop->load())) {
      HitAudit::Hit* h = todo[next++];
      const CandidateRecord* r = by_id[h->id];
      ++submitted;
      lock.unlock();
      pool->Submit(r->id, r->candidate,
                   [&, h, r](absl::StatusOr<EvaluationResult> result, const std::string&, int) {
                     HitCheckRecord c;
                     c.candidate_id = r->id;
                     c.experiment_id = r->experiment_id;
                     c.exact_copy = false;
                     c.checked_micros = absl::ToUnixMicros(absl::Now());
                     if (!result.ok()) {
                       c.error = std::string(result.status().message());
                     } else if (result->status().code() != 0) {
                       c.error = absl::StrCat("the candidate is invalid now: ", result->status().message());
                     } else {
                       c.evaluated = result->objectives();
                       c.max_relative_difference = MaxRelativeDifference(r->objectives, c.evaluated);
                       c.matched = c.max_relative_difference <= tolerance;
                     }
                     absl::Status put = db->PutHitCheck(c);
                     std::lock_guard<std::mutex> g(mu);
                     if (!put.ok() && first_error.ok()) first_error = put;
                     h->checked = true;
                     h->check = std::move(c);
                     ++done;
                     cv.notify_all();
                   });
      lock.lock();
    }
  };
  {
    std::unique_lock<std::mutex> lock(mu);
    submit_more(lock);
    while (done < submitted) {
      const int before = done;
      cv.wait(lock, [&] { return done > before; });
      if (progress) {
        lock.unlock();
        progress(done, total);
        lock.lock();
      }
      submit_more(lock);
    }
  }
  CountChecks(audit);
  return first_error;
}

}  // namespace fecsearch
