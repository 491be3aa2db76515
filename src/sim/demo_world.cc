// The demo world: what `quarry sim` serves without --config and what
// `quarry sim --print-config` prints as the starting point of a user's own.
// The access keys below are fake, published demo values: the emulator is
// their only verifier.

#include "sim/world.h"

namespace quarry::sim {

std::string DemoWorldConfigText() {
  return R"JSON({
  "_comment": "Quarry Bedrock emulator world. Every member named _comment is ignored; any other unknown member is an error. Reference: docs/emulator.md.",
  "seed": 42,
  "request_log_size": 1000,
  "accounts": [
    {
      "_comment": "An AWS account: 12-digit id, IAM users with access keys and identity policies, assumable roles, Bedrock API keys (bearer tokens mapped to a user), and the foundation models the account has been granted access to (\"*\" = all).",
      "id": "111122223333",
      "users": [
        {
          "_comment": "Full access to Bedrock and the right to assume the demo role.",
          "name": "quarry-demo",
          "access_keys": [{"id": "AKIAQUARRYDEMO000001", "secret": "quarryDemoSecretKey0000000000000000000001"}],
          "policies": [
            {"Version": "2012-10-17", "Statement": [
              {"Sid": "Bedrock", "Effect": "Allow", "Action": "bedrock:*", "Resource": "*"},
              {"Sid": "AssumeInvoker", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::111122223333:role/quarry-invoker"}
            ]}
          ]
        },
        {
          "_comment": "May list models and profiles and invoke Claude 3 Haiku only; everything else is AccessDenied (for troubleshooting demos).",
          "name": "quarry-readonly",
          "access_keys": [{"id": "AKIAQUARRYREADONLY01", "secret": "quarryReadOnlySecret00000000000000000001"}],
          "policies": [
            {"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": ["bedrock:List*", "bedrock:Get*"], "Resource": "*"},
              {"Effect": "Allow", "Action": "bedrock:InvokeModel*", "Resource": "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-haiku-*"},
              {"Effect": "Deny", "Action": "bedrock:InvokeAgent", "Resource": "*"}
            ]}
          ]
        }
      ],
      "roles": [
        {
          "_comment": "Assumable by quarry-demo; may invoke models and agents.",
          "name": "quarry-invoker",
          "trusted_principals": ["arn:aws:iam::111122223333:user/quarry-demo"],
          "max_session_seconds": 3600,
          "policies": [
            {"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": ["bedrock:InvokeModel*", "bedrock:InvokeAgent", "bedrock:Get*", "bedrock:List*"], "Resource": "*"}
            ]}
          ]
        }
      ],
      "api_keys": [
        {"_comment": "Send as Authorization: Bearer <token> (AWS_BEARER_TOKEN_BEDROCK); bedrock and bedrock-runtime only.", "token": "ABSKquarrydemoapikey0001", "user": "quarry-demo"}
      ],
      "model_access": [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "amazon.titan-text-express-v1"
      ]
    }
  ],
  "regions": [
    {
      "_comment": "A served region: the foundation models it offers (inference_types ON_DEMAND and/or INFERENCE_PROFILE; a model without ON_DEMAND runs only through a profile) and its system-defined (cross-Region) inference profiles. claude-3-opus is offered but not granted to the account (AccessDenied demo).",
      "name": "us-east-1",
      "models": [
        {"id": "anthropic.claude-3-haiku-20240307-v1:0", "name": "Claude 3 Haiku", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["ON_DEMAND", "INFERENCE_PROFILE"], "lifecycle": "ACTIVE", "max_output_tokens": 4096,
         "rules": [{"match": "ping", "reply": "pong"}]},
        {"id": "anthropic.claude-3-5-sonnet-20240620-v1:0", "name": "Claude 3.5 Sonnet", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["ON_DEMAND", "INFERENCE_PROFILE"], "lifecycle": "ACTIVE", "max_output_tokens": 8192},
        {"id": "anthropic.claude-3-7-sonnet-20250219-v1:0", "name": "Claude 3.7 Sonnet", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["INFERENCE_PROFILE"], "lifecycle": "ACTIVE", "max_output_tokens": 8192},
        {"id": "anthropic.claude-sonnet-4-20250514-v1:0", "name": "Claude Sonnet 4", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["INFERENCE_PROFILE"], "lifecycle": "ACTIVE", "max_output_tokens": 8192},
        {"id": "anthropic.claude-3-opus-20240229-v1:0", "name": "Claude 3 Opus", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["ON_DEMAND"], "lifecycle": "LEGACY", "max_output_tokens": 4096},
        {"id": "amazon.titan-text-express-v1", "name": "Titan Text G1 - Express", "provider": "Amazon",
         "input_modalities": ["TEXT"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["ON_DEMAND"], "customizations": ["FINE_TUNING", "CONTINUED_PRE_TRAINING"], "lifecycle": "ACTIVE"}
      ],
      "system_profiles": [
        {"id": "us.anthropic.claude-3-haiku-20240307-v1:0", "name": "US Anthropic Claude 3 Haiku",
         "description": "Routes requests to Anthropic Claude 3 Haiku in us-east-1 and us-west-2.", "destinations": ["us-east-1", "us-west-2"]},
        {"id": "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "name": "US Anthropic Claude 3.5 Sonnet",
         "description": "Routes requests to Anthropic Claude 3.5 Sonnet in us-east-1 and us-west-2.", "destinations": ["us-east-1", "us-west-2"]},
        {"id": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "name": "US Anthropic Claude 3.7 Sonnet",
         "description": "Routes requests to Anthropic Claude 3.7 Sonnet in us-east-1 and us-west-2.", "destinations": ["us-east-1", "us-west-2"]},
        {"id": "us.anthropic.claude-sonnet-4-20250514-v1:0", "name": "US Claude Sonnet 4",
         "description": "Routes requests to Claude Sonnet 4 in us-east-1 and us-west-2.", "destinations": ["us-east-1", "us-west-2"]}
      ]
    },
    {
      "_comment": "A second region with fewer models.",
      "name": "us-west-2",
      "models": [
        {"id": "anthropic.claude-3-haiku-20240307-v1:0", "name": "Claude 3 Haiku", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["ON_DEMAND", "INFERENCE_PROFILE"], "max_output_tokens": 4096},
        {"id": "anthropic.claude-3-7-sonnet-20250219-v1:0", "name": "Claude 3.7 Sonnet", "provider": "Anthropic",
         "input_modalities": ["TEXT", "IMAGE"], "output_modalities": ["TEXT"], "streaming": true,
         "inference_types": ["INFERENCE_PROFILE"], "max_output_tokens": 8192}
      ],
      "system_profiles": [
        {"id": "us.anthropic.claude-3-haiku-20240307-v1:0", "name": "US Anthropic Claude 3 Haiku", "destinations": ["us-east-1", "us-west-2"]},
        {"id": "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "name": "US Anthropic Claude 3.7 Sonnet", "destinations": ["us-east-1", "us-west-2"]}
      ]
    }
  ],
  "application_profiles": [
    {"_comment": "Application inference profiles: ARN arn:aws:bedrock:{region}:{account}:application-inference-profile/{id}.",
     "account": "111122223333", "region": "us-east-1", "id": "quarrydemo01", "name": "quarry-helpdesk-haiku",
     "description": "Cost tracking for the helpdesk automations.", "model": "anthropic.claude-3-haiku-20240307-v1:0"}
  ],
  "knowledge_bases": [
    {
      "_comment": "Documents retrieved by keyword for agents whose version lists the knowledge base.",
      "id": "KBITHELP01",
      "name": "it-support-articles",
      "documents": [
        {"id": "vpn", "title": "Connecting to the VPN", "uri": "s3://quarry-demo-kb/it/vpn.md",
         "text": "To connect to the corporate VPN, open the GlobalProtect client, enter vpn.example.com as the portal and sign in with your SSO account. If the VPN disconnects repeatedly, update the client and restart your laptop."},
        {"id": "password", "title": "Resetting your password", "uri": "s3://quarry-demo-kb/it/password-reset.md",
         "text": "To reset a forgotten password, go to https://password.example.com, verify with your MFA device and choose a new password of at least 14 characters. Passwords expire every 180 days."},
        {"id": "printer", "title": "Printer problems", "uri": "s3://quarry-demo-kb/it/printer.md",
         "text": "If the printer shows offline, check that it is on the office Wi-Fi, then remove and re-add it under Settings > Printers. Paper jams: open tray 2 and remove the paper gently."},
        {"id": "laptop", "title": "Laptop replacement and repairs", "uri": "s3://quarry-demo-kb/it/laptop.md",
         "text": "Laptops are replaced every four years. A broken screen or keyboard is repaired by the IT desk within two business days; back up your files to OneDrive first."}
      ]
    }
  ],
  "agents": [
    {
      "_comment": "An IT-support triage agent. Versions (DRAFT first), aliases (PRODALIAS1 -> version 1; NOVERSION1 has no version, for the troubleshooting case; TSTALIASID, the draft alias, is implied), a knowledge base, two action groups that return control (ticketing: a function schema; assets: an API schema, POST /assets/{assetId}/repairs), the code interpreter (\"export ... as CSV\" returns a CSV file), and a guardrail.",
      "id": "HELPDESK01",
      "name": "it-helpdesk",
      "account": "111122223333",
      "region": "us-east-1",
      "status": "PREPARED",
      "idle_session_ttl_seconds": 600,
      "created_at": "2026-01-05T09:00:00Z",
      "versions": [
        {"version": "DRAFT", "prepared": true,
         "instruction": "You are an IT helpdesk agent. Triage requests, answer from the IT knowledge base and open tickets when asked.",
         "foundation_model": "anthropic.claude-3-haiku-20240307-v1:0",
         "knowledge_base_ids": ["KBITHELP01"],
         "actions": [
           {"action_group": "ticketing", "function": "create_ticket", "description": "Open an IT ticket.",
            "trigger_words": ["open a ticket", "open ticket", "create a ticket", "create ticket", "file a ticket", "raise a ticket", "new ticket", "escalate"],
            "parameters": [
              {"name": "summary", "type": "string", "description": "One-line summary of the problem.", "required": true},
              {"name": "priority", "type": "string", "description": "low, medium or high.", "required": false}
            ]},
           {"action_group": "assets", "api_path": "/assets/{assetId}/repairs", "http_method": "POST",
            "description": "Send a laptop or other asset for repair (OpenAPI operation).",
            "trigger_words": ["repair request", "send for repair", "loaner"],
            "parameters": [
              {"name": "assetId", "type": "string", "description": "Asset tag, e.g. LAP-0042.", "required": true}
            ],
            "request_body": [
              {"name": "issue", "type": "string", "description": "What is broken.", "required": true},
              {"name": "urgent", "type": "boolean", "description": "Whether a loaner is needed today.", "required": false}
            ]}
         ],
         "code_interpreter": true,
         "guardrail": {"id": "gr0helpdesk1", "version": "1", "blocked_message": "Sorry, the IT helpdesk cannot help with that topic.",
                       "blocked_topics": [{"name": "salaries", "words": ["salary", "salaries", "payroll"]}]}},
        {"version": "1", "prepared": true,
         "instruction": "You are an IT helpdesk agent. Triage requests, answer from the IT knowledge base and open tickets when asked.",
         "foundation_model": "anthropic.claude-3-haiku-20240307-v1:0",
         "knowledge_base_ids": ["KBITHELP01"],
         "actions": [
           {"action_group": "ticketing", "function": "create_ticket", "description": "Open an IT ticket.",
            "trigger_words": ["open a ticket", "open ticket", "create a ticket", "create ticket", "file a ticket", "raise a ticket", "new ticket", "escalate"],
            "parameters": [
              {"name": "summary", "type": "string", "description": "One-line summary of the problem.", "required": true},
              {"name": "priority", "type": "string", "description": "low, medium or high.", "required": false}
            ]},
           {"action_group": "assets", "api_path": "/assets/{assetId}/repairs", "http_method": "POST",
            "description": "Send a laptop or other asset for repair (OpenAPI operation).",
            "trigger_words": ["repair request", "send for repair", "loaner"],
            "parameters": [
              {"name": "assetId", "type": "string", "description": "Asset tag, e.g. LAP-0042.", "required": true}
            ],
            "request_body": [
              {"name": "issue", "type": "string", "description": "What is broken.", "required": true},
              {"name": "urgent", "type": "boolean", "description": "Whether a loaner is needed today.", "required": false}
            ]}
         ],
         "code_interpreter": true,
         "guardrail": {"id": "gr0helpdesk1", "version": "1", "blocked_message": "Sorry, the IT helpdesk cannot help with that topic.",
                       "blocked_topics": [{"name": "salaries", "words": ["salary", "salaries", "payroll"]}]},
         "rules": [{"match": "quick triage line", "reply": "{\"category\": \"network\", \"priority\": \"medium\"}"}]}
      ],
      "aliases": [
        {"id": "PRODALIAS1", "name": "production", "description": "Live traffic.", "agent_version": "1"},
        {"id": "NOVERSION1", "name": "broken", "description": "An alias with no version (troubleshooting demo).", "agent_version": ""}
      ]
    }
  ],
  "quotas": [
    {"_comment": "Requests and tokens per minute per model per account (0 = unlimited); \"*\" matches any. Over the limit: 429 ThrottlingException.",
     "account": "*", "model": "*", "requests_per_minute": 600, "tokens_per_minute": 2000000}
  ],
  "faults": []
}
)JSON";
}

}  // namespace quarry::sim
