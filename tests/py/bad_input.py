"""Bad input gets what AWS S3 answers (code, status, XML body, request id) and the gateway keeps
serving."""
import base64
import hashlib
import socket
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from common import endpoint, expect_error, raw, sign, signed_chunks

B = "bad-input"

CHUNKED_HEADERS = {
    "Content-Encoding": "aws-chunked",
    "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "x-amz-trailer": "x-amz-checksum-crc32",
    "x-amz-decoded-content-length": "11",
}


@pytest.fixture(scope="module", autouse=True)
def bucket(c):
    c.create_bucket(Bucket=B)
    return B


def test_malformed_xml_to_delete_objects():
    expect_error(raw("POST", f"/{B}?delete", b"<Delete><Object><Key>x</Key>"), 400, "MalformedXML")
    expect_error(raw("POST", f"/{B}?delete", b"this is not xml"), 400, "MalformedXML")


def test_max_keys(c):
    expect_error(raw("GET", f"/{B}?list-type=2&max-keys=-1"), 400, "InvalidArgument")
    expect_error(raw("GET", f"/{B}?list-type=2&max-keys=abc"), 400, "InvalidArgument")
    keys = [f"k{i:04d}" for i in range(1100)]
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: c.put_object(Bucket=B, Key=k, Body=b"v"), keys))
    st, _, body = raw("GET", f"/{B}?list-type=2&max-keys=1000000000")
    text = body.decode()
    assert st == 200, text
    assert text.count("<Key>") == 1000, text.count("<Key>")
    assert "<IsTruncated>true</IsTruncated>" in text


def test_range_past_the_end(c):
    c.put_object(Bucket=B, Key="ten", Body=b"0123456789")
    expect_error(raw("GET", f"/{B}/ten", headers={"Range": "bytes=10-20"}), 416, "InvalidRange")
    st, h, body = raw("GET", f"/{B}/ten", headers={"Range": "bytes=2-4"})
    assert st == 206 and body == b"234" and h["content-range"] == "bytes 2-4/10", (st, h, body)


def test_invalid_bucket_names():
    expect_error(raw("PUT", "/Invalid_Bucket"), 400, "InvalidBucketName")
    expect_error(raw("PUT", "/ab"), 400, "InvalidBucketName")


def test_wrong_and_malformed_content_md5_store_nothing():
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    expect_error(raw("PUT", f"/{B}/md5", b"payload", {"Content-MD5": wrong}), 400, "BadDigest")
    expect_error(raw("PUT", f"/{B}/md5", b"payload", {"Content-MD5": "xx"}), 400, "InvalidDigest")
    assert raw("HEAD", f"/{B}/md5")[0] == 404
    right = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    assert raw("PUT", f"/{B}/md5", b"payload", {"Content-MD5": right})[0] == 200


def test_wrong_trailing_checksum_on_aws_chunked_body(c):
    good = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
    bad = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    expect_error(raw("PUT", f"/{B}/chk", bad, CHUNKED_HEADERS), 400, "BadDigest")
    assert raw("HEAD", f"/{B}/chk")[0] == 404
    st, _, body = raw("PUT", f"/{B}/chk", good, CHUNKED_HEADERS)
    assert st == 200, body
    assert c.get_object(Bucket=B, Key="chk")["Body"].read() == b"hello world"


def test_signed_streaming_framing(c):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD, as SDKs send it."""
    h = sign("PUT", f"/{B}/signed", {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": "11",
    })
    signed = signed_chunks(h, [b"hello", b" world"])
    st, _, body = raw("PUT", f"/{B}/signed", signed, h)
    assert st == 200, body
    assert c.get_object(Bucket=B, Key="signed")["Body"].read() == b"hello world"


def test_truncated_aws_chunked_body():
    """Framing cut short inside a complete HTTP body."""
    truncated = b"400\r\n" + b"x" * 100
    h = dict(CHUNKED_HEADERS, **{"x-amz-decoded-content-length": "1024"})
    del h["x-amz-trailer"]
    st, _, body = raw("PUT", f"/{B}/trunc1", truncated, h)
    assert 400 <= st < 500, (st, body)
    assert raw("HEAD", f"/{B}/trunc1")[0] == 404


def test_truncated_http_body():
    """Content-Length promises more than arrives, then the client stops."""
    u = urllib.parse.urlparse(endpoint())
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    h = sign("PUT", f"/{B}/trunc2", {
        "Content-Length": "5000",
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": "4096",
    })
    head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    req = f"PUT /{B}/trunc2 HTTP/1.1\r\nHost: {u.netloc}\r\n{head}\r\n".encode()
    req += b"1000\r\n" + b"y" * 2000
    s.sendall(req)
    s.shutdown(socket.SHUT_WR)
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
    assert raw("HEAD", f"/{B}/trunc2")[0] == 404


def test_unknown_sub_resource_and_missing_things():
    # Unknown sub-resource is NotImplemented, not a silent fallthrough
    expect_error(raw("GET", f"/{B}?policy"), 501, "NotImplemented")
    # Missing things
    expect_error(raw("GET", f"/{B}/nope"), 404, "NoSuchKey")
    expect_error(raw("GET", "/no-such-bucket-xyz?list-type=2"), 404, "NoSuchBucket")
    # The bucket holds the keys of the cases above.
    expect_error(raw("DELETE", f"/{B}"), 409, "BucketNotEmpty")


def test_still_serving(c):
    c.put_object(Bucket=B, Key="after", Body=b"still here")
    assert c.get_object(Bucket=B, Key="after")["Body"].read() == b"still here"
