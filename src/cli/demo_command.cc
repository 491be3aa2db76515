// `quarry demo`: the main job, on the embedded defaults. Until the platform
// exists it has two parts. Part one (here) walks one Bedrock call through the
// protocol core with no network: endpoint and model target, SigV4 signing, the
// verifier the emulator runs, agent alias ARNs, and an InvokeAgent event
// stream encoded, decoded in libcurl-sized slices, and corrupted on purpose.
// Part two (demo_emulator.cc) runs the Bedrock client against the built-in
// emulator.

#include <nlohmann/json.hpp>

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "aws/arn.h"
#include "aws/aws_error.h"
#include "aws/eventstream.h"
#include "aws/region.h"
#include "aws/retry.h"
#include "aws/sigv4.h"
#include "aws/sigv4_verifier.h"
#include "cli/commands.h"
#include "cli/demo.h"
#include "common/clock.h"
#include "common/encoding.h"

namespace quarry::cli {
namespace {

using nlohmann::json;

// The example key pair from the AWS documentation: not a credential.
constexpr char kDemoAccessKeyId[] = "AKIDEXAMPLE";
constexpr char kDemoSecretAccessKey[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kDemoRegion[] = "us-east-1";
constexpr char kDemoModelId[] = "anthropic.claude-3-5-sonnet-20240620-v1:0";
constexpr char kDemoAliasArn[] = "arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL";
constexpr char kDemoBaseAgentArn[] = "arn:aws:bedrock:us-east-2:123456789012:agent/ABCD1234EF";

void Section(const std::string& title) { std::cout << "\n== " << title << "\n"; }

void Indented(const std::string& text, const std::string& prefix = "   | ") {
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find('\n', start);
    std::cout << prefix << text.substr(start, end == std::string::npos ? end : end - start) << "\n";
    if (end == std::string::npos) break;
    start = end + 1;
  }
}

// Fails the demo: a broken protocol core must not look like a working one.
[[noreturn]] void Fail(const std::string& what, const Status& status) {
  std::cerr << "demo failed: " << what << ": " << status.ToString() << "\n";
  throw CLI::RuntimeError(1);
}

std::string DescribeVerification(const aws::VerificationResult& result) {
  if (const auto* identity = std::get_if<aws::VerifiedIdentity>(&result)) {
    return "accepted: key " + aws::Credentials::MaskKeyId(identity->access_key_id) + ", scope " +
           identity->date + "/" + identity->region + "/" + identity->service;
  }
  if (std::get_if<aws::BearerAuthorization>(&result)) return "bearer token";
  const auto& error = std::get<aws::SignatureVerificationError>(result);
  return "refused: " + error.code + " (HTTP " + std::to_string(error.http_status) + "): " + error.message;
}

aws::HttpRequest SignedInvokeModelRequest(const WallTime now) {
  Section("1. Endpoint and model target");
  const Result<aws::Region> region = aws::ParseRegion(kDemoRegion);
  if (!region.ok()) Fail("region", region.status());
  const Result<std::string> host = aws::EndpointHost(aws::AwsService::kBedrockRuntime, *region);
  if (!host.ok()) Fail("endpoint", host.status());
  std::cout << "   region " << region->name() << " (partition " << region->partition().name << ") -> host "
            << *host << "\n";
  const Result<std::string> profile = aws::SystemProfileIdForRegion(kDemoModelId, *region);
  std::cout << "   model " << kDemoModelId << "; its cross-Region inference profile here is "
            << (profile.ok() ? *profile : profile.status().message()) << "\n";
  const std::string path = "/model/" + UriEncode(kDemoModelId) + "/invoke";
  std::cout << "   wire path " << path << "  (the ':' travels as %3A)\n";

  Section("2. SigV4 signature (AWS's documented example key pair)");
  aws::HttpRequest request;
  request.method = "POST";
  request.path = path;
  request.headers = {{"Host", *host}, {"Content-Type", "application/json"}, {"Accept", "application/json"}};
  request.body = json{{"anthropic_version", "bedrock-2023-05-31"},
                      {"max_tokens", 256},
                      {"messages",
                       {{{"role", "user"},
                         {"content", "Triage this ticket: VPN drops every 10 minutes since the update."}}}}}
                     .dump();
  aws::Credentials credentials{.access_key_id = kDemoAccessKeyId,
                               .secret_access_key = kDemoSecretAccessKey,
                               .source = "demo"};
  aws::SigningParams params{.credentials = &credentials,
                            .region = kDemoRegion,
                            .service = aws::ServiceSigningName(aws::AwsService::kBedrockRuntime),
                            .time = now};
  aws::SigningArtifacts artifacts;
  const Status signed_status = aws::SignRequest(params, request, &artifacts);
  if (!signed_status.ok()) Fail("signing", signed_status);
  std::cout << "   credentials " << credentials << "\n   canonical request (the model id is signed as %253A):\n";
  Indented(artifacts.canonical_request);
  std::cout << "   string to sign:\n";
  Indented(artifacts.string_to_sign);
  std::cout << "   Authorization: " << artifacts.authorization << "\n";
  return request;
}

void VerifyAsTheEmulatorWill(const aws::HttpRequest& request, const WallTime now) {
  Section("3. The emulator's side: signature verification");
  const aws::SigV4Verifier verifier(
      {.region = kDemoRegion, .service = "bedrock"},
      [](std::string_view key_id) -> std::optional<aws::KnownAccessKey> {
        if (key_id != kDemoAccessKeyId) return std::nullopt;
        return aws::KnownAccessKey{.secret_access_key = kDemoSecretAccessKey};
      });
  auto verify = [&](const aws::HttpRequest& r, WallTime at) {
    return verifier.Verify({.method = r.method,
                            .raw_path = r.path,
                            .raw_query = r.query,
                            .headers = r.headers,
                            .body = r.body},
                           at);
  };
  std::cout << "   as signed:                 " << DescribeVerification(verify(request, now)) << "\n";
  aws::HttpRequest tampered = request;
  tampered.body.replace(tampered.body.find("256"), 3, "999");
  std::cout << "   body changed in transit:   " << DescribeVerification(verify(tampered, now)) << "\n";
  std::cout << "   server clock 20 min ahead: "
            << DescribeVerification(verify(request, now + std::chrono::minutes(20))) << "\n";
  aws::HttpRequest unknown_key = request;
  for (auto& header : unknown_key.headers) {
    if (EqualsIgnoreAsciiCase(header.name, "Authorization")) {
      header.value.replace(header.value.find(kDemoAccessKeyId), 11, "AKIDUNKNOWN");
    }
  }
  std::cout << "   unknown access key:        " << DescribeVerification(verify(unknown_key, now)) << "\n";
}

aws::AgentAliasArn ParseAgentArns() {
  Section("4. Connecting an agent: the Agent Alias ARN");
  const Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(kDemoAliasArn);
  if (!alias.ok()) Fail("agent alias ARN", alias.status());
  std::cout << "   " << kDemoAliasArn << "\n     -> agent " << alias->agent_id << ", alias " << alias->alias_id
            << ", region " << alias->region << ", account " << alias->account << "\n";
  const Result<aws::AgentAliasArn> base = aws::ParseAgentAliasArn(kDemoBaseAgentArn);
  std::cout << "   " << kDemoBaseAgentArn << "\n     -> "
            << (base.ok() ? std::string("accepted (unexpected)") : base.status().message()) << "\n";
  return *alias;
}

std::vector<aws::Message> AgentResponseMessages(const aws::AgentAliasArn& alias) {
  const json trace = {{"agentId", alias.agent_id},
                      {"agentAliasId", alias.alias_id},
                      {"sessionId", "demo-session-1"},
                      {"trace",
                       {{"orchestrationTrace",
                         {{"rationale",
                           {{"text", "The user reports periodic VPN drops after an update; "
                                     "search the knowledge base for known VPN client issues."}}}}}}}};
  const std::vector<std::string> parts = {
      "Category: Network. Priority: High. ",
      "Known issue KB-1042: the 5.2 VPN client renegotiates keys every 10 minutes; ",
      "roll back to 5.1 or apply the 5.2.1 hotfix."};
  std::vector<aws::Message> messages = {aws::MakeEventMessage("trace", trace.dump())};
  for (size_t i = 0; i < parts.size(); ++i) {
    json chunk = {{"bytes", Base64Encode(parts[i])}};
    if (i == 1) {
      chunk["attribution"] = {
          {"citations",
           {{{"generatedResponsePart", {{"textResponsePart", {{"text", parts[i]}}}}},
             {"retrievedReferences",
              {{{"content", {{"text", "VPN client 5.2 rekeys every 600 seconds..."}}},
                {"location", {{"type", "S3"}, {"s3Location", {{"uri", "s3://it-kb/KB-1042.md"}}}}}}}}}}}};
    }
    messages.push_back(aws::MakeEventMessage("chunk", chunk.dump()));
  }
  return messages;
}

void EventStreamRoundTrip(const aws::AgentAliasArn& alias) {
  Section("5. InvokeAgent's response: a binary event stream");
  const std::vector<aws::Message> messages = AgentResponseMessages(alias);
  std::string wire;
  for (const aws::Message& message : messages) {
    const Status status = aws::AppendEncodedMessage(message, &wire);
    if (!status.ok()) Fail("encoding", status);
  }
  std::cout << "   encoded " << messages.size() << " messages (1 trace, 3 chunks) into " << wire.size()
            << " bytes\n";

  // Deliver the bytes in uneven slices, as a socket and libcurl would.
  std::mt19937 random(42);
  aws::EventStreamDecoder decoder;
  std::vector<aws::Message> decoded;
  size_t slices = 0;
  for (size_t offset = 0; offset < wire.size(); ++slices) {
    const size_t length = std::min<size_t>(wire.size() - offset, 1 + random() % 97);
    const Status status = decoder.Feed(std::string_view(wire).substr(offset, length), &decoded);
    if (!status.ok()) Fail("decoding", status);
    offset += length;
  }
  if (const Status status = decoder.Finish(); !status.ok()) Fail("end of stream", status);
  std::cout << "   decoded them from " << slices << " slices of 1 to 97 bytes:\n";
  std::string answer;
  for (const aws::Message& message : decoded) {
    const std::string event(aws::GetEventType(message).value_or("?"));
    const json payload = json::parse(message.payload);
    if (event == "chunk") {
      const Result<std::string> text = Base64Decode(payload.at("bytes").get<std::string>());
      if (!text.ok()) Fail("chunk bytes", text.status());
      answer += *text;
      std::cout << "     chunk  " << text->size() << " bytes of answer"
                << (payload.contains("attribution") ? ", with a citation" : "") << "\n";
    } else {
      std::cout << "     " << event << "  " << payload["trace"].begin().key() << "\n";
    }
  }
  std::cout << "   the agent's answer: " << answer << "\n";

  const aws::Message throttle =
      aws::MakeExceptionMessage("throttlingException", R"({"message":"Rate exceeded"})");
  const aws::AwsError error = aws::ParseStreamException(
      "bedrock-agent-runtime", *aws::GetExceptionType(throttle), throttle.payload);
  std::cout << "   a mid-stream '" << *aws::GetExceptionType(throttle) << "' is classified as "
            << aws::RetryClassName(error.retry_class) << " (the lower-case spelling included)\n";

  std::string corrupted = wire;
  const size_t bit = corrupted.size() * 8 / 2 + 3;
  corrupted[bit / 8] = static_cast<char>(corrupted[bit / 8] ^ (1 << (bit % 8)));
  const Result<std::vector<aws::Message>> broken = aws::DecodeMessages(corrupted);
  std::cout << "   one flipped bit (bit " << bit << ") is a hard error, never a stall:\n     "
            << (broken.ok() ? std::string("NOT DETECTED") : broken.status().message()) << "\n";
  if (broken.ok()) Fail("corruption", InternalError("a flipped bit was not detected"));
}

void RetrySchedule() {
  Section("6. Throttled? The standard retry mode, with an overall deadline");
  FakeClock clock;
  aws::RetryStrategy strategy({.max_attempts = 3}, std::make_shared<aws::RetryQuota>(), clock,
                              [] { return 0.5; });
  aws::RetryToken token = strategy.AcquireInitialToken(clock.MonotonicNow() + std::chrono::seconds(10));
  aws::AttemptOutcome outcome{.error = aws::ParseRestJsonError(
                                  "bedrock-runtime", 429, {{"x-amzn-ErrorType", "ThrottlingException"}},
                                  R"({"message":"Too many requests, please wait before trying again."})")};
  for (int attempt = 1;; ++attempt) {
    const Result<std::chrono::milliseconds> delay = strategy.RefreshTokenForRetry(token, outcome);
    if (!delay.ok()) {
      std::cout << "   attempt " << attempt << " throttled -> give up: " << delay.status().message() << "\n";
      break;
    }
    std::cout << "   attempt " << attempt << " throttled -> wait " << delay->count()
              << " ms (jitter fixed at 0.5 for the demo), quota left " << strategy.quota().available()
              << "\n";
    clock.Advance(*delay);
  }
}

}  // namespace

void RunProtocolDemo() {
  std::cout << "Quarry demo, part one: one Bedrock call through the protocol core (no network is used).\n";
  const WallTime now = SystemClock::Get().Now();
  const aws::HttpRequest request = SignedInvokeModelRequest(now);
  VerifyAsTheEmulatorWill(request, now);
  const aws::AgentAliasArn alias = ParseAgentArns();
  EventStreamRoundTrip(alias);
  RetrySchedule();
}

void RegisterDemoCommand(CLI::App& app) {
  struct Flags {
    bool protocol = false;
    bool exit_when_done = false;
    int port = 8080;
    std::string data_dir;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* demo = app.add_subcommand("demo", "Show the main job on the embedded defaults");
  demo->add_flag("--protocol", flags->protocol,
                 "Also show the protocol tour first: SigV4, event streams, the client against the emulator");
  demo->add_flag("--exit", flags->exit_when_done, "Stop after the walkthrough instead of serving");
  demo->add_option("--port", flags->port, "Port for the server (a free one if taken)")->capture_default_str();
  demo->add_option("--data-dir", flags->data_dir, "Where the demo keeps its data (default: a new temp dir)");
  demo->callback([flags] {
    if (flags->protocol) {
      RunProtocolDemo();
      RunEmulatorDemo();
      std::cout << "\n";
    }
    PlatformDemoOptions options;
    options.port = flags->port;
    options.exit_when_done = flags->exit_when_done;
    options.data_dir = flags->data_dir;
    if (options.data_dir.empty()) {
      std::string pattern = (std::filesystem::temp_directory_path() / "quarry-demo-XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) {
        std::cerr << "demo failed: cannot create a temporary directory; pass --data-dir\n";
        throw CLI::RuntimeError(1);
      }
      options.data_dir = pattern;
    }
    RunPlatformDemo(options);
    // A temporary directory made for this run goes with it; one the user
    // named stays (a failed run also leaves its data, for a look).
    if (flags->data_dir.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(options.data_dir, ignored);
    }
  });
}

}  // namespace quarry::cli
