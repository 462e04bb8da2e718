//! Which cases cover each gateway endpoint: at least one success case and one error case per
//! `Endpoint` variant (ListObjects counts twice, v1 and v2). Entries name the test functions
//! themselves, so a renamed or removed case does not compile; [`every_endpoint`] matches the
//! enum with no wildcard, so a new variant does not compile until it is listed here.

use ozone_s3g::router::Endpoint;

use crate::{acl, buckets, listing, multipart, objects, tagging};

/// An endpoint (as `Endpoint::name` names it) and its cases.
pub struct Covered {
    pub endpoint: &'static str,
    pub success: &'static [fn()],
    pub error: &'static [fn()],
}

const fn covered(
    endpoint: &'static str,
    success: &'static [fn()],
    error: &'static [fn()],
) -> Covered {
    Covered {
        endpoint,
        success,
        error,
    }
}

pub const COVERAGE: &[Covered] = &[
    covered(
        "Browser",
        &[buckets::browser_page],
        &[buckets::browser_wrong_method],
    ),
    covered(
        "ListBuckets",
        &[buckets::list_buckets],
        &[buckets::list_buckets_expired_presigned],
    ),
    covered(
        "CreateBucket",
        &[buckets::create_bucket],
        &[buckets::create_bucket_errors],
    ),
    covered(
        "HeadBucket",
        &[buckets::head_bucket],
        &[buckets::head_bucket_missing],
    ),
    covered(
        "DeleteBucket",
        &[buckets::delete_bucket],
        &[buckets::delete_bucket_errors],
    ),
    covered(
        "GetBucketLocation",
        &[buckets::get_bucket_location],
        &[buckets::get_bucket_location_missing],
    ),
    covered(
        "GetBucketVersioning",
        &[buckets::get_bucket_versioning],
        &[buckets::get_bucket_versioning_errors],
    ),
    covered(
        "GetBucketAcl",
        &[acl::get_bucket_acl],
        &[acl::get_bucket_acl_missing],
    ),
    covered(
        "PutBucketAcl",
        &[acl::put_bucket_acl],
        &[acl::put_bucket_acl_errors],
    ),
    covered(
        "GetObjectAcl",
        &[acl::get_object_acl],
        &[acl::get_object_acl_errors],
    ),
    covered(
        "ListObjects",
        &[listing::list_objects_v1],
        &[listing::list_objects_v1_errors],
    ),
    covered(
        "ListObjectsV2",
        &[listing::list_objects_v2],
        &[listing::list_objects_v2_errors],
    ),
    covered(
        "DeleteObjects",
        &[objects::delete_objects],
        &[objects::delete_objects_errors],
    ),
    covered(
        "ListMultipartUploads",
        &[listing::list_multipart_uploads],
        &[listing::list_multipart_uploads_errors],
    ),
    covered(
        "PutObject",
        &[objects::put_object],
        &[objects::put_object_errors],
    ),
    covered(
        "CopyObject",
        &[objects::copy_object],
        &[objects::copy_object_errors],
    ),
    covered(
        "GetObject",
        &[objects::get_object],
        &[objects::get_object_errors],
    ),
    covered(
        "HeadObject",
        &[objects::head_object],
        &[objects::head_object_errors],
    ),
    covered(
        "DeleteObject",
        &[objects::delete_object],
        &[objects::delete_object_missing_bucket],
    ),
    covered(
        "CreateMultipartUpload",
        &[multipart::create_multipart_upload],
        &[multipart::create_multipart_upload_errors],
    ),
    covered(
        "UploadPart",
        &[multipart::upload_part],
        &[multipart::upload_part_errors],
    ),
    covered(
        "UploadPartCopy",
        &[multipart::upload_part_copy],
        &[multipart::upload_part_copy_errors],
    ),
    covered(
        "GetObjectAttributes",
        &[objects::get_object_attributes],
        &[objects::get_object_attributes_errors],
    ),
    covered(
        "CompleteMultipartUpload",
        &[multipart::complete_multipart_upload],
        &[multipart::complete_multipart_upload_errors],
    ),
    covered(
        "AbortMultipartUpload",
        &[multipart::abort_multipart_upload],
        &[multipart::abort_multipart_upload_unknown],
    ),
    covered(
        "ListParts",
        &[multipart::list_parts],
        &[multipart::list_parts_errors],
    ),
    covered(
        "GetBucketTagging",
        &[tagging::get_bucket_tagging],
        &[tagging::get_bucket_tagging_errors],
    ),
    covered(
        "PutBucketTagging",
        &[tagging::put_bucket_tagging],
        &[tagging::put_bucket_tagging_errors],
    ),
    covered(
        "DeleteBucketTagging",
        &[tagging::delete_bucket_tagging],
        &[tagging::delete_bucket_tagging_missing_bucket],
    ),
    covered(
        "GetObjectTagging",
        &[tagging::get_object_tagging],
        &[tagging::get_object_tagging_missing],
    ),
    covered(
        "PutObjectTagging",
        &[tagging::put_object_tagging],
        &[tagging::put_object_tagging_errors],
    ),
    covered(
        "DeleteObjectTagging",
        &[tagging::delete_object_tagging],
        &[tagging::delete_object_tagging_missing],
    ),
];

/// One value of every `Endpoint` variant (both forms of ListObjects).
fn every_endpoint() -> Vec<Endpoint> {
    let (upload_id, part_number) = (String::new(), 1);
    let all = vec![
        Endpoint::Browser,
        Endpoint::ListBuckets,
        Endpoint::CreateBucket,
        Endpoint::HeadBucket,
        Endpoint::DeleteBucket,
        Endpoint::GetBucketLocation,
        Endpoint::GetBucketVersioning,
        Endpoint::GetBucketAcl,
        Endpoint::PutBucketAcl,
        Endpoint::GetObjectAcl,
        Endpoint::ListObjects { v2: false },
        Endpoint::ListObjects { v2: true },
        Endpoint::DeleteObjects,
        Endpoint::ListMultipartUploads,
        Endpoint::PutObject,
        Endpoint::CopyObject,
        Endpoint::GetObject,
        Endpoint::HeadObject,
        Endpoint::DeleteObject,
        Endpoint::CreateMultipartUpload,
        Endpoint::UploadPart {
            upload_id: upload_id.clone(),
            part_number,
        },
        Endpoint::UploadPartCopy {
            upload_id: upload_id.clone(),
            part_number,
        },
        Endpoint::GetObjectAttributes,
        Endpoint::CompleteMultipartUpload {
            upload_id: upload_id.clone(),
        },
        Endpoint::AbortMultipartUpload {
            upload_id: upload_id.clone(),
        },
        Endpoint::ListParts { upload_id },
        Endpoint::GetBucketTagging,
        Endpoint::PutBucketTagging,
        Endpoint::DeleteBucketTagging,
        Endpoint::GetObjectTagging,
        Endpoint::PutObjectTagging,
        Endpoint::DeleteObjectTagging,
    ];
    for e in &all {
        // No wildcard: a new variant stops this compiling until it is in `all` and COVERAGE.
        match e {
            Endpoint::Browser
            | Endpoint::ListBuckets
            | Endpoint::CreateBucket
            | Endpoint::HeadBucket
            | Endpoint::DeleteBucket
            | Endpoint::GetBucketLocation
            | Endpoint::GetBucketVersioning
            | Endpoint::GetBucketAcl
            | Endpoint::PutBucketAcl
            | Endpoint::GetObjectAcl
            | Endpoint::ListObjects { v2: false }
            | Endpoint::ListObjects { v2: true }
            | Endpoint::DeleteObjects
            | Endpoint::ListMultipartUploads
            | Endpoint::PutObject
            | Endpoint::CopyObject
            | Endpoint::GetObject
            | Endpoint::HeadObject
            | Endpoint::DeleteObject
            | Endpoint::CreateMultipartUpload
            | Endpoint::UploadPart { .. }
            | Endpoint::UploadPartCopy { .. }
            | Endpoint::GetObjectAttributes
            | Endpoint::CompleteMultipartUpload { .. }
            | Endpoint::AbortMultipartUpload { .. }
            | Endpoint::ListParts { .. }
            | Endpoint::GetBucketTagging
            | Endpoint::PutBucketTagging
            | Endpoint::DeleteBucketTagging
            | Endpoint::GetObjectTagging
            | Endpoint::PutObjectTagging
            | Endpoint::DeleteObjectTagging => {}
        }
    }
    all
}

#[test]
fn every_endpoint_has_a_success_and_an_error_case() {
    let mut names: Vec<&str> = every_endpoint().iter().map(Endpoint::name).collect();
    names.sort_unstable();
    let mut table: Vec<&str> = COVERAGE.iter().map(|c| c.endpoint).collect();
    table.sort_unstable();
    let before = table.len();
    table.dedup();
    assert_eq!(table.len(), before, "an endpoint is listed twice");
    assert_eq!(
        table, names,
        "COVERAGE lists exactly the gateway's endpoints"
    );
    for c in COVERAGE {
        assert!(!c.success.is_empty(), "{}: no success case", c.endpoint);
        assert!(!c.error.is_empty(), "{}: no error case", c.endpoint);
    }
}
