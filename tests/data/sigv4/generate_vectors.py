#!/usr/bin/python3
"""Regenerates the SigV4 golden vectors in this directory with botocore.

Run with Debian's interpreter (its python3-botocore is the reference):
    /usr/bin/python3 tests/data/sigv4/generate_vectors.py

Each case folder (aws-c-auth layout) holds:
  context.json                  credentials, region, service, timestamp, flags
  request.txt                   the raw HTTP/1.1 request before signing
  header-canonical-request.txt  botocore's canonical request
  header-string-to-sign.txt     botocore's string to sign
  header-signature.txt          botocore's signature (hex)
  header-authorization.txt      botocore's Authorization header value
The artefact files have no trailing newline. request.txt is parsed the way
`quarry aws sign` parses it: a line starting with a space or tab continues the
previous header, joined with one space.
"""

import datetime
import hashlib
import json
import os
import sys

sys.dont_write_bytecode = True  # keep tests/oracle free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "oracle"))

from sigv4_oracle import sign_with_botocore  # noqa: E402

EXAMPLE_KEY = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
INVOKE_BODY = '{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}'

CASES = {
    "get-vanilla": (
        "GET / HTTP/1.1\nHost:example.amazonaws.com\n\n",
        {"service": "service"}),
    "bedrock-invoke-model-id": (
        "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke HTTP/1.1\n"
        "Host:bedrock-runtime.us-east-1.amazonaws.com\nContent-Type:application/json\nAccept:application/json\n\n"
        + INVOKE_BODY,
        {}),
    "bedrock-inference-profile-arn": (
        "POST /model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
        "us.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse HTTP/1.1\n"
        "Host:bedrock-runtime.us-east-1.amazonaws.com\nContent-Type:application/json\n\n"
        '{"messages":[{"role":"user","content":[{"text":"hi"}]}]}',
        {}),
    "get-query-repeated-empty": (
        "GET /foundation-models?byProvider=Anthropic&a=2&a=1&empty=&novalue&Param2=value%202&a=10 HTTP/1.1\n"
        "Host:bedrock.us-east-1.amazonaws.com\n\n",
        {}),
    "session-token": (
        "POST /model/anthropic.claude-3-haiku-20240307-v1%3A0/converse HTTP/1.1\n"
        "Host:bedrock-runtime.us-west-2.amazonaws.com\nContent-Type:application/json\n\n"
        '{"messages":[{"role":"user","content":[{"text":"hi"}]}]}',
        {"region": "us-west-2", "token": "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="}),
    "header-multiline": (
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\n  value2\n\t value3\n\n",
        {"service": "service"}),
    "header-duplicate": (
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nmy-header1:value1\n"
        "MY-HEADER1:   value  3  \n\n",
        {"service": "service"}),
    "header-spacing-and-unsigned": (
        "POST /agents/AGENT123/agentAliases/ALIAS456/sessions/s-1/text HTTP/1.1\n"
        "Host:bedrock-agent-runtime.us-east-1.amazonaws.com\nContent-Type:   application/json  \n"
        "User-Agent:quarry/0.1\nX-Amzn-Trace-Id:Root=1-5759e988-bd862e3fe1be46a994272793\n"
        "X-Custom:\t a \t  b   c \n\n"
        '{"inputText":"hello","enableTrace":false}',
        {}),
    "utf8-path": (
        "GET /%E1%88%B4/caf%C3%A9 HTTP/1.1\nHost:example.amazonaws.com\n\n",
        {"service": "service"}),
    "normalize-path": (
        "GET /example/./a/../b//c/ HTTP/1.1\nHost:example.amazonaws.com\n\n",
        {"service": "service"}),
    "non-default-port": (
        "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke HTTP/1.1\nHost:127.0.0.1:8443\n"
        "Content-Type:application/json\n\n" + INVOKE_BODY,
        {}),
    "sign-body": (
        "POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke HTTP/1.1\n"
        "Host:bedrock-runtime.us-east-1.amazonaws.com\nContent-Type:application/json\n\n" + INVOKE_BODY,
        {"sign_body": True}),
    "sts-get-caller-identity": (
        "POST / HTTP/1.1\nHost:sts.us-east-1.amazonaws.com\n"
        "Content-Type:application/x-www-form-urlencoded; charset=utf-8\n\n"
        "Action=GetCallerIdentity&Version=2011-06-15",
        {"service": "sts"}),
}


def parse_request(text):
    """Same rules as quarry::aws::ParseHttpRequestText."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, target, _ = lines[0].split(" ")
    path, _, query = target.partition("?")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip(" \t"))
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, path, query, headers, body.encode("utf-8")


def main():
    for name, (request_text, overrides) in CASES.items():
        context = {
            "credentials": dict(EXAMPLE_KEY),
            "region": overrides.get("region", "us-east-1"),
            "service": overrides.get("service", "bedrock"),
            "timestamp": "2015-08-30T12:36:00Z",
            "normalize": True,
            "sign_body": overrides.get("sign_body", False),
        }
        if "token" in overrides:
            context["credentials"]["token"] = overrides["token"]
        method, path, query, headers, body = parse_request(request_text)
        host = dict((n.lower(), v) for n, v in headers)["host"].strip()
        url = "https://" + host + path + ("?" + query if query else "")
        if context["sign_body"]:
            headers = headers + [("X-Amz-Content-SHA256", hashlib.sha256(body).hexdigest())]
        when = datetime.datetime(2015, 8, 30, 12, 36, 0)
        auth, signed = sign_with_botocore(method, url, headers, body, EXAMPLE_KEY["access_key_id"],
                                          EXAMPLE_KEY["secret_access_key"], overrides.get("token"),
                                          context["region"], context["service"], when)
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        files = {
            "context.json": json.dumps(context, indent=2) + "\n",
            "request.txt": request_text,
            "header-canonical-request.txt": auth.captured_canonical_request,
            "header-string-to-sign.txt": auth.captured_string_to_sign,
            "header-signature.txt": auth.captured_signature,
            "header-authorization.txt": signed.headers["Authorization"],
        }
        for file_name, content in files.items():
            with open(os.path.join(folder, file_name), "w", encoding="utf-8", newline="") as out:
                out.write(content)
        print(f"{name}: {auth.captured_signature}")


if __name__ == "__main__":
    main()
