#pragma once
// Secrets at rest: AES-256-GCM under a master key, in one table.
//
// A Keyring holds master keys, each with an id (the first 8 hex digits of
// SHA-256 of the key: stable, reveals nothing). The newest key (the primary)
// seals; any key opens what it sealed. A sealed secret is the text
//   "q1:<key id>:<base64(12-byte nonce || ciphertext || 16-byte tag)>"
// with the associated data bound in (the secret's id), so a ciphertext copied
// onto another row does not open.
//
// Where the keys come from (KeyringOptions): the environment variable
// QUARRY_MASTER_KEY (base64 of 32 bytes) when set; otherwise the key file
// <data dir>/master.keys, created on first start with mode 0600 and one random
// key. The file holds one key per line, "<key id> <base64 key>", the primary
// last. A key file readable by group or others is refused (FailedPrecondition,
// saying to chmod 600).
//
// Rotation without downtime (`quarry keys rotate`): RotateKeyFile appends a
// new key to the file; RewrapAll re-encrypts every row under it, in batches.
// A running server that meets a key id it does not hold re-reads the key file
// once (Keyring::Open does this), so it keeps working through a rotation done
// by another process. It also notices a replaced key file within a couple of
// seconds when sealing (one stat() per interval), so new secrets move to the
// new primary key without a restart. Old keys stay in the file (needed by
// backups) until removed by hand.
//
// SecretStore keeps secrets in the table
//   secrets(id TEXT PRIMARY KEY, owner TEXT, purpose TEXT, key_id TEXT,
//           sealed TEXT, created_at TEXT, updated_at TEXT)
// (migration 1). Plaintext is held in SecretString, which prints masked and
// zeroes its memory on destruction; nothing here logs a plaintext.
//
// Thread safety: Keyring and SecretStore are thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/database.h"

namespace quarry::store {

// Plaintext secret material. Copyable (each copy is wiped on destruction);
// ToString()/operator<< give "****" (or a hint, see Masked()).
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string value) : value_(std::move(value)) {}
  // Copies and moves wipe the memory they leave behind.
  SecretString(const SecretString& other) : value_(other.value_) {}
  SecretString& operator=(const SecretString& other);
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  ~SecretString();
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  std::string ToString() const { return "****"; }

 private:
  void Wipe() noexcept;
  std::string value_;
};
std::ostream& operator<<(std::ostream& out, const SecretString& secret);

// "AKIA****WXYZ"-style hint: the first 4 and last 4 characters of a value of
// 16+ characters, "****" otherwise. For access key ids only, never for
// secret keys.
std::string MaskedHint(std::string_view value);

struct KeyringOptions {
  std::string data_dir{};  // where master.keys lives; empty with env key only
  // Read from the environment by Load(); tests set it directly.
  std::optional<std::string> env_master_key{};
  // QUARRY_OLD_MASTER_KEYS: earlier environment keys (base64, comma-separated)
  // that still open what they sealed. Read from the environment by Load()
  // when unset here and a master key came from the environment or
  // env_master_key; tests set it directly.
  std::optional<std::string> env_old_master_keys{};
  // How often Seal() checks whether the key file was replaced (a rotation by
  // another process); 0 checks on every Seal (tests).
  int64_t key_file_check_interval_ms = 2000;
};

class Keyring {
 public:
  // Loads (or, for the key file, creates) the keys as described above.
  static Result<std::shared_ptr<Keyring>> Load(const KeyringOptions& options);
  // A keyring with the given raw 32-byte keys, primary last (tests).
  static Result<std::shared_ptr<Keyring>> FromKeys(std::vector<std::string> raw_keys);

  // Appends a new random key to <data_dir>/master.keys (atomically: write a
  // temp file, fsync, rename) and makes it primary here. FailedPrecondition
  // when the keys came from the environment (the message says how to rotate
  // an environment key: set QUARRY_MASTER_KEY to the new key and
  // QUARRY_OLD_MASTER_KEYS to the old ones, comma-separated, then run
  // `quarry keys rotate --rewrap-only`).
  Status RotateKeyFile();

  std::string primary_key_id() const;
  std::vector<std::string> key_ids() const;

  // Seal with the primary key; `aad` is bound in.
  Result<std::string> Seal(std::string_view plaintext, std::string_view aad) const;
  // Open a sealed value. DataLoss when the tag does not verify (wrong aad,
  // tampering); FailedPrecondition naming the key id when no key holds it
  // even after re-reading the key file.
  Result<SecretString> Open(std::string_view sealed, std::string_view aad) const;
  // The key id a sealed value names, or "" when it is not one.
  static std::string KeyIdOf(std::string_view sealed);

  ~Keyring();  // wipes the key material
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

 private:
  Keyring() = default;
  // Re-reads the key file (no-op for environment keys). Locks mutex_.
  Status Reload() const;
  // Reloads when the key file changed since it was read (checked at most
  // every couple of seconds). Locks mutex_.
  void ReloadIfFileChanged() const;
  mutable std::mutex mutex_;
  // Identity of the key file last read (inode, size, mtime ns) and when it
  // was last compared; guarded by mutex_.
  mutable std::string file_identity_;
  mutable int64_t last_file_check_ms_ = 0;
  KeyringOptions options_;
  mutable std::vector<std::pair<std::string, std::string>> keys_;  // (id, raw key), primary last
};

class SecretStore {
 public:
  explicit SecretStore(std::shared_ptr<Keyring> keyring) : keyring_(std::move(keyring)) {}

  // Stores a new secret; returns its id ("sec_..."). `owner` names what holds
  // it ("provider:prv_..."), `purpose` what it is ("secret_access_key").
  Result<std::string> Put(Tx& tx, std::string_view owner, std::string_view purpose,
                          const SecretString& plaintext) const;
  // Replaces the value of an existing secret (NotFound when absent).
  Status Replace(Tx& tx, std::string_view secret_id, const SecretString& plaintext) const;
  Result<SecretString> Get(Tx& tx, std::string_view secret_id) const;
  // Deleting a secret that does not exist is not an error (clean-up paths
  // may run twice).
  Status Delete(Tx& tx, std::string_view secret_id) const;
  // Deletes every secret of an owner.
  Status DeleteOwned(Tx& tx, std::string_view owner) const;

  struct RewrapReport {
    int64_t rewrapped = 0;     // rows re-encrypted under the primary key
    int64_t already_current = 0;
  };
  // Re-encrypts every secret not under the primary key, in batches of
  // `batch_size` rows per transaction (so a running server is never blocked
  // for long). Idempotent; safe to run while the server runs.
  Result<RewrapReport> RewrapAll(Database& db, int batch_size = 100) const;

  const Keyring& keyring() const { return *keyring_; }

 private:
  std::shared_ptr<Keyring> keyring_;
};

}  // namespace quarry::store
