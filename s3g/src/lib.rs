//! The S3 gateway (`ozone s3g`): an actix-web server speaking the S3 REST API, turning each
//! request into OM metadata calls and datanode block I/O. Stateless: any number of gateways can
//! serve one cluster.
//!
//! Request flow: [`router::Endpoint::parse`] picks the operation once, [`auth`] names the user
//! (with security on, [`security`] checks the SigV4 signature with OM and the bucket's ACL),
//! a thin handler in [`handlers`] reads headers and writes XML, [`object_io`] streams bodies to
//! and from the datanodes, and every error is rendered by [`error::S3Error`]. [`browser`] serves
//! the bucket browser page (`?browser=true`).

pub mod auth;
pub mod body;
pub mod browser;
pub mod checksum;
pub mod chunked;
pub mod error;
mod handlers;
pub mod object_io;
pub mod router;
pub mod security;
pub mod sigv4;
pub mod xml;

use std::future::Future;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use datanode_client::DatanodeClients;
use om_client::OmClient;
use ozone_common::{Metrics, OzoneConfig};

use crate::error::{S3Error, S3ErrorCode, S3Result};
pub use crate::handlers::parse_range;
use crate::router::{Endpoint, Query};
use ozone_common::config::keys;

#[derive(Debug, thiserror::Error)]
pub enum S3gError {
    #[error("configuration: {0}")]
    Config(#[from] ozone_common::ConfigError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("OM client: {0}")]
    Om(String),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// Settings the gateway reads from the configuration once.
#[derive(Clone, Debug)]
pub struct Settings {
    pub volume: String,
    pub chunk_size: usize,
    /// Body bytes gathered before they go to the datanodes (`ozone.s3g.client.buffer.size`).
    pub buffer_size: usize,
    pub bytes_per_checksum: u32,
    /// Bytes of the current block kept to rewrite it elsewhere if its replicas fail
    /// (`ozone.client.stream.buffer.max.size`).
    pub retry_buffer: u64,
    pub max_keys: u32,
    pub domains: Vec<String>,
    /// `ozone.security.enabled`: SigV4 checked against OM's secrets, owners and ACLs enforced.
    pub security: bool,
}

impl Settings {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, S3gError> {
        let chunk_size = cfg
            .get_bytes(keys::OZONE_SCM_CHUNK_SIZE)?
            .clamp(64 * 1024, 32 << 20) as usize;
        let bytes_per_checksum = cfg
            .get_bytes(keys::OZONE_CLIENT_BYTES_PER_CHECKSUM)?
            .clamp(512, chunk_size as u64) as u32;
        let buffer_size = cfg
            .get_bytes(keys::OZONE_S3G_CLIENT_BUFFER_SIZE)?
            .clamp(64 * 1024, chunk_size as u64) as usize;
        Ok(Settings {
            security: cfg.get_bool(keys::OZONE_SECURITY_ENABLED)?,
            volume: cfg.get(keys::OZONE_S3G_VOLUME_NAME),
            chunk_size,
            buffer_size,
            bytes_per_checksum,
            retry_buffer: cfg.get_bytes(keys::OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE)?,
            max_keys: cfg
                .get_u64(keys::OZONE_S3G_LIST_MAX_KEYS_LIMIT)?
                .clamp(1, 100_000) as u32,
            domains: cfg
                .get(keys::OZONE_S3G_DOMAIN_NAME)
                .split(',')
                .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        })
    }
}

/// Everything a request handler needs; shared by all workers.
pub struct Gateway {
    pub om: OmClient,
    pub dn: DatanodeClients,
    /// SCM (`ozone.scm.client.address`), asked where a container's replicas are now when none
    /// of the replicas recorded with a key can serve a read.
    pub scm: Option<scm_client::ScmClient>,
    pub settings: Settings,
    pub metrics: Metrics,
}

/// A running gateway.
pub struct S3gHandle {
    pub s3_addr: std::net::SocketAddr,
    pub admin_addr: std::net::SocketAddr,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl S3gHandle {
    /// Stops accepting, lets in-flight requests finish, then returns.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
    }

    pub async fn wait(self) -> Result<(), S3gError> {
        Ok(self.server.await.map_err(std::io::Error::other)??)
    }
}

/// Starts the S3 and web admin servers.
pub async fn start(cfg: &OzoneConfig) -> Result<S3gHandle, S3gError> {
    let settings = Settings::from_config(cfg)?;
    let om_addresses = cfg.om_addresses();
    let om_address = om_addresses.join(",");
    let om = OmClient::connect(om_addresses).map_err(|e| S3gError::Om(e.to_string()))?;
    let metrics = Metrics::new("s3g");
    let scm = match scm_client::ScmClient::connect(&cfg.scm_client_address()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no SCM client: reads use only the replicas recorded with keys");
            None
        }
    };
    let gw = web::Data::new(Gateway {
        om,
        dn: DatanodeClients::new(),
        scm,
        settings,
        metrics: metrics.clone(),
    });
    let addr = cfg.get(keys::OZONE_S3G_HTTP_ADDRESS);
    let workers = match cfg.get_u64(keys::OZONE_S3G_WORKERS)? {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n as usize,
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(gw.clone())
            .default_service(web::to(dispatch))
    })
    .workers(workers)
    .disable_signals()
    .bind(&addr)
    .map_err(|source| S3gError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let s3_addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    let server = server.run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    let admin = cfg.get(keys::OZONE_S3G_WEBADMIN_HTTP_ADDRESS);
    let status: ozone_common::http::StatusFn = Arc::new(move || {
        vec![
            ("s3 endpoint".to_string(), s3_addr.to_string()),
            ("om".to_string(), om_address.clone()),
        ]
    });
    let admin_addr = ozone_common::http::serve(&admin, metrics, status)
        .await
        .map_err(|source| S3gError::Bind {
            addr: admin.clone(),
            source,
        })?;
    tracing::info!(%s3_addr, %admin_addr, "S3 gateway started");
    Ok(S3gHandle {
        s3_addr,
        admin_addr,
        handle,
        server,
    })
}

/// Runs the gateway until `shutdown` resolves.
pub async fn run(
    cfg: OzoneConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), S3gError> {
    let handle = start(&cfg).await?;
    shutdown.await;
    tracing::info!("S3 gateway stopping");
    handle.stop().await;
    Ok(())
}

/// A request's target after virtual-host and path-style resolution.
pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

fn resolve_target(req: &HttpRequest, domains: &[String]) -> S3Result<Target> {
    let raw_path = req.uri().path();
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
    if let Some(host) = host {
        for d in domains {
            if let Some(bucket) = host
                .strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
            {
                let key = raw_path.strip_prefix('/').unwrap_or(raw_path);
                return Ok(Target {
                    bucket: Some(bucket.to_string()),
                    key: (!key.is_empty())
                        .then(|| router::decode_path(key))
                        .transpose()?,
                });
            }
        }
    }
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    if path.is_empty() {
        return Ok(Target {
            bucket: None,
            key: None,
        });
    }
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, (!k.is_empty()).then_some(k)),
        None => (path, None),
    };
    Ok(Target {
        bucket: Some(router::decode_path(bucket)?),
        key: key.map(router::decode_path).transpose()?,
    })
}

fn request_id() -> String {
    let id = uuid::Uuid::new_v4();
    hex::encode_upper(&id.as_bytes()[..8])
}

async fn dispatch(req: HttpRequest, payload: web::Payload, gw: web::Data<Gateway>) -> HttpResponse {
    let rid = request_id();
    let is_head = req.method() == Method::HEAD;
    let start = std::time::Instant::now();
    let mut op = "Unknown";
    let result = route(&req, payload, &gw, &mut op).await;
    let mut resp = match result {
        Ok(r) => {
            gw.metrics.observe(op, true, start.elapsed());
            r
        }
        Err(mut e) => {
            gw.metrics.observe(op, false, start.elapsed());
            if e.code == S3ErrorCode::InternalError {
                tracing::warn!(request_id = %rid, op, method = %req.method(), path = %req.path(), "internal error");
            } else {
                tracing::debug!(request_id = %rid, op, code = e.code.as_str(), "request failed");
            }
            e.request_id = Some(rid.clone());
            e.no_body = is_head;
            actix_web::ResponseError::error_response(&e)
        }
    };
    let h = resp.headers_mut();
    let ins = |h: &mut actix_web::http::header::HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(v) {
            h.insert(actix_web::http::header::HeaderName::from_static(k), v);
        }
    };
    ins(h, "x-amz-request-id", &rid);
    ins(h, "x-amz-id-2", &rid);
    ins(h, "server", "Ozone-RS");
    resp
}

async fn route(
    req: &HttpRequest,
    payload: web::Payload,
    gw: &Gateway,
    op: &mut &'static str,
) -> S3Result<HttpResponse> {
    let target = resolve_target(req, &gw.settings.domains)?;
    let query = Query::parse(req.query_string())?;
    let copy_source = req.headers().contains_key("x-amz-copy-source");
    let endpoint = Endpoint::parse(
        req.method(),
        target.bucket.as_deref(),
        target.key.as_deref(),
        &query,
        copy_source,
    )
    .map_err(|e| match &target.bucket {
        Some(b) => e.with_resource(format!("/{b}")),
        None => e,
    })?;
    *op = endpoint.name();
    if endpoint == Endpoint::Browser {
        // The page is static and public; every S3 call its script makes is signed and
        // authenticated like any other request.
        return Ok(browser::page(gw.settings.security));
    }
    let identity = if gw.settings.security {
        let id = security::authenticate(gw, req, &query, target.bucket.as_deref()).await?;
        security::authorize(gw, &id, &endpoint, target.bucket.as_deref().unwrap_or("")).await?;
        id
    } else {
        security::Identity {
            user: auth::access_key(req, &query)?,
            authenticated: true,
            ..Default::default()
        }
    };
    let ctx = handlers::Ctx {
        gw,
        req,
        query: &query,
        user: identity.user.clone(),
        identity,
        bucket: target.bucket.unwrap_or_default(),
        key: target.key.unwrap_or_default(),
    };
    handlers::handle(ctx, endpoint, payload).await
}

impl From<S3gError> for S3Error {
    fn from(e: S3gError) -> Self {
        S3Error::internal(e)
    }
}
