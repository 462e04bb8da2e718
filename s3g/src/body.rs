//! Request bodies of PutObject and UploadPart: plain or aws-chunked, hashed on the fly (MD5 for
//! the ETag, SHA-256 when the client sent it, the additional `x-amz-checksum-*`), and checked
//! against what the client declared once the body ends.

use std::collections::VecDeque;

use actix_web::http::header::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::checksum::{ChecksumAlgo, Hasher};
use crate::chunked::{ChunkedDecoder, ChunkedError};
use crate::error::{S3Error, S3ErrorCode, S3Result};

/// What the request headers say about the body.
#[derive(Debug, Default)]
pub struct BodySpec {
    /// aws-chunked framing.
    pub chunked: bool,
    /// Length of the object data (after aws-chunked decoding), when declared.
    pub decoded_length: Option<u64>,
    pub content_md5: Option<[u8; 16]>,
    /// SHA-256 of the payload when `x-amz-content-sha256` carries one.
    pub content_sha256: Option<[u8; 32]>,
    /// Additional checksum: its algorithm and, when sent as a header, its value.
    /// `None` as value means it comes in the aws-chunked trailer.
    pub checksum: Option<(ChecksumAlgo, Option<String>)>,
    /// Security on, signed streaming upload: checks every chunk signature.
    pub chunk_signer: Option<crate::sigv4::ChunkSigner>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl BodySpec {
    pub fn from_headers(headers: &HeaderMap) -> S3Result<Self> {
        let mut spec = BodySpec::default();
        let sha = header(headers, "x-amz-content-sha256").unwrap_or("UNSIGNED-PAYLOAD");
        let encoding_chunked = header(headers, "content-encoding")
            .map(|v| {
                v.split(',')
                    .any(|e| e.trim().eq_ignore_ascii_case("aws-chunked"))
            })
            .unwrap_or(false);
        if sha.starts_with("STREAMING-") {
            spec.chunked = true;
        } else if sha != "UNSIGNED-PAYLOAD" {
            let bytes = hex::decode(sha)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            match bytes {
                Some(b) => spec.content_sha256 = Some(b),
                None => {
                    return Err(S3Error::msg(
                        S3ErrorCode::InvalidArgument,
                        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256 hex digest",
                    ));
                }
            }
        }
        spec.chunked |= encoding_chunked;
        let length_header = if spec.chunked {
            "x-amz-decoded-content-length"
        } else {
            "content-length"
        };
        if let Some(v) = header(headers, length_header) {
            spec.decoded_length = Some(v.trim().parse().map_err(|_| {
                S3Error::msg(
                    S3ErrorCode::InvalidArgument,
                    format!("invalid {length_header}"),
                )
            })?);
        }
        if let Some(v) = header(headers, "content-md5") {
            let digest = B64
                .decode(v.trim())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| S3Error::new(S3ErrorCode::InvalidDigest))?;
            spec.content_md5 = Some(digest);
        }
        for algo in ChecksumAlgo::ALL {
            if let Some(v) = header(headers, algo.header()) {
                spec.checksum = Some((algo, Some(v.trim().to_string())));
            }
        }
        if spec.checksum.is_none()
            && let Some(trailer) = header(headers, "x-amz-trailer")
        {
            let algo = ChecksumAlgo::from_header(trailer).ok_or_else(|| {
                S3Error::msg(
                    S3ErrorCode::InvalidRequest,
                    format!("unsupported x-amz-trailer {trailer}"),
                )
            })?;
            if !spec.chunked {
                return Err(S3Error::msg(
                    S3ErrorCode::InvalidRequest,
                    "x-amz-trailer needs an aws-chunked body",
                ));
            }
            spec.checksum = Some((algo, None));
        }
        Ok(spec)
    }
}

/// What a fully received body turned out to be.
#[derive(Debug)]
pub struct BodySummary {
    pub md5: [u8; 16],
    pub len: u64,
    /// The verified additional checksum, to store with the object.
    pub checksum: Option<(ChecksumAlgo, String)>,
}

/// A request body being read: yields decoded data, then verifies it in [`Body::finish`].
pub struct Body<S> {
    stream: S,
    decoder: Option<ChunkedDecoder>,
    queue: VecDeque<Bytes>,
    scratch: Vec<Bytes>,
    md5: Md5,
    sha256: Option<Sha256>,
    checksum: Option<Hasher>,
    len: u64,
    ended: bool,
}

impl<S, E> Body<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(stream: S, spec: &BodySpec) -> Self {
        Body {
            stream,
            decoder: spec.chunked.then(|| match &spec.chunk_signer {
                Some(signer) => ChunkedDecoder::signed(signer.clone()),
                None => ChunkedDecoder::new(),
            }),
            queue: VecDeque::new(),
            scratch: Vec::new(),
            md5: Md5::new(),
            sha256: spec.content_sha256.map(|_| Sha256::new()),
            checksum: spec.checksum.as_ref().map(|(a, _)| a.hasher()),
            len: 0,
            ended: false,
        }
    }

    /// The next piece of object data, or `None` at the end of the body.
    pub async fn next(&mut self) -> S3Result<Option<Bytes>> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                if b.is_empty() {
                    continue;
                }
                self.len += b.len() as u64;
                self.md5.update(&b);
                if let Some(h) = &mut self.sha256 {
                    h.update(&b);
                }
                if let Some(h) = &mut self.checksum {
                    h.update(&b);
                }
                return Ok(Some(b));
            }
            if self.ended {
                return Ok(None);
            }
            match self.stream.next().await {
                None => self.ended = true,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "request body broke off");
                    return Err(S3Error::msg(
                        S3ErrorCode::IncompleteBody,
                        "The request body ended before the declared length.",
                    ));
                }
                Some(Ok(raw)) => match &mut self.decoder {
                    None => self.queue.push_back(raw),
                    Some(d) => {
                        d.feed(raw, &mut self.scratch).map_err(chunked_error)?;
                        self.queue.extend(self.scratch.drain(..));
                    }
                },
            }
        }
    }

    /// Checks length, Content-MD5, SHA-256 and the additional checksum.
    pub fn finish(self, spec: &BodySpec) -> S3Result<BodySummary> {
        let trailers = match self.decoder {
            Some(d) => d.finish().map_err(chunked_error)?,
            None => Vec::new(),
        };
        if let Some(expected) = spec.decoded_length
            && expected != self.len
        {
            return Err(S3Error::msg(
                S3ErrorCode::IncompleteBody,
                format!(
                    "You did not provide the number of bytes specified ({expected}); got {}.",
                    self.len
                ),
            ));
        }
        let md5: [u8; 16] = self.md5.finalize().into();
        if let Some(expected) = spec.content_md5
            && expected != md5
        {
            return Err(S3Error::new(S3ErrorCode::BadDigest));
        }
        if let (Some(expected), Some(h)) = (spec.content_sha256, self.sha256) {
            let got: [u8; 32] = h.finalize().into();
            if got != expected {
                return Err(S3Error::new(S3ErrorCode::XAmzContentSHA256Mismatch));
            }
        }
        let mut checksum = None;
        if let (Some((algo, declared)), Some(h)) = (&spec.checksum, self.checksum) {
            let expected = match declared {
                Some(v) => v.clone(),
                None => trailers
                    .iter()
                    .find(|(k, _)| k == algo.header())
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        S3Error::msg(
                            S3ErrorCode::InvalidRequest,
                            format!("the trailer {} was declared but not sent", algo.header()),
                        )
                    })?,
            };
            let got = h.finish_base64();
            if got != expected {
                return Err(S3Error::msg(
                    S3ErrorCode::BadDigest,
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        algo.name()
                    ),
                ));
            }
            checksum = Some((*algo, got));
        }
        Ok(BodySummary {
            md5,
            len: self.len,
            checksum,
        })
    }
}

fn chunked_error(e: ChunkedError) -> S3Error {
    match e {
        ChunkedError::Truncated => S3Error::msg(S3ErrorCode::IncompleteBody, e.to_string()),
        ChunkedError::Malformed(_) => S3Error::msg(S3ErrorCode::InvalidRequest, e.to_string()),
        ChunkedError::Signature(_) => {
            tracing::info!(error = %e, "rejected a signed streaming upload");
            S3Error::msg(S3ErrorCode::SignatureDoesNotMatch, e.to_string())
        }
    }
}

/// Reads a small request body (XML documents) whole, refusing more than `limit` bytes.
pub async fn read_small<S, E>(mut stream: S, limit: usize) -> S3Result<Bytes>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut buf = bytes::BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| {
            tracing::debug!(error = %e, "request body broke off");
            S3Error::new(S3ErrorCode::IncompleteBody)
        })?;
        if buf.len() + piece.len() > limit {
            return Err(S3Error::msg(
                S3ErrorCode::InvalidRequest,
                format!("request body larger than {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&piece);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    async fn run(spec: &BodySpec, pieces: Vec<&'static [u8]>) -> S3Result<(Vec<u8>, BodySummary)> {
        let stream = futures::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p))),
        );
        let mut body = Body::new(stream, spec);
        let mut data = Vec::new();
        while let Some(b) = body.next().await? {
            data.extend_from_slice(&b);
        }
        Ok((data, body.finish(spec)?))
    }

    #[tokio::test]
    async fn trailer_checksum_verified() {
        let spec = BodySpec::from_headers(&headers(&[
            ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
            ("x-amz-decoded-content-length", "11"),
        ]))
        .unwrap();
        let (data, sum) = run(
            &spec,
            vec![
                b"b\r\nHello ",
                b"world\r\n0\r\nx-amz-checksum-crc32:i9aeUg==\r\n\r\n",
            ],
        )
        .await
        .unwrap();
        assert_eq!(data, b"Hello world");
        assert_eq!(sum.checksum.unwrap().1, "i9aeUg==");
        let err = run(
            &spec,
            vec![b"b\r\nHello world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, S3ErrorCode::BadDigest);
        let err = run(&spec, vec![b"b\r\nHello wo"]).await.unwrap_err();
        assert_eq!(err.code, S3ErrorCode::IncompleteBody);
    }

    #[tokio::test]
    async fn content_md5_and_sha256() {
        // MD5("Hello world") = 3e25960a79dbc69b674cd4ec67a72c62
        let spec = BodySpec::from_headers(&headers(&[
            ("content-md5", "PiWWCnnbxptnTNTsZ6csYg=="),
            (
                "x-amz-content-sha256",
                "64ec88ca00b268e5ba1a35678a1b5316d212f4f366b2477232534a8aeca37f3c",
            ),
            ("content-length", "11"),
        ]))
        .unwrap();
        let (_, sum) = run(&spec, vec![b"Hello", b" world"]).await.unwrap();
        assert_eq!(hex::encode(sum.md5), "3e25960a79dbc69b674cd4ec67a72c62");
        let spec = BodySpec::from_headers(&headers(&[("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")]))
            .unwrap();
        assert_eq!(
            run(&spec, vec![b"Hello world"]).await.unwrap_err().code,
            S3ErrorCode::BadDigest
        );
        let err = BodySpec::from_headers(&headers(&[("content-md5", "nope")])).unwrap_err();
        assert_eq!(err.code, S3ErrorCode::InvalidDigest);
    }
}
