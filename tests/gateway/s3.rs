//! A small S3 client over plain HTTP and assertions on S3 responses. With security off the
//! requests are not signed (the `Authorization` header only names the user); a client made by
//! [`S3::signed`] signs them with SigV4 ([`crate::sigv4`]).

use std::net::SocketAddr;

use reqwest::Method;

/// The user requests name by default (security off: the access key is the user).
pub const USER: &str = "tester";

/// The gateway's address, one HTTP client and who the requests come from.
#[derive(Clone)]
pub struct S3 {
    host: String,
    http: reqwest::Client,
    user: String,
    /// With security on: the user's secret, and requests are signed with SigV4.
    secret: Option<String>,
}

impl S3 {
    pub fn new(addr: SocketAddr) -> S3 {
        S3 {
            host: addr.to_string(),
            http: reqwest::Client::new(),
            user: USER.to_string(),
            secret: None,
        }
    }

    /// The same gateway, as `access_key` signing with `secret` (security on).
    pub fn signed(&self, access_key: &str, secret: &str) -> S3 {
        S3 {
            user: access_key.to_string(),
            secret: Some(secret.to_string()),
            ..self.clone()
        }
    }

    /// The same gateway, as another user (security off: the name is all it takes).
    pub fn as_user(&self, user: &str) -> S3 {
        S3 {
            user: user.to_string(),
            ..self.clone()
        }
    }

    /// A request to `path_and_query` (already percent-encoded), e.g. `/b/k?tagging`. With
    /// security on it is signed when sent, with every header added by [`Req::header`].
    pub fn req(&self, method: Method, path_and_query: &str) -> Req {
        let mut r = self.anonymous(method, path_and_query);
        match &self.secret {
            Some(secret) => r.signer = Some((self.user.clone(), secret.clone())),
            None => {
                // Security off: the signature is not checked, the access key names the user.
                let auth = format!(
                    "AWS4-HMAC-SHA256 Credential={}/20250101/us-east-1/s3/aws4_request, \
                     SignedHeaders=host, Signature=0",
                    self.user
                );
                r.unsigned.push(("authorization".into(), auth));
            }
        }
        r
    }

    /// `path_and_query` presigned by this client's user (security on) for `method`, valid
    /// `expires` seconds, signing `host` and the `signed` headers.
    pub fn presign(
        &self,
        method: Method,
        path_and_query: &str,
        signed: &[(&str, &str)],
        expires: u64,
        opts: &crate::sigv4::Opts,
    ) -> String {
        let secret = self.secret.as_deref().expect("presigning needs a secret");
        let signed: Vec<(String, String)> = signed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::sigv4::presign(
            &self.user,
            secret,
            method.as_str(),
            &self.host,
            path_and_query,
            &signed,
            expires,
            opts,
        )
    }

    pub fn get(&self, p: &str) -> Req {
        self.req(Method::GET, p)
    }
    pub fn head(&self, p: &str) -> Req {
        self.req(Method::HEAD, p)
    }
    pub fn put(&self, p: &str) -> Req {
        self.req(Method::PUT, p)
    }
    pub fn post(&self, p: &str) -> Req {
        self.req(Method::POST, p)
    }
    pub fn delete(&self, p: &str) -> Req {
        self.req(Method::DELETE, p)
    }

    /// A request without any credentials (also: a presigned `path_and_query`).
    pub fn anonymous(&self, method: Method, path_and_query: &str) -> Req {
        Req {
            http: self.http.clone(),
            host: self.host.clone(),
            method: method.clone(),
            path_and_query: path_and_query.to_string(),
            signer: None,
            headers: Vec::new(),
            unsigned: Vec::new(),
            body: None,
            opts: crate::sigv4::Opts::default(),
            head: method == Method::HEAD,
        }
    }

    /// Creates bucket `name` (fresh per case) and returns it.
    pub async fn bucket(&self, name: &str) -> String {
        let r = self.put(&format!("/{name}")).send().await;
        r.expect(200, &format!("CreateBucket {name}"));
        name.to_string()
    }

    /// Puts `body` at `/bucket/key` and returns the ETag header.
    pub async fn object(&self, bucket: &str, key: &str, body: &str) -> String {
        let r = self
            .put(&format!("/{bucket}/{key}"))
            .body(body.to_string())
            .send()
            .await;
        r.expect(200, &format!("PutObject {bucket}/{key}"));
        r.header("etag").expect("PutObject answers an ETag")
    }
}

/// A request being built; signed (security on) when sent.
pub struct Req {
    http: reqwest::Client,
    host: String,
    method: Method,
    path_and_query: String,
    /// Security on: the access key and secret that sign it.
    signer: Option<(String, String)>,
    /// Headers that are signed (when the request is).
    headers: Vec<(String, String)>,
    /// Headers sent without being signed.
    unsigned: Vec<(String, String)>,
    body: Option<reqwest::Body>,
    opts: crate::sigv4::Opts,
    head: bool,
}

impl Req {
    /// A header, signed with the request (security on).
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// A header sent but left out of the signature.
    pub fn unsigned_header(mut self, k: &str, v: &str) -> Req {
        self.unsigned.push((k.to_string(), v.to_string()));
        self
    }

    /// Signs the way `opts` says (another date, region, payload digest...).
    pub fn opts(mut self, opts: crate::sigv4::Opts) -> Req {
        self.opts = opts;
        self
    }

    pub fn body(mut self, b: impl Into<reqwest::Body>) -> Req {
        self.body = Some(b.into());
        self
    }

    pub async fn send(self) -> Resp {
        let mut builder = self.http.request(
            self.method.clone(),
            format!("http://{}{}", self.host, self.path_and_query),
        );
        let signature = match &self.signer {
            Some((user, secret)) => crate::sigv4::sign(
                user,
                secret,
                self.method.as_str(),
                &self.host,
                &self.path_and_query,
                &self.headers,
                &self.opts,
            ),
            None => Vec::new(),
        };
        for (k, v) in self.headers.iter().chain(&self.unsigned).chain(&signature) {
            builder = builder.header(k, v);
        }
        if let Some(b) = self.body {
            builder = builder.body(b);
        }
        let r = builder.send().await.expect("the gateway answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("the body can be read").to_vec();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            head: self.head,
        }
    }
}

/// A whole response.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    pub bytes: Vec<u8>,
    /// The answer to a HEAD request (no body, errors included).
    pub head: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the status; `what` names the step in the failure message.
    #[track_caller]
    pub fn expect(&self, status: u16, what: &str) -> &Resp {
        assert_eq!(
            self.status, status,
            "{what}: status {} (wanted {status}), body: {}",
            self.status, self.body
        );
        self
    }

    /// Asserts an S3 error: its status, and its XML body's `<Code>` and `<RequestId>`; the
    /// answer to HEAD must have no body instead.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str, what: &str) -> &Resp {
        self.expect(status, what);
        if self.head {
            assert!(self.bytes.is_empty(), "{what}: a HEAD answer with a body");
        } else {
            assert_eq!(
                xml_text(&self.body, "Code").as_deref(),
                Some(code),
                "{what}: error body {}",
                self.body
            );
            assert!(
                xml_text(&self.body, "RequestId").is_some(),
                "{what}: error without RequestId: {}",
                self.body
            );
        }
        self
    }

    /// The text of the first `<tag>` of the body.
    pub fn text(&self, tag: &str) -> Option<String> {
        xml_text(&self.body, tag)
    }

    /// The texts of every `<tag>` of the body, in order.
    pub fn texts(&self, tag: &str) -> Vec<String> {
        xml_texts(&self.body, tag)
    }
}

/// The text of the first `<tag>...</tag>` in `xml`, unescaped.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_texts(xml, tag).into_iter().next()
}

/// Texts of every `<tag>...</tag>` (also `<tag attr="...">`) in `xml`, in order, unescaped.
/// An empty element (`<tag/>`) has the empty text.
pub fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&format!("<{tag}")) {
        let after = &rest[i + tag.len() + 1..];
        let Some(gt) = after.find('>') else { break };
        let (head, body) = (&after[..gt], &after[gt + 1..]);
        if !(head.is_empty() || head.starts_with(' ') || head == "/") {
            rest = after;
            continue;
        }
        if head.ends_with('/') {
            // `<tag/>`: empty.
            out.push(String::new());
            rest = body;
            continue;
        }
        let Some(end) = body.find(&close) else { break };
        out.push(unescape(&body[..end]));
        rest = &body[end + close.len()..];
    }
    out
}

/// Replaces XML's predefined entities and numeric references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let Some(end) = rest[i..].find(';') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let entity = &rest[i + 1..i + end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&rest[i..=i + end]),
        }
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}
