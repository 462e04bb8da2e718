//! Starts the gateway's HTTP servers and turns each request into one response: route, authenticate,
//! authorize, handle, and render the error (logged here, once, with the request id).

use std::future::Future;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use datanode_client::DatanodeClients;
use om_client::OmClient;
use ozone_common::{Metrics, OzoneConfig};

use crate::config::S3gConfig;
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::gateway::Gateway;
use crate::router::{self, Endpoint, Query};
use crate::{auth, browser, handlers, security};
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
    #[error("HTTPS: {0}")]
    Tls(String),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// A running gateway.
pub struct S3gHandle {
    /// The S3 address: plain HTTP's, else (HTTPS only) HTTPS's.
    pub s3_addr: std::net::SocketAddr,
    /// The S3 HTTPS address (`ozone.s3g.https-address`), when set.
    pub s3_https_addr: Option<std::net::SocketAddr>,
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
    let config = S3gConfig::from_config(cfg)?;
    let om_addresses = cfg.om_addresses();
    let om_address = om_addresses.join(",");
    let om = OmClient::connect(om_addresses).map_err(|e| S3gError::Om(e.to_string()))?;
    let metrics = Metrics::new("s3g");
    let scm = match scm_client::ScmClient::connect_service(&cfg.scm_client_addresses()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "no SCM client: reads use only the replicas recorded with keys");
            None
        }
    };
    let gw = web::Data::new(Gateway {
        om,
        dn: DatanodeClients::from_config(cfg)?,
        scm,
        config,
        metrics: metrics.clone(),
    });
    let http_addr = cfg.get_opt(keys::OZONE_S3G_HTTP_ADDRESS);
    let https_addr = cfg.get_opt(keys::OZONE_S3G_HTTPS_ADDRESS);
    if http_addr.is_none() && https_addr.is_none() {
        return Err(S3gError::Tls(
            "neither ozone.s3g.http-address nor ozone.s3g.https-address is set".into(),
        ));
    }
    let tls = https_addr.as_ref().map(|_| tls_config(cfg)).transpose()?;
    let workers = match cfg.get_u64(keys::OZONE_S3G_WORKERS)? {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n as usize,
    };
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(gw.clone())
            .default_service(web::to(dispatch))
    })
    .workers(workers)
    .disable_signals();
    let bind_err = |addr: &str| {
        let addr = addr.to_string();
        move |source| S3gError::Bind { addr, source }
    };
    let mut s3_addr = None;
    if let Some(addr) = &http_addr {
        server = server.bind(addr).map_err(bind_err(addr))?;
        s3_addr = server.addrs().last().copied();
    }
    let mut s3_https_addr = None;
    if let (Some(addr), Some(tls)) = (&https_addr, tls) {
        server = server.bind_rustls_0_23(addr, tls).map_err(bind_err(addr))?;
        s3_https_addr = server.addrs().last().copied();
    }
    let s3_addr = s3_addr
        .or(s3_https_addr)
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    let server = server.run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    let admin = cfg.get(keys::OZONE_S3G_WEBADMIN_HTTP_ADDRESS);
    let status: ozone_common::http::StatusFn = Arc::new(move || {
        let mut rows = vec![("s3 endpoint".to_string(), s3_addr.to_string())];
        if let Some(a) = s3_https_addr {
            rows.push(("s3 https endpoint".to_string(), a.to_string()));
        }
        rows.push(("om".to_string(), om_address.clone()));
        rows
    });
    let admin_addr = ozone_common::http::serve(&admin, metrics, status)
        .await
        .map_err(|source| S3gError::Bind {
            addr: admin.clone(),
            source,
        })?;
    tracing::info!(%s3_addr, s3_https_addr = ?s3_https_addr, %admin_addr, "S3 gateway started");
    Ok(S3gHandle {
        s3_addr,
        s3_https_addr,
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
    if ozone_common::tls::wanted(&cfg)? {
        // Mutual TLS on the calls to OM, SCM and the datanodes.
        let tls_err = |e: scm_client::ScmClientError| ozone_common::ConfigError::Tls {
            what: "this gateway's certificate".into(),
            message: e.to_string(),
        };
        let dir =
            std::path::PathBuf::from(cfg.get(ozone_common::config::keys::OZONE_METADATA_DIRS))
                .join("s3g");
        // Its first certificate's id (the host name then), kept across restarts.
        let id = scm_client::certs::kept_id(&cfg, &dir, ozone_common::tls::NodeRole::S3g)
            .or_else(|| ozone_common::tls::node_names().pop())
            .unwrap_or_else(|| "s3g".into());
        let certs = scm_client::certs::NodeCertSettings::from_config(
            &cfg,
            ozone_common::tls::Identity::new(ozone_common::tls::NodeRole::S3g, id),
            &[],
            &dir,
        )
        .map_err(tls_err)?;
        scm_client::certs::prepare_node(&certs)
            .await
            .map_err(tls_err)?;
    }
    let handle = start(&cfg).await?;
    shutdown.await;
    tracing::info!("S3 gateway stopping");
    handle.stop().await;
    Ok(())
}

/// The HTTPS server settings: the certificate chain and key of `ozone.s3g.https.cert.file`
/// and `ozone.s3g.https.key.file` (PEM), rustls with the ring provider, no client certificates.
fn tls_config(cfg: &OzoneConfig) -> Result<rustls::ServerConfig, S3gError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file = |key: ozone_common::config::Key| {
        cfg.get_opt(key)
            .ok_or_else(|| S3gError::Tls(format!("ozone.s3g.https-address needs {key}")))
    };
    let cert_file = file(keys::OZONE_S3G_HTTPS_CERT_FILE)?;
    let key_file = file(keys::OZONE_S3G_HTTPS_KEY_FILE)?;
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| S3gError::Tls(format!("reading {cert_file}: {e}")))?;
    if certs.is_empty() {
        return Err(S3gError::Tls(format!("{cert_file} holds no certificate")));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| S3gError::Tls(format!("reading {key_file}: {e}")))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
    .map_err(|e| S3gError::Tls(format!("{cert_file} / {key_file}: {e}")))
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
    let result = route(&req, payload, &gw, &rid, &mut op).await;
    let mut resp = match result {
        Ok(r) => {
            gw.metrics.observe(op, true, start.elapsed());
            r
        }
        Err(mut e) => {
            gw.metrics.observe(op, false, start.elapsed());
            if e.code == S3ErrorCode::InternalError {
                // The one place an internal error is logged: here, with its request id.
                let detail = e.detail.as_deref().unwrap_or("");
                tracing::error!(request_id = %rid, op, method = %req.method(), path = %req.path(), error = detail, "internal error");
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
    request_id: &str,
    op: &mut &'static str,
) -> S3Result<HttpResponse> {
    let target = router::resolve_target(req, &gw.config.domains)?;
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
        return Ok(browser::page(gw.config.security, &gw.config.region));
    }
    let identity = if gw.config.security {
        let id = security::authenticate(gw, req, &query, target.bucket.as_deref()).await?;
        security::authorize(gw, &id, &endpoint, target.bucket.as_deref().unwrap_or("")).await?;
        id
    } else {
        let user = auth::access_key(req, &query)?;
        security::Identity {
            // Security off: any credentials authenticate; a request without is anonymous.
            authenticated: auth::has_credentials(req, &query),
            user,
            ..Default::default()
        }
    };
    let ctx = handlers::Ctx {
        gw,
        req,
        query: &query,
        request_id,
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
