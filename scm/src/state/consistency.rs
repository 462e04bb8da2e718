//! Replica consistency (issue 12): the BCSIDs replicas report, the commits writers report a
//! replica missed, and which replicas lag behind (miss committed blocks). The
//! ReplicationManager's planner decides from the same rule ([`crate::planner::lagging`]): a
//! lagging replica does not count, is never a copy source, and is deleted once replaced.

use std::collections::BTreeSet;

use super::ScmState;
use crate::error::ScmError;
use crate::model::{ContainerRecord, ContainerState, ReplicaView};
use crate::planner::{RmReplica, lagging};

impl ScmState {
    /// A writer committed a block of container `id` on a majority of its replicas, which
    /// answered `bcsid`, but not on `datanode`'s. An OPEN container is closed (no more blocks
    /// go to the lagging replica), and `datanode`'s replica, if SCM knows of it, is marked
    /// lagging until it is gone, so the ReplicationManager replaces it with a copy of a
    /// complete one without waiting for the datanode to be declared dead. A datanode not
    /// holding the container (its replica was never reported) needs no mark: it reports a
    /// lower BCSID, if anything.
    pub fn report_replica_miss(
        &mut self,
        id: u64,
        datanode: &str,
        bcsid: u64,
    ) -> Result<(), ScmError> {
        let c = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ScmError::NotFound(format!("container {id} does not exist")))?;
        if c.record.state == ContainerState::Deleted {
            return Ok(());
        }
        if bcsid > c.record.bcsid {
            c.record.bcsid = bcsid;
            self.dirty.containers.insert(id);
        }
        if c.holders.contains(datanode) && c.record.missed.insert(datanode.to_string()) {
            tracing::warn!(
                container = id,
                datanode,
                bcsid,
                "a writer reports this replica missed a committed block: it will be replaced"
            );
            self.dirty.containers.insert(id);
            self.dirty.structural = true;
        }
        self.close_container(
            id,
            &format!("replica on {datanode} missed a committed block"),
        );
        self.persist()
    }

    /// A replica of container `id` reports `bcsid`: the container's highest is raised.
    pub(super) fn note_replica_bcsid(&mut self, id: u64, bcsid: u64) {
        if let Some(c) = self.containers.get_mut(&id)
            && bcsid > c.record.bcsid
        {
            c.record.bcsid = bcsid;
            self.dirty.containers.insert(id);
        }
    }

    /// The datanodes whose replica of container `id` is lagging.
    pub(super) fn lagging_holders(&self, id: u64) -> BTreeSet<String> {
        let Some(c) = self.containers.get(&id) else {
            return BTreeSet::new();
        };
        let replicas: Vec<RmReplica> = c
            .holders
            .iter()
            .filter_map(|u| {
                let r = self.nodes.get(u)?.replicas.get(&id)?;
                Some(RmReplica {
                    uuid: u.clone(),
                    state: r.state,
                    block_count: r.block_count,
                    used_bytes: r.used_bytes,
                    bcsid: r.bcsid,
                    missed: c.record.missed.contains(u),
                })
            })
            .collect();
        lagging(&replicas).into_iter().map(str::to_string).collect()
    }

    /// Datanode `uuid` no longer holds container `id`: a missed-commit mark goes with it.
    pub(super) fn forget_miss(&mut self, uuid: &str, id: u64) {
        if let Some(c) = self.containers.get_mut(&id)
            && c.record.missed.remove(uuid)
        {
            tracing::info!(container = id, datanode = uuid, "lagging replica gone");
            self.dirty.containers.insert(id);
            self.dirty.structural = true;
        }
    }
}

/// Sets `lagging` on the replicas of `record` that miss committed blocks.
pub(super) fn mark_lagging(record: &ContainerRecord, replicas: &mut [ReplicaView]) {
    let rm: Vec<RmReplica> = replicas
        .iter()
        .map(|r| RmReplica {
            uuid: r.datanode.uuid.clone(),
            state: r.report.state,
            block_count: r.report.block_count,
            used_bytes: r.report.used_bytes,
            bcsid: r.report.bcsid,
            missed: record.missed.contains(&r.datanode.uuid),
        })
        .collect();
    let behind = lagging(&rm);
    for r in replicas.iter_mut() {
        r.lagging = behind.contains(r.datanode.uuid.as_str());
    }
}
