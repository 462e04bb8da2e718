//! Multipart uploads: Create, UploadPart, Complete, Abort, ListParts, ListMultipartUploads.

use actix_web::{HttpResponse, web};
use ozone_proto::om::{
    CompleteMultipartUploadRequest, CompletePart, InitiateMultipartUploadRequest,
    ListMultipartUploadsRequest, ListPartsRequest,
};

use super::object::{metadata_from_headers, write_condition};
use super::{Ctx, iso8601, quoted, url_encode, xml_ok};
use crate::body::Body;
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::object_io::KeyAttrs;
use crate::xml;

pub async fn create(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let metadata = metadata_from_headers(ctx)?;
    let tags = super::tagging::tags_from_header(ctx)?;
    let info = ctx
        .gw
        .om
        .initiate_multipart_upload(InitiateMultipartUploadRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            owner: ctx.user.clone(),
            replication: 0,
            metadata: metadata.into_iter().collect(),
            tags,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    let out = xml::InitiateMultipartUploadResult {
        xmlns: (),
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        upload_id: info.upload_id,
    };
    Ok(xml_ok(xml::to_xml("InitiateMultipartUploadResult", &out)))
}

pub async fn upload_part(
    ctx: &Ctx<'_>,
    payload: web::Payload,
    upload_id: String,
    part_number: u32,
) -> S3Result<HttpResponse> {
    let spec = ctx.body_spec()?;
    let upload = Some((upload_id, part_number));
    let (summary, _) = ctx
        .write(
            upload,
            KeyAttrs::default(),
            Body::new(payload, &spec),
            &spec,
        )
        .await?;
    Ok(super::stored(&summary))
}

pub async fn complete(
    ctx: &Ctx<'_>,
    payload: web::Payload,
    upload_id: String,
) -> S3Result<HttpResponse> {
    let body = ctx.read_small(payload, 1 << 20).await?;
    let req: xml::CompleteMultipartUpload = ctx.parse_xml(&body)?;
    if req.parts.is_empty() {
        return Err(S3Error::msg(
            S3ErrorCode::MalformedXML,
            "You must specify at least one part",
        )
        .with_resource(ctx.resource()));
    }
    let condition = write_condition(ctx).await?;
    let info = ctx
        .gw
        .om
        .complete_multipart_upload(CompleteMultipartUploadRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            upload_id,
            parts: req
                .parts
                .into_iter()
                .map(|p| CompletePart {
                    part_number: p.part_number,
                    etag: p.etag.trim_matches('"').to_string(),
                })
                .collect(),
            condition,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    let out = xml::CompleteMultipartUploadResult {
        xmlns: (),
        location: format!("/{}/{}", ctx.bucket, ctx.key),
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        etag: quoted(&info.etag),
    };
    Ok(xml_ok(xml::to_xml("CompleteMultipartUploadResult", &out)))
}

pub async fn abort(ctx: &Ctx<'_>, upload_id: String) -> S3Result<HttpResponse> {
    ctx.gw
        .om
        .abort_multipart_upload(&ctx.volume(), &ctx.bucket, &ctx.key, &upload_id)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(HttpResponse::NoContent().finish())
}

fn parse_u32(ctx: &Ctx<'_>, name: &str, default: u32) -> S3Result<u32> {
    match ctx.query.get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            S3Error::msg(
                S3ErrorCode::InvalidArgument,
                format!("{name} must be a non-negative integer"),
            )
        }),
    }
}

pub async fn list_parts(ctx: &Ctx<'_>, upload_id: String) -> S3Result<HttpResponse> {
    let max_parts = parse_u32(ctx, "max-parts", 1000)?.min(1000);
    let marker = parse_u32(ctx, "part-number-marker", 0)?;
    let resp = ctx
        .gw
        .om
        .list_parts(ListPartsRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            upload_id: upload_id.clone(),
            part_number_marker: marker,
            max_parts,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    let owner = resp
        .upload
        .as_ref()
        .map(|u| u.owner.clone())
        .unwrap_or_default();
    let out = xml::ListPartsResult {
        xmlns: (),
        bucket: ctx.bucket.clone(),
        key: ctx.key.clone(),
        upload_id,
        initiator: xml::Owner::user(&owner),
        owner: xml::Owner::user(&owner),
        storage_class: "STANDARD",
        part_number_marker: marker,
        next_part_number_marker: resp.next_part_number_marker,
        max_parts,
        is_truncated: resp.truncated,
        parts: resp
            .parts
            .iter()
            .map(|p| xml::PartEntry {
                part_number: p.part_number,
                last_modified: iso8601(p.modification_time_ms),
                etag: quoted(&p.etag),
                size: p.size,
            })
            .collect(),
    };
    Ok(xml_ok(xml::to_xml("ListPartsResult", &out)))
}

pub async fn list_uploads(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let max = parse_u32(ctx, "max-uploads", 1000)?.min(1000);
    let param = |name: &str| ctx.query.get(name).unwrap_or("").to_string();
    let (prefix, delimiter) = (param("prefix"), param("delimiter"));
    let (key_marker, upload_id_marker) = (param("key-marker"), param("upload-id-marker"));
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
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let resp = if max == 0 {
        // Still answers NoSuchBucket for a missing bucket.
        super::bucket::head_bucket(ctx).await?;
        Default::default()
    } else {
        ctx.gw
            .om
            .list_multipart_uploads(ListMultipartUploadsRequest {
                volume: ctx.volume(),
                bucket: ctx.bucket.clone(),
                prefix: prefix.clone(),
                max_uploads: max,
                delimiter: delimiter.clone(),
                key_marker: key_marker.clone(),
                upload_id_marker: if key_marker.is_empty() {
                    String::new()
                } else {
                    upload_id_marker.clone()
                },
            })
            .await
            .map_err(|e| S3Error::from_om(e, &ctx.resource()))?
    };
    let out = xml::ListMultipartUploadsResult {
        xmlns: (),
        bucket: ctx.bucket.clone(),
        key_marker: enc(&key_marker),
        upload_id_marker: upload_id_marker.to_string(),
        next_key_marker: resp.truncated.then(|| enc(&resp.next_key_marker)),
        next_upload_id_marker: resp.truncated.then(|| resp.next_upload_id_marker.clone()),
        delimiter: (!delimiter.is_empty()).then(|| enc(&delimiter)),
        prefix: enc(&prefix),
        max_uploads: max,
        is_truncated: resp.truncated,
        encoding_type: url.then_some("url"),
        uploads: resp
            .uploads
            .iter()
            .map(|u| xml::UploadEntry {
                key: enc(&u.key),
                upload_id: u.upload_id.clone(),
                initiator: xml::Owner::user(&u.owner),
                owner: xml::Owner::user(&u.owner),
                storage_class: "STANDARD",
                initiated: iso8601(u.creation_time_ms),
            })
            .collect(),
        common_prefixes: resp
            .common_prefixes
            .iter()
            .map(|p| xml::CommonPrefix { prefix: enc(p) })
            .collect(),
    };
    Ok(xml_ok(xml::to_xml("ListMultipartUploadsResult", &out)))
}

/// `x-amz-copy-source-range: bytes=first-last` against a source of `size` bytes.
fn copy_range(v: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        S3Error::msg(
            S3ErrorCode::InvalidArgument,
            format!("Range specified is not valid for source object of size: {size}"),
        )
    };
    let (a, b) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let (first, last): (u64, u64) = (
        a.trim().parse().map_err(|_| invalid())?,
        b.trim().parse().map_err(|_| invalid())?,
    );
    if first > last || last >= size {
        return Err(invalid());
    }
    Ok((first, last + 1))
}

/// UploadPartCopy: a part made of (a range of) an existing object, streamed through the gateway.
pub async fn upload_part_copy(
    ctx: &Ctx<'_>,
    upload_id: String,
    part_number: u32,
) -> S3Result<HttpResponse> {
    let (_, _, source) = super::object::copy_source(ctx).await?;
    let (start, end) = match ctx.header("x-amz-copy-source-range") {
        Some(r) => copy_range(r, source.size)?,
        None => (0, source.size),
    };
    let upload = Some((upload_id, part_number));
    let (summary, info) = ctx
        .write_copy(upload, KeyAttrs::default(), &source, start, end)
        .await?;
    let out = xml::CopyResult {
        xmlns: (),
        last_modified: iso8601(info.modification_time_ms),
        etag: quoted(&hex::encode(summary.md5)),
    };
    Ok(xml_ok(xml::to_xml("CopyPartResult", &out)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::copy_range;

    #[test]
    fn copy_ranges() {
        assert_eq!(copy_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(copy_range("bytes=90-99", 100).unwrap(), (90, 100));
        assert!(copy_range("bytes=90-100", 100).is_err());
        assert!(copy_range("bytes=5-1", 100).is_err());
        assert!(copy_range("bytes=-5", 100).is_err());
        assert!(copy_range("0-5", 100).is_err());
    }
}
