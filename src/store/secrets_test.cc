// Keyring (AES-256-GCM, key file, environment keys, rotation) and the
// SecretStore on every engine.

#include "store/secrets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/encoding.h"
#include "store/migrations.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/scratch_dir.h"

namespace quarry::store {
namespace {

std::string Key(char fill) { return std::string(32, fill); }

std::shared_ptr<Keyring> MustKeys(std::vector<std::string> keys) {
  auto keyring = Keyring::FromKeys(std::move(keys));
  EXPECT_TRUE(keyring.ok()) << keyring.status().ToString();
  return *keyring;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

mode_t ModeOf(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0);
  return info.st_mode & 07777;
}

TEST(SecretStringTest, PrintsMaskedAndKeepsTheValue) {
  SecretString secret("wJalrXUtnFEMI/K7MDENG");
  EXPECT_EQ(secret.ToString(), "****");
  std::ostringstream out;
  out << secret;
  EXPECT_EQ(out.str(), "****");
  SecretString copy = secret;
  SecretString moved = std::move(copy);
  EXPECT_EQ(moved.reveal(), "wJalrXUtnFEMI/K7MDENG");
  EXPECT_TRUE(copy.empty());  // NOLINT: checking the moved-from state on purpose
  copy = moved;
  EXPECT_EQ(copy.reveal(), moved.reveal());
  EXPECT_EQ(MaskedHint("AKIAIOSFODNN7EXAMPLE"), "AKIA****MPLE");
  EXPECT_EQ(MaskedHint("short"), "****");
}

TEST(KeyringTest, SealsAndOpensBindingTheAssociatedData) {
  auto keyring = MustKeys({Key('a')});
  auto sealed = keyring->Seal("s3cret-value", "sec_1");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->rfind("q1:" + keyring->primary_key_id() + ":", 0), 0u) << *sealed;
  EXPECT_EQ(Keyring::KeyIdOf(*sealed), keyring->primary_key_id());
  EXPECT_EQ(keyring->primary_key_id().size(), 8u);
  EXPECT_EQ(sealed->find("s3cret"), std::string::npos);
  auto opened = keyring->Open(*sealed, "sec_1");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->reveal(), "s3cret-value");
  // Two seals of one value differ (fresh nonce each time).
  EXPECT_NE(*keyring->Seal("s3cret-value", "sec_1"), *sealed);
  // Empty values work too.
  auto empty = keyring->Seal("", "x");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(keyring->Open(*empty, "x")->reveal(), "");
}

TEST(KeyringTest, WrongAssociatedDataIsDataLoss) {
  auto keyring = MustKeys({Key('a')});
  auto sealed = keyring->Seal("value", "sec_1");
  auto opened = keyring->Open(*sealed, "sec_2");
  EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss);
}

TEST(KeyringTest, TamperingIsDataLoss) {
  auto keyring = MustKeys({Key('a')});
  const std::string sealed = *keyring->Seal("value", "sec_1");
  const std::string prefix = sealed.substr(0, 12);  // "q1:<8 hex>:"
  std::string raw = *Base64Decode(sealed.substr(12));
  for (size_t position : {size_t{0}, size_t{13}, raw.size() - 1}) {  // nonce, body, tag
    std::string changed = raw;
    changed[position] = static_cast<char>(changed[position] ^ 0x01);
    auto opened = keyring->Open(prefix + Base64Encode(changed), "sec_1");
    EXPECT_EQ(opened.status().code(), StatusCode::kDataLoss) << position;
  }
  EXPECT_EQ(keyring->Open(prefix + "AAAA", "sec_1").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(keyring->Open("plaintext", "sec_1").status().code(), StatusCode::kDataLoss);
}

TEST(KeyringTest, AnUnknownKeyIdIsFailedPreconditionNamingIt) {
  auto one = MustKeys({Key('a')});
  auto two = MustKeys({Key('b')});
  const std::string sealed = *one->Seal("value", "sec_1");
  auto opened = two->Open(sealed, "sec_1");
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find(one->primary_key_id()), std::string::npos);
}

TEST(KeyringTest, KeyFileIsCreated0600AndReused) {
  testing::ScratchDir dir;
  KeyringOptions options;
  options.data_dir = dir.Path("data");  // created when missing
  auto first = Keyring::Load(options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string path = dir.Path("data/master.keys");
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_NE(ReadAll(path).find((*first)->primary_key_id() + " "), std::string::npos);
  auto second = Keyring::Load(options);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->primary_key_id(), (*first)->primary_key_id());
  const std::string sealed = *(*first)->Seal("v", "id");
  EXPECT_EQ((*second)->Open(sealed, "id")->reveal(), "v");
}

TEST(KeyringTest, AKeyFileReadableByOthersIsRefused) {
  testing::ScratchDir dir;
  KeyringOptions options;
  options.data_dir = dir.path();
  ASSERT_TRUE(Keyring::Load(options).ok());
  const std::string path = dir.Path("master.keys");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto refused = Keyring::Load(options);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("chmod 600"), std::string::npos)
      << refused.status().message();
}

TEST(KeyringTest, ADamagedKeyFileIsDataLoss) {
  testing::ScratchDir dir;
  const std::string path = dir.Write("master.keys", "deadbeef " + Base64Encode(Key('x')) + "\n");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  KeyringOptions options;
  options.data_dir = dir.path();
  EXPECT_EQ(Keyring::Load(options).status().code(), StatusCode::kDataLoss);
}

TEST(KeyringTest, EnvironmentKeyWinsAndCannotBeRotatedByFile) {
  testing::ScratchDir dir;
  KeyringOptions options;
  options.data_dir = dir.path();
  options.env_master_key = Base64Encode(Key('e'));
  auto keyring = Keyring::Load(options);
  ASSERT_TRUE(keyring.ok()) << keyring.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir.Path("master.keys")));
  EXPECT_EQ((*keyring)->primary_key_id(), MustKeys({Key('e')})->primary_key_id());
  Status rotate = (*keyring)->RotateKeyFile();
  EXPECT_EQ(rotate.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(rotate.message().find("QUARRY_OLD_MASTER_KEYS"), std::string::npos);
  EXPECT_NE(rotate.message().find("--rewrap-only"), std::string::npos);

  options.env_master_key = "bm90LWEta2V5";  // base64 of "not-a-key"
  auto bad = Keyring::Load(options);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("bm90LWEta2V5"), std::string::npos);
}

TEST(KeyringTest, OldEnvironmentKeysStillOpen) {
  auto old_ring = MustKeys({Key('o')});
  const std::string sealed = *old_ring->Seal("v", "id");
  KeyringOptions options;
  options.env_master_key = Base64Encode(Key('n'));
  options.env_old_master_keys = Base64Encode(Key('z')) + "," + Base64Encode(Key('o'));
  auto keyring = Keyring::Load(options);
  ASSERT_TRUE(keyring.ok()) << keyring.status().ToString();
  EXPECT_EQ((*keyring)->key_ids().size(), 3u);
  EXPECT_EQ((*keyring)->Open(sealed, "id")->reveal(), "v");
  EXPECT_NE(Keyring::KeyIdOf(*(*keyring)->Seal("v", "id")), old_ring->primary_key_id());
}

TEST(KeyringTest, NoKeySourceIsFailedPrecondition) {
  if (std::getenv("QUARRY_MASTER_KEY") != nullptr) GTEST_SKIP() << "QUARRY_MASTER_KEY is set";
  EXPECT_EQ(Keyring::Load(KeyringOptions{}).status().code(), StatusCode::kFailedPrecondition);
}

TEST(KeyringTest, RotationKeepsOldKeysAndAnotherProcessReloads) {
  testing::ScratchDir dir;
  KeyringOptions options;
  options.data_dir = dir.path();
  auto server = *Keyring::Load(options);   // a running server
  auto rotator = *Keyring::Load(options);  // `quarry keys rotate`
  const std::string old_id = server->primary_key_id();
  const std::string before = *server->Seal("before", "a");
  ASSERT_TRUE(rotator->RotateKeyFile().ok());
  EXPECT_EQ(ModeOf(dir.Path("master.keys")), 0600u);
  EXPECT_NE(rotator->primary_key_id(), old_id);
  EXPECT_EQ(rotator->key_ids().size(), 2u);
  const std::string after = *rotator->Seal("after", "b");
  // The server has never seen the new key: it re-reads the file.
  auto opened = server->Open(after, "b");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->reveal(), "after");
  EXPECT_EQ(server->primary_key_id(), rotator->primary_key_id());
  EXPECT_EQ(rotator->Open(before, "a")->reveal(), "before");
}

TEST(KeyringTest, ARunningServerSealsWithAKeyRotatedElsewhere) {
  testing::ScratchDir dir;
  KeyringOptions options;
  options.data_dir = dir.path();
  options.key_file_check_interval_ms = 0;
  auto server = *Keyring::Load(options);
  auto rotator = *Keyring::Load(options);
  ASSERT_TRUE(rotator->RotateKeyFile().ok());
  const std::string sealed = *server->Seal("v", "id");
  EXPECT_EQ(Keyring::KeyIdOf(sealed), rotator->primary_key_id());
}

// ---- SecretStore, on every engine ----

enum class Backend { kSqliteFile, kPostgres };

void PrintTo(Backend backend, std::ostream* out) {
  *out << (backend == Backend::kPostgres ? "Postgres" : "SqliteFile");
}

class SecretStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    std::string url = "sqlite:" + scratch_.Path("quarry.db");
    if (GetParam() == Backend::kPostgres) {
      testing::PostgresDatabase pg = testing::SharedPostgresDatabase();
      if (pg.url.empty()) GTEST_SKIP() << "PostgreSQL tests skipped: " << pg.skip_reason;
      url = pg.url;
    }
    auto db = Database::Open(url);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    Status migrated = ApplyMigrations(*db_, StoreMigrations());
    ASSERT_TRUE(migrated.ok()) << migrated.ToString();
    options_.data_dir = scratch_.Path("keys");
    auto keyring = Keyring::Load(options_);
    ASSERT_TRUE(keyring.ok()) << keyring.status().ToString();
    keyring_ = *keyring;
  }

  Result<std::string> Put(const SecretStore& store, const std::string& owner,
                          const std::string& value) {
    std::string id;
    Status status = db_->Write([&](Tx& tx) -> Status {
      QUARRY_ASSIGN_OR_RETURN(id, store.Put(tx, owner, "secret_access_key", SecretString(value)));
      return Status::Ok();
    });
    if (!status.ok()) return status;
    return id;
  }

  Result<SecretString> Get(const SecretStore& store, const std::string& id) {
    Result<SecretString> result = InternalError("not run");
    Status status = db_->Read([&](Tx& tx) -> Status {
      result = store.Get(tx, id);
      return Status::Ok();
    });
    if (!status.ok()) return status;
    return result;
  }

  testing::ScratchDir scratch_;
  KeyringOptions options_;
  std::unique_ptr<Database> db_;
  std::shared_ptr<Keyring> keyring_;
};

TEST_P(SecretStoreTest, PutsGetsReplacesAndDeletes) {
  SecretStore store(keyring_);
  auto id = Put(store, "provider:prv_1", "first-value");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->rfind("sec_", 0), 0u);
  EXPECT_EQ(Get(store, *id)->reveal(), "first-value");
  ASSERT_TRUE(db_->Write([&](Tx& tx) {
                   return store.Replace(tx, *id, SecretString("second-value"));
                 }).ok());
  EXPECT_EQ(Get(store, *id)->reveal(), "second-value");
  EXPECT_EQ(db_->Write([&](Tx& tx) {
                 return store.Replace(tx, "sec_missing", SecretString("x"));
               }).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Get(store, "sec_missing").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(db_->Write([&](Tx& tx) { return store.Delete(tx, *id); }).ok());
  EXPECT_EQ(Get(store, *id).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(db_->Write([&](Tx& tx) { return store.Delete(tx, *id); }).ok());

  auto a = Put(store, "provider:prv_2", "a");
  auto b = Put(store, "provider:prv_2", "b");
  auto c = Put(store, "provider:prv_3", "c");
  ASSERT_TRUE(db_->Write([&](Tx& tx) { return store.DeleteOwned(tx, "provider:prv_2"); }).ok());
  EXPECT_EQ(Get(store, *a).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Get(store, *b).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Get(store, *c)->reveal(), "c");
}

TEST_P(SecretStoreTest, ACiphertextCopiedToAnotherRowDoesNotOpen) {
  SecretStore store(keyring_);
  auto a = Put(store, "o", "value-a");
  auto b = Put(store, "o", "value-b");
  ASSERT_TRUE(db_->Write([&](Tx& tx) {
                   return tx.Exec("UPDATE secrets SET sealed = (SELECT sealed FROM secrets "
                                  "WHERE id = $1) WHERE id = $2",
                                  {*a, *b})
                       .status();
                 }).ok());
  EXPECT_EQ(Get(store, *b).status().code(), StatusCode::kDataLoss);
}

TEST_P(SecretStoreTest, RotationThenRewrapReencryptsEverything) {
  SecretStore store(keyring_);
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(*Put(store, "o", "value-" + std::to_string(i)));
  const std::string old_id = keyring_->primary_key_id();
  ASSERT_TRUE(keyring_->RotateKeyFile().ok());
  // Old-key secrets still open before re-wrapping.
  EXPECT_EQ(Get(store, ids[0])->reveal(), "value-0");
  ids.push_back(*Put(store, "o", "value-7"));  // already under the new key
  auto report = store.RewrapAll(*db_, /*batch_size=*/3);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->rewrapped, 7);
  EXPECT_EQ(report->already_current, 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(Get(store, ids[i])->reveal(), "value-" + std::to_string(i));
  }
  ASSERT_TRUE(db_->Read([&](Tx& tx) -> Status {
                   QUARRY_ASSIGN_OR_RETURN(
                       Row row, tx.QueryOne("SELECT COUNT(*) FROM secrets WHERE key_id = $1",
                                            {keyring_->primary_key_id()}, "count"));
                   EXPECT_EQ(row.Int(0), 8);
                   return Status::Ok();
                 }).ok());
  // Idempotent.
  auto again = store.RewrapAll(*db_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->rewrapped, 0);
  EXPECT_EQ(again->already_current, 8);
  // The old key stays in the file (backups need it).
  auto reloaded = Keyring::Load(options_);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_EQ((*reloaded)->key_ids().front(), old_id);
}

TEST_P(SecretStoreTest, AKnownSecretNeverReachesTheDatabaseFile) {
  if (GetParam() != Backend::kSqliteFile) GTEST_SKIP() << "reads the SQLite file's bytes";
  SecretStore store(keyring_);
  const std::string known = "KNOWN-SECRET-7f3a9c-wJalrXUtnFEMI";
  auto id = Put(store, "provider:prv_1", known);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(db_->Write([&](Tx& tx) {
                   return store.Replace(tx, *id, SecretString(known + "-v2"));
                 }).ok());
  EXPECT_EQ(Get(store, *id)->reveal(), known + "-v2");
  auto check = [&](const std::string& when) {
    bool any_file = false;
    for (const auto& entry : std::filesystem::directory_iterator(scratch_.path())) {
      if (!entry.is_regular_file()) continue;
      const std::string name = entry.path().filename().string();
      if (name.rfind("quarry.db", 0) != 0) continue;  // the db, -wal, -shm
      any_file = true;
      const std::string bytes = ReadAll(entry.path().string());
      EXPECT_EQ(bytes.find(known), std::string::npos) << name << " " << when;
      EXPECT_EQ(bytes.find(Base64Encode(known)), std::string::npos) << name << " " << when;
    }
    EXPECT_TRUE(any_file);
  };
  check("while open");
  const std::string wal = scratch_.Path("quarry.db-wal");
  EXPECT_TRUE(std::filesystem::exists(wal));
  db_.reset();  // checkpoints the WAL into the main file
  check("after close");
}

INSTANTIATE_TEST_SUITE_P(Engines, SecretStoreTest,
                         ::testing::Values(Backend::kSqliteFile, Backend::kPostgres),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param == Backend::kPostgres ? "Postgres" : "SqliteFile";
                         });

}  // namespace
}  // namespace quarry::store
