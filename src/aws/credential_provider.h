#pragma once
// Where AWS credentials come from: an ordered provider chain like the AWS
// SDKs', credential_process, AssumeRole profiles, region resolution, and a
// caching wrapper that refreshes temporary credentials before they expire.
//
// Spec: https://docs.aws.amazon.com/sdkref/latest/guide/standardized-credentials.html,
// https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html,
// https://docs.aws.amazon.com/sdkref/latest/guide/feature-assume-role-credentials.html,
// with botocore's credentials.py as the reference behaviour.
//
// Chain order (CredentialChain; first source that has credentials wins):
//   1. explicit keys given in code (CredentialChainOptions::explicit_credentials);
//   2. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, session token
//      from AWS_SESSION_TOKEN (else the legacy AWS_SECURITY_TOKEN, which
//      botocore also reads), expiry from AWS_CREDENTIAL_EXPIRATION. The Java
//      v1 names AWS_ACCESS_KEY / AWS_SECRET_KEY are NOT read (botocore does not
//      read them either); when they are set the final error says so;
//   3. the profile (options.profile, else AWS_PROFILE, else "default") in the
//      shared files, in botocore's order within a profile: role_arn
//      (AssumeRole, through a RoleAssumer), then aws_access_key_id /
//      aws_secret_access_key / aws_session_token in the credentials file, then
//      credential_process, then keys in the config file.
//   Web identity, IAM Identity Center (sso_*), container and EC2 instance
//   credentials are not fetched by this build: a profile that needs them is an
//   error saying so; the others are listed as skipped.
// When nothing is found the error lists every source, why it was skipped,
// and how to fix it. A profile named explicitly that does not exist is an
// error naming it and the files read.
//
// Nothing here puts a secret into a message or a log: errors name variables,
// files, line numbers and profiles, never values; process stdout (which holds
// secrets) is never echoed; only its stderr is.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credential_types.h"
#include "aws/shared_config.h"
#include "common/clock.h"
#include "common/status.h"

namespace quarry::aws {

// Anything that can produce credentials.
// Thread safety: implementations must allow concurrent GetCredentials calls.
class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // Errors: the source's own (see each implementation).
  virtual Result<Credentials> GetCredentials() = 0;

  // The credentials GetCredentials() would return right now, when it could do
  // so without I/O (STS, a credential process, files) and without waiting for
  // another caller's refresh; nullopt when it might block or would fail. Lets
  // callers on threads that must never block (an event loop) sign at once and
  // hand the slow case to a thread that may block. Default: nullopt.
  virtual std::optional<Credentials> CredentialsWithoutWaiting() { return std::nullopt; }
};

// Returns the same credentials every time (keys typed into a provider form).
// Errors: FailedPrecondition when the key id or the secret is empty.
class StaticCredentialProvider final : public CredentialProvider {
 public:
  explicit StaticCredentialProvider(Credentials credentials)
      : credentials_(std::move(credentials)) {}
  Result<Credentials> GetCredentials() override;
  std::optional<Credentials> CredentialsWithoutWaiting() override;

 private:
  Credentials credentials_;
};

// ---------------------------------------------------------------------------
// credential_process
// ---------------------------------------------------------------------------

struct ProcessOptions {
  // Real (monotonic) time the command may take before it is killed, together
  // with its process group.
  std::chrono::milliseconds timeout{30'000};
  // stdout larger than this is an error (the JSON is a few KiB at most).
  size_t max_stdout_bytes = 64 * 1024;
  // Only this much stderr is kept for error messages; the rest is drained.
  size_t max_stderr_bytes = 4 * 1024;
};

// Runs `command` through `/bin/sh -c` (as the Go, Java v2 and Rust SDKs do;
// botocore splits it shell-style instead), with stdin from /dev/null, the
// process environment, and its own process group, and parses what it prints.
// `context` names the caller in messages ("profile 'dev'").
// Errors: DeadlineExceeded on timeout; Unavailable for a non-zero exit or a
// signal (with the first stderr line); InvalidArgument for output that is too
// large or not valid (see ParseCredentialProcessOutput); Internal when the
// shell cannot be started.
Result<Credentials> RunCredentialProcess(const std::string& command, const ProcessOptions& options,
                                         std::string_view context);

// Parses {"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?,
// "Expiration"?}. Expiration is ISO 8601 ("...Z" or with a "+HH:MM" offset);
// without it the credentials never expire. Errors: InvalidArgument naming the
// problem (never the output itself).
Result<Credentials> ParseCredentialProcessOutput(std::string_view output, std::string_view context);

// ---------------------------------------------------------------------------
// AssumeRole
// ---------------------------------------------------------------------------

// A profile's assume-role settings, as written. Not secret.
struct AssumeRoleConfig {
  std::string profile;
  std::string role_arn;
  std::string source_profile;     // exactly one of source_profile and
  std::string credential_source;  // credential_source is set
  std::string external_id;
  std::string role_session_name;                 // empty: the chain makes one up
  std::optional<std::chrono::seconds> duration;  // 900..43200 s
  std::string mfa_serial;
  std::string where;  // "file:line" of role_arn
};

// Reads the assume-role keys of `profile`. Errors: NotFound when the profile
// has no role_arn; InvalidArgument (with file:line) for both or neither of
// source_profile / credential_source, a role_arn that is not an IAM role ARN,
// or a duration_seconds that is not a whole number in 900..43200.
Result<AssumeRoleConfig> ParseAssumeRoleConfig(const SharedConfig& config,
                                               std::string_view profile);

// One sts:AssumeRole call to make.
struct AssumeRoleRequest {
  std::string role_arn;
  std::string role_session_name;
  std::string external_id;                       // empty: none
  std::optional<std::chrono::seconds> duration;  // nullopt: STS default (1 h)
  std::string mfa_serial;  // empty: none; otherwise the assumer must obtain a token code
  std::string profile;     // for messages
};

// Makes the STS AssumeRole call. Supplied by the Bedrock client (this module
// has no network). Thread safety: must allow concurrent calls.
class RoleAssumer {
 public:
  virtual ~RoleAssumer() = default;
  // Returns the role's temporary credentials (with an expiration), signed
  // with `source`. Errors: as the STS call reports them.
  virtual Result<Credentials> AssumeRole(const AssumeRoleRequest& request,
                                         const Credentials& source) = 0;
};

// ---------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------

struct CredentialChainOptions {
  // Keys configured in code (a provider's stored access key); checked first.
  std::optional<Credentials> explicit_credentials;
  // Overrides AWS_PROFILE.
  std::optional<std::string> profile;
  // Not owned; must outlive the chain. nullptr: the process environment.
  const Environment* environment = nullptr;
  // Overrides AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE / $HOME.
  std::optional<SharedFilePaths> shared_files;
  ProcessOptions process;
  // Not owned; must outlive the chain. nullptr: assume-role profiles fail
  // with a message saying so.
  RoleAssumer* role_assumer = nullptr;
  // Not owned. nullptr: SystemClock. Used for default role session names.
  const Clock* clock = nullptr;
};

// Resolves credentials afresh on every call (re-reading files, re-running
// credential_process): wrap it in a CachingCredentialProvider.
// Errors: FailedPrecondition listing every source tried when none has
// credentials; NotFound for an explicitly named profile that does not exist;
// the source's own error when a configured source fails (a partial key pair,
// a failing credential_process, a malformed file with file:line, ...).
class CredentialChain final : public CredentialProvider {
 public:
  explicit CredentialChain(CredentialChainOptions options);
  Result<Credentials> GetCredentials() override;

 private:
  CredentialChainOptions options_;
};

// The profile the chain uses: options.profile, else AWS_PROFILE, else "default".
std::string ResolveProfileName(const CredentialChainOptions& options);

struct ResolvedRegion {
  std::string region;
  std::string source;  // "AWS_REGION", "AWS_DEFAULT_REGION", "profile dev (/h/.aws/config:3)"
};

// AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region`.
// Errors: FailedPrecondition saying how to set one; the shared files' errors.
Result<ResolvedRegion> ResolveRegion(const CredentialChainOptions& options);

struct ResolvedCaBundle {
  std::string path;    // "" when none is configured: the system's CA store
  std::string source;  // "AWS_CA_BUNDLE", "profile dev (/h/.aws/config:4)"; "" with no path
};

// The PEM file of CA certificates to trust for AWS endpoints, as the AWS CLI
// and SDKs take it: AWS_CA_BUNDLE, then the profile's `ca_bundle`. Not
// checked here (the HTTP client refuses an unreadable file).
// Errors: the shared files' errors; NotFound for a named profile that does
// not exist.
Result<ResolvedCaBundle> ResolveCaBundle(const CredentialChainOptions& options);

// ---------------------------------------------------------------------------
// Caching and refresh
// ---------------------------------------------------------------------------

struct RefreshOptions {
  // Credentials with an expiration are refreshed once they are this close to
  // it. Five minutes: the Java v2 SDK's prefetch time; long enough for a slow
  // STS call or credential_process, short enough that 15-minute credentials
  // are used for two thirds of their life.
  std::chrono::seconds refresh_window{5 * 60};
  // While the old credentials are still valid, a failed refresh (or one that
  // returned credentials already inside the window) is not retried sooner
  // than this, so a broken source is not hammered on every request.
  std::chrono::seconds retry_interval{30};
};

// Caches another provider's credentials and refreshes them before they
// expire. Credentials without an expiration are kept forever.
//
// - Refresh when now >= expiration - refresh_window.
// - Only one caller refreshes at a time. While it does, callers that have
//   still-valid credentials get them at once; callers without wait for the
//   refresh and share its result (success or error).
// - A refresh that fails while the cached credentials are still valid (now <
//   expiration): the cached ones are returned, the error is logged as a
//   warning and kept in LastRefreshError().
// - Expired (or never fetched) and the refresh fails: that error, with context.
//
// Thread safety: thread-safe. The inner provider and the clock are not owned
// beyond the shared_ptr; the clock must outlive this object.
class CachingCredentialProvider final : public CredentialProvider {
 public:
  CachingCredentialProvider(std::shared_ptr<CredentialProvider> inner, const Clock& clock,
                            RefreshOptions options = {});
  Result<Credentials> GetCredentials() override;
  // The cached credentials unless a refresh is due (GetCredentials would then
  // call the inner provider) or they have expired.
  std::optional<Credentials> CredentialsWithoutWaiting() override;

  // OK, or the error of the most recent refresh if it failed.
  Status LastRefreshError() const;
  // Callers blocked waiting for a refresh; for tests.
  size_t WaitingCallersForTest() const;

 private:
  std::shared_ptr<CredentialProvider> inner_;
  const Clock& clock_;
  RefreshOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable refreshed_;
  std::optional<Credentials> cached_;
  bool refreshing_ = false;
  uint64_t generation_ = 0;  // completed refreshes
  Status last_error_;
  MonotonicTime next_attempt_{};
  size_t waiting_ = 0;
};

// CachingCredentialProvider over a CredentialChain: what callers normally use.
std::shared_ptr<CredentialProvider> MakeDefaultCredentialProvider(CredentialChainOptions options,
                                                                  RefreshOptions refresh = {});

// Debug form of an AssumeRoleConfig (nothing in it is secret).
std::ostream& operator<<(std::ostream& out, const AssumeRoleConfig& config);

}  // namespace quarry::aws
