//! SCM's state and rules: datanodes and their health, pipelines, containers, block allocation
//! and safe mode. Plain synchronous code taking the current time as an argument, so it can be
//! tested without clocks or networks; the state actor (`manager`) owns the one instance.
//!
//! Durability: every structural change (new datanode or address, new or closed pipeline, new or
//! closed container, id reservations) is committed before the request that caused it is
//! answered. A container's allocated-bytes counter alone is written at the next commit or
//! periodic flush, so after a crash it may lag; the replicas' reported used bytes raise it again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use ozone_common::now_ms;

use crate::config::ScmConfig;
use crate::error::ScmError;
use crate::factor::Factor;
use crate::model::{
    AllocateRequest, AllocatedBlock, Command, ContainerRecord, ContainerState, ContainerView,
    DatanodeDetails, DatanodeView, DeleteTx, NodeHealth, NodeRecord, NodeReport, NodeUpdate,
    OpState, PipelineRecord, PipelineState, PipelineView, ReplicaReport, ReplicaState, ReplicaView,
    SafeModeView,
};
use crate::planner::{ClusterView, RmAction, RmContainer, RmNode, RmReplica};
use crate::store::{Batch, SEQ_CONTAINER_ID, SEQ_DELETE_TX, SEQ_LOCAL_ID_LIMIT, Store};

/// Most local ids in one deleted-block transaction.
const MAX_TX_BLOCKS: usize = 1000;

/// Block local ids reserved per durable commit. A restart skips the unused rest of a batch.
pub const LOCAL_ID_BATCH: u64 = 10_000;

/// What a heartbeat is answered with.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub reregister: bool,
    pub commands: Vec<Command>,
}

/// Counts shown as gauges and on the status page.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    pub healthy_nodes: i64,
    pub stale_nodes: i64,
    pub dead_nodes: i64,
    pub open_pipelines: i64,
    pub closed_pipelines: i64,
    pub open_containers: i64,
    pub closed_containers: i64,
    pub in_safe_mode: bool,
}

struct Node {
    record: NodeRecord,
    /// Last register/heartbeat, or SCM start for a datanode loaded from the database.
    last_seen: Instant,
    /// Whether the datanode registered or heartbeated since this SCM started.
    heard: bool,
    /// Health at the last evaluation (to log transitions once).
    health: NodeHealth,
    report: NodeReport,
    /// The latest full container report.
    replicas: BTreeMap<u64, ReplicaReport>,
    /// Commands for the next heartbeat response.
    pending: Vec<Command>,
}

struct Container {
    record: ContainerRecord,
    /// Allocation clock value of the last block handed out here (least recently used first).
    last_used: u64,
}

#[derive(Default)]
struct Dirty {
    nodes: BTreeSet<String>,
    pipelines: BTreeSet<String>,
    removed_pipelines: BTreeSet<String>,
    containers: BTreeSet<u64>,
    sequences: BTreeMap<&'static str, u64>,
    delete_txs: BTreeSet<u64>,
    removed_delete_txs: BTreeSet<u64>,
    /// Something other than an allocated-bytes counter changed: commit before answering.
    structural: bool,
}

/// All of SCM's state; see the module doc.
pub struct ScmState {
    cfg: ScmConfig,
    store: Store,
    cluster_id: String,
    nodes: BTreeMap<String, Node>,
    pipelines: BTreeMap<String, PipelineRecord>,
    containers: BTreeMap<u64, Container>,
    /// OPEN containers of each pipeline.
    open_by_pipeline: HashMap<String, BTreeSet<u64>>,
    next_container_id: u64,
    next_local_id: u64,
    /// Local ids below this are durably reserved.
    local_id_limit: u64,
    round_robin: HashMap<Factor, usize>,
    use_clock: u64,
    dirty: Dirty,
    in_safe_mode: bool,
    /// The deleted-block log (durable), by transaction id.
    delete_log: BTreeMap<u64, DeleteTx>,
    next_delete_tx: u64,
    /// Datanodes that carried out each transaction (in memory; a restart sends them again,
    /// and deleting a block twice is harmless).
    delete_acks: HashMap<u64, HashSet<String>>,
    /// When each transaction was last sent to each datanode.
    delete_sent: HashMap<(u64, String), Instant>,
}

impl ScmState {
    /// Opens the database and loads the persisted state. Loaded datanodes count as silent
    /// since `now` and take part in nothing until they heartbeat again.
    pub fn open(cfg: ScmConfig, now: Instant) -> Result<Self, ScmError> {
        let (store, loaded) = Store::open(&cfg.db_dir)?;
        let nodes = loaded
            .datanodes
            .into_iter()
            .map(|record| {
                let node = Node {
                    record,
                    last_seen: now,
                    heard: false,
                    health: NodeHealth::Healthy,
                    report: NodeReport::default(),
                    replicas: BTreeMap::new(),
                    pending: Vec::new(),
                };
                (node.record.details.uuid.clone(), node)
            })
            .collect();
        let pipelines: BTreeMap<String, PipelineRecord> = loaded
            .pipelines
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let mut open_by_pipeline: HashMap<String, BTreeSet<u64>> = HashMap::new();
        let containers = loaded
            .containers
            .into_iter()
            .map(|record| {
                if record.state == ContainerState::Open {
                    open_by_pipeline
                        .entry(record.pipeline_id.clone())
                        .or_default()
                        .insert(record.id);
                }
                (
                    record.id,
                    Container {
                        record,
                        last_used: 0,
                    },
                )
            })
            .collect();
        tracing::info!(
            cluster_id = %loaded.cluster_id,
            next_container_id = loaded.next_container_id,
            next_local_id = loaded.local_id_limit,
            "SCM state loaded"
        );
        Ok(ScmState {
            cfg,
            store,
            cluster_id: loaded.cluster_id,
            nodes,
            pipelines,
            containers,
            open_by_pipeline,
            next_container_id: loaded.next_container_id,
            // Ids below the persisted limit may have been handed out before a crash.
            next_local_id: loaded.local_id_limit,
            local_id_limit: loaded.local_id_limit,
            round_robin: HashMap::new(),
            use_clock: 0,
            dirty: Dirty::default(),
            in_safe_mode: true,
            delete_log: loaded
                .delete_log
                .into_iter()
                .map(|t| (t.tx_id, t))
                .collect(),
            next_delete_tx: loaded.next_delete_tx,
            delete_acks: HashMap::new(),
            delete_sent: HashMap::new(),
        })
    }

    pub fn config(&self) -> &ScmConfig {
        &self.cfg
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn health_at(&self, node: &Node, now: Instant) -> NodeHealth {
        let silent = now.saturating_duration_since(node.last_seen);
        if silent >= self.cfg.dead_interval {
            NodeHealth::Dead
        } else if silent >= self.cfg.stale_interval {
            NodeHealth::Stale
        } else {
            NodeHealth::Healthy
        }
    }

    /// Healthy, in service and heard from since SCM started: may take new pipelines, blocks
    /// and replicas.
    fn usable(&self, uuid: &str, now: Instant) -> bool {
        self.nodes.get(uuid).is_some_and(|n| {
            n.heard
                && n.record.op_state == OpState::InService
                && self.health_at(n, now) == NodeHealth::Healthy
        })
    }

    // ---- datanode protocol ----

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
                commands: Vec::new(),
            });
        };
        if node.record.details != update.details {
            tracing::info!(datanode = %uuid, "datanode heartbeats with a new address");
            node.record.details = update.details.clone();
            self.dirty.nodes.insert(uuid.clone());
            self.dirty.structural = true;
            self.persist()?;
        }
        let acks = std::mem::take(&mut update.deleted_block_txs);
        self.accept_reports(&uuid, update, now);
        self.accept_delete_acks(&uuid, &acks);
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
        Ok(HeartbeatOutcome {
            reregister: false,
            commands,
        })
    }

    /// Records a datanode's liveness, node report and full container report; schedules close
    /// commands for replicas still open of containers SCM has closed.
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
        node.replicas = update
            .replicas
            .iter()
            .map(|r| (r.container_id, *r))
            .collect();
        let mut closed_by_datanode = Vec::new();
        for r in &update.replicas {
            let Some(c) = self.containers.get_mut(&r.container_id) else {
                tracing::debug!(datanode = %uuid, container = r.container_id, "report of a container SCM does not know");
                continue;
            };
            match c.record.state {
                ContainerState::Closed => {
                    let cmd = Command::CloseContainer(r.container_id);
                    if r.state.is_open() && !node.pending.contains(&cmd) {
                        node.pending.push(cmd);
                    }
                }
                // The ReplicationManager removes what is left of these.
                ContainerState::Deleting | ContainerState::Deleted => {}
                ContainerState::Open => {
                    if r.state != ReplicaState::Open {
                        // The datanode closed (or lost) its replica: no more blocks there.
                        closed_by_datanode.push((r.container_id, r.state));
                    } else if r.used_bytes > c.record.allocated_bytes {
                        c.record.allocated_bytes = r.used_bytes;
                        self.dirty.containers.insert(r.container_id);
                    }
                }
            }
        }
        for (id, state) in closed_by_datanode {
            let reason = format!("datanode {uuid} reports its replica {}", state.as_str());
            self.close_container(id, &reason);
        }
    }

    // ---- pipelines ----

    /// Forms factor-ONE pipelines (one per usable datanode) and factor-THREE pipelines of
    /// three distinct usable datanodes, each datanode in at most `pipeline_limit` open
    /// pipelines of a factor. Commits new pipelines.
    pub fn form_pipelines(&mut self, now: Instant) -> Result<(), ScmError> {
        let usable: Vec<String> = self
            .nodes
            .keys()
            .filter(|u| self.usable(u, now))
            .cloned()
            .collect();
        if usable.is_empty() {
            return Ok(());
        }
        let mut counts: HashMap<(String, Factor), usize> = HashMap::new();
        for p in self.pipelines.values() {
            if p.state == PipelineState::Open {
                for n in &p.nodes {
                    *counts.entry((n.clone(), p.factor)).or_default() += 1;
                }
            }
        }
        let mut created = false;
        for uuid in &usable {
            if counts
                .get(&(uuid.clone(), Factor::One))
                .copied()
                .unwrap_or(0)
                == 0
            {
                self.create_pipeline(Factor::One, vec![uuid.clone()]);
                counts.insert((uuid.clone(), Factor::One), 1);
                created = true;
            }
        }
        loop {
            let mut candidates: Vec<(usize, &String)> = usable
                .iter()
                .map(|u| {
                    let c = counts.get(&(u.clone(), Factor::Three)).copied();
                    (c.unwrap_or(0), u)
                })
                .filter(|(c, _)| *c < self.cfg.pipeline_limit)
                .collect();
            if candidates.len() < Factor::Three.nodes() {
                break;
            }
            candidates.sort();
            let members: Vec<String> = candidates
                .iter()
                .take(Factor::Three.nodes())
                .map(|(_, u)| (*u).clone())
                .collect();
            for m in &members {
                *counts.entry((m.clone(), Factor::Three)).or_default() += 1;
            }
            self.create_pipeline(Factor::Three, members);
            created = true;
        }
        if created {
            self.persist()?;
        }
        Ok(())
    }

    fn create_pipeline(&mut self, factor: Factor, nodes: Vec<String>) {
        let id = uuid::Uuid::new_v4().to_string();
        tracing::info!(pipeline = %id, %factor, nodes = ?nodes, "pipeline created");
        self.pipelines.insert(
            id.clone(),
            PipelineRecord {
                id: id.clone(),
                factor,
                nodes,
                state: PipelineState::Open,
                created_ms: now_ms(),
            },
        );
        self.dirty.pipelines.insert(id);
        self.dirty.structural = true;
    }

    /// Closes a pipeline and its open containers. A pipeline that never held a container is
    /// removed altogether.
    fn close_pipeline(&mut self, id: &str, reason: &str) {
        let Some(p) = self.pipelines.get_mut(id) else {
            return;
        };
        if p.state == PipelineState::Closed {
            return;
        }
        tracing::warn!(pipeline = %id, factor = %p.factor, reason, "pipeline closed");
        p.state = PipelineState::Closed;
        let open: Vec<u64> = self
            .open_by_pipeline
            .get(id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for c in open {
            self.close_container(c, "its pipeline closed");
        }
        self.open_by_pipeline.remove(id);
        if self.containers.values().any(|c| c.record.pipeline_id == id) {
            self.dirty.pipelines.insert(id.to_string());
        } else {
            self.pipelines.remove(id);
            self.dirty.pipelines.remove(id);
            self.dirty.removed_pipelines.insert(id.to_string());
        }
        self.dirty.structural = true;
    }

    fn pipeline_view(&self, p: &PipelineRecord) -> PipelineView {
        PipelineView {
            id: p.id.clone(),
            factor: p.factor,
            state: p.state,
            nodes: p
                .nodes
                .iter()
                .filter_map(|u| self.nodes.get(u).map(|n| n.record.details.clone()))
                .collect(),
        }
    }

    fn has_usable_pipeline(&self, factor: Factor, now: Instant) -> bool {
        self.pipelines.values().any(|p| {
            p.state == PipelineState::Open
                && p.factor == factor
                && p.nodes.iter().all(|n| self.usable(n, now))
        })
    }

    // ---- containers and blocks ----

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
    fn close_container(&mut self, id: u64, reason: &str) {
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

    // ---- periodic work ----

    /// Re-evaluates node health, closes pipelines with a STALE or DEAD member, forgets the
    /// replicas of DEAD datanodes, forms new pipelines and flushes pending changes.
    pub fn tick(&mut self, now: Instant) -> Result<(), ScmError> {
        let mut unhealthy: HashSet<String> = HashSet::new();
        let healths: Vec<(String, NodeHealth)> = self
            .nodes
            .iter()
            .map(|(u, n)| (u.clone(), self.health_at(n, now)))
            .collect();
        for (uuid, health) in healths {
            let Some(node) = self.nodes.get_mut(&uuid) else {
                continue;
            };
            if health != node.health {
                tracing::warn!(datanode = %uuid, was = node.health.as_str(), now = health.as_str(), "datanode health changed");
                node.health = health;
            }
            if health == NodeHealth::Dead && !node.replicas.is_empty() {
                tracing::warn!(datanode = %uuid, replicas = node.replicas.len(), "forgetting the replicas of a DEAD datanode");
                node.replicas.clear();
            }
            if health != NodeHealth::Healthy || node.record.op_state != OpState::InService {
                unhealthy.insert(uuid);
            }
        }
        let to_close: Vec<(String, String)> = self
            .pipelines
            .values()
            .filter(|p| p.state == PipelineState::Open)
            .filter_map(|p| {
                p.nodes
                    .iter()
                    .find(|n| unhealthy.contains(*n) || !self.nodes.contains_key(*n))
                    .map(|n| {
                        (
                            p.id.clone(),
                            format!("member {n} is not healthy or not in service"),
                        )
                    })
            })
            .collect();
        for (id, reason) in to_close {
            self.close_pipeline(&id, &reason);
        }
        self.finish_decommissions(now);
        self.finish_container_deletions();
        self.form_pipelines(now)?;
        self.safe_mode(now);
        self.persist()
    }

    /// Safe-mode state; leaves safe mode (for good, until restart) once enough datanodes are
    /// healthy and a healthy pipeline of the default factor exists.
    pub fn safe_mode(&mut self, now: Instant) -> SafeModeView {
        let healthy = self.nodes.keys().filter(|u| self.usable(u, now)).count();
        let healthy = u32::try_from(healthy).unwrap_or(u32::MAX);
        let required = self.cfg.safemode_min_datanodes;
        let has_pipeline = self.has_usable_pipeline(self.cfg.default_factor, now);
        if self.in_safe_mode && healthy >= required && has_pipeline {
            tracing::info!(healthy, required, "SCM left safe mode");
            self.in_safe_mode = false;
        }
        SafeModeView {
            in_safe_mode: self.in_safe_mode,
            healthy_datanodes: healthy,
            required_datanodes: required,
            has_pipeline,
        }
    }

    /// Writes every pending change in one durable transaction.
    pub fn persist(&mut self) -> Result<(), ScmError> {
        let d = &self.dirty;
        let batch = Batch {
            delete_txs: d
                .delete_txs
                .iter()
                .filter_map(|id| self.delete_log.get(id).cloned())
                .collect(),
            removed_delete_txs: d.removed_delete_txs.iter().copied().collect(),
            datanodes: d
                .nodes
                .iter()
                .filter_map(|u| self.nodes.get(u).map(|n| n.record.clone()))
                .collect(),
            pipelines: d
                .pipelines
                .iter()
                .filter_map(|id| self.pipelines.get(id).cloned())
                .collect(),
            removed_pipelines: d.removed_pipelines.iter().cloned().collect(),
            containers: d
                .containers
                .iter()
                .filter_map(|id| self.containers.get(id).map(|c| c.record.clone()))
                .collect(),
            sequences: d.sequences.iter().map(|(k, v)| (*k, *v)).collect(),
        };
        self.store.write(&batch)?;
        self.dirty = Dirty::default();
        Ok(())
    }

    /// Flushes pending changes and releases the database.
    pub fn close(&mut self) -> Result<(), ScmError> {
        let r = self.persist();
        self.store.close();
        r
    }

    // ---- decommission ----

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

    /// Whether container `id` has its full count of CLOSED replicas on healthy in-service
    /// datanodes other than `except`.
    fn fully_replicated_without(&self, id: u64, except: &str, now: Instant) -> bool {
        let Some(c) = self.containers.get(&id) else {
            return true;
        };
        match c.record.state {
            ContainerState::Deleting | ContainerState::Deleted => return true,
            ContainerState::Open => return false,
            ContainerState::Closed => {}
        }
        let good = self
            .nodes
            .iter()
            .filter(|(u, _)| u.as_str() != except && self.usable(u, now))
            .filter(|(_, n)| {
                n.replicas
                    .get(&id)
                    .is_some_and(|r| r.state == ReplicaState::Closed)
            })
            .count();
        good >= c.record.factor.nodes()
    }

    /// DECOMMISSIONING datanodes whose every container is fully replicated elsewhere turn
    /// DECOMMISSIONED: the containers it reports, and those of its pipelines that some datanode
    /// reports (a replica it has not reported yet must not be forgotten).
    fn finish_decommissions(&mut self, now: Instant) {
        let done: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.heard && n.record.op_state == OpState::Decommissioning)
            .filter(|(u, n)| {
                let on_its_pipelines = self
                    .containers
                    .values()
                    .filter(|c| {
                        self.pipelines
                            .get(&c.record.pipeline_id)
                            .is_some_and(|p| p.nodes.contains(*u))
                    })
                    .map(|c| c.record.id)
                    .filter(|id| self.nodes.values().any(|o| o.replicas.contains_key(id)));
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

    /// DELETING containers that no datanode reports any more are DELETED; their pending
    /// deleted-block transactions are dropped.
    fn finish_container_deletions(&mut self) {
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

    // ---- deleted-block log ----

    /// Appends the blocks to the deleted-block log durably (one transaction per container and
    /// up to [`MAX_TX_BLOCKS`] blocks); returns the number of transactions added.
    pub fn add_deleted_blocks(&mut self, groups: Vec<(u64, Vec<u64>)>) -> Result<u32, ScmError> {
        let mut added = 0u32;
        for (container_id, local_ids) in groups {
            if local_ids.is_empty() {
                continue;
            }
            if !self.containers.contains_key(&container_id) {
                tracing::warn!(
                    container = container_id,
                    blocks = local_ids.len(),
                    "deleted blocks of a container SCM does not know; dropped"
                );
                continue;
            }
            for ids in local_ids.chunks(MAX_TX_BLOCKS) {
                let tx_id = self.next_delete_tx;
                self.next_delete_tx += 1;
                self.delete_log.insert(
                    tx_id,
                    DeleteTx {
                        tx_id,
                        container_id,
                        local_ids: ids.to_vec(),
                    },
                );
                self.dirty.delete_txs.insert(tx_id);
                added += 1;
            }
        }
        if added > 0 {
            self.dirty
                .sequences
                .insert(SEQ_DELETE_TX, self.next_delete_tx);
            self.dirty.structural = true;
            self.persist()?;
            tracing::debug!(transactions = added, "deleted blocks logged");
        }
        Ok(added)
    }

    fn remove_delete_tx(&mut self, tx: u64) {
        if self.delete_log.remove(&tx).is_some() {
            self.dirty.delete_txs.remove(&tx);
            self.dirty.removed_delete_txs.insert(tx);
            self.delete_acks.remove(&tx);
            self.delete_sent.retain(|(t, _), _| *t != tx);
        }
    }

    /// Records a datanode's acknowledgements; a transaction every datanode now holding a
    /// replica of its container has carried out leaves the log (written at the next flush;
    /// a transaction sent again after a crash is harmless).
    fn accept_delete_acks(&mut self, uuid: &str, acks: &[u64]) {
        for tx in acks {
            let Some(t) = self.delete_log.get(tx) else {
                continue;
            };
            let container_id = t.container_id;
            let acked = self.delete_acks.entry(*tx).or_default();
            acked.insert(uuid.to_string());
            let holders: Vec<&String> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.replicas.contains_key(&container_id))
                .map(|(u, _)| u)
                .collect();
            if holders.iter().all(|u| acked.contains(*u)) {
                tracing::debug!(
                    tx,
                    container = container_id,
                    "deleted-block transaction done"
                );
                self.remove_delete_tx(*tx);
            }
        }
    }

    /// Queues a DeleteBlocks command with the transactions of containers `uuid` holds that
    /// it has not carried out, unless sent recently.
    fn dispatch_deletes(&mut self, uuid: &str, now: Instant) {
        let Some(node) = self.nodes.get(uuid) else {
            return;
        };
        let resend = (self.cfg.heartbeat_interval * 5).max(std::time::Duration::from_secs(5));
        let mut txs = Vec::new();
        let mut blocks = 0usize;
        for t in self.delete_log.values() {
            if blocks >= self.cfg.deletion_blocks_per_heartbeat {
                break;
            }
            if !node.replicas.contains_key(&t.container_id)
                || self
                    .delete_acks
                    .get(&t.tx_id)
                    .is_some_and(|a| a.contains(uuid))
            {
                continue;
            }
            let key = (t.tx_id, uuid.to_string());
            if self
                .delete_sent
                .get(&key)
                .is_some_and(|at| now.saturating_duration_since(*at) < resend)
            {
                continue;
            }
            blocks += t.local_ids.len();
            txs.push(t.clone());
        }
        if txs.is_empty() {
            return;
        }
        for t in &txs {
            self.delete_sent.insert((t.tx_id, uuid.to_string()), now);
        }
        tracing::debug!(datanode = %uuid, transactions = txs.len(), blocks, "sending block deletions");
        if let Some(node) = self.nodes.get_mut(uuid) {
            node.pending.push(Command::DeleteBlocks(txs));
        }
    }

    /// Transactions in the deleted-block log.
    pub fn delete_log_len(&self) -> usize {
        self.delete_log.len()
    }

    // ---- replication manager ----

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
                replicas: self
                    .nodes
                    .iter()
                    .filter_map(|(u, n)| {
                        n.replicas.get(&c.record.id).map(|r| RmReplica {
                            uuid: u.clone(),
                            state: r.state,
                            block_count: r.block_count,
                            used_bytes: r.used_bytes,
                        })
                    })
                    .collect(),
                has_pending_deletes: self
                    .delete_log
                    .values()
                    .any(|t| t.container_id == c.record.id),
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

    // ---- queries ----

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
        let replicas: Vec<ReplicaView> = self
            .nodes
            .values()
            .filter_map(|n| {
                n.replicas.get(&c.record.id).map(|r| ReplicaView {
                    datanode: n.record.details.clone(),
                    report: *r,
                })
            })
            .collect();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::DatanodeDetails;

    fn config(dir: &std::path::Path) -> ScmConfig {
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set("ozone.scm.db.dirs", dir.to_string_lossy().to_string())
            .set("ozone.scm.container.size", "4MB")
            .set("ozone.scm.block.size", "1MB")
            .set("ozone.scm.pipeline.owner.container.count", "1")
            .set("ozone.scm.datanode.pipeline.limit", "1")
            .set("ozone.scm.stale.node.interval", "10s")
            .set("ozone.scm.dead.node.interval", "20s");
        ScmConfig::from_ozone(&cfg).expect("valid test config")
    }

    fn update(n: u16) -> NodeUpdate {
        NodeUpdate {
            details: DatanodeDetails {
                uuid: format!("dn-{n}"),
                host: "127.0.0.1".into(),
                port: 9000 + n,
                http_port: 0,
            },
            report: None,
            replicas: vec![],
            deleted_block_txs: vec![],
        }
    }

    fn alloc(n: u32, exclude: &[&str]) -> AllocateRequest {
        AllocateRequest {
            size: 0,
            num_blocks: n,
            factor: None,
            owner: "test".into(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn safe_mode_pipelines_allocation_and_closing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut s = ScmState::open(config(dir.path()), t0).expect("open");
        s.register(update(1), t0).expect("register");
        s.register(update(2), t0).expect("register");
        assert!(matches!(
            s.allocate(alloc(1, &[]), t0),
            Err(ScmError::SafeMode { healthy: 2, .. })
        ));
        s.register(update(3), t0).expect("register");
        // Three ONE pipelines and (limit 1) one THREE pipeline.
        let ps = s.pipelines();
        assert_eq!(ps.iter().filter(|p| p.factor == Factor::One).count(), 3);
        let three: Vec<_> = ps.iter().filter(|p| p.factor == Factor::Three).collect();
        assert_eq!(three.len(), 1);
        let mut members: Vec<_> = three[0].nodes.iter().map(|d| d.uuid.clone()).collect();
        members.sort();
        members.dedup();
        assert_eq!(members.len(), 3);

        // 4MB containers, 1MB blocks: the fourth block fills and closes the container.
        let blocks = s.allocate(alloc(4, &[]), t0).expect("allocate");
        assert!(
            blocks
                .iter()
                .all(|b| b.container_id == blocks[0].container_id)
        );
        let c = s.container(blocks[0].container_id).expect("container");
        assert_eq!(c.record.state, ContainerState::Closed);
        assert_eq!(c.record.allocated_bytes, 4 << 20);
        let hb = s.heartbeat(update(1), t0).expect("heartbeat");
        assert_eq!(
            hb.commands,
            vec![Command::CloseContainer(blocks[0].container_id)]
        );
        // Delivered once; re-sent only while a report shows the replica open.
        assert!(s.heartbeat(update(1), t0).expect("hb").commands.is_empty());
        let mut u = update(1);
        u.replicas.push(ReplicaReport {
            container_id: blocks[0].container_id,
            state: ReplicaState::Open,
            used_bytes: 10,
            block_count: 1,
        });
        assert_eq!(s.heartbeat(u, t0).expect("hb").commands.len(), 1);
        let next = s.allocate(alloc(1, &[]), t0).expect("allocate");
        assert_ne!(next[0].container_id, blocks[0].container_id);

        // A datanode that closes a replica on its own closes the container in SCM.
        let mut u = update(2);
        u.replicas.push(ReplicaReport {
            container_id: next[0].container_id,
            state: ReplicaState::Unhealthy,
            used_bytes: 0,
            block_count: 0,
        });
        s.heartbeat(u, t0).expect("hb");
        assert_eq!(
            s.container(next[0].container_id).expect("c").record.state,
            ContainerState::Closed
        );
        let next = s.allocate(alloc(1, &[]), t0).expect("allocate");
        assert!(next[0].local_id > blocks[3].local_id);

        // Excluding a member of the only THREE pipeline leaves nothing.
        assert!(matches!(
            s.allocate(alloc(1, &["dn-2"]), t0),
            Err(ScmError::NoPipeline { .. })
        ));
        let one = s
            .allocate(
                AllocateRequest {
                    factor: Some(Factor::One),
                    ..alloc(3, &["dn-2"])
                },
                t0,
            )
            .expect("factor one");
        assert!(
            one.iter()
                .all(|b| b.pipeline.nodes.len() == 1 && b.pipeline.nodes[0].uuid != "dn-2")
        );

        // dn-3 goes silent: STALE closes its pipelines, DEAD drops its replicas.
        let t1 = t0 + Duration::from_secs(11);
        for n in [1, 2] {
            s.heartbeat(update(n), t1).expect("hb");
        }
        s.tick(t1).expect("tick");
        let views = s.datanodes(t1);
        let dn3 = views
            .iter()
            .find(|d| d.details.uuid == "dn-3")
            .expect("dn-3");
        assert_eq!(dn3.health, NodeHealth::Stale);
        assert!(dn3.pipelines.is_empty());
        assert!(
            s.pipelines()
                .iter()
                .filter(|p| p.factor == Factor::Three)
                .all(|p| p.state == PipelineState::Closed)
        );
        assert!(matches!(
            s.allocate(alloc(1, &[]), t1),
            Err(ScmError::NoPipeline { .. })
        ));
        // The open container of the closed pipeline was closed too.
        assert_eq!(
            s.container(next[0].container_id).expect("c").record.state,
            ContainerState::Closed
        );
        let t2 = t0 + Duration::from_secs(21);
        s.tick(t2).expect("tick");
        assert!(
            s.datanodes(t2)
                .iter()
                .any(|d| d.details.uuid == "dn-3" && d.health == NodeHealth::Dead)
        );
    }

    #[test]
    fn ids_survive_restart_and_address_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut last = 0;
        for round in 0..3 {
            let mut s = ScmState::open(config(dir.path()), t0).expect("open");
            for n in 1..=3 {
                let mut u = update(n);
                u.details.port += round;
                s.register(u, t0).expect("register");
            }
            // Limit 1: the pipeline from before the restart is reused, with new ports.
            let three: Vec<_> = s
                .pipelines()
                .into_iter()
                .filter(|p| p.factor == Factor::Three)
                .collect();
            assert_eq!(three.len(), 1);
            assert!(three[0].nodes.iter().all(|d| d.port > 9000 + round));
            for b in s.allocate(alloc(10, &[]), t0).expect("allocate") {
                assert!(b.local_id > last, "local id reused");
                last = b.local_id;
            }
            // Every allocation of every round is accounted to exactly one container.
            let allocated: u64 = s
                .containers(0, 0)
                .iter()
                .map(|c| c.record.allocated_bytes)
                .sum();
            assert_eq!(allocated, ((u64::from(round) + 1) * 10) << 20);
            s.close().expect("close");
        }
    }

    fn with_replica(n: u16, id: u64, state: ReplicaState) -> NodeUpdate {
        let mut u = update(n);
        u.replicas.push(ReplicaReport {
            container_id: id,
            state,
            used_bytes: 10,
            block_count: 1,
        });
        u
    }

    #[test]
    fn deleted_blocks_ride_heartbeats_until_every_holder_acks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut s = ScmState::open(config(dir.path()), t0).expect("open");
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        let b = s.allocate(alloc(1, &[]), t0).expect("allocate").remove(0);
        let cid = b.container_id;
        for n in [1, 2] {
            s.heartbeat(with_replica(n, cid, ReplicaState::Open), t0)
                .expect("hb");
        }
        // A container SCM does not know is dropped.
        let added = s
            .add_deleted_blocks(vec![(cid, vec![b.local_id]), (999, vec![1])])
            .expect("log");
        assert_eq!(added, 1);
        let hb = s
            .heartbeat(with_replica(1, cid, ReplicaState::Open), t0)
            .expect("hb");
        let tx = match hb.commands.as_slice() {
            [Command::DeleteBlocks(txs)] => {
                assert_eq!(txs[0].local_ids, vec![b.local_id]);
                txs[0].tx_id
            }
            other => panic!("unexpected {other:?}"),
        };
        // Not sent again at once, and not to a datanode without a replica.
        assert!(
            s.heartbeat(with_replica(1, cid, ReplicaState::Open), t0)
                .expect("hb")
                .commands
                .is_empty()
        );
        assert!(s.heartbeat(update(3), t0).expect("hb").commands.is_empty());
        // Sent again when unacknowledged for long enough.
        let later = t0 + Duration::from_secs(16);
        let hb = s
            .heartbeat(with_replica(1, cid, ReplicaState::Open), later)
            .expect("hb");
        assert!(matches!(hb.commands.as_slice(), [Command::DeleteBlocks(_)]));
        let mut u = with_replica(1, cid, ReplicaState::Open);
        u.deleted_block_txs = vec![tx];
        s.heartbeat(u, later).expect("hb");
        assert_eq!(s.delete_log_len(), 1, "dn-2 has not done it yet");
        let mut u = with_replica(2, cid, ReplicaState::Open);
        u.deleted_block_txs = vec![tx];
        s.heartbeat(u, later).expect("hb");
        assert_eq!(s.delete_log_len(), 0);
        s.close().expect("close");
        let s = ScmState::open(config(dir.path()), t0).expect("reopen");
        assert_eq!(s.delete_log_len(), 0);
    }

    #[test]
    fn decommission_waits_for_replicas_elsewhere() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut s = ScmState::open(config(dir.path()), t0).expect("open");
        for n in 1..=4 {
            s.register(update(n), t0).expect("register");
        }
        let b = s.allocate(alloc(1, &[]), t0).expect("allocate").remove(0);
        let cid = b.container_id;
        let members: Vec<u16> = b.pipeline.nodes.iter().map(|d| d.port - 9000).collect();
        let spare = (1..=4).find(|n| !members.contains(n)).expect("a spare");
        let victim = members[0];
        // The other members have written; the victim has not reported yet.
        for n in &members[1..] {
            s.heartbeat(with_replica(*n, cid, ReplicaState::Open), t0)
                .expect("hb");
        }
        let (_, st) = s
            .decommission(&format!("127.0.0.1:{}", 9000 + victim))
            .expect("decommission");
        assert_eq!(st, OpState::Decommissioning);
        assert!(s.decommission("no-such-node").is_err());
        s.tick(t0).expect("tick");
        // Its pipeline closed, so the container did.
        assert_eq!(
            s.container(cid).expect("c").record.state,
            ContainerState::Closed
        );
        for n in &members {
            s.heartbeat(with_replica(*n, cid, ReplicaState::Closed), t0)
                .expect("hb");
        }
        s.tick(t0).expect("tick");
        let op = |s: &ScmState| {
            s.datanodes(t0)
                .into_iter()
                .find(|d| d.details.port == 9000 + victim)
                .map(|d| d.op_state)
        };
        assert_eq!(op(&s), Some(OpState::Decommissioning));
        // The ReplicationManager sees it as missing one copy and may pick only the spare.
        let view = s.cluster_view(t0);
        let targets: Vec<_> = view
            .nodes
            .iter()
            .filter(|n| n.usable)
            .map(|n| n.uuid.clone())
            .collect();
        assert!(!targets.contains(&format!("dn-{victim}")));
        s.heartbeat(with_replica(spare, cid, ReplicaState::Closed), t0)
            .expect("hb");
        s.tick(t0).expect("tick");
        assert_eq!(op(&s), Some(OpState::Decommissioned));
        let (_, st) = s
            .recommission(&format!("dn-{victim}"))
            .expect("recommission");
        assert_eq!(st, OpState::InService);
    }
}
