"""boto3: the rest of the object API's details: ListObjects(V2) with encoding-type=url and
fetch-owner, conditional GET/HEAD by date, stored Content-* / Expires headers, flexible checksums
returned with x-amz-checksum-mode and verified on upload (BadDigest)."""
import base64
import datetime
import hashlib
import urllib.parse
import zlib

import pytest

from common import error_of, raw

B = "headers-bucket"


@pytest.fixture(scope="module", autouse=True)
def bucket(c):
    c.create_bucket(Bucket=B)
    return B


def test_listings_encoding_type_url_fetch_owner_v1_marker(c):
    odd = ["a b+c", "ü/x", "plain"]
    for k in odd:
        c.put_object(Bucket=B, Key=k, Body=b"x")
    r = c.list_objects_v2(Bucket=B, EncodingType="url")
    assert sorted(urllib.parse.unquote(o["Key"]) for o in r["Contents"]) == sorted(odd), r
    st, _, body = raw("GET", f"/{B}?list-type=2&encoding-type=url")
    text = body.decode()
    assert st == 200 and "<Key>a%20b%2Bc</Key>" in text and "<Key>%C3%BC/x</Key>" in text, text
    r = c.list_objects_v2(Bucket=B)
    assert all("Owner" not in o for o in r["Contents"]), r
    r = c.list_objects_v2(Bucket=B, FetchOwner=True)
    assert all(o["Owner"]["ID"] == "testuser" for o in r["Contents"]), r
    r = c.list_objects(Bucket=B, Marker="a b+c")
    assert [o["Key"] for o in r["Contents"]] == ["plain", "ü/x"], r
    assert c.list_buckets()["Owner"]["ID"] == "testuser"


def test_conditional_get_head_and_copy_by_date(c):
    c.put_object(Bucket=B, Key="dated", Body=b"when")
    h = c.head_object(Bucket=B, Key="dated")
    lm = h["LastModified"]
    before, after = lm - datetime.timedelta(hours=1), lm + datetime.timedelta(hours=1)
    assert c.get_object(Bucket=B, Key="dated", IfModifiedSince=before)["Body"].read() == b"when"
    assert error_of(c.get_object, Bucket=B, Key="dated", IfModifiedSince=after) == ("304", 304)
    assert error_of(c.head_object, Bucket=B, Key="dated", IfModifiedSince=after) == ("304", 304)
    assert c.get_object(Bucket=B, Key="dated", IfUnmodifiedSince=after)["Body"].read() == b"when"
    assert error_of(c.get_object, Bucket=B, Key="dated", IfUnmodifiedSince=before) == ("PreconditionFailed", 412)
    assert error_of(c.head_object, Bucket=B, Key="dated", IfUnmodifiedSince=before)[1] == 412

    # CopyObject / UploadPartCopy preconditions on the source by date
    src = {"Bucket": B, "Key": "dated"}
    c.copy_object(Bucket=B, Key="dated-copy", CopySource=src, CopySourceIfModifiedSince=before)
    c.copy_object(Bucket=B, Key="dated-copy", CopySource=src, CopySourceIfUnmodifiedSince=after)
    assert error_of(c.copy_object, Bucket=B, Key="dated-copy2", CopySource=src,
                    CopySourceIfModifiedSince=after) == ("PreconditionFailed", 412)
    assert error_of(c.copy_object, Bucket=B, Key="dated-copy2", CopySource=src,
                    CopySourceIfUnmodifiedSince=before) == ("PreconditionFailed", 412)
    up = c.create_multipart_upload(Bucket=B, Key="dated-mp")
    assert error_of(c.upload_part_copy, Bucket=B, Key="dated-mp", UploadId=up["UploadId"], PartNumber=1,
                    CopySource=src, CopySourceIfMatch='"nope"') == ("PreconditionFailed", 412)
    c.abort_multipart_upload(Bucket=B, Key="dated-mp", UploadId=up["UploadId"])


def test_stored_headers(c):
    expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    c.put_object(Bucket=B, Key="hdrs", Body=b"h", ContentType="text/x-h", CacheControl="no-cache",
                 ContentDisposition='attachment; filename="h.txt"', ContentEncoding="identity",
                 ContentLanguage="de-DE", Expires=expires, Metadata={"m1": "v1", "m2": "v2"})
    for got in (c.head_object(Bucket=B, Key="hdrs"), c.get_object(Bucket=B, Key="hdrs")):
        assert got["ContentType"] == "text/x-h" and got["CacheControl"] == "no-cache", got
        assert got["ContentDisposition"] == 'attachment; filename="h.txt"', got
        assert got["ContentEncoding"] == "identity" and got["ContentLanguage"] == "de-DE", got
        assert got["Expires"] == expires, got
        assert got["Metadata"] == {"m1": "v1", "m2": "v2"}, got
    g = c.get_object(Bucket=B, Key="hdrs", ResponseContentLanguage="fr", ResponseCacheControl="max-age=1",
                     ResponseContentDisposition="inline", ResponseContentEncoding="gzip",
                     ResponseExpires=datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc))
    assert (g["ContentLanguage"], g["CacheControl"], g["ContentDisposition"], g["ContentEncoding"]) == \
        ("fr", "max-age=1", "inline", "gzip"), g


def test_flexible_checksums(c):
    data = b"checksummed payload " * 1000
    sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    sha1 = base64.b64encode(hashlib.sha1(data).digest()).decode()
    crc32 = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    for algo, want, field in (("SHA256", sha256, "ChecksumSHA256"), ("SHA1", sha1, "ChecksumSHA1"),
                              ("CRC32", crc32, "ChecksumCRC32")):
        key = f"sum-{algo}"
        r = c.put_object(Bucket=B, Key=key, Body=data, ChecksumAlgorithm=algo)
        assert r[field] == want, (algo, r)
        g = c.get_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
        assert g[field] == want and g["Body"].read() == data, (algo, g)
        h = c.head_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
        assert h[field] == want, (algo, h)
        assert field not in c.head_object(Bucket=B, Key=key), "only returned with checksum mode"
        a = c.get_object_attributes(Bucket=B, Key=key, ObjectAttributes=["Checksum"])
        assert a["Checksum"][field] == want, (algo, a)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert error_of(c.put_object, Bucket=B, Key="sum-bad", Body=data, ChecksumSHA256=wrong) == ("BadDigest", 400)
    assert error_of(c.head_object, Bucket=B, Key="sum-bad")[1] == 404, "nothing stored for a bad checksum"
