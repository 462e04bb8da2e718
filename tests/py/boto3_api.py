"""boto3 against the gateway: object calls, listings with delimiter and pagination over 2,500
keys, multipart upload with AWS's ETag, and error codes."""
import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from common import code

B = "boto-bucket"
# 2,500 keys in folders
KEYS = [f"dir{i % 10}/sub{(i // 10) % 5}/key{i:05d}" for i in range(2400)] + [f"top{i:03d}" for i in range(100)]


@pytest.fixture(scope="module", autouse=True)
def bucket(c):
    c.create_bucket(Bucket=B)
    return B


def test_bucket_exists_once(c):
    assert code(c.create_bucket, Bucket=B) == "BucketAlreadyOwnedByYou"
    assert B in [b["Name"] for b in c.list_buckets()["Buckets"]]
    c.head_bucket(Bucket=B)
    assert code(c.head_bucket, Bucket="no-such-bucket-here") in ("404", "NoSuchBucket")


def test_put_get_head_delete(c):
    data = b"hello boto3 " * 1000
    r = c.put_object(Bucket=B, Key="a/b.txt", Body=data, ContentType="text/plain", Metadata={"color": "blue"})
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest(), r["ETag"]
    g = c.get_object(Bucket=B, Key="a/b.txt")
    assert g["Body"].read() == data
    assert g["ContentType"] == "text/plain"
    assert g["Metadata"] == {"color": "blue"}, g["Metadata"]
    h = c.head_object(Bucket=B, Key="a/b.txt")
    assert h["ContentLength"] == len(data)
    assert h["ETag"] == r["ETag"]
    part = c.get_object(Bucket=B, Key="a/b.txt", Range="bytes=6-11")
    assert part["Body"].read() == data[6:12]
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    c.put_object(Bucket=B, Key="empty", Body=b"")
    assert c.get_object(Bucket=B, Key="empty")["Body"].read() == b""
    c.delete_object(Bucket=B, Key="a/b.txt")
    c.delete_object(Bucket=B, Key="empty")
    c.delete_object(Bucket=B, Key="never-existed")
    assert code(c.get_object, Bucket=B, Key="a/b.txt") == "NoSuchKey"
    assert code(c.get_object, Bucket="no-such-bucket-here", Key="x") == "NoSuchBucket"


def test_listings_of_2500_keys(c):
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=B, Key=k, Body=k.encode()), KEYS))

    p = c.get_paginator("list_objects_v2")
    seen = [o["Key"] for page in p.paginate(Bucket=B) for o in page.get("Contents", [])]
    assert seen == sorted(KEYS), (len(seen), len(KEYS))
    seen = [o["Key"] for page in p.paginate(Bucket=B, PaginationConfig={"PageSize": 333}) for o in page.get("Contents", [])]
    assert seen == sorted(KEYS), (len(seen), len(KEYS))

    prefixes, tops = [], []
    for page in p.paginate(Bucket=B, Delimiter="/", PaginationConfig={"PageSize": 7}):
        prefixes += [x["Prefix"] for x in page.get("CommonPrefixes", [])]
        tops += [o["Key"] for o in page.get("Contents", [])]
    assert prefixes == [f"dir{i}/" for i in range(10)], prefixes
    assert tops == [f"top{i:03d}" for i in range(100)], tops

    r = c.list_objects_v2(Bucket=B, Prefix="dir3/", Delimiter="/")
    assert [x["Prefix"] for x in r["CommonPrefixes"]] == [f"dir3/sub{i}/" for i in range(5)], r
    assert "Contents" not in r
    r = c.list_objects_v2(Bucket=B, Prefix="dir3/sub2/", MaxKeys=10)
    assert r["KeyCount"] == 10 and r["IsTruncated"]
    r = c.list_objects_v2(Bucket=B, StartAfter="top097")
    assert [o["Key"] for o in r["Contents"]] == ["top098", "top099"], r

    # ListObjects v1 with markers
    pv1 = c.get_paginator("list_objects")
    seen = [o["Key"] for page in pv1.paginate(Bucket=B, PaginationConfig={"PageSize": 900}) for o in page.get("Contents", [])]
    assert seen == sorted(KEYS)

    assert code(c.delete_bucket, Bucket=B) == "BucketNotEmpty"


def test_delete_objects_in_batches(c):
    for i in range(0, len(KEYS), 1000):
        batch = KEYS[i:i + 1000]
        r = c.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in batch]})
        assert len(r.get("Deleted", [])) == len(batch), r.get("Errors")
    assert c.list_objects_v2(Bucket=B)["KeyCount"] == 0


def test_multipart_upload_with_aws_etag_and_copy(c):
    p1, p2 = b"1" * (5 << 20), b"2" * (1 << 20)
    up = c.create_multipart_upload(Bucket=B, Key="mpu", ContentType="application/x-test")
    uid = up["UploadId"]
    e1 = c.upload_part(Bucket=B, Key="mpu", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
    e2 = c.upload_part(Bucket=B, Key="mpu", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
    assert [x["PartNumber"] for x in c.list_parts(Bucket=B, Key="mpu", UploadId=uid)["Parts"]] == [1, 2]
    assert code(c.complete_multipart_upload, Bucket=B, Key="mpu", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}) == "InvalidPartOrder"
    assert code(c.complete_multipart_upload, Bucket=B, Key="mpu", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e2}]}) == "InvalidPart"
    r = c.complete_multipart_upload(Bucket=B, Key="mpu", UploadId=uid,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    want = hashlib.md5(hashlib.md5(p1).digest() + hashlib.md5(p2).digest()).hexdigest() + "-2"
    assert r["ETag"] == '"%s"' % want, (r["ETag"], want)
    g = c.get_object(Bucket=B, Key="mpu")
    assert g["Body"].read() == p1 + p2
    assert g["ContentType"] == "application/x-test"
    assert code(c.upload_part, Bucket=B, Key="mpu", UploadId=uid, PartNumber=3, Body=b"x") == "NoSuchUpload"

    # CopyObject
    c.copy_object(Bucket=B, Key="mpu-copy", CopySource={"Bucket": B, "Key": "mpu"})
    assert c.get_object(Bucket=B, Key="mpu-copy")["Body"].read() == p1 + p2
    c.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "mpu"}, {"Key": "mpu-copy"}]})


def test_abort_multipart_upload(c):
    up = c.create_multipart_upload(Bucket=B, Key="aborted")
    c.upload_part(Bucket=B, Key="aborted", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    assert len(c.list_multipart_uploads(Bucket=B).get("Uploads", [])) == 1
    c.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=up["UploadId"])
    assert code(c.abort_multipart_upload, Bucket=B, Key="aborted", UploadId=up["UploadId"]) == "NoSuchUpload"


def test_delete_bucket(c):
    c.delete_bucket(Bucket=B)
    assert B not in [b["Name"] for b in c.list_buckets()["Buckets"]]
