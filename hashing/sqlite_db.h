// A small RAII layer over SQLite: open with the project's settings and checks, prepared
// statements, errors as absl::Status that name the database file.
#ifndef FECSEARCH_HASHING_SQLITE_DB_H_
#define FECSEARCH_HASHING_SQLITE_DB_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct sqlite3;
struct sqlite3_stmt;

namespace fecsearch {

// "FECS": marks databases written by fecsearch (PRAGMA application_id).
inline constexpr int32_t kApplicationId = 0x46454353;

class SqliteStatement {
 public:
  SqliteStatement(SqliteStatement&& o) noexcept : db_(o.db_), stmt_(o.stmt_), path_(o.path_) { o.stmt_ = nullptr; }
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  ~SqliteStatement();

  SqliteStatement& Bind(int index, int64_t v);
  SqliteStatement& Bind(int index, double v);
  SqliteStatement& Bind(int index, absl::string_view text);  // TEXT
  SqliteStatement& BindBlob(int index, absl::string_view bytes);
  SqliteStatement& BindNull(int index);
  // true: a row is available; false: done.
  absl::StatusOr<bool> Step();
  // Runs to completion (for statements without rows).
  absl::Status Run();
  void Reset();

  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;
  // Views of the column's bytes, valid until the next Step or Reset (no copy).
  absl::string_view TextView(int column) const;
  absl::string_view BlobView(int column) const;
  bool IsNull(int column) const;

 private:
  friend class SqliteDb;
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, const std::string* path) : db_(db), stmt_(stmt), path_(path) {}
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  const std::string* path_;
};

// One connection. Not thread-safe: use one per thread (WAL lets readers and a writer share
// the file).
class SqliteDb {
 public:
  // Opens (creating when allowed) `path` in WAL mode with a busy timeout. Fails with
  // DATA_LOSS for a corrupt or non-SQLite file and FAILED_PRECONDITION for a SQLite file
  // of another application; an empty new file is stamped as fecsearch's. Never resets data.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(const std::string& path, bool read_only);
  ~SqliteDb();

  absl::Status Exec(absl::string_view sql);
  absl::StatusOr<SqliteStatement> Prepare(absl::string_view sql);
  // A statement prepared once and kept by the connection for reuse (hot paths); returned
  // reset, with no bindings.
  absl::StatusOr<SqliteStatement*> Cached(const std::string& sql);
  int64_t LastInsertId() const;
  // Whether the database has a table of this name.
  absl::StatusOr<bool> HasTable(absl::string_view name);
  absl::StatusOr<bool> HasColumn(absl::string_view table, absl::string_view column);
  // Schema upgrade of a database written by an earlier version.
  absl::Status AddColumnIfMissing(absl::string_view table, absl::string_view column, absl::string_view type);
  const std::string& path() const { return path_; }
  absl::Status Error(int rc, absl::string_view what) const;

 private:
  SqliteDb() = default;
  sqlite3* db_ = nullptr;
  std::string path_;
  std::map<std::string, std::unique_ptr<SqliteStatement>> cache_;
};

}  // namespace fecsearch

#endif  // FECSEARCH_HASHING_SQLITE_DB_H_
