//! Parses a request into one [`Endpoint`] (method + bucket + key + sub-resource), once.
//! A sub-resource the gateway does not implement is `NotImplemented`, never a fallthrough.

use actix_web::HttpRequest;
use actix_web::http::Method;

use crate::error::{S3Error, S3ErrorCode, S3Result};

/// Decoded query parameters, in request order.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> S3Result<Self> {
        let mut out = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.push((decode_query(k)?, decode_query(v)?));
        }
        Ok(Query(out))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

fn decode_query(s: &str) -> S3Result<String> {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| S3Error::new(S3ErrorCode::InvalidURI))
}

/// Decodes a percent-encoded path segment (where `+` is a literal plus).
pub fn decode_path(s: &str) -> S3Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| S3Error::new(S3ErrorCode::InvalidURI))
}

/// Bucket sub-resources S3 defines that this gateway does not implement.
const UNSUPPORTED_BUCKET: &[&str] = &[
    "accelerate",
    "analytics",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "versions",
    "website",
];

/// Object sub-resources S3 defines that this gateway does not implement.
const UNSUPPORTED_OBJECT: &[&str] = &[
    "acl",
    "legal-hold",
    "restore",
    "retention",
    "select",
    "torrent",
    "versionId",
];

/// A request's target after virtual-host and path-style resolution.
pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

pub fn resolve_target(req: &HttpRequest, domains: &[String]) -> S3Result<Target> {
    let raw_path = req.uri().path();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
    if let Some(host) = host {
        for d in domains {
            if let Some(bucket) = host
                .strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
            {
                let key = raw_path.strip_prefix('/').unwrap_or(raw_path);
                return Ok(Target {
                    bucket: Some(bucket.to_string()),
                    key: (!key.is_empty()).then(|| decode_path(key)).transpose()?,
                });
            }
        }
    }
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    if path.is_empty() {
        return Ok(Target {
            bucket: None,
            key: None,
        });
    }
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, (!k.is_empty()).then_some(k)),
        None => (path, None),
    };
    Ok(Target {
        bucket: Some(decode_path(bucket)?),
        key: key.map(decode_path).transpose()?,
    })
}

/// What an operation needs on its bucket (see [`Endpoint::permission`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    /// Only the owner (DeleteBucket, tagging).
    Owner,
}

impl Perm {
    /// The ACL permission that grants it (`FULL_CONTROL` grants every one but `Owner`).
    pub fn acl_name(self) -> &'static str {
        match self {
            Perm::Read => "READ",
            Perm::Write => "WRITE",
            Perm::ReadAcp => "READ_ACP",
            Perm::WriteAcp => "WRITE_ACP",
            Perm::Owner => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Browser,
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    GetBucketAcl,
    PutBucketAcl,
    GetObjectAcl,
    ListObjects { v2: bool },
    DeleteObjects,
    ListMultipartUploads,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart { upload_id: String, part_number: u32 },
    UploadPartCopy { upload_id: String, part_number: u32 },
    GetObjectAttributes,
    CompleteMultipartUpload { upload_id: String },
    AbortMultipartUpload { upload_id: String },
    ListParts { upload_id: String },
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
}

impl Endpoint {
    /// The operation name, as AWS names it (metrics, logs).
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Browser => "Browser",
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::CreateBucket => "CreateBucket",
            Endpoint::HeadBucket => "HeadBucket",
            Endpoint::DeleteBucket => "DeleteBucket",
            Endpoint::GetBucketLocation => "GetBucketLocation",
            Endpoint::GetBucketVersioning => "GetBucketVersioning",
            Endpoint::GetBucketAcl => "GetBucketAcl",
            Endpoint::PutBucketAcl => "PutBucketAcl",
            Endpoint::GetObjectAcl => "GetObjectAcl",
            Endpoint::ListObjects { v2: true } => "ListObjectsV2",
            Endpoint::ListObjects { v2: false } => "ListObjects",
            Endpoint::DeleteObjects => "DeleteObjects",
            Endpoint::ListMultipartUploads => "ListMultipartUploads",
            Endpoint::PutObject => "PutObject",
            Endpoint::CopyObject => "CopyObject",
            Endpoint::GetObject => "GetObject",
            Endpoint::HeadObject => "HeadObject",
            Endpoint::DeleteObject => "DeleteObject",
            Endpoint::CreateMultipartUpload => "CreateMultipartUpload",
            Endpoint::UploadPart { .. } => "UploadPart",
            Endpoint::UploadPartCopy { .. } => "UploadPartCopy",
            Endpoint::GetObjectAttributes => "GetObjectAttributes",
            Endpoint::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Endpoint::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Endpoint::ListParts { .. } => "ListParts",
            Endpoint::GetBucketTagging => "GetBucketTagging",
            Endpoint::PutBucketTagging => "PutBucketTagging",
            Endpoint::DeleteBucketTagging => "DeleteBucketTagging",
            Endpoint::GetObjectTagging => "GetObjectTagging",
            Endpoint::PutObjectTagging => "PutObjectTagging",
            Endpoint::DeleteObjectTagging => "DeleteObjectTagging",
        }
    }

    /// The permission the operation needs on its bucket, checked with security on
    /// (`None`: not a bucket operation; an authenticated user is enough).
    pub fn permission(&self) -> Option<Perm> {
        match self {
            // The page is static and public (its script's calls are checked one by one).
            Endpoint::Browser => None,
            Endpoint::ListBuckets => None,
            Endpoint::CreateBucket => None,
            Endpoint::HeadBucket => Some(Perm::Read),
            Endpoint::DeleteBucket => Some(Perm::Owner),
            Endpoint::GetBucketLocation => Some(Perm::Read),
            Endpoint::GetBucketVersioning => Some(Perm::Read),
            Endpoint::GetBucketAcl => Some(Perm::ReadAcp),
            Endpoint::PutBucketAcl => Some(Perm::WriteAcp),
            Endpoint::GetObjectAcl => Some(Perm::ReadAcp),
            Endpoint::ListObjects { .. } => Some(Perm::Read),
            Endpoint::DeleteObjects => Some(Perm::Write),
            Endpoint::ListMultipartUploads => Some(Perm::Read),
            Endpoint::PutObject => Some(Perm::Write),
            Endpoint::CopyObject => Some(Perm::Write),
            Endpoint::GetObject => Some(Perm::Read),
            Endpoint::HeadObject => Some(Perm::Read),
            Endpoint::DeleteObject => Some(Perm::Write),
            Endpoint::CreateMultipartUpload => Some(Perm::Write),
            Endpoint::UploadPart { .. } => Some(Perm::Write),
            Endpoint::UploadPartCopy { .. } => Some(Perm::Write),
            Endpoint::GetObjectAttributes => Some(Perm::Read),
            Endpoint::CompleteMultipartUpload { .. } => Some(Perm::Write),
            Endpoint::AbortMultipartUpload { .. } => Some(Perm::Write),
            Endpoint::ListParts { .. } => Some(Perm::Read),
            Endpoint::GetBucketTagging => Some(Perm::Owner),
            Endpoint::PutBucketTagging => Some(Perm::Owner),
            Endpoint::DeleteBucketTagging => Some(Perm::Owner),
            Endpoint::GetObjectTagging => Some(Perm::Owner),
            Endpoint::PutObjectTagging => Some(Perm::Owner),
            Endpoint::DeleteObjectTagging => Some(Perm::Owner),
        }
    }

    /// Picks the operation. `copy_source` is whether `x-amz-copy-source` was sent.
    pub fn parse(
        method: &Method,
        bucket: Option<&str>,
        key: Option<&str>,
        q: &Query,
        copy_source: bool,
    ) -> S3Result<Endpoint> {
        let not_implemented = |what: &str| {
            Err(S3Error::msg(
                S3ErrorCode::NotImplemented,
                format!("{what} is not implemented"),
            ))
        };
        let method_not_allowed = || Err(S3Error::new(S3ErrorCode::MethodNotAllowed));
        let Some(_bucket) = bucket else {
            return match *method {
                // The bucket browser page (static; its script signs the S3 calls it makes).
                Method::GET if q.has("browser") => Ok(Endpoint::Browser),
                Method::GET => Ok(Endpoint::ListBuckets),
                _ => method_not_allowed(),
            };
        };
        let Some(_key) = key else {
            if let Some(sub) = UNSUPPORTED_BUCKET.iter().find(|s| q.has(s)) {
                return not_implemented(&format!("bucket sub-resource ?{sub}"));
            }
            if q.has("tagging") {
                return match *method {
                    Method::GET => Ok(Endpoint::GetBucketTagging),
                    Method::PUT => Ok(Endpoint::PutBucketTagging),
                    Method::DELETE => Ok(Endpoint::DeleteBucketTagging),
                    _ => method_not_allowed(),
                };
            }
            return match *method {
                Method::GET if q.has("acl") => Ok(Endpoint::GetBucketAcl),
                Method::PUT if q.has("acl") => Ok(Endpoint::PutBucketAcl),
                _ if q.has("acl") => method_not_allowed(),
                Method::PUT if q.has("versioning") => not_implemented("PutBucketVersioning"),
                Method::PUT => Ok(Endpoint::CreateBucket),
                Method::HEAD => Ok(Endpoint::HeadBucket),
                Method::DELETE => Ok(Endpoint::DeleteBucket),
                Method::GET if q.has("browser") => Ok(Endpoint::Browser),
                Method::GET if q.has("location") => Ok(Endpoint::GetBucketLocation),
                Method::GET if q.has("versioning") => Ok(Endpoint::GetBucketVersioning),
                Method::GET if q.has("uploads") => Ok(Endpoint::ListMultipartUploads),
                Method::GET => Ok(Endpoint::ListObjects {
                    v2: q.get("list-type") == Some("2"),
                }),
                Method::POST if q.has("delete") => Ok(Endpoint::DeleteObjects),
                _ => method_not_allowed(),
            };
        };
        if *method == Method::GET && q.has("acl") && !q.has("versionId") {
            return Ok(Endpoint::GetObjectAcl);
        }
        if let Some(sub) = UNSUPPORTED_OBJECT.iter().find(|s| q.has(s)) {
            return not_implemented(&format!("object sub-resource ?{sub}"));
        }
        if q.has("tagging") {
            return match *method {
                Method::GET => Ok(Endpoint::GetObjectTagging),
                Method::PUT => Ok(Endpoint::PutObjectTagging),
                Method::DELETE => Ok(Endpoint::DeleteObjectTagging),
                _ => method_not_allowed(),
            };
        }
        let upload_id = q.get("uploadId").map(str::to_string);
        match (method.clone(), upload_id) {
            (Method::PUT, Some(upload_id)) => {
                let part_number = parse_part_number(q.get("partNumber"))?;
                if copy_source {
                    Ok(Endpoint::UploadPartCopy {
                        upload_id,
                        part_number,
                    })
                } else {
                    Ok(Endpoint::UploadPart {
                        upload_id,
                        part_number,
                    })
                }
            }
            (Method::POST, Some(upload_id)) => Ok(Endpoint::CompleteMultipartUpload { upload_id }),
            (Method::DELETE, Some(upload_id)) => Ok(Endpoint::AbortMultipartUpload { upload_id }),
            (Method::GET, Some(upload_id)) => Ok(Endpoint::ListParts { upload_id }),
            (Method::POST, None) if q.has("uploads") => Ok(Endpoint::CreateMultipartUpload),
            (Method::PUT, None) if copy_source => Ok(Endpoint::CopyObject),
            (Method::PUT, None) => Ok(Endpoint::PutObject),
            (Method::GET, None) if q.has("attributes") => Ok(Endpoint::GetObjectAttributes),
            (Method::GET, None) => Ok(Endpoint::GetObject),
            (Method::HEAD, None) => Ok(Endpoint::HeadObject),
            (Method::DELETE, None) => Ok(Endpoint::DeleteObject),
            _ => method_not_allowed(),
        }
    }
}

pub fn parse_part_number(v: Option<&str>) -> S3Result<u32> {
    let n: u32 = v.and_then(|v| v.parse().ok()).ok_or_else(|| {
        S3Error::msg(
            S3ErrorCode::InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive",
        )
    })?;
    if !(1..=10000).contains(&n) {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive",
        ));
    }
    Ok(n)
}

/// S3 bucket naming rules (the strict, current ones).
pub fn validate_bucket_name(name: &str) -> S3Result<()> {
    let bad = || Err(S3Error::new(S3ErrorCode::InvalidBucketName).with_resource(name));
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return bad();
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return bad();
    }
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge_ok(b[0]) || !edge_ok(b[b.len() - 1]) {
        return bad();
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad();
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ep(m: Method, b: Option<&str>, k: Option<&str>, q: &str) -> S3Result<Endpoint> {
        Endpoint::parse(&m, b, k, &Query::parse(q).unwrap(), false)
    }

    #[test]
    fn routes() {
        assert_eq!(
            ep(Method::GET, None, None, "").unwrap(),
            Endpoint::ListBuckets
        );
        assert_eq!(
            ep(Method::GET, Some("b"), None, "list-type=2&prefix=a").unwrap(),
            Endpoint::ListObjects { v2: true }
        );
        assert_eq!(
            ep(Method::POST, Some("b"), None, "delete").unwrap(),
            Endpoint::DeleteObjects
        );
        assert_eq!(
            ep(Method::PUT, Some("b"), Some("k"), "partNumber=3&uploadId=u").unwrap(),
            Endpoint::UploadPart {
                upload_id: "u".into(),
                part_number: 3
            }
        );
        assert_eq!(
            ep(Method::PUT, Some("b"), Some("k"), "x-id=PutObject").unwrap(),
            Endpoint::PutObject
        );
        assert_eq!(
            ep(Method::GET, Some("b"), None, "browser=true").unwrap(),
            Endpoint::Browser
        );
        assert_eq!(
            ep(Method::GET, None, None, "browser=true").unwrap(),
            Endpoint::Browser
        );
        assert_eq!(
            ep(Method::GET, Some("b"), None, "policy").unwrap_err().code,
            S3ErrorCode::NotImplemented
        );
        assert_eq!(
            ep(Method::PUT, Some("b"), Some("k"), "partNumber=0&uploadId=u")
                .unwrap_err()
                .code,
            S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            ep(Method::POST, Some("b"), None, "").unwrap_err().code,
            S3ErrorCode::MethodNotAllowed
        );
        assert_eq!(
            ep(Method::PUT, Some("b"), None, "tagging").unwrap(),
            Endpoint::PutBucketTagging
        );
        assert_eq!(
            ep(Method::DELETE, Some("b"), Some("k"), "tagging").unwrap(),
            Endpoint::DeleteObjectTagging
        );
        assert_eq!(
            ep(Method::GET, Some("b"), Some("k"), "tagging").unwrap(),
            Endpoint::GetObjectTagging
        );
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.v2", "a1b"] {
            validate_bucket_name(ok).unwrap();
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "192.168.1.1",
            &"a".repeat(64),
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
