// Durable storage of the functional equivalence cache in SQLite (WAL), in the same file as
// the experiment database by default. Rows are appended in rowid order (a new version per
// change; the latest wins) and indexed in memory, because inserting rows keyed by random
// 128-bit hashes into a B-tree is several times slower (docs/DOMAIN.md section 7). A background
// writer commits queued rows in batched transactions (group commit).
#ifndef FECSEARCH_HASHING_CACHE_STORE_H_
#define FECSEARCH_HASHING_CACHE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "hashing/batch_writer.h"
#include "hashing/hash128.h"
#include "hashing/metrics.h"
#include "hashing/sqlite_db.h"
#include "protos/evaluation.pb.h"

namespace fecsearch {

// One version of a cache entry.
struct StoredEntry {
  Hash128 hash;
  MetricValues objectives;  // running mean over num_evals
  int num_evals = 0;  // 0 marks a forgotten entry (tombstone)
  int64_t hits = 0, partial_hits = 0;
  int64_t first_candidate_id = -1;
  int64_t created_micros = 0, last_used_micros = 0;
  double eval_seconds = 0;
  // The full EvaluationResult lives in a side table written once per evaluation; versions
  // that only update counters point at it through result_row.
  std::string result;        // serialised EvaluationResult: set to write a new one; filled by ReadRow
  int64_t result_row = -1;   // row in fec_results (-1: none)
  std::string context;  // evaluation-context fingerprint
};

// Where a version was written: its row and the row of its result (-1 if none).
struct WrittenRow {
  int64_t row = -1;
  int64_t result_row = -1;
};

// Thread-safe. Writes go through a BatchWriter (group commit); reads use their own connection.
class CacheStore {
 public:
  // Opens or creates the table in `path`. read_only: for inspection of a live database.
  static absl::StatusOr<std::unique_ptr<CacheStore>> Open(const std::string& path, bool read_only);
  ~CacheStore();  // flushes

  // Queues a version; `on_durable(rowid or error)` runs on the writer thread once committed.
  // When `entry.result` is set it is stored first and the version points at it.
  void Write(StoredEntry entry, std::function<void(absl::StatusOr<WrittenRow>)> on_durable);
  // Writes and waits until committed.
  absl::StatusOr<WrittenRow> WriteSync(StoredEntry entry);
  // Waits until everything queued so far is committed.
  absl::Status Flush();

  // Calls `fn(entry, rowid)` for every row in rowid order (result column omitted): the
  // caller keeps the latest version per hash.
  absl::Status Scan(const std::function<void(const StoredEntry&, int64_t)>& fn) const;
  // One row, with its result.
  absl::StatusOr<StoredEntry> ReadRow(int64_t rowid) const;
  // Rewrites the table keeping only the latest version of each live entry.
  absl::Status Compact();
  absl::StatusOr<int64_t> RowCount() const;
  const std::string& path() const { return path_; }

 private:
  CacheStore() = default;

  std::string path_;
  bool read_only_ = false;
  std::unique_ptr<BatchWriter> writer_;
  mutable std::mutex read_mu_;
  std::unique_ptr<SqliteDb> read_db_;  // guarded by read_mu_
  std::string read_columns_;  // what a row read selects (depends on the schema's version)
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_CACHE_STORE_H_
