#include "domain/agent_connections.h"

#include <memory>

#include <gtest/gtest.h>

#include "domain/conversations.h"
#include "domain/schema.h"
#include "store/migrations.h"
#include "tests/support/postgres_cluster.h"

namespace quarry::domain {
namespace {

using nlohmann::json;

constexpr char kAlias[] = "arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELPDESK01/PRODALIAS1";

std::string CheckCode(const std::string& arn, const std::string& region = "us-east-1") {
  aws::AgentAliasArn out;
  std::optional<FieldError> e = CheckAgentAliasArn(arn, region, "Bedrock demo", &out);
  return e ? e->code : "ok";
}

TEST(AgentAliasArnTest, AcceptsAnAliasArnInTheProviderRegion) {
  aws::AgentAliasArn out;
  ASSERT_FALSE(CheckAgentAliasArn(kAlias, "us-east-1", "p", &out));
  EXPECT_EQ(out.agent_id, "HELPDESK01");
  EXPECT_EQ(out.alias_id, "PRODALIAS1");
}

TEST(AgentAliasArnTest, RefusesTheBaseAgentArnWithTheSeedsGuidance) {
  aws::AgentAliasArn out;
  std::optional<FieldError> e =
      CheckAgentAliasArn("arn:aws:bedrock:us-east-1:111122223333:agent/HELPDESK01", "us-east-1", "p", &out);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "base_agent_arn");
  EXPECT_NE(e->hint.find("not the base agent ARN"), std::string::npos);
  EXPECT_NE(e->hint.find(kAgentAliasArnFormat), std::string::npos);
}

TEST(AgentAliasArnTest, RefusesMalformedAndOtherRegions) {
  EXPECT_EQ(CheckCode(""), "invalid_agent_alias_arn");
  EXPECT_EQ(CheckCode("HELPDESK01"), "invalid_agent_alias_arn");
  EXPECT_EQ(CheckCode("arn:aws:bedrock:us-east-1:111122223333:agent-alias/HELP/PROD"), "invalid_agent_alias_arn");
  EXPECT_EQ(CheckCode("arn:aws:bedrock:us-west-2:111122223333:agent-alias/HELPDESK01/PRODALIAS1"),
            "agent_region_mismatch");
  aws::AgentAliasArn out;
  std::optional<FieldError> e = CheckAgentAliasArn(
      "arn:aws:bedrock:us-west-2:111122223333:agent-alias/HELPDESK01/PRODALIAS1", "us-east-1", "demo", &out);
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->message.find("us-west-2"), std::string::npos);
  EXPECT_NE(e->message.find("us-east-1"), std::string::npos);
}

TEST(AgentConnectionInputTest, RequiresProviderAndArn) {
  AgentConnectionInput input;
  EXPECT_EQ(ParseAgentConnectionInput({{"agent_alias_arn", kAlias}}, true, &input)->field, "provider_id");
  EXPECT_EQ(ParseAgentConnectionInput({{"provider_id", "prv_x"}}, true, &input)->field, "agent_alias_arn");
  EXPECT_EQ(ParseAgentConnectionInput({{"provider_id", "prv_x"}, {"agent_alias_arn", kAlias}, {"source", "openai"}},
                                      true, &input)
                ->field,
            "source");
  EXPECT_FALSE(ParseAgentConnectionInput({{"provider_id", "prv_x"}, {"agent_alias_arn", kAlias}, {"name", "IT"}},
                                         true, &input));
}

class ConversationStoreTest : public ::testing::TestWithParam<std::string> {
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
    actor_.user_id = "usr_0000000000000000000a";
    actor_.org_id = "org_0000000000000000000a";
    actor_.role = Role::kBuilder;
    // A provider row and an agent connection to hang conversations on.
    ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                     QUARRY_RETURN_IF_ERROR(
                         tx.Exec("INSERT INTO providers (id, org_id, name, name_key, region, credential_kind, config, "
                                 "secret_refs, credentials_set_at, status, version, created_by, created_at, updated_at) "
                                 "VALUES ('prv_0000000000000000000a', $1, 'p', 'p', 'us-east-1', 'access_key', '{}', "
                                 "'{}', 'x', 'working', 1, 'u', 'x', 'x')",
                                 {actor_.org_id})
                             .status());
                     AgentConnection a;
                     a.app_id = "app_1";
                     a.provider_id = "prv_0000000000000000000a";
                     a.name = "IT helpdesk";
                     a.agent_alias_arn = kAlias;
                     QUARRY_ASSIGN_OR_RETURN(agent_, CreateAgentConnection(tx, clock_, actor_, a, "req"));
                     return Status::Ok();
                   }).ok());
  }

  FakeClock clock_{WallTime{} + std::chrono::hours(24 * 365 * 56)};
  std::unique_ptr<store::Database> db_;
  Principal actor_;
  AgentConnection agent_;
};

TEST_P(ConversationStoreTest, TurnsKeepOrderAndOneAtATime) {
  Conversation c;
  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(c, CreateConversation(tx, clock_, actor_, agent_.id, "first"));
                   return Status::Ok();
                 }).ok());
  EXPECT_TRUE(c.session_id.rfind("quarry-", 0) == 0);

  Status first = db_->Write([&](store::Tx& tx) -> Status {
    return BeginTurn(tx, clock_, c, "hello", nullptr, "req1").status();
  });
  ASSERT_TRUE(first.ok()) << first.ToString();
  Status second = db_->Write([&](store::Tx& tx) -> Status {
    return BeginTurn(tx, clock_, c, "again", nullptr, "req2").status();
  });
  EXPECT_EQ(second.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.message().find("still answering"), std::string::npos);

  ConversationMessage reply;
  reply.text = "hi there";
  reply.latency_ms = 12;
  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status { return FinishTurn(tx, clock_, c, reply).status(); }).ok());
  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                   return BeginTurn(tx, clock_, c, "third", nullptr, "req3").status();
                 }).ok());

  Page<ConversationMessage> history;
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(history, ListMessages(tx, actor_.org_id, c.id, PageRequest{}));
                   return Status::Ok();
                 }).ok());
  ASSERT_EQ(history.items.size(), 3u);
  EXPECT_EQ(history.items[0].role, "user");
  EXPECT_EQ(history.items[1].role, "agent");
  EXPECT_EQ(history.items[1].text, "hi there");
  EXPECT_EQ(history.items[2].seq, 3);

  // A turn left busy by a dead server stops blocking after a while.
  clock_.Advance(kStaleTurnAfter + std::chrono::minutes(1));
  EXPECT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                   return BeginTurn(tx, clock_, c, "fourth", nullptr, "req4").status();
                 }).ok());

  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status { return EndConversation(tx, clock_, c).status(); }).ok());
  Status ended = db_->Write([&](store::Tx& tx) -> Status {
    return BeginTurn(tx, clock_, c, "after", nullptr, "req5").status();
  });
  EXPECT_NE(ended.message().find("has ended"), std::string::npos);
}

TEST_P(ConversationStoreTest, DeletingTheAgentDeletesItsConversations) {
  ASSERT_TRUE(db_->Write([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(Conversation c, CreateConversation(tx, clock_, actor_, agent_.id, ""));
                   QUARRY_RETURN_IF_ERROR(BeginTurn(tx, clock_, c, "hello", nullptr, "r").status());
                   return DeleteAgentConnection(tx, clock_, actor_, agent_, "req");
                 }).ok());
  ASSERT_TRUE(db_->Read([&](store::Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(store::Rows rows, tx.Query("SELECT COUNT(*) FROM conversation_messages"));
                   EXPECT_EQ(rows.rows[0].Int(0), 0);
                   return Status::Ok();
                 }).ok());
}

INSTANTIATE_TEST_SUITE_P(Databases, ConversationStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace quarry::domain
