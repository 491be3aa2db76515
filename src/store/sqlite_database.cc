// SQLite engine: one writer thread with group commit, a pool of read-only
// connections, and a prepared-statement cache per connection.
//
// Why a writer thread: SQLite allows one writer at a time and a durable
// commit costs an fsync of the WAL. Funnelling every Write() through one
// connection lets concurrent callers share a transaction: each runs in its
// own SAVEPOINT (so a failing call undoes only its own work) and the batch
// ends with one COMMIT, i.e. one fsync for up to max_batch writes.
//
// Why a checkpoint thread: SQLite's automatic checkpoint runs inside the
// COMMIT that crosses the threshold, so that commit (and every caller in its
// batch) also pays for copying pages into the main file and an fsync of it.
// The writer connection turns it off and a second connection checkpoints in
// the background instead. Durability does not depend on checkpoints: a
// commit is durable once its WAL frames are synced (synchronous=FULL).

#include <sqlite3.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/database.h"
#include "store/internal.h"

namespace quarry::store::internal {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kMemoryPath = ":memory:";
// Statements kept prepared per connection; the set the product runs is far
// smaller, this only bounds memory if something generates SQL text.
constexpr size_t kStatementCacheLimit = 512;
// How long SQLite itself waits on a lock held by another process (e.g.
// `quarry keys rotate` next to a running server) before reporting busy.
constexpr int kBusyTimeoutMs = 5000;
// Background checkpoints: a PASSIVE one (never blocks readers or the writer)
// once the WAL holds this many pages, and at least this often while it has
// any. Under steady writes a PASSIVE checkpoint never quite catches up (the
// writer appends while it copies), and SQLite only starts the WAL over when
// everything has been copied, so past kWalLimitBytes the writer thread runs a
// RESTART checkpoint between two batches: it copies the little that is left,
// syncs the main file and lets the next commit start the WAL over. That
// pause is paid once per kWalLimitBytes of WAL instead of once per
// kCheckpointPages, as SQLite's automatic checkpoint would.
constexpr int kCheckpointPages = 1000;
constexpr auto kCheckpointInterval = std::chrono::seconds(1);
// Pause between two checkpoints (a request arriving sooner waits for it), so
// a WAL that cannot be reset does not make the thread spin.
constexpr auto kCheckpointSpacing = std::chrono::milliseconds(20);
constexpr int64_t kWalLimitBytes = int64_t{64} << 20;
// The writer's RESTART waits at most this long for readers to leave the WAL
// (a long Read() must not stall every write), and after a failed attempt
// waits this long before the next one.
constexpr int kRestartBusyTimeoutMs = 20;
constexpr auto kRestartRetryDelay = std::chrono::milliseconds(200);
// A failing checkpoint is logged at warning level at most this often.
constexpr auto kCheckpointLogInterval = std::chrono::seconds(60);

// Maps an SQLite (extended) result code to a Status. `what` names the
// operation and `sql` the statement; the engine's message names the cause
// (SQLite never puts bound values into it).
Status SqliteStatus(int rc, std::string_view engine_message, std::string_view what,
                    std::string_view sql) {
  std::string context = std::string(what);
  if (!sql.empty()) context += " \"" + SqlSnippet(sql) + "\"";
  std::string cause(engine_message);
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status(StatusCode::kAlreadyExists, context + ": " + cause);
      }
      return FailedPreconditionError(context + ": " + cause);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(context + ": the database is locked by another connection (" +
                              cause + "); retry later, or stop the other process using the file");
    case SQLITE_READONLY:
      return InvalidArgumentError(context + ": " + cause +
                                  " (a write inside Database::Read: use Database::Write)");
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return DataLossError(context + ": " + cause +
                           " (the file is not a Quarry database or is damaged: restore it from a "
                           "backup)");
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return UnavailableError(context + ": " + cause +
                              " (check that the directory exists and is writable by this user)");
    case SQLITE_FULL:
      return UnavailableError(context + ": " + cause + " (free disk space, then retry)");
    case SQLITE_ERROR:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
      return InvalidArgumentError(context + ": " + cause);
    default:
      return InternalError(context + ": " + cause);
  }
}

bool OnlyWhitespace(const char* text) {
  if (text == nullptr) return true;
  for (; *text != '\0'; ++text) {
    if (!std::isspace(static_cast<unsigned char>(*text))) return false;
  }
  return true;
}

// One connection and its statement cache. Used by one thread at a time.
class Connection {
 public:
  Connection() = default;
  ~Connection() {
    for (auto& [sql, entry] : cache_) sqlite3_finalize(entry.stmt);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Lets the cache be searched with a string_view (no string built per lookup).
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };

  static Result<std::unique_ptr<Connection>> Open(const std::string& path, bool read_only) {
    auto conn = std::make_unique<Connection>();
    int flags = SQLITE_OPEN_NOMUTEX;
    flags |= read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path.c_str(), &conn->db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string message =
          conn->db_ != nullptr ? sqlite3_errmsg(conn->db_) : std::string(sqlite3_errstr(rc));
      return SqliteStatus(rc, message, "opening database file " + path, "");
    }
    sqlite3_extended_result_codes(conn->db_, 1);
    sqlite3_busy_timeout(conn->db_, kBusyTimeoutMs);
    return conn;
  }

  sqlite3* db() const { return db_; }

  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    bool multi = false;  // more statements follow the first
    std::shared_ptr<const std::vector<std::string>> columns;
  };

  // The cached statement for `sql`, preparing it on first use.
  Result<Entry*> Prepare(std::string_view sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return &it->second;
    if (cache_.size() >= kStatementCacheLimit) {
      for (auto& [text, entry] : cache_) sqlite3_finalize(entry.stmt);
      cache_.clear();
    }
    Entry entry;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &entry.stmt, &tail);
    if (rc != SQLITE_OK) {
      return SqliteStatus(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_), "preparing", sql);
    }
    if (tail != nullptr && tail < sql.data() + sql.size()) {
      entry.multi = !OnlyWhitespace(std::string(tail, sql.data() + sql.size()).c_str());
    }
    return &cache_.emplace(std::string(sql), std::move(entry)).first->second;
  }

  // Runs a statement that takes no parameters and returns no rows
  // (transaction control, pragmas). Cached like any other.
  Status Simple(std::string_view sql) {
    QUARRY_ASSIGN_OR_RETURN(Entry * entry, Prepare(sql));
    if (entry->stmt == nullptr) return Status::Ok();
    int rc;
    do {
      rc = sqlite3_step(entry->stmt);
    } while (rc == SQLITE_ROW);
    sqlite3_reset(entry->stmt);
    if (rc != SQLITE_DONE) {
      return SqliteStatus(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_), "running", sql);
    }
    return Status::Ok();
  }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, Entry, TextHash, std::equal_to<>> cache_;
};

// Binds Params to "$N" placeholders. SQLite numbers named parameters by
// first appearance, so "$N" is resolved by name; every $1..$n must be used
// and exactly n values given, as PostgreSQL requires.
Status Bind(sqlite3_stmt* stmt, std::string_view sql, const Params& params) {
  const int count = sqlite3_bind_parameter_count(stmt);
  size_t highest = 0;
  for (int index = 1; index <= count; ++index) {
    const char* name = sqlite3_bind_parameter_name(stmt, index);
    size_t number = 0;
    bool valid = name != nullptr && name[0] == '$' && name[1] != '\0';
    for (const char* p = valid ? name + 1 : ""; valid && *p != '\0'; ++p) {
      if (*p < '0' || *p > '9' || number > 100000) {
        valid = false;
        break;
      }
      number = number * 10 + static_cast<size_t>(*p - '0');
    }
    if (!valid || number == 0) {
      return InvalidArgumentError("\"" + SqlSnippet(sql) +
                                  "\": use the placeholders $1, $2, ... (found " +
                                  (name != nullptr ? std::string(name) : std::string("?")) + ")");
    }
    if (number > params.size()) {
      return InvalidArgumentError("\"" + SqlSnippet(sql) + "\": uses $" + std::to_string(number) +
                                  " but " + std::to_string(params.size()) +
                                  " parameters were given");
    }
    highest = std::max(highest, number);
    const Value& value = params[number - 1];
    int rc = SQLITE_OK;
    if (const auto* n = std::get_if<int64_t>(&value)) {
      rc = sqlite3_bind_int64(stmt, index, *n);
    } else if (const auto* d = std::get_if<double>(&value)) {
      rc = sqlite3_bind_double(stmt, index, *d);
    } else if (const auto* s = std::get_if<std::string>(&value)) {
      // SQLITE_STATIC: `params` outlives the statement's use (reset below).
      rc = sqlite3_bind_text64(stmt, index, s->data(), s->size(), SQLITE_STATIC, SQLITE_UTF8);
    } else {
      rc = sqlite3_bind_null(stmt, index);
    }
    if (rc != SQLITE_OK) {
      return SqliteStatus(rc, sqlite3_errstr(rc), "binding parameters of", sql);
    }
  }
  if (static_cast<size_t>(count) != params.size() || highest != params.size()) {
    return InvalidArgumentError("\"" + SqlSnippet(sql) + "\": " + std::to_string(params.size()) +
                                " parameters were given but the statement uses " +
                                std::to_string(count) + " distinct placeholders; pass exactly "
                                "one value for each of $1..$n");
  }
  return Status::Ok();
}

Value ColumnValue(sqlite3_stmt* stmt, int column) {
  switch (sqlite3_column_type(stmt, column)) {
    case SQLITE_INTEGER:
      return int64_t{sqlite3_column_int64(stmt, column)};
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt, column);
    case SQLITE_TEXT: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
      return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
    }
    case SQLITE_BLOB: {
      const auto* blob = static_cast<const char*>(sqlite3_column_blob(stmt, column));
      return std::string(blob, static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
    }
    default:
      return std::monostate{};
  }
}

// Resets a statement when it goes out of scope, whatever path returns.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

class SqliteTx final : public Tx {
 public:
  explicit SqliteTx(Connection* conn) : conn_(conn) {}

  // A failed statement ends the transaction, as on PostgreSQL, so a function
  // behaves the same on both engines (see FailedTransactionTracker).
  Result<Rows> Query(std::string_view sql, const Params& params) override {
    QUARRY_RETURN_IF_ERROR(tracker_.CheckUsable());
    return tracker_.Record(QueryImpl(sql, params));
  }
  Result<int64_t> Exec(std::string_view sql, const Params& params) override {
    QUARRY_RETURN_IF_ERROR(tracker_.CheckUsable());
    return tracker_.Record(ExecImpl(sql, params));
  }
  Dialect dialect() const override { return Dialect::kSqlite; }
  // The function's result, adjusted as described in FailedTransactionTracker.
  Status Finish(Status fn_status) const { return tracker_.Finish(std::move(fn_status)); }

 private:
  Result<Rows> QueryImpl(std::string_view sql, const Params& params) {
    if (IsTransactionControl(sql)) return TransactionControlError(sql);
    QUARRY_ASSIGN_OR_RETURN(Connection::Entry * entry, conn_->Prepare(sql));
    if (entry->multi) {
      return InvalidArgumentError("\"" + SqlSnippet(sql) +
                                  "\": Query takes exactly one statement; split it");
    }
    Rows rows;
    if (entry->stmt == nullptr) return rows;
    sqlite3_stmt* stmt = entry->stmt;
    ResetOnExit reset(stmt);
    QUARRY_RETURN_IF_ERROR(Bind(stmt, sql, params));
    const int column_count = sqlite3_column_count(stmt);
    if (entry->columns == nullptr || entry->columns->size() != static_cast<size_t>(column_count)) {
      auto names = std::make_shared<std::vector<std::string>>();
      for (int c = 0; c < column_count; ++c) {
        const char* name = sqlite3_column_name(stmt, c);
        names->emplace_back(name != nullptr ? name : "");
      }
      entry->columns = std::move(names);
    }
    rows.columns = *entry->columns;
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return StepError(sql);
      std::vector<Value> values;
      values.reserve(static_cast<size_t>(column_count));
      for (int c = 0; c < column_count; ++c) values.push_back(ColumnValue(stmt, c));
      rows.rows.emplace_back(std::move(values), entry->columns);
    }
    return rows;
  }

  Result<int64_t> ExecImpl(std::string_view sql, const Params& params) {
    if (IsTransactionControl(sql)) return TransactionControlError(sql);
    QUARRY_ASSIGN_OR_RETURN(Connection::Entry * entry, conn_->Prepare(sql));
    if (entry->multi) return ExecScript(sql, params);
    if (entry->stmt == nullptr) return int64_t{0};
    sqlite3_stmt* stmt = entry->stmt;
    ResetOnExit reset(stmt);
    QUARRY_RETURN_IF_ERROR(Bind(stmt, sql, params));
    int rc;
    do {
      rc = sqlite3_step(stmt);
    } while (rc == SQLITE_ROW);
    if (rc != SQLITE_DONE) return StepError(sql);
    return int64_t{sqlite3_changes64(conn_->db())};
  }

  Status StepError(std::string_view sql) {
    sqlite3* db = conn_->db();
    return SqliteStatus(sqlite3_extended_errcode(db), sqlite3_errmsg(db), "running", sql);
  }

  // Several statements separated by ';' (migrations). Not cached, and like
  // PostgreSQL's simple query protocol they take no parameters.
  Result<int64_t> ExecScript(std::string_view sql, const Params& params) {
    if (!params.empty()) {
      return InvalidArgumentError("\"" + SqlSnippet(sql) +
                                  "\": several statements cannot take parameters; run them one "
                                  "by one");
    }
    sqlite3* db = conn_->db();
    const char* next = sql.data();
    const char* end = sql.data() + sql.size();
    int64_t changes = 0;
    while (next < end) {
      sqlite3_stmt* stmt = nullptr;
      const char* tail = nullptr;
      int rc = sqlite3_prepare_v3(db, next, static_cast<int>(end - next), 0, &stmt, &tail);
      if (rc != SQLITE_OK) {
        return SqliteStatus(sqlite3_extended_errcode(db), sqlite3_errmsg(db), "preparing",
                            std::string_view(next, static_cast<size_t>(end - next)));
      }
      if (stmt == nullptr) break;  // only whitespace or comments left
      std::string_view one(next, static_cast<size_t>(tail - next));
      do {
        rc = sqlite3_step(stmt);
      } while (rc == SQLITE_ROW);
      sqlite3_finalize(stmt);
      if (rc != SQLITE_DONE) {
        return SqliteStatus(sqlite3_extended_errcode(db), sqlite3_errmsg(db), "running", one);
      }
      changes = sqlite3_changes64(db);
      next = tail;
    }
    return changes;
  }

  Connection* conn_;
  FailedTransactionTracker tracker_;
};

// Runs a transaction function, turning an escaping exception into an error:
// the writer thread runs other modules' code and must survive their bugs.
Status RunFunction(const std::function<Status(Tx&)>& fn, Tx& tx) {
  try {
    return fn(tx);
  } catch (const std::exception& e) {
    return InternalError(std::string("transaction function threw an exception: ") + e.what());
  } catch (...) {
    return InternalError("transaction function threw an exception");
  }
}

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(std::string path, const DatabaseOptions& options)
      : path_(std::move(path)),
        memory_(path_ == kMemoryPath),
        options_(options),
        max_queue_(static_cast<size_t>(std::max(1024, options.max_batch * 4))) {}

  ~SqliteDatabase() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    space_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    {
      std::lock_guard<std::mutex> lock(checkpoint_mutex_);
      checkpoint_stopping_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
    checkpoint_conn_.reset();
    readers_.clear();
    // Closed last: the last connection to close checkpoints the whole WAL.
    writer_conn_.reset();
  }

  Status Start() {
    QUARRY_ASSIGN_OR_RETURN(writer_conn_, Connection::Open(path_, /*read_only=*/false));
    // journal_mode is the first statement that reads the file, so a file that
    // is not a database fails here with DataLoss.
    QUARRY_RETURN_IF_ERROR(
        writer_conn_->Simple(memory_ ? "PRAGMA journal_mode=MEMORY" : "PRAGMA journal_mode=WAL")
            .WithContext("opening " + DisplayUrl()));
    QUARRY_RETURN_IF_ERROR(writer_conn_->Simple("PRAGMA synchronous=FULL"));
    QUARRY_RETURN_IF_ERROR(writer_conn_->Simple("PRAGMA foreign_keys=ON"));
    if (!memory_) QUARRY_RETURN_IF_ERROR(StartCheckpointer());
    writer_ = std::thread([this] { WriterLoop(); });
    return Status::Ok();
  }

  Dialect dialect() const override { return Dialect::kSqlite; }
  std::string DisplayUrl() const override { return "sqlite:" + path_; }

  Status Write(const std::function<Status(Tx&)>& fn) override {
    if (InTransactionOf(this)) return NestedTransactionError();
    return Submit(fn, /*read_only=*/false);
  }

  Status Read(const std::function<Status(Tx&)>& fn) override {
    if (InTransactionOf(this)) return NestedTransactionError();
    // An in-memory database exists only in the writer's connection.
    if (memory_) return Submit(fn, /*read_only=*/true);
    return ReadOnPool(fn);
  }

  Status Ping() override {
    return Read([](Tx& tx) { return tx.Query("SELECT 1").status(); });
  }

 private:
  enum class JobState { kQueued, kRunning, kDone };
  struct Job {
    const std::function<Status(Tx&)>* fn = nullptr;
    bool read_only = false;
    JobState state = JobState::kQueued;
    Status result;
    std::vector<std::function<void()>> after_commit;  // kept only while the job's work is committed
  };

  Clock::time_point Deadline() const {
    return Clock::now() + std::chrono::milliseconds(options_.acquire_timeout_ms);
  }

  // Queues a job for the writer and waits for its result. A job still queued
  // at the deadline is withdrawn (it never runs); one already running is
  // waited for, since its outcome is about to be known.
  Status Submit(const std::function<Status(Tx&)>& fn, bool read_only) {
    Job job;
    job.fn = &fn;
    job.read_only = read_only;
    const auto deadline = Deadline();
    std::unique_lock<std::mutex> lock(mutex_);
    if (!space_cv_.wait_until(lock, deadline,
                              [&] { return stopping_ || queue_.size() < max_queue_; })) {
      return UnavailableError("the database writer has " + std::to_string(queue_.size()) +
                              " writes queued and none could be added within " +
                              std::to_string(options_.acquire_timeout_ms) +
                              " ms; the server is overloaded, retry later");
    }
    if (stopping_) return UnavailableError("the database is closing; retry on the new instance");
    queue_.push_back(&job);
    queue_cv_.notify_one();
    if (!done_cv_.wait_until(lock, deadline, [&] { return job.state == JobState::kDone; })) {
      if (job.state == JobState::kQueued) {
        queue_.erase(std::find(queue_.begin(), queue_.end(), &job));
        space_cv_.notify_one();
        return UnavailableError("the database writer did not start this write within " +
                                std::to_string(options_.acquire_timeout_ms) +
                                " ms (it was not applied); the server is overloaded or the disk "
                                "is slow, retry later");
      }
      done_cv_.wait(lock, [&] { return job.state == JobState::kDone; });
    }
    lock.unlock();
    if (job.result.ok()) {
      for (auto& after : job.after_commit) after();
    }
    return job.result;
  }

  void WriterLoop() {
    std::vector<Job*> batch;
    batch.reserve(static_cast<size_t>(options_.max_batch));
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      batch.clear();
      while (!queue_.empty() && batch.size() < static_cast<size_t>(options_.max_batch)) {
        Job* job = queue_.front();
        queue_.pop_front();
        job->state = JobState::kRunning;
        batch.push_back(job);
      }
      space_cv_.notify_all();
      lock.unlock();
      RunBatch(batch);
      RestartWalIfTooLarge();
      lock.lock();
      for (Job* job : batch) job->state = JobState::kDone;
      // One wake-up call for the whole batch instead of one per caller, made
      // without the lock so woken callers do not queue on it behind us. Safe:
      // done_cv_ outlives every waiter (a Job may be gone once unlocked).
      lock.unlock();
      done_cv_.notify_all();
      lock.lock();
    }
  }

  // Turns off the automatic checkpoint on the writer connection and starts
  // the checkpoint thread on a connection of its own.
  Status StartCheckpointer() {
    QUARRY_RETURN_IF_ERROR(writer_conn_->Simple("PRAGMA wal_autocheckpoint=0"));
    // When the WAL is reset after a checkpoint, shrink a file that grew past
    // the bound back to it.
    QUARRY_RETURN_IF_ERROR(
        writer_conn_->Simple("PRAGMA journal_size_limit=" + std::to_string(kWalLimitBytes)));
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(writer_conn_->db(), "PRAGMA page_size", -1, &stmt, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      page_size_ = std::max<int64_t>(512, sqlite3_column_int64(stmt, 0));
    }
    sqlite3_finalize(stmt);
    QUARRY_ASSIGN_OR_RETURN(checkpoint_conn_, Connection::Open(path_, /*read_only=*/false));
    // A connection opens the WAL only once it has read the database; until
    // then a checkpoint on it does nothing and still reports success.
    QUARRY_RETURN_IF_ERROR(checkpoint_conn_->Simple("PRAGMA schema_version")
                               .WithContext("opening the checkpoint connection"));
    // Set after the pragma above, which would clear it: the hook replaces
    // SQLite's own automatic checkpoint.
    sqlite3_wal_hook(writer_conn_->db(), &SqliteDatabase::OnWalCommit, this);
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
    return Status::Ok();
  }

  // Called by SQLite on the writer thread after each commit, with the number
  // of pages now in the WAL. Cheap unless it asks for a checkpoint.
  static int OnWalCommit(void* self, sqlite3*, const char*, int pages) {
    auto* db = static_cast<SqliteDatabase*>(self);
    db->wal_pages_.store(pages, std::memory_order_relaxed);
    if (pages >= kCheckpointPages && !db->checkpoint_requested_.exchange(true)) {
      std::lock_guard<std::mutex> lock(db->checkpoint_mutex_);
      db->checkpoint_cv_.notify_one();
    }
    return SQLITE_OK;
  }

  void CheckpointLoop() {
    std::unique_lock<std::mutex> lock(checkpoint_mutex_);
    for (;;) {
      checkpoint_cv_.wait_for(lock, kCheckpointInterval, [&] {
        return checkpoint_stopping_ || checkpoint_requested_.load();
      });
      if (checkpoint_stopping_) return;
      checkpoint_requested_.store(false);
      const int pages = wal_pages_.load(std::memory_order_relaxed);
      if (pages > 0) {
        lock.unlock();
        Checkpoint(pages);
        lock.lock();
      }
      checkpoint_cv_.wait_for(lock, kCheckpointSpacing, [&] { return checkpoint_stopping_; });
    }
  }

  // On the writer thread, between batches (see kWalLimitBytes).
  void RestartWalIfTooLarge() {
    if (memory_) return;
    const int pages = wal_pages_.load(std::memory_order_relaxed);
    if (int64_t{pages} * page_size_ < kWalLimitBytes) return;
    const auto now = Clock::now();
    if (now < next_restart_attempt_) return;
    sqlite3* db = writer_conn_->db();
    sqlite3_busy_timeout(db, kRestartBusyTimeoutMs);
    const int rc =
        sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
    sqlite3_busy_timeout(db, kBusyTimeoutMs);
    if (rc == SQLITE_OK) return;
    next_restart_attempt_ = now + kRestartRetryDelay;
    // Busy: the checkpoint thread is mid-way, or a reader stayed; try later.
    if ((rc & 0xff) == SQLITE_BUSY) return;
    LogCheckpointFailure(pages, sqlite3_errmsg(db), last_restart_warning_);
  }

  // Runs one PASSIVE checkpoint; failures are logged (the WAL keeps the
  // data, so a failed checkpoint only lets the WAL grow until one succeeds).
  void Checkpoint(int pages) {
    int wal_frames = -1;
    int checkpointed = -1;
    sqlite3* db = checkpoint_conn_->db();
    const int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames,
                                             &checkpointed);
    if (rc == SQLITE_OK) {
      // Everything is in the main file: the next commit starts the WAL over,
      // so no periodic checkpoint is needed until then (unless a commit
      // already reported a new count).
      if (wal_frames >= 0 && wal_frames == checkpointed) {
        int expected = pages;
        wal_pages_.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
      }
      return;
    }
    // PASSIVE is busy only when another connection (the writer's RESTART,
    // another process) is checkpointing: that one does the work.
    if ((rc & 0xff) == SQLITE_BUSY) return;
    LogCheckpointFailure(pages, sqlite3_errmsg(db), last_checkpoint_warning_);
  }

  // `last` is the calling thread's own rate limit.
  void LogCheckpointFailure(int pages, const char* cause, Clock::time_point& last) const {
    const auto now = Clock::now();
    const bool warn = now - last >= kCheckpointLogInterval;
    if (warn) last = now;
    spdlog::log(warn ? spdlog::level::warn : spdlog::level::debug,
                "checkpoint of {} ({} pages in the write-ahead log) failed: {}; the write-ahead "
                "log grows until a checkpoint succeeds (check free disk space, and look for "
                "long-running reads or another process holding the database)",
                DisplayUrl(), pages, cause);
  }

  // One transaction for the whole batch, a SAVEPOINT per job. Results are
  // stored in the jobs; nothing here returns early without setting them.
  void RunBatch(const std::vector<Job*>& batch) {
    std::vector<Job*> pending = batch;
    // Another process holding the write lock (SQLite waits kBusyTimeoutMs per
    // try) must not stall callers much beyond their own deadline.
    const auto deadline = Deadline();
    for (int attempt = 0; !pending.empty(); ++attempt) {
      Status begin = writer_conn_->Simple("BEGIN IMMEDIATE");
      if (!begin.ok()) {
        if (attempt < options_.max_retries && Clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5 << std::min(attempt, 6)));
          continue;
        }
        for (Job* job : pending) job->result = begin.WithContext("starting a write transaction");
        return;
      }
      std::vector<Job*> succeeded;  // rolled back with the batch if COMMIT fails
      std::vector<Job*> rerun;      // their work was lost when the engine aborted the batch
      bool transaction_lost = false;
      for (Job* job : pending) {
        if (transaction_lost) {
          rerun.push_back(job);
          continue;
        }
        job->result = RunJob(job);
        if (sqlite3_get_autocommit(writer_conn_->db()) != 0) {
          // SQLite rolled back the whole transaction (disk full, I/O error):
          // this job fails, the batch's earlier successes must run again.
          transaction_lost = true;
          if (job->result.ok()) {
            job->result = InternalError("the write transaction was aborted by the database engine");
          }
          rerun.insert(rerun.end(), succeeded.begin(), succeeded.end());
          succeeded.clear();
          continue;
        }
        if (job->result.ok()) succeeded.push_back(job);
      }
      if (!transaction_lost) {
        Status commit = writer_conn_->Simple("COMMIT");
        if (!commit.ok()) {
          (void)writer_conn_->Simple("ROLLBACK");
          for (Job* job : succeeded) {
            job->result = commit.WithContext("committing");
            job->after_commit.clear();
          }
        }
      }
      for (Job* job : rerun) job->after_commit.clear();  // the rerun registers its own
      if (rerun.empty()) return;
      if (attempt >= options_.max_retries) {
        for (Job* job : rerun) {
          job->result = UnavailableError(
              "the write could not be committed: the database engine aborted the transaction "
              "repeatedly (check free disk space and the server log)");
        }
        return;
      }
      pending = std::move(rerun);
    }
  }

  Status RunJob(Job* job) {
    Status status = writer_conn_->Simple("SAVEPOINT quarry_write");
    if (!status.ok()) return status;
    if (job->read_only) status = writer_conn_->Simple("PRAGMA query_only=1");
    if (status.ok()) {
      ScopedActiveTransaction active(this);
      SqliteTx tx(writer_conn_.get());
      status = tx.Finish(RunFunction(*job->fn, tx));
      job->after_commit = tx.TakeAfterCommit();
    }
    if (job->read_only) (void)writer_conn_->Simple("PRAGMA query_only=0");
    if (sqlite3_get_autocommit(writer_conn_->db()) != 0) return status;
    if (status.ok() && !job->read_only) {
      Status release = writer_conn_->Simple("RELEASE quarry_write");
      if (release.ok()) return status;
      status = release;
    }
    if (!status.ok()) job->after_commit.clear();  // a read-only job ends here too, without error
    (void)writer_conn_->Simple("ROLLBACK TO quarry_write");
    (void)writer_conn_->Simple("RELEASE quarry_write");
    return status;
  }

  Result<std::unique_ptr<Connection>> AcquireReader() {
    std::unique_lock<std::mutex> lock(readers_mutex_);
    if (!readers_cv_.wait_until(lock, Deadline(), [&] {
          return !readers_.empty() || readers_open_ < options_.pool_size;
        })) {
      return UnavailableError("no database read connection became free within " +
                              std::to_string(options_.acquire_timeout_ms) +
                              " ms; the server is overloaded, retry later");
    }
    if (!readers_.empty()) {
      auto conn = std::move(readers_.back());
      readers_.pop_back();
      return conn;
    }
    ++readers_open_;
    lock.unlock();
    auto opened = Connection::Open(path_, /*read_only=*/true);
    if (!opened.ok()) {
      lock.lock();
      --readers_open_;
      readers_cv_.notify_one();
    }
    return opened;
  }

  void ReleaseReader(std::unique_ptr<Connection> conn) {
    std::lock_guard<std::mutex> lock(readers_mutex_);
    readers_.push_back(std::move(conn));
    readers_cv_.notify_one();
  }

  Status ReadOnPool(const std::function<Status(Tx&)>& fn) {
    QUARRY_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, AcquireReader());
    Status status;
    std::vector<std::function<void()>> after_commit;
    for (int attempt = 0;; ++attempt) {
      status = conn->Simple("BEGIN");
      if (status.ok()) {
        ScopedActiveTransaction active(this);
        SqliteTx tx(conn.get());
        status = tx.Finish(RunFunction(fn, tx));
        after_commit = tx.TakeAfterCommit();
      }
      const int code = sqlite3_extended_errcode(conn->db()) & 0xff;
      if (sqlite3_get_autocommit(conn->db()) == 0) (void)conn->Simple("ROLLBACK");
      const bool busy = !status.ok() && status.code() == StatusCode::kUnavailable &&
                        (code == SQLITE_BUSY || code == SQLITE_LOCKED);
      if (!busy || attempt >= options_.max_retries) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5 << std::min(attempt, 6)));
    }
    ReleaseReader(std::move(conn));
    if (status.ok()) {
      for (auto& after : after_commit) after();
    }
    return status;
  }

  const std::string path_;
  const bool memory_;
  const DatabaseOptions options_;
  const size_t max_queue_;

  std::unique_ptr<Connection> writer_conn_;  // used only by the writer thread after Start()
  std::thread writer_;
  std::mutex mutex_;
  std::condition_variable queue_cv_;  // the writer waits for jobs
  std::condition_variable space_cv_;  // callers wait for room in the queue
  std::condition_variable done_cv_;   // callers wait for their job's result
  std::deque<Job*> queue_;
  bool stopping_ = false;

  // Background checkpoints (file databases only).
  std::unique_ptr<Connection> checkpoint_conn_;  // used only by checkpointer_
  std::thread checkpointer_;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_stopping_ = false;  // guarded by checkpoint_mutex_
  std::atomic<bool> checkpoint_requested_{false};
  std::atomic<int> wal_pages_{0};  // as of the last commit
  int64_t page_size_ = 4096;       // set in Start()
  Clock::time_point last_checkpoint_warning_{};  // checkpointer_ only
  Clock::time_point last_restart_warning_{};     // writer_ only
  Clock::time_point next_restart_attempt_{};     // writer_ only

  std::mutex readers_mutex_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Connection>> readers_;  // idle
  int readers_open_ = 0;
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqlite(std::string_view path, const DatabaseOptions& options) {
  auto db = std::make_unique<SqliteDatabase>(std::string(path), options);
  QUARRY_RETURN_IF_ERROR(db->Start());
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace quarry::store::internal
