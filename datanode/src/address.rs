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
//! The reverse lookup speaks DNS over UDP to the name servers of `/etc/resolv.conf` directly
//! (one question, answers parsed with name compression), so it needs no C resolver and works in a
//! statically linked binary in a `FROM scratch` image.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

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

/// The name servers listed in a resolv.conf text.
fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|w| w.parse().ok())
        })
        .collect()
}

/// The PTR name of `ip` from the name servers in `resolv_conf`; `None` when they have none.
pub(crate) async fn reverse_lookup(
    resolv_conf: &Path,
    ip: IpAddr,
) -> std::io::Result<Option<String>> {
    let text = tokio::fs::read_to_string(resolv_conf).await?;
    let servers = nameservers(&text);
    if servers.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no name server in {}", resolv_conf.display()),
        ));
    }
    let mut last_err = None;
    for server in servers {
        match ask(SocketAddr::new(server, 53), ip).await {
            Ok(answer) => return Ok(answer),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no name server answered")))
}

/// One PTR question to one server.
async fn ask(server: SocketAddr, ip: IpAddr) -> std::io::Result<Option<String>> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(any).await?;
    socket.connect(server).await?;
    let id = (uuid::Uuid::new_v4().as_u128() & 0xffff) as u16;
    socket.send(&ptr_query(id, ip)).await?;
    let mut buf = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + DNS_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("name server {server} did not answer"),
                )
            })??;
        match parse_ptr_response(&buf[..n], id) {
            Ok(Some(answer)) => return answer,
            // A stray datagram (another id): keep waiting for ours.
            Ok(None) => continue,
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad answer from {server}: {e}"),
                ));
            }
        }
    }
}

/// `4.3.2.1.in-addr.arpa` / nibble form `....ip6.arpa`.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// A DNS query (recursion desired) for the PTR record of `ip`.
fn ptr_query(id: u16, ip: IpAddr) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // AN, NS, AR
    for label in reverse_name(ip).split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_PTR.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

const TYPE_PTR: u16 = 12;

/// `Ok(None)`: not an answer to `id`. `Ok(Some(Ok(None)))`: the server has no name for it.
type Parsed = Option<std::io::Result<Option<String>>>;

fn parse_ptr_response(msg: &[u8], id: u16) -> Result<Parsed, String> {
    let u16_at = |at: usize| -> Result<u16, String> {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated message".to_string())
    };
    if u16_at(0)? != id {
        return Ok(None);
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Ok(None); // a query, not a response
    }
    match flags & 0x000f {
        0 => {}
        3 => return Ok(Some(Ok(None))), // NXDOMAIN
        rcode => {
            return Ok(Some(Err(std::io::Error::other(format!(
                "name server answered with rcode {rcode}"
            )))));
        }
    }
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let rtype = u16_at(at)?;
        let rdlen = usize::from(u16_at(at + 8)?);
        let rdata = at + 10;
        if rtype == TYPE_PTR {
            let name = read_name(msg, rdata)?;
            return Ok(Some(Ok((!name.is_empty()).then_some(name))));
        }
        at = rdata + rdlen;
    }
    Ok(Some(Ok(None)))
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let len = *msg.get(at).ok_or("truncated name")?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

/// The dotted name at `at`, following compression pointers; no trailing dot.
fn read_name(msg: &[u8], mut at: usize) -> Result<String, String> {
    let mut labels: Vec<String> = Vec::new();
    let mut jumps = 0;
    loop {
        let len = *msg.get(at).ok_or("truncated name")?;
        if len == 0 {
            return Ok(labels.join("."));
        }
        if len & 0xc0 == 0xc0 {
            let low = *msg.get(at + 1).ok_or("truncated pointer")?;
            at = (usize::from(len & 0x3f) << 8) | usize::from(low);
            jumps += 1;
            if jumps > 64 {
                return Err("name compression loop".into());
            }
            continue;
        }
        let label = msg
            .get(at + 1..at + 1 + usize::from(len))
            .ok_or("truncated label")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + usize::from(len);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("172.18.0.5".parse().unwrap()),
            "5.0.18.172.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
    }

    #[test]
    fn reads_nameservers() {
        let conf =
            "# generated\nsearch example\nnameserver 127.0.0.11\noptions ndots:0\nnameserver ::1\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "127.0.0.11".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
    }

    /// A response as Docker's embedded DNS sends it: the question, then a PTR answer whose
    /// owner name is a compression pointer to the question.
    fn response(id: u16, rcode: u16, name: Option<&str>) -> Vec<u8> {
        let ip: IpAddr = "172.18.0.5".parse().unwrap();
        let mut m = ptr_query(id, ip);
        m[2..4].copy_from_slice(&(0x8180u16 | rcode).to_be_bytes());
        if let Some(name) = name {
            m[6..8].copy_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&[0xc0, 12]); // pointer to the question name
            m.extend_from_slice(&TYPE_PTR.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&600u32.to_be_bytes());
            let mut rdata = Vec::new();
            for label in name.split('.') {
                rdata.push(label.len() as u8);
                rdata.extend_from_slice(label.as_bytes());
            }
            rdata.push(0);
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&rdata);
        }
        m
    }

    #[test]
    fn parses_ptr_answers() {
        let ok = response(7, 0, Some("ozone_datanode_1.ozone_default"));
        let got = parse_ptr_response(&ok, 7).unwrap().unwrap().unwrap();
        assert_eq!(got.as_deref(), Some("ozone_datanode_1.ozone_default"));
        // Another id is not our answer.
        assert!(parse_ptr_response(&ok, 8).unwrap().is_none());
        // NXDOMAIN and an empty answer: no name.
        let nx = response(7, 3, None);
        assert_eq!(parse_ptr_response(&nx, 7).unwrap().unwrap().unwrap(), None);
        let empty = response(7, 0, None);
        assert_eq!(
            parse_ptr_response(&empty, 7).unwrap().unwrap().unwrap(),
            None
        );
        // SERVFAIL is an error; truncation is a parse error.
        assert!(
            parse_ptr_response(&response(7, 2, None), 7)
                .unwrap()
                .unwrap()
                .is_err()
        );
        assert!(parse_ptr_response(&ok[..ok.len() - 5], 7).is_err());
    }

    #[test]
    fn compression_loops_are_refused() {
        let msg = [0xc0, 0x00];
        assert!(read_name(&msg, 0).is_err());
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

    /// A fake name server on loopback answers the PTR question.
    #[tokio::test]
    async fn asks_the_configured_name_server() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert_eq!(&buf[n - 4..n], &[0, 12, 0, 1], "a PTR IN question");
            let reply = response(id, 0, Some("dn-7.net"));
            server.send_to(&reply, from).await.unwrap();
        });
        let got = ask(addr, "172.18.0.5".parse().unwrap()).await.unwrap();
        assert_eq!(got.as_deref(), Some("dn-7.net"));
    }
}
