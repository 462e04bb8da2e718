//! `ozone cluster up`: a whole local cluster (1 or 3 SCMs, 1 or 3 OMs, N datanodes, s3g) as
//! child processes of this one, sharing one data directory.
//!
//! Layout of `DIR`: `conf/ozone-site.xml` (cluster-wide: addresses and settings; point
//! `OZONE_CONF_DIR` at it for `ozone admin`), and one directory per process — `scm`
//! (`scm-1..3` with `--scms 3`: an SCM service `scmservice` of nodes `scm1..scm3`), `om-1`
//! (`om-1..3` with `--oms 3`: an OM service `omservice` of nodes `om1..om3`),
//! `datanode-1..N`, `s3g` — each holding `conf/ozone-site.xml` (cluster-wide plus its own ports
//! and data dir), `data/`, `<name>.log` and `pid`. Ports are picked once, when the directory is
//! new, and reused on every later start so that stored block locations stay valid.
//!
//! Settings for a new cluster come from `--set KEY=VALUE` and from `OZONE-SITE.XML_<key>`
//! environment variables alike (`--set` wins): both are written into `DIR/conf`, and the child
//! processes read only their conf files (the variables are not passed on to them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Subcommand;
use ozone_common::OzoneConfig;
use ozone_common::config::{ConfKey, ENV_PREFIX, KeyBuf, env_overrides, keys};

type BoxError = Box<dyn std::error::Error>;

#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Starts SCM, OM, datanodes and the S3 gateway as child processes, in the foreground.
    /// Stops them all on SIGINT/SIGTERM. Started again on the same directory, serves every
    /// object stored before.
    Up {
        /// Directory for every process's data, logs and configuration.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Number of datanodes.
        #[arg(long, default_value_t = 3)]
        datanodes: u32,
        /// Number of OMs: 1, or 3 (an HA OM service). Only for a new cluster directory.
        #[arg(long, default_value_t = 1, value_parser = parse_ha_count)]
        oms: u32,
        /// Number of SCMs: 1, or 3 (an HA SCM service). Only for a new cluster directory.
        #[arg(long, default_value_t = 1, value_parser = parse_ha_count)]
        scms: u32,
        /// S3 endpoint port (0 picks a free one).
        #[arg(long, default_value_t = 9878)]
        s3g_port: u16,
        /// Seconds to wait for the cluster to accept writes.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Also serve S3 over HTTPS (`ozone.s3g.https-address`), with a certificate for
        /// localhost and 127.0.0.1 signed by a CA made for this cluster (`DIR/tls/ca.pem`:
        /// give it to clients, e.g. `aws --ca-bundle`). Made once; later starts reuse it.
        #[arg(long)]
        https: bool,
        /// S3 HTTPS port with `--https` (0 picks a free one).
        #[arg(long, default_value_t = 9879)]
        https_port: u16,
    },
}

/// A raft group's size: 1, or 3 (an HA service).
fn parse_ha_count(s: &str) -> Result<u32, String> {
    match s {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("must be 1 or 3, got {s}")),
    }
}

/// Runs `cmd`; `set` holds the global `--set KEY=VALUE` arguments (settings of a new cluster).
pub async fn run(cmd: ClusterCmd, set: &[String]) -> Result<(), BoxError> {
    match cmd {
        ClusterCmd::Up {
            data_dir,
            datanodes,
            oms,
            scms,
            s3g_port,
            timeout,
            https,
            https_port,
        } => {
            let shape = Shape {
                datanodes,
                oms,
                scms,
                s3g_port,
            };
            let https = https.then_some(https_port);
            up(data_dir, shape, set, https, Duration::from_secs(timeout)).await
        }
    }
}

/// A free port, never one this process handed out before (the kernel may offer a just-released
/// port again, and two roles must not be given the same one).
fn free_port() -> Result<u16, BoxError> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut given = GIVEN.lock().map_err(|_| "port registry poisoned")?;
        if !given.contains(&port) {
            given.push(port);
            return Ok(port);
        }
    }
}

/// Explicitly set keys of one conf file.
type Conf = OzoneConfig;

fn write_conf(dir: &Path, conf: &Conf) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("ozone-site.xml.tmp");
    std::fs::write(&tmp, conf.to_site_xml())?;
    std::fs::rename(&tmp, dir.join("ozone-site.xml"))?;
    Ok(())
}

fn read_conf(dir: &Path) -> Result<Option<Conf>, BoxError> {
    let path = dir.join("ozone-site.xml");
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(OzoneConfig::from_site_xml(&std::fs::read_to_string(
        &path,
    )?)?))
}

/// The settings a new cluster takes from outside: `OZONE-SITE.XML_<key>` environment variables
/// (`env`), then `--set KEY=VALUE` arguments over them.
fn overrides(env: Vec<(String, String)>, set: &[String]) -> Result<Conf, BoxError> {
    let mut c = Conf::default();
    for (k, v) in env {
        c.set(KeyBuf::unchecked(k), v);
    }
    c.apply_sets(set)?;
    Ok(c)
}

/// One child process of the cluster.
struct Proc {
    name: String,
    role: &'static str,
    dir: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) -> Result<(), BoxError> {
        let exe = std::env::current_exe()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", self.name)))?;
        let mut cmd = Command::new(exe);
        // The cluster's settings are in the conf files (environment overrides were folded in).
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with(ENV_PREFIX) {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .arg(self.role)
            .env("OZONE_CONF_DIR", self.dir.join("conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        std::fs::write(self.dir.join("pid"), format!("{}\n", child.id()))?;
        self.child = Some(child);
        Ok(())
    }

    fn terminate(&mut self) {
        if let Some(child) = &self.child
            && let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }

    /// Waits for exit until `deadline`, then kills.
    fn reap(&mut self, deadline: Instant) {
        let Some(child) = &mut self.child else {
            return;
        };
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_file(self.dir.join("pid"));
        self.child = None;
    }
}

/// OM service id `cluster up --oms 3` configures.
const OM_SERVICE_ID: &str = "omservice";
/// SCM service id `cluster up --scms 3` configures.
const SCM_SERVICE_ID: &str = "scmservice";

/// What a new cluster is made of.
#[derive(Clone, Copy, Debug)]
struct Shape {
    datanodes: u32,
    /// 1 or 3.
    oms: u32,
    /// 1 or 3.
    scms: u32,
    /// S3 endpoint port; 0 picks a free one.
    s3g_port: u16,
}

/// The cluster-wide configuration of a new cluster of `shape`: every address on 127.0.0.1 with
/// a free port, the OM and SCM service keys for 3-node groups, then `extra` over it all.
fn new_cluster_conf(shape: Shape, extra: Conf) -> Result<Conf, BoxError> {
    let mut c = Conf::default();
    let s3g_port = if shape.s3g_port == 0 {
        free_port()?
    } else {
        shape.s3g_port
    };
    let local = || -> Result<String, BoxError> { Ok(format!("127.0.0.1:{}", free_port()?)) };
    c.set(keys::OZONE_SCM_NAMES, "127.0.0.1");
    // With an SCM service these are scm1's, for whatever reads only the single-SCM keys.
    c.set(keys::OZONE_SCM_CLIENT_ADDRESS, local()?);
    c.set(keys::OZONE_SCM_DATANODE_ADDRESS, local()?);
    if shape.scms > 1 {
        let ids: Vec<String> = (1..=shape.scms).map(|i| format!("scm{i}")).collect();
        c.set(keys::OZONE_SCM_SERVICE_IDS, SCM_SERVICE_ID);
        c.set(
            keys::OZONE_SCM_NODES_SERVICEID.with([&SCM_SERVICE_ID]),
            ids.join(","),
        );
        for (i, id) in ids.iter().enumerate() {
            let (client, datanode) = if i == 0 {
                (
                    c.get(keys::OZONE_SCM_CLIENT_ADDRESS),
                    c.get(keys::OZONE_SCM_DATANODE_ADDRESS),
                )
            } else {
                (local()?, local()?)
            };
            let node = [&SCM_SERVICE_ID as &dyn std::fmt::Display, id];
            c.set(keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with(node), client)
                .set(
                    keys::OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID.with(node),
                    datanode,
                )
                .set(
                    keys::OZONE_SCM_HTTP_ADDRESS_SERVICEID_NODEID.with(node),
                    local()?,
                );
        }
    }
    c.set(keys::OZONE_OM_ADDRESS, local()?);
    if shape.oms > 1 {
        let ids: Vec<String> = (1..=shape.oms).map(|i| format!("om{i}")).collect();
        c.set(keys::OZONE_OM_SERVICE_IDS, OM_SERVICE_ID);
        c.set(
            keys::OZONE_OM_NODES_SERVICEID.with([&OM_SERVICE_ID]),
            ids.join(","),
        );
        for (i, id) in ids.iter().enumerate() {
            let addr = if i == 0 {
                c.get(keys::OZONE_OM_ADDRESS)
            } else {
                local()?
            };
            c.set(
                keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&OM_SERVICE_ID, id]),
                addr,
            );
        }
    }
    c.set(keys::OZONE_S3G_HTTP_ADDRESS, format!("0.0.0.0:{s3g_port}"));
    c.set(keys::OZONE_S3G_WEBADMIN_HTTP_ADDRESS, local()?);
    c.set(
        keys::OZONE_SERVER_DEFAULT_REPLICATION,
        if shape.datanodes >= 3 { "3" } else { "1" },
    );
    c.extend(extra);
    Ok(c)
}

/// The node count of a role's service in `cluster` (`ids`: its service-ids key, `nodes`: its
/// nodes key for `service`); 1 without a service.
fn group_size(cluster: &Conf, ids: impl ConfKey, nodes: KeyBuf) -> usize {
    if cluster.is_set(ids) && cluster.is_set(&nodes) {
        cluster
            .get(&nodes)
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .count()
    } else {
        1
    }
}

/// Keys of the cluster's configuration that are added to an existing directory (turned on by
/// a later `cluster up`), and so also to the per-process files made before.
const ADDED_KEYS: [ozone_common::config::Key; 4] = [
    keys::OZONE_OM_SECRET_KEY_FILE,
    keys::OZONE_S3G_HTTPS_ADDRESS,
    keys::OZONE_S3G_HTTPS_CERT_FILE,
    keys::OZONE_S3G_HTTPS_KEY_FILE,
];

/// Files of the gateway's HTTPS certificate in `DIR/tls`: the CA clients trust, the
/// certificate chain and its private key.
const TLS_DIR: &str = "tls";
const TLS_CA: &str = "ca.pem";
const TLS_CERT: &str = "s3g.pem";
const TLS_KEY: &str = "s3g-key.pem";

/// Makes a CA and a certificate for localhost/127.0.0.1 signed by it in `dir` (the key 0600).
fn make_s3g_certificate(dir: &Path) -> Result<(), BoxError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Ozone-RS cluster up S3 gateway CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);
    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let cert = leaf.signed_by(&key, &issuer)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(TLS_KEY))?;
    f.write_all(key.serialize_pem().as_bytes())?;
    f.sync_all()?;
    std::fs::write(
        dir.join(TLS_CERT),
        format!("{}{}", cert.pem(), ca_cert.pem()),
    )?;
    std::fs::write(dir.join(TLS_CA), ca_cert.pem())?;
    Ok(())
}

/// With security on: one OM secret key file for every OM (`DIR/conf/om.key`). With `https`
/// (a port; 0 picks one): the gateway's certificate and HTTPS address. Each only when the
/// cluster's configuration does not name one yet; answers whether it changed.
fn add_cluster_files(
    c: &mut Conf,
    dir: &Path,
    conf_dir: &Path,
    https: Option<u16>,
) -> Result<bool, BoxError> {
    let d = |p: &Path| p.display().to_string();
    let mut changed = false;
    let security = c
        .get(keys::OZONE_SECURITY_ENABLED)
        .eq_ignore_ascii_case("true");
    if security && !c.is_set(keys::OZONE_OM_SECRET_KEY_FILE) {
        let file = conf_dir.join(ozone_om::secret_key::SECRET_KEY_FILE);
        if !file.exists() {
            ozone_om::secret_key::SecretKey::generate().write_new(&file)?;
        }
        c.set(keys::OZONE_OM_SECRET_KEY_FILE, d(&file));
        changed = true;
    }
    if let Some(port) = https
        && !c.is_set(keys::OZONE_S3G_HTTPS_ADDRESS)
    {
        let tls = dir.join(TLS_DIR);
        if !tls.join(TLS_KEY).exists() {
            make_s3g_certificate(&tls)?;
        }
        let port = if port == 0 { free_port()? } else { port };
        c.set(keys::OZONE_S3G_HTTPS_ADDRESS, format!("0.0.0.0:{port}"))
            .set(keys::OZONE_S3G_HTTPS_CERT_FILE, d(&tls.join(TLS_CERT)))
            .set(keys::OZONE_S3G_HTTPS_KEY_FILE, d(&tls.join(TLS_KEY)));
        changed = true;
    }
    Ok(changed)
}

async fn up(
    data_dir: PathBuf,
    shape: Shape,
    set: &[String],
    https: Option<u16>,
    timeout: Duration,
) -> Result<(), BoxError> {
    let extra = overrides(env_overrides(), set)?;
    std::fs::create_dir_all(&data_dir)?;
    let dir = std::fs::canonicalize(&data_dir)?;
    let conf_dir = dir.join("conf");
    let d = |p: &Path| p.display().to_string();

    let mut cluster = match read_conf(&conf_dir)? {
        Some(c) => {
            if !extra.explicit().is_empty() {
                tracing::warn!(
                    "--set and OZONE-SITE.XML_<key> only apply when a cluster directory is new; ignored"
                );
            }
            c
        }
        None => {
            let mut c = new_cluster_conf(shape, extra)?;
            let security = c
                .get(keys::OZONE_SECURITY_ENABLED)
                .eq_ignore_ascii_case("true");
            if security && !c.is_set(keys::OZONE_OM_ADMIN_SECRET_FILE) {
                // One admin credential for every OM and for the CLI run with this conf dir.
                let file = conf_dir.join(ozone_om::security::ADMIN_SECRET_FILE);
                if !file.exists() {
                    ozone_om::security::write_secret_file(
                        &file,
                        &ozone_om::security::new_secret(),
                    )?;
                }
                c.set(keys::OZONE_OM_ADMIN_SECRET_FILE, d(&file));
            }
            if security && !c.is_set(keys::OZONE_SECURITY_BOOTSTRAP_SECRET_FILE) {
                // Every role of this cluster may ask SCM for its certificate.
                let file = conf_dir.join("bootstrap.secret");
                ozone_common::tls::load_bootstrap_secret(&file, true)?;
                c.set(keys::OZONE_SECURITY_BOOTSTRAP_SECRET_FILE, d(&file));
            }
            if security && !c.is_set(keys::OZONE_SECURITY_CA_FILE) {
                // Written by the SCMs; what tools (and `aws --ca-bundle`) trust.
                c.set(keys::OZONE_SECURITY_CA_FILE, d(&conf_dir.join("ca.pem")));
            }
            write_conf(&conf_dir, &c)?;
            c
        }
    };
    if add_cluster_files(&mut cluster, &dir, &conf_dir, https)? {
        write_conf(&conf_dir, &cluster)?;
    }
    let cluster = cluster;

    // Per-process configuration: the cluster's plus its own dirs and ports (kept once made).
    let mut procs = Vec::new();
    let role_conf = |name: String,
                     role: &'static str,
                     extra: &dyn Fn(&Path) -> Result<Conf, BoxError>|
     -> Result<Proc, BoxError> {
        let pdir = dir.join(&name);
        let pconf = pdir.join("conf");
        let own = match read_conf(&pconf)? {
            Some(mut existing) => {
                let mut changed = false;
                for k in ADDED_KEYS {
                    if cluster.is_set(k) && !existing.is_set(k) {
                        existing.set(k, cluster.get(k));
                        changed = true;
                    }
                }
                if changed {
                    write_conf(&pconf, &existing)?;
                }
                existing
            }
            None => {
                let mut c = cluster.clone();
                c.extend(extra(&pdir)?);
                write_conf(&pconf, &c)?;
                c
            }
        };
        drop(own);
        std::fs::create_dir_all(pdir.join("data"))?;
        Ok(Proc {
            name,
            role,
            dir: pdir,
            child: None,
        })
    };
    // The group sizes are the cluster's (an existing directory keeps its own).
    let scm_count = group_size(
        &cluster,
        keys::OZONE_SCM_SERVICE_IDS,
        keys::OZONE_SCM_NODES_SERVICEID.with([&SCM_SERVICE_ID]),
    );
    if scm_count != shape.scms as usize {
        tracing::warn!(
            scms = scm_count,
            "the cluster directory has {scm_count} SCM(s); --scms {} ignored",
            shape.scms
        );
    }
    if scm_count == 1 {
        procs.push(role_conf("scm".into(), "scm", &|p| {
            let mut c = Conf::default();
            c.set(keys::OZONE_METADATA_DIRS, d(&p.join("data"))).set(
                keys::OZONE_SCM_HTTP_ADDRESS,
                format!("127.0.0.1:{}", free_port()?),
            );
            Ok(c)
        })?);
    }
    for i in (1..=scm_count).filter(|_| scm_count > 1) {
        procs.push(role_conf(format!("scm-{i}"), "scm", &|p| {
            let id = format!("scm{i}");
            let http = cluster
                .get(keys::OZONE_SCM_HTTP_ADDRESS_SERVICEID_NODEID.with([&SCM_SERVICE_ID, &id]));
            let mut c = Conf::default();
            c.set(keys::OZONE_METADATA_DIRS, d(&p.join("data")))
                .set(keys::OZONE_SCM_HTTP_ADDRESS, http)
                .set(keys::OZONE_SCM_NODE_ID, id);
            Ok(c)
        })?);
    }
    for i in 1..=shape.datanodes {
        procs.push(role_conf(format!("datanode-{i}"), "datanode", &|p| {
            let mut c = Conf::default();
            c.set(keys::HDDS_DATANODE_DIR, d(&p.join("data")))
                .set(keys::HDDS_DATANODE_HOSTNAME, "127.0.0.1")
                .set(keys::HDDS_CONTAINER_IPC_PORT, free_port()?.to_string())
                .set(
                    keys::HDDS_DATANODE_HTTP_ADDRESS,
                    format!("127.0.0.1:{}", free_port()?),
                );
            Ok(c)
        })?);
    }
    let om_count = group_size(
        &cluster,
        keys::OZONE_OM_SERVICE_IDS,
        keys::OZONE_OM_NODES_SERVICEID.with([&OM_SERVICE_ID]),
    );
    if om_count != shape.oms as usize {
        tracing::warn!(
            oms = om_count,
            "the cluster directory has {om_count} OM(s); --oms {} ignored",
            shape.oms
        );
    }
    for i in 1..=om_count {
        procs.push(role_conf(format!("om-{i}"), "om", &|p| {
            let mut c = Conf::default();
            c.set(keys::OZONE_METADATA_DIRS, d(&p.join("data"))).set(
                keys::OZONE_OM_HTTP_ADDRESS,
                format!("127.0.0.1:{}", free_port()?),
            );
            if om_count > 1 {
                c.set(keys::OZONE_OM_NODE_ID, format!("om{i}"));
            }
            Ok(c)
        })?);
    }
    procs.push(role_conf("s3g".into(), "s3g", &|p| {
        let mut c = Conf::default();
        // Its certificate (security on) lives under its own directory.
        c.set(keys::OZONE_METADATA_DIRS, d(&p.join("data")));
        Ok(c)
    })?);

    for p in &mut procs {
        p.spawn()?;
        tracing::info!(process = %p.name, "started");
    }

    let s3_port = cluster
        .get(keys::OZONE_S3G_HTTP_ADDRESS)
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let scms = crate::admin_raft::Service::scm(&cluster)?;
    let om_addrs = cluster.om_addresses();
    let s3_volume = cluster.get(keys::OZONE_S3G_VOLUME_NAME);
    // Security on: this process asks SCM for an administrator's certificate to probe with.
    let secured = tokio::select! {
        r = crate::security::prepare_tool(&cluster, timeout) => r,
        e = first_exit(&mut procs) => Err(e.into()),
        _ = ozone_common::shutdown_signal() => Err("interrupted".into()),
    };
    if let Err(e) = secured {
        eprintln!(
            "cluster did not become ready: {e}; logs are in {}",
            dir.display()
        );
        stop_all(&mut procs);
        return Err(e);
    }
    let ready = tokio::select! {
        r = wait_ready(&scms, &om_addrs, &s3_volume, &endpoint, timeout) => r,
        e = first_exit(&mut procs) => Err(e.into()),
        _ = ozone_common::shutdown_signal() => Err("interrupted".into()),
    };
    if let Err(e) = ready {
        eprintln!(
            "cluster did not become ready: {e}; logs are in {}",
            dir.display()
        );
        stop_all(&mut procs);
        return Err(e);
    }
    println!("S3 endpoint: {endpoint}");
    if let Some(https) = cluster.get_opt(keys::OZONE_S3G_HTTPS_ADDRESS) {
        let port = https.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
        println!(
            "S3 HTTPS endpoint: https://127.0.0.1:{port} (CA file: {}; aws --ca-bundle {} ...)",
            dir.join(TLS_DIR).join(TLS_CA).display(),
            dir.join(TLS_DIR).join(TLS_CA).display()
        );
    }
    println!("Configuration: OZONE_CONF_DIR={}", conf_dir.display());
    if let Some(f) = cluster.get_opt(keys::OZONE_OM_ADMIN_SECRET_FILE) {
        println!("Security on; admin credential: {f} (ozone s3 getsecret -u USER)");
        println!(
            "Mutual TLS on every internal port; CA certificate: {}",
            ozone_common::tls::ca_file(&cluster).display()
        );
    }

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let shutdown = ozone_common::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                for p in &mut procs {
                    if let Some(child) = &mut p.child
                        && let Ok(Some(status)) = child.try_wait()
                    {
                        tracing::warn!(process = %p.name, %status, "child process exited");
                        p.child = None;
                    }
                }
            }
        }
    }
    println!("stopping cluster");
    stop_all(&mut procs);
    Ok(())
}

/// SIGTERM in reverse start order (s3g, OMs, datanodes, SCMs), then reaps, killing stragglers.
fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter_mut().rev() {
        p.terminate();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for p in procs.iter_mut().rev() {
        p.reap(deadline);
    }
}

/// Ready when the SCM service has a leader (a group of 3: one SCM says it leads), SCM (the
/// leader) left safe mode (datanodes registered, a pipeline formed), the OM service answers a
/// read (so it has a leader) and the S3 endpoint answers.
async fn wait_ready(
    scms: &crate::admin_raft::Service,
    oms: &[String],
    s3_volume: &str,
    s3: &str,
    timeout: Duration,
) -> Result<(), BoxError> {
    use ozone_proto::scm::scm_client_service_client::ScmClientServiceClient;
    let deadline = Instant::now() + timeout;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut last = String::from("starting");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A single SCM is asked directly (it may not serve the raft status).
        let scm = match scms.nodes.as_slice() {
            [only] => only.address.clone(),
            _ => match scms.leader().await {
                Some((leader, _)) => leader.address,
                None => {
                    last = "no SCM leader yet".into();
                    continue;
                }
            },
        };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{scm}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5));
        let mut c = ScmClientServiceClient::new(ozone_common::tls::channel(
            endpoint,
            ozone_common::tls::NodeRole::Scm,
        ));
        let scm_ok = match c
            .safe_mode_status(ozone_proto::scm::SafeModeStatusRequest {})
            .await
        {
            Ok(r) if !r.get_ref().in_safe_mode => true,
            Ok(r) => {
                last = format!(
                    "SCM in safe mode ({}/{} healthy datanodes)",
                    r.get_ref().healthy_datanodes,
                    r.get_ref().required_datanodes
                );
                false
            }
            Err(e) => {
                last = format!("SCM: {}", e.message());
                false
            }
        };
        if !scm_ok {
            continue;
        }
        let om = om_client::OmClient::connect_with(
            oms.to_vec(),
            om_client::OmClientOptions {
                request_timeout: Duration::from_secs(5),
                failover_timeout: Duration::from_secs(2),
                ..Default::default()
            },
        )?;
        if let Err(e) = om.info_volume(s3_volume).await {
            last = format!("OM: {e}");
            continue;
        }
        match http.get(format!("{s3}/")).send().await {
            // 403: security is on and the probe carries no credentials.
            Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::FORBIDDEN => {
                return Ok(());
            }
            Ok(r) => last = format!("S3 gateway answered {}", r.status()),
            Err(e) => last = format!("S3 gateway not reachable: {e}"),
        }
    }
    Err(format!("timed out; last: {last}").into())
}

/// Resolves when a child process exits (during start-up, a failed role), naming it.
async fn first_exit(procs: &mut [Proc]) -> String {
    loop {
        for p in procs.iter_mut() {
            if let Some(child) = &mut p.child
                && let Ok(Some(status)) = child.try_wait()
            {
                p.child = None;
                return format!("{} exited during start-up ({status}); see its log", p.name);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClusterCmd,
    }

    fn shape(oms: u32, scms: u32) -> Shape {
        Shape {
            datanodes: 3,
            oms,
            scms,
            s3g_port: 0,
        }
    }

    #[test]
    fn scms_and_oms_are_1_or_3() {
        let ClusterCmd::Up { oms, scms, .. } = Cli::try_parse_from(["c", "up"]).unwrap().cmd;
        assert_eq!((oms, scms), (1, 1));
        let ClusterCmd::Up { oms, scms, .. } =
            Cli::try_parse_from(["c", "up", "--scms", "3", "--oms", "3"])
                .unwrap()
                .cmd;
        assert_eq!((oms, scms), (3, 3));
        for bad in ["0", "2", "5", "x"] {
            assert!(
                Cli::try_parse_from(["c", "up", "--scms", bad]).is_err(),
                "{bad}"
            );
            assert!(
                Cli::try_parse_from(["c", "up", "--oms", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn one_scm_has_no_service() {
        let c = new_cluster_conf(shape(1, 1), Conf::default()).unwrap();
        assert!(!c.is_set(keys::OZONE_SCM_SERVICE_IDS));
        let nodes = c.scm_nodes().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].node_id, "scm1");
        assert_eq!(nodes[0].client, c.get(keys::OZONE_SCM_CLIENT_ADDRESS));
        assert_eq!(
            group_size(&c, keys::OZONE_SCM_SERVICE_IDS, scm_nodes_key()),
            1
        );
        assert_eq!(
            group_size(&c, keys::OZONE_OM_SERVICE_IDS, om_nodes_key()),
            1
        );
    }

    fn scm_nodes_key() -> KeyBuf {
        keys::OZONE_SCM_NODES_SERVICEID.with([&SCM_SERVICE_ID])
    }

    fn om_nodes_key() -> KeyBuf {
        keys::OZONE_OM_NODES_SERVICEID.with([&OM_SERVICE_ID])
    }

    #[test]
    fn three_scms_make_a_service_with_their_own_ports() {
        let mut extra = Conf::default();
        extra.set(keys::OZONE_SCM_HA_RATIS_LEADER_ELECTION_TIMEOUT, "2s");
        let c = new_cluster_conf(shape(3, 3), extra).unwrap();
        assert_eq!(c.get(keys::OZONE_SCM_SERVICE_IDS), "scmservice");
        assert_eq!(
            c.get(keys::OZONE_SCM_HA_RATIS_LEADER_ELECTION_TIMEOUT),
            "2s"
        );
        let nodes = c.scm_nodes().unwrap();
        let ids: Vec<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(ids, ["scm1", "scm2", "scm3"]);
        // scm1 is also at the single-SCM keys.
        assert_eq!(nodes[0].client, c.get(keys::OZONE_SCM_CLIENT_ADDRESS));
        assert_eq!(nodes[0].datanode, c.get(keys::OZONE_SCM_DATANODE_ADDRESS));
        assert_eq!(
            c.scm_client_addresses(),
            nodes.iter().map(|n| n.client.clone()).collect::<Vec<_>>()
        );
        assert_eq!(
            c.scm_datanode_addresses(),
            nodes.iter().map(|n| n.datanode.clone()).collect::<Vec<_>>()
        );
        // Every address of every role is its own port on 127.0.0.1.
        let mut addrs: Vec<String> = nodes
            .iter()
            .flat_map(|n| [n.client.clone(), n.datanode.clone(), n.http.clone()])
            .chain(c.om_addresses())
            .chain([c.get(keys::OZONE_S3G_WEBADMIN_HTTP_ADDRESS)])
            .collect();
        assert_eq!(addrs.len(), 9 + 3 + 1);
        assert!(
            addrs.iter().all(|a| a.starts_with("127.0.0.1:")),
            "{addrs:?}"
        );
        let n = addrs.len();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), n, "a port handed out twice");
        assert_eq!(
            group_size(&c, keys::OZONE_SCM_SERVICE_IDS, scm_nodes_key()),
            3
        );
        assert_eq!(
            group_size(&c, keys::OZONE_OM_SERVICE_IDS, om_nodes_key()),
            3
        );
        // The OMs keep their own service.
        assert_eq!(c.om_nodes().unwrap().len(), 3);
        // 3 SCMs with 1 OM: only the SCMs are a service.
        let c = new_cluster_conf(shape(1, 3), Conf::default()).unwrap();
        assert_eq!(c.scm_nodes().unwrap().len(), 3);
        assert!(!c.is_set(keys::OZONE_OM_SERVICE_IDS));
    }

    #[test]
    fn security_and_https_add_one_key_file_and_a_certificate_once() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let conf_dir = d.path().join("conf");
        let mut c = new_cluster_conf(shape(3, 1), Conf::default()).unwrap();
        // Neither asked for: nothing is added.
        assert!(!add_cluster_files(&mut c, d.path(), &conf_dir, None).unwrap());
        assert!(!c.is_set(keys::OZONE_OM_SECRET_KEY_FILE));

        c.set(keys::OZONE_SECURITY_ENABLED, "true");
        assert!(add_cluster_files(&mut c, d.path(), &conf_dir, Some(0)).unwrap());
        let key = PathBuf::from(c.get(keys::OZONE_OM_SECRET_KEY_FILE));
        assert_eq!(key, conf_dir.join("om.key"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        let tls = d.path().join(TLS_DIR);
        assert_eq!(mode(&tls.join(TLS_KEY)), 0o600);
        assert_eq!(
            c.get(keys::OZONE_S3G_HTTPS_KEY_FILE),
            tls.join(TLS_KEY).display().to_string()
        );
        let chain = std::fs::read_to_string(c.get(keys::OZONE_S3G_HTTPS_CERT_FILE)).unwrap();
        let ca = std::fs::read_to_string(tls.join(TLS_CA)).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(chain.ends_with(&ca), "the chain ends with the CA");
        assert!(c.get(keys::OZONE_S3G_HTTPS_ADDRESS).starts_with("0.0.0.0:"));

        // A later start changes nothing and keeps the files.
        let key_text = std::fs::read_to_string(&key).unwrap();
        assert!(!add_cluster_files(&mut c, d.path(), &conf_dir, Some(0)).unwrap());
        assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);
        assert_eq!(std::fs::read_to_string(tls.join(TLS_CA)).unwrap(), ca);
    }
}
