//! Who is asking and what they may do, with `ozone.security.enabled=true`.
//!
//! Authentication: the gateway rebuilds the SigV4 string to sign of the request (header or
//! presigned query) and OM checks the signature against the access key's secret, which never
//! leaves OM, in a linearizable read: a revoked secret fails on the next request (no cache
//! here). OM answers the day-scoped signing key, with which the chunk signatures of a signed
//! streaming upload are checked here, and the request's bucket (owner, ACL) in the same call.
//!
//! Authorization ([`crate::router::Endpoint::permission`] names what an operation needs): a
//! bucket's owner may do everything in it; others need an ACL grant (READ to
//! list and read, WRITE to write and delete, READ_ACP / WRITE_ACP for the ACL). Deleting a
//! bucket is its owner's alone. A request without credentials is `anonymous` and gets only
//! what grants to everyone (`public-read`) allow.

use actix_web::HttpRequest;
use ozone_proto::om::{BucketInfo, OmStatus, VerifyS3SignatureRequest};

use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::gateway::Gateway;
use crate::router::{Endpoint, Perm, Query};
use crate::sigv4::{self, ChunkSigner, SigV4Request};

/// The user of a request without credentials.
pub const ANONYMOUS: &str = "anonymous";
/// ACL grantee meaning every user, signed or not.
pub const ALL_USERS: &str = "*";
/// ACL grantee meaning every user with valid credentials.
pub const AUTHENTICATED_USERS: &str = "@authenticated";

/// The authenticated caller of one request.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub user: String,
    /// False for a request without credentials (security on).
    pub authenticated: bool,
    /// Checks the chunk signatures of a signed streaming upload.
    pub chunk_signer: Option<ChunkSigner>,
    /// The request's bucket, as OM answered with the signature check.
    pub bucket: Option<BucketInfo>,
    /// The SHA-256 of the payload the signature covers, when it covers a digest (header
    /// `x-amz-content-sha256`, or a presigned URL's `X-Amz-Content-Sha256`): the body must
    /// hash to it.
    pub payload_sha256: Option<[u8; 32]>,
}

/// Whether `id` may do `perm` in `bucket`.
pub fn allowed(bucket: &BucketInfo, id: &Identity, perm: Perm) -> bool {
    if id.authenticated && bucket.owner == id.user {
        return true;
    }
    if perm == Perm::Owner {
        return false;
    }
    bucket.acl.iter().any(|g| {
        let grantee = g.grantee == ALL_USERS
            || (id.authenticated && (g.grantee == id.user || g.grantee == AUTHENTICATED_USERS));
        grantee && (g.permission == "FULL_CONTROL" || g.permission == perm.acl_name())
    })
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Authenticates a request (security on); `bucket` is the request's bucket, if any.
///
/// As AWS checks SigV4: the credential scope must be of the request's own day (the date of
/// `x-amz-date` / `X-Amz-Date`), of this gateway's region and of the service `s3`; the request
/// date must be within 15 minutes of ours (a presigned URL's from when it was signed until it
/// expires); `host` and every `x-amz-*` header the request carries must be signed.
pub async fn authenticate(
    gw: &Gateway,
    req: &HttpRequest,
    query: &Query,
    bucket: Option<&str>,
) -> S3Result<Identity> {
    let (sig, payload_hash) = if let Some(auth) = header(req, "authorization") {
        if !auth.starts_with(sigv4::ALGORITHM) {
            return Err(S3Error::msg(
                S3ErrorCode::InvalidRequest,
                "Only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted",
            ));
        }
        let bad_date = || {
            S3Error::msg(
                S3ErrorCode::AccessDenied,
                "AWS authentication requires a valid x-amz-date header",
            )
        };
        let amz_date = header(req, "x-amz-date").ok_or_else(bad_date)?;
        let sig = sigv4::parse_authorization(auth, amz_date)?;
        let signed_at = sigv4::parse_amz_date(amz_date).ok_or_else(bad_date)?;
        check_scope(&sig, &gw.config.region)?;
        if (now() - signed_at).abs() > sigv4::MAX_SKEW_SECS {
            return Err(S3Error::new(S3ErrorCode::RequestTimeTooSkewed));
        }
        let payload = header(req, "x-amz-content-sha256").ok_or_else(|| {
            S3Error::msg(
                S3ErrorCode::InvalidRequest,
                "Missing required header for this request: x-amz-content-sha256",
            )
        })?;
        (sig, payload.to_string())
    } else if query.has("X-Amz-Credential") {
        crate::auth::check_presigned_expiry(query)?;
        let sig = sigv4::parse_presigned(query)?;
        check_scope(&sig, &gw.config.region)?;
        if let Some(t) = sigv4::parse_amz_date(&sig.amz_date)
            && t - now() > sigv4::MAX_SKEW_SECS
        {
            return Err(S3Error::new(S3ErrorCode::RequestTimeTooSkewed));
        }
        let payload = query
            .get("X-Amz-Content-Sha256")
            .unwrap_or("UNSIGNED-PAYLOAD")
            .to_string();
        (sig, payload)
    } else if query.has("AWSAccessKeyId") {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidRequest,
            "Only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted",
        ));
    } else {
        let bucket = match bucket {
            Some(b) => bucket_or_missing(gw, b).await?,
            None => None,
        };
        return Ok(Identity {
            user: ANONYMOUS.to_string(),
            authenticated: false,
            chunk_signer: None,
            payload_sha256: None,
            bucket,
        });
    };
    check_signed_headers(req, &sig.signed_headers)?;
    verify(gw, req, query, bucket, sig, &payload_hash).await
}

/// The credential scope `date/region/service/aws4_request` must name the day of the request's
/// date, the region this gateway serves and `s3` (AWS: AuthorizationHeaderMalformed, or
/// AuthorizationQueryParametersError for a presigned URL). A signing key of another day does
/// not sign today's requests.
pub fn check_scope(sig: &SigV4Request, region: &str) -> S3Result<()> {
    let (code, what) = if sig.presigned {
        (
            S3ErrorCode::AuthorizationQueryParametersError,
            "Error parsing the X-Amz-Credential parameter",
        )
    } else {
        (
            S3ErrorCode::AuthorizationHeaderMalformed,
            "The authorization header is malformed",
        )
    };
    if sig.amz_date.get(..8) != Some(sig.date.as_str()) {
        return Err(S3Error::msg(
            code,
            format!("{what}; Invalid credential date. Date is not the same as X-Amz-Date."),
        ));
    }
    if sig.region != region {
        return Err(S3Error::msg(
            code,
            format!(
                "{what}; the region '{}' is wrong; expecting '{region}'",
                sig.region
            ),
        ));
    }
    if sig.service != "s3" {
        return Err(S3Error::msg(
            code,
            format!(
                "{what}; incorrect service \"{}\". This endpoint belongs to \"s3\".",
                sig.service
            ),
        ));
    }
    Ok(())
}

/// `host` and every `x-amz-*` header a request carries must be among its signed headers, or
/// an intermediary could add one the signer never meant (an `x-amz-copy-source` turning a
/// presigned PUT into a copy of anything the signer may read). AWS: 403 AccessDenied.
pub fn check_signed_headers(req: &HttpRequest, signed: &[String]) -> S3Result<()> {
    let mut unsigned: Vec<&str> = Vec::new();
    if !signed.iter().any(|h| h == "host") {
        unsigned.push("host");
    }
    for name in req.headers().keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-")
            && !signed.iter().any(|h| h == name)
            && !unsigned.contains(&name)
        {
            unsigned.push(name);
        }
    }
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    tracing::debug!(headers = ?unsigned, "unsigned headers in a signed request");
    Err(S3Error::msg(
        S3ErrorCode::AccessDenied,
        format!(
            "There were headers present in the request which were not signed: {}",
            unsigned.join(", ")
        ),
    ))
}

/// The bucket's record; `None` only when OM says it does not exist. Any other failure (OM
/// not answering, not leader, an internal error) is the request's error: access is never
/// decided without the record.
async fn bucket_or_missing(gw: &Gateway, bucket: &str) -> S3Result<Option<BucketInfo>> {
    match gw.om.info_bucket(&gw.config.volume, bucket).await {
        Ok(b) => Ok(Some(b)),
        Err(e)
            if matches!(
                e.status(),
                OmStatus::BucketNotFound | OmStatus::VolumeNotFound
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(S3Error::from_om(e, &format!("/{bucket}"))),
    }
}

async fn verify(
    gw: &Gateway,
    req: &HttpRequest,
    query: &Query,
    bucket: Option<&str>,
    sig: SigV4Request,
    payload_hash: &str,
) -> S3Result<Identity> {
    let creq = sigv4::canonical_request(
        req.method().as_str(),
        req.uri().path(),
        query,
        req.headers(),
        &sig.signed_headers,
        payload_hash,
    );
    let scope = sig.scope();
    let sts = sigv4::string_to_sign(&sig.amz_date, &scope, &creq);
    let resp = gw
        .om
        .verify_s3_signature(VerifyS3SignatureRequest {
            access_key: sig.access_key.clone(),
            date: sig.date.clone(),
            region: sig.region.clone(),
            service: sig.service.clone(),
            string_to_sign: sts,
            signature: sig.signature.clone(),
            volume: gw.config.volume.clone(),
            bucket: bucket.unwrap_or_default().to_string(),
        })
        .await
        .map_err(|e| {
            let e = S3Error::from_om(e, "");
            if e.code == S3ErrorCode::SignatureDoesNotMatch {
                tracing::info!(access_key = %sig.access_key, canonical_request = %creq, "signature mismatch");
            }
            e
        })?;
    let key: [u8; 32] = resp
        .signing_key
        .as_slice()
        .try_into()
        .map_err(|_| S3Error::internal("OM answered a signing key that is not 32 bytes"))?;
    let chunk_signer = (!sig.presigned
        && payload_hash.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    .then(|| ChunkSigner {
        key,
        amz_date: sig.amz_date.clone(),
        scope,
        previous: sig.signature.clone(),
    });
    let payload_sha256 = hex::decode(payload_hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    Ok(Identity {
        user: resp.user,
        authenticated: true,
        chunk_signer,
        payload_sha256,
        bucket: resp.bucket,
    })
}

/// Checks that `id` may run `endpoint` on `bucket` (security on). A bucket OM says is missing
/// passes for an authenticated caller (the operation itself answers NoSuchBucket); any other
/// OM failure fails the request (ServiceUnavailable when OM does not answer): never access.
pub async fn authorize(
    gw: &Gateway,
    id: &Identity,
    endpoint: &Endpoint,
    bucket: &str,
) -> S3Result<()> {
    let Some(perm) = endpoint.permission() else {
        if !id.authenticated {
            return Err(S3Error::new(S3ErrorCode::AccessDenied));
        }
        return Ok(());
    };
    let info = match &id.bucket {
        Some(b) if b.name == bucket => Some(b.clone()),
        _ => bucket_or_missing(gw, bucket).await?,
    };
    match info {
        Some(b) if !allowed(&b, id, perm) => {
            tracing::debug!(user = %id.user, bucket, ?perm, "access denied");
            Err(S3Error::new(S3ErrorCode::AccessDenied).with_resource(format!("/{bucket}")))
        }
        Some(_) => Ok(()),
        None if !id.authenticated => Err(S3Error::new(S3ErrorCode::AccessDenied)),
        None => Ok(()),
    }
}

/// The source bucket of a copy needs what reading it needs ([`Endpoint::GetObject`]).
pub async fn authorize_copy_source(gw: &Gateway, id: &Identity, bucket: &str) -> S3Result<()> {
    if !gw.config.security {
        return Ok(());
    }
    authorize(gw, id, &Endpoint::GetObject, bucket).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ozone_proto::om::BucketGrant;

    fn sig(
        amz_date: &str,
        date: &str,
        region: &str,
        service: &str,
        presigned: bool,
    ) -> SigV4Request {
        SigV4Request {
            access_key: "alice".into(),
            date: date.into(),
            region: region.into(),
            service: service.into(),
            signed_headers: vec!["host".into()],
            signature: "00".into(),
            amz_date: amz_date.into(),
            presigned,
        }
    }

    #[test]
    fn scope_must_be_of_the_request_day_region_and_s3() {
        let now = "20260101T000500Z";
        check_scope(&sig(now, "20260101", "us-east-1", "s3", false), "us-east-1").unwrap();
        for (date, region, service) in [
            ("20251231", "us-east-1", "s3"),
            ("20260102", "us-east-1", "s3"),
            ("20260101", "eu-west-1", "s3"),
            ("20260101", "us-east-1", "iam"),
        ] {
            let e = check_scope(&sig(now, date, region, service, false), "us-east-1").unwrap_err();
            assert_eq!(
                e.code,
                S3ErrorCode::AuthorizationHeaderMalformed,
                "{date} {region} {service}"
            );
            let e = check_scope(&sig(now, date, region, service, true), "us-east-1").unwrap_err();
            assert_eq!(e.code, S3ErrorCode::AuthorizationQueryParametersError);
        }
        // The configured region, not us-east-1, is the one expected.
        check_scope(&sig(now, "20260101", "eu-west-1", "s3", false), "eu-west-1").unwrap();
        check_scope(&sig(now, "20260101", "us-east-1", "s3", false), "eu-west-1").unwrap_err();
    }

    #[test]
    fn host_and_every_x_amz_header_must_be_signed() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("host", "s3.local"))
            .insert_header(("x-amz-date", "20260101T000000Z"))
            .insert_header(("x-amz-copy-source", "/b/k"))
            .insert_header(("content-type", "text/plain"))
            .to_http_request();
        let signed = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        check_signed_headers(&req, &signed(&["host", "x-amz-copy-source", "x-amz-date"])).unwrap();
        let e = check_signed_headers(&req, &signed(&["host", "x-amz-date"])).unwrap_err();
        assert_eq!(e.code, S3ErrorCode::AccessDenied);
        assert!(e.message.ends_with("x-amz-copy-source"), "{}", e.message);
        let e =
            check_signed_headers(&req, &signed(&["x-amz-copy-source", "x-amz-date"])).unwrap_err();
        assert!(e.message.ends_with("host"), "{}", e.message);
    }

    #[test]
    fn owner_and_grants() {
        let mut b = BucketInfo {
            name: "b1".into(),
            owner: "alice".into(),
            ..Default::default()
        };
        let id = |u: &str, authenticated| Identity {
            user: u.into(),
            authenticated,
            ..Default::default()
        };
        assert!(allowed(&b, &id("alice", true), Perm::Owner));
        assert!(!allowed(&b, &id("bob", true), Perm::Read));
        assert!(!allowed(&b, &id("alice", false), Perm::Read));
        b.acl.push(BucketGrant {
            grantee: "bob".into(),
            permission: "READ".into(),
        });
        assert!(allowed(&b, &id("bob", true), Perm::Read));
        assert!(!allowed(&b, &id("bob", true), Perm::Write));
        assert!(!allowed(&b, &id("bob", true), Perm::Owner));
        b.acl.push(BucketGrant {
            grantee: ALL_USERS.into(),
            permission: "READ".into(),
        });
        assert!(allowed(&b, &id(ANONYMOUS, false), Perm::Read));
        assert!(!allowed(&b, &id(ANONYMOUS, false), Perm::Write));
        b.acl.push(BucketGrant {
            grantee: AUTHENTICATED_USERS.into(),
            permission: "FULL_CONTROL".into(),
        });
        assert!(allowed(&b, &id("carol", true), Perm::WriteAcp));
        assert!(!allowed(&b, &id(ANONYMOUS, false), Perm::WriteAcp));
    }
}
