//! Containers and blocks: creating and closing containers, picking one for a block, block
//! allocation, and the end of a container's deletion (DELETING -> DELETED).

use std::collections::HashSet;
use std::time::Instant;

use ozone_common::now_ms;

use super::{Container, LOCAL_ID_BATCH, ScmState};
use crate::error::ScmError;
use crate::model::{
    AllocateRequest, AllocatedBlock, Command, ContainerRecord, ContainerState, PipelineRecord,
    PipelineState,
};
use crate::store::{SEQ_CONTAINER_ID, SEQ_LOCAL_ID_LIMIT};

impl ScmState {
    fn create_container(&mut self, pipeline: &PipelineRecord) -> u64 {
        let id = self.next_container_id;
        self.next_container_id += 1;
        self.dirty
            .sequences
            .insert(SEQ_CONTAINER_ID, self.next_container_id);
        tracing::info!(container = id, pipeline = %pipeline.id, factor = %pipeline.factor, "container created");
        self.containers.insert(
            id,
            Container {
                record: ContainerRecord {
                    id,
                    pipeline_id: pipeline.id.clone(),
                    factor: pipeline.factor,
                    state: ContainerState::Open,
                    allocated_bytes: 0,
                    created_ms: now_ms(),
                },
                last_used: 0,
            },
        );
        self.open_by_pipeline
            .entry(pipeline.id.clone())
            .or_default()
            .insert(id);
        self.dirty.containers.insert(id);
        self.dirty.structural = true;
        id
    }

    /// Marks a container CLOSED and tells every datanode that may hold it to close it.
    pub(super) fn close_container(&mut self, id: u64, reason: &str) {
        let Some(c) = self.containers.get_mut(&id) else {
            return;
        };
        if c.record.state != ContainerState::Open {
            return;
        }
        c.record.state = ContainerState::Closed;
        tracing::info!(
            container = id,
            allocated = c.record.allocated_bytes,
            reason,
            "container closed"
        );
        if let Some(open) = self.open_by_pipeline.get_mut(&c.record.pipeline_id) {
            open.remove(&id);
        }
        let members: Vec<String> = self
            .pipelines
            .get(&c.record.pipeline_id)
            .map(|p| p.nodes.clone())
            .unwrap_or_default();
        let cmd = Command::CloseContainer(id);
        for (uuid, node) in self.nodes.iter_mut() {
            let holds = members.contains(uuid) || node.replicas.contains_key(&id);
            if holds && !node.pending.contains(&cmd) {
                node.pending.push(cmd.clone());
            }
        }
        self.dirty.containers.insert(id);
        self.dirty.structural = true;
    }

    /// An OPEN container of `pipeline` for a block of `size` bytes: a new one while the
    /// pipeline has fewer than `owner_container_count`, else the least recently used one with
    /// room; when none has room the fullest is closed and a new one replaces it.
    fn pick_container(&mut self, pipeline: &PipelineRecord, size: u64) -> u64 {
        let open: Vec<u64> = self
            .open_by_pipeline
            .get(&pipeline.id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if open.len() < self.cfg.owner_container_count {
            return self.create_container(pipeline);
        }
        let fits = open
            .iter()
            .filter_map(|id| self.containers.get(id))
            .filter(|c| c.record.allocated_bytes.saturating_add(size) <= self.cfg.container_size)
            .min_by_key(|c| c.last_used)
            .map(|c| c.record.id);
        if let Some(id) = fits {
            return id;
        }
        let fullest = open
            .iter()
            .filter_map(|id| self.containers.get(id))
            .max_by_key(|c| c.record.allocated_bytes)
            .map(|c| c.record.id);
        if let Some(id) = fullest {
            self.close_container(id, "no room left for a block");
        }
        self.create_container(pipeline)
    }

    /// Allocates blocks; see the crate doc for the rules.
    pub fn allocate(
        &mut self,
        req: AllocateRequest,
        now: Instant,
    ) -> Result<Vec<AllocatedBlock>, ScmError> {
        let factor = req.factor.unwrap_or(self.cfg.default_factor);
        let size = if req.size == 0 {
            self.cfg.block_size
        } else {
            req.size
        };
        if size > self.cfg.container_size {
            return Err(ScmError::InvalidArgument(format!(
                "block size {size} exceeds the container size {}",
                self.cfg.container_size
            )));
        }
        let safe = self.safe_mode(now);
        if safe.in_safe_mode {
            return Err(ScmError::SafeMode {
                healthy: safe.healthy_datanodes,
                required: safe.required_datanodes,
                has_pipeline: safe.has_pipeline,
            });
        }
        let exclude: HashSet<&str> = req.exclude.iter().map(String::as_str).collect();
        let (mut open, mut unhealthy, mut excluded) = (0, 0, 0);
        let mut candidates: Vec<PipelineRecord> = Vec::new();
        for p in self.pipelines.values() {
            if p.state != PipelineState::Open || p.factor != factor {
                continue;
            }
            open += 1;
            if !p.nodes.iter().all(|n| self.usable(n, now)) {
                unhealthy += 1;
            } else if p.nodes.iter().any(|n| exclude.contains(n.as_str())) {
                excluded += 1;
            } else {
                candidates.push(p.clone());
            }
        }
        if candidates.is_empty() {
            return Err(ScmError::NoPipeline {
                factor,
                detail: format!(
                    "{open} open pipelines: {unhealthy} with unhealthy members, {excluded} with excluded datanodes"
                ),
            });
        }

        let needed = u64::from(req.num_blocks);
        if self.next_local_id.saturating_add(needed) > self.local_id_limit {
            let limit = self.next_local_id + needed + LOCAL_ID_BATCH;
            self.dirty.sequences.insert(SEQ_LOCAL_ID_LIMIT, limit);
            self.dirty.structural = true;
            self.persist()?;
            self.local_id_limit = limit;
        }

        let mut blocks = Vec::with_capacity(req.num_blocks as usize);
        for _ in 0..req.num_blocks {
            let rr = self.round_robin.entry(factor).or_default();
            let pipeline = &candidates[*rr % candidates.len()];
            *rr = rr.wrapping_add(1);
            let container_id = self.pick_container(pipeline, size);
            self.use_clock += 1;
            let full = {
                let c = self
                    .containers
                    .get_mut(&container_id)
                    .expect("pick_container returns an existing container");
                c.record.allocated_bytes += size;
                c.last_used = self.use_clock;
                c.record.allocated_bytes >= self.cfg.container_size
            };
            self.dirty.containers.insert(container_id);
            if full {
                self.close_container(container_id, "full");
            }
            let local_id = self.next_local_id;
            self.next_local_id += 1;
            blocks.push(AllocatedBlock {
                container_id,
                local_id,
                pipeline: self.pipeline_view(pipeline),
            });
        }
        if self.dirty.structural {
            self.persist()?;
        }
        tracing::debug!(owner = %req.owner, count = blocks.len(), %factor, size, "blocks allocated");
        Ok(blocks)
    }

    /// DELETING containers that no datanode reports any more are DELETED; their pending
    /// deleted-block transactions are dropped.
    pub(super) fn finish_container_deletions(&mut self) {
        let gone: Vec<u64> = self
            .containers
            .values()
            .filter(|c| c.record.state == ContainerState::Deleting)
            .filter(|c| {
                !self
                    .nodes
                    .values()
                    .any(|n| n.replicas.contains_key(&c.record.id))
            })
            .map(|c| c.record.id)
            .collect();
        for id in gone {
            if let Some(c) = self.containers.get_mut(&id) {
                tracing::info!(container = id, "container DELETED: no replica left");
                c.record.state = ContainerState::Deleted;
                self.dirty.containers.insert(id);
                self.dirty.structural = true;
            }
        }
        let dropped: Vec<u64> = self
            .delete_log
            .values()
            .filter(|t| {
                self.containers
                    .get(&t.container_id)
                    .is_none_or(|c| c.record.state == ContainerState::Deleted)
            })
            .map(|t| t.tx_id)
            .collect();
        for tx in dropped {
            self.remove_delete_tx(tx);
        }
    }
}
