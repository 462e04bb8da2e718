//! The datanode protocol: registration, heartbeats and their reports (node health itself
//! is evaluated in `tick`).

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use ozone_common::now_ms;

use super::{HeartbeatOutcome, Node, ScmState};
use crate::error::ScmError;
use crate::model::{
    Command, ContainerState, NodeHealth, NodeRecord, NodeReport, NodeUpdate, OpState,
    ReplicaReport, ReplicaState,
};

impl ScmState {
    /// A datanode registers (first contact, or again after SCM asked it to). Returns the
    /// cluster id.
    pub fn register(&mut self, update: NodeUpdate, now: Instant) -> Result<String, ScmError> {
        let uuid = update.details.uuid.clone();
        match self.nodes.get_mut(&uuid) {
            Some(node) => {
                if node.record.details != update.details {
                    tracing::info!(
                        datanode = %uuid,
                        old = %format!("{}:{}", node.record.details.host, node.record.details.port),
                        new = %format!("{}:{}", update.details.host, update.details.port),
                        "datanode re-registered with a new address"
                    );
                    node.record.details = update.details.clone();
                    self.dirty.nodes.insert(uuid.clone());
                    self.dirty.structural = true;
                } else {
                    tracing::info!(datanode = %uuid, "datanode re-registered");
                }
            }
            None => {
                tracing::info!(
                    datanode = %uuid,
                    address = %format!("{}:{}", update.details.host, update.details.port),
                    "new datanode registered"
                );
                let node = Node {
                    record: NodeRecord {
                        details: update.details.clone(),
                        registered_ms: now_ms(),
                        op_state: OpState::InService,
                    },
                    last_seen: now,
                    heard: true,
                    health: NodeHealth::Healthy,
                    report: NodeReport::default(),
                    replicas: BTreeMap::new(),
                    pending: Vec::new(),
                };
                self.nodes.insert(uuid.clone(), node);
                self.dirty.nodes.insert(uuid.clone());
                self.dirty.structural = true;
            }
        }
        self.persist()?;
        self.accept_reports(&uuid, update, now);
        if let Err(e) = self.form_pipelines(now) {
            tracing::warn!(error = %e, "forming pipelines after a registration failed");
        }
        Ok(self.cluster_id.clone())
    }

    /// A datanode heartbeats. Unknown datanodes are asked to register.
    pub fn heartbeat(
        &mut self,
        mut update: NodeUpdate,
        now: Instant,
    ) -> Result<HeartbeatOutcome, ScmError> {
        let uuid = update.details.uuid.clone();
        let Some(node) = self.nodes.get_mut(&uuid) else {
            tracing::info!(datanode = %uuid, "heartbeat from an unknown datanode: asking it to register");
            return Ok(HeartbeatOutcome {
                reregister: true,
                ..HeartbeatOutcome::default()
            });
        };
        if !node.heard {
            // Known from the database (this SCM restarted or just took over as leader) but
            // without its replicas: an incremental report would leave the rest unknown, so
            // it registers again with a full one.
            tracing::info!(datanode = %uuid, "first heartbeat since this SCM loaded its state: asking for a registration");
            return Ok(HeartbeatOutcome {
                reregister: true,
                ..HeartbeatOutcome::default()
            });
        }
        if node.record.details != update.details {
            tracing::info!(datanode = %uuid, "datanode heartbeats with a new address");
            node.record.details = update.details.clone();
            self.dirty.nodes.insert(uuid.clone());
            self.dirty.structural = true;
            self.persist()?;
        }
        let acks = std::mem::take(&mut update.deleted_block_txs);
        self.accept_reports(&uuid, update, now);
        self.accept_delete_acks(&uuid, &acks, now);
        if let Err(e) = self.form_pipelines(now) {
            tracing::warn!(error = %e, "forming pipelines after a heartbeat failed");
        }
        self.dispatch_deletes(&uuid, now);
        if self.dirty.structural
            && let Err(e) = self.persist()
        {
            tracing::warn!(error = %e, "persisting after a heartbeat failed; retrying on the next tick");
        }
        let commands = self
            .nodes
            .get_mut(&uuid)
            .map(|n| std::mem::take(&mut n.pending))
            .unwrap_or_default();
        let (secret_keys, container_tokens) =
            self.heartbeat_security(&uuid, &commands, ozone_common::now_ms());
        Ok(HeartbeatOutcome {
            reregister: false,
            commands,
            term: 0,
            secret_keys,
            container_tokens,
        })
    }

    /// Records a datanode's liveness, node report and container report: a full report
    /// replaces its replica list, an incremental one removes `removed` and then sets the
    /// replicas it names. Schedules close commands for reported replicas still open of
    /// containers SCM has closed, and closes OPEN containers a replica reports closed or
    /// unhealthy, or at the close threshold. Costs the size of the report.
    fn accept_reports(&mut self, uuid: &str, update: NodeUpdate, now: Instant) {
        let Some(node) = self.nodes.get_mut(uuid) else {
            return;
        };
        if node.health != NodeHealth::Healthy {
            tracing::info!(datanode = %uuid, was = node.health.as_str(), "datanode is HEALTHY again");
        }
        node.last_seen = now;
        node.heard = true;
        node.health = NodeHealth::Healthy;
        if let Some(report) = update.report {
            node.report = report;
        }
        let removed: Vec<u64> = if update.incremental {
            update.removed
        } else {
            let named: HashSet<u64> = update.replicas.iter().map(|r| r.container_id).collect();
            node.replicas
                .keys()
                .filter(|id| !named.contains(id))
                .copied()
                .collect()
        };
        for id in removed {
            self.drop_replica(uuid, id, now);
        }
        let mut closed_by_datanode = Vec::new();
        for r in &update.replicas {
            self.put_replica(uuid, *r, now);
            let Some(c) = self.containers.get(&r.container_id) else {
                tracing::debug!(datanode = %uuid, container = r.container_id, "report of a container SCM does not know");
                continue;
            };
            match c.record.state {
                ContainerState::Closed => {
                    let cmd = Command::CloseContainer(r.container_id);
                    if r.state.is_open()
                        && let Some(node) = self.nodes.get_mut(uuid)
                        && !node.pending.contains(&cmd)
                    {
                        node.pending.push(cmd);
                    }
                }
                // The ReplicationManager removes what is left of these.
                ContainerState::Deleting | ContainerState::Deleted => {}
                ContainerState::Open => {
                    if r.state != ReplicaState::Open {
                        // The datanode closed (or lost) its replica: no more blocks there.
                        closed_by_datanode.push((r.container_id, r.state));
                    }
                }
            }
        }
        for (id, state) in closed_by_datanode {
            let reason = format!("datanode {uuid} reports its replica {}", state.as_str());
            self.close_container(id, &reason);
        }
    }

    /// Datanode `uuid` reports replica `r`: its replica list, the container's holders and
    /// reported bytes (closing it at the threshold), in-flight estimates and delete work.
    fn put_replica(&mut self, uuid: &str, r: ReplicaReport, now: Instant) {
        let Some(node) = self.nodes.get_mut(uuid) else {
            return;
        };
        let id = r.container_id;
        let new = node.replicas.insert(id, r).is_none();
        let Some(c) = self.containers.get_mut(&id) else {
            return;
        };
        c.holders.insert(uuid.to_string());
        self.note_replica_bcsid(id, r.bcsid);
        self.expire_reported(id, now);
        self.refresh_reported_used(id);
        if new {
            self.note_new_holder(uuid, id);
        }
    }

    /// Datanode `uuid` no longer holds container `id` (removed, or the datanode is DEAD).
    pub(super) fn drop_replica(&mut self, uuid: &str, id: u64, now: Instant) {
        let Some(node) = self.nodes.get_mut(uuid) else {
            return;
        };
        if node.replicas.remove(&id).is_none() {
            return;
        }
        self.note_gone_holder(uuid, id);
        self.forget_miss(uuid, id);
        if let Some(c) = self.containers.get_mut(&id) {
            c.holders.remove(uuid);
            self.refresh_reported_used(id);
            self.retire_done_txs(id, now);
        }
    }
}
