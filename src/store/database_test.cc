// The storage contract, run on every engine: SQLite on a file, SQLite in
// memory, and PostgreSQL in a throwaway cluster (skipped, loudly, only when
// the server is not installed).

#include "store/database.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <ostream>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "store/migrations.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/scratch_dir.h"

namespace quarry::store {
namespace {

constexpr std::string_view kCreateItems =
    "CREATE TABLE items ("
    " id TEXT PRIMARY KEY,"
    " n BIGINT,"
    " x DOUBLE PRECISION,"
    " note TEXT,"
    " qty BIGINT CHECK (qty IS NULL OR qty >= 0))";
constexpr std::string_view kCreateParts =
    "CREATE TABLE parts ("
    " id TEXT PRIMARY KEY,"
    " item_id TEXT NOT NULL REFERENCES items (id))";
constexpr std::string_view kInsertItem =
    "INSERT INTO items (id, n, x, note, qty) VALUES ($1, $2, $3, $4, $5)";

enum class Backend { kSqliteFile, kSqliteMemory, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kSqliteFile:
      return "SqliteFile";
    case Backend::kSqliteMemory:
      return "SqliteMemory";
    case Backend::kPostgres:
      return "Postgres";
  }
  return "Unknown";
}

void PrintTo(Backend backend, std::ostream* out) {
  *out << BackendName(::testing::TestParamInfo<Backend>(backend, 0));
}

class DatabaseTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::kSqliteFile:
        url_ = "sqlite:" + scratch_.Path("quarry.db");
        break;
      case Backend::kSqliteMemory:
        url_ = "sqlite::memory:";
        break;
      case Backend::kPostgres: {
        testing::PostgresDatabase pg = testing::SharedPostgresDatabase();
        if (pg.url.empty()) GTEST_SKIP() << "PostgreSQL tests skipped: " << pg.skip_reason;
        url_ = pg.url;
        break;
      }
    }
    auto db = Database::Open(url_, options_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
  }

  void CreateTables() {
    ASSERT_TRUE(db_->Write([](Tx& tx) -> Status {
                     QUARRY_RETURN_IF_ERROR(tx.Exec(kCreateItems));
                     return tx.Exec(kCreateParts).status();
                   }).ok());
  }

  int64_t CountItems() {
    int64_t count = -1;
    Status status = db_->Read([&](Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT COUNT(*) FROM items", {}, "count"));
      count = row.Int(0);
      return Status::Ok();
    });
    EXPECT_TRUE(status.ok()) << status.ToString();
    return count;
  }

  testing::ScratchDir scratch_;
  DatabaseOptions options_;
  std::string url_;
  std::unique_ptr<Database> db_;
};

TEST_P(DatabaseTest, ReportsItsDialect) {
  EXPECT_EQ(db_->dialect(), GetParam() == Backend::kPostgres ? Dialect::kPostgres : Dialect::kSqlite);
  EXPECT_TRUE(db_->Ping().ok());
}

TEST_P(DatabaseTest, CreatesReadsUpdatesAndDeletes) {
  CreateTables();
  ASSERT_TRUE(db_->Write([](Tx& tx) -> Status {
                   return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.5, "first", int64_t{3}}).status();
                 }).ok());
  Status status = db_->Write([](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(int64_t changed,
                            tx.Exec("UPDATE items SET note = $1 WHERE id = $2", {"changed", "a"}));
    EXPECT_EQ(changed, 1);
    QUARRY_ASSIGN_OR_RETURN(int64_t none,
                            tx.Exec("UPDATE items SET note = $1 WHERE id = $2", {"x", "zzz"}));
    EXPECT_EQ(none, 0);
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  status = db_->Read([](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(Row row,
                            tx.QueryOne("SELECT id, n, x, note FROM items WHERE id = $1", {"a"}, "item"));
    EXPECT_EQ(row.Text(row.Index("id")), "a");
    EXPECT_EQ(row.Int(row.Index("n")), 1);
    EXPECT_DOUBLE_EQ(row.Double(row.Index("x")), 1.5);
    EXPECT_EQ(row.Text(row.Index("note")), "changed");
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  status = db_->Write([](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(int64_t deleted, tx.Exec("DELETE FROM items WHERE id = $1", {"a"}));
    EXPECT_EQ(deleted, 1);
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(CountItems(), 0);
}

TEST_P(DatabaseTest, RoundTripsEveryParameterTypeAndNull) {
  CreateTables();
  const std::string text_with_quotes = "it's \"quoted\"; DROP TABLE items; -- \xc3\xa9";
  ASSERT_TRUE(db_->Write([&](Tx& tx) -> Status {
                   QUARRY_RETURN_IF_ERROR(tx.Exec(
                       kInsertItem, {"full", int64_t{-9'000'000'000'000}, -0.125, text_with_quotes,
                                     Bool(true)}));
                   return tx.Exec(kInsertItem, {"empty", Null(), Null(), OptionalText(std::nullopt),
                                                Null()})
                       .status();
                 }).ok());
  Status status = db_->Read([&](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(Rows rows,
                            tx.Query("SELECT id, n, x, note, qty FROM items ORDER BY id"));
    EXPECT_EQ(rows.columns, (std::vector<std::string>{"id", "n", "x", "note", "qty"}));
    EXPECT_EQ(rows.size(), 2u);
    const Row& empty = rows.rows[0];
    for (size_t i = 1; i < 5; ++i) EXPECT_TRUE(empty.IsNull(i)) << i;
    EXPECT_EQ(empty.Int(1), 0);
    EXPECT_EQ(empty.OptInt(1), std::nullopt);
    EXPECT_EQ(empty.OptText(3), std::nullopt);
    EXPECT_EQ(empty.Text(3), "");
    EXPECT_EQ(empty.Double(2), 0.0);
    const Row& full = rows.rows[1];
    EXPECT_TRUE(std::holds_alternative<int64_t>(full.at(1)));
    EXPECT_EQ(full.Int(1), -9'000'000'000'000);
    EXPECT_EQ(full.Text(1), "-9000000000000");
    EXPECT_TRUE(std::holds_alternative<double>(full.at(2)));
    EXPECT_EQ(full.Double(2), -0.125);
    EXPECT_EQ(full.Text(2), "-0.125");
    EXPECT_TRUE(std::holds_alternative<std::string>(full.at(3)));
    EXPECT_EQ(full.Text(3), text_with_quotes);
    EXPECT_TRUE(full.Bool(4));
    EXPECT_EQ(full.OptInt(4), 1);
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
}

TEST_P(DatabaseTest, TypesExpressionsTheSameOnBothEngines) {
  Status status = db_->Read([](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT $1, $2, $3, $4, 1 = 1, 2 * 3",
                                                 {int64_t{7}, 2.5, "s", Null()}, "row"));
    EXPECT_TRUE(std::holds_alternative<int64_t>(row.at(0)));
    EXPECT_TRUE(std::holds_alternative<double>(row.at(1)));
    EXPECT_TRUE(std::holds_alternative<std::string>(row.at(2)));
    EXPECT_TRUE(row.IsNull(3));
    EXPECT_TRUE(std::holds_alternative<int64_t>(row.at(4)));
    EXPECT_EQ(row.Int(4), 1);
    EXPECT_EQ(row.Int(5), 6);
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
}

TEST_P(DatabaseTest, ARowOutlivesItsResult) {
  CreateTables();
  ASSERT_TRUE(db_->Write([](Tx& tx) {
                   return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "n", Null()}).status();
                 }).ok());
  std::optional<Row> kept;
  ASSERT_TRUE(db_->Read([&](Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT note, id FROM items", {}, "item"));
                   kept = std::move(row);
                   return Status::Ok();
                 }).ok());
  EXPECT_EQ(kept->Text(kept->Index("id")), "a");
  EXPECT_EQ(kept->Text(kept->Index("note")), "n");
}

TEST_P(DatabaseTest, QueryOneSaysWhatWasNotFound) {
  CreateTables();
  Status status = db_->Read([](Tx& tx) {
    return tx.QueryOne("SELECT id FROM items WHERE id = $1", {"nope"}, "item nope").status();
  });
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "item nope not found");
}

TEST_P(DatabaseTest, UniqueViolationIsAlreadyExistsAndHidesValues) {
  CreateTables();
  ASSERT_TRUE(db_->Write([](Tx& tx) {
                   return tx.Exec(kInsertItem, {"dup-secret-value", int64_t{1}, 1.0, "", Null()}).status();
                 }).ok());
  Status status = db_->Write([](Tx& tx) {
    return tx.Exec(kInsertItem, {"dup-secret-value", int64_t{2}, 2.0, "", Null()}).status();
  });
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.ToString();
  EXPECT_EQ(status.message().find("dup-secret-value"), std::string::npos) << status.message();
  EXPECT_EQ(CountItems(), 1);
}

TEST_P(DatabaseTest, ForeignKeyAndCheckViolationsAreFailedPrecondition) {
  CreateTables();
  Status status = db_->Write([](Tx& tx) {
    return tx.Exec("INSERT INTO parts (id, item_id) VALUES ($1, $2)", {"p", "missing"}).status();
  });
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  status = db_->Write([](Tx& tx) {
    return tx.Exec(kInsertItem, {"neg", int64_t{1}, 1.0, "", int64_t{-1}}).status();
  });
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
}

TEST_P(DatabaseTest, AFailingFunctionRollsBackEverything) {
  CreateTables();
  Status status = db_->Write([](Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}));
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {"b", int64_t{1}, 1.0, "", Null()}));
    return InvalidArgumentError("caller changed its mind");
  });
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "caller changed its mind");
  EXPECT_EQ(CountItems(), 0);
  // A failed statement does not poison the transaction: the function may
  // handle the error and carry on (same on both engines only up to the
  // failure, so callers return it; here we check it is reported).
  status = db_->Write([](Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}));
    return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}).status();
  });
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(CountItems(), 0);
}

TEST_P(DatabaseTest, AFailedStatementAbortsTheTransactionOnBothEngines) {
  CreateTables();
  Status after_failure;
  Status status = db_->Write([&](Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}));
    Status duplicate = tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}).status();
    EXPECT_EQ(duplicate.code(), StatusCode::kAlreadyExists);
    after_failure = tx.Exec(kInsertItem, {"b", int64_t{1}, 1.0, "", Null()}).status();
    return Status::Ok();  // wrongly carries on
  });
  EXPECT_EQ(after_failure.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(after_failure.message().find("earlier statement"), std::string::npos);
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists) << status.ToString();
  EXPECT_NE(status.message().find("rolled back"), std::string::npos);
  EXPECT_EQ(CountItems(), 0);
}

TEST_P(DatabaseTest, ReturningGivesGeneratedValues) {
  CreateTables();
  Status status = db_->Write([](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(
        Rows rows, tx.Query("INSERT INTO items (id, n) VALUES ($1, $2) "
                            "ON CONFLICT (id) DO UPDATE SET n = items.n + 1 RETURNING id, n",
                            {"a", int64_t{5}}));
    EXPECT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows.rows[0].Int(1), 5);
    QUARRY_ASSIGN_OR_RETURN(
        rows, tx.Query("INSERT INTO items (id, n) VALUES ($1, $2) "
                       "ON CONFLICT (id) DO UPDATE SET n = items.n + 1 RETURNING id, n",
                       {"a", int64_t{5}}));
    EXPECT_EQ(rows.rows[0].Int(1), 6);
    return Status::Ok();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
}

TEST_P(DatabaseTest, ProgrammingErrorsAreInvalidArgument) {
  CreateTables();
  auto code_of = [&](std::function<Status(Tx&)> fn) { return db_->Write(fn).code(); };
  EXPECT_EQ(code_of([](Tx& tx) { return tx.Exec("SELEKT 1").status(); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([](Tx& tx) { return tx.Query("SELECT * FROM no_such_table").status(); }),
            StatusCode::kInvalidArgument);
  // Wrong parameter counts.
  EXPECT_EQ(code_of([](Tx& tx) {
              return tx.Query("SELECT id FROM items WHERE id = $1", {}).status();
            }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([](Tx& tx) {
              return tx.Query("SELECT id FROM items WHERE id = $1", {"a", "b"}).status();
            }),
            StatusCode::kInvalidArgument);
  // The Database owns transaction boundaries.
  EXPECT_EQ(code_of([](Tx& tx) { return tx.Exec("COMMIT").status(); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of([](Tx& tx) { return tx.Exec("  begin").status(); }),
            StatusCode::kInvalidArgument);
  // Writing inside Read.
  Status status = db_->Read([](Tx& tx) {
    return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}).status();
  });
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_EQ(CountItems(), 0);
}

TEST_P(DatabaseTest, RunsSeveralStatementsWithoutParameters) {
  Status status = db_->Write([](Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(tx.Exec(
        "CREATE TABLE a (id TEXT PRIMARY KEY);\n"
        "CREATE TABLE b (id TEXT PRIMARY KEY);\n"
        "INSERT INTO a (id) VALUES ('x');\n"));
    QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT COUNT(*) FROM a", {}, "count"));
    EXPECT_EQ(row.Int(0), 1);
    return Status::Ok();
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST_P(DatabaseTest, NestedTransactionsFailInsteadOfHanging) {
  CreateTables();
  Status inner_write, inner_read;
  Status outer = db_->Write([&](Tx& tx) -> Status {
    inner_write = db_->Write([](Tx&) { return Status::Ok(); });
    inner_read = db_->Read([](Tx&) { return Status::Ok(); });
    return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}).status();
  });
  EXPECT_TRUE(outer.ok()) << outer.ToString();
  EXPECT_EQ(inner_write.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(inner_write.message().find("nested transactions are not supported"), std::string::npos);
  EXPECT_EQ(inner_read.code(), StatusCode::kFailedPrecondition);
  Status in_read;
  EXPECT_TRUE(db_->Read([&](Tx&) {
                   in_read = db_->Write([](Tx&) { return Status::Ok(); });
                   return Status::Ok();
                 }).ok());
  EXPECT_EQ(in_read.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CountItems(), 1);
}

TEST_P(DatabaseTest, ConcurrentWritesAllCommit) {
  CreateTables();
  constexpr int kThreads = 8;
  constexpr int kWritesPerThread = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        Status status = db_->Write([&](Tx& tx) {
          return tx
              .Exec(kInsertItem, {std::to_string(t) + "-" + std::to_string(i), int64_t{i}, 0.5,
                                  "row", Null()})
              .status();
        });
        if (!status.ok()) {
          ++failures;
          ADD_FAILURE() << status.ToString();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(CountItems(), kThreads * kWritesPerThread);
}

TEST_P(DatabaseTest, AFailingWriteInABatchDoesNotLoseTheOthers) {
  CreateTables();
  constexpr int kThreads = 8;
  constexpr int kWritesPerThread = 100;
  std::atomic<int> succeeded{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        const std::string id = std::to_string(t) + "-" + std::to_string(i);
        const int kind = (t + i) % 3;  // 0: ok; 1: inserts then fails; 2: constraint error
        Status status = db_->Write([&](Tx& tx) -> Status {
          QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {id, int64_t{i}, 0.0, "", Null()}));
          if (kind == 1) return Status(StatusCode::kAborted, "give up after inserting");
          if (kind == 2) {
            return tx.Exec("INSERT INTO parts (id, item_id) VALUES ($1, $2)", {id, "missing"})
                .status();
          }
          return Status::Ok();
        });
        if (kind == 0 && status.ok()) {
          ++succeeded;
        } else if (kind == 0 || status.ok()) {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(CountItems(), succeeded.load());
  EXPECT_GT(succeeded.load(), 0);
}

// Tx::AfterCommit: a function runs after its own work is committed and
// visible, on the caller's thread, and never for work that was rolled back,
// also when the SQLite writer commits several callers' writes as one batch.
TEST_P(DatabaseTest, AfterCommitRunsOnlyOnceTheWorkIsCommitted) {
  CreateTables();
  const std::thread::id caller = std::this_thread::get_id();
  int64_t seen = -1;
  std::thread::id ran_on;
  Status status = db_->Write([&](Tx& tx) -> Status {
    tx.AfterCommit([&] {
      ran_on = std::this_thread::get_id();
      seen = CountItems();  // a new transaction: the write must already be visible
    });
    return tx.Exec(kInsertItem, {"committed", int64_t{1}, 0.0, "", Null()}).status();
  });
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(seen, 1);
  EXPECT_EQ(ran_on, caller);

  bool ran = false;
  status = db_->Write([&](Tx& tx) -> Status {
    tx.AfterCommit([&] { ran = true; });
    QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {"undone", int64_t{2}, 0.0, "", Null()}));
    return Status(StatusCode::kAborted, "give up after inserting");
  });
  EXPECT_FALSE(status.ok());
  EXPECT_FALSE(ran);
  status = db_->Write([&](Tx& tx) -> Status {
    tx.AfterCommit([&] { ran = true; });
    return tx.Exec(kInsertItem, {"committed", int64_t{3}, 0.0, "", Null()}).status();  // duplicate id
  });
  EXPECT_EQ(status.code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(ran);
  status = db_->Read([&](Tx& tx) -> Status {
    tx.AfterCommit([&] { ran = true; });
    return tx.Query("SELECT id FROM items").status();
  });
  EXPECT_TRUE(status.ok());
  EXPECT_TRUE(ran);

  // Batches: every committed write runs its function once, no failed one does.
  constexpr int kThreads = 8;
  constexpr int kWritesPerThread = 50;
  std::atomic<int> committed{0}, notified{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        const bool fail = (t + i) % 2 == 1;
        bool mine = false;
        Status s = db_->Write([&](Tx& tx) -> Status {
          tx.AfterCommit([&] {
            mine = true;
            ++notified;
          });
          const std::string id = "batch-" + std::to_string(t) + "-" + std::to_string(i);
          QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertItem, {id, int64_t{i}, 0.0, "", Null()}));
          return fail ? Status(StatusCode::kAborted, "give up") : Status::Ok();
        });
        if (s.ok()) ++committed;
        if (s.ok() != mine) ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(committed.load(), kThreads * kWritesPerThread / 2);
  EXPECT_EQ(notified.load(), committed.load());
}

TEST_P(DatabaseTest, ReadsSeeCommittedWritesFromOtherThreads) {
  CreateTables();
  std::thread writer([&] {
    EXPECT_TRUE(db_->Write([](Tx& tx) {
                     return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}).status();
                   }).ok());
  });
  writer.join();
  EXPECT_EQ(CountItems(), 1);
}

TEST_P(DatabaseTest, AnExceptionInAFunctionBecomesAnError) {
  CreateTables();
  Status status = db_->Write([](Tx&) -> Status { throw std::runtime_error("boom"); });
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_TRUE(db_->Write([](Tx& tx) {
                     return tx.Exec(kInsertItem, {"a", int64_t{1}, 1.0, "", Null()}).status();
                   }).ok());
}

// ---- migrations ----

std::vector<Migration> TestMigrations() {
  return {
      Migration{2, "create b", "CREATE TABLE b (id TEXT PRIMARY KEY)", ""},
      Migration{1, "create a", "CREATE TABLE a (id TEXT PRIMARY KEY); INSERT INTO a (id) VALUES ('one')",
                ""},
  };
}

TEST_P(DatabaseTest, MigrationsApplyOnceInOrder) {
  EXPECT_EQ(SchemaVersion(*db_).value_or(-1), 0);
  Status status = ApplyMigrations(*db_, TestMigrations());
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(SchemaVersion(*db_).value_or(-1), 2);
  status = ApplyMigrations(*db_, TestMigrations());  // idempotent: the INSERT does not run twice
  ASSERT_TRUE(status.ok()) << status.ToString();
  ASSERT_TRUE(db_->Read([](Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT COUNT(*) FROM a", {}, "a"));
                   EXPECT_EQ(row.Int(0), 1);
                   QUARRY_ASSIGN_OR_RETURN(Rows rows, tx.Query("SELECT version, name, applied_at "
                                                               "FROM schema_migrations ORDER BY version"));
                   EXPECT_EQ(rows.size(), 2u);
                   EXPECT_EQ(rows.rows[0].Text(1), "create a");
                   EXPECT_EQ(rows.rows[0].Text(2).size(), 24u);  // 2026-01-01T00:00:00.000Z
                   return Status::Ok();
                 }).ok());
  // A later migration inside an earlier range is still applied.
  auto more = TestMigrations();
  more.push_back(Migration{3, "create c", "CREATE TABLE c (id TEXT)", ""});
  ASSERT_TRUE(ApplyMigrations(*db_, more).ok());
  EXPECT_EQ(SchemaVersion(*db_).value_or(-1), 3);
}

TEST_P(DatabaseTest, MigrationsRefuseANewerSchema) {
  auto newer = TestMigrations();
  newer.push_back(Migration{7, "create c", "CREATE TABLE c (id TEXT)", ""});
  ASSERT_TRUE(ApplyMigrations(*db_, newer).ok());
  Status status = ApplyMigrations(*db_, TestMigrations());
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("version 7"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("version 2"), std::string::npos) << status.message();
}

TEST_P(DatabaseTest, MigrationsRejectDuplicateVersions) {
  auto migrations = TestMigrations();
  migrations.push_back(Migration{2, "again", "CREATE TABLE d (id TEXT)", ""});
  EXPECT_EQ(ApplyMigrations(*db_, migrations).code(), StatusCode::kInvalidArgument);
}

TEST_P(DatabaseTest, AFailedMigrationLeavesThePreviousVersion) {
  auto migrations = TestMigrations();
  migrations.push_back(Migration{3, "broken", "CREATE TABLE c (id TEXT); CREATE TABLEX oops", ""});
  Status status = ApplyMigrations(*db_, migrations);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("migration 3 (\"broken\")"), std::string::npos) << status.message();
  EXPECT_EQ(SchemaVersion(*db_).value_or(-1), 2);
  // Table c from the failed migration was rolled back with it.
  migrations.back().sqlite_sql = "CREATE TABLE c (id TEXT)";
  EXPECT_TRUE(ApplyMigrations(*db_, migrations).ok());
}

TEST_P(DatabaseTest, ConcurrentMigrationsApplyEachOnce) {
  if (GetParam() == Backend::kSqliteMemory) GTEST_SKIP() << "an in-memory database has one node";
  // Three "nodes", each with its own Database on the same storage.
  std::vector<std::unique_ptr<Database>> nodes;
  for (int i = 0; i < 3; ++i) {
    auto node = Database::Open(url_);
    ASSERT_TRUE(node.ok()) << node.status().ToString();
    nodes.push_back(std::move(node).value());
  }
  std::vector<Status> results(nodes.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nodes.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = ApplyMigrations(*nodes[i], TestMigrations()); });
  }
  for (auto& thread : threads) thread.join();
  for (const Status& status : results) EXPECT_TRUE(status.ok()) << status.ToString();
  ASSERT_TRUE(db_->Read([](Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT COUNT(*) FROM a", {}, "a"));
                   EXPECT_EQ(row.Int(0), 1);
                   QUARRY_ASSIGN_OR_RETURN(row, tx.QueryOne("SELECT COUNT(*) FROM schema_migrations",
                                                            {}, "count"));
                   EXPECT_EQ(row.Int(0), 2);
                   return Status::Ok();
                 }).ok());
}

INSTANTIATE_TEST_SUITE_P(Engines, DatabaseTest,
                         ::testing::Values(Backend::kSqliteFile, Backend::kSqliteMemory,
                                           Backend::kPostgres),
                         BackendName);

// ---- PostgreSQL only ----

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PostgresDatabase pg = testing::SharedPostgresDatabase();
    if (pg.url.empty()) GTEST_SKIP() << "PostgreSQL tests skipped: " << pg.skip_reason;
    url_ = pg.url;
  }
  std::string url_;
};

TEST_F(PostgresTest, ReplacesAConnectionTheServerClosed) {
  DatabaseOptions options;
  options.pool_size = 1;  // the same connection every time
  auto db = Database::Open(url_, options);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  int64_t pid = 0;
  ASSERT_TRUE((*db)->Read([&](Tx& tx) -> Status {
                    QUARRY_ASSIGN_OR_RETURN(Row row, tx.QueryOne("SELECT pg_backend_pid()", {}, "pid"));
                    pid = row.Int(0);
                    return Status::Ok();
                  }).ok());
  auto admin = Database::Open(url_);
  ASSERT_TRUE(admin.ok());
  ASSERT_TRUE((*admin)->Read([&](Tx& tx) {
                       return tx.Query("SELECT pg_terminate_backend(CAST($1 AS INTEGER))", {pid}).status();
                     }).ok());
  Status status = (*db)->Write([](Tx& tx) { return tx.Exec("CREATE TABLE t (id TEXT)").status(); });
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_TRUE((*db)->Ping().ok());
}

TEST_F(PostgresTest, RetriesADeadlockedWrite) {
  auto db = Database::Open(url_);
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Write([](Tx& tx) {
                    return tx
                        .Exec("CREATE TABLE c (id TEXT PRIMARY KEY, n BIGINT);"
                              "INSERT INTO c VALUES ('a', 0), ('b', 0)")
                        .status();
                  }).ok());
  std::atomic<int> first_updates{0};
  std::atomic<int> runs{0};
  // Two transactions lock a and b in opposite orders: PostgreSQL aborts one
  // with a deadlock (40P01), which Write() runs again.
  std::atomic<int> notified{0};  // Tx::AfterCommit of the attempts that committed
  auto worker = [&](const std::string& first, const std::string& second) {
    return (*db)->Write([&](Tx& tx) -> Status {
      ++runs;
      tx.AfterCommit([&] { ++notified; });
      QUARRY_RETURN_IF_ERROR(tx.Exec("UPDATE c SET n = n + 1 WHERE id = $1", {first}));
      ++first_updates;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (first_updates.load() < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      return tx.Exec("UPDATE c SET n = n + 1 WHERE id = $1", {second}).status();
    });
  };
  Status one, two;
  std::thread a([&] { one = worker("a", "b"); });
  std::thread b([&] { two = worker("b", "a"); });
  a.join();
  b.join();
  EXPECT_TRUE(one.ok()) << one.ToString();
  EXPECT_TRUE(two.ok()) << two.ToString();
  EXPECT_EQ(runs.load(), 3);
  EXPECT_EQ(notified.load(), 2);  // not for the attempt PostgreSQL aborted
  ASSERT_TRUE((*db)->Read([](Tx& tx) -> Status {
                    QUARRY_ASSIGN_OR_RETURN(Rows rows, tx.Query("SELECT n FROM c ORDER BY id"));
                    EXPECT_EQ(rows.rows.at(0).Int(0), 2);
                    EXPECT_EQ(rows.rows.at(1).Int(0), 2);
                    return Status::Ok();
                  }).ok());
}

TEST(DatabaseOpenTest, AnUnreachablePostgresIsUnavailableWithThePasswordMasked) {
  testing::ScratchDir dir;
  auto db = Database::Open("postgresql://quarry:hunter2@/quarry?host=" + dir.path() +
                           "&connect_timeout=2");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(db.status().message().find("hunter2"), std::string::npos) << db.status().message();
  EXPECT_NE(db.status().message().find("quarry:***@"), std::string::npos) << db.status().message();
}

// ---- opening ----

TEST(DatabaseOpenTest, RejectsUnknownSchemesListingTheForms) {
  auto db = Database::Open("mysql://root:hunter2@localhost/quarry");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(db.status().message().find("sqlite:"), std::string::npos);
  EXPECT_NE(db.status().message().find("postgresql://"), std::string::npos);
  EXPECT_EQ(db.status().message().find("hunter2"), std::string::npos);
}

TEST(DatabaseOpenTest, AFileThatIsNotADatabaseIsDataLoss) {
  testing::ScratchDir dir;
  const std::string path = dir.Write("junk.db", std::string(4096, 'x'));
  auto db = Database::Open("sqlite:" + path);
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kDataLoss) << db.status().ToString();
}

TEST(DatabaseOpenTest, AMissingDirectoryIsUnavailable) {
  testing::ScratchDir dir;
  auto db = Database::Open("sqlite:" + dir.Path("missing/quarry.db"));
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kUnavailable) << db.status().ToString();
}

TEST(DatabaseOpenTest, SqliteFileIsDurableWalWithForeignKeys) {
  testing::ScratchDir dir;
  auto db = Database::Open("sqlite:" + dir.Path("q.db"));
  ASSERT_TRUE(db.ok());
  EXPECT_EQ((*db)->DisplayUrl(), "sqlite:" + dir.Path("q.db"));
  ASSERT_TRUE((*db)->Write([](Tx& tx) -> Status {
                    QUARRY_ASSIGN_OR_RETURN(Row mode, tx.QueryOne("PRAGMA journal_mode", {}, "mode"));
                    EXPECT_EQ(mode.Text(0), "wal");
                    QUARRY_ASSIGN_OR_RETURN(Row sync, tx.QueryOne("PRAGMA synchronous", {}, "sync"));
                    EXPECT_EQ(sync.Int(0), 2);  // FULL
                    QUARRY_ASSIGN_OR_RETURN(Row fk, tx.QueryOne("PRAGMA foreign_keys", {}, "fk"));
                    EXPECT_EQ(fk.Int(0), 1);
                    return Status::Ok();
                  }).ok());
  db->reset();
  EXPECT_TRUE(std::filesystem::exists(dir.Path("q.db")));
}

}  // namespace
}  // namespace quarry::store
