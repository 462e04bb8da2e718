//! Request-line parsing (path, query, routing, bucket names, Range, the SigV4 Authorization
//! header and presigned query, the canonical request) never panics, and a parsed range always
//! lies inside the object.
#![no_main]
use actix_web::http::Method;
use libfuzzer_sys::fuzz_target;
use ozone_s3g::router::{Endpoint, Query, decode_path, validate_bucket_name};

fuzz_target!(|input: (u8, u64, bool, &str, &str, &str)| {
    let (m, size, copy, path, query, range) = input;
    let method = [Method::GET, Method::PUT, Method::POST, Method::DELETE, Method::HEAD][m as usize % 5].clone();
    if let Ok(q) = Query::parse(query) {
        let (b, k) = path.split_once('/').unwrap_or((path, ""));
        if let (Ok(b), Ok(k)) = (decode_path(b), decode_path(k)) {
            let _ = validate_bucket_name(&b);
            let bucket = (!b.is_empty()).then_some(b.as_str());
            let key = (!k.is_empty()).then_some(k.as_str());
            let _ = Endpoint::parse(&method, bucket, key, &q, copy);
        }
        if let Ok(sig) = ozone_s3g::sigv4::parse_presigned(&q) {
            let _ = sig.scope();
        }
        let headers = actix_web::http::header::HeaderMap::new();
        let signed = vec!["host".to_string(), range.to_ascii_lowercase()];
        let creq = ozone_s3g::sigv4::canonical_request(method.as_str(), path, &q, &headers, &signed, range);
        let _ = ozone_s3g::sigv4::string_to_sign(range, path, &creq);
    }
    if let Ok(sig) = ozone_s3g::sigv4::parse_authorization(range, path) {
        assert!(!sig.access_key.is_empty() && sig.date.len() == 8);
        let _ = ozone_s3g::sigv4::parse_amz_date(&sig.amz_date);
    }
    if let Ok(Some((start, end))) = ozone_s3g::handlers::parse_range(Some(range), size) {
        assert!(start < end && end <= size, "{range} {size} -> {start}..{end}");
    }
});
