//! SCM's state and rules: datanodes and their health, pipelines, containers, block allocation
//! and safe mode. Plain synchronous code taking the current time as an argument, so it can be
//! tested without clocks or networks; the state actor (`manager`) owns the one instance.
//!
//! Durability: every structural change (new datanode or address, new or closed pipeline, new or
//! closed container, id reservations) is committed before the request that caused it is
//! answered. A container's allocated-bytes counter alone is written at the next commit or
//! periodic flush, so after a crash it may lag; the replicas' reported used bytes raise it again.
//!
//! This file holds the state itself, loading it, node health, the periodic tick, safe mode and
//! persisting; the rest of `impl ScmState` is split by concern into child modules: `nodes`
//! (register, heartbeats, reports), `pipelines`, `containers` (containers and block
//! allocation), `deleted_blocks` (the deleted-block log), `decommission`, `replication` (the
//! ReplicationManager's snapshot and decisions) and `queries` (read-only views).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use crate::config::ScmConfig;
use crate::error::ScmError;
use crate::factor::Factor;
use crate::model::{
    Command, ContainerRecord, ContainerState, DeleteTx, NodeHealth, NodeRecord, NodeReport,
    OpState, PipelineRecord, PipelineState, ReplicaReport, SafeModeView,
};
use crate::store::{Batch, Store};

mod containers;
mod decommission;
mod deleted_blocks;
mod nodes;
mod pipelines;
mod queries;
mod replication;

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
}

#[cfg(test)]
mod tests {
    use ozone_common::config::keys;
    use std::time::Duration;

    use super::*;
    use crate::model::{AllocateRequest, DatanodeDetails, NodeUpdate, ReplicaState};

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
