//! What freon's S3 commands share: the endpoint and credential options, an HTTP client, and
//! SigV4 signing (headers host, x-amz-content-sha256, x-amz-date; UNSIGNED-PAYLOAD) with the
//! gateway's own signing code.

use std::time::Duration;

use ozone_s3g::sigv4::ClientSigner;

/// Endpoint and credentials of an S3 command.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Opts {
    /// S3 endpoint.
    #[arg(long, short = 'e', default_value = "http://127.0.0.1:9878")]
    pub endpoint: String,
    /// Sign requests (SigV4, UNSIGNED-PAYLOAD) with this access key (security on).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", requires = "secret")]
    pub access_key: Option<String>,
    /// The secret of --access-key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret: Option<String>,
}

/// An S3 endpoint to send (signed) requests to.
#[derive(Clone)]
pub struct S3 {
    pub http: reqwest::Client,
    pub base: String,
    signer: Option<ClientSigner>,
}

impl S3 {
    pub fn new(opts: &S3Opts, pool: usize) -> Result<S3, reqwest::Error> {
        Ok(S3 {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(pool.max(1))
                .timeout(Duration::from_secs(3600))
                .build()?,
            base: opts.endpoint.trim_end_matches('/').to_string(),
            signer: opts.access_key.clone().map(|access_key| ClientSigner {
                access_key,
                secret: opts.secret.clone().unwrap_or_default(),
                region: "us-east-1".to_string(),
            }),
        })
    }

    /// `<endpoint>/<path>` (path without the leading slash).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// A request to `url` with `query`, signed when credentials were given.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        query: &[(String, String)],
    ) -> reqwest::RequestBuilder {
        let full = match reqwest::Url::parse_with_params(url, query) {
            Ok(u) => u.to_string(),
            Err(_) => url.to_string(),
        };
        let req = self.http.request(method.clone(), full);
        sign(&self.signer, req, method.as_str(), url, query)
    }
}

pub fn sign(
    signer: &Option<ClientSigner>,
    req: reqwest::RequestBuilder,
    method: &str,
    url: &str,
    query: &[(String, String)],
) -> reqwest::RequestBuilder {
    let Some(s) = signer else { return req };
    let Ok(u) = reqwest::Url::parse(url) else {
        return req;
    };
    let host = match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
        None => u.host_str().unwrap_or("").to_string(),
    };
    let t = ozone_s3g::sigv4::format_amz_date(time::OffsetDateTime::now_utc());
    let payload = "UNSIGNED-PAYLOAD";
    let authorization = s.authorization(method, u.path(), query, &[("host", &host)], payload, &t);
    req.header("x-amz-date", t)
        .header("x-amz-content-sha256", payload)
        .header("authorization", authorization)
}
