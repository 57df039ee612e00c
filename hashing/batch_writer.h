// Group commit for SQLite: writes queued from any thread run on one writer thread, many per
// transaction, and each caller learns when its write is durable (committed).
#ifndef FECSEARCH_HASHING_BATCH_WRITER_H_
#define FECSEARCH_HASHING_BATCH_WRITER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "hashing/sqlite_db.h"

namespace fecsearch {

// Thread-safe. Owns the connection it writes through.
class BatchWriter {
 public:
  // A write: runs inside the batch's transaction on the writer thread; returns a value
  // (e.g. a row id) handed to its callback after COMMIT.
  using Write = std::function<absl::StatusOr<int64_t>(SqliteDb&)>;
  using Durable = std::function<void(absl::StatusOr<int64_t>)>;

  explicit BatchWriter(std::unique_ptr<SqliteDb> db);
  ~BatchWriter();  // commits everything queued

  void Submit(Write write, Durable on_durable);
  // Submits and waits for the commit.
  absl::StatusOr<int64_t> SubmitAndWait(Write write);
  // Waits until everything submitted so far is committed; the first error since the last
  // Flush, if any.
  absl::Status Flush();
  // Runs `fn` on the connection with no batch open (e.g. maintenance), after a Flush.
  absl::Status RunExclusive(const std::function<absl::Status(SqliteDb&)>& fn);

 private:
  void Loop();

  std::unique_ptr<SqliteDb> db_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  struct Pending {
    Write write;
    Durable on_durable;
  };
  std::vector<Pending> queue_;
  uint64_t submitted_ = 0, committed_ = 0;
  bool stop_ = false, paused_ = false, busy_ = false;
  absl::Status error_;
  std::thread thread_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_BATCH_WRITER_H_
