// Group-commit writer thread.
#include "hashing/batch_writer.h"

namespace fecsearch {

BatchWriter::BatchWriter(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {
  thread_ = std::thread([this] { Loop(); });
}

BatchWriter::~BatchWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BatchWriter::Loop() {
  while (true) {
    std::vector<Pending> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return (stop_ || !queue_.empty()) && !paused_; });
      if (queue_.empty() && stop_) return;
      batch.swap(queue_);
      busy_ = true;
    }
    absl::Status status = db_->Exec("BEGIN IMMEDIATE");
    std::vector<absl::StatusOr<int64_t>> values;
    values.reserve(batch.size());
    for (Pending& p : batch) {
      if (!status.ok()) {
        values.push_back(status);
        continue;
      }
      absl::StatusOr<int64_t> v = p.write(*db_);
      if (!v.ok()) status = v.status();
      values.push_back(std::move(v));
    }
    if (status.ok()) status = db_->Exec("COMMIT");
    if (!status.ok()) (void)db_->Exec("ROLLBACK");
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i].on_durable) continue;
      if (status.ok()) {
        batch[i].on_durable(std::move(values[i]));
      } else {
        batch[i].on_durable(status);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      committed_ += batch.size();
      busy_ = false;
      if (!status.ok() && error_.ok()) error_ = status;
    }
    done_cv_.notify_all();
  }
}

void BatchWriter::Submit(Write write, Durable on_durable) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(write), std::move(on_durable)});
    ++submitted_;
  }
  cv_.notify_one();
}

absl::StatusOr<int64_t> BatchWriter::SubmitAndWait(Write write) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  absl::StatusOr<int64_t> result = absl::UnknownError("not written");
  Submit(std::move(write), [&](absl::StatusOr<int64_t> r) {
    std::lock_guard<std::mutex> lock(m);
    result = std::move(r);
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(m);
  cv.wait(lock, [&] { return done; });
  return result;
}

absl::Status BatchWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = submitted_;
  done_cv_.wait(lock, [&] { return committed_ >= target; });
  absl::Status e = error_;
  error_ = absl::OkStatus();
  return e;
}

absl::Status BatchWriter::RunExclusive(const std::function<absl::Status(SqliteDb&)>& fn) {
  absl::Status flushed = Flush();
  if (!flushed.ok()) return flushed;
  {
    std::unique_lock<std::mutex> lock(mu_);
    paused_ = true;
    done_cv_.wait(lock, [&] { return !busy_; });
  }
  absl::Status s = fn(*db_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
  }
  cv_.notify_all();
  return s;
}

}  // namespace fecsearch
