//! OM replication on openraft 0.9 (storage-v2): every namespace change is an [`OmCommand`] in
//! a raft log entry; the OMs of one service (1 or 3) form one raft group.
//!
//! - [`log_store`]: the raft log and vote in redb (`raft.db`), one fsync per appended batch;
//! - [`state_machine`]: openraft's view of [`crate::StateMachine`] (`om.db`): batched apply,
//!   snapshots streamed from / installed into the namespace tables through files of
//!   `<db dir>/snapshot/`;
//! - [`network`]: the tonic client of the `OmRaftService` of the other OMs;
//! - [`proposer`]: group commit: concurrent commands share one log entry (and so one fsync);
//! - [`node`]: starting the node, leadership, status and transfer;
//! - [`service`]: that service (raft RPCs, node status, leadership transfer).
//!
//! Node ids: Ozone names OM nodes (`om1`, ...); the raft id of a node is a stable 64-bit hash
//! of its name ([`raft_id`]), and the name and address ride in the membership ([`OmNode`]).

pub mod log_store;
pub mod network;
pub mod node;
pub mod proposer;
pub mod service;
pub mod state_machine;

use std::collections::BTreeMap;
use std::time::Duration;

use ozone_common::OzoneConfig;
use serde::{Deserialize, Serialize};

use crate::command::{OmCommand, OmResponse};
use crate::config::invalid;
use crate::error::OmError;
use ozone_common::config::keys;

/// A raft node id.
pub type NodeId = u64;

/// An OM node as the membership records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmNode {
    /// Ozone's node id (`ozone.om.nodes.<service>` entry), e.g. `om2`.
    pub node_id: String,
    /// gRPC address (`host:port`).
    pub address: String,
}

/// The payload of one raft entry: the commands the [`proposer`] gathered while the previous
/// entries were being written (group commit), applied in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBatch(pub Vec<OmCommand>);

openraft::declare_raft_types!(
    /// openraft types of OM: entries carry a [`CommandBatch`], apply answers one [`OmResponse`]
    /// per command.
    pub TypeConfig:
        D = CommandBatch,
        R = Vec<OmResponse>,
        NodeId = NodeId,
        Node = OmNode,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;

/// The raft id of an OM node name: FNV-1a 64 of the name, top bit cleared, never 0.
pub fn raft_id(node_id: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & (u64::MAX >> 1)).max(1)
}

/// Most entries one AppendEntries RPC carries.
pub const MAX_PAYLOAD_ENTRIES: u64 = 16;

/// Replication settings of one OM, from the configuration.
#[derive(Clone, Debug)]
pub struct HaSettings {
    /// This OM.
    pub me: OmNode,
    /// Every OM of the service (this one included), by raft id.
    pub peers: BTreeMap<NodeId, OmNode>,
    /// `ozone.om.ratis.snapshot.auto.trigger.threshold`.
    pub snapshot_threshold: u64,
    /// `ozone.om.ratis.log.purge.gap`.
    pub purge_gap: u64,
    /// `ozone.om.ratis.minimum.timeout`.
    pub election_timeout: Duration,
    /// `ozone.om.ratis.server.request.timeout`.
    pub request_timeout: Duration,
}

impl HaSettings {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, OmError> {
        let nodes = cfg.om_nodes()?;
        let mut peers = BTreeMap::new();
        for n in &nodes {
            let id = raft_id(&n.node_id);
            let node = OmNode {
                node_id: n.node_id.clone(),
                address: n.address.clone(),
            };
            if let Some(other) = peers.insert(id, node) {
                return Err(invalid(
                    keys::OZONE_OM_NODES_SERVICEID.with([&cfg.get(keys::OZONE_OM_SERVICE_IDS)]),
                    &format!("node ids {} and {} collide", other.node_id, n.node_id),
                ));
            }
        }
        let me_name = match (cfg.get_opt(keys::OZONE_OM_NODE_ID), nodes.as_slice()) {
            (Some(id), _) => id,
            (None, [only]) => only.node_id.clone(),
            (None, _) => {
                return Err(invalid(
                    keys::OZONE_OM_NODE_ID,
                    "the OM service lists several nodes: set which one this OM is",
                ));
            }
        };
        let me = peers.get(&raft_id(&me_name)).cloned().ok_or_else(|| {
            invalid(
                keys::OZONE_OM_NODE_ID,
                &format!("{me_name} is not a node of the OM service"),
            )
        })?;
        let snapshot_threshold =
            cfg.get_u64(keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD)?;
        if snapshot_threshold == 0 {
            return Err(invalid(
                keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD,
                "must be above 0",
            ));
        }
        let election_timeout = cfg.get_duration(keys::OZONE_OM_RATIS_MINIMUM_TIMEOUT)?;
        if election_timeout < Duration::from_millis(50) {
            return Err(invalid(
                keys::OZONE_OM_RATIS_MINIMUM_TIMEOUT,
                "must be at least 50ms",
            ));
        }
        Ok(HaSettings {
            me,
            peers,
            snapshot_threshold,
            purge_gap: cfg.get_u64(keys::OZONE_OM_RATIS_LOG_PURGE_GAP)?,
            election_timeout,
            request_timeout: cfg.get_duration(keys::OZONE_OM_RATIS_SERVER_REQUEST_TIMEOUT)?,
        })
    }

    pub fn my_id(&self) -> NodeId {
        raft_id(&self.me.node_id)
    }

    /// The openraft configuration these settings make.
    pub fn raft_config(&self) -> Result<openraft::Config, OmError> {
        let t = self.election_timeout.as_millis() as u64;
        openraft::Config {
            cluster_name: "ozone-om".to_string(),
            election_timeout_min: t,
            election_timeout_max: 2 * t,
            heartbeat_interval: (t / 3).max(10),
            install_snapshot_timeout: 30_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_threshold),
            max_in_snapshot_log_to_keep: self.purge_gap,
            // An entry holds up to MAX_BATCH commands: keep one AppendEntries well below
            // ozone_proto::MAX_MESSAGE_BYTES.
            max_payload_entries: MAX_PAYLOAD_ENTRIES,
            ..Default::default()
        }
        .validate()
        .map_err(|e| OmError::Internal(format!("raft configuration: {e}")))
    }

    /// The node named `node_id`.
    pub fn node(&self, node_id: &str) -> Option<(NodeId, &OmNode)> {
        let id = raft_id(node_id);
        self.peers.get(&id).map(|n| (id, n))
    }
}

/// An openraft storage error from an OM error.
pub(crate) fn storage_error(
    verb: openraft::ErrorVerb,
    subject: openraft::ErrorSubject<NodeId>,
    e: impl std::fmt::Display,
) -> openraft::StorageError<NodeId> {
    tracing::error!(error = %e, ?verb, "raft storage failed");
    openraft::StorageError::from_io_error(subject, verb, std::io::Error::other(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_ids_are_stable_and_distinct() {
        assert_eq!(raft_id("om1"), raft_id("om1"));
        assert_ne!(raft_id("om1"), raft_id("om2"));
        assert!(raft_id("") > 0);
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_OM_SERVICE_IDS, "svc")
            .set(keys::OZONE_OM_NODES_SERVICEID.with([&"svc"]), "om1,om2,om3")
            .set(
                keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"om1"]),
                "127.0.0.1:1",
            )
            .set(
                keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"om2"]),
                "127.0.0.1:2",
            )
            .set(
                keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"svc", &"om3"]),
                "127.0.0.1:3",
            );
        assert!(HaSettings::from_config(&cfg).is_err(), "which node am I");
        cfg.set(keys::OZONE_OM_NODE_ID, "om2");
        let s = HaSettings::from_config(&cfg).expect("valid");
        assert_eq!(s.me.address, "127.0.0.1:2");
        assert_eq!(s.peers.len(), 3);
        s.raft_config().expect("valid raft config");
    }
}
