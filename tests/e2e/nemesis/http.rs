//! The nemesis's S3 client: plain HTTP/1.1 (security is off, so no signatures), one request per
//! connection, bodies streamed both ways so a 64 MiB object is never held whole: a PUT body is
//! generated as it is sent ([`super::data::fill`]) and a GET body is compared as it arrives.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::data;

/// Connect timeout; a stopped gateway still accepts connections (the kernel does), so the read
/// timeout is what bounds a request to a frozen process.
const CONNECT: Duration = Duration::from_secs(5);
/// Longest wait for any one read or write of a request.
pub const IO: Duration = Duration::from_secs(60);
/// Bytes generated or compared per step.
const STEP: usize = 256 * 1024;

/// A response head: the status and the headers (names lower-cased).
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A small response (status, headers, body up to 1 MiB: XML and errors).
#[derive(Debug, Clone)]
pub struct Small {
    pub head: Head,
    pub body: String,
}

/// What a body is: the bytes of object `version` (generated), or a small literal.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of `version` starting at object offset `offset`.
    Object {
        version: u64,
        offset: u64,
        len: u64,
    },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Object { len, .. } => *len,
        }
    }
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("no address for {addr}")))?;
    let s = TcpStream::connect_timeout(&sa, CONNECT)?;
    s.set_read_timeout(Some(IO))?;
    s.set_write_timeout(Some(IO))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sends a request and reads the response head; the body is left in the returned reader.
pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body<'_>,
) -> io::Result<(Head, BufReader<TcpStream>)> {
    let mut s = connect(addr)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    match body {
        Body::Empty => {}
        Body::Bytes(b) => s.write_all(b)?,
        Body::Object {
            version,
            offset,
            len,
        } => {
            let mut buf = vec![0u8; STEP];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(STEP as u64) as usize;
                data::fill(version, offset + done, &mut buf[..n]);
                // A server that answers early (an error) may close before the whole body is
                // sent; its answer is still read below.
                if let Err(e) = s.write_all(&buf[..n]) {
                    return read_head(s).map_err(|_| e);
                }
                done += n as u64;
            }
        }
    }
    s.flush()?;
    read_head(s)
}

fn read_head(s: TcpStream) -> io::Result<(Head, BufReader<TcpStream>)> {
    let mut r = BufReader::with_capacity(STEP, s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((Head { status, headers }, r))
}

/// Reads the whole body, handing it to `sink` piece by piece; errors if the body ends before
/// its announced length (Content-Length, or a chunked body without its last chunk).
pub fn read_body(
    head: &Head,
    r: &mut BufReader<TcpStream>,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut buf = vec![0u8; STEP];
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("chunked body cut after {total} bytes"),
                ));
            }
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                return Ok(total);
            }
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                r.read_exact(&mut buf[..n])?;
                sink(&buf[..n]);
                left -= n as u64;
                total += n as u64;
            }
            line.clear();
            r.read_line(&mut line)?;
        }
    }
    match head
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(len) => {
            while total < len {
                let n = (len - total).min(buf.len() as u64) as usize;
                let got = r.read(&mut buf[..n])?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("body cut after {total} of {len} bytes"),
                    ));
                }
                sink(&buf[..got]);
                total += got as u64;
            }
            Ok(total)
        }
        None => loop {
            let got = r.read(&mut buf)?;
            if got == 0 {
                return Ok(total);
            }
            sink(&buf[..got]);
            total += got as u64;
        },
    }
}

/// A request whose response body is small (at most 1 MiB kept).
pub fn small(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Body<'_>,
) -> io::Result<Small> {
    let (head, mut r) = send(addr, method, path, headers, body)?;
    let mut kept = Vec::new();
    read_body(&head, &mut r, |b| {
        if kept.len() < (1 << 20) {
            kept.extend_from_slice(b);
        }
    })?;
    Ok(Small {
        head,
        body: String::from_utf8_lossy(&kept).into_owned(),
    })
}

/// The text of the first `<tag>...</tag>` in `xml`.
pub fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// Every `<tag>...</tag>` text in `xml`, in order.
pub fn xml_fields<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(s) = rest.find(&open) {
        let from = s + open.len();
        let Some(e) = rest[from..].find(&close) else {
            break;
        };
        out.push(&rest[from..from + e]);
        rest = &rest[from + e + close.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_fields_are_found_in_order() {
        let x = "<R><Key>a</Key><Key>b/c</Key><Next>t</Next></R>";
        assert_eq!(xml_fields(x, "Key"), vec!["a", "b/c"]);
        assert_eq!(xml_field(x, "Next"), Some("t"));
        assert_eq!(xml_field(x, "None"), None);
    }
}
