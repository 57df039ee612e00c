// SQLite persistence of cache entries with group commit.
#include "hashing/cache_store.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace fecsearch {
namespace {

// The objectives are stored by name (metric_names: comma-separated, sorted; metric_values:
// that many little-endian doubles). Rows written before named metrics have NULL there and the
// four KV-cache quantities in the columns of their names.
constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS fec_cache ("
    " id INTEGER PRIMARY KEY,"
    " hash BLOB NOT NULL,"
    " context TEXT,"
    " mean_nll REAL, effective_bits REAL, perplexity REAL, perplexity_increase_percent REAL,"
    " num_evals INTEGER, hits INTEGER, partial_hits INTEGER, first_candidate_id INTEGER,"
    " created_micros INTEGER, last_used_micros INTEGER, eval_seconds REAL,"
    " result_row INTEGER, metric_names TEXT, metric_values BLOB);"
    "CREATE TABLE IF NOT EXISTS fec_results (id INTEGER PRIMARY KEY, result BLOB NOT NULL)";

constexpr char kWriteColumns[] =
    "hash, context, num_evals, hits, partial_hits, first_candidate_id, created_micros, last_used_micros,"
    " eval_seconds, result_row, metric_names, metric_values";

// What is read, in this order (metric_names/values may be NULL placeholders for a read-only
// database written before they existed).
std::string ReadColumns(bool has_metrics) {
  return absl::StrCat(
      "hash, context, num_evals, hits, partial_hits, first_candidate_id, created_micros, last_used_micros,"
      " eval_seconds, result_row, mean_nll, effective_bits, perplexity, perplexity_increase_percent, ",
      has_metrics ? "metric_names, metric_values" : "NULL, NULL");
}
constexpr int kReadColumnCount = 16;

std::string HashBytes16(const Hash128& h) {
  std::string b(16, '\0');
  std::memcpy(&b[0], &h.hi, 8);
  std::memcpy(&b[8], &h.lo, 8);
  return b;
}

absl::Status ReadEntry(const SqliteStatement& s, StoredEntry* e, const std::string& path) {
  const absl::string_view h = s.BlobView(0);
  if (h.size() != 16) return absl::DataLossError(absl::StrCat(path, ": fec_cache row with a ", h.size(), "-byte hash"));
  std::memcpy(&e->hash.hi, h.data(), 8);
  std::memcpy(&e->hash.lo, h.data() + 8, 8);
  const absl::string_view context = s.TextView(1);
  e->context.assign(context.data(), context.size());  // reuses the string's capacity
  e->num_evals = static_cast<int>(s.Int(2));
  e->hits = s.Int(3);
  e->partial_hits = s.Int(4);
  e->first_candidate_id = s.Int(5);
  e->created_micros = s.Int(6);
  e->last_used_micros = s.Int(7);
  e->eval_seconds = s.Double(8);
  e->result_row = s.IsNull(9) ? -1 : s.Int(9);
  MetricValues& m = e->objectives;
  m.values.clear();
  if (s.IsNull(14)) {
    // Before named metrics: the four KV-cache quantities, in sorted name order.
    static const MetricNames* legacy =
        InternMetricNames(MetricNames{"effective_bits", "mean_nll", "perplexity", "perplexity_increase_percent"});
    m.names = legacy;
    for (int c : {11, 10, 12, 13}) m.values.push_back(s.Double(c));
    return absl::OkStatus();
  }
  // Consecutive rows almost always carry the same list: compare before interning again.
  const absl::string_view names = s.TextView(14);
  if (m.names == nullptr || JoinMetricNames(*m.names) != names) m.names = InternMetricNames(names);
  const absl::string_view values = s.BlobView(15);
  if (values.size() != 8 * m.names->size()) {
    return absl::DataLossError(absl::StrCat(path, ": fec_cache row with ", values.size(), " bytes of values for ",
                                            m.names->size(), " metrics"));
  }
  for (size_t i = 0; i < m.names->size(); ++i) {
    double v;
    std::memcpy(&v, values.data() + 8 * i, 8);
    m.values.push_back(v);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CacheStore>> CacheStore::Open(const std::string& path, bool read_only) {
  std::unique_ptr<CacheStore> store(new CacheStore());
  store->path_ = path;
  store->read_only_ = read_only;
  if (!read_only) {
    auto db = SqliteDb::Open(path, false);
    if (!db.ok()) return db.status();
    absl::Status s = (*db)->Exec(kSchema);
    for (const char* column : {"metric_names TEXT", "metric_values BLOB"}) {
      if (!s.ok()) break;
      const std::string c(column);
      s = (*db)->AddColumnIfMissing("fec_cache", c.substr(0, c.find(' ')), c.substr(c.find(' ') + 1));
    }
    if (!s.ok()) return s;
    store->writer_ = std::make_unique<BatchWriter>(std::move(*db));
  }
  auto rdb = SqliteDb::Open(path, true);
  if (!rdb.ok()) return rdb.status();
  store->read_db_ = std::move(*rdb);
  if (read_only) {
    auto has = store->read_db_->HasTable("fec_cache");
    if (!has.ok()) return has.status();
    if (!*has) return absl::NotFoundError(absl::StrCat(path, ": has no fec_cache table (no search wrote a cache here)"));
  }
  auto metrics = store->read_db_->HasColumn("fec_cache", "metric_names");
  if (!metrics.ok()) return metrics.status();
  store->read_columns_ = ReadColumns(*metrics);
  return store;
}

CacheStore::~CacheStore() = default;

namespace {

absl::StatusOr<int64_t> InsertVersion(SqliteDb& db, StoredEntry& e) {
  if (!e.result.empty()) {
    auto r = db.Cached("INSERT INTO fec_results (result) VALUES (?)");
    if (!r.ok()) return r.status();
    (*r)->BindBlob(1, e.result);
    absl::Status st = (*r)->Run();
    if (!st.ok()) return st;
    e.result_row = db.LastInsertId();
  }
  auto cached = db.Cached(absl::StrCat("INSERT INTO fec_cache (", kWriteColumns, ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"));
  if (!cached.ok()) return cached.status();
  SqliteStatement* s = *cached;
  s->BindBlob(1, HashBytes16(e.hash)).Bind(2, e.context).Bind(3, int64_t{e.num_evals});
  s->Bind(4, e.hits).Bind(5, e.partial_hits).Bind(6, e.first_candidate_id).Bind(7, e.created_micros);
  s->Bind(8, e.last_used_micros).Bind(9, e.eval_seconds);
  if (e.result_row < 0) {
    s->BindNull(10);
  } else {
    s->Bind(10, e.result_row);
  }
  const MetricValues& m = e.objectives;
  std::string values(8 * m.values.size(), '\0');
  for (size_t i = 0; i < m.values.size(); ++i) std::memcpy(&values[8 * i], &m.values[i], 8);
  s->Bind(11, m.names ? JoinMetricNames(*m.names) : std::string()).BindBlob(12, values);
  absl::Status st = s->Run();
  if (!st.ok()) return st;
  return db.LastInsertId();
}

}  // namespace

void CacheStore::Write(StoredEntry entry, std::function<void(absl::StatusOr<WrittenRow>)> on_durable) {
  if (read_only_) {
    if (on_durable) on_durable(absl::FailedPreconditionError(absl::StrCat(path_, ": opened read-only")));
    return;
  }
  auto shared = std::make_shared<StoredEntry>(std::move(entry));
  writer_->Submit([shared](SqliteDb& db) { return InsertVersion(db, *shared); },
                  [shared, on_durable](absl::StatusOr<int64_t> row) {
                    if (!on_durable) return;
                    if (!row.ok()) {
                      on_durable(row.status());
                    } else {
                      on_durable(WrittenRow{*row, shared->result_row});
                    }
                  });
}

absl::StatusOr<WrittenRow> CacheStore::WriteSync(StoredEntry entry) {
  if (read_only_) return absl::FailedPreconditionError(absl::StrCat(path_, ": opened read-only"));
  StoredEntry e = std::move(entry);
  auto row = writer_->SubmitAndWait([&e](SqliteDb& db) { return InsertVersion(db, e); });
  if (!row.ok()) return row.status();
  return WrittenRow{*row, e.result_row};
}

absl::Status CacheStore::Flush() {
  if (read_only_) return absl::OkStatus();
  return writer_->Flush();
}

absl::Status CacheStore::Scan(const std::function<void(const StoredEntry&, int64_t)>& fn) const {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto s = read_db_->Prepare(absl::StrCat("SELECT ", read_columns_, ", id FROM fec_cache ORDER BY id"));
  if (!s.ok()) return s.status();
  StoredEntry e;  // reused: no allocation per row
  while (true) {
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    absl::Status st = ReadEntry(*s, &e, path_);
    if (!st.ok()) return st;
    fn(e, s->Int(kReadColumnCount));
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredEntry> CacheStore::ReadRow(int64_t rowid) const {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto s = read_db_->Prepare(absl::StrCat(
      "SELECT ", read_columns_, ", (SELECT result FROM fec_results r WHERE r.id = c.result_row)"
      " FROM fec_cache c WHERE c.id = ?"));
  if (!s.ok()) return s.status();
  s->Bind(1, rowid);
  auto row = s->Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat(path_, ": no cache row ", rowid));
  StoredEntry e;
  absl::Status st = ReadEntry(*s, &e, path_);
  if (!st.ok()) return st;
  e.result = s->Blob(kReadColumnCount);
  return e;
}

absl::StatusOr<int64_t> CacheStore::RowCount() const {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto s = read_db_->Prepare("SELECT count(*) FROM fec_cache");
  if (!s.ok()) return s.status();
  auto row = s->Step();
  if (!row.ok()) return row.status();
  return s->Int(0);
}

absl::Status CacheStore::Compact() {
  if (read_only_) return absl::FailedPreconditionError(absl::StrCat(path_, ": opened read-only"));
  return writer_->RunExclusive([](SqliteDb& db) {
    absl::Status s = db.Exec("BEGIN IMMEDIATE");
    if (!s.ok()) return s;
    s = db.Exec(
        "DELETE FROM fec_cache WHERE id NOT IN (SELECT max(id) FROM fec_cache GROUP BY hash)"
        " OR num_evals = 0");
    if (s.ok()) {
      s = db.Exec(
          "DELETE FROM fec_results WHERE id NOT IN (SELECT result_row FROM fec_cache"
          " WHERE result_row IS NOT NULL)");
    }
    if (!s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s;
    }
    return db.Exec("COMMIT");
  });
}

}  // namespace fecsearch
