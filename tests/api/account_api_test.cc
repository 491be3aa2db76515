// Accounts over real HTTP: authentication, the authorization matrix of every
// account-mutating endpoint, login and sessions, API tokens, verified
// domains, users and roles, settings, the audit log, idempotency, If-Match,
// and the promise that no secret comes back out.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "domain/accounts.h"
#include "tests/support/api_fixture.h"

namespace quarry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

class AccountApiTest : public ::testing::Test {
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

  static void ExpectError(const ApiReply& reply, int status, const std::string& code) {
    EXPECT_EQ(reply.status, status) << reply.Describe();
    ASSERT_TRUE(reply.json.is_object() && reply.json.contains("error")) << reply.Describe();
    EXPECT_EQ(reply.json["error"]["code"], code) << reply.Describe();
    EXPECT_FALSE(reply.json["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(reply.json["error"]["hint"].is_string());
    EXPECT_TRUE(reply.json["error"]["details"].is_object());
  }

  // A user created by the admin; returns its id.
  std::string CreateUser(const std::string& email, const std::string& role = "member") {
    const ApiReply reply = f().Call("POST", "/api/v1/users", f().admin_token, {{"email", email}, {"role", role}});
    EXPECT_EQ(reply.status, 201) << reply.Describe();
    return reply.json.value("id", "");
  }

  std::string TokenFor(const std::string& user_id) {
    const ApiReply reply =
        f().Call("POST", "/api/v1/tokens", f().admin_token, {{"name", "for test"}, {"user_id", user_id}});
    EXPECT_EQ(reply.status, 201) << reply.Describe();
    return reply.json.value("token", "");
  }

  static ApiFixture* fixture_;
};
ApiFixture* AccountApiTest::fixture_ = nullptr;

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

TEST_F(AccountApiTest, MissingOrInvalidCredentialsAre401) {
  for (const std::string& token : {std::string(), std::string("qk_0000000000000000000000000000000000000000"),
                                   std::string("not-a-quarry-token")}) {
    const ApiReply reply = f().Call("GET", "/api/v1/me", token);
    ExpectError(reply, 401, "unauthenticated");
    ASSERT_NE(reply.Header("WWW-Authenticate"), nullptr);
  }
  const ApiReply basic = f().Call("GET", "/api/v1/me", "", nullptr, {{"Authorization", "Basic YTpi"}});
  ExpectError(basic, 401, "unauthenticated");
  const ApiReply bad_cookie = f().Call("GET", "/api/v1/me", "", nullptr, {{"Cookie", "quarry_session=nope"}});
  ExpectError(bad_cookie, 401, "unauthenticated");
}

TEST_F(AccountApiTest, ExpiredTokenIs401) {
  const ApiReply created = f().Call("POST", "/api/v1/tokens", f().member_token,
                                    {{"name", "short-lived"}, {"expires_at", "2099-01-01T00:00:00Z"}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string token = created.json["token"];
  EXPECT_EQ(f().Call("GET", "/api/v1/me", token).status, 200);
  // Time travel in the store: the token's expiry moves into the past.
  const std::string id = created.json["id"];
  ASSERT_TRUE(f().context()
                  .db
                  ->Write([&](store::Tx& tx) {
                    return tx.Exec("UPDATE api_tokens SET expires_at = $1 WHERE id = $2",
                                   {std::string("2001-01-01T00:00:00.000Z"), id})
                        .status();
                  })
                  .ok());
  const ApiReply reply = f().Call("GET", "/api/v1/me", token);
  ExpectError(reply, 401, "unauthenticated");
  EXPECT_THAT(reply.json["error"]["message"].get<std::string>(), HasSubstr("expired"));
}

TEST_F(AccountApiTest, MeDescribesTheCallerAndTheirRights) {
  const ApiReply admin = f().Call("GET", "/api/v1/me", f().admin_token);
  ASSERT_EQ(admin.status, 200) << admin.Describe();
  EXPECT_EQ(admin.json["user"]["email"], "admin@example.com");
  EXPECT_EQ(admin.json["user"]["role"], "admin");
  EXPECT_EQ(admin.json["organization"]["id"], f().org_id);
  EXPECT_EQ(admin.json["permissions"]["can_edit_providers"], true);
  EXPECT_EQ(admin.json["auth"]["kind"], "token");

  const ApiReply outsider = f().Call("GET", "/api/v1/me", f().outsider_token);
  ASSERT_EQ(outsider.status, 200) << outsider.Describe();
  EXPECT_EQ(outsider.json["permissions"]["is_admin"], true);
  EXPECT_EQ(outsider.json["permissions"]["can_edit_providers"], false);

  const ApiReply member = f().Call("GET", "/api/v1/me", f().member_token);
  EXPECT_EQ(member.json["permissions"]["can_build"], false);
}

// ---------------------------------------------------------------------------
// The authorization matrix: every role against every account-mutating
// endpoint (and the admin-only reads).
// ---------------------------------------------------------------------------

enum class Who { kAdmin, kBuilder, kMember, kOutsider };

TEST_F(AccountApiTest, AuthorizationMatrix) {
  struct Attempt {
    std::string name;
    // Makes the request for a caller (fresh targets each time, so a success
    // never changes what the next caller meets).
    std::function<ApiReply(const std::string& token)> run;
    std::set<Who> allowed;
  };
  const std::set<Who> everyone = {Who::kAdmin, Who::kBuilder, Who::kMember, Who::kOutsider};
  const std::set<Who> admins = {Who::kAdmin, Who::kOutsider};
  const std::set<Who> verified_admin = {Who::kAdmin};

  std::vector<Attempt> attempts = {
      {"PATCH /organization",
       [&](const std::string& token) {
         return f().Call("PATCH", "/api/v1/organization", token,
                         {{"settings", {{"provider_key_rotation_days", 90}}}});
       },
       admins},
      {"POST /users (unverified domain)",
       [&](const std::string& token) {
         return f().Call("POST", "/api/v1/users", token, {{"email", Unique("new") + "@elsewhere.test"}});
       },
       admins},
      {"POST /users (verified domain)",
       [&](const std::string& token) {
         return f().Call("POST", "/api/v1/users", token, {{"email", Unique("new") + "@example.com"}});
       },
       verified_admin},
      {"PATCH /users/{id} (unverified domain)",
       [&](const std::string& token) {
         const std::string id = CreateUser(Unique("p") + "@elsewhere.test");
         return f().Call("PATCH", "/api/v1/users/" + id, token, {{"role", "builder"}});
       },
       admins},
      {"PATCH /users/{id} (verified domain)",
       [&](const std::string& token) {
         const std::string id = CreateUser(Unique("p") + "@example.com");
         return f().Call("PATCH", "/api/v1/users/" + id, token, {{"role", "admin"}});
       },
       verified_admin},
      {"PUT /users/{id}/password (verified domain)",
       [&](const std::string& token) {
         const std::string id = CreateUser(Unique("pw") + "@example.com");
         return f().Call("PUT", "/api/v1/users/" + id + "/password", token, {{"password", "a long password 1"}});
       },
       verified_admin},
      {"PUT /users/{id}/password (unverified domain)",
       [&](const std::string& token) {
         const std::string id = CreateUser(Unique("pw") + "@elsewhere.test");
         return f().Call("PUT", "/api/v1/users/" + id + "/password", token, {{"password", "a long password 1"}});
       },
       admins},
      {"DELETE /users/{id}",
       [&](const std::string& token) {
         const std::string id = CreateUser(Unique("d") + "@elsewhere.test");
         return f().Call("DELETE", "/api/v1/users/" + id, token);
       },
       admins},
      {"POST /tokens (own)",
       [&](const std::string& token) { return f().Call("POST", "/api/v1/tokens", token, {{"name", "mine"}}); },
       everyone},
      {"POST /tokens (for another user)",
       [&](const std::string& token) {
         const std::string id = CreateUser(Unique("t") + "@elsewhere.test");
         return f().Call("POST", "/api/v1/tokens", token, {{"name", "theirs"}, {"user_id", id}});
       },
       admins},
      {"DELETE /tokens/{id} (someone else's)",
       [&](const std::string& token) {
         const ApiReply made = f().Call("POST", "/api/v1/tokens", f().admin_token, {{"name", "victim"}});
         return f().Call("DELETE", "/api/v1/tokens/" + made.json.value("id", ""), token);
       },
       admins},
      {"POST /verified-domains",
       [&](const std::string& token) {
         return f().Call("POST", "/api/v1/verified-domains", token, {{"domain", Unique("d") + ".example.org"}});
       },
       verified_admin},
      {"DELETE /verified-domains/{id}",
       [&](const std::string& token) {
         const ApiReply made = f().Call("POST", "/api/v1/verified-domains", f().admin_token,
                                        {{"domain", Unique("x") + ".example.org"}});
         return f().Call("DELETE", "/api/v1/verified-domains/" + made.json.value("id", ""), token);
       },
       verified_admin},
      {"GET /verified-domains",
       [&](const std::string& token) { return f().Call("GET", "/api/v1/verified-domains", token); }, admins},
      {"GET /audit", [&](const std::string& token) { return f().Call("GET", "/api/v1/audit", token); }, admins},
  };
  const std::vector<std::pair<Who, std::string>> callers = {{Who::kAdmin, f().admin_token},
                                                            {Who::kBuilder, f().builder_token},
                                                            {Who::kMember, f().member_token},
                                                            {Who::kOutsider, f().outsider_token}};
  const char* names[] = {"admin", "builder", "member", "outsider"};
  for (const Attempt& attempt : attempts) {
    for (const auto& [who, token] : callers) {
      const ApiReply reply = attempt.run(token);
      const std::string label = attempt.name + " as " + names[static_cast<int>(who)];
      if (attempt.allowed.contains(who)) {
        EXPECT_GE(reply.status, 200) << label << ": " << reply.Describe();
        EXPECT_LT(reply.status, 300) << label << ": " << reply.Describe();
      } else if (reply.status == 404) {
        // Someone else's token is "not found" to a non-admin, not forbidden.
        EXPECT_EQ(attempt.name, "DELETE /tokens/{id} (someone else's)") << label << ": " << reply.Describe();
      } else {
        EXPECT_EQ(reply.status, 403) << label << ": " << reply.Describe();
        EXPECT_EQ(reply.json["error"]["code"], "permission_denied") << label;
        EXPECT_FALSE(reply.json["error"]["message"].get<std::string>().empty()) << label;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Login, sessions, logout
// ---------------------------------------------------------------------------

std::string CookieFrom(const ApiReply& reply) {
  const std::string* header = reply.Header("Set-Cookie");
  if (header == nullptr) return "";
  return header->substr(0, header->find(';'));
}

TEST_F(AccountApiTest, LoginSessionCookieAndLogout) {
  const std::string email = Unique("login") + "@elsewhere.test";
  const std::string id = CreateUser(email);
  const std::string password = "correct horse battery staple";
  ASSERT_EQ(f().Call("PUT", "/api/v1/users/" + id + "/password", f().admin_token, {{"password", password}}).status,
            204);

  ExpectError(f().Call("POST", "/api/v1/auth/login", "", {{"email", email}, {"password", "wrong password!!"}}), 401,
              "unauthenticated");
  ExpectError(f().Call("POST", "/api/v1/auth/login", "", {{"email", "nobody@elsewhere.test"}, {"password", password}}),
              401, "unauthenticated");

  const ApiReply login = f().Call("POST", "/api/v1/auth/login", "", {{"email", email}, {"password", password}});
  ASSERT_EQ(login.status, 200) << login.Describe();
  EXPECT_EQ(login.json["user"]["id"], id);
  ASSERT_NE(login.Header("Set-Cookie"), nullptr);
  const std::string set_cookie = *login.Header("Set-Cookie");
  EXPECT_THAT(set_cookie, HasSubstr("quarry_session="));
  EXPECT_THAT(set_cookie, HasSubstr("HttpOnly"));
  EXPECT_THAT(set_cookie, HasSubstr("SameSite=Strict"));
  EXPECT_THAT(set_cookie, HasSubstr("Path=/"));
  EXPECT_THAT(login.body, Not(HasSubstr(password)));
  const std::string cookie = CookieFrom(login);

  const ApiReply me = f().Call("GET", "/api/v1/me", "", nullptr, {{"Cookie", "other=1; " + cookie}});
  ASSERT_EQ(me.status, 200) << me.Describe();
  EXPECT_EQ(me.json["user"]["email"], email);
  EXPECT_EQ(me.json["auth"]["kind"], "session");

  const ApiReply logout = f().Call("POST", "/api/v1/auth/logout", "", nullptr, {{"Cookie", cookie}});
  EXPECT_EQ(logout.status, 204) << logout.Describe();
  ASSERT_NE(logout.Header("Set-Cookie"), nullptr);
  EXPECT_THAT(*logout.Header("Set-Cookie"), HasSubstr("Max-Age=0"));
  ExpectError(f().Call("GET", "/api/v1/me", "", nullptr, {{"Cookie", cookie}}), 401, "unauthenticated");
}

TEST_F(AccountApiTest, ChangingYourPasswordNeedsTheCurrentOneAndEndsOtherSessions) {
  const std::string email = Unique("pwchange") + "@elsewhere.test";
  const std::string id = CreateUser(email);
  ASSERT_EQ(f().Call("PUT", "/api/v1/users/" + id + "/password", f().admin_token, {{"password", "first password 1"}})
                .status,
            204);
  const ApiReply login =
      f().Call("POST", "/api/v1/auth/login", "", {{"email", email}, {"password", "first password 1"}});
  ASSERT_EQ(login.status, 200) << login.Describe();
  const std::string old_session = CookieFrom(login);
  const std::string token = TokenFor(id);

  ExpectError(f().Call("PUT", "/api/v1/me/password", token,
                       {{"current_password", "not the password"}, {"new_password", "second password 2"}}),
              403, "permission_denied");
  ExpectError(f().Call("PUT", "/api/v1/me/password", token,
                       {{"current_password", "first password 1"}, {"new_password", "short"}}),
              400, "invalid_argument");
  ASSERT_EQ(f().Call("PUT", "/api/v1/me/password", token,
                     {{"current_password", "first password 1"}, {"new_password", "second password 2"}})
                .status,
            204);
  ExpectError(f().Call("GET", "/api/v1/me", "", nullptr, {{"Cookie", old_session}}), 401, "unauthenticated");
  EXPECT_EQ(f().Call("POST", "/api/v1/auth/login", "", {{"email", email}, {"password", "second password 2"}}).status,
            200);
}

// ---------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------

TEST_F(AccountApiTest, TokensAreShownOnceListedWithoutSecretAndRevocable) {
  const ApiReply created = f().Call("POST", "/api/v1/tokens", f().builder_token, {{"name", "ci"}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string token = created.json["token"];
  const std::string id = created.json["id"];
  EXPECT_THAT(token, ::testing::StartsWith("qk_"));
  EXPECT_EQ(created.json["prefix"], token.substr(0, 10));
  EXPECT_EQ(created.json["user_id"], f().builder_user_id);
  ASSERT_NE(created.Header("Location"), nullptr);
  EXPECT_EQ(*created.Header("Location"), "/api/v1/tokens/" + id);

  EXPECT_EQ(f().Call("GET", "/api/v1/me", token).status, 200);

  const ApiReply list = f().Call("GET", "/api/v1/tokens", f().builder_token);
  ASSERT_EQ(list.status, 200) << list.Describe();
  EXPECT_THAT(list.body, Not(HasSubstr(token)));
  bool found = false;
  for (const json& item : list.json["items"]) {
    EXPECT_EQ(item["user_id"], f().builder_user_id) << "a builder sees only their own tokens";
    EXPECT_FALSE(item.contains("token"));
    found = found || item["id"] == id;
  }
  EXPECT_TRUE(found);
  const ApiReply one = f().Call("GET", "/api/v1/tokens/" + id, f().builder_token);
  ASSERT_EQ(one.status, 200);
  EXPECT_THAT(one.body, Not(HasSubstr(token)));
  EXPECT_EQ(f().Call("GET", "/api/v1/tokens/" + id, f().member_token).status, 404);

  const ApiReply all = f().Call("GET", "/api/v1/tokens?user_id=" + f().builder_user_id, f().admin_token);
  ASSERT_EQ(all.status, 200);
  EXPECT_THAT(all.body, HasSubstr(id));

  ASSERT_EQ(f().Call("DELETE", "/api/v1/tokens/" + id, f().builder_token).status, 204);
  const ApiReply revoked = f().Call("GET", "/api/v1/me", token);
  ExpectError(revoked, 401, "unauthenticated");
  EXPECT_THAT(revoked.json["error"]["message"].get<std::string>(), HasSubstr("revoked"));
  // Revoking again is harmless.
  EXPECT_EQ(f().Call("DELETE", "/api/v1/tokens/" + id, f().builder_token).status, 204);
}

TEST_F(AccountApiTest, TokenListPagesWithCursors) {
  const std::string id = CreateUser(Unique("pager") + "@elsewhere.test");
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(f().Call("POST", "/api/v1/tokens", f().admin_token, {{"name", "t" + std::to_string(i)}, {"user_id", id}})
                  .status,
              201);
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    const std::string query = "/api/v1/tokens?user_id=" + id + "&limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor);
    const ApiReply page = f().Call("GET", query, f().admin_token);
    ASSERT_EQ(page.status, 200) << page.Describe();
    EXPECT_LE(page.json["items"].size(), 2u);
    for (const json& item : page.json["items"]) EXPECT_TRUE(seen.insert(item["id"]).second) << "no repeats";
    cursor = page.json["next_cursor"].is_null() ? "" : page.json["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(pages, 3);
  ExpectError(f().Call("GET", "/api/v1/tokens?limit=0", f().admin_token), 400, "invalid_argument");
  ExpectError(f().Call("GET", "/api/v1/tokens?cursor=bogus", f().admin_token), 400, "invalid_argument");
}

// ---------------------------------------------------------------------------
// Users, roles, settings, If-Match
// ---------------------------------------------------------------------------

TEST_F(AccountApiTest, UsersAndRolesWithIfMatch) {
  const std::string email = Unique("Role") + "@Elsewhere.Test";
  const ApiReply created =
      f().Call("POST", "/api/v1/users", f().admin_token, {{"email", email}, {"role", "builder"}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  EXPECT_EQ(created.json["email"], domain::NormalizeEmail(email).value());
  EXPECT_EQ(created.json["role"], "builder");
  EXPECT_EQ(created.json["has_password"], false);
  ASSERT_NE(created.Header("ETag"), nullptr);
  EXPECT_EQ(*created.Header("ETag"), "\"1\"");
  const std::string id = created.json["id"];

  ExpectError(f().Call("POST", "/api/v1/users", f().admin_token, {{"email", email}}), 409, "already_exists");
  ExpectError(f().Call("POST", "/api/v1/users", f().admin_token, {{"email", "not an address"}}), 400,
              "invalid_argument");
  ExpectError(f().Call("POST", "/api/v1/users", f().admin_token, {{"email", "x@elsewhere.test"}, {"role", "owner"}}),
              400, "invalid_argument");

  ExpectError(f().Call("PATCH", "/api/v1/users/" + id, f().admin_token, {{"role", "member"}}, {{"If-Match", "\"7\""}}),
              412, "precondition_failed");
  const ApiReply updated =
      f().Call("PATCH", "/api/v1/users/" + id, f().admin_token, {{"role", "member"}}, {{"If-Match", "\"1\""}});
  ASSERT_EQ(updated.status, 200) << updated.Describe();
  EXPECT_EQ(updated.json["role"], "member");
  EXPECT_EQ(updated.json["version"], 2);
  ASSERT_NE(updated.Header("ETag"), nullptr);
  EXPECT_EQ(*updated.Header("ETag"), "\"2\"");

  const ApiReply fetched = f().Call("GET", "/api/v1/users/" + id, f().member_token);
  ASSERT_EQ(fetched.status, 200);
  EXPECT_EQ(fetched.json["role"], "member");
  ExpectError(f().Call("GET", "/api/v1/users/usr_doesnotexist000000000", f().admin_token), 404, "not_found");

  // A disabled user's token stops working; enabling brings it back.
  const std::string token = TokenFor(id);
  ASSERT_EQ(f().Call("PATCH", "/api/v1/users/" + id, f().admin_token, {{"disabled", true}}).status, 200);
  ExpectError(f().Call("GET", "/api/v1/me", token), 401, "unauthenticated");
  ASSERT_EQ(f().Call("PATCH", "/api/v1/users/" + id, f().admin_token, {{"disabled", false}}).status, 200);
  EXPECT_EQ(f().Call("GET", "/api/v1/me", token).status, 200);

  ASSERT_EQ(f().Call("DELETE", "/api/v1/users/" + id, f().admin_token).status, 204);
  ExpectError(f().Call("GET", "/api/v1/me", token), 401, "unauthenticated");
  ExpectError(f().Call("GET", "/api/v1/users/" + id, f().admin_token), 404, "not_found");
}

TEST_F(AccountApiTest, UserListPages) {
  const ApiReply first = f().Call("GET", "/api/v1/users?limit=2", f().member_token);
  ASSERT_EQ(first.status, 200) << first.Describe();
  ASSERT_EQ(first.json["items"].size(), 2u);
  ASSERT_TRUE(first.json["next_cursor"].is_string());
  const ApiReply second =
      f().Call("GET", "/api/v1/users?limit=2&cursor=" + first.json["next_cursor"].get<std::string>(), f().member_token);
  ASSERT_EQ(second.status, 200) << second.Describe();
  ASSERT_FALSE(second.json["items"].empty());
  EXPECT_NE(second.json["items"][0]["id"], first.json["items"][0]["id"]);
  EXPECT_NE(second.json["items"][0]["id"], first.json["items"][1]["id"]);
}

TEST_F(AccountApiTest, OrganizationSettings) {
  const ApiReply before = f().Call("GET", "/api/v1/organization", f().member_token);
  ASSERT_EQ(before.status, 200) << before.Describe();
  EXPECT_TRUE(before.json["settings"]["provider_key_rotation_days"].is_number_integer());
  ASSERT_NE(before.Header("ETag"), nullptr);
  const std::string etag = *before.Header("ETag");

  ExpectError(f().Call("PATCH", "/api/v1/organization", f().admin_token,
                       {{"settings", {{"provider_key_rotation_days", 0}}}}),
              400, "invalid_argument");
  ExpectError(f().Call("PATCH", "/api/v1/organization", f().admin_token,
                       {{"settings", {{"provider_key_rotation_days", "ninety"}}}}),
              400, "invalid_argument");
  const ApiReply after = f().Call("PATCH", "/api/v1/organization", f().admin_token,
                                  {{"settings", {{"provider_key_rotation_days", 45}}}}, {{"If-Match", etag}});
  ASSERT_EQ(after.status, 200) << after.Describe();
  EXPECT_EQ(after.json["settings"]["provider_key_rotation_days"], 45);
  ExpectError(f().Call("PATCH", "/api/v1/organization", f().admin_token, {{"name", "Renamed"}}, {{"If-Match", etag}}),
              412, "precondition_failed");
  ASSERT_EQ(f().Call("PATCH", "/api/v1/organization", f().admin_token,
                     {{"settings", {{"provider_key_rotation_days", 90}}}})
                .status,
            200);
}

TEST_F(AccountApiTest, LastAdminCannotBeDemoted) {
  // The fixture has two admins; demote one, then the other must stay.
  const std::string id = CreateUser(Unique("solo") + "@elsewhere.test", "admin");
  const ApiReply list = f().Call("GET", "/api/v1/users?limit=500", f().admin_token);
  ASSERT_EQ(list.status, 200);
  // Disable every admin but the fixture's own admin...
  std::vector<std::string> disabled;
  for (const json& user : list.json["items"]) {
    if (user["role"] == "admin" && user["id"] != f().admin_user_id && user["disabled"] == false) {
      ASSERT_EQ(f().Call("PATCH", "/api/v1/users/" + user["id"].get<std::string>(), f().admin_token,
                         {{"disabled", true}})
                    .status,
                200);
      disabled.push_back(user["id"]);
    }
  }
  // ...then the last enabled admin cannot demote themselves.
  const ApiReply demote =
      f().Call("PATCH", "/api/v1/users/" + f().admin_user_id, f().admin_token, {{"role", "member"}});
  ExpectError(demote, 409, "failed_precondition");
  for (const std::string& user_id : disabled) {
    ASSERT_EQ(f().Call("PATCH", "/api/v1/users/" + user_id, f().admin_token, {{"disabled", false}}).status, 200);
  }
  ASSERT_EQ(f().Call("DELETE", "/api/v1/users/" + id, f().admin_token).status, 204);
}

// ---------------------------------------------------------------------------
// Verified domains
// ---------------------------------------------------------------------------

TEST_F(AccountApiTest, VerifiedDomainsGrantProviderRights) {
  const ApiReply added = f().Call("POST", "/api/v1/verified-domains", f().admin_token, {{"domain", "Unverified.Test"}});
  ASSERT_EQ(added.status, 201) << added.Describe();
  EXPECT_EQ(added.json["domain"], "unverified.test");
  // The outsider admin is now a provider editor...
  EXPECT_EQ(f().Call("GET", "/api/v1/me", f().outsider_token).json["permissions"]["can_edit_providers"], true);
  ExpectError(f().Call("POST", "/api/v1/verified-domains", f().admin_token, {{"domain", "unverified.test"}}), 409,
              "already_exists");
  ExpectError(f().Call("POST", "/api/v1/verified-domains", f().admin_token, {{"domain", "not a domain"}}), 400,
              "invalid_argument");
  // ...but may not remove their own domain.
  ExpectError(f().Call("DELETE", "/api/v1/verified-domains/" + added.json["id"].get<std::string>(), f().outsider_token),
              409, "failed_precondition");
  ASSERT_EQ(f().Call("DELETE", "/api/v1/verified-domains/" + added.json["id"].get<std::string>(), f().admin_token)
                .status,
            204);
  // Removal takes effect on the next request.
  EXPECT_EQ(f().Call("GET", "/api/v1/me", f().outsider_token).json["permissions"]["can_edit_providers"], false);
  const ApiReply list = f().Call("GET", "/api/v1/verified-domains", f().admin_token);
  ASSERT_EQ(list.status, 200);
  EXPECT_THAT(list.body, HasSubstr("\"example.com\""));
  EXPECT_THAT(list.body, Not(HasSubstr("unverified.test")));
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

TEST_F(AccountApiTest, ChangesAreAuditedWithoutSecrets) {
  const std::string password = "audit password secret 1";
  const std::string email = Unique("audited") + "@elsewhere.test";
  const ApiReply created = f().Call("POST", "/api/v1/users", f().admin_token,
                                    {{"email", email}, {"role", "member"}, {"password", password}},
                                    {{"X-Request-Id", "audit-test-1"}});
  ASSERT_EQ(created.status, 201) << created.Describe();
  const std::string id = created.json["id"];
  EXPECT_THAT(created.body, Not(HasSubstr(password)));
  ASSERT_EQ(f().Call("PATCH", "/api/v1/users/" + id, f().admin_token, {{"role", "builder"}}).status, 200);
  const ApiReply token = f().Call("POST", "/api/v1/tokens", f().admin_token, {{"name", "audited"}, {"user_id", id}});
  ASSERT_EQ(token.status, 201);
  const std::string token_value = token.json["token"];

  const ApiReply log = f().Call("GET", "/api/v1/audit?target_id=" + id, f().admin_token);
  ASSERT_EQ(log.status, 200) << log.Describe();
  ASSERT_EQ(log.json["items"].size(), 2u) << log.Describe();
  const json& change = log.json["items"][0];  // newest first
  EXPECT_EQ(change["action"], "user.role_change");
  EXPECT_EQ(change["actor"]["user_id"], f().admin_user_id);
  EXPECT_EQ(change["actor"]["email"], "admin@example.com");
  EXPECT_EQ(change["target"]["type"], "user");
  EXPECT_EQ(change["before"]["role"], "member");
  EXPECT_EQ(change["after"]["role"], "builder");
  EXPECT_TRUE(change["at"].is_string());
  const json& create = log.json["items"][1];
  EXPECT_EQ(create["action"], "user.create");
  EXPECT_TRUE(create["before"].is_null());
  EXPECT_EQ(create["request_id"], "audit-test-1");

  ASSERT_EQ(f().Call("POST", "/api/v1/tokens", f().member_token, {{"name", "second"}}).status, 201);
  const ApiReply by_action = f().Call("GET", "/api/v1/audit?action=token.create&limit=1", f().admin_token);
  ASSERT_EQ(by_action.status, 200);
  ASSERT_EQ(by_action.json["items"].size(), 1u);
  EXPECT_EQ(by_action.json["items"][0]["action"], "token.create");
  EXPECT_TRUE(by_action.json["next_cursor"].is_string()) << "another token creation exists";
  const ApiReply next = f().Call(
      "GET", "/api/v1/audit?action=token.create&limit=1&cursor=" + by_action.json["next_cursor"].get<std::string>(),
      f().admin_token);
  ASSERT_EQ(next.status, 200) << next.Describe();
  ASSERT_EQ(next.json["items"].size(), 1u);
  EXPECT_NE(next.json["items"][0]["id"], by_action.json["items"][0]["id"]);

  const ApiReply everything = f().Call("GET", "/api/v1/audit?limit=500", f().admin_token);
  ASSERT_EQ(everything.status, 200);
  EXPECT_THAT(everything.body, Not(HasSubstr(password)));
  EXPECT_THAT(everything.body, Not(HasSubstr(token_value)));
  EXPECT_THAT(everything.body, Not(HasSubstr(f().admin_token)));
}

// The plaintext of a password or token is in no response, and nowhere in
// the database files (only hashes are stored; idempotent replays are sealed).
TEST_F(AccountApiTest, SecretsAreNotInTheDatabaseFiles) {
  const std::string password = "needle password 0123456789";
  const std::string id = CreateUser(Unique("needle") + "@elsewhere.test");
  ASSERT_EQ(f().Call("PUT", "/api/v1/users/" + id + "/password", f().admin_token, {{"password", password}}).status, 204);
  const ApiReply token = f().Call("POST", "/api/v1/tokens", f().admin_token, {{"name", "needle"}, {"user_id", id}},
                                  {{"Idempotency-Key", "needle-key"}});
  ASSERT_EQ(token.status, 201);
  const std::string token_value = token.json["token"];
  const ApiReply login = f().Call("POST", "/api/v1/auth/login", "",
                                  {{"email", f().Call("GET", "/api/v1/users/" + id, f().admin_token).json["email"]},
                                   {"password", password}});
  ASSERT_EQ(login.status, 200);
  const std::string session = CookieFrom(login).substr(std::string("quarry_session=").size());
  ASSERT_FALSE(session.empty());

  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(f().context().settings.data_dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ++files;
    EXPECT_EQ(bytes.find(password), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find(token_value), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find(session), std::string::npos) << entry.path();
    EXPECT_EQ(bytes.find(f().admin_token), std::string::npos) << entry.path();
  }
  EXPECT_GE(files, 1);
}

// ---------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------

TEST_F(AccountApiTest, IdempotencyKeysReplayAndRefuseReuse) {
  const std::string key = Unique("idem-");
  const json body = {{"name", key}};
  const ApiReply first = f().Call("POST", "/api/v1/tokens", f().member_token, body, {{"Idempotency-Key", key}});
  ASSERT_EQ(first.status, 201) << first.Describe();
  EXPECT_EQ(first.Header("Idempotent-Replayed"), nullptr);
  const ApiReply again = f().Call("POST", "/api/v1/tokens", f().member_token, body, {{"Idempotency-Key", key}});
  ASSERT_EQ(again.status, 201) << again.Describe();
  EXPECT_EQ(again.json, first.json) << "the same response, the same token";
  ASSERT_NE(again.Header("Idempotent-Replayed"), nullptr);
  ASSERT_NE(again.Header("Location"), nullptr);

  ExpectError(f().Call("POST", "/api/v1/tokens", f().member_token, {{"name", "other"}}, {{"Idempotency-Key", key}}),
              422, "idempotency_key_reused");
  // Keys belong to their caller: another user's identical key is a new request.
  const ApiReply other = f().Call("POST", "/api/v1/tokens", f().builder_token, body, {{"Idempotency-Key", key}});
  ASSERT_EQ(other.status, 201);
  EXPECT_NE(other.json["id"], first.json["id"]);

  int named = 0;
  const ApiReply mine = f().Call("GET", "/api/v1/tokens?limit=500", f().member_token);
  ASSERT_EQ(mine.status, 200) << mine.Describe();
  for (const json& item : mine.json["items"]) {
    named += item["name"] == key ? 1 : 0;
  }
  EXPECT_EQ(named, 1) << "the retry created nothing";

  // A failed request is stored too (and replayed), except server errors.
  const std::string bad_key = Unique("idem-bad-");
  ExpectError(f().Call("POST", "/api/v1/tokens", f().member_token, {{"name", ""}}, {{"Idempotency-Key", bad_key}}),
              400, "invalid_argument");
  ExpectError(f().Call("POST", "/api/v1/tokens", f().member_token, {{"name", ""}}, {{"Idempotency-Key", bad_key}}),
              400, "invalid_argument");
  ExpectError(f().Call("POST", "/api/v1/tokens", f().member_token, body, {{"Idempotency-Key", std::string(300, 'k')}}),
              400, "invalid_argument");
}

}  // namespace
}  // namespace quarry::testing
