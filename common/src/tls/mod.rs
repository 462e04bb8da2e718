//! Mutual TLS of the internal gRPC ports (`ozone.security.enabled=true`).
//!
//! Every OM, SCM, datanode and gateway holds a key and a certificate issued by the cluster's
//! CA (SCM, as in Ozone). The certificate names the holder in a URI subject alternative name,
//! `ozone://<role>/<id>` ([`Identity`]): servers read it from the client's certificate and
//! authorize each call by it; clients check that the server they reached holds a certificate
//! of the role they expect. Host names are not checked: nodes come and go with new addresses
//! (containers), and the role is what decides what a peer may do.
//!
//! A process installs its [`TlsContext`] once at start ([`install`]); then [`incoming`] accepts
//! TLS connections (a client without a certificate is let through the handshake, its calls then
//! find no identity and are refused by the service's check) and [`channel`] makes channels
//! that present the process's certificate. Without a context both are plain TCP, as with
//! security off. Certificates are replaced in place ([`TlsContext::replace`]) when they are
//! renewed: new connections use the new one.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::Stream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

use crate::config::ConfigError;

/// What a node of the cluster is; the first part of its certificate's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeRole {
    Om,
    Scm,
    Datanode,
    S3g,
    /// An administrator's tool (`ozone admin`, `ozone sh`): a short-lived certificate SCM
    /// issues to a caller that proves the admin credential.
    Admin,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Om => "om",
            NodeRole::Scm => "scm",
            NodeRole::Datanode => "datanode",
            NodeRole::S3g => "s3g",
            NodeRole::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<NodeRole> {
        Some(match s {
            "om" => NodeRole::Om,
            "scm" => NodeRole::Scm,
            "datanode" => NodeRole::Datanode,
            "s3g" => NodeRole::S3g,
            "admin" => NodeRole::Admin,
            _ => return None,
        })
    }
}

impl std::fmt::Display for NodeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who holds a certificate: a role and the node's id within it (an OM or SCM node id, a
/// datanode's uuid, a gateway's host name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub role: NodeRole,
    pub id: String,
}

const URI_PREFIX: &str = "ozone://";

impl Identity {
    pub fn new(role: NodeRole, id: impl Into<String>) -> Identity {
        Identity {
            role,
            id: id.into(),
        }
    }

    /// The subject alternative name carrying the identity: `ozone://<role>/<id>`.
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}/{}", self.role, self.id)
    }

    pub fn from_uri(uri: &str) -> Option<Identity> {
        let (role, id) = uri.strip_prefix(URI_PREFIX)?.split_once('/')?;
        if id.is_empty() {
            return None;
        }
        Some(Identity::new(NodeRole::parse(role)?, id))
    }

    /// Whether `id` can name a node in a certificate (the characters of host names and ids).
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 253
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.role, self.id)
    }
}

/// What a certificate says, read from its DER bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub identity: Option<Identity>,
    /// Serial number, lower-case hex.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The DNS names and IP addresses it names.
    pub names: Vec<String>,
}

/// Reads a certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, ConfigError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| tls_error("parsing a certificate", e))?;
    let mut identity = None;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => identity = identity.or_else(|| Identity::from_uri(uri)),
                GeneralName::DNSName(n) => names.push(n.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names
                        .push(std::net::Ipv4Addr::from([ip[0], ip[1], ip[2], ip[3]]).to_string()),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        names.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let time = |t: i64| UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    Ok(CertInfo {
        identity,
        serial: cert.raw_serial_as_string().replace(':', ""),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: time(cert.validity().not_before.timestamp()),
        not_after: time(cert.validity().not_after.timestamp()),
        names,
    })
}

/// The certificates of a PEM text, in order.
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("reading PEM certificates", e))?;
    if certs.is_empty() {
        return Err(tls_error("reading PEM certificates", "none found"));
    }
    Ok(certs)
}

pub(crate) fn tls_error(what: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Tls {
        what: what.to_string(),
        message: e.to_string(),
    }
}

/// A node's key, its certificate and the CA certificate, as PEM texts; kept in the node's
/// certificate directory (`hdds.x509.dir.name` under its metadata directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCert {
    pub key_pem: String,
    pub cert_pem: String,
    pub ca_pem: String,
}

const KEY_FILE: &str = "key.pem";
const CERT_FILE: &str = "cert.pem";
const CA_FILE: &str = "ca.pem";

impl NodeCert {
    /// Loads the three files of `dir`; `None` when any is missing.
    pub fn load(dir: &Path) -> io::Result<Option<NodeCert>> {
        let read = |name: &str| match std::fs::read_to_string(dir.join(name)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        Ok(match (read(KEY_FILE)?, read(CERT_FILE)?, read(CA_FILE)?) {
            (Some(key_pem), Some(cert_pem), Some(ca_pem)) => Some(NodeCert {
                key_pem,
                cert_pem,
                ca_pem,
            }),
            _ => None,
        })
    }

    /// Writes the three files durably, each readable by the owner only (the key first, then
    /// the certificate: a crash in between leaves a key without its certificate, which the
    /// next start replaces).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_private(&dir.join(KEY_FILE), self.key_pem.as_bytes())?;
        write_private(&dir.join(CA_FILE), self.ca_pem.as_bytes())?;
        write_private(&dir.join(CERT_FILE), self.cert_pem.as_bytes())?;
        crate::fsync_dir(dir)
    }

    /// The node certificate's details.
    pub fn info(&self) -> Result<CertInfo, ConfigError> {
        cert_info(&pem_certs(&self.cert_pem)?[0])
    }
}

/// Replaces `path` with `bytes` durably (temporary file, fsync, rename), mode 0600. Processes
/// writing the same file at once (the SCMs of `cluster up` publishing the CA into one conf
/// dir) each use their own temporary file, and the last rename wins.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut nonce = [0u8; 8];
    rand_bytes(&mut nonce).map_err(io::Error::other)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A new ECDSA P-256 key and a certificate signing request for `identity`, naming `names`
/// (host names and addresses) too. Returns (key PEM, request PEM).
pub fn new_key_and_request(
    identity: &Identity,
    names: &[String],
) -> Result<(String, String), ConfigError> {
    let key = rcgen::KeyPair::generate().map_err(|e| tls_error("generating a key", e))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| tls_error("certificate request", e))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, identity.to_string());
    params.subject_alt_names = san_list(identity, names)?;
    let csr = params
        .serialize_request(&key)
        .map_err(|e| tls_error("certificate request", e))?;
    let csr_pem = csr.pem().map_err(|e| tls_error("certificate request", e))?;
    Ok((key.serialize_pem(), csr_pem))
}

/// The subject alternative names of a node certificate: its identity URI, then each name as
/// an IP address or a DNS name (names that are neither are left out).
pub fn san_list(identity: &Identity, names: &[String]) -> Result<Vec<rcgen::SanType>, ConfigError> {
    let uri = rcgen::string::Ia5String::try_from(identity.uri())
        .map_err(|e| tls_error("identity URI", e))?;
    let mut sans = vec![rcgen::SanType::URI(uri)];
    for name in names {
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = name.parse::<std::net::IpAddr>() {
            sans.push(rcgen::SanType::IpAddress(ip));
        } else if let Ok(dns) = rcgen::string::Ia5String::try_from(name.to_string()) {
            sans.push(rcgen::SanType::DnsName(dns));
        }
    }
    sans.dedup();
    Ok(sans)
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The TLS material of a process: the CA it trusts and (unless it is a command-line tool)
/// its own key and certificate, which renewal replaces in place.
pub struct TlsContext {
    roots: Arc<RootCertStore>,
    ca_pem: String,
    current: RwLock<Option<(Arc<CertifiedKey>, NodeCert, CertInfo)>>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("identity", &self.identity())
            .finish()
    }
}

impl TlsContext {
    /// A node's context: it trusts `cert.ca_pem` and presents `cert`.
    pub fn node(cert: &NodeCert) -> Result<Arc<TlsContext>, ConfigError> {
        let ctx = TlsContext::trusting(&cert.ca_pem)?;
        ctx.replace(cert)?;
        Ok(Arc::new(ctx))
    }

    /// A tool's context: it trusts the CA of `ca_pem` and has no certificate of its own.
    pub fn client_only(ca_pem: &str) -> Result<Arc<TlsContext>, ConfigError> {
        Ok(Arc::new(TlsContext::trusting(ca_pem)?))
    }

    fn trusting(ca_pem: &str) -> Result<TlsContext, ConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in pem_certs(ca_pem)? {
            roots
                .add(cert)
                .map_err(|e| tls_error("adding the CA certificate", e))?;
        }
        Ok(TlsContext {
            roots: Arc::new(roots),
            ca_pem: ca_pem.to_string(),
            current: RwLock::new(None),
        })
    }

    /// Presents `cert` from now on (a renewal); it must come from the same CA.
    pub fn replace(&self, cert: &NodeCert) -> Result<(), ConfigError> {
        if cert.ca_pem.trim() != self.ca_pem.trim() {
            return Err(tls_error(
                "replacing the node certificate",
                "it was issued by another CA",
            ));
        }
        let chain = pem_certs(&cert.cert_pem)?;
        let info = cert_info(&chain[0])?;
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
            .map_err(|e| tls_error("reading the node key", e))?;
        let certified = CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| tls_error("pairing the node key and certificate", e))?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Some((Arc::new(certified), cert.clone(), info));
        Ok(())
    }

    /// The identity this process presents, if it has a certificate.
    pub fn identity(&self) -> Option<Identity> {
        self.with_current(|c| c.and_then(|(_, _, info)| info.identity.clone()))
    }

    /// This process's certificate, if any.
    pub fn node_cert(&self) -> Option<(NodeCert, CertInfo)> {
        self.with_current(|c| c.map(|(_, cert, info)| (cert.clone(), info.clone())))
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn with_current<T>(
        &self,
        f: impl FnOnce(Option<&(Arc<CertifiedKey>, NodeCert, CertInfo)>) -> T,
    ) -> T {
        f(self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref())
    }

    fn certified_key(&self) -> Option<Arc<CertifiedKey>> {
        self.with_current(|c| c.map(|(k, _, _)| k.clone()))
    }

    /// The server side: this process's certificate; a client certificate is verified against
    /// the CA when one is presented (calls without one carry no identity).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, ConfigError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls_error("client certificate verifier", e))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS versions", e))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The client side: the server must hold a certificate of this CA for a node of role
    /// `expect`; this process presents its certificate when it has one.
    pub fn client_config(
        self: &Arc<Self>,
        expect: NodeRole,
    ) -> Result<Arc<ClientConfig>, ConfigError> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            provider(),
        )
        .build()
        .map_err(|e| tls_error("server certificate verifier", e))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("TLS versions", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RoleVerifier {
                inner,
                expect: Some(expect),
            }));
        let mut config = builder.with_client_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Presents the context's current certificate (server and client side).
#[derive(Debug)]
struct Resolver(Arc<TlsContext>);

impl rustls::server::ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.certified_key()
    }
}

impl rustls::client::ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.certified_key()
    }

    fn has_certs(&self) -> bool {
        self.0.certified_key().is_some()
    }
}

/// Checks the server's chain against the CA (webpki) and the role in its identity, not its
/// host name (see the module notes).
#[derive(Debug)]
struct RoleVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expect: Option<NodeRole>,
}

impl ServerCertVerifier for RoleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error means the chain is
        // good.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        let Some(expect) = self.expect else {
            return Ok(ServerCertVerified::assertion());
        };
        match cert_info(end_entity).ok().and_then(|i| i.identity) {
            Some(id) if id.role == expect => Ok(ServerCertVerified::assertion()),
            other => Err(rustls::Error::General(format!(
                "the server's certificate names {}, not a {expect}",
                other.map_or_else(|| "no node".to_string(), |i| i.to_string())
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate: only for asking SCM for a first certificate, whose answer
/// the caller checks by other means (a MAC keyed with the bootstrap secret).
#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The host of `host:port`.
pub fn host_of(address: &str) -> String {
    match address.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        _ => address.to_string(),
    }
}

/// The names every node certificate carries besides its configured hosts: the machine's host
/// name, localhost and the loopback addresses.
pub fn node_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    names
}

/// How long to wait before renewing a certificate that expires at `not_after`: until the
/// grace period starts (at once if it has), at most a day at a time.
pub fn renew_wait(not_after: SystemTime, grace: Duration) -> Duration {
    let renew_at = not_after.checked_sub(grace).unwrap_or(UNIX_EPOCH);
    renew_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(86_400))
}

/// `ozone.security.bootstrap.secret.file`, or its default under `ozone.metadata.dirs`.
pub fn bootstrap_secret_file(cfg: &crate::OzoneConfig) -> PathBuf {
    cfg.get_opt(crate::config::keys::OZONE_SECURITY_BOOTSTRAP_SECRET_FILE)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(cfg.get(crate::config::keys::OZONE_METADATA_DIRS))
                .join("bootstrap.secret")
        })
}

/// `ozone.security.ca.file`, or its default under `ozone.metadata.dirs`.
pub fn ca_file(cfg: &crate::OzoneConfig) -> PathBuf {
    cfg.get_opt(crate::config::keys::OZONE_SECURITY_CA_FILE)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(cfg.get(crate::config::keys::OZONE_METADATA_DIRS)).join("ca.pem")
        })
}

/// Whether this process's server role sets up mutual TLS: security on and
/// [`enable_mutual_tls`] called (by the `ozone` binary).
pub fn wanted(cfg: &crate::OzoneConfig) -> Result<bool, ConfigError> {
    Ok(mutual_tls_enabled() && cfg.get_bool(crate::config::keys::OZONE_SECURITY_ENABLED)?)
}

static MUTUAL_TLS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Called by the `ozone` binary before it starts a server role: with security on, the role
/// then obtains a certificate and serves and calls over mutual TLS. Roles started in-process by
/// tests without it keep plain connections (their S3 security is unchanged).
pub fn enable_mutual_tls() {
    MUTUAL_TLS.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether this process's server role must set up mutual TLS when security is on.
pub fn mutual_tls_enabled() -> bool {
    MUTUAL_TLS.load(std::sync::atomic::Ordering::SeqCst)
}

static CONTEXT: OnceLock<Arc<TlsContext>> = OnceLock::new();

/// Makes `ctx` the process's TLS context: from now on [`incoming`] serves TLS and [`channel`]
/// connects with it. Once per process; a second call is refused.
pub fn install(ctx: Arc<TlsContext>) -> Result<(), ConfigError> {
    CONTEXT
        .set(ctx)
        .map_err(|_| tls_error("installing the TLS context", "already installed"))
}

/// The process's TLS context, when security is on.
pub fn context() -> Option<Arc<TlsContext>> {
    CONTEXT.get().cloned()
}

mod bootstrap;
mod guard;
mod net;

pub use bootstrap::*;
pub use guard::*;
pub use net::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_uri_and_reject_others() {
        let id = Identity::new(NodeRole::Datanode, "6f1c2d7e-0000-4000-8000-000000000001");
        assert_eq!(Identity::from_uri(&id.uri()), Some(id));
        assert_eq!(Identity::from_uri("ozone://root/x"), None);
        assert_eq!(Identity::from_uri("ozone://om/"), None);
        assert_eq!(Identity::from_uri("https://om/om1"), None);
        assert!(Identity::valid_id("om1") && Identity::valid_id("dn-1.example:9859"));
        assert!(!Identity::valid_id("om/1") && !Identity::valid_id(""));
        assert_eq!(host_of("scm1:9860"), "scm1");
        assert_eq!(host_of("[::1]:9860"), "::1");
        assert_eq!(host_of("dn1"), "dn1");
    }

    #[test]
    fn proofs_and_the_sealed_ca_key_need_the_bootstrap_secret() {
        let p = request_proof("s1", "om", "om1", "csr");
        assert!(request_proof_matches("s1", "om", "om1", "csr", &p));
        assert!(!request_proof_matches("s2", "om", "om1", "csr", &p));
        assert!(!request_proof_matches("s1", "om", "om2", "csr", &p));
        let sealed = seal_ca_key("s1", "KEY").expect("seal");
        assert_eq!(open_ca_key("s1", &sealed).expect("open"), "KEY");
        assert!(open_ca_key("s2", &sealed).is_err());
        let a = answer_proof("s1", "c", "ca", &sealed);
        assert!(answer_proof_matches("s1", "c", "ca", &sealed, &a));
        assert!(!answer_proof_matches("s1", "c2", "ca", &sealed, &a));
    }

    #[test]
    fn renewal_waits_until_the_grace_period_starts() {
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        assert_eq!(renew_wait(now + day, day * 2), Duration::ZERO);
        let w = renew_wait(now + Duration::from_secs(100), Duration::from_secs(40));
        assert!(w <= Duration::from_secs(60) && w > Duration::from_secs(55));
        assert_eq!(renew_wait(now + day * 100, day), day);
    }

    #[test]
    fn writers_of_one_file_at_once_do_not_trip_over_each_other() {
        let dir = std::env::temp_dir().join(format!("ozone-tls-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ca.pem");
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        write_private(&path, format!("writer {i}").as_bytes()).expect("write");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("writer "), "{text}");
        let left: Vec<_> = std::fs::read_dir(&dir).expect("list").collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_request_carries_the_identity_and_names() {
        let id = Identity::new(NodeRole::Om, "om1");
        let (_key, csr) =
            new_key_and_request(&id, &["127.0.0.1".into(), "om-1.local".into()]).expect("request");
        assert!(csr.contains("CERTIFICATE REQUEST"));
        let params = rcgen::CertificateSigningRequestParams::from_pem(&csr).expect("parses");
        assert_eq!(params.params.subject_alt_names.len(), 3);
    }
}
