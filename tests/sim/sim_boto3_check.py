"""Drives `quarry sim` with boto3 (botocore >= 1.43): every emulated operation
of the five services, their success shapes (botocore parses each response
against the service model) and their failures as modelled exception classes.

Usage: python3 sim_boto3_check.py BASE_URL ACCESS_KEY_ID SECRET_ACCESS_KEY REGION AGENT_ALIAS_ARN
Prints one "ok <name>" line per check and "ALL OK" at the end; exits non-zero
on the first failed check.
"""
import base64
import json
import sys
import urllib.request

import boto3
import botocore.exceptions
from botocore.config import Config

BASE, AKID, SECRET, REGION, ALIAS_ARN = sys.argv[1:6]
READONLY = ("AKIAQUARRYREADONLY01", "quarryReadOnlySecret00000000000000000001")
API_KEY = "ABSKquarrydemoapikey0001"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET37 = "anthropic.claude-3-7-sonnet-20250219-v1:0"
OPUS = "anthropic.claude-3-opus-20240229-v1:0"
ACCOUNT = "111122223333"
AGENT_ID, ALIAS_ID = ALIAS_ARN.split("/")[-2:]

CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)


def client(service, key=AKID, secret=SECRET, token=None, region=REGION):
    return boto3.client(service, endpoint_url=BASE, region_name=region, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token, config=CONFIG)


def admin(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + "/_quarry/" + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok {name}")


def expect_error(name, exc_class, fn, code=None, contains=None):
    try:
        fn()
    except exc_class as e:
        err = e.response.get("Error", {}) if hasattr(e, "response") else {}
        if code is not None and err.get("Code") != code:
            check(name, False, f"code {err.get('Code')!r} != {code!r}")
        if contains is not None and contains not in err.get("Message", ""):
            check(name, False, f"message {err.get('Message')!r} lacks {contains!r}")
        print(f"ok {name} ({type(e).__name__}: {err.get('Message', '')[:90]})")
        return e
    except Exception as e:  # noqa: BLE001
        check(name, False, f"raised {type(e).__name__}: {e}")
    check(name, False, "no exception")


def anthropic_body(text, max_tokens=200):
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": text}]})


admin("POST", "reset")
admin("DELETE", "faults")
check("healthz", admin("GET", "healthz")["status"] == "ok")

# ---- STS ----
sts = client("sts")
ident = sts.get_caller_identity()
check("sts.get_caller_identity", ident["Account"] == ACCOUNT and ident["Arn"].endswith(":user/quarry-demo"), ident)
assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/quarry-invoker", RoleSessionName="quarry-test")
creds = assumed["Credentials"]
check("sts.assume_role", creds["AccessKeyId"].startswith("ASIA") and creds["Expiration"].year >= 2024, assumed)
role_sts = client("sts", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
role_ident = role_sts.get_caller_identity()
check("sts.assumed identity", ":assumed-role/quarry-invoker/quarry-test" in role_ident["Arn"], role_ident)
ro_sts = client("sts", *READONLY)
expect_error("sts.assume_role denied", botocore.exceptions.ClientError,
             lambda: ro_sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/quarry-invoker", RoleSessionName="x1"),
             code="AccessDenied")
bad_sts = client("sts", "AKIAUNKNOWNKEY000000", "x" * 40)
expect_error("sts unknown key", botocore.exceptions.ClientError, bad_sts.get_caller_identity, code="InvalidClientTokenId")

# ---- bedrock control plane ----
bedrock = client("bedrock")
models = bedrock.list_foundation_models()["modelSummaries"]
ids = {m["modelId"] for m in models}
check("bedrock.list_foundation_models", HAIKU in ids and SONNET37 in ids, ids)
anth = bedrock.list_foundation_models(byProvider="anthropic")["modelSummaries"]
check("list_foundation_models byProvider (case-insensitive)", all(m["providerName"] == "Anthropic" for m in anth) and anth)
od = bedrock.list_foundation_models(byInferenceType="ON_DEMAND")["modelSummaries"]
check("list_foundation_models byInferenceType", SONNET37 not in {m["modelId"] for m in od} and HAIKU in {m["modelId"] for m in od})
ft = bedrock.list_foundation_models(byCustomizationType="FINE_TUNING")["modelSummaries"]
check("list_foundation_models byCustomizationType", [m["modelId"] for m in ft] == ["amazon.titan-text-express-v1"], ft)
expect_error("list_foundation_models bad enum", bedrock.exceptions.ValidationException,
             lambda: bedrock.list_foundation_models(byOutputModality="text"))
fm = bedrock.get_foundation_model(modelIdentifier=HAIKU)["modelDetails"]
check("bedrock.get_foundation_model", fm["modelArn"] == f"arn:aws:bedrock:{REGION}::foundation-model/{HAIKU}", fm)
fm2 = bedrock.get_foundation_model(modelIdentifier=fm["modelArn"])["modelDetails"]
check("get_foundation_model by ARN", fm2["modelId"] == HAIKU)
expect_error("get_foundation_model unknown", bedrock.exceptions.ValidationException,
             lambda: bedrock.get_foundation_model(modelIdentifier="anthropic.claude-nope-v1:0"))
profiles = bedrock.list_inference_profiles()["inferenceProfileSummaries"]
check("bedrock.list_inference_profiles", any(p["inferenceProfileId"] == "us." + SONNET37 for p in profiles)
      and all(p["type"] == "SYSTEM_DEFINED" for p in profiles))
page1 = bedrock.list_inference_profiles(maxResults=2)
page2 = bedrock.list_inference_profiles(maxResults=2, nextToken=page1["nextToken"])
check("list_inference_profiles pagination", len(page1["inferenceProfileSummaries"]) == 2 and
      page2["inferenceProfileSummaries"][0]["inferenceProfileId"] not in
      {p["inferenceProfileId"] for p in page1["inferenceProfileSummaries"]})
apps = bedrock.list_inference_profiles(typeEquals="APPLICATION")["inferenceProfileSummaries"]
check("list_inference_profiles APPLICATION", len(apps) == 1 and apps[0]["type"] == "APPLICATION", apps)
prof = bedrock.get_inference_profile(inferenceProfileIdentifier="us." + SONNET37)
check("bedrock.get_inference_profile", prof["inferenceProfileArn"] ==
      f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/us.{SONNET37}" and len(prof["models"]) == 2, prof)
expect_error("get_inference_profile unknown", bedrock.exceptions.ResourceNotFoundException,
             lambda: bedrock.get_inference_profile(inferenceProfileIdentifier="us.anthropic.nope-v1:0"))

# Bedrock API key (bearer) on the control plane.
bearer_bedrock = boto3.client("bedrock", endpoint_url=BASE, region_name=REGION, config=CONFIG,
                              aws_access_key_id=AKID, aws_secret_access_key=SECRET)
bearer_bedrock.meta.events.register(
    "before-send.bedrock.ListFoundationModels",
    lambda request, **kw: request.headers.__setitem__("Authorization", "Bearer " + API_KEY) and None)
check("bearer api key", len(bearer_bedrock.list_foundation_models()["modelSummaries"]) > 0)

# ---- bedrock-agent ----
agent_ctl = client("bedrock-agent")
agent = agent_ctl.get_agent(agentId=AGENT_ID)["agent"]
check("bedrock-agent.get_agent", agent["agentName"] == "it-helpdesk" and agent["agentStatus"] == "PREPARED", agent)
alias = agent_ctl.get_agent_alias(agentId=AGENT_ID, agentAliasId=ALIAS_ID)["agentAlias"]
check("bedrock-agent.get_agent_alias", alias["agentAliasArn"] == ALIAS_ARN and
      alias["routingConfiguration"][0]["agentVersion"] == "1", alias)
aliases = agent_ctl.list_agent_aliases(agentId=AGENT_ID)["agentAliasSummaries"]
check("bedrock-agent.list_agent_aliases", {"TSTALIASID", ALIAS_ID, "NOVERSION1"} <= {a["agentAliasId"] for a in aliases}, aliases)
p1 = agent_ctl.list_agent_aliases(agentId=AGENT_ID, maxResults=1)
check("list_agent_aliases pagination", len(p1["agentAliasSummaries"]) == 1 and "nextToken" in p1)
expect_error("get_agent unknown", agent_ctl.exceptions.ResourceNotFoundException,
             lambda: agent_ctl.get_agent(agentId="NOSUCHAGNT"))

# ---- bedrock-runtime ----
rt = client("bedrock-runtime")
resp = rt.invoke_model(modelId=HAIKU, body=anthropic_body("ping"), contentType="application/json", accept="application/json")
body = json.loads(resp["body"].read())
hdrs = resp["ResponseMetadata"]["HTTPHeaders"]
check("runtime.invoke_model", body["type"] == "message" and "pong" in json.dumps(body["content"]) and
      "x-amzn-bedrock-input-token-count" in hdrs, body)
resp = rt.invoke_model(modelId="us." + SONNET37, body=anthropic_body("Hello there"))
check("invoke_model via system profile", json.loads(resp["body"].read())["role"] == "assistant")
resp = rt.invoke_model(modelId=f"arn:aws:bedrock:{REGION}:{ACCOUNT}:application-inference-profile/quarrydemo01",
                       body=anthropic_body("Hello there"))
check("invoke_model via application profile ARN", json.loads(resp["body"].read())["role"] == "assistant")
stream = rt.invoke_model_with_response_stream(modelId=HAIKU, body=anthropic_body("Tell me about VPNs"))
events = [json.loads(base64.b64decode(e["chunk"]["bytes"]) if isinstance(e["chunk"]["bytes"], str) else e["chunk"]["bytes"])
          for e in stream["body"]]
check("runtime.invoke_model_with_response_stream", events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
      and stream["contentType"] == "application/json", [e["type"] for e in events])
conv = rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "ping"}]}],
                   inferenceConfig={"maxTokens": 100})
check("runtime.converse", conv["output"]["message"]["role"] == "assistant" and conv["usage"]["totalTokens"] > 0, conv)
cs = rt.converse_stream(modelId="us." + SONNET37, messages=[{"role": "user", "content": [{"text": "Hello"}]}])
kinds = [list(e.keys())[0] for e in cs["stream"]]
check("runtime.converse_stream", kinds[0] == "messageStart" and "messageStop" in kinds and kinds[-1] == "metadata", kinds)
expect_error("invoke_model on-demand unsupported", rt.exceptions.ValidationException,
             lambda: rt.invoke_model(modelId=SONNET37, body=anthropic_body("hi")), contains="on-demand throughput")
expect_error("invoke_model unknown model", rt.exceptions.ValidationException,
             lambda: rt.invoke_model(modelId="anthropic.claude-unknown-v1:0", body=anthropic_body("hi")),
             contains="The provided model identifier is invalid.")
expect_error("invoke_model no model access", rt.exceptions.AccessDeniedException,
             lambda: rt.invoke_model(modelId=OPUS, body=anthropic_body("hi")), contains="don't have access to the model")
expect_error("invoke_model bad body", rt.exceptions.ValidationException,
             lambda: rt.invoke_model(modelId=HAIKU, body=json.dumps({"messages": []})))
ro_rt = client("bedrock-runtime", *READONLY)
ro_rt.invoke_model(modelId=HAIKU, body=anthropic_body("ping"))
expect_error("invoke_model IAM denied", ro_rt.exceptions.AccessDeniedException,
             lambda: ro_rt.invoke_model(modelId="us." + SONNET37, body=anthropic_body("hi")),
             contains="is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:")
bad_sig = client("bedrock-runtime", AKID, "wrong" * 8)
expect_error("invalid signature", botocore.exceptions.ClientError,
             lambda: bad_sig.invoke_model(modelId=HAIKU, body=anthropic_body("hi")), code="InvalidSignatureException")
role_rt = client("bedrock-runtime", creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
check("assumed role invokes", json.loads(role_rt.invoke_model(modelId=HAIKU, body=anthropic_body("ping"))["body"].read())["role"] == "assistant")

# ---- bedrock-agent-runtime ----
art = client("bedrock-agent-runtime")
r = art.invoke_agent(agentId=AGENT_ID, agentAliasId=ALIAS_ID, sessionId="sess-1", inputText="How do I reset my password?",
                     enableTrace=True)
chunks, traces = [], 0
for ev in r["completion"]:
    if "chunk" in ev:
        chunks.append(ev["chunk"]["bytes"].decode())
    if "trace" in ev:
        traces += 1
check("agent-runtime.invoke_agent", "".join(chunks) and r["sessionId"] == "sess-1" and traces > 0, (chunks, traces))
r = art.invoke_agent(agentId=AGENT_ID, agentAliasId=ALIAS_ID, sessionId="sess-2",
                     inputText="Please open a ticket: my laptop screen is broken")
rc = [ev["returnControl"] for ev in r["completion"] if "returnControl" in ev]
check("invoke_agent returnControl", rc and rc[0]["invocationInputs"][0]["functionInvocationInput"]["function"] == "create_ticket", rc)
expect_error("invoke_agent unknown alias", art.exceptions.ResourceNotFoundException,
             lambda: art.invoke_agent(agentId=AGENT_ID, agentAliasId="ZZZZZZZZZZ", sessionId="s-1", inputText="hi"))
expect_error("invoke_agent alias without version", botocore.exceptions.ClientError,
             lambda: list(art.invoke_agent(agentId=AGENT_ID, agentAliasId="NOVERSION1", sessionId="s-1", inputText="hi")["completion"]))
ro_art = client("bedrock-agent-runtime", *READONLY)
expect_error("invoke_agent IAM denied", ro_art.exceptions.AccessDeniedException,
             lambda: ro_art.invoke_agent(agentId=AGENT_ID, agentAliasId=ALIAS_ID, sessionId="s-1", inputText="hi"),
             contains="bedrock:InvokeAgent")

# ---- faults and counters ----
admin("POST", "reset")
admin("POST", "faults", {"kind": "throttle", "operation": "InvokeModel", "count": 1})
expect_error("fault throttle", rt.exceptions.ThrottlingException,
             lambda: rt.invoke_model(modelId=HAIKU, body=anthropic_body("hi")),
             contains="Too many requests, please wait before trying again.")
rt.invoke_model(modelId=HAIKU, body=anthropic_body("hi"))  # the fault was for one call only
admin("POST", "faults", [{"kind": "internal_error", "operation": "Converse", "count": 1},
                         {"kind": "service_unavailable", "operation": "Converse", "count": 1}])
expect_error("fault internal_error", rt.exceptions.InternalServerException,
             lambda: rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "x"}]}]))
expect_error("fault service_unavailable", rt.exceptions.ServiceUnavailableException,
             lambda: rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "x"}]}]))
admin("POST", "faults", {"kind": "model_timeout", "operation": "InvokeModel", "model": HAIKU, "count": 1})
expect_error("fault model_timeout", rt.exceptions.ModelTimeoutException,
             lambda: rt.invoke_model(modelId=HAIKU, body=anthropic_body("hi")))
admin("POST", "faults", {"kind": "model_not_ready", "operation": "InvokeModel", "count": 1})
expect_error("fault model_not_ready", rt.exceptions.ModelNotReadyException,
             lambda: rt.invoke_model(modelId=HAIKU, body=anthropic_body("hi")))
admin("POST", "faults", {"kind": "dependency_failed", "operation": "InvokeAgent", "count": 1})
expect_error("fault dependency_failed", art.exceptions.DependencyFailedException,
             lambda: art.invoke_agent(agentId=AGENT_ID, agentAliasId=ALIAS_ID, sessionId="s-9", inputText="hi"))
admin("POST", "faults", {"kind": "throttle", "operation": "ConverseStream", "in_stream": True, "after_events": 1, "count": 1})
cs = rt.converse_stream(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Hello"}]}])
try:
    list(cs["stream"])
    check("fault in-stream throttle", False, "no error")
except botocore.exceptions.EventStreamError as e:
    check("fault in-stream throttle", e.response["Error"]["Code"] == "throttlingException", e.response)
admin("POST", "faults", {"kind": "stream_exception", "operation": "InvokeModelWithResponseStream", "count": 1})
st = rt.invoke_model_with_response_stream(modelId=HAIKU, body=anthropic_body("Hello"))
try:
    list(st["body"])
    check("fault stream_exception", False, "no error")
except botocore.exceptions.EventStreamError as e:
    check("fault stream_exception", e.response["Error"]["Code"] == "modelStreamErrorException", e.response)
admin("POST", "faults", {"kind": "bad_crc", "operation": "InvokeAgent", "count": 1})
ia = art.invoke_agent(agentId=AGENT_ID, agentAliasId=ALIAS_ID, sessionId="s-10", inputText="printer offline", enableTrace=True)
try:
    list(ia["completion"])
    check("fault bad_crc", False, "no error")
except Exception as e:  # botocore raises ChecksumMismatch
    check("fault bad_crc", "Checksum" in type(e).__name__ or "checksum" in str(e).lower(), repr(e))
admin("POST", "faults", {"kind": "throttle", "operation": "ListFoundationModels", "count": 1})
expect_error("fault throttle control plane", bedrock.exceptions.ThrottlingException, bedrock.list_foundation_models)
counters = admin("GET", "counters")["operations"]
check("counters InvokeModel", counters["InvokeModel"] == {"ThrottlingException": 1, "ModelTimeoutException": 1,
                                                          "ModelNotReadyException": 1, "ok": 1, "total": 4}, counters)
check("counters Converse", counters["Converse"]["total"] == 2, counters)
log = admin("GET", "requests")["requests"]
check("request log", len(log) == sum(v["total"] for v in counters.values()) and log[0]["operation"] == "InvokeModel", log[:2])
admin("DELETE", "faults")
print("ALL OK")
