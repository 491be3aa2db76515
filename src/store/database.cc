// The engine-independent parts of the storage interface: Row conversions,
// URL dispatch and the helpers both engines share.

#include "store/database.h"

#include <array>
#include <chrono>
#include <ctime>
#include <cassert>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "store/internal.h"

namespace quarry::store {

std::string_view DialectName(Dialect dialect) {
  switch (dialect) {
    case Dialect::kSqlite:
      return "sqlite";
    case Dialect::kPostgres:
      return "postgresql";
  }
  return "unknown";
}

namespace {

// Shortest text that reads back as the same double, so Text() of a DOUBLE
// column is the same on both engines.
std::string FormatDouble(double value) {
  std::array<char, 32> buffer{};
  auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (ec != std::errc()) return std::to_string(value);
  return std::string(buffer.data(), end);
}

int64_t ParseInt(const std::string& text) {
  int64_t value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(*begin))) ++begin;
  if (begin < end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc() && ptr != begin) return value;
  // "3.0" and the like: go through double.
  double d = 0;
  auto [dptr, dec] = std::from_chars(begin, end, d);
  if (dec == std::errc() && dptr != begin && std::isfinite(d)) return static_cast<int64_t>(d);
  return 0;
}

double ParseDouble(const std::string& text) {
  double value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(*begin))) ++begin;
  if (begin < end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  return (ec == std::errc() && ptr != begin) ? value : 0.0;
}

}  // namespace

const Value& Row::at(size_t i) const {
  assert(i < values_.size() && "Row column index out of range");
  return values_[i];
}

bool Row::IsNull(size_t i) const { return std::holds_alternative<std::monostate>(at(i)); }

std::string Row::Text(size_t i) const {
  const Value& value = at(i);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  if (const auto* n = std::get_if<int64_t>(&value)) return std::to_string(*n);
  if (const auto* d = std::get_if<double>(&value)) return FormatDouble(*d);
  return std::string();
}

std::optional<std::string> Row::OptText(size_t i) const {
  if (IsNull(i)) return std::nullopt;
  return Text(i);
}

int64_t Row::Int(size_t i) const {
  const Value& value = at(i);
  if (const auto* n = std::get_if<int64_t>(&value)) return *n;
  if (const auto* d = std::get_if<double>(&value)) {
    return std::isfinite(*d) ? static_cast<int64_t>(*d) : 0;
  }
  if (const auto* s = std::get_if<std::string>(&value)) return ParseInt(*s);
  return 0;
}

std::optional<int64_t> Row::OptInt(size_t i) const {
  if (IsNull(i)) return std::nullopt;
  return Int(i);
}

double Row::Double(size_t i) const {
  const Value& value = at(i);
  if (const auto* d = std::get_if<double>(&value)) return *d;
  if (const auto* n = std::get_if<int64_t>(&value)) return static_cast<double>(*n);
  if (const auto* s = std::get_if<std::string>(&value)) return ParseDouble(*s);
  return 0.0;
}

bool Row::Bool(size_t i) const {
  const Value& value = at(i);
  if (const auto* d = std::get_if<double>(&value)) return *d != 0.0;
  if (const auto* s = std::get_if<std::string>(&value)) {
    // PostgreSQL spells booleans cast to text "true"/"false"; "t" from a raw bool.
    if (*s == "true" || *s == "t") return true;
    if (*s == "false" || *s == "f") return false;
  }
  return Int(i) != 0;
}

size_t Row::Index(std::string_view column) const {
  if (columns_ != nullptr) {
    for (size_t i = 0; i < columns_->size(); ++i) {
      if ((*columns_)[i] == column) return i;
    }
  }
  assert(false && "Row::Index: no column of that name in the result");
  return 0;
}

Result<Row> Tx::QueryOne(std::string_view sql, const Params& params, std::string_view what) {
  QUARRY_ASSIGN_OR_RETURN(Rows rows, Query(sql, params));
  if (rows.rows.empty()) return NotFoundError(std::string(what) + " not found");
  return std::move(rows.rows.front());
}

Result<std::unique_ptr<Database>> Database::Open(std::string_view url,
                                                 const DatabaseOptions& options) {
  if (options.pool_size < 1 || options.max_batch < 1 || options.acquire_timeout_ms < 1 ||
      options.max_retries < 0) {
    return InvalidArgumentError(
        "database options: pool_size, max_batch and acquire_timeout_ms must be at least 1 and "
        "max_retries at least 0");
  }
  constexpr std::string_view kSqlite = "sqlite:";
  if (url.substr(0, kSqlite.size()) == kSqlite) {
    std::string_view path = url.substr(kSqlite.size());
    if (path.empty()) {
      return InvalidArgumentError(
          "database URL \"sqlite:\" has no path: use sqlite:/path/to/quarry.db or sqlite::memory:");
    }
    return internal::OpenSqlite(path, options);
  }
  if (url.substr(0, 13) == "postgresql://" || url.substr(0, 11) == "postgres://") {
    return internal::OpenPostgres(url, options);
  }
  return InvalidArgumentError("unsupported database URL \"" + internal::MaskUrlPassword(url) +
                              "\": use sqlite:/path/to/quarry.db (or sqlite::memory:) or "
                              "postgresql://user@host:port/dbname");
}

namespace internal {

std::string MaskUrlPassword(std::string_view url) {
  std::string out(url);
  // scheme://user:password@host
  size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    size_t authority = scheme + 3;
    size_t authority_end = out.find_first_of("/?", authority);
    if (authority_end == std::string::npos) authority_end = out.size();
    size_t at = out.rfind('@', authority_end);
    if (at != std::string::npos && at > authority) {
      size_t colon = out.find(':', authority);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  // ...?password=secret&...
  size_t query = out.find('?');
  while (query != std::string::npos) {
    size_t key = query + 1;
    if (out.compare(key, 9, "password=") == 0) {
      size_t value = key + 9;
      size_t end = out.find('&', value);
      if (end == std::string::npos) end = out.size();
      out.replace(value, end - value, "***");
    }
    query = out.find('&', key);
  }
  return out;
}

std::string SqlSnippet(std::string_view sql) {
  constexpr size_t kMax = 60;
  std::string out;
  bool space = false;
  for (char c : sql) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
    if (out.size() >= kMax) {
      out += "...";
      break;
    }
  }
  return out;
}

bool IsTransactionControl(std::string_view sql) {
  size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  size_t start = i;
  while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]))) ++i;
  std::string word;
  for (size_t k = start; k < i; ++k) {
    word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[k]))));
  }
  if (word == "BEGIN" || word == "COMMIT" || word == "END" || word == "ROLLBACK" ||
      word == "SAVEPOINT" || word == "RELEASE" || word == "ABORT") {
    return true;
  }
  if (word == "START") {
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    std::string next;
    while (i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]))) {
      next.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i]))));
      ++i;
    }
    return next == "TRANSACTION";
  }
  return false;
}

Status TransactionControlError(std::string_view sql) {
  return InvalidArgumentError("\"" + SqlSnippet(sql) +
                              "\": transaction control statements are not allowed inside "
                              "Database::Write/Read; the Database begins and ends transactions "
                              "(return an error from the function to roll back)");
}

namespace {
constexpr int kMaxActive = 8;
thread_local std::array<const Database*, kMaxActive> active_transactions{};
thread_local int active_count = 0;
}  // namespace

// A small stack per thread: a function of one Database may legitimately
// use another Database (deeper nesting than kMaxActive is not tracked).
ScopedActiveTransaction::ScopedActiveTransaction(const Database* db) {
  if (active_count < kMaxActive) active_transactions[active_count] = db;
  ++active_count;
}

ScopedActiveTransaction::~ScopedActiveTransaction() {
  --active_count;
  if (active_count < kMaxActive) active_transactions[active_count] = nullptr;
}

bool InTransactionOf(const Database* db) {
  for (int i = 0; i < active_count && i < kMaxActive; ++i) {
    if (active_transactions[i] == db) return true;
  }
  return false;
}

Status NestedTransactionError() {
  return FailedPreconditionError(
      "nested transactions are not supported: Database::Write/Read was called from inside "
      "another Write/Read function of the same database; use the outer function's Tx instead");
}

}  // namespace internal
}  // namespace quarry::store

namespace quarry::store::internal {

Status FailedTransactionTracker::CheckUsable() const {
  if (first_failure_.ok()) return Status::Ok();
  return InvalidArgumentError(
      "an earlier statement in this transaction failed (" + first_failure_.ToString() +
      "); the transaction is aborted, so return that error instead of running more statements "
      "(use INSERT ... ON CONFLICT for insert-or-update)");
}

Status FailedTransactionTracker::Finish(Status fn_status) const {
  if (!fn_status.ok() || first_failure_.ok()) return fn_status;
  return first_failure_.WithContext(
      "the transaction was rolled back because a statement in it failed and the function "
      "returned OK anyway");
}

std::string NowIso8601Millis() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[96];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buffer;
}

}  // namespace quarry::store::internal
