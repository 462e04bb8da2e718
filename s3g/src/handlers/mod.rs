//! Thin S3 handlers: read headers and query, call OM / object I/O, write headers and XML.

mod acl;
mod bucket;
mod list;
mod multipart;
mod object;
mod tagging;

use actix_web::{HttpRequest, HttpResponse, web};

pub use object::parse_range;

use ozone_proto::om::KeyInfo;

use crate::body::{Body, BodySpec, BodySummary};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::gateway::Gateway;
use crate::object_io::{KeyAttrs, WriteTarget, read_object, write_object};
use crate::router::{Endpoint, Query};

/// One request's context after routing and authentication.
pub struct Ctx<'a> {
    pub gw: &'a Gateway,
    pub req: &'a HttpRequest,
    pub query: &'a Query,
    /// The id the response carries (`x-amz-request-id`), for logs.
    pub request_id: &'a str,
    pub user: String,
    pub identity: crate::security::Identity,
    pub bucket: String,
    pub key: String,
}

impl Ctx<'_> {
    pub fn volume(&self) -> String {
        self.gw.config.volume.clone()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// Streams `body` into this request's key, or into part `upload` of it.
    pub async fn write<S, E>(
        &self,
        upload: Option<(String, u32)>,
        attrs: impl Into<KeyAttrs>,
        body: Body<S>,
        spec: &BodySpec,
    ) -> S3Result<(BodySummary, KeyInfo)>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let target = WriteTarget {
            bucket: &self.bucket,
            key: &self.key,
            owner: &self.user,
            upload,
            attrs: attrs.into(),
        };
        write_object(self.gw, target, body, spec)
            .await
            .map_err(|e| e.with_resource(self.resource()))
    }

    /// Copies bytes `[start, end)` of `source` into this request's key (or part `upload`).
    pub async fn write_copy(
        &self,
        upload: Option<(String, u32)>,
        attrs: impl Into<KeyAttrs>,
        source: &KeyInfo,
        start: u64,
        end: u64,
    ) -> S3Result<(BodySummary, KeyInfo)> {
        let spec = BodySpec {
            decoded_length: Some(end - start),
            ..BodySpec::default()
        };
        let stream = Box::pin(read_object(
            &self.gw.dn,
            self.gw.scm.clone(),
            source,
            start,
            end,
        ));
        self.write(upload, attrs, Body::new(stream, &spec), &spec)
            .await
    }

    /// What the request headers say about its body, with the chunk signature check of a signed
    /// streaming upload.
    pub fn body_spec(&self) -> S3Result<BodySpec> {
        let mut spec = BodySpec::from_headers(self.req.headers())
            .map_err(|e| e.with_resource(self.resource()))?;
        spec.chunk_signer = self.identity.chunk_signer.clone();
        self.signed_payload(&mut spec)?;
        Ok(spec)
    }

    /// The body must hash to the digest the signature covers, when it covers one (it is the
    /// header's with header authentication, a presigned URL's `X-Amz-Content-Sha256`).
    fn signed_payload(&self, spec: &mut BodySpec) -> S3Result<()> {
        match (spec.content_sha256, self.identity.payload_sha256) {
            (Some(header), Some(signed)) if header != signed => Err(S3Error::msg(
                S3ErrorCode::XAmzContentSHA256Mismatch,
                "x-amz-content-sha256 differs from the payload hash the request was signed with",
            )
            .with_resource(self.resource())),
            (None, Some(signed)) => {
                spec.content_sha256 = Some(signed);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The request's key as OM has it (NoSuchKey and the like as S3 errors).
    pub async fn lookup_key(&self) -> S3Result<KeyInfo> {
        self.gw
            .om
            .lookup_key(&self.volume(), &self.bucket, &self.key)
            .await
            .map_err(|e| S3Error::from_om(e, &self.resource()))
    }

    /// Parses a request's XML body (MalformedXML naming the request's resource).
    pub fn parse_xml<T: for<'de> serde::Deserialize<'de>>(&self, body: &[u8]) -> S3Result<T> {
        crate::xml::parse(body).map_err(|e| S3Error::from(e).with_resource(self.resource()))
    }

    /// Reads a small request body (XML) whole. It must match its Content-MD5 (BadDigest) and,
    /// when `x-amz-content-sha256` (or the signature) carries a digest, that digest.
    pub async fn read_small(&self, payload: web::Payload, limit: usize) -> S3Result<bytes::Bytes> {
        let body = crate::body::read_small(payload, limit).await?;
        let mut spec = BodySpec::from_headers(self.req.headers())
            .map_err(|e| e.with_resource(self.resource()))?;
        self.signed_payload(&mut spec)?;
        if let Some(expected) = spec.content_md5 {
            let got: [u8; 16] =
                md5::Digest::finalize(<md5::Md5 as md5::Digest>::new_with_prefix(&body)).into();
            if got != expected {
                return Err(S3Error::new(S3ErrorCode::BadDigest).with_resource(self.resource()));
            }
        }
        if let Some(expected) = spec.content_sha256
            && <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&body)) != expected
        {
            return Err(
                S3Error::new(S3ErrorCode::XAmzContentSHA256Mismatch).with_resource(self.resource())
            );
        }
        Ok(body)
    }

    /// `/bucket` or `/bucket/key`, for error `<Resource>`.
    pub fn resource(&self) -> String {
        if self.key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{}", self.bucket, self.key)
        }
    }
}

pub async fn handle(
    ctx: Ctx<'_>,
    endpoint: Endpoint,
    payload: web::Payload,
) -> S3Result<HttpResponse> {
    if !ctx.bucket.is_empty() && endpoint != Endpoint::CreateBucket {
        // Names that cannot exist are answered as missing buckets, as AWS does.
        if crate::router::validate_bucket_name(&ctx.bucket).is_err() {
            return Err(S3Error::new(S3ErrorCode::NoSuchBucket).with_resource(ctx.resource()));
        }
    }
    if ctx.key.len() > 1024 {
        return Err(S3Error::new(S3ErrorCode::KeyTooLongError).with_resource(ctx.resource()));
    }
    match endpoint {
        Endpoint::Browser => Ok(crate::browser::page(
            ctx.gw.config.security,
            &ctx.gw.config.region,
        )),
        Endpoint::ListBuckets => bucket::list_buckets(&ctx).await,
        Endpoint::CreateBucket => bucket::create_bucket(&ctx, payload).await,
        Endpoint::HeadBucket => bucket::head_bucket(&ctx).await,
        Endpoint::DeleteBucket => bucket::delete_bucket(&ctx).await,
        Endpoint::GetBucketLocation => bucket::get_location(&ctx).await,
        Endpoint::GetBucketVersioning => bucket::get_versioning(&ctx).await,
        Endpoint::GetBucketAcl => acl::get_bucket_acl(&ctx).await,
        Endpoint::PutBucketAcl => acl::put_bucket_acl(&ctx, payload).await,
        Endpoint::GetObjectAcl => acl::get_object_acl(&ctx).await,
        Endpoint::ListObjects { v2 } => list::list_objects(&ctx, v2).await,
        Endpoint::DeleteObjects => object::delete_objects(&ctx, payload).await,
        Endpoint::ListMultipartUploads => multipart::list_uploads(&ctx).await,
        Endpoint::PutObject => object::put_object(&ctx, payload).await,
        Endpoint::CopyObject => object::copy_object(&ctx).await,
        Endpoint::GetObject => object::get_object(&ctx, false).await,
        Endpoint::HeadObject => object::get_object(&ctx, true).await,
        Endpoint::DeleteObject => object::delete_object(&ctx).await,
        Endpoint::CreateMultipartUpload => multipart::create(&ctx).await,
        Endpoint::UploadPart {
            upload_id,
            part_number,
        } => multipart::upload_part(&ctx, payload, upload_id, part_number).await,
        Endpoint::UploadPartCopy {
            upload_id,
            part_number,
        } => multipart::upload_part_copy(&ctx, upload_id, part_number).await,
        Endpoint::GetObjectAttributes => object::get_attributes(&ctx).await,
        Endpoint::CompleteMultipartUpload { upload_id } => {
            multipart::complete(&ctx, payload, upload_id).await
        }
        Endpoint::AbortMultipartUpload { upload_id } => multipart::abort(&ctx, upload_id).await,
        Endpoint::ListParts { upload_id } => multipart::list_parts(&ctx, upload_id).await,
        Endpoint::GetBucketTagging => tagging::get_bucket_tagging(&ctx).await,
        Endpoint::PutBucketTagging => tagging::put_bucket_tagging(&ctx, payload).await,
        Endpoint::DeleteBucketTagging => tagging::delete_bucket_tagging(&ctx).await,
        Endpoint::GetObjectTagging => tagging::get_object_tagging(&ctx).await,
        Endpoint::PutObjectTagging => tagging::put_object_tagging(&ctx, payload).await,
        Endpoint::DeleteObjectTagging => tagging::delete_object_tagging(&ctx).await,
    }
}

/// The answer to a stored body (PutObject, UploadPart): its ETag and verified checksum.
pub fn stored(summary: &BodySummary) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    resp.insert_header(("etag", quoted(&hex::encode(summary.md5))));
    if let Some((algo, value)) = &summary.checksum {
        resp.insert_header((algo.header(), value.as_str()));
    }
    resp.finish()
}

/// An XML 200 response.
pub fn xml_ok(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xml")
        .body(body)
}

/// ISO 8601 with milliseconds, as S3 XML carries timestamps.
pub fn iso8601(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// RFC 1123 date for `Last-Modified`.
pub fn http_date(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// `"etag"` as headers and XML carry it.
pub fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// Percent-encodes keys for `encoding-type=url` listings.
pub fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}
