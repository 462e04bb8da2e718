//! Tagging: Get/Put/DeleteObjectTagging, Get/Put/DeleteBucketTagging, and the `x-amz-tagging`
//! header of PutObject / CreateMultipartUpload / CopyObject, with S3's limits (InvalidTag).
//! Tags are stored by OM with the key or bucket record.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use ozone_proto::om::{SetBucketTagsRequest, SetKeyTagsRequest};

use super::{Ctx, xml_ok};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::xml;

/// Most tags of one object.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags of one bucket.
pub const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::msg(S3ErrorCode::InvalidTag, message)
}

/// Checks a tag set against S3's rules: at most `max` tags, no duplicate keys, keys of 1 to
/// 128 characters not starting with `aws:`, values of at most 256.
pub fn check_tags(pairs: Vec<(String, String)>, max: usize) -> S3Result<HashMap<String, String>> {
    if pairs.len() > max {
        return Err(if max == MAX_OBJECT_TAGS {
            invalid("Object tags cannot be greater than 10")
        } else {
            invalid(format!("Bucket tags cannot be greater than {max}"))
        });
    }
    let mut out = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if k.is_empty() {
            return Err(invalid("The TagKey you have provided is invalid"));
        }
        if k.chars().count() > MAX_KEY_CHARS {
            return Err(invalid(format!(
                "The TagKey you have provided is too long, max {MAX_KEY_CHARS}"
            )));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid(format!(
                "The TagValue you have provided is too long, max {MAX_VALUE_CHARS}"
            )));
        }
        if k.starts_with("aws:") {
            return Err(invalid("Your TagKey cannot be prefixed with aws:"));
        }
        if out.insert(k, v).is_some() {
            return Err(invalid("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(out)
}

/// The `x-amz-tagging` header (URL query form `k1=v1&k2=v2`) of a new object; none: no tags.
pub fn tags_from_header(ctx: &Ctx<'_>) -> S3Result<HashMap<String, String>> {
    let Some(raw) = ctx.header("x-amz-tagging") else {
        return Ok(HashMap::new());
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| invalid("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
    };
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    check_tags(pairs, MAX_OBJECT_TAGS).map_err(|e| e.with_resource(ctx.resource()))
}

/// A `<Tagging>` request body, its Content-MD5 checked.
async fn read_tagging(
    ctx: &Ctx<'_>,
    payload: web::Payload,
    max: usize,
) -> S3Result<HashMap<String, String>> {
    let body = ctx.read_small(payload, 64 * 1024).await?;
    let doc: xml::Tagging = ctx.parse_xml(&body)?;
    let pairs = doc
        .tag_set
        .tags
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    check_tags(pairs, max).map_err(|e| e.with_resource(ctx.resource()))
}

/// `<Tagging><TagSet>...</TagSet></Tagging>`, sorted by key.
fn tagging_xml<'a>(tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut sorted: Vec<_> = tags.into_iter().collect();
    sorted.sort();
    let out = xml::Tagging {
        xmlns: (),
        tag_set: xml::TagSet {
            tags: sorted
                .into_iter()
                .map(|(k, v)| xml::Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        },
    };
    xml::to_xml("Tagging", &out)
}

pub async fn get_object_tagging(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let info = ctx.lookup_key().await?;
    Ok(xml_ok(tagging_xml(&info.tags)))
}

async fn set_object_tags(ctx: &Ctx<'_>, tags: HashMap<String, String>) -> S3Result<()> {
    ctx.gw
        .om
        .set_key_tags(SetKeyTagsRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            tags,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(())
}

pub async fn put_object_tagging(ctx: &Ctx<'_>, payload: web::Payload) -> S3Result<HttpResponse> {
    let tags = read_tagging(ctx, payload, MAX_OBJECT_TAGS).await?;
    set_object_tags(ctx, tags).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn delete_object_tagging(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    set_object_tags(ctx, HashMap::new()).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_bucket_tagging(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let info = ctx
        .gw
        .om
        .info_bucket(&ctx.volume(), &ctx.bucket)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    if info.tags.is_empty() {
        return Err(S3Error::new(S3ErrorCode::NoSuchTagSet).with_resource(ctx.resource()));
    }
    Ok(xml_ok(tagging_xml(&info.tags)))
}

async fn set_bucket_tags(ctx: &Ctx<'_>, tags: HashMap<String, String>) -> S3Result<()> {
    ctx.gw
        .om
        .set_bucket_tags(SetBucketTagsRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            tags,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(())
}

pub async fn put_bucket_tagging(ctx: &Ctx<'_>, payload: web::Payload) -> S3Result<HttpResponse> {
    let tags = read_tagging(ctx, payload, MAX_BUCKET_TAGS).await?;
    set_bucket_tags(ctx, tags).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_bucket_tagging(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    set_bucket_tags(ctx, HashMap::new()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits_and_duplicates() {
        assert_eq!(
            check_tags(pairs(&[("a", "1"), ("b", "")]), 10)
                .unwrap()
                .len(),
            2
        );
        let code = |p: Vec<(String, String)>, max| check_tags(p, max).unwrap_err().code;
        assert_eq!(
            code(pairs(&[("a", "1"), ("a", "2")]), 10),
            S3ErrorCode::InvalidTag
        );
        let many: Vec<_> = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(code(many.clone(), MAX_OBJECT_TAGS), S3ErrorCode::InvalidTag);
        assert!(check_tags(many, MAX_BUCKET_TAGS).is_ok());
        let long_key = "k".repeat(129);
        assert_eq!(
            code(pairs(&[(&long_key, "v")]), 10),
            S3ErrorCode::InvalidTag
        );
        let long_value = "v".repeat(257);
        assert_eq!(
            code(pairs(&[("k", &long_value)]), 10),
            S3ErrorCode::InvalidTag
        );
        assert!(check_tags(pairs(&[(&"k".repeat(128), &"v".repeat(256))]), 10).is_ok());
        assert_eq!(code(pairs(&[("aws:x", "v")]), 10), S3ErrorCode::InvalidTag);
        assert_eq!(code(pairs(&[("", "v")]), 10), S3ErrorCode::InvalidTag);
    }

    #[test]
    fn parses_tagging_xml() {
        let t: xml::Tagging = xml::parse(
            br#"<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>b</Key><Value></Value></Tag></TagSet></Tagging>"#,
        )
        .unwrap();
        assert_eq!(t.tag_set.tags.len(), 2);
        assert_eq!(t.tag_set.tags[1].value, "");
        let empty: xml::Tagging = xml::parse(b"<Tagging><TagSet></TagSet></Tagging>").unwrap();
        assert!(empty.tag_set.tags.is_empty());
        assert!(xml::parse::<xml::Tagging>(b"<Tagging><TagSet><Tag><Key>a</Key>").is_err());
        assert!(xml::parse::<xml::Tagging>(b"<Other/>").is_err());
        let out = tagging_xml(&HashMap::from([("b".to_string(), "2".to_string())]));
        assert!(
            out.contains("<Tag><Key>b</Key><Value>2</Value></Tag>"),
            "{out}"
        );
    }
}
