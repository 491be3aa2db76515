#include "domain/providers.h"

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "domain/schema.h"
#include "store/migrations.h"
#include "tests/support/postgres_cluster.h"

namespace quarry::domain {
namespace {

using nlohmann::json;

constexpr char kKeyId[] = "AKIAQUARRYTEST000001";
constexpr char kSecret[] = "providerTestSecret/KnownValue+000000001";

json AccessKeyBody() {
  return {{"name", "Bedrock prod"},
          {"region", "us-east-1"},
          {"credentials", {{"kind", "access_key"}, {"access_key_id", kKeyId}, {"secret_access_key", kSecret}}}};
}

FieldError ParseError(const json& body, bool create = true) {
  ProviderInput input;
  std::optional<FieldError> e = ParseProviderInput(body, create, &input);
  if (!e) {
    ProviderDraft draft;
    e = ApplyProviderInput(nullptr, nullptr, input, &draft);
  }
  return e.value_or(FieldError{});
}

TEST(ProviderInputTest, AcceptsEveryCredentialKind) {
  std::vector<json> credentials = {
      {{"kind", "access_key"}, {"access_key_id", kKeyId}, {"secret_access_key", kSecret}},
      {{"kind", "session"}, {"access_key_id", "ASIAQUARRYTEST000001"}, {"secret_access_key", kSecret},
       {"session_token", "FwoGZXIvYXdzEJr//////////token"}},
      {{"kind", "assume_role"}, {"role_arn", "arn:aws:iam::111122223333:role/quarry-invoker"},
       {"external_id", "quarry-ext-1"}, {"source", "access_key"}, {"access_key_id", kKeyId},
       {"secret_access_key", kSecret}},
      {{"kind", "assume_role"}, {"role_arn", "arn:aws:iam::111122223333:role/quarry-invoker"},
       {"source", "default_chain"}},
      {{"kind", "api_key"}, {"api_key", "ABSKquarrydemoapikey0001"}},
      {{"kind", "default_chain"}},
  };
  for (const json& c : credentials) {
    json body = AccessKeyBody();
    body["credentials"] = c;
    ProviderInput input;
    ASSERT_FALSE(ParseProviderInput(body, true, &input)) << c.dump();
    ProviderDraft draft;
    std::optional<FieldError> e = ApplyProviderInput(nullptr, nullptr, input, &draft);
    ASSERT_FALSE(e) << c.dump() << ": " << e->message;
    EXPECT_TRUE(draft.credentials_changed);
    EXPECT_EQ(CredentialKindName(draft.config.kind), c["kind"].get<std::string>());
  }
}

TEST(ProviderInputTest, RefusesWithFieldAndHint) {
  json body = AccessKeyBody();
  body["region"] = "us-east-9x";
  EXPECT_EQ(ParseError(body).field, "region");

  body = AccessKeyBody();
  body["region"] = "US-EAST-1";
  EXPECT_EQ(ParseError(body).field, "region");

  body = AccessKeyBody();
  body["credentials"].erase("secret_access_key");
  FieldError e = ParseError(body);
  EXPECT_EQ(e.field, "credentials.secret_access_key");
  EXPECT_FALSE(e.hint.empty());

  body = AccessKeyBody();
  body["credentials"]["kind"] = "password";
  EXPECT_EQ(ParseError(body).field, "credentials.kind");

  body = AccessKeyBody();
  body["credentials"]["session_token"] = "abc";
  EXPECT_EQ(ParseError(body).field, "credentials.session_token");

  body = AccessKeyBody();
  body["credentials"]["access_key_id"] = "not a key";
  EXPECT_EQ(ParseError(body).field, "credentials.access_key_id");

  body = AccessKeyBody();
  body["credentials"] = {{"kind", "assume_role"}, {"role_arn", "arn:aws:iam::111122223333:user/bob"},
                         {"source", "default_chain"}};
  EXPECT_EQ(ParseError(body).field, "credentials.role_arn");

  body = AccessKeyBody();
  body["credentials"] = {{"kind", "assume_role"}, {"role_arn", "arn:aws:iam::111122223333:role/r"}};
  EXPECT_EQ(ParseError(body).field, "credentials.source");

  body = AccessKeyBody();
  body["endpoints"] = {{"runtime", "ftp://x"}};
  EXPECT_EQ(ParseError(body).field, "endpoints.runtime");

  body = AccessKeyBody();
  body["endpoints"] = {{"bogus", "https://x"}};
  EXPECT_EQ(ParseError(body).field, "endpoints.bogus");

  body = AccessKeyBody();
  body["colour"] = "blue";
  EXPECT_EQ(ParseError(body).field, "colour");

  body = AccessKeyBody();
  body.erase("name");
  EXPECT_EQ(ParseError(body).field, "name");
}

TEST(ProviderInputTest, ErrorsNeverEchoSecrets) {
  json body = AccessKeyBody();
  body["credentials"]["secret_access_key"] = std::string(kSecret) + " trailing";
  FieldError e = ParseError(body);
  EXPECT_EQ(e.field, "credentials.secret_access_key");
  EXPECT_EQ(e.message.find(kSecret), std::string::npos);
  EXPECT_EQ(e.hint.find(kSecret), std::string::npos);
}

TEST(ProviderInputTest, UpdateKeepsStoredSecretsOfTheSameKind) {
  Provider existing;
  existing.name = "p";
  existing.config.region = "us-east-1";
  existing.config.kind = CredentialKind::kAccessKey;
  ProviderSecrets stored;
  stored.access_key_id = store::SecretString(kKeyId);
  stored.secret_access_key = store::SecretString(kSecret);

  ProviderInput rename;
  ASSERT_FALSE(ParseProviderInput({{"name", "renamed"}}, false, &rename));
  ProviderDraft draft;
  ASSERT_FALSE(ApplyProviderInput(&existing, &stored, rename, &draft));
  EXPECT_FALSE(draft.credentials_changed);
  EXPECT_FALSE(draft.connection_changed);
  EXPECT_EQ(draft.name, "renamed");

  ProviderInput new_secret;
  ASSERT_FALSE(ParseProviderInput(
      {{"credentials", {{"kind", "access_key"}, {"secret_access_key", "anotherSecret000000000000000000000000001"}}}},
      false, &new_secret));
  ASSERT_FALSE(ApplyProviderInput(&existing, &stored, new_secret, &draft));
  EXPECT_TRUE(draft.credentials_changed);
  EXPECT_EQ(draft.secrets.access_key_id.reveal(), kKeyId);

  ProviderInput region;
  ASSERT_FALSE(ParseProviderInput({{"region", "us-west-2"}}, false, &region));
  ASSERT_FALSE(ApplyProviderInput(&existing, &stored, region, &draft));
  EXPECT_TRUE(draft.connection_changed);
  EXPECT_FALSE(draft.credentials_changed);
}

TEST(ProviderJsonTest, ShowsHintAgeAndRotationWarningNeverSecrets) {
  Provider p;
  p.id = "prv_0000000000000000000a";
  p.name = "p";
  p.config.region = "us-east-1";
  p.config.kind = CredentialKind::kAccessKey;
  p.access_key_hint = store::MaskedHint(kKeyId);
  WallTime set_at;
  ASSERT_TRUE(ParseTimestamp("2026-01-01T00:00:00.000Z", &set_at));
  p.credentials_set_at = FormatTimestamp(set_at);

  json fresh = ProviderToJson(p, set_at + std::chrono::hours(24 * 10), 90);
  EXPECT_EQ(fresh["credentials_age_days"], 10);
  EXPECT_FALSE(fresh["rotation_due"].get<bool>());
  EXPECT_EQ(fresh["credentials"]["access_key_hint"], "AKIA****0001");

  json old = ProviderToJson(p, set_at + std::chrono::hours(24 * 91), 90);
  EXPECT_TRUE(old["rotation_due"].get<bool>());
  bool warned = false;
  for (const json& w : old["warnings"]) warned = warned || w["code"] == "rotation_due";
  EXPECT_TRUE(warned);
  EXPECT_EQ(old.dump().find(kKeyId), std::string::npos);
}

TEST(TimestampTest, RoundTripsMilliseconds) {
  WallTime t;
  ASSERT_TRUE(ParseTimestamp("2026-11-25T10:00:00.123Z", &t));
  EXPECT_EQ(FormatTimestamp(t), "2026-11-25T10:00:00.123Z");
}

// ---- Storage, on SQLite in memory ----

class ProviderStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string url = "sqlite::memory:";
    if (GetParam() == "postgresql") {
      const testing::PostgresDatabase pg = testing::SharedPostgresDatabase();
      if (pg.url.empty()) GTEST_SKIP() << "PostgreSQL tests skipped: " << pg.skip_reason;
      url = pg.url;
    }
    auto db = store::Database::Open(url);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    ASSERT_TRUE(store::ApplyMigrations(*db_, AllMigrations()).ok());
    auto keyring = store::Keyring::FromKeys({std::string(32, 'k')});
    ASSERT_TRUE(keyring.ok());
    secrets_ = std::make_unique<store::SecretStore>(keyring.value());
    actor_.user_id = "usr_0000000000000000000a";
    actor_.org_id = "org_0000000000000000000a";
    actor_.role = Role::kAdmin;
    actor_.email_domain_verified = true;
  }

  Result<Provider> Create(const std::string& name) {
    json body = AccessKeyBody();
    body["name"] = name;
    ProviderInput input;
    EXPECT_FALSE(ParseProviderInput(body, true, &input));
    ProviderDraft draft;
    EXPECT_FALSE(ApplyProviderInput(nullptr, nullptr, input, &draft));
    Result<Provider> out = InternalError("not run");
    Status s = db_->Write([&](store::Tx& tx) -> Status {
      out = CreateProvider(tx, *secrets_, clock_, actor_, draft, "req_test");
      return out.status();
    });
    if (!s.ok()) return s;
    return out;
  }

  FakeClock clock_{WallTime{} + std::chrono::hours(24 * 365 * 56)};
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<store::SecretStore> secrets_;
  Principal actor_;
};

TEST_P(ProviderStoreTest, CreateGetListAndSecretsStayInTheSecretStore) {
  Result<Provider> p = Create("Bedrock prod");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->status, ProviderStatus::kUntested);
  EXPECT_EQ(p->secret_ids.size(), 2u);

  Status s = db_->Read([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(Provider got, GetProvider(tx, actor_.org_id, p->id));
    EXPECT_EQ(got.name, "Bedrock prod");
    QUARRY_ASSIGN_OR_RETURN(ProviderSecrets secrets, LoadProviderSecrets(tx, *secrets_, got));
    EXPECT_EQ(secrets.secret_access_key.reveal(), kSecret);
    // The providers row itself holds no secret.
    QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query("SELECT * FROM providers"));
    for (const store::Row& r : rows.rows) {
      for (size_t i = 0; i < r.size(); ++i) {
        EXPECT_EQ(r.Text(i).find(kSecret), std::string::npos);
        EXPECT_EQ(r.Text(i).find(kKeyId), std::string::npos);
      }
    }
    QUARRY_ASSIGN_OR_RETURN(Page<Provider> page, ListProviders(tx, actor_.org_id, PageRequest{}, "untested"));
    EXPECT_EQ(page.items.size(), 1u);
    QUARRY_ASSIGN_OR_RETURN(Page<Provider> none, ListProviders(tx, actor_.org_id, PageRequest{}, "working"));
    EXPECT_TRUE(none.items.empty());
    EXPECT_EQ(GetProvider(tx, "org_other00000000000000a", p->id).status().code(), StatusCode::kNotFound);
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_P(ProviderStoreTest, NamesAreUniquePerOrganizationIgnoringCase) {
  ASSERT_TRUE(Create("Bedrock").ok());
  EXPECT_EQ(Create("bedrock").status().code(), StatusCode::kAlreadyExists);
}

TEST_P(ProviderStoreTest, PagesWithCursor) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Create("p" + std::to_string(i)).ok());
    clock_.Advance(std::chrono::milliseconds(1));
  }
  std::vector<std::string> names;
  PageRequest page;
  page.limit = 2;
  for (int i = 0; i < 5; ++i) {
    Page<Provider> got;
    ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                     QUARRY_ASSIGN_OR_RETURN(got, ListProviders(tx, actor_.org_id, page));
                     return Status::Ok();
                   }).ok());
    for (const Provider& p : got.items) names.push_back(p.name);
    if (got.next_cursor.empty()) break;
    page.cursor = got.next_cursor;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"}));
}

TEST_P(ProviderStoreTest, UpdateReplacesSecretsAndDropsTheOldOnes) {
  Result<Provider> p = Create("p");
  ASSERT_TRUE(p.ok());
  ProviderInput input;
  ASSERT_FALSE(ParseProviderInput(
      {{"credentials",
        {{"kind", "access_key"}, {"access_key_id", "AKIAQUARRYTEST000002"},
         {"secret_access_key", "secondSecret0000000000000000000000000002"}}}},
      false, &input));
  Provider updated;
  Status s = db_->Write([&](store::Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(ProviderSecrets old, LoadProviderSecrets(tx, *secrets_, *p));
    ProviderDraft draft;
    if (auto e = ApplyProviderInput(&*p, &old, input, &draft)) return e->ToStatus();
    TestOutcome tested;
    tested.status = ProviderStatus::kWorking;
    tested.tested_at = NowTimestamp(clock_);
    QUARRY_ASSIGN_OR_RETURN(updated, UpdateProvider(tx, *secrets_, clock_, actor_, *p, draft, tested, "req"));
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(updated.version, 2);
  EXPECT_EQ(updated.status, ProviderStatus::kWorking);
  EXPECT_EQ(updated.access_key_hint, "AKIA****0002");
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query("SELECT COUNT(*) FROM secrets"));
                   EXPECT_EQ(rows.rows[0].Int(0), 2);  // the old pair is gone
                   return Status::Ok();
                 }).ok());
  // A stale version loses.
  Status stale = db_->Write([&](store::Tx& tx) -> Status {
    ProviderDraft draft;
    draft.name = "x";
    draft.config = p->config;
    return UpdateProvider(tx, *secrets_, clock_, actor_, *p, draft, std::nullopt, "req").status();
  });
  EXPECT_EQ(stale.code(), StatusCode::kAborted);
}

TEST_P(ProviderStoreTest, CatalogueCacheAndUnusableTargets) {
  Result<Provider> p = Create("p");
  ASSERT_TRUE(p.ok());
  json catalogue = {{"region", "us-east-1"}, {"targets", json::array()}};
  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                   QUARRY_RETURN_IF_ERROR(MarkTargetUnusable(tx, *p, "anthropic.claude-3-opus-20240229-v1:0"));
                   QUARRY_ASSIGN_OR_RETURN(std::optional<CachedCatalogue> none, GetCachedCatalogue(tx, *p));
                   EXPECT_FALSE(none.has_value());
                   QUARRY_RETURN_IF_ERROR(PutCachedCatalogue(tx, *p, catalogue, NowTimestamp(clock_)));
                   QUARRY_ASSIGN_OR_RETURN(std::optional<CachedCatalogue> got, GetCachedCatalogue(tx, *p));
                   EXPECT_TRUE(got.has_value());
                   if (got) {
                     EXPECT_EQ(got->unusable, std::vector<std::string>{"anthropic.claude-3-opus-20240229-v1:0"});
                   }
                   return Status::Ok();
                 }).ok());
}

TEST_P(ProviderStoreTest, DeleteRemovesSecrets) {
  Result<Provider> p = Create("p");
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                   return DeleteProvider(tx, *secrets_, clock_, actor_, *p, "req");
                 }).ok());
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query("SELECT COUNT(*) FROM secrets"));
                   EXPECT_EQ(rows.rows[0].Int(0), 0);
                   return Status::Ok();
                 }).ok());
}

INSTANTIATE_TEST_SUITE_P(Databases, ProviderStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace quarry::domain
