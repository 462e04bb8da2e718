//! [`Preconditions`]: `If-Match`, `If-None-Match`, `If-Modified-Since` and `If-Unmodified-Since`
//! (or their `x-amz-copy-source-if-*` forms), parsed once and evaluated for GET/HEAD, conditional
//! writes (PutObject, CopyObject, CompleteMultipartUpload) and copy sources.

use actix_web::http::header::HeaderMap;

use ozone_proto::om::WriteCondition;

use crate::error::S3ErrorCode;

/// An entity tag as compared: without a weak `W/` prefix and the quotes.
fn bare_etag(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/").trim_matches('"')
}

/// The precondition headers of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    /// Seconds since the Unix epoch; a date that does not parse is ignored, as S3 does.
    pub if_modified_since: Option<u64>,
    pub if_unmodified_since: Option<u64>,
}

/// What the preconditions say about reading an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// `If-Match` / `If-Unmodified-Since` failed (412).
    Failed,
    /// `If-None-Match` / `If-Modified-Since` failed: 304 for GET/HEAD, 412 for a copy source.
    NotModified,
}

impl Preconditions {
    /// The `If-*` headers of GET, HEAD and conditional writes.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::with_prefix(headers, "")
    }

    /// The `x-amz-copy-source-if-*` headers of CopyObject and UploadPartCopy.
    pub fn copy_source(headers: &HeaderMap) -> Self {
        Self::with_prefix(headers, "x-amz-copy-source-")
    }

    fn with_prefix(headers: &HeaderMap, prefix: &str) -> Self {
        let get = |name: &str| {
            headers
                .get(format!("{prefix}{name}"))
                .and_then(|v| v.to_str().ok())
        };
        let date = |name: &str| {
            get(name)
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        Preconditions {
            if_match: get("if-match").map(|v| v.trim().to_string()),
            if_none_match: get("if-none-match").map(|v| v.trim().to_string()),
            if_modified_since: date("if-modified-since"),
            if_unmodified_since: date("if-unmodified-since"),
        }
    }

    /// Evaluates the conditions against an object with `etag`, last modified at `modified_ms`.
    /// As RFC 9110 orders it: `If-Unmodified-Since` counts only without `If-Match`, and
    /// `If-Modified-Since` only without `If-None-Match`.
    pub fn evaluate(&self, etag: &str, modified_ms: u64) -> Verdict {
        let etag = etag.trim_matches('"');
        let matches = |list: &str| {
            list.split(',')
                .map(bare_etag)
                .any(|t| t == "*" || t == etag)
        };
        let modified = modified_ms / 1000;
        match (&self.if_match, self.if_unmodified_since) {
            (Some(list), _) if !matches(list) => return Verdict::Failed,
            (None, Some(t)) if modified > t => return Verdict::Failed,
            _ => {}
        }
        match (&self.if_none_match, self.if_modified_since) {
            (Some(list), _) if matches(list) => Verdict::NotModified,
            (None, Some(t)) if modified <= t => Verdict::NotModified,
            _ => Verdict::Pass,
        }
    }

    /// The condition of a write, for OM to check again when the key commits; `None` when
    /// neither `If-Match` nor `If-None-Match` was sent. Only `If-None-Match: *` is implemented,
    /// as AWS answers.
    pub fn write_condition(&self) -> Result<Option<WriteCondition>, S3ErrorCode> {
        if self.if_match.is_none() && self.if_none_match.is_none() {
            return Ok(None);
        }
        if let Some(v) = &self.if_none_match
            && v != "*"
        {
            return Err(S3ErrorCode::NotImplemented);
        }
        Ok(Some(WriteCondition {
            if_none_match: self.if_none_match.is_some(),
            if_match: self
                .if_match
                .as_deref()
                .map(|m| bare_etag(m).to_string())
                .unwrap_or_default(),
        }))
    }

    /// Checks a conditional write against the current key's ETag (`None`: no key): 412
    /// PreconditionFailed, or NoSuchKey for `If-Match` on a missing key.
    pub fn check_write(&self, current_etag: Option<&str>) -> Result<(), S3ErrorCode> {
        if self.if_none_match.is_some() && current_etag.is_some() {
            return Err(S3ErrorCode::PreconditionFailed);
        }
        if let Some(want) = &self.if_match {
            let want = bare_etag(want);
            match current_etag {
                None => return Err(S3ErrorCode::NoSuchKey),
                Some(etag) if want != "*" && etag.trim_matches('"') != want => {
                    return Err(S3ErrorCode::PreconditionFailed);
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    const T: u64 = 1_700_000_000_000;
    const BEFORE: &str = "Mon, 13 Nov 2023 00:00:00 GMT"; // before T (2023-11-14T22:13:20Z)
    const AFTER: &str = "Wed, 15 Nov 2023 00:00:00 GMT";

    #[test]
    fn get_conditions() {
        let p = |h| Preconditions::from_headers(&headers(h)).evaluate("\"abc\"", T);
        assert_eq!(p(&[]), Verdict::Pass);
        assert_eq!(p(&[("if-match", "\"abc\"")]), Verdict::Pass);
        assert_eq!(p(&[("if-match", "W/\"x\", \"abc\"")]), Verdict::Pass);
        assert_eq!(p(&[("if-match", "\"x\"")]), Verdict::Failed);
        assert_eq!(p(&[("if-unmodified-since", BEFORE)]), Verdict::Failed);
        assert_eq!(p(&[("if-unmodified-since", AFTER)]), Verdict::Pass);
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            p(&[("if-match", "*"), ("if-unmodified-since", BEFORE)]),
            Verdict::Pass
        );
        assert_eq!(p(&[("if-none-match", "\"abc\"")]), Verdict::NotModified);
        assert_eq!(p(&[("if-none-match", "\"x\"")]), Verdict::Pass);
        assert_eq!(p(&[("if-modified-since", AFTER)]), Verdict::NotModified);
        assert_eq!(p(&[("if-modified-since", BEFORE)]), Verdict::Pass);
        assert_eq!(p(&[("if-modified-since", "garbage")]), Verdict::Pass);
        assert_eq!(
            p(&[("if-none-match", "\"x\""), ("if-modified-since", AFTER)]),
            Verdict::Pass
        );
    }

    #[test]
    fn copy_source_conditions() {
        let h = headers(&[
            ("if-match", "\"x\""),
            ("x-amz-copy-source-if-none-match", "\"abc\""),
        ]);
        let p = Preconditions::copy_source(&h);
        assert_eq!(p.if_match, None);
        assert_eq!(p.evaluate("abc", T), Verdict::NotModified);
    }

    #[test]
    fn write_conditions() {
        let p = |h| Preconditions::from_headers(&headers(h));
        assert_eq!(p(&[]).write_condition(), Ok(None));
        assert_eq!(
            p(&[("if-none-match", "\"abc\"")]).write_condition(),
            Err(S3ErrorCode::NotImplemented)
        );
        let star = p(&[("if-none-match", "*")]);
        assert_eq!(
            star.write_condition(),
            Ok(Some(WriteCondition {
                if_none_match: true,
                if_match: String::new()
            }))
        );
        assert_eq!(star.check_write(None), Ok(()));
        assert_eq!(
            star.check_write(Some("abc")),
            Err(S3ErrorCode::PreconditionFailed)
        );
        let m = p(&[("if-match", "W/\"abc\"")]);
        assert_eq!(
            m.write_condition(),
            Ok(Some(WriteCondition {
                if_none_match: false,
                if_match: "abc".to_string()
            }))
        );
        assert_eq!(m.check_write(Some("\"abc\"")), Ok(()));
        assert_eq!(
            m.check_write(Some("x")),
            Err(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(m.check_write(None), Err(S3ErrorCode::NoSuchKey));
    }
}
