#include "bedrock/troubleshooting.h"

#include <utility>

#include "aws/arn.h"
#include "aws/region.h"
#include "common/encoding.h"

namespace quarry::bedrock {
namespace {

// Entry ids. Kept in one list so TroubleshootingEntryIds(), the tests and
// docs/troubleshooting.md can be checked against each other.
constexpr std::string_view kAccessDeniedInvokeModel = "access-denied-invoke-model";
constexpr std::string_view kAccessDeniedInvokeAgent = "access-denied-invoke-agent";
constexpr std::string_view kModelAccessNotGranted = "model-access-not-granted";
constexpr std::string_view kOnDemandNotSupported = "on-demand-not-supported";
constexpr std::string_view kInvalidAgentAliasArn = "invalid-agent-alias-arn";
constexpr std::string_view kInvalidModelIdentifier = "invalid-model-identifier";
constexpr std::string_view kResourceNotFound = "resource-not-found";
constexpr std::string_view kRegionMismatch = "region-mismatch";
constexpr std::string_view kCouldNotConnect = "could-not-connect";
constexpr std::string_view kRequestTimedOut = "request-timed-out";
constexpr std::string_view kAgentExecutionTimedOut = "agent-execution-timed-out";
constexpr std::string_view kAliasNoVersion = "agent-alias-no-version";
constexpr std::string_view kThrottled = "throttled";
constexpr std::string_view kQuotaExceeded = "service-quota-exceeded";
constexpr std::string_view kValidationError = "validation-error";
constexpr std::string_view kCredentialsExpired = "credentials-expired";
constexpr std::string_view kCredentialsInvalid = "credentials-invalid";
constexpr std::string_view kClockSkew = "clock-skew";
constexpr std::string_view kBearerTokenNotAccepted = "bearer-token-not-accepted";
constexpr std::string_view kEventStreamBroken = "event-stream-broken";
constexpr std::string_view kEventStreamStalled = "event-stream-stalled";
constexpr std::string_view kModelNotReady = "model-not-ready";
constexpr std::string_view kModelTimeout = "model-timeout";
constexpr std::string_view kModelError = "model-error";
constexpr std::string_view kServiceError = "service-error";
constexpr std::string_view kUnknownError = "unknown-error";
constexpr std::string_view kResponseNotFromAws = "response-not-from-aws";
constexpr std::string_view kTlsCertificateUntrusted = "tls-certificate-untrusted";

constexpr std::string_view kAllIds[] = {
    kAccessDeniedInvokeModel, kAccessDeniedInvokeAgent, kModelAccessNotGranted, kOnDemandNotSupported,
    kInvalidAgentAliasArn,    kInvalidModelIdentifier,  kResourceNotFound,      kRegionMismatch,
    kCouldNotConnect,         kRequestTimedOut,         kAgentExecutionTimedOut, kAliasNoVersion,
    kThrottled,               kQuotaExceeded,           kValidationError,       kCredentialsExpired,
    kCredentialsInvalid,      kClockSkew,               kBearerTokenNotAccepted, kEventStreamBroken,
    kEventStreamStalled,      kModelNotReady,           kModelTimeout,          kModelError,
    kServiceError,            kUnknownError,            kResponseNotFromAws,    kTlsCertificateUntrusted,
};

// ---- Reading the error ----

struct Facts {
  const aws::AwsError& error;
  const CallContext& context;
  std::string lower_message{};  // for keyword matching
  std::string lower_code{};
  std::string region{};         // context.region, else from the ARNs involved
  std::string partition = "aws";
  std::string account{};        // from the identity, the alias ARN or the message's resource
  std::string identity{};       // the denied principal
  std::string denied_action{};  // "bedrock:InvokeModel" from an AccessDenied message
  std::string denied_resource{};
  std::string model_id{};       // the foundation model, when known
  std::string profile_id{};     // when the target is a system profile
  bool target_is_profile = false;
  bool target_is_application_profile = false;
  bool is_agent_call = false;
};

bool Has(const std::string& haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

bool CodeIs(const Facts& f, std::string_view code) { return EqualsIgnoreAsciiCase(f.error.code, code); }

// The text after `marker` up to the next space (or the end), trimmed of
// sentence punctuation; "" when `marker` is absent.
std::string WordAfter(std::string_view text, std::string_view marker) {
  size_t pos = text.find(marker);
  if (pos == std::string_view::npos) return "";
  std::string_view rest = text.substr(pos + marker.size());
  size_t end = rest.find(' ');
  std::string_view word = rest.substr(0, end);
  while (!word.empty() && (word.back() == '.' || word.back() == ',' || word.back() == ';')) word.remove_suffix(1);
  return std::string(word);
}

std::string AccountOfArn(std::string_view arn) {
  Result<aws::Arn> parsed = aws::ParseArn(arn);
  return parsed.ok() ? parsed.value().account : "";
}

Facts GatherFacts(const aws::AwsError& error, const CallContext& context) {
  Facts f{error, context, AsciiToLower(error.message), AsciiToLower(error.code)};
  f.region = context.region;
  f.is_agent_call = context.operation == "InvokeAgent" || context.operation == "GetAgentAlias" ||
                    error.service == "bedrock-agent-runtime" || !context.agent_alias_arn.empty();

  // "User: arn:aws:iam::123:user/x is not authorized to perform: bedrock:InvokeModel on resource: arn:..."
  f.identity = WordAfter(error.message, "User: ");
  if (f.identity.empty()) f.identity = context.identity_arn;
  f.denied_action = WordAfter(error.message, "perform: ");
  f.denied_resource = WordAfter(error.message, "resource: ");

  if (Result<aws::Arn> id = aws::ParseArn(f.identity); id.ok()) {
    f.partition = id.value().partition;
    f.account = id.value().account;
  }
  if (Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(context.agent_alias_arn); alias.ok()) {
    if (f.account.empty()) f.account = alias.value().account;
    if (f.region.empty()) f.region = alias.value().region;
    f.partition = alias.value().partition;
  }
  if (f.account.empty()) f.account = AccountOfArn(f.denied_resource);

  // The model: the context's target, else the one the message names.
  std::string target_text = context.model_id;
  if (target_text.empty()) target_text = WordAfter(error.message, "model ID ");
  if (target_text.empty() && Has(f.denied_resource, "foundation-model/")) target_text = f.denied_resource;
  if (target_text.empty() && Has(f.denied_resource, "inference-profile/")) target_text = f.denied_resource;
  if (Result<aws::ModelTarget> target = aws::ClassifyModelTarget(target_text); target.ok()) {
    const aws::ModelTarget& t = target.value();
    f.model_id = t.model_id;
    f.profile_id = t.profile_id;
    f.target_is_profile = t.kind == aws::ModelTargetKind::kSystemProfileId ||
                          t.kind == aws::ModelTargetKind::kSystemProfileArn ||
                          t.kind == aws::ModelTargetKind::kApplicationProfileArn;
    f.target_is_application_profile = t.kind == aws::ModelTargetKind::kApplicationProfileArn;
    if (t.arn) {
      if (f.region.empty()) f.region = t.arn->region;
      if (f.account.empty()) f.account = t.arn->account;
    }
  } else if (!target_text.empty()) {
    f.model_id = target_text;
  }
  return f;
}

// ---- Describing what happened ----

std::string Or(const std::string& value, std::string_view fallback) {
  return value.empty() ? std::string(fallback) : value;
}

// "InvokeModel in us-east-1 for model X failed: ThrottlingException (HTTP 429,
// request id abc): Too many requests".
std::string WhatHappened(const Facts& f) {
  std::string out = Or(f.context.operation, "The call");
  if (!f.region.empty()) out += " in " + f.region;
  if (!f.context.model_id.empty()) {
    out += " for model " + f.context.model_id;
  } else if (!f.context.agent_alias_arn.empty()) {
    out += " for agent alias " + f.context.agent_alias_arn;
  }
  if (!f.context.endpoint_url.empty()) out += " (endpoint " + f.context.endpoint_url + ")";
  out += " failed: ";
  out += Or(f.error.code, "unknown error");
  if (f.error.http_status > 0) {
    out += " (HTTP " + std::to_string(f.error.http_status);
  } else {
    out += f.error.timeout ? " (no HTTP response: timed out" : " (no HTTP response";
  }
  if (!f.error.request_id.empty()) out += ", request id " + f.error.request_id;
  out += ")";
  if (f.error.in_stream) out += " inside the response stream";
  if (!f.error.message.empty()) out += ": " + f.error.message;
  if (!f.identity.empty() && !Has(f.error.message, f.identity)) out += " [caller " + f.identity + "]";
  return out;
}

TroubleshootingEntry Make(const Facts& f, std::string_view id, std::string title) {
  TroubleshootingEntry e;
  e.id = std::string(id);
  e.title = std::move(title);
  e.what_happened = WhatHappened(f);
  return e;
}

std::string RegionOr(const Facts& f) { return Or(f.region, "{region}"); }
std::string AccountOr(const Facts& f) { return Or(f.account, "{account}"); }

// The system profile id for the model in the facts' region, or "".
std::string ProfileIdFor(const Facts& f, std::string* note) {
  if (f.model_id.empty()) return "";
  Result<aws::Region> region = aws::ParseRegion(f.region);
  if (!region.ok()) {
    if (note) *note = "the region is unknown, so the geography prefix (us., eu., apac., global.) cannot be chosen";
    return "";
  }
  Result<std::string> id = aws::SystemProfileIdForRegion(f.model_id, region.value());
  if (!id.ok()) {
    if (note) *note = id.status().message();
    return "";
  }
  return id.value();
}

// ---- The entries ----

TroubleshootingEntry AccessDeniedInvokeModel(const Facts& f) {
  TroubleshootingEntry e = Make(f, kAccessDeniedInvokeModel, "Access denied: the IAM identity may not invoke this model");
  const std::string region = RegionOr(f);
  const std::string model = Or(f.model_id, "{model-id}");
  const std::string action = f.denied_action.empty() ? std::string("bedrock:InvokeModel") : f.denied_action;
  e.what_happened += ". Denied action: " + action;
  if (!f.denied_resource.empty()) e.what_happened += " on " + f.denied_resource;
  if (!f.identity.empty()) e.what_happened += "; denied identity: " + f.identity;
  e.likely_causes = {
      "The policy attached to " + Or(f.identity, "the IAM user or role whose keys Quarry uses") +
          " does not allow " + action + ".",
      "The policy allows the action but its Resource list does not cover this model or inference profile in " +
          region + ".",
      "An explicit Deny (identity policy, permission boundary or organisation SCP) overrides the Allow.",
      "Quarry is using different access keys than the ones you gave the permission to.",
  };
  std::string resources;
  if (f.target_is_profile) {
    const std::string profile_resource =
        f.target_is_application_profile
            ? "arn:" + f.partition + ":bedrock:" + region + ":" + AccountOr(f) + ":application-inference-profile/*"
            : "arn:" + f.partition + ":bedrock:" + region + ":" + AccountOr(f) + ":inference-profile/" +
                  Or(f.profile_id, "{profile-id}");
    resources = "\"" + profile_resource + "\" and \"arn:" + f.partition + ":bedrock:*::foundation-model/" + model +
                "\" (an inference profile needs the profile ARN AND the foundation-model ARN in every destination "
                "region it routes to)";
  } else {
    resources = "\"arn:" + f.partition + ":bedrock:" + region + "::foundation-model/" + model +
                "\" (foundation-model ARNs have an empty account field)";
  }
  e.how_to_fix = {
      "Allow bedrock:InvokeModel (used by InvokeModel and Converse) and bedrock:InvokeModelWithResponseStream "
      "(used by the streaming calls) for " + Or(f.identity, "the IAM identity Quarry uses") + ".",
      "Scope the Resource to " + resources + ".",
      "A least-privilege statement looks like {\"Effect\":\"Allow\",\"Action\":[\"bedrock:InvokeModel\","
      "\"bedrock:InvokeModelWithResponseStream\"],\"Resource\":[\"arn:" + f.partition + ":bedrock:" + region +
          "::foundation-model/*\",\"arn:" + f.partition + ":bedrock:" + region + ":" + AccountOr(f) +
          ":inference-profile/*\"]}.",
      "Make sure the policy is attached to that identity, and that no explicit Deny matches; then check the "
      "access key id in the provider settings belongs to it (`aws sts get-caller-identity`).",
  };
  return e;
}

TroubleshootingEntry AccessDeniedInvokeAgent(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kAccessDeniedInvokeAgent, "Access denied: the IAM identity may not invoke this Bedrock agent");
  const std::string alias_arn =
      !f.context.agent_alias_arn.empty()
          ? f.context.agent_alias_arn
          : (!f.denied_resource.empty() ? f.denied_resource
                                        : "arn:" + f.partition + ":bedrock:" + RegionOr(f) + ":" + AccountOr(f) +
                                              ":agent-alias/{agent-id}/{alias-id}");
  e.what_happened += ". Needed: bedrock:InvokeAgent on " + alias_arn;
  if (!f.identity.empty()) e.what_happened += "; denied identity: " + f.identity;
  e.likely_causes = {
      "The IAM user or role has no policy granting bedrock:InvokeAgent.",
      "A policy with that permission exists but is not attached to " + Or(f.identity, "the identity") + ".",
      "The policy's Resource does not match the agent alias ARN (for example it names the agent ARN, another "
      "alias, or another region or account).",
      "The access keys configured in Quarry belong to a different user than the one you granted.",
  };
  e.how_to_fix = {
      "Add bedrock:InvokeAgent to a policy attached to the user whose keys are on the Bedrock provider.",
      "Make the Resource match the alias ARN " + alias_arn + ", or a pattern such as arn:" + f.partition +
          ":bedrock:" + RegionOr(f) + ":" + AccountOr(f) + ":agent-alias/*.",
      "Confirm the access key id in Quarry belongs to that user (`aws sts get-caller-identity` with the same keys).",
  };
  return e;
}

TroubleshootingEntry ModelAccessNotGranted(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kModelAccessNotGranted, "Model access not granted: the account has not enabled this model");
  const std::string region = RegionOr(f);
  e.likely_causes = {
      "Access to " + Or(f.model_id, "this model") + " has not been requested or granted for the account in " + region +
          " (each model, and for some providers a use-case form, must be enabled per region).",
      "The request for access is still pending, or was declined.",
      "For an inference profile: access is missing in one of the destination regions it routes to.",
  };
  e.how_to_fix = {
      "Open the Bedrock console in " + region + ", go to Model access, and enable " + Or(f.model_id, "the model") +
          " (for Anthropic models, submit the use-case details when asked).",
      "Wait until its status is Access granted, then retry.",
      "If the model is granted, check that the call goes to " + region + " and the right account.",
  };
  return e;
}

TroubleshootingEntry OnDemandNotSupported(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kOnDemandNotSupported, "This model cannot be called on demand: use an inference profile");
  std::string note;
  const std::string profile = ProfileIdFor(f, &note);
  if (!profile.empty()) e.what_happened += ". Use the inference profile id " + profile + " instead.";
  e.likely_causes = {
      "The model id " + Or(f.model_id, "given") +
          " names a model that Bedrock serves only through inference profiles (cross-region inference); newer "
          "Claude models such as Claude 3.5 Sonnet v2, 3.7 Sonnet and Sonnet 4 are like this.",
  };
  if (!profile.empty()) {
    e.how_to_fix.push_back("Set the model to the system inference profile " + profile + " (the geography prefix of " +
                           RegionOr(f) + " plus the model id), or its ARN.");
  } else {
    e.how_to_fix.push_back("Set the model to a system inference profile id: the geography prefix (us., eu., apac., "
                           "or global.) followed by the model id" +
                           (note.empty() ? std::string() : " (" + note + ")") + ".");
  }
  e.how_to_fix.push_back("List the profiles that exist with ListInferenceProfiles (`aws bedrock "
                         "list-inference-profiles --region " + RegionOr(f) +
                         "`) or pick the model in Quarry's catalogue, which offers the profile automatically.");
  e.how_to_fix.push_back("Grant IAM access to the profile ARN and to the foundation model in every destination "
                         "region of the profile.");
  return e;
}

TroubleshootingEntry InvalidAgentAliasArn(const Facts& f, const Status& parse_status) {
  TroubleshootingEntry e =
      Make(f, kInvalidAgentAliasArn, "Invalid agent alias ARN: Quarry needs the ARN of an agent alias");
  e.what_happened += ". The configured ARN " + f.context.agent_alias_arn + " is not an agent alias ARN: " +
                     std::string(parse_status.message());
  e.likely_causes = {
      "The base agent ARN (…:agent/{agent-id}) was pasted instead of an alias ARN (…:agent-alias/{agent-id}/{alias-id}).",
      "A typo, missing characters, or extra quotes or spaces around the ARN.",
      "An ARN of another resource (a knowledge base, a model) was used.",
  };
  e.how_to_fix = {
      "Use the shape arn:aws:bedrock:{region}:{account}:agent-alias/{agent-id}/{alias-id}, for example "
      "arn:aws:bedrock:us-east-2:123456789012:agent-alias/ABCD1234EF/GHIJ5678KL.",
      "Copy the ARN from the agent's Aliases section in the Bedrock console rather than typing it.",
      "Check the region in the ARN matches the region of the Bedrock provider.",
  };
  return e;
}

TroubleshootingEntry InvalidModelIdentifier(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kInvalidModelIdentifier, "Invalid model identifier: Bedrock does not know this model in this region");
  e.likely_causes = {
      "A typo in the model id " + Or(f.context.model_id, "") + " (ids look like anthropic.claude-3-haiku-20240307-v1:0).",
      "The model, or this inference profile, is not offered in " + RegionOr(f) +
          " (models deployed in another region are reported as invalid here).",
      "An inference profile of another geography (for example eu. while calling " + RegionOr(f) + ").",
  };
  e.how_to_fix = {
      "Pick the model from Quarry's model catalogue for " + RegionOr(f) +
          ", or list what exists with `aws bedrock list-foundation-models --region " + RegionOr(f) + "` and "
          "`aws bedrock list-inference-profiles --region " + RegionOr(f) + "`.",
      "Set the provider's region to one where the model is offered.",
  };
  return e;
}

TroubleshootingEntry ResourceNotFound(const Facts& f) {
  TroubleshootingEntry e = Make(f, kResourceNotFound, "Resource not found: the agent, alias or model does not exist here");
  std::string arn_region;
  if (Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(f.context.agent_alias_arn); alias.ok()) {
    arn_region = alias.value().region;
  }
  e.likely_causes = {
      "A typo in the agent id or alias id of " + Or(f.context.agent_alias_arn, "the ARN") + ".",
      "The ARN names another region" + (arn_region.empty() ? std::string() : " (" + arn_region + ")") +
          " or account than the one called" + (f.region.empty() ? std::string() : " (" + f.region + ")") + ".",
      "The agent or the alias was deleted, or the alias id was taken from another agent.",
      "The base agent ARN was used where the alias ARN is needed.",
  };
  e.how_to_fix = {
      "Copy the agent alias ARN again from the agent's Aliases section in the Bedrock console.",
      "Check it has the shape arn:aws:bedrock:{region}:{account}:agent-alias/{agent-id}/{alias-id}.",
      "Check the region in the ARN matches the provider's region, and that the agent and alias still exist "
      "(`aws bedrock-agent list-agent-aliases --agent-id {agent-id} --region {region}`).",
  };
  return e;
}

TroubleshootingEntry RegionMismatch(const Facts& f, const std::string& arn_region) {
  TroubleshootingEntry e = Make(f, kRegionMismatch, "Region mismatch: the agent lives in another region");
  e.what_happened += ". The agent alias ARN is in " + arn_region + " but the Bedrock provider calls " +
                     f.context.region + ".";
  e.likely_causes = {
      "The Bedrock provider is configured for " + f.context.region + " while the agent was created in " + arn_region +
          "; agents are regional and can only be invoked in their own region.",
  };
  e.how_to_fix = {
      "Set the provider's region to " + arn_region + " (or add a second provider for " + arn_region +
          ") and connect the agent through it.",
      "Or connect an agent (alias ARN) that was created in " + f.context.region + ".",
      "Confirm Amazon Bedrock Agents are available in " + arn_region + ".",
  };
  return e;
}

TroubleshootingEntry CouldNotConnect(const Facts& f) {
  TroubleshootingEntry e = Make(f, kCouldNotConnect, "Could not connect to the Bedrock endpoint");
  e.likely_causes = {
      "The endpoint URL " + Or(f.context.endpoint_url, "") + " is wrong, or the region " + RegionOr(f) +
          " does not offer this Bedrock service.",
      "The host has no route to AWS: a firewall, a proxy that is required but not configured, or a VPC without "
      "a NAT gateway or a Bedrock VPC endpoint.",
      "DNS cannot resolve the endpoint (private DNS of a VPC endpoint not enabled, or no DNS).",
      "The provider's region differs from where the agent or model is deployed.",
  };
  e.how_to_fix = {
      "Check the provider's region and any endpoint override; leave the endpoint empty to use the standard one.",
      "From the Quarry host, test the connection (e.g. `curl -sv https://bedrock-runtime." + RegionOr(f) +
          ".amazonaws.com/`); configure the proxy or the VPC endpoint if that fails.",
      "Confirm Bedrock is available in " + RegionOr(f) + ".",
  };
  return e;
}

TroubleshootingEntry TlsCertificateUntrusted(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kTlsCertificateUntrusted, "The endpoint's TLS certificate is not trusted, so nothing was sent");
  const std::string endpoint = Or(f.context.endpoint_url, "the standard AWS endpoint");
  e.likely_causes = {
      "A TLS-inspecting proxy or firewall between Quarry and AWS presents its own certificate, signed by a "
      "corporate CA that this host's trust store does not hold.",
      "The endpoint URL (" + endpoint + ") points at a server with a self-signed or privately signed certificate "
      "(an internal gateway, a test server), or its certificate does not name the host in the URL.",
      "The host's CA store is missing or outdated (the ca-certificates package).",
  };
  e.how_to_fix = {
      "Put the proxy's or private CA's certificate (PEM) in a file and set AWS_CA_BUNDLE to its path (for `quarry "
      "bedrock`, `ca_bundle` in the AWS profile works too), then restart Quarry.",
      "Check the endpoint URL; leave it empty to use the standard endpoint (https://" +
          Or(f.error.service, "bedrock-runtime") + "." + RegionOr(f) + ".amazonaws.com).",
      "Update the system's CA certificates (apt-get install --reinstall ca-certificates). Never turn certificate "
      "verification off: Quarry sends signed requests and agent data over this connection.",
  };
  return e;
}

TroubleshootingEntry ResponseNotFromAws(const Facts& f) {
  TroubleshootingEntry e = Make(f, kResponseNotFromAws,
                                "The error response did not come from AWS: a proxy, gateway or other server answered");
  const std::string endpoint = Or(f.context.endpoint_url, "the standard AWS endpoint");
  e.likely_causes = {
      "An HTTP proxy (HTTPS_PROXY) or a TLS-inspecting firewall between Quarry and AWS refused or failed the request "
      "and answered with its own page (407 proxy authentication, 403 blocked, 502/503/504 upstream failures).",
      "The endpoint URL (" + endpoint + ") points at a server that is not " +
          (f.error.service == "sts" ? std::string("AWS STS") : std::string("Bedrock")) +
          ": a typo, an old emulator address, an internal gateway.",
      "A load balancer, API gateway or VPC endpoint in front of the service returned its own error.",
  };
  e.how_to_fix = {
      "Read the start of the body quoted in the message: it usually names the proxy or gateway that answered.",
      "Check the endpoint URL; leave it empty to use the standard endpoint (https://" +
          Or(f.error.service, "bedrock-runtime") + "." + RegionOr(f) + ".amazonaws.com).",
      "Check HTTPS_PROXY and NO_PROXY on the Quarry host: put .amazonaws.com in NO_PROXY to reach AWS directly, or "
      "have the proxy allow (and not rewrite) requests to the Bedrock and STS hosts.",
      "With a VPC endpoint, check its endpoint policy and that private DNS resolves the service's host to it.",
  };
  return e;
}

TroubleshootingEntry RequestTimedOut(const Facts& f) {
  TroubleshootingEntry e = Make(f, kRequestTimedOut, "The request timed out before Bedrock answered");
  e.likely_causes = {
      "The network path to " + RegionOr(f) + " is slow or dropping packets (proxy, VPN, VPC endpoint).",
      "A long generation (large max_tokens) that takes longer than the configured timeout.",
      "The provider's region differs from where the model is deployed, and the endpoint does not answer.",
  };
  e.how_to_fix = {
      "Retry; Quarry retries timeouts automatically within its retry budget and deadline.",
      "For long outputs use the streaming call, or raise the request timeout in the provider settings.",
      "Check connectivity to the endpoint from the Quarry host (proxy and VPC endpoint settings).",
  };
  return e;
}

TroubleshootingEntry AgentExecutionTimedOut(const Facts& f) {
  TroubleshootingEntry e = Make(f, kAgentExecutionTimedOut, "The agent did not finish in time");
  if (std::optional<std::string_view> resource = f.error.Field("resourceName"); resource) {
    e.what_happened += ". The failing dependency: " + std::string(*resource);
  }
  e.likely_causes = {
      "The timeout is too short for what the agent does (several orchestration steps, tools, a long answer).",
      "An action group Lambda function is slow, failing or timing out.",
      "A knowledge base query is slow (large index, cold vector store).",
      "Network latency between Quarry and " + RegionOr(f) + ".",
  };
  e.how_to_fix = {
      "Raise the timeout of the automation step that invokes the agent.",
      "Check the action group Lambda's logs and duration in CloudWatch; raise its timeout or make it faster.",
      "Review the knowledge base configuration (chunking, number of results) for speed.",
      "Make the agent's instructions more direct, or split the task into several smaller calls.",
  };
  return e;
}

TroubleshootingEntry AliasNoVersion(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kAliasNoVersion, "The agent alias has no usable version");
  e.likely_causes = {
      "The alias " + Or(f.context.agent_alias_arn, "") + " was created without associating an agent version.",
      "The agent exists only as a draft: no version has been prepared and published.",
      "The alias points at a version that was deleted, or is not prepared.",
  };
  e.how_to_fix = {
      "In the Bedrock console, open the agent's alias and check which version it routes to.",
      "Prepare the agent, then edit the alias (or create a new one) and choose \"Create a new version and associate "
      "it to this alias\".",
      "For testing only, use the built-in test alias TSTALIASID, which invokes the draft.",
  };
  return e;
}

TroubleshootingEntry Throttled(const Facts& f) {
  TroubleshootingEntry e = Make(f, kThrottled, "Throttled: too many requests or tokens for this model");
  e.likely_causes = {
      "The account exceeded the requests-per-minute or tokens-per-minute quota for " + Or(f.model_id, "the model") +
          " in " + RegionOr(f) + " (quotas are per model and per region).",
      "Bursts of parallel calls from several automations sharing one account.",
      "Large max_tokens values: the token quota counts the requested output tokens.",
  };
  e.how_to_fix = {
      "Let Quarry's retries back off (they do, with jitter); lower concurrency or the per-provider rate limit in "
      "Quarry's throttling settings.",
      "Use a cross-region inference profile (us., eu., apac. or global.) to spread load across regions.",
      "Ask for a higher quota in the Service Quotas console (Amazon Bedrock, the model's on-demand requests and "
      "tokens per minute).",
      "Lower max_tokens to what you need.",
  };
  return e;
}

TroubleshootingEntry QuotaExceeded(const Facts& f) {
  TroubleshootingEntry e = Make(f, kQuotaExceeded, "Service quota exceeded");
  e.likely_causes = {
      "A Bedrock quota of the account in " + RegionOr(f) + " is used up (tokens per minute or per day, or a "
          "concurrency quota) for " + Or(f.model_id, "this model") + ".",
  };
  e.how_to_fix = {
      "Open Service Quotas → Amazon Bedrock in " + RegionOr(f) + " and request an increase for the quota named in "
          "the message.",
      "Spread load with a cross-region inference profile, or reduce request rate and max_tokens in Quarry's "
      "throttling settings.",
  };
  return e;
}

TroubleshootingEntry ValidationError(const Facts& f) {
  TroubleshootingEntry e = Make(f, kValidationError, "The request was rejected as invalid");
  e.likely_causes = {
      "max_tokens above the model's output limit.",
      "Messages out of order: they must start with a user turn and alternate user / assistant.",
      "A missing or wrong anthropic_version (InvokeModel with Claude needs \"bedrock-2023-05-31\").",
      "A parameter the model does not support, or an empty message content.",
  };
  e.how_to_fix = {
      "Read the AWS message above: it names the field at fault (" + Or(f.error.message, "no message") + ").",
      "Fix the request in the automation step (model parameters, the message list) and retry; retrying unchanged "
      "will fail the same way.",
  };
  return e;
}

TroubleshootingEntry CredentialsExpired(const Facts& f) {
  TroubleshootingEntry e = Make(f, kCredentialsExpired, "The AWS credentials have expired");
  e.likely_causes = {
      "Temporary credentials (session token from STS, SSO or an assumed role) passed their expiry.",
      "A Bedrock API key (short-term) older than its lifetime.",
  };
  e.how_to_fix = {
      "Refresh the credentials: log in again (SSO), re-assume the role, or configure a source Quarry can refresh "
      "by itself (an assumed role, the instance or container role).",
      "For long-running use, prefer a role over pasted temporary keys.",
  };
  return e;
}

TroubleshootingEntry CredentialsInvalid(const Facts& f) {
  TroubleshootingEntry e = Make(f, kCredentialsInvalid, "The AWS credentials are not valid");
  e.likely_causes = {
      "The access key id does not exist, or was deleted or deactivated (keys rotated).",
      "The secret access key does not match the access key id (wrong or truncated secret, extra spaces).",
      "A session token is missing for temporary keys (ids starting with ASIA), or left over from old keys.",
      "The keys belong to another partition (aws-cn, aws-us-gov) than the endpoint.",
  };
  e.how_to_fix = {
      "Paste the access key id and secret again, exactly; check the key is Active in IAM → Users → Security "
      "credentials.",
      "Test the same keys with `aws sts get-caller-identity`.",
      "Create a new access key if the secret is lost; a secret cannot be shown again.",
  };
  return e;
}

TroubleshootingEntry ClockSkew(const Facts& f) {
  TroubleshootingEntry e = Make(f, kClockSkew, "The request signature's time is off: the clock is skewed");
  e.likely_causes = {
      "The clock of the Quarry host differs from real time by more than 5 minutes, so AWS treats the signature as "
      "expired or not yet valid.",
  };
  e.how_to_fix = {
      "Synchronise the host clock with NTP (e.g. enable systemd-timesyncd or chrony) and check the time zone is "
      "set correctly.",
      "In containers or VMs, fix the clock of the host they run on.",
  };
  return e;
}

TroubleshootingEntry BearerTokenNotAccepted(const Facts& f) {
  TroubleshootingEntry e =
      Make(f, kBearerTokenNotAccepted, "A Bedrock API key was used where AWS does not accept it");
  e.likely_causes = {
      "Bedrock API keys (bearer tokens) work only for Bedrock and Bedrock Runtime; " +
          Or(f.context.operation, "this operation") + " (agents, STS) needs SigV4-signed requests.",
      "AWS_BEARER_TOKEN_BEDROCK is set in Quarry's environment and took precedence.",
  };
  e.how_to_fix = {
      "Configure IAM credentials (access keys, a role, or the instance role) on the provider for agent calls.",
      "Keep the API key only for model calls, or unset AWS_BEARER_TOKEN_BEDROCK.",
  };
  return e;
}

TroubleshootingEntry EventStreamBroken(const Facts& f) {
  TroubleshootingEntry e = Make(f, kEventStreamBroken, "The response stream was corrupted or cut off");
  e.likely_causes = {
      "A proxy, load balancer or VPC appliance modified, buffered or truncated the event stream.",
      "The connection dropped in the middle of a message.",
      "Bedrock ended the stream with an error (ModelStreamErrorException) while the model was generating.",
  };
  e.how_to_fix = {
      "Retry the call; Quarry does not retry a stream once events reached the automation.",
      "Let application/vnd.amazon.eventstream responses pass the proxy unmodified and unbuffered, or bypass it "
      "for *.amazonaws.com.",
      "If it persists, use the non-streaming call and report the request id to AWS support.",
  };
  return e;
}

TroubleshootingEntry EventStreamStalled(const Facts& f) {
  TroubleshootingEntry e = Make(f, kEventStreamStalled, "The response stream stalled: no data arrived for too long");
  e.likely_causes = {
      "A proxy buffers the stream and releases nothing until it ends.",
      "The network stopped delivering data without closing the connection.",
      "A very slow generation step (a long agent action) with the idle timeout set too short.",
  };
  e.how_to_fix = {
      "Retry the call.",
      "Disable response buffering for Bedrock endpoints in the proxy.",
      "Raise the stream idle timeout in the provider settings if long pauses are expected.",
  };
  return e;
}

TroubleshootingEntry ModelNotReady(const Facts& f) {
  TroubleshootingEntry e = Make(f, kModelNotReady, "The model is not ready to serve requests yet");
  e.likely_causes = {"Bedrock is still loading " + Or(f.model_id, "the model") +
                     " (common for imported or rarely used models) or moving it."};
  e.how_to_fix = {
      "Wait and retry; model calls are retried automatically a few times.",
      "If it persists for more than a few minutes, check the AWS Health Dashboard for " + RegionOr(f) +
          " and contact AWS support with the request id.",
  };
  return e;
}

TroubleshootingEntry ModelTimeout(const Facts& f) {
  TroubleshootingEntry e = Make(f, kModelTimeout, "The model took too long to process the request");
  e.likely_causes = {"A very large prompt or max_tokens value.", "Temporary load on the model in " + RegionOr(f) + "."};
  e.how_to_fix = {
      "Retry; if it keeps happening, shorten the input or lower max_tokens, or use the streaming call.",
  };
  return e;
}

TroubleshootingEntry ModelError(const Facts& f) {
  TroubleshootingEntry e = Make(f, kModelError, "The model failed while processing the request");
  if (std::optional<std::string_view> status = f.error.Field("originalStatusCode"); status) {
    e.what_happened += ". The model returned status " + std::string(*status);
  }
  e.likely_causes = {"An input the model could not process (unsupported content, malformed image).",
                     "An internal failure of the model."};
  e.how_to_fix = {"Check the input content, then retry.",
                  "If it persists, contact AWS support with the request id " + Or(f.error.request_id, "") + "."};
  return e;
}

TroubleshootingEntry ServiceError(const Facts& f) {
  TroubleshootingEntry e = Make(f, kServiceError, "A temporary AWS service error");
  e.likely_causes = {"A transient failure or overload inside Bedrock in " + RegionOr(f) + "."};
  e.how_to_fix = {
      "Nothing to change: Quarry retries these automatically with backoff.",
      "If it persists, check the AWS Health Dashboard for " + RegionOr(f) +
          ", try another region or a cross-region profile, and give AWS support the request id " +
          Or(f.error.request_id, "") + ".",
  };
  return e;
}

TroubleshootingEntry UnknownError(const Facts& f) {
  TroubleshootingEntry e = Make(f, kUnknownError, "AWS returned an error Quarry has no specific advice for");
  e.likely_causes = {"See the AWS code and message above."};
  e.how_to_fix = {
      "Search the code " + Or(f.error.code, "(none)") + " in the Amazon Bedrock documentation.",
      "Look up the request id " + Or(f.error.request_id, "(none)") + " in CloudTrail, and quote it to AWS support.",
  };
  return e;
}

// ---- Choosing ----

bool IsAuthCode(const Facts& f) {
  for (std::string_view code : {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
                                "SignatureDoesNotMatch", "IncompleteSignatureException", "IncompleteSignature",
                                "MissingAuthenticationTokenException", "MissingAuthenticationToken",
                                "AuthFailure", "InvalidAccessKeyId"}) {
    if (CodeIs(f, code)) return true;
  }
  return false;
}

bool IsModelOperation(const CallContext& c) {
  return c.operation == "InvokeModel" || c.operation == "InvokeModelWithResponseStream" ||
         c.operation == "Converse" || c.operation == "ConverseStream";
}

}  // namespace

std::string TroubleshootingEntry::ToText() const {
  std::string out = title + " [" + id + "]\n";
  out += "What happened: " + what_happened + "\n";
  if (!likely_causes.empty()) {
    out += "Likely causes:\n";
    for (const std::string& c : likely_causes) out += "  - " + c + "\n";
  }
  if (!how_to_fix.empty()) {
    out += "How to fix:\n";
    for (size_t i = 0; i < how_to_fix.size(); ++i) out += "  " + std::to_string(i + 1) + ". " + how_to_fix[i] + "\n";
  }
  return out;
}

nlohmann::json TroubleshootingEntry::ToJson() const {
  return {{"id", id},
          {"title", title},
          {"what_happened", what_happened},
          {"likely_causes", likely_causes},
          {"how_to_fix", how_to_fix}};
}

TroubleshootingEntry Troubleshoot(const aws::AwsError& error, const CallContext& context) {
  const Facts f = GatherFacts(error, context);
  const std::string& m = f.lower_message;

  // An HTML page or text from something in front of AWS: its status (403,
  // 404, 502, ...) says nothing about Bedrock, so no other entry applies.
  if (error.not_from_service) return ResponseNotFromAws(f);

  // Clock skew first: it arrives under several auth codes.
  if (Has(m, "signature expired") || Has(m, "not yet current") || CodeIs(f, "RequestExpired") ||
      CodeIs(f, "RequestTimeTooSkewed")) {
    return ClockSkew(f);
  }
  // Bearer tokens refused (agents, STS).
  if (Has(m, "bearer") || (context.used_bearer_token && f.is_agent_call &&
                           (CodeIs(f, "AccessDeniedException") || IsAuthCode(f)))) {
    return BearerTokenNotAccepted(f);
  }
  if (CodeIs(f, "ExpiredTokenException") || CodeIs(f, "ExpiredToken") || Has(m, "token included in the request is expired")) {
    return CredentialsExpired(f);
  }
  if (IsAuthCode(f)) return CredentialsInvalid(f);

  // A configured agent alias ARN that is malformed explains most agent errors.
  if (!context.agent_alias_arn.empty() && f.error.http_status != 429 && !aws::IsThrottlingCode(f.error.code)) {
    Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(context.agent_alias_arn);
    if (!alias.ok()) return InvalidAgentAliasArn(f, alias.status());
    // An agent called in a region other than its own.
    if (!context.region.empty() && alias.value().region != context.region) {
      return RegionMismatch(f, alias.value().region);
    }
  }

  // No HTTP response.
  if (f.error.http_status == 0 && !f.error.in_stream) {
    const bool stream_damage = Has(m, "checksum") || Has(m, "crc") || Has(m, "prelude") || Has(m, "truncated") ||
                               Has(m, "mid-message") || Has(m, "cut off") || Has(m, "ended before") ||
                               Has(m, "event stream") || Has(m, "event-stream") || Has(m, "eventstream");
    const bool stalled = Has(m, "idle") || Has(m, "stall") || Has(m, "no bytes") || Has(m, "no data");
    if (stalled) return EventStreamStalled(f);
    if (stream_damage) return EventStreamBroken(f);
    if (f.error.timeout || CodeIs(f, "RequestTimeout") || Has(m, "timed out") || Has(m, "timeout")) {
      return f.is_agent_call ? AgentExecutionTimedOut(f) : RequestTimedOut(f);
    }
    if (Has(m, "certificate")) return TlsCertificateUntrusted(f);
    return CouldNotConnect(f);
  }

  if (Has(m, "don't have access to the model") || Has(m, "don\xE2\x80\x99t have access to the model") ||
      Has(m, "do not have access to the model")) {
    return ModelAccessNotGranted(f);
  }
  if (Has(m, "on-demand throughput")) return OnDemandNotSupported(f);

  // Versions of agent aliases, under whichever code the service chose.
  if (Has(m, "no associated version") || Has(m, "has no version") || Has(m, "is not prepared") ||
      (f.is_agent_call && Has(m, "version") &&
       (CodeIs(f, "ResourceNotFoundException") || CodeIs(f, "ValidationException") || CodeIs(f, "ConflictException")))) {
    return AliasNoVersion(f);
  }

  if (CodeIs(f, "AccessDeniedException") || CodeIs(f, "AccessDenied") || f.error.http_status == 403) {
    if (f.is_agent_call || Has(m, "bedrock:invokeagent")) return AccessDeniedInvokeAgent(f);
    return AccessDeniedInvokeModel(f);
  }

  if (CodeIs(f, "ServiceQuotaExceededException")) return QuotaExceeded(f);
  if (CodeIs(f, "ModelNotReadyException")) return ModelNotReady(f);
  if (aws::IsThrottlingCode(f.error.code) || f.error.http_status == 429) return Throttled(f);

  if (CodeIs(f, "ModelStreamErrorException") ||
      (f.error.in_stream && (Has(m, "checksum") || Has(m, "crc") || Has(m, "truncated")))) {
    return EventStreamBroken(f);
  }
  if (CodeIs(f, "ModelTimeoutException")) return ModelTimeout(f);
  if (CodeIs(f, "ModelErrorException")) return ModelError(f);
  if (CodeIs(f, "DependencyFailedException") || (CodeIs(f, "BadGatewayException") && f.is_agent_call) ||
      (f.is_agent_call && (Has(m, "timed out") || Has(m, "timeout")))) {
    return AgentExecutionTimedOut(f);
  }

  if (CodeIs(f, "ResourceNotFoundException") || f.error.http_status == 404) {
    if (IsModelOperation(context) && !f.is_agent_call) return InvalidModelIdentifier(f);
    return ResourceNotFound(f);
  }
  if (Has(m, "model identifier is invalid") || Has(m, "invalid model identifier")) return InvalidModelIdentifier(f);
  if (Has(m, "invalid arn") || Has(m, "arn format")) {
    Result<aws::AgentAliasArn> alias = aws::ParseAgentAliasArn(context.agent_alias_arn);
    if (!alias.ok()) return InvalidAgentAliasArn(f, alias.status());
    return ResourceNotFound(f);
  }
  if (CodeIs(f, "ValidationException") || f.error.http_status == 400) return ValidationError(f);

  if (CodeIs(f, "InternalServerException") || CodeIs(f, "ServiceUnavailableException") ||
      CodeIs(f, "ServiceUnavailable") || CodeIs(f, "InternalFailure") || CodeIs(f, "BadGatewayException") ||
      f.error.http_status >= 500) {
    return ServiceError(f);
  }
  if (f.error.timeout) return f.is_agent_call ? AgentExecutionTimedOut(f) : RequestTimedOut(f);
  return UnknownError(f);
}

std::vector<std::string> TroubleshootingEntryIds() {
  std::vector<std::string> ids;
  for (std::string_view id : kAllIds) ids.emplace_back(id);
  return ids;
}

}  // namespace quarry::bedrock
