//! `ozone health URL [--contains TEXT]`: a health check that needs nothing but the `ozone`
//! binary (a `FROM scratch` image has no curl or shell). GETs a role's http page and exits 0
//! when it answers 200 (and its body contains TEXT, when given), 1 otherwise, printing why.

use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// URL of a role's http page, e.g. http://127.0.0.1:9882/ (status page) or /prom.
    pub url: String,
    /// Healthy only if the body contains this text, e.g. "registered (cluster" for a datanode
    /// that has registered with SCM.
    #[arg(long)]
    pub contains: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

/// Ok with a one-line summary when healthy; Err with the reason otherwise.
pub async fn check(args: &HealthArgs) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let response = client
        .get(&args.url)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", args.url))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{}: reading the body: {e}", args.url))?;
    if !status.is_success() {
        return Err(format!("{}: http {status}", args.url));
    }
    if let Some(text) = &args.contains
        && !body.contains(text.as_str())
    {
        return Err(format!("{}: answered, but without {text:?}", args.url));
    }
    Ok(format!("{}: healthy (http {status})", args.url))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot http server answering `status` with `body`.
    async fn serve_once(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "a request");
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/")
    }

    fn args(url: String, contains: Option<&str>) -> HealthArgs {
        HealthArgs {
            url,
            contains: contains.map(str::to_string),
            timeout: 5,
        }
    }

    #[tokio::test]
    async fn healthy_unhealthy_and_down() {
        let url = serve_once("200 OK", "SCM connection registered (cluster x)").await;
        check(&args(url, Some("registered (cluster")))
            .await
            .unwrap();
        let url = serve_once("200 OK", "SCM connection connecting").await;
        let e = check(&args(url, Some("registered (cluster")))
            .await
            .unwrap_err();
        assert!(e.contains("without"), "{e}");
        let url = serve_once("503 Service Unavailable", "").await;
        assert!(check(&args(url, None)).await.unwrap_err().contains("503"));
        // Nothing listens on a port just released.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        assert!(check(&args(url, None)).await.is_err());
    }
}
