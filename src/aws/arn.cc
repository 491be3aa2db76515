#include "aws/arn.h"

#include <array>
#include <vector>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

using internal::QuoteForMessage;

constexpr std::string_view kAliasShape =
    "arn:aws:bedrock:{region}:{account}:agent-alias/{agent-id}/{alias-id}";
constexpr std::string_view kFromAliasesTab = "from the agent's Aliases tab in the Bedrock console";
constexpr std::string_view kGenericShape = "arn:partition:service:region:account:resource";

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiAlnum(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsLowerAlnumDash(char c) { return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || c == '-'; }
bool IsLowerAlnum(char c) { return IsAsciiDigit(c) || (c >= 'a' && c <= 'z'); }
// [a-zA-Z0-9-:.] (inference profile ids)
bool IsProfileIdChar(char c) { return IsAsciiAlnum(c) || c == '-' || c == ':' || c == '.'; }

template <typename Pred>
bool AllOf(std::string_view s, Pred pred) {
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

bool IsLowerAlnumOfLength(std::string_view s, size_t n) {
  return s.size() == n && AllOf(s, IsLowerAlnum);
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

// Quote-like characters people paste around identifiers: ASCII quotes and
// backticks, and the UTF-8 curly quotes that word processors and chat tools
// substitute (U+2018, U+2019, U+201C, U+201D) and guillemets (U+00AB, U+00BB).
size_t QuoteLengthAt(std::string_view s, size_t pos) {
  const char c = s[pos];
  if (c == '"' || c == '\'' || c == '`') return 1;
  if (pos + 3 <= s.size() && s[pos] == '\xE2' && s[pos + 1] == '\x80' &&
      (s[pos + 2] == '\x98' || s[pos + 2] == '\x99' || s[pos + 2] == '\x9C' ||
       s[pos + 2] == '\x9D')) {
    return 3;
  }
  if (pos + 2 <= s.size() && s[pos] == '\xC2' && (s[pos + 1] == '\xAB' || s[pos + 1] == '\xBB')) {
    return 2;
  }
  return 0;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Strips whitespace and quote characters from both ends.
std::string_view StripWrapping(std::string_view s) {
  bool changed = true;
  while (changed && !s.empty()) {
    changed = false;
    if (IsSpace(s.front())) {
      s.remove_prefix(1);
      changed = true;
    } else if (size_t n = QuoteLengthAt(s, 0); n > 0) {
      s.remove_prefix(n);
      changed = true;
    }
    if (s.empty()) break;
    if (IsSpace(s.back())) {
      s.remove_suffix(1);
      changed = true;
      continue;
    }
    // Closing quotes are 1 to 3 bytes; try each length from the end.
    for (size_t n = 1; n <= 3 && n <= s.size(); ++n) {
      if (QuoteLengthAt(s, s.size() - n) == n) {
        s.remove_suffix(n);
        changed = true;
        break;
      }
    }
  }
  return s;
}

// Errors for text that is not a bare identifier: empty, too long, wrapped in
// spaces or quotes, or holding spaces or non-ASCII bytes inside. `what` names
// the thing ("ARN", "model id").
Status CheckBareText(std::string_view text, std::string_view what, size_t max_length) {
  if (text.empty()) {
    return InvalidArgumentError("the " + std::string(what) + " is empty");
  }
  if (text.size() > max_length) {
    return InvalidArgumentError("the " + std::string(what) + " is " + std::to_string(text.size()) +
                                " bytes long; the limit is " + std::to_string(max_length));
  }
  const std::string_view stripped = StripWrapping(text);
  if (stripped.size() != text.size()) {
    if (stripped.empty()) {
      return InvalidArgumentError("the " + std::string(what) + " is only spaces or quotes");
    }
    return InvalidArgumentError("the " + std::string(what) + " " + QuoteForMessage(text) +
                                " has spaces or quotes pasted around it; remove them and use " +
                                QuoteForMessage(stripped));
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (IsSpace(text[i])) {
      return InvalidArgumentError("the " + std::string(what) + " " + QuoteForMessage(text) +
                                  " contains a space or line break at position " +
                                  std::to_string(i + 1) + "; copy it again as one line");
    }
    if (c < 0x20 || c >= 0x7f) {
      return InvalidArgumentError("the " + std::string(what) + " " + QuoteForMessage(text) +
                                  " contains a character that cannot appear in it (byte " +
                                  QuoteForMessage(text.substr(i, 1)) + " at position " +
                                  std::to_string(i + 1) +
                                  "); type it with plain ASCII letters, digits and punctuation");
    }
  }
  return Status::Ok();
}

std::string KnownPartitionList() {
  std::string out;
  for (const Partition& p : KnownPartitions()) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

// Why `id` is not a valid 10-character agent or alias id, or "" when it is.
std::string AgentIdProblem(std::string_view id) {
  if (id.empty()) return "is empty";
  for (char c : id) {
    if (!IsAsciiAlnum(c)) {
      return "contains " + QuoteForMessage(std::string_view(&c, 1)) +
             "; only letters and digits are allowed";
    }
  }
  if (id.size() != 10) {
    return "has " + std::to_string(id.size()) + " characters; it must have exactly 10";
  }
  return "";
}

std::string WithPlaceholders(const Arn& arn, std::string_view agent_id, std::string_view alias_id) {
  const std::string region = arn.region.empty() ? "{region}" : arn.region;
  const std::string account = arn.account.empty() ? "{account}" : arn.account;
  return "arn:" + arn.partition + ":bedrock:" + region + ":" + account + ":agent-alias/" +
         std::string(agent_id) + "/" + std::string(alias_id);
}

// Validates the resource part of a Bedrock ARN known to be
// agent-alias/... Fills agent and alias ids.
Status CheckAgentAliasResource(const Arn& arn, std::string_view rest, std::string* agent_id,
                               std::string* alias_id) {
  const std::vector<std::string_view> ids = Split(rest, '/');
  if (ids.size() == 1 || (ids.size() == 2 && ids[1].empty())) {
    const std::string agent = ids[0].empty() ? "{agent-id}" : std::string(ids[0]);
    return InvalidArgumentError(
        "the alias id is missing: an agent alias ARN ends in agent-alias/{agent-id}/{alias-id}, "
        "like " + WithPlaceholders(arn, agent, "{alias-id}") + "; copy the full ARN " +
        std::string(kFromAliasesTab));
  }
  if (ids.size() > 2) {
    return InvalidArgumentError("the ARN has extra parts after the alias id (" +
                                QuoteForMessage(arn.resource) +
                                "); an agent alias ARN ends in agent-alias/{agent-id}/{alias-id}");
  }
  if (std::string problem = AgentIdProblem(ids[0]); !problem.empty()) {
    return InvalidArgumentError("the agent id " + QuoteForMessage(ids[0]) + " " + problem +
                                " (agent ids are 10 letters or digits, like ABCD1234EF); copy "
                                "the ARN " + std::string(kFromAliasesTab));
  }
  if (std::string problem = AgentIdProblem(ids[1]); !problem.empty()) {
    return InvalidArgumentError("the alias id " + QuoteForMessage(ids[1]) + " " + problem +
                                " (alias ids are 10 letters or digits, like GHIJ5678KL, or "
                                "TSTALIASID for the draft alias); copy the ARN " +
                                std::string(kFromAliasesTab));
  }
  *agent_id = std::string(ids[0]);
  *alias_id = std::string(ids[1]);
  return Status::Ok();
}

// "agentalias", "agent_alias", "Agent-Alias", "agentAlias", ... but not the
// exact "agent-alias".
bool IsMisspelledAgentAlias(std::string_view type) {
  if (type == "agent-alias") return false;
  std::string squashed;
  for (char c : AsciiToLower(type)) {
    if (c != '-' && c != '_' && c != ' ') squashed.push_back(c);
  }
  return squashed == "agentalias" || squashed == "agentaliases";
}

std::string MisspelledAliasFix(const Arn& arn, std::string_view rest) {
  const std::string region = arn.region.empty() ? "{region}" : arn.region;
  const std::string account = arn.account.empty() ? "{account}" : arn.account;
  return "arn:" + arn.partition + ":bedrock:" + region + ":" + account + ":agent-alias/" +
         (rest.empty() ? std::string("{agent-id}/{alias-id}") : std::string(rest));
}

Status BaseAgentArnError(const Arn& arn, std::string_view agent_id) {
  const std::string id = AgentIdProblem(agent_id).empty() ? std::string(agent_id) : "{agent-id}";
  return InvalidArgumentError("this is the agent ARN; connect the agent alias ARN, " +
                              WithPlaceholders(arn, id, "{alias-id}") + ", " +
                              std::string(kFromAliasesTab) +
                              " (create an alias first if the agent has none)");
}

Result<std::string_view> RequireBedrockRegionAndAccount(const Arn& arn, std::string_view kind) {
  if (arn.region.empty()) {
    return InvalidArgumentError("the region part of this " + std::string(kind) +
                                " ARN is empty; it must name the region where the resource "
                                "lives, e.g. us-east-1");
  }
  if (arn.account.empty()) {
    return InvalidArgumentError("the account part of this " + std::string(kind) +
                                " ARN is empty; it must be the 12-digit AWS account id");
  }
  return std::string_view(arn.resource);
}

struct GeographyName {
  Geography geography;
  std::string_view prefix;
};
constexpr std::array<GeographyName, 7> kGeographies = {{
    {Geography::kUs, "us"},
    {Geography::kEu, "eu"},
    {Geography::kApac, "apac"},
    {Geography::kGlobal, "global"},
    {Geography::kUsGov, "us-gov"},
    {Geography::kJp, "jp"},
    {Geography::kAu, "au"},
}};

std::optional<Geography> GeographyFromPrefix(std::string_view prefix) {
  for (const GeographyName& g : kGeographies) {
    if (g.prefix == prefix) return g.geography;
  }
  return std::nullopt;
}

constexpr size_t kMaxModelIdLength = 256;
constexpr size_t kMaxProfileIdLength = 64;

// [a-z0-9-]{1,63}
bool IsModelSegment(std::string_view s) {
  return !s.empty() && s.size() <= 63 && AllOf(s, IsLowerAlnumDash);
}

Status CheckProfileId(std::string_view id, std::string_view what) {
  if (id.empty() || id.size() > kMaxProfileIdLength || !AllOf(id, IsProfileIdChar)) {
    return InvalidArgumentError("the " + std::string(what) + " id " + QuoteForMessage(id) +
                                " must be 1 to 64 letters, digits, '-', ':' or '.'");
  }
  return Status::Ok();
}

constexpr std::string_view kModelTargetForms =
    "a model id (anthropic.claude-3-haiku-20240307-v1:0), an inference profile id "
    "(us.anthropic.claude-3-5-sonnet-20240620-v1:0), or the ARN of a foundation model, "
    "inference profile, application inference profile, provisioned model, custom model, "
    "imported model, prompt or prompt router";

}  // namespace

// ---------------------------------------------------------------- Arn

std::string Arn::ToString() const {
  return "arn:" + partition + ":" + service + ":" + region + ":" + account + ":" + resource;
}

Result<Arn> ParseArn(std::string_view text) {
  QUARRY_RETURN_IF_ERROR(CheckBareText(text, "ARN", kMaxArnLength));
  if (!text.starts_with("arn:")) {
    if (text.size() >= 4 && EqualsIgnoreAsciiCase(text.substr(0, 4), "arn:")) {
      return InvalidArgumentError("ARNs start with lower-case 'arn:', not " +
                                  QuoteForMessage(text.substr(0, 4)) +
                                  "; copy the ARN again from the AWS console");
    }
    return InvalidArgumentError(QuoteForMessage(text) + " is not an ARN; ARNs look like " +
                                std::string(kGenericShape) + ", e.g. " +
                                "arn:aws:bedrock:us-east-2:123456789012:agent-alias/"
                                "ABCD1234EF/GHIJ5678KL");
  }
  // The resource (sixth part) may itself contain ':'.
  std::array<std::string_view, 6> parts;
  size_t start = 0;
  for (int i = 0; i < 5; ++i) {
    const size_t colon = text.find(':', start);
    if (colon == std::string_view::npos) {
      return InvalidArgumentError("an ARN has six parts separated by ':' (" +
                                  std::string(kGenericShape) + "); " + QuoteForMessage(text) +
                                  " has " + std::to_string(i + 1));
    }
    parts[i] = text.substr(start, colon - start);
    start = colon + 1;
  }
  parts[5] = text.substr(start);

  Arn arn{std::string(parts[1]), std::string(parts[2]), std::string(parts[3]),
          std::string(parts[4]), std::string(parts[5])};

  if (FindPartition(arn.partition) == nullptr) {
    const std::string lower = AsciiToLower(arn.partition);
    if (lower != arn.partition && FindPartition(lower) != nullptr) {
      return InvalidArgumentError("the partition " + QuoteForMessage(arn.partition) +
                                  " must be lower case: '" + lower + "'");
    }
    return InvalidArgumentError("the partition part " + QuoteForMessage(arn.partition) +
                                " is not an AWS partition; it is 'aws' for commercial regions (" +
                                "known: " + KnownPartitionList() + ")");
  }
  if (arn.service.empty()) {
    return InvalidArgumentError("the service part of the ARN is empty; for Bedrock it is "
                                "'bedrock' (" + std::string(kGenericShape) + ")");
  }
  if (!AllOf(arn.service, IsLowerAlnumDash)) {
    return InvalidArgumentError("the service part " + QuoteForMessage(arn.service) +
                                " may hold only lower-case letters, digits and '-' "
                                "(for Bedrock it is 'bedrock')");
  }
  if (!arn.region.empty()) {
    Result<Region> region = ParseRegion(arn.region);
    if (!region.ok()) return region.status().WithContext("the region part of the ARN");
    if (region->partition().name != arn.partition) {
      return InvalidArgumentError("the region " + QuoteForMessage(arn.region) +
                                  " belongs to partition " +
                                  std::string(region->partition().name) + ", but the ARN says " +
                                  QuoteForMessage(arn.partition) + "; use arn:" +
                                  std::string(region->partition().name) + ":...");
    }
  }
  if (!arn.account.empty() && !(arn.account.size() == 12 && AllOf(arn.account, IsAsciiDigit))) {
    std::string problem = AllOf(arn.account, IsAsciiDigit)
                              ? "has " + std::to_string(arn.account.size()) + " digits"
                              : "has characters other than digits";
    return InvalidArgumentError("the account part " + QuoteForMessage(arn.account) + " " +
                                problem + "; it must be the 12-digit AWS account id, "
                                "e.g. 123456789012 (keep any leading zeros)");
  }
  if (arn.resource.empty()) {
    return InvalidArgumentError("the resource part of the ARN (after the fifth ':') is empty; " +
                                std::string(kGenericShape));
  }
  return arn;
}

// ---------------------------------------------------------------- Agents

bool IsValidAgentId(std::string_view id) { return AgentIdProblem(id).empty(); }

std::string AgentAliasArn::ToString() const {
  return "arn:" + partition + ":bedrock:" + region + ":" + account + ":agent-alias/" + agent_id +
         "/" + alias_id;
}

Result<AgentAliasArn> ParseAgentAliasArn(std::string_view text) {
  QUARRY_RETURN_IF_ERROR(CheckBareText(text, "agent alias ARN", kMaxArnLength));
  if (!text.starts_with("arn:") && IsValidAgentId(text)) {
    return InvalidArgumentError(
        QuoteForMessage(text) + " is an agent id or alias id, not an ARN; connect the agent alias "
        "ARN, " + std::string(kAliasShape) + ", " + std::string(kFromAliasesTab));
  }
  Result<Arn> parsed = ParseArn(text);
  if (!parsed.ok()) {
    return InvalidArgumentError(parsed.status().message() + " (an agent alias ARN looks like " +
                                std::string(kAliasShape) + ")");
  }
  const Arn& arn = *parsed;
  const size_t slash = arn.resource.find('/');
  const std::string_view type = std::string_view(arn.resource).substr(0, slash);
  const std::string_view rest =
      slash == std::string::npos ? std::string_view() : std::string_view(arn.resource).substr(slash + 1);

  if (arn.service != "bedrock") {
    if (arn.service.starts_with("bedrock")) {
      return InvalidArgumentError("the service part is " + QuoteForMessage(arn.service) +
                                  ", but agent alias ARNs say 'bedrock': " +
                                  WithPlaceholders(arn, "{agent-id}", "{alias-id}"));
    }
    return InvalidArgumentError("this is an ARN of the " + QuoteForMessage(arn.service) +
                                " service, not a Bedrock agent alias ARN; connect the agent "
                                "alias ARN, " + std::string(kAliasShape) + ", " +
                                std::string(kFromAliasesTab));
  }
  if (type == "agent") {
    const std::string_view agent_id = rest.substr(0, rest.find('/'));
    return BaseAgentArnError(arn, agent_id);
  }
  if (IsMisspelledAgentAlias(type)) {
    return InvalidArgumentError("the resource type is written " + QuoteForMessage(type) +
                                "; it must be 'agent-alias' (lower case, with a hyphen): " +
                                MisspelledAliasFix(arn, rest));
  }
  if (type == "knowledge-base") {
    return InvalidArgumentError(
        "this is a knowledge base ARN; knowledge bases are attached to the agent in AWS, and the "
        "app connects the agent itself by its agent alias ARN, " + std::string(kAliasShape) +
        ", " + std::string(kFromAliasesTab));
  }
  if (type == "foundation-model" || type == "inference-profile" ||
      type == "application-inference-profile") {
    return InvalidArgumentError(
        "this is a model ARN (" + std::string(type) +
        "); choose models in an AI service instead, and connect agents by their agent alias "
        "ARN, " + std::string(kAliasShape));
  }
  if (type != "agent-alias") {
    return InvalidArgumentError("the resource part " + QuoteForMessage(arn.resource) +
                                " is not an agent alias; an agent alias ARN ends in "
                                "agent-alias/{agent-id}/{alias-id} (" + std::string(kAliasShape) +
                                "); copy it " + std::string(kFromAliasesTab));
  }
  if (slash == std::string::npos) {
    return InvalidArgumentError("the agent id and alias id are missing: " +
                                WithPlaceholders(arn, "{agent-id}", "{alias-id}"));
  }
  QUARRY_RETURN_IF_ERROR(RequireBedrockRegionAndAccount(arn, "agent alias"));
  AgentAliasArn out{arn.partition, arn.region, arn.account, "", ""};
  QUARRY_RETURN_IF_ERROR(CheckAgentAliasResource(arn, rest, &out.agent_id, &out.alias_id));
  return out;
}

// ---------------------------------------------------------------- Models

Result<FoundationModelId> ParseFoundationModelId(std::string_view text) {
  QUARRY_RETURN_IF_ERROR(CheckBareText(text, "model id", kMaxModelIdLength));
  const std::string lower = AsciiToLower(text);
  if (lower != text) {
    return InvalidArgumentError("the model id " + QuoteForMessage(text) +
                                " has upper-case letters; model ids are lower case, e.g. "
                                "anthropic.claude-3-haiku-20240307-v1:0");
  }
  const std::vector<std::string_view> colon_parts = Split(text, ':');
  const std::vector<std::string_view> dot_parts = Split(colon_parts[0], '.');
  const bool shape_ok = dot_parts.size() >= 2 && dot_parts.size() <= 4 && colon_parts.size() <= 3;
  bool segments_ok = shape_ok;
  for (std::string_view s : dot_parts) segments_ok = segments_ok && IsModelSegment(s);
  for (size_t i = 1; i < colon_parts.size(); ++i) {
    segments_ok = segments_ok && IsModelSegment(colon_parts[i]);
  }
  if (!segments_ok) {
    return InvalidArgumentError(
        QuoteForMessage(text) + " is not a foundation model id; model ids look like "
        "provider.name-version[:n] in lower-case letters, digits and '-', e.g. "
        "anthropic.claude-3-haiku-20240307-v1:0 (ListFoundationModels lists them)");
  }
  return FoundationModelId{std::string(text), std::string(dot_parts[0])};
}

std::string_view GeographyPrefix(Geography geography) {
  for (const GeographyName& g : kGeographies) {
    if (g.geography == geography) return g.prefix;
  }
  return "";
}

Result<SystemProfileId> ParseSystemProfileId(std::string_view text) {
  QUARRY_RETURN_IF_ERROR(CheckBareText(text, "inference profile id", kMaxProfileIdLength));
  const size_t dot = text.find('.');
  const std::optional<Geography> geography =
      dot == std::string_view::npos ? std::nullopt : GeographyFromPrefix(text.substr(0, dot));
  if (!geography) {
    return InvalidArgumentError(
        QuoteForMessage(text) + " is not a cross-Region inference profile id; those are a "
        "geography prefix (us., eu., apac., global., us-gov., jp., au.) followed by a model id, "
        "e.g. us.anthropic.claude-3-5-sonnet-20240620-v1:0");
  }
  Result<FoundationModelId> model = ParseFoundationModelId(text.substr(dot + 1));
  if (!model.ok()) return model.status().WithContext("after the geography prefix");
  return SystemProfileId{std::string(text), *geography, model->id};
}

Result<std::string> SystemProfileIdForRegion(std::string_view foundation_model_id,
                                             const Region& region) {
  if (ParseSystemProfileId(foundation_model_id).ok()) {
    return InvalidArgumentError(QuoteForMessage(foundation_model_id) +
                                " is already an inference profile id; use it as it is");
  }
  QUARRY_ASSIGN_OR_RETURN(FoundationModelId model, ParseFoundationModelId(foundation_model_id));
  const std::string& name = region.name();
  std::optional<Geography> geography;
  if (region.partition().name == "aws-us-gov") {
    geography = Geography::kUsGov;
  } else if (region.partition().name == "aws") {
    if (name.starts_with("us-")) geography = Geography::kUs;
    if (name.starts_with("eu-")) geography = Geography::kEu;
    if (name.starts_with("ap-")) geography = Geography::kApac;
  }
  if (!geography) {
    return NotFoundError("no geographic inference profile is known for region " + name +
                         "; try the global profile global." + model.id +
                         ", or list the profiles this region offers with ListInferenceProfiles");
  }
  return std::string(GeographyPrefix(*geography)) + "." + model.id;
}

// ---------------------------------------------------------------- Describe

std::string_view ArnKindName(ArnKind kind) {
  switch (kind) {
    case ArnKind::kAgentAlias: return "agent-alias";
    case ArnKind::kAgent: return "agent";
    case ArnKind::kFoundationModel: return "foundation-model";
    case ArnKind::kInferenceProfile: return "inference-profile";
    case ArnKind::kApplicationInferenceProfile: return "application-inference-profile";
    case ArnKind::kKnowledgeBase: return "knowledge-base";
    case ArnKind::kProvisionedModel: return "provisioned-model";
    case ArnKind::kCustomModel: return "custom-model";
    case ArnKind::kCustomModelDeployment: return "custom-model-deployment";
    case ArnKind::kImportedModel: return "imported-model";
    case ArnKind::kPrompt: return "prompt";
    case ArnKind::kPromptRouter: return "prompt-router";
    case ArnKind::kSageMakerEndpoint: return "sagemaker-endpoint";
    case ArnKind::kOther: return "other";
  }
  return "other";
}

Result<ArnDescription> DescribeArn(std::string_view text) {
  QUARRY_ASSIGN_OR_RETURN(Arn arn, ParseArn(text));
  ArnDescription d;
  d.arn = arn;
  const size_t slash = arn.resource.find('/');
  const std::string_view type = std::string_view(arn.resource).substr(0, slash);
  const std::string_view rest = slash == std::string::npos
                                    ? std::string_view()
                                    : std::string_view(arn.resource).substr(slash + 1);
  if (arn.service == "sagemaker" && type == "endpoint" && !rest.empty()) {
    d.kind = ArnKind::kSageMakerEndpoint;
    d.resource_id = std::string(rest);
    return d;
  }
  if (arn.service != "bedrock" || slash == std::string::npos) return d;  // kOther

  if (type == "agent-alias") {
    QUARRY_ASSIGN_OR_RETURN(AgentAliasArn alias, ParseAgentAliasArn(text));
    d.kind = ArnKind::kAgentAlias;
    d.agent_id = alias.agent_id;
    d.alias_id = alias.alias_id;
  } else if (type == "agent") {
    QUARRY_RETURN_IF_ERROR(RequireBedrockRegionAndAccount(arn, "agent"));
    if (std::string problem = AgentIdProblem(rest); !problem.empty()) {
      return InvalidArgumentError("the agent id " + QuoteForMessage(rest) + " " + problem);
    }
    d.kind = ArnKind::kAgent;
    d.agent_id = std::string(rest);
  } else if (type == "foundation-model") {
    if (arn.region.empty()) {
      return InvalidArgumentError("the region part of this foundation-model ARN is empty; "
                                  "e.g. arn:aws:bedrock:us-east-1::foundation-model/" +
                                  std::string(rest));
    }
    if (!arn.account.empty()) {
      return InvalidArgumentError(
          "foundation-model ARNs have an empty account part (they belong to no account): "
          "arn:" + arn.partition + ":bedrock:" + arn.region + "::foundation-model/" +
          std::string(rest));
    }
    Result<FoundationModelId> model = ParseFoundationModelId(rest);
    if (!model.ok()) return model.status().WithContext("in the foundation-model ARN");
    d.kind = ArnKind::kFoundationModel;
    d.model_id = model->id;
  } else if (type == "inference-profile" || type == "application-inference-profile") {
    const bool system = type == "inference-profile";
    QUARRY_RETURN_IF_ERROR(
        RequireBedrockRegionAndAccount(arn, system ? "inference profile" : "application inference profile"));
    QUARRY_RETURN_IF_ERROR(CheckProfileId(rest, "inference profile"));
    d.kind = system ? ArnKind::kInferenceProfile : ArnKind::kApplicationInferenceProfile;
    d.profile_id = std::string(rest);
    if (system) {
      if (Result<SystemProfileId> p = ParseSystemProfileId(rest); p.ok()) {
        d.geography = p->geography;
        d.model_id = p->model_id;
      }
    }
  } else {
    struct TypeKind {
      std::string_view type;
      ArnKind kind;
    };
    static constexpr std::array<TypeKind, 8> kOthers = {{
        {"knowledge-base", ArnKind::kKnowledgeBase},
        {"provisioned-model", ArnKind::kProvisionedModel},
        {"custom-model", ArnKind::kCustomModel},
        {"custom-model-deployment", ArnKind::kCustomModelDeployment},
        {"imported-model", ArnKind::kImportedModel},
        {"prompt", ArnKind::kPrompt},
        {"prompt-router", ArnKind::kPromptRouter},
        {"default-prompt-router", ArnKind::kPromptRouter},
    }};
    for (const TypeKind& t : kOthers) {
      if (t.type == type && !rest.empty()) {
        d.kind = t.kind;
        d.resource_id = std::string(rest);
      }
    }
  }
  return d;
}

// ---------------------------------------------------------------- ModelTarget

std::string_view ModelTargetKindName(ModelTargetKind kind) {
  switch (kind) {
    case ModelTargetKind::kFoundationModelId: return "foundation-model-id";
    case ModelTargetKind::kFoundationModelArn: return "foundation-model-arn";
    case ModelTargetKind::kSystemProfileId: return "inference-profile-id";
    case ModelTargetKind::kSystemProfileArn: return "inference-profile-arn";
    case ModelTargetKind::kApplicationProfileArn: return "application-inference-profile-arn";
    case ModelTargetKind::kProvisionedModelArn: return "provisioned-model-arn";
    case ModelTargetKind::kCustomModelArn: return "custom-model-arn";
    case ModelTargetKind::kCustomModelDeploymentArn: return "custom-model-deployment-arn";
    case ModelTargetKind::kImportedModelArn: return "imported-model-arn";
    case ModelTargetKind::kPromptArn: return "prompt-arn";
    case ModelTargetKind::kPromptRouterArn: return "prompt-router-arn";
    case ModelTargetKind::kSageMakerEndpointArn: return "sagemaker-endpoint-arn";
  }
  return "";
}

Result<ModelTarget> ClassifyModelTarget(std::string_view model_id) {
  QUARRY_RETURN_IF_ERROR(CheckBareText(model_id, "modelId", kMaxArnLength));
  ModelTarget target{ModelTargetKind::kFoundationModelId, std::string(model_id), std::nullopt, "",
                     "", std::nullopt};
  if (!model_id.starts_with("arn:")) {
    if (Result<SystemProfileId> p = ParseSystemProfileId(model_id); p.ok()) {
      target.kind = ModelTargetKind::kSystemProfileId;
      target.profile_id = p->id;
      target.model_id = p->model_id;
      target.geography = p->geography;
      return target;
    }
    Result<FoundationModelId> m = ParseFoundationModelId(model_id);
    if (!m.ok()) {
      return InvalidArgumentError(m.status().message() + ". A modelId is " +
                                  std::string(kModelTargetForms));
    }
    target.model_id = m->id;
    return target;
  }

  Result<ArnDescription> described = DescribeArn(model_id);
  if (!described.ok()) {
    return InvalidArgumentError(described.status().message() + ". A modelId is " +
                                std::string(kModelTargetForms));
  }
  const ArnDescription& d = *described;
  target.arn = d.arn;
  const std::string_view id = d.resource_id;
  auto bad_id = [&](std::string_view shape) {
    return InvalidArgumentError("the " + std::string(ArnKindName(d.kind)) + " id " +
                                QuoteForMessage(id) + " must be " + std::string(shape));
  };
  switch (d.kind) {
    case ArnKind::kFoundationModel:
      target.kind = ModelTargetKind::kFoundationModelArn;
      target.model_id = d.model_id;
      return target;
    case ArnKind::kInferenceProfile:
      target.kind = ModelTargetKind::kSystemProfileArn;
      target.profile_id = d.profile_id;
      target.model_id = d.model_id;
      target.geography = d.geography;
      return target;
    case ArnKind::kApplicationInferenceProfile:
      target.kind = ModelTargetKind::kApplicationProfileArn;
      target.profile_id = d.profile_id;
      return target;
    case ArnKind::kAgentAlias:
    case ArnKind::kAgent:
      return InvalidArgumentError(
          "this is an agent ARN, not a model; agents are invoked with InvokeAgent: connect the "
          "agent by its agent alias ARN in App Intelligence, and use a model id or inference "
          "profile here");
    case ArnKind::kSageMakerEndpoint:
      if (d.arn.partition != "aws" || d.arn.region.empty() || d.arn.account.empty() ||
          !AllOf(id, [](char c) { return IsAsciiAlnum(c) || c == '-'; })) {
        return InvalidArgumentError("the SageMaker endpoint ARN " + QuoteForMessage(model_id) +
                                    " must look like arn:aws:sagemaker:{region}:{account}:"
                                    "endpoint/{name}");
      }
      target.kind = ModelTargetKind::kSageMakerEndpointArn;
      return target;
    default:
      break;
  }
  // The remaining kinds all carry region and account.
  if (d.kind != ArnKind::kOther && d.kind != ArnKind::kKnowledgeBase) {
    QUARRY_RETURN_IF_ERROR(RequireBedrockRegionAndAccount(d.arn, ArnKindName(d.kind)));
  }
  switch (d.kind) {
    case ArnKind::kProvisionedModel:
      if (!IsLowerAlnumOfLength(id, 12)) return bad_id("12 lower-case letters or digits");
      target.kind = ModelTargetKind::kProvisionedModelArn;
      return target;
    case ArnKind::kImportedModel:
      if (!IsLowerAlnumOfLength(id, 12)) return bad_id("12 lower-case letters or digits");
      target.kind = ModelTargetKind::kImportedModelArn;
      return target;
    case ArnKind::kCustomModelDeployment:
      if (!IsLowerAlnumOfLength(id, 12)) return bad_id("12 lower-case letters or digits");
      target.kind = ModelTargetKind::kCustomModelDeploymentArn;
      return target;
    case ArnKind::kCustomModel: {
      const size_t s = id.rfind('/');
      if (s == std::string_view::npos || !IsLowerAlnumOfLength(id.substr(s + 1), 12) ||
          !ParseFoundationModelId(id.substr(0, s)).ok()) {
        return bad_id("{base model id}/{12 lower-case letters or digits}");
      }
      target.kind = ModelTargetKind::kCustomModelArn;
      target.model_id = std::string(id.substr(0, s));
      return target;
    }
    case ArnKind::kPrompt: {
      const size_t colon = id.find(':');
      const std::string_view prompt = id.substr(0, colon);
      const std::string_view version =
          colon == std::string_view::npos ? std::string_view("0") : id.substr(colon + 1);
      if (!IsValidAgentId(prompt) || version.empty() || version.size() > 5 ||
          !AllOf(version, IsAsciiDigit)) {
        return bad_id("10 letters or digits, optionally followed by :{version}");
      }
      target.kind = ModelTargetKind::kPromptArn;
      return target;
    }
    case ArnKind::kPromptRouter:
      QUARRY_RETURN_IF_ERROR(CheckProfileId(id, "prompt router"));
      target.kind = ModelTargetKind::kPromptRouterArn;
      return target;
    default:
      return InvalidArgumentError("an ARN of kind " + std::string(ArnKindName(d.kind)) +
                                  " (" + QuoteForMessage(d.arn.resource, 60) +
                                  ") cannot be invoked as a model. A modelId is " +
                                  std::string(kModelTargetForms));
  }
}

}  // namespace quarry::aws
