//! A minimal AWS Signature Version 4 signer for the security-on cases, written from AWS's
//! documentation (independent of the gateway's verifier): headers `host`, `x-amz-content-sha256`
//! and `x-amz-date` are signed, the payload is `UNSIGNED-PAYLOAD`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `Authorization` and the headers it signs, for `method` on `path_and_query` (percent-encoded
/// as sent) at `host`.
pub fn sign(
    access_key: &str,
    secret: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
) -> Vec<(&'static str, String)> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let amz_date = time::OffsetDateTime::now_utc()
        .format(&fmt)
        .expect("the date formats");
    let date = &amz_date[..8];
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    params.sort_unstable();
    let canonical_query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let payload = "UNSIGNED-PAYLOAD";
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{method}\n{path}\n{}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload}",
        canonical_query.join("&")
    );
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [date, REGION, "s3", "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |k, part| {
            hmac(&k, part)
        });
    let signature = hex::encode(hmac(&key, &string_to_sign));
    vec![
        ("x-amz-date", amz_date.clone()),
        ("x-amz-content-sha256", payload.to_string()),
        (
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, \
                 SignedHeaders={signed_headers}, Signature={signature}"
            ),
        ),
    ]
}
