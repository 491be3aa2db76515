// `quarry bedrock`: calls Amazon Bedrock (or the emulator) from the command
// line, to check credentials, model access and agent aliases the way
// `aws sts get-caller-identity` checks credentials.
//
//   quarry bedrock whoami
//   quarry bedrock models [--all]
//   quarry bedrock invoke-model --model ID --prompt TEXT [--system S] [--max-tokens N]
//                               [--temperature T] [--stream [--json]] [--converse]
//   quarry bedrock invoke-agent --alias-arn ARN --prompt TEXT [--session-id ID] [--trace]
//                               [--end-session] [--stream [--json]] [--files-dir DIR]
//   quarry bedrock alias --alias-arn ARN
//
// Common options (before or after the operation): --region, --endpoint-url
// (one URL for every service, e.g. `quarry sim`), --profile, --bearer-token
// (models and invoke-model only; AWS_BEARER_TOKEN_BEDROCK is read there too),
// --max-attempts, --timeout. Credentials come from the standard chain
// (environment, shared files, credential_process, assume-role profiles via STS).
//
// Output contract: the result is one JSON document on stdout (or, with
// --stream, the text as it arrives). A failure prints nothing more on stdout
// and writes the error and its troubleshooting entry on stderr.
// Exit codes: 0 success; 1 the call failed (AWS error, connection, timeout,
// broken stream); 2 invalid options or local configuration, detected before
// any request is sent (region, ARN, session id, credentials, endpoint URL).
// CLI11's own syntax errors keep CLI11's codes (e.g. 106 for a missing option).

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "aws/arn.h"
#include "aws/bearer_token.h"
#include "aws/credential_provider.h"
#include "aws/region.h"
#include "aws/shared_config.h"
#include "bedrock/agent_json.h"
#include "bedrock/client.h"
#include "cli/commands.h"
#include "common/crypto.h"
#include "common/encoding.h"

namespace quarry::cli {
namespace {

using nlohmann::json;

constexpr int kExitCallFailed = 1;
constexpr int kExitInvalidInput = 2;

struct CommonOptions {
  std::string region;
  std::string endpoint_url;
  std::string profile;
  std::optional<std::string> bearer_token;
  int max_attempts = 0;   // 0: the client's default (standard retry mode: 3)
  double timeout_s = 0;   // 0: the client's default overall deadline
};

struct ModelOptions {
  std::string model;
  std::string prompt;
  std::string system;
  int max_tokens = 1024;
  std::optional<double> temperature;
  bool stream = false;
  bool converse = false;
  bool json_output = false;
};

struct AgentOptions {
  std::string alias_arn;
  std::string prompt;
  std::string session_id;
  bool trace = false;
  bool end_session = false;
  bool stream = false;
  bool json_output = false;
  std::string files_dir;  // where to save the files the agent returns ("" = do not save)
};

// Files up to this size are shown inline (base64) in the JSON output; larger
// ones get a note (and are saved with --files-dir).
constexpr size_t kMaxInlineFileBytes = 64 * 1024;

[[noreturn]] void FailInput(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  throw CLI::RuntimeError(kExitInvalidInput);
}

[[noreturn]] void FailCall(const bedrock::BedrockError& error) {
  std::cerr << "error: " << error.ToString() << "\n\n" << error.troubleshooting.ToText();
  if (!error.troubleshooting.ToText().empty() && error.troubleshooting.ToText().back() != '\n') std::cerr << "\n";
  // A request rejected by the client itself (no credentials, a bad request)
  // is a local problem: nothing was sent.
  throw CLI::RuntimeError(error.origin == bedrock::ErrorOrigin::kClient && error.attempts == 0 ? kExitInvalidInput
                                                                                               : kExitCallFailed);
}

void PrintJson(const json& value) {
  std::cout << value.dump(2) << "\n";
  std::cout.flush();
}

// Everything one invocation needs: the region, the credential chain (with an
// STS role assumer for assume-role profiles) and the client.
struct Session {
  std::string region;
  std::string credentials_source;
  std::unique_ptr<aws::RoleAssumer> role_assumer;  // must outlive `credentials`
  std::shared_ptr<aws::CredentialProvider> credentials;
  std::unique_ptr<bedrock::BedrockClient> client;
  bedrock::CallOptions call_options;
};

enum class Auth {
  kSigV4Only,          // STS, bedrock-agent, bedrock-agent-runtime
  kBearerOrSigV4,      // bedrock, bedrock-runtime
};

// " (the CA bundle is set by SOURCE)" when one is configured, for messages
// about a client that could not be made.
std::string CaBundleSource(const aws::ResolvedCaBundle& ca_bundle) {
  return ca_bundle.path.empty() ? "" : " (the CA bundle is set by " + ca_bundle.source + ")";
}

// Builds the client; every local problem ends the process with exit code 2
// before anything is sent. `region_hint` is used when no region is given or
// configured (the region of an agent alias ARN).
std::unique_ptr<Session> OpenSession(const CommonOptions& common, Auth auth, const std::string& operation,
                                     const std::string& region_hint = "") {
  auto session = std::make_unique<Session>();
  const aws::Environment& env = aws::ProcessEnvironment::Get();

  aws::CredentialChainOptions chain;
  if (!common.profile.empty()) chain.profile = common.profile;

  // Region: --region, else AWS_REGION / AWS_DEFAULT_REGION / the profile's,
  // else the hint.
  if (!common.region.empty()) {
    session->region = common.region;
  } else {
    Result<aws::ResolvedRegion> resolved = aws::ResolveRegion(chain);
    if (resolved.ok()) {
      session->region = resolved->region;
    } else if (!region_hint.empty()) {
      session->region = region_hint;
    } else {
      FailInput(resolved.status().message() + " (or pass --region us-east-1)");
    }
  }
  if (Result<aws::Region> region = aws::ParseRegion(session->region); !region.ok()) {
    FailInput("invalid region: " + region.status().message());
  }
  if (!common.endpoint_url.empty() && common.endpoint_url.rfind("http://", 0) != 0 &&
      common.endpoint_url.rfind("https://", 0) != 0) {
    FailInput("--endpoint-url " + aws::internal::QuoteForMessage(common.endpoint_url) +
              " must be an http:// or https:// URL, e.g. http://127.0.0.1:4566");
  }

  bedrock::BedrockClientOptions options;
  options.region = session->region;
  options.endpoint_url = common.endpoint_url;
  // Trusted CAs: AWS_CA_BUNDLE or the profile's ca_bundle (a TLS-inspecting
  // proxy's CA), as the AWS CLI takes them.
  Result<aws::ResolvedCaBundle> ca_bundle = aws::ResolveCaBundle(chain);
  if (!ca_bundle.ok()) FailInput(ca_bundle.status().message());
  options.ca_bundle = ca_bundle->path;
  if (common.max_attempts > 0) options.retry.max_attempts = common.max_attempts;
  if (common.timeout_s > 0) {
    auto deadline = std::chrono::milliseconds(static_cast<int64_t>(common.timeout_s * 1000));
    options.deadlines.overall_deadline = deadline;
    if (options.deadlines.attempt_timeout > deadline) options.deadlines.attempt_timeout = deadline;
  }

  // Bedrock API key, where the API accepts one.
  if (auth == Auth::kSigV4Only) {
    if (common.bearer_token) {
      FailInput(operation + " does not accept Bedrock API keys (--bearer-token): Agents for Amazon Bedrock and STS "
                            "need IAM credentials (SigV4). Remove --bearer-token and configure AWS credentials "
                            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, --profile, ...).");
    }
  } else {
    Result<std::optional<aws::BearerToken>> token = aws::ResolveBedrockBearerToken(common.bearer_token, env);
    if (!token.ok()) FailInput(token.status().message());
    if (token->has_value()) options.bearer_token = (*token)->token();
  }

  // IAM credentials. The STS role assumer serves assume-role profiles; it
  // signs with the source credentials the chain hands it.
  {
    bedrock::BedrockClientOptions sts_options = options;
    sts_options.bearer_token.reset();
    Result<std::unique_ptr<aws::RoleAssumer>> assumer = bedrock::MakeStsRoleAssumer(sts_options);
    if (!assumer.ok()) FailInput(assumer.status().message() + CaBundleSource(*ca_bundle));
    session->role_assumer = std::move(assumer).value();
  }
  chain.role_assumer = session->role_assumer.get();
  std::shared_ptr<aws::CredentialProvider> provider = aws::MakeDefaultCredentialProvider(chain);
  // Resolve now so a missing or broken source is reported before any Bedrock
  // call (an assume-role profile makes its STS call here).
  Result<aws::Credentials> creds = provider->GetCredentials();
  if (creds.ok()) {
    session->credentials_source = creds->source;
    options.credentials = provider;
    session->credentials = provider;
  } else if (!options.bearer_token) {
    std::string message = "no usable AWS credentials: " + creds.status().message();
    if (auth == Auth::kBearerOrSigV4) message += "\n(or pass a Bedrock API key with --bearer-token / AWS_BEARER_TOKEN_BEDROCK)";
    std::cerr << "error: " << message << "\n";
    throw CLI::RuntimeError(kExitInvalidInput);
  } else {
    session->credentials_source = "bearer token";
  }

  Result<std::unique_ptr<bedrock::BedrockClient>> client = bedrock::BedrockClient::Create(std::move(options));
  if (!client.ok()) FailInput(client.status().message() + CaBundleSource(*ca_bundle));
  session->client = std::move(client).value();
  return session;
}

json ContentToJson(const std::vector<bedrock::ContentBlock>& content) {
  json out = json::array();
  for (const bedrock::ContentBlock& block : content) {
    switch (block.type) {
      case bedrock::ContentBlock::Type::kText:
        out.push_back({{"type", "text"}, {"text", block.text}});
        break;
      case bedrock::ContentBlock::Type::kToolUse:
        out.push_back({{"type", "tool_use"}, {"id", block.tool_use_id}, {"name", block.tool_name},
                       {"input", block.tool_input}});
        break;
      case bedrock::ContentBlock::Type::kToolResult:
        out.push_back({{"type", "tool_result"}, {"tool_use_id", block.tool_use_id}, {"text", block.text}});
        break;
    }
  }
  return out;
}

void RunWhoami(const CommonOptions& common) {
  std::unique_ptr<Session> session = OpenSession(common, Auth::kSigV4Only, "GetCallerIdentity");
  bedrock::BedrockResult<bedrock::CallerIdentity> r = session->client->GetCallerIdentity();
  if (!r.ok()) FailCall(r.error());
  PrintJson({{"account", r.value().account},
             {"arn", r.value().arn},
             {"user_id", r.value().user_id},
             {"region", session->region},
             {"credentials_source", session->credentials_source}});
}

bool IsAnthropic(const json& target) {
  const std::string provider = AsciiToLower(target.value("provider", ""));
  const std::string id = AsciiToLower(target.value("id", ""));
  return provider == "anthropic" || id.find("anthropic.") != std::string::npos ||
         AsciiToLower(target.value("name", "")).find("claude") != std::string::npos;
}

void RunModels(const CommonOptions& common, bool all) {
  std::unique_ptr<Session> session = OpenSession(common, Auth::kBearerOrSigV4, "ListFoundationModels");
  bedrock::BedrockResult<bedrock::ModelCatalogue> r = session->client->ListCatalogue();
  if (!r.ok()) FailCall(r.error());
  json out = r.value().ToJson();
  if (!all) {
    json kept = json::array();
    for (const json& target : out["targets"]) {
      if (IsAnthropic(target)) kept.push_back(target);
    }
    out["targets"] = std::move(kept);
  }
  PrintJson(out);
}

void RunInvokeModel(const CommonOptions& common, const ModelOptions& opts) {
  if (opts.max_tokens < 1) FailInput("--max-tokens must be at least 1");
  if (opts.temperature && (*opts.temperature < 0 || *opts.temperature > 1)) {
    FailInput("--temperature must be between 0 and 1 (Claude's range)");
  }
  if (Result<aws::ModelTarget> target = aws::ClassifyModelTarget(opts.model); !target.ok()) {
    FailInput("--model: " + target.status().message());
  }
  const std::string api = opts.converse ? (opts.stream ? "ConverseStream" : "Converse")
                                        : (opts.stream ? "InvokeModelWithResponseStream" : "InvokeModel");
  std::unique_ptr<Session> session = OpenSession(common, Auth::kBearerOrSigV4, api);

  bedrock::ModelRequest request;
  request.model_id = opts.model;
  request.system = opts.system;
  request.messages.push_back(bedrock::ChatMessage::User(opts.prompt));
  request.max_tokens = opts.max_tokens;
  request.temperature = opts.temperature;

  const bool print_deltas = opts.stream && !opts.json_output;
  bool printed_any = false;
  bool ends_with_newline = false;
  bedrock::DeltaCallback on_delta = [&](const bedrock::StreamDelta& delta) {
    if (!print_deltas || delta.kind != bedrock::StreamDelta::Kind::kText || delta.text.empty()) return;
    std::cout << delta.text;
    std::cout.flush();
    printed_any = true;
    ends_with_newline = delta.text.back() == '\n';
  };
  bedrock::BedrockResult<bedrock::ModelResult> r =
      opts.converse ? (opts.stream ? session->client->ConverseStream(request, on_delta)
                                   : session->client->Converse(request))
                    : (opts.stream ? session->client->InvokeModelWithResponseStream(request, on_delta)
                                   : session->client->InvokeModel(request));
  // A terminal gets its prompt back on a new line; a pipe gets exactly the text.
  if (printed_any && !ends_with_newline && isatty(STDOUT_FILENO)) std::cout << "\n" << std::flush;
  if (!r.ok()) FailCall(r.error());
  if (print_deltas) return;
  const bedrock::ModelResult& m = r.value();
  PrintJson({{"api", api},
             {"model_id", opts.model},
             {"text", m.text},
             {"content", ContentToJson(m.content)},
             {"stop_reason", m.stop_reason},
             {"stop_sequence", m.stop_sequence},
             {"usage", {{"input_tokens", m.usage.input_tokens}, {"output_tokens", m.usage.output_tokens}}},
             {"model", m.model},
             {"request_id", m.request_id},
             {"attempts", m.attempts}});
}

// Bedrock's session id pattern: [0-9a-zA-Z._:-]+, 2..100 characters.
bool IsValidSessionId(const std::string& id) {
  if (id.size() < 2 || id.size() > 100) return false;
  for (char c : id) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Parses the alias ARN (refusing a base agent ARN with guidance) and returns
// the region to use: --region / the configured region, else the ARN's. A
// configured region that differs from the ARN's is refused: the agent would
// not be found there.
aws::AgentAliasArn CheckAliasArn(const CommonOptions& common, const std::string& text) {
  Result<aws::AgentAliasArn> arn = aws::ParseAgentAliasArn(text);
  if (!arn.ok()) FailInput("--alias-arn: " + arn.status().message());
  std::string region = common.region;
  if (region.empty()) {
    aws::CredentialChainOptions chain;
    if (!common.profile.empty()) chain.profile = common.profile;
    if (Result<aws::ResolvedRegion> resolved = aws::ResolveRegion(chain); resolved.ok()) region = resolved->region;
  }
  if (!region.empty() && region != arn->region) {
    FailInput("the agent alias ARN is in region " + arn->region + " but the region in use is " + region +
              "; an agent is only found in its own region. Pass --region " + arn->region +
              " (or unset the conflicting AWS_REGION / profile region).");
  }
  return arn.value();
}

// A file name the agent chose, made safe to create in --files-dir: its last
// path component, characters outside [A-Za-z0-9._-] replaced, no leading dot.
std::string SafeFileName(const std::string& name, size_t index) {
  std::string base = name.substr(name.find_last_of("/\\") == std::string::npos ? 0 : name.find_last_of("/\\") + 1);
  std::string out;
  for (char c : base) {
    if (out.size() >= 100) break;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  while (!out.empty() && out.front() == '.') out.erase(out.begin());
  if (out.empty()) out = "file-" + std::to_string(index + 1);
  return out;
}

// Saves the files in `dir` (which must exist), one per distinct safe name;
// returns the path of each file, in order. A write failure ends the process
// (exit 1): the call succeeded but its output could not be kept.
std::vector<std::string> SaveAgentFiles(const std::vector<bedrock::AgentFile>& files, const std::string& dir) {
  std::vector<std::string> paths;
  std::set<std::string> used;
  for (size_t i = 0; i < files.size(); ++i) {
    std::string name = SafeFileName(files[i].name, i);
    for (int n = 2; !used.insert(name).second; ++n) name = std::to_string(n) + "-" + SafeFileName(files[i].name, i);
    const std::string path = (dir.ends_with('/') ? dir : dir + "/") + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(files[i].bytes.data(), static_cast<std::streamsize>(files[i].bytes.size()));
    out.close();
    if (!out) {
      std::cerr << "error: the agent's file " << aws::internal::QuoteForMessage(files[i].name)
                << " could not be written to " << path << "; check that --files-dir exists and is writable\n";
      throw CLI::RuntimeError(kExitCallFailed);
    }
    paths.push_back(path);
  }
  return paths;
}

json AgentFilesJson(const std::vector<bedrock::AgentFile>& files, const std::vector<std::string>& saved) {
  json out = json::array();
  for (size_t i = 0; i < files.size(); ++i) {
    const bedrock::AgentFile& f = files[i];
    json j = {{"name", f.name}, {"type", f.media_type}, {"size", f.bytes.size()}};
    if (i < saved.size()) j["saved_to"] = saved[i];
    if (f.bytes.size() <= kMaxInlineFileBytes) {
      j["content_base64"] = Base64Encode(f.bytes);
    } else {
      j["note"] = "content not shown: " + std::to_string(f.bytes.size()) + " bytes is over the " +
                  std::to_string(kMaxInlineFileBytes) + "-byte limit for inline content" +
                  (i < saved.size() ? "; saved to " + saved[i] : "; pass --files-dir DIR to save the file");
    }
    out.push_back(std::move(j));
  }
  return out;
}

void RunInvokeAgent(const CommonOptions& common, const AgentOptions& opts) {
  aws::AgentAliasArn arn = CheckAliasArn(common, opts.alias_arn);
  std::string session_id = opts.session_id;
  if (session_id.empty()) {
    session_id = "quarry-cli-" + HexEncode(SecureRandomBytes(8));
  } else if (!IsValidSessionId(session_id)) {
    FailInput("--session-id " + aws::internal::QuoteForMessage(session_id) +
              " is not a valid session id: use 2 to 100 characters from 0-9 a-z A-Z . _ : -");
  }
  CommonOptions with_region = common;
  if (with_region.region.empty()) with_region.region = arn.region;
  std::unique_ptr<Session> session = OpenSession(with_region, Auth::kSigV4Only, "InvokeAgent", arn.region);

  bedrock::InvokeAgentRequest request;
  request.agent_alias_arn = opts.alias_arn;
  request.session_id = session_id;
  request.input_text = opts.prompt;
  request.enable_trace = opts.trace;
  request.end_session = opts.end_session;
  request.stream_final_response = opts.stream;

  const bool print_chunks = opts.stream && !opts.json_output;
  bool printed_any = false;
  bool ends_with_newline = false;
  bedrock::AgentCallbacks callbacks;
  if (print_chunks) {
    callbacks.on_chunk = [&](const bedrock::AgentChunk& chunk) {
      if (chunk.text.empty()) return;
      std::cout << chunk.text;
      std::cout.flush();
      printed_any = true;
      ends_with_newline = chunk.text.back() == '\n';
    };
  }
  bedrock::BedrockResult<bedrock::AgentResult> r = session->client->InvokeAgent(request, callbacks);
  if (printed_any && !ends_with_newline && isatty(STDOUT_FILENO)) std::cout << "\n" << std::flush;
  if (!r.ok()) FailCall(r.error());
  const bedrock::AgentResult& a = r.value();
  const std::vector<std::string> saved = opts.files_dir.empty() ? std::vector<std::string>{}
                                                                : SaveAgentFiles(a.files, opts.files_dir);
  if (print_chunks) {
    // stdout holds only the text; say on stderr what else came back.
    for (size_t i = 0; i < a.files.size(); ++i) {
      std::cerr << "note: the agent returned the file " << aws::internal::QuoteForMessage(a.files[i].name) << " ("
                << a.files[i].bytes.size() << " bytes)"
                << (i < saved.size() ? ", saved to " + saved[i] : std::string(": pass --files-dir DIR to save it"))
                << "\n";
    }
    return;
  }
  json citations = json::array();
  for (const bedrock::Citation& c : a.citations) {
    json refs = json::array();
    for (const bedrock::CitationReference& ref : c.references) refs.push_back({{"text", ref.text}, {"uri", ref.uri}});
    citations.push_back({{"generated_text", c.generated_text}, {"references", std::move(refs)}});
  }
  json out = {{"completion", a.completion},
              {"citations", std::move(citations)},
              {"traces", a.traces.size()},
              {"session_id", a.session_id.empty() ? session_id : a.session_id},
              {"request_id", a.request_id},
              {"attempts", a.attempts}};
  if (opts.trace) out["trace_events"] = a.traces;
  if (a.return_control) out["return_control"] = bedrock::ReturnControlToJson(*a.return_control);
  if (!a.files.empty()) out["files"] = AgentFilesJson(a.files, saved);
  PrintJson(out);
}

void RunAlias(const CommonOptions& common, const std::string& alias_arn) {
  aws::AgentAliasArn arn = CheckAliasArn(common, alias_arn);
  CommonOptions with_region = common;
  if (with_region.region.empty()) with_region.region = arn.region;
  std::unique_ptr<Session> session = OpenSession(with_region, Auth::kSigV4Only, "GetAgentAlias", arn.region);
  bedrock::BedrockResult<bedrock::AgentAliasInfo> r = session->client->GetAgentAlias(alias_arn);
  if (!r.ok()) FailCall(r.error());
  const bedrock::AgentAliasInfo& info = r.value();
  json out = {{"alias_arn", alias_arn},
              {"exists", info.exists},
              {"agent_id", info.agent_id},
              {"alias_id", info.alias_id},
              {"alias_name", info.alias_name},
              {"status", info.status},
              {"agent_version", info.agent_version},
              {"has_version", info.has_version},
              {"prepared", info.prepared}};
  if (!info.exists) {
    out["note"] = "no such alias in " + arn.region + " for account " + arn.account +
                  ": check the alias id on the agent's Aliases tab and the region";
  } else if (!info.has_version) {
    out["note"] = "the alias has no agent version: InvokeAgent will fail with ResourceNotFoundException; "
                  "create a version of the agent and point the alias at it";
  } else if (!info.prepared) {
    out["note"] = "the alias is not PREPARED (status " + info.status + "): prepare the agent and wait";
  }
  PrintJson(out);
}

void AddCommonOptions(CLI::App& app, CommonOptions& common) {
  app.add_option("--region", common.region, "AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)");
  app.add_option("--endpoint-url", common.endpoint_url,
                 "one endpoint URL for every service (e.g. the emulator, http://127.0.0.1:PORT)");
  app.add_option("--profile", common.profile, "shared config/credentials profile (default: AWS_PROFILE, default)");
  app.add_option("--max-attempts", common.max_attempts, "attempts per call including retries (default 3)")
      ->check(CLI::Range(1, 20));
  app.add_option("--timeout", common.timeout_s, "overall deadline per call, in seconds")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--bearer-token", common.bearer_token,
                 "Bedrock API key (default: AWS_BEARER_TOKEN_BEDROCK); models and invoke-model only");
}

}  // namespace

void RegisterBedrockCommand(CLI::App& app) {
  CLI::App* bedrock = app.add_subcommand(
      "bedrock", "Call Amazon Bedrock from the command line: check credentials, models, agents");
  bedrock->require_subcommand(1);

  auto common = std::make_shared<CommonOptions>();

  CLI::App* whoami = bedrock->add_subcommand("whoami", "STS GetCallerIdentity: who the credentials are");
  AddCommonOptions(*whoami, *common);
  whoami->callback([common] { RunWhoami(*common); });

  auto all = std::make_shared<bool>(false);
  CLI::App* models = bedrock->add_subcommand("models", "the region's model catalogue (Claude models by default)");
  AddCommonOptions(*models, *common);
  models->add_flag("--all", *all, "every provider, not only Anthropic");
  models->callback([common, all] { RunModels(*common, *all); });

  auto model_opts = std::make_shared<ModelOptions>();
  CLI::App* invoke_model = bedrock->add_subcommand("invoke-model", "send one prompt to a Claude model");
  AddCommonOptions(*invoke_model, *common);
  invoke_model->add_option("--model", model_opts->model, "model id, inference profile id or ARN")->required();
  invoke_model->add_option("--prompt", model_opts->prompt, "the user message")->required();
  invoke_model->add_option("--system", model_opts->system, "system prompt");
  invoke_model->add_option("--max-tokens", model_opts->max_tokens, "maximum output tokens")->capture_default_str();
  invoke_model->add_option("--temperature", model_opts->temperature, "0..1");
  invoke_model->add_flag("--stream", model_opts->stream, "stream: print text as it arrives");
  invoke_model->add_flag("--converse", model_opts->converse, "use the Converse API instead of InvokeModel");
  invoke_model->add_flag("--json", model_opts->json_output, "with --stream: print the final JSON, not the text");
  invoke_model->callback([common, model_opts] { RunInvokeModel(*common, *model_opts); });

  auto agent_opts = std::make_shared<AgentOptions>();
  CLI::App* invoke_agent = bedrock->add_subcommand("invoke-agent", "send one prompt to an agent alias");
  AddCommonOptions(*invoke_agent, *common);
  invoke_agent->add_option("--alias-arn", agent_opts->alias_arn, "agent alias ARN")->required();
  invoke_agent->add_option("--prompt", agent_opts->prompt, "the input text")->required();
  invoke_agent->add_option("--session-id", agent_opts->session_id, "session id (default: a new random one)");
  invoke_agent->add_flag("--trace", agent_opts->trace, "enable trace events (included in the JSON)");
  invoke_agent->add_flag("--end-session", agent_opts->end_session, "end the session after this call");
  invoke_agent->add_flag("--stream", agent_opts->stream, "stream the final response: print text as it arrives");
  invoke_agent->add_flag("--json", agent_opts->json_output, "with --stream: print the final JSON, not the text");
  invoke_agent->add_option("--files-dir", agent_opts->files_dir,
                           "save the files the agent returns (code interpreter output) in this directory")
      ->check(CLI::ExistingDirectory);
  invoke_agent->callback([common, agent_opts] { RunInvokeAgent(*common, *agent_opts); });

  auto alias_arn = std::make_shared<std::string>();
  CLI::App* alias = bedrock->add_subcommand("alias", "GetAgentAlias: does the alias exist, has it a version");
  AddCommonOptions(*alias, *common);
  alias->add_option("--alias-arn", *alias_arn, "agent alias ARN")->required();
  alias->callback([common, alias_arn] { RunAlias(*common, *alias_arn); });
}

}  // namespace quarry::cli
