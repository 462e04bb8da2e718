//! Read-only views for the admin RPCs, the gauges and the status page.

use std::time::Instant;

use super::{Container, Gauges, ScmState};
use crate::error::ScmError;
use crate::model::{
    ContainerState, ContainerView, DatanodeView, NodeHealth, PipelineState, PipelineView,
    ReplicaView,
};

impl ScmState {
    pub fn gauges(&self, now: Instant) -> Gauges {
        let mut g = Gauges {
            in_safe_mode: self.in_safe_mode,
            ..Gauges::default()
        };
        for n in self.nodes.values() {
            match self.health_at(n, now) {
                NodeHealth::Healthy => g.healthy_nodes += 1,
                NodeHealth::Stale => g.stale_nodes += 1,
                NodeHealth::Dead => g.dead_nodes += 1,
            }
        }
        for p in self.pipelines.values() {
            match p.state {
                PipelineState::Open => g.open_pipelines += 1,
                PipelineState::Closed => g.closed_pipelines += 1,
            }
        }
        for c in self.containers.values() {
            match c.record.state {
                ContainerState::Open => g.open_containers += 1,
                ContainerState::Closed => g.closed_containers += 1,
                ContainerState::Deleting | ContainerState::Deleted => {}
            }
        }
        g
    }

    pub fn datanodes(&self, now: Instant) -> Vec<DatanodeView> {
        self.nodes
            .iter()
            .map(|(uuid, n)| DatanodeView {
                details: n.record.details.clone(),
                health: self.health_at(n, now),
                op_state: n.record.op_state,
                report: n.report,
                millis_since_heartbeat: now.saturating_duration_since(n.last_seen).as_millis()
                    as u64,
                container_count: u32::try_from(n.replicas.len()).unwrap_or(u32::MAX),
                pipelines: self
                    .pipelines
                    .values()
                    .filter(|p| p.state == PipelineState::Open && p.nodes.contains(uuid))
                    .map(|p| p.id.clone())
                    .collect(),
            })
            .collect()
    }

    pub fn pipelines(&self) -> Vec<PipelineView> {
        self.pipelines
            .values()
            .map(|p| self.pipeline_view(p))
            .collect()
    }

    fn container_view(&self, c: &Container) -> ContainerView {
        let mut replicas: Vec<ReplicaView> = c
            .holders
            .iter()
            .filter_map(|u| self.nodes.get(u))
            .filter_map(|n| {
                n.replicas.get(&c.record.id).map(|r| ReplicaView {
                    datanode: n.record.details.clone(),
                    report: *r,
                    lagging: false,
                })
            })
            .collect();
        super::consistency::mark_lagging(&c.record, &mut replicas);
        ContainerView {
            record: c.record.clone(),
            used_bytes: replicas
                .iter()
                .map(|r| r.report.used_bytes)
                .max()
                .unwrap_or(0),
            block_count: replicas
                .iter()
                .map(|r| r.report.block_count)
                .max()
                .unwrap_or(0),
            replicas,
        }
    }

    /// Containers with id > `start`, ascending, at most `count` (0: all).
    pub fn containers(&self, start: u64, count: usize) -> Vec<ContainerView> {
        let limit = if count == 0 { usize::MAX } else { count };
        self.containers
            .range(start.saturating_add(1)..)
            .take(limit)
            .map(|(_, c)| self.container_view(c))
            .collect()
    }

    pub fn container(&self, id: u64) -> Result<ContainerView, ScmError> {
        self.containers
            .get(&id)
            .map(|c| self.container_view(c))
            .ok_or_else(|| ScmError::NotFound(format!("container {id} does not exist")))
    }
}
