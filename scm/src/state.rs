//! SCM's state and rules: datanodes and their health, pipelines, containers, block allocation
//! and safe mode. Plain synchronous code taking the current time as an argument, so it can be
//! tested without clocks or networks; the state actor (`manager`) owns the one instance.
//!
//! Durability: every structural change (new datanode or address, new or closed pipeline, new or
//! closed container, id reservations, the deleted-block log) is committed before the request
//! that caused it is answered. A container's allocated-bytes counter (the declared sizes of
//! the blocks handed out, shown to admins) alone is written at the next commit or periodic
//! flush, so after a crash it may lag. How full a container is lives in memory only: the used
//! bytes its replicas report (back with the first reports after a restart) plus the blocks in
//! flight (see `containers`), which a restart forgets; at worst a container then takes a few
//! blocks more than it has room for, as Ozone's own allocation (reported bytes only) would.
//!
//! Indexes keep the per-request work proportional to the request: each container knows the
//! datanodes holding it (`holders`), the deleted-block log is indexed by container, and each
//! datanode has the set of its containers with deleted-block transactions it has not carried
//! out, so a heartbeat costs its report and its pending deletions, never all containers or
//! the whole log.
//!
//! This file holds the state itself, loading it, node health, the periodic tick, safe mode and
//! persisting; the rest of `impl ScmState` is split by concern into child modules: `nodes`
//! (register, heartbeats, reports), `pipelines`, `containers` (containers and block
//! allocation), `deleted_blocks` (the deleted-block log), `decommission`, `consistency`
//! (replica BCSIDs and the commits writers report missed), `replication` (the
//! ReplicationManager's snapshot and decisions) and `queries` (read-only views).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::config::ScmConfig;
use crate::error::ScmError;
use crate::factor::Factor;
use crate::model::{
    Command, ContainerRecord, ContainerState, DeleteTx, DoneMark, NodeHealth, NodeRecord,
    NodeReport, OpState, PipelineRecord, PipelineState, ReplicaReport, SafeModeView,
};
use crate::store::{Batch, Loaded, Store};

mod consistency;
mod containers;
mod decommission;
mod deleted_blocks;
mod nodes;
mod pipelines;
mod queries;
mod replication;
mod secret_keys;

/// Block local ids reserved per durable commit. A restart skips the unused rest of a batch.
pub const LOCAL_ID_BATCH: u64 = 10_000;

/// What a heartbeat is answered with.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HeartbeatOutcome {
    pub reregister: bool,
    pub commands: Vec<Command>,
    /// The leader's raft term (set by the state actor).
    pub term: u64,
    /// Security on: the secret keys that still verify tokens.
    pub secret_keys: Vec<ozone_common::token::SecretKey>,
    /// Security on: a container token for each ReplicateContainer command, by container.
    pub container_tokens: BTreeMap<u64, Vec<u8>>,
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
    /// The replicas it holds: its last full container report with the incremental ones since
    /// applied.
    replicas: BTreeMap<u64, ReplicaReport>,
    /// Commands for the next heartbeat response.
    pending: Vec<Command>,
}

struct Container {
    record: ContainerRecord,
    /// Datanodes whose reports hold a replica of it.
    holders: BTreeSet<String>,
    /// Largest used bytes any holder reports.
    reported_used: u64,
    /// Blocks handed out here that the reports may not show yet (OPEN containers only).
    in_flight: containers::BlocksInFlight,
}

impl Container {
    fn new(record: ContainerRecord) -> Self {
        Container {
            record,
            holders: BTreeSet::new(),
            reported_used: 0,
            in_flight: containers::BlocksInFlight::default(),
        }
    }
}

/// Progress of one deleted-block transaction (in memory; a restart sends it again, and
/// deleting a block twice is harmless). Dropped with the transaction.
#[derive(Default)]
struct TxProgress {
    /// Datanodes that carried it out.
    acked: HashSet<String>,
    /// When it was last sent to each datanode that has not acknowledged it.
    sent: HashMap<String, Instant>,
}

/// A deleted-block transaction every holder of its container carried out, kept in memory for
/// a while (see `deleted_blocks`): a holder SCM learns of later gets it sent too.
struct DoneTx {
    tx: DeleteTx,
    /// Datanodes that carried it out.
    acked: HashSet<String>,
    /// When (ms since the epoch).
    done_ms: u64,
    /// When, on this SCM's clock: its entry of `delete_done_order`.
    at: Instant,
}

#[derive(Default)]
struct Dirty {
    nodes: BTreeSet<String>,
    pipelines: BTreeSet<String>,
    removed_pipelines: BTreeSet<String>,
    containers: BTreeSet<u64>,
    sequences: BTreeMap<&'static str, u64>,
    delete_txs: BTreeSet<u64>,
    /// Done transactions to rewrite with their mark: (container, transaction).
    done_delete_txs: BTreeSet<(u64, u64)>,
    removed_delete_txs: BTreeSet<u64>,
    /// Secret keys made, and expired ones to drop.
    secret_keys: BTreeSet<String>,
    removed_secret_keys: BTreeSet<String>,
    /// A new service's cluster id, chosen by its first leader.
    cluster_id: Option<String>,
    /// Something other than an allocated-bytes counter changed: commit before answering.
    structural: bool,
}

/// Where persisted changes go.
enum Sink {
    /// Written to the store at once (unit tests, tools).
    Direct,
    /// Staged for the leader's writer, which replicates them (`crate::ha`).
    Staged(Vec<Batch>),
}

/// All of SCM's state; see the module doc.
pub struct ScmState {
    cfg: ScmConfig,
    store: Arc<Store>,
    sink: Sink,
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
    dirty: Dirty,
    in_safe_mode: bool,
    /// DELETING containers (a few at a time), checked each tick for their last replica.
    deleting: BTreeSet<u64>,
    /// The deleted-block log (durable), by transaction id.
    delete_log: BTreeMap<u64, DeleteTx>,
    /// The log's transactions by container.
    delete_by_container: HashMap<u64, BTreeSet<u64>>,
    next_delete_tx: u64,
    /// Progress of each transaction in the log.
    delete_progress: HashMap<u64, TxProgress>,
    /// Per datanode: its containers with transactions it may not have carried out yet (a
    /// superset, pruned when dispatching).
    delete_work: HashMap<String, BTreeSet<u64>>,
    /// Containers with transactions that may have no holder, and since when they have none
    /// (stamped at the next tick): their transactions drain after a timeout.
    holderless: HashMap<u64, Option<Instant>>,
    /// Transactions done by every holder, by container, kept for
    /// [`ScmState::delete_retention`] after they left the log (in memory only).
    delete_done: HashMap<u64, Vec<DoneTx>>,
    /// The same, oldest first, with when they were done: (when, container, transaction).
    delete_done_order: std::collections::VecDeque<(Instant, u64, u64)>,
    /// Secret keys for block and container tokens (security on), by id.
    secret_keys: BTreeMap<String, ozone_common::token::SecretKey>,
    /// When the keys were last checked for rotation.
    secret_keys_checked: Option<Instant>,
}

impl ScmState {
    /// Opens the database and loads the persisted state, writing changes straight to it (a
    /// new database gets a fresh cluster id). Loaded datanodes count as silent since `now`
    /// and take part in nothing until they register again.
    pub fn open(cfg: ScmConfig, now: Instant) -> Result<Self, ScmError> {
        let store = Arc::new(Store::open(&cfg.db_dir)?);
        let mut loaded = store.load()?;
        if loaded.cluster_id.is_empty() {
            loaded.cluster_id = new_cluster_id();
            store.write(&Batch {
                cluster_id: Some(loaded.cluster_id.clone()),
                ..Batch::default()
            })?;
        }
        Self::load(cfg, store, loaded, Sink::Direct, now)
    }

    /// The state of a leader that takes over: loaded from `store` (which the raft state
    /// machine keeps), its changes staged for replication ([`Self::take_staged`]). The first
    /// leader of a new service chooses the cluster id.
    pub fn lead(cfg: ScmConfig, store: Arc<Store>, now: Instant) -> Result<Self, ScmError> {
        let mut loaded = store.load()?;
        let new_id = loaded.cluster_id.is_empty().then(new_cluster_id);
        if let Some(id) = &new_id {
            tracing::info!(cluster_id = %id, "new SCM service: chose its cluster id");
            loaded.cluster_id = id.clone();
        }
        let mut state = Self::load(cfg, store, loaded, Sink::Staged(Vec::new()), now)?;
        if new_id.is_some() {
            state.dirty.cluster_id = new_id;
            state.dirty.structural = true;
        }
        // A new leader makes the first secret key, or a due one, before it serves.
        state.rotate_secret_keys(now, ozone_common::now_ms());
        state.persist()?;
        Ok(state)
    }

    /// The batches persisted since the last call, for the writer, oldest first.
    pub fn take_staged(&mut self) -> Vec<Batch> {
        match &mut self.sink {
            Sink::Staged(v) => std::mem::take(v),
            Sink::Direct => Vec::new(),
        }
    }

    fn load(
        cfg: ScmConfig,
        store: Arc<Store>,
        loaded: Loaded,
        sink: Sink,
        now: Instant,
    ) -> Result<Self, ScmError> {
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
        let mut deleting = BTreeSet::new();
        let containers: BTreeMap<u64, Container> = loaded
            .containers
            .into_iter()
            .map(|record| {
                match record.state {
                    ContainerState::Open => {
                        open_by_pipeline
                            .entry(record.pipeline_id.clone())
                            .or_default()
                            .insert(record.id);
                    }
                    ContainerState::Deleting => {
                        deleting.insert(record.id);
                    }
                    ContainerState::Closed | ContainerState::Deleted => {}
                }
                (record.id, Container::new(record))
            })
            .collect();
        let mut dirty = Dirty::default();
        let mut delete_log = BTreeMap::new();
        let mut delete_by_container: HashMap<u64, BTreeSet<u64>> = HashMap::new();
        for t in loaded.delete_log {
            let live = containers
                .get(&t.container_id)
                .is_some_and(|c| c.record.state != ContainerState::Deleted);
            if live {
                delete_by_container
                    .entry(t.container_id)
                    .or_default()
                    .insert(t.tx_id);
                delete_log.insert(t.tx_id, t);
            } else {
                // Its container is gone: nothing left to delete.
                dirty.removed_delete_txs.insert(t.tx_id);
            }
        }
        // Until datanodes report, every container with transactions has no holder.
        let holderless = delete_by_container.keys().map(|&id| (id, None)).collect();
        // Done transactions, aged by the wall clock across the restart.
        let mut done_loaded: Vec<(DeleteTx, DoneMark)> = loaded
            .delete_done
            .into_iter()
            .filter(|(t, _)| containers.contains_key(&t.container_id))
            .collect();
        done_loaded.sort_by_key(|(t, m)| (m.done_ms, t.tx_id));
        let wall = ozone_common::now_ms();
        let mut delete_done: HashMap<u64, Vec<DoneTx>> = HashMap::new();
        let mut delete_done_order = std::collections::VecDeque::new();
        for (tx, mark) in done_loaded {
            let age = std::time::Duration::from_millis(wall.saturating_sub(mark.done_ms));
            let at = now.checked_sub(age).unwrap_or(now);
            delete_done_order.push_back((at, tx.container_id, tx.tx_id));
            delete_done
                .entry(tx.container_id)
                .or_default()
                .push(DoneTx {
                    tx,
                    acked: mark.acked.into_iter().collect(),
                    done_ms: mark.done_ms,
                    at,
                });
        }
        tracing::info!(
            cluster_id = %loaded.cluster_id,
            next_container_id = loaded.next_container_id,
            next_local_id = loaded.local_id_limit,
            "SCM state loaded"
        );
        Ok(ScmState {
            cfg,
            store,
            sink,
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
            dirty,
            in_safe_mode: true,
            deleting,
            delete_log,
            delete_by_container,
            next_delete_tx: loaded.next_delete_tx,
            delete_progress: HashMap::new(),
            delete_work: HashMap::new(),
            holderless,
            delete_done,
            delete_done_order,
            secret_keys: loaded
                .secret_keys
                .into_iter()
                .map(|k| (k.id.clone(), k))
                .collect(),
            secret_keys_checked: None,
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
                let ids: Vec<u64> = node.replicas.keys().copied().collect();
                for id in ids {
                    self.drop_replica(&uuid, id, now);
                }
            }
            let Some(node) = self.nodes.get(&uuid) else {
                continue;
            };
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
        self.drain_holderless_deletes(now);
        self.expire_done_deletes(now);
        self.form_pipelines(now)?;
        self.safe_mode(now);
        self.rotate_secret_keys(now, ozone_common::now_ms());
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

    /// Writes every pending change in one durable transaction (staged for replication on a
    /// leader: durable once the writer says it applied).
    pub fn persist(&mut self) -> Result<(), ScmError> {
        let d = &self.dirty;
        let batch = Batch {
            delete_txs: d
                .delete_txs
                .iter()
                .filter_map(|id| self.delete_log.get(id).cloned())
                .collect(),
            done_delete_txs: d
                .done_delete_txs
                .iter()
                .filter_map(|(cid, tx)| {
                    let done = self
                        .delete_done
                        .get(cid)?
                        .iter()
                        .find(|d| d.tx.tx_id == *tx)?;
                    let mut acked: Vec<String> = done.acked.iter().cloned().collect();
                    acked.sort();
                    Some((
                        done.tx.clone(),
                        DoneMark {
                            done_ms: done.done_ms,
                            acked,
                        },
                    ))
                })
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
            sequences: d
                .sequences
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            cluster_id: d.cluster_id.clone(),
            secret_keys: d
                .secret_keys
                .iter()
                .filter_map(|id| self.secret_keys.get(id).cloned())
                .collect(),
            removed_secret_keys: d.removed_secret_keys.iter().cloned().collect(),
        };
        match &mut self.sink {
            Sink::Direct => self.store.write(&batch)?,
            Sink::Staged(staged) if !batch.is_empty() => staged.push(batch),
            Sink::Staged(_) => {}
        }
        self.dirty = Dirty::default();
        Ok(())
    }
}

impl ScmState {
    /// Persists what is pending and lets go of the store (the database closes once no one
    /// else holds it).
    pub fn close(mut self) -> Result<(), ScmError> {
        self.persist()
    }
}

fn new_cluster_id() -> String {
    format!("CID-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use ozone_common::config::keys;
    use std::time::Duration;

    use super::*;
    use crate::model::{
        AllocateRequest, AllocatedBlock, DatanodeDetails, NodeUpdate, ReplicaState,
    };

    fn config(dir: &std::path::Path) -> ScmConfig {
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set(keys::OZONE_SCM_DB_DIRS, dir.to_string_lossy().to_string())
            .set(keys::OZONE_SCM_CONTAINER_SIZE, "4MB")
            .set(keys::OZONE_SCM_BLOCK_SIZE, "1MB")
            .set(keys::OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT, "1")
            .set(keys::OZONE_SCM_DATANODE_PIPELINE_LIMIT, "1")
            .set(keys::OZONE_SCM_STALE_NODE_INTERVAL, "10s")
            .set(keys::OZONE_SCM_DEAD_NODE_INTERVAL, "20s");
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
            incremental: false,
            removed: vec![],
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

        // 4MB containers, 1MB blocks (close threshold 0.9): four blocks of unknown size fill
        // the one container of the pipeline; it stays OPEN until its replicas report the bytes.
        let blocks = s.allocate(alloc(4, &[]), t0).expect("allocate");
        let cid = blocks[0].container_id;
        assert!(blocks.iter().all(|b| b.container_id == cid));
        let c = s.container(cid).expect("container");
        assert_eq!(c.record.state, ContainerState::Open);
        assert_eq!(c.record.allocated_bytes, 4 << 20);
        assert!(s.heartbeat(update(1), t0).expect("hb").commands.is_empty());
        // A replica reporting 3.6MB used (the threshold) closes it; the reporter and the other
        // members are told.
        let mut u = update(1);
        u.replicas.push(ReplicaReport {
            container_id: cid,
            state: ReplicaState::Open,
            used_bytes: (4 << 20) * 9 / 10 + 1,
            block_count: 4,
            bcsid: 4,
        });
        let hb = s.heartbeat(u.clone(), t0).expect("heartbeat");
        assert_eq!(hb.commands, vec![Command::CloseContainer(cid)]);
        assert_eq!(
            s.container(cid).expect("c").record.state,
            ContainerState::Closed
        );
        // Delivered once; re-sent only while a report shows the replica open.
        assert!(s.heartbeat(update(1), t0).expect("hb").commands.is_empty());
        assert_eq!(s.heartbeat(u, t0).expect("hb").commands.len(), 1);
        assert_eq!(
            s.heartbeat(update(2), t0).expect("hb").commands,
            vec![Command::CloseContainer(cid)]
        );
        let next = s.allocate(alloc(1, &[]), t0).expect("allocate");
        assert_ne!(next[0].container_id, cid);

        // A datanode that closes a replica on its own closes the container in SCM.
        let mut u = update(2);
        u.replicas.push(ReplicaReport {
            container_id: next[0].container_id,
            state: ReplicaState::Unhealthy,
            used_bytes: 0,
            block_count: 0,
            bcsid: 0,
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
            bcsid: 1,
        });
        u
    }

    /// Three datanodes, one block allocated, datanodes 1 and 2 reporting its container.
    fn two_holders_of_a_block() -> (tempfile::TempDir, Instant, ScmState, AllocatedBlock) {
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
        (dir, t0, s, b)
    }

    #[test]
    fn deleted_blocks_ride_heartbeats_until_every_holder_acks() {
        let (dir, t0, mut s, b) = two_holders_of_a_block();
        let cid = b.container_id;
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
    fn a_holder_that_shows_up_after_a_deletion_was_done_gets_it_too() {
        // Two holders report the replica; the third's report is late.
        let (dir, t0, mut s, b) = two_holders_of_a_block();
        let cid = b.container_id;
        s.add_deleted_blocks(vec![(cid, vec![b.local_id])])
            .expect("log");
        let mut tx = 0;
        for n in [1, 2] {
            let hb = s
                .heartbeat(with_replica(n, cid, ReplicaState::Open), t0)
                .expect("hb");
            match hb.commands.as_slice() {
                [Command::DeleteBlocks(txs)] => tx = txs[0].tx_id,
                other => panic!("unexpected {other:?}"),
            }
            let mut u = with_replica(n, cid, ReplicaState::Open);
            u.deleted_block_txs = vec![tx];
            s.heartbeat(u, t0).expect("hb");
        }
        assert_eq!(s.delete_log_len(), 0, "done by every holder SCM knows");
        // The done transaction survives a restart.
        s.close().expect("close");
        let mut s = ScmState::open(config(dir.path()), t0).expect("reopen");
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        for n in [1, 2] {
            s.heartbeat(with_replica(n, cid, ReplicaState::Open), t0)
                .expect("hb");
        }

        // Datanode 3 reports its replica (with the block the others deleted): it gets the
        // transaction, which leaves the log again once it acknowledges.
        let hb = s
            .heartbeat(with_replica(3, cid, ReplicaState::Open), t0)
            .expect("hb");
        match hb.commands.as_slice() {
            [Command::DeleteBlocks(txs)] => {
                assert_eq!(
                    (txs[0].tx_id, txs[0].local_ids.clone()),
                    (tx, vec![b.local_id])
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(s.delete_log_len(), 1);
        // Done again later: kept for the retention from then, not from the first time.
        let t1 = t0 + s.delete_retention() / 2;
        let mut u = with_replica(3, cid, ReplicaState::Open);
        u.deleted_block_txs = vec![tx];
        s.heartbeat(u, t1).expect("hb");
        assert_eq!(s.delete_log_len(), 0);
        // A holder that already carried it out does not get it again.
        assert!(
            s.heartbeat(with_replica(1, cid, ReplicaState::Open), t1)
                .expect("hb")
                .commands
                .is_empty()
        );
        let kept = |s: &ScmState| s.delete_done.get(&cid).map_or(0, Vec::len);
        s.expire_done_deletes(t0 + s.delete_retention() + Duration::from_secs(1));
        assert_eq!(kept(&s), 1, "the retention runs from the second time");

        // After the retention, a holder showing up gets nothing.
        let late = t1 + s.delete_retention() + Duration::from_secs(1);
        s.tick(late).expect("tick");
        assert_eq!(kept(&s), 0);
        let mut gone = with_replica(3, cid, ReplicaState::Open);
        gone.replicas.clear();
        s.heartbeat(gone, late).expect("hb");
        let hb = s
            .heartbeat(with_replica(3, cid, ReplicaState::Open), late)
            .expect("hb");
        assert!(
            !hb.commands
                .iter()
                .any(|c| matches!(c, Command::DeleteBlocks(_))),
            "{:?}",
            hb.commands
        );
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

    fn config_with(
        dir: &std::path::Path,
        container: &str,
        block: &str,
        owners: &str,
        replication: &str,
    ) -> ScmConfig {
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set(keys::OZONE_SCM_DB_DIRS, dir.to_string_lossy().to_string())
            .set(keys::OZONE_SCM_CONTAINER_SIZE, container)
            .set(keys::OZONE_SCM_BLOCK_SIZE, block)
            .set(keys::OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT, owners)
            .set(keys::OZONE_SERVER_DEFAULT_REPLICATION, replication)
            .set(keys::HDDS_HEARTBEAT_INTERVAL, "3s");
        ScmConfig::from_ozone(&cfg).expect("valid test config")
    }

    fn sized(size: u64) -> AllocateRequest {
        AllocateRequest {
            size,
            ..alloc(1, &[])
        }
    }

    fn one(s: &mut ScmState, size: u64, at: Instant) -> u64 {
        s.allocate(sized(size), at).expect("allocate")[0].container_id
    }

    /// A full container report of datanode `n`: (container, state, used bytes).
    fn report(n: u16, replicas: &[(u64, ReplicaState, u64)]) -> NodeUpdate {
        let mut u = update(n);
        u.replicas = replicas
            .iter()
            .map(|(id, state, used)| ReplicaReport {
                container_id: *id,
                state: *state,
                used_bytes: *used,
                block_count: 1,
                bcsid: 1,
            })
            .collect();
        u
    }

    fn incremental(n: u16, replicas: &[(u64, ReplicaState, u64)], removed: &[u64]) -> NodeUpdate {
        report(n, replicas).with_increment(true, removed.to_vec())
    }

    fn state_of(s: &ScmState, id: u64) -> ContainerState {
        s.container(id).expect("container").record.state
    }

    const MB: u64 = 1 << 20;

    #[test]
    fn containers_fill_by_reported_bytes_and_blocks_in_flight() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        // One datanode, one pipeline; 8MB containers close at 7.2MB; blocks of 2MB.
        let cfg = config_with(dir.path(), "8MB", "2MB", "2", "1");
        assert_eq!(cfg.close_bytes, (8 * MB * 9).div_ceil(10));
        let mut s = ScmState::open(cfg, t0).expect("open");
        s.register(update(1), t0).expect("register");

        // Declared sizes count, capped by the block size; unknown (0) counts a whole block.
        let c1 = one(&mut s, MB, t0);
        assert_eq!(one(&mut s, 0, t0), c1);
        assert_eq!(one(&mut s, u64::MAX, t0), c1);
        assert_eq!(s.container(c1).expect("c").record.allocated_bytes, 5 * MB);
        assert_eq!(one(&mut s, 2 * MB, t0), c1); // 7MB
        // No room for 2MB more: a second container opens, the first is not closed.
        let c2 = one(&mut s, 2 * MB, t0);
        assert_ne!(c2, c1);
        assert_eq!(state_of(&s, c1), ContainerState::Open);
        // The fullest container with room takes a small block: 8MB, at the threshold.
        assert_eq!(one(&mut s, MB, t0), c1);
        // At the threshold by estimates alone: no more blocks, but not closed either.
        assert_eq!(one(&mut s, MB, t0), c2);
        assert_eq!(state_of(&s, c1), ContainerState::Open);

        // A report within the grace does not retire the estimates: still full.
        s.heartbeat(
            report(1, &[(c1, ReplicaState::Open, 3 * MB)]),
            t0 + Duration::from_secs(1),
        )
        .expect("hb");
        assert_eq!(one(&mut s, MB, t0 + Duration::from_secs(1)), c2);
        // A report after the grace does: c1 counts its 6MB reported and is the fullest again.
        let t7 = t0 + Duration::from_secs(7);
        s.heartbeat(report(1, &[(c1, ReplicaState::Open, 6 * MB)]), t7)
            .expect("hb");
        assert_eq!(one(&mut s, MB, t7), c1); // 6MB + 1MB in flight
        // c2 was never reported: its estimates (4MB, from t0 and t0 + 1s) lapse after the
        // timeout.
        let t61 = t0 + Duration::from_secs(61);
        s.heartbeat(incremental(1, &[], &[]), t61).expect("hb");
        assert_eq!(one(&mut s, 2 * MB, t61), c2);
        assert_eq!(s.container(c2).expect("c").record.allocated_bytes, 6 * MB);

        // Replicas reporting the threshold close the container; the datanode is told.
        let hb = s
            .heartbeat(report(1, &[(c1, ReplicaState::Open, 7 * MB + MB / 2)]), t61)
            .expect("hb");
        assert_eq!(hb.commands, vec![Command::CloseContainer(c1)]);
        assert_eq!(state_of(&s, c1), ContainerState::Closed);

        // c2 holds 2MB in flight: three more 2MB blocks reach 8MB, then c3 opens (2 of 2
        // open) and fills.
        for _ in 0..3 {
            assert_eq!(one(&mut s, 2 * MB, t61), c2);
        }
        let c3 = one(&mut s, 2 * MB, t61);
        assert!(c3 > c2);
        for _ in 0..3 {
            assert_eq!(one(&mut s, 2 * MB, t61), c3);
        }
        // At the limit, both full by estimates alone: nothing is closed on estimates; the
        // least filled with room by its reports (c2, the first) takes the block.
        assert_eq!(one(&mut s, 2 * MB, t61), c2);
        assert_eq!(state_of(&s, c2), ContainerState::Open);
        // The reports show 7MB in each: no room for 2MB by real bytes either, so the fullest
        // (c2, the first) is closed and c4 opens; a 1MB block still fits in c3.
        let t68 = t61 + Duration::from_secs(7);
        s.heartbeat(
            report(
                1,
                &[
                    (c2, ReplicaState::Open, 7 * MB),
                    (c3, ReplicaState::Open, 7 * MB),
                ],
            ),
            t68,
        )
        .expect("hb");
        let c4 = one(&mut s, 2 * MB, t68);
        assert!(c4 > c3);
        assert_eq!(state_of(&s, c2), ContainerState::Closed);
        assert_eq!(state_of(&s, c3), ContainerState::Open);
        assert_eq!(one(&mut s, MB, t68), c3);
        // Never a block in a closed container.
        for _ in 0..20 {
            let id = one(&mut s, MB, t68);
            assert_eq!(state_of(&s, id), ContainerState::Open);
        }
    }

    /// Simulated datanodes: every block written at once with its declared size, full reports
    /// every `report_every` allocations; returns containers per pipeline and per datanode.
    fn simulate(
        s: &mut ScmState,
        t0: Instant,
        calls: usize,
        blocks_per_call: u32,
        (declared, size): (u64, u64),
        report_every: usize,
    ) -> (usize, usize) {
        let mut written: BTreeMap<u64, u64> = BTreeMap::new();
        let mut now = t0;
        for i in 0..calls {
            now += Duration::from_millis(20);
            let req = AllocateRequest {
                size: declared,
                ..alloc(blocks_per_call, &[])
            };
            for b in s.allocate(req, now).expect("allocate") {
                *written.entry(b.container_id).or_default() += size;
            }
            if i % report_every == 0 {
                for n in 1..=3 {
                    let r: Vec<_> = written
                        .iter()
                        .map(|(id, used)| (*id, ReplicaState::Open, *used))
                        .collect();
                    s.heartbeat(report(n, &r), now).expect("hb");
                }
            }
        }
        let cs = s.containers(0, 0);
        let mut per_pipeline: BTreeMap<String, usize> = BTreeMap::new();
        for c in &cs {
            *per_pipeline
                .entry(c.record.pipeline_id.clone())
                .or_default() += 1;
        }
        let pipelines = s.pipelines();
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for c in &cs {
            let p = pipelines
                .iter()
                .find(|p| p.id == c.record.pipeline_id)
                .expect("pipeline");
            for d in &p.nodes {
                *per_node.entry(d.uuid.clone()).or_default() += 1;
            }
        }
        (
            per_pipeline.values().copied().max().unwrap_or(0),
            per_node.values().copied().max().unwrap_or(0),
        )
    }

    #[test]
    fn small_objects_share_a_container_per_pipeline() {
        // Issue 11: 2,000 x 4 KiB with 64MB containers: at most 2 containers per pipeline.
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut s =
            ScmState::open(config_with(dir.path(), "64MB", "4MB", "3", "3"), t0).expect("open");
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        let (per_pipeline, _) = simulate(&mut s, t0, 2000, 1, (4096, 4096), 50);
        assert_eq!(per_pipeline, 1);

        // Writers that declare whole blocks (4MB) and write 4 KiB: the estimates fill at most
        // owner.container.count containers per pipeline, and none is closed on estimates.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s =
            ScmState::open(config_with(dir.path(), "64MB", "4MB", "3", "3"), t0).expect("open");
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        let (per_pipeline, _) = simulate(&mut s, t0, 2000, 1, (0, 4096), 50);
        assert!(per_pipeline <= 3, "{per_pipeline} containers on a pipeline");
        assert!(
            s.containers(0, 0)
                .iter()
                .all(|c| c.record.state == ContainerState::Open)
        );

        // 200,000 x 4 KiB (800 MB) at the default 5GB: at most 5 containers per datanode.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set(
            keys::OZONE_SCM_DB_DIRS,
            dir.path().to_string_lossy().to_string(),
        );
        let mut s = ScmState::open(ScmConfig::from_ozone(&cfg).expect("cfg"), t0).expect("open");
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        let (_, per_node) = simulate(&mut s, t0, 2000, 100, (4096, 4096), 20);
        assert!(per_node <= 5, "{per_node} containers on a datanode");
    }

    #[test]
    fn incremental_reports_change_only_what_they_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut s = ScmState::open(config(dir.path()), t0).expect("open");
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        // An administrator closes c1; the next block opens c2. Closing it again is refused
        // (as Ozone: "Cannot close a CLOSED container."), an unknown id is not found.
        let c1 = one(&mut s, MB, t0);
        s.close_container_by_admin(c1).expect("close");
        let c2 = one(&mut s, MB, t0);
        assert_ne!(c1, c2);
        assert_eq!(state_of(&s, c1), ContainerState::Closed);
        assert!(matches!(
            s.close_container_by_admin(c1),
            Err(ScmError::FailedPrecondition(ref m)) if m == "Cannot close a CLOSED container."
        ));
        assert!(matches!(
            s.close_container_by_admin(999),
            Err(ScmError::NotFound(_))
        ));
        let holders = |s: &ScmState, id: u64| -> Vec<(String, u64)> {
            s.container(id)
                .expect("c")
                .replicas
                .iter()
                .map(|r| (r.datanode.uuid.clone(), r.report.used_bytes))
                .collect()
        };
        let hb = s
            .heartbeat(
                report(
                    1,
                    &[
                        (c1, ReplicaState::Open, 4 * MB),
                        (c2, ReplicaState::Open, 10),
                    ],
                ),
                t0,
            )
            .expect("hb");
        assert_eq!(hb.commands, vec![Command::CloseContainer(c1)]);
        assert_eq!(holders(&s, c1), vec![("dn-1".to_string(), 4 * MB)]);
        // Incremental: c2 changed, c1 removed; an unknown removed id is ignored.
        s.heartbeat(
            incremental(1, &[(c2, ReplicaState::Open, 20)], &[c1, 999]),
            t0,
        )
        .expect("hb");
        assert!(holders(&s, c1).is_empty());
        assert_eq!(holders(&s, c2), vec![("dn-1".to_string(), 20)]);
        // An empty incremental report changes nothing.
        s.heartbeat(incremental(1, &[], &[]), t0).expect("hb");
        assert_eq!(holders(&s, c2), vec![("dn-1".to_string(), 20)]);
        let count = |s: &ScmState| {
            s.datanodes(t0)
                .into_iter()
                .find(|d| d.details.uuid == "dn-1")
                .map(|d| d.container_count)
        };
        assert_eq!(count(&s), Some(1));
        // A replica still open of a closed container named again: told again to close.
        let hb = s
            .heartbeat(
                incremental(1, &[(c1, ReplicaState::Closing, 4 * MB)], &[]),
                t0,
            )
            .expect("hb");
        assert_eq!(hb.commands, vec![Command::CloseContainer(c1)]);
        assert_eq!(count(&s), Some(2));
        // An incremental report at the threshold closes c2.
        let hb = s
            .heartbeat(incremental(2, &[(c2, ReplicaState::Open, 4 * MB)], &[]), t0)
            .expect("hb");
        assert!(hb.commands.contains(&Command::CloseContainer(c2)));
        assert_eq!(state_of(&s, c2), ContainerState::Closed);
        assert_eq!(holders(&s, c2).len(), 2);
        // A full report replaces: dn-1 now holds c1 only.
        s.heartbeat(report(1, &[(c1, ReplicaState::Closed, 4 * MB)]), t0)
            .expect("hb");
        assert_eq!(count(&s), Some(1));
        assert_eq!(holders(&s, c2), vec![("dn-2".to_string(), 4 * MB)]);
        // Registering again is a full report too, even an empty one.
        s.register(update(1), t0).expect("register");
        assert!(holders(&s, c1).is_empty());
    }

    #[test]
    fn deleted_block_log_is_indexed_by_container() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set(
            keys::OZONE_SCM_DB_DIRS,
            dir.path().to_string_lossy().to_string(),
        )
        .set(keys::OZONE_SCM_CONTAINER_SIZE, "4MB")
        .set(keys::OZONE_SCM_BLOCK_SIZE, "1MB")
        .set(keys::OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT, "1")
        .set(keys::OZONE_SCM_DATANODE_PIPELINE_LIMIT, "1")
        .set(keys::HDDS_SCM_BLOCK_DELETION_PER_INTERVAL_MAX, "1500");
        let cfg = ScmConfig::from_ozone(&cfg).expect("cfg");
        let mut s = ScmState::open(cfg.clone(), t0).expect("open");
        for n in 1..=4 {
            s.register(update(n), t0).expect("register");
        }
        let c1 = one(&mut s, MB, t0);
        s.close_container_by_admin(c1).expect("close");
        let c2 = one(&mut s, MB, t0);
        assert_ne!(c1, c2);
        let both = [(c1, ReplicaState::Closed, 10), (c2, ReplicaState::Open, 10)];
        s.heartbeat(report(1, &both), t0).expect("hb");
        s.heartbeat(report(2, &both), t0).expect("hb");
        s.heartbeat(report(3, &both[..1]), t0).expect("hb");
        let added = s
            .add_deleted_blocks(vec![(c1, (1..=2500).collect()), (c2, vec![5])])
            .expect("log");
        assert_eq!(added, 4);
        let sent = |s: &mut ScmState, n: u16, u: NodeUpdate| -> Vec<u64> {
            let mut ids = Vec::new();
            for cmd in s.heartbeat(u, t0).expect("hb").commands {
                if let Command::DeleteBlocks(txs) = cmd {
                    assert!(txs.iter().all(|t| t.container_id == c1 || n != 3));
                    ids.extend(txs.iter().map(|t| t.tx_id));
                }
            }
            ids
        };
        // At most 1,500 blocks a heartbeat (a transaction is never split): 1000 + 1000.
        let first = sent(&mut s, 1, report(1, &both));
        assert_eq!(first.len(), 2);
        let second = sent(&mut s, 1, incremental(1, &[], &[]));
        assert_eq!(second.len(), 2);
        assert!(sent(&mut s, 1, incremental(1, &[], &[])).is_empty());
        // dn-3 holds c1 only; dn-4 holds nothing.
        let third = sent(&mut s, 3, incremental(3, &[], &[]));
        assert_eq!(third.len(), 2);
        assert!(sent(&mut s, 4, incremental(4, &[], &[])).is_empty());
        // A new replica of c1 on dn-4 (a copy) has c1's transactions to carry out.
        let dn4 = sent(
            &mut s,
            4,
            incremental(4, &[(c1, ReplicaState::Closed, 10)], &[]),
        );
        assert_eq!(dn4.len(), 2);
        // Acknowledgements from every holder retire the transactions; a holder that goes away
        // without acknowledging no longer holds them up.
        let all: Vec<u64> = first.iter().chain(&second).copied().collect();
        for n in 1..=3 {
            let mut u = incremental(n, &[], &[]);
            u.deleted_block_txs = all.clone();
            s.heartbeat(u, t0).expect("hb");
        }
        assert_eq!(
            s.delete_log_len(),
            3,
            "dn-4 holds c1 and has not acknowledged"
        );
        s.heartbeat(incremental(4, &[], &[c1]), t0).expect("hb");
        assert_eq!(s.delete_log_len(), 0);
        assert_eq!(s.delete_bookkeeping(), (0, 0));
        s.heartbeat(incremental(4, &[(c1, ReplicaState::Closed, 10)], &[]), t0)
            .expect("hb");
        for n in 1..=4 {
            let mut u = incremental(n, &[], &[]);
            u.deleted_block_txs = all.clone();
            s.heartbeat(u, t0).expect("hb");
        }
        assert_eq!(s.delete_log_len(), 0);
        assert_eq!(s.delete_bookkeeping(), (0, 0));

        // A DELETING container's transactions go with it once no replica is left.
        assert_eq!(s.add_deleted_blocks(vec![(c1, vec![7])]).expect("log"), 1);
        s.apply_replication(vec![crate::planner::RmAction::MarkDeleting(c1)])
            .expect("apply");
        s.tick(t0).expect("tick");
        assert_eq!(state_of(&s, c1), ContainerState::Deleting);
        assert_eq!(s.delete_log_len(), 1);
        for n in 1..=4 {
            s.heartbeat(incremental(n, &[], &[c1]), t0).expect("hb");
        }
        s.tick(t0).expect("tick");
        assert_eq!(state_of(&s, c1), ContainerState::Deleted);
        assert_eq!(s.delete_log_len(), 0);
        assert_eq!(s.delete_bookkeeping(), (0, 0));
        assert_eq!(s.add_deleted_blocks(vec![(c1, vec![8])]).expect("log"), 0);
        // c2's pending transaction survives a restart, indexed again.
        assert_eq!(s.add_deleted_blocks(vec![(c2, vec![9])]).expect("log"), 1);
        s.close().expect("close");
        let mut s = ScmState::open(cfg, t0).expect("reopen");
        assert_eq!(s.delete_log_len(), 1);
        s.register(report(1, &both[1..]), t0).expect("register");
        let again = sent(&mut s, 1, incremental(1, &[], &[]));
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn deleted_block_records_of_a_container_without_replicas_drain() {
        let dir = tempfile::tempdir().expect("temp dir");
        let t0 = Instant::now();
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set(
            keys::OZONE_SCM_DB_DIRS,
            dir.path().to_string_lossy().to_string(),
        )
        .set(keys::OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT, "2")
        .set(
            keys::HDDS_SCM_BLOCK_DELETION_MISSING_CONTAINER_TIMEOUT,
            "60s",
        );
        let cfg = ScmConfig::from_ozone(&cfg).expect("cfg");
        let mut s = ScmState::open(cfg.clone(), t0).expect("open");
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // Every datanode heartbeats (c2's replica on dn-1 while `held`), then a tick.
        let beat = |s: &mut ScmState, secs: u64, c2: Option<u64>| {
            for n in 1..=3 {
                let u = match c2 {
                    Some(c) if n == 1 => report(1, &[(c, ReplicaState::Closed, 10)]),
                    _ => update(n),
                };
                s.heartbeat(u, at(secs)).expect("hb");
            }
            s.tick(at(secs)).expect("tick");
        };
        for n in 1..=3 {
            s.register(update(n), t0).expect("register");
        }
        s.tick(t0).expect("tick");
        assert!(!s.safe_mode(t0).in_safe_mode);
        // c1: blocks allocated, never written (no datanode ever reports it); c2: one replica.
        let c1 = one(&mut s, MB, t0);
        s.close_container_by_admin(c1).expect("close");
        let c2 = one(&mut s, MB, t0);
        assert_ne!(c1, c2);
        s.close_container_by_admin(c2).expect("close");
        beat(&mut s, 0, Some(c2));
        assert_eq!(
            s.add_deleted_blocks(vec![(c1, vec![1, 2]), (c2, vec![3])])
                .expect("log"),
            2
        );
        beat(&mut s, 1, Some(c2));
        beat(&mut s, 59, Some(c2));
        assert_eq!(s.delete_log_len(), 2, "not before the timeout");
        beat(&mut s, 62, Some(c2));
        assert_eq!(
            s.delete_log_len(),
            1,
            "c1's records drained; c2 has a holder"
        );
        assert!(!s.has_pending_deletes(c1));
        // c2 loses its last replica: its record drains a timeout later, for good.
        beat(&mut s, 100, Some(c2));
        beat(&mut s, 101, None);
        beat(&mut s, 150, None);
        assert_eq!(s.delete_log_len(), 1);
        beat(&mut s, 162, None);
        assert_eq!(s.delete_log_len(), 0);
        assert_eq!(s.delete_bookkeeping(), (0, 0));
        s.close().expect("close");
        let s = ScmState::open(cfg, t0).expect("reopen");
        assert_eq!(s.delete_log_len(), 0);
    }
}
