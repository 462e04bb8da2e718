"""Shared helpers of the end-to-end Python suites (boto3 and raw HTTP). The Rust harness runs
them under pytest with the gateway's address in OZONE_S3_ENDPOINT and test credentials in the
usual AWS_* variables (conftest.py has the fixtures)."""
import http.client
import os
import urllib.parse

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def env(name):
    """A value the Rust test passes in the environment; fails the case when it is missing."""
    value = os.environ.get(name)
    if not value:
        raise AssertionError(f"{name} is not set: run this suite from its Rust test (tests/e2e)")
    return value


def endpoint():
    return env("OZONE_S3_ENDPOINT")


def s3():
    return boto3.client(
        "s3",
        endpoint_url=endpoint(),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def error_of(fn, *a, **kw):
    """The error code and HTTP status of a boto3 call that must fail."""
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"expected an error from {fn.__name__}")


def code(fn, *a, **kw):
    """The error code of a boto3 call that must fail."""
    return error_of(fn, *a, **kw)[0]


def raw(method, path, body=b"", headers=None):
    """One plain HTTP request; returns (status, headers dict, body bytes)."""
    u = urllib.parse.urlparse(endpoint())
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    h = {"Authorization": "AWS4-HMAC-SHA256 Credential=testuser/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, hdrs, data


def expect_error(resp, status, code):
    st, hdrs, body = resp
    text = body.decode("utf-8", "replace")
    assert st == status, f"expected {status} {code}, got {st}: {text}"
    assert f"<Code>{code}</Code>" in text, f"expected {code}: {text}"
    assert "x-amz-request-id" in hdrs, f"no request id header: {hdrs}"
    assert "<RequestId>" in text, f"no RequestId in body: {text}"
