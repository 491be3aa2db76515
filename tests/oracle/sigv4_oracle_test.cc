// Oracle test: random requests must sign to exactly the Authorization header
// botocore's SigV4Auth produces with the same frozen clock, and every signed
// request must pass our verifier.
//
// sigv4_oracle.py (beside this file) generates the requests, signs them with
// botocore and prints one JSON line each; this test signs the same requests.
// Debian's botocore is required; a modern botocore (>= 1.43) is used when
// present and skipped loudly otherwise.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sstream>
#include <string>

#include "aws/sigv4.h"
#include "aws/sigv4_verifier.h"
#include "common/encoding.h"
#include "tests/support/process.h"

namespace quarry::aws {
namespace {

constexpr int kRequestCount = 1000;
const std::string kScript = std::string(QUARRY_ORACLE_DIR) + "/sigv4_oracle.py";

void CheckAgainstBotocore(const quarry::testing::PythonOracle& oracle, int seed) {
  const quarry::testing::ProcessResult process =
      quarry::testing::RunProcess({oracle.interpreter, kScript, std::to_string(seed), std::to_string(kRequestCount)});
  ASSERT_EQ(process.exit_code, 0) << oracle.interpreter << " " << kScript << " failed:\n" << process.stderr_text;

  SigningKeyCache cache;
  std::istringstream lines(process.stdout_text);
  std::string line;
  int checked = 0;
  int mismatches = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json c = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(c.is_discarded()) << "oracle printed a line that is not JSON: " << line;
    ++checked;

    HttpRequest request;
    request.method = c["method"].get<std::string>();
    request.path = c["path"].get<std::string>();
    request.query = c["query"].get<std::string>();
    for (const auto& header : c["headers"]) {
      request.headers.push_back({header[0].get<std::string>(), header[1].get<std::string>()});
    }
    if (!c["host_in_headers"].get<bool>()) {
      // botocore derives the Host from the URL when the request has none.
      request.headers.push_back({"Host", HostHeaderValue(c["scheme"].get<std::string>(),
                                                         c["host"].get<std::string>(), c["port"].get<int>())});
    }
    const Result<std::string> body = Base64Decode(c["body_b64"].get<std::string>());
    ASSERT_TRUE(body.ok());
    request.body = body.value();

    Credentials credentials;
    credentials.access_key_id = c["access_key_id"].get<std::string>();
    credentials.secret_access_key = c["secret_access_key"].get<std::string>();
    credentials.session_token = c["token"].get<std::string>();
    WallTime time;
    ASSERT_TRUE(ParseIso8601Utc(c["timestamp"].get<std::string>(), &time));
    const std::string region = c["region"].get<std::string>();
    const std::string service = c["service"].get<std::string>();

    SigningArtifacts artifacts;
    const Status status = SignRequest({.credentials = &credentials,
                                       .region = region,
                                       .service = service,
                                       .time = time,
                                       .normalize_path = true,
                                       .sign_body = c["sign_body"].get<bool>(),
                                       .key_cache = &cache},
                                      request, &artifacts);
    ASSERT_TRUE(status.ok()) << status.ToString();
    const std::string expected = c["expected_authorization"].get<std::string>();
    if (artifacts.authorization != expected) {
      ++mismatches;
      ADD_FAILURE() << "request " << checked << " (seed " << seed << ", botocore " << oracle.botocore_version
                    << ") signs differently.\n--- botocore canonical request:\n"
                    << c["expected_canonical_request"].get<std::string>() << "\n--- our canonical request:\n"
                    << artifacts.canonical_request << "\n--- botocore: " << expected
                    << "\n--- ours:     " << artifacts.authorization << "\nrequest: " << line;
      if (mismatches >= 5) FAIL() << "stopping after 5 mismatches";
      continue;
    }
    if (!credentials.session_token.empty()) {
      ASSERT_NE(request.FindHeader("x-amz-security-token"), nullptr);
      EXPECT_EQ(request.FindHeader("x-amz-security-token")->value, credentials.session_token);
    }

    // Round trip: the emulator's verifier accepts what we (and botocore) sign.
    SigV4Verifier verifier({.region = region, .service = service},
                           [&](std::string_view key_id) -> std::optional<KnownAccessKey> {
                             if (key_id != credentials.access_key_id) return std::nullopt;
                             return KnownAccessKey{credentials.secret_access_key, credentials.session_token};
                           },
                           &cache);
    const VerificationResult verified = verifier.Verify({.method = request.method,
                                                         .raw_path = request.path,
                                                         .raw_query = request.query,
                                                         .headers = request.headers,
                                                         .body = request.body},
                                                        time + std::chrono::minutes(3));
    if (const auto* error = std::get_if<SignatureVerificationError>(&verified)) {
      ADD_FAILURE() << "request " << checked << " failed verification: " << error->code << ": " << error->message
                    << "\nrequest: " << line;
      ++mismatches;
      if (mismatches >= 5) FAIL() << "stopping after 5 failures";
    }
  }
  EXPECT_EQ(checked, kRequestCount) << "the oracle printed fewer requests than asked:\n" << process.stderr_text;
}

TEST(SigV4OracleTest, MatchesDebianBotocoreOnAThousandRandomRequests) {
  const std::optional<quarry::testing::PythonOracle> oracle = quarry::testing::DebianBotocore();
  ASSERT_TRUE(oracle.has_value())
      << "Debian's /usr/bin/python3 with python3-botocore is a required test dependency; run "
         "scripts/install-deps.sh (apt-get install python3-botocore)";
  CheckAgainstBotocore(*oracle, 20150830);
}

TEST(SigV4OracleTest, MatchesModernBotocoreOnAThousandRandomRequests) {
  const std::optional<quarry::testing::PythonOracle> oracle = quarry::testing::ModernBotocore();
  if (!oracle.has_value()) {
    GTEST_SKIP() << "SKIPPED: no python3 with botocore >= 1.43 on PATH, so the SigV4 oracle check against "
                    "modern botocore did not run (Debian's botocore check still ran). Install boto3 >= 1.43 "
                    "(pip) to run it.";
  }
  CheckAgainstBotocore(*oracle, 20240102);
}

}  // namespace
}  // namespace quarry::aws
