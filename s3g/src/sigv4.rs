//! AWS Signature Version 4 on the gateway side: parsing the `Authorization` header and the
//! presigned query, building the canonical request and the string to sign, and checking the
//! chunk signatures of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` bodies. The seed signature itself
//! is checked by OM, which holds the secrets (see `om::security`).

use actix_web::http::header::HeaderMap;
use ozone_common::sigv4;
use sha2::{Digest, Sha256};

use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::router::Query;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Largest clock difference accepted between a request's date and ours.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What a SigV4 request says about its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigV4Request {
    pub access_key: String,
    /// Credential scope parts.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date` (yyyyMMdd'T'HHmmss'Z'), from the header or the query.
    pub amz_date: String,
    pub presigned: bool,
}

impl SigV4Request {
    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

fn bad_auth(message: &str) -> S3Error {
    S3Error::msg(S3ErrorCode::AuthorizationHeaderMalformed, message)
}

/// Splits `AK/date/region/service/aws4_request`.
fn parse_credential(credential: &str) -> Option<(String, String, String, String)> {
    let mut parts = credential.rsplitn(5, '/');
    let terminator = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let date = parts.next()?;
    let access_key = parts.next()?;
    if terminator != "aws4_request"
        || access_key.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((
        access_key.to_string(),
        date.to_string(),
        region.to_string(),
        service.to_string(),
    ))
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`; `amz_date` is
/// the request's `x-amz-date` (or `Date`) header.
pub fn parse_authorization(header: &str, amz_date: &str) -> S3Result<SigV4Request> {
    let rest = header
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| bad_auth("the authorization header must use AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(bad_auth(
            "the authorization header needs Credential, SignedHeaders and Signature",
        ));
    };
    let (access_key, date, region, service) =
        parse_credential(credential).ok_or_else(|| bad_auth("the Credential is malformed"))?;
    Ok(SigV4Request {
        access_key,
        date,
        region,
        service,
        signed_headers: split_signed_headers(signed),
        signature: signature.to_ascii_lowercase(),
        amz_date: amz_date.to_string(),
        presigned: false,
    })
}

fn split_signed_headers(s: &str) -> Vec<String> {
    s.split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect()
}

/// Parses the `X-Amz-*` parameters of a presigned URL.
pub fn parse_presigned(query: &Query) -> S3Result<SigV4Request> {
    let bad = |m: &str| S3Error::msg(S3ErrorCode::AuthorizationQueryParametersError, m);
    if query.get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(bad("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
    }
    let credential = query
        .get("X-Amz-Credential")
        .ok_or_else(|| bad("X-Amz-Credential is missing"))?;
    let (access_key, date, region, service) = parse_credential(credential)
        .ok_or_else(|| bad("Error parsing the X-Amz-Credential parameter"))?;
    let signed = query
        .get("X-Amz-SignedHeaders")
        .ok_or_else(|| bad("X-Amz-SignedHeaders is missing"))?;
    let signature = query
        .get("X-Amz-Signature")
        .ok_or_else(|| bad("X-Amz-Signature is missing"))?;
    Ok(SigV4Request {
        access_key,
        date,
        region,
        service,
        signed_headers: split_signed_headers(signed),
        signature: signature.to_ascii_lowercase(),
        amz_date: query.get("X-Amz-Date").unwrap_or("").to_string(),
        presigned: true,
    })
}

/// The form of `x-amz-date`: `yyyyMMdd'T'HHmmss'Z'`.
const AMZ_DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Seconds since the epoch of a `yyyyMMdd'T'HHmmss'Z'` date.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    time::PrimitiveDateTime::parse(s, AMZ_DATE)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// URI-encodes as SigV4 wants: every byte but `A-Za-z0-9-_.~` (and `/` when `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical request. `raw_path` is the request path as sent (percent-encoded); a
/// presigned URL's `X-Amz-Signature` is left out of the query.
pub fn canonical_request(
    method: &str,
    raw_path: &str,
    query: &Query,
    headers: &HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
) -> String {
    let signed: Vec<(&str, Vec<String>)> = signed_headers
        .iter()
        .map(|name| {
            let values = headers
                .get_all(name.as_str())
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (name.as_str(), values)
        })
        .collect();
    canonical_request_of(method, raw_path, &query.0, &signed, payload_hash)
}

/// The canonical request from its parts: `signed` holds each signed header's lower-case name
/// (in signing order) with its values. Shared by the gateway's check and the client signer.
fn canonical_request_of(
    method: &str,
    raw_path: &str,
    query: &[(String, String)],
    signed: &[(&str, Vec<String>)],
    payload_hash: &str,
) -> String {
    let path = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let uri = if path.is_empty() {
        "/".to_string()
    } else {
        uri_encode(&path, true)
    };
    let mut params: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for (name, values) in signed {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let names: Vec<&str> = signed.iter().map(|(name, _)| *name).collect();
    format!(
        "{method}\n{uri}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        names.join(";")
    )
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `AWS4-HMAC-SHA256\n<date>\n<scope>\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

/// Checks the chain of chunk signatures of a signed streaming upload, seeded by the request's
/// signature, with the day-scoped signing key OM answered.
#[derive(Clone, Debug)]
pub struct ChunkSigner {
    pub key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
    /// The previous signature (the request's for the first chunk).
    pub previous: String,
}

impl ChunkSigner {
    /// The signature chunk data hashing to `data_sha256` must carry; advances the chain.
    pub fn expect(&self, data_sha256: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(data_sha256)
        );
        sigv4::sign(&self.key, &sts)
    }

    /// Checks one chunk's signature; true and the chain advances when it matches.
    pub fn verify(&mut self, data_sha256: &[u8], signature: &str) -> bool {
        let expected = self.expect(data_sha256);
        if sigv4::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            self.previous = expected;
            true
        } else {
            false
        }
    }

    /// Checks the trailer signature of a `...-PAYLOAD-TRAILER` body (`trailers` as
    /// `name:value\n` lines).
    pub fn verify_trailer(&self, trailers: &str, signature: &str) -> bool {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex_sha256(trailers.as_bytes())
        );
        let expected = sigv4::sign(&self.key, &sts);
        sigv4::constant_time_eq(expected.as_bytes(), signature.as_bytes())
    }
}

/// `yyyyMMdd'T'HHmmss'Z'` of a time, as `X-Amz-Date` carries it.
pub fn format_amz_date(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(AMZ_DATE)
        .expect("a UTC date formats as yyyyMMddTHHmmssZ")
}

/// Signs requests as an S3 client does (`ozone freon` against a cluster with security on),
/// with the canonicalization the gateway checks against.
#[derive(Clone, Debug)]
pub struct ClientSigner {
    pub access_key: String,
    pub secret: String,
    pub region: String,
}

impl ClientSigner {
    /// The `Authorization` header value of an `s3` request sent at `amz_date`
    /// (`yyyyMMdd'T'HHmmss'Z'`) with a payload of hash `payload_hash`: the request must carry
    /// them as `x-amz-date` and `x-amz-content-sha256`, which are signed with every header of
    /// `headers` (lower-case names; `host` among them).
    pub fn authorization(
        &self,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
        headers: &[(&str, &str)],
        payload_hash: &str,
        amz_date: &str,
    ) -> String {
        let mut signed: Vec<(&str, Vec<String>)> = headers
            .iter()
            .chain(&[
                ("x-amz-content-sha256", payload_hash),
                ("x-amz-date", amz_date),
            ])
            .map(|(name, value)| (*name, vec![value.to_string()]))
            .collect();
        signed.sort_by(|a, b| a.0.cmp(b.0));
        let creq = canonical_request_of(method, raw_path, query, &signed, payload_hash);
        let date = amz_date.get(..8).unwrap_or(amz_date);
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let sts = string_to_sign(amz_date, &scope, &creq);
        let key = sigv4::signing_key(&self.secret, date, &self.region, "s3");
        let names: Vec<&str> = signed.iter().map(|(name, _)| *name).collect();
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
            self.access_key,
            names.join(";"),
            sigv4::sign(&key, &sts)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// AWS's example "GET Object" (Signature Calculations for the Authorization Header:
    /// Transferring Payload in a Single Chunk).
    #[test]
    fn aws_get_object_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let auth = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            "20130524T000000Z",
        )
        .unwrap();
        assert_eq!(auth.access_key, "AKIAIOSFODNN7EXAMPLE");
        let creq = canonical_request(
            "GET",
            "/test.txt",
            &Query::default(),
            &h,
            &auth.signed_headers,
            EMPTY_SHA256,
        );
        assert_eq!(
            creq,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let sts = string_to_sign(&auth.amz_date, &auth.scope(), &creq);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let key = sigv4::signing_key(SECRET, "20130524", "us-east-1", "s3");
        assert_eq!(sigv4::sign(&key, &sts), auth.signature);
    }

    /// The client signer reproduces AWS's "GET Object" example, and what it signs passes the
    /// gateway's own parsing and check.
    #[test]
    fn client_signer_signs_the_aws_example() {
        let signer = ClientSigner {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: SECRET.into(),
            region: "us-east-1".into(),
        };
        let pairs = [
            ("x-amz-date", "20130524T000000Z"),
            ("range", "bytes=0-9"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ];
        let auth = signer.authorization(
            "GET",
            "/test.txt",
            &[],
            &pairs[1..3],
            EMPTY_SHA256,
            "20130524T000000Z",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let parsed = parse_authorization(&auth, "20130524T000000Z").unwrap();
        let creq = canonical_request(
            "GET",
            "/test.txt",
            &Query::default(),
            &headers(&pairs),
            &parsed.signed_headers,
            EMPTY_SHA256,
        );
        let sts = string_to_sign(&parsed.amz_date, &parsed.scope(), &creq);
        let key = sigv4::signing_key(SECRET, &parsed.date, &parsed.region, &parsed.service);
        assert_eq!(sigv4::sign(&key, &sts), parsed.signature);
    }

    #[test]
    fn amz_dates_format_and_parse_back() {
        let t = time::macros::datetime!(2013-05-24 00:00:00 UTC);
        assert_eq!(format_amz_date(t), "20130524T000000Z");
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(format_amz_date(t), "20231114T221320Z");
        assert_eq!(parse_amz_date(&format_amz_date(t)), Some(1_700_000_000));
    }

    /// AWS's example "GET Bucket Lifecycle" and "Get Bucket (List Objects)": query strings.
    #[test]
    fn aws_list_objects_example() {
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let signed: Vec<String> = ["host", "x-amz-content-sha256", "x-amz-date"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let q = Query::parse("max-keys=2&prefix=J").unwrap();
        let creq = canonical_request("GET", "/", &q, &h, &signed, EMPTY_SHA256);
        let sts = string_to_sign(
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            &creq,
        );
        let key = sigv4::signing_key(SECRET, "20130524", "us-east-1", "s3");
        assert_eq!(
            sigv4::sign(&key, &sts),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        let q = Query::parse("lifecycle").unwrap();
        let creq = canonical_request("GET", "/", &q, &h, &signed, EMPTY_SHA256);
        let sts = string_to_sign(
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            &creq,
        );
        assert_eq!(
            sigv4::sign(&key, &sts),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    /// AWS's example of a presigned URL (Authenticating Requests: Using Query Parameters).
    #[test]
    fn aws_presigned_example() {
        let raw = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let q = Query::parse(raw).unwrap();
        let auth = parse_presigned(&q).unwrap();
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let creq = canonical_request(
            "GET",
            "/test.txt",
            &q,
            &h,
            &auth.signed_headers,
            "UNSIGNED-PAYLOAD",
        );
        let sts = string_to_sign(&auth.amz_date, &auth.scope(), &creq);
        let key = sigv4::signing_key(SECRET, &auth.date, &auth.region, &auth.service);
        assert_eq!(sigv4::sign(&key, &sts), auth.signature);
    }

    /// AWS's example of a signed streaming upload (Transferring Payload in Multiple Chunks):
    /// the seed signature and the first chunk (65536 bytes of 'a').
    #[test]
    fn aws_streaming_example() {
        let key = sigv4::signing_key(SECRET, "20130524", "us-east-1", "s3");
        let mut signer = ChunkSigner {
            key,
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            previous: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
        };
        let data = vec![b'a'; 65536];
        let sha: [u8; 32] = Sha256::digest(&data).into();
        assert!(!signer.verify(&sha, "00"));
        assert!(signer.verify(
            &sha,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        ));
        let data = vec![b'a'; 1024];
        let sha: [u8; 32] = Sha256::digest(&data).into();
        assert!(signer.verify(
            &sha,
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
        ));
        let sha: [u8; 32] = Sha256::digest(b"").into();
        assert!(signer.verify(
            &sha,
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
        ));
    }

    #[test]
    fn malformed_headers_are_errors() {
        for h in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=a/b/c",
            "AWS4-HMAC-SHA256 Credential=AK/2013/us/s3/aws4_request,SignedHeaders=host,Signature=x",
            "AWS4-HMAC-SHA256X Credential=AK/20130524/us/s3/aws4_request,SignedHeaders=host,Signature=x",
        ] {
            assert!(parse_authorization(h, "").is_err(), "{h}");
        }
        assert!(
            parse_presigned(&Query::parse("X-Amz-Algorithm=AWS4-HMAC-SHA256").unwrap()).is_err()
        );
    }

    /// Mutated Authorization headers and queries never panic the parsers (the fuzz target
    /// `request` does the same at scale).
    #[test]
    fn random_mutations_never_panic() {
        let base = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"/=,; %&AWS4-HMAC-SHA256aws4_request0123456789\xc3\xa9";
        for _ in 0..5000 {
            let mut b = base.as_bytes().to_vec();
            for _ in 0..(next() % 6) {
                let pos = (next() as usize) % (b.len() + 1);
                match next() % 3 {
                    0 if pos < b.len() => {
                        b.remove(pos);
                    }
                    1 => b.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                    _ => b.truncate(pos),
                }
            }
            let text = String::from_utf8_lossy(&b);
            if let Ok(sig) = parse_authorization(&text, "20130524T000000Z") {
                assert!(!sig.access_key.is_empty() && sig.date.len() == 8);
            }
            if let Ok(q) = Query::parse(&text.replace([',', ' '], "&")) {
                let _ = parse_presigned(&q);
                let creq = canonical_request("GET", &text, &q, &HeaderMap::new(), &[], "x");
                let _ = string_to_sign(&text, &text, &creq);
            }
        }
    }
}
