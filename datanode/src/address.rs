//! What a datanode advertises to SCM and clients when `hdds.datanode.hostname` is not set.
//!
//! - By default, the local IP address the datanode reaches SCM from: the address of the
//!   interface its route to SCM leaves through, which is the address peers on SCM's network
//!   reach it at (127.0.0.1 when SCM is on loopback).
//! - With `hdds.datanode.use.datanode.hostname=true`, the DNS name of that address, found by a
//!   reverse (PTR) lookup, as Apache Ozone's datanodes advertise their canonical host name. In
//!   docker-compose the embedded DNS answers with the container's name
//!   (`ozone_datanode_1.ozone_default`), which stays the same across `down`/`up` while the IP
//!   does not: block locations recorded at write time keep pointing at the right datanode.
//!
//! The reverse lookup asks the name servers of `/etc/resolv.conf` with `hickory-resolver` (pure
//! Rust, no C resolver), so it works in a statically linked binary in a `FROM scratch` image.
//! `/etc/hosts` is not consulted: in Docker it names the container by its id, not by the name
//! the embedded DNS gives it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_resolver::config::{ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, system_conf};

use crate::error::DatanodeError;

/// How long to keep trying to resolve SCM's address (it may start after the datanode).
const RESOLVE_PATIENCE: Duration = Duration::from_secs(60);
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Per name server and try.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);
const DNS_TRIES: usize = 3;

/// The host a datanode advertises when `hdds.datanode.hostname` is empty: its IP towards SCM,
/// or that IP's DNS name when `use_hostname` is set.
pub(crate) async fn advertised_host(
    scm_address: &str,
    use_hostname: bool,
) -> Result<String, DatanodeError> {
    let ip = local_ip_towards(scm_address).await?;
    if !use_hostname {
        tracing::info!(%ip, scm = %scm_address, "advertising the address SCM is reached from");
        return Ok(ip.to_string());
    }
    if ip.is_loopback() {
        tracing::info!(%ip, "SCM is on loopback; advertising the loopback address");
        return Ok(ip.to_string());
    }
    let mut last = String::new();
    for _ in 0..DNS_TRIES {
        match reverse_lookup(Path::new("/etc/resolv.conf"), ip).await {
            Ok(Some(name)) => {
                tracing::info!(%ip, %name, "advertising the DNS name of the address SCM is reached from");
                return Ok(name);
            }
            Ok(None) => last = format!("no DNS name (PTR record) for {ip}"),
            Err(e) => last = format!("reverse lookup of {ip}: {e}"),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    Err(DatanodeError::io(
        "finding the datanode's host name (hdds.datanode.use.datanode.hostname is set; \
         set hdds.datanode.hostname to name it explicitly)",
        std::io::Error::new(std::io::ErrorKind::NotFound, last),
    ))
}

/// The local address of the route to `scm_address` (`host:port`), retrying name resolution
/// for a while: in a compose cluster SCM's name exists only once its container runs.
pub(crate) async fn local_ip_towards(scm_address: &str) -> Result<IpAddr, DatanodeError> {
    let deadline = tokio::time::Instant::now() + RESOLVE_PATIENCE;
    let mut warned = false;
    loop {
        match route_source(scm_address).await {
            Ok(ip) => return Ok(ip),
            Err(e) if tokio::time::Instant::now() < deadline => {
                if !warned {
                    tracing::warn!(scm = %scm_address, error = %e,
                        "cannot find the route to SCM yet; retrying to learn the address to advertise");
                    warned = true;
                }
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => {
                return Err(DatanodeError::io(
                    format!("finding the local address towards SCM {scm_address}"),
                    e,
                ));
            }
        }
    }
}

async fn route_source(scm_address: &str) -> std::io::Result<IpAddr> {
    let target = tokio::net::lookup_host(scm_address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    // Connecting a UDP socket sends nothing; it only picks the route and the source address.
    let any: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(any)?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

/// The PTR name of `ip` from the name servers in `resolv_conf`; `None` when they have none.
pub(crate) async fn reverse_lookup(
    resolv_conf: &Path,
    ip: IpAddr,
) -> std::io::Result<Option<String>> {
    let text = tokio::fs::read(resolv_conf).await?;
    let (config, _) = system_conf::parse_resolv_conf(text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{}: {e}", resolv_conf.display()),
        )
    })?;
    ask(config, ip, DNS_TIMEOUT).await
}

/// One PTR question to the name servers of `config`, each tried once for at most `timeout`.
async fn ask(
    config: ResolverConfig,
    ip: IpAddr,
    timeout: Duration,
) -> std::io::Result<Option<String>> {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.use_hosts_file = ResolveHosts::Never;
    let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(std::io::Error::other)?;
    match resolver.reverse_lookup(ip).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .find_map(|record| match &record.data {
                RData::PTR(ptr) => {
                    let name = ptr.0.to_string();
                    let name = name.trim_end_matches('.');
                    (!name.is_empty()).then(|| name.to_string())
                }
                _ => None,
            })),
        // NXDOMAIN or an empty answer: no name.
        Err(e) if e.is_no_records_found() => Ok(None),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig};

    const TYPE_PTR: u16 = 12;

    #[test]
    fn reads_nameservers() {
        let conf =
            "# generated\nsearch example\nnameserver 127.0.0.11\noptions ndots:0\nnameserver ::1\n";
        let (config, _) = system_conf::parse_resolv_conf(conf).unwrap();
        let ips: Vec<IpAddr> = config.name_servers().iter().map(|ns| ns.ip).collect();
        assert_eq!(
            ips,
            vec![
                "127.0.0.11".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn a_resolv_conf_without_name_server_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("resolv.conf");
        std::fs::write(&conf, "# generated\nsearch example\n").unwrap();
        let err = reverse_lookup(&conf, "172.18.0.5".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    }

    /// The dotted question name of a DNS query and the offset just past its question.
    fn question(query: &[u8]) -> (String, usize) {
        let mut labels = Vec::new();
        let mut at = 12;
        while query[at] != 0 {
            let len = usize::from(query[at]);
            labels.push(String::from_utf8_lossy(&query[at + 1..at + 1 + len]).into_owned());
            at += 1 + len;
        }
        (labels.join("."), at + 1 + 4)
    }

    /// What a fake name server answers.
    #[derive(Clone, Copy)]
    enum Reply<'a> {
        /// A PTR answer whose owner name is a compression pointer to the question, as
        /// Docker's embedded DNS sends it.
        Name(&'a str),
        /// This rcode and no answer (3 = NXDOMAIN, 2 = SERVFAIL).
        Rcode(u16),
        /// A PTR answer cut short.
        Truncated,
        /// A PTR answer whose name points at itself.
        CompressionLoop,
    }

    /// The response to `query` (header and question kept, additional records dropped).
    fn response(query: &[u8], reply: Reply) -> Vec<u8> {
        let (_, end) = question(query);
        let mut m = query[..end].to_vec();
        let rcode = match reply {
            Reply::Rcode(rcode) => rcode,
            _ => 0,
        };
        m[2..4].copy_from_slice(&(0x8180u16 | rcode).to_be_bytes());
        m[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
        if matches!(reply, Reply::Rcode(_)) {
            return m;
        }
        m[6..8].copy_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&[0xc0, 12]); // pointer to the question name
        m.extend_from_slice(&TYPE_PTR.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&600u32.to_be_bytes());
        let mut rdata = Vec::new();
        match reply {
            Reply::Name(_) | Reply::Truncated => {
                let name = match reply {
                    Reply::Name(name) => name,
                    _ => "dn-7.net",
                };
                for label in name.split('.') {
                    rdata.push(label.len() as u8);
                    rdata.extend_from_slice(label.as_bytes());
                }
                rdata.push(0);
            }
            _ => {
                // A pointer to the rdata's own first byte.
                let here = m.len() + 2;
                rdata.extend_from_slice(&[0xc0 | (here >> 8) as u8, (here & 0xff) as u8]);
            }
        }
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(&rdata);
        if matches!(reply, Reply::Truncated) {
            m.truncate(m.len() - 5);
        }
        m
    }

    /// A name server on loopback that answers every question with `reply` and reports the
    /// question names it was asked.
    async fn fake_name_server(
        reply: Reply<'static>,
    ) -> (ResolverConfig, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let (name, end) = question(&buf[..n]);
                assert_eq!(&buf[end - 4..end], &[0, 12, 0, 1], "a PTR IN question");
                let _ = tx.send(name);
                server
                    .send_to(&response(&buf[..n], reply), from)
                    .await
                    .unwrap();
            }
        });
        let mut udp = ConnectionConfig::udp();
        udp.port = port;
        let ns = NameServerConfig::new("127.0.0.1".parse().unwrap(), true, vec![udp]);
        (ResolverConfig::from_parts(None, vec![], vec![ns]), rx)
    }

    const TEST_TIMEOUT: Duration = Duration::from_millis(500);

    /// The question asked is the reverse name of the address, in IPv4 and IPv6 form.
    #[tokio::test]
    async fn asks_for_the_reverse_name() {
        let (config, mut asked) = fake_name_server(Reply::Name("dn-7.net")).await;
        let got = ask(config.clone(), "172.18.0.5".parse().unwrap(), TEST_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("dn-7.net"));
        assert_eq!(asked.recv().await.unwrap(), "5.0.18.172.in-addr.arpa");
        let got = ask(config, "2001:db8::1".parse().unwrap(), TEST_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("dn-7.net"));
        let v6 = asked.recv().await.unwrap();
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
    }

    #[tokio::test]
    async fn parses_ptr_answers() {
        let ip: IpAddr = "172.18.0.5".parse().unwrap();
        let (config, _) = fake_name_server(Reply::Name("ozone_datanode_1.ozone_default")).await;
        let got = ask(config, ip, TEST_TIMEOUT).await.unwrap();
        assert_eq!(got.as_deref(), Some("ozone_datanode_1.ozone_default"));
        // NXDOMAIN and an empty answer: no name.
        let (config, _) = fake_name_server(Reply::Rcode(3)).await;
        assert_eq!(ask(config, ip, TEST_TIMEOUT).await.unwrap(), None);
        let (config, _) = fake_name_server(Reply::Rcode(0)).await;
        assert_eq!(ask(config, ip, TEST_TIMEOUT).await.unwrap(), None);
        // SERVFAIL is an error; so are a truncated answer and a compression loop.
        let (config, _) = fake_name_server(Reply::Rcode(2)).await;
        assert!(ask(config, ip, TEST_TIMEOUT).await.is_err());
        let (config, _) = fake_name_server(Reply::Truncated).await;
        assert!(ask(config, ip, TEST_TIMEOUT).await.is_err());
        let (config, _) = fake_name_server(Reply::CompressionLoop).await;
        assert!(ask(config, ip, TEST_TIMEOUT).await.is_err());
    }

    #[tokio::test]
    async fn loopback_scm_gives_loopback() {
        let ip = local_ip_towards("127.0.0.1:9861").await.unwrap();
        assert!(ip.is_loopback());
        assert_eq!(
            advertised_host("127.0.0.1:9861", true).await.unwrap(),
            "127.0.0.1"
        );
    }
}
