//! Helpers of the crate's unit tests.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// A header map of `(lower-case name, value)` pairs; a name given twice gets both values.
#[allow(clippy::unwrap_used)]
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}
