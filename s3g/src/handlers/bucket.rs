//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! GetBucketVersioning.

use actix_web::{HttpResponse, web};
use om_client::OmClientError;
use ozone_proto::om::{CreateBucketRequest, ListBucketsRequest, OmStatus};

use super::{Ctx, iso8601, xml_ok};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::xml;

pub async fn list_buckets(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let mut buckets = Vec::new();
    let mut start_after = String::new();
    loop {
        let page = ctx
            .gw
            .om
            .list_buckets(ListBucketsRequest {
                volume: ctx.volume(),
                prefix: String::new(),
                start_after: start_after.clone(),
                max: 1000,
            })
            .await
            .map_err(|e| S3Error::from_om(e, "/"))?;
        let n = page.buckets.len();
        if let Some(last) = page.buckets.last() {
            start_after = last.name.clone();
        }
        // With security on a user sees only the buckets they own.
        let security = ctx.gw.config.security;
        buckets.extend(
            page.buckets
                .into_iter()
                .filter(|b| !security || b.owner == ctx.user),
        );
        if n < 1000 {
            break;
        }
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
        .insert_header(("x-amz-bucket-region", "us-east-1"))
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
