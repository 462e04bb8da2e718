//! The command-line tools on a cluster with security on: every OM, SCM and datanode port
//! speaks mutual TLS and authorizes by certificate, so a tool that holds the admin credential
//! (`$OZONE_ADMIN_SECRET` or `ozone.om.admin.secret.file`) first gets a short-lived
//! administrator's certificate from SCM. Without the credential it still speaks TLS (trusting
//! `ozone.security.ca.file` when present) and the servers refuse what needs an identity.

use std::time::{Duration, Instant};

use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_common::tls;

type BoxError = Box<dyn std::error::Error>;

/// The user an administrator's certificate names: `$USER`, else `admin`.
fn user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| tls::Identity::valid_id(u))
        .unwrap_or_else(|| "admin".into())
}

/// Sets up this process's TLS context for a tool when `cfg` has security on; waits up to
/// `wait` for an SCM to issue the certificate (a cluster that is starting).
pub async fn prepare_tool(cfg: &OzoneConfig, wait: Duration) -> Result<(), BoxError> {
    if !cfg.get_bool(keys::OZONE_SECURITY_ENABLED)? || tls::context().is_some() {
        return Ok(());
    }
    let secret = crate::s3::admin_token(cfg).unwrap_or_default();
    if secret.is_empty() {
        if let Ok(ca) = std::fs::read_to_string(tls::ca_file(cfg)) {
            tls::install(tls::TlsContext::client_only(&ca)?)?;
        }
        return Ok(());
    }
    let scms = cfg.scm_client_addresses();
    let deadline = Instant::now() + wait;
    loop {
        match scm_client::certs::prepare_admin(&scms, &user(), &secret).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(e) => {
                tracing::debug!(error = %e, "no administrator's certificate yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
