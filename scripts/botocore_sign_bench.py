#!/usr/bin/env python3
"""Times botocore's SigV4Auth on the request src/aws/sigv4_benchmark.cc signs.

Usage: botocore_sign_bench.py [PYTHON]
  Without an argument, runs in this interpreter (sys.executable). With one,
  re-runs itself under that interpreter (e.g. /usr/bin/python3 for Debian's
  botocore) and relays its output.

Prints one JSON line: {"botocore_version": ..., "ns_per_sign": ..., "python": ...}.
The request: POST /model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke,
Content-Type and Accept application/json, the same ~200-byte body, long-term
keys, a frozen clock. Each sign starts from a fresh copy of the headers (as
botocore does for every request it sends); add_auth derives the signing key
every time, botocore has no key cache.
"""

import json
import os
import subprocess
import sys
import timeit


def run_here():
    import datetime
    import types

    import botocore
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    frozen = datetime.datetime(2015, 8, 30, 12, 36, 0)
    if hasattr(botocore.auth, "get_current_datetime"):
        botocore.auth.get_current_datetime = lambda *args, **kwargs: frozen
    else:
        class _Frozen(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return frozen
        botocore.auth.datetime = types.SimpleNamespace(datetime=_Frozen)

    body = (b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":512,"temperature":0.2,'
            b'"messages":[{"role":"user","content":"Summarise the incident report attached to record 4711 '
            b'in three short sentences for the on-call engineer."}]}')
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/invoke"
    auth = botocore.auth.SigV4Auth(Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                                   "bedrock", "us-east-1")

    def sign_once():
        request = AWSRequest(method="POST", url=url, data=body,
                             headers={"Content-Type": "application/json", "Accept": "application/json"})
        auth.add_auth(request)

    sign_once()
    timer = timeit.Timer(sign_once)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=5, number=number)) / number
    print(json.dumps({"botocore_version": botocore.__version__, "ns_per_sign": round(best * 1e9, 1),
                      "python": sys.version.split()[0]}))


def main(argv):
    if len(argv) > 1 and os.path.realpath(argv[1]) != os.path.realpath(sys.executable):
        return subprocess.call([argv[1], os.path.abspath(__file__)])
    run_here()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
