#include "aws/region.h"

#include <array>
#include <cstdio>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

// From partitions.json (botocore @ 0e6e2404). Every partition currently says
// supportsFIPS and supportsDualStack.
constexpr std::array<Partition, 8> kPartitions = {{
    {"aws", "amazonaws.com", "api.aws", "us-east-1", true, true},
    {"aws-us-gov", "amazonaws.com", "api.aws", "us-gov-west-1", true, true},
    {"aws-cn", "amazonaws.com.cn", "api.amazonwebservices.com.cn", "cn-north-1", true, true},
    {"aws-eusc", "amazonaws.eu", "api.amazonwebservices.eu", "eusc-de-east-1", true, true},
    {"aws-iso", "c2s.ic.gov", "api.aws.ic.gov", "us-iso-east-1", true, true},
    {"aws-iso-b", "sc2s.sgov.gov", "api.aws.scloud", "us-isob-east-1", true, true},
    {"aws-iso-e", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk", "eu-isoe-west-1", true, true},
    {"aws-iso-f", "csp.hci.ic.gov", "api.aws.hci.ic.gov", "us-isof-south-1", true, true},
}};

// The fixed leading part of each partition's regionRegex; what follows must be
// `[a-z0-9]+-[0-9]+` (the regexes' `\w+\-\d+$`, narrowed to host-safe text).
// aws: ^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$ ; aws-us-gov: ^us\-gov\-...;
// aws-cn: ^cn\-...; aws-eusc: ^eusc\-(de)\-...; the iso partitions: us-iso-,
// us-isob-, eu-isoe-, us-isof-. The sets are disjoint because the middle word
// cannot contain '-'.
struct RegionPrefix {
  std::string_view prefix;
  size_t partition_index;
};
constexpr std::array<RegionPrefix, 16> kRegionPrefixes = {{
    {"us-gov-", 1},   {"cn-", 2},     {"eusc-de-", 3}, {"us-iso-", 4}, {"us-isob-", 5},
    {"eu-isoe-", 6},  {"us-isof-", 7}, {"us-", 0},      {"eu-", 0},     {"ap-", 0},
    {"sa-", 0},       {"ca-", 0},      {"me-", 0},      {"af-", 0},     {"il-", 0},
    {"mx-", 0},
}};

// The regions partitions.json lists today. Only used to recognise an
// Availability Zone name ("us-east-1a"); validation itself is by pattern, so
// regions AWS opens later are accepted without a code change.
constexpr std::array<std::string_view, 46> kListedRegions = {
    "af-south-1",     "ap-east-1",      "ap-east-2",      "ap-northeast-1", "ap-northeast-2",
    "ap-northeast-3", "ap-south-1",     "ap-south-2",     "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
    "ca-central-1",   "ca-west-1",      "eu-central-1",   "eu-central-2",   "eu-north-1",
    "eu-south-1",     "eu-south-2",     "eu-west-1",      "eu-west-2",      "eu-west-3",
    "il-central-1",   "me-central-1",   "me-south-1",     "mx-central-1",   "sa-east-1",
    "us-east-1",      "us-east-2",      "us-west-1",      "us-west-2",      "cn-north-1",
    "cn-northwest-1", "eusc-de-east-1", "us-iso-east-1",  "us-iso-west-1",  "us-isob-east-1",
    "us-isob-west-1", "eu-isoe-west-1", "us-isof-east-1", "us-isof-south-1", "us-gov-east-1",
    "us-gov-west-1",
};

bool IsListedRegion(std::string_view name) {
  for (std::string_view r : kListedRegions) {
    if (r == name) return true;
  }
  return false;
}

constexpr size_t kMaxRegionLength = 50;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `[a-z0-9]+-[0-9]+` exactly.
bool MatchesWordDashNumber(std::string_view tail) {
  const size_t dash = tail.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == tail.size()) return false;
  for (size_t i = 0; i < dash; ++i) {
    if (!IsLowerAlnum(tail[i])) return false;
  }
  for (size_t i = dash + 1; i < tail.size(); ++i) {
    if (!IsDigit(tail[i])) return false;
  }
  return true;
}

// The partition whose pattern `name` matches, or nullptr.
const Partition* MatchRegion(std::string_view name) {
  if (name.empty() || name.size() > kMaxRegionLength) return nullptr;
  for (const RegionPrefix& p : kRegionPrefixes) {
    if (name.size() > p.prefix.size() && name.substr(0, p.prefix.size()) == p.prefix &&
        MatchesWordDashNumber(name.substr(p.prefix.size()))) {
      return &kPartitions[p.partition_index];
    }
  }
  return nullptr;
}

constexpr std::string_view kRegionShape =
    "regions look like us-east-1, eu-central-1, ap-southeast-2, us-gov-west-1 or cn-north-1";

Status RegionError(std::string_view text, std::string_view what) {
  return InvalidArgumentError(internal::QuoteForMessage(text) + " " + std::string(what));
}

}  // namespace

namespace internal {

std::string QuoteForMessage(std::string_view text, size_t max_chars) {
  std::string out = "'";
  const size_t n = text.size() < max_chars ? text.size() : max_chars;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  if (n < text.size()) out += "...";
  out += "'";
  return out;
}

}  // namespace internal

std::span<const Partition> KnownPartitions() { return kPartitions; }

const Partition* FindPartition(std::string_view name) {
  for (const Partition& p : kPartitions) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Result<Region> ParseRegion(std::string_view text) {
  if (const Partition* partition = MatchRegion(text)) {
    return Region(std::string(text), partition);
  }
  // Not a region: find the most helpful explanation.
  if (text.empty()) {
    return InvalidArgumentError(
        "the region is empty; set it to the AWS region where the resource lives (" +
        std::string(kRegionShape) + ")");
  }
  if (text.size() > kMaxRegionLength) {
    return RegionError(text, "is too long to be an AWS region name; " + std::string(kRegionShape));
  }
  const std::string_view trimmed = TrimAsciiWhitespace(text);
  if (trimmed.size() != text.size()) {
    if (MatchRegion(trimmed) != nullptr) {
      return RegionError(text, "has spaces around it; use the region name alone: '" +
                                   std::string(trimmed) + "'");
    }
    return RegionError(text, "is not an AWS region name (it has spaces); " +
                                 std::string(kRegionShape));
  }
  const std::string lower = AsciiToLower(text);
  if (lower != text && MatchRegion(lower) != nullptr) {
    return RegionError(text, "has upper-case letters; region names are lower case: use '" +
                                 lower + "'");
  }
  if (text.find('.') != std::string_view::npos || text.find('/') != std::string_view::npos ||
      text.find(':') != std::string_view::npos) {
    return RegionError(text,
                       "looks like a host name or URL, not a region name; give the region "
                       "alone (" + std::string(kRegionShape) + ")");
  }
  const char last = text.back();
  if (last >= 'a' && last <= 'z' && IsListedRegion(text.substr(0, text.size() - 1))) {
    return RegionError(text, "is an Availability Zone, not a region; its region is '" +
                                 std::string(text.substr(0, text.size() - 1)) + "'");
  }
  constexpr std::string_view kFipsPrefix = "fips-";
  constexpr std::string_view kFipsSuffix = "-fips";
  std::string_view unfipsed;
  if (text.starts_with(kFipsPrefix)) unfipsed = text.substr(kFipsPrefix.size());
  if (text.ends_with(kFipsSuffix)) unfipsed = text.substr(0, text.size() - kFipsSuffix.size());
  if (!unfipsed.empty() && MatchRegion(unfipsed) != nullptr) {
    return RegionError(text, "is a FIPS pseudo-region; use the region '" +
                                 std::string(unfipsed) + "' and turn on the FIPS endpoint option");
  }
  if (text == "aws-global" || (text.starts_with("aws-") && text.ends_with("-global"))) {
    return RegionError(text, "names a global endpoint, not a region; " +
                                 std::string(kRegionShape));
  }
  return RegionError(text, "is not an AWS region name; " + std::string(kRegionShape));
}

std::string_view ServiceEndpointPrefix(AwsService service) {
  switch (service) {
    case AwsService::kBedrock:
      return "bedrock";
    case AwsService::kBedrockRuntime:
      return "bedrock-runtime";
    case AwsService::kBedrockAgent:
      return "bedrock-agent";
    case AwsService::kBedrockAgentRuntime:
      return "bedrock-agent-runtime";
    case AwsService::kSts:
      return "sts";
  }
  return "";
}

Result<AwsService> AwsServiceFromEndpointPrefix(std::string_view prefix) {
  for (const AwsService service : {AwsService::kBedrock, AwsService::kBedrockRuntime, AwsService::kBedrockAgent,
                                   AwsService::kBedrockAgentRuntime, AwsService::kSts}) {
    if (EqualsIgnoreAsciiCase(prefix, ServiceEndpointPrefix(service))) return service;
  }
  return InvalidArgumentError("unknown endpoint " + internal::QuoteForMessage(prefix) +
                              "; expected one of bedrock-runtime, bedrock, bedrock-agent-runtime, "
                              "bedrock-agent, sts");
}

std::string_view ServiceSigningName(AwsService service) {
  return service == AwsService::kSts ? "sts" : "bedrock";
}

Result<std::string> EndpointHost(AwsService service, const Region& region,
                                 EndpointOptions options) {
  const Partition& partition = region.partition();
  if (options.use_fips && !partition.supports_fips) {
    return FailedPreconditionError("partition " + std::string(partition.name) +
                                   " has no FIPS endpoints; turn the FIPS option off");
  }
  if (options.use_dual_stack && !partition.supports_dual_stack) {
    return FailedPreconditionError("partition " + std::string(partition.name) +
                                   " has no dual-stack endpoints; turn the dual-stack option off");
  }
  std::string host(ServiceEndpointPrefix(service));
  // The STS rule set: in aws-us-gov the regular endpoint is already FIPS
  // validated, so FIPS (without dual-stack) maps to sts.{region}.amazonaws.com.
  const bool sts_gov_fips = service == AwsService::kSts && options.use_fips &&
                            !options.use_dual_stack && partition.name == "aws-us-gov";
  if (options.use_fips && !sts_gov_fips) host += "-fips";
  host += '.';
  host += region.name();
  host += '.';
  host += options.use_dual_stack ? partition.dual_stack_dns_suffix : partition.dns_suffix;
  return host;
}

}  // namespace quarry::aws
