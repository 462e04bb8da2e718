//! A minimal HTTP/1.1 client, one request per connection: what tests and health checks need to
//! read a role's `/prom` or status page, or to send one plain S3 request, without an HTTP
//! client crate. Blocking ([`request`], [`get`]) for the multi-process tests, async
//! ([`request_async`], [`get_async`]) for in-process tests that serve on the same runtime.
//! Chunked bodies are decoded; nothing else of HTTP is (no redirects, no keep-alive).

use std::io::{self, Read, Write};
use std::time::Duration;

/// What came back: the status code, the head (status line and headers) and the body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `method path` to `addr` (`host:port`; an address bound to `0.0.0.0` is reached on
/// 127.0.0.1) with `body`, waiting at most `timeout` for each read and write.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let addr = reachable(addr);
    let mut s = std::net::TcpStream::connect(&addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(&encode(&addr, method, path, body))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse(&raw)
}

/// `GET path` with a 30 s timeout.
pub fn get(addr: &str, path: &str) -> io::Result<Response> {
    request(addr, "GET", path, b"", Duration::from_secs(30))
}

/// [`request`] on the current tokio runtime; `timeout` bounds the whole exchange.
pub async fn request_async(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = reachable(addr);
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        s.write_all(&encode(&addr, method, path, body)).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, io::Error>(raw)
    };
    let raw = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{method} {path}")))??;
    parse(&raw)
}

/// [`get`] on the current tokio runtime.
pub async fn get_async(addr: impl std::fmt::Display, path: &str) -> io::Result<Response> {
    request_async(&addr.to_string(), "GET", path, b"", Duration::from_secs(30)).await
}

fn reachable(addr: &str) -> String {
    addr.replace("0.0.0.0", "127.0.0.1")
}

fn encode(addr: &str, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no end of the http head"))?;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    let mut body = raw[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok(Response { status, head, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
        let r = parse(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "abcde"));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn request_carries_host_length_and_body() {
        let req = encode("127.0.0.1:9", "PUT", "/b/k", b"xyz");
        assert_eq!(
            req,
            b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz"
        );
    }
}
