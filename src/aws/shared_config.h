#pragma once
// The AWS shared configuration files (`~/.aws/config` and
// `~/.aws/credentials`) and the process environment they are found through.
//
// Spec: https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html and
// botocore's configloader (the oracle our tests compare against).
//
// File format, as read here:
//   - `[section]` headers; text after `]` may only be a comment.
//   - `key = value` properties; keys are case-insensitive (stored lower-case),
//     values are trimmed. Lines whose first non-blank character is `#` or `;`
//     are comments, and so is a `#` or `;` that follows whitespace inside a
//     value (`region = us-east-1  # prod`), as in the Java v2, Go v2 and Rust
//     SDKs. (botocore keeps such a tail as part of the value; we do not.)
//   - An indented line after a property continues it: when the property's own
//     value is empty the indented lines are sub-properties (`s3 =\n  k = v`),
//     stored as "s3.k"; otherwise an indented line without `=` is appended
//     to the value (after a newline) and an indented `k = v` is a property of
//     its own (people indent whole profiles).
//   - A section or key that appears twice: the later value wins.
//   - Anything else is an error naming the file and the line number.
//
// Profile sections:
//   - config file: `[default]` and `[profile NAME]` (also `[profile default]`;
//     quotes around NAME are removed). `[NAME]` is NOT a profile there (it is
//     another kind of section, e.g. `[sso-session x]`).
//   - credentials file: `[NAME]`, literally (so `[profile x]` there is a
//     profile called "profile x", as in botocore).
//   When a profile is in both files, the credentials file's values win.
//
// Thread safety: SharedConfig is immutable after Load and may be shared.
// Environment implementations must be safe to call from any thread.

#include <cstddef>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quarry::aws {

// Read-only view of environment variables, injected so that tests never see
// the real environment.
class Environment {
 public:
  virtual ~Environment() = default;
  // The variable's value, or nullopt when it is not set.
  virtual std::optional<std::string> Get(std::string_view name) const = 0;

  // The value when set and non-empty (an empty variable counts as unset, as
  // in botocore); otherwise nullopt.
  std::optional<std::string> GetNonEmpty(std::string_view name) const;
};

// The real process environment (getenv).
class ProcessEnvironment final : public Environment {
 public:
  static const ProcessEnvironment& Get();
  std::optional<std::string> Get(std::string_view name) const override;
};

// A fixed set of variables, for tests and for callers that build their own.
class MapEnvironment final : public Environment {
 public:
  MapEnvironment() = default;
  MapEnvironment(std::initializer_list<std::pair<const std::string, std::string>> values)
      : values_(values.begin(), values.end()) {}
  void Set(std::string name, std::string value) { values_[std::move(name)] = std::move(value); }
  std::optional<std::string> Get(std::string_view name) const override;

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

// The largest shared file we read; a bigger one is reported, not parsed.
inline constexpr size_t kMaxSharedFileBytes = 1 << 20;

// One `key = value` with where it was written.
struct IniValue {
  std::string value;
  int line = 0;
};

struct IniSection {
  std::string name;                        // trimmed text between the brackets
  int line = 0;                            // line of the (first) header
  std::map<std::string, IniValue> values;  // keys lower-case
};

struct IniFile {
  std::string path;                  // for messages
  std::vector<IniSection> sections;  // in order of first appearance
  const IniSection* Find(std::string_view name) const;
};

// Parses INI text. `path` is only used in error messages ("<path>:<line>: ...").
// Errors: InvalidArgument for a malformed line.
Result<IniFile> ParseIni(std::string_view text, std::string_view path);

// Reads and parses one file. Errors: NotFound when the file does not exist;
// PermissionDenied when it cannot be read; InvalidArgument when it is larger
// than kMaxSharedFileBytes or malformed.
Result<IniFile> ReadIniFile(const std::string& path);

// Where the two files are. Empty when it could not be determined (no HOME and
// no override).
struct SharedFilePaths {
  std::string config_file;
  std::string credentials_file;
};

// AWS_CONFIG_FILE (default $HOME/.aws/config) and AWS_SHARED_CREDENTIALS_FILE
// (default $HOME/.aws/credentials); a leading "~/" expands to $HOME.
SharedFilePaths ResolveSharedFilePaths(const Environment& env);

enum class SharedFileKind { kConfig, kCredentials };

// A value looked up in a profile, with its provenance for messages.
struct ProfileValue {
  std::string value;
  std::string file;
  int line = 0;
  // "/home/u/.aws/config:12".
  std::string Where() const { return file + ":" + std::to_string(line); }
};

// Both shared files, parsed.
class SharedConfig {
 public:
  // Reads both files; a file that does not exist is fine (it is remembered
  // as missing). Errors: a file that exists but cannot be read, is too large
  // or is malformed.
  static Result<SharedConfig> Load(const SharedFilePaths& paths);
  // From text, for tests and callers that keep the files elsewhere. A nullopt
  // text means that file does not exist.
  static Result<SharedConfig> FromText(const SharedFilePaths& paths,
                                       const std::optional<std::string>& config_text,
                                       const std::optional<std::string>& credentials_text);

  const SharedFilePaths& paths() const { return paths_; }
  bool config_file_exists() const { return config_.has_value(); }
  bool credentials_file_exists() const { return credentials_.has_value(); }

  // True when either file defines the profile.
  bool HasProfile(std::string_view profile) const;
  // The profile's section in one file, or nullptr.
  const IniSection* Section(SharedFileKind kind, std::string_view profile) const;
  // The value of `key` (lower-case) in the profile: the credentials file's
  // value when it has one, else the config file's.
  std::optional<ProfileValue> Get(std::string_view profile, std::string_view key) const;
  // The value from one file only.
  std::optional<ProfileValue> GetFrom(SharedFileKind kind, std::string_view profile,
                                      std::string_view key) const;
  // Every profile name in either file, sorted.
  std::vector<std::string> ProfileNames() const;

  // "config file /h/.aws/config (missing), credentials file /h/.aws/credentials".
  std::string DescribeFiles() const;
  // A hint when `profile` is probably written under the wrong section name
  // for its file ("[x]" in the config file, "[profile x]" in the credentials
  // file); empty when there is none.
  std::string MisplacedSectionHint(std::string_view profile) const;

 private:
  SharedFilePaths paths_;
  std::optional<IniFile> config_;
  std::optional<IniFile> credentials_;
  // Profile name -> index into that file's sections (indices, not pointers,
  // so that copies stay valid).
  std::map<std::string, size_t, std::less<>> config_profiles_;
  std::map<std::string, size_t, std::less<>> credentials_profiles_;

  void Index();
};

}  // namespace quarry::aws
