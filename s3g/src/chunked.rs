//! Decoder of `Content-Encoding: aws-chunked` bodies (signed and unsigned streaming uploads,
//! with or without trailers). Push-based and zero-copy: data slices of the input are handed out.
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n
//! [<trailer-name>:<value>\r\n ...]\r\n
//! ```

use bytes::{Buf, Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::sigv4::ChunkSigner;

/// Longest chunk header or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkedError {
    #[error("malformed aws-chunked framing: {0}")]
    Malformed(&'static str),
    #[error("aws-chunked body ended before its final chunk")]
    Truncated,
    /// A chunk (or trailer) signature of a signed streaming upload does not match.
    #[error("chunk signature mismatch: {0}")]
    Signature(&'static str),
}

/// The chunk signature check of a signed streaming body: the chain and the current chunk.
struct ChunkCheck {
    signer: ChunkSigner,
    /// The current chunk's declared signature and the hash of its data so far.
    pending: Option<(String, Sha256)>,
}

impl ChunkCheck {
    fn verify_pending(&mut self) -> Result<(), ChunkedError> {
        if let Some((sig, hasher)) = self.pending.take() {
            let digest: [u8; 32] = hasher.finalize().into();
            if !self.signer.verify(&digest, &sig) {
                return Err(ChunkedError::Signature(
                    "a chunk-signature does not match the chunk",
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
enum State {
    /// Reading a chunk header line.
    Header,
    /// `n` data bytes of the current chunk left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines after the last chunk.
    Trailers,
    Done,
}

pub struct ChunkedDecoder {
    state: State,
    line: BytesMut,
    trailer_bytes: usize,
    trailers: Vec<(String, String)>,
    check: Option<ChunkCheck>,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Header,
            line: BytesMut::new(),
            trailer_bytes: 0,
            trailers: Vec::new(),
            check: None,
        }
    }

    /// A decoder that checks every chunk signature (STREAMING-AWS4-HMAC-SHA256-PAYLOAD).
    pub fn signed(signer: ChunkSigner) -> Self {
        let mut d = Self::new();
        d.check = Some(ChunkCheck {
            signer,
            pending: None,
        });
        d
    }

    /// Consumes `input`, pushing decoded data slices into `out`.
    pub fn feed(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), ChunkedError> {
        while input.has_remaining() {
            match self.state {
                State::Data(n) => {
                    let take = (n.min(input.len() as u64)) as usize;
                    let piece = input.split_to(take);
                    if let Some((_, h)) = self.check.as_mut().and_then(|c| c.pending.as_mut()) {
                        h.update(&piece);
                    }
                    out.push(piece);
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    if !self.read_line(&mut input)? {
                        continue;
                    }
                    if !self.line.is_empty() {
                        return Err(ChunkedError::Malformed("chunk data longer than its size"));
                    }
                    if let Some(c) = &mut self.check {
                        c.verify_pending()?;
                    }
                    self.state = State::Header;
                }
                State::Header => {
                    if !self.read_line(&mut input)? {
                        continue;
                    }
                    let size = parse_header(&self.line)?;
                    if let Some(c) = &mut self.check {
                        let sig = chunk_signature(&self.line).ok_or(ChunkedError::Signature(
                            "a chunk of a signed streaming upload has no chunk-signature",
                        ))?;
                        c.pending = Some((sig, Sha256::new()));
                        if size == 0 {
                            c.verify_pending()?;
                        }
                    }
                    self.line.clear();
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Trailers => {
                    if !self.read_line(&mut input)? {
                        continue;
                    }
                    if self.line.is_empty() {
                        self.state = State::Done;
                        continue;
                    }
                    self.trailer_bytes += self.line.len();
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(ChunkedError::Malformed("trailers too large"));
                    }
                    let text = std::str::from_utf8(&self.line)
                        .map_err(|_| ChunkedError::Malformed("trailer is not UTF-8"))?;
                    let (name, value) = text
                        .split_once(':')
                        .ok_or(ChunkedError::Malformed("trailer without ':'"))?;
                    self.trailers
                        .push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                    self.line.clear();
                }
                State::Done => {
                    // Tolerate trailing line breaks; anything else is not aws-chunked.
                    if input.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        input.clear();
                    } else {
                        return Err(ChunkedError::Malformed("data after the final chunk"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends input up to and excluding the next CRLF to `self.line`; true when a whole line is
    /// read (the CRLF consumed). The line buffer of a completed line must be cleared by the caller.
    fn read_line(&mut self, input: &mut Bytes) -> Result<bool, ChunkedError> {
        if let Some(pos) = input.iter().position(|b| *b == b'\n') {
            self.line.extend_from_slice(&input[..pos]);
            input.advance(pos + 1);
            if self.line.last() != Some(&b'\r') {
                return Err(ChunkedError::Malformed("line not ended by CRLF"));
            }
            self.line.truncate(self.line.len() - 1);
            if self.line.len() > MAX_LINE {
                return Err(ChunkedError::Malformed("line too long"));
            }
            Ok(true)
        } else {
            self.line.extend_from_slice(input);
            input.clear();
            if self.line.len() > MAX_LINE {
                return Err(ChunkedError::Malformed("line too long"));
            }
            Ok(false)
        }
    }

    /// Ends the body: an error unless the final chunk (and its trailers) arrived.
    pub fn finish(self) -> Result<Vec<(String, String)>, ChunkedError> {
        match self.state {
            State::Done => {}
            // Some clients stop right after the last chunk's line without the closing CRLF.
            State::Trailers if self.line.is_empty() => {}
            _ => return Err(ChunkedError::Truncated),
        }
        if let Some(c) = &self.check {
            let sig = self
                .trailers
                .iter()
                .find(|(k, _)| k == "x-amz-trailer-signature")
                .map(|(_, v)| v.clone());
            let signed: String = self
                .trailers
                .iter()
                .filter(|(k, _)| k != "x-amz-trailer-signature")
                .map(|(k, v)| format!("{k}:{v}\n"))
                .collect();
            match sig {
                Some(sig) if !c.signer.verify_trailer(&signed, &sig) => {
                    return Err(ChunkedError::Signature(
                        "the trailer signature does not match",
                    ));
                }
                None if !signed.is_empty() => {
                    return Err(ChunkedError::Signature(
                        "trailers of a signed upload need x-amz-trailer-signature",
                    ));
                }
                _ => {}
            }
        }
        Ok(self.trailers)
    }
}

/// The `chunk-signature=` extension of a chunk header line.
fn chunk_signature(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    text.split(';')
        .skip(1)
        .find_map(|ext| ext.trim().strip_prefix("chunk-signature="))
        .map(|s| s.trim().to_ascii_lowercase())
}

fn parse_header(line: &[u8]) -> Result<u64, ChunkedError> {
    let text =
        std::str::from_utf8(line).map_err(|_| ChunkedError::Malformed("header is not UTF-8"))?;
    let size = text.split(';').next().unwrap_or("").trim();
    if size.is_empty() || size.len() > 16 {
        return Err(ChunkedError::Malformed("bad chunk size"));
    }
    u64::from_str_radix(size, 16).map_err(|_| ChunkedError::Malformed("bad chunk size"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type Decoded = Result<(Vec<u8>, Vec<(String, String)>), ChunkedError>;

    fn decode_in_pieces(body: &[u8], piece: usize) -> Decoded {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for p in body.chunks(piece.max(1)) {
            d.feed(Bytes::copy_from_slice(p), &mut out)?;
        }
        let trailers = d.finish()?;
        Ok((out.concat(), trailers))
    }

    #[test]
    fn unsigned_with_trailer() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for piece in [1, 2, 3, 7, 100] {
            let (data, tr) = decode_in_pieces(body, piece).unwrap();
            assert_eq!(data, b"hello world");
            assert_eq!(tr, vec![("x-amz-checksum-crc32".into(), "DUoRhQ==".into())]);
        }
    }

    #[test]
    fn signed_chunks() {
        let sig =
            "chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648";
        let body = format!("3;{sig}\r\nabc\r\n0;{sig}\r\n\r\n");
        let (data, tr) = decode_in_pieces(body.as_bytes(), 5).unwrap();
        assert_eq!(data, b"abc");
        assert!(tr.is_empty());
    }

    #[test]
    fn truncated_and_malformed() {
        assert_eq!(
            decode_in_pieces(b"a\r\nhello", 3).unwrap_err(),
            ChunkedError::Truncated
        );
        assert_eq!(
            decode_in_pieces(b"5\r\nhel", 3).unwrap_err(),
            ChunkedError::Truncated
        );
        assert!(decode_in_pieces(b"zz\r\nhello\r\n0\r\n\r\n", 4).is_err());
        assert!(decode_in_pieces(b"3\r\nhello\r\n0\r\n\r\n", 4).is_err());
        assert!(decode_in_pieces(b"3\nabc\r\n0\r\n\r\n", 4).is_err());
        assert!(decode_in_pieces(&[b'1'; 10000], 100).is_err());
    }

    /// Randomised robustness check (stable-toolchain stand-in for a fuzz target): mutations of
    /// valid bodies, split at random points, never panic, and decode the same way whatever the
    /// split.
    #[test]
    fn random_mutations_never_panic_and_split_does_not_matter() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds: [&[u8]; 3] = [
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n",
            b"3;chunk-signature=abc\r\nabc\r\n0;chunk-signature=def\r\n\r\n",
            b"0\r\n\r\n",
        ];
        for i in 0..20_000 {
            let mut body = seeds[i % seeds.len()].to_vec();
            for _ in 0..(rnd() % 4) {
                let pos = (rnd() as usize) % body.len();
                match rnd() % 3 {
                    0 => body[pos] = rnd() as u8,
                    1 => {
                        body.remove(pos);
                        if body.is_empty() {
                            body.push(b'0');
                        }
                    }
                    _ => body.insert(pos, rnd() as u8),
                }
            }
            let whole = decode_in_pieces(&body, body.len());
            let split = decode_in_pieces(&body, 1 + (rnd() as usize) % 7);
            assert_eq!(whole, split, "{:?}", String::from_utf8_lossy(&body));
        }
    }

    /// AWS's streaming example body (65536 + 1024 bytes of 'a'): every chunk signature is
    /// checked, in any split of the input; a changed signature or byte is refused.
    #[test]
    fn aws_signed_streaming_body() {
        let key = ozone_common::sigv4::signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        );
        let signer = ChunkSigner {
            key,
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            previous: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
        };
        let build = |data_byte: u8, sig1: &str| {
            let mut body = Vec::new();
            body.extend_from_slice(format!("10000;chunk-signature={sig1}\r\n").as_bytes());
            body.extend(std::iter::repeat_n(data_byte, 65536));
            body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
            body.extend(std::iter::repeat_n(b'a', 1024));
            body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
            body
        };
        let run = |body: &[u8], piece: usize| -> Result<usize, ChunkedError> {
            let mut d = ChunkedDecoder::signed(signer.clone());
            let mut out = Vec::new();
            for p in body.chunks(piece) {
                d.feed(Bytes::copy_from_slice(p), &mut out)?;
            }
            d.finish()?;
            Ok(out.iter().map(|b| b.len()).sum())
        };
        let good = build(
            b'a',
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        );
        for piece in [7, 1000, 70000] {
            assert_eq!(run(&good, piece).unwrap(), 66560);
        }
        let bad_sig = build(
            b'a',
            "bd80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        );
        assert!(matches!(
            run(&bad_sig, 1000),
            Err(ChunkedError::Signature(_))
        ));
        let bad_data = build(
            b'b',
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        );
        assert!(matches!(
            run(&bad_data, 1000),
            Err(ChunkedError::Signature(_))
        ));
        let unsigned = b"3\r\nabc\r\n0\r\n\r\n";
        assert!(matches!(run(unsigned, 5), Err(ChunkedError::Signature(_))));
    }
}
