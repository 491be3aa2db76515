#!/usr/bin/env python3
"""SigV4 oracle: random requests signed by botocore's SigV4Auth.

Usage: sigv4_oracle.py SEED COUNT

Prints COUNT JSON lines. Each holds a random request as it would go on the
wire (path segments percent-encoded once, as botocore's serializer does;
strictly encoded query with repeated and empty keys; headers with odd spacing,
repeated names, mixed case and headers botocore never signs; a body), the
signing inputs (credentials, region, service, a frozen timestamp), and what
botocore produced: its canonical request and its Authorization header. The C++
test (sigv4_oracle_test.cc) signs the same request and must produce the same
header.

Works with Debian's botocore 1.29 and with botocore >= 1.43. The clock is
frozen by patching botocore.auth.datetime (1.29) or
botocore.auth.get_current_datetime (newer), whichever exists.
"""

import base64
import datetime
import hashlib
import json
import random
import sys
import types

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode


class _CapturingSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth that remembers its canonical request and string to sign."""

    def canonical_request(self, request):
        self.captured_canonical_request = super().canonical_request(request)
        return self.captured_canonical_request

    def string_to_sign(self, request, canonical_request):
        self.captured_string_to_sign = super().string_to_sign(request, canonical_request)
        return self.captured_string_to_sign

    def signature(self, string_to_sign, request):
        self.captured_signature = super().signature(string_to_sign, request)
        return self.captured_signature


def _freeze_clock(frozen):
    """Makes botocore.auth see `frozen` (a naive UTC datetime) as now."""
    if hasattr(botocore.auth, "get_current_datetime"):
        botocore.auth.get_current_datetime = lambda *args, **kwargs: frozen
    else:
        class _FrozenDateTime(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return frozen

        botocore.auth.datetime = types.SimpleNamespace(datetime=_FrozenDateTime)


def sign_with_botocore(method, url, headers, body, access_key, secret_key, token, region, service, when):
    """Signs like botocore; returns (auth object with captures, signed AWSRequest).

    `headers` is a list of (name, value); repeated names are kept, in order.
    `when` is a naive UTC datetime.
    """
    _freeze_clock(when)
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value  # HTTPMessage appends: duplicates survive
    credentials = Credentials(access_key, secret_key, token or None)
    auth = _CapturingSigV4Auth(credentials, service, region)
    auth.add_auth(request)
    return auth, request


_LABEL_ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("-._~:/%+=&?#@!$'()*,; ")
    + ["\u00e9", "\u00fc", "\u1234", "\u4e2d", "\U0001F600"]
)
_WORDS = ["model", "invoke", "converse", "agents", "agentAliases", "sessions", "text", "foundation-models",
          "anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-3-haiku-20240307-v1:0",
          "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"]
_HEADER_NAMES = ["Content-Type", "Accept", "X-Amz-Target", "x-amz-meta-color", "My-Header1", "my-header1",
                 "X-Custom", "x-amzn-bedrock-trace", "Content-Encoding", "X-Amz-Client-Context"]
_QUERY_KEYS = ["a", "b", "A", "Param2", "max-results", "nextToken", "by Provider", "k~", "x:y", "\u00e9"]
_SERVICES = ["bedrock", "bedrock", "sts", "execute-api", "lambda", "service"]
_REGIONS = ["us-east-1", "us-west-2", "eu-west-3", "ap-southeast-2", "us-gov-west-1"]
_HOSTS = [("https", "bedrock-runtime.us-east-1.amazonaws.com", None), ("https", "example.amazonaws.com", 443),
          ("http", "127.0.0.1", 8080), ("https", "localhost", 8443), ("http", "Example.AmazonAWS.com", 80),
          ("http", "127.0.0.1", 33117)]


def _random_label(rng):
    return "".join(rng.choice(_LABEL_ALPHABET) for _ in range(rng.randint(1, 12)))


def _random_path(rng):
    if rng.random() < 0.05:
        return ""
    segments = []
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        if roll < 0.35:
            segments.append(percent_encode(rng.choice(_WORDS), safe=""))
        elif roll < 0.85:
            segments.append(percent_encode(_random_label(rng), safe=""))
        else:
            segments.append(rng.choice([".", "..", ""]))  # on the wire as is: exercises normalisation
    path = "/" + "/".join(segments)
    if rng.random() < 0.15:
        path += "/"
    return path


def _random_query(rng):
    if rng.random() < 0.4:
        return ""
    pairs = []
    for _ in range(rng.randint(1, 6)):
        key = percent_encode(rng.choice(_QUERY_KEYS), safe="")
        roll = rng.random()
        if roll < 0.15:
            pairs.append(key)  # no '=' at all
        elif roll < 0.3:
            pairs.append(key + "=")
        else:
            value = rng.choice(["1", "0", "TEXT", "Anthropic", _random_label(rng), _random_label(rng)])
            pairs.append(key + "=" + percent_encode(value, safe=""))
    return "&".join(pairs)


def _odd_spacing(rng, value):
    roll = rng.random()
    if roll < 0.5:
        return value
    if roll < 0.7:
        return "  " + value + "   "
    if roll < 0.85:
        return value.replace(" ", "   \t ")
    return "\t" + value + " \t"


def _random_header_value(rng):
    words = ["application/json", "a", "b  c", "value1", "text/plain;  charset=utf-8", "x,y", "42",
             "token=abc==", "q=0.5"]
    value = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
    return _odd_spacing(rng, value)


def _random_headers(rng, host_header, token):
    headers = []
    if host_header is not None:
        headers.append(("Host" if rng.random() < 0.7 else "host", host_header))
    for _ in range(rng.randint(0, 6)):
        headers.append((rng.choice(_HEADER_NAMES), _random_header_value(rng)))
    unsigned = ["User-Agent", "Expect", "X-Amzn-Trace-Id"]
    # Hop-by-hop headers only where this botocore also leaves them unsigned
    # (1.43 does; Debian's 1.29 signs them).
    for name in ["Connection", "Transfer-Encoding", "Keep-Alive", "TE", "Upgrade"]:
        if name.lower() in botocore.auth.SIGNED_HEADERS_BLACKLIST:
            unsigned.append(name)
    if rng.random() < 0.5:
        headers.append((rng.choice(unsigned), "Boto3/1.0 Python/3.11 " + _random_label(rng)))
    if rng.random() < 0.1:
        headers.append(("Authorization", "AWS4-HMAC-SHA256 Credential=stale"))  # a retry re-signs
    if rng.random() < 0.1:
        headers.append(("X-Amz-Date", "20000101T000000Z"))  # replaced by the signer
    if token and rng.random() < 0.2:
        headers.append(("X-Amz-Security-Token", "stale-token"))  # replaced by the signer
    rng.shuffle(headers)
    return headers


def _random_body(rng):
    roll = rng.random()
    if roll < 0.3:
        return b""
    if roll < 0.7:
        text = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": rng.randint(1, 4096),
                           "messages": [{"role": "user", "content": _random_label(rng)}]})
        return text.encode("utf-8")
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))


def random_case(rng):
    scheme, host, port = rng.choice(_HOSTS)
    netloc = host if port is None else f"{host}:{port}"
    token = ""
    if rng.random() < 0.4:
        token = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(20, 90)))).decode()
    host_in_headers = rng.random() < 0.5
    explicit_host = None
    if host_in_headers:
        default = {"http": 80, "https": 443}[scheme]
        explicit_host = host.lower() if port in (None, default) else f"{host.lower()}:{port}"
    when = datetime.datetime(2015, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 20 * 365 * 86400))
    case = {
        "method": rng.choice(["GET", "POST", "POST", "PUT", "DELETE", "HEAD", "PATCH"]),
        "scheme": scheme,
        "host": host,
        "port": port or 0,
        "host_in_headers": host_in_headers,
        "path": _random_path(rng),
        "query": _random_query(rng),
        "headers": _random_headers(rng, explicit_host, token),
        "body": _random_body(rng),
        "access_key_id": rng.choice(["AKIDEXAMPLE", "ASIAQUARRYTESTKEY0001", "AKIA" + str(rng.randint(10**15, 10**16))]),
        "secret_access_key": base64.b64encode(bytes(rng.getrandbits(8) for _ in range(30))).decode(),
        "token": token,
        "region": rng.choice(_REGIONS),
        "service": rng.choice(_SERVICES),
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sign_body": rng.random() < 0.15,
    }
    url = f"{scheme}://{netloc}{case['path']}"
    if case["query"]:
        url += "?" + case["query"]
    botocore_headers = list(case["headers"])
    if case["sign_body"]:
        botocore_headers.append(("X-Amz-Content-SHA256", hashlib.sha256(case["body"]).hexdigest()))
    auth, signed = sign_with_botocore(case["method"], url, botocore_headers, case["body"], case["access_key_id"],
                                      case["secret_access_key"], token, case["region"], case["service"], when)
    case["body_b64"] = base64.b64encode(case.pop("body")).decode()
    case["headers"] = [[name, value] for name, value in case["headers"]]
    case["expected_canonical_request"] = auth.captured_canonical_request
    case["expected_authorization"] = signed.headers["Authorization"]
    case["botocore_version"] = botocore.__version__
    return case


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: sigv4_oracle.py SEED COUNT\n")
        return 2
    rng = random.Random(int(argv[1]))
    for _ in range(int(argv[2])):
        sys.stdout.write(json.dumps(random_case(rng)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
