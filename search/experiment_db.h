// The experiment database (SQLite, by default the same file as the cache): every experiment
// and every candidate with its parents, genome (a binary Candidate proto; //hashing:inspect
// prints it as text), hashes, cache outcome, objectives, worker and timestamps. Writes are group-committed; a candidate's result is durable before the search
// counts it, so `--resume` after kill -9 loses and repeats no completed evaluation.
#ifndef FECSEARCH_SEARCH_EXPERIMENT_DB_H_
#define FECSEARCH_SEARCH_EXPERIMENT_DB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hashing/batch_writer.h"
#include "hashing/sqlite_db.h"
#include "protos/evaluation.pb.h"
#include "protos/candidate.pb.h"
#include "protos/pipeline_graph.pb.h"

namespace fecsearch {

// What happened to a candidate.
enum class Outcome {
  kPending,     // proposed, not finished (in flight at a kill: dispatched again on resume)
  kHit,         // answered by the cache
  kPartialHit,  // found in the cache but evaluated again (aggregating FEC)
  kMiss,        // evaluated
  kMerged,      // waited for an identical candidate's running evaluation
  kInvalid,     // did not compile (bad genes)
  kFailed,      // evaluation failed after every retry
  kScreened,    // skipped by the probe screen (search.screen): predicted dominated, not evaluated
};
const char* OutcomeName(Outcome o);
Outcome OutcomeFromName(const std::string& name);

// The operation of the rows search.screen.initial_pool passed over (SCREENED, never proposed):
// predicted only, not candidates of the search.
inline constexpr char kInitialPoolOperation[] = "initial pool";

struct CandidateRecord {
  int64_t id = -1;
  int64_t experiment_id = -1;
  std::vector<int64_t> parents;
  std::string operation;
  Candidate candidate;
  std::string functional_hash, structural_hash, exact_hash, cache_key;
  Outcome outcome = Outcome::kPending;
  bool has_objectives = false;
  Objectives objectives;
  double violation = 0;
  std::string worker;
  int attempts = 0;
  int64_t created_micros = 0, finished_micros = 0;
  int64_t completion_seq = -1;  // order in which results reached the search
  double eval_seconds = 0;
  std::string error;
  std::string domain;       // the domain that owns the candidate ("kv-genome", "user:NAME"; "" in older databases)
  EvaluationResult result;  // full result (misses only); empty otherwise
  // Multi-fidelity searches (search.fidelity): the highest fidelity the candidate reached
  // (Domain::Fidelities() index; the last is the full evaluation), its objectives and result
  // being that fidelity's. -1: no fidelities (every result is a full evaluation; NULL in the
  // database, as in databases written before fidelities).
  int rung = -1;
};

struct ExperimentRecord {
  int64_t id = -1;
  std::string name, spec_text, context, dedup, status;
  std::string domain;  // "" in older databases
  uint64_t seed = 0;
  int64_t started_micros = 0, finished_micros = 0;
};

// A cache hit evaluated again to check it (search --verify_hits; search/hit_audit.h).
struct HitCheckRecord {
  int64_t candidate_id = -1;
  int64_t experiment_id = -1;
  bool exact_copy = false;  // an earlier candidate had the same exact form
  bool matched = false;     // every objective agreed within the tolerance
  double max_relative_difference = 0;
  Objectives evaluated;     // what the new evaluation measured
  std::string error;        // the evaluation failed ("" otherwise; matched is then false)
  int64_t checked_micros = 0;
};

// Thread-safe.
class ExperimentDb {
 public:
  static absl::StatusOr<std::unique_ptr<ExperimentDb>> Open(const std::string& path, bool read_only);

  absl::StatusOr<int64_t> StartExperiment(const ExperimentRecord& e);
  absl::Status SetExperimentStatus(int64_t id, const std::string& status);
  // The latest experiment, or NOT_FOUND.
  absl::StatusOr<ExperimentRecord> LatestExperiment();
  absl::StatusOr<ExperimentRecord> GetExperiment(int64_t id);
  absl::StatusOr<std::vector<ExperimentRecord>> Experiments();

  // The next free candidate id (ids are global across experiments).
  absl::StatusOr<int64_t> NextCandidateId();
  // Queues the insert (or replacement) of a candidate row; `on_durable` runs once committed.
  void Put(const CandidateRecord& record, std::function<void(absl::Status)> on_durable = nullptr);
  absl::Status Flush();

  absl::StatusOr<std::vector<CandidateRecord>> Candidates(int64_t experiment_id, bool with_results = false);
  // Every candidate (any experiment) whose functional hash or cache key is `hash_hex`.
  absl::StatusOr<std::vector<CandidateRecord>> CandidatesWithHash(const std::string& hash_hex);
  const std::string& path() const { return path_; }

  // Records a hit check (replacing an earlier one of the candidate); durable on return.
  absl::Status PutHitCheck(const HitCheckRecord& check);
  // The experiment's hit checks by candidate id (none in databases older than them).
  absl::StatusOr<std::vector<HitCheckRecord>> HitChecks(int64_t experiment_id);

 private:
  ExperimentDb() = default;
  absl::StatusOr<std::vector<CandidateRecord>> Query(const std::string& where, const std::string& bind,
                                                     int64_t bind_int, bool with_results);
  std::string path_;
  bool read_only_ = false;
  std::unique_ptr<BatchWriter> writer_;
  std::mutex read_mu_;
  std::unique_ptr<SqliteDb> read_db_;
  // What reads select: the current columns, NULL for those a read-only older database lacks.
  std::string candidate_columns_, experiment_domain_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_EXPERIMENT_DB_H_
