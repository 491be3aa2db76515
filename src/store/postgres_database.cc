// PostgreSQL engine over libpq: a bounded pool of connections, "$N"
// parameters passed natively, text results converted to the same Value
// types SQLite gives (by column type OID).

#include <libpq-fe.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/database.h"
#include "store/internal.h"

namespace quarry::store::internal {
namespace {

using Clock = std::chrono::steady_clock;

// Type OIDs from PostgreSQL's catalog (pg_type.dat); stable across versions.
constexpr Oid kBoolOid = 16;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kNumericOid = 1700;

constexpr std::string_view kBeginWrite = "BEGIN";  // READ COMMITTED, the server default
constexpr std::string_view kBeginRead = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
constexpr const char* kConnectTimeoutSeconds = "10";

std::string TrimTrailing(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

bool ConnectionBroken(PGconn* conn) { return PQstatus(conn) != CONNECTION_OK; }

// What a failed statement means to the caller. `transient` marks
// serialization failures and deadlocks, after which the whole function is
// run again.
struct PgError {
  Status status;
  bool transient = false;
};

PgError MapError(PGconn* conn, const PGresult* result, std::string_view what, std::string_view sql) {
  std::string context(what);
  if (!sql.empty()) context += " \"" + SqlSnippet(sql) + "\"";
  const char* state_field = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (state_field == nullptr || ConnectionBroken(conn)) {
    return {UnavailableError(context + ": lost the connection to PostgreSQL (" +
                             TrimTrailing(PQerrorMessage(conn)) +
                             "); check that the server is running, then retry"),
            false};
  }
  const std::string state(state_field);
  const char* primary_field = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  // The primary message never holds row values (PostgreSQL puts those in
  // DETAIL, which we drop), except for data exceptions (class 22), which
  // quote the offending input: those get a generic message.
  std::string cause = primary_field != nullptr ? primary_field : "unknown error";
  cause += " (SQLSTATE " + state + ")";
  const std::string klass = state.substr(0, 2);
  if (state == "23505") return {Status(StatusCode::kAlreadyExists, context + ": " + cause), false};
  if (klass == "23") return {FailedPreconditionError(context + ": " + cause), false};
  if (state == "40001" || state == "40P01") {
    return {UnavailableError(context + ": " + cause + "; the write conflicted with another one, "
                                                      "retry it"),
            true};
  }
  if (state == "25006") {
    return {InvalidArgumentError(context + ": " + cause +
                                 " (a write inside Database::Read: use Database::Write)"),
            false};
  }
  if (klass == "22") {
    return {InvalidArgumentError(context + ": a parameter value does not fit its column or "
                                           "operation (SQLSTATE " + state + ")"),
            false};
  }
  if (klass == "42" || state == "0A000" || klass == "25" || klass == "26" || klass == "34" ||
      klass == "3F" || state == "08P01") {
    return {InvalidArgumentError(context + ": " + cause), false};
  }
  if (klass == "08" || klass == "53" || klass == "57" || klass == "55") {
    return {UnavailableError(context + ": " + cause + "; retry later"), false};
  }
  if (state == "XX001" || state == "XX002") {
    return {DataLossError(context + ": " + cause + "; the database is damaged, restore a backup"),
            false};
  }
  return {InternalError(context + ": " + cause), false};
}

std::string FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(value);
}

Value ConvertField(const PGresult* result, int row, int column) {
  if (PQgetisnull(result, row, column)) return std::monostate{};
  const char* text = PQgetvalue(result, row, column);
  const int length = PQgetlength(result, row, column);
  switch (PQftype(result, column)) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid: {
      int64_t value = 0;
      std::from_chars(text, text + length, value);
      return value;
    }
    case kFloat4Oid:
    case kFloat8Oid:
    case kNumericOid:
      // strtod understands NaN and Infinity, which from_chars does not.
      return std::strtod(text, nullptr);
    case kBoolOid:
      return int64_t{text[0] == 't' ? 1 : 0};
    default:
      return std::string(text, static_cast<size_t>(length));
  }
}

// libpq's parameter arrays for one statement; the strings live here.
class BoundParams {
 public:
  explicit BoundParams(const Params& params) {
    storage_.reserve(params.size());
    for (const Value& value : params) {
      if (const auto* n = std::get_if<int64_t>(&value)) {
        types_.push_back(kInt8Oid);
        storage_.push_back(std::to_string(*n));
      } else if (const auto* d = std::get_if<double>(&value)) {
        types_.push_back(kFloat8Oid);
        storage_.push_back(FormatDouble(*d));
      } else if (std::holds_alternative<std::string>(value)) {
        // Untyped ("unknown"), as a literal is: PostgreSQL infers the type
        // from the context, so text binds to TEXT, BIGINT, ... columns alike.
        types_.push_back(0);
        storage_.emplace_back();
      } else {
        types_.push_back(0);
        storage_.emplace_back();
      }
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (const auto* s = std::get_if<std::string>(&params[i])) {
        values_.push_back(s->c_str());
      } else if (std::holds_alternative<std::monostate>(params[i])) {
        values_.push_back(nullptr);
      } else {
        values_.push_back(storage_[i].c_str());
      }
    }
  }
  int count() const { return static_cast<int>(types_.size()); }
  const Oid* types() const { return types_.empty() ? nullptr : types_.data(); }
  const char* const* values() const { return values_.empty() ? nullptr : values_.data(); }

 private:
  std::vector<std::string> storage_;
  std::vector<Oid> types_;
  std::vector<const char*> values_;
};

class PostgresTx final : public Tx {
 public:
  explicit PostgresTx(PGconn* conn) : conn_(conn) {}

  Result<Rows> Query(std::string_view sql, const Params& params) override {
    QUARRY_RETURN_IF_ERROR(tracker_.CheckUsable());
    return tracker_.Record(QueryImpl(sql, params));
  }
  Result<int64_t> Exec(std::string_view sql, const Params& params) override {
    QUARRY_RETURN_IF_ERROR(tracker_.CheckUsable());
    return tracker_.Record(ExecImpl(sql, params));
  }
  Dialect dialect() const override { return Dialect::kPostgres; }

  Status Finish(Status fn_status) const { return tracker_.Finish(std::move(fn_status)); }
  bool transient_failure() const { return transient_; }

 private:
  Result<PgResult> Run(std::string_view sql, const Params& params, bool allow_script) {
    if (IsTransactionControl(sql)) return TransactionControlError(sql);
    const std::string text(sql);
    PgResult result;
    if (params.empty() && allow_script) {
      // The simple protocol runs several ';'-separated statements (migrations).
      result.reset(PQexec(conn_, text.c_str()));
    } else {
      BoundParams bound(params);
      result.reset(PQexecParams(conn_, text.c_str(), bound.count(), bound.types(), bound.values(),
                                nullptr, nullptr, /*resultFormat=*/0));
    }
    const ExecStatusType status = result != nullptr ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) {
      return result;
    }
    PgError error = MapError(conn_, result.get(), "running", sql);
    transient_ = transient_ || error.transient;
    return error.status;
  }

  Result<Rows> QueryImpl(std::string_view sql, const Params& params) {
    QUARRY_ASSIGN_OR_RETURN(PgResult result, Run(sql, params, /*allow_script=*/false));
    Rows rows;
    const int columns = PQnfields(result.get());
    auto names = std::make_shared<std::vector<std::string>>();
    for (int c = 0; c < columns; ++c) names->emplace_back(PQfname(result.get(), c));
    rows.columns = *names;
    std::shared_ptr<const std::vector<std::string>> shared = std::move(names);
    const int count = PQntuples(result.get());
    rows.rows.reserve(static_cast<size_t>(count));
    for (int r = 0; r < count; ++r) {
      std::vector<Value> values;
      values.reserve(static_cast<size_t>(columns));
      for (int c = 0; c < columns; ++c) values.push_back(ConvertField(result.get(), r, c));
      rows.rows.emplace_back(std::move(values), shared);
    }
    return rows;
  }

  Result<int64_t> ExecImpl(std::string_view sql, const Params& params) {
    QUARRY_ASSIGN_OR_RETURN(PgResult result, Run(sql, params, /*allow_script=*/true));
    const char* tuples = PQcmdTuples(result.get());
    int64_t changed = 0;
    if (tuples != nullptr) std::from_chars(tuples, tuples + std::strlen(tuples), changed);
    return changed;
  }

  PGconn* conn_;
  FailedTransactionTracker tracker_;
  bool transient_ = false;
};

Status RunFunction(const std::function<Status(Tx&)>& fn, Tx& tx) {
  try {
    return fn(tx);
  } catch (const std::exception& e) {
    return InternalError(std::string("transaction function threw an exception: ") + e.what());
  } catch (...) {
    return InternalError("transaction function threw an exception");
  }
}

class PostgresDatabase final : public Database {
 public:
  PostgresDatabase(std::string url, const DatabaseOptions& options)
      : url_(std::move(url)), display_url_(MaskUrlPassword(url_)), options_(options) {}

  ~PostgresDatabase() override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (PGconn* conn : idle_) PQfinish(conn);
    idle_.clear();
  }

  // Connects once, so a wrong URL fails at start-up, not at the first request.
  Status Start() {
    QUARRY_ASSIGN_OR_RETURN(PGconn * conn, Acquire());
    Release(conn);
    return Status::Ok();
  }

  Dialect dialect() const override { return Dialect::kPostgres; }
  std::string DisplayUrl() const override { return display_url_; }

  Status Write(const std::function<Status(Tx&)>& fn) override {
    return RunTransaction(fn, /*read_only=*/false);
  }
  Status Read(const std::function<Status(Tx&)>& fn) override {
    return RunTransaction(fn, /*read_only=*/true);
  }

  Status Ping() override {
    QUARRY_ASSIGN_OR_RETURN(PGconn * conn, Acquire());
    PgResult result(PQexec(conn, "SELECT 1"));
    Status status;
    if (result == nullptr || PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
      status = MapError(conn, result.get(), "ping", "SELECT 1").status;
    }
    Release(conn);
    return status;
  }

 private:
  Result<PGconn*> Connect() {
    // Keywords before "dbname" are defaults the URL may override.
    const char* keywords[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {kConnectTimeoutSeconds, "quarry", url_.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (conn == nullptr) return UnavailableError("cannot allocate a PostgreSQL connection");
    if (PQstatus(conn) != CONNECTION_OK) {
      std::string reason = TrimTrailing(PQerrorMessage(conn));
      PQfinish(conn);
      return UnavailableError("cannot connect to PostgreSQL at " + display_url_ + ": " + reason +
                              " (check the --db URL and that the server is running)");
    }
    // NOTICEs ("relation already exists, skipping") are not errors; libpq
    // would print them on stderr.
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
    return conn;
  }

  Result<PGconn*> Acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto deadline = Clock::now() + std::chrono::milliseconds(options_.acquire_timeout_ms);
    if (!cv_.wait_until(lock, deadline,
                        [&] { return !idle_.empty() || open_ < options_.pool_size; })) {
      return UnavailableError("all " + std::to_string(options_.pool_size) +
                              " PostgreSQL connections stayed busy for " +
                              std::to_string(options_.acquire_timeout_ms) +
                              " ms; the server is overloaded, retry later");
    }
    if (!idle_.empty()) {
      PGconn* conn = idle_.back();
      idle_.pop_back();
      return conn;
    }
    ++open_;
    lock.unlock();
    auto conn = Connect();
    if (!conn.ok()) {
      lock.lock();
      --open_;
      cv_.notify_one();
    }
    return conn;
  }

  // Returns a connection to the pool; a broken one, or one left inside a
  // transaction, is closed and replaced on demand.
  void Release(PGconn* conn) {
    const bool reusable =
        !ConnectionBroken(conn) && PQtransactionStatus(conn) == PQTRANS_IDLE;
    std::lock_guard<std::mutex> lock(mutex_);
    if (reusable) {
      idle_.push_back(conn);
    } else {
      PQfinish(conn);
      --open_;
    }
    cv_.notify_one();
  }

  // Runs a statement of our own (BEGIN/COMMIT/ROLLBACK) and returns the
  // command tag.
  Result<std::string> Control(PGconn* conn, std::string_view sql, bool* transient) {
    PgResult result(PQexec(conn, std::string(sql).c_str()));
    if (result == nullptr || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      PgError error = MapError(conn, result.get(), "running", sql);
      if (transient != nullptr) *transient = error.transient;
      return error.status;
    }
    return std::string(PQcmdStatus(result.get()));
  }

  Status RunTransaction(const std::function<Status(Tx&)>& fn, bool read_only) {
    if (InTransactionOf(this)) return NestedTransactionError();
    Status status;
    std::vector<std::function<void()>> after_commit;  // of the latest attempt
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 << attempt, 200)));
      }
      QUARRY_ASSIGN_OR_RETURN(PGconn * conn, Acquire());
      auto begin = Control(conn, read_only ? kBeginRead : kBeginWrite, nullptr);
      if (!begin.ok()) {
        // A pooled connection the server closed meanwhile: use a fresh one.
        const bool broken = ConnectionBroken(conn);
        Release(conn);
        if (broken && attempt < options_.max_retries) continue;
        return begin.status();
      }
      bool transient = false;
      bool retry_safe = true;  // false once COMMIT was sent on a connection that broke
      {
        ScopedActiveTransaction active(this);
        PostgresTx tx(conn);
        status = tx.Finish(RunFunction(fn, tx));
        transient = tx.transient_failure();
        after_commit = tx.TakeAfterCommit();
      }
      if (status.ok()) {
        auto commit = Control(conn, "COMMIT", &transient);
        if (!commit.ok()) {
          status = commit.status().WithContext("committing");
          if (ConnectionBroken(conn)) {
            retry_safe = false;
            status = UnavailableError(
                "the connection to PostgreSQL was lost while committing, so this write may or may "
                "not have been applied; check before retrying (" + commit.status().message() + ")");
          }
        } else if (*commit != "COMMIT") {
          // The server rolled back instead (the transaction had failed).
          status = InternalError("PostgreSQL rolled the transaction back at COMMIT");
        }
      } else if (!ConnectionBroken(conn)) {
        (void)Control(conn, "ROLLBACK", nullptr);
      }
      const bool broken = ConnectionBroken(conn);
      Release(conn);
      if (status.ok()) {
        for (auto& after : after_commit) after();
        return status;
      }
      const bool retry = transient || (broken && retry_safe);
      if (!retry || attempt >= options_.max_retries) return status;
    }
  }

  const std::string url_;
  const std::string display_url_;
  const DatabaseOptions options_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<PGconn*> idle_;
  int open_ = 0;  // idle + in use
};

}  // namespace

Result<std::unique_ptr<Database>> OpenPostgres(std::string_view url, const DatabaseOptions& options) {
  auto db = std::make_unique<PostgresDatabase>(std::string(url), options);
  QUARRY_RETURN_IF_ERROR(db->Start());
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace quarry::store::internal
