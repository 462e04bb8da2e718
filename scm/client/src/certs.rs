//! A node's certificate from the cluster's CA (SCM), when security is on: loaded from the
//! node's certificate directory while it is good, else asked for with the cluster's bootstrap
//! secret; installed as the process's TLS context and renewed before it expires.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_common::tls::{self, Identity, NodeCert, TlsContext};
use ozone_proto::scm as pb;
use pb::scm_security_service_client::ScmSecurityServiceClient;
use tonic::transport::Endpoint;

use crate::{Result, ScmClientError};

/// What a node needs to get its certificate.
#[derive(Clone, Debug)]
pub struct NodeCertSettings {
    pub identity: Identity,
    /// Host names and addresses the certificate names.
    pub names: Vec<String>,
    /// Where the key, certificate and CA certificate are kept.
    pub dir: PathBuf,
    /// SCM client addresses, asked in turn.
    pub scm: Vec<String>,
    /// `ozone.security.bootstrap.secret.file`.
    pub bootstrap_secret_file: PathBuf,
    /// `hdds.x509.renew.grace.duration`.
    pub renew_grace: Duration,
    /// How long to keep asking SCM for a first certificate (it may still be starting).
    pub wait: Duration,
}

impl NodeCertSettings {
    /// The settings of a node `identity` whose metadata directory is `meta_dir`, reachable at
    /// `hosts` (besides the machine's own names): the certificate directory
    /// (`hdds.x509.dir.name`), the SCMs' client addresses, the bootstrap secret file and the
    /// renewal grace period from `cfg`.
    pub fn from_config(
        cfg: &OzoneConfig,
        identity: Identity,
        hosts: &[String],
        meta_dir: &Path,
    ) -> Result<NodeCertSettings> {
        let mut names = tls::node_names();
        names.extend(hosts.iter().map(|h| tls::host_of(h)));
        names.sort();
        names.dedup();
        Ok(NodeCertSettings {
            identity,
            names,
            dir: meta_dir.join(cfg.get(keys::HDDS_X509_DIR_NAME)),
            scm: cfg.scm_client_addresses(),
            bootstrap_secret_file: tls::bootstrap_secret_file(cfg),
            renew_grace: cfg
                .get_duration(keys::HDDS_X509_RENEW_GRACE_DURATION)
                .map_err(security)?,
            wait: Duration::from_secs(300),
        })
    }
}

fn security(e: impl std::fmt::Display) -> ScmClientError {
    ScmClientError::Security(e.to_string())
}

/// Gets this node's certificate (from its directory, else from SCM), installs it as the
/// process's TLS context and starts renewing it in the background.
pub async fn prepare_node(settings: &NodeCertSettings) -> Result<Arc<TlsContext>> {
    let cert = match usable(settings)? {
        Some(cert) => cert,
        None => {
            let secret = tls::load_bootstrap_secret(&settings.bootstrap_secret_file, false)
                .map_err(security)?;
            let cert = first_certificate(settings, &secret).await?;
            cert.save(&settings.dir)
                .map_err(|e| security(format!("writing {}: {e}", settings.dir.display())))?;
            cert
        }
    };
    let ctx = TlsContext::node(&cert).map_err(security)?;
    tls::install(ctx.clone()).map_err(security)?;
    tokio::spawn(renew(settings.clone(), ctx.clone()));
    tracing::info!(identity = %settings.identity, "mutual TLS on every gRPC connection");
    Ok(ctx)
}

/// The id this node's kept certificate names for `role`, if it has one: a gateway keeps the id
/// of its first certificate across restarts (its host name may change with its container).
pub fn kept_id(cfg: &OzoneConfig, meta_dir: &Path, role: tls::NodeRole) -> Option<String> {
    let dir = meta_dir.join(cfg.get(keys::HDDS_X509_DIR_NAME));
    NodeCert::load(&dir)
        .ok()
        .flatten()
        .and_then(|c| c.info().ok())
        .and_then(|i| i.identity)
        .filter(|i| i.role == role)
        .map(|i| i.id)
}

/// The certificate in the node's directory, if it names this node and is not yet in its
/// renewal grace period. The host names it carries are not compared with today's: peers check
/// roles, not names, and a container's host name changes whenever it is recreated.
fn usable(settings: &NodeCertSettings) -> Result<Option<NodeCert>> {
    let Some(cert) = NodeCert::load(&settings.dir)
        .map_err(|e| security(format!("reading {}: {e}", settings.dir.display())))?
    else {
        return Ok(None);
    };
    let Ok(info) = cert.info() else {
        return Ok(None);
    };
    let good = info.identity.as_ref() == Some(&settings.identity)
        && SystemTime::now() + settings.renew_grace < info.not_after;
    Ok(good.then_some(cert))
}

/// Asks the SCMs in turn for a certificate, proving the bootstrap secret, until one answers
/// or `settings.wait` has passed.
async fn first_certificate(settings: &NodeCertSettings, secret: &str) -> Result<NodeCert> {
    let deadline = tokio::time::Instant::now() + settings.wait;
    loop {
        let mut last = String::from("no SCM is configured");
        for scm in &settings.scm {
            match ask(scm, &settings.identity, &settings.names, Some(secret)).await {
                Ok(cert) => return Ok(cert),
                Err(e) => last = format!("{scm}: {e}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(security(format!(
                "no SCM issued a certificate for {} (last: {last})",
                settings.identity
            )));
        }
        tracing::info!(%last, "waiting for SCM to issue this node's certificate");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One certificate request to the SCM at `address`: with the bootstrap secret's proof over a
/// channel that checks the answer by that proof, or (renewal) over this process's mutual TLS.
async fn ask(
    address: &str,
    identity: &Identity,
    names: &[String],
    secret: Option<&str>,
) -> std::result::Result<NodeCert, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(15));
    let channel = match secret {
        Some(_) => tls::bootstrap_channel(endpoint),
        None => tls::channel(endpoint, tls::NodeRole::Scm),
    };
    let mut client = ScmSecurityServiceClient::new(channel);
    let (key_pem, csr_pem) =
        tls::new_key_and_request(identity, names).map_err(|e| e.to_string())?;
    let role = identity.role.to_string();
    let proof = secret
        .map(|s| tls::request_proof(s, &role, &identity.id, &csr_pem))
        .unwrap_or_default();
    let answer = client
        .sign_certificate(pb::SignCertificateRequest {
            csr_pem,
            role,
            node_id: identity.id.clone(),
            proof,
        })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    if let Some(s) = secret
        && !tls::answer_proof_matches(
            s,
            &answer.cert_pem,
            &answer.ca_pem,
            &answer.ca_key_sealed,
            &answer.proof,
        )
    {
        return Err("the answer does not prove the bootstrap secret: not our cluster's SCM".into());
    }
    let cert = NodeCert {
        key_pem,
        cert_pem: answer.cert_pem,
        ca_pem: answer.ca_pem,
    };
    let info = cert.info().map_err(|e| e.to_string())?;
    if info.identity.as_ref() != Some(identity) {
        return Err(format!("SCM issued a certificate for {:?}", info.identity));
    }
    Ok(cert)
}

/// Renews the certificate when its grace period starts, over mutual TLS with the current one,
/// and presents the new one from then on.
async fn renew(settings: NodeCertSettings, ctx: Arc<TlsContext>) {
    loop {
        let not_after = ctx
            .node_cert()
            .map(|(_, info)| info.not_after)
            .unwrap_or_else(SystemTime::now);
        tokio::time::sleep(tls::renew_wait(not_after, settings.renew_grace)).await;
        let mut renewed = None;
        let mut last = String::new();
        for scm in &settings.scm {
            match ask(scm, &settings.identity, &settings.names, None).await {
                Ok(cert) => {
                    renewed = Some(cert);
                    break;
                }
                Err(e) => last = format!("{scm}: {e}"),
            }
        }
        let outcome = match renewed {
            Some(cert) => cert
                .save(&settings.dir)
                .map_err(|e| e.to_string())
                .and_then(|()| ctx.replace(&cert).map_err(|e| e.to_string()))
                .map(|()| cert.info().map(|i| i.serial).unwrap_or_default()),
            None => Err(last),
        };
        match outcome {
            Ok(serial) => tracing::info!(%serial, "renewed this node's certificate"),
            Err(e) => {
                tracing::warn!(error = %e, "renewing this node's certificate failed; retrying in 10 s");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

/// An administrator's tool: a short-lived `admin` certificate from SCM, proving the admin
/// credential, installed as the process's TLS context (kept in memory only).
pub async fn prepare_admin(
    scm: &[String],
    user: &str,
    admin_secret: &str,
) -> Result<Arc<TlsContext>> {
    let identity = Identity::new(tls::NodeRole::Admin, user);
    let mut last = String::from("no SCM is configured");
    for address in scm {
        match ask(address, &identity, &[], Some(admin_secret)).await {
            Ok(cert) => {
                let ctx = TlsContext::node(&cert).map_err(security)?;
                tls::install(ctx.clone()).map_err(security)?;
                return Ok(ctx);
            }
            Err(e) => last = format!("{address}: {e}"),
        }
    }
    Err(security(format!(
        "no SCM issued an administrator's certificate (last: {last})"
    )))
}
