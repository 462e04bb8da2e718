"""Shared helpers of the end-to-end Python suites (boto3 and raw HTTP). The Rust harness runs
them under pytest with the gateway's address in OZONE_S3_ENDPOINT, test credentials in the
usual AWS_* variables (a real secret when the gateway checks signatures) and OZONE_TEST_SECURE
(1 when the cluster runs with security on); conftest.py has the fixtures. Raw requests are
signed with SigV4 like any client's, so they pass with security on and off alike."""
import hashlib
import hmac
import http.client
import os
import urllib.parse

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
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


def secure():
    """Whether the gateway runs with security on (the harness sets OZONE_TEST_SECURE)."""
    return os.environ.get("OZONE_TEST_SECURE") == "1"


class _S3SigV4(SigV4Auth):
    """botocore's SigV4 signer as S3 uses it: the path is signed as sent (not normalised), and
    an `x-amz-content-sha256` the caller gave (a streaming mode) is the signed payload hash."""

    def _normalize_url_path(self, path):
        return path


def sign(method, path, headers=None, payload_hash=None, body=b""):
    """The headers of a request to the gateway signed with SigV4 by the test credentials
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY): `headers` plus `x-amz-date`,
    `x-amz-content-sha256` (`payload_hash`, else the SHA-256 of `body`) and `Authorization`.
    `path` is the request target as sent (path and query, already percent-encoded); a `Host`
    in `headers` is signed as given."""
    h = dict(headers or {})
    given = {k.lower(): k for k in h}
    if "x-amz-content-sha256" in given:
        payload_hash = h.pop(given["x-amz-content-sha256"])
    h["X-Amz-Content-SHA256"] = payload_hash or hashlib.sha256(body).hexdigest()
    req = AWSRequest(method=method, url=endpoint() + path, headers=h)
    creds = Credentials(env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    _S3SigV4(creds, "s3", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def signing_key(amz_date):
    """The SigV4 signing key of the test secret for the day of `amz_date` (us-east-1, s3)."""
    def hm(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()
    k = ("AWS4" + env("AWS_SECRET_ACCESS_KEY")).encode()
    return hm(hm(hm(hm(k, amz_date[:8]), "us-east-1"), "s3"), "aws4_request")


def signed_chunks(headers, pieces):
    """The body of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload whose headers `sign` made: each
    of `pieces` as one chunk with its chunk signature (chained from the request's signature),
    then the final empty chunk, as SDKs frame it."""
    t = headers["X-Amz-Date"]
    seed = headers["Authorization"].rsplit("Signature=", 1)[1]
    scope = f"{t[:8]}/us-east-1/s3/aws4_request"
    key, prev, body = signing_key(t), seed, b""
    empty = hashlib.sha256(b"").hexdigest()
    for p in list(pieces) + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", t, scope, prev, empty,
                         hashlib.sha256(p).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        body += f"{len(p):x};chunk-signature={prev}\r\n".encode() + p + b"\r\n"
    return body


def raw(method, path, body=b"", headers=None):
    """One plain HTTP request, signed with SigV4 by the test credentials (see `sign`; a given
    `x-amz-content-sha256` is signed as the payload hash; headers that already hold an
    `Authorization`, from `sign`, are sent as they are); returns (status, headers dict, body
    bytes)."""
    u = urllib.parse.urlparse(endpoint())
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    h = headers or {}
    if not any(k.lower() == "authorization" for k in h):
        h = sign(method, path, h, body=body)
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
