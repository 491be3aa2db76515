"""Prepares a running moto server for `quarry bedrock` tests.

Usage: python3 moto_iam_setup.py MOTO_URL

With moto's default (unenforced) credentials: creates IAM user `quarry-cli-user`
with an inline policy that allows listing/reading foundation models but NOT
bedrock:InvokeModel or bedrock:InvokeAgent, and an access key for it. Then turns
IAM enforcement on through moto's own admin endpoint (POST /moto-api/reset-auth
with the number of further unauthenticated requests, 0), and prints one JSON
line: {"access_key_id", "secret_access_key", "arn", "account"}.
"""
import json
import sys
import urllib.request

import boto3

url = sys.argv[1]
session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name="us-east-1")
iam = session.client("iam", endpoint_url=url)
user = iam.create_user(UserName="quarry-cli-user")["User"]
iam.put_user_policy(
    UserName="quarry-cli-user",
    PolicyName="bedrock-read-only",
    PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["bedrock:ListFoundationModels", "bedrock:GetFoundationModel",
                       "sts:GetCallerIdentity"],
            "Resource": "*",
        }],
    }))
key = iam.create_access_key(UserName="quarry-cli-user")["AccessKey"]

# A text/plain body: with a form content type Flask would hide the body from moto.
request = urllib.request.Request(url + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
with urllib.request.urlopen(request, timeout=10) as response:
    json.loads(response.read())

print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"],
                  "arn": user["Arn"], "account": user["Arn"].split(":")[4]}))
