// The accounts repository (domain/accounts.h, domain/audit.h) on both
// databases: SQLite in a scratch file and PostgreSQL in the shared
// throwaway cluster (skipped, loudly, where PostgreSQL cannot run).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/clock.h"
#include "domain/accounts.h"
#include "domain/audit.h"
#include "domain/schema.h"
#include "store/migrations.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/scratch_dir.h"

namespace quarry::domain {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class AccountRepositoryTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string url;
    if (GetParam() == "sqlite") {
      url = "sqlite:" + dir_.Path("accounts.db");
    } else {
      const testing::PostgresDatabase pg = testing::SharedPostgresDatabase();
      if (pg.url.empty()) GTEST_SKIP() << "PostgreSQL account tests skipped: " << pg.skip_reason;
      url = pg.url;
    }
    Result<std::unique_ptr<store::Database>> db = store::Database::Open(url);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    ASSERT_TRUE(store::ApplyMigrations(*db_, AllMigrations()).ok());
  }

  // Runs `fn` in a write transaction; fails the test on error.
  template <typename Fn>
  void Write(Fn&& fn) {
    const Status status = db_->Write([&](store::Tx& tx) -> Status { return fn(tx); });
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  template <typename Fn>
  Status TryWrite(Fn&& fn) {
    return db_->Write([&](store::Tx& tx) -> Status { return fn(tx); });
  }

  // An organization with an admin; returns (org id, admin user).
  std::pair<std::string, User> Org(const std::string& admin_email = "boss@example.com") {
    std::pair<std::string, User> out;
    Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(Organization org, CreateOrganization(tx, clock_, "Acme"));
      NewUser admin{org.id, admin_email, "", Role::kAdmin, std::nullopt};
      QUARRY_ASSIGN_OR_RETURN(User user, CreateUser(tx, clock_, admin));
      out = {org.id, user};
      return Status::Ok();
    });
    return out;
  }

  testing::ScratchDir dir_;
  FakeClock clock_{WallTime{} + std::chrono::hours(24 * 365 * 56)};
  std::unique_ptr<store::Database> db_;
};

TEST_P(AccountRepositoryTest, TokensAuthenticateUntilRevokedOrExpired) {
  auto [org_id, admin] = Org();
  NewApiToken forever, brief;
  Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(forever, CreateApiToken(tx, clock_, org_id, admin.id, "forever"));
    QUARRY_ASSIGN_OR_RETURN(brief,
                            CreateApiToken(tx, clock_, org_id, admin.id, "brief", clock_.Now() + std::chrono::hours(1)));
    return Status::Ok();
  });
  EXPECT_THAT(forever.secret.reveal(), ::testing::StartsWith("qk_"));
  EXPECT_EQ(forever.secret.reveal().size(), 43u);

  Result<Authenticated> who = InternalError("unset");
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateApiToken(tx, clock_, forever.secret.reveal());
                   return Status::Ok();
                 }).ok());
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->principal.user_id, admin.id);
  EXPECT_EQ(who->principal.org_id, org_id);
  EXPECT_EQ(who->principal.role, Role::kAdmin);
  EXPECT_EQ(who->principal.auth_kind, "token");
  EXPECT_EQ(who->principal.credential_id, forever.token.id);
  EXPECT_FALSE(who->principal.email_domain_verified);
  EXPECT_TRUE(who->token_needs_touch);

  Write([&](store::Tx& tx) -> Status {
    QUARRY_RETURN_IF_ERROR(TouchApiToken(tx, clock_, forever.token.id));
    QUARRY_RETURN_IF_ERROR(AddVerifiedDomain(tx, clock_, org_id, "example.com", admin.id).status());
    return Status::Ok();
  });
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateApiToken(tx, clock_, forever.secret.reveal());
                   return Status::Ok();
                 }).ok());
  ASSERT_TRUE(who.ok());
  EXPECT_FALSE(who->token_needs_touch);
  EXPECT_TRUE(who->principal.email_domain_verified);
  EXPECT_TRUE(who->principal.CanEditProviders());

  clock_.Advance(std::chrono::hours(2));
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateApiToken(tx, clock_, brief.secret.reveal());
                   return Status::Ok();
                 }).ok());
  ASSERT_FALSE(who.ok());
  EXPECT_EQ(who.status().code(), StatusCode::kUnauthenticated);
  EXPECT_THAT(who.status().message(), HasSubstr("expired"));

  Write([&](store::Tx& tx) { return RevokeApiToken(tx, clock_, org_id, forever.token.id).status(); });
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateApiToken(tx, clock_, forever.secret.reveal());
                   return Status::Ok();
                 }).ok());
  ASSERT_FALSE(who.ok());
  EXPECT_THAT(who.status().message(), HasSubstr("revoked"));
  EXPECT_THAT(who.status().message(), Not(HasSubstr(forever.secret.reveal())));
}

TEST_P(AccountRepositoryTest, LoginChecksThePasswordAndSessionsExpire) {
  auto [org_id, admin] = Org();
  const store::SecretString password("a perfectly long password");
  Write([&](store::Tx& tx) { return SetPassword(tx, clock_, org_id, admin.id, password); });

  Result<NewSession> session = InternalError("unset");
  const Status wrong = TryWrite([&](store::Tx& tx) {
    return Login(tx, clock_, "BOSS@example.com", store::SecretString("a wrong password here")).status();
  });
  EXPECT_EQ(wrong.code(), StatusCode::kUnauthenticated);
  const Status unknown =
      TryWrite([&](store::Tx& tx) { return Login(tx, clock_, "nobody@example.com", password).status(); });
  EXPECT_EQ(unknown.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.message(), wrong.message()) << "unknown user and wrong password look the same";

  Write([&](store::Tx& tx) -> Status {
    session = Login(tx, clock_, " Boss@Example.com ", password);
    return session.status();
  });
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(session->user.id, admin.id);
  Result<Authenticated> who = InternalError("unset");
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateSession(tx, clock_, session->secret.reveal());
                   return Status::Ok();
                 }).ok());
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->principal.auth_kind, "session");
  EXPECT_EQ(who->principal.credential_id, session->session.id);

  clock_.Advance(kSessionLifetime + std::chrono::minutes(1));
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateSession(tx, clock_, session->secret.reveal());
                   return Status::Ok();
                 }).ok());
  ASSERT_FALSE(who.ok());
  EXPECT_THAT(who.status().message(), HasSubstr("expired"));

  Result<std::string> hash = HashPassword("another password 123");
  ASSERT_TRUE(hash.ok());
  EXPECT_THAT(*hash, ::testing::StartsWith("$argon2id$"));
  EXPECT_TRUE(VerifyPasswordHash(*hash, "another password 123"));
  EXPECT_FALSE(VerifyPasswordHash(*hash, "another password 124"));
  EXPECT_EQ(CheckPasswordRules("short").code(), StatusCode::kInvalidArgument);
}

TEST_P(AccountRepositoryTest, UsersPageAndTheLastAdminStays) {
  auto [org_id, admin] = Org();
  std::vector<std::string> ids = {admin.id};
  Write([&](store::Tx& tx) -> Status {
    for (int i = 0; i < 4; ++i) {
      clock_.Advance(std::chrono::milliseconds(1));
      NewUser user{org_id, "user" + std::to_string(i) + "@example.com", "", Role::kMember, std::nullopt};
      QUARRY_ASSIGN_OR_RETURN(User made, CreateUser(tx, clock_, user));
      ids.push_back(made.id);
    }
    return Status::Ok();
  });
  const Status duplicate = TryWrite([&](store::Tx& tx) {
    return CreateUser(tx, clock_, NewUser{org_id, "USER0@example.com", "", Role::kMember, std::nullopt}).status();
  });
  EXPECT_EQ(duplicate.code(), StatusCode::kAlreadyExists);

  std::vector<std::string> seen;
  PageRequest page{2, ""};
  for (int round = 0; round < 5; ++round) {
    Page<User> users;
    ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                     QUARRY_ASSIGN_OR_RETURN(users, ListUsers(tx, org_id, page));
                     return Status::Ok();
                   }).ok());
    for (const User& user : users.items) seen.push_back(user.id);
    if (users.next_cursor.empty()) break;
    page.cursor = users.next_cursor;
  }
  EXPECT_EQ(seen, ids);

  const Status demote = TryWrite([&](store::Tx& tx) {
    return UpdateUser(tx, clock_, org_id, admin.id, UserUpdate{std::nullopt, Role::kMember, std::nullopt},
                      admin.version)
        .status();
  });
  EXPECT_EQ(demote.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(TryWrite([&](store::Tx& tx) { return DeleteUser(tx, org_id, admin.id); }).code(),
            StatusCode::kFailedPrecondition);
  const Status stale = TryWrite([&](store::Tx& tx) {
    return UpdateUser(tx, clock_, org_id, ids[1], UserUpdate{"New name", std::nullopt, std::nullopt}, 99).status();
  });
  EXPECT_EQ(stale.code(), StatusCode::kAborted);
  Write([&](store::Tx& tx) { return DeleteUser(tx, org_id, ids[1]); });
  EXPECT_EQ(TryWrite([&](store::Tx& tx) { return DeleteUser(tx, org_id, ids[1]); }).code(), StatusCode::kNotFound);
}

TEST_P(AccountRepositoryTest, AuditRedactsSecretsAndFilters) {
  auto [org_id, admin] = Org();
  Principal actor;
  actor.user_id = admin.id;
  actor.org_id = org_id;
  actor.email = admin.email;
  Write([&](store::Tx& tx) -> Status {
    AuditEntry entry;
    entry.action = "provider.create";
    entry.target_type = "provider";
    entry.target_id = "prv_1";
    entry.after = {{"name", "p"},
                   {"max_tokens", 100},
                   {"credentials", {{"secret_access_key", "SHOULD-NOT-APPEAR"}, {"sessionToken", "NOR-THIS"}}},
                   {"api_key", "NOR-THAT"},
                   {"list", {{{"password", "NOPE"}}}}};
    QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock_, &actor, entry));
    clock_.Advance(std::chrono::seconds(1));
    entry.action = "provider.update";
    entry.before = entry.after;
    QUARRY_RETURN_IF_ERROR(RecordAudit(tx, clock_, &actor, entry));
    clock_.Advance(std::chrono::seconds(1));
    AuditEntry other;
    other.org_id = org_id;
    other.action = "user.create";
    other.target_type = "user";
    other.target_id = "usr_1";
    return RecordAudit(tx, clock_, nullptr, other);
  });
  Page<AuditEntry> all;
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(all, ListAudit(tx, org_id, AuditFilter{}, PageRequest{}));
                   return Status::Ok();
                 }).ok());
  ASSERT_EQ(all.items.size(), 3u);
  EXPECT_EQ(all.items[0].action, "user.create");  // newest first
  EXPECT_EQ(all.items[0].actor_user_id, "");
  const std::string text = all.items[1].ToJson().dump();
  for (const char* secret : {"SHOULD-NOT-APPEAR", "NOR-THIS", "NOR-THAT", "NOPE"}) {
    EXPECT_THAT(text, Not(HasSubstr(secret)));
  }
  EXPECT_EQ(all.items[1].after["max_tokens"], 100) << "settings named like tokens are not secrets";
  EXPECT_EQ(all.items[1].after["credentials"]["secret_access_key"], "[redacted]");

  Page<AuditEntry> filtered;
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(
                       filtered, ListAudit(tx, org_id, AuditFilter{"provider", "prv_1", ""}, PageRequest{1, ""}));
                   return Status::Ok();
                 }).ok());
  ASSERT_EQ(filtered.items.size(), 1u);
  EXPECT_EQ(filtered.items[0].action, "provider.update");
  ASSERT_FALSE(filtered.next_cursor.empty());
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(filtered, ListAudit(tx, org_id, AuditFilter{"provider", "prv_1", ""},
                                                               PageRequest{1, filtered.next_cursor}));
                   return Status::Ok();
                 }).ok());
  ASSERT_EQ(filtered.items.size(), 1u);
  EXPECT_EQ(filtered.items[0].action, "provider.create");
  EXPECT_TRUE(filtered.next_cursor.empty());
}

TEST_P(AccountRepositoryTest, IdempotencyClaims) {
  using Kind = IdempotencyClaim::Kind;
  auto claim = [&](const std::string& key, const std::string& hash) {
    IdempotencyClaim out;
    Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(out, ClaimIdempotencyKey(tx, clock_, "usr_1", key, hash));
      return Status::Ok();
    });
    return out;
  };
  EXPECT_EQ(claim("k", "h1").kind, Kind::kProceed);
  EXPECT_EQ(claim("k", "h1").kind, Kind::kInProgress);
  EXPECT_EQ(claim("k", "h2").kind, Kind::kMismatch);
  Write([&](store::Tx& tx) { return FinishIdempotency(tx, clock_, "usr_1", "k", "stored response"); });
  const IdempotencyClaim replay = claim("k", "h1");
  EXPECT_EQ(replay.kind, Kind::kReplay);
  EXPECT_EQ(replay.response, "stored response");
  EXPECT_EQ(claim("k", "h2").kind, Kind::kMismatch);

  // Abandoned in-progress keys are taken over; expired keys are free again.
  EXPECT_EQ(claim("stuck", "h1").kind, Kind::kProceed);
  clock_.Advance(kIdempotencyAbandonedAfter + std::chrono::seconds(1));
  EXPECT_EQ(claim("stuck", "h1").kind, Kind::kProceed);
  clock_.Advance(kIdempotencyLifetime + std::chrono::seconds(1));
  EXPECT_EQ(claim("k", "h2").kind, Kind::kProceed);
  Write([&](store::Tx& tx) { return ReleaseIdempotencyKey(tx, "usr_1", "k"); });
  EXPECT_EQ(claim("k", "h3").kind, Kind::kProceed);
}

TEST_P(AccountRepositoryTest, BootstrapRunsOnce) {
  Result<std::optional<store::SecretString>> first = BootstrapIfEmpty(*db_, clock_, "Root@Corp.Example");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(first->has_value());
  const std::string token = (*first)->reveal();
  Result<Authenticated> who = InternalError("unset");
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) {
                   who = AuthenticateApiToken(tx, clock_, token);
                   return Status::Ok();
                 }).ok());
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->principal.email, "root@corp.example");
  EXPECT_TRUE(who->principal.CanEditProviders()) << "the admin's own domain is verified";

  Result<std::optional<store::SecretString>> second = BootstrapIfEmpty(*db_, clock_, "other@corp.example");
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->has_value());
  EXPECT_FALSE(BootstrapIfEmpty(*db_, clock_, "not an email").ok());
}

INSTANTIATE_TEST_SUITE_P(Databases, AccountRepositoryTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace quarry::domain
