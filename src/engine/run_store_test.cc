// The run store on SQLite and PostgreSQL alike: automations (drafts, version
// checks, published versions, trigger candidates), run queueing with dedupe,
// claims and leases (expiry, takeover, lost writes, renewals, concurrent
// claimers), the review queue, cancellation, paging and statistics.

#include "engine/run_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "domain/accounts.h"
#include "domain/schema.h"
#include "store/database.h"
#include "store/migrations.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/test_database.h"

namespace quarry::engine {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr milliseconds kLease{10'000};

TEST(RunStoreMigrationsTest, EngineVersionsFollowTheDomainOnes) {
  std::vector<store::Migration> engine = EngineMigrations();
  ASSERT_FALSE(engine.empty());
  for (const store::Migration& m : engine) {
    EXPECT_GE(m.version, 400);
    EXPECT_LT(m.version, 500);
  }
  std::vector<store::Migration> all = AllServerMigrations();
  EXPECT_EQ(all.size(), domain::AllMigrations().size() + engine.size());
  EXPECT_EQ(all.back().version, engine.back().version);
}

// Parameter: "sqlite" or "postgresql".
class RunStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    quarry::testing::TestDatabase opened = quarry::testing::OpenTestDatabase(GetParam(), scratch_);
    if (!opened.skip_reason.empty()) GTEST_SKIP() << opened.skip_reason;
    ASSERT_TRUE(opened.db) << opened.status.ToString();
    db_ = opened.db;
    QUARRY_ASSERT_OK(store::ApplyMigrations(*db_, AllServerMigrations()));
    QUARRY_ASSERT_OK(db_->Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(domain::Organization org,
                              domain::CreateOrganization(tx, *clock_, "Acme"));
      QUARRY_ASSIGN_OR_RETURN(domain::Organization other,
                              domain::CreateOrganization(tx, *clock_, "Other"));
      org_ = org.id;
      other_org_ = other.id;
      return Status::Ok();
    }));
    store_ = std::make_unique<RunStore>(db_, clock_);
  }

  template <typename T, typename Fn>
  Result<T> Write(Fn&& fn) {
    std::optional<Result<T>> out;
    Status status = db_->Write([&](store::Tx& tx) -> Status {
      out.emplace(fn(tx));
      return out->status();
    });
    if (!status.ok()) return status;
    return std::move(*out);
  }
  Status WriteStatus(const std::function<Status(store::Tx&)>& fn) { return db_->Write(fn); }
  template <typename T, typename Fn>
  Result<T> Read(Fn&& fn) {
    std::optional<Result<T>> out;
    Status status = db_->Read([&](store::Tx& tx) -> Status {
      out.emplace(fn(tx));
      return out->status();
    });
    if (!status.ok()) return status;
    return std::move(*out);
  }

  AutomationRow MakeAutomation(const std::string& name,
                               const std::string& object_id = "obj_tickets",
                               const std::string& org = "") {
    AutomationRow row;
    row.org_id = org.empty() ? org_ : org;
    row.app_id = "app_support";
    row.object_id = object_id;
    row.name = name;
    row.draft = {{"name", name}, {"steps", json::array()}};
    row.created_by = "usr_builder";
    Result<AutomationRow> made =
        Write<AutomationRow>([&](store::Tx& tx) { return store_->CreateAutomation(tx, row); });
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    return made.ok() ? *made : AutomationRow{};
  }

  std::string Enqueue(const std::string& automation_id, int64_t available_at_ms = 0,
                      const std::string& dedupe = "", const std::string& record_id = "rec_1",
                      const std::string& mode = "live") {
    NewRun run;
    run.org_id = org_;
    run.automation_id = automation_id;
    run.automation_version = 1;
    run.app_id = "app_support";
    run.record_id = record_id;
    run.mode = mode;
    run.trigger = {{"kind", "record_created"}};
    run.dedupe_key = dedupe;
    run.available_at_ms = available_at_ms;
    Result<std::string> id =
        Write<std::string>([&](store::Tx& tx) { return store_->EnqueueRun(tx, run); });
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : "";
  }

  RunRow GetRun(const std::string& id) {
    Result<RunRow> run = Read<RunRow>([&](store::Tx& tx) { return store_->GetRun(tx, org_, id); });
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    return run.ok() ? *run : RunRow{};
  }

  std::vector<ClaimedRun> Claim(const std::string& owner, int max, milliseconds lease = kLease) {
    Result<std::vector<ClaimedRun>> claimed = store_->ClaimRuns(owner, max, lease);
    EXPECT_TRUE(claimed.ok()) << claimed.status().ToString();
    return claimed.ok() ? *claimed : std::vector<ClaimedRun>{};
  }

  static Lease LeaseOf(const ClaimedRun& run) { return {run.id, run.lease_owner, run.lease_token}; }

  static StepRow Step(int64_t seq, const std::string& status = "succeeded") {
    StepRow step;
    step.seq = seq;
    step.step_id = "step" + std::to_string(seq);
    step.type = "ai_prompt";
    step.status = status;
    step.attempts = 1;
    step.input = {{"prompt", "classify"}};
    step.output = {{"category", "billing"}};
    step.request_ids = {"req-" + std::to_string(seq)};
    return step;
  }

  Status Commit(const Lease& lease, const std::vector<StepRow>& steps, const json& state,
                RunRow totals = {}) {
    return WriteStatus(
        [&](store::Tx& tx) { return store_->CommitProgress(tx, lease, steps, state, totals); });
  }
  Status Finish(const Lease& lease, const std::string& status, RunRow totals = {}) {
    return WriteStatus([&](store::Tx& tx) {
      return store_->FinishRun(tx, lease, status, {{"done", true}}, nullptr, totals);
    });
  }

  int64_t NowMs() const { return store_->NowMs(); }

  quarry::testing::ScratchDir scratch_;
  std::shared_ptr<FakeClock> clock_ = std::make_shared<FakeClock>(WallTime{seconds{1'790'000'000}});
  std::shared_ptr<store::Database> db_;
  std::unique_ptr<RunStore> store_;
  std::string org_, other_org_;
};

// --- automations ---------------------------------------------------------------

TEST_P(RunStoreTest, AutomationCrudWithVersionChecks) {
  AutomationRow made = MakeAutomation("Triage");
  EXPECT_TRUE(made.id.starts_with("aut_")) << made.id;
  EXPECT_EQ(made.version, 1);
  EXPECT_EQ(made.status, "active");
  EXPECT_FALSE(made.published_version.has_value());

  Result<AutomationRow> got =
      Read<AutomationRow>([&](store::Tx& tx) { return store_->GetAutomation(tx, org_, made.id); });
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->draft, made.draft);
  EXPECT_EQ(got->created_at, made.created_at);
  json j = got->ToJson();
  EXPECT_EQ(j["trigger"], nullptr);
  EXPECT_EQ(j["published_version"], nullptr);
  EXPECT_EQ(j["name"], "Triage");
  EXPECT_FALSE(j.contains("org_id"));

  // Another organization cannot see it.
  Result<AutomationRow> hidden = Read<AutomationRow>(
      [&](store::Tx& tx) { return store_->GetAutomation(tx, other_org_, made.id); });
  EXPECT_EQ(hidden.status().code(), StatusCode::kNotFound);

  AutomationRow change = *got;
  change.name = "Triage v2";
  change.status = "paused";
  change.draft = {{"steps", json::array({{{"id", "a"}}})}};
  clock_->Advance(seconds(1));
  Result<AutomationRow> updated = Write<AutomationRow>(
      [&](store::Tx& tx) { return store_->UpdateAutomation(tx, change, int64_t{1}); });
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(updated->name, "Triage v2");
  EXPECT_EQ(updated->status, "paused");
  EXPECT_EQ(updated->draft, change.draft);
  EXPECT_GT(updated->updated_at, updated->created_at);

  // A stale version is refused and names the current one.
  Result<AutomationRow> stale = Write<AutomationRow>(
      [&](store::Tx& tx) { return store_->UpdateAutomation(tx, change, int64_t{1}); });
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
  EXPECT_THAT(stale.status().message(), HasSubstr("version 2"));
  // Without a check the write goes through.
  Result<AutomationRow> blind = Write<AutomationRow>(
      [&](store::Tx& tx) { return store_->UpdateAutomation(tx, change, std::nullopt); });
  ASSERT_TRUE(blind.ok());
  EXPECT_EQ(blind->version, 3);

  change.status = "sleeping";
  EXPECT_EQ((Write<AutomationRow>(
                 [&](store::Tx& tx) { return store_->UpdateAutomation(tx, change, std::nullopt); })
                 .status()
                 .code()),
            StatusCode::kInvalidArgument);
  change.status = "active";
  change.org_id = other_org_;
  EXPECT_EQ((Write<AutomationRow>(
                 [&](store::Tx& tx) { return store_->UpdateAutomation(tx, change, std::nullopt); })
                 .status()
                 .code()),
            StatusCode::kNotFound);

  // Deleting takes its runs along.
  const std::string run = Enqueue(made.id);
  QUARRY_ASSERT_OK(
      WriteStatus([&](store::Tx& tx) { return store_->DeleteAutomation(tx, org_, made.id); }));
  EXPECT_EQ(
      Read<AutomationRow>([&](store::Tx& tx) { return store_->GetAutomation(tx, org_, made.id); })
          .status()
          .code(),
      StatusCode::kNotFound);
  EXPECT_EQ(
      Read<RunRow>([&](store::Tx& tx) { return store_->GetRun(tx, org_, run); }).status().code(),
      StatusCode::kNotFound);
  EXPECT_EQ(WriteStatus([&](store::Tx& tx) {
              return store_->DeleteAutomation(tx, org_, made.id);
            }).code(),
            StatusCode::kNotFound);
}

TEST_P(RunStoreTest, PublishedVersionsAndTriggerCandidates) {
  AutomationRow created = MakeAutomation("On create");
  AutomationRow updated = MakeAutomation("On update");
  AutomationRow scheduled = MakeAutomation("Nightly");
  AutomationRow paused = MakeAutomation("Paused");
  AutomationRow draft_only = MakeAutomation("Draft only");
  AutomationRow elsewhere = MakeAutomation("Other object", "obj_assets");

  auto publish = [&](const AutomationRow& a, const std::string& kind, int n) {
    return Write<AutomationVersion>([&](store::Tx& tx) {
      return store_->Publish(tx, org_, a.id, {{"trigger", {{"type", kind}}}, {"n", n}}, kind,
                             "usr_builder");
    });
  };
  Result<AutomationVersion> v1 = publish(created, "record_created", 1);
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->version, 1);
  Result<AutomationVersion> v2 = publish(created, "record_created", 2);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->version, 2);
  ASSERT_TRUE(publish(updated, "record_updated", 1).ok());
  ASSERT_TRUE(publish(scheduled, "schedule", 1).ok());
  ASSERT_TRUE(publish(paused, "record_created", 1).ok());
  ASSERT_TRUE(publish(elsewhere, "record_created", 1).ok());
  EXPECT_EQ(Write<AutomationVersion>([&](store::Tx& tx) {
              return store_->Publish(tx, other_org_, created.id, json::object(), "record_created",
                                     "x");
            })
                .status()
                .code(),
            StatusCode::kNotFound);

  // Both versions stay readable; the automation points at the newest and its
  // ETag moved.
  for (int64_t n : {1, 2}) {
    Result<AutomationVersion> v = Read<AutomationVersion>(
        [&](store::Tx& tx) { return store_->GetVersion(tx, created.id, n); });
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->definition["n"], n);
    EXPECT_EQ(v->published_by, "usr_builder");
  }
  EXPECT_EQ(
      Read<AutomationVersion>([&](store::Tx& tx) { return store_->GetVersion(tx, created.id, 3); })
          .status()
          .code(),
      StatusCode::kNotFound);
  Result<AutomationRow> now = Read<AutomationRow>(
      [&](store::Tx& tx) { return store_->GetAutomation(tx, org_, created.id); });
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->published_version, 2);
  EXPECT_EQ(now->trigger_kind, "record_created");
  EXPECT_EQ(now->version, 3);
  EXPECT_EQ(now->ToJson()["trigger"], "record_created");

  AutomationRow pause = paused;
  pause.status = "paused";
  ASSERT_TRUE(Write<AutomationRow>([&](store::Tx& tx) {
                return store_->UpdateAutomation(tx, pause, std::nullopt);
              }).ok());

  Result<std::vector<TriggerCandidate>> candidates = Read<std::vector<TriggerCandidate>>(
      [&](store::Tx& tx) { return store_->RecordTriggerCandidates(tx, "obj_tickets"); });
  ASSERT_TRUE(candidates.ok()) << candidates.status().ToString();
  std::map<std::string, std::pair<int64_t, std::string>> found;
  for (const TriggerCandidate& c : *candidates) {
    found[c.automation_id] = {c.version, c.trigger_kind};
    EXPECT_EQ(c.app_id, "app_support");
    EXPECT_EQ(c.org_id, org_);
  }
  EXPECT_EQ(found.size(), 2u);
  EXPECT_EQ(found[created.id], std::make_pair(int64_t{2}, std::string("record_created")));
  EXPECT_EQ(found[updated.id], std::make_pair(int64_t{1}, std::string("record_updated")));
  EXPECT_FALSE(found.contains(draft_only.id));

  Result<std::vector<TriggerCandidate>> nightly = Read<std::vector<TriggerCandidate>>(
      [&](store::Tx& tx) { return store_->ScheduledAutomations(tx); });
  ASSERT_TRUE(nightly.ok());
  ASSERT_EQ(nightly->size(), 1u);
  EXPECT_EQ((*nightly)[0].automation_id, scheduled.id);
  EXPECT_EQ((*nightly)[0].trigger_kind, "schedule");
  EXPECT_EQ((*nightly)[0].org_id, org_);
}

TEST_P(RunStoreTest, ListAutomationsPagesOldestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(MakeAutomation("A" + std::to_string(i)).id);
    clock_->Advance(milliseconds(1));
  }
  MakeAutomation("Theirs", "obj_x", other_org_);
  std::vector<std::string> seen;
  domain::PageRequest page{.limit = 2};
  for (int pages = 0; pages < 10; ++pages) {
    Result<domain::Page<AutomationRow>> got = Read<domain::Page<AutomationRow>>(
        [&](store::Tx& tx) { return store_->ListAutomations(tx, org_, "", page); });
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    for (const AutomationRow& a : got->items) seen.push_back(a.id);
    if (got->next_cursor.empty()) break;
    page.cursor = got->next_cursor;
  }
  EXPECT_EQ(seen, ids);
  Result<domain::Page<AutomationRow>> other_app =
      Read<domain::Page<AutomationRow>>([&](store::Tx& tx) {
        return store_->ListAutomations(tx, org_, "app_nope", domain::PageRequest{});
      });
  ASSERT_TRUE(other_app.ok());
  EXPECT_TRUE(other_app->items.empty());
}

// --- queueing and claims ---------------------------------------------------------

TEST_P(RunStoreTest, EnqueueDropsDuplicatesByDedupeKey) {
  AutomationRow a = MakeAutomation("Dedupe");
  const std::string first = Enqueue(a.id, 0, "rec_1:created");
  EXPECT_TRUE(first.starts_with("run_")) << first;
  EXPECT_EQ(Enqueue(a.id, 0, "rec_1:created"), "");
  EXPECT_NE(Enqueue(a.id, 0, "rec_2:created"), "");
  // No key: never deduplicated.
  EXPECT_NE(Enqueue(a.id), "");
  EXPECT_NE(Enqueue(a.id), "");
  Result<std::map<std::string, int64_t>> counts = Read<std::map<std::string, int64_t>>(
      [&](store::Tx& tx) { return store_->CountRunsByStatus(tx, org_, a.id); });
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<std::string, int64_t>{{"queued", 4}}));

  RunRow run = GetRun(first);
  EXPECT_EQ(run.status, "queued");
  EXPECT_EQ(run.available_at_ms, NowMs());
  EXPECT_EQ(run.trigger["kind"], "record_created");
  EXPECT_EQ(run.record_id, "rec_1");
  EXPECT_EQ(run.state, json::object());
  EXPECT_TRUE(run.started_at.empty());

  NewRun bad;
  bad.org_id = org_;
  bad.automation_id = a.id;
  bad.mode = "dry";
  EXPECT_EQ(Write<std::string>([&](store::Tx& tx) { return store_->EnqueueRun(tx, bad); })
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST_P(RunStoreTest, ClaimTakesAvailableRunsOldestFirst) {
  AutomationRow a = MakeAutomation("Claims");
  const int64_t now = NowMs();
  const std::string current = Enqueue(a.id);
  const std::string older = Enqueue(a.id, now - 5'000);
  const std::string later = Enqueue(a.id, now + 60'000);

  std::vector<ClaimedRun> claimed = Claim("node-a", 10);
  ASSERT_EQ(claimed.size(), 2u);
  EXPECT_EQ(claimed[0].id, older);
  EXPECT_EQ(claimed[1].id, current);
  for (const ClaimedRun& run : claimed) {
    EXPECT_EQ(run.status, "running");
    EXPECT_EQ(run.lease_owner, "node-a");
    EXPECT_FALSE(run.lease_token.empty());
    EXPECT_EQ(run.lease_expires_at_ms, now + kLease.count());
    EXPECT_EQ(run.claims, 1);
    EXPECT_FALSE(run.started_at.empty());
    EXPECT_FALSE(run.ToJson().contains("lease_token"));
  }
  EXPECT_NE(claimed[0].lease_token, claimed[1].lease_token);
  EXPECT_TRUE(Claim("node-b", 10).empty());

  clock_->Advance(seconds(60));
  // The first two leases expired too: the reclaimed ones come first.
  std::vector<ClaimedRun> next = Claim("node-b", 2);
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ((std::set<std::string>{next[0].id, next[1].id}),
            (std::set<std::string>{older, current}));
  EXPECT_EQ(next[0].claims, 2);
  EXPECT_EQ(next[0].lease_owner, "node-b");
  std::vector<ClaimedRun> last = Claim("node-b", 2);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].id, later);

  EXPECT_TRUE(Claim("node-b", 0).empty());
}

TEST_P(RunStoreTest, ClaimOneRun) {
  AutomationRow a = MakeAutomation("On demand");
  const std::string id = Enqueue(a.id, 0, "", "", "test");
  const std::string future = Enqueue(a.id, NowMs() + 1'000);
  Result<ClaimedRun> run = store_->ClaimRun(id, "node-a", kLease);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->mode, "test");
  EXPECT_EQ(run->lease_owner, "node-a");
  Result<ClaimedRun> again = store_->ClaimRun(id, "node-b", kLease);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr("node-a"));
  EXPECT_EQ(store_->ClaimRun(future, "node-b", kLease).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->ClaimRun("run_missing", "node-b", kLease).status().code(),
            StatusCode::kNotFound);
}

TEST_P(RunStoreTest, ExpiredLeaseIsTakenOverAndTheOldHolderLosesItsWrites) {
  AutomationRow a = MakeAutomation("Leases");
  const std::string id = Enqueue(a.id);
  std::vector<ClaimedRun> first = Claim("node-a", 1);
  ASSERT_EQ(first.size(), 1u);
  const Lease old_lease = LeaseOf(first[0]);
  RunRow totals;
  totals.input_tokens = 7;
  totals.cost_usd = 0.5;
  QUARRY_ASSERT_OK(Commit(old_lease, {Step(0)}, {{"position", 1}}, totals));
  QUARRY_ASSERT_OK(WriteStatus([&](store::Tx& tx) { return store_->CheckLease(tx, old_lease); }));

  clock_->Advance(kLease + milliseconds(1));
  std::vector<ClaimedRun> second = Claim("node-b", 5);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, id);
  EXPECT_EQ(second[0].claims, 2);
  EXPECT_EQ(second[0].started_at, first[0].started_at);
  // It resumes from the committed position.
  EXPECT_EQ(second[0].state["position"], 1);
  EXPECT_EQ(second[0].input_tokens, 7);
  const Lease new_lease = LeaseOf(second[0]);

  // The old holder's writes fail, and its other effects in the same
  // transaction roll back with them.
  Status lost = WriteStatus([&](store::Tx& tx) -> Status {
    AlertRow alert;
    alert.org_id = org_;
    alert.automation_id = a.id;
    alert.message = "an effect of the stale worker";
    QUARRY_RETURN_IF_ERROR(store_->InsertAlert(tx, alert).status());
    return store_->CommitProgress(tx, old_lease, {Step(1)}, {{"position", 2}}, totals);
  });
  EXPECT_EQ(lost.code(), StatusCode::kAborted);
  EXPECT_THAT(lost.message(), HasSubstr("lease lost on run " + id));
  EXPECT_THAT(lost.message(), HasSubstr("node-b"));
  Result<domain::Page<AlertRow>> alerts = Read<domain::Page<AlertRow>>(
      [&](store::Tx& tx) { return store_->ListAlerts(tx, org_, "", domain::PageRequest{}); });
  ASSERT_TRUE(alerts.ok());
  EXPECT_TRUE(alerts->items.empty());
  EXPECT_EQ(Finish(old_lease, "succeeded").code(), StatusCode::kAborted);
  EXPECT_EQ(WriteStatus([&](store::Tx& tx) { return store_->CheckLease(tx, old_lease); }).code(),
            StatusCode::kAborted);
  EXPECT_EQ(WriteStatus([&](store::Tx& tx) { return store_->ReleaseRun(tx, old_lease, 0); }).code(),
            StatusCode::kAborted);
  EXPECT_EQ(Write<std::string>(
                [&](store::Tx& tx) { return store_->EscalateToReview(tx, old_lease, ReviewRow{}); })
                .status()
                .code(),
            StatusCode::kAborted);

  // A step number already journaled can only come from a stale worker.
  Status replay = Commit(new_lease, {Step(0)}, {{"position", 9}});
  EXPECT_EQ(replay.code(), StatusCode::kAborted);
  EXPECT_THAT(replay.message(), HasSubstr("lease lost"));
  EXPECT_EQ(GetRun(id).state["position"], 1);

  StepRow failed = Step(1, "failed");
  failed.error = {{"code", "throttled"}, {"message", "slow down"}};
  failed.cache_hit = true;
  failed.latency_ms = 42;
  QUARRY_ASSERT_OK(Commit(new_lease, {failed}, {{"position", 2}}));
  totals.output_tokens = 3;
  QUARRY_ASSERT_OK(Finish(new_lease, "succeeded", totals));
  RunRow done = GetRun(id);
  EXPECT_EQ(done.status, "succeeded");
  EXPECT_EQ(done.outputs, (json{{"done", true}}));
  EXPECT_TRUE(done.error.is_null());
  EXPECT_TRUE(done.lease_owner.empty());
  EXPECT_TRUE(done.lease_token.empty());
  EXPECT_FALSE(done.finished_at.empty());
  EXPECT_EQ(done.output_tokens, 3);
  EXPECT_DOUBLE_EQ(done.cost_usd, 0.5);
  // Finished: nobody can write it any more, nor claim it.
  EXPECT_EQ(Finish(new_lease, "failed").code(), StatusCode::kAborted);
  clock_->Advance(kLease * 2);
  EXPECT_TRUE(Claim("node-c", 5).empty());

  Result<std::vector<StepRow>> steps =
      Read<std::vector<StepRow>>([&](store::Tx& tx) { return store_->GetSteps(tx, id); });
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].seq, 0);
  EXPECT_EQ((*steps)[0].request_ids, std::vector<std::string>{"req-0"});
  EXPECT_EQ((*steps)[0].output["category"], "billing");
  EXPECT_TRUE((*steps)[0].error.is_null());
  EXPECT_EQ((*steps)[1].status, "failed");
  EXPECT_EQ((*steps)[1].error["code"], "throttled");
  EXPECT_TRUE((*steps)[1].cache_hit);
  EXPECT_EQ((*steps)[1].latency_ms, 42);
  EXPECT_FALSE((*steps)[1].started_at.empty());
  EXPECT_EQ((*steps)[1].ToJson()["error"]["message"], "slow down");
}

TEST_P(RunStoreTest, RenewLeasesReportsTheLostOnes) {
  AutomationRow a = MakeAutomation("Renew");
  Enqueue(a.id);
  clock_->Advance(milliseconds(1));
  Enqueue(a.id);
  std::vector<ClaimedRun> held = Claim("node-a", 2, milliseconds(1'000));
  ASSERT_EQ(held.size(), 2u);

  // Renewed in time: the expiry moves and nobody can take the run.
  clock_->Advance(milliseconds(900));
  Result<std::vector<std::string>> renewed =
      store_->RenewLeases("node-a", {LeaseOf(held[0]), LeaseOf(held[1])}, milliseconds(1'000));
  ASSERT_TRUE(renewed.ok()) << renewed.status().ToString();
  EXPECT_TRUE(renewed->empty());
  EXPECT_EQ(GetRun(held[0].id).lease_expires_at_ms, NowMs() + 1'000);

  // Only the first is renewed from now on; the second is taken over.
  clock_->Advance(milliseconds(600));
  ASSERT_TRUE(store_->RenewLeases("node-a", {LeaseOf(held[0])}, milliseconds(1'000)).ok());
  clock_->Advance(milliseconds(600));
  std::vector<ClaimedRun> taken = Claim("node-b", 5);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id, held[1].id);

  Result<std::vector<std::string>> lost =
      store_->RenewLeases("node-a", {LeaseOf(held[0]), LeaseOf(held[1])}, milliseconds(1'000));
  ASSERT_TRUE(lost.ok());
  EXPECT_THAT(*lost, ElementsAre(held[1].id));
  // A wrong token is no lease at all.
  Lease forged = LeaseOf(held[0]);
  forged.token = "forged";
  Result<std::vector<std::string>> forged_lost =
      store_->RenewLeases("node-a", {forged}, milliseconds(1'000));
  ASSERT_TRUE(forged_lost.ok());
  EXPECT_THAT(*forged_lost, ElementsAre(held[0].id));
}

TEST_P(RunStoreTest, ConcurrentClaimersGetDisjointRuns) {
  AutomationRow a = MakeAutomation("Busy");
  constexpr int kRuns = 200;
  constexpr int kThreads = 4;
  QUARRY_ASSERT_OK(WriteStatus([&](store::Tx& tx) -> Status {
    for (int i = 0; i < kRuns; ++i) {
      NewRun run;
      run.org_id = org_;
      run.automation_id = a.id;
      run.automation_version = 1;
      QUARRY_RETURN_IF_ERROR(store_->EnqueueRun(tx, run).status());
    }
    return Status::Ok();
  }));

  std::vector<std::vector<std::string>> got(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Bounded: at most kRuns claims each, stopping at the first empty one.
      for (int round = 0; round < kRuns; ++round) {
        Result<std::vector<ClaimedRun>> claimed =
            store_->ClaimRuns("node-" + std::to_string(t), 7, kLease);
        if (!claimed.ok()) {
          ++errors;
          return;
        }
        if (claimed->empty()) return;
        for (const ClaimedRun& run : *claimed) got[t].push_back(run.id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 0);

  std::set<std::string> all;
  size_t total = 0;
  for (const auto& ids : got) {
    total += ids.size();
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(total, all.size()) << "a run was claimed twice";
  EXPECT_EQ(all.size(), static_cast<size_t>(kRuns));
  EXPECT_TRUE(Claim("node-late", 10).empty());
  Result<std::map<std::string, int64_t>> counts = Read<std::map<std::string, int64_t>>(
      [&](store::Tx& tx) { return store_->CountRunsByStatus(tx, org_, a.id); });
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<std::string, int64_t>{{"running", kRuns}}));
}

TEST_P(RunStoreTest, ReleasedRunsWaitUntilAvailable) {
  AutomationRow a = MakeAutomation("Throttled");
  const std::string id = Enqueue(a.id);
  std::vector<ClaimedRun> held = Claim("node-a", 1);
  ASSERT_EQ(held.size(), 1u);
  QUARRY_ASSERT_OK(WriteStatus(
      [&](store::Tx& tx) { return store_->ReleaseRun(tx, LeaseOf(held[0]), NowMs() + 2'000); }));
  RunRow released = GetRun(id);
  EXPECT_EQ(released.status, "queued");
  EXPECT_TRUE(released.lease_owner.empty());
  EXPECT_TRUE(Claim("node-b", 1).empty());
  clock_->Advance(seconds(2));
  std::vector<ClaimedRun> again = Claim("node-b", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].claims, 2);
}

// --- reviews and cancellation -------------------------------------------------------

TEST_P(RunStoreTest, ReviewDecisionRequeuesTheRunWithTheDecision) {
  AutomationRow a = MakeAutomation("Reviewed");
  const std::string id = Enqueue(a.id);
  std::vector<ClaimedRun> held = Claim("node-a", 1);
  ASSERT_EQ(held.size(), 1u);
  QUARRY_ASSERT_OK(
      Commit(LeaseOf(held[0]), {Step(0)}, {{"position", 1}, {"steps", {{"step0", {{"x", 1}}}}}}));

  ReviewRow review;
  review.step_id = "approve";
  review.reason = "low confidence";
  review.proposed = {{"category", "billing"}};
  review.context = {{"record", {{"title", "Refund"}}}};
  Result<std::string> review_id = Write<std::string>(
      [&](store::Tx& tx) { return store_->EscalateToReview(tx, LeaseOf(held[0]), review); });
  ASSERT_TRUE(review_id.ok()) << review_id.status().ToString();
  EXPECT_TRUE(review_id->starts_with("rev_"));
  RunRow waiting = GetRun(id);
  EXPECT_EQ(waiting.status, "waiting_review");
  EXPECT_TRUE(waiting.lease_owner.empty());
  clock_->Advance(kLease * 2);
  EXPECT_TRUE(Claim("node-b", 5).empty());

  Result<domain::Page<ReviewRow>> pending = Read<domain::Page<ReviewRow>>([&](store::Tx& tx) {
    return store_->ListReviews(tx, org_, "pending", domain::PageRequest{});
  });
  ASSERT_TRUE(pending.ok()) << pending.status().ToString();
  ASSERT_EQ(pending->items.size(), 1u);
  const ReviewRow& listed = pending->items[0];
  EXPECT_EQ(listed.id, *review_id);
  EXPECT_EQ(listed.run_id, id);
  EXPECT_EQ(listed.automation_id, a.id);
  EXPECT_EQ(listed.org_id, org_);
  EXPECT_EQ(listed.proposed["category"], "billing");
  EXPECT_EQ(listed.context["record"]["title"], "Refund");
  EXPECT_TRUE(listed.decision.is_null());
  EXPECT_EQ(listed.ToJson()["decided_by"], nullptr);
  EXPECT_EQ(
      Read<ReviewRow>([&](store::Tx& tx) { return store_->GetReview(tx, other_org_, *review_id); })
          .status()
          .code(),
      StatusCode::kNotFound);

  auto decide = [&](const std::string& decision, const std::string& who) {
    return Write<ReviewRow>([&](store::Tx& tx) {
      return store_->DecideReview(tx, org_, *review_id, decision, {{"category", "refunds"}},
                                  "fixed it", who);
    });
  };
  EXPECT_EQ(decide("maybe", "usr_ann").status().code(), StatusCode::kInvalidArgument);
  Result<ReviewRow> decided = decide("edited", "usr_ann");
  ASSERT_TRUE(decided.ok()) << decided.status().ToString();
  EXPECT_EQ(decided->status, "edited");
  EXPECT_EQ(decided->decided_by, "usr_ann");
  EXPECT_EQ(decided->decision["values"]["category"], "refunds");

  Result<ReviewRow> twice = decide("approved", "usr_bob");
  EXPECT_EQ(twice.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(twice.status().message(), HasSubstr("usr_ann"));
  EXPECT_THAT(twice.status().message(), HasSubstr("edited"));

  std::vector<ClaimedRun> resumed = Claim("node-b", 5);
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].id, id);
  const json& state = resumed[0].state;
  EXPECT_EQ(state["position"], 1);
  EXPECT_EQ(state["steps"]["step0"]["x"], 1);
  EXPECT_EQ(state["review"], (json{{"review_id", *review_id},
                                   {"decision", "edited"},
                                   {"values", {{"category", "refunds"}}},
                                   {"comment", "fixed it"},
                                   {"decided_by", "usr_ann"}}));

  // A rejection is queued too (the executor ends the run).
  ASSERT_TRUE(Write<std::string>([&](store::Tx& tx) {
                return store_->EscalateToReview(tx, LeaseOf(resumed[0]), review);
              }).ok());
  Result<domain::Page<ReviewRow>> again = Read<domain::Page<ReviewRow>>([&](store::Tx& tx) {
    return store_->ListReviews(tx, org_, "pending", domain::PageRequest{});
  });
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->items.size(), 1u);
  ASSERT_TRUE(Write<ReviewRow>([&](store::Tx& tx) {
                return store_->DecideReview(tx, org_, again->items[0].id, "rejected", nullptr, "",
                                            "usr_bob");
              }).ok());
  RunRow rejected = GetRun(id);
  EXPECT_EQ(rejected.status, "queued");
  EXPECT_EQ(rejected.state["review"]["decision"], "rejected");
}

TEST_P(RunStoreTest, CancelQueuedOrWaitingRuns) {
  AutomationRow a = MakeAutomation("Cancel");
  const std::string queued = Enqueue(a.id);
  QUARRY_ASSERT_OK(WriteStatus([&](store::Tx& tx) { return store_->CancelRun(tx, org_, queued); }));
  RunRow cancelled = GetRun(queued);
  EXPECT_EQ(cancelled.status, "cancelled");
  EXPECT_FALSE(cancelled.finished_at.empty());
  EXPECT_TRUE(Claim("node-a", 5).empty());
  Status twice = WriteStatus([&](store::Tx& tx) { return store_->CancelRun(tx, org_, queued); });
  EXPECT_EQ(twice.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(twice.message(), HasSubstr("cancelled"));
  EXPECT_EQ(
      WriteStatus([&](store::Tx& tx) { return store_->CancelRun(tx, other_org_, queued); }).code(),
      StatusCode::kNotFound);

  const std::string running = Enqueue(a.id);
  std::vector<ClaimedRun> held = Claim("node-a", 1);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(WriteStatus([&](store::Tx& tx) { return store_->CancelRun(tx, org_, running); }).code(),
            StatusCode::kFailedPrecondition);

  // Cancelling a run waiting for review takes its review off the queue.
  Result<std::string> review_id = Write<std::string>(
      [&](store::Tx& tx) { return store_->EscalateToReview(tx, LeaseOf(held[0]), ReviewRow{}); });
  ASSERT_TRUE(review_id.ok());
  QUARRY_ASSERT_OK(
      WriteStatus([&](store::Tx& tx) { return store_->CancelRun(tx, org_, running); }));
  EXPECT_EQ(GetRun(running).status, "cancelled");
  Result<ReviewRow> review =
      Read<ReviewRow>([&](store::Tx& tx) { return store_->GetReview(tx, org_, *review_id); });
  ASSERT_TRUE(review.ok());
  EXPECT_EQ(review->status, "rejected");
  Result<ReviewRow> late = Write<ReviewRow>([&](store::Tx& tx) {
    return store_->DecideReview(tx, org_, *review_id, "approved", nullptr, "", "usr_ann");
  });
  EXPECT_EQ(late.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(late.status().message(), HasSubstr("cancelled"));

  Result<std::map<std::string, int64_t>> counts = Read<std::map<std::string, int64_t>>(
      [&](store::Tx& tx) { return store_->CountRunsByStatus(tx, org_, a.id); });
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<std::string, int64_t>{{"cancelled", 2}}));
}

// --- listing ----------------------------------------------------------------------

TEST_P(RunStoreTest, ListRunsAndAlertsNewestFirstWithFilters) {
  AutomationRow a = MakeAutomation("Listed");
  AutomationRow b = MakeAutomation("Other");
  std::vector<std::string> a_runs;
  for (int i = 0; i < 5; ++i) {
    a_runs.push_back(Enqueue(a.id, 0, "", "rec_" + std::to_string(i % 2)));
    Enqueue(b.id);
    clock_->Advance(milliseconds(1));
  }
  std::vector<std::string> seen;
  domain::PageRequest page{.limit = 2};
  RunFilter filter{.automation_id = a.id};
  for (int pages = 0; pages < 10; ++pages) {
    Result<domain::Page<RunRow>> got = Read<domain::Page<RunRow>>(
        [&](store::Tx& tx) { return store_->ListRuns(tx, org_, filter, page); });
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_LE(got->items.size(), 2u);
    for (const RunRow& r : got->items) seen.push_back(r.id);
    if (got->next_cursor.empty()) break;
    page.cursor = got->next_cursor;
  }
  EXPECT_EQ(seen, std::vector<std::string>(a_runs.rbegin(), a_runs.rend()));

  auto count = [&](const RunFilter& f, const std::string& org) -> size_t {
    Result<domain::Page<RunRow>> got = Read<domain::Page<RunRow>>([&](store::Tx& tx) {
      return store_->ListRuns(tx, org, f, domain::PageRequest{.limit = 100});
    });
    EXPECT_TRUE(got.ok());
    return got.ok() ? got->items.size() : 0;
  };
  EXPECT_EQ(count({}, org_), 10u);
  EXPECT_EQ(count({}, other_org_), 0u);
  EXPECT_EQ(count({.automation_id = a.id, .record_id = "rec_0"}, org_), 3u);
  EXPECT_EQ(count({.status = "running"}, org_), 0u);
  EXPECT_EQ(count({.mode = "live"}, org_), 10u);
  EXPECT_EQ(count({.mode = "test"}, org_), 0u);
  domain::PageRequest bad{.cursor = "not-a-cursor"};
  EXPECT_EQ(
      Read<domain::Page<RunRow>>([&](store::Tx& tx) { return store_->ListRuns(tx, org_, {}, bad); })
          .status()
          .code(),
      StatusCode::kInvalidArgument);

  std::vector<std::string> alerts;
  for (int i = 0; i < 3; ++i) {
    AlertRow alert;
    alert.org_id = org_;
    alert.automation_id = i == 2 ? b.id : a.id;
    alert.run_id = a_runs[i];
    alert.step_id = "classify";
    alert.message = "step failed " + std::to_string(i);
    alert.error = {{"code", "validation"}};
    alert.delivery = "pending";
    Result<std::string> id =
        Write<std::string>([&](store::Tx& tx) { return store_->InsertAlert(tx, alert); });
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_TRUE(id->starts_with("alr_"));
    alerts.push_back(*id);
    clock_->Advance(milliseconds(1));
  }
  QUARRY_ASSERT_OK(WriteStatus(
      [&](store::Tx& tx) { return store_->SetAlertDelivery(tx, alerts[0], "delivered"); }));
  EXPECT_EQ(WriteStatus([&](store::Tx& tx) {
              return store_->SetAlertDelivery(tx, alerts[0], "lost");
            }).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteStatus([&](store::Tx& tx) {
              return store_->SetAlertDelivery(tx, "alr_missing", "failed");
            }).code(),
            StatusCode::kNotFound);
  Result<domain::Page<AlertRow>> first = Read<domain::Page<AlertRow>>([&](store::Tx& tx) {
    return store_->ListAlerts(tx, org_, a.id, domain::PageRequest{.limit = 1});
  });
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->items.size(), 1u);
  EXPECT_EQ(first->items[0].id, alerts[1]);
  EXPECT_EQ(first->items[0].delivery, "pending");
  ASSERT_FALSE(first->next_cursor.empty());
  Result<domain::Page<AlertRow>> second = Read<domain::Page<AlertRow>>([&](store::Tx& tx) {
    return store_->ListAlerts(tx, org_, a.id,
                              domain::PageRequest{.limit = 1, .cursor = first->next_cursor});
  });
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->items.size(), 1u);
  EXPECT_EQ(second->items[0].id, alerts[0]);
  EXPECT_EQ(second->items[0].delivery, "delivered");
  EXPECT_EQ(second->items[0].error["code"], "validation");
  EXPECT_TRUE(second->next_cursor.empty());
}

// --- statistics -----------------------------------------------------------------------

TEST_P(RunStoreTest, StatisticsOverAKnownDataSet) {
  AutomationRow a = MakeAutomation("Measured");
  auto agent_step = [&](int64_t seq, const std::string& status, int64_t latency,
                        const std::string& target) {
    StepRow step = Step(seq, status);
    step.type = "run_agent_task";
    step.target = target;
    step.latency_ms = latency;
    step.input_tokens = 3;
    step.output_tokens = 4;
    step.cost_usd = 0.25;
    return step;
  };

  // Before the window: one failed run that must not count.
  const std::string old = Enqueue(a.id);
  std::vector<ClaimedRun> old_held = Claim("node-a", 1);
  ASSERT_EQ(old_held.size(), 1u);
  QUARRY_ASSERT_OK(
      Commit(LeaseOf(old_held[0]), {agent_step(0, "failed", 999, "agt_1")}, json::object()));
  QUARRY_ASSERT_OK(Finish(LeaseOf(old_held[0]), "failed"));
  clock_->Advance(seconds(3600));
  const int64_t since = NowMs();

  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Enqueue(a.id));
  std::vector<ClaimedRun> held = Claim("node-a", 4);
  ASSERT_EQ(held.size(), 4u);
  std::map<std::string, Lease> leases;
  for (const ClaimedRun& run : held) leases[run.id] = LeaseOf(run);

  StepRow cached = agent_step(0, "succeeded", 50, "agt_1");
  cached.cache_hit = true;
  QUARRY_ASSERT_OK(
      Commit(leases[ids[0]], {cached, agent_step(1, "skipped", 0, "agt_1")}, json::object()));
  QUARRY_ASSERT_OK(Commit(leases[ids[1]], {agent_step(0, "failed", 70, "agt_1")}, json::object()));
  StepRow prompt = agent_step(1, "succeeded", 5, "agt_1");
  prompt.type = "ai_prompt";  // not an agent task
  QUARRY_ASSERT_OK(Commit(
      leases[ids[2]],
      {agent_step(0, "defaulted", 90, "agt_1"), prompt, agent_step(2, "succeeded", 10, "agt_2")},
      json::object()));

  RunRow t1;
  t1.input_tokens = 10;
  t1.output_tokens = 5;
  t1.cost_usd = 0.5;
  RunRow t2;
  t2.input_tokens = 20;
  t2.output_tokens = 1;
  t2.cost_usd = 0.25;
  clock_->Advance(milliseconds(100));
  QUARRY_ASSERT_OK(Finish(leases[ids[0]], "succeeded", t1));
  clock_->Advance(milliseconds(100));
  QUARRY_ASSERT_OK(Finish(leases[ids[1]], "succeeded", t2));
  clock_->Advance(milliseconds(100));
  QUARRY_ASSERT_OK(Finish(leases[ids[2]], "failed"));
  Enqueue(a.id);  // still queued; ids[3] still running

  Result<RunStats> stats =
      Read<RunStats>([&](store::Tx& tx) { return store_->AutomationStats(tx, org_, a.id, since); });
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->invocations, 5);
  EXPECT_EQ(stats->succeeded, 2);
  EXPECT_EQ(stats->failed, 1);
  EXPECT_EQ(stats->running, 2);
  EXPECT_EQ(stats->waiting_review, 0);
  EXPECT_DOUBLE_EQ(stats->success_rate, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(stats->failure_rate, 1.0 / 3.0);
  EXPECT_EQ(stats->latency_p50_ms, 200);
  EXPECT_EQ(stats->latency_p95_ms, 300);
  EXPECT_EQ(stats->input_tokens, 30);
  EXPECT_EQ(stats->output_tokens, 6);
  EXPECT_DOUBLE_EQ(stats->cost_usd, 0.75);
  EXPECT_EQ(stats->cache_hits, 1);
  EXPECT_EQ(stats->ToJson()["latency_p95_ms"], 300);

  // Everything, including the old run.
  Result<RunStats> all =
      Read<RunStats>([&](store::Tx& tx) { return store_->AutomationStats(tx, org_, a.id, 0); });
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->invocations, 6);
  EXPECT_EQ(all->failed, 2);
  Result<RunStats> none = Read<RunStats>(
      [&](store::Tx& tx) { return store_->AutomationStats(tx, other_org_, a.id, 0); });
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->invocations, 0);
  EXPECT_EQ(none->success_rate, 0);
  EXPECT_EQ(none->latency_p50_ms, 0);

  Result<RunStats> agent =
      Read<RunStats>([&](store::Tx& tx) { return store_->AgentStats(tx, org_, "agt_1", since); });
  ASSERT_TRUE(agent.ok()) << agent.status().ToString();
  EXPECT_EQ(agent->invocations, 3);
  EXPECT_EQ(agent->succeeded, 1);
  EXPECT_EQ(agent->failed, 2);
  EXPECT_DOUBLE_EQ(agent->success_rate, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(agent->failure_rate, 2.0 / 3.0);
  EXPECT_EQ(agent->latency_p50_ms, 70);
  EXPECT_EQ(agent->latency_p95_ms, 90);
  EXPECT_EQ(agent->input_tokens, 9);
  EXPECT_EQ(agent->output_tokens, 12);
  EXPECT_DOUBLE_EQ(agent->cost_usd, 0.75);
  EXPECT_EQ(agent->cache_hits, 1);
  Result<RunStats> agent_all =
      Read<RunStats>([&](store::Tx& tx) { return store_->AgentStats(tx, org_, "agt_1", 0); });
  ASSERT_TRUE(agent_all.ok());
  EXPECT_EQ(agent_all->invocations, 4);
  EXPECT_EQ(agent_all->latency_p95_ms, 999);
  Result<RunStats> stranger =
      Read<RunStats>([&](store::Tx& tx) { return store_->AgentStats(tx, other_org_, "agt_1", 0); });
  ASSERT_TRUE(stranger.ok());
  EXPECT_EQ(stranger->invocations, 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, RunStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quarry::engine
