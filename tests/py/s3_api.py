"""More of the S3 API through boto3 and raw HTTP: UploadPartCopy, GET/HEAD by partNumber,
CopyObject directives and preconditions, GetObjectAttributes, presigned URLs (with expiry),
virtual-host addressing, conditional GETs and stored headers."""
import hashlib
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config

from common import code, endpoint, raw, secure

B = "api-bucket"
SRC = bytes(range(256)) * (24 * 1024)  # 6 MiB
TAIL = b"tail-part"
WHOLE = SRC[:5 << 20] + TAIL


@pytest.fixture(scope="module", autouse=True)
def bucket(c):
    c.create_bucket(Bucket=B)
    c.put_object(Bucket=B, Key="src", Body=SRC, ContentType="application/x-src",
                 Metadata={"a": "1"}, CacheControl="max-age=60", ContentDisposition="attachment")
    return B


@pytest.fixture(scope="module")
def etag(c):
    return c.head_object(Bucket=B, Key="src")["ETag"]


def test_stored_headers_and_response_overrides(c):
    h = c.head_object(Bucket=B, Key="src")
    assert h["CacheControl"] == "max-age=60" and h["ContentDisposition"] == "attachment", h
    g = c.get_object(Bucket=B, Key="src", ResponseContentType="text/x-override")
    assert g["ContentType"] == "text/x-override"
    g["Body"].read()


def test_conditional_get_and_head(c, etag):
    assert code(c.get_object, Bucket=B, Key="src", IfMatch='"nope"') == "PreconditionFailed"
    assert code(c.head_object, Bucket=B, Key="src", IfNoneMatch=etag) in ("304", "NotModified")
    assert c.get_object(Bucket=B, Key="src", IfMatch=etag)["ContentLength"] == len(SRC)


def test_upload_part_copy_and_get_by_part_number(c):
    up = c.create_multipart_upload(Bucket=B, Key="mp")
    uid = up["UploadId"]
    p1 = c.upload_part_copy(Bucket=B, Key="mp", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": B, "Key": "src"}, CopySourceRange="bytes=0-5242879")
    p2 = c.upload_part(Bucket=B, Key="mp", UploadId=uid, PartNumber=2, Body=TAIL)
    assert p1["CopyPartResult"]["ETag"] == '"%s"' % hashlib.md5(SRC[:5 << 20]).hexdigest()
    assert code(c.upload_part_copy, Bucket=B, Key="mp", UploadId=uid, PartNumber=3,
                CopySource={"Bucket": B, "Key": "src"}, CopySourceRange="bytes=0-99999999") == "InvalidArgument"
    c.complete_multipart_upload(Bucket=B, Key="mp", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    assert c.get_object(Bucket=B, Key="mp")["Body"].read() == WHOLE
    g1 = c.get_object(Bucket=B, Key="mp", PartNumber=1)
    assert g1["Body"].read() == SRC[:5 << 20] and g1["PartsCount"] == 2, g1
    g2 = c.get_object(Bucket=B, Key="mp", PartNumber=2)
    assert g2["Body"].read() == TAIL
    assert c.head_object(Bucket=B, Key="mp", PartNumber=2)["ContentLength"] == len(TAIL)
    assert code(c.get_object, Bucket=B, Key="mp", PartNumber=3) == "InvalidPartNumber"


def test_get_object_attributes(c, etag):
    """Of the multipart object the case above made, and of the source."""
    a = c.get_object_attributes(Bucket=B, Key="mp", ObjectAttributes=["ETag", "ObjectSize", "ObjectParts", "StorageClass"])
    assert a["ObjectSize"] == len(WHOLE) and a["ObjectParts"]["TotalPartsCount"] == 2, a
    assert [p["Size"] for p in a["ObjectParts"]["Parts"]] == [5 << 20, len(TAIL)], a
    a = c.get_object_attributes(Bucket=B, Key="src", ObjectAttributes=["ETag", "ObjectSize"])
    assert '"%s"' % a["ETag"] == etag and a["ObjectSize"] == len(SRC), a


def test_copy_object_directives_and_source_preconditions(c, etag):
    """COPY keeps metadata, REPLACE takes the new, preconditions on the source."""
    c.copy_object(Bucket=B, Key="copy1", CopySource={"Bucket": B, "Key": "src"})
    h = c.head_object(Bucket=B, Key="copy1")
    assert h["Metadata"] == {"a": "1"} and h["ContentType"] == "application/x-src", h
    c.copy_object(Bucket=B, Key="copy2", CopySource={"Bucket": B, "Key": "src"},
                  MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/plain")
    h = c.head_object(Bucket=B, Key="copy2")
    assert h["Metadata"] == {"b": "2"} and h["ContentType"] == "text/plain", h
    assert c.get_object(Bucket=B, Key="copy2")["Body"].read() == SRC
    assert code(c.copy_object, Bucket=B, Key="copy3", CopySource={"Bucket": B, "Key": "src"},
                CopySourceIfMatch='"nope"') == "PreconditionFailed"
    assert code(c.copy_object, Bucket=B, Key="copy3", CopySource={"Bucket": B, "Key": "src"},
                CopySourceIfNoneMatch=etag) == "PreconditionFailed"
    assert code(c.copy_object, Bucket=B, Key="copy3", CopySource={"Bucket": B, "Key": "missing"}) == "NoSuchKey"
    assert code(c.copy_object, Bucket=B, Key="src", CopySource={"Bucket": B, "Key": "src"}) == "InvalidRequest"


def test_presigned_urls(c):
    """GET, PUT, HEAD, DELETE, and an expired one; SigV4 and SigV2 query forms. With security
    on, a SigV2 URL is refused (OM's secrets verify SigV4 only), and the same operations go
    through SigV4 URLs."""
    v4 = boto3.client("s3", endpoint_url=endpoint(), region_name="us-east-1",
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    # boto3's default for presigned S3 URLs is SigV2 (AWSAccessKeyId, Signature, Expires).
    v2 = c.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "src"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in v2 and "X-Amz-Credential" not in v2, v2
    if secure():
        try:
            urllib.request.urlopen(v2)
            raise AssertionError("SigV2 presigned URL worked with security on")
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            assert e.code == 400 and "<Code>InvalidRequest</Code>" in body, body
        c = v4
    url = v4.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "src"}, ExpiresIn=300)
    assert "X-Amz-Credential" in url and urllib.request.urlopen(url).read() == SRC
    expired = v4.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "src"}, ExpiresIn=1)
    time.sleep(2)
    try:
        urllib.request.urlopen(expired)
        raise AssertionError("expired SigV4 presigned URL worked")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 403 and "<Code>AccessDenied</Code>" in body and "expired" in body, body
    url = c.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "presigned"}, ExpiresIn=300)
    req = urllib.request.Request(url, data=b"via presigned put", method="PUT")
    assert urllib.request.urlopen(req).status == 200
    url = c.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "presigned"}, ExpiresIn=300)
    assert urllib.request.urlopen(url).read() == b"via presigned put"
    url = c.generate_presigned_url("head_object", Params={"Bucket": B, "Key": "presigned"}, ExpiresIn=300)
    assert urllib.request.urlopen(urllib.request.Request(url, method="HEAD")).status == 200
    expired = c.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "presigned"}, ExpiresIn=1)
    time.sleep(2)
    try:
        urllib.request.urlopen(expired)
        raise AssertionError("expired presigned URL worked")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 403 and "<Code>AccessDenied</Code>" in body and "expired" in body, body
    url = c.generate_presigned_url("delete_object", Params={"Bucket": B, "Key": "presigned"}, ExpiresIn=300)
    assert urllib.request.urlopen(urllib.request.Request(url, method="DELETE")).status == 204
    assert code(c.head_object, Bucket=B, Key="presigned") in ("404", "NoSuchKey")


def test_virtual_host_addressing():
    """ozone.s3g.domain.name=s3.local, path style side by side; lists the copies made above."""
    st, _, body = raw("GET", "/src", headers={"Host": f"{B}.s3.local"})
    assert st == 200 and body == SRC, st
    st, _, body = raw("GET", "/?list-type=2&prefix=cop", headers={"Host": f"{B}.s3.local"})
    assert st == 200 and body.decode().count("<Key>") == 2, body


def test_bucket_location_versioning_and_unknown_sub_resource(c):
    assert c.get_bucket_location(Bucket=B).get("LocationConstraint") in (None, "")
    assert "Status" not in c.get_bucket_versioning(Bucket=B)
    assert code(c.get_bucket_policy, Bucket=B) == "NotImplemented"
