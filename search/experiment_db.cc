// Experiment database in SQLite.
#include "search/experiment_db.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "hashing/metrics.h"
#include "nlohmann/json.hpp"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/text_proto.h"
#include "google/protobuf/text_format.h"

namespace fecsearch {
namespace {

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS experiments ("
    " id INTEGER PRIMARY KEY, name TEXT, spec TEXT, context TEXT, dedup TEXT, seed INTEGER,"
    " status TEXT, started_micros INTEGER, finished_micros INTEGER);"
    "CREATE TABLE IF NOT EXISTS candidates ("
    " id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL, parents TEXT, operation TEXT,"
    " candidate BLOB, functional_hash TEXT, structural_hash TEXT, exact_hash TEXT, cache_key TEXT,"
    " outcome TEXT, mean_nll REAL, effective_bits REAL, perplexity REAL,"
    " perplexity_increase_percent REAL, violation REAL, worker TEXT, attempts INTEGER,"
    " created_micros INTEGER, finished_micros INTEGER, completion_seq INTEGER, eval_seconds REAL,"
    " error TEXT, result BLOB);"
    "CREATE INDEX IF NOT EXISTS candidates_by_experiment ON candidates (experiment_id);"
    "CREATE INDEX IF NOT EXISTS candidates_by_hash ON candidates (functional_hash);"
    "CREATE TABLE IF NOT EXISTS hit_checks ("
    " candidate_id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL, exact_copy INTEGER, matched INTEGER,"
    " max_relative_difference REAL, objectives TEXT, error TEXT, checked_micros INTEGER);";

// Columns added since the first version (a database written before them gets them on open;
// a read-only one reads NULL in their place).
struct AddedColumn {
  const char* table;
  const char* name;
  const char* type;
};
constexpr AddedColumn kAddedColumns[] = {
    {"candidates", "domain", "TEXT"},
    {"candidates", "objectives", "TEXT"},
    {"experiments", "domain", "TEXT"},
    {"candidates", "rung", "INTEGER"},
};

// The objectives are stored by name in `objectives` (JSON: {"name": value}); the four columns
// named after the KV-cache quantities hold those metrics too when a result has them (for
// queries written against earlier databases) and are all a row written before `objectives`
// has.
constexpr const char* kLegacyMetricColumns[] = {"mean_nll", "effective_bits", "perplexity",
                                                "perplexity_increase_percent"};

constexpr char kCandidateColumns[] =
    "id, experiment_id, parents, operation, candidate, functional_hash, structural_hash, exact_hash,"
    " cache_key, outcome, mean_nll, effective_bits, perplexity, perplexity_increase_percent, violation,"
    " worker, attempts, created_micros, finished_micros, completion_seq, eval_seconds, error, domain, objectives, rung";

const char* kOutcomeNames[] = {"PENDING", "HIT", "PARTIAL_HIT", "MISS", "MERGED", "INVALID", "FAILED", "SCREENED"};

}  // namespace

const char* OutcomeName(Outcome o) { return kOutcomeNames[static_cast<int>(o)]; }

Outcome OutcomeFromName(const std::string& name) {
  for (int i = 0; i < static_cast<int>(sizeof(kOutcomeNames) / sizeof(kOutcomeNames[0])); ++i)
    if (name == kOutcomeNames[i]) return static_cast<Outcome>(i);
  return Outcome::kPending;
}

absl::StatusOr<std::unique_ptr<ExperimentDb>> ExperimentDb::Open(const std::string& path, bool read_only) {
  std::unique_ptr<ExperimentDb> db(new ExperimentDb());
  db->path_ = path;
  db->read_only_ = read_only;
  if (!read_only) {
    auto w = SqliteDb::Open(path, false);
    if (!w.ok()) return w.status();
    absl::Status s = (*w)->Exec(kSchema);
    for (const AddedColumn& c : kAddedColumns) {
      if (s.ok()) s = (*w)->AddColumnIfMissing(c.table, c.name, c.type);
    }
    if (!s.ok()) return s;
    db->writer_ = std::make_unique<BatchWriter>(std::move(*w));
  }
  auto r = SqliteDb::Open(path, true);
  if (!r.ok()) return r.status();
  db->read_db_ = std::move(*r);
  if (read_only) {
    auto has = db->read_db_->HasTable("candidates");
    if (!has.ok()) return has.status();
    if (!*has) return absl::NotFoundError(absl::StrCat(path, ": has no candidates table (no search recorded here)"));
  }
  db->candidate_columns_ = kCandidateColumns;
  db->experiment_domain_ = "domain";
  for (const AddedColumn& c : kAddedColumns) {
    auto has = db->read_db_->HasColumn(c.table, c.name);
    if (!has.ok()) return has.status();
    if (*has) continue;
    if (std::string(c.table) == "candidates") {
      db->candidate_columns_ = absl::StrReplaceAll(db->candidate_columns_, {{absl::StrCat(", ", c.name), ", NULL"}});
    } else {
      db->experiment_domain_ = "NULL";
    }
  }
  return db;
}

absl::StatusOr<int64_t> ExperimentDb::StartExperiment(const ExperimentRecord& e) {
  if (read_only_) return absl::FailedPreconditionError("read-only");
  return writer_->SubmitAndWait([e](SqliteDb& db) -> absl::StatusOr<int64_t> {
    auto s = db.Prepare(
        "INSERT INTO experiments (name, spec, context, dedup, seed, status, started_micros, finished_micros, domain)"
        " VALUES (?,?,?,?,?,?,?,0,?)");
    if (!s.ok()) return s.status();
    s->Bind(1, e.name).Bind(2, e.spec_text).Bind(3, e.context).Bind(4, e.dedup);
    s->Bind(5, static_cast<int64_t>(e.seed)).Bind(6, std::string("running")).Bind(7, e.started_micros);
    s->Bind(8, e.domain);
    absl::Status st = s->Run();
    if (!st.ok()) return st;
    return db.LastInsertId();
  });
}

absl::Status ExperimentDb::SetExperimentStatus(int64_t id, const std::string& status) {
  if (read_only_) return absl::FailedPreconditionError("read-only");
  const int64_t now = absl::ToUnixMicros(absl::Now());
  return writer_
      ->SubmitAndWait([=](SqliteDb& db) -> absl::StatusOr<int64_t> {
        auto s = db.Prepare("UPDATE experiments SET status = ?, finished_micros = ? WHERE id = ?");
        if (!s.ok()) return s.status();
        s->Bind(1, status).Bind(2, now).Bind(3, id);
        absl::Status st = s->Run();
        if (!st.ok()) return st;
        return id;
      })
      .status();
}

namespace {

absl::StatusOr<std::vector<ExperimentRecord>> ReadExperiments(SqliteDb& db, const std::string& domain_column,
                                                              const std::string& where, int64_t bind) {
  auto s = db.Prepare(absl::StrCat(
      "SELECT id, name, spec, context, dedup, seed, status, started_micros, finished_micros, ", domain_column,
      " FROM experiments ", where));
  if (!s.ok()) return s.status();
  if (where.find('?') != std::string::npos) s->Bind(1, bind);
  std::vector<ExperimentRecord> out;
  while (true) {
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ExperimentRecord e;
    e.id = s->Int(0);
    e.name = s->Text(1);
    e.spec_text = s->Text(2);
    e.context = s->Text(3);
    e.dedup = s->Text(4);
    e.seed = static_cast<uint64_t>(s->Int(5));
    e.status = s->Text(6);
    e.started_micros = s->Int(7);
    e.finished_micros = s->Int(8);
    e.domain = s->Text(9);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

absl::StatusOr<ExperimentRecord> ExperimentDb::LatestExperiment() {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto all = ReadExperiments(*read_db_, experiment_domain_, "ORDER BY id DESC LIMIT 1", 0);
  if (!all.ok()) return all.status();
  if (all->empty()) return absl::NotFoundError(absl::StrCat(path_, ": holds no experiment to resume"));
  return all->front();
}

absl::StatusOr<ExperimentRecord> ExperimentDb::GetExperiment(int64_t id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto all = ReadExperiments(*read_db_, experiment_domain_, "WHERE id = ?", id);
  if (!all.ok()) return all.status();
  if (all->empty()) return absl::NotFoundError(absl::StrCat(path_, ": no experiment ", id));
  return all->front();
}

absl::StatusOr<std::vector<ExperimentRecord>> ExperimentDb::Experiments() {
  std::lock_guard<std::mutex> lock(read_mu_);
  return ReadExperiments(*read_db_, experiment_domain_, "ORDER BY id", 0);
}

absl::StatusOr<int64_t> ExperimentDb::NextCandidateId() {
  if (writer_) {
    absl::Status s = writer_->Flush();
    if (!s.ok()) return s;
  }
  std::lock_guard<std::mutex> lock(read_mu_);
  auto s = read_db_->Prepare("SELECT coalesce(max(id), 0) + 1 FROM candidates");
  if (!s.ok()) return s.status();
  auto row = s->Step();
  if (!row.ok()) return row.status();
  return s->Int(0);
}

void ExperimentDb::Put(const CandidateRecord& r, std::function<void(absl::Status)> on_durable) {
  if (read_only_) {
    if (on_durable) on_durable(absl::FailedPreconditionError("read-only"));
    return;
  }
  auto rec = std::make_shared<CandidateRecord>(r);
  // Binary protobuf: a text form per candidate costs more than the rest of the controller.
  auto text = std::make_shared<std::string>(r.candidate.SerializeAsString());
  auto result = std::make_shared<std::string>(r.result.ByteSizeLong() > 0 ? r.result.SerializeAsString() : "");
  writer_->Submit(
      [rec, text, result](SqliteDb& db) -> absl::StatusOr<int64_t> {
        auto cached = db.Cached(absl::StrCat("INSERT OR REPLACE INTO candidates (", kCandidateColumns,
                                             ", result) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
        if (!cached.ok()) return cached.status();
        SqliteStatement* s = *cached;
        const CandidateRecord& c = *rec;
        s->Bind(1, c.id).Bind(2, c.experiment_id).Bind(3, absl::StrJoin(c.parents, ","));
        s->Bind(4, c.operation).BindBlob(5, *text).Bind(6, c.functional_hash).Bind(7, c.structural_hash);
        s->Bind(8, c.exact_hash).Bind(9, c.cache_key).Bind(10, std::string(OutcomeName(c.outcome)));
        for (int i = 0; i < 4; ++i) {
          const double v = c.has_objectives ? MetricValue(c.objectives, kLegacyMetricColumns[i]) : std::nan("");
          if (std::isnan(v)) {
            s->BindNull(11 + i);
          } else {
            s->Bind(11 + i, v);
          }
        }
        s->Bind(15, c.violation).Bind(16, c.worker).Bind(17, int64_t{c.attempts});
        s->Bind(18, c.created_micros).Bind(19, c.finished_micros).Bind(20, c.completion_seq);
        s->Bind(21, c.eval_seconds).Bind(22, c.error).Bind(23, c.domain);
        if (c.has_objectives) {
          nlohmann::json o = nlohmann::json::object();
          for (const auto& [name, value] : AllMetrics(c.objectives)) o[name] = value;
          s->Bind(24, o.dump());
        } else {
          s->BindNull(24);
        }
        if (c.rung < 0) {
          s->BindNull(25);
        } else {
          s->Bind(25, int64_t{c.rung});
        }
        if (result->empty()) {
          s->BindNull(26);
        } else {
          s->BindBlob(26, *result);
        }
        absl::Status st = s->Run();
        if (!st.ok()) return st;
        return c.id;
      },
      [on_durable](absl::StatusOr<int64_t> r) {
        if (on_durable) on_durable(r.status());
      });
}

absl::Status ExperimentDb::Flush() { return writer_ ? writer_->Flush() : absl::OkStatus(); }

absl::StatusOr<std::vector<CandidateRecord>> ExperimentDb::Query(const std::string& where, const std::string& bind,
                                                                 int64_t bind_int, bool with_results) {
  std::lock_guard<std::mutex> lock(read_mu_);
  auto s = read_db_->Prepare(absl::StrCat("SELECT ", candidate_columns_, with_results ? ", result" : ", NULL",
                                          " FROM candidates ", where, " ORDER BY id"));
  if (!s.ok()) return s.status();
  if (!bind.empty()) {
    s->Bind(1, bind).Bind(2, bind);
  } else {
    s->Bind(1, bind_int);
  }
  std::vector<CandidateRecord> out;
  while (true) {
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    CandidateRecord c;
    c.id = s->Int(0);
    c.experiment_id = s->Int(1);
    for (absl::string_view p : absl::StrSplit(s->Text(2), ',', absl::SkipEmpty())) {
      int64_t v;
      if (absl::SimpleAtoi(p, &v)) c.parents.push_back(v);
    }
    c.operation = s->Text(3);
    if (!c.candidate.ParseFromString(s->Blob(4))) {
      return absl::DataLossError(absl::StrCat(path_, ": candidate ", c.id, " is not a valid Candidate proto"));
    }
    c.functional_hash = s->Text(5);
    c.structural_hash = s->Text(6);
    c.exact_hash = s->Text(7);
    c.cache_key = s->Text(8);
    c.outcome = OutcomeFromName(s->Text(9));
    if (!s->IsNull(23)) {
      nlohmann::json o = nlohmann::json::parse(s->TextView(23), nullptr, /*allow_exceptions=*/false);
      if (o.is_discarded() || !o.is_object()) {
        return absl::DataLossError(absl::StrCat(path_, ": candidate ", c.id, " has unreadable objectives"));
      }
      for (auto it = o.begin(); it != o.end(); ++it) {
        if (it.value().is_number()) SetMetric(&c.objectives, it.key(), it.value().get<double>());
      }
      c.has_objectives = true;
    } else if (!s->IsNull(10)) {
      // Written before named objectives: the KV-cache quantities.
      c.has_objectives = true;
      for (int i = 0; i < 4; ++i) {
        if (!s->IsNull(10 + i)) SetMetric(&c.objectives, kLegacyMetricColumns[i], s->Double(10 + i));
      }
    }
    c.violation = s->Double(14);
    c.worker = s->Text(15);
    c.attempts = static_cast<int>(s->Int(16));
    c.created_micros = s->Int(17);
    c.finished_micros = s->Int(18);
    c.completion_seq = s->Int(19);
    c.eval_seconds = s->Double(20);
    c.error = s->Text(21);
    c.domain = s->Text(22);
    c.rung = s->IsNull(24) ? -1 : static_cast<int>(s->Int(24));
    if (with_results && !s->IsNull(25)) c.result.ParseFromString(s->Blob(25));
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<std::vector<CandidateRecord>> ExperimentDb::Candidates(int64_t experiment_id, bool with_results) {
  return Query("WHERE experiment_id = ?", "", experiment_id, with_results);
}

absl::StatusOr<std::vector<CandidateRecord>> ExperimentDb::CandidatesWithHash(const std::string& hash_hex) {
  return Query("WHERE functional_hash = ? OR cache_key = ?", hash_hex, 0, true);
}

absl::Status ExperimentDb::PutHitCheck(const HitCheckRecord& check) {
  if (read_only_) return absl::FailedPreconditionError("read-only");
  nlohmann::json o = nlohmann::json::object();
  for (const auto& [name, value] : AllMetrics(check.evaluated)) o[name] = value;
  const std::string objectives = o.dump();
  return writer_
      ->SubmitAndWait([check, objectives](SqliteDb& db) -> absl::StatusOr<int64_t> {
        auto s = db.Prepare(
            "INSERT OR REPLACE INTO hit_checks (candidate_id, experiment_id, exact_copy, matched, max_relative_difference,"
            " objectives, error, checked_micros) VALUES (?,?,?,?,?,?,?,?)");
        if (!s.ok()) return s.status();
        s->Bind(1, check.candidate_id).Bind(2, check.experiment_id).Bind(3, int64_t{check.exact_copy});
        s->Bind(4, int64_t{check.matched}).Bind(5, check.max_relative_difference).Bind(6, objectives);
        s->Bind(7, check.error).Bind(8, check.checked_micros);
        absl::Status st = s->Run();
        if (!st.ok()) return st;
        return check.candidate_id;
      })
      .status();
}

absl::StatusOr<std::vector<HitCheckRecord>> ExperimentDb::HitChecks(int64_t experiment_id) {
  std::lock_guard<std::mutex> lock(read_mu_);
  std::vector<HitCheckRecord> out;
  auto has = read_db_->HasTable("hit_checks");
  if (!has.ok()) return has.status();
  if (!*has) return out;
  auto s = read_db_->Prepare(
      "SELECT candidate_id, experiment_id, exact_copy, matched, max_relative_difference, objectives, error, checked_micros"
      " FROM hit_checks WHERE experiment_id = ? ORDER BY candidate_id");
  if (!s.ok()) return s.status();
  s->Bind(1, experiment_id);
  while (true) {
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    HitCheckRecord c;
    c.candidate_id = s->Int(0);
    c.experiment_id = s->Int(1);
    c.exact_copy = s->Int(2) != 0;
    c.matched = s->Int(3) != 0;
    c.max_relative_difference = s->Double(4);
    nlohmann::json o = nlohmann::json::parse(s->TextView(5), nullptr, /*allow_exceptions=*/false);
    if (o.is_object()) {
      for (auto it = o.begin(); it != o.end(); ++it) {
        if (it.value().is_number()) SetMetric(&c.evaluated, it.key(), it.value().get<double>());
      }
    }
    c.error = s->Text(6);
    c.checked_micros = s->Int(7);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace fecsearch
