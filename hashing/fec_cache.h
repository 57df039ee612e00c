// The functional equivalence cache: hash -> fitness, shared by every evaluation in flight.
//
// Sharded flat_hash_maps, each under its own absl::Mutex, with LRU eviction: every access
// stamps the entry with a per-shard tick (no list to relink, so a hit touches no other
// entry's memory); a shard over capacity evicts its least recently used 1/16 at once, found
// by a selection over the ticks.
// Evicted entries stay on disk and come back on a lookup. The paper's noise policy:
// max_num_evals (aggregating: below it a hit still evaluates and averages) and
// remove_probability (forgetful: a hit forgets the entry with this probability), plus
// AutoML-Zero's forget_every. A hash that is being evaluated is not dispatched again: later
// lookups wait for that evaluation (in-flight merge). An entry is visible to lookups only
// once it is durable in the store.
#ifndef FECSEARCH_HASHING_FEC_CACHE_H_
#define FECSEARCH_HASHING_FEC_CACHE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "hashing/cache_store.h"
#include "hashing/hash128.h"
#include "hashing/metrics.h"
#include "protos/evaluation.pb.h"

namespace fecsearch {

struct FecCacheOptions {
  int64_t capacity = 100000;     // entries in memory
  int max_num_evals = 1;         // M
  double remove_probability = 0; // F
  int64_t forget_every = 0;      // 0 = never
  uint64_t seed = 1;             // for remove_probability
  int shards = 16;
};

// A hit copies the objectives as plain numbers (a proto copy would cost more than the lookup
// itself): MetricValues (hashing/metrics.h), an interned name list and inline values.
using FecObjectives = MetricValues;

// What the cache knows about one hash.
struct FecEntry {
  FecObjectives objectives;  // running mean over num_evals
  int num_evals = 0;
  int64_t hits = 0, partial_hits = 0;
  int64_t first_candidate_id = -1;
  int64_t created_micros = 0, last_used_micros = 0;
  double eval_seconds = 0;  // mean cost of one evaluation
};

struct FecStats {
  int64_t hits = 0, partial_hits = 0, inflight_merges = 0, misses = 0;
  int64_t entries = 0, in_memory = 0, evictions = 0, disk_reads = 0, forgotten = 0;
  double seconds_saved = 0;  // sum of eval_seconds over hits and merges
};

// Thread-safe. Does not own the store.
class FecCache {
 public:
  enum class Kind {
    kHit,         // `entry` answers; nothing to evaluate
    kPartialHit,  // `entry` exists but needs more evaluations: evaluate, then Complete
    kInFlight,    // another evaluation of this hash is running; `waiter` will be called
    kMiss,        // evaluate, then Complete (or Abandon)
  };
  struct LookupResult {
    Kind kind;
    FecEntry entry;  // kHit, kPartialHit
  };
  using Waiter = std::function<void(absl::StatusOr<FecEntry>)>;

  // Warm-starts from `store` when given (latest version of every entry; the most recently
  // used ones up to capacity stay in memory).
  static absl::StatusOr<std::unique_ptr<FecCache>> Create(const FecCacheOptions& options,
                                                          CacheStore* store);
  ~FecCache();

  // `waiter` is kept only for kInFlight and called once the running evaluation completes
  // (from the completing thread).
  LookupResult Lookup(const Hash128& hash, Waiter waiter);
  // Records the evaluation of a kMiss / kPartialHit: makes it durable, then visible, then
  // wakes the waiters and calls `done` (from the store's writer thread). A failed write
  // reaches the waiters through Abandon and `done` with the error.
  void CompleteAsync(const Hash128& hash, int64_t candidate_id, const EvaluationResult& result,
                     const std::string& context, Waiter done);
  // The same, waiting; returns the updated entry.
  absl::StatusOr<FecEntry> Complete(const Hash128& hash, int64_t candidate_id,
                                    const EvaluationResult& result, const std::string& context);
  // The evaluation of a kMiss / kPartialHit failed: waiters receive `why`.
  void Abandon(const Hash128& hash, const absl::Status& why);
  // Reads without counting (tests, inspection).
  std::optional<FecEntry> Peek(const Hash128& hash);
  // The full EvaluationResult stored with the entry (per-layer metrics included); NOT_FOUND
  // without a store or when the entry has none.
  absl::StatusOr<EvaluationResult> StoredResult(const Hash128& hash);

  FecStats stats() const;
  // Writes hit counters of entries read since the last call (not waited for durability).
  absl::Status PersistStats();

 private:
  struct Slot {
    FecEntry entry;
    uint64_t tick = 0;             // last access, for LRU
    int64_t hits_since_eval = 0;   // forget_every
    bool dirty = false;            // hit counters not yet persisted
    int64_t result_row = -1;       // the stored EvaluationResult
    const std::string* context = nullptr;  // interned evaluation-context fingerprint
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<Hash128, Slot, Hash128Hasher> map ABSL_GUARDED_BY(mu);
    uint64_t tick ABSL_GUARDED_BY(mu) = 0;
    absl::flat_hash_map<Hash128, std::vector<Waiter>, Hash128Hasher> inflight ABSL_GUARDED_BY(mu);
    // Every durable entry's latest row (also those evicted from memory).
    absl::flat_hash_map<Hash128, int64_t, Hash128Hasher> on_disk ABSL_GUARDED_BY(mu);
    std::mt19937_64 rng ABSL_GUARDED_BY(mu);
    // Counted under the shard's lock: an atomic per lookup would be one more full barrier.
    int64_t hits ABSL_GUARDED_BY(mu) = 0;
    int64_t saved_micros ABSL_GUARDED_BY(mu) = 0;
  };

  explicit FecCache(const FecCacheOptions& options);
  Shard& ShardOf(const Hash128& h) { return *shards_[(h.hi >> 32) % shards_.size()]; }
  void Touch(Shard& s, Slot& slot, const Hash128& h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void InsertSlot(Shard& s, const Hash128& h, Slot slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void EvictIfNeeded(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Keeps the shard's `per_shard_capacity_` most recently used entries (warm start).
  void TrimToCapacity(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Keeps the `keep` most recently used entries (saving their unsaved hit counters);
  // returns how many it evicted.
  int64_t EvictLeastRecent(Shard& s, int64_t keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Warm start: fills the shard up to capacity with the latest-written entries on disk that
  // are not in memory.
  void RefillFromDisk(Shard& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Loads an entry evicted from memory; false if absent or unreadable.
  bool LoadFromDisk(Shard& s, const Hash128& h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void Forget(Shard& s, const Hash128& h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  // Writes a durable entry's unsaved hit counters (a counters-only row).
  void PersistSlot(Shard& s, const Hash128& h, Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  StoredEntry ToStored(const Hash128& h, const FecEntry& e) const;
  const std::string* Intern(const std::string& context);

  FecCacheOptions options_;
  int64_t per_shard_capacity_;
  CacheStore* store_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<int64_t> partial_hits_{0}, inflight_merges_{0}, misses_{0};
  std::atomic<int64_t> evictions_{0}, disk_reads_{0}, forgotten_{0};
  std::atomic<int64_t> merged_saved_micros_{0};
  absl::Mutex contexts_mu_;
  std::set<std::string> contexts_ ABSL_GUARDED_BY(contexts_mu_);
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_FEC_CACHE_H_
