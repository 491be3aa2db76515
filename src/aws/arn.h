#pragma once
// Amazon Resource Names, Bedrock identifiers and InvokeModel targets.
//
// Three layers:
//   1. ParseArn(): the generic arn:partition:service:region:account:resource
//      shape, strictly validated (known partition, valid region of that
//      partition or empty, account empty or 12 digits).
//   2. Bedrock recognisers: ParseAgentAliasArn() (what an app connects an agent
//      with), foundation-model ids and ARNs, inference profile ids and ARNs,
//      and DescribeArn(), which names the kind of any Bedrock ARN.
//   3. ClassifyModelTarget(): what an InvokeModel / Converse `modelId` is.
//
// Every error is kInvalidArgument with a message that says what is wrong and
// how to fix it; where the input is almost right (a base agent ARN, a
// knowledge-base ARN, quotes pasted around it, `agentalias`), the message
// shows the exact shape needed, filled in with the input's own region, account
// and ids. User text in messages is quoted with internal::QuoteForMessage().
//
// Facts: aws-protocol.md §10; botocore models bedrock-agent (AgentArn,
// AgentAliasArn, AgentAliasId), bedrock (FoundationModelArn,
// InferenceProfileArn, InferenceProfileId), bedrock-runtime
// (InvokeModelIdentifier); geography prefixes from the Bedrock user guide
// (cross-region inference) and the AWS CDK bedrock-alpha
// CrossRegionInferenceProfileRegion enum (us, eu, apac, global, us-gov, jp, au).
//
// Thread safety: pure functions over values.

#include <optional>
#include <string>
#include <string_view>

#include "aws/region.h"
#include "common/status.h"

namespace quarry::aws {

// The six parts of an ARN. `resource` is everything after the fifth ':'.
struct Arn {
  std::string partition;  // "aws"
  std::string service;    // "bedrock"
  std::string region;     // "us-east-1", or "" for global resources
  std::string account;    // 12 digits, or "" (foundation models, S3, ...)
  std::string resource;   // "agent-alias/ABCD1234EF/GHIJ5678KL"

  std::string ToString() const;
  friend bool operator==(const Arn&, const Arn&) = default;
};

// Maximum accepted ARN length (the Bedrock models' limit).
inline constexpr size_t kMaxArnLength = 2048;

// Parses and validates the generic shape. The partition must be a known one;
// the region, when present, must be a region of that partition (ParseRegion);
// the account, when present, 12 digits; service and resource non-empty.
// No trimming: surrounding whitespace or quotes are reported as such.
Result<Arn> ParseArn(std::string_view text);

// arn:{partition}:bedrock:{region}:{account}:agent-alias/{agent_id}/{alias_id}
struct AgentAliasArn {
  std::string partition;
  std::string region;
  std::string account;
  std::string agent_id;  // [0-9a-zA-Z]{10}
  std::string alias_id;  // [0-9a-zA-Z]{10}, e.g. TSTALIASID (the draft alias)

  std::string ToString() const;
  friend bool operator==(const AgentAliasArn&, const AgentAliasArn&) = default;
};

// Accepts exactly an agent alias ARN. A base agent ARN is refused with
// "this is the agent ARN; connect the agent alias ARN,
// arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/{alias-id},
// from the agent's Aliases tab"; other near misses get their own messages.
Result<AgentAliasArn> ParseAgentAliasArn(std::string_view text);

// True when `id` is 10 ASCII letters or digits (agent ids and alias ids).
bool IsValidAgentId(std::string_view id);

// ---- Foundation models and inference profiles ----

// A foundation model id, `provider.name-version[:n]`, as the bedrock model's
// FoundationModelArn pattern allows: 2 to 4 dot-separated segments of
// [a-z0-9-]{1,63}, then up to two ":[a-z0-9-]{1,63}" suffixes.
struct FoundationModelId {
  std::string id;        // "anthropic.claude-3-5-sonnet-20240620-v1:0"
  std::string provider;  // "anthropic"
};
Result<FoundationModelId> ParseFoundationModelId(std::string_view text);

// The geographies of system-defined (cross-Region) inference profiles; the id
// of such a profile is "{prefix}.{foundation model id}".
enum class Geography { kUs, kEu, kApac, kGlobal, kUsGov, kJp, kAu };
// "us", "eu", "apac", "global", "us-gov", "jp", "au".
std::string_view GeographyPrefix(Geography geography);

// A system-defined inference profile id: "us.anthropic.claude-...-v1:0".
struct SystemProfileId {
  std::string id;
  Geography geography;
  std::string model_id;  // the foundation model id after the prefix
};
// Errors when `text` has no known geography prefix or the rest is not a
// foundation model id.
Result<SystemProfileId> ParseSystemProfileId(std::string_view text);

// The system profile id to use instead of `foundation_model_id` when calling
// from `region`: the region's geography (us-gov-* -> "us-gov.", other us-* ->
// "us.", eu-* -> "eu.", ap-* -> "apac.") + the model id. The profile may not
// exist for every model; ListInferenceProfiles is the authority. Errors:
// kInvalidArgument for a bad model id (or one that is already a profile id),
// kNotFound for a region with no known geography (the message suggests the
// "global." profile and ListInferenceProfiles).
Result<std::string> SystemProfileIdForRegion(std::string_view foundation_model_id,
                                             const Region& region);

// ---- Describing any Bedrock ARN ----

enum class ArnKind {
  kAgentAlias,
  kAgent,
  kFoundationModel,
  kInferenceProfile,             // system-defined: inference-profile/{id}
  kApplicationInferenceProfile,  // application-inference-profile/{id}
  kKnowledgeBase,
  kProvisionedModel,
  kCustomModel,
  kCustomModelDeployment,
  kImportedModel,
  kPrompt,
  kPromptRouter,
  kSageMakerEndpoint,
  kOther,  // a valid ARN of some other kind
};
// "agent-alias", "agent", "foundation-model", "inference-profile",
// "application-inference-profile", "knowledge-base", "provisioned-model", ...,
// "other".
std::string_view ArnKindName(ArnKind kind);

struct ArnDescription {
  ArnKind kind = ArnKind::kOther;
  Arn arn;
  std::string agent_id;                  // agent, agent-alias
  std::string alias_id;                  // agent-alias
  std::string model_id;                  // foundation-model; system profile's model
  std::string profile_id;                // inference profiles
  std::optional<Geography> geography;    // system profiles with a known prefix
  std::string resource_id;               // other kinds: the id after the type
};

// Parses any ARN and names its kind. Bedrock resource parts are validated for
// the kinds recognised (agent ids of 10 characters, foundation model ids, ...);
// an ARN of another service or an unknown Bedrock resource type is kOther.
Result<ArnDescription> DescribeArn(std::string_view text);

// ---- InvokeModel / Converse modelId ----

enum class ModelTargetKind {
  kFoundationModelId,           // anthropic.claude-3-haiku-20240307-v1:0
  kFoundationModelArn,          // arn:aws:bedrock:us-east-1::foundation-model/...
  kSystemProfileId,             // us.anthropic.claude-...
  kSystemProfileArn,            // ...:123456789012:inference-profile/us.anthropic...
  kApplicationProfileArn,       // ...:application-inference-profile/abc123
  kProvisionedModelArn,         // ...:provisioned-model/[a-z0-9]{12}
  kCustomModelArn,              // ...:custom-model/{base model}/[a-z0-9]{12}
  kCustomModelDeploymentArn,    // ...:custom-model-deployment/[a-z0-9]{12}
  kImportedModelArn,            // ...:imported-model/[a-z0-9]{12}
  kPromptArn,                   // ...:prompt/[0-9a-zA-Z]{10}[:version]
  kPromptRouterArn,             // ...:(default-)prompt-router/...
  kSageMakerEndpointArn,        // arn:aws:sagemaker:...:endpoint/...
};
std::string_view ModelTargetKindName(ModelTargetKind kind);

struct ModelTarget {
  ModelTargetKind kind;
  std::string text;                    // the modelId as given
  std::optional<Arn> arn;              // for the ARN kinds
  std::string model_id;                // the foundation model, when known
  std::string profile_id;              // inference profiles
  std::optional<Geography> geography;  // system profiles
};

// Classifies an InvokeModel / Converse `modelId` (at most 2048 bytes). What
// the InvokeModelIdentifier pattern allows but we cannot place (e.g. a bare
// provisioned model name) is refused with a message listing the accepted forms.
Result<ModelTarget> ClassifyModelTarget(std::string_view model_id);

}  // namespace quarry::aws
