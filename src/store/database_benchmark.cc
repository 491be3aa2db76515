// Durable single-row inserts per second on SQLite (WAL, synchronous=FULL):
// each iteration is one Database::Write() inserting one row, from 1, 16 and
// 64 threads. With one thread every write pays a full commit (one fsync);
// with many, the writer thread commits concurrent writes together, which is
// what lets the API create thousands of records per second.
//
// Run on the machine's real disk (not tmpfs) to see fsync cost:
//   database_benchmark --benchmark_min_time=3

#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "store/database.h"

namespace quarry::store {
namespace {

constexpr std::string_view kCreateRecords =
    "CREATE TABLE records ("
    " id TEXT PRIMARY KEY,"
    " app_id TEXT NOT NULL,"
    " number BIGINT NOT NULL,"
    " fields TEXT NOT NULL,"
    " created_at TEXT NOT NULL)";
constexpr std::string_view kInsertRecord =
    "INSERT INTO records (id, app_id, number, fields, created_at) VALUES ($1, $2, $3, $4, $5)";
// A typical record: a handful of fields as JSON.
constexpr std::string_view kFields =
    R"({"title":"Printer on floor 3 is jammed again","priority":"high","status":"open",)"
    R"("assignee":"usr_4k2m9q7x3d8h1c6v5b0n","due":"2026-11-25T10:00:00.000Z"})";

std::string directory;
std::unique_ptr<Database> db;
std::atomic<int64_t> next_number{0};

void SetUp(const benchmark::State&) {
  // Next to the binary's working directory, on the real disk.
  std::string pattern = (std::filesystem::current_path() / "quarry_bench_XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  directory = pattern;
  auto opened = Database::Open("sqlite:" + directory + "/bench.db");
  if (!opened.ok()) std::abort();
  db = std::move(opened).value();
  if (!db->Write([](Tx& tx) { return tx.Exec(kCreateRecords).status(); }).ok()) std::abort();
}

void TearDown(const benchmark::State&) {
  db.reset();
  std::filesystem::remove_all(directory);
}

void BM_SqliteDurableInsert(benchmark::State& state) {
  int64_t failures = 0;
  for (auto _ : state) {
    const int64_t number = next_number.fetch_add(1);
    Status status = db->Write([&](Tx& tx) {
      return tx
          .Exec(kInsertRecord, {"rec_" + std::to_string(number), "app_bench", number,
                                std::string(kFields), "2026-11-25T10:00:00.000Z"})
          .status();
    });
    if (!status.ok()) ++failures;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["failures"] = static_cast<double>(failures);
}
BENCHMARK(BM_SqliteDurableInsert)
    ->Setup(SetUp)
    ->Teardown(TearDown)
    ->Threads(1)
    ->Threads(16)
    ->Threads(64)
    ->UseRealTime();

}  // namespace
}  // namespace quarry::store
