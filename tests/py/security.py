"""Security on (ozone.security.enabled=true): SigV4 against OM's secrets, bucket ownership and
ACLs. The Rust test passes Alice's and Bob's secrets in OZONE_TEST_ALICE_KEY/_SECRET and
OZONE_TEST_BOB_KEY/_SECRET and runs every case but the last; after revoking Bob's secret it runs
the last (`-k revoked`) with OZONE_TEST_REVOKED_KEY/_SECRET."""
import base64
import hashlib
import hmac
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import boto3
import pytest
from botocore.config import Config

from common import code, endpoint, env, expect_error

EMPTY = hashlib.sha256(b"").hexdigest()


def client(ak, sk):
    return boto3.client(
        "s3", endpoint_url=endpoint(), region_name="us-east-1",
        aws_access_key_id=ak, aws_secret_access_key=sk,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      signature_version="s3v4"),
    )


def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(sk, date, region="us-east-1"):
    return hm(hm(hm(hm(("AWS4" + sk).encode(), date), region), "s3"), "aws4_request")


def request(method, path, body=b"", headers=None, unsigned=False):
    u = urllib.parse.urlparse(endpoint())
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, hdrs, data


def signed(ak, sk, method, path, payload_hash, extra=None, amz_date=None, query="",
           scope_day=None):
    """SigV4 headers for a request (written from the AWS documentation, independent of the
    gateway's code); `scope_day` (YYYYMMDD) signs with another day's key and scope than the
    request's date. Returns (headers, signing key, signature, amz date, scope)."""
    u = urllib.parse.urlparse(endpoint())
    t = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    h = {"host": u.netloc, "x-amz-date": t, "x-amz-content-sha256": payload_hash}
    h.update({k.lower(): v for k, v in (extra or {}).items()})
    names = sorted(h)
    canon = "".join(f"{k}:{' '.join(str(h[k]).split())}\n" for k in names)
    creq = "\n".join([method, urllib.parse.quote(path, safe="/-_.~"), query, canon,
                      ";".join(names), payload_hash])
    day = scope_day or t[:8]
    scope = f"{day}/us-east-1/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", t, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(sk, day)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    h["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, "
                          f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return h, key, sig, t, scope


def streaming_put(ak, sk, path, data, chunk=64 * 1024, corrupt_chunk=None, trailer=None,
                  corrupt_trailer=False):
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload, every chunk signed (optionally one
    chunk's signature corrupted); with `trailer` the -TRAILER variant with a CRC32 trailer and
    its trailer signature."""
    extra = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    if trailer:
        mode += "-TRAILER"
        extra["x-amz-trailer"] = "x-amz-checksum-crc32"
    h, key, seed, t, scope = signed(ak, sk, "PUT", path, mode, extra)
    prev = seed
    body = b""
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for n, p in enumerate(pieces):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", t, scope, prev, EMPTY,
                         hashlib.sha256(p).hexdigest()])
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        prev = sig
        if n == corrupt_chunk:
            sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        body += f"{len(p):x};chunk-signature={sig}\r\n".encode() + p
        if p:
            body += b"\r\n"
    if trailer:
        line = f"x-amz-checksum-crc32:{trailer}\n"
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", t, scope, prev,
                         hashlib.sha256(line.encode()).hexdigest()])
        tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        if corrupt_trailer:
            tsig = ("0" if tsig[0] != "0" else "1") + tsig[1:]
        body += f"x-amz-checksum-crc32:{trailer}\r\nx-amz-trailer-signature:{tsig}\r\n".encode()
    body += b"\r\n"
    return request("PUT", path, body=body, headers=h)


B = "alice-bucket"


@pytest.fixture(scope="module")
def keys():
    """(Alice's access key, her secret, Bob's access key, his secret)."""
    return (env("OZONE_TEST_ALICE_KEY"), env("OZONE_TEST_ALICE_SECRET"),
            env("OZONE_TEST_BOB_KEY"), env("OZONE_TEST_BOB_SECRET"))


@pytest.fixture(scope="module")
def alice(keys):
    return client(keys[0], keys[1])


@pytest.fixture(scope="module")
def bob(keys):
    return client(keys[2], keys[3])


def test_owner_reads_and_writes_keys_sigv4_encodes(alice, bob, keys):
    """Alice's bucket; keys and query values with characters SigV4 encodes."""
    ak_a, sk_a, ak_b, sk_b = keys
    alice.create_bucket(Bucket=B)
    alice.put_object(Bucket=B, Key="doc.txt", Body=b"alice's data")
    assert alice.get_object(Bucket=B, Key="doc.txt")["Body"].read() == b"alice's data"

    # Keys and query values with characters SigV4 encodes.
    for k in ["dir/a b+c~!*'().txt", "üñí/çødé=&?.bin", "x/%41%2F"]:
        alice.put_object(Bucket=B, Key=k, Body=k.encode())
        assert alice.get_object(Bucket=B, Key=k)["Body"].read() == k.encode(), k
        listed = alice.list_objects_v2(Bucket=B, Prefix=k[:6], Delimiter="/")
        assert listed["KeyCount"] >= 1, (k, listed)
        alice.delete_object(Bucket=B, Key=k)


def test_wrong_unknown_or_no_credentials(alice, bob, keys):
    ak_a, sk_a, ak_b, sk_b = keys
    assert code(client(ak_a, sk_a + "x").list_buckets) == "SignatureDoesNotMatch"
    assert code(client(ak_a, "wrong").get_object, Bucket=B, Key="doc.txt") == "SignatureDoesNotMatch"
    assert code(client("nobody", "whatever").list_buckets) == "InvalidAccessKeyId"
    expect_error(request("GET", f"/{B}/doc.txt"), 403, "AccessDenied")
    expect_error(request("GET", "/"), 403, "AccessDenied")
    expect_error(request("PUT", "/anon-bucket"), 403, "AccessDenied")


def test_clock_skew_and_a_changed_signed_header(alice, bob, keys):
    """Clock skew over 15 minutes; a signed header changed after signing."""
    ak_a, sk_a, ak_b, sk_b = keys
    old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 16 * 60))
    h, *_ = signed(ak_a, sk_a, "GET", f"/{B}/doc.txt", EMPTY, amz_date=old)
    expect_error(request("GET", f"/{B}/doc.txt", headers=h), 403, "RequestTimeTooSkewed")
    h, *_ = signed(ak_a, sk_a, "GET", f"/{B}/doc.txt", EMPTY)
    st, _, data = request("GET", f"/{B}/doc.txt", headers=h)
    assert st == 200 and data == b"alice's data", (st, data)
    # A signed header changed after signing.
    h["x-amz-date"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 60))
    expect_error(request("GET", f"/{B}/doc.txt", headers=h), 403, "SignatureDoesNotMatch")


def test_payload_hash_must_match(alice, bob, keys):
    """x-amz-content-sha256 must match the signed payload."""
    ak_a, sk_a, ak_b, sk_b = keys
    h, *_ = signed(ak_a, sk_a, "PUT", f"/{B}/hashed", hashlib.sha256(b"abc").hexdigest())
    st, _, _ = request("PUT", f"/{B}/hashed", body=b"abc", headers=h)
    assert st == 200, st
    h, *_ = signed(ak_a, sk_a, "PUT", f"/{B}/hashed2", hashlib.sha256(b"abc").hexdigest())
    expect_error(request("PUT", f"/{B}/hashed2", body=b"abd", headers=h), 400,
                 "XAmzContentSHA256Mismatch")


def test_presigned_urls_valid_and_tampered(alice, bob, keys):
    ak_a, sk_a, ak_b, sk_b = keys
    url = alice.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "doc.txt"},
                                       ExpiresIn=300)
    try:
        assert urllib.request.urlopen(url).read() == b"alice's data"
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{url}: {e.code} {e.read()}")
    for bad in [url.replace("doc.txt", "doc2.txt"),
                url.replace("X-Amz-Expires=300", "X-Amz-Expires=600"),
                url.replace("X-Amz-Signature=", "X-Amz-Signature=0")]:
        try:
            urllib.request.urlopen(bad)
            raise AssertionError(f"tampered URL accepted: {bad}")
        except urllib.error.HTTPError as e:
            assert e.code == 403, (e.code, bad)
            assert b"SignatureDoesNotMatch" in e.read()


def test_presigned_put_with_an_unsigned_copy_source_is_refused(alice, bob, keys):
    """A presigned PUT with an added, unsigned x-amz-copy-source must not turn into a copy of
    whatever the signer may read: 403, nothing written; the same URL without it still works."""
    url = alice.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "via-url"},
                                       ExpiresIn=300)
    u = urllib.parse.urlparse(url)
    path = f"{u.path}?{u.query}"
    expect_error(request("PUT", path, headers={"x-amz-copy-source": f"/{B}/doc.txt"}), 403,
                 "AccessDenied")
    assert code(alice.head_object, Bucket=B, Key="via-url") == "404"
    st, _, data = request("PUT", path, body=b"by the URL")
    assert st == 200, (st, data)
    assert alice.get_object(Bucket=B, Key="via-url")["Body"].read() == b"by the URL"


def test_a_signature_of_yesterday_is_refused(alice, bob, keys):
    """A request signed yesterday (date and scope of yesterday) answers 403
    RequestTimeTooSkewed; yesterday's signing key on a request dated now answers as AWS does,
    400 AuthorizationHeaderMalformed (the scope's date is not the request's). Neither reads."""
    ak_a, sk_a, ak_b, sk_b = keys
    now = time.time()
    yesterday = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now - 86400))
    h, *_ = signed(ak_a, sk_a, "GET", f"/{B}/doc.txt", EMPTY, amz_date=yesterday)
    expect_error(request("GET", f"/{B}/doc.txt", headers=h), 403, "RequestTimeTooSkewed")
    h, *_ = signed(ak_a, sk_a, "GET", f"/{B}/doc.txt", EMPTY, scope_day=yesterday[:8])
    expect_error(request("GET", f"/{B}/doc.txt", headers=h), 400, "AuthorizationHeaderMalformed")


def test_signed_streaming_upload(alice, bob, keys):
    """Every chunk signature checked; the -TRAILER variant's trailer signature too."""
    ak_a, sk_a, ak_b, sk_b = keys
    data = bytes(range(256)) * 1200  # 300 KiB: 5 chunks of 64 KiB
    st, _, body = streaming_put(ak_a, sk_a, f"/{B}/streamed", data)
    assert st == 200, (st, body)
    assert alice.get_object(Bucket=B, Key="streamed")["Body"].read() == data
    st, _, body = streaming_put(ak_a, sk_a, f"/{B}/streamed-bad", data, corrupt_chunk=2)
    assert st == 403 and b"SignatureDoesNotMatch" in body, (st, body)
    assert code(alice.head_object, Bucket=B, Key="streamed-bad") == "404"
    st, _, body = streaming_put(ak_a, sk_a, f"/{B}/streamed-bad", data, corrupt_chunk=5)
    assert st == 403 and b"SignatureDoesNotMatch" in body, (st, body)

    # The -TRAILER variant: a CRC32 trailer with its own signature.
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    st, _, body = streaming_put(ak_a, sk_a, f"/{B}/trailed", data, trailer=crc)
    assert st == 200, (st, body)
    assert alice.get_object(Bucket=B, Key="trailed")["Body"].read() == data
    st, _, body = streaming_put(ak_a, sk_a, f"/{B}/trailed-bad", data, trailer=crc,
                                corrupt_trailer=True)
    assert st == 403 and b"SignatureDoesNotMatch" in body, (st, body)


def test_signed_xml_body_and_query(alice, bob, keys):
    """A signed XML body must match its x-amz-content-sha256."""
    ak_a, sk_a, ak_b, sk_b = keys
    acl_xml = b"<AccessControlPolicy><AccessControlList></AccessControlList></AccessControlPolicy>"
    h, *_ = signed(ak_a, sk_a, "PUT", f"/{B}", hashlib.sha256(acl_xml).hexdigest(), query="acl=")
    st, _, body = request("PUT", f"/{B}?acl", body=acl_xml, headers=h)
    assert st == 200, (st, body)
    tampered = acl_xml.replace(b"<AccessControlList>", b"<AccessControlList> ")
    expect_error(request("PUT", f"/{B}?acl", body=tampered, headers=h), 400,
                 "XAmzContentSHA256Mismatch")
    # ... and the query is part of the signature.
    st, _, body = request("PUT", f"/{B}?acl&x=1", body=acl_xml, headers=h)
    assert st == 403 and b"SignatureDoesNotMatch" in body, (st, body)


def test_other_users_cannot_touch_the_bucket(alice, bob, keys):
    """Bob cannot see, read, list, write or delete in Alice's bucket."""
    ak_a, sk_a, ak_b, sk_b = keys
    assert B not in [b["Name"] for b in bob.list_buckets()["Buckets"]]
    assert B in [b["Name"] for b in alice.list_buckets()["Buckets"]]
    assert code(bob.get_object, Bucket=B, Key="doc.txt") == "AccessDenied"
    assert code(bob.list_objects_v2, Bucket=B) == "AccessDenied"
    assert code(bob.put_object, Bucket=B, Key="x", Body=b"x") == "AccessDenied"
    assert code(bob.delete_object, Bucket=B, Key="doc.txt") == "AccessDenied"
    assert code(bob.delete_bucket, Bucket=B) == "AccessDenied"
    assert code(bob.get_bucket_acl, Bucket=B) == "AccessDenied"
    assert code(bob.put_bucket_acl, Bucket=B, ACL="public-read-write") == "AccessDenied"
    bob.create_bucket(Bucket="bob-bucket")
    assert code(bob.copy_object, Bucket="bob-bucket", Key="stolen",
                CopySource={"Bucket": B, "Key": "doc.txt"}) == "AccessDenied"
    assert code(bob.create_bucket, Bucket=B) in ("BucketAlreadyExists", "AccessDenied")


def test_read_grant(alice, bob, keys):
    """Alice grants Bob READ: he reads and lists, still cannot write."""
    ak_a, sk_a, ak_b, sk_b = keys
    alice.put_bucket_acl(Bucket=B, GrantRead='id="%s"' % ak_b)
    acl = alice.get_bucket_acl(Bucket=B)
    assert acl["Owner"]["ID"] == ak_a, acl
    grants = {(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]}
    assert (ak_a, "FULL_CONTROL") in grants and (ak_b, "READ") in grants, grants
    assert bob.get_object(Bucket=B, Key="doc.txt")["Body"].read() == b"alice's data"
    assert "doc.txt" in [o["Key"] for o in bob.list_objects_v2(Bucket=B)["Contents"]]
    assert code(bob.put_object, Bucket=B, Key="x", Body=b"x") == "AccessDenied"
    bob.copy_object(Bucket="bob-bucket", Key="copied", CopySource={"Bucket": B, "Key": "doc.txt"})


def test_canned_acls(alice, bob, keys):
    """public-read lets anyone read; private takes every grant away."""
    ak_a, sk_a, ak_b, sk_b = keys
    alice.put_bucket_acl(Bucket=B, ACL="public-read")
    st, _, data = request("GET", f"/{B}/doc.txt")
    assert st == 200 and data == b"alice's data", (st, data)
    expect_error(request("PUT", f"/{B}/anon", body=b"x"), 403, "AccessDenied")
    alice.put_bucket_acl(Bucket=B, ACL="private")
    expect_error(request("GET", f"/{B}/doc.txt"), 403, "AccessDenied")
    assert code(bob.get_object, Bucket=B, Key="doc.txt") == "AccessDenied"


def test_access_control_policy_body_grants_write(alice, bob, keys):
    """An AccessControlPolicy body granting Bob WRITE."""
    ak_a, sk_a, ak_b, sk_b = keys
    alice.put_bucket_acl(Bucket=B, AccessControlPolicy={
        "Owner": {"ID": ak_a},
        "Grants": [{"Grantee": {"Type": "CanonicalUser", "ID": ak_b}, "Permission": "WRITE"}],
    })
    bob.put_object(Bucket=B, Key="from-bob", Body=b"hi")
    assert code(bob.get_object, Bucket=B, Key="from-bob") == "AccessDenied"
    assert alice.get_object(Bucket=B, Key="from-bob")["Body"].read() == b"hi"
    assert alice.get_object_acl(Bucket=B, Key="doc.txt")["Owner"]["ID"] == ak_a


def test_revoked_secret_is_refused():
    """Run after `ozone s3 revokesecret`: the old secret is refused at once."""
    c = client(env("OZONE_TEST_REVOKED_KEY"), env("OZONE_TEST_REVOKED_SECRET"))
    assert code(c.list_buckets) == "InvalidAccessKeyId"
    assert code(c.put_object, Bucket="bob-bucket", Key="after", Body=b"x") == "InvalidAccessKeyId"
