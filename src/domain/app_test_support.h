#pragma once
// Test support for the apps/records domain tests: a database of either
// dialect (SQLite in a scratch directory, or a fresh database in the shared
// throwaway PostgreSQL cluster, skipped loudly when that cannot start) with
// every migration applied, two organizations, and users of every role.

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "domain/accounts.h"
#include "domain/apps.h"
#include "domain/fields.h"
#include "domain/records.h"
#include "domain/schema.h"
#include "store/database.h"
#include "store/migrations.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/test_database.h"

namespace quarry::domain {

// Parameter: "sqlite" or "postgresql".
class AppDomainTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    quarry::testing::TestDatabase opened = quarry::testing::OpenTestDatabase(GetParam(), scratch_);
    if (!opened.skip_reason.empty()) GTEST_SKIP() << opened.skip_reason;
    ASSERT_TRUE(opened.db) << opened.status.ToString();
    db_ = opened.db;
    QUARRY_ASSERT_OK(store::ApplyMigrations(*db_, AllMigrations()));
    QUARRY_ASSERT_OK(db_->Write([&](store::Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(Organization org, CreateOrganization(tx, clock_, "Acme"));
      QUARRY_ASSIGN_OR_RETURN(Organization other, CreateOrganization(tx, clock_, "Other"));
      org_id_ = org.id;
      other_org_id_ = other.id;
      auto make = [&](const std::string& org_id, const std::string& email, Role role,
                      Principal* out) -> Status {
        NewUser user;
        user.org_id = org_id;
        user.email = email;
        user.role = role;
        QUARRY_ASSIGN_OR_RETURN(User made, CreateUser(tx, clock_, user));
        out->user_id = made.id;
        out->org_id = org_id;
        out->email = email;
        out->role = role;
        out->auth_kind = "token";
        return Status::Ok();
      };
      QUARRY_RETURN_IF_ERROR(make(org_id_, "admin@example.com", Role::kAdmin, &admin_));
      QUARRY_RETURN_IF_ERROR(make(org_id_, "builder@example.com", Role::kBuilder, &builder_));
      QUARRY_RETURN_IF_ERROR(make(org_id_, "member@example.com", Role::kMember, &member_));
      QUARRY_RETURN_IF_ERROR(make(other_org_id_, "someone@other.test", Role::kAdmin, &stranger_));
      return Status::Ok();
    }));
    records_ = std::make_shared<RecordService>(db_, clock_ptr_);
  }

  ChangeContext As(const Principal& who) { return ChangeContext::For(who, clock_, "req_test"); }

  // Runs fn(tx) -> Result<T> in a write transaction.
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

  Result<App> MakeApp(const std::string& ns, const std::string& handle, FieldErrors* errors = nullptr) {
    return Write<App>([&](store::Tx& tx) {
      return CreateApp(tx, As(builder_), {{"name", "App " + ns}, {"namespace", ns}, {"handle", handle}},
                       errors);
    });
  }
  Result<ObjectSchema> MakeObject(const std::string& app, const std::string& api_name) {
    return Write<ObjectSchema>([&](store::Tx& tx) {
      return CreateObject(tx, As(builder_), app, {{"name", api_name}, {"api_name", api_name}},
                          nullptr);
    });
  }
  Result<Field> MakeField(const std::string& app, const std::string& object, nlohmann::json spec,
                          FieldErrors* errors = nullptr) {
    return Write<Field>([&](store::Tx& tx) {
      return CreateField(tx, As(builder_), app, object, spec, errors);
    });
  }

  quarry::testing::ScratchDir scratch_;
  std::shared_ptr<FakeClock> clock_ptr_ =
      std::make_shared<FakeClock>(WallTime{std::chrono::seconds{1'790'000'000}});
  FakeClock& clock_ = *clock_ptr_;
  std::shared_ptr<store::Database> db_;
  std::shared_ptr<RecordService> records_;
  std::string org_id_, other_org_id_;
  Principal admin_, builder_, member_, stranger_;
};

}  // namespace quarry::domain
