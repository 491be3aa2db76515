// quarry aws sign --request FILE --context FILE --show ARTEFACT
//
// Signs a raw HTTP/1.1 request with SigV4 (aws/sigv4.h) and prints one
// artefact: the canonical request, the string to sign, the signature or the
// Authorization header value. FILE formats are described in aws/sigv4.h
// (ParseHttpRequestText, ParseSigningContextJson); they are the request.txt and
// context.json of the golden vectors in tests/data/sigv4/. Stdout carries the
// artefact followed by one newline and nothing else; errors go to stderr with
// exit status 1.

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "aws/sigv4.h"
#include "cli/commands.h"
#include "common/status.h"

namespace quarry::cli {
namespace {

// Requests and contexts are small; refuse anything absurd rather than
// reading it all into memory.
constexpr std::uintmax_t kMaxInputBytes = 64u << 20;

constexpr const char* kShowChoices = "canonical-request, string-to-sign, signature or authorization";

Result<std::string> ReadInputFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return InvalidArgumentError(std::string("cannot read the ") + what + " file '" + path +
                                "': " + std::strerror(errno));
  }
  std::string content;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    content.append(buffer, static_cast<size_t>(in.gcount()));
    if (content.size() > kMaxInputBytes) {
      return InvalidArgumentError(std::string("the ") + what + " file '" + path + "' is larger than " +
                                  std::to_string(kMaxInputBytes >> 20) + " MiB");
    }
  }
  if (in.bad()) return InvalidArgumentError(std::string("error while reading the ") + what + " file '" + path + "'");
  return content;
}

struct SignOptions {
  std::string request_path;
  std::string context_path;
  std::string show;
};

Result<std::string> Run(const SignOptions& options) {
  if (options.show != "canonical-request" && options.show != "string-to-sign" && options.show != "signature" &&
      options.show != "authorization") {
    return InvalidArgumentError("--show '" + options.show + "' is not known; use " + kShowChoices);
  }
  QUARRY_ASSIGN_OR_RETURN(std::string context_text, ReadInputFile(options.context_path, "context"));
  Result<aws::SigningContext> context = aws::ParseSigningContextJson(context_text);
  if (!context.ok()) {
    return InvalidArgumentError("in '" + options.context_path + "': " + context.status().message());
  }
  QUARRY_ASSIGN_OR_RETURN(std::string request_text, ReadInputFile(options.request_path, "request"));
  Result<aws::HttpRequest> request = aws::ParseHttpRequestText(request_text);
  if (!request.ok()) {
    return InvalidArgumentError("in '" + options.request_path + "': " + request.status().message());
  }
  const aws::SigningContext& ctx = context.value();
  aws::SigningArtifacts artifacts;
  QUARRY_RETURN_IF_ERROR(aws::SignRequest({.credentials = &ctx.credentials,
                                           .region = ctx.region,
                                           .service = ctx.service,
                                           .time = ctx.time,
                                           .normalize_path = ctx.normalize,
                                           .sign_body = ctx.sign_body,
                                           .omit_session_token = ctx.omit_session_token},
                                          request.value(), &artifacts));
  if (options.show == "canonical-request") return artifacts.canonical_request;
  if (options.show == "string-to-sign") return artifacts.string_to_sign;
  if (options.show == "signature") return artifacts.signature;
  return artifacts.authorization;
}

}  // namespace

void RegisterAwsSignCommand(CLI::App& aws) {
  auto options = std::make_shared<SignOptions>();
  CLI::App* sign = aws.add_subcommand(
      "sign", "Sign a raw HTTP/1.1 request with SigV4 and print one artefact (as botocore computes it)");
  sign->add_option("--request", options->request_path,
                   "raw HTTP/1.1 request: 'METHOD TARGET HTTP/1.1', 'Name:value' headers, blank line, body")
      ->required();
  sign->add_option("--context", options->context_path,
                   "JSON: {\"credentials\":{\"access_key_id\",\"secret_access_key\",\"token\"?},\"region\","
                   "\"service\",\"timestamp\":\"2015-08-30T12:36:00Z\",\"normalize\",\"sign_body\","
                   "\"omit_session_token\"?}")
      ->required();
  sign->add_option("--show", options->show, std::string("what to print: ") + kShowChoices)->required();
  sign->callback([options] {
    const Result<std::string> artefact = Run(*options);
    if (!artefact.ok()) {
      std::cerr << "quarry aws sign: " << artefact.status().message() << "\n";
      throw CLI::RuntimeError(1);
    }
    std::cout << artefact.value() << "\n";
    std::cout.flush();
  });
}

}  // namespace quarry::cli
