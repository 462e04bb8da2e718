"""boto3 (and raw HTTP where a client cannot be made to race): object and bucket tagging with
S3's limits, conditional writes enforced atomically at commit (If-None-Match: * / If-Match),
completing a completed multipart upload again, ListMultipartUploads paging, and the error codes
of the S3 object API as boto3 sees them."""
import base64
import hashlib
import http.client
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from common import endpoint, error_of, expect_error, raw, sign

B = "tags-bucket"


@pytest.fixture(scope="module", autouse=True)
def bucket(c):
    c.create_bucket(Bucket=B)
    return B


def tagset(d):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def as_dict(tag_set):
    return {t["Key"]: t["Value"] for t in tag_set}


def md5(b):
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def test_object_tagging_with_s3_limits(c):
    """Object tagging with S3's limits, malformed tagging XML."""
    c.put_object(Bucket=B, Key="t1", Body=b"tagged", Tagging="color=blue&size=big%20one")
    assert as_dict(c.get_object_tagging(Bucket=B, Key="t1")["TagSet"]) == {"color": "blue", "size": "big one"}
    g = c.get_object(Bucket=B, Key="t1")
    assert g["TagCount"] == 2 and g["Body"].read() == b"tagged", g
    h = c.head_object(Bucket=B, Key="t1")
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "2", h
    c.put_object_tagging(Bucket=B, Key="t1", Tagging=tagset({"a": "1", "b": "", "c": "x" * 256}))
    assert as_dict(c.get_object_tagging(Bucket=B, Key="t1")["TagSet"]) == {"a": "1", "b": "", "c": "x" * 256}
    assert c.get_object(Bucket=B, Key="t1")["TagCount"] == 3
    c.delete_object_tagging(Bucket=B, Key="t1")
    assert c.get_object_tagging(Bucket=B, Key="t1")["TagSet"] == []
    assert "x-amz-tagging-count" not in c.head_object(Bucket=B, Key="t1")["ResponseMetadata"]["HTTPHeaders"]
    assert "TagCount" not in c.get_object(Bucket=B, Key="t1")
    # Limits: 10 tags, key <= 128, value <= 256, no duplicates -> InvalidTag (400)
    c.put_object_tagging(Bucket=B, Key="t1", Tagging=tagset({f"k{i}": "v" for i in range(10)}))
    assert error_of(c.put_object_tagging, Bucket=B, Key="t1", Tagging=tagset({f"k{i}": "v" for i in range(11)})) == ("InvalidTag", 400)
    assert error_of(c.put_object_tagging, Bucket=B, Key="t1", Tagging=tagset({"k" * 129: "v"})) == ("InvalidTag", 400)
    assert error_of(c.put_object_tagging, Bucket=B, Key="t1", Tagging=tagset({"k": "v" * 257})) == ("InvalidTag", 400)
    assert error_of(c.put_object_tagging, Bucket=B, Key="t1",
                    Tagging={"TagSet": [{"Key": "d", "Value": "1"}, {"Key": "d", "Value": "2"}]}) == ("InvalidTag", 400)
    assert error_of(c.put_object, Bucket=B, Key="t2", Body=b"x", Tagging="a=1&a=2") == ("InvalidTag", 400)
    assert error_of(c.put_object, Bucket=B, Key="t2", Body=b"x",
                    Tagging="&".join(f"k{i}=v" for i in range(11))) == ("InvalidTag", 400)
    assert error_of(c.head_object, Bucket=B, Key="t2")[1] == 404, "a refused PUT stored nothing"
    assert len(c.get_object_tagging(Bucket=B, Key="t1")["TagSet"]) == 10, "a refused PUT changed nothing"
    assert error_of(c.get_object_tagging, Bucket=B, Key="missing") == ("NoSuchKey", 404)
    assert error_of(c.put_object_tagging, Bucket=B, Key="missing", Tagging=tagset({"a": "1"})) == ("NoSuchKey", 404)
    # Malformed tagging XML
    bad = b"<Tagging><TagSet><Tag><Key>a</Key>"
    expect_error(raw("PUT", f"/{B}/t1?tagging", bad, {"Content-MD5": md5(bad)}), 400, "MalformedXML")
    expect_error(raw("PUT", f"/{B}?tagging", bad, {"Content-MD5": md5(bad)}), 400, "MalformedXML")


def test_copy_object_tags(c):
    """Tags are copied by default, replaced with x-amz-tagging-directive REPLACE."""
    c.put_object(Bucket=B, Key="src", Body=b"source", Tagging="s=1")
    c.copy_object(Bucket=B, Key="copy-tags", CopySource={"Bucket": B, "Key": "src"})
    assert as_dict(c.get_object_tagging(Bucket=B, Key="copy-tags")["TagSet"]) == {"s": "1"}
    c.copy_object(Bucket=B, Key="copy-tags2", CopySource={"Bucket": B, "Key": "src"},
                  TaggingDirective="REPLACE", Tagging="r=2&q=3")
    assert as_dict(c.get_object_tagging(Bucket=B, Key="copy-tags2")["TagSet"]) == {"r": "2", "q": "3"}
    c.copy_object(Bucket=B, Key="copy-tags3", CopySource={"Bucket": B, "Key": "src"}, TaggingDirective="REPLACE")
    assert c.get_object_tagging(Bucket=B, Key="copy-tags3")["TagSet"] == []


def test_multipart_upload_tags(c):
    """Tags given to CreateMultipartUpload are the object's once it completes."""
    part = b"p" * (5 << 20)
    up = c.create_multipart_upload(Bucket=B, Key="mp-tags", Tagging="mp=yes")
    e1 = c.upload_part(Bucket=B, Key="mp-tags", UploadId=up["UploadId"], PartNumber=1, Body=part)["ETag"]
    c.complete_multipart_upload(Bucket=B, Key="mp-tags", UploadId=up["UploadId"],
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert as_dict(c.get_object_tagging(Bucket=B, Key="mp-tags")["TagSet"]) == {"mp": "yes"}


def test_bucket_tagging(c):
    assert error_of(c.get_bucket_tagging, Bucket=B) == ("NoSuchTagSet", 404)
    c.put_bucket_tagging(Bucket=B, Tagging=tagset({"team": "storage", "env": "test"}))
    assert as_dict(c.get_bucket_tagging(Bucket=B)["TagSet"]) == {"team": "storage", "env": "test"}
    c.put_bucket_tagging(Bucket=B, Tagging=tagset({f"k{i}": str(i) for i in range(50)}))
    assert len(c.get_bucket_tagging(Bucket=B)["TagSet"]) == 50
    assert error_of(c.put_bucket_tagging, Bucket=B, Tagging=tagset({f"k{i}": "v" for i in range(51)})) == ("InvalidTag", 400)
    assert error_of(c.put_bucket_tagging, Bucket=B,
                    Tagging={"TagSet": [{"Key": "d", "Value": "1"}, {"Key": "d", "Value": "2"}]}) == ("InvalidTag", 400)
    assert len(c.get_bucket_tagging(Bucket=B)["TagSet"]) == 50
    c.delete_bucket_tagging(Bucket=B)
    assert error_of(c.get_bucket_tagging, Bucket=B) == ("NoSuchTagSet", 404)
    assert error_of(c.get_bucket_tagging, Bucket="no-such-bucket-tags") == ("NoSuchBucket", 404)


def test_conditional_writes(c):
    """If-None-Match: * / If-Match on PUT and CompleteMultipartUpload."""
    r = c.put_object(Bucket=B, Key="cond", Body=b"v1", IfNoneMatch="*")
    etag1 = r["ETag"]
    assert error_of(c.put_object, Bucket=B, Key="cond", Body=b"v2", IfNoneMatch="*") == ("PreconditionFailed", 412)
    assert error_of(c.put_object, Bucket=B, Key="cond", Body=b"v2", IfMatch='"0123456789abcdef0123456789abcdef"') == ("PreconditionFailed", 412)
    assert c.get_object(Bucket=B, Key="cond")["Body"].read() == b"v1"
    r = c.put_object(Bucket=B, Key="cond", Body=b"v2", IfMatch=etag1)
    assert c.get_object(Bucket=B, Key="cond")["Body"].read() == b"v2"
    assert error_of(c.put_object, Bucket=B, Key="cond-missing", Body=b"x", IfMatch=etag1) == ("NoSuchKey", 404)
    # If-None-Match with an ETag on a write is not something S3 implements
    expect_error(raw("PUT", f"/{B}/cond", b"v3", {"If-None-Match": etag1}), 501, "NotImplemented")
    assert c.get_object(Bucket=B, Key="cond")["Body"].read() == b"v2"

    # CompleteMultipartUpload with conditions
    up = c.create_multipart_upload(Bucket=B, Key="cond")
    e1 = c.upload_part(Bucket=B, Key="cond", UploadId=up["UploadId"], PartNumber=1, Body=b"mp")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": e1}]}
    assert error_of(c.complete_multipart_upload, Bucket=B, Key="cond", UploadId=up["UploadId"],
                    MultipartUpload=parts, IfNoneMatch="*") == ("PreconditionFailed", 412)
    # The upload is still there after a failed condition; If-Match with the current ETag completes it.
    cur = c.head_object(Bucket=B, Key="cond")["ETag"]
    c.complete_multipart_upload(Bucket=B, Key="cond", UploadId=up["UploadId"], MultipartUpload=parts, IfMatch=cur)
    assert c.get_object(Bucket=B, Key="cond")["Body"].read() == b"mp"


def test_conditional_write_races(c):
    # Two concurrent conditional PUTs of a fresh key, held open after the gateway's early check
    # (raw HTTP: both send their headers and part of the body, then the first finishes, then the
    # second): exactly one wins; the loser passed the early check, so it gets 409.
    u = urllib.parse.urlparse(endpoint())

    def start_put(key, body):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.putrequest("PUT", f"/{B}/{key}")
        for name, value in sign("PUT", f"/{B}/{key}", {"If-None-Match": "*"}, body=body).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        conn.send(body[:1000])
        return conn

    def finish_put(conn, body):
        conn.send(body[1000:])
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data.decode()

    body_a, body_b = b"a" * 300_000, b"b" * 300_000
    ca = start_put("race1", body_a)
    cb = start_put("race1", body_b)
    # Both early checks are done (the key does not exist yet). 1 s was not always enough in the
    # full suite, beside a test uploading 300 MB objects: B's check came after A's commit (412).
    time.sleep(3.0)
    st_a, _ = finish_put(ca, body_a)
    st_b, text_b = finish_put(cb, body_b)
    assert st_a == 200, st_a
    assert st_b == 409 and "<Code>ConditionalRequestConflict</Code>" in text_b, (st_b, text_b)
    assert c.get_object(Bucket=B, Key="race1")["Body"].read() == body_a

    # Many concurrent boto3 conditional PUTs of one fresh key: exactly one wins, the others get 412
    # (the key existed at their early check) or 409 (it appeared before their commit).
    def cond_put(i):
        try:
            c.put_object(Bucket=B, Key="race2", Body=(b"%d" % i) * 100_000, IfNoneMatch="*")
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(cond_put, range(8)))
    assert results.count("ok") == 1, results
    assert set(results) <= {"ok", "PreconditionFailed", "ConditionalRequestConflict"}, results
    # The same loser through boto3: its body is held at half way (a before-send hook wraps it) while
    # a raw conditional PUT of the same key, started earlier, commits.
    import boto3
    from botocore.config import Config

    b3 = boto3.client("s3", endpoint_url=endpoint(), region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"}))
    winner_body = b"w" * 300_000
    winner = start_put("race3", winner_body)
    time.sleep(0.5)
    winner_status = []

    class HeldBody:
        """A request body that lets the raw winner finish once half of it was sent."""

        def __init__(self, data):
            self.data, self.pos, self.fired = data, 0, False

        def read(self, n=-1):
            if not self.fired and self.pos >= len(self.data) // 2:
                self.fired = True
                winner_status.append(finish_put(winner, winner_body)[0])
            n = len(self.data) - self.pos if n is None or n < 0 else n
            chunk = self.data[self.pos:self.pos + n]
            self.pos += len(chunk)
            return chunk

    def hold(request, **kwargs):
        body = request.body
        if hasattr(body, "read"):
            body.seek(0)
            body = body.read()
        request.body = HeldBody(bytes(body))

    b3.meta.events.register("before-send.s3.PutObject", hold)
    assert error_of(b3.put_object, Bucket=B, Key="race3", Body=b"l" * (4 << 20), IfNoneMatch="*") == ("ConditionalRequestConflict", 409)
    assert winner_status == [200], winner_status
    assert c.get_object(Bucket=B, Key="race3")["Body"].read() == winner_body


def test_completing_a_completed_upload_again(c):
    part = b"p" * (5 << 20)
    up = c.create_multipart_upload(Bucket=B, Key="again")
    e1 = c.upload_part(Bucket=B, Key="again", UploadId=up["UploadId"], PartNumber=1, Body=part)["ETag"]
    e2 = c.upload_part(Bucket=B, Key="again", UploadId=up["UploadId"], PartNumber=2, Body=b"end")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}
    first = c.complete_multipart_upload(Bucket=B, Key="again", UploadId=up["UploadId"], MultipartUpload=parts)
    second = c.complete_multipart_upload(Bucket=B, Key="again", UploadId=up["UploadId"], MultipartUpload=parts)
    assert first["ETag"] == second["ETag"] and first["ETag"].endswith('-2"'), (first, second)
    c.put_object(Bucket=B, Key="again", Body=b"overwritten")
    assert error_of(c.complete_multipart_upload, Bucket=B, Key="again", UploadId=up["UploadId"],
                    MultipartUpload=parts) == ("NoSuchUpload", 404)


def test_list_multipart_uploads(c):
    """Prefix, delimiter, key-marker, upload-id-marker, max-uploads."""
    L = "list-uploads"
    c.create_bucket(Bucket=L)
    keys = ["a/1", "a/2", "b", "c/x/1", "c/y", "d", "d", "e+f ü"]
    ups = [(k, c.create_multipart_upload(Bucket=L, Key=k)["UploadId"]) for k in keys]
    want = sorted(ups)
    r = c.list_multipart_uploads(Bucket=L)
    assert [(x["Key"], x["UploadId"]) for x in r["Uploads"]] == want and not r["IsTruncated"], r
    r = c.list_multipart_uploads(Bucket=L, Prefix="c/")
    assert [x["Key"] for x in r["Uploads"]] == ["c/x/1", "c/y"], r
    r = c.list_multipart_uploads(Bucket=L, Delimiter="/")
    assert [x["Prefix"] for x in r["CommonPrefixes"]] == ["a/", "c/"], r
    assert [x["Key"] for x in r["Uploads"]] == ["b", "d", "d", "e+f ü"], r
    r = c.list_multipart_uploads(Bucket=L, Prefix="c/", Delimiter="/")
    assert [x["Prefix"] for x in r["CommonPrefixes"]] == ["c/x/"] and [x["Key"] for x in r["Uploads"]] == ["c/y"], r
    r = c.list_multipart_uploads(Bucket=L, KeyMarker="b")
    assert [x["Key"] for x in r["Uploads"]] == ["c/x/1", "c/y", "d", "d", "e+f ü"], r
    d_ids = sorted(u for k, u in ups if k == "d")
    r = c.list_multipart_uploads(Bucket=L, KeyMarker="d", UploadIdMarker=d_ids[0])
    assert [(x["Key"], x["UploadId"]) for x in r["Uploads"]] == [("d", d_ids[1]), ("e+f ü", dict(ups)["e+f ü"])], r
    r = c.list_multipart_uploads(Bucket=L, MaxUploads=3)
    assert r["IsTruncated"] and len(r["Uploads"]) == 3, r
    assert r["NextKeyMarker"] == want[2][0] and r["NextUploadIdMarker"] == want[2][1], r
    pages = list(c.get_paginator("list_multipart_uploads").paginate(Bucket=L, PaginationConfig={"PageSize": 3}))
    assert [(x["Key"], x["UploadId"]) for p in pages for x in p.get("Uploads", [])] == want, pages
    assert len(pages) == 3
    pages = list(c.get_paginator("list_multipart_uploads").paginate(Bucket=L, Delimiter="/", PaginationConfig={"PageSize": 2}))
    assert [x["Prefix"] for p in pages for x in p.get("CommonPrefixes", [])] == ["a/", "c/"], pages
    assert [x["Key"] for p in pages for x in p.get("Uploads", [])] == ["b", "d", "d", "e+f ü"], pages
    st, _, body = raw("GET", f"/{L}?uploads&encoding-type=url&prefix=e")
    text = body.decode()
    assert st == 200 and "<Key>e%2Bf%20%C3%BC</Key>" in text and "<EncodingType>url</EncodingType>" in text, text
    expect_error(raw("GET", f"/{L}?uploads&max-uploads=abc"), 400, "InvalidArgument")
    for k, u in ups:
        c.abort_multipart_upload(Bucket=L, Key=k, UploadId=u)
    assert "Uploads" not in c.list_multipart_uploads(Bucket=L)


def test_error_codes_as_boto3_sees_them(c):
    """The object API's error codes."""
    # EntityTooSmall: a part under 5 MiB that is not the last
    up = c.create_multipart_upload(Bucket=B, Key="small")
    s1 = c.upload_part(Bucket=B, Key="small", UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 1000)["ETag"]
    s2 = c.upload_part(Bucket=B, Key="small", UploadId=up["UploadId"], PartNumber=2, Body=b"y")["ETag"]
    assert error_of(c.complete_multipart_upload, Bucket=B, Key="small", UploadId=up["UploadId"],
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": s1}, {"PartNumber": 2, "ETag": s2}]}) == ("EntityTooSmall", 400)
    # InvalidPart, InvalidPartOrder, NoSuchUpload
    assert error_of(c.complete_multipart_upload, Bucket=B, Key="small", UploadId=up["UploadId"],
                    MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": s1}]}) == ("InvalidPart", 400)
    assert error_of(c.complete_multipart_upload, Bucket=B, Key="small", UploadId=up["UploadId"],
                    MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": s2}, {"PartNumber": 1, "ETag": s1}]}) == ("InvalidPartOrder", 400)
    c.abort_multipart_upload(Bucket=B, Key="small", UploadId=up["UploadId"])
    assert error_of(c.list_parts, Bucket=B, Key="small", UploadId=up["UploadId"]) == ("NoSuchUpload", 404)
    # MetadataTooLarge: more than 2 KiB of x-amz-meta-*
    assert error_of(c.put_object, Bucket=B, Key="meta", Body=b"x", Metadata={"big": "m" * 2100}) == ("MetadataTooLarge", 400)
    c.put_object(Bucket=B, Key="meta", Body=b"x", Metadata={"ok": "m" * 1000})
    # BadDigest: a Content-MD5 that does not match the body
    assert error_of(c.put_object, Bucket=B, Key="digest", Body=b"payload", ContentMD5=md5(b"other")) == ("BadDigest", 400)
    assert error_of(c.head_object, Bucket=B, Key="digest")[1] == 404
    # InvalidRange, NotModified (304), PreconditionFailed on reads
    c.put_object(Bucket=B, Key="ten", Body=b"0123456789")
    assert error_of(c.get_object, Bucket=B, Key="ten", Range="bytes=10-20") == ("InvalidRange", 416)
    tag = c.head_object(Bucket=B, Key="ten")["ETag"]
    assert error_of(c.get_object, Bucket=B, Key="ten", IfNoneMatch=tag) == ("304", 304)
    assert error_of(c.get_object, Bucket=B, Key="ten", IfMatch='"nope"') == ("PreconditionFailed", 412)
    # InvalidArgument: a bad part number, a bad copy range, an unknown metadata directive
    assert error_of(c.upload_part, Bucket=B, Key="ten", UploadId="x", PartNumber=10001, Body=b"x") == ("InvalidArgument", 400)
    assert error_of(c.copy_object, Bucket=B, Key="c2", CopySource={"Bucket": B, "Key": "ten"},
                    MetadataDirective="REPLACE", TaggingDirective="SOMETIMES") == ("InvalidArgument", 400)
    # NotImplemented: a sub-resource the gateway does not serve
    assert error_of(c.get_bucket_policy, Bucket=B) == ("NotImplemented", 501)
