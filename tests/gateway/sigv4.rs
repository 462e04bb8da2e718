//! A minimal AWS Signature Version 4 signer for the security-on cases, written from AWS's
//! documentation (independent of the gateway's verifier): the header form signs `host`,
//! `x-amz-content-sha256`, `x-amz-date` and the headers a case adds; presigned URLs sign `host`
//! and the headers a case names. [`Opts`] lets a case sign the way a forger or a broken client
//! would (another day, region or service, a payload digest).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// How a request is signed; the default is what a correct client does now.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// `x-amz-content-sha256` (default `UNSIGNED-PAYLOAD`).
    pub payload: Option<String>,
    /// The request's date, seconds from now (e.g. -86400: yesterday).
    pub shift_secs: i64,
    /// The credential scope's date (`yyyyMMdd`), when not the request's own day.
    pub scope_date: Option<String>,
    pub region: Option<String>,
    pub service: Option<String>,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// `A-Za-z0-9-_.~` kept, every other byte `%XX`.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Signed {
    amz_date: String,
    scope: String,
    signed_headers: String,
    signature: String,
}

/// Signs a canonical request built from its parts; `query` pairs are already encoded.
#[allow(clippy::too_many_arguments)]
fn sign_parts(
    secret: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    payload: &str,
    amz_date: &str,
    opts: &Opts,
) -> Signed {
    let date = opts
        .scope_date
        .clone()
        .unwrap_or_else(|| amz_date[..8].to_string());
    let region = opts.region.as_deref().unwrap_or(REGION);
    let service = opts.service.as_deref().unwrap_or("s3");
    let mut query = query.to_vec();
    query.sort();
    let canonical_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{payload}",
        canonical_query.join("&")
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = [date.as_str(), region, service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |k, part| {
            hmac(&k, part)
        });
    Signed {
        amz_date: amz_date.to_string(),
        scope,
        signed_headers,
        signature: hex::encode(hmac(&key, &string_to_sign)),
    }
}

fn amz_date(shift_secs: i64) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(shift_secs))
        .format(&fmt)
        .expect("the date formats")
}

/// `(name, value)` pairs of a raw query string, as sent (already percent-encoded).
fn split_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `Authorization` and the headers it signs, for `method` on `path_and_query` (percent-encoded
/// as sent) at `host`, signing `extra` headers too.
pub fn sign(
    access_key: &str,
    secret: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    extra: &[(String, String)],
    opts: &Opts,
) -> Vec<(String, String)> {
    let amz_date = amz_date(opts.shift_secs);
    let payload = opts.payload.as_deref().unwrap_or(UNSIGNED);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), payload.to_string()),
        ("x-amz-date".to_string(), amz_date.clone()),
    ];
    headers.extend(extra.iter().cloned());
    let s = sign_parts(
        secret,
        method,
        path,
        &split_query(query),
        &headers,
        payload,
        &amz_date,
        opts,
    );
    vec![
        ("x-amz-date".into(), s.amz_date),
        ("x-amz-content-sha256".into(), payload.to_string()),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{}, SignedHeaders={}, Signature={}",
                s.scope, s.signed_headers, s.signature
            ),
        ),
    ]
}

/// A presigned `path_and_query` (valid `expires` seconds) for `method` at `host`, signing
/// `host` and the `signed` headers the request will carry.
#[allow(clippy::too_many_arguments)]
pub fn presign(
    access_key: &str,
    secret: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    signed: &[(String, String)],
    expires: u64,
    opts: &Opts,
) -> String {
    let amz_date = amz_date(opts.shift_secs);
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let date = opts
        .scope_date
        .clone()
        .unwrap_or_else(|| amz_date[..8].to_string());
    let region = opts.region.as_deref().unwrap_or(REGION);
    let service = opts.service.as_deref().unwrap_or("s3");
    let mut headers = vec![("host".to_string(), host.to_string())];
    headers.extend(signed.iter().cloned());
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    let mut params = split_query(query);
    params.extend([
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        (
            "X-Amz-Credential".into(),
            encode(&format!(
                "{access_key}/{date}/{region}/{service}/aws4_request"
            )),
        ),
        ("X-Amz-Date".into(), amz_date.clone()),
        ("X-Amz-Expires".into(), expires.to_string()),
        ("X-Amz-SignedHeaders".into(), encode(&names.join(";"))),
    ]);
    if let Some(p) = &opts.payload {
        params.push(("X-Amz-Content-Sha256".into(), p.clone()));
    }
    let payload = opts.payload.as_deref().unwrap_or(UNSIGNED);
    let s = sign_parts(
        secret, method, path, &params, &headers, payload, &amz_date, opts,
    );
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{path}?{}&X-Amz-Signature={}", query.join("&"), s.signature)
}

/// Hex SHA-256 of `data`, as `x-amz-content-sha256` carries a signed payload's digest.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}
