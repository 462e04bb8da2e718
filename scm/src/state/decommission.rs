//! Decommission and recommission: naming a datanode, its operational state, and when a
//! decommissioning datanode is done.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Node, ScmState};
use crate::error::ScmError;
use crate::model::{ContainerState, DatanodeDetails, OpState, ReplicaState};

impl ScmState {
    /// The datanode named by uuid, `host:port` of its gRPC endpoint, or a host only it has.
    fn resolve(&self, name: &str) -> Result<String, ScmError> {
        if self.nodes.contains_key(name) {
            return Ok(name.to_string());
        }
        let by_addr: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                let d = &n.record.details;
                format!("{}:{}", d.host, d.port) == name
            })
            .map(|(u, _)| u)
            .collect();
        let by_host: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.record.details.host == name)
            .map(|(u, _)| u)
            .collect();
        match (by_addr.as_slice(), by_host.as_slice()) {
            ([u], _) | ([], [u]) => Ok((*u).clone()),
            ([], []) => Err(ScmError::NotFound(format!("no datanode {name:?}"))),
            _ => Err(ScmError::InvalidArgument(format!(
                "{name:?} names several datanodes; use a uuid or host:port"
            ))),
        }
    }

    /// Sets a datanode's operational state durably; returns its details and the state.
    fn set_op_state(
        &mut self,
        name: &str,
        to: impl Fn(OpState) -> OpState,
    ) -> Result<(DatanodeDetails, OpState), ScmError> {
        let uuid = self.resolve(name)?;
        let node = self
            .nodes
            .get_mut(&uuid)
            .ok_or_else(|| ScmError::NotFound(format!("no datanode {uuid}")))?;
        let new = to(node.record.op_state);
        if new != node.record.op_state {
            tracing::info!(datanode = %uuid, from = node.record.op_state.as_str(), to = new.as_str(), "datanode operational state changed");
            node.record.op_state = new;
            self.dirty.nodes.insert(uuid.clone());
            self.dirty.structural = true;
            self.persist()?;
        }
        Ok((node_details(&self.nodes, &uuid), new))
    }

    /// Starts decommissioning: the datanode leaves its pipelines (closed on the next tick) and
    /// its replicas stop counting, so the ReplicationManager copies them elsewhere.
    pub fn decommission(&mut self, name: &str) -> Result<(DatanodeDetails, OpState), ScmError> {
        self.set_op_state(name, |s| match s {
            OpState::InService => OpState::Decommissioning,
            other => other,
        })
    }

    /// Puts a (decommissioning or decommissioned) datanode back in service.
    pub fn recommission(&mut self, name: &str) -> Result<(DatanodeDetails, OpState), ScmError> {
        self.set_op_state(name, |_| OpState::InService)
    }

    /// Whether container `id` has its full count of complete (not lagging) CLOSED replicas on
    /// healthy in-service datanodes other than `except`.
    fn fully_replicated_without(&self, id: u64, except: &str, now: Instant) -> bool {
        let Some(c) = self.containers.get(&id) else {
            return true;
        };
        match c.record.state {
            ContainerState::Deleting | ContainerState::Deleted => return true,
            ContainerState::Open => return false,
            ContainerState::Closed => {}
        }
        let lagging = self.lagging_holders(id);
        let good = c
            .holders
            .iter()
            .filter(|u| u.as_str() != except && self.usable(u, now))
            .filter(|u| !lagging.contains(*u))
            .filter(|u| {
                self.nodes
                    .get(*u)
                    .and_then(|n| n.replicas.get(&id))
                    .is_some_and(|r| r.state == ReplicaState::Closed)
            })
            .count();
        good >= c.record.factor.nodes()
    }

    /// DECOMMISSIONING datanodes whose every container is fully replicated elsewhere turn
    /// DECOMMISSIONED: the containers it reports, and those of its pipelines that some datanode
    /// reports (a replica it has not reported yet must not be forgotten).
    pub(super) fn finish_decommissions(&mut self, now: Instant) {
        let done: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.heard && n.record.op_state == OpState::Decommissioning)
            .filter(|(u, n)| {
                let on_its_pipelines = self
                    .containers
                    .values()
                    .filter(|c| !c.holders.is_empty())
                    .filter(|c| {
                        self.pipelines
                            .get(&c.record.pipeline_id)
                            .is_some_and(|p| p.nodes.contains(*u))
                    })
                    .map(|c| c.record.id);
                n.replicas
                    .keys()
                    .copied()
                    .chain(on_its_pipelines)
                    .all(|id| self.fully_replicated_without(id, u, now))
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uuid in done {
            if let Some(n) = self.nodes.get_mut(&uuid) {
                tracing::info!(datanode = %uuid, containers = n.replicas.len(), "every container has its replicas elsewhere: datanode DECOMMISSIONED");
                n.record.op_state = OpState::Decommissioned;
                self.dirty.nodes.insert(uuid);
                self.dirty.structural = true;
            }
        }
    }
}

fn node_details(nodes: &BTreeMap<String, Node>, uuid: &str) -> DatanodeDetails {
    nodes
        .get(uuid)
        .map(|n| n.record.details.clone())
        .unwrap_or_else(|| DatanodeDetails {
            uuid: uuid.to_string(),
            host: String::new(),
            port: 0,
            http_port: 0,
        })
}
