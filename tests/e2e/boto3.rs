//! boto3: the object API, listings with delimiter and pagination over 2,500 keys, and bad input
//! answered as AWS S3 answers it while the gateway keeps serving.

use ozone_tests::{Cluster, ok};

#[test]
fn boto3_api_and_bad_input() {
    let c = Cluster::shared();
    c.pytest(&["boto3_api.py", "bad_input.py"], &[]);
    // The gateway is still up and serving after all of that.
    let out = ok(c.aws(&["s3api", "list-buckets"]));
    assert!(out.contains("Buckets"), "{out}");
}

#[test]
fn s3_api_copy_parts_attributes_presigned_virtual_host() {
    // The shared cluster answers virtual-host requests for `BUCKET.s3.local`.
    let c = Cluster::shared();
    c.pytest(&["s3_api.py"], &[]);
}

/// Tagging, conditional writes (a deterministic race: 409), completing twice, ListMultipartUploads,
/// every named error code through boto3; listings, dates, stored headers, checksums.
#[test]
fn tagging_conditional_writes_uploads_and_error_codes() {
    let c = Cluster::shared();
    c.pytest(&["tags_conditions.py", "headers_listing.py"], &[]);
}
