//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

use std::collections::HashMap;

use actix_web::body::SizedStream;
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use ozone_proto::om::{KeyInfo, OmStatus, WriteCondition};

use super::{Ctx, http_date, quoted, xml_ok};
use crate::body::Body;
use crate::checksum::ChecksumAlgo;
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::object_io::{KeyAttrs, read_object};
use crate::preconditions::{Preconditions, Verdict};
use crate::xml;

/// Stored request headers that GET and HEAD give back.
const STORED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "content-disposition",
    "content-language",
    "expires",
];

/// Most bytes of user metadata (`x-amz-meta-*` names and values) S3 accepts.
const MAX_USER_METADATA: usize = 2048;

/// The metadata of a new object taken from the request headers.
pub fn metadata_from_headers(ctx: &Ctx<'_>) -> S3Result<HashMap<String, String>> {
    let mut meta = HashMap::new();
    let mut user_bytes = 0;
    for (name, value) in ctx.req.headers() {
        let name = name.as_str();
        let Ok(value) = value.to_str() else {
            continue;
        };
        if let Some(user) = name.strip_prefix("x-amz-meta-") {
            user_bytes += user.len() + value.len();
            meta.insert(name.to_string(), value.to_string());
        } else if STORED_HEADERS.contains(&name) {
            meta.insert(name.to_string(), value.to_string());
        } else if name == "content-encoding" {
            let kept: Vec<&str> = value
                .split(',')
                .map(str::trim)
                .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
                .collect();
            if !kept.is_empty() {
                meta.insert(name.to_string(), kept.join(", "));
            }
        }
    }
    if user_bytes > MAX_USER_METADATA {
        return Err(S3Error::new(S3ErrorCode::MetadataTooLarge).with_resource(ctx.resource()));
    }
    Ok(meta)
}

pub async fn put_object(ctx: &Ctx<'_>, payload: web::Payload) -> S3Result<HttpResponse> {
    let spec = ctx.body_spec()?;
    let attrs = KeyAttrs {
        metadata: metadata_from_headers(ctx)?,
        tags: super::tagging::tags_from_header(ctx)?,
        condition: write_condition(ctx).await?,
    };
    let (summary, _) = ctx
        .write(None, attrs, Body::new(payload, &spec), &spec)
        .await?;
    Ok(super::stored(&summary))
}

/// The conditional write a PutObject / CopyObject / CompleteMultipartUpload asks for
/// (`If-None-Match: *`, `If-Match: <etag>`), checked now against the current key (412
/// PreconditionFailed; If-Match on a missing key: 404 NoSuchKey) and handed to OM, which checks
/// it again atomically when the key commits: failing there means a concurrent write got there
/// first (409 ConditionalRequestConflict, see [`S3Error::from_om`]).
pub async fn write_condition(ctx: &Ctx<'_>) -> S3Result<Option<WriteCondition>> {
    let pre = Preconditions::from_headers(ctx.req.headers());
    let Some(condition) = pre
        .write_condition()
        .map_err(|code| S3Error::new(code).with_resource(ctx.resource()))?
    else {
        return Ok(None);
    };
    let current = match ctx
        .gw
        .om
        .lookup_key(&ctx.volume(), &ctx.bucket, &ctx.key)
        .await
    {
        Ok(info) => Some(info),
        Err(e) if e.status() == OmStatus::KeyNotFound => None,
        Err(e) => return Err(S3Error::from_om(e, &ctx.resource())),
    };
    pre.check_write(current.as_ref().map(|i| i.etag.as_str()))
        .map_err(|code| S3Error::new(code).with_resource(ctx.resource()))?;
    Ok(Some(condition))
}

/// Parses a `Range: bytes=...` header against an object of `size` bytes.
/// `Ok(None)`: serve the whole object (no header, or a form S3 ignores).
pub fn parse_range(header: Option<&str>, size: u64) -> S3Result<Option<(u64, u64)>> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || {
        Err(S3Error::new(S3ErrorCode::InvalidRange)
            .with_header("content-range", format!("bytes */{size}")))
    };
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return unsatisfiable();
        }
        return Ok(Some((size.saturating_sub(n), size)));
    }
    let Ok(start) = a.parse::<u64>() else {
        return Ok(None);
    };
    let end = if b.is_empty() {
        size
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e.saturating_add(1).min(size),
            _ => return Ok(None),
        }
    };
    if start >= size {
        return unsatisfiable();
    }
    Ok(Some((start, end)))
}

/// The `response-*` query parameters of GetObject / HeadObject and the headers they set.
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

/// `response-*` overrides are for signed requests only (AWS: 400 InvalidRequest for an
/// anonymous one), so a public object cannot be served under a type or disposition its owner
/// never chose.
fn check_response_overrides(ctx: &Ctx<'_>) -> S3Result<()> {
    if ctx.identity.authenticated || !RESPONSE_OVERRIDES.iter().any(|(p, _)| ctx.query.has(p)) {
        return Ok(());
    }
    Err(S3Error::msg(
        S3ErrorCode::InvalidRequest,
        "Request specific response headers cannot be used for anonymous GET requests.",
    )
    .with_resource(ctx.resource()))
}

fn object_headers(ctx: &Ctx<'_>, resp: &mut HttpResponseBuilder, info: &KeyInfo) {
    resp.insert_header(("etag", quoted(&info.etag)));
    resp.insert_header(("last-modified", http_date(info.modification_time_ms)));
    resp.insert_header(("accept-ranges", "bytes"));
    if !info.metadata.contains_key("content-type") {
        resp.insert_header(("content-type", "binary/octet-stream"));
    }
    for (k, v) in &info.metadata {
        if k.starts_with("x-amz-checksum-") {
            continue;
        }
        resp.insert_header((k.as_str(), v.as_str()));
    }
    if info.parts_count > 0 {
        resp.insert_header(("x-amz-mp-parts-count", info.parts_count.to_string()));
    }
    if !info.tags.is_empty() {
        resp.insert_header(("x-amz-tagging-count", info.tags.len().to_string()));
    }
    for (param, header) in RESPONSE_OVERRIDES {
        if let Some(v) = ctx.query.get(param) {
            resp.insert_header((header, v));
        }
    }
}

pub async fn get_object(ctx: &Ctx<'_>, head: bool) -> S3Result<HttpResponse> {
    check_response_overrides(ctx)?;
    let info = ctx.lookup_key().await?;
    match Preconditions::from_headers(ctx.req.headers())
        .evaluate(&info.etag, info.modification_time_ms)
    {
        Verdict::Pass => {}
        Verdict::Failed => {
            return Err(S3Error::new(S3ErrorCode::PreconditionFailed).with_resource(ctx.resource()));
        }
        Verdict::NotModified => {
            let mut resp = HttpResponse::NotModified();
            resp.insert_header(("etag", quoted(&info.etag)));
            resp.insert_header(("last-modified", http_date(info.modification_time_ms)));
            return Ok(resp.finish());
        }
    }
    let range = match ctx.query.get("partNumber") {
        Some(n) => {
            if ctx.header("range").is_some() {
                return Err(S3Error::msg(
                    S3ErrorCode::InvalidRequest,
                    "Cannot specify both Range header and partNumber query parameter",
                ));
            }
            let n = crate::router::parse_part_number(Some(n))?;
            Some(part_range(&info, n).ok_or_else(|| {
                S3Error::new(S3ErrorCode::InvalidPartNumber).with_resource(ctx.resource())
            })?)
        }
        None => parse_range(ctx.header("range"), info.size)
            .map_err(|e| e.with_resource(ctx.resource()))?,
    };
    let (start, end) = range.unwrap_or((0, info.size));
    let mut resp = if range.is_some() {
        let mut r = HttpResponse::PartialContent();
        r.insert_header((
            "content-range",
            format!("bytes {}-{}/{}", start, end.saturating_sub(1), info.size),
        ));
        r
    } else {
        HttpResponse::Ok()
    };
    object_headers(ctx, &mut resp, &info);
    if range.is_none()
        && ctx
            .header("x-amz-checksum-mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
    {
        for (k, v) in info
            .metadata
            .iter()
            .filter(|(k, _)| k.starts_with("x-amz-checksum-"))
        {
            resp.insert_header((k.as_str(), v.as_str()));
        }
    }
    let len = end - start;
    if head {
        let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
        return Ok(resp.body(SizedStream::new(len, empty)));
    }
    let stream = read_object(&ctx.gw.dn, ctx.gw.scm.clone(), &info, start, end);
    Ok(resp.body(SizedStream::new(len, stream)))
}

pub async fn delete_object(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    ctx.gw
        .om
        .delete_key(&ctx.volume(), &ctx.bucket, &ctx.key)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_objects(ctx: &Ctx<'_>, payload: web::Payload) -> S3Result<HttpResponse> {
    let body = ctx.read_small(payload, 2 << 20).await?;
    let req: xml::Delete = ctx.parse_xml(&body)?;
    if req.objects.is_empty() || req.objects.len() > 1000 {
        return Err(S3Error::new(S3ErrorCode::MalformedXML).with_resource(ctx.resource()));
    }
    let quiet = req.quiet.unwrap_or(false);
    let keys: Vec<String> = req.objects.into_iter().map(|o| o.key).collect();
    let result = ctx
        .gw
        .om
        .delete_keys(&ctx.volume(), &ctx.bucket, keys)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    let mut out = xml::DeleteResult::default();
    for r in result {
        let status = OmStatus::try_from(r.status).unwrap_or(OmStatus::InternalError);
        if status == OmStatus::Ok {
            if !quiet {
                out.entries.push(xml::DeleteEntry::Deleted { key: r.key });
            }
            continue;
        }
        // Each key its own code (AccessDenied, InvalidRequest, ...); what is no fault of the
        // request is InternalError, logged here since it is not the request's error.
        let code = S3ErrorCode::from_om_status(status).unwrap_or(S3ErrorCode::InternalError);
        if code == S3ErrorCode::InternalError {
            tracing::error!(request_id = ctx.request_id, key = %r.key, error = %r.message, "internal error deleting a key");
        }
        out.entries.push(xml::DeleteEntry::Error {
            key: r.key,
            code: code.as_str(),
            message: r.message,
        });
    }
    Ok(xml_ok(xml::to_xml("DeleteResult", &out)))
}

/// CopyObject: streams the source object through the gateway into the destination.
pub async fn copy_object(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let (src_bucket, src_key, info) = copy_source(ctx).await?;
    let replace = match ctx.header("x-amz-metadata-directive").unwrap_or("COPY") {
        "COPY" => false,
        "REPLACE" => true,
        _ => {
            return Err(S3Error::msg(
                S3ErrorCode::InvalidArgument,
                "Unknown metadata directive.",
            ));
        }
    };
    if !replace && src_bucket == ctx.bucket && src_key == ctx.key {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let metadata = if replace {
        metadata_from_headers(ctx)?
    } else {
        info.metadata
            .iter()
            .filter(|(k, _)| !k.starts_with("x-amz-checksum-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let tags = match ctx.header("x-amz-tagging-directive").unwrap_or("COPY") {
        "COPY" => info.tags.clone(),
        "REPLACE" => super::tagging::tags_from_header(ctx)?,
        _ => {
            return Err(S3Error::msg(
                S3ErrorCode::InvalidArgument,
                "Unknown tagging directive.",
            ));
        }
    };
    let attrs = KeyAttrs {
        metadata,
        tags,
        condition: write_condition(ctx).await?,
    };
    let (summary, written) = ctx.write_copy(None, attrs, &info, 0, info.size).await?;
    let out = xml::CopyResult {
        xmlns: (),
        last_modified: super::iso8601(written.modification_time_ms),
        etag: quoted(&hex::encode(summary.md5)),
    };
    Ok(xml_ok(xml::to_xml("CopyObjectResult", &out)))
}

/// Byte range `[start, end)` of part `n` of a key: the blocks written for that part, or the
/// whole object as part 1 of a key that was not uploaded in parts.
pub fn part_range(info: &KeyInfo, n: u32) -> Option<(u64, u64)> {
    if info.parts_count == 0 {
        return (n == 1).then_some((0, info.size));
    }
    let mut blocks = info.locations.iter().filter(|l| l.part_number == n);
    let first = blocks.next()?;
    let end = blocks.next_back().unwrap_or(first);
    Some((first.offset, end.offset + end.length))
}

/// The source of CopyObject / UploadPartCopy (`x-amz-copy-source`), after its
/// `x-amz-copy-source-if-*` preconditions held. Returns the source's bucket, key and info.
pub async fn copy_source(ctx: &Ctx<'_>) -> S3Result<(String, String, KeyInfo)> {
    let raw = ctx.header("x-amz-copy-source").unwrap_or("");
    let (path, version) = raw.split_once('?').unwrap_or((raw, ""));
    if version.starts_with("versionId=") && version != "versionId=null" {
        return Err(S3Error::msg(
            S3ErrorCode::NotImplemented,
            "Object versions are not supported",
        ));
    }
    let path = crate::router::decode_path(path)?;
    let path = path.trim_start_matches('/');
    let Some((bucket, key)) = path
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidArgument,
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        ));
    };
    crate::security::authorize_copy_source(ctx.gw, &ctx.identity, bucket).await?;
    let info = ctx
        .gw
        .om
        .lookup_key(&ctx.volume(), bucket, key)
        .await
        .map_err(|e| S3Error::from_om(e, &format!("/{bucket}/{key}")))?;
    // A copy source that fails any of its conditions is 412, "not modified" included.
    if Preconditions::copy_source(ctx.req.headers()).evaluate(&info.etag, info.modification_time_ms)
        != Verdict::Pass
    {
        return Err(S3Error::new(S3ErrorCode::PreconditionFailed).with_resource(ctx.resource()));
    }
    Ok((bucket.to_string(), key.to_string(), info))
}

/// GetObjectAttributes: the attributes named by `x-amz-object-attributes`.
pub async fn get_attributes(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let info = ctx.lookup_key().await?;
    let wanted: Vec<&str> = ctx
        .header("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    const KNOWN: [&str; 5] = [
        "ETag",
        "Checksum",
        "ObjectParts",
        "StorageClass",
        "ObjectSize",
    ];
    if wanted.is_empty() || wanted.iter().any(|w| !KNOWN.contains(w)) {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidArgument,
            "Invalid attribute name specified.",
        ));
    }
    let has = |name: &str| wanted.contains(&name);
    let mut out = xml::GetObjectAttributesResponse::default();
    if has("ETag") {
        out.etag = Some(info.etag.trim_matches('"').to_string());
    }
    if has("Checksum") {
        let mut sums = xml::Checksums::default();
        let mut any = false;
        for algo in crate::checksum::ChecksumAlgo::ALL {
            let Some(v) = info.metadata.get(algo.header()) else {
                continue;
            };
            any = true;
            let slot = match algo {
                ChecksumAlgo::Crc32 => &mut sums.crc32,
                ChecksumAlgo::Crc32c => &mut sums.crc32c,
                ChecksumAlgo::Crc64Nvme => &mut sums.crc64nvme,
                ChecksumAlgo::Sha1 => &mut sums.sha1,
                ChecksumAlgo::Sha256 => &mut sums.sha256,
            };
            *slot = Some(v.clone());
        }
        out.checksum = any.then_some(sums);
    }
    if has("ObjectParts") && info.parts_count > 0 {
        let max: u32 = ctx
            .header("x-amz-max-parts")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let marker: u32 = ctx
            .header("x-amz-part-number-marker")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let parts: Vec<(u32, u64)> = (marker.saturating_add(1)..=info.parts_count)
            .filter_map(|n| part_range(&info, n).map(|(a, b)| (n, b - a)))
            .collect();
        let shown = &parts[..parts.len().min(max as usize)];
        out.object_parts = Some(xml::ObjectParts {
            parts_count: info.parts_count,
            part_number_marker: marker,
            next_part_number_marker: shown.last().map(|p| p.0).unwrap_or(marker),
            max_parts: max,
            is_truncated: shown.len() < parts.len(),
            parts: shown
                .iter()
                .map(|&(part_number, size)| xml::ObjectPart { part_number, size })
                .collect(),
        });
    }
    if has("StorageClass") {
        out.storage_class = Some("STANDARD");
    }
    if has("ObjectSize") {
        out.object_size = Some(info.size);
    }
    Ok(HttpResponse::Ok()
        .content_type("application/xml")
        .insert_header(("last-modified", http_date(info.modification_time_ms)))
        .body(xml::to_xml("GetObjectAttributesResponse", &out)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some((0, 10)));
        assert_eq!(
            parse_range(Some("bytes=90-"), 100).unwrap(),
            Some((90, 100))
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100).unwrap(),
            Some((90, 100))
        );
        assert_eq!(
            parse_range(Some("bytes=-1000"), 100).unwrap(),
            Some((0, 100))
        );
        assert_eq!(
            parse_range(Some("bytes=50-5000"), 100).unwrap(),
            Some((50, 100))
        );
        assert!(parse_range(Some("bytes=100-"), 100).is_err());
        assert!(parse_range(Some("bytes=200-300"), 100).is_err());
        assert_eq!(parse_range(Some("bytes=5-1"), 100).unwrap(), None);
        assert_eq!(parse_range(Some("items=0-1"), 100).unwrap(), None);
        assert_eq!(parse_range(None, 100).unwrap(), None);
        assert_eq!(
            parse_range(Some("bytes=0-18446744073709551615"), 100).unwrap(),
            Some((0, 100))
        );
    }
}
