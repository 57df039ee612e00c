// SQLite wrapper with fecsearch's settings and checks.
#include "hashing/sqlite_db.h"

#include <sqlite3.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/paths.h"

namespace fecsearch {

namespace {

// Maps a SQLite result code to the absl status a caller can act on.
absl::Status SqliteStatus(int rc, std::string detail) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(absl::StrCat(detail, " (the file is corrupt or not a SQLite database)"));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(absl::StrCat(detail, " (another process holds the database)"));
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::PermissionDeniedError(detail);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(detail);
    default:
      return absl::InternalError(detail);
  }
}

}  // namespace

absl::Status SqliteDb::Error(int rc, absl::string_view what) const {
  return SqliteStatus(rc, absl::StrCat(path_, ": ", what, ": ", db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)));
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path, bool read_only) {
  std::unique_ptr<SqliteDb> db(new SqliteDb());
  db->path_ = path;
  if (read_only && !PathExists(path)) {
    return absl::NotFoundError(absl::StrCat(path, ": database does not exist"));
  }
  const int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  int rc = sqlite3_open_v2(path.c_str(), &db->db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = db->Error(rc, "cannot open database");
    return s;
  }
  sqlite3_busy_timeout(db->db_, 30000);
  // The first read detects files that are not SQLite databases. (Statements are finished
  // before the pragmas below, which cannot run inside an open read transaction.)
  int64_t app = 0, table_count = 0;
  {
    auto id = db->Prepare("PRAGMA application_id");
    if (!id.ok()) return id.status();
    auto row = id->Step();
    if (!row.ok()) return row.status();
    app = *row ? id->Int(0) : 0;
    auto tables = db->Prepare("SELECT count(*) FROM sqlite_master");
    if (!tables.ok()) return tables.status();
    auto trow = tables->Step();
    if (!trow.ok()) return trow.status();
    table_count = tables->Int(0);
  }
  if (app != kApplicationId) {
    if (table_count > 0 || app != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, ": is a SQLite database of another application (application_id ", app,
          ", ", table_count, " tables); refusing to touch it. Use another --db path."));
    }
    if (read_only) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": is empty, not a fecsearch database"));
    }
    absl::Status s = db->Exec(absl::StrCat("PRAGMA application_id = ", kApplicationId));
    if (!s.ok()) return s;
  }
  if (!read_only) {
    absl::Status s = db->Exec("PRAGMA journal_mode = WAL");
    if (!s.ok()) return s;
    s = db->Exec("PRAGMA synchronous = NORMAL");
    if (!s.ok()) return s;
  }
  return db;
}

SqliteDb::~SqliteDb() {
  cache_.clear();  // finalize statements before closing
  if (db_) sqlite3_close_v2(db_);
}

absl::StatusOr<SqliteStatement*> SqliteDb::Cached(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    auto s = Prepare(sql);
    if (!s.ok()) return s.status();
    it = cache_.emplace(sql, std::make_unique<SqliteStatement>(std::move(*s))).first;
  } else {
    it->second->Reset();
  }
  return it->second.get();
}

absl::Status SqliteDb::Exec(absl::string_view sql) {
  char* err = nullptr;
  const std::string s(sql);
  const int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    if (err) sqlite3_free(err);
    return Error(rc, absl::StrCat("executing '", sql.substr(0, 60), "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SqliteStatement> SqliteDb::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, absl::StrCat("preparing '", sql.substr(0, 60), "'"));
  return SqliteStatement(db_, stmt, &path_);
}

int64_t SqliteDb::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }

absl::StatusOr<bool> SqliteDb::HasTable(absl::string_view name) {
  auto s = Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  if (!s.ok()) return s.status();
  s->Bind(1, name);
  return s->Step();
}

absl::StatusOr<bool> SqliteDb::HasColumn(absl::string_view table, absl::string_view column) {
  auto s = Prepare(absl::StrCat("SELECT 1 FROM pragma_table_info('", table, "') WHERE name = ?"));
  if (!s.ok()) return s.status();
  s->Bind(1, column);
  return s->Step();
}

absl::Status SqliteDb::AddColumnIfMissing(absl::string_view table, absl::string_view column, absl::string_view type) {
  auto has = HasColumn(table, column);
  if (!has.ok()) return has.status();
  if (*has) return absl::OkStatus();
  return Exec(absl::StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", type));
}

SqliteStatement::~SqliteStatement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

SqliteStatement& SqliteStatement::Bind(int index, int64_t v) {
  sqlite3_bind_int64(stmt_, index, v);
  return *this;
}
SqliteStatement& SqliteStatement::Bind(int index, double v) {
  sqlite3_bind_double(stmt_, index, v);
  return *this;
}
SqliteStatement& SqliteStatement::Bind(int index, absl::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStatement& SqliteStatement::BindBlob(int index, absl::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStatement& SqliteStatement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

absl::StatusOr<bool> SqliteStatement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteStatus(rc, absl::StrCat(*path_, ": ", sqlite3_errmsg(db_)));
}

absl::Status SqliteStatement::Run() {
  while (true) {
    auto r = Step();
    if (!r.ok()) return r.status();
    if (!*r) return absl::OkStatus();
  }
}

void SqliteStatement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t SqliteStatement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }
double SqliteStatement::Double(int column) const { return sqlite3_column_double(stmt_, column); }
std::string SqliteStatement::Text(int column) const {
  const unsigned char* t = sqlite3_column_text(stmt_, column);
  return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(stmt_, column)) : "";
}
std::string SqliteStatement::Blob(int column) const {
  const void* b = sqlite3_column_blob(stmt_, column);
  return b ? std::string(static_cast<const char*>(b), sqlite3_column_bytes(stmt_, column)) : "";
}
absl::string_view SqliteStatement::TextView(int column) const {
  const unsigned char* t = sqlite3_column_text(stmt_, column);
  return t ? absl::string_view(reinterpret_cast<const char*>(t), sqlite3_column_bytes(stmt_, column)) : absl::string_view();
}
absl::string_view SqliteStatement::BlobView(int column) const {
  const void* b = sqlite3_column_blob(stmt_, column);
  return b ? absl::string_view(static_cast<const char*>(b), sqlite3_column_bytes(stmt_, column)) : absl::string_view();
}
bool SqliteStatement::IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

}  // namespace fecsearch
