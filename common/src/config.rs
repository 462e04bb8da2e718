//! Configuration: Ozone's `ozone-site.xml` with Ozone's key names, overridden by environment
//! variables `OZONE-SITE.XML_<key>=<value>` (as in Ozone's docker images).
//!
//! Every key Ozone-RS reads is listed in [`KEYS`] with its default and meaning; a key found in a
//! file or the environment that is not listed is warned about once at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One configuration key: its name, default value and what it means.
pub struct KeyDef {
    pub name: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

macro_rules! keys {
    ($($name:literal = $default:literal : $doc:literal;)*) => {
        /// Every configuration key, with its default and meaning.
        pub const KEYS: &[KeyDef] = &[$(KeyDef { name: $name, default: $default, doc: $doc }),*];
    };
}

keys! {
    "ozone.metadata.dirs" = "./data/metadata" : "Directory for SCM and OM databases when the role-specific dir is unset.";
    "ozone.om.db.dirs" = "" : "OM database directory (default: ozone.metadata.dirs).";
    "ozone.scm.db.dirs" = "" : "SCM database directory (default: ozone.metadata.dirs).";
    "hdds.datanode.dir" = "./data/hdds" : "Datanode container directory; {hostname} in it is replaced by the advertised host name (one directory per datanode on a shared volume).";
    "ozone.om.address" = "127.0.0.1:9862" : "OM gRPC address (host:port); clients connect here, OM binds its port.";
    "ozone.om.http-address" = "0.0.0.0:9874" : "OM http address (/prom, status page).";
    "ozone.scm.names" = "127.0.0.1" : "SCM host, used when the SCM address keys are unset.";
    "ozone.scm.client.address" = "" : "SCM client gRPC address used by OM and admin tools (default: <ozone.scm.names>:9860).";
    "ozone.scm.datanode.address" = "" : "SCM datanode gRPC address used by datanodes (default: <ozone.scm.names>:9861).";
    "ozone.scm.http-address" = "0.0.0.0:9876" : "SCM http address.";
    "hdds.datanode.hostname" = "" : "Host name or IP a datanode advertises to SCM and clients (default: the local IP address it reaches SCM from, or its DNS name; see hdds.datanode.use.datanode.hostname).";
    "hdds.datanode.use.datanode.hostname" = "false" : "With hdds.datanode.hostname unset, advertise the DNS name (reverse lookup) of the address SCM is reached from instead of the address: in docker-compose the container name, stable across down/up.";
    "hdds.container.ipc.port" = "9859" : "Datanode gRPC port (0 picks a free port).";
    "hdds.datanode.http-address" = "0.0.0.0:9882" : "Datanode http address.";
    "ozone.s3g.http-address" = "0.0.0.0:9878" : "S3 gateway address.";
    "ozone.s3g.webadmin.http-address" = "0.0.0.0:19878" : "S3 gateway web admin address (/prom, status page).";
    "ozone.s3g.volume.name" = "s3v" : "Volume that holds the S3 buckets.";
    "ozone.security.enabled" = "false" : "Security: the S3 gateway verifies AWS SigV4 signatures against per-user secrets kept by OM, and bucket owners and ACLs decide who may do what. Off: any access key is accepted and names the user.";
    "ozone.om.admin.secret.file" = "" : "File holding the admin credential that `ozone s3 getsecret|revokesecret` must present (OM reads it; the CLI reads it too, or $OZONE_ADMIN_SECRET). Empty: <OM db dir>/admin.secret, created (mode 0600) by OM at start when security is on.";
    "ozone.s3g.domain.name" = "" : "Comma-separated domains for virtual-host-style bucket addressing.";
    "ozone.s3g.list.max.keys.limit" = "1000" : "Largest page ListObjects returns.";
    "ozone.s3g.client.buffer.size" = "1MB" : "Bytes of a request body the S3 gateway gathers before sending them to the datanodes as one piece (bounds memory per upload).";
    "ozone.s3g.workers" = "0" : "S3 gateway worker threads (0: one per core).";
    "ozone.security.enabled" = "false" : "Verify S3 signatures against OM-held secrets (off: any access key works and names the user).";
    "ozone.server.default.replication" = "3" : "Replication factor of new keys: 1 or 3.";
    "ozone.scm.block.size" = "256MB" : "Largest block; bigger keys span several blocks.";
    "ozone.scm.chunk.size" = "4MB" : "Chunk size: the unit of a datanode write.";
    "ozone.scm.container.size" = "5GB" : "Container size; a container whose allocations reach it is closed.";
    "ozone.client.bytes.per.checksum" = "16KB" : "Bytes covered by one CRC32C checksum.";
    "ozone.scm.pipeline.owner.container.count" = "3" : "Open containers per pipeline.";
    "ozone.scm.datanode.pipeline.limit" = "2" : "Pipelines a datanode may belong to.";
    "hdds.scm.safemode.min.datanode" = "0" : "Healthy datanodes needed before SCM allocates blocks (0: the replication factor).";
    "hdds.heartbeat.interval" = "3s" : "Datanode heartbeat interval.";
    "ozone.scm.stale.node.interval" = "30s" : "A datanode silent this long is STALE.";
    "ozone.scm.dead.node.interval" = "60s" : "A datanode silent this long is DEAD.";
    "ozone.key.preallocation.max.blocks" = "64" : "Most blocks OM allocates when a key is opened.";
    "ozone.om.service.ids" = "" : "OM HA: the OM service id (one). Empty: a single OM at ozone.om.address.";
    "ozone.om.nodes.<serviceId>" = "" : "OM HA: comma-separated node ids of the OMs of the service, e.g. om1,om2,om3.";
    "ozone.om.address.<serviceId>.<nodeId>" = "" : "OM HA: gRPC address (host:port) of one OM node; clients and the other OMs (raft) use it.";
    "ozone.om.node.id" = "" : "OM HA: which node of the service this OM is (needed when the service lists several nodes).";
    "ozone.om.ratis.snapshot.auto.trigger.threshold" = "10000" : "OM snapshots its state after this many log entries applied since the last snapshot.";
    "ozone.om.ratis.log.purge.gap" = "1000" : "Log entries an OM keeps before its latest snapshot when it purges the log (a follower further behind catches up by snapshot).";
    "ozone.om.ratis.minimum.timeout" = "1s" : "OM election timeout: a follower hearing no leader for this long (randomised up to twice) starts an election; the leader heartbeats at a third of it.";
    "ozone.om.ratis.server.request.timeout" = "5s" : "How long an OM waits for a write to commit, or a read to confirm leadership, before answering OM_UNAVAILABLE.";
    "hdds.scm.replication.thread.interval" = "300s" : "How often SCM's ReplicationManager checks every closed container for missing, excess and unhealthy replicas.";
    "hdds.scm.replication.event.timeout" = "12m" : "How long the ReplicationManager waits for a replication or replica deletion it asked for before asking again.";
    "hdds.datanode.replication.streams.limit" = "10" : "Container copies a datanode runs at once (more wait in its replication queue).";
    "hdds.container.scrub.enabled" = "true" : "Run the background scrubber that re-verifies every stored checksum on each datanode.";
    "hdds.container.scrub.data.scan.interval" = "7d" : "Least time between two data scans of the same container by the scrubber.";
    "hdds.container.scrub.volume.bytes.per.second" = "5MB" : "Bytes per second the scrubber reads (rate limit of background verification).";
    "ozone.block.deleting.service.interval" = "60s" : "How often OM hands the blocks of deleted and overwritten keys to SCM's deleted-block log.";
    "ozone.key.deleting.limit.per.task" = "20000" : "Most deleted-block records OM sends to SCM in one round.";
    "hdds.scm.block.deletion.per-interval.max" = "100000" : "Most blocks SCM asks one datanode to delete in one heartbeat response.";
    "ozone.client.stream.buffer.max.size" = "8MB" : "Bytes of the current block the S3 gateway keeps so that, if its replicas fail, it can rewrite the block on a new pipeline; a block whose replicas fail after more than this was sent fails the upload with an error.";
}

/// Whether configuration key `key` is `name`, or matches it where `name` has `<placeholder>`
/// segments (each matches one non-empty dot-free segment).
pub fn key_matches(name: &str, key: &str) -> bool {
    if !name.contains('<') {
        return name == key;
    }
    let (n, k): (Vec<&str>, Vec<&str>) = (name.split('.').collect(), key.split('.').collect());
    n.len() == k.len()
        && n.iter().zip(&k).all(|(n, k)| {
            if n.starts_with('<') && n.ends_with('>') {
                !k.is_empty()
            } else {
                n == k
            }
        })
}

/// One OM of the OM service: its node id and gRPC address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OmNodeAddress {
    pub node_id: String,
    pub address: String,
}

/// Node id of the single OM when `ozone.om.service.ids` is unset.
pub const SINGLE_OM_NODE_ID: &str = "om1";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Xml { path: PathBuf, message: String },
    #[error("configuration key {key}: {message}")]
    Invalid { key: String, message: String },
}

/// Loaded configuration: values from the file and environment; defaults for the rest.
#[derive(Clone, Debug, Default)]
pub struct OzoneConfig {
    values: BTreeMap<String, String>,
}

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "OZONE-SITE.XML_";

impl OzoneConfig {
    /// Loads `<dir>/ozone-site.xml` where `dir` is `conf_dir`, else `$OZONE_CONF_DIR`; a missing
    /// file is not an error. Then applies `OZONE-SITE.XML_<key>` environment variables.
    pub fn load(conf_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let dir = conf_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("OZONE_CONF_DIR").map(PathBuf::from));
        let mut cfg = OzoneConfig::default();
        if let Some(dir) = dir {
            let path = dir.join("ozone-site.xml");
            if path.exists() {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                    path: path.clone(),
                    source,
                })?;
                cfg.values = parse_site_xml(&text).map_err(|message| ConfigError::Xml {
                    path: path.clone(),
                    message,
                })?;
            }
        }
        for (name, value) in std::env::vars() {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                cfg.values.insert(key.to_string(), value);
            }
        }
        for key in cfg.values.keys() {
            if !KEYS.iter().any(|k| key_matches(k.name, key)) {
                tracing::warn!(key = %key, "unknown configuration key (ignored)");
            }
        }
        Ok(cfg)
    }

    /// Sets a key (overriding file and environment).
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.values.insert(key.to_string(), value.into());
        self
    }

    /// The value of `key`, or its default. An unlisted key yields "".
    pub fn get(&self, key: &str) -> String {
        if let Some(v) = self.values.get(key) {
            return v.trim().to_string();
        }
        KEYS.iter()
            .find(|k| k.name == key)
            .map(|k| k.default.to_string())
            .unwrap_or_default()
    }

    /// The value of `key` when set explicitly or with a non-empty default.
    pub fn get_opt(&self, key: &str) -> Option<String> {
        let v = self.get(key);
        (!v.is_empty()).then_some(v)
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.get(key).to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" | "" => Ok(false),
            other => Err(invalid(
                key,
                format!("expected true or false, got {other:?}"),
            )),
        }
    }

    pub fn get_u64(&self, key: &str) -> Result<u64, ConfigError> {
        let v = self.get(key);
        v.parse()
            .map_err(|_| invalid(key, format!("expected a number, got {v:?}")))
    }

    /// A size such as `256MB`, `4MB`, `16KB`, `5GB` (binary units, as Ozone reads them) or bytes.
    pub fn get_bytes(&self, key: &str) -> Result<u64, ConfigError> {
        let v = self.get(key);
        parse_bytes(&v).ok_or_else(|| invalid(key, format!("expected a size like 4MB, got {v:?}")))
    }

    /// A duration such as `3s`, `500ms`, `5m`, `1h`; a bare number is milliseconds.
    pub fn get_duration(&self, key: &str) -> Result<Duration, ConfigError> {
        let v = self.get(key);
        parse_duration(&v)
            .ok_or_else(|| invalid(key, format!("expected a duration like 3s, got {v:?}")))
    }

    /// SCM client address (`host:port`).
    pub fn scm_client_address(&self) -> String {
        self.get_opt("ozone.scm.client.address")
            .unwrap_or_else(|| format!("{}:9860", first_host(&self.get("ozone.scm.names"))))
    }

    /// SCM datanode-protocol address (`host:port`).
    pub fn scm_datanode_address(&self) -> String {
        self.get_opt("ozone.scm.datanode.address")
            .unwrap_or_else(|| format!("{}:9861", first_host(&self.get("ozone.scm.names"))))
    }

    /// The OMs of the OM service: `ozone.om.service.ids` (one id), `ozone.om.nodes.<id>` and
    /// `ozone.om.address.<id>.<node>`; without a service id, one OM (`om1`) at `ozone.om.address`.
    pub fn om_nodes(&self) -> Result<Vec<OmNodeAddress>, ConfigError> {
        let Some(ids) = self.get_opt("ozone.om.service.ids") else {
            return Ok(vec![OmNodeAddress {
                node_id: SINGLE_OM_NODE_ID.to_string(),
                address: self.get("ozone.om.address"),
            }]);
        };
        let ids: Vec<&str> = ids
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let [sid] = ids.as_slice() else {
            return Err(invalid(
                "ozone.om.service.ids",
                format!("exactly one OM service id is supported, got {ids:?}"),
            ));
        };
        let nodes_key = format!("ozone.om.nodes.{sid}");
        let nodes = self.get(&nodes_key);
        let mut out: Vec<OmNodeAddress> = Vec::new();
        for nid in nodes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if out.iter().any(|n| n.node_id == nid) {
                return Err(invalid(&nodes_key, format!("node id {nid} listed twice")));
            }
            let addr_key = format!("ozone.om.address.{sid}.{nid}");
            let address = self.get_opt(&addr_key).ok_or_else(|| {
                invalid(&addr_key, "missing: every OM node needs an address".into())
            })?;
            out.push(OmNodeAddress {
                node_id: nid.to_string(),
                address,
            });
        }
        if out.is_empty() {
            return Err(invalid(&nodes_key, "no OM node ids listed".into()));
        }
        Ok(out)
    }

    /// Every OM gRPC address, for clients: [`Self::om_nodes`], else `ozone.om.address` read as
    /// a comma-separated list.
    pub fn om_addresses(&self) -> Vec<String> {
        match self.om_nodes() {
            Ok(nodes) if self.get_opt("ozone.om.service.ids").is_some() => {
                nodes.into_iter().map(|n| n.address).collect()
            }
            Ok(_) => self
                .get("ozone.om.address")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "invalid OM service configuration; using ozone.om.address");
                vec![self.get("ozone.om.address")]
            }
        }
    }

    /// Explicitly set keys and values (not defaults).
    pub fn explicit(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// The explicitly set keys as an `ozone-site.xml` document.
    pub fn to_site_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\"?>\n<configuration>\n");
        for (k, v) in &self.values {
            out.push_str(&format!(
                "  <property><name>{}</name><value>{}</value></property>\n",
                xml_escape(k),
                xml_escape(v)
            ));
        }
        out.push_str("</configuration>\n");
        out
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message,
    }
}

fn first_host(names: &str) -> &str {
    names.split(',').next().unwrap_or("127.0.0.1").trim()
}

/// The address a server should bind for an advertised `host:port`: the same when the host is
/// an IP literal, else every interface on that port.
pub fn bind_address(advertised: &str) -> String {
    match advertised.rsplit_once(':') {
        Some((host, port)) if host.parse::<std::net::IpAddr>().is_err() => {
            format!("0.0.0.0:{port}")
        }
        _ => advertised.to_string(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Parses `<configuration><property><name>k</name><value>v</value></property>...`.
pub fn parse_site_xml(text: &str) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct Configuration {
        #[serde(rename = "property", default)]
        property: Vec<Property>,
    }
    #[derive(serde::Deserialize)]
    struct Property {
        name: String,
        #[serde(default)]
        value: String,
    }
    let cfg: Configuration = quick_xml::de::from_str(text).map_err(|e| e.to_string())?;
    Ok(cfg
        .property
        .into_iter()
        .map(|p| (p.name.trim().to_string(), p.value))
        .collect())
}

pub fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        "T" | "TB" => 1 << 40,
        _ => return None,
    };
    Some((num * mult as f64) as u64)
}

pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "ms" => Duration::from_millis(num),
        "s" => Duration::from_secs(num),
        "m" => Duration::from_secs(num * 60),
        "h" => Duration::from_secs(num * 3600),
        "d" => Duration::from_secs(num * 86400),
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_site_xml_and_units() {
        let xml = r#"<?xml version="1.0"?><configuration>
            <property><name>ozone.scm.block.size</name><value>1MB</value></property>
            <property><name>hdds.heartbeat.interval</name><value>500ms</value></property>
        </configuration>"#;
        let mut cfg = OzoneConfig {
            values: parse_site_xml(xml).unwrap(),
        };
        assert_eq!(cfg.get_bytes("ozone.scm.block.size").unwrap(), 1 << 20);
        assert_eq!(
            cfg.get_duration("hdds.heartbeat.interval").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(cfg.get("ozone.s3g.volume.name"), "s3v");
        cfg.set("ozone.scm.names", "scm");
        assert_eq!(cfg.scm_client_address(), "scm:9860");
        let round = parse_site_xml(&cfg.to_site_xml()).unwrap();
        assert_eq!(
            round.get("ozone.scm.names").map(String::as_str),
            Some("scm")
        );
    }

    #[test]
    fn every_key_has_a_valid_default() {
        for k in KEYS {
            assert!(!k.doc.is_empty(), "{} has no doc", k.name);
        }
        let cfg = OzoneConfig::default();
        cfg.get_bytes("ozone.scm.container.size").unwrap();
        cfg.get_duration("ozone.scm.dead.node.interval").unwrap();
        assert_eq!(parse_bytes("5GB"), Some(5 << 30));
        assert_eq!(bind_address("om:9862"), "0.0.0.0:9862");
        assert_eq!(bind_address("127.0.0.1:9862"), "127.0.0.1:9862");
    }

    #[test]
    fn om_service_keys() {
        assert!(key_matches(
            "ozone.om.nodes.<serviceId>",
            "ozone.om.nodes.omservice"
        ));
        assert!(key_matches(
            "ozone.om.address.<serviceId>.<nodeId>",
            "ozone.om.address.omservice.om2"
        ));
        assert!(!key_matches("ozone.om.nodes.<serviceId>", "ozone.om.nodes"));
        assert!(!key_matches(
            "ozone.om.address.<serviceId>.<nodeId>",
            "ozone.om.address.x"
        ));
        let mut cfg = OzoneConfig::default();
        cfg.set("ozone.om.address", "a:1,b:2");
        assert_eq!(cfg.om_addresses(), vec!["a:1", "b:2"]);
        assert_eq!(cfg.om_nodes().unwrap()[0].node_id, SINGLE_OM_NODE_ID);
        cfg.set("ozone.om.service.ids", "svc")
            .set("ozone.om.nodes.svc", "om1, om2")
            .set("ozone.om.address.svc.om1", "h1:9862");
        assert!(cfg.om_nodes().is_err(), "om2 has no address");
        cfg.set("ozone.om.address.svc.om2", "h2:9862");
        let nodes = cfg.om_nodes().unwrap();
        assert_eq!(nodes[1].node_id, "om2");
        assert_eq!(cfg.om_addresses(), vec!["h1:9862", "h2:9862"]);
    }
}
