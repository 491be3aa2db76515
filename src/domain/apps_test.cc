// Apps, objects and field definitions on SQLite and PostgreSQL: validation
// (every bad input at once), uniqueness per organization, immutability once
// records exist, authorization and the audit trail.

#include "domain/apps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "domain/app_test_support.h"
#include "domain/audit.h"

namespace quarry::domain {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using nlohmann::json;

std::vector<std::string> Keys(const FieldErrors& errors) {
  std::vector<std::string> keys;
  for (const auto& [key, message] : errors.by_name()) keys.push_back(key);
  return keys;
}

TEST(AppRulesTest, NamespaceAndHandleShapes) {
  EXPECT_TRUE(IsValidNamespace("support"));
  EXPECT_TRUE(IsValidNamespace("it_help_2"));
  EXPECT_FALSE(IsValidNamespace("s"));
  EXPECT_FALSE(IsValidNamespace("Support"));
  EXPECT_FALSE(IsValidNamespace("2fast"));
  EXPECT_FALSE(IsValidNamespace("with-dash"));
  EXPECT_FALSE(IsValidNamespace(std::string(33, 'a')));
  EXPECT_TRUE(IsValidHandlePrefix("TCK"));
  EXPECT_TRUE(IsValidHandlePrefix("ABCDEFGH"));
  EXPECT_FALSE(IsValidHandlePrefix("T"));
  EXPECT_FALSE(IsValidHandlePrefix("ABCDEFGHI"));
  EXPECT_FALSE(IsValidHandlePrefix("tck"));
  EXPECT_FALSE(IsValidHandlePrefix("TC1"));
}

TEST_P(AppDomainTest, CreateAppReportsEveryBadInputAtOnce) {
  FieldErrors errors;
  Result<App> app = Write<App>([&](store::Tx& tx) {
    return CreateApp(tx, As(builder_),
                     {{"name", "  "}, {"namespace", "Bad-NS"}, {"handle", "tck"}, {"colour", "red"},
                      {"description", 3}},
                     &errors);
  });
  ASSERT_EQ(app.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(errors),
              UnorderedElementsAre("name", "namespace", "handle", "colour", "description"));
  EXPECT_THAT(errors.by_name().at("handle"), HasSubstr("upper-case"));
  EXPECT_THAT(errors.by_name().at("colour"), HasSubstr("not a known property"));

  errors.Clear();
  app = Write<App>([&](store::Tx& tx) { return CreateApp(tx, As(builder_), json::object(), &errors); });
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("name", "namespace", "handle"));
}

TEST_P(AppDomainTest, NamespaceAndHandleAreUniquePerOrganization) {
  ASSERT_TRUE(MakeApp("support", "TCK").ok());
  FieldErrors errors;
  Result<App> again = MakeApp("support", "TCK", &errors);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("namespace", "handle"));
  errors.Clear();
  EXPECT_EQ(MakeApp("support2", "TCK", &errors).status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("handle"));

  // Another organization may use both.
  Result<App> other = Write<App>([&](store::Tx& tx) {
    return CreateApp(tx, As(stranger_), {{"name", "S"}, {"namespace", "support"}, {"handle", "TCK"}},
                     nullptr);
  });
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  // ... and cannot see ours.
  Result<App> seen = Read<App>([&](store::Tx& tx) { return GetApp(tx, other_org_id_, "support"); });
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->id, other->id);
}

TEST_P(AppDomainTest, MembersCannotChangeConfiguration) {
  Result<App> app = Write<App>([&](store::Tx& tx) {
    return CreateApp(tx, As(member_), {{"name", "X"}, {"namespace", "xx"}, {"handle", "XX"}},
                     nullptr);
  });
  EXPECT_EQ(app.status().code(), StatusCode::kPermissionDenied);
  ASSERT_TRUE(MakeApp("support", "TCK").ok());
  ASSERT_TRUE(MakeObject("support", "tickets").ok());
  Result<ObjectSchema> object = Write<ObjectSchema>([&](store::Tx& tx) {
    return CreateObject(tx, As(member_), "support", {{"name", "T"}, {"api_name", "t"}}, nullptr);
  });
  EXPECT_EQ(object.status().code(), StatusCode::kPermissionDenied);
  Result<Field> field = Write<Field>([&](store::Tx& tx) {
    return CreateField(tx, As(member_), "support", "tickets",
                       {{"api_name", "x"}, {"label", "X"}, {"type", "text"}}, nullptr);
  });
  EXPECT_EQ(field.status().code(), StatusCode::kPermissionDenied);
  Status deleted = db_->Write([&](store::Tx& tx) {
    return DeleteApp(tx, As(member_), "support", true, nullptr);
  });
  EXPECT_EQ(deleted.code(), StatusCode::kPermissionDenied);
  // Admins may.
  Result<App> by_admin = Write<App>([&](store::Tx& tx) {
    return UpdateApp(tx, As(admin_), "support", {{"description", "Help desk"}}, nullptr, nullptr);
  });
  EXPECT_TRUE(by_admin.ok()) << by_admin.status().ToString();
}

TEST_P(AppDomainTest, NamespaceAndHandleFreezeOnceRecordsExist) {
  ASSERT_TRUE(MakeApp("support", "TCK").ok());
  Result<App> renamed = Write<App>([&](store::Tx& tx) {
    return UpdateApp(tx, As(builder_), "support", {{"namespace", "helpdesk"}, {"handle", "HLP"}},
                     nullptr, nullptr);
  });
  ASSERT_TRUE(renamed.ok()) << renamed.status().ToString();
  EXPECT_EQ(renamed->version, 2);
  ASSERT_TRUE(MakeObject("helpdesk", "tickets").ok());
  ASSERT_TRUE(records_->Create(As(member_), "helpdesk", "tickets", json::object(), nullptr).ok());

  FieldErrors errors;
  Result<App> frozen = Write<App>([&](store::Tx& tx) {
    return UpdateApp(tx, As(builder_), "helpdesk", {{"namespace", "support"}}, nullptr, &errors);
  });
  EXPECT_EQ(frozen.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(frozen.status().message(), HasSubstr("has records"));
  frozen = Write<App>([&](store::Tx& tx) {
    return UpdateApp(tx, As(builder_), "helpdesk", {{"handle", "ZZ"}}, nullptr, nullptr);
  });
  EXPECT_EQ(frozen.status().code(), StatusCode::kFailedPrecondition);
  // Other properties still change; a stale If-Match is refused.
  Result<App> described = Write<App>([&](store::Tx& tx) {
    return UpdateApp(tx, As(builder_), "helpdesk", {{"name", "Help"}},
                     [](int64_t version) -> Status {
                       return version == 2 ? Status::Ok()
                                           : Status(StatusCode::kAborted, "stale");
                     },
                     nullptr);
  });
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  described = Write<App>([&](store::Tx& tx) {
    return UpdateApp(tx, As(builder_), "helpdesk", {{"name", "Again"}},
                     [](int64_t version) -> Status {
                       return version == 2 ? Status::Ok()
                                           : Status(StatusCode::kAborted, "stale");
                     },
                     nullptr);
  });
  EXPECT_EQ(described.status().code(), StatusCode::kAborted);
}

TEST_P(AppDomainTest, DeletingAnAppOrObjectWithRecordsNeedsForce) {
  ASSERT_TRUE(MakeApp("support", "TCK").ok());
  ASSERT_TRUE(MakeObject("support", "tickets").ok());
  ASSERT_TRUE(records_->Create(As(member_), "support", "tickets", json::object(), nullptr).ok());
  Status status = db_->Write([&](store::Tx& tx) {
    return DeleteObject(tx, As(builder_), "support", "tickets", false, nullptr);
  });
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  status = db_->Write([&](store::Tx& tx) { return DeleteApp(tx, As(builder_), "support", false, nullptr); });
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  status = db_->Write([&](store::Tx& tx) { return DeleteApp(tx, As(builder_), "support", true, nullptr); });
  ASSERT_TRUE(status.ok()) << status.ToString();
  Result<int64_t> left = Read<int64_t>([&](store::Tx& tx) -> Result<int64_t> {
    QUARRY_ASSIGN_OR_RETURN(store::Row row, tx.QueryOne("SELECT COUNT(*) FROM records", {}, "count"));
    return row.Int(0);
  });
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 0);
  EXPECT_EQ(Read<App>([&](store::Tx& tx) { return GetApp(tx, org_id_, "support"); }).status().code(),
            StatusCode::kNotFound);
}

TEST_P(AppDomainTest, ObjectsAndFieldsAreAddressedByIdOrApiName) {
  Result<App> app = MakeApp("support", "TCK");
  ASSERT_TRUE(app.ok());
  Result<ObjectSchema> object = MakeObject(app->id, "tickets");
  ASSERT_TRUE(object.ok()) << object.status().ToString();
  Result<Field> field = MakeField("support", object->object.id,
                                  {{"api_name", "title"}, {"label", "Title"}, {"type", "text"}});
  ASSERT_TRUE(field.ok()) << field.status().ToString();
  EXPECT_EQ(field->position, 1);
  EXPECT_EQ(field->EffectiveMaxLength(), 255);
  Result<ObjectSchema> loaded =
      Read<ObjectSchema>([&](store::Tx& tx) { return GetObject(tx, org_id_, app->id, "tickets"); });
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->fields.size(), 1u);
  EXPECT_EQ(loaded->ToJson()["fields"][0]["api_name"], "title");
  Result<Field> by_name = Read<Field>(
      [&](store::Tx& tx) { return GetField(tx, org_id_, "support", "tickets", "title"); });
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, field->id);
  EXPECT_EQ(MakeObject("support", "tickets").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(MakeField("support", "tickets", {{"api_name", "title"}, {"label", "T"}, {"type", "text"}})
                .status()
                .code(),
            StatusCode::kAlreadyExists);
}

TEST_P(AppDomainTest, FieldDefinitionsAreValidated) {
  ASSERT_TRUE(MakeApp("support", "TCK").ok());
  ASSERT_TRUE(MakeObject("support", "tickets").ok());
  FieldErrors errors;
  Result<Field> field = MakeField(
      "support", "tickets",
      {{"api_name", "Bad Name"}, {"label", ""}, {"type", "colour"}, {"extra", true}}, &errors);
  EXPECT_EQ(field.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("api_name", "label", "type", "extra"));
  EXPECT_THAT(errors.by_name().at("type"), HasSubstr("text, long_text, number"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "created_at"}, {"label", "C"}, {"type", "text"}}, &errors);
  EXPECT_THAT(errors.by_name().at("api_name"), HasSubstr("reserved"));

  errors.Clear();
  field = MakeField("support", "tickets", {{"api_name", "priority"}, {"label", "P"}, {"type", "dropdown"}},
                    &errors);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("options"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "priority"},
                     {"label", "P"},
                     {"type", "dropdown"},
                     {"options", {"Low", "Low"}},
                     {"default", "Low"}},
                    &errors);
  EXPECT_THAT(errors.by_name().at("options"), HasSubstr("twice"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "priority"},
                     {"label", "P"},
                     {"type", "dropdown"},
                     {"options", {"Low", "High"}},
                     {"default", "Medium"}},
                    &errors);
  EXPECT_THAT(errors.by_name().at("default"), HasSubstr("must be one of Low, High"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "notes"}, {"label", "N"}, {"type", "json"}, {"unique", true},
                     {"max_length", 10}, {"options", {"a"}}},
                    &errors);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("unique", "max_length", "options"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "title"}, {"label", "T"}, {"type", "text"}, {"max_length", 20000}},
                    &errors);
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("max_length"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "owner"}, {"label", "O"}, {"type", "user"}, {"default", stranger_.user_id}},
                    &errors);
  EXPECT_THAT(errors.by_name().at("default"), HasSubstr("not a user of this organization"));

  errors.Clear();
  field = MakeField("support", "tickets",
                    {{"api_name", "due"}, {"label", "Due"}, {"type", "date_time"},
                     {"default", "2026-01-01T10:00:00+02:00"}},
                    &errors);
  ASSERT_TRUE(field.ok()) << field.status().ToString();
  EXPECT_EQ(field->default_value, "2026-01-01T08:00:00.000Z");

  // Type and api_name are fixed; label, options and default may change.
  errors.Clear();
  field = Write<Field>([&](store::Tx& tx) {
    return UpdateField(tx, As(builder_), "support", "tickets", "due",
                       {{"type", "date"}, {"api_name", "due_on"}, {"label", "Due at"}}, nullptr,
                       &errors);
  });
  EXPECT_THAT(Keys(errors), UnorderedElementsAre("type", "api_name"));
  field = Write<Field>([&](store::Tx& tx) {
    return UpdateField(tx, As(builder_), "support", "tickets", "due",
                       {{"type", "date_time"}, {"label", "Due at"}, {"required", true}}, nullptr,
                       nullptr);
  });
  ASSERT_TRUE(field.ok()) << field.status().ToString();
  EXPECT_EQ(field->label, "Due at");
  EXPECT_TRUE(field->required);
  EXPECT_EQ(field->version, 2);
}

TEST_P(AppDomainTest, ConfigurationChangesAreAudited) {
  Result<App> app = MakeApp("support", "TCK");
  ASSERT_TRUE(app.ok());
  Result<ObjectSchema> object = MakeObject("support", "tickets");
  ASSERT_TRUE(object.ok());
  Result<Field> field =
      MakeField("support", "tickets", {{"api_name", "title"}, {"label", "Title"}, {"type", "text"}});
  ASSERT_TRUE(field.ok());
  ASSERT_TRUE(Write<Field>([&](store::Tx& tx) {
                return UpdateField(tx, As(builder_), "support", "tickets", "title",
                                   {{"label", "Subject"}}, nullptr, nullptr);
              }).ok());
  QUARRY_ASSERT_OK(db_->Write([&](store::Tx& tx) {
    return DeleteField(tx, As(builder_), "support", "tickets", "title", nullptr);
  }));
  // Record writes are not audited.
  ASSERT_TRUE(records_->Create(As(member_), "support", "tickets", json::object(), nullptr).ok());

  Result<Page<AuditEntry>> entries = Read<Page<AuditEntry>>([&](store::Tx& tx) {
    return ListAudit(tx, org_id_, AuditFilter{}, PageRequest{100, ""});
  });
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  std::vector<std::string> actions;
  for (const AuditEntry& entry : entries->items) actions.push_back(entry.action);
  EXPECT_THAT(actions, UnorderedElementsAre("app.create", "object.create", "field.create",
                                            "field.update", "field.delete"));
  for (const AuditEntry& entry : entries->items) {
    EXPECT_EQ(entry.actor_user_id, builder_.user_id);
    if (entry.action == "field.update") {
      EXPECT_EQ(entry.before["label"], "Title");
      EXPECT_EQ(entry.after["label"], "Subject");
      EXPECT_EQ(entry.target_id, field->id);
    }
  }
}

TEST_P(AppDomainTest, ListAppsPagesInCreationOrder) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(MakeApp("app_" + std::to_string(i), "AP" + std::string(1, char('A' + i))).ok());
    clock_.Advance(std::chrono::milliseconds(1));
  }
  std::vector<std::string> seen;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    Result<Page<App>> page = Read<Page<App>>(
        [&](store::Tx& tx) { return ListApps(tx, org_id_, PageRequest{2, cursor}); });
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const App& app : page->items) seen.push_back(app.namespace_name);
    cursor = page->next_cursor;
    if (cursor.empty()) break;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"app_0", "app_1", "app_2", "app_3", "app_4"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, AppDomainTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quarry::domain
