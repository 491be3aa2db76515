// Apps, objects, fields and records over real HTTP: every endpoint, every
// kind of validation error, conflicts, If-Match, idempotent creates, and the
// authorization matrix of every mutating endpoint by role.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>

#include "tests/support/api_fixture.h"

namespace quarry::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using nlohmann::json;

class AppApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { fixture_ = new ApiFixture(ApiFixtureOptions{.with_emulator = false}); }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }
  ApiFixture& f() { return *fixture_; }

  static std::string Unique(std::string_view prefix) {
    static std::atomic<int> counter{0};
    return std::string(prefix) + std::to_string(++counter);
  }
  // A fresh handle prefix: two to eight upper-case letters.
  static std::string UniqueHandle() {
    static std::atomic<int> counter{0};
    int n = ++counter;
    std::string handle = "H";
    do {
      handle += static_cast<char>('A' + n % 26);
      n /= 26;
    } while (n > 0);
    return handle;
  }

  static void ExpectError(const ApiReply& reply, int status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.Describe();
    ASSERT_TRUE(reply.json.is_object() && reply.json.contains("error")) << reply.Describe();
    EXPECT_EQ(reply.json["error"]["code"], code) << reply.Describe();
    EXPECT_FALSE(reply.json["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(reply.json["error"]["hint"].is_string());
    EXPECT_TRUE(reply.json["error"]["details"].is_object());
  }
  // The names under details.fields of a validation error.
  static std::set<std::string> BadFields(const ApiReply& reply) {
    std::set<std::string> names;
    const json& fields = reply.json["error"]["details"]["fields"];
    if (fields.is_object()) {
      for (const auto& [name, message] : fields.items()) names.insert(name);
    }
    return names;
  }

  // An app (by the builder) with object "tickets" and typed fields; returns
  // the app's namespace.
  std::string MakeTicketApp() {
    const std::string ns = Unique("desk_");
    ApiReply reply = f().Call("POST", "/api/v1/apps", f().builder_token,
                              {{"name", "Help desk"}, {"namespace", ns}, {"handle", UniqueHandle()}});
    EXPECT_EQ(reply.status, 201) << reply.Describe();
    reply = f().Call("POST", "/api/v1/apps/" + ns + "/objects", f().builder_token,
                     {{"name", "Tickets"}, {"api_name", "tickets"}});
    EXPECT_EQ(reply.status, 201) << reply.Describe();
    for (const json& field : {
             json{{"api_name", "title"}, {"label", "Title"}, {"type", "text"}, {"required", true}},
             json{{"api_name", "priority"},
                  {"label", "Priority"},
                  {"type", "dropdown"},
                  {"options", {"Low", "Medium", "High"}},
                  {"default", "Medium"}},
             json{{"api_name", "estimate"}, {"label", "Estimate"}, {"type", "number"}},
             json{{"api_name", "urgent"}, {"label", "Urgent"}, {"type", "checkbox"}},
             json{{"api_name", "due"}, {"label", "Due"}, {"type", "date"}},
             json{{"api_name", "owner"}, {"label", "Owner"}, {"type", "user"}},
             json{{"api_name", "code"}, {"label", "Code"}, {"type", "text"}, {"unique", true}},
         }) {
      reply = f().Call("POST", "/api/v1/apps/" + ns + "/objects/tickets/fields", f().builder_token,
                       field);
      EXPECT_EQ(reply.status, 201) << reply.Describe();
    }
    return ns;
  }

  std::string RecordsPath(const std::string& ns) {
    return "/api/v1/apps/" + ns + "/objects/tickets/records";
  }
  // Creates a record as the member; returns its JSON.
  json MakeRecord(const std::string& ns, json values) {
    const ApiReply reply = f().Call("POST", RecordsPath(ns), f().member_token, {{"values", values}});
    EXPECT_EQ(reply.status, 201) << reply.Describe();
    return reply.json;
  }

  static ApiFixture* fixture_;
};
ApiFixture* AppApiTest::fixture_ = nullptr;

TEST_F(AppApiTest, AppLifecycle) {
  const std::string ns = Unique("crm_");
  const std::string handle = UniqueHandle();
  ApiReply created = f().Call("POST", "/api/v1/apps", f().builder_token,
                              {{"name", "CRM"}, {"namespace", ns}, {"handle", handle},
                               {"description", "Customers"}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string id = created.json["id"];
  EXPECT_THAT(id, ::testing::StartsWith("app_"));
  EXPECT_EQ(created.json["namespace"], ns);
  EXPECT_EQ(created.json["handle"], handle);
  EXPECT_EQ(created.json["version"], 1);
  EXPECT_EQ(created.json["created_by"], f().builder_user_id);
  ASSERT_NE(created.Header("Location"), nullptr);
  EXPECT_EQ(*created.Header("Location"), "/api/v1/apps/" + id);
  ASSERT_NE(created.Header("ETag"), nullptr);
  EXPECT_EQ(*created.Header("ETag"), "\"1\"");

  // By id and by namespace, for every role.
  for (const std::string* token : {&f().member_token, &f().builder_token, &f().admin_token}) {
    ApiReply got = f().Call("GET", "/api/v1/apps/" + ns, *token);
    ASSERT_EQ(got.status, 200) << got.Describe();
    EXPECT_EQ(got.json["id"], id);
  }
  ApiReply got = f().Call("GET", "/api/v1/apps/" + id, f().member_token);
  EXPECT_EQ(got.json["namespace"], ns);
  ExpectError(f().Call("GET", "/api/v1/apps/nothing_here", f().member_token), 404, "not_found");

  ApiReply list = f().Call("GET", "/api/v1/apps?limit=500", f().member_token);
  ASSERT_EQ(list.status, 200) << list.Describe();
  bool listed = false;
  for (const json& app : list.json["items"]) listed = listed || app["id"] == id;
  EXPECT_TRUE(listed);
  EXPECT_TRUE(list.json["next_cursor"].is_null());
  ApiReply page = f().Call("GET", "/api/v1/apps?limit=1", f().member_token);
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.json["items"].size(), 1u);
  ExpectError(f().Call("GET", "/api/v1/apps?limit=0", f().member_token), 400, "invalid_argument");

  // If-Match.
  ExpectError(f().Call("PATCH", "/api/v1/apps/" + ns, f().builder_token, {{"name", "CRM 2"}},
                       {{"If-Match", "\"7\""}}),
              412, "precondition_failed");
  ApiReply patched = f().Call("PATCH", "/api/v1/apps/" + ns, f().builder_token,
                              {{"name", "CRM 2"}, {"namespace", ns + "_x"}}, {{"If-Match", "\"1\""}});
  ASSERT_EQ(patched.status, 200) << patched.Describe();
  EXPECT_EQ(patched.json["version"], 2);
  EXPECT_EQ(*patched.Header("ETag"), "\"2\"");
  EXPECT_EQ(patched.json["namespace"], ns + "_x");

  ASSERT_EQ(f().Call("DELETE", "/api/v1/apps/" + id, f().builder_token).status, 204);
  ExpectError(f().Call("GET", "/api/v1/apps/" + id, f().member_token), 404, "not_found");

  // The audit log has the three changes.
  ApiReply audit = f().Call("GET", "/api/v1/audit?target_id=" + id, f().admin_token);
  ASSERT_EQ(audit.status, 200) << audit.Describe();
  std::vector<std::string> actions;
  for (const json& entry : audit.json["items"]) actions.push_back(entry["action"]);
  EXPECT_THAT(actions, UnorderedElementsAre("app.create", "app.update", "app.delete"));
}

TEST_F(AppApiTest, AppValidationListsEveryBadInput) {
  ApiReply reply = f().Call("POST", "/api/v1/apps", f().builder_token,
                            {{"name", ""}, {"namespace", "No Spaces"}, {"handle", "abc"},
                             {"description", std::string(2001, 'x')}, {"colour", "red"}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply),
              UnorderedElementsAre("name", "namespace", "handle", "description", "colour"));
  reply = f().Call("POST", "/api/v1/apps", f().builder_token, json::object());
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("name", "namespace", "handle"));
  reply = f().Call("POST", "/api/v1/apps", f().builder_token,
                   {{"name", 1}, {"namespace", true}, {"handle", json::array()}});
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("name", "namespace", "handle"));
  ExpectError(f().CallRaw("POST", "/api/v1/apps", f().builder_token, "{\"name\":"), 400,
              "invalid_argument");
  ExpectError(f().Call("POST", "/api/v1/apps", f().builder_token, json::array()), 400,
              "invalid_argument");

  // Taken namespace and handle: 409 naming both.
  const std::string ns = Unique("dup_");
  const std::string handle = UniqueHandle();
  ASSERT_EQ(f().Call("POST", "/api/v1/apps", f().builder_token,
                     {{"name", "A"}, {"namespace", ns}, {"handle", handle}})
                .status,
            201);
  reply = f().Call("POST", "/api/v1/apps", f().builder_token,
                   {{"name", "B"}, {"namespace", ns}, {"handle", handle}});
  ExpectError(reply, 409, "already_exists");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("namespace", "handle"));

  // Namespace and handle freeze once records exist.
  const std::string desk = MakeTicketApp();
  MakeRecord(desk, {{"title", "first"}});
  reply = f().Call("PATCH", "/api/v1/apps/" + desk, f().builder_token, {{"namespace", desk + "_2"}});
  ExpectError(reply, 409, "failed_precondition");
  EXPECT_THAT(reply.json["error"]["message"].get<std::string>(), HasSubstr("has records"));
  reply = f().Call("PATCH", "/api/v1/apps/" + desk, f().builder_token, {{"handle", "ZZZ"}});
  ExpectError(reply, 409, "failed_precondition");
  ExpectError(f().Call("DELETE", "/api/v1/apps/" + desk, f().builder_token), 409,
              "failed_precondition");
  EXPECT_EQ(f().Call("DELETE", "/api/v1/apps/" + desk + "?force=true", f().builder_token).status, 204);
}

TEST_F(AppApiTest, ObjectsAndFields) {
  const std::string ns = Unique("ops_");
  ASSERT_EQ(f().Call("POST", "/api/v1/apps", f().builder_token,
                     {{"name", "Ops"}, {"namespace", ns}, {"handle", UniqueHandle()}})
                .status,
            201);
  const std::string base = "/api/v1/apps/" + ns + "/objects";
  ApiReply object = f().Call("POST", base, f().builder_token,
                             {{"name", "Incidents"}, {"api_name", "incidents"}, {"description", "d"}});
  ASSERT_EQ(object.status, 201) << object.Describe();
  const std::string object_id = object.json["id"];
  EXPECT_TRUE(object.json["fields"].empty());
  ASSERT_NE(object.Header("Location"), nullptr);
  EXPECT_THAT(*object.Header("Location"), HasSubstr("/objects/" + object_id));

  ApiReply reply = f().Call("POST", base, f().builder_token, {{"name", "X"}, {"api_name", "incidents"}});
  ExpectError(reply, 409, "already_exists");
  EXPECT_THAT(BadFields(reply), ElementsAre("api_name"));
  reply = f().Call("POST", base, f().builder_token, {{"api_name", "Bad-Name"}, {"colour", 1}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("name", "api_name", "colour"));

  // Fields: every kind of definition error.
  const std::string fields = base + "/incidents/fields";
  reply = f().Call("POST", fields, f().builder_token,
                   {{"api_name", "created_at"}, {"label", ""}, {"type", "money"}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("api_name", "label", "type"));
  reply = f().Call("POST", fields, f().builder_token,
                   {{"api_name", "sev"}, {"label", "Severity"}, {"type", "dropdown"}});
  EXPECT_THAT(BadFields(reply), ElementsAre("options"));
  reply = f().Call("POST", fields, f().builder_token,
                   {{"api_name", "sev"}, {"label", "Severity"}, {"type", "dropdown"},
                    {"options", {"S1", "S2"}}, {"default", "S3"}, {"unique", true}});
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("default", "unique"));
  reply = f().Call("POST", fields, f().builder_token,
                   {{"api_name", "n"}, {"label", "N"}, {"type", "number"}, {"max_length", 3},
                    {"options", {"a"}}, {"default", "three"}, {"required", "yes"}});
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("max_length", "options", "default", "required"));

  ApiReply sev = f().Call("POST", fields, f().builder_token,
                          {{"api_name", "sev"}, {"label", "Severity"}, {"type", "dropdown"},
                           {"options", {"S1", "S2"}}, {"default", "S2"}});
  ASSERT_EQ(sev.status, 201) << sev.Describe();
  EXPECT_EQ(sev.json["options"], json({"S1", "S2"}));
  ApiReply summary = f().Call("POST", fields, f().builder_token,
                              {{"api_name", "summary"}, {"label", "Summary"}, {"type", "long_text"}});
  ASSERT_EQ(summary.status, 201);
  EXPECT_EQ(summary.json["max_length"], 100000);
  ExpectError(f().Call("POST", fields, f().builder_token,
                       {{"api_name", "sev"}, {"label", "Again"}, {"type", "text"}}),
              409, "already_exists");

  ApiReply listed = f().Call("GET", fields, f().member_token);
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.json["items"].size(), 2u);
  EXPECT_EQ(listed.json["items"][0]["api_name"], "sev");
  ApiReply one = f().Call("GET", fields + "/sev", f().member_token);
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.json["id"], sev.json["id"]);
  EXPECT_EQ(f().Call("GET", fields + "/" + sev.json["id"].get<std::string>(), f().member_token).status,
            200);
  ExpectError(f().Call("GET", fields + "/nope", f().member_token), 404, "not_found");

  reply = f().Call("PATCH", fields + "/sev", f().builder_token,
                   {{"type", "text"}, {"options", {"S1", "S2", "S3"}}, {"label", "Sev"}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), ElementsAre("type"));
  reply = f().Call("PATCH", fields + "/sev", f().builder_token,
                   {{"options", {"S1", "S2", "S3"}}, {"label", "Sev"}}, {{"If-Match", "\"1\""}});
  ASSERT_EQ(reply.status, 200) << reply.Describe();
  EXPECT_EQ(reply.json["version"], 2);
  EXPECT_EQ(reply.json["options"].size(), 3u);
  ExpectError(f().Call("PATCH", fields + "/sev", f().builder_token, {{"label", "x"}},
                       {{"If-Match", "\"1\""}}),
              412, "precondition_failed");

  // The object carries its fields; objects list; object patch.
  ApiReply got = f().Call("GET", base + "/incidents", f().member_token);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.json["fields"].size(), 2u);
  EXPECT_EQ(*got.Header("ETag"), "\"1\"");
  ApiReply objects = f().Call("GET", base, f().member_token);
  ASSERT_EQ(objects.status, 200);
  ASSERT_EQ(objects.json["items"].size(), 1u);
  EXPECT_EQ(objects.json["items"][0]["fields"].size(), 2u);
  reply = f().Call("PATCH", base + "/" + object_id, f().builder_token,
                   {{"name", "Major incidents"}, {"api_name", "other"}});
  EXPECT_THAT(BadFields(reply), ElementsAre("api_name"));
  reply = f().Call("PATCH", base + "/incidents", f().builder_token, {{"name", "Major incidents"}});
  ASSERT_EQ(reply.status, 200) << reply.Describe();
  EXPECT_EQ(reply.json["name"], "Major incidents");
  EXPECT_EQ(reply.json["version"], 2);

  // Deleting a field, then the object.
  EXPECT_EQ(f().Call("DELETE", fields + "/summary", f().builder_token).status, 204);
  ExpectError(f().Call("GET", fields + "/summary", f().member_token), 404, "not_found");
  EXPECT_EQ(f().Call("DELETE", base + "/incidents", f().builder_token).status, 204);
  ExpectError(f().Call("GET", base + "/incidents", f().member_token), 404, "not_found");
}

TEST_F(AppApiTest, RecordLifecycle) {
  const std::string ns = MakeTicketApp();
  ApiReply app = f().Call("GET", "/api/v1/apps/" + ns, f().member_token);
  const std::string handle = app.json["handle"];

  ApiReply created = f().Call("POST", RecordsPath(ns), f().member_token,
                              {{"values",
                                {{"title", "Printer jam"},
                                 {"estimate", 3},
                                 {"urgent", true},
                                 {"due", "2026-12-01"},
                                 {"owner", f().builder_user_id}}}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const json& record = created.json;
  EXPECT_EQ(record["handle"], handle + "-1");
  EXPECT_EQ(record["number"], 1);
  EXPECT_EQ(record["values"]["priority"], "Medium");
  EXPECT_EQ(record["created_by"], f().member_user_id);
  EXPECT_EQ(*created.Header("ETag"), "\"1\"");
  const std::string id = record["id"];
  EXPECT_EQ(*created.Header("Location"), "/api/v1/apps/" + app.json["id"].get<std::string>() +
                                             "/records/" + id);

  const std::string by_handle = "/api/v1/apps/" + ns + "/records/" + handle + "-1";
  ApiReply got = f().Call("GET", by_handle, f().member_token);
  ASSERT_EQ(got.status, 200) << got.Describe();
  EXPECT_EQ(got.json["id"], id);
  EXPECT_EQ(f().Call("GET", "/api/v1/apps/" + ns + "/records/" + id, f().member_token).json["handle"],
            handle + "-1");
  ExpectError(f().Call("GET", "/api/v1/apps/" + ns + "/records/" + handle + "-99", f().member_token),
              404, "not_found");

  // Update with If-Match; stale If-Match is 412.
  ApiReply patched = f().Call("PATCH", by_handle, f().member_token,
                              {{"values", {{"priority", "High"}, {"estimate", nullptr}}}},
                              {{"If-Match", "\"1\""}});
  ASSERT_EQ(patched.status, 200) << patched.Describe();
  EXPECT_EQ(patched.json["version"], 2);
  EXPECT_EQ(patched.json["values"]["priority"], "High");
  EXPECT_FALSE(patched.json["values"].contains("estimate"));
  EXPECT_EQ(patched.json["updated_by"], f().member_user_id);
  ExpectError(f().Call("PATCH", by_handle, f().member_token, {{"values", {{"priority", "Low"}}}},
                       {{"If-Match", "\"1\""}}),
              412, "precondition_failed");

  // Listing with filters, sort and paging.
  MakeRecord(ns, {{"title", "Laptop"}, {"estimate", 10}, {"priority", "Low"}});
  MakeRecord(ns, {{"title", "VPN"}, {"estimate", 9}, {"priority", "High"}});
  ApiReply list = f().Call("GET", RecordsPath(ns) + "?filter%5Bpriority%5D=High&sort=-created_at",
                           f().member_token);
  ASSERT_EQ(list.status, 200) << list.Describe();
  ASSERT_EQ(list.json["items"].size(), 2u);
  EXPECT_EQ(list.json["items"][0]["handle"], handle + "-3");
  EXPECT_EQ(list.json["items"][1]["handle"], handle + "-1");
  list = f().Call("GET", RecordsPath(ns) + "?filter[estimate][gt]=9", f().member_token);
  ASSERT_EQ(list.status, 200) << list.Describe();
  ASSERT_EQ(list.json["items"].size(), 1u);
  EXPECT_EQ(list.json["items"][0]["values"]["title"], "Laptop");
  list = f().Call("GET", RecordsPath(ns) + "?filter[title][contains]=a&filter[priority][in]=Low,High",
                  f().member_token);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json["items"].size(), 2u);
  std::vector<std::string> paged;
  std::string cursor;
  for (int i = 0; i < 10; ++i) {
    ApiReply page = f().Call("GET", RecordsPath(ns) + "?limit=2" +
                                        (cursor.empty() ? "" : "&cursor=" + cursor),
                             f().member_token);
    ASSERT_EQ(page.status, 200) << page.Describe();
    for (const json& item : page.json["items"]) paged.push_back(item["handle"]);
    if (page.json["next_cursor"].is_null()) break;
    cursor = page.json["next_cursor"];
  }
  EXPECT_THAT(paged, ElementsAre(handle + "-1", handle + "-2", handle + "-3"));

  // Unique values: 409 naming the field.
  MakeRecord(ns, {{"title", "coded"}, {"code", "C-1"}});
  ApiReply dup = f().Call("POST", RecordsPath(ns), f().member_token,
                          {{"values", {{"title", "again"}, {"code", "C-1"}}}});
  ExpectError(dup, 409, "already_exists");
  EXPECT_THAT(BadFields(dup), ElementsAre("code"));

  // Delete (builder), then it is gone.
  EXPECT_EQ(f().Call("DELETE", by_handle, f().builder_token).status, 204);
  ExpectError(f().Call("GET", by_handle, f().member_token), 404, "not_found");
}

TEST_F(AppApiTest, RecordValidationListsEveryBadValue) {
  const std::string ns = MakeTicketApp();
  ApiReply reply = f().Call("POST", RecordsPath(ns), f().member_token,
                            {{"values",
                              {{"priority", "Urgent"},
                               {"estimate", "three"},
                               {"urgent", "yes"},
                               {"due", "2026-02-30"},
                               {"owner", "usr_nobody00000000000000"},
                               {"colour", "red"}}}});
  ExpectError(reply, 400, "validation_failed");
  // title is required, colour unknown, the rest malformed.
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("title", "priority", "estimate", "urgent",
                                                     "due", "colour"));
  const json& fields = reply.json["error"]["details"]["fields"];
  EXPECT_EQ(fields["priority"], "must be one of Low, Medium, High");
  EXPECT_EQ(fields["title"], "is required");
  EXPECT_THAT(fields["colour"].get<std::string>(), HasSubstr("not a field of object tickets"));
  EXPECT_THAT(reply.json["error"]["message"].get<std::string>(), HasSubstr("priority"));

  // A user id that is well formed but not in the organization.
  reply = f().Call("POST", RecordsPath(ns), f().member_token,
                   {{"values", {{"title", "t"}, {"owner", "usr_nobody00000000000000"}}}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), ElementsAre("owner"));

  // The body must be {"values": {...}}.
  reply = f().Call("POST", RecordsPath(ns), f().member_token, {{"title", "flat"}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("title", "values"));
  reply = f().Call("POST", RecordsPath(ns), f().member_token, {{"values", "x"}});
  EXPECT_THAT(BadFields(reply), ElementsAre("values"));
  ExpectError(f().CallRaw("POST", RecordsPath(ns), f().member_token, "not json"), 400,
              "invalid_argument");

  // Updates: unknown fields and clearing a required one.
  json record = MakeRecord(ns, {{"title", "ok"}});
  const std::string path = "/api/v1/apps/" + ns + "/records/" + record["handle"].get<std::string>();
  reply = f().Call("PATCH", path, f().member_token,
                   {{"values", {{"title", nullptr}, {"nope", 1}, {"estimate", 1.5}}}});
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("title", "nope", "estimate"));

  // Bad list queries.
  reply = f().Call("GET", RecordsPath(ns) +
                              "?filter[estimate][gt]=x&filter[colour]=1&filter[urgent][lt]=true"
                              "&filter[estimate][near]=1&sort=nope&limit=1000",
                   f().member_token);
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("filter[estimate][near]", "limit"));
  reply = f().Call("GET", RecordsPath(ns) + "?filter[estimate][gt]=x&filter[colour]=1"
                                            "&filter[urgent][lt]=true&sort=nope",
                   f().member_token);
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), UnorderedElementsAre("filter[estimate][gt]", "filter[colour]",
                                                     "filter[urgent][lt]", "sort"));
  reply = f().Call("GET", RecordsPath(ns) + "?cursor=garbage", f().member_token);
  ExpectError(reply, 400, "validation_failed");
  EXPECT_THAT(BadFields(reply), ElementsAre("cursor"));

  // Unknown app and object.
  ExpectError(f().Call("POST", "/api/v1/apps/" + ns + "/objects/nope/records", f().member_token,
                       {{"values", {{"title", "t"}}}}),
              404, "not_found");
  ExpectError(f().Call("GET", "/api/v1/apps/no_such_app/objects/tickets/records", f().member_token),
              404, "not_found");
}

TEST_F(AppApiTest, IdempotentRecordCreateReplaysTheFirstResponse) {
  const std::string ns = MakeTicketApp();
  const net::HttpHeaders key = {{"Idempotency-Key", Unique("key-")}};
  const json body = {{"values", {{"title", "once"}}}};
  ApiReply first = f().Call("POST", RecordsPath(ns), f().member_token, body, key);
  ASSERT_EQ(first.status, 201) << first.Describe();
  ApiReply second = f().Call("POST", RecordsPath(ns), f().member_token, body, key);
  ASSERT_EQ(second.status, 201) << second.Describe();
  EXPECT_EQ(second.json["id"], first.json["id"]);
  ApiReply list = f().Call("GET", RecordsPath(ns), f().member_token);
  EXPECT_EQ(list.json["items"].size(), 1u);
}

// Every mutating endpoint of this area, by each role: members may create and
// update records only; builders and admins (with or without a verified
// domain) may do everything; no credentials is 401.
TEST_F(AppApiTest, AuthorizationMatrix) {
  struct Who {
    std::string name;
    const std::string* token;
    bool builds;
  };
  const std::string none;
  const std::vector<Who> people = {
      {"admin", &f().admin_token, true},
      {"builder", &f().builder_token, true},
      {"member", &f().member_token, false},
      {"outsider", &f().outsider_token, true},
  };
  for (const Who& who : people) {
    SCOPED_TRACE(who.name);
    const std::string& token = *who.token;
    const int ok_or_forbidden = who.builds ? 0 : 403;
    auto expect = [&](const ApiReply& reply, int success) {
      if (ok_or_forbidden == 403) {
        ExpectError(reply, 403, "permission_denied");
      } else {
        EXPECT_EQ(reply.status, success) << reply.Describe();
      }
    };
    // Fresh resources made by the builder for each role.
    const std::string ns = MakeTicketApp();
    const std::string app = "/api/v1/apps/" + ns;
    json record = MakeRecord(ns, {{"title", "r"}});
    const std::string record_path = app + "/records/" + record["id"].get<std::string>();
    ASSERT_EQ(f().Call("POST", app + "/objects", f().builder_token,
                       {{"name", "Scratch"}, {"api_name", "scratch"}})
                  .status,
              201);
    ASSERT_EQ(f().Call("POST", app + "/objects/tickets/fields", f().builder_token,
                       {{"api_name", "scratch"}, {"label", "S"}, {"type", "text"}})
                  .status,
              201);

    expect(f().Call("POST", "/api/v1/apps", token,
                    {{"name", "M"}, {"namespace", Unique("m_")}, {"handle", UniqueHandle()}}),
           201);
    expect(f().Call("PATCH", app, token, {{"description", "changed"}}), 200);
    expect(f().Call("POST", app + "/objects", token, {{"name", "New"}, {"api_name", "newer"}}), 201);
    expect(f().Call("PATCH", app + "/objects/tickets", token, {{"name", "Tickets 2"}}), 200);
    expect(f().Call("POST", app + "/objects/tickets/fields", token,
                    {{"api_name", "extra"}, {"label", "Extra"}, {"type", "text"}}),
           201);
    expect(f().Call("PATCH", app + "/objects/tickets/fields/title", token, {{"label", "Subject"}}),
           200);
    expect(f().Call("DELETE", app + "/objects/tickets/fields/scratch", token), 204);
    expect(f().Call("DELETE", app + "/objects/scratch", token), 204);
    expect(f().Call("DELETE", record_path, token), 204);

    // Records: everyone creates and updates.
    ApiReply made = f().Call("POST", RecordsPath(ns), token, {{"values", {{"title", who.name}}}});
    EXPECT_EQ(made.status, 201) << made.Describe();
    ApiReply updated = f().Call("PATCH", app + "/records/" + made.json.value("handle", ""), token,
                                {{"values", {{"priority", "Low"}}}});
    EXPECT_EQ(updated.status, 200) << updated.Describe();

    expect(f().Call("DELETE", app + "?force=true", token), 204);

    // Without credentials, everything is 401.
    ExpectError(f().Call("GET", app, none), 401, "unauthenticated");
    ExpectError(f().Call("POST", RecordsPath(ns), none, {{"values", {{"title", "x"}}}}), 401,
                "unauthenticated");
    ExpectError(f().Call("POST", "/api/v1/apps", none, {{"name", "x"}}), 401, "unauthenticated");
  }
}

}  // namespace
}  // namespace quarry::testing
