// Records on SQLite and PostgreSQL: values of every field type, handles under
// concurrency, updates with changed fields, unique values, filters, sorting
// and keyset pagination, the schema cache, and the write hook.

#include "domain/records.h"

#include <atomic>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "domain/app_test_support.h"

namespace quarry::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using nlohmann::json;

std::vector<std::string> Keys(const FieldErrors& errors) {
  std::vector<std::string> keys;
  for (const auto& [key, message] : errors.by_name()) keys.push_back(key);
  return keys;
}

class RecordsTest : public AppDomainTest {
 protected:
  void SetUp() override {
    AppDomainTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_TRUE(MakeApp("support", "TCK").ok());
    ASSERT_TRUE(MakeObject("support", "tickets").ok());
    for (const json& spec : {
             json{{"api_name", "title"}, {"label", "Title"}, {"type", "text"}, {"required", true},
                  {"max_length", 20}},
             json{{"api_name", "body"}, {"label", "Body"}, {"type", "long_text"}},
             json{{"api_name", "estimate"}, {"label", "Estimate"}, {"type", "number"}},
             json{{"api_name", "cost"}, {"label", "Cost"}, {"type", "decimal"}},
             json{{"api_name", "priority"},
                  {"label", "Priority"},
                  {"type", "dropdown"},
                  {"options", {"Low", "Medium", "High"}},
                  {"default", "Medium"}},
             json{{"api_name", "urgent"}, {"label", "Urgent"}, {"type", "checkbox"}},
             json{{"api_name", "due"}, {"label", "Due"}, {"type", "date"}},
             json{{"api_name", "seen_at"}, {"label", "Seen"}, {"type", "date_time"}},
             json{{"api_name", "meta"}, {"label", "Meta"}, {"type", "json"}},
             json{{"api_name", "owner"}, {"label", "Owner"}, {"type", "user"}},
             json{{"api_name", "code"}, {"label", "Code"}, {"type", "text"}, {"unique", true}},
         }) {
      Result<Field> field = MakeField("support", "tickets", spec);
      ASSERT_TRUE(field.ok()) << spec.dump() << ": " << field.status().ToString();
    }
  }

  Result<RecordChange> Create(json values, FieldErrors* errors = nullptr,
                              const Principal* who = nullptr) {
    return records_->Create(As(who != nullptr ? *who : member_), "support", "tickets", values,
                            errors);
  }
  Result<RecordChange> Update(const std::string& ref, json changes, FieldErrors* errors = nullptr,
                              VersionCheck check = nullptr) {
    return records_->Update(As(member_), "support", ref, changes, check, errors);
  }
  // Handles of the records a query lists (first page only).
  std::vector<std::string> Handles(std::multimap<std::string, std::string> params,
                                   FieldErrors* errors = nullptr) {
    FieldErrors local;
    if (errors == nullptr) errors = &local;
    Result<RecordQuery> query = ParseRecordQuery(params, errors);
    if (!query.ok()) return {"error: " + query.status().message()};
    Result<Page<Record>> page = records_->List(org_id_, "support", "tickets", *query, errors);
    if (!page.ok()) return {"error: " + page.status().message()};
    std::vector<std::string> handles;
    for (const Record& record : page->items) handles.push_back(record.handle);
    return handles;
  }
};

TEST_P(RecordsTest, EveryFieldTypeStoresItsNormalizedForm) {
  Result<RecordChange> made = Create({{"title", "Printer jam"},
                                      {"body", "It jams."},
                                      {"estimate", 3},
                                      {"cost", 12.5},
                                      {"priority", "High"},
                                      {"urgent", true},
                                      {"due", "2026-12-01"},
                                      {"seen_at", "2026-11-25T12:00:00+01:00"},
                                      {"meta", {{"tags", {"a", "b"}}}},
                                      {"owner", builder_.user_id},
                                      {"code", "P-1"}});
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const Record& record = *made->after;
  EXPECT_EQ(record.handle, "TCK-1");
  EXPECT_EQ(record.number, 1);
  EXPECT_EQ(record.version, 1);
  EXPECT_EQ(record.created_by, member_.user_id);
  EXPECT_EQ(record.values["seen_at"], "2026-11-25T11:00:00.000Z");
  EXPECT_EQ(record.values["meta"]["tags"][1], "b");
  EXPECT_EQ(made->kind, RecordChangeKind::kCreated);
  EXPECT_EQ(made->changed_fields.size(), 11u);
  EXPECT_TRUE(made->before_values["title"].is_null());

  Result<Record> read = records_->Get(org_id_, "support", "tck-1");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->values, record.values);
  EXPECT_EQ(read->ToJson()["handle"], "TCK-1");
  Result<Record> by_id = records_->Get(org_id_, "support", record.id);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->handle, "TCK-1");
  EXPECT_EQ(records_->Get(org_id_, "support", "ABC-1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(records_->Get(org_id_, "support", "TCK-2").status().code(), StatusCode::kNotFound);
  // Another organization cannot read it.
  EXPECT_EQ(records_->Get(other_org_id_, "support", "TCK-1").status().code(), StatusCode::kNotFound);
}

TEST_P(RecordsTest, EveryBadValueIsReportedAtOnce) {
  FieldErrors errors;
  Result<RecordChange> made = Create({{"title", std::string(21, 'x')},
                                      {"body", 5},
                                      {"estimate", 1.5},
                                      {"cost", "12"},
                                      {"priority", "Urgent"},
                                      {"urgent", "yes"},
                                      {"due", "2026-02-30"},
                                      {"seen_at", "yesterday"},
                                      {"owner", ""},
                                      {"colour", "red"}},
                                     &errors);
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("title", "body", "estimate", "cost", "priority",
                                                 "urgent", "due", "seen_at", "owner", "colour"));
  EXPECT_EQ(errors.by_name().at("priority"), "must be one of Low, Medium, High");
  EXPECT_THAT(errors.by_name().at("colour"), HasSubstr("not a field of object tickets"));
  EXPECT_THAT(errors.by_name().at("colour"), HasSubstr("title, body, estimate"));

  errors.Clear();
  made = Create({{"body", "no title"}}, &errors);
  EXPECT_THAT(Keys(errors), ElementsAre("title"));
  EXPECT_EQ(errors.by_name().at("title"), "is required");
  errors.Clear();
  made = Create({{"title", ""}}, &errors);
  EXPECT_THAT(Keys(errors), ElementsAre("title"));
  errors.Clear();
  made = records_->Create(As(member_), "support", "tickets", json::array(), &errors);
  EXPECT_THAT(Keys(errors), ElementsAre("values"));
  // Nothing was written, and no handle number was used.
  Result<RecordChange> first = Create({{"title", "ok"}});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->after->handle, "TCK-1");
}

TEST_P(RecordsTest, DefaultsApplyAndUsersMustBelongToTheOrganization) {
  Result<RecordChange> made = Create({{"title", "t"}});
  ASSERT_TRUE(made.ok());
  EXPECT_EQ(made->after->values["priority"], "Medium");
  EXPECT_FALSE(made->after->values.contains("urgent"));

  FieldErrors errors;
  made = Create({{"title", "t"}, {"owner", stranger_.user_id}}, &errors);
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(errors.by_name().at("owner"), HasSubstr("not a user of this organization"));
  errors.Clear();
  made = Create({{"title", "t"}, {"owner", "usr_nobody"}}, &errors);
  EXPECT_THAT(Keys(errors), ElementsAre("owner"));
}

TEST_P(RecordsTest, UpdatesReportChangedFieldsWithBeforeAndAfter) {
  Result<RecordChange> made = Create({{"title", "t"}, {"estimate", 2}, {"urgent", false}});
  ASSERT_TRUE(made.ok());
  clock_.Advance(std::chrono::seconds(5));
  Result<RecordChange> updated =
      Update("TCK-1", {{"estimate", 5}, {"urgent", false}, {"priority", "High"}, {"body", nullptr}});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->kind, RecordChangeKind::kUpdated);
  EXPECT_THAT(updated->changed_fields, ElementsAre("estimate", "priority"));
  EXPECT_EQ(updated->before_values, json({{"estimate", 2}, {"priority", "Medium"}}));
  EXPECT_EQ(updated->after_values, json({{"estimate", 5}, {"priority", "High"}}));
  EXPECT_EQ(updated->after->version, 2);
  EXPECT_EQ(updated->before->version, 1);
  EXPECT_NE(updated->after->updated_at, updated->after->created_at);

  // Clearing a value; a required one cannot be cleared.
  updated = Update("TCK-1", {{"estimate", nullptr}});
  ASSERT_TRUE(updated.ok());
  EXPECT_THAT(updated->changed_fields, ElementsAre("estimate"));
  EXPECT_TRUE(updated->after_values["estimate"].is_null());
  EXPECT_FALSE(updated->after->values.contains("estimate"));
  FieldErrors errors;
  updated = Update("TCK-1", {{"title", nullptr}, {"nope", 1}}, &errors);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("title", "nope"));
  EXPECT_THAT(errors.by_name().at("title"), HasSubstr("cannot be cleared"));

  // A no-op changes nothing, not even the version.
  updated = Update("TCK-1", {{"priority", "High"}});
  ASSERT_TRUE(updated.ok());
  EXPECT_TRUE(updated->changed_fields.empty());
  EXPECT_EQ(updated->after->version, 3);

  // Optimistic concurrency: the check sees the current version.
  auto expect = [](int64_t wanted) -> VersionCheck {
    return [wanted](int64_t current) -> Status {
      if (current == wanted) return Status::Ok();
      return Status(StatusCode::kAborted, "version " + std::to_string(current));
    };
  };
  EXPECT_EQ(Update("TCK-1", {{"estimate", 1}}, nullptr, expect(2)).status().code(),
            StatusCode::kAborted);
  EXPECT_TRUE(Update("TCK-1", {{"estimate", 1}}, nullptr, expect(3)).ok());
}

TEST_P(RecordsTest, UniqueValuesHoldAcrossCreatesUpdatesAndDeletes) {
  ASSERT_TRUE(Create({{"title", "a"}, {"code", "X1"}}).ok());
  FieldErrors errors;
  Result<RecordChange> dup = Create({{"title", "b"}, {"code", "X1"}}, &errors);
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(errors.by_name().at("code"), HasSubstr("TCK-1 already has this value"));
  // The refused create gave its number back: this is TCK-2.
  ASSERT_EQ(Create({{"title", "b"}, {"code", "X2"}})->after->handle, "TCK-2");
  errors.Clear();
  EXPECT_EQ(Update("TCK-2", {{"code", "X1"}}, &errors).status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(Keys(errors), ElementsAre("code"));
  // A record may keep its own value; freeing a value lets another take it.
  EXPECT_TRUE(Update("TCK-1", {{"code", "X1"}, {"title", "a2"}}).ok());
  ASSERT_TRUE(Update("TCK-1", {{"code", "X9"}}).ok());
  EXPECT_TRUE(Update("TCK-2", {{"code", "X1"}}).ok());
  ASSERT_TRUE(records_->Delete(As(builder_), "support", "TCK-2", nullptr).ok());
  EXPECT_TRUE(Create({{"title", "c"}, {"code", "X1"}}).ok());
  // Members may not delete records.
  EXPECT_EQ(records_->Delete(As(member_), "support", "TCK-1", nullptr).status().code(),
            StatusCode::kPermissionDenied);
}

TEST_P(RecordsTest, HandlesStayGaplessUnderConcurrentCreates) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::vector<int64_t> numbers;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Result<RecordChange> made =
            Create({{"title", "t" + std::to_string(t) + "-" + std::to_string(i)}});
        if (!made.ok()) {
          ++failures;
          ADD_FAILURE() << made.status().ToString();
          continue;
        }
        std::lock_guard<std::mutex> lock(mutex);
        numbers.push_back(made->after->number);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  std::sort(numbers.begin(), numbers.end());
  ASSERT_EQ(numbers.size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 0; i < numbers.size(); ++i) ASSERT_EQ(numbers[i], static_cast<int64_t>(i + 1));
  Result<int64_t> distinct = Read<int64_t>([&](store::Tx& tx) -> Result<int64_t> {
    QUARRY_ASSIGN_OR_RETURN(store::Row row,
                            tx.QueryOne("SELECT COUNT(DISTINCT handle) FROM records", {}, "count"));
    return row.Int(0);
  });
  ASSERT_TRUE(distinct.ok());
  EXPECT_EQ(*distinct, kThreads * kPerThread);
}

TEST_P(RecordsTest, FiltersCompareByType) {
  // TCK-1..5
  ASSERT_TRUE(Create({{"title", "Printer jam"}, {"estimate", 9}, {"cost", 1.5}, {"priority", "Low"},
                      {"urgent", true}, {"due", "2026-01-10"}, {"seen_at", "2026-01-01T10:00:00Z"}})
                  .ok());
  ASSERT_TRUE(Create({{"title", "Laptop broken"}, {"estimate", 10}, {"cost", 20}, {"priority", "High"},
                      {"urgent", false}, {"due", "2026-02-01"}, {"owner", builder_.user_id}})
                  .ok());
  ASSERT_TRUE(Create({{"title", "printer toner"}, {"estimate", 100}, {"priority", "High"},
                      {"due", "2025-12-31"}, {"seen_at", "2026-01-01T09:59:59.999Z"}})
                  .ok());
  ASSERT_TRUE(Create({{"title", "VPN"}, {"cost", -3}, {"meta", {{"k", 1}}}}).ok());
  ASSERT_TRUE(Create({{"title", "Mouse"}, {"estimate", 2}, {"priority", "Low"}}).ok());

  // Numbers compare as numbers (9 < 10 < 100), not as text.
  EXPECT_THAT(Handles({{"filter[estimate][gt]", "9"}}), ElementsAre("TCK-2", "TCK-3"));
  EXPECT_THAT(Handles({{"filter[estimate][gte]", "9"}, {"filter[estimate][lt]", "100"}}),
              ElementsAre("TCK-1", "TCK-2"));
  EXPECT_THAT(Handles({{"filter[estimate]", "10"}}), ElementsAre("TCK-2"));
  EXPECT_THAT(Handles({{"filter[estimate][lte]", "2"}}), ElementsAre("TCK-5"));
  EXPECT_THAT(Handles({{"filter[cost][lt]", "2"}}), ElementsAre("TCK-1", "TCK-4"));
  EXPECT_THAT(Handles({{"filter[cost][gte]", "1.5"}}), ElementsAre("TCK-1", "TCK-2"));
  // ne includes records without a value.
  EXPECT_THAT(Handles({{"filter[priority][ne]", "High"}}), ElementsAre("TCK-1", "TCK-4", "TCK-5"));
  EXPECT_THAT(Handles({{"filter[priority][in]", "Low,High"}}),
              ElementsAre("TCK-1", "TCK-2", "TCK-3", "TCK-5"));
  EXPECT_THAT(Handles({{"filter[priority]", "Medium"}}), ElementsAre("TCK-4"));  // the default
  EXPECT_THAT(Handles({{"filter[urgent]", "true"}}), ElementsAre("TCK-1"));
  EXPECT_THAT(Handles({{"filter[urgent][ne]", "true"}}), ElementsAre("TCK-2", "TCK-3", "TCK-4", "TCK-5"));
  EXPECT_THAT(Handles({{"filter[due][lt]", "2026-01-31"}}), ElementsAre("TCK-1", "TCK-3"));
  EXPECT_THAT(Handles({{"filter[seen_at][gte]", "2026-01-01T11:00:00+01:00"}}), ElementsAre("TCK-1"));
  EXPECT_THAT(Handles({{"filter[seen_at][lt]", "2026-01-01T10:00:00Z"}}), ElementsAre("TCK-3"));
  // contains is a case-sensitive substring.
  EXPECT_THAT(Handles({{"filter[title][contains]", "rinter"}}), ElementsAre("TCK-1", "TCK-3"));
  EXPECT_THAT(Handles({{"filter[title][contains]", "Printer"}}), ElementsAre("TCK-1"));
  EXPECT_THAT(Handles({{"filter[owner]", builder_.user_id}}), ElementsAre("TCK-2"));
  // AND of several filters.
  EXPECT_THAT(Handles({{"filter[priority]", "High"}, {"filter[estimate][lt]", "50"}}),
              ElementsAre("TCK-2"));
  EXPECT_THAT(Handles({{"filter[created_by]", member_.user_id}, {"filter[urgent]", "false"}}),
              ElementsAre("TCK-2"));
  EXPECT_THAT(Handles({{"filter[created_at][gte]", "2000-01-01"}}),
              ElementsAre("TCK-1", "TCK-2", "TCK-3", "TCK-4", "TCK-5"));

  FieldErrors errors;
  EXPECT_THAT(Handles({{"filter[colour]", "red"},
                       {"filter[meta]", "{}"},
                       {"filter[estimate][gt]", "many"},
                       {"filter[urgent][gt]", "true"},
                       {"filter[estimate][contains]", "1"},
                       {"filter[priority]", "Urgent"}},
                      &errors)
                  .front(),
              HasSubstr("error: 6 query parameters invalid"));
  EXPECT_THAT(Keys(errors),
              UnorderedElementsAre("filter[colour]", "filter[meta]", "filter[estimate][gt]",
                                   "filter[urgent][gt]", "filter[estimate][contains]",
                                   "filter[priority]"));
  EXPECT_THAT(errors.by_name().at("filter[estimate][gt]"), HasSubstr("whole number"));
  EXPECT_THAT(errors.by_name().at("filter[priority]"), HasSubstr("must be one of"));
  errors.Clear();
  EXPECT_THAT(Handles({{"filter[estimate][between]", "1"}, {"filter]x", "1"}, {"limit", "0"}}, &errors)
                  .front(),
              HasSubstr("error:"));
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("filter[estimate][between]", "filter]x", "limit"));
}

TEST_P(RecordsTest, SortsByFieldsWithMissingValuesLast) {
  ASSERT_TRUE(Create({{"title", "a"}, {"estimate", 5}}).ok());
  ASSERT_TRUE(Create({{"title", "b"}}).ok());
  ASSERT_TRUE(Create({{"title", "c"}, {"estimate", 1}}).ok());
  ASSERT_TRUE(Create({{"title", "d"}, {"estimate", 5}}).ok());
  EXPECT_THAT(Handles({{"sort", "estimate"}}), ElementsAre("TCK-3", "TCK-1", "TCK-4", "TCK-2"));
  EXPECT_THAT(Handles({{"sort", "-estimate"}}), ElementsAre("TCK-2", "TCK-4", "TCK-1", "TCK-3"));
  EXPECT_THAT(Handles({{"sort", "-created_at"}}), ElementsAre("TCK-4", "TCK-3", "TCK-2", "TCK-1"));
  EXPECT_THAT(Handles({{"sort", "title"}}), ElementsAre("TCK-1", "TCK-2", "TCK-3", "TCK-4"));
  FieldErrors errors;
  Handles({{"sort", "meta"}}, &errors);
  EXPECT_THAT(Keys(errors), ElementsAre("sort"));
}

// Pages through the whole list with `limit`, inserting `inserts_per_page`
// records between pages, and returns the handles seen.
std::vector<std::string> PageThrough(RecordsTest* test, RecordService& records,
                                     const std::string& org_id, const std::string& sort, int limit,
                                     const std::function<void()>& between_pages) {
  std::vector<std::string> seen;
  std::string cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    std::multimap<std::string, std::string> params = {{"sort", sort},
                                                      {"limit", std::to_string(limit)}};
    if (!cursor.empty()) params.emplace("cursor", cursor);
    FieldErrors errors;
    Result<RecordQuery> query = ParseRecordQuery(params, &errors);
    EXPECT_TRUE(query.ok()) << query.status().ToString();
    if (!query.ok()) break;
    Result<Page<Record>> page = records.List(org_id, "support", "tickets", *query, &errors);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    for (const Record& record : page->items) seen.push_back(record.handle);
    cursor = page->next_cursor;
    if (cursor.empty()) break;
    between_pages();
  }
  (void)test;
  return seen;
}

TEST_P(RecordsTest, KeysetPagesAreStableWhileRecordsAreAdded) {
  // 30 records in the same millisecond (the fake clock stands still), so the
  // handle number is what orders ties; estimates repeat and some are missing.
  for (int i = 1; i <= 30; ++i) {
    json values = {{"title", "r" + std::to_string(i)}};
    if (i % 4 != 0) values["estimate"] = i % 5;
    ASSERT_TRUE(Create(values).ok());
  }
  std::vector<std::string> all;
  for (int i = 1; i <= 30; ++i) all.push_back("TCK-" + std::to_string(i));

  for (const std::string sort : {"created_at", "-created_at", "estimate", "-estimate", "title"}) {
    SCOPED_TRACE(sort);
    const std::vector<std::string> full = Handles({{"sort", sort}, {"limit", "500"}});
    ASSERT_EQ(full.size(), 30u);
    int added = 0;
    const std::vector<std::string> paged =
        PageThrough(this, *records_, org_id_, sort, 7, [&] {
          // New records sort after the cursor or before it, never into the
          // pages already read twice.
          ASSERT_TRUE(Create({{"title", "new"}, {"estimate", 2}}).ok());
          ++added;
        });
    std::set<std::string> unique(paged.begin(), paged.end());
    EXPECT_EQ(unique.size(), paged.size()) << "a record appeared on two pages";
    for (const std::string& handle : full) {
      EXPECT_TRUE(unique.count(handle)) << handle << " was skipped";
    }
    // The original records keep their relative order.
    std::vector<std::string> originals;
    for (const std::string& handle : paged) {
      if (std::find(full.begin(), full.end(), handle) != full.end()) originals.push_back(handle);
    }
    EXPECT_EQ(originals, full);
    EXPECT_GT(added, 0);
    // Clean up so each sort starts from the same 30 records.
    Result<int64_t> removed = Write<int64_t>([&](store::Tx& tx) {
      return tx.Exec("DELETE FROM records WHERE number > 30", {});
    });
    ASSERT_TRUE(removed.ok());
  }
  // A cursor from another sort is refused.
  std::multimap<std::string, std::string> params = {{"sort", "estimate"}, {"limit", "5"}};
  FieldErrors errors;
  Result<Page<Record>> page = records_->List(org_id_, "support", "tickets",
                                             *ParseRecordQuery(params, &errors), &errors);
  ASSERT_TRUE(page.ok());
  params = {{"sort", "title"}, {"cursor", page->next_cursor}};
  Result<RecordQuery> other = ParseRecordQuery(params, &errors);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(records_->List(org_id_, "support", "tickets", *other, &errors).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(errors), ElementsAre("cursor"));
}

TEST_P(RecordsTest, CachedSchemasFollowFieldChanges) {
  ASSERT_TRUE(Create({{"title", "cached"}, {"estimate", 1}}).ok());  // the schema is now cached
  // A new required field, added behind the service's back, applies at once.
  ASSERT_TRUE(MakeField("support", "tickets",
                        {{"api_name", "team"}, {"label", "Team"}, {"type", "text"}, {"required", true}})
                  .ok());
  FieldErrors errors;
  EXPECT_EQ(Create({{"title", "x"}}, &errors).status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(errors), ElementsAre("team"));
  ASSERT_TRUE(Create({{"title", "x"}, {"team", "ops"}}).ok());
  // Deleting a field removes its values from records.
  QUARRY_ASSERT_OK(db_->Write([&](store::Tx& tx) {
    return DeleteField(tx, As(builder_), "support", "tickets", "estimate", nullptr);
  }));
  Result<Record> read = records_->Get(org_id_, "support", "TCK-1");
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(read->values.contains("estimate"));
  errors.Clear();
  EXPECT_EQ(Update("TCK-1", {{"estimate", 3}}, &errors).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(errors), ElementsAre("estimate"));
  // A field recreated under the same name starts empty, even with another type.
  ASSERT_TRUE(MakeField("support", "tickets",
                        {{"api_name", "estimate"}, {"label", "Estimate"}, {"type", "text"}})
                  .ok());
  EXPECT_THAT(Handles({{"filter[estimate]", "1"}}), ::testing::IsEmpty());
  // Turning unique on over duplicates is refused; over distinct values it works.
  ASSERT_TRUE(Update("TCK-2", {{"team", "ops"}, {"body", "b"}}).ok());
  ASSERT_TRUE(Update("TCK-1", {{"team", "ops"}}).ok());
  Result<Field> unique = Write<Field>([&](store::Tx& tx) {
    return UpdateField(tx, As(builder_), "support", "tickets", "team", {{"unique", true}}, nullptr,
                       nullptr);
  });
  EXPECT_EQ(unique.status().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Update("TCK-1", {{"team", "dev"}}).ok());
  unique = Write<Field>([&](store::Tx& tx) {
    return UpdateField(tx, As(builder_), "support", "tickets", "team", {{"unique", true}}, nullptr,
                       nullptr);
  });
  ASSERT_TRUE(unique.ok()) << unique.status().ToString();
  EXPECT_EQ(Create({{"title", "y"}, {"team", "dev"}}).status().code(), StatusCode::kAlreadyExists);
}

TEST_P(RecordsTest, WriteHookSeesTheChangeAndCanRollItBack) {
  std::vector<std::string> seen;
  bool fail = false;
  records_->SetWriteHook([&](store::Tx& tx, const RecordChange& change) -> Status {
    Result<store::Rows> rows = tx.Query("SELECT handle FROM records WHERE id = $1",
                                        {change.after ? change.after->id : change.before->id});
    if (!rows.ok()) return rows.status();
    seen.push_back(std::string(RecordChangeKindName(change.kind)) + ":" +
                   std::to_string(rows->size()) + ":" + std::to_string(change.changed_fields.size()));
    if (fail) return UnavailableError("the run queue is full");
    return Status::Ok();
  });
  ASSERT_TRUE(Create({{"title", "a"}}).ok());
  ASSERT_TRUE(Update("TCK-1", {{"estimate", 4}}).ok());
  ASSERT_TRUE(Update("TCK-1", {{"estimate", 4}}).ok());  // no change: no hook
  fail = true;
  EXPECT_EQ(Create({{"title", "b"}}).status().code(), StatusCode::kUnavailable);
  fail = false;
  Result<RecordChange> next = Create({{"title", "c"}});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->after->handle, "TCK-2");  // the rolled-back create gave its number back
  ASSERT_TRUE(records_->Delete(As(admin_), "support", "TCK-2", nullptr).ok());
  EXPECT_THAT(seen, ElementsAre("created:1:2", "updated:1:1", "created:1:2", "created:1:2",
                                "deleted:0:2"));
}

TEST_P(RecordsTest, EngineEntryPointsWorkInsideTheCallersTransaction) {
  Result<RecordChange> made = Write<RecordChange>([&](store::Tx& tx) -> Result<RecordChange> {
    QUARRY_ASSIGN_OR_RETURN(std::shared_ptr<const AppSchema> schema,
                            LoadAppSchema(tx, org_id_, "support"));
    const ObjectSchema* object = schema->FindObject("tickets");
    ChangeContext system = ChangeContext::System(org_id_, clock_);
    QUARRY_ASSIGN_OR_RETURN(RecordChange created,
                            CreateRecordInTx(tx, system, *schema, *object, {{"title", "auto"}}, nullptr));
    return UpdateRecordInTx(tx, system, *schema, created.after->handle, {{"priority", "Low"}},
                            nullptr, nullptr);
  });
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_THAT(made->changed_fields, ElementsAre("priority"));
  EXPECT_EQ(made->after->created_by, "");
  // A stale schema is refused.
  Result<std::shared_ptr<const AppSchema>> schema = Read<std::shared_ptr<const AppSchema>>(
      [&](store::Tx& tx) { return LoadAppSchema(tx, org_id_, "support"); });
  ASSERT_TRUE(schema.ok());
  ASSERT_TRUE(MakeField("support", "tickets", {{"api_name", "late"}, {"label", "L"}, {"type", "text"}})
                  .ok());
  Result<RecordChange> stale = Write<RecordChange>([&](store::Tx& tx) {
    return CreateRecordInTx(tx, As(member_), **schema, *(*schema)->FindObject("tickets"),
                            {{"title", "x"}}, nullptr);
  });
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
}

TEST(RecordQueryTest, ParsesFiltersSortAndPaging) {
  FieldErrors errors;
  Result<RecordQuery> query = ParseRecordQuery({{"filter[priority]", "High"},
                                                {"filter[estimate][gte]", "3"},
                                                {"sort", "-updated_at"},
                                                {"limit", "10"},
                                                {"other", "ignored"}},
                                               &errors);
  ASSERT_TRUE(query.ok()) << query.status().ToString();
  ASSERT_EQ(query->filters.size(), 2u);
  EXPECT_EQ(query->filters[0].field, "estimate");
  EXPECT_EQ(query->filters[0].op, FilterOp::kGte);
  EXPECT_EQ(query->filters[1].field, "priority");
  EXPECT_EQ(query->filters[1].op, FilterOp::kEq);
  EXPECT_EQ(query->sort, "updated_at");
  EXPECT_TRUE(query->descending);
  EXPECT_EQ(query->page.limit, 10);
  query = ParseRecordQuery({{"filter[]", "x"}, {"filter[a][b][c]", "x"}, {"sort", "-"}}, &errors);
  EXPECT_FALSE(query.ok());
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("filter[]", "filter[a][b][c]", "sort"));
}

INSTANTIATE_TEST_SUITE_P(Backends, RecordsTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quarry::domain
