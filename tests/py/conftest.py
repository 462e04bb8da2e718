"""pytest fixtures of the end-to-end suites: a boto3 client for the gateway the Rust harness
names in OZONE_S3_ENDPOINT, with the test credentials it puts in the AWS_* variables. Each
module makes its own buckets; the cases of a module run in the order they are written and may
build on the ones before."""
import pytest

from common import s3


@pytest.fixture(scope="module")
def c():
    """A boto3 S3 client with the test credentials, path-style addressing."""
    return s3()
