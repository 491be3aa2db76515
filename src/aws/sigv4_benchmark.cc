// SigV4 signing and verification cost for a typical Bedrock InvokeModel call:
// POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke with host,
// content-type, accept and x-amz-date and a ~200-byte JSON body. The main
// figure is with long-term keys (no session token); a variant adds one.
// scripts/botocore_sign_bench.py times botocore on the same request.

#include <benchmark/benchmark.h>

#include "aws/sigv4.h"
#include "aws/sigv4_verifier.h"

namespace quarry::aws {
namespace {

constexpr char kBody[] =
    R"({"anthropic_version":"bedrock-2023-05-31","max_tokens":512,"temperature":0.2,)"
    R"("messages":[{"role":"user","content":"Summarise the incident report attached to record 4711 )"
    R"(in three short sentences for the on-call engineer."}]})";

Credentials MakeCredentials(bool with_token) {
  Credentials credentials;
  credentials.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  credentials.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  if (with_token) {
    credentials.session_token = std::string(400, 'T');  // STS tokens are several hundred characters
  }
  return credentials;
}

HttpRequest InvokeModel() {
  HttpRequest request;
  request.method = "POST";
  request.path = "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke";
  request.headers = {{"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                     {"Content-Type", "application/json"},
                     {"Accept", "application/json"}};
  request.body = kBody;
  return request;
}

WallTime Now() { return WallTime{} + std::chrono::seconds(1440938160); }  // 2015-08-30T12:36:00Z

void SignLoop(benchmark::State& state, bool with_token, bool cold) {
  const Credentials credentials = MakeCredentials(with_token);
  SigningKeyCache cache;
  HttpRequest request = InvokeModel();
  const SigningParams params{.credentials = &credentials, .region = "us-east-1", .service = "bedrock",
                             .time = Now(), .key_cache = &cache};
  for (auto _ : state) {
    if (cold) cache.Clear();
    const Status status = SignRequest(params, request);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(request.headers.back().value.data());
  }
  if (request.body.size() < 190) state.SkipWithError("body is not ~200 bytes");
  state.counters["body_bytes"] = static_cast<double>(request.body.size());
}

void BM_SignInvokeModelCachedKey(benchmark::State& state) { SignLoop(state, false, false); }
void BM_SignInvokeModelCachedKeySessionToken(benchmark::State& state) { SignLoop(state, true, false); }
void BM_SignInvokeModelColdKey(benchmark::State& state) { SignLoop(state, false, true); }

void BM_VerifySignature(benchmark::State& state) {
  const Credentials credentials = MakeCredentials(false);
  SigningKeyCache cache;
  HttpRequest request = InvokeModel();
  if (!SignRequest({.credentials = &credentials, .region = "us-east-1", .service = "bedrock", .time = Now(),
                    .key_cache = &cache},
                   request)
           .ok()) {
    state.SkipWithError("signing failed");
    return;
  }
  const SigV4Verifier verifier(
      {.region = "us-east-1", .service = "bedrock"},
      [&](std::string_view) { return std::optional<KnownAccessKey>(KnownAccessKey{credentials.secret_access_key, ""}); },
      &cache);
  const ReceivedRequest received{request.method, request.path, request.query, request.headers, request.body};
  for (auto _ : state) {
    VerificationResult result = verifier.Verify(received, Now());
    benchmark::DoNotOptimize(result);
  }
  if (!std::holds_alternative<VerifiedIdentity>(verifier.Verify(received, Now()))) {
    state.SkipWithError("verification failed");
  }
}

BENCHMARK(BM_SignInvokeModelCachedKey);
BENCHMARK(BM_SignInvokeModelCachedKeySessionToken);
BENCHMARK(BM_SignInvokeModelColdKey);
BENCHMARK(BM_VerifySignature);

}  // namespace
}  // namespace quarry::aws

BENCHMARK_MAIN();
