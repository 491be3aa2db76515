// Secrets at rest: AES-256-GCM (OpenSSL 3 EVP) under master keys kept in a
// 0600 key file or the environment.

#include "store/secrets.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "common/crypto.h"
#include "common/encoding.h"
#include "common/ids.h"
#include "store/internal.h"

namespace quarry::store {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;
constexpr size_t kKeyIdChars = 8;
constexpr std::string_view kSealedPrefix = "q1:";
constexpr const char* kKeyFileName = "master.keys";
constexpr const char* kLockFileName = "master.keys.lock";
constexpr const char* kEnvMasterKey = "QUARRY_MASTER_KEY";
constexpr const char* kEnvOldMasterKeys = "QUARRY_OLD_MASTER_KEYS";
constexpr auto kLockTimeout = std::chrono::seconds(10);

constexpr std::string_view kInsertSecret =
    "INSERT INTO secrets (id, owner, purpose, key_id, sealed, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $6)";
constexpr std::string_view kUpdateSecret =
    "UPDATE secrets SET key_id = $2, sealed = $3, updated_at = $4 WHERE id = $1";
constexpr std::string_view kSelectSecret = "SELECT sealed FROM secrets WHERE id = $1";
constexpr std::string_view kDeleteSecret = "DELETE FROM secrets WHERE id = $1";
constexpr std::string_view kDeleteOwned = "DELETE FROM secrets WHERE owner = $1";
constexpr std::string_view kSelectStale =
    "SELECT id, sealed FROM secrets WHERE key_id <> $1 ORDER BY id LIMIT $2";
// Only if nobody changed the row since we read it (a concurrent Replace wins).
constexpr std::string_view kRewrapSecret =
    "UPDATE secrets SET key_id = $2, sealed = $3, updated_at = $4 WHERE id = $1 AND sealed = $5";
constexpr std::string_view kCountCurrent = "SELECT COUNT(*) FROM secrets WHERE key_id = $1";

void WipeString(std::string& text) {
  if (text.capacity() > 0) {
    // Zero the whole buffer, not just the visible part: resize within the
    // capacity never reallocates.
    text.resize(text.capacity());
    OPENSSL_cleanse(text.data(), text.size());
  }
  text.clear();
}

std::string KeyIdOfRaw(std::string_view raw_key) {
  return Sha256Hex(raw_key).substr(0, kKeyIdChars);
}

std::string KeyFilePath(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / kKeyFileName).string();
}

using KeyList = std::vector<std::pair<std::string, std::string>>;

void WipeKeys(KeyList& keys) {
  for (auto& [id, key] : keys) WipeString(key);
  keys.clear();
}

Result<std::string> DecodeKey(std::string_view base64, std::string_view where) {
  auto decoded = Base64Decode(TrimAsciiWhitespace(base64));
  if (!decoded.ok() || decoded->size() != kKeyBytes) {
    if (decoded.ok()) WipeString(*decoded);
    return InvalidArgumentError(std::string(where) +
                                " is not the base64 of 32 bytes; generate a key with "
                                "`openssl rand -base64 32`");
  }
  return std::move(decoded).value();
}

std::string ErrnoText() { return std::strerror(errno); }

// Reads and checks the key file: mode 0600 (no group/other access), one
// "<id> <base64>" per line, each id matching its key.
Result<KeyList> ReadKeyFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return FailedPreconditionError("cannot open the key file " + path + ": " + ErrnoText());
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    return FailedPreconditionError("cannot stat the key file " + path + ": " + ErrnoText());
  }
  if ((info.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return FailedPreconditionError("the key file " + path + " is readable by group or others (mode " +
                                   mode + "); run `chmod 600 " + path + "` and start again");
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(buffer, sizeof(buffer));
  ::close(fd);

  KeyList keys;
  size_t line_number = 0;
  size_t start = 0;
  Status error;
  while (start < content.size() && error.ok()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string_view line = TrimAsciiWhitespace(std::string_view(content).substr(start, end - start));
    start = end + 1;
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    const size_t space = line.find(' ');
    const std::string where = path + " line " + std::to_string(line_number);
    if (space == std::string_view::npos) {
      error = DataLossError(where + " is not \"<key id> <base64 key>\"; restore the file from a backup");
      break;
    }
    const std::string id(line.substr(0, space));
    auto key = DecodeKey(line.substr(space + 1), where);
    if (!key.ok()) {
      error = DataLossError(key.status().message() + " (restore the file from a backup)");
      break;
    }
    if (KeyIdOfRaw(*key) != id) {
      WipeString(*key);
      error = DataLossError(where + ": the key id " + id +
                            " does not match its key; the file was edited or damaged, restore it "
                            "from a backup");
      break;
    }
    keys.emplace_back(id, std::move(key).value());
  }
  WipeString(content);
  if (!error.ok()) {
    WipeKeys(keys);
    return error;
  }
  if (keys.empty()) {
    return DataLossError("the key file " + path +
                         " holds no keys; restore it from a backup (deleting it would make every "
                         "stored secret unreadable)");
  }
  return keys;
}

Status FsyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return UnavailableError("cannot open directory " + dir + ": " + ErrnoText());
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return UnavailableError("cannot sync directory " + dir + ": " + ErrnoText());
  return Status::Ok();
}

// Writes `keys` to a new 0600 temp file in `dir` and fsyncs it; returns its
// path.
Result<std::string> WriteTempKeyFile(const std::string& dir, const KeyList& keys) {
  const std::string temp = (std::filesystem::path(dir) / (std::string(kKeyFileName) + ".tmp." +
                                                          HexEncode(SecureRandomBytes(6))))
                               .string();
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return UnavailableError("cannot create " + temp + ": " + ErrnoText() +
                            " (check that the data directory is writable)");
  }
  std::string content =
      "# Quarry master keys: \"<key id> <base64 key>\", newest last. Keep this file secret and "
      "backed up;\n# without it the stored secrets cannot be decrypted.\n";
  for (const auto& [id, key] : keys) content += id + " " + Base64Encode(key) + "\n";
  bool ok = ::fchmod(fd, 0600) == 0;
  size_t written = 0;
  while (ok && written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    if (n > 0) written += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  const std::string reason = ok ? "" : ErrnoText();
  ::close(fd);
  WipeString(content);
  if (!ok) {
    ::unlink(temp.c_str());
    return UnavailableError("cannot write " + temp + ": " + reason);
  }
  return temp;
}

// An exclusive lock on <data dir>/master.keys.lock, so two processes creating
// or rotating keys at once do not lose each other's key.
class KeyFileLock {
 public:
  static Result<std::unique_ptr<KeyFileLock>> Acquire(const std::string& dir) {
    const std::string path = (std::filesystem::path(dir) / kLockFileName).string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return UnavailableError("cannot open " + path + ": " + ErrnoText() +
                              " (check that the data directory is writable)");
    }
    const auto deadline = std::chrono::steady_clock::now() + kLockTimeout;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(fd);
        return UnavailableError("another process has held " + path +
                                " for 10 s (a key rotation in progress?); retry when it is done");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::unique_ptr<KeyFileLock>(new KeyFileLock(fd));
  }
  ~KeyFileLock() { ::close(fd_); }  // closing releases the lock
  KeyFileLock(const KeyFileLock&) = delete;
  KeyFileLock& operator=(const KeyFileLock&) = delete;

 private:
  explicit KeyFileLock(int fd) : fd_(fd) {}
  int fd_;
};

// Loads the key file, creating it with one new key when it does not exist.
Result<KeyList> LoadOrCreateKeyFile(const std::string& data_dir) {
  const std::string path = KeyFilePath(data_dir);
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) return ReadKeyFile(path);
  std::error_code ignored;
  std::filesystem::create_directories(data_dir, ignored);
  QUARRY_ASSIGN_OR_RETURN(auto lock, KeyFileLock::Acquire(data_dir));
  if (::lstat(path.c_str(), &info) == 0) return ReadKeyFile(path);  // created meanwhile
  KeyList keys;
  std::string key = SecureRandomBytes(kKeyBytes);
  keys.emplace_back(KeyIdOfRaw(key), std::move(key));
  auto temp = WriteTempKeyFile(data_dir, keys);
  if (!temp.ok()) {
    WipeKeys(keys);
    return temp.status();
  }
  if (::rename(temp->c_str(), path.c_str()) != 0) {
    const std::string reason = ErrnoText();
    ::unlink(temp->c_str());
    WipeKeys(keys);
    return UnavailableError("cannot create the key file " + path + ": " + reason);
  }
  QUARRY_RETURN_IF_ERROR(FsyncDirectory(data_dir));
  return keys;
}

// Changes whenever the key file is replaced (rename gives a new inode) or
// rewritten; "" when it cannot be read.
std::string FileIdentity(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "";
  return std::to_string(info.st_ino) + ":" + std::to_string(info.st_size) + ":" +
         std::to_string(info.st_mtim.tv_sec) + "." + std::to_string(info.st_mtim.tv_nsec);
}

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> Getenv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

}  // namespace

// ---- SecretString ----

void SecretString::Wipe() noexcept { WipeString(value_); }

SecretString::~SecretString() { Wipe(); }

SecretString& SecretString::operator=(const SecretString& other) {
  if (this != &other) {
    Wipe();
    value_ = other.value_;
  }
  return *this;
}

SecretString::SecretString(SecretString&& other) noexcept : value_(other.value_) { other.Wipe(); }

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    Wipe();
    value_ = other.value_;
    other.Wipe();
  }
  return *this;
}

std::ostream& operator<<(std::ostream& out, const SecretString& secret) {
  return out << secret.ToString();
}

std::string MaskedHint(std::string_view value) {
  if (value.size() < 16) return "****";
  return std::string(value.substr(0, 4)) + "****" + std::string(value.substr(value.size() - 4));
}

// ---- Keyring ----

Keyring::~Keyring() { WipeKeys(keys_); }

Result<std::shared_ptr<Keyring>> Keyring::Load(const KeyringOptions& options) {
  std::shared_ptr<Keyring> keyring(new Keyring());
  keyring->options_ = options;
  if (!keyring->options_.env_master_key) {
    keyring->options_.env_master_key = Getenv(kEnvMasterKey);
  }
  // Also when the caller passed the master key itself (read from its own
  // configuration): the old keys belong with it.
  if (keyring->options_.env_master_key && !keyring->options_.env_old_master_keys) {
    keyring->options_.env_old_master_keys = Getenv(kEnvOldMasterKeys);
  }
  const KeyringOptions& effective = keyring->options_;
  if (effective.env_master_key) {
    if (effective.env_old_master_keys) {
      std::string_view rest = *effective.env_old_master_keys;
      int index = 0;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        ++index;
        if (TrimAsciiWhitespace(item).empty()) continue;
        QUARRY_ASSIGN_OR_RETURN(std::string key,
                                DecodeKey(item, std::string(kEnvOldMasterKeys) + " item " +
                                                    std::to_string(index)));
        keyring->keys_.emplace_back(KeyIdOfRaw(key), std::move(key));
      }
    }
    QUARRY_ASSIGN_OR_RETURN(std::string key, DecodeKey(*effective.env_master_key, kEnvMasterKey));
    keyring->keys_.emplace_back(KeyIdOfRaw(key), std::move(key));
    return keyring;
  }
  if (effective.data_dir.empty()) {
    return FailedPreconditionError(
        "no master key: set QUARRY_MASTER_KEY to the base64 of 32 random bytes (`openssl rand "
        "-base64 32`), or give a data directory where the key file master.keys is kept");
  }
  keyring->file_identity_ = FileIdentity(KeyFilePath(effective.data_dir));
  QUARRY_ASSIGN_OR_RETURN(keyring->keys_, LoadOrCreateKeyFile(effective.data_dir));
  keyring->last_file_check_ms_ = MonotonicMs();
  return keyring;
}

Result<std::shared_ptr<Keyring>> Keyring::FromKeys(std::vector<std::string> raw_keys) {
  std::shared_ptr<Keyring> keyring(new Keyring());
  if (raw_keys.empty()) return InvalidArgumentError("Keyring::FromKeys needs at least one key");
  for (std::string& key : raw_keys) {
    if (key.size() != kKeyBytes) {
      return InvalidArgumentError("a master key must be 32 bytes, got " + std::to_string(key.size()));
    }
    keyring->keys_.emplace_back(KeyIdOfRaw(key), std::move(key));
  }
  return keyring;
}

Status Keyring::Reload() const {
  if (options_.env_master_key || options_.data_dir.empty()) return Status::Ok();
  const std::string path = KeyFilePath(options_.data_dir);
  // Identity first: if the file changes while we read it, the next check
  // sees a difference and reads again.
  std::string identity = FileIdentity(path);
  QUARRY_ASSIGN_OR_RETURN(KeyList keys, ReadKeyFile(path));
  std::lock_guard<std::mutex> lock(mutex_);
  WipeKeys(keys_);
  keys_ = std::move(keys);
  file_identity_ = std::move(identity);
  last_file_check_ms_ = MonotonicMs();
  return Status::Ok();
}

void Keyring::ReloadIfFileChanged() const {
  if (options_.env_master_key || options_.data_dir.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const int64_t now = MonotonicMs();
    if (now - last_file_check_ms_ < options_.key_file_check_interval_ms) return;
    last_file_check_ms_ = now;
    if (FileIdentity(KeyFilePath(options_.data_dir)) == file_identity_) return;
  }
  // A damaged or unreadable new file: keep sealing with the keys we have
  // (they still work); Open reports the problem if it needs a missing key.
  (void)Reload();
}

Status Keyring::RotateKeyFile() {
  if (options_.env_master_key) {
    return FailedPreconditionError(
        "the master key comes from QUARRY_MASTER_KEY, so there is no key file to rotate: set "
        "QUARRY_MASTER_KEY to a new key (`openssl rand -base64 32`) and QUARRY_OLD_MASTER_KEYS to "
        "the old ones, comma-separated, then run `quarry keys rotate --rewrap-only`");
  }
  if (options_.data_dir.empty()) {
    return FailedPreconditionError("this keyring has no key file (it was built from keys in memory)");
  }
  QUARRY_ASSIGN_OR_RETURN(auto lock, KeyFileLock::Acquire(options_.data_dir));
  // Start from the file, not memory: another process may have rotated.
  QUARRY_ASSIGN_OR_RETURN(KeyList keys, ReadKeyFile(KeyFilePath(options_.data_dir)));
  std::string key = SecureRandomBytes(kKeyBytes);
  keys.emplace_back(KeyIdOfRaw(key), std::move(key));
  auto temp = WriteTempKeyFile(options_.data_dir, keys);
  if (!temp.ok()) {
    WipeKeys(keys);
    return temp.status();
  }
  const std::string path = KeyFilePath(options_.data_dir);
  if (::rename(temp->c_str(), path.c_str()) != 0) {
    const std::string reason = ErrnoText();
    ::unlink(temp->c_str());
    WipeKeys(keys);
    return UnavailableError("cannot replace the key file " + path + ": " + reason);
  }
  QUARRY_RETURN_IF_ERROR(FsyncDirectory(options_.data_dir));
  std::lock_guard<std::mutex> guard(mutex_);
  WipeKeys(keys_);
  keys_ = std::move(keys);
  file_identity_ = FileIdentity(path);
  return Status::Ok();
}

std::string Keyring::primary_key_id() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return keys_.empty() ? std::string() : keys_.back().first;
}

std::vector<std::string> Keyring::key_ids() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, key] : keys_) ids.push_back(id);
  return ids;
}

namespace {

struct CipherContextDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextDeleter>;

int AsInt(size_t n) { return static_cast<int>(n); }
const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* Bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// nonce || ciphertext || tag
Result<std::string> GcmSeal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  const std::string nonce = SecureRandomBytes(kNonceBytes);
  CipherContext ctx(EVP_CIPHER_CTX_new());
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  std::memcpy(out.data(), nonce.data(), kNonceBytes);
  int len = 0;
  unsigned char* body = Bytes(out) + kNonceBytes;
  bool ok = ctx != nullptr &&
            EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key), Bytes(nonce)) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), AsInt(aad.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), body, &len, Bytes(plaintext), AsInt(plaintext.size())) == 1;
  int final_len = 0;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), body + len, &final_len) == 1 &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, AsInt(kTagBytes),
                           body + plaintext.size()) == 1;
  if (!ok) return InternalError("AES-256-GCM encryption failed in OpenSSL");
  return out;
}

Status TamperedError() {
  return DataLossError(
      "a stored secret failed its integrity check: it was altered, or copied from another row; "
      "store the secret again");
}

Result<SecretString> GcmOpen(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (sealed.size() < kNonceBytes + kTagBytes) return TamperedError();
  const std::string_view nonce = sealed.substr(0, kNonceBytes);
  const std::string_view body = sealed.substr(kNonceBytes, sealed.size() - kNonceBytes - kTagBytes);
  std::string tag(sealed.substr(sealed.size() - kTagBytes));
  CipherContext ctx(EVP_CIPHER_CTX_new());
  std::string plain(body.size(), '\0');
  int len = 0;
  int final_len = 0;
  bool ok = ctx != nullptr &&
            EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key), Bytes(nonce)) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad), AsInt(aad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), Bytes(plain), &len, Bytes(body), AsInt(body.size())) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, AsInt(kTagBytes), tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), Bytes(plain) + len, &final_len) == 1;
  if (!ok) {
    WipeString(plain);
    return TamperedError();
  }
  return SecretString(std::move(plain));
}

}  // namespace

Result<std::string> Keyring::Seal(std::string_view plaintext, std::string_view aad) const {
  ReloadIfFileChanged();
  std::string id;
  Result<std::string> sealed = InternalError("no master key");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (keys_.empty()) return FailedPreconditionError("the keyring holds no master key");
    id = keys_.back().first;
    sealed = GcmSeal(keys_.back().second, plaintext, aad);
  }
  if (!sealed.ok()) return sealed.status();
  return std::string(kSealedPrefix) + id + ":" + Base64Encode(*sealed);
}

std::string Keyring::KeyIdOf(std::string_view sealed) {
  if (sealed.substr(0, kSealedPrefix.size()) != kSealedPrefix) return "";
  std::string_view rest = sealed.substr(kSealedPrefix.size());
  if (rest.size() <= kKeyIdChars || rest[kKeyIdChars] != ':') return "";
  for (char c : rest.substr(0, kKeyIdChars)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  }
  return std::string(rest.substr(0, kKeyIdChars));
}

Result<SecretString> Keyring::Open(std::string_view sealed, std::string_view aad) const {
  const std::string id = KeyIdOf(sealed);
  if (id.empty()) {
    return DataLossError("a stored secret is not in the sealed format (\"q1:<key id>:...\"); "
                         "store the secret again");
  }
  auto decoded = Base64Decode(sealed.substr(kSealedPrefix.size() + kKeyIdChars + 1));
  if (!decoded.ok()) return TamperedError();
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [key_id, key] : keys_) {
        if (key_id == id) return GcmOpen(key, *decoded, aad);
      }
    }
    // Another process may have rotated the key file since we read it.
    if (attempt == 0) QUARRY_RETURN_IF_ERROR(Reload());
  }
  return FailedPreconditionError(
      "a stored secret was sealed with master key " + id +
      ", which this server does not hold: restore master.keys from a backup that has it, or add "
      "the old key to QUARRY_OLD_MASTER_KEYS when using QUARRY_MASTER_KEY");
}

// ---- SecretStore ----

Result<std::string> SecretStore::Put(Tx& tx, std::string_view owner, std::string_view purpose,
                                     const SecretString& plaintext) const {
  std::string id = NewId("sec");
  QUARRY_ASSIGN_OR_RETURN(std::string sealed, keyring_->Seal(plaintext.reveal(), id));
  const std::string now = internal::NowIso8601Millis();
  QUARRY_RETURN_IF_ERROR(tx.Exec(kInsertSecret, {id, std::string(owner), std::string(purpose),
                                                 Keyring::KeyIdOf(sealed), sealed, now}));
  return id;
}

Status SecretStore::Replace(Tx& tx, std::string_view secret_id,
                            const SecretString& plaintext) const {
  QUARRY_ASSIGN_OR_RETURN(std::string sealed, keyring_->Seal(plaintext.reveal(), secret_id));
  QUARRY_ASSIGN_OR_RETURN(
      int64_t changed,
      tx.Exec(kUpdateSecret, {std::string(secret_id), Keyring::KeyIdOf(sealed), sealed,
                              internal::NowIso8601Millis()}));
  if (changed == 0) return NotFoundError("secret " + std::string(secret_id) + " not found");
  return Status::Ok();
}

Result<SecretString> SecretStore::Get(Tx& tx, std::string_view secret_id) const {
  QUARRY_ASSIGN_OR_RETURN(
      Row row, tx.QueryOne(kSelectSecret, {std::string(secret_id)},
                           "secret " + std::string(secret_id)));
  auto opened = keyring_->Open(row.Text(0), secret_id);
  if (!opened.ok()) return opened.status().WithContext("secret " + std::string(secret_id));
  return opened;
}

Status SecretStore::Delete(Tx& tx, std::string_view secret_id) const {
  return tx.Exec(kDeleteSecret, {std::string(secret_id)}).status();
}

Status SecretStore::DeleteOwned(Tx& tx, std::string_view owner) const {
  return tx.Exec(kDeleteOwned, {std::string(owner)}).status();
}

Result<SecretStore::RewrapReport> SecretStore::RewrapAll(Database& db, int batch_size) const {
  if (batch_size < 1) return InvalidArgumentError("RewrapAll: batch_size must be at least 1");
  RewrapReport report;
  QUARRY_RETURN_IF_ERROR(db.Read([&](Tx& tx) -> Status {
    QUARRY_ASSIGN_OR_RETURN(
        Row row, tx.QueryOne(kCountCurrent, {keyring_->primary_key_id()}, "count"));
    report.already_current = row.Int(0);
    return Status::Ok();
  }));
  for (;;) {
    // Read each round: if the key is rotated again meanwhile, rows already
    // under the newer key must not count as stale (or this would not end).
    const std::string primary = keyring_->primary_key_id();
    int64_t seen = 0;
    int64_t rewrapped = 0;
    QUARRY_RETURN_IF_ERROR(db.Write([&](Tx& tx) -> Status {
      seen = 0;
      rewrapped = 0;
      QUARRY_ASSIGN_OR_RETURN(Rows rows, tx.Query(kSelectStale, {primary, int64_t{batch_size}}));
      for (const Row& row : rows.rows) {
        ++seen;
        const std::string id = row.Text(0);
        const std::string old_sealed = row.Text(1);
        auto plain = keyring_->Open(old_sealed, id);
        if (!plain.ok()) return plain.status().WithContext("re-encrypting secret " + id);
        QUARRY_ASSIGN_OR_RETURN(std::string sealed, keyring_->Seal(plain->reveal(), id));
        QUARRY_ASSIGN_OR_RETURN(
            int64_t changed,
            tx.Exec(kRewrapSecret, {id, Keyring::KeyIdOf(sealed), sealed,
                                    internal::NowIso8601Millis(), old_sealed}));
        rewrapped += changed;
      }
      return Status::Ok();
    }));
    report.rewrapped += rewrapped;
    if (seen < batch_size) break;
  }
  return report;
}

}  // namespace quarry::store
