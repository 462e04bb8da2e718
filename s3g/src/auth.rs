//! Who is asking, with `ozone.security.enabled=false`: any access key is accepted and names the
//! user; signatures are not checked. A request without credentials is served as the user
//! `anonymous`. With security on, the `security` module authenticates instead.

use actix_web::HttpRequest;

use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::router::Query;

/// The access key of a SigV4 request (header or presigned query).
pub fn access_key(req: &HttpRequest, query: &Query) -> S3Result<String> {
    if let Some(auth) = req.headers().get("authorization") {
        let auth = auth
            .to_str()
            .map_err(|_| S3Error::new(S3ErrorCode::AccessDenied))?;
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") {
            let credential = rest
                .split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix("Credential="))
                .ok_or_else(|| {
                    S3Error::msg(
                        S3ErrorCode::InvalidRequest,
                        "Authorization header has no Credential",
                    )
                })?;
            return first_segment(credential);
        }
        if let Some(rest) = auth.strip_prefix("AWS ") {
            // Signature V2: the access key is before the colon. Accepted without verification
            // while security is off.
            let key = rest.split(':').next().unwrap_or("").trim();
            return non_empty(key);
        }
        return Err(S3Error::msg(
            S3ErrorCode::InvalidRequest,
            "Unsupported Authorization header",
        ));
    }
    if let Some(credential) = query.get("X-Amz-Credential") {
        check_presigned_expiry(query)?;
        return first_segment(credential);
    }
    if let Some(key) = query.get("AWSAccessKeyId") {
        // Signature V2 presigned URL: `Expires` is an absolute Unix time.
        let expires: i64 = query
            .get("Expires")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| {
                S3Error::msg(S3ErrorCode::AccessDenied, "Expires is missing or invalid")
            })?;
        if time::OffsetDateTime::now_utc().unix_timestamp() > expires {
            return Err(S3Error::msg(
                S3ErrorCode::AccessDenied,
                "Request has expired",
            ));
        }
        return non_empty(key);
    }
    Ok("anonymous".to_string())
}

/// Whether the request carries credentials of any form (header, presigned V4 or V2 query).
pub fn has_credentials(req: &HttpRequest, query: &Query) -> bool {
    req.headers().contains_key("authorization")
        || query.has("X-Amz-Credential")
        || query.has("AWSAccessKeyId")
}

fn first_segment(credential: &str) -> S3Result<String> {
    non_empty(credential.split('/').next().unwrap_or(""))
}

fn non_empty(key: &str) -> S3Result<String> {
    if key.is_empty() {
        return Err(S3Error::msg(S3ErrorCode::AccessDenied, "empty access key"));
    }
    Ok(key.to_string())
}

/// Longest validity of a presigned URL (7 days), as AWS allows.
const MAX_PRESIGNED_EXPIRY: u64 = 7 * 24 * 3600;

/// A presigned URL is valid from `X-Amz-Date` for `X-Amz-Expires` seconds.
pub(crate) fn check_presigned_expiry(query: &Query) -> S3Result<()> {
    let bad = |m: &str| {
        Err(S3Error::msg(
            S3ErrorCode::AuthorizationQueryParametersError,
            m,
        ))
    };
    let Some(date) = query.get("X-Amz-Date") else {
        return bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    };
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let Ok(signed) = time::PrimitiveDateTime::parse(date, &fmt) else {
        return bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    };
    let expires: u64 = match query.get("X-Amz-Expires").map(str::parse) {
        Some(Ok(n)) if (1..=MAX_PRESIGNED_EXPIRY).contains(&n) => n,
        Some(Ok(_)) => {
            return bad("X-Amz-Expires must be less than a week (in seconds) that is 604800");
        }
        _ => return bad("X-Amz-Expires should be a number"),
    };
    let signed = signed.assume_utc().unix_timestamp();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if now > signed + expires as i64 {
        return Err(S3Error::msg(
            S3ErrorCode::AccessDenied,
            "Request has expired",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(date: &str, expires: &str) -> Query {
        Query::parse(&format!("X-Amz-Date={date}&X-Amz-Expires={expires}")).unwrap()
    }

    #[test]
    fn presigned_expiry() {
        let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let now = time::OffsetDateTime::now_utc().format(&fmt).unwrap();
        check_presigned_expiry(&q(&now, "60")).unwrap();
        let err = check_presigned_expiry(&q("20200101T000000Z", "60")).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::AccessDenied);
        let err = check_presigned_expiry(&q(&now, "604801")).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::AuthorizationQueryParametersError);
        let err = check_presigned_expiry(&q("yesterday", "60")).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::AuthorizationQueryParametersError);
    }
}
