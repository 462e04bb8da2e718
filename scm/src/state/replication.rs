//! The state actor's side of the ReplicationManager: the snapshot it decides from and the
//! carrying out of its decisions.

use std::time::Instant;

use super::ScmState;
use crate::error::ScmError;
use crate::model::ContainerState;
use crate::planner::{ClusterView, RmAction, RmContainer, RmNode, RmReplica};

impl ScmState {
    /// What the ReplicationManager decides from: every datanode and every non-OPEN container
    /// with its replicas.
    pub fn cluster_view(&self, now: Instant) -> ClusterView {
        let nodes = self
            .nodes
            .iter()
            .map(|(u, n)| RmNode {
                uuid: u.clone(),
                details: n.record.details.clone(),
                health: self.health_at(n, now),
                op_state: n.record.op_state,
                usable: self.usable(u, now),
                containers: n.replicas.len(),
                used: n.report.used,
            })
            .collect();
        let containers = self
            .containers
            .values()
            .filter(|c| c.record.state != ContainerState::Open)
            .map(|c| RmContainer {
                id: c.record.id,
                state: c.record.state,
                factor: c.record.factor,
                pipeline_nodes: self
                    .pipelines
                    .get(&c.record.pipeline_id)
                    .map(|p| p.nodes.clone())
                    .unwrap_or_default(),
                replicas: c
                    .holders
                    .iter()
                    .filter_map(|u| {
                        let r = self.nodes.get(u)?.replicas.get(&c.record.id)?;
                        Some(RmReplica {
                            uuid: u.clone(),
                            state: r.state,
                            block_count: r.block_count,
                            used_bytes: r.used_bytes,
                            bcsid: r.bcsid,
                            missed: c.record.missed.contains(u),
                        })
                    })
                    .collect(),
                has_pending_deletes: self.has_pending_deletes(c.record.id),
            })
            .collect();
        ClusterView { nodes, containers }
    }

    /// Carries out the ReplicationManager's decisions: queue commands, mark containers
    /// DELETING.
    pub fn apply_replication(&mut self, actions: Vec<RmAction>) -> Result<(), ScmError> {
        for action in actions {
            match action {
                RmAction::Send { datanode, command } => match self.nodes.get_mut(&datanode) {
                    Some(node) => {
                        if !node.pending.contains(&command) {
                            node.pending.push(command);
                        }
                    }
                    None => {
                        tracing::warn!(datanode = %datanode, "command for an unknown datanode dropped")
                    }
                },
                RmAction::MarkDeleting(id) => {
                    if let Some(c) = self.containers.get_mut(&id)
                        && c.record.state == ContainerState::Closed
                    {
                        tracing::info!(container = id, "empty closed container: DELETING");
                        c.record.state = ContainerState::Deleting;
                        self.deleting.insert(id);
                        self.dirty.containers.insert(id);
                        self.dirty.structural = true;
                    }
                }
            }
        }
        if self.dirty.structural {
            self.persist()?;
        }
        Ok(())
    }
}
