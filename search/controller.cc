// The asynchronous steady-state search loop.
#include "search/controller.h"

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "hashing/functional_hasher.h"

namespace fecsearch {

namespace {

// The individual as the front sees it: its first two objectives.
Individual FrontPair(const Individual& ind) {
  Individual p = ind;
  if (p.objectives.size() > 2) p.objectives.resize(2);
  return p;
}

}  // namespace
namespace {

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }
double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Controller::Controller(ControllerOptions options, const Domain& domain, const ObjectiveSet& objectives, Keyer keyer,
                       FecCache* cache, EvaluationPool* pool, ExperimentDb* db, ProgressSink* progress)
    : options_(std::move(options)),
      domain_(domain),
      objectives_(objectives),
      keyer_(std::move(keyer)),
      cache_(options_.use_cache ? cache : nullptr),
      pool_(pool),
      db_(db),
      progress_sink_(progress) {}

EvaluationPool::Done Controller::EvaluatedEvent(int64_t id) {
  return [this, id](absl::StatusOr<EvaluationResult> r, const std::string& worker, int attempts) {
    Event e;
    e.kind = Event::kEvaluated;
    e.id = id;
    e.result = std::move(r);
    e.worker = worker;
    e.attempts = attempts;
    Push(std::move(e));
  };
}

FecCache::Waiter Controller::MergedEvent(int64_t id) {
  return [this, id](absl::StatusOr<FecEntry> entry) {
    Event e;
    e.kind = Event::kMerged;
    e.id = id;
    e.entry = std::move(entry);
    Push(std::move(e));
  };
}

void Controller::Push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_one();
}

bool Controller::PopFor(std::chrono::milliseconds timeout, Event* e) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  *e = std::move(events_.front());
  events_.pop_front();
  return true;
}

bool Controller::BudgetLeft(const Progress& p) const {
  const SearchSpec& s = options_.spec.search();
  if (options_.stop && options_.stop->load()) return false;
  if (db_failed_ || failing_) return false;
  // With fidelities the evaluation budget counts compute (full-evaluation equivalents).
  if (s.max_evaluations() > 0 && (multi() ? p.compute >= s.max_evaluations() - 1e-9 : p.dispatched >= s.max_evaluations())) {
    return false;
  }
  if (s.max_wall_seconds() > 0 && p.elapsed_seconds >= s.max_wall_seconds()) return false;
  return true;
}

Hash128 Controller::RungKey(const Hash128& key, int rung) const {
  if (!multi() || rung == top_) return key;
  return FidelityCacheKey(key, fidelities_[rung]);
}

double Controller::RungCost(int from, int to) const {
  if (!multi()) return 1;
  return fidelities_[to].relative_cost - (from >= 0 ? fidelities_[from].relative_cost : 0.0);
}

void Controller::JoinRung(int rung, int64_t id, const Objectives& objectives) {
  Individual ind;
  ind.id = id;
  objectives_.Score(objectives, &ind);
  // Decisions are made as results arrive; replayed results (--resume) arrive in another
  // order (a promoted candidate's lower rungs join at its last row), so they decide nothing.
  if (at_arrival() && replay_seconds_ < 0 && EarnsPromotion(rung, ind)) approved_[rung].push_back(id);
  rung_results_[rung].push_back(std::move(ind));
  order_stale_[rung] = true;
}

bool Controller::EarnsPromotion(int r, const Individual& ind) const {
  const std::vector<Individual>& results = rung_results_[r];
  size_t n = 1;  // the rung's results with `ind` (which may be among them already)
  for (const Individual& o : results) n += o.id != ind.id;
  if (options_.spec.search().algorithm() == SearchSpec::REGULARIZED_EVOLUTION) {
    // In the top 1/eta (at least the best) of the rung's results.
    const double f = objectives_.Scalarize(ind);
    size_t better = 0;
    for (const Individual& o : results) {
      if (o.id == ind.id) continue;
      if (o.violation < ind.violation || (o.violation == ind.violation && objectives_.Scalarize(o) < f)) ++better;
    }
    const double eta = options_.spec.search().fidelity().eta();
    return static_cast<double>(better) < std::max(1.0, std::floor(static_cast<double>(n) / eta + 1e-9));
  }
  for (const Individual& o : results) {
    if (o.id != ind.id && Dominates(o, ind)) return false;
  }
  const double min_gain = options_.spec.search().fidelity().min_gain();
  if (min_gain <= 0 || ind.violation > 0 || ind.objectives.size() < 2) return true;
  // Not dominated; does it add enough of the rung's hypervolume to be worth the windows?
  std::vector<Individual> others;
  others.reserve(results.size());
  for (const Individual& o : results) {
    if (o.id != ind.id) others.push_back(o);
  }
  const std::vector<double> ref = reference_.empty() ? objectives_.Reference(others) : reference_;
  if (ref.size() < 2) return true;
  const double before = Hypervolume2D(others, ref[0], ref[1]);
  others.push_back(ind);
  const double after = Hypervolume2D(others, ref[0], ref[1]);
  return after - before >= min_gain * before;
}

bool Controller::TryPromote() {
  // Promotions recovered on --resume cost nothing more: before the budget.
  while (!recover_.empty()) {
    const auto [r, id] = recover_.front();
    recover_.pop_front();
    if (RecoverPromotion(r, id)) return true;
  }
  if (!BudgetLeft(progress_)) return false;
  const double eta = options_.spec.search().fidelity().eta();
  const bool scalar = options_.spec.search().algorithm() == SearchSpec::REGULARIZED_EVOLUTION;
  const std::function<double(const Individual&)> scalarize = [this](const Individual& i) { return objectives_.Scalarize(i); };
  for (int r = top_ - 1; r >= 0; --r) {
    const std::vector<Individual>& results = rung_results_[r];
    if (at_arrival()) {
      // Decided when each result arrived; one that something at the rung has come to
      // dominate (outrank) while it waited is dropped.
      std::deque<int64_t>& approved = approved_[r];
      while (!approved.empty()) {
        const int64_t id = approved.front();
        approved.pop_front();
        if (promoted_[r].count(id) || live_.count(id)) continue;
        auto it = std::find_if(results.begin(), results.end(), [id](const Individual& i) { return i.id == id; });
        if (it == results.end() || !EarnsPromotion(r, *it)) continue;
        if (StartPromotion(r, id)) return true;
      }
      continue;
    }
    const size_t k = static_cast<size_t>(std::floor(static_cast<double>(results.size()) / eta + 1e-9));
    if (k == 0) continue;
    // The ranking changes only when a result joins the rung.
    if (order_stale_[r]) {
      order_[r] = PromotionOrder(results, scalar ? &scalarize : nullptr);
      order_stale_[r] = false;
    }
    const std::vector<int>& order = order_[r];
    for (size_t i = 0; i < k; ++i) {
      if (StartPromotion(r, results[order[i]].id)) return true;
    }
  }
  return false;
}

int Controller::FirstRungPromotedTo(const CandidateRecord& r) const {
  Hash128 key;
  if (!cache_ || !Hash128::FromHex(r.cache_key, &key)) return 0;
  int first = 0;
  for (int q = r.rung; q >= 1; --q) {
    auto entry = cache_->Peek(RungKey(key, q));
    if (!entry.has_value() || entry->first_candidate_id != r.id) break;
    first = q;
  }
  return first;
}

bool Controller::RecoverPromotion(int r, int64_t id) {
  if (promoted_[r].count(id) || live_.count(id)) return false;
  auto at = done_index_.find(id);
  if (at == done_index_.end() || done_[at->second].rung != r) return false;
  Hash128 key;
  if (!Hash128::FromHex(done_[at->second].cache_key, &key)) return false;
  // Straight from the entry this candidate made (not a Lookup, which an aggregating or
  // forgetting cache could answer with "evaluate again"); its compute was counted on replay.
  auto entry = cache_->Peek(RungKey(key, r + 1));
  if (!entry.has_value() || entry->first_candidate_id != id) return false;
  auto stored = cache_->StoredResult(RungKey(key, r + 1));
  promoted_[r].insert(id);
  CandidateRecord before = done_[at->second];
  CandidateRecord rec = before;
  rec.rung = r + 1;
  if (!stored.ok()) rec.result.Clear();
  promoting_[id] = std::move(before);
  live_[id] = rec;
  const Objectives o = entry->objectives.ToProto();
  Finish(id, rec.outcome, &o, stored.ok() ? &*stored : nullptr, "recovered from cache", 0, "");
  return true;
}

bool Controller::StartPromotion(int r, int64_t id) {
  if (promoted_[r].count(id) || live_.count(id)) return false;
  auto at = done_index_.find(id);
  if (at == done_index_.end()) return false;
  promoted_[r].insert(id);
  CandidateRecord before = done_[at->second];
  if (before.rung != r) return false;  // promoted past r already (e.g. from a warm cache)
  CandidateRecord rec = before;
  rec.rung = r + 1;
  promoting_[id] = std::move(before);
  live_[id] = rec;
  const std::shared_ptr<const EvaluationResult> lower =
      rec.result.windows_size() > 0 ? std::make_shared<const EvaluationResult>(rec.result) : nullptr;
  Hash128 key;
  const bool has_key = cache_ && Hash128::FromHex(rec.cache_key, &key);
  auto dispatch = [&] {
    const double cost = RungCost(lower ? r : -1, r + 1);
    progress_.compute += cost;
    promotion_cost_[id] = cost;  // given back if the promotion fails
    pool_->SubmitAt(id, rec.candidate, r + 1, lower, EvaluatedEvent(id));
  };
  if (!has_key) {
    dispatch();
    return true;
  }
  FecCache::LookupResult lr = cache_->Lookup(RungKey(key, r + 1), MergedEvent(id));
  switch (lr.kind) {
    case FecCache::Kind::kHit: {
      // Known at the next rung already (a warm cache): no work.
      const Objectives o = lr.entry.objectives.ToProto();
      auto stored = cache_->StoredResult(RungKey(key, r + 1));
      // Without the stored result the record keeps none (not the lower rung's): a later
      // promotion then evaluates afresh, charged in full.
      if (!stored.ok()) live_[id].result.Clear();
      Finish(id, rec.outcome, &o, stored.ok() ? &*stored : nullptr, "cache", 0, "");
      return true;
    }
    case FecCache::Kind::kInFlight:
      return true;  // kMerged finishes it
    case FecCache::Kind::kPartialHit:
    case FecCache::Kind::kMiss:
      dispatch();
      return true;
  }
  return true;
}

bool Controller::CanPropose(const Progress& p) const {
  const SearchSpec& s = options_.spec.search();
  if (!BudgetLeft(p)) return false;
  if (s.max_candidates() > 0 && p.candidates >= s.max_candidates()) return false;
  // Every proposal answered by the cache for a long time: the space is exhausted.
  if (proposals_since_dispatch_ > 2000 + 20 * static_cast<int64_t>(s.population_size())) return false;
  // Every proposal screened out for a long time: the screen leaves nothing to evaluate.
  if (screened_since_dispatch_ > 2000 + 20 * static_cast<int64_t>(s.population_size())) return false;
  return true;
}

void Controller::Notify() {
  progress_.elapsed_seconds = NowSeconds() - start_seconds_;
  progress_.in_flight = static_cast<int>(live_.size());
  if (progress_sink_) progress_sink_->Update(progress_);
}

void Controller::NoteFailure(const std::string& why) {
  last_failure_ = why;
  ++failures_in_a_row_;
  const int64_t limit = std::max<int64_t>(8, 2 * static_cast<int64_t>(pool_->Capacity()));
  if (failures_in_a_row_ >= limit && !failing_) {
    failing_ = true;
    progress_.aborted = true;
    if (progress_.stop_reason.empty()) {
      progress_.stop_reason = absl::StrCat("evaluations keep failing (", failures_in_a_row_, " in a row); last: ", why);
    }
  }
}

void Controller::Finish(int64_t id, Outcome outcome, const Objectives* objectives, const EvaluationResult* result,
                        const std::string& worker, int attempts, const std::string& error) {
  auto it = live_.find(id);
  if (it == live_.end()) return;
  CandidateRecord& r = it->second;
  r.outcome = outcome;
  r.worker = worker;
  r.attempts = attempts;
  r.error = error;
  r.finished_micros = NowMicros();
  r.completion_seq = ++completion_seq_;
  if (objectives) {
    r.has_objectives = true;
    r.objectives = *objectives;
    // A hit shares its function's objectives; what belongs to the candidate itself (e.g. a
    // program's size) is the candidate's own.
    domain_.OwnMetrics(r.candidate, &r.objectives);
    objectives = &r.objectives;
    Individual ind;
    objectives_.Score(*objectives, &ind);
    r.violation = ind.violation;
  }
  if (result) {
    r.result = *result;
    r.eval_seconds = result->cost_seconds();
  }
  // The database commits rows in the order they are put, which is completion order: after
  // a crash it holds a prefix of the completions, from which --resume rebuilds the same
  // population. With a cache, evaluations are durable in it before they get here (resume
  // recovers them from it); without one, an evaluation is counted only once its row is
  // committed, so that a kill -9 can neither lose nor repeat it.
  const bool wait_for_row = cache_ == nullptr && (outcome == Outcome::kMiss || outcome == Outcome::kPartialHit);
  db_->Put(r, [this, id, wait_for_row](absl::Status s) {
    if (s.ok() && !wait_for_row) return;
    Event e;
    e.kind = wait_for_row ? Event::kDurable : Event::kDbError;
    e.id = id;
    e.durable = s;
    Push(std::move(e));
  });
  if (wait_for_row) {
    awaiting_row_.insert(id);  // stays live (the search waits for it) until kDurable
    return;
  }
  CandidateRecord finished = std::move(r);
  live_.erase(it);
  Counted(std::move(finished));
  Notify();
}

void Controller::Counted(CandidateRecord r) {
  const bool promotion = promoting_.erase(r.id) > 0;
  promotion_cost_.erase(r.id);
  if (promotion) {
    ++progress_.promotions;
  } else switch (r.outcome) {
    case Outcome::kHit: ++progress_.hits; break;
    case Outcome::kPartialHit: ++progress_.partial_hits; ++progress_.evaluations; break;
    case Outcome::kMiss: ++progress_.misses; ++progress_.evaluations; break;
    case Outcome::kMerged: ++progress_.merges; break;
    case Outcome::kInvalid: ++progress_.invalid; break;
    case Outcome::kFailed: ++progress_.failed; break;
    case Outcome::kScreened:
      ++(r.operation == kInitialPoolOperation ? progress_.pool_rejected : progress_.screened);
      break;
    default: break;
  }
  // Multi-fidelity: results below the full evaluation join their rung's ranking (when the
  // candidate was evaluated there, not answered by the cache: its function is ranked already)
  // and stay out of the population, the front and the hypervolume.
  const bool below_full = multi() && r.rung >= 0 && r.rung < top_;
  if (multi() && r.has_objectives && below_full) {
    // A cache answer joins too when its function is new to this experiment's rung (a cache
    // warmed by an earlier experiment): else it could never be promoted. A candidate merged
    // with a running evaluation never does: that evaluation's own candidate joins (whichever
    // of the two finishes first), and the merged one holds no result to promote from (its
    // promotion would score the rung's windows again).
    const bool first_of_key = r.outcome != Outcome::kMerged && ranked_keys_[r.rung].insert(r.cache_key).second;
    if (promotion || r.outcome == Outcome::kMiss || r.outcome == Outcome::kPartialHit || first_of_key) {
      JoinRung(r.rung, r.id, r.objectives);
    }
  }
  if (multi() && !promotion && below_full) ++progress_.below_full;
  if (multi() && promotion && !below_full) --progress_.below_full;
  if (screening() && r.has_objectives && !below_full) {
    ++full_results_;
    auto point = domain_.PredictedOf(r.result);
    if (point.ok()) screen_points_.push_back(std::move(*point));
  }
  if (r.has_objectives && !below_full) {
    Individual ind;
    ind.id = r.id;
    ind.candidate = r.candidate;
    objectives_.Score(r.objectives, &ind);
    algorithm_->Tell(ind);
    // Kept for the hypervolume reference, which needs only the objectives: without the
    // candidate (done_ holds it), long searches keep one copy of each in memory.
    ind.candidate.Clear();
    individuals_.push_back(ind);
    // The feasible front, updated in O(front) per result (a full recomputation per result
    // would make the search quadratic in its length).
    if (ind.violation == 0) {
      // With more than two objectives the front is that of the first two (the pair the spec
      // lists first; docs/DOMAINS.md), as its hypervolume is; the algorithms rank all.
      const Individual point = FrontPair(ind);
      bool dominated = false, strictly = false;
      for (const Individual& f : front_) {
        if (Dominates(f, point) || f.objectives == point.objectives) {
          dominated = true;
          strictly = Dominates(f, point);
          break;
        }
      }
      if (strictly && !options_.keep_dominated_candidates) r.candidate.Clear();
      if (!dominated) {
        front_.erase(std::remove_if(front_.begin(), front_.end(), [&](const Individual& f) { return Dominates(point, f); }),
                     front_.end());
        front_.push_back(point);
      }
    }
    if (ind.violation > 0 && !options_.keep_dominated_candidates) r.candidate.Clear();
    if (reference_.empty() && individuals_.size() >= 8) reference_ = objectives_.Reference(individuals_);
    const std::vector<double> ref = reference_.empty() ? objectives_.Reference(individuals_) : reference_;
    if (ref.size() >= 2) progress_.hypervolume = Hypervolume2D(front_, ref[0], ref[1]);
    const double scalar = objectives_.Scalarize(ind);
    if (ind.violation == 0 && (progress_.best_scalar == 0 || scalar < progress_.best_scalar)) progress_.best_scalar = scalar;
    progress_.front_size = static_cast<int>(front_.size());
  }
  if (multi()) {
    auto at = done_index_.find(r.id);
    if (at != done_index_.end()) {
      done_[at->second] = std::move(r);  // a promotion replaces the candidate's lower result
    } else {
      done_index_[r.id] = done_.size();
      done_.push_back(std::move(r));
    }
  } else {
    done_.push_back(std::move(r));
  }
  TracePoint t;
  // Replayed results (--resume) sit at their recorded times; later ones continue from the
  // last of them, so the wall-time plot leaves out the time the search was not running.
  t.seconds = replay_seconds_ >= 0 ? replay_seconds_ : trace_offset_seconds_ + NowSeconds() - start_seconds_;
  t.evaluations = progress_.evaluations;
  t.compute = progress_.compute;
  t.candidates = progress_.candidates;
  t.hypervolume = progress_.hypervolume;
  t.best_scalar = progress_.best_scalar;
  t.hit_rate = progress_.hit_rate();
  trace_.push_back(t);
}

absl::StatusOr<std::vector<Candidate>> Controller::ScreenedInitialPopulation(int seeded) {
  const SearchSpec& spec = options_.spec.search();
  const int want = spec.population_size() - seeded;
  if (want <= 0) return std::vector<Candidate>{};
  // Its own generator, so a resumed search draws the same pool (and the search's own draws
  // are those it would make without the pool).
  Rng rng(spec.seed() ^ 0x243f6a8885a308d3ull);
  const auto start = std::chrono::steady_clock::now();
  std::vector<Candidate> pool;
  std::vector<Individual> points;
  const int n = spec.screen().initial_pool();
  for (int i = 0; i < n; ++i) {
    Candidate c = domain_.space().Random(rng);
    auto p = domain_.Predict(c);
    if (absl::IsUnimplemented(p.status())) {
      return absl::InvalidArgumentError(absl::StrCat("search.screen.initial_pool: domain ", domain_.name(), " has no predictor"));
    }
    if (!p.ok() || p->size() < 2 || !std::all_of(p->begin(), p->end(), [](double v) { return std::isfinite(v); })) {
      continue;  // no usable prediction: not chosen
    }
    Individual ind;
    ind.id = i;
    ind.objectives = std::move(*p);
    points.push_back(std::move(ind));
    pool.push_back(std::move(c));
  }
  const std::vector<int> order = PromotionOrder(points, nullptr);
  std::vector<Candidate> chosen;
  pool_rejects_.clear();
  for (size_t k = 0; k < order.size(); ++k) {
    const int i = order[k];
    if (static_cast<int>(chosen.size()) < want) {
      chosen.push_back(pool[i]);
      continue;
    }
    pool_rejects_.push_back(
        {std::move(pool[i]),
         absl::StrFormat("screened: not chosen for the initial population (predicted point %s; %d of %d in the pool's "
                         "predicted ranking, %d chosen)",
                         absl::StrJoin(points[i].objectives, ", ", [](std::string* out, double v) { absl::StrAppend(out, absl::StrFormat("%.6g", v)); }),
                         static_cast<int>(k + 1), static_cast<int>(order.size()), want)});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress_.screen_seconds += seconds;
  progress_.initial_pool = n;
  return chosen;
}

std::string Controller::ScreenOut(const Candidate& candidate) {
  const ScreenSpec& spec = options_.spec.search().screen();
  if (!spec.skip() || redispatching_ || full_results_ < spec.warmup() || screen_points_.empty()) return "";
  const auto start = std::chrono::steady_clock::now();
  auto mine = domain_.Predict(candidate);
  progress_.screen_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!mine.ok() || mine->size() < 2) return "";  // no prediction: evaluated
  const double keep = 1.0 - spec.margin();
  for (const std::vector<double>& q : screen_points_) {
    if (q.size() < 2) continue;
    const bool bits_no_higher = q[0] <= (*mine)[0];
    const bool error_clearly_lower = q[1] <= keep * (*mine)[1];
    if (bits_no_higher && error_clearly_lower && (q[0] < (*mine)[0] || q[1] < (*mine)[1])) {
      return absl::StrFormat(
          "screened: predicted %.3f bits, probe error %.4f; a full evaluation's prediction is %.3f bits, %.4f (margin %.2f)",
          (*mine)[0], (*mine)[1], q[0], q[1], spec.margin());
    }
  }
  return "";
}

void Controller::Start(CandidateRecord record) {
  const int64_t id = record.id;
  const auto hash_start = std::chrono::steady_clock::now();
  auto hashes = keyer_(record.candidate);
  progress_.hash_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - hash_start).count();
  if (hashes.ok() && hashes->probe_ran) ++progress_.probes;
  if (hashes.ok()) {
    record.functional_hash = hashes->functional == Hash128() ? "" : hashes->functional.Hex();
    record.structural_hash = hashes->structural.Hex();
    record.exact_hash = hashes->exact.Hex();
    record.cache_key = hashes->key.Hex();
  }
  live_[id] = record;
  // A PENDING row is written only for candidates that stay outstanding (dispatched or
  // waiting for a running evaluation): those are dispatched again if the search is killed.
  auto mark_pending = [&] {
    CandidateRecord pending = live_[id];
    pending.outcome = Outcome::kPending;
    db_->Put(pending);
  };
  if (!hashes.ok()) {
    ++proposals_since_dispatch_;
    if (absl::IsInvalidArgument(hashes.status())) {
      Finish(id, Outcome::kInvalid, nullptr, nullptr, "", 0, std::string(hashes.status().message()));
      return;
    }
    // The probe itself failed (a user probe that crashed, timed out, printed non-numbers or is
    // not deterministic): nothing is evaluated, and the search stops with the reason.
    const std::string why = absl::StrCat("hashing failed: ", hashes.status().message());
    if (progress_.stop_reason.empty()) progress_.stop_reason = why;
    last_failure_ = why;
    failing_ = true;
    progress_.aborted = true;
    Finish(id, Outcome::kFailed, nullptr, nullptr, "", 0, why);
    return;
  }
  auto dispatch = [&](Outcome) {
    ++progress_.dispatched;
    proposals_since_dispatch_ = 0;
    screened_since_dispatch_ = 0;
    EvaluationPool::Done done = EvaluatedEvent(id);
    if (multi()) {
      const int rung = live_[id].rung;
      progress_.compute += RungCost(-1, rung);
      pool_->SubmitAt(id, record.candidate, rung, nullptr, std::move(done));
    } else {
      progress_.compute += 1;
      pool_->Submit(id, record.candidate, std::move(done));
    }
  };
  // Multi-fidelity: a fresh candidate starts at rung 0, or at the highest rung its function
  // is known at (a higher rung answers a lower one; the top is the plain key).
  if (multi()) {
    int rung = 0;
    if (cache_ != nullptr) {
      for (int r = top_; r >= 1 && rung == 0; --r) {
        if (cache_->Peek(RungKey(hashes->key, r)).has_value()) rung = r;
      }
    }
    live_[id].rung = rung;
  }
  // The probe screen judges only what would be evaluated: a candidate the cache can answer
  // costs nothing anyway.
  const Hash128 key = RungKey(hashes->key, live_[id].rung);
  if (screening() && (cache_ == nullptr || !cache_->Peek(key).has_value())) {
    const std::string why = ScreenOut(record.candidate);
    if (!why.empty()) {
      ++screened_since_dispatch_;
      live_[id].rung = -1;  // evaluated at no rung
      Finish(id, Outcome::kScreened, nullptr, nullptr, "screen", 0, why);
      return;
    }
  }
  if (cache_ == nullptr) {
    live_[id].outcome = Outcome::kMiss;
    mark_pending();
    dispatch(Outcome::kMiss);
    return;
  }
  FecCache::LookupResult lr = cache_->Lookup(key, MergedEvent(id));
  switch (lr.kind) {
    case FecCache::Kind::kHit:
      if (lr.entry.first_candidate_id == id) {
        // Evaluated by this very candidate before a kill, whose row was not yet updated: the
        // evaluation is recovered from the cache, not repeated, and counted as one.
        ++progress_.dispatched;
        const Objectives o = lr.entry.objectives.ToProto();
        if (multi()) {
          // Its rung's result with the windows' shares, which a promotion builds on.
          progress_.compute += RungCost(-1, live_[id].rung);
          auto stored = cache_->StoredResult(key);
          if (stored.ok()) {
            Finish(id, Outcome::kMiss, &o, &*stored, "recovered from cache", 0, "");
            break;
          }
        } else {
          progress_.compute += 1;
        }
        Finish(id, Outcome::kMiss, &o, nullptr, "recovered from cache", 0, "");
        break;
      }
      ++proposals_since_dispatch_;
      {
        const Objectives o = lr.entry.objectives.ToProto();
        if (multi() && live_[id].rung < top_) {
          // Below the full evaluation a hit keeps its rung's result, which a promotion (of a
          // function first seen in an earlier experiment) builds on.
          auto stored = cache_->StoredResult(key);
          if (stored.ok()) {
            Finish(id, Outcome::kHit, &o, &*stored, "cache", 0, "");
            break;
          }
        }
        Finish(id, Outcome::kHit, &o, nullptr, "cache", 0, "");
      }
      break;
    case FecCache::Kind::kInFlight:
      ++proposals_since_dispatch_;
      live_[id].outcome = Outcome::kMerged;
      mark_pending();
      break;
    case FecCache::Kind::kPartialHit:
      live_[id].outcome = Outcome::kPartialHit;
      mark_pending();
      dispatch(Outcome::kPartialHit);
      break;
    case FecCache::Kind::kMiss:
      live_[id].outcome = Outcome::kMiss;
      mark_pending();
      dispatch(Outcome::kMiss);
      break;
  }
}

void Controller::Handle(Event e) {
  if (e.kind == Event::kDbError) {
    if (progress_.stop_reason.empty()) {
      progress_.stop_reason = absl::StrCat("database write failed: ", e.durable.message());
    }
    db_failed_ = true;
    progress_.aborted = true;
    return;
  }
  auto it = live_.find(e.id);
  if (it == live_.end()) return;
  if (e.kind == Event::kDurable) {
    CandidateRecord finished = std::move(it->second);
    live_.erase(it);
    awaiting_row_.erase(e.id);
    if (!e.durable.ok()) {
      if (progress_.stop_reason.empty()) progress_.stop_reason = absl::StrCat("database write failed: ", e.durable.message());
      db_failed_ = true;
      progress_.aborted = true;
      return;
    }
    Counted(std::move(finished));
    Notify();
    return;
  }
  if (awaiting_row_.count(e.id)) return;
  Hash128 key;
  const bool has_key = Hash128::FromHex(it->second.cache_key, &key);
  if (has_key) key = RungKey(key, it->second.rung);
  // A promotion that could not be completed: the candidate stays at its rung as recorded
  // (its row was not touched), and is not promoted again.
  auto promotion_failed = [&](const absl::Status& why) {
    promoting_.erase(e.id);
    // Only a promotion this candidate dispatched owns the cache key and was charged compute
    // (one that waited for another's evaluation did neither).
    auto charged = promotion_cost_.find(e.id);
    if (charged != promotion_cost_.end()) {
      if (cache_ && has_key) cache_->Abandon(key, why);
      progress_.compute -= charged->second;
      promotion_cost_.erase(charged);
    }
    live_.erase(it);
    if (!(absl::IsCancelled(why) && cancelled_queued_)) {
      NoteFailure(absl::StrCat("promoting candidate ", e.id, ": ", why.message()));
    }
  };
  const bool promotion = promoting_.count(e.id) > 0;
  switch (e.kind) {
    case Event::kEvaluated: {
      const Outcome planned = it->second.outcome;
      if (promotion && (!e.result.ok() || e.result->status().code() != 0)) {
        promotion_failed(e.result.ok() ? absl::InternalError(e.result->status().message()) : e.result.status());
        return;
      }
      if (!e.result.ok()) {
        if (cache_ && has_key) cache_->Abandon(key, e.result.status());
        if (absl::IsCancelled(e.result.status()) && cancelled_queued_) {
          live_.erase(it);  // never dispatched: its row stays PENDING for --resume
          return;
        }
        NoteFailure(std::string(e.result.status().message()));
        --progress_.dispatched;  // a failed evaluation does not use the budget (resume counts alike)
        progress_.compute -= RungCost(-1, multi() ? it->second.rung : 0);
        Finish(e.id, Outcome::kFailed, nullptr, nullptr, e.worker, e.attempts, std::string(e.result.status().message()));
        return;
      }
      failures_in_a_row_ = 0;
      const EvaluationResult& r = *e.result;
      if (r.status().code() != 0) {
        if (cache_ && has_key) cache_->Abandon(key, absl::Status(static_cast<absl::StatusCode>(r.status().code()), r.status().message()));
        Finish(e.id, Outcome::kInvalid, nullptr, &r, e.worker, e.attempts, r.status().message());
        return;
      }
      if (cache_ && has_key) {
        // Counted once the cache entry is durable (kCompleted), with the running mean.
        const int64_t id = e.id;
        const std::string worker = e.worker;
        const int attempts = e.attempts;
        auto result = std::make_shared<EvaluationResult>(r);
        cache_->CompleteAsync(key, e.id, r, options_.context_fingerprint,
                              [this, id, worker, attempts, result](absl::StatusOr<FecEntry> entry) {
                                Event done;
                                done.kind = Event::kCompleted;
                                done.id = id;
                                done.entry = std::move(entry);
                                done.result = *result;
                                done.worker = worker;
                                done.attempts = attempts;
                                Push(std::move(done));
                              });
        return;
      }
      const Objectives objectives = r.objectives();
      Finish(e.id, planned, &objectives, &r, e.worker, e.attempts, "");
      return;
    }
    case Event::kCompleted: {
      const Outcome planned = it->second.outcome;
      if (promotion && !e.entry.ok()) {
        promotion_failed(absl::Status(e.entry.status().code(), absl::StrCat("cache write failed: ", e.entry.status().message())));
        return;
      }
      if (!e.entry.ok()) {
        Finish(e.id, Outcome::kFailed, nullptr, nullptr, e.worker, e.attempts,
               absl::StrCat("cache write failed: ", e.entry.status().message()));
        return;
      }
      const Objectives objectives = e.entry->objectives.ToProto();  // running mean (aggregating FEC)
      Finish(e.id, planned, &objectives, &*e.result, e.worker, e.attempts, "");
      return;
    }
    case Event::kMerged:
      if (promotion) {
        if (!e.entry.ok()) {
          promotion_failed(e.entry.status());
        } else {
          const Objectives o = e.entry->objectives.ToProto();
          // The rung's result with its windows, which a further promotion builds on; without
          // it the record keeps none rather than the lower rung's.
          auto stored = cache_ && has_key ? cache_->StoredResult(key) : absl::StatusOr<EvaluationResult>(absl::NotFoundError(""));
          if (!stored.ok()) it->second.result.Clear();
          Finish(e.id, it->second.outcome, &o, stored.ok() ? &*stored : nullptr, "cache (merged)", 0, "");
        }
        return;
      }
      if (!e.entry.ok() && absl::IsCancelled(e.entry.status()) && cancelled_queued_) {
        live_.erase(it);  // the evaluation it waited for was never dispatched: stays PENDING
        return;
      }
      if (!e.entry.ok()) {
        Finish(e.id, Outcome::kInvalid, nullptr, nullptr, "", 0, std::string(e.entry.status().message()));
      } else {
        const Objectives o = e.entry->objectives.ToProto();
        Finish(e.id, Outcome::kMerged, &o, nullptr, "cache (merged)", 0, "");
      }
      return;
    case Event::kDbError:
    case Event::kDurable:
      return;
  }
}

absl::StatusOr<SearchResult> Controller::Run() {
  const SearchSpec& spec = options_.spec.search();
  start_seconds_ = NowSeconds();
  progress_.max_evaluations = spec.max_evaluations();
  progress_.max_candidates = spec.max_candidates();
  progress_.max_wall_seconds = spec.max_wall_seconds();
  std::vector<Candidate> seeds = domain_.Seeds();
  progress_.screen_skips = screening() && spec.screen().skip();
  if (screening() && spec.screen().initial_pool() > 0) {
    auto design = ScreenedInitialPopulation(static_cast<int>(seeds.size()));
    if (!design.ok()) return design.status();
    for (Candidate& c : *design) seeds.push_back(std::move(c));
  }
  algorithm_ = MakeAlgorithm(spec, domain_.space(), std::move(seeds),
                             [this](const Individual& ind) { return objectives_.Scalarize(ind); });
  if (spec.has_fidelity()) {
    fidelities_ = domain_.Fidelities();
    if (fidelities_.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat("search.fidelity: domain ", domain_.name(), " has no fidelities"));
    }
    if (!pool_->SupportsFidelities()) {
      return absl::InvalidArgumentError(absl::StrCat("search.fidelity: ", pool_->Describe(), " cannot evaluate at fidelities"));
    }
    top_ = static_cast<int>(fidelities_.size()) - 1;
    rung_results_.assign(top_, {});
    promoted_.assign(top_, {});
    ranked_keys_.assign(top_, {});
    order_.assign(top_, {});
    order_stale_.assign(top_, true);
    approved_.assign(top_, {});
    progress_.multi_fidelity = true;
  }
  if (screening()) {
    auto probe = domain_.PredictedOf(EvaluationResult());
    if (absl::IsUnimplemented(probe.status())) {
      return absl::InvalidArgumentError(absl::StrCat("search.screen: domain ", domain_.name(), " has no predictor"));
    }
    progress_.screening = true;
  }
  auto next = db_->NextCandidateId();
  if (!next.ok()) return next.status();
  next_id_ = *next;
  std::deque<CandidateRecord> redispatch;
  rng_ = Rng(spec.seed());
  if (options_.resume) {
    // Multi-fidelity: results are read whole, for each lower rung's objectives.
    auto previous = db_->Candidates(options_.experiment_id, /*with_results=*/multi() || screening());
    if (!previous.ok()) return previous.status();
    std::vector<CandidateRecord> finished;
    for (CandidateRecord& r : *previous) {
      if (r.outcome == Outcome::kPending) {
        r.outcome = Outcome::kPending;
        redispatch.push_back(std::move(r));
      } else {
        finished.push_back(std::move(r));
      }
    }
    std::sort(finished.begin(), finished.end(),
              [](const CandidateRecord& a, const CandidateRecord& b) { return a.completion_seq < b.completion_seq; });
    // Replaying the proposals' random draws is not needed: the population is rebuilt from
    // the recorded results, and the generator continues from a state derived from them.
    int64_t origin_micros = 0;
    for (const CandidateRecord& r : finished) {
      if (r.created_micros > 0 && (origin_micros == 0 || r.created_micros < origin_micros)) origin_micros = r.created_micros;
    }
    for (const CandidateRecord& r : finished) {
      replay_seconds_ = std::max(replay_seconds_, origin_micros > 0 && r.finished_micros > 0
                                                      ? 1e-6 * static_cast<double>(r.finished_micros - origin_micros)
                                                      : 0.0);
      completion_seq_ = std::max(completion_seq_, r.completion_seq);
      if (r.operation == kInitialPoolOperation) {  // not chosen from the pool: no proposal
        Counted(r);
        continue;
      }
      ++progress_.candidates;
      const bool evaluated = r.outcome == Outcome::kMiss || r.outcome == Outcome::kPartialHit;
      if (evaluated) ++progress_.dispatched;
      algorithm_->CountRecordedProposal();
      if (multi() && r.rung > 0 && r.rung <= top_ && (evaluated || r.result.windows_size() > 0)) {
        // It was ranked at every rung below the one it reached and promoted from each: its
        // objectives there come from its result's per-window shares (Domain::ResultAt). (A
        // hit answered at the top keeps no result: it was never ranked below.)
        for (int q = 0; q < r.rung; ++q) {
          auto lower = domain_.ResultAt(r.result, q);
          if (lower.ok()) {
            JoinRung(q, r.id, lower->objectives());
            ranked_keys_[q].insert(r.cache_key);
          }
          promoted_[q].insert(r.id);
        }
        if (evaluated) {
          progress_.promotions += r.rung;
        } else if (const int q = FirstRungPromotedTo(r); q > 0) {
          // A hit (a warm cache answered it at rung q - 1) that was promoted from there: the
          // cache's entries from rung q up were made by its promotions, charged as they ran.
          progress_.promotions += r.rung - q + 1;
          progress_.compute += RungCost(q - 1, r.rung);
        }
      }
      if (multi() && evaluated && r.rung >= 0 && r.rung <= top_) progress_.compute += RungCost(-1, r.rung);
      if (!multi() && evaluated) progress_.compute += 1;
      Counted(r);
    }
    if (multi() && cache_) {
      // A promotion whose result reached the cache but not the row (a kill -9 between the
      // two): the cache's entry at the next rung was made by this candidate. It is finished
      // from the cache first thing (no window scored again), and its compute was spent.
      for (const CandidateRecord& r : finished) {
        Hash128 key;
        if (r.rung < 0 || r.rung >= top_ || !Hash128::FromHex(r.cache_key, &key)) continue;
        auto entry = cache_->Peek(RungKey(key, r.rung + 1));
        if (!entry.has_value() || entry->first_candidate_id != r.id) continue;
        recover_.push_back({r.rung, r.id});
        progress_.compute += RungCost(r.result.windows_size() > 0 ? r.rung : -1, r.rung + 1);
      }
    }
    if (at_arrival()) {
      // Replayed results decided nothing (they arrive in another order). Every result not
      // promoted from its rung is put up again; TryPromote starts only those that still earn
      // it against all of the rung's results, as a decided promotion is checked when a slot
      // frees. A result refused on arrival stays refused (what dominated it, or the points
      // that left it too little gain, are still there); one decided but not yet started at
      // the kill (or when the budget ran out) is promoted now.
      for (int q = 0; q < top_; ++q) {
        std::vector<int64_t> ids;
        for (const Individual& ind : rung_results_[q]) {
          if (!promoted_[q].count(ind.id)) ids.push_back(ind.id);
        }
        std::sort(ids.begin(), ids.end());
        approved_[q].assign(ids.begin(), ids.end());
      }
    }
    trace_offset_seconds_ = std::max(0.0, replay_seconds_);
    replay_seconds_ = -1;
    progress_.candidates += static_cast<int64_t>(redispatch.size());
    for (size_t i = 0; i < redispatch.size(); ++i) algorithm_->CountRecordedProposal();
    rng_ = Rng(spec.seed() ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(previous->size() + 1)));
  }
  if (!options_.resume) {
    // The pool's candidates that were not chosen are recorded SCREENED (never evaluated), so
    // the database holds everything the screen passed over (search:fidelity_audit evaluates
    // them). They are no proposals of the search: outside its candidate count and budget.
    for (auto& [candidate, why] : pool_rejects_) {
      CandidateRecord r;
      r.id = next_id_++;
      r.experiment_id = options_.experiment_id;
      r.operation = kInitialPoolOperation;
      r.candidate = std::move(candidate);
      r.domain = domain_.name();
      r.created_micros = NowMicros();
      r.rung = -1;
      live_[r.id] = r;
      Finish(r.id, Outcome::kScreened, nullptr, nullptr, "screen", 0, why);
    }
  }
  pool_rejects_.clear();
  Notify();
  while (true) {
    if (options_.stop && options_.stop->load() && !cancelled_queued_) {
      cancelled_queued_ = true;
      pool_->CancelQueued();
    }
    // Fill the pool.
    while (static_cast<int>(live_.size()) < std::max(1, pool_->Capacity())) {
      progress_.elapsed_seconds = NowSeconds() - start_seconds_;
      if (!redispatch.empty()) {
        CandidateRecord r = std::move(redispatch.front());
        redispatch.pop_front();
        redispatching_ = true;  // it passed the screen when first dispatched
        Start(std::move(r));
        redispatching_ = false;
        continue;
      }
      // ASHA: promotions first, new candidates at rung 0 when none is due.
      if (multi() && TryPromote()) continue;
      if (!CanPropose(progress_)) break;
      Proposal p = algorithm_->Propose(rng_);
      CandidateRecord r;
      r.id = next_id_++;
      r.experiment_id = options_.experiment_id;
      r.parents = p.parents;
      r.operation = p.operation;
      r.candidate = std::move(p.candidate);
      r.domain = domain_.name();
      r.created_micros = NowMicros();
      ++progress_.candidates;
      Start(std::move(r));
    }
    if (live_.empty()) break;
    // Wake up now and then even without events: the pool's capacity grows as remote
    // workers are described (or join), and the progress line's clock should move.
    Event first;
    if (PopFor(std::chrono::milliseconds(100), &first)) {
      Handle(std::move(first));
    } else {
      Notify();
    }
    // Drain whatever else arrived without blocking.
    while (true) {
      Event e;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (events_.empty()) break;
        e = std::move(events_.front());
        events_.pop_front();
      }
      Handle(std::move(e));
    }
    // Hit counters reach the database every second, so that `inspect` on a running
    // search (or after a kill -9) sees them.
    if (cache_ && NowSeconds() - last_stats_persist_ >= kStatsPersistSeconds) {
      last_stats_persist_ = NowSeconds();
      absl::Status persisted = cache_->PersistStats();
      if (!persisted.ok()) std::fprintf(stderr, "search: saving cache hit counters: %s\n", std::string(persisted.message()).c_str());
    }
  }
  absl::Status flushed = db_->Flush();
  if (!flushed.ok()) return flushed;
  if (cache_) (void)cache_->PersistStats();
  if (progress_.stop_reason.empty()) {
    if (options_.stop && options_.stop->load()) {
      progress_.stop_reason = "interrupted (continue with --resume)";
    } else if (proposals_since_dispatch_ > 2000 + 20 * static_cast<int64_t>(spec.population_size())) {
      progress_.stop_reason = "search space exhausted: every recent proposal was already cached";
    } else if (screened_since_dispatch_ > 2000 + 20 * static_cast<int64_t>(spec.population_size())) {
      progress_.stop_reason = "the probe screen skipped every recent proposal (search.screen: a larger margin skips less)";
    } else if (multi() && spec.max_evaluations() > 0 && progress_.compute >= spec.max_evaluations() - 1e-9) {
      progress_.stop_reason = absl::StrCat("compute budget reached (", spec.max_evaluations(), " full-evaluation equivalents)");
    } else if (spec.max_evaluations() > 0 && progress_.dispatched >= spec.max_evaluations()) {
      progress_.stop_reason = absl::StrCat("evaluation budget reached (", spec.max_evaluations(), ")");
    } else if (spec.max_candidates() > 0 && progress_.candidates >= spec.max_candidates()) {
      progress_.stop_reason = absl::StrCat("candidate budget reached (", spec.max_candidates(), ")");
    } else {
      progress_.stop_reason = absl::StrCat("wall-time budget reached (", spec.max_wall_seconds(), " s)");
    }
  }
  if (progress_.evaluations == 0 && progress_.failed > 0 && !(options_.stop && options_.stop->load()) &&
      !progress_.aborted) {
    progress_.aborted = true;
    progress_.stop_reason = absl::StrCat("no evaluation succeeded (", progress_.failed, " failed; last: ", last_failure_, ")");
  }
  progress_.finished = true;
  Notify();
  SearchResult result;
  result.experiment_id = options_.experiment_id;
  std::vector<CandidateRecord> records = std::move(done_);
  done_.clear();
  std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  result.records = std::move(records);
  // The front over unique configurations (cache key), feasible or least infeasible.
  std::vector<Individual> unique;
  std::vector<int> index;
  std::set<std::string> seen;
  for (size_t i = 0; i < result.records.size(); ++i) {
    const CandidateRecord& r = result.records[i];
    if (!r.has_objectives) continue;
    if (multi() && r.rung >= 0 && r.rung < top_) continue;  // the front is of full evaluations only
    Individual ind;
    ind.id = r.id;
    objectives_.Score(r.objectives, &ind);
    // By key and objectives: hits of one key can differ in the domain's own metrics
    // (Domain::OwnMetrics, e.g. a program's size), and each such variant may be on the front.
    std::string key = r.cache_key.empty() ? r.exact_hash : r.cache_key;
    for (double v : ind.objectives) absl::StrAppend(&key, "|", v);
    if (!key.empty() && !seen.insert(key).second) continue;
    unique.push_back(FrontPair(ind));
    index.push_back(static_cast<int>(i));
  }
  // Feasible non-dominated configurations, in O(n x front).
  std::vector<int> front;  // indices into `unique`
  for (size_t i = 0; i < unique.size(); ++i) {
    if (unique[i].violation > 0) continue;
    bool dominated = false;
    for (int f : front) dominated |= Dominates(unique[f], unique[i]);
    if (dominated) continue;
    front.erase(std::remove_if(front.begin(), front.end(), [&](int f) { return Dominates(unique[i], unique[f]); }),
                front.end());
    front.push_back(static_cast<int>(i));
  }
  for (int f : front) result.front.push_back(index[f]);
  // Ordered along the first objective (as the report plots it).
  std::vector<Individual> scored(result.records.size());
  for (int i : result.front) objectives_.Score(result.records[i].objectives, &scored[i]);
  std::sort(result.front.begin(), result.front.end(), [&](int a, int b) {
    return scored[a].objectives.front() < scored[b].objectives.front();
  });
  result.trace = trace_;
  result.progress = progress_;
  result.hypervolume_reference = reference_.empty() ? objectives_.Reference(individuals_) : reference_;
  return result;
}

}  // namespace fecsearch
