//! OM replication on openraft 0.9 (storage-v2): every namespace change is an [`OmCommand`] in
//! a raft log entry; the OMs of one service (1 or 3) form one raft group.
//!
//! The plumbing is the `ozone-raft` crate, shared with SCM: the raft log and vote in redb
//! (`raft.db`, [`ozone_raft::log_store`]), the tonic client of the other OMs' `RaftService`
//! ([`ozone_raft::network`]) and its server side ([`ozone_raft::service`], on the OM gRPC port),
//! openraft's state machine over [`crate::StateMachine`] (`om.db`, which implements its
//! `StateStore`: batched apply, snapshots streamed from / installed into the namespace tables
//! through files of `<db dir>/snapshot/`, [`ozone_raft::state_machine`]), group commit
//! ([`ozone_raft::proposer`]) and the node (start-up, status, leadership transfer,
//! [`ozone_raft::node`]).
//!
//! What is OM's lives here: [`OmRole`] (OM's commands as a raft role), the settings from OM's
//! keys ([`ha_settings`]) and how the node's errors reach OM's clients ([`status_of`]).
//!
//! Node ids: Ozone names OM nodes (`om1`, ...); the raft id of a node is a stable 64-bit hash
//! of its name ([`raft_id`]), and the name and address ride in the membership ([`OmNode`]).

use ozone_common::OzoneConfig;
use std::time::Duration;

use crate::command::{OmCommand, OmResponse};
use crate::config::invalid;
use crate::error::OmError;
use ozone_common::config::keys;

pub use ozone_raft::{NodeId, raft_id};

/// OM as a raft role: its commands and their responses.
pub enum OmRole {}

impl ozone_raft::Role for OmRole {
    const NAME: &'static str = "OM";
    const NODE_ROLE: ozone_common::tls::NodeRole = ozone_common::tls::NodeRole::Om;
    /// The position of a command in its entry is the low 16 bits of a deleted-blocks key.
    const MAX_BATCH: usize = 256;
    type Command = OmCommand;
    type Response = OmResponse;
}

/// An OM node as the membership records it.
pub type OmNode = ozone_raft::Peer;
/// openraft types of OM: entries carry a [`CommandBatch`], apply answers one [`OmResponse`]
/// per command.
pub type TypeConfig = ozone_raft::TypeConfig<OmRole>;
/// The payload of one raft entry (see [`ozone_raft::CommandBatch`]).
pub type CommandBatch = ozone_raft::CommandBatch<OmCommand>;
pub type Raft = ozone_raft::Raft<OmRole>;
pub type Entry = ozone_raft::Entry<OmRole>;
/// Replication settings of one OM.
pub type HaSettings = ozone_raft::Settings;
/// The raft node of an OM.
pub type RaftNode = ozone_raft::node::RaftNode<OmRole>;
/// Group commit of OM commands.
pub type Proposer = ozone_raft::proposer::Proposer<OmRole>;
pub use ozone_raft::proposer::ProposeError;
/// `RaftService` of an OM.
pub type RaftGrpc = ozone_raft::service::RaftGrpc<OmRole>;

/// A raft node error as OM's clients see it: with the `x-om-status` of the matching
/// [`OmError`] (a transfer to an unknown node is INVALID_REQUEST, from a follower NOT_LEADER).
pub fn status_of(e: ozone_raft::Error) -> tonic::Status {
    tonic::Status::from(OmError::from(e))
}

/// OM's replication settings from the configuration: the OM service's nodes
/// (`ozone.om.service.ids`, `ozone.om.nodes.<service>`, `ozone.om.address.<service>.<node>`),
/// which one this is (`ozone.om.node.id`) and the `ozone.om.ratis.*` keys.
pub fn ha_settings(cfg: &OzoneConfig) -> Result<HaSettings, OmError> {
    let nodes = cfg.om_nodes()?;
    let peers = ozone_raft::peer_map(nodes.iter().map(|n| OmNode {
        node_id: n.node_id.clone(),
        address: n.address.clone(),
    }))
    .map_err(|(a, b)| {
        invalid(
            keys::OZONE_OM_NODES_SERVICEID.with([&cfg.get(keys::OZONE_OM_SERVICE_IDS)]),
            &format!("node ids {a} and {b} collide"),
        )
    })?;
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
    let snapshot_threshold = cfg.get_u64(keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD)?;
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

#[cfg(test)]
mod snapshot_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_om_keys() {
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
        assert!(ha_settings(&cfg).is_err(), "which node am I");
        cfg.set(keys::OZONE_OM_NODE_ID, "om2");
        let s = ha_settings(&cfg).expect("valid");
        assert_eq!(s.me.address, "127.0.0.1:2");
        assert_eq!(s.peers.len(), 3);
        s.raft_config::<OmRole>().expect("valid raft config");
    }
}
