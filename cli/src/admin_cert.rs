//! `ozone admin cert list|info` (security on): the certificates the cluster's CA issued, as
//! every SCM records those it issued itself (Ozone's `ozone admin cert list/info`).

use std::time::{Duration, UNIX_EPOCH};

use clap::Subcommand;
use ozone_common::OzoneConfig;
use ozone_common::tls::{self, NodeRole};
use ozone_proto::scm::scm_security_service_client::ScmSecurityServiceClient;
use ozone_proto::scm::{CertificateRecord, ListCertificatesRequest};
use serde_json::json;

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, Subcommand)]
pub enum CertCmd {
    /// Lists issued certificates, oldest first: serial, role, node, validity, issuing SCM.
    List {
        /// Only certificates of this role (om, scm, datanode, s3g, admin).
        #[arg(long)]
        role: Option<String>,
        /// Print JSON: an array of {"serial", "role", "node_id", "not_before_ms",
        /// "not_after_ms", "issuer_node"}.
        #[arg(long)]
        json: bool,
    },
    /// Shows one certificate (by serial number, hex) with its PEM text.
    Info { serial: String },
}

/// The certificates every reachable SCM issued, by serial, oldest first.
async fn issued(cfg: &OzoneConfig) -> Result<Vec<CertificateRecord>, BoxError> {
    let mut all: Vec<CertificateRecord> = Vec::new();
    let mut errors = Vec::new();
    for address in cfg.scm_client_addresses() {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10));
        let mut client = ScmSecurityServiceClient::new(tls::channel(endpoint, NodeRole::Scm));
        match client.list_certificates(ListCertificatesRequest {}).await {
            Ok(r) => all.extend(r.into_inner().certificates),
            Err(e) => errors.push(format!("{address}: {}", e.message())),
        }
    }
    if all.is_empty() && !errors.is_empty() {
        return Err(format!("no SCM listed its certificates: {}", errors.join("; ")).into());
    }
    all.sort_by(|a, b| (a.not_before_ms, &a.serial).cmp(&(b.not_before_ms, &b.serial)));
    all.dedup_by(|a, b| a.serial == b.serial);
    Ok(all)
}

fn time(ms: u64) -> String {
    let t = time::OffsetDateTime::from(UNIX_EPOCH + Duration::from_millis(ms));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}

pub async fn run(cfg: &OzoneConfig, cmd: CertCmd) -> Result<String, BoxError> {
    match cmd {
        CertCmd::List { role, json } => {
            let certs: Vec<CertificateRecord> = issued(cfg)
                .await?
                .into_iter()
                .filter(|c| role.as_deref().is_none_or(|r| r == c.role))
                .collect();
            if json {
                let rows: Vec<_> = certs
                    .iter()
                    .map(|c| {
                        json!({"serial": c.serial, "role": c.role, "node_id": c.node_id,
                               "not_before_ms": c.not_before_ms, "not_after_ms": c.not_after_ms,
                               "issuer_node": c.issuer_node})
                    })
                    .collect();
                return Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?));
            }
            let mut out = format!(
                "{:<34} {:<9} {:<38} {:<21} {:<21} {}\n",
                "SERIAL", "ROLE", "NODE", "VALID FROM", "VALID UNTIL", "ISSUER"
            );
            for c in &certs {
                out.push_str(&format!(
                    "{:<34} {:<9} {:<38} {:<21} {:<21} {}\n",
                    c.serial,
                    c.role,
                    c.node_id,
                    time(c.not_before_ms),
                    time(c.not_after_ms),
                    c.issuer_node
                ));
            }
            out.push_str(&format!("Total: {}\n", certs.len()));
            Ok(out)
        }
        CertCmd::Info { serial } => {
            let serial = serial.to_ascii_lowercase().replace(':', "");
            let cert = issued(cfg)
                .await?
                .into_iter()
                .find(|c| c.serial == serial)
                .ok_or_else(|| format!("no certificate with serial {serial}"))?;
            let info = tls::pem_certs(&cert.cert_pem).and_then(|c| tls::cert_info(&c[0]))?;
            Ok(format!(
                "Serial: {}\nSubject: {}\nIssuer: {}\nIdentity: {}/{}\nNames: {}\nValid from: {}\nValid until: {}\nIssued by SCM: {}\n{}",
                cert.serial,
                info.subject,
                info.issuer,
                cert.role,
                cert.node_id,
                info.names.join(", "),
                time(cert.not_before_ms),
                time(cert.not_after_ms),
                cert.issuer_node,
                cert.cert_pem
            ))
        }
    }
}
