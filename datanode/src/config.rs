//! The datanode's runtime configuration, read and validated from the Ozone keys it uses.

use std::path::PathBuf;
use std::time::Duration;

use ozone_common::{ConfigError, OzoneConfig};

use crate::error::DatanodeError;
use ozone_common::config::keys;

/// Validated datanode settings.
#[derive(Debug, Clone)]
pub struct DatanodeConfig {
    /// `hdds.datanode.dir`: identity, lock file and containers. `{hostname}` in it stands for
    /// the advertised host (replaced by [`DatanodeConfig::with_hostname`]).
    pub dir: PathBuf,
    /// `hdds.datanode.hostname`: the host clients and SCM are told to use; empty until known
    /// when unset (the datanode then finds it: see `hdds.datanode.use.datanode.hostname`).
    pub hostname: String,
    /// `hdds.datanode.use.datanode.hostname`: with no hostname set, advertise the DNS name of
    /// the address SCM is reached from instead of the address itself.
    pub use_hostname: bool,
    /// `hdds.container.ipc.port`: gRPC port; 0 picks a free one.
    pub grpc_port: u16,
    /// `hdds.datanode.http-address`: `/prom` and the status page.
    pub http_address: String,
    /// The datanode-protocol address (`host:port`) of every SCM of the service (one without
    /// SCM HA): the datanode heartbeats to each and obeys the leader.
    pub scm_addresses: Vec<String>,
    /// `hdds.heartbeat.interval`.
    pub heartbeat_interval: Duration,
    /// `hdds.container.report.interval`: how often a heartbeat carries a full container report
    /// (the others carry the changes since the last report SCM answered).
    pub container_report_interval: Duration,
    /// `hdds.datanode.replication.streams.limit`: container copies run at once.
    pub replication_streams: usize,
    /// `hdds.container.scrub.enabled`.
    pub scrub_enabled: bool,
    /// `hdds.container.scrub.data.scan.interval`: least time between two scans of a container.
    pub scrub_interval: Duration,
    /// `hdds.container.scrub.volume.bytes.per.second`.
    pub scrub_bytes_per_second: u64,
    /// Block and container tokens (security on): which calls need one.
    pub tokens: ozone_common::token::TokenSettings,
}

impl DatanodeConfig {
    pub fn from_ozone(cfg: &OzoneConfig) -> Result<Self, DatanodeError> {
        let port_key = keys::HDDS_CONTAINER_IPC_PORT;
        let port = cfg.get_u64(port_key)?;
        let grpc_port = u16::try_from(port)
            .map_err(|_| ConfigError::invalid(port_key, format!("{port} is not a TCP port")))?;
        let heartbeat_interval = cfg.get_duration(keys::HDDS_HEARTBEAT_INTERVAL)?;
        if heartbeat_interval.is_zero() {
            return Err(ConfigError::invalid(
                keys::HDDS_HEARTBEAT_INTERVAL,
                "must be longer than 0",
            )
            .into());
        }
        let dir = cfg.get(keys::HDDS_DATANODE_DIR);
        if dir.is_empty() {
            return Err(ConfigError::invalid(keys::HDDS_DATANODE_DIR, "must not be empty").into());
        }
        let streams = cfg.get_u64(keys::HDDS_DATANODE_REPLICATION_STREAMS_LIMIT)?;
        let scrub_bytes_per_second =
            cfg.get_bytes(keys::HDDS_CONTAINER_SCRUB_VOLUME_BYTES_PER_SECOND)?;
        if streams == 0 || scrub_bytes_per_second == 0 {
            return Err(ConfigError::Invalid {
                key: "hdds.datanode.replication.streams.limit / hdds.container.scrub.volume.bytes.per.second".into(),
                message: "must be at least 1".into(),
            }
            .into());
        }
        Ok(DatanodeConfig {
            tokens: ozone_common::token::TokenSettings::from_config(cfg)?,
            replication_streams: usize::try_from(streams).unwrap_or(usize::MAX),
            scrub_enabled: cfg.get_bool(keys::HDDS_CONTAINER_SCRUB_ENABLED)?,
            scrub_interval: cfg.get_duration(keys::HDDS_CONTAINER_SCRUB_DATA_SCAN_INTERVAL)?,
            scrub_bytes_per_second,
            dir: PathBuf::from(dir),
            hostname: cfg.get(keys::HDDS_DATANODE_HOSTNAME),
            use_hostname: cfg.get_bool(keys::HDDS_DATANODE_USE_DATANODE_HOSTNAME)?,
            grpc_port,
            http_address: cfg.get(keys::HDDS_DATANODE_HTTP_ADDRESS),
            // An invalid SCM service is refused here rather than heartbeating to a guess.
            scm_addresses: cfg.scm_nodes()?.into_iter().map(|n| n.datanode).collect(),
            heartbeat_interval,
            container_report_interval: cfg.get_duration(keys::HDDS_CONTAINER_REPORT_INTERVAL)?,
        })
    }

    /// The configuration once the advertised host is known: `hostname` set and `{hostname}`
    /// in the data directory replaced by it (datanodes sharing one volume, as the replicas of
    /// a scaled compose service do, keep one directory each).
    pub fn with_hostname(mut self, hostname: String) -> Self {
        let dir = self.dir.to_string_lossy().replace("{hostname}", &hostname);
        self.dir = PathBuf::from(dir);
        self.hostname = hostname;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let mut cfg = OzoneConfig::default();
        let c = DatanodeConfig::from_ozone(&cfg).expect("defaults are valid");
        assert_eq!(c.grpc_port, 9859);
        assert_eq!((c.hostname.as_str(), c.use_hostname), ("", false));
        assert_eq!(c.scm_addresses, vec!["127.0.0.1:9861"]);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        cfg.set(keys::HDDS_CONTAINER_IPC_PORT, "70000");
        assert!(DatanodeConfig::from_ozone(&cfg).is_err());
        cfg.set(keys::HDDS_CONTAINER_IPC_PORT, "0");
        cfg.set(keys::HDDS_DATANODE_HOSTNAME, "dn1");
        cfg.set(keys::OZONE_SCM_NAMES, "scm");
        let c = DatanodeConfig::from_ozone(&cfg).expect("valid");
        assert_eq!((c.grpc_port, c.hostname.as_str()), (0, "dn1"));
        assert_eq!(c.scm_addresses, vec!["scm:9861"]);
        cfg.set(keys::OZONE_SCM_SERVICE_IDS, "svc")
            .set(keys::OZONE_SCM_NODES_SERVICEID.with([&"svc"]), "a,b")
            .set(
                keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"a"]),
                "h1",
            )
            .set(
                keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"b"]),
                "h2",
            );
        let c = DatanodeConfig::from_ozone(&cfg).expect("valid");
        assert_eq!(c.scm_addresses, vec!["h1:9861", "h2:9861"]);
        cfg.set(keys::HDDS_DATANODE_DIR, "/data/{hostname}/hdds");
        cfg.set(keys::HDDS_DATANODE_USE_DATANODE_HOSTNAME, "true");
        let c = DatanodeConfig::from_ozone(&cfg).expect("valid");
        assert!(c.use_hostname);
        let c = c.with_hostname("ozone_datanode_2.ozone_default".into());
        assert_eq!(
            c.dir,
            PathBuf::from("/data/ozone_datanode_2.ozone_default/hdds")
        );
        cfg.set(keys::HDDS_DATANODE_USE_DATANODE_HOSTNAME, "yes");
        assert!(DatanodeConfig::from_ozone(&cfg).is_err());
    }
}
