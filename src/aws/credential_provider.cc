#include "aws/credential_provider.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/encoding.h"

extern char** environ;

namespace quarry::aws {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string FixHint(const SharedConfig& config) {
  std::string credentials_file = config.paths().credentials_file.empty()
                                     ? "~/.aws/credentials"
                                     : config.paths().credentials_file;
  return "To fix, do one of: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus "
         "AWS_SESSION_TOKEN for "
         "temporary credentials); or create " +
         credentials_file +
         " with a [default] section holding aws_access_key_id and aws_secret_access_key (`aws "
         "configure` "
         "writes it); or set AWS_PROFILE to a profile that has "
         "aws_access_key_id/aws_secret_access_key, "
         "credential_process or role_arn; or give the provider an access key pair.";
}

std::string Quote(std::string_view text) { return "'" + std::string(text) + "'"; }

// ISO 8601 with "Z" or a numeric offset ("+00:00", which `aws configure
// export-credentials` prints).
bool ParseExpiration(std::string_view text, WallTime* out) {
  if (ParseIso8601Utc(text, out)) return true;
  if (text.size() < 25) return false;
  std::string_view offset = text.substr(text.size() - 6);
  if ((offset[0] != '+' && offset[0] != '-') || offset[3] != ':') return false;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!digit(offset[1]) || !digit(offset[2]) || !digit(offset[4]) || !digit(offset[5]))
    return false;
  int minutes = ((offset[1] - '0') * 10 + (offset[2] - '0')) * 60 + (offset[4] - '0') * 10 +
                (offset[5] - '0');
  WallTime base;
  if (!ParseIso8601Utc(std::string(text.substr(0, text.size() - 6)) + "Z", &base)) return false;
  // Local time = UTC + offset, so UTC = local - offset.
  *out = offset[0] == '+' ? base - std::chrono::minutes(minutes)
                          : base + std::chrono::minutes(minutes);
  return true;
}

std::string FirstLine(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = TrimAsciiWhitespace(text.substr(pos, end - pos));
    if (!line.empty()) {
      constexpr size_t kMax = 300;
      return line.size() > kMax ? std::string(line.substr(0, kMax)) + "..." : std::string(line);
    }
    pos = end + 1;
  }
  return "";
}

// --- credential_process -----------------------------------------------------

struct ProcessResult {
  int exit_code = 0;
  int signal = 0;
  std::string stdout_text;
  std::string stderr_text;
};

void KillGroupAndReap(pid_t pid) {
  ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

Result<ProcessResult> RunShell(const std::string& command, const ProcessOptions& options,
                               std::string_view context) {
  int out_pipe[2];
  int err_pipe[2];
  // O_CLOEXEC so that processes other threads spawn never inherit our pipes
  // (which would keep them open and stall EOF).
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return InternalError("cannot create a pipe for credential_process: " +
                         std::string(std::strerror(errno)));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int error = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return InternalError("cannot create a pipe for credential_process: " +
                         std::string(std::strerror(error)));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  // Own process group, so a timeout kills the shell and everything it started;
  // default signal handling, because a server may ignore SIGPIPE.
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t default_signals;
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setsigmask(&attributes, &empty_mask);
  posix_spawnattr_setsigdefault(&attributes, &default_signals);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::string shell = "/bin/sh";
  std::string dash_c = "-c";
  std::string command_copy = command;
  char* argv[] = {shell.data(), dash_c.data(), command_copy.data(), nullptr};
  pid_t pid = 0;
  int spawn_error = ::posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (spawn_error != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return InternalError("cannot start /bin/sh for the credential_process of " +
                         std::string(context) + ": " + std::strerror(spawn_error));
  }

  ProcessResult result;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  Status failure;
  char buffer[4096];
  while (open_fds > 0) {
    auto remaining = duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      failure = DeadlineExceededError(
          "the credential_process of " + std::string(context) + " did not finish within " +
          std::to_string(options.timeout.count()) +
          " ms and was killed; make the command finish faster (does it wait for input or a login "
          "prompt?) or fix the command");
      break;
    }
    int ready = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(remaining.count(), 1000)));
    if (ready < 0) {
      if (errno == EINTR) continue;
      failure = InternalError("poll failed while reading credential_process output: " +
                              std::string(std::strerror(errno)));
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      if (i == 0) {
        result.stdout_text.append(buffer, static_cast<size_t>(n));
        if (result.stdout_text.size() > options.max_stdout_bytes) {
          failure = InvalidArgumentError(
              "the credential_process of " + std::string(context) + " printed more than " +
              std::to_string(options.max_stdout_bytes) +
              " bytes on stdout; it must print only the credentials JSON");
        }
      } else if (result.stderr_text.size() < options.max_stderr_bytes) {
        size_t keep =
            std::min(static_cast<size_t>(n), options.max_stderr_bytes - result.stderr_text.size());
        result.stderr_text.append(buffer, keep);
      }
    }
    if (!failure.ok()) break;
  }
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  if (!failure.ok()) {
    KillGroupAndReap(pid);
    return failure;
  }

  // Both pipes are closed; the shell is normally gone too, but it may have
  // closed them and kept running.
  int status = 0;
  while (true) {
    pid_t waited = ::waitpid(pid, &status, WNOHANG);
    if (waited == pid) break;
    if (waited < 0 && errno != EINTR) {
      return InternalError("waitpid failed for credential_process: " +
                           std::string(std::strerror(errno)));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      KillGroupAndReap(pid);
      return DeadlineExceededError("the credential_process of " + std::string(context) +
                                   " did not exit within " +
                                   std::to_string(options.timeout.count()) + " ms and was killed");
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

// --- environment --------------------------------------------------------------

// nullopt with `skipped` set when the environment has no access key id.
Result<std::optional<Credentials>> FromEnvironment(const Environment& env, std::string* skipped) {
  std::optional<std::string> key_id = env.GetNonEmpty("AWS_ACCESS_KEY_ID");
  std::optional<std::string> secret = env.GetNonEmpty("AWS_SECRET_ACCESS_KEY");
  if (!key_id.has_value()) {
    *skipped = secret.has_value()
                   ? "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not, so it was ignored"
                   : "AWS_ACCESS_KEY_ID is not set";
    return std::optional<Credentials>();
  }
  if (!secret.has_value()) {
    return FailedPreconditionError(
        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set both (and "
        "AWS_SESSION_TOKEN "
        "for temporary credentials), or unset AWS_ACCESS_KEY_ID to use a profile");
  }
  Credentials credentials;
  credentials.access_key_id = *key_id;
  credentials.secret_access_key = *secret;
  if (auto token = env.GetNonEmpty("AWS_SESSION_TOKEN")) {
    credentials.session_token = *token;
  } else if (auto legacy = env.GetNonEmpty("AWS_SECURITY_TOKEN")) {
    credentials.session_token = *legacy;
  }
  if (auto expiry = env.GetNonEmpty("AWS_CREDENTIAL_EXPIRATION")) {
    WallTime when;
    if (!ParseExpiration(*expiry, &when)) {
      return InvalidArgumentError(
          "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time such as "
          "2030-01-01T00:00:00Z; fix or unset it");
    }
    credentials.expiration = when;
  }
  credentials.source = "environment";
  return std::optional<Credentials>(std::move(credentials));
}

// --- profiles -------------------------------------------------------------------

// Static keys of a profile in one file; nullopt when that file has no key.
Result<std::optional<Credentials>> StaticKeysFrom(const SharedConfig& config, SharedFileKind kind,
                                                  std::string_view profile) {
  std::optional<ProfileValue> key_id = config.GetFrom(kind, profile, "aws_access_key_id");
  std::optional<ProfileValue> secret = config.GetFrom(kind, profile, "aws_secret_access_key");
  if (!key_id.has_value() && !secret.has_value()) return std::optional<Credentials>();
  const char* file_name = kind == SharedFileKind::kConfig ? "config file" : "credentials file";
  if (!key_id.has_value() || key_id->value.empty()) {
    std::string where = key_id.has_value() ? key_id->Where() : secret->Where();
    return FailedPreconditionError("profile " + Quote(profile) + " in the " + file_name + " (" +
                                   where +
                                   ") has aws_secret_access_key but no aws_access_key_id; add it");
  }
  if (!secret.has_value() || secret->value.empty()) {
    return FailedPreconditionError("profile " + Quote(profile) + " in the " + file_name + " (" +
                                   key_id->Where() +
                                   ") has aws_access_key_id but no aws_secret_access_key; add it");
  }
  Credentials credentials;
  credentials.access_key_id = key_id->value;
  credentials.secret_access_key = secret->value;
  if (auto token = config.GetFrom(kind, profile, "aws_session_token")) {
    credentials.session_token = token->value;
  } else if (auto legacy = config.GetFrom(kind, profile, "aws_security_token")) {
    credentials.session_token = legacy->value;
  }
  credentials.source = "profile " + std::string(profile) + " (" + file_name + ")";
  return std::optional<Credentials>(std::move(credentials));
}

// Either file, credentials file first.
Result<std::optional<Credentials>> StaticKeys(const SharedConfig& config,
                                              std::string_view profile) {
  QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> from_credentials,
                          StaticKeysFrom(config, SharedFileKind::kCredentials, profile));
  if (from_credentials.has_value()) return from_credentials;
  return StaticKeysFrom(config, SharedFileKind::kConfig, profile);
}

Result<Credentials> FromProcess(std::string_view profile, const ProfileValue& command,
                                const ProcessOptions& options) {
  std::string context = "profile " + Quote(profile) + " (" + command.Where() + ")";
  if (TrimAsciiWhitespace(command.value).empty()) {
    return InvalidArgumentError("credential_process is empty in " + context +
                                "; set it to a command or remove it");
  }
  QUARRY_ASSIGN_OR_RETURN(Credentials credentials,
                          RunCredentialProcess(command.value, options, context));
  credentials.source = "profile " + std::string(profile) + " (credential_process)";
  return credentials;
}

// Profiles that need a source this build does not implement.
Status UnsupportedSourceError(const SharedConfig& config, std::string_view profile) {
  if (auto token_file = config.Get(profile, "web_identity_token_file")) {
    return UnimplementedError(
        "profile " + Quote(profile) + " uses web identity (web_identity_token_file at " +
        token_file->Where() +
        "), which this build cannot fetch; use access keys, credential_process or role_arn with "
        "source_profile instead");
  }
  for (std::string_view key : {"sso_session", "sso_start_url"}) {
    if (auto value = config.Get(profile, key)) {
      return UnimplementedError(
          "profile " + Quote(profile) + " uses IAM Identity Center (" + std::string(key) + " at " +
          value->Where() + "), which this build cannot fetch; after `aws sso login --profile " +
          std::string(profile) + "`, use a profile with credential_process = aws configure " +
          "export-credentials --profile " + std::string(profile) + " --format process");
    }
  }
  return Status::Ok();
}

class ProfileResolver {
 public:
  ProfileResolver(const SharedConfig& config, const CredentialChainOptions& options,
                  const Environment& env)
      : config_(config), options_(options), env_(env) {}

  // The profile's credentials, or nullopt with `skipped` set when it has none.
  Result<std::optional<Credentials>> Resolve(const std::string& profile, std::string* skipped) {
    if (config_.Get(profile, "role_arn").has_value()) {
      QUARRY_ASSIGN_OR_RETURN(Credentials credentials, AssumeRoleChain(profile));
      return std::optional<Credentials>(std::move(credentials));
    }
    QUARRY_RETURN_IF_ERROR(UnsupportedSourceError(config_, profile));
    QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> from_credentials_file,
                            StaticKeysFrom(config_, SharedFileKind::kCredentials, profile));
    if (from_credentials_file.has_value()) return from_credentials_file;
    if (auto command = config_.Get(profile, "credential_process")) {
      QUARRY_ASSIGN_OR_RETURN(Credentials credentials,
                              FromProcess(profile, *command, options_.process));
      return std::optional<Credentials>(std::move(credentials));
    }
    QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> from_config_file,
                            StaticKeysFrom(config_, SharedFileKind::kConfig, profile));
    if (from_config_file.has_value()) return from_config_file;
    *skipped =
        "profile " + Quote(profile) +
        " exists but has no credentials (no aws_access_key_id, credential_process or role_arn)";
    return std::optional<Credentials>();
  }

 private:
  // Validates the whole role chain (existence, cycles) before any process runs
  // or any STS call is made, then assumes each role from the innermost out.
  Result<Credentials> AssumeRoleChain(const std::string& profile) {
    std::vector<AssumeRoleConfig> roles;  // outermost first
    std::vector<std::string> visited = {profile};
    std::string current = profile;
    enum class Base { kStatic, kProcess, kEnvironment } base = Base::kStatic;
    std::string base_profile;
    while (true) {
      QUARRY_ASSIGN_OR_RETURN(AssumeRoleConfig role, ParseAssumeRoleConfig(config_, current));
      roles.push_back(role);
      if (!role.credential_source.empty()) {
        if (role.credential_source == "Environment") {
          base = Base::kEnvironment;
          break;
        }
        if (role.credential_source == "Ec2InstanceMetadata" ||
            role.credential_source == "EcsContainer") {
          return UnimplementedError(
              "profile " + Quote(current) + " (" + role.where +
              ") sets credential_source = " + role.credential_source +
              ", which this build cannot fetch; use credential_source = Environment or "
              "source_profile = <a profile with access keys>");
        }
        return InvalidArgumentError(
            "profile " + Quote(current) + " (" + role.where +
            ") sets credential_source = " + role.credential_source +
            ", which is not valid; use Environment, Ec2InstanceMetadata or EcsContainer");
      }
      const std::string& source = role.source_profile;
      if (!config_.HasProfile(source)) {
        return InvalidArgumentError("source_profile " + Quote(source) + " of profile " +
                                    Quote(current) + " (" + role.where + ") does not exist in " +
                                    config_.DescribeFiles() + "; create it or fix the name");
      }
      if (source == current) {
        // A profile may source itself for its own static keys (botocore).
        QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> keys, StaticKeys(config_, source));
        if (!keys.has_value()) return CycleError(visited, source);
        base = Base::kStatic;
        base_profile = source;
        break;
      }
      if (std::find(visited.begin(), visited.end(), source) != visited.end()) {
        return CycleError(visited, source);
      }
      visited.push_back(source);
      // Static keys in a source profile take precedence over its role_arn.
      QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> keys, StaticKeys(config_, source));
      if (keys.has_value()) {
        base = Base::kStatic;
        base_profile = source;
        break;
      }
      if (config_.Get(source, "role_arn").has_value()) {
        current = source;
        continue;
      }
      QUARRY_RETURN_IF_ERROR(UnsupportedSourceError(config_, source));
      if (config_.Get(source, "credential_process").has_value()) {
        base = Base::kProcess;
        base_profile = source;
        break;
      }
      return InvalidArgumentError(
          "source_profile " + Quote(source) + " of profile " + Quote(current) +
          " has no credentials; give it aws_access_key_id/aws_secret_access_key, "
          "credential_process or its own role_arn");
    }

    if (options_.role_assumer == nullptr) {
      return FailedPreconditionError("profile " + Quote(profile) + " assumes role " +
                                     roles.front().role_arn + " (" + roles.front().where +
                                     "); this build has no STS client wired in here, so roles "
                                     "cannot be assumed at this point; use a "
                                     "profile with access keys or credential_process, or run the "
                                     "command that connects to Bedrock (it "
                                     "provides STS)");
    }

    Credentials credentials;
    switch (base) {
      case Base::kEnvironment: {
        std::string skipped;
        QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> from_env,
                                FromEnvironment(env_, &skipped));
        if (!from_env.has_value()) {
          return FailedPreconditionError("profile " + Quote(roles.back().profile) +
                                         " sets credential_source = Environment, but " + skipped +
                                         "; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        }
        credentials = std::move(*from_env);
        break;
      }
      case Base::kStatic: {
        QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> keys, StaticKeys(config_, base_profile));
        credentials = std::move(*keys);
        break;
      }
      case Base::kProcess: {
        QUARRY_ASSIGN_OR_RETURN(
            credentials, FromProcess(base_profile, *config_.Get(base_profile, "credential_process"),
                                     options_.process));
        break;
      }
    }

    const Clock& clock = options_.clock != nullptr ? *options_.clock : SystemClock::Get();
    for (auto it = roles.rbegin(); it != roles.rend(); ++it) {
      AssumeRoleRequest request;
      request.role_arn = it->role_arn;
      request.role_session_name = it->role_session_name;
      if (request.role_session_name.empty()) {
        // botocore uses "botocore-session-<unix time>"; same idea.
        auto unix_seconds = duration_cast<seconds>(clock.Now().time_since_epoch()).count();
        request.role_session_name = "quarry-session-" + std::to_string(unix_seconds);
      }
      request.external_id = it->external_id;
      request.duration = it->duration;
      request.mfa_serial = it->mfa_serial;
      request.profile = it->profile;
      Result<Credentials> assumed = options_.role_assumer->AssumeRole(request, credentials);
      if (!assumed.ok()) {
        return assumed.status().WithContext("assuming role " + it->role_arn + " for profile " +
                                            Quote(it->profile));
      }
      credentials = std::move(assumed).value();
      credentials.source = "profile " + it->profile + " (assume role " + it->role_arn + ")";
    }
    return credentials;
  }

  static Status CycleError(const std::vector<std::string>& visited, const std::string& again) {
    std::string path;
    for (const std::string& name : visited) path += name + " -> ";
    path += again;
    return InvalidArgumentError(
        "source_profile chain loops: " + path +
        "; one profile in the chain must have aws_access_key_id/aws_secret_access_key "
        "or credential_process instead of another role");
  }

  const SharedConfig& config_;
  const CredentialChainOptions& options_;
  const Environment& env_;
};

const Environment& EnvironmentOf(const CredentialChainOptions& options) {
  return options.environment != nullptr ? *options.environment : ProcessEnvironment::Get();
}

Result<SharedConfig> LoadSharedConfig(const CredentialChainOptions& options) {
  SharedFilePaths paths = options.shared_files.has_value()
                              ? *options.shared_files
                              : ResolveSharedFilePaths(EnvironmentOf(options));
  return SharedConfig::Load(paths);
}

bool ProfileWasNamed(const CredentialChainOptions& options) {
  return (options.profile.has_value() && !options.profile->empty()) ||
         EnvironmentOf(options).GetNonEmpty("AWS_PROFILE").has_value();
}

std::string ProfileNotFoundMessage(const SharedConfig& config, const std::string& profile,
                                   const CredentialChainOptions& options) {
  const bool configured = options.profile.has_value() && !options.profile->empty();
  std::string origin = configured ? "configured" : "from AWS_PROFILE";
  std::string message = "profile " + Quote(profile) + " (" + origin + ") does not exist; read " +
                        config.DescribeFiles();
  std::vector<std::string> names = config.ProfileNames();
  if (names.empty()) {
    message += "; no profiles are defined there";
  } else {
    message += "; profiles found: ";
    for (size_t i = 0; i < names.size(); ++i) message += (i > 0 ? ", " : "") + names[i];
  }
  std::string hint = config.MisplacedSectionHint(profile);
  if (!hint.empty()) message += "; note: " + hint;
  message += ". Add [" + profile + "] to the credentials file or [profile " + profile +
             "] to the config file, or choose an existing profile" +
             (configured ? std::string() : std::string(" (or unset AWS_PROFILE)"));
  return message;
}

// The shared files for a setting of `profile`: NotFound when the profile was
// named (option or AWS_PROFILE) but is in neither file.
Result<SharedConfig> LoadConfigOfProfile(const CredentialChainOptions& options, const std::string& profile) {
  QUARRY_ASSIGN_OR_RETURN(SharedConfig config, LoadSharedConfig(options));
  if (!config.HasProfile(profile) && ProfileWasNamed(options)) {
    return NotFoundError(ProfileNotFoundMessage(config, profile, options));
  }
  return config;
}

}  // namespace

// ---------------------------------------------------------------------------

Result<Credentials> StaticCredentialProvider::GetCredentials() {
  if (credentials_.access_key_id.empty() || credentials_.secret_access_key.empty()) {
    return FailedPreconditionError(
        std::string("the configured credentials have no ") +
        (credentials_.access_key_id.empty() ? "access key id" : "secret access key") +
        "; enter both the access key id and the secret access key");
  }
  Credentials out = credentials_;
  if (out.source.empty()) out.source = "explicit";
  return out;
}

std::optional<Credentials> StaticCredentialProvider::CredentialsWithoutWaiting() {
  Result<Credentials> credentials = GetCredentials();
  if (!credentials.ok()) return std::nullopt;  // the blocking path reports the error
  return std::move(credentials).value();
}

Result<Credentials> ParseCredentialProcessOutput(std::string_view output,
                                                 std::string_view context) {
  const std::string prefix = "the credential_process of " + std::string(context);
  constexpr std::string_view kShape =
      "; it must print {\"Version\": 1, \"AccessKeyId\": ..., \"SecretAccessKey\": ..., "
      "\"SessionToken\": "
      "..., \"Expiration\": \"2030-01-01T00:00:00Z\"} (the last two optional)";
  nlohmann::json json = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    // The output is never quoted: it may hold a secret.
    return InvalidArgumentError(prefix + " did not print a JSON object on stdout (" +
                                std::to_string(output.size()) + " bytes)" + std::string(kShape));
  }
  auto version = json.find("Version");
  if (version == json.end()) {
    return InvalidArgumentError(prefix + " printed JSON without \"Version\"" + std::string(kShape));
  }
  if (!version->is_number_integer() || version->get<int64_t>() != 1) {
    std::string shown =
        version->is_number() ? version->dump() : std::string("a ") + version->type_name();
    return InvalidArgumentError(prefix + " printed \"Version\": " + shown +
                                "; only Version 1 is supported" + std::string(kShape));
  }
  auto required = [&](const char* key) -> Result<std::string> {
    auto it = json.find(key);
    if (it == json.end() || !it->is_string() || it->get<std::string>().empty()) {
      return InvalidArgumentError(prefix + " printed JSON without a non-empty string \"" + key +
                                  "\"" + std::string(kShape));
    }
    return it->get<std::string>();
  };
  Credentials credentials;
  QUARRY_ASSIGN_OR_RETURN(credentials.access_key_id, required("AccessKeyId"));
  QUARRY_ASSIGN_OR_RETURN(credentials.secret_access_key, required("SecretAccessKey"));
  if (auto token = json.find("SessionToken"); token != json.end() && !token->is_null()) {
    if (!token->is_string()) {
      return InvalidArgumentError(prefix + " printed a \"SessionToken\" that is not a string" +
                                  std::string(kShape));
    }
    credentials.session_token = token->get<std::string>();
  }
  if (auto expiration = json.find("Expiration");
      expiration != json.end() && !expiration->is_null()) {
    WallTime when;
    if (!expiration->is_string() || !ParseExpiration(expiration->get<std::string>(), &when)) {
      return InvalidArgumentError(prefix +
                                  " printed an \"Expiration\" that is not an ISO 8601 time such as "
                                  "2030-01-01T00:00:00Z");
    }
    credentials.expiration = when;
  }
  credentials.source = "credential_process";
  return credentials;
}

Result<Credentials> RunCredentialProcess(const std::string& command, const ProcessOptions& options,
                                         std::string_view context) {
  QUARRY_ASSIGN_OR_RETURN(ProcessResult result, RunShell(command, options, context));
  if (result.signal != 0) {
    std::string message = "the credential_process of " + std::string(context) +
                          " was killed by signal " + std::to_string(result.signal);
    std::string line = FirstLine(result.stderr_text);
    if (!line.empty()) message += ": " + line;
    return UnavailableError(message + "; run the command by hand to see why");
  }
  if (result.exit_code != 0) {
    std::string message = "the credential_process of " + std::string(context) +
                          " exited with status " + std::to_string(result.exit_code);
    std::string line = FirstLine(result.stderr_text);
    message += line.empty() ? " and printed nothing on stderr" : ": " + line;
    return UnavailableError(message + "; run the command by hand to see why");
  }
  return ParseCredentialProcessOutput(result.stdout_text, context);
}

Result<AssumeRoleConfig> ParseAssumeRoleConfig(const SharedConfig& config,
                                               std::string_view profile) {
  std::optional<ProfileValue> role_arn = config.Get(profile, "role_arn");
  if (!role_arn.has_value()) {
    return NotFoundError("profile " + Quote(profile) + " has no role_arn");
  }
  AssumeRoleConfig role;
  role.profile = std::string(profile);
  role.role_arn = role_arn->value;
  role.where = role_arn->Where();
  // An IAM role ARN: arn:<partition>:iam::<account>:role/<path+name>.
  if (role.role_arn.rfind("arn:", 0) != 0 || role.role_arn.find(":iam::") == std::string::npos ||
      role.role_arn.find(":role/") == std::string::npos) {
    return InvalidArgumentError(
        role.where + ": role_arn of profile " + Quote(profile) +
        " is not an IAM role ARN; write it as arn:aws:iam::123456789012:role/RoleName");
  }
  auto get = [&](std::string_view key) {
    std::optional<ProfileValue> value = config.Get(profile, key);
    return value.has_value() ? value->value : std::string();
  };
  role.source_profile = get("source_profile");
  role.credential_source = get("credential_source");
  role.external_id = get("external_id");
  role.role_session_name = get("role_session_name");
  role.mfa_serial = get("mfa_serial");
  if (!role.source_profile.empty() && !role.credential_source.empty()) {
    return InvalidArgumentError(role.where + ": profile " + Quote(profile) +
                                " sets both source_profile and credential_source; keep only one");
  }
  if (role.source_profile.empty() && role.credential_source.empty()) {
    return InvalidArgumentError(
        role.where + ": profile " + Quote(profile) +
        " sets role_arn but neither source_profile nor credential_source; add "
        "source_profile = <a profile with access keys> or credential_source = Environment");
  }
  if (std::optional<ProfileValue> duration = config.Get(profile, "duration_seconds")) {
    const std::string& text = duration->value;
    bool digits =
        !text.empty() && text.size() <= 6 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    long value = digits ? std::stol(text) : 0;
    if (!digits || value < 900 || value > 43200) {
      return InvalidArgumentError(
          duration->Where() + ": duration_seconds of profile " + Quote(profile) +
          " must be a whole number of seconds from 900 to 43200 (15 minutes to 12 hours)");
    }
    role.duration = seconds(value);
  }
  return role;
}

std::ostream& operator<<(std::ostream& out, const AssumeRoleConfig& config) {
  out << "AssumeRoleConfig{profile=" << config.profile << ", role_arn=" << config.role_arn;
  if (!config.source_profile.empty()) out << ", source_profile=" << config.source_profile;
  if (!config.credential_source.empty()) out << ", credential_source=" << config.credential_source;
  if (!config.external_id.empty()) out << ", external_id=<set>";
  if (!config.role_session_name.empty()) out << ", role_session_name=" << config.role_session_name;
  if (config.duration.has_value()) out << ", duration_seconds=" << config.duration->count();
  if (!config.mfa_serial.empty()) out << ", mfa_serial=" << config.mfa_serial;
  return out << "}";
}

// ---------------------------------------------------------------------------

std::string ResolveProfileName(const CredentialChainOptions& options) {
  if (options.profile.has_value() && !options.profile->empty()) return *options.profile;
  if (auto profile = EnvironmentOf(options).GetNonEmpty("AWS_PROFILE")) return *profile;
  return "default";
}

CredentialChain::CredentialChain(CredentialChainOptions options) : options_(std::move(options)) {}

Result<Credentials> CredentialChain::GetCredentials() {
  const Environment& env = EnvironmentOf(options_);
  std::vector<std::string> tried;

  // 1. Explicit keys.
  if (options_.explicit_credentials.has_value()) {
    return StaticCredentialProvider(*options_.explicit_credentials).GetCredentials();
  }
  tried.push_back("explicit credentials: none were given");

  // 2. Environment.
  std::string skipped;
  QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> from_env, FromEnvironment(env, &skipped));
  if (from_env.has_value()) return std::move(*from_env);
  std::string env_line = "environment: " + skipped;
  if (env.GetNonEmpty("AWS_ACCESS_KEY").has_value() ||
      env.GetNonEmpty("AWS_SECRET_KEY").has_value()) {
    env_line +=
        " (AWS_ACCESS_KEY / AWS_SECRET_KEY are set, but those are old Java SDK names that are not "
        "read; "
        "rename them to AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)";
  }
  tried.push_back(env_line);
  if (env.GetNonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE").has_value()) {
    tried.push_back(
        "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is set, but this build cannot exchange web "
        "identity "
        "tokens; use access keys or a profile");
  }

  // 3. The profile in the shared files.
  const std::string profile = ResolveProfileName(options_);
  Result<SharedConfig> loaded = LoadSharedConfig(options_);
  if (!loaded.ok()) return loaded.status();
  const SharedConfig& config = loaded.value();
  if (!config.HasProfile(profile)) {
    if (ProfileWasNamed(options_))
      return NotFoundError(ProfileNotFoundMessage(config, profile, options_));
    std::string line =
        "shared files: no profile " + Quote(profile) + " in " + config.DescribeFiles();
    std::string hint = config.MisplacedSectionHint(profile);
    if (!hint.empty()) line += " (note: " + hint + ")";
    tried.push_back(line);
  } else {
    ProfileResolver resolver(config, options_, env);
    std::string profile_skipped;
    QUARRY_ASSIGN_OR_RETURN(std::optional<Credentials> from_profile,
                            resolver.Resolve(profile, &profile_skipped));
    if (from_profile.has_value()) return std::move(*from_profile);
    tried.push_back("shared files: " + profile_skipped + " (read " + config.DescribeFiles() + ")");
  }

  // 4. Sources that need the network, which this module does not have.
  std::string container = "container credentials: not supported by this build";
  if (env.GetNonEmpty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").has_value() ||
      env.GetNonEmpty("AWS_CONTAINER_CREDENTIALS_FULL_URI").has_value()) {
    container += " (AWS_CONTAINER_CREDENTIALS_*_URI is set; pass the task role's keys another way)";
  }
  tried.push_back(container);
  tried.push_back("EC2 instance metadata: not supported by this build");

  std::string message = "no AWS credentials found. Sources tried, in order:";
  for (size_t i = 0; i < tried.size(); ++i) {
    message += "\n  " + std::to_string(i + 1) + ". " + tried[i];
  }
  message += "\n" + FixHint(config);
  std::vector<std::string> names = config.ProfileNames();
  if (!names.empty()) {
    message += " Profiles found:";
    for (const std::string& name : names) message += " " + name;
    message += ".";
  }
  return FailedPreconditionError(message);
}

Result<ResolvedRegion> ResolveRegion(const CredentialChainOptions& options) {
  const Environment& env = EnvironmentOf(options);
  for (std::string_view variable : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    std::optional<std::string> region = env.GetNonEmpty(variable);
    if (region.has_value() && !TrimAsciiWhitespace(*region).empty()) {
      return ResolvedRegion{std::string(TrimAsciiWhitespace(*region)), std::string(variable)};
    }
  }
  const std::string profile = ResolveProfileName(options);
  QUARRY_ASSIGN_OR_RETURN(SharedConfig config, LoadConfigOfProfile(options, profile));
  if (auto region = config.Get(profile, "region"); region.has_value() && !region->value.empty()) {
    return ResolvedRegion{region->value, "profile " + profile + " (" + region->Where() + ")"};
  }
  return FailedPreconditionError(
      "no AWS region is configured: AWS_REGION and AWS_DEFAULT_REGION are not set and "
      "profile " +
      Quote(profile) + " has no region (read " + config.DescribeFiles() +
      "); set AWS_REGION=us-east-1 (for example) or add `region = us-east-1` to the "
      "profile in the config file");
}

Result<ResolvedCaBundle> ResolveCaBundle(const CredentialChainOptions& options) {
  if (std::optional<std::string> path = EnvironmentOf(options).GetNonEmpty("AWS_CA_BUNDLE"); path.has_value()) {
    return ResolvedCaBundle{*path, "AWS_CA_BUNDLE"};
  }
  const std::string profile = ResolveProfileName(options);
  QUARRY_ASSIGN_OR_RETURN(SharedConfig config, LoadConfigOfProfile(options, profile));
  if (auto bundle = config.Get(profile, "ca_bundle"); bundle.has_value() && !bundle->value.empty()) {
    return ResolvedCaBundle{bundle->value, "profile " + profile + " (" + bundle->Where() + ")"};
  }
  return ResolvedCaBundle{};
}

// ---------------------------------------------------------------------------

CachingCredentialProvider::CachingCredentialProvider(std::shared_ptr<CredentialProvider> inner,
                                                     const Clock& clock, RefreshOptions options)
    : inner_(std::move(inner)), clock_(clock), options_(options) {}

Result<Credentials> CachingCredentialProvider::GetCredentials() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    const WallTime now = clock_.Now();
    const bool valid =
        cached_.has_value() && (!cached_->expiration.has_value() || now < *cached_->expiration);
    const bool fresh = valid && (!cached_->expiration.has_value() ||
                                 now < *cached_->expiration - options_.refresh_window);
    if (fresh) return *cached_;
    if (valid && (refreshing_ || clock_.MonotonicNow() < next_attempt_)) {
      // Someone is refreshing, or the last attempt was too recent: the old
      // credentials still work.
      return *cached_;
    }
    if (refreshing_) {
      const uint64_t generation = generation_;
      ++waiting_;
      refreshed_.wait(lock, [&] { return generation_ != generation; });
      --waiting_;
      const WallTime after = clock_.Now();
      const bool usable =
          cached_.has_value() && (!cached_->expiration.has_value() || after < *cached_->expiration);
      if (usable) return *cached_;
      if (!last_error_.ok()) return last_error_;
      continue;
    }

    refreshing_ = true;
    lock.unlock();
    Result<Credentials> result = inner_->GetCredentials();
    lock.lock();
    refreshing_ = false;
    ++generation_;
    next_attempt_ = clock_.MonotonicNow() + options_.retry_interval;
    if (result.ok()) {
      cached_ = std::move(result).value();
      last_error_ = Status::Ok();
      refreshed_.notify_all();
      return *cached_;
    }
    const WallTime after = clock_.Now();
    const bool still_valid =
        cached_.has_value() && (!cached_->expiration.has_value() || after < *cached_->expiration);
    if (still_valid) {
      last_error_ = result.status();
      refreshed_.notify_all();
      // The status text never holds secrets (see the header), so it may be logged.
      spdlog::warn("refreshing AWS credentials from {} failed; using the current ones until {}: {}",
                   cached_->source, FormatIso8601Utc(*cached_->expiration), last_error_.ToString());
      return *cached_;
    }
    if (cached_.has_value()) {
      last_error_ = result.status().WithContext(
          "AWS credentials from " + cached_->source + " expired at " +
          FormatIso8601Utc(*cached_->expiration) + " and refreshing them failed");
    } else {
      last_error_ = result.status();
    }
    refreshed_.notify_all();
    return last_error_;
  }
}

std::optional<Credentials> CachingCredentialProvider::CredentialsWithoutWaiting() {
  std::lock_guard<std::mutex> lock(mutex_);
  const WallTime now = clock_.Now();
  const bool valid = cached_.has_value() && (!cached_->expiration.has_value() || now < *cached_->expiration);
  if (!valid) return std::nullopt;
  const bool fresh = !cached_->expiration.has_value() || now < *cached_->expiration - options_.refresh_window;
  // The same early returns as GetCredentials: fresh, or still valid while a
  // refresh runs or the last failed one is not due for another try.
  if (fresh || refreshing_ || clock_.MonotonicNow() < next_attempt_) return *cached_;
  return std::nullopt;
}

Status CachingCredentialProvider::LastRefreshError() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

size_t CachingCredentialProvider::WaitingCallersForTest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

std::shared_ptr<CredentialProvider> MakeDefaultCredentialProvider(CredentialChainOptions options,
                                                                  RefreshOptions refresh) {
  const Clock& clock = options.clock != nullptr ? *options.clock : SystemClock::Get();
  return std::make_shared<CachingCredentialProvider>(
      std::make_shared<CredentialChain>(std::move(options)), clock, refresh);
}

}  // namespace quarry::aws
