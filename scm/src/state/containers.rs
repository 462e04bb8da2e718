//! Containers and blocks: creating and closing containers, how full a container is, picking
//! one for a block, block allocation, and the end of a container's deletion (DELETING ->
//! DELETED).
//!
//! # How full a container is
//! Its *fill* is the largest used bytes any of its replicas reports, plus an estimate for the
//! blocks in flight: each block handed out counts the size its writer declared (capped by
//! the block size; 0, unknown, counts the whole block size). An estimate stops counting
//! - at the first report of a replica of the container that arrives at least the *grace*
//!   (two heartbeat intervals, at least a second) after the allocation: a block written
//!   within the grace is in that report's bytes, so it is not counted twice for long; a block
//!   written more slowly is counted as the reports show it grow; or
//! - after the *timeout* (ten heartbeat intervals, at least a minute) whatever arrived, so
//!   blocks never written (or of containers whose replicas report nothing new, as incremental
//!   reports leave unchanged replicas out) stop counting.
//!
//! Estimates are kept in batches of allocations at most [`IN_FLIGHT_BATCH`] apart, so a
//! container keeps at most timeout / batch of them, whatever the allocation rate.
//!
//! # Rules
//! - A block goes into an OPEN container of the chosen pipeline whose fill is below the close
//!   threshold (`ozone.scm.container.close.threshold` x `ozone.scm.container.size`) and has room
//!   for the block (fill + block <= container size); of those, the fullest (then the lowest
//!   id), so a pipeline fills one container at a time. A container without room is skipped,
//!   not closed.
//! - Only when none has room is a new container opened, while the pipeline has fewer than
//!   `ozone.scm.pipeline.owner.container.count`. At that limit the block goes to the least
//!   filled container with room by its reported bytes alone (estimates are upper bounds, and
//!   closing on them would close containers holding a few bytes); only when none has room
//!   even so is the fullest (by reported bytes) closed and a new one opened.
//! - A container is CLOSED once its replicas report used bytes at the threshold (in-flight
//!   estimates alone only stop new blocks: they may overstate, and closing would fail the
//!   writes in progress), when a replica reports it closed or unhealthy, when its pipeline
//!   closes, or when an administrator closes it.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use ozone_common::now_ms;

use super::{Container, LOCAL_ID_BATCH, ScmState};
use crate::error::ScmError;
use crate::model::{
    AllocateRequest, AllocatedBlock, Command, ContainerRecord, ContainerState, PipelineRecord,
    PipelineState,
};
use crate::store::{SEQ_CONTAINER_ID, SEQ_LOCAL_ID_LIMIT};

/// Allocations this close together share one in-flight batch.
pub const IN_FLIGHT_BATCH: Duration = Duration::from_secs(1);

/// Allocations close together: their bytes, the first and the last allocation.
#[derive(Debug)]
struct Batch {
    first: Instant,
    last: Instant,
    bytes: u64,
}

/// The in-flight estimate of one container; see the module doc.
#[derive(Debug, Default)]
pub(super) struct BlocksInFlight {
    batches: VecDeque<Batch>,
    bytes: u64,
}

impl BlocksInFlight {
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn add(&mut self, now: Instant, bytes: u64) {
        match self.batches.back_mut() {
            Some(b) if now.saturating_duration_since(b.first) < IN_FLIGHT_BATCH => {
                b.last = b.last.max(now);
                b.bytes = b.bytes.saturating_add(bytes);
            }
            _ => self.batches.push_back(Batch {
                first: now,
                last: now,
                bytes,
            }),
        }
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Drops the batches whose last allocation is at least `age` before `at`.
    fn expire(&mut self, at: Instant, age: Duration) {
        while let Some(b) = self.batches.front() {
            if at.saturating_duration_since(b.last) < age {
                break;
            }
            self.bytes = self.bytes.saturating_sub(b.bytes);
            self.batches.pop_front();
        }
    }

    fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }
}

impl ScmState {
    /// A report newer than an allocation by this much includes the block (see the module doc).
    fn in_flight_grace(&self) -> Duration {
        (self.cfg.heartbeat_interval * 2).max(Duration::from_secs(1))
    }

    /// An estimate older than this stops counting (see the module doc).
    fn in_flight_timeout(&self) -> Duration {
        (self.cfg.heartbeat_interval * 10).max(Duration::from_secs(60))
    }

    /// A replica of container `id` reported at `now`: drop the estimates it covers.
    pub(super) fn expire_reported(&mut self, id: u64, now: Instant) {
        let grace = self.in_flight_grace();
        if let Some(c) = self.containers.get_mut(&id) {
            c.in_flight.expire(now, grace);
        }
    }

    /// Reported used bytes plus the unexpired in-flight estimate.
    fn fill(&mut self, id: u64, now: Instant) -> u64 {
        let timeout = self.in_flight_timeout();
        self.containers.get_mut(&id).map_or(0, |c| {
            c.in_flight.expire(now, timeout);
            c.reported_used.saturating_add(c.in_flight.bytes())
        })
    }

    /// Sets the largest used bytes the holders of container `id` report, and closes an OPEN
    /// container whose replicas report it at the threshold.
    pub(super) fn refresh_reported_used(&mut self, id: u64) {
        let Some(c) = self.containers.get(&id) else {
            return;
        };
        let used = c
            .holders
            .iter()
            .filter_map(|u| self.nodes.get(u).and_then(|n| n.replicas.get(&id)))
            .map(|r| r.used_bytes)
            .max()
            .unwrap_or(0);
        let Some(c) = self.containers.get_mut(&id) else {
            return;
        };
        c.reported_used = used;
        if c.record.state == ContainerState::Open && used >= self.cfg.close_bytes {
            let reason = format!(
                "its replicas report {used} bytes used, at the close threshold {}",
                self.cfg.close_bytes
            );
            self.close_container(id, &reason);
        }
    }

    fn create_container(&mut self, pipeline: &PipelineRecord) -> u64 {
        let id = self.next_container_id;
        self.next_container_id += 1;
        self.dirty
            .sequences
            .insert(SEQ_CONTAINER_ID, self.next_container_id);
        tracing::info!(container = id, pipeline = %pipeline.id, factor = %pipeline.factor, "container created");
        self.containers.insert(
            id,
            Container::new(ContainerRecord {
                id,
                pipeline_id: pipeline.id.clone(),
                factor: pipeline.factor,
                state: ContainerState::Open,
                allocated_bytes: 0,
                created_ms: now_ms(),
                bcsid: 0,
                missed: Default::default(),
            }),
        );
        self.open_by_pipeline
            .entry(pipeline.id.clone())
            .or_default()
            .insert(id);
        self.dirty.containers.insert(id);
        self.dirty.structural = true;
        id
    }

    /// Marks a container CLOSED and tells every datanode that may hold it (its pipeline's
    /// members and the datanodes reporting it) to close it.
    pub(super) fn close_container(&mut self, id: u64, reason: &str) {
        let Some(c) = self.containers.get_mut(&id) else {
            return;
        };
        if c.record.state != ContainerState::Open {
            return;
        }
        c.record.state = ContainerState::Closed;
        c.in_flight.clear();
        tracing::info!(
            container = id,
            reported_used = c.reported_used,
            allocated = c.record.allocated_bytes,
            reason,
            "container closed"
        );
        if let Some(open) = self.open_by_pipeline.get_mut(&c.record.pipeline_id) {
            open.remove(&id);
        }
        let mut targets: Vec<String> = self
            .pipelines
            .get(&c.record.pipeline_id)
            .map(|p| p.nodes.clone())
            .unwrap_or_default();
        targets.extend(c.holders.iter().cloned());
        let cmd = Command::CloseContainer(id);
        for uuid in targets {
            if let Some(node) = self.nodes.get_mut(&uuid)
                && !node.pending.contains(&cmd)
            {
                node.pending.push(cmd.clone());
            }
        }
        self.dirty.containers.insert(id);
        self.dirty.structural = true;
    }

    /// An administrator closes an OPEN container (Ozone's `ozone admin container close`):
    /// CLOSED now, its replicas told to close. A container in any other state is refused, as
    /// Ozone does ("Cannot close a CLOSED container.").
    pub fn close_container_by_admin(&mut self, id: u64) -> Result<(), ScmError> {
        let c = self
            .containers
            .get(&id)
            .ok_or_else(|| ScmError::NotFound(format!("container {id} does not exist")))?;
        if c.record.state != ContainerState::Open {
            return Err(ScmError::FailedPrecondition(format!(
                "Cannot close a {} container.",
                c.record.state.as_str()
            )));
        }
        self.close_container(id, "closed by an administrator");
        self.persist()
    }

    /// An OPEN container of `pipeline` for a block of `size` bytes; see the module doc.
    fn pick_container(&mut self, pipeline: &PipelineRecord, size: u64, now: Instant) -> u64 {
        let open: Vec<u64> = self
            .open_by_pipeline
            .get(&pipeline.id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        // (fill, id) of the fullest container with room; (fill, id) of the least filled one
        // with room by its reported bytes alone; (reported, id) of the fullest by reports.
        let mut best: Option<(u64, u64)> = None;
        let mut least: Option<(u64, u64)> = None;
        let mut fullest: Option<(u64, u64)> = None;
        for id in &open {
            let fill = self.fill(*id, now);
            let reported = self.containers.get(id).map_or(0, |c| c.reported_used);
            if fullest.is_none_or(|(r, _)| reported > r) {
                fullest = Some((reported, *id));
            }
            if reported.saturating_add(size) <= self.cfg.container_size
                && least.is_none_or(|(f, _)| fill < f)
            {
                least = Some((fill, *id));
            }
            let room =
                fill < self.cfg.close_bytes && fill.saturating_add(size) <= self.cfg.container_size;
            if room && best.is_none_or(|(f, _)| fill > f) {
                best = Some((fill, *id));
            }
        }
        if let Some((_, id)) = best {
            return id;
        }
        if open.len() < self.cfg.owner_container_count {
            return self.create_container(pipeline);
        }
        // At the limit. Estimates are upper bounds (a writer may declare a whole block and
        // write a few bytes): a container with room by what its replicas report takes the
        // block rather than being closed on estimates alone.
        if let Some((_, id)) = least {
            return id;
        }
        if let Some((reported, id)) = fullest {
            let reason = format!(
                "no room for a block of {size} bytes in the {} open containers of its pipeline; this one is the fullest ({reported} bytes reported)",
                open.len()
            );
            self.close_container(id, &reason);
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
        // What the writer declared, capped by the block size; unknown counts a whole block.
        let size = if req.size == 0 {
            self.cfg.block_size
        } else {
            req.size.min(self.cfg.block_size)
        };
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
            let container_id = self.pick_container(pipeline, size, now);
            let c = self
                .containers
                .get_mut(&container_id)
                .expect("pick_container returns an existing container");
            c.record.allocated_bytes = c.record.allocated_bytes.saturating_add(size);
            c.in_flight.add(now, size);
            self.dirty.containers.insert(container_id);
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
    /// deleted-block transactions are dropped. Looks at the DELETING containers only.
    pub(super) fn finish_container_deletions(&mut self) {
        let gone: Vec<u64> = self
            .deleting
            .iter()
            .copied()
            .filter(|id| self.containers.get(id).is_none_or(|c| c.holders.is_empty()))
            .collect();
        for id in gone {
            self.deleting.remove(&id);
            if let Some(c) = self.containers.get_mut(&id) {
                tracing::info!(container = id, "container DELETED: no replica left");
                c.record.state = ContainerState::Deleted;
                self.dirty.containers.insert(id);
                self.dirty.structural = true;
            }
            let txs: Vec<u64> = self
                .delete_by_container
                .get(&id)
                .map(|t| t.iter().copied().collect())
                .unwrap_or_default();
            for tx in txs {
                self.remove_delete_tx(tx);
            }
            for d in self.delete_done.remove(&id).unwrap_or_default() {
                self.dirty.done_delete_txs.remove(&(id, d.tx.tx_id));
                self.dirty.removed_delete_txs.insert(d.tx.tx_id);
            }
        }
    }
}
