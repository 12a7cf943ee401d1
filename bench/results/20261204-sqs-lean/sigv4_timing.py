"""check_head + check_signature of one botocore-signed SendMessage: best thread-CPU µs
per call (best of 25 windows of 3000). Run with PYTHONPATH set to each checkout."""

import time
import timeit
from datetime import UTC, datetime

import botocore.auth
import botocore.awsrequest
import botocore.credentials
from multidict import CIMultiDict

from protocols.aws import sigv4

N = 3000
body = b'{"QueueUrl":"http://127.0.0.1:9324/000000000000/q","MessageBody":"' + b"x" * 256 + b'"}'
req = botocore.awsrequest.AWSRequest(
    method="POST",
    url="http://127.0.0.1:9324/",
    data=body,
    headers={"X-Amz-Target": "AmazonSQS.SendMessage", "Content-Type": "application/x-amz-json-1.0"},
)
creds = botocore.credentials.Credentials("AKID", "secret")
botocore.auth.SigV4Auth(creds, "sqs", "us-east-1").add_auth(req)
headers = CIMultiDict(req.headers.items())
headers["Host"] = "127.0.0.1:9324"
secrets = {"AKID": "secret"}


def both() -> str:
    h = sigv4.check_head("", headers, secrets, datetime.now(UTC))
    return sigv4.check_signature(h, "POST", "/", "", headers, body)


assert both() == "AKID"
best = min(timeit.Timer(both, timer=time.thread_time).repeat(number=N, repeat=25))
print(f"check_head + check_signature: {best / N * 1e6:.2f} us")
