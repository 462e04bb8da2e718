//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! GetBucketVersioning.

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use om_client::OmClientError;
use ozone_proto::om::{CreateBucketRequest, ListBucketsRequest, OmStatus};

use super::{Ctx, iso8601, xml_ok};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::xml;

/// Buckets a ListBuckets page holds at most (`max-buckets`, as S3 and Ozone).
const MAX_BUCKETS: u32 = 10_000;
/// Buckets asked of OM per round trip.
const OM_PAGE: u32 = 1000;
/// Buckets one ListBuckets request reads from OM at most: with security on, where a user sees
/// only their own buckets, a page may end short (with a continuation token) rather than read
/// every bucket of everyone, so a request costs the same whatever the number of buckets.
const MAX_SCANNED: usize = 2 * MAX_BUCKETS as usize;

/// `max-buckets`: 1 to 10000; absent is 10000.
fn max_buckets(ctx: &Ctx<'_>) -> S3Result<u32> {
    match ctx.query.get("max-buckets") {
        None => Ok(MAX_BUCKETS),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_BUCKETS).contains(&n) => Ok(n),
            _ => Err(S3Error::msg(
                S3ErrorCode::InvalidArgument,
                "max-buckets must be an integer from 1 to 10000",
            )),
        },
    }
}

/// ListBuckets, a page at a time: `max-buckets`, `continuation-token` (the last bucket name of
/// the previous page, base64) and `prefix`, as S3 since 2024.
pub async fn list_buckets(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let max = max_buckets(ctx)? as usize;
    let prefix = ctx.query.get("prefix").unwrap_or("").to_string();
    let mut start_after = match ctx.query.get("continuation-token") {
        None => String::new(),
        Some(t) => super::list::decode_continuation_token(t)?,
    };
    // With security on a user sees only the buckets they own.
    let security = ctx.gw.config.security;
    let mut buckets = Vec::new();
    let mut scanned = 0usize;
    let mut more = true;
    while buckets.len() < max && scanned < MAX_SCANNED {
        let want = if security {
            OM_PAGE
        } else {
            (max - buckets.len()).min(OM_PAGE as usize) as u32
        };
        let page = ctx
            .gw
            .om
            .list_buckets(ListBucketsRequest {
                volume: ctx.volume(),
                prefix: prefix.clone(),
                start_after: start_after.clone(),
                max: want,
            })
            .await
            .map_err(|e| S3Error::from_om(e, "/"))?;
        let n = page.buckets.len();
        let mut rest = page.buckets.into_iter();
        for b in rest.by_ref() {
            scanned += 1;
            start_after = b.name.clone();
            if !security || b.owner == ctx.user {
                buckets.push(b);
                if buckets.len() == max {
                    break;
                }
            }
        }
        if buckets.len() == max {
            // Full: more follow if this answer holds another visible bucket, or if OM may
            // have more than it sent.
            let visible_left = rest.any(|b| !security || b.owner == ctx.user);
            more = visible_left || n == want as usize;
            break;
        }
        if n < want as usize {
            more = false;
            break;
        }
    }
    // A full page may be the last one: look one bucket further (one small round trip) so that
    // a listing that ends exactly at a page boundary carries no token.
    if more && !security {
        let next = ctx
            .gw
            .om
            .list_buckets(ListBucketsRequest {
                volume: ctx.volume(),
                prefix: prefix.clone(),
                start_after: start_after.clone(),
                max: 1,
            })
            .await
            .map_err(|e| S3Error::from_om(e, "/"))?;
        more = !next.buckets.is_empty();
    }
    let out = xml::ListAllMyBucketsResult {
        xmlns: (),
        owner: xml::Owner::user(&ctx.user),
        buckets: xml::Buckets {
            bucket: buckets
                .into_iter()
                .map(|b| xml::BucketEntry {
                    creation_date: iso8601(b.creation_time_ms),
                    name: b.name,
                })
                .collect(),
        },
        continuation_token: more.then(|| B64.encode(start_after.as_bytes())),
        prefix: ctx.query.get("prefix").map(str::to_string),
    };
    Ok(xml_ok(xml::to_xml("ListAllMyBucketsResult", &out)))
}

pub async fn create_bucket(ctx: &Ctx<'_>, payload: web::Payload) -> S3Result<HttpResponse> {
    crate::router::validate_bucket_name(&ctx.bucket)?;
    let body = ctx.read_small(payload, 64 * 1024).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        xml::parse::<xml::CreateBucketConfiguration>(&body)?;
    }
    let result = ctx
        .gw
        .om
        .create_bucket(CreateBucketRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            owner: ctx.user.clone(),
            replication: 0,
        })
        .await;
    match result {
        Ok(_) => Ok(HttpResponse::Ok()
            .insert_header(("location", format!("/{}", ctx.bucket)))
            .finish()),
        Err(e) if e.status() == OmStatus::BucketAlreadyExists => {
            Err(already_exists(ctx, e).await.with_resource(ctx.resource()))
        }
        Err(e) => Err(S3Error::from_om(e, &ctx.resource())),
    }
}

/// Tells BucketAlreadyOwnedByYou from BucketAlreadyExists by the existing bucket's owner.
async fn already_exists(ctx: &Ctx<'_>, err: OmClientError) -> S3Error {
    let owner = match err.owner() {
        Some(o) => o.to_string(),
        None => ctx
            .gw
            .om
            .info_bucket(&ctx.volume(), &ctx.bucket)
            .await
            .map(|b| b.owner)
            .unwrap_or_default(),
    };
    if owner == ctx.user {
        S3Error::new(S3ErrorCode::BucketAlreadyOwnedByYou)
    } else {
        S3Error::new(S3ErrorCode::BucketAlreadyExists)
    }
}

/// Links resolved: a dangling link is NoSuchBucket, as in every other call on it.
pub async fn head_bucket(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    ctx.gw
        .om
        .resolve_bucket(&ctx.volume(), &ctx.bucket)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(HttpResponse::Ok()
        .insert_header(("x-amz-bucket-region", ctx.gw.config.region.as_str()))
        .finish())
}

pub async fn delete_bucket(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    ctx.gw
        .om
        .delete_bucket(&ctx.volume(), &ctx.bucket)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_location(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    head_bucket(ctx).await?;
    Ok(xml_ok(xml::to_xml(
        "LocationConstraint",
        &xml::Empty::default(),
    )))
}

pub async fn get_versioning(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    head_bucket(ctx).await?;
    Ok(xml_ok(xml::to_xml(
        "VersioningConfiguration",
        &xml::Empty::default(),
    )))
}
