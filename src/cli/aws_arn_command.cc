// `quarry aws arn ARN`: parses an ARN (or, with --model-target, an InvokeModel
// modelId) and prints what it is as one JSON object on stdout. Invalid input
// prints "error: <what is wrong and how to fix it>" on stderr and exits 1.
//
//   quarry aws arn arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL
//   {"account":"123456789012","agent_id":"ABCD1234EF","alias_id":"GHIJ5678KL",
//    "kind":"agent-alias","partition":"aws","region":"us-east-2",...}
//
// --agent-alias requires an agent alias ARN (what App Intelligence connects),
// refusing a base agent ARN with the exact ARN shape needed. Without it, a base
// agent ARN is described (kind "agent") and the same guidance is printed on
// stderr as a note.

#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "aws/arn.h"
#include "cli/commands.h"

namespace quarry::cli {
namespace {

struct ArnOptions {
  std::string input;
  bool agent_alias = false;
  bool model_target = false;
};

[[noreturn]] void Fail(const Status& status) {
  std::cerr << "error: " << status.message() << "\n";
  throw CLI::RuntimeError(1);
}

void PutArnParts(const aws::Arn& arn, nlohmann::json& out) {
  out["partition"] = arn.partition;
  out["service"] = arn.service;
  out["region"] = arn.region;
  out["account"] = arn.account;
  out["resource"] = arn.resource;
}

void PutIfSet(nlohmann::json& out, const char* key, const std::string& value) {
  if (!value.empty()) out[key] = value;
}

nlohmann::json DescribeModelTarget(const std::string& input) {
  Result<aws::ModelTarget> target = aws::ClassifyModelTarget(input);
  if (!target.ok()) Fail(target.status());
  nlohmann::json out;
  out["kind"] = std::string(aws::ModelTargetKindName(target->kind));
  out["model_target"] = target->text;
  if (target->arn) PutArnParts(*target->arn, out);
  PutIfSet(out, "model_id", target->model_id);
  PutIfSet(out, "profile_id", target->profile_id);
  if (target->geography) out["geography"] = std::string(aws::GeographyPrefix(*target->geography));
  return out;
}

nlohmann::json DescribeArnInput(const ArnOptions& options) {
  if (options.agent_alias) {
    Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(options.input);
    if (!alias.ok()) Fail(alias.status());
  }
  Result<aws::ArnDescription> described = aws::DescribeArn(options.input);
  if (!described.ok()) Fail(described.status());
  const aws::ArnDescription& d = *described;
  nlohmann::json out;
  out["kind"] = std::string(aws::ArnKindName(d.kind));
  PutArnParts(d.arn, out);
  PutIfSet(out, "agent_id", d.agent_id);
  PutIfSet(out, "alias_id", d.alias_id);
  PutIfSet(out, "model_id", d.model_id);
  PutIfSet(out, "profile_id", d.profile_id);
  PutIfSet(out, "resource_id", d.resource_id);
  if (d.geography) out["geography"] = std::string(aws::GeographyPrefix(*d.geography));
  if (d.kind == aws::ArnKind::kAgent) {
    // Describing is fine, but this is the seed's classic mistake; say so.
    Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(options.input);
    if (!alias.ok()) std::cerr << "note: " << alias.status().message() << "\n";
  }
  return out;
}

}  // namespace

void RegisterAwsArnCommand(CLI::App& parent) {
  auto options = std::make_shared<ArnOptions>();
  CLI::App* cmd = parent.add_subcommand(
      "arn", "Parse an ARN (or an InvokeModel modelId) and print what it is as JSON");
  cmd->add_option("ARN", options->input, "the ARN (or, with --model-target, the modelId)")
      ->required();
  auto* alias_flag = cmd->add_flag(
      "--agent-alias", options->agent_alias,
      "require an agent alias ARN, as App Intelligence does; refuse anything else with the fix");
  cmd->add_flag("--model-target", options->model_target,
                "classify the input as an InvokeModel / Converse modelId "
                "(model id, inference profile id or ARN)")
      ->excludes(alias_flag);
  cmd->callback([options] {
    const nlohmann::json out =
        options->model_target ? DescribeModelTarget(options->input) : DescribeArnInput(*options);
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  });
}

}  // namespace quarry::cli
