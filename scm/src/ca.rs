//! The cluster's certificate authority (security on), as Ozone's SCM CA.
//!
//! The primordial SCM (`ozone.scm.primordial.node.id`, else the first SCM of the service)
//! creates a root key and self-signed certificate in `<SCM db dir>/ca/` at its first start,
//! with the cluster's bootstrap secret beside them. Every other SCM, at its first start, asks
//! an SCM that has the CA for a certificate with the bootstrap secret and receives the CA key
//! sealed with it, so that any SCM can issue certificates (leader or not: issuing touches no
//! replicated state, and the SCMs need their own certificates before they can elect a leader).
//! Each SCM keeps the certificates it issued in `ca/issued/<serial>.pem`.
//!
//! A node proves it may have a certificate with the bootstrap secret (a MAC over its request)
//! or, to renew, by presenting its current certificate over mutual TLS: then it may only ask
//! for its own identity.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_common::tls::{self, Identity, NodeCert, NodeRole, TlsContext};
use ozone_proto::scm as pb;
use tonic::{Request, Response, Status};

use crate::error::ScmError;

const CA_DIR: &str = "ca";
const CA_KEY: &str = "ca.key";
const CA_CERT: &str = "ca.crt";
const ISSUED_DIR: &str = "issued";

/// The CA key and certificate of this SCM, and what it issues with.
pub struct CertificateAuthority {
    dir: PathBuf,
    key_pem: String,
    cert_pem: String,
    /// This SCM's node id, recorded with what it issues.
    node_id: String,
    validity: Duration,
    /// When `ca/issued/` was last cleared of expired certificates (see [`Self::prune`]).
    pruned: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often issuing a certificate also clears the expired ones from `ca/issued/`: tools get a
/// one-hour certificate per run, so the directory holds about an hour of them plus the nodes'.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("dir", &self.dir)
            .finish()
    }
}

fn ca_err(what: &str, e: impl std::fmt::Display) -> ScmError {
    ScmError::Security(format!("{what}: {e}"))
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> ScmError {
    move |source| ScmError::Io { what, source }
}

impl CertificateAuthority {
    /// The CA of `db_dir`, if this SCM has one.
    pub fn open(
        db_dir: &Path,
        node_id: &str,
        validity: Duration,
    ) -> Result<Option<Self>, ScmError> {
        let dir = db_dir.join(CA_DIR);
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading {}", dir.join(name).display()))(e)),
        };
        let (Some(key_pem), Some(cert_pem)) = (read(CA_KEY)?, read(CA_CERT)?) else {
            return Ok(None);
        };
        Ok(Some(CertificateAuthority {
            dir,
            key_pem,
            cert_pem,
            node_id: node_id.to_string(),
            validity,
            pruned: std::sync::Mutex::new(None),
        }))
    }

    /// Creates a new root CA in `db_dir` (the primordial SCM's first start), valid for
    /// `ca_validity`.
    pub fn create(
        db_dir: &Path,
        node_id: &str,
        validity: Duration,
        ca_validity: Duration,
    ) -> Result<Self, ScmError> {
        let key = rcgen::KeyPair::generate().map_err(|e| ca_err("generating the CA key", e))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("Ozone-RS root CA {}", uuid::Uuid::new_v4()),
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + ca_validity;
        params.serial_number = Some(serial()?);
        let cert = params
            .self_signed(&key)
            .map_err(|e| ca_err("creating the CA certificate", e))?;
        let ca = Self::install(db_dir, node_id, validity, &key.serialize_pem(), &cert.pem())?;
        tracing::info!(dir = %ca.dir.display(), "created the cluster's root CA");
        Ok(ca)
    }

    /// Stores a CA received from another SCM (or just created) in `db_dir`.
    pub fn install(
        db_dir: &Path,
        node_id: &str,
        validity: Duration,
        key_pem: &str,
        cert_pem: &str,
    ) -> Result<Self, ScmError> {
        rcgen::KeyPair::from_pem(key_pem).map_err(|e| ca_err("reading the CA key", e))?;
        tls::pem_certs(cert_pem)?;
        let dir = db_dir.join(CA_DIR);
        std::fs::create_dir_all(dir.join(ISSUED_DIR))
            .map_err(io_err(format!("creating {}", dir.display())))?;
        tls::write_private(&dir.join(CA_KEY), key_pem.as_bytes())
            .map_err(io_err(format!("writing {}", dir.join(CA_KEY).display())))?;
        tls::write_private(&dir.join(CA_CERT), cert_pem.as_bytes())
            .map_err(io_err(format!("writing {}", dir.join(CA_CERT).display())))?;
        ozone_common::fsync_dir(&dir).map_err(io_err(format!("syncing {}", dir.display())))?;
        Ok(CertificateAuthority {
            dir,
            key_pem: key_pem.to_string(),
            cert_pem: cert_pem.to_string(),
            node_id: node_id.to_string(),
            validity,
            pruned: std::sync::Mutex::new(None),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate for `identity` over the public key of `csr_pem` (whose signature
    /// must verify), naming the host names and addresses the request names, valid for the
    /// configured duration (at most `limit`); records it in `ca/issued/`.
    pub fn sign(
        &self,
        csr_pem: &str,
        identity: &Identity,
        limit: Option<Duration>,
    ) -> Result<String, ScmError> {
        if !Identity::valid_id(&identity.id) {
            return Err(ScmError::InvalidArgument(format!(
                "{:?} cannot name a node in a certificate",
                identity.id
            )));
        }
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| ScmError::InvalidArgument(format!("bad certificate request: {e}")))?;
        let names: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .filter_map(|san| match san {
                rcgen::SanType::DnsName(n) => Some(n.to_string()),
                rcgen::SanType::IpAddress(ip) => Some(ip.to_string()),
                _ => None,
            })
            .collect();
        let p = &mut csr.params;
        p.subject_alt_names = tls::san_list(identity, &names)?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, identity.to_string());
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + limit.map_or(self.validity, |l| l.min(self.validity));
        p.serial_number = Some(serial()?);
        p.use_authority_key_identifier_extension = true;
        let key =
            rcgen::KeyPair::from_pem(&self.key_pem).map_err(|e| ca_err("reading the CA key", e))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.cert_pem, &key)
            .map_err(|e| ca_err("reading the CA certificate", e))?;
        let cert = csr
            .signed_by(&issuer)
            .map_err(|e| ca_err("signing a certificate", e))?;
        let pem = cert.pem();
        let info = tls::cert_info(cert.der())?;
        let path = self
            .dir
            .join(ISSUED_DIR)
            .join(format!("{}.pem", info.serial));
        tls::write_private(&path, pem.as_bytes())
            .map_err(io_err(format!("writing {}", path.display())))?;
        tracing::info!(%identity, serial = %info.serial, names = ?info.names, "issued a certificate");
        self.prune_hourly();
        Ok(pem)
    }

    /// Clears expired certificates from `ca/issued/`, at most once per [`PRUNE_EVERY`].
    fn prune_hourly(&self) {
        let mut last = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        *last = Some(std::time::Instant::now());
        drop(last);
        match self.prune(SystemTime::now()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                removed = n,
                "cleared expired certificates from the CA's record"
            ),
            Err(e) => tracing::warn!(error = %e, "clearing expired certificates failed"),
        }
    }

    /// Removes the recorded certificates that expired before `now`; returns how many.
    pub fn prune(&self, now: SystemTime) -> Result<usize, ScmError> {
        let mut removed = 0;
        for cert in self.issued()? {
            if UNIX_EPOCH + Duration::from_millis(cert.not_after_ms) < now {
                let path = self
                    .dir
                    .join(ISSUED_DIR)
                    .join(format!("{}.pem", cert.serial));
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("removing {}", path.display())))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The certificates this SCM issued, oldest first.
    pub fn issued(&self) -> Result<Vec<pb::CertificateRecord>, ScmError> {
        let dir = self.dir.join(ISSUED_DIR);
        let entries =
            std::fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(io_err(format!("listing {}", dir.display())))?
                .path();
            if path.extension().is_none_or(|e| e != "pem") {
                continue;
            }
            let pem = std::fs::read_to_string(&path)
                .map_err(io_err(format!("reading {}", path.display())))?;
            let Ok(info) = tls::pem_certs(&pem).and_then(|c| tls::cert_info(&c[0])) else {
                tracing::warn!(file = %path.display(), "unreadable issued certificate");
                continue;
            };
            let (role, node_id) = info
                .identity
                .map(|i| (i.role.to_string(), i.id))
                .unwrap_or_default();
            out.push(pb::CertificateRecord {
                serial: info.serial,
                role,
                node_id,
                not_before_ms: ms(info.not_before),
                not_after_ms: ms(info.not_after),
                cert_pem: pem,
                issuer_node: self.node_id.clone(),
            });
        }
        out.sort_by_key(|r| (r.not_before_ms, r.serial.clone()));
        Ok(out)
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A random positive 128-bit serial number.
fn serial() -> Result<rcgen::SerialNumber, ScmError> {
    let mut b = [0u8; 16];
    tls::rand_bytes(&mut b)?;
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Ok(rcgen::SerialNumber::from_slice(&b))
}

/// What the security settings of an SCM say.
#[derive(Clone, Debug)]
pub struct SecuritySettings {
    pub node_id: String,
    /// Whether this SCM creates the root CA when none exists.
    pub primordial: bool,
    pub bootstrap_secret_file: PathBuf,
    /// The other SCMs' client addresses, asked for the CA by a non-primordial SCM.
    pub peers: Vec<String>,
    pub cert_dir: PathBuf,
    pub validity: Duration,
    pub ca_validity: Duration,
    pub renew_grace: Duration,
    /// The host names and addresses this SCM's certificate names.
    pub names: Vec<String>,
    /// Where the CA certificate is published for command-line tools (`ozone.security.ca.file`).
    pub ca_file: PathBuf,
}

impl SecuritySettings {
    pub fn from_config(cfg: &OzoneConfig, db_dir: &Path) -> Result<Self, ScmError> {
        let nodes = cfg.scm_nodes()?;
        let node_id = crate::ha::ha_settings(cfg)?.me.node_id;
        let primordial_id = cfg
            .get_opt(keys::OZONE_SCM_PRIMORDIAL_NODE_ID)
            .or_else(|| nodes.first().map(|n| n.node_id.clone()))
            .unwrap_or_else(|| node_id.clone());
        let mine = nodes.iter().find(|n| n.node_id == node_id);
        let mut names = tls::node_names();
        if let Some(n) = mine {
            names.push(tls::host_of(&n.client));
            names.push(tls::host_of(&n.datanode));
        }
        names.sort();
        names.dedup();
        Ok(SecuritySettings {
            primordial: primordial_id == node_id,
            bootstrap_secret_file: tls::bootstrap_secret_file(cfg),
            peers: nodes
                .iter()
                .filter(|n| n.node_id != node_id)
                .map(|n| n.client.clone())
                .collect(),
            node_id,
            cert_dir: db_dir.join(cfg.get(keys::HDDS_X509_DIR_NAME)),
            validity: cfg.get_duration(keys::HDDS_X509_DEFAULT_DURATION)?,
            ca_validity: cfg.get_duration(keys::HDDS_X509_MAX_DURATION)?,
            renew_grace: cfg.get_duration(keys::HDDS_X509_RENEW_GRACE_DURATION)?,
            names,
            ca_file: tls::ca_file(cfg),
        })
    }
}

/// The certificate authority of this SCM when security is on: opened, created (primordial)
/// or copied from another SCM; then this SCM's own certificate, issued by itself, installed as
/// the process's TLS context. Returns the CA for the security service.
pub async fn prepare(
    settings: &SecuritySettings,
    db_dir: &Path,
) -> Result<Arc<CertificateAuthority>, ScmError> {
    let secret = tls::load_bootstrap_secret(&settings.bootstrap_secret_file, settings.primordial)?;
    let ca = match CertificateAuthority::open(db_dir, &settings.node_id, settings.validity)? {
        Some(ca) => ca,
        None if settings.primordial => CertificateAuthority::create(
            db_dir,
            &settings.node_id,
            settings.validity,
            settings.ca_validity,
        )?,
        None => copy_ca(settings, db_dir, &secret).await?,
    };
    let ca = Arc::new(ca);
    // The CA certificate for command-line tools, beside the bootstrap secret.
    if let Some(dir) = settings.ca_file.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    }
    tls::write_private(&settings.ca_file, ca.cert_pem().as_bytes())
        .map_err(io_err(format!("writing {}", settings.ca_file.display())))?;
    let cert = own_certificate(&ca, settings)?;
    let ctx = TlsContext::node(&cert)?;
    tls::install(ctx.clone())?;
    tokio::spawn(renew_own(ca.clone(), settings.clone(), ctx));
    Ok(ca)
}

/// This SCM's certificate: the one in its certificate directory while valid beyond the grace
/// period (names are not compared: see scm-client's `certs`), else a new one issued by its own
/// CA.
fn own_certificate(
    ca: &CertificateAuthority,
    settings: &SecuritySettings,
) -> Result<NodeCert, ScmError> {
    let me = Identity::new(NodeRole::Scm, settings.node_id.clone());
    let dir = &settings.cert_dir;
    if let Some(cert) = NodeCert::load(dir).map_err(io_err(format!("reading {}", dir.display())))?
        && cert.ca_pem.trim() == ca.cert_pem().trim()
        && let Ok(info) = cert.info()
        && info.identity.as_ref() == Some(&me)
        && SystemTime::now() + settings.renew_grace < info.not_after
    {
        return Ok(cert);
    }
    issue_own(ca, settings, &me)
}

fn issue_own(
    ca: &CertificateAuthority,
    settings: &SecuritySettings,
    me: &Identity,
) -> Result<NodeCert, ScmError> {
    let (key_pem, csr) = tls::new_key_and_request(me, &settings.names)?;
    let cert = NodeCert {
        key_pem,
        cert_pem: ca.sign(&csr, me, None)?,
        ca_pem: ca.cert_pem().to_string(),
    };
    cert.save(&settings.cert_dir)
        .map_err(io_err(format!("writing {}", settings.cert_dir.display())))?;
    Ok(cert)
}

/// Renews this SCM's certificate before it expires, for as long as the process runs.
async fn renew_own(
    ca: Arc<CertificateAuthority>,
    settings: SecuritySettings,
    ctx: Arc<TlsContext>,
) {
    let me = Identity::new(NodeRole::Scm, settings.node_id.clone());
    loop {
        let not_after = ctx
            .node_cert()
            .map(|(_, info)| info.not_after)
            .unwrap_or_else(SystemTime::now);
        tokio::time::sleep(tls::renew_wait(not_after, settings.renew_grace)).await;
        match issue_own(&ca, &settings, &me).and_then(|c| Ok(ctx.replace(&c)?)) {
            Ok(()) => tracing::info!("renewed this SCM's certificate"),
            Err(e) => {
                tracing::warn!(error = %e, "renewing this SCM's certificate failed; retrying");
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        }
    }
}

/// A non-primordial SCM's first start: asks the other SCMs, in turn, until one answers with
/// the CA (it may still be starting), for up to 5 minutes.
async fn copy_ca(
    settings: &SecuritySettings,
    db_dir: &Path,
    secret: &str,
) -> Result<CertificateAuthority, ScmError> {
    let me = Identity::new(NodeRole::Scm, settings.node_id.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let mut last = String::from("no other SCM is configured");
    loop {
        for peer in &settings.peers {
            match ask_for_ca(peer, &me, &settings.names, secret).await {
                Ok((key_pem, ca_pem)) => {
                    tracing::info!(%peer, "copied the cluster's CA from another SCM");
                    return CertificateAuthority::install(
                        db_dir,
                        &settings.node_id,
                        settings.validity,
                        &key_pem,
                        &ca_pem,
                    );
                }
                Err(e) => last = format!("{peer}: {e}"),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ScmError::Security(format!(
                "no SCM answered with the cluster's CA (last: {last})"
            )));
        }
        tracing::info!(last = %last, "waiting for an SCM with the cluster's CA");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn ask_for_ca(
    peer: &str,
    me: &Identity,
    names: &[String],
    secret: &str,
) -> Result<(String, String), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{peer}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10));
    let mut client = pb::scm_security_service_client::ScmSecurityServiceClient::new(
        tls::bootstrap_channel(endpoint),
    );
    let (_, csr_pem) = tls::new_key_and_request(me, names).map_err(|e| e.to_string())?;
    let role = me.role.to_string();
    let proof = tls::request_proof(secret, &role, &me.id, &csr_pem);
    let answer = client
        .sign_certificate(pb::SignCertificateRequest {
            csr_pem,
            role,
            node_id: me.id.clone(),
            proof,
        })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    if !tls::answer_proof_matches(
        secret,
        &answer.cert_pem,
        &answer.ca_pem,
        &answer.ca_key_sealed,
        &answer.proof,
    ) {
        return Err("the answer's proof does not match our bootstrap secret".into());
    }
    if answer.ca_key_sealed.is_empty() {
        return Err("the answer carries no CA key".into());
    }
    let key_pem = tls::open_ca_key(secret, &answer.ca_key_sealed).map_err(|e| e.to_string())?;
    Ok((key_pem, answer.ca_pem))
}

/// How long an administrator's certificate is valid.
pub const ADMIN_CERT_VALIDITY: Duration = Duration::from_secs(3600);

/// `ScmSecurityService`: issues and lists certificates.
#[derive(Clone)]
pub struct SecurityGrpc {
    ca: Arc<CertificateAuthority>,
    secret: Arc<String>,
    /// The admin credential's file (`ozone.om.admin.secret.file`), with which an
    /// administrator's tool gets a short-lived `admin` certificate. Read at each such request:
    /// OM may create it after this SCM started.
    admin_secret_file: Option<PathBuf>,
}

impl SecurityGrpc {
    pub fn new(
        ca: Arc<CertificateAuthority>,
        settings: &SecuritySettings,
        cfg: &OzoneConfig,
    ) -> Result<Self, ScmError> {
        let secret = tls::load_bootstrap_secret(&settings.bootstrap_secret_file, false)?;
        Ok(SecurityGrpc {
            ca,
            secret: Arc::new(secret),
            admin_secret_file: cfg
                .get_opt(keys::OZONE_OM_ADMIN_SECRET_FILE)
                .map(PathBuf::from),
        })
    }

    /// The admin credential, if this SCM is given its file and the file holds one.
    fn admin_secret(&self) -> Option<Arc<String>> {
        let file = self.admin_secret_file.as_ref()?;
        match std::fs::read_to_string(file) {
            Ok(s) if !s.trim().is_empty() => Some(Arc::new(s.trim().to_string())),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the admin credential");
                None
            }
        }
    }
}

#[tonic::async_trait]
impl pb::scm_security_service_server::ScmSecurityService for SecurityGrpc {
    async fn sign_certificate(
        &self,
        request: Request<pb::SignCertificateRequest>,
    ) -> Result<Response<pb::SignCertificateResponse>, Status> {
        let caller = tls::caller(&request).cloned();
        let r = request.into_inner();
        let role = NodeRole::parse(&r.role)
            .ok_or_else(|| Status::invalid_argument(format!("unknown node role {:?}", r.role)))?;
        let identity = Identity::new(role, r.node_id.clone());
        // The secret the request proved, when it is a first certificate.
        let proved: Option<Arc<String>> = match caller {
            // Renewal: a node may only ask for its own identity.
            Some(c) if c == identity && role != NodeRole::Admin => None,
            Some(c) => {
                return Err(Status::permission_denied(format!(
                    "{c} may not ask for a certificate of {identity}"
                )));
            }
            None => {
                let key = if role == NodeRole::Admin {
                    self.admin_secret()
                } else {
                    Some(self.secret.clone())
                };
                match key {
                    Some(k)
                        if !r.proof.is_empty()
                            && tls::request_proof_matches(
                                &k, &r.role, &r.node_id, &r.csr_pem, &r.proof,
                            ) =>
                    {
                        Some(k)
                    }
                    _ => {
                        tracing::warn!(%identity, "certificate request without a valid proof");
                        return Err(Status::unauthenticated(if role == NodeRole::Admin {
                            "an administrator's certificate needs the admin credential"
                        } else {
                            "a first certificate needs the cluster's bootstrap secret"
                        }));
                    }
                }
            }
        };
        let ca = self.ca.clone();
        let csr = r.csr_pem.clone();
        let id = identity.clone();
        let limit = (role == NodeRole::Admin).then_some(ADMIN_CERT_VALIDITY);
        let cert_pem = tokio::task::spawn_blocking(move || ca.sign(&csr, &id, limit))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        let ca_pem = self.ca.cert_pem().to_string();
        // Another SCM gets the CA key too, sealed with the bootstrap secret it proved.
        let ca_key_sealed = match &proved {
            Some(k) if role == NodeRole::Scm => {
                tls::seal_ca_key(k, self.ca.key_pem()).map_err(ScmError::from)?
            }
            _ => Vec::new(),
        };
        let proof = proved
            .map(|k| tls::answer_proof(&k, &cert_pem, &ca_pem, &ca_key_sealed))
            .unwrap_or_default();
        Ok(Response::new(pb::SignCertificateResponse {
            cert_pem,
            ca_pem,
            ca_key_sealed,
            proof,
        }))
    }

    async fn list_certificates(
        &self,
        _request: Request<pb::ListCertificatesRequest>,
    ) -> Result<Response<pb::ListCertificatesResponse>, Status> {
        let ca = self.ca.clone();
        let certificates = tokio::task::spawn_blocking(move || ca.issued())
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(pb::ListCertificatesResponse { certificates }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_issues_certificates_naming_the_identity_and_the_requested_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::create(
            dir.path(),
            "scm1",
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
        )
        .unwrap();
        let me = Identity::new(NodeRole::Datanode, "6f1c2d7e-0000-4000-8000-000000000001");
        let (key_pem, csr) =
            tls::new_key_and_request(&me, &["10.0.0.7".into(), "dn7".into()]).unwrap();
        // The request's own identity URI is replaced by the one SCM decided.
        let other = Identity::new(NodeRole::Om, "om1");
        let cert_pem = ca.sign(&csr, &other, None).unwrap();
        let cert = NodeCert {
            key_pem,
            cert_pem,
            ca_pem: ca.cert_pem().to_string(),
        };
        let info = cert.info().unwrap();
        assert_eq!(info.identity, Some(other));
        assert!(
            info.names.contains(&"10.0.0.7".to_string()) && info.names.contains(&"dn7".to_string())
        );
        let left = info.not_after.duration_since(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3500));
        // The pair is usable and the CA reopens from disk with what it issued.
        TlsContext::node(&cert).unwrap();
        let again = CertificateAuthority::open(dir.path(), "scm1", Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_eq!(again.cert_pem(), ca.cert_pem());
        let issued = again.issued().unwrap();
        assert_eq!(issued.len(), 1);
        assert_eq!(
            (issued[0].role.as_str(), issued[0].node_id.as_str()),
            ("om", "om1")
        );
        // Expired records are cleared; valid ones stay.
        assert_eq!(again.prune(SystemTime::now()).unwrap(), 0);
        assert_eq!(
            again
                .prune(SystemTime::now() + Duration::from_secs(7200))
                .unwrap(),
            1
        );
        assert!(again.issued().unwrap().is_empty());
        // A request whose signature does not verify is refused.
        let bad = csr.replace("A", "B");
        assert!(ca.sign(&bad, &me, None).is_err());
    }
}
