//! SCM replication: the SCMs of one service (1 or 3) form one raft group on the shared
//! `ozone-raft` crate, as the OMs do. Everything SCM decides durably reaches `scm.db` only as
//! a committed [`ScmCommand`] applied in log order on every SCM: datanode registrations,
//! pipelines, containers and their states, the id sequences, the deleted-block log and
//! decommission state are all rows of a [`Batch`].
//!
//! The leader's state actor decides as before, on its in-memory [`crate::state::ScmState`];
//! the rows a decision changed leave it as a batch, which the [`writer`] proposes (one entry
//! at a time, in order, batches queued meanwhile sharing the next entry), and a request is
//! answered only once every batch staged before its answer has applied. A follower keeps no
//! in-memory state: it applies entries to `scm.db` and refuses requests with the leader's
//! address. A node that becomes leader waits until it has applied everything committed, then
//! loads its state from `scm.db` as a restarted SCM would (datanodes re-register with it, and
//! their reports rebuild the replica map). Ozone's SCM replicates its state changes the same
//! way (`@Replicate` methods writing table rows through Ratis).
//!
//! What is SCM's lives here: [`ScmRole`], the settings from SCM's keys ([`ha_settings`]), the
//! state machine over [`Store`] ([`ScmMachine`]) and how raft errors reach clients
//! ([`status_of`]).

use std::io::{BufReader, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use openraft::EntryPayload;
use openraft::StoredMembership;
use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_raft::state_machine::{Applied, Responses, StateStore};
use serde::{Deserialize, Serialize};

use crate::error::ScmError;
use crate::store::{Batch, Store};

pub mod writer;

/// SCM as a raft role.
pub enum ScmRole {}

impl ozone_raft::Role for ScmRole {
    const NAME: &'static str = "SCM";
    const NODE_ROLE: ozone_common::tls::NodeRole = ozone_common::tls::NodeRole::Scm;
    /// The writer proposes one command at a time; concurrent proposals are never gathered.
    const MAX_BATCH: usize = 16;
    type Command = ScmCommand;
    type Response = ScmResponse;
}

/// A replicated change of SCM's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScmCommand {
    /// Rows to write, in order (batches staged while the previous entry was in flight).
    Write(Vec<Batch>),
}

/// What applying a command answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScmResponse {
    Applied,
}

/// The raft node of an SCM.
pub type RaftNode = ozone_raft::node::RaftNode<ScmRole>;
/// `RaftService` of an SCM.
pub type RaftGrpc = ozone_raft::service::RaftGrpc<ScmRole>;

/// `scm.db` as the raft state machine.
pub struct ScmMachine {
    store: Arc<Store>,
}

impl ScmMachine {
    pub fn new(store: Arc<Store>) -> Self {
        ScmMachine { store }
    }
}

impl StateStore for ScmMachine {
    type Role = ScmRole;
    type Error = ScmError;

    fn applied(&self) -> Result<Applied, ScmError> {
        self.store.applied()
    }

    fn apply_batch(
        &self,
        entries: Vec<ozone_raft::Entry<ScmRole>>,
    ) -> Result<Responses<ScmRole>, ScmError> {
        let mut applied = self.store.applied()?;
        let mut responses = Vec::with_capacity(entries.len());
        let mut batches: Vec<&Batch> = Vec::new();
        for e in &entries {
            applied.last_applied = Some(e.log_id);
            match &e.payload {
                EntryPayload::Normal(ozone_raft::CommandBatch(cmds)) => {
                    for ScmCommand::Write(bs) in cmds {
                        batches.extend(bs.iter());
                    }
                    responses.push(vec![ScmResponse::Applied; cmds.len()]);
                }
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(e.log_id), m.clone());
                    responses.push(vec![ScmResponse::Applied]);
                }
                EntryPayload::Blank => responses.push(vec![ScmResponse::Applied]),
            }
        }
        self.store.apply(&batches, &applied)?;
        Ok(responses)
    }

    fn export(&self, out: &mut dyn Write) -> Result<(Applied, u64), ScmError> {
        self.store.export(out)
    }

    fn install(&self, applied: &Applied, input: &mut dyn Read, len: u64) -> Result<(), ScmError> {
        self.store
            .install(applied, &mut BufReader::with_capacity(1 << 20, input), len)
    }
}

/// A raft node error as SCM's clients see it (a transfer to an unknown node is
/// INVALID_ARGUMENT; a follower answers UNAVAILABLE with the leader hint).
pub fn status_of(e: ozone_raft::Error) -> tonic::Status {
    tonic::Status::from(ScmError::from(e))
}

/// SCM's replication settings: the SCM service's nodes (`ozone.scm.service.ids`,
/// `ozone.scm.nodes.<service>`, `ozone.scm.address.<service>.<node>`), which one this is
/// (`ozone.scm.node.id`) and the `ozone.scm.ha.ratis.*` keys. The raft address of a node is
/// its client address.
pub fn ha_settings(cfg: &OzoneConfig) -> Result<ozone_raft::Settings, ScmError> {
    let invalid = |key: &str, m: &str| ScmError::InvalidConfig(format!("{key}: {m}"));
    let nodes = cfg.scm_nodes()?;
    let peers = ozone_raft::peer_map(nodes.iter().map(|n| ozone_raft::Peer {
        node_id: n.node_id.clone(),
        address: n.client.clone(),
    }))
    .map_err(|(a, b)| {
        invalid(
            keys::OZONE_SCM_SERVICE_IDS.name(),
            &format!("node ids {a} and {b} collide"),
        )
    })?;
    let me_name = match (cfg.get_opt(keys::OZONE_SCM_NODE_ID), nodes.as_slice()) {
        (Some(id), _) => id,
        (None, [only]) => only.node_id.clone(),
        (None, _) => {
            return Err(invalid(
                keys::OZONE_SCM_NODE_ID.name(),
                "the SCM service lists several nodes: set which one this SCM is",
            ));
        }
    };
    let me = peers
        .get(&ozone_raft::raft_id(&me_name))
        .cloned()
        .ok_or_else(|| {
            invalid(
                keys::OZONE_SCM_NODE_ID.name(),
                &format!("{me_name} is not a node of the SCM service"),
            )
        })?;
    let snapshot_threshold = cfg.get_u64(keys::OZONE_SCM_HA_RATIS_SNAPSHOT_THRESHOLD)?;
    if snapshot_threshold == 0 {
        return Err(invalid(
            keys::OZONE_SCM_HA_RATIS_SNAPSHOT_THRESHOLD.name(),
            "must be above 0",
        ));
    }
    let election_timeout = cfg.get_duration(keys::OZONE_SCM_HA_RATIS_LEADER_ELECTION_TIMEOUT)?;
    if election_timeout < Duration::from_millis(50) {
        return Err(invalid(
            keys::OZONE_SCM_HA_RATIS_LEADER_ELECTION_TIMEOUT.name(),
            "must be at least 50ms",
        ));
    }
    Ok(ozone_raft::Settings {
        me,
        peers,
        snapshot_threshold,
        purge_gap: cfg.get_u64(keys::OZONE_SCM_HA_RATIS_LOG_PURGE_GAP)?,
        election_timeout,
        request_timeout: cfg.get_duration(keys::OZONE_SCM_HA_RATIS_REQUEST_TIMEOUT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_scm_keys() {
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_SCM_CLIENT_ADDRESS, "127.0.0.1:7");
        let single = ha_settings(&cfg).expect("single");
        assert_eq!(single.me.node_id, "scm1");
        assert_eq!(single.me.address, "127.0.0.1:7");
        cfg.set(keys::OZONE_SCM_SERVICE_IDS, "svc").set(
            keys::OZONE_SCM_NODES_SERVICEID.with([&"svc"]),
            "scm1,scm2,scm3",
        );
        for (n, port) in [("scm1", 1), ("scm2", 2), ("scm3", 3)] {
            cfg.set(
                keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"svc", &n]),
                format!("127.0.0.1:{port}"),
            );
        }
        assert!(ha_settings(&cfg).is_err(), "which node am I");
        cfg.set(keys::OZONE_SCM_NODE_ID, "scm2");
        let s = ha_settings(&cfg).expect("valid");
        assert_eq!(s.me.address, "127.0.0.1:2");
        assert_eq!(s.peers.len(), 3);
        s.raft_config::<ScmRole>().expect("valid raft config");
        cfg.set(keys::OZONE_SCM_NODE_ID, "scm9");
        assert!(ha_settings(&cfg).is_err(), "not a member");
    }
}
