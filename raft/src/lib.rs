//! The raft plumbing OM and SCM share, on openraft 0.9 (storage-v2). A role (OM, SCM) brings
//! its commands, its state machine and its configuration keys; this crate brings the rest:
//!
//! - [`log_store`]: the raft log and vote in redb (`raft.db`), one fsync per appended batch;
//! - [`network`]: the tonic client of the other nodes' `RaftService` (openraft messages as
//!   serde JSON, snapshots in chunks);
//! - [`state_machine`]: openraft's state machine over a role's [`state_machine::StateStore`]:
//!   batched apply, snapshots streamed into and installed from files of `<db dir>/snapshot/`;
//! - [`proposer`]: group commit: concurrent commands share one log entry (and so one fsync);
//! - [`node`]: starting the node, leadership, status and transfer;
//! - [`service`]: the server side of `RaftService` (raft RPCs, node status, leadership
//!   transfer), served by the role on its gRPC port.
//!
//! A role names its types with a [`Role`] (its command and response), so its openraft type
//! configuration is [`TypeConfig<Role>`]: an entry carries a [`CommandBatch`] of commands and
//! applying it answers one response per command. It fills [`Settings`] from its own keys
//! (`ozone.om.ratis.*`, `ozone.scm.ratis.*`).
//!
//! Node ids: Ozone names nodes (`om1`, `scm2`, ...); the raft id of a node is a stable 64-bit
//! hash of its name ([`raft_id`]), and the name and address ride in the membership ([`Peer`]).

pub mod error;
pub mod log_store;
pub mod network;
pub mod node;
pub mod proposer;
pub mod service;
pub mod state_machine;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use error::Error;

/// A raft node id.
pub type NodeId = u64;

/// A node of the group as the membership records it (stored in `raft.db` and in the role's
/// database as JSON: `{"node_id": .., "address": ..}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// Ozone's node id (`ozone.om.nodes.<service>` / `ozone.scm.nodes.<service>` entry), e.g.
    /// `om2`.
    pub node_id: String,
    /// gRPC address (`host:port`) where the node serves `RaftService`.
    pub address: String,
}

/// What a role replicates: its command and what applying one answers.
pub trait Role: Sized + Send + Sync + 'static {
    /// The role's name in logs and messages (`OM`, `SCM`).
    const NAME: &'static str;
    /// The certificate role of the group's nodes (mutual TLS: a peer must hold one).
    const NODE_ROLE: ozone_common::tls::NodeRole;
    /// Most commands one log entry carries.
    const MAX_BATCH: usize;
    type Command: Clone + Debug + PartialEq + Eq + Serialize + DeserializeOwned + Send + Sync;
    type Response: Debug + Serialize + DeserializeOwned + Send + Sync;
}

/// The payload of one raft entry: the commands the [`proposer`] gathered while the previous
/// entries were being written (group commit), applied in order. Serialized as the bare list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "C: Serialize + DeserializeOwned")]
pub struct CommandBatch<C>(pub Vec<C>);

/// openraft's types of a role: entries carry a [`CommandBatch`] of its commands, apply answers
/// one response per command, snapshots are files.
pub struct TypeConfig<R>(PhantomData<fn() -> R>);

// openraft wants its type configuration Copy, Ord, ...; a marker is, whatever R is.
impl<R> Clone for TypeConfig<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for TypeConfig<R> {}
impl<R> Default for TypeConfig<R> {
    fn default() -> Self {
        TypeConfig(PhantomData)
    }
}
impl<R> Debug for TypeConfig<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypeConfig")
    }
}
impl<R> PartialEq for TypeConfig<R> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<R> Eq for TypeConfig<R> {}
impl<R> PartialOrd for TypeConfig<R> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<R> Ord for TypeConfig<R> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<R: Role> openraft::RaftTypeConfig for TypeConfig<R> {
    type D = CommandBatch<R::Command>;
    type R = Vec<R::Response>;
    type NodeId = NodeId;
    type Node = Peer;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = tokio::fs::File;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// The openraft node of a role.
pub type Raft<R> = openraft::Raft<TypeConfig<R>>;
/// A log entry of a role.
pub type Entry<R> = openraft::Entry<TypeConfig<R>>;

/// The raft id of a node name: FNV-1a 64 of the name, top bit cleared, never 0.
pub fn raft_id(node_id: &str) -> NodeId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h & (u64::MAX >> 1)).max(1)
}

/// The group's members by raft id; `Err` holds two names whose ids collide.
pub fn peer_map(
    nodes: impl IntoIterator<Item = Peer>,
) -> Result<BTreeMap<NodeId, Peer>, (String, String)> {
    let mut peers = BTreeMap::new();
    for n in nodes {
        let name = n.node_id.clone();
        if let Some(other) = peers.insert(raft_id(&name), n) {
            return Err((other.node_id, name));
        }
    }
    Ok(peers)
}

/// Most entries one AppendEntries RPC carries.
pub const MAX_PAYLOAD_ENTRIES: u64 = 16;

/// Replication settings of one node, which the role reads from its own keys and validates.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This node.
    pub me: Peer,
    /// Every node of the group (this one included), by raft id (see [`peer_map`]).
    pub peers: BTreeMap<NodeId, Peer>,
    /// Entries after the last snapshot that trigger the next one (above 0).
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot (so a slightly lagging follower catches up
    /// from the log).
    pub purge_gap: u64,
    /// Shortest election timeout; the longest is twice it, the heartbeat a third.
    pub election_timeout: Duration,
    /// How long a proposed command may take to commit and apply.
    pub request_timeout: Duration,
}

impl Settings {
    pub fn my_id(&self) -> NodeId {
        raft_id(&self.me.node_id)
    }

    /// The openraft configuration these settings make for role `R`.
    pub fn raft_config<R: Role>(&self) -> Result<openraft::Config, Error> {
        let t = self.election_timeout.as_millis() as u64;
        openraft::Config {
            cluster_name: format!("ozone-{}", R::NAME.to_ascii_lowercase()),
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
        .map_err(|e| Error::Internal(format!("raft configuration: {e}")))
    }

    /// The node named `node_id`.
    pub fn node(&self, node_id: &str) -> Option<(NodeId, &Peer)> {
        let id = raft_id(node_id);
        self.peers.get(&id).map(|n| (id, n))
    }
}

/// An openraft storage error (logged here, where it is made).
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
        assert_ne!(raft_id("om1"), raft_id("scm1"));
        assert!(raft_id("") > 0);
        let peer = |n: &str| Peer {
            node_id: n.into(),
            address: format!("{n}:1"),
        };
        let peers = peer_map(["om1", "om2", "om3"].map(peer)).expect("distinct");
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[&raft_id("om2")].address, "om2:1");
        assert_eq!(
            peer_map(["om1", "om1"].map(peer)),
            Err(("om1".to_string(), "om1".to_string()))
        );
    }

    #[test]
    fn the_stored_shapes_do_not_change() {
        // raft.db and the roles' databases hold these as JSON: the shapes are a file format.
        let p = Peer {
            node_id: "om1".into(),
            address: "h:1".into(),
        };
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"node_id":"om1","address":"h:1"}"#
        );
        let b = CommandBatch(vec![1u32, 2]);
        assert_eq!(serde_json::to_string(&b).expect("json"), "[1,2]");
    }
}
