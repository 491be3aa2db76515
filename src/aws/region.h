#pragma once
// AWS regions, partitions and service endpoint host names.
//
// A region name is user input (a provider's settings, an ARN someone pasted)
// that ends up inside a host name. ParseRegion() is the only way to obtain a
// Region, and it accepts a name only when it matches one partition's region
// pattern, written with lower-case letters, digits and '-' only; EndpointHost()
// takes nothing but a Region and built-in constants. So no user-supplied
// string can become part of a host name unchecked ("us-east-1.evil.com",
// "us-east-1/", "" and "US-EAST-1" are all refused).
//
// Facts from botocore's partitions.json (region regexes, DNS suffixes) and the
// services' endpoint rule sets (endpoint-rule-set-1.json: FIPS and dual-stack
// host shapes). The partition patterns use \w; we accept only [a-z0-9] there,
// since an underscore or an upper-case letter never appears in a real region
// and an underscore is not valid in a host name.
//
// Example:
//   QUARRY_ASSIGN_OR_RETURN(Region region, ParseRegion(provider.region));
//   QUARRY_ASSIGN_OR_RETURN(std::string host,
//       EndpointHost(AwsService::kBedrockRuntime, region));
//   // host == "bedrock-runtime.us-east-1.amazonaws.com"
//
// Thread safety: everything here is a value or immutable static data.

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"

namespace quarry::aws {

// One AWS partition: its name as used in ARNs and its DNS suffixes.
struct Partition {
  std::string_view name;                   // "aws", "aws-us-gov", "aws-cn", ...
  std::string_view dns_suffix;             // "amazonaws.com"
  std::string_view dual_stack_dns_suffix;  // "api.aws"
  std::string_view example_region;         // "us-east-1" (for messages)
  bool supports_fips = true;
  bool supports_dual_stack = true;
};

// All partitions we know, commercial "aws" first. Static storage.
std::span<const Partition> KnownPartitions();

// The partition called `name` ("aws", "aws-cn", ...), or nullptr.
const Partition* FindPartition(std::string_view name);

// A validated region name and the partition it belongs to. Obtainable only
// from ParseRegion(), so holding one proves the name is safe for a host name.
class Region {
 public:
  const std::string& name() const { return name_; }
  const Partition& partition() const { return *partition_; }

  friend bool operator==(const Region& a, const Region& b) { return a.name_ == b.name_; }

 private:
  friend Result<Region> ParseRegion(std::string_view text);
  Region(std::string name, const Partition* partition)
      : name_(std::move(name)), partition_(partition) {}

  std::string name_;
  const Partition* partition_;
};

// Validates `text` as a region name of a known partition (exactly, no
// trimming). Errors (kInvalidArgument) say what is wrong and show the shape of
// a region name, e.g. "'us-east-9x' is not an AWS region name; regions look
// like us-east-1, eu-central-1, ...". Specific messages for: empty, spaces
// around it, upper case, an Availability Zone ("us-east-1a"), a FIPS
// pseudo-region ("fips-us-east-1"), a host name or URL pasted instead.
Result<Region> ParseRegion(std::string_view text);

// The services whose endpoints Quarry builds.
enum class AwsService {
  kBedrock,              // control plane
  kBedrockRuntime,       // InvokeModel, Converse
  kBedrockAgent,         // agents control plane
  kBedrockAgentRuntime,  // InvokeAgent
  kSts,                  // GetCallerIdentity, AssumeRole
};

// The host prefix: "bedrock", "bedrock-runtime", ..., "sts".
std::string_view ServiceEndpointPrefix(AwsService service);
// The SigV4 signing name: "bedrock" for all four Bedrock services, "sts".
std::string_view ServiceSigningName(AwsService service);
// The inverse of ServiceEndpointPrefix (case-insensitive). Errors:
// InvalidArgument naming the accepted prefixes.
Result<AwsService> AwsServiceFromEndpointPrefix(std::string_view prefix);

struct EndpointOptions {
  bool use_fips = false;        // {prefix}-fips.{region}.{suffix}
  bool use_dual_stack = false;  // the partition's dual-stack suffix (api.aws)
};

// The endpoint host for `service` in `region`, e.g.
// "bedrock-runtime.eu-central-1.amazonaws.com",
// "bedrock-runtime-fips.us-east-1.amazonaws.com" (FIPS),
// "sts.us-gov-west-1.amazonaws.com" (STS FIPS in aws-us-gov, per its rule set).
// Errors: kFailedPrecondition when the partition lacks FIPS or dual-stack.
// Note that the rule sets build a FIPS host for any region; whether AWS runs
// that endpoint in that region is not known here.
Result<std::string> EndpointHost(AwsService service, const Region& region,
                                 EndpointOptions options = {});

namespace internal {
// `text` quoted for an error message: at most `max_chars` bytes, with
// non-printable and non-ASCII bytes shown as \xNN, so pasted input cannot
// forge log lines or terminal escapes.
std::string QuoteForMessage(std::string_view text, size_t max_chars = 100);
}  // namespace internal

}  // namespace quarry::aws
