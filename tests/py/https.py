"""boto3 over HTTPS (`cluster up --https`): the gateway's endpoint in OZONE_S3_ENDPOINT is
https://, and the CA that signed its certificate is in OZONE_TEST_CA_BUNDLE."""
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

from common import endpoint, env

BUCKET = "boto3-tls"


def client(verify):
    return boto3.client(
        "s3",
        endpoint_url=endpoint(),
        region_name="us-east-1",
        verify=verify,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_endpoint_is_https():
    assert endpoint().startswith("https://")


def test_put_get_list_with_the_ca():
    c = client(env("OZONE_TEST_CA_BUNDLE"))
    c.create_bucket(Bucket=BUCKET)
    body = bytes(range(256)) * 4096
    c.put_object(Bucket=BUCKET, Key="a/b.bin", Body=body)
    got = c.get_object(Bucket=BUCKET, Key="a/b.bin")
    assert got["Body"].read() == body
    listed = c.list_objects_v2(Bucket=BUCKET, Prefix="a/")
    assert [o["Key"] for o in listed["Contents"]] == ["a/b.bin"]
    assert listed["Contents"][0]["Size"] == len(body)
    # A multipart upload over the same connection pool.
    up = c.create_multipart_upload(Bucket=BUCKET, Key="mp")
    part = b"x" * (5 * 1024 * 1024)
    e1 = c.upload_part(Bucket=BUCKET, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=part)
    e2 = c.upload_part(Bucket=BUCKET, Key="mp", UploadId=up["UploadId"], PartNumber=2, Body=b"end")
    c.complete_multipart_upload(
        Bucket=BUCKET,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": e1["ETag"]},
            {"PartNumber": 2, "ETag": e2["ETag"]},
        ]},
    )
    assert c.head_object(Bucket=BUCKET, Key="mp")["ContentLength"] == len(part) + 3


def test_the_certificate_is_refused_without_the_ca():
    with pytest.raises(SSLError):
        client(True).list_buckets()
