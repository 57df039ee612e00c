// The steady-state asynchronous controller: propose -> structural check -> functional hash ->
// cache lookup -> on a miss, dispatch to the pool -> record -> update the population. Many
// evaluations in flight and no generation barrier. Evaluations are durable in the cache
// before they are counted; candidate rows are committed in completion order, so after a crash
// the database holds a prefix of the completions and a resumed search rebuilds its population.
#ifndef FECSEARCH_SEARCH_CONTROLLER_H_
#define FECSEARCH_SEARCH_CONTROLLER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hashing/candidate_hasher.h"
#include "hashing/fec_cache.h"
#include "protos/experiment.pb.h"
#include "search/algorithms.h"
#include "search/evaluation_pool.h"
#include "search/experiment_db.h"
#include "search/domain.h"
#include "search/objectives.h"
#include "search/candidate_space.h"

namespace fecsearch {

// Computes a candidate's hashes (key per dedup mode); INVALID_ARGUMENT for bad candidates.
using Keyer = std::function<absl::StatusOr<CandidateHashes>(const Candidate&)>;

// The search's state as progress displays show it.
struct Progress {
  int64_t candidates = 0;     // proposed (cache hits included)
  int64_t evaluations = 0;    // evaluations completed
  int64_t dispatched = 0;     // evaluations started (budget)
  int64_t max_evaluations = 0, max_candidates = 0;
  double max_wall_seconds = 0;
  int64_t hits = 0, partial_hits = 0, merges = 0, misses = 0, invalid = 0, failed = 0;
  // Multi-fidelity searches (search.fidelity): compute dispatched in full-evaluation
  // equivalents (windows scored / windows of a full evaluation; the budget max_evaluations
  // counts it), promotions completed, and candidates whose latest result is below the full
  // evaluation. Without fidelities compute equals `dispatched`.
  double compute = 0;
  int64_t promotions = 0, below_full = 0;
  bool multi_fidelity = false;
  // Probe screening (search.screen): candidates skipped as predicted dominated (recorded
  // SCREENED, not evaluated), and the seconds their predictions took (probe cost, not compute).
  int64_t screened = 0;
  double screen_seconds = 0;
  int initial_pool = 0;  // search.screen.initial_pool: the initial population's pool, if any
  int64_t pool_rejected = 0;  // its candidates not chosen (recorded SCREENED, no proposals)
  bool screening = false;
  bool screen_skips = false;  // search.screen.skip: the screen skips candidates (not only the pool)
  int front_size = 0;
  // Time spent hashing candidates (probes included) and how many probes ran.
  double hash_seconds = 0;
  int64_t probes = 0;
  double hypervolume = 0;
  double best_scalar = 0;  // single-objective best (lower is better)
  double elapsed_seconds = 0;
  int in_flight = 0;
  bool finished = false;
  std::string stop_reason;
  // The search stopped because of an error (evaluations kept failing, the database could
  // not be written): the CLI exits non-zero.
  bool aborted = false;

  double hit_rate() const {
    const int64_t looked = hits + partial_hits + merges + misses;
    return looked > 0 ? static_cast<double>(hits + merges) / looked : 0.0;
  }
};

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // Called from the controller thread after every change.
  virtual void Update(const Progress& p) = 0;
};

// A point of the search's history, for the report's plots.
struct TracePoint {
  double seconds = 0;
  int64_t evaluations = 0, candidates = 0;
  double hypervolume = 0, best_scalar = 0, hit_rate = 0;
  double compute = 0;  // full-evaluation equivalents dispatched (Progress::compute)
};

struct SearchResult {
  int64_t experiment_id = -1;
  std::vector<CandidateRecord> records;  // this experiment's finished candidates, by id
  std::vector<int> front;                // indices into `records` (unique configurations)
  std::vector<TracePoint> trace;
  Progress progress;
  std::vector<double> hypervolume_reference;
};

struct ControllerOptions {
  ExperimentSpec spec;  // effective spec (flags applied)
  int64_t experiment_id = -1;
  bool resume = false;
  bool use_cache = true;  // false for --dedup=none
  std::string context_fingerprint;
  // Set (e.g. by a signal handler) to stop proposing; in-flight work is finished and recorded.
  const std::atomic<bool>* stop = nullptr;
  // Keep every finished candidate in SearchResult.records (what --verify_hits re-evaluates).
  // false: a candidate strictly dominated when it finishes (never on the final front) keeps
  // only its hashes and objectives in memory (the database has it whole): long searches of
  // cheap domains (hundreds of thousands of programs) fit in memory.
  bool keep_dominated_candidates = true;
};

// Runs one experiment. Not thread-safe (one Run at a time); the pool, cache and database
// are shared with their own threads.
class Controller {
 public:
  // `domain` proposes, describes and hashes candidates; `objectives` scores their results.
  Controller(ControllerOptions options, const Domain& domain, const ObjectiveSet& objectives, Keyer keyer,
             FecCache* cache, EvaluationPool* pool, ExperimentDb* db, ProgressSink* progress);
  absl::StatusOr<SearchResult> Run();

 private:
  struct Event {
    // kDurable: the row of an evaluation made without a cache is committed (`durable`).
    enum Kind { kEvaluated, kCompleted, kMerged, kDbError, kDurable } kind;
    int64_t id = -1;
    absl::StatusOr<EvaluationResult> result = absl::UnknownError("unset");
    absl::StatusOr<FecEntry> entry = absl::UnknownError("unset");
    std::string worker;
    int attempts = 0;
    absl::Status durable;
  };
  void Push(Event e);
  // Callbacks that turn a finished evaluation, or the end of the evaluation a lookup waits
  // for, into the candidate's event.
  EvaluationPool::Done EvaluatedEvent(int64_t id);
  FecCache::Waiter MergedEvent(int64_t id);
  // Waits up to `timeout` for the next event; false if none came.
  bool PopFor(std::chrono::milliseconds timeout, Event* e);
  bool CanPropose(const Progress& p) const;
  void Start(CandidateRecord record);  // hash, look up, dispatch
  // Counts an evaluation that failed after the pool's retries; stops the search after too
  // many in a row.
  void NoteFailure(const std::string& why);
  void Finish(int64_t id, Outcome outcome, const Objectives* objectives, const EvaluationResult* result,
              const std::string& worker, int attempts, const std::string& error);
  void Handle(Event e);
  void Counted(CandidateRecord r);
  void Notify();
  // Multi-fidelity: the cache key of `key`'s results at `rung` (the plain key at the full
  // evaluation), what scoring at `rung` costs from `from` (-1: nothing scored), whether the
  // budgets leave room for more work, and ASHA's promotion: the first candidate in the top
  // 1/eta of a rung's results (highest rung first) that was not promoted yet is started at
  // the next rung; false if none.
  Hash128 RungKey(const Hash128& key, int rung) const;
  double RungCost(int from, int to) const;
  bool BudgetLeft(const Progress& p) const;
  bool TryPromote();
  // A candidate's individual at a rung below the full evaluation joins that rung's ranking.
  void JoinRung(int rung, int64_t id, const Objectives& objectives);
  // AT_ARRIVAL: whether `ind` earns its promotion against rung r's other results.
  bool EarnsPromotion(int r, const Individual& ind) const;
  // search.screen.initial_pool: population_size - `seeded` candidates chosen from the pool
  // of random ones by predicted point (non-dominated rank, then crowding distance).
  absl::StatusOr<std::vector<Candidate>> ScreenedInitialPopulation(int seeded);
  std::vector<std::pair<Candidate, std::string>> pool_rejects_;  // not chosen, and why
  // The lowest rung q >= 1 such that the cache's entries at rungs q..r.rung were all made by
  // candidate r (its promotions); 0 if none (no cache, or nothing it promoted is stored).
  int FirstRungPromotedTo(const CandidateRecord& r) const;
  // Starts promoting `id` from rung r (a dispatch, a cache answer or a merge); false if it is
  // not promotable (promoted, in flight, or past r already).
  bool StartPromotion(int r, int64_t id);
  // --resume: finishes the promotion of `id` from rung r from the cache entry it made.
  bool RecoverPromotion(int r, int64_t id);

  static constexpr double kStatsPersistSeconds = 1;
  double last_stats_persist_ = 0;
  std::set<int64_t> awaiting_row_;  // evaluations (no cache) counted once their row is committed
  ControllerOptions options_;
  const Domain& domain_;
  const ObjectiveSet& objectives_;
  Keyer keyer_;
  FecCache* cache_;
  EvaluationPool* pool_;
  ExperimentDb* db_;
  ProgressSink* progress_sink_;

  std::unique_ptr<Algorithm> algorithm_;
  Rng rng_{1};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;

  std::map<int64_t, CandidateRecord> live_;  // outstanding, by id
  std::vector<CandidateRecord> done_;        // counted, in completion order
  std::vector<Individual> individuals_;      // of done_ with objectives
  std::vector<Individual> front_;            // feasible non-dominated, kept incrementally
  Progress progress_;
  std::vector<TracePoint> trace_;
  int64_t next_id_ = 1, completion_seq_ = 0;
  int64_t proposals_since_dispatch_ = 0;
  bool db_failed_ = false;
  bool cancelled_queued_ = false;  // told the pool that the search is stopping
  // Evaluations that failed (after the pool's retries) since the last one that succeeded.
  int64_t failures_in_a_row_ = 0;
  std::string last_failure_;
  bool failing_ = false;  // too many in a row: stop proposing
  double start_seconds_ = 0;
  // --resume: the trace time of the result being replayed (-1 outside the replay) and the
  // trace time at which this run continues.
  double replay_seconds_ = -1, trace_offset_seconds_ = 0;
  std::vector<double> reference_;

  // Multi-fidelity state (search.fidelity; empty without it).
  std::vector<Fidelity> fidelities_;
  int top_ = -1;  // index of the full evaluation in fidelities_; -1 without fidelities
  bool multi() const { return top_ > 0; }
  bool at_arrival() const {
    return multi() && options_.spec.search().fidelity().promotion() == FidelitySpec::AT_ARRIVAL;
  }
  std::vector<std::vector<Individual>> rung_results_;  // per rung below the top: evaluated results there
  std::vector<std::set<int64_t>> promoted_;             // per rung below the top: ids promoted from it
  std::map<int64_t, CandidateRecord> promoting_;        // promotions in flight: the record before
  std::map<int64_t, size_t> done_index_;                // id -> index into done_ (multi-fidelity)
  std::map<int64_t, double> promotion_cost_;            // compute charged by promotions in flight
  std::vector<std::set<std::string>> ranked_keys_;      // per rung below the top: cache keys in its ranking
  std::vector<std::vector<int>> order_;                 // per rung: PromotionOrder of rung_results_
  std::vector<bool> order_stale_;
  std::vector<std::deque<int64_t>> approved_;           // AT_ARRIVAL: per rung, promotions decided, in order
  std::deque<std::pair<int, int64_t>> recover_;         // (rung, id): promotions durable in the cache only
  // Probe screening: the predicted points of full evaluations so far.
  std::vector<std::vector<double>> screen_points_;
  int64_t full_results_ = 0;
  int64_t screened_since_dispatch_ = 0;
  bool redispatching_ = false;  // Start of a candidate re-dispatched on --resume
  bool screening() const { return options_.spec.search().has_screen(); }
  // The reason to skip a fresh candidate (its predicted point is dominated by a full
  // evaluation's, by the margin), or "" to evaluate it.
  std::string ScreenOut(const Candidate& candidate);
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_CONTROLLER_H_
