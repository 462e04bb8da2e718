//! The datanode's shared state: what the gRPC handlers, the heartbeat loop, the replication
//! supervisor, the scrubber and the status page all hold (an `Arc<Datanode>`), and the link to
//! SCM as the status page shows it. Depends on none of those tasks, so each of them can import
//! it; `server` builds it and starts them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ozone_common::Metrics;
use ozone_common::token::{KeyRing, Modes, SecretKey};
use ozone_proto::hdds::{BlockId, DatanodeDetails};

use crate::commands::CommandQueues;
use crate::config::DatanodeConfig;
use crate::container::{ContainerSet, ContainerState};
use crate::error::DatanodeError;
use crate::identity::DirLock;

/// One ReplicateContainer command, queued for the replication supervisor.
#[derive(Debug, Clone)]
pub(crate) struct ReplicateTask {
    pub container_id: u64,
    pub sources: Vec<DatanodeDetails>,
    /// The container token SCM signed into the command (security on), for the source.
    pub token: Vec<u8>,
}

/// The queues to the background tasks.
pub(crate) struct Queues {
    pub replication_tx: tokio::sync::mpsc::UnboundedSender<ReplicateTask>,
    pub scrub_tx: tokio::sync::mpsc::UnboundedSender<u64>,
    pub commands: CommandQueues,
}

/// The datanode's link to one SCM, as shown on the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScmConnection {
    /// Not registered yet.
    Connecting,
    /// Registered; the SCM answers heartbeats, so it leads (or led in `term`: a deposed leader
    /// may answer for a moment, and its commands are ignored then).
    Leader { cluster_id: String, term: u64 },
    /// The SCM refuses as a follower and names the leader's client address; the link registers
    /// again (full report) once it answers.
    Follower { leader: String },
    /// The last attempt failed (SCM down, electing, in safe mode); retried every heartbeat
    /// interval.
    Unreachable { error: String },
}

impl std::fmt::Display for ScmConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScmConnection::Connecting => f.write_str("connecting"),
            ScmConnection::Leader { cluster_id, term } => {
                write!(f, "leader, registered (cluster {cluster_id}), term {term}")
            }
            ScmConnection::Follower { leader } => {
                write!(f, "follower, refusing (leader: {leader})")
            }
            ScmConnection::Unreachable { error } => write!(f, "unreachable: {error}"),
        }
    }
}

/// Most deleted-block acknowledgements kept for one SCM that does not answer; the oldest go
/// first (SCM sends a transaction again until it is acknowledged, and doing one twice is
/// harmless).
const MAX_PENDING_ACKS: usize = 100_000;

/// State shared by the RPC handlers, the heartbeat loop and the status page.
pub(crate) struct Datanode {
    pub(crate) config: DatanodeConfig,
    pub(crate) details: DatanodeDetails,
    pub(crate) containers: ContainerSet,
    pub(crate) metrics: Metrics,
    /// Channels to other datanodes (container copies).
    pub(crate) clients: datanode_client::DatanodeClients,
    /// One entry per SCM of `config.scm_addresses`, in that order.
    scm: Mutex<Vec<ScmConnection>>,
    /// The highest raft term any SCM answered with: commands come only from a reply of that
    /// term (see `heartbeat`).
    scm_term: AtomicU64,
    lock: Mutex<Option<DirLock>>,
    replication_tx: tokio::sync::mpsc::UnboundedSender<ReplicateTask>,
    scrub_tx: tokio::sync::mpsc::UnboundedSender<u64>,
    /// Queues to the workers that carry out SCM's close and delete commands.
    pub(crate) commands: CommandQueues,
    /// Deleted-block transactions done and not yet acknowledged, per SCM link (each SCM gets
    /// every acknowledgement; only the leader acts on them).
    delete_acks: Mutex<Vec<Vec<u64>>>,
    /// SCM's secret keys (security on), replaced by every heartbeat answer of the leader.
    secret_keys: std::sync::RwLock<KeyRing>,
}

impl Datanode {
    /// The state of a datanode that holds the lock on its directory and has not reached SCM yet.
    pub(crate) fn new(
        config: DatanodeConfig,
        details: DatanodeDetails,
        containers: ContainerSet,
        metrics: Metrics,
        lock: DirLock,
        queues: Queues,
    ) -> Datanode {
        let Queues {
            replication_tx,
            scrub_tx,
            commands,
        } = queues;
        let links = config.scm_addresses.len().max(1);
        containers.set_report_links(links);
        Datanode {
            config,
            details,
            containers,
            metrics,
            clients: datanode_client::DatanodeClients::new(),
            scm: Mutex::new(vec![ScmConnection::Connecting; links]),
            scm_term: AtomicU64::new(0),
            lock: Mutex::new(Some(lock)),
            replication_tx,
            scrub_tx,
            commands,
            delete_acks: Mutex::new(vec![Vec::new(); links]),
            secret_keys: std::sync::RwLock::new(KeyRing::default()),
        }
    }

    /// Replaces the secret keys tokens are verified with (an answer without keys, as from an
    /// SCM with security off, leaves them).
    pub(crate) fn set_secret_keys(&self, keys: Vec<ozone_proto::hdds::SecretKey>) {
        if keys.is_empty() {
            return;
        }
        let ring = KeyRing::new(keys.into_iter().map(|k| SecretKey {
            id: k.id,
            created_ms: k.created_ms,
            expires_ms: k.expires_ms,
            key: k.key,
        }));
        *self.secret_keys.write().unwrap_or_else(|p| p.into_inner()) = ring;
    }

    /// With block tokens on: `token` must let its holder use `block` with `modes`.
    pub(crate) fn check_block_token(
        &self,
        op: &'static str,
        token: &[u8],
        block: &BlockId,
        modes: Modes,
    ) -> Result<(), DatanodeError> {
        if !self.config.tokens.block_tokens {
            return Ok(());
        }
        let ring = self.secret_keys.read().unwrap_or_else(|p| p.into_inner());
        ring.verify_block(
            token,
            block.container_id,
            block.local_id,
            modes,
            ozone_common::now_ms(),
        )
        .map(drop)
        .map_err(|source| DatanodeError::Token { op, source })
    }

    /// With container tokens on: `token` must allow copying container `id`.
    pub(crate) fn check_container_token(
        &self,
        op: &'static str,
        token: &[u8],
        id: u64,
    ) -> Result<(), DatanodeError> {
        if !self.config.tokens.container_tokens {
            return Ok(());
        }
        let ring = self.secret_keys.read().unwrap_or_else(|p| p.into_inner());
        ring.verify_container(token, id, ozone_common::now_ms())
            .map(drop)
            .map_err(|source| DatanodeError::Token { op, source })
    }

    /// Releases the lock on the data directory (the last step of stopping).
    pub(crate) fn release_dir(&self) {
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// Queues a container copy for the replication supervisor.
    pub(crate) fn request_replication(
        &self,
        container_id: u64,
        sources: Vec<DatanodeDetails>,
        token: Vec<u8>,
    ) {
        if self
            .replication_tx
            .send(ReplicateTask {
                container_id,
                sources,
                token,
            })
            .is_err()
        {
            tracing::debug!(
                container = container_id,
                "replication supervisor stopped; copy dropped"
            );
        }
    }

    /// Asks the scrubber to scan a container now (a read found it corrupt).
    pub(crate) fn request_scrub(&self, container_id: u64) {
        if self.config.scrub_enabled && self.scrub_tx.send(container_id).is_err() {
            tracing::debug!(container = container_id, "scrubber stopped");
        }
    }

    fn acks(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u64>>> {
        self.delete_acks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a deleted-block transaction carried out, for every SCM.
    pub(crate) fn ack_delete(&self, tx: u64) {
        for acks in self.acks().iter_mut() {
            if acks.len() >= MAX_PENDING_ACKS {
                acks.drain(..=acks.len() - MAX_PENDING_ACKS);
            }
            acks.push(tx);
        }
    }

    /// Takes the acknowledgements the SCM of `link` has not got yet.
    pub(crate) fn take_delete_acks(&self, link: usize) -> Vec<u64> {
        self.acks()
            .get_mut(link)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Gives back acknowledgements whose heartbeat did not reach the SCM of `link`.
    pub(crate) fn restore_delete_acks(&self, link: usize, mut returned: Vec<u64>) {
        if let Some(acks) = self.acks().get_mut(link) {
            returned.append(acks);
            let excess = returned.len().saturating_sub(MAX_PENDING_ACKS);
            returned.drain(..excess);
            *acks = returned;
        }
    }

    /// Drops what waits for the SCM of `link` (it refused as a follower).
    pub(crate) fn drop_delete_acks(&self, link: usize) {
        self.take_delete_acks(link);
    }

    /// Notes the term of an SCM's answer; true if it is the highest seen so far (or equal),
    /// i.e. the answer comes from the current leader as far as this datanode knows.
    pub(crate) fn observe_scm_term(&self, term: u64) -> bool {
        self.scm_term.fetch_max(term, Ordering::SeqCst) <= term
    }

    /// The highest SCM term seen.
    pub(crate) fn scm_term(&self) -> u64 {
        self.scm_term.load(Ordering::SeqCst)
    }

    /// Sets the state of the link to the SCM of `link`; returns the previous one.
    pub(crate) fn set_scm(&self, link: usize, state: ScmConnection) -> ScmConnection {
        let mut links = self.scm.lock().unwrap_or_else(|p| p.into_inner());
        match links.get_mut(link) {
            Some(s) => std::mem::replace(s, state),
            None => ScmConnection::Connecting,
        }
    }

    /// Every SCM link: its address and state.
    pub(crate) fn scm_links(&self) -> Vec<(String, ScmConnection)> {
        let links = self.scm.lock().unwrap_or_else(|p| p.into_inner());
        self.config
            .scm_addresses
            .iter()
            .cloned()
            .zip(links.iter().cloned())
            .collect()
    }

    /// The link to the leader with the highest term if one answers, else the first link.
    pub(crate) fn scm(&self) -> ScmConnection {
        let links = self.scm.lock().unwrap_or_else(|p| p.into_inner());
        links
            .iter()
            .filter(|s| matches!(s, ScmConnection::Leader { .. }))
            .max_by_key(|s| match s {
                ScmConnection::Leader { term, .. } => *term,
                _ => 0,
            })
            .or(links.first())
            .cloned()
            .unwrap_or(ScmConnection::Connecting)
    }

    pub(crate) fn status_rows(&self) -> Vec<(String, String)> {
        let reports = self.containers.reports();
        let count =
            |state: ContainerState| reports.iter().filter(|r| r.state == state.as_str()).count();
        let mut rows: Vec<(String, String)> = vec![
            ("uuid".into(), self.details.uuid.clone()),
            ("gRPC endpoint".into(), self.details.endpoint()),
            (
                "data directory".into(),
                self.config.dir.display().to_string(),
            ),
            (
                "containers".into(),
                format!(
                    "{} ({} open, {} closed, {} unhealthy)",
                    reports.len(),
                    count(ContainerState::Open),
                    count(ContainerState::Closed),
                    count(ContainerState::Unhealthy)
                ),
            ),
            (
                "blocks".into(),
                reports
                    .iter()
                    .map(|r| r.block_count)
                    .sum::<u64>()
                    .to_string(),
            ),
            (
                "used bytes".into(),
                reports
                    .iter()
                    .map(|r| r.used_bytes)
                    .sum::<u64>()
                    .to_string(),
            ),
            ("SCM term".into(), self.scm_term().to_string()),
        ];
        rows.extend(
            self.scm_links()
                .into_iter()
                .map(|(address, state)| (format!("SCM {address}"), state.to_string())),
        );
        rows
    }
}
