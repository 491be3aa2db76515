#pragma once
// Quarry's storage interface: SQL transactions over SQLite (the embedded
// default) or PostgreSQL (the multi-node path), with identical behaviour.
//
// Callers write SQL once, in the portable subset both engines accept:
//   - placeholders $1, $2, ... (SQLite binds them by name, PostgreSQL natively);
//   - column types TEXT, BIGINT, DOUBLE PRECISION; booleans are BIGINT 0/1;
//     JSON is TEXT; timestamps are TEXT in ISO 8601 UTC with milliseconds
//     ("2026-11-25T10:00:00.000Z", which sorts as time) or BIGINT epoch ms;
//     binary data is base64 TEXT (no BLOB/BYTEA);
//   - INSERT ... ON CONFLICT (...) DO NOTHING / DO UPDATE, RETURNING, LIMIT/OFFSET,
//     CREATE INDEX IF NOT EXISTS.
// Where the engines differ (FOR UPDATE SKIP LOCKED, advisory locks), callers
// branch on dialect(). SQL lives in named constants beside the code that runs
// it (DESIGN.md).
//
// Several statements separated by ';' may be given to Exec() only without
// parameters (migrations); Query() takes one statement.
//
// Transactions: Write() runs a function in a read-write transaction and
// commits when it returns OK, rolls back otherwise; Read() runs one in a
// read-only snapshot. The function may be run more than once when the engine
// reports a transient conflict (SQLite busy, PostgreSQL serialization failure
// or deadlock), so it must have no effects outside the transaction. A Tx is
// valid only inside the function, on the calling thread (on SQLite, Write()
// functions run on the writer thread: do not rely on thread-locals).
//
// A failed statement aborts the transaction on both engines (PostgreSQL's
// rule): later statements in it fail with InvalidArgument, and a function
// that returns OK anyway gets the first failure back, rolled back. Use
// INSERT ... ON CONFLICT rather than "insert, and update on AlreadyExists".
// Transaction control statements (BEGIN, COMMIT, SAVEPOINT, ...) are refused.
// Calling Write()/Read() from inside a Write()/Read() function of the same
// Database fails at once with FailedPrecondition (nested transactions are not
// supported) instead of deadlocking.
//
// Keep Write() functions short and free of waits (network calls, sleeps):
// on SQLite they run one after another on the writer thread, so a slow one
// delays every writer.
//
// SQLite: one file, WAL, synchronous=FULL (a commit that returned is on disk),
// foreign keys on. Writes go through one writer thread that commits
// concurrent Write() calls together (group commit: each call in its own
// SAVEPOINT, one fsync for the batch), so many small durable writes per
// second cost one fsync per batch, not one each; a failing call rolls back
// only its savepoint. Reads use a pool of read connections.
// PostgreSQL: a bounded pool of libpq connections (READ COMMITTED); a broken
// connection is replaced.
//
// Errors are Status values with messages that name the operation and the
// cause, never the bound parameter values (they may hold secrets):
//   AlreadyExists       a UNIQUE or PRIMARY KEY constraint was violated
//   FailedPrecondition  a FOREIGN KEY, CHECK or NOT NULL constraint was violated
//   Unavailable         the database cannot be reached / is busy beyond the retries
//   InvalidArgument     the SQL is wrong (a programming error, logged)
//   DataLoss            the file is not a database or is corrupt
//   Internal            anything else
//
// Thread safety: Database is thread-safe; share one per process.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

namespace quarry::store {

enum class Dialect { kSqlite, kPostgres };
std::string_view DialectName(Dialect dialect);  // "sqlite" | "postgresql"

// A parameter or column value. Text columns read back as std::string;
// BIGINT as int64_t; DOUBLE PRECISION as double; NULL as monostate. On
// PostgreSQL, result columns are converted by type: int2/int4/int8 and bool
// (0/1) -> int64_t, float4/float8/numeric -> double, everything else -> text.
// Expressions may still differ in kind between the engines (SUM of BIGINT is
// numeric, hence double, on PostgreSQL), so read them with the accessors,
// which convert. Parameters are sent to PostgreSQL as int8, float8 and
// untyped text (so text binds to any column type); where a function wants
// int4, write CAST($1 AS INTEGER), which both engines accept.
using Value = std::variant<std::monostate, int64_t, double, std::string>;

// Helpers to build parameter lists: Params{"abc", int64_t{3}, Null()}.
inline Value Null() { return std::monostate{}; }
inline Value Bool(bool b) { return int64_t{b ? 1 : 0}; }
inline Value OptionalText(const std::optional<std::string>& s) {
  return s ? Value(*s) : Value(std::monostate{});
}
using Params = std::vector<Value>;

// One result row. Accessors convert where sensible (an integer column read as
// text gives its decimal form); reading a NULL with a non-Opt accessor gives
// the type's zero value. Column indexes are checked (out of range asserts).
//
// A Row shares its column names with the Rows it came from, so it stays
// valid on its own (QueryOne returns a Row; a Row may outlive its Rows).
class Row {
 public:
  Row(std::vector<Value> values, std::shared_ptr<const std::vector<std::string>> columns)
      : values_(std::move(values)), columns_(std::move(columns)) {}
  // Copies the names (for hand-built rows in tests).
  explicit Row(std::vector<Value> values, const std::vector<std::string>* columns)
      : values_(std::move(values)),
        columns_(std::make_shared<const std::vector<std::string>>(
            columns ? *columns : std::vector<std::string>{})) {}
  size_t size() const { return values_.size(); }
  bool IsNull(size_t i) const;
  std::string Text(size_t i) const;
  std::optional<std::string> OptText(size_t i) const;
  int64_t Int(size_t i) const;
  std::optional<int64_t> OptInt(size_t i) const;
  double Double(size_t i) const;
  bool Bool(size_t i) const;  // BIGINT != 0
  const Value& at(size_t i) const;
  // Index of a column by name; asserts that it exists.
  size_t Index(std::string_view column) const;

 private:
  std::vector<Value> values_;
  std::shared_ptr<const std::vector<std::string>> columns_;  // shared with the Rows
};

struct Rows {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  bool empty() const { return rows.empty(); }
  size_t size() const { return rows.size(); }
};

// A transaction in progress (see Database::Write/Read).
class Tx {
 public:
  virtual ~Tx() = default;
  // A statement that returns rows (SELECT, or anything with RETURNING).
  virtual Result<Rows> Query(std::string_view sql, const Params& params = {}) = 0;
  // A statement without a result set; returns the number of rows changed.
  virtual Result<int64_t> Exec(std::string_view sql, const Params& params = {}) = 0;
  // Convenience: the single row of a query, NotFound("<what> not found") when
  // there is none.
  Result<Row> QueryOne(std::string_view sql, const Params& params, std::string_view what);
  virtual Dialect dialect() const = 0;

  // Runs `fn` once this transaction has committed (for Read(): ended without
  // error), on the thread that called Write()/Read(), just before it returns
  // Ok. Dropped when the transaction fails or rolls back, and when the
  // function is run again on a retry (that attempt registers its own). For
  // notices that must not announce work that may still be undone: an event
  // raised inside the transaction could name a row that never existed.
  // `fn` must not throw or block for long: the caller's Write() is still
  // running it.
  void AfterCommit(std::function<void()> fn) { after_commit_.push_back(std::move(fn)); }
  // For Database implementations: the functions registered so far, moved out.
  std::vector<std::function<void()>> TakeAfterCommit() { return std::move(after_commit_); }

 private:
  std::vector<std::function<void()>> after_commit_;
};

struct DatabaseOptions {
  // SQLite read connections; PostgreSQL connections in the pool.
  int pool_size = 4;
  // SQLite group commit: at most this many Write() calls share one commit.
  int max_batch = 256;
  // How long one Write()/Read() may wait for a connection or the writer
  // before failing with Unavailable.
  int64_t acquire_timeout_ms = 10'000;
  // Transient-conflict retries of one Write()/Read() function.
  int max_retries = 5;
};

class Database {
 public:
  // Opens a database from a URL:
  //   "sqlite:/path/to/quarry.db"   (created when missing; its directory must exist)
  //   "sqlite::memory:"             (tests; private to this Database)
  //   "postgresql://user@host:port/dbname?host=/socket/dir" (libpq URI; also "postgres://")
  // Errors: InvalidArgument for an unknown scheme (the message lists the two
  // forms), Unavailable when the server cannot be reached (the message
  // includes libpq's reason and the URL with any password masked).
  static Result<std::unique_ptr<Database>> Open(std::string_view url,
                                                const DatabaseOptions& options = {});
  virtual ~Database() = default;

  virtual Dialect dialect() const = 0;
  // The URL with any password replaced by "***", for logs and /readyz.
  virtual std::string DisplayUrl() const = 0;

  virtual Status Write(const std::function<Status(Tx&)>& fn) = 0;
  virtual Status Read(const std::function<Status(Tx&)>& fn) = 0;

  // A cheap round trip (SELECT 1), for /readyz.
  virtual Status Ping() = 0;
};

}  // namespace quarry::store
