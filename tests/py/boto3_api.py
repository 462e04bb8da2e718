"""boto3 against the gateway: object calls, listings with delimiter and pagination over 2,500
keys, multipart upload with AWS's ETag, and error codes."""
import hashlib
from concurrent.futures import ThreadPoolExecutor

from common import code, s3

c = s3()
B = "boto-bucket"


c.create_bucket(Bucket=B)
assert code(c.create_bucket, Bucket=B) == "BucketAlreadyOwnedByYou"
assert B in [b["Name"] for b in c.list_buckets()["Buckets"]]
c.head_bucket(Bucket=B)
assert code(c.head_bucket, Bucket="no-such-bucket-here") in ("404", "NoSuchBucket")

# put / get / head / delete
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

# 2,500 keys in folders
keys = [f"dir{i % 10}/sub{(i // 10) % 5}/key{i:05d}" for i in range(2400)] + [f"top{i:03d}" for i in range(100)]
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda k: c.put_object(Bucket=B, Key=k, Body=k.encode()), keys))

p = c.get_paginator("list_objects_v2")
seen = [o["Key"] for page in p.paginate(Bucket=B) for o in page.get("Contents", [])]
assert seen == sorted(keys), (len(seen), len(keys))
seen = [o["Key"] for page in p.paginate(Bucket=B, PaginationConfig={"PageSize": 333}) for o in page.get("Contents", [])]
assert seen == sorted(keys), (len(seen), len(keys))

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
assert seen == sorted(keys)

assert code(c.delete_bucket, Bucket=B) == "BucketNotEmpty"

# DeleteObjects in batches
for i in range(0, len(keys), 1000):
    batch = keys[i:i + 1000]
    r = c.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in batch]})
    assert len(r.get("Deleted", [])) == len(batch), r.get("Errors")
assert c.list_objects_v2(Bucket=B)["KeyCount"] == 0

# Multipart upload with AWS's ETag
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

up = c.create_multipart_upload(Bucket=B, Key="aborted")
c.upload_part(Bucket=B, Key="aborted", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
assert len(c.list_multipart_uploads(Bucket=B).get("Uploads", [])) == 1
c.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=up["UploadId"])
assert code(c.abort_multipart_upload, Bucket=B, Key="aborted", UploadId=up["UploadId"]) == "NoSuchUpload"

# CopyObject
c.copy_object(Bucket=B, Key="mpu-copy", CopySource={"Bucket": B, "Key": "mpu"})
assert c.get_object(Bucket=B, Key="mpu-copy")["Body"].read() == p1 + p2

c.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "mpu"}, {"Key": "mpu-copy"}]})
c.delete_bucket(Bucket=B)
assert B not in [b["Name"] for b in c.list_buckets()["Buckets"]]
print("boto3_api OK")
