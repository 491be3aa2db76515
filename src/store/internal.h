#pragma once
// Private to store/: the two engines' factories and the helpers they share.
// Nothing outside src/store includes this header.

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/database.h"

namespace quarry::store::internal {

// "sqlite:" URLs (path, or ":memory:").
Result<std::unique_ptr<Database>> OpenSqlite(std::string_view path, const DatabaseOptions& options);
// "postgresql://" / "postgres://" URLs (libpq URI syntax).
Result<std::unique_ptr<Database>> OpenPostgres(std::string_view url, const DatabaseOptions& options);

// The URL with the password of "scheme://user:password@host" (and any
// "password=" query parameter) replaced by "***".
std::string MaskUrlPassword(std::string_view url);

// The start of a statement for error messages: whitespace collapsed, at most
// 60 characters. SQL text is code, never data, so it may be shown; bound
// parameter values never are.
std::string SqlSnippet(std::string_view sql);

// True for BEGIN/COMMIT/END/ROLLBACK/SAVEPOINT/RELEASE/START TRANSACTION:
// the Database owns transaction boundaries (group commit depends on it), so
// a Tx refuses these.
bool IsTransactionControl(std::string_view sql);
Status TransactionControlError(std::string_view sql);

// Marks the calling thread as running a transaction function of `db`, so a
// Write()/Read() called from inside it fails at once instead of waiting for
// itself (the SQLite writer thread would deadlock; a PostgreSQL pool could
// run dry).
class ScopedActiveTransaction {
 public:
  explicit ScopedActiveTransaction(const Database* db);
  ~ScopedActiveTransaction();
  ScopedActiveTransaction(const ScopedActiveTransaction&) = delete;
  ScopedActiveTransaction& operator=(const ScopedActiveTransaction&) = delete;
};
bool InTransactionOf(const Database* db);
Status NestedTransactionError();

}  // namespace quarry::store::internal

namespace quarry::store::internal {

// PostgreSQL aborts a transaction at its first failed statement: later
// statements fail and COMMIT rolls back. SQLite would carry on. To behave the
// same on both, each Tx records its first failure; later statements then fail
// with InvalidArgument, and a function that returns OK after a failure gets
// the first failure back (its transaction rolled back).
class FailedTransactionTracker {
 public:
  Status CheckUsable() const;
  template <typename T>
  Result<T> Record(Result<T> result) {
    if (!result.ok() && first_failure_.ok()) first_failure_ = result.status();
    return result;
  }
  Status Finish(Status fn_status) const;
  bool failed() const { return !first_failure_.ok(); }

 private:
  Status first_failure_;
};

// The current UTC time as "2026-11-25T10:00:00.000Z" (the store's timestamp
// format, which sorts as time).
std::string NowIso8601Millis();
}  // namespace quarry::store::internal
