//! ListObjects (v1) and ListObjectsV2.

use actix_web::HttpResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ozone_proto::om::ListKeysRequest;

use super::{Ctx, iso8601, quoted, url_encode, xml_ok};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::xml;

/// `max-keys`: a non-negative integer; larger than the limit is the limit.
fn max_keys(ctx: &Ctx<'_>) -> S3Result<u32> {
    let limit = ctx.gw.config.max_keys;
    match ctx.query.get("max-keys") {
        None => Ok(limit),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n.min(limit as i64) as u32),
            _ => Err(S3Error::msg(
                S3ErrorCode::InvalidArgument,
                "max-keys must be a non-negative integer",
            )
            .with_resource(ctx.resource())),
        },
    }
}

pub async fn list_objects(ctx: &Ctx<'_>, v2: bool) -> S3Result<HttpResponse> {
    let max = max_keys(ctx)?;
    let prefix = ctx.query.get("prefix").unwrap_or("").to_string();
    let delimiter = ctx.query.get("delimiter").unwrap_or("").to_string();
    let url = match ctx.query.get("encoding-type") {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(S3Error::msg(
                S3ErrorCode::InvalidArgument,
                "Invalid Encoding Method specified in Request",
            ));
        }
    };
    let token = ctx.query.get("continuation-token");
    let start_after = if v2 {
        match token {
            Some(t) => decode_continuation_token(t)?,
            None => ctx.query.get("start-after").unwrap_or("").to_string(),
        }
    } else {
        ctx.query.get("marker").unwrap_or("").to_string()
    };
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };

    let (keys, prefixes, truncated, next) = if max == 0 {
        // Still answers NoSuchBucket for a missing bucket.
        super::bucket::head_bucket(ctx).await?;
        (Vec::new(), Vec::new(), false, String::new())
    } else {
        let page = ctx
            .gw
            .om
            .list_keys(ListKeysRequest {
                volume: ctx.volume(),
                bucket: ctx.bucket.clone(),
                prefix: prefix.clone(),
                start_after: start_after.clone(),
                delimiter: delimiter.clone(),
                max_keys: max,
            })
            .await
            .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
        (
            page.keys,
            page.common_prefixes,
            page.truncated,
            page.next_start_after,
        )
    };

    let fetch_owner = !v2 || ctx.query.get("fetch-owner") == Some("true");
    let out = xml::ListBucketResult {
        xmlns: (),
        name: ctx.bucket.clone(),
        prefix: enc(&prefix),
        continuation_token: token.filter(|_| v2).map(str::to_string),
        start_after: ctx.query.get("start-after").filter(|_| v2).map(enc),
        key_count: v2.then(|| keys.len() + prefixes.len()),
        marker: (!v2).then(|| enc(&start_after)),
        max_keys: max,
        delimiter: (!delimiter.is_empty()).then(|| enc(&delimiter)),
        encoding_type: url.then_some("url"),
        is_truncated: truncated,
        next_continuation_token: (truncated && v2).then(|| B64.encode(next.as_bytes())),
        next_marker: (truncated && !v2).then(|| enc(&next)),
        contents: keys
            .iter()
            .map(|k| xml::ObjectEntry {
                key: enc(&k.key),
                last_modified: iso8601(k.modification_time_ms),
                etag: quoted(&k.etag),
                size: k.size,
                owner: fetch_owner.then(|| xml::Owner::user(&k.owner)),
                storage_class: "STANDARD",
            })
            .collect(),
        common_prefixes: prefixes
            .iter()
            .map(|p| xml::CommonPrefix { prefix: enc(p) })
            .collect(),
    };
    Ok(xml_ok(xml::to_xml("ListBucketResult", &out)))
}

/// The name a `continuation-token` stands for (ListObjectsV2, ListBuckets): the base64 of the
/// last name of the previous page.
pub(super) fn decode_continuation_token(token: &str) -> S3Result<String> {
    B64.decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::msg(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}
