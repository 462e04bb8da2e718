//! The datanode's shared state: what the gRPC handlers, the heartbeat loop, the replication
//! supervisor, the scrubber and the status page all hold (an `Arc<Datanode>`), and the link to
//! SCM as the status page shows it. Depends on none of those tasks, so each of them can import
//! it; `server` builds it and starts them.

use std::sync::Mutex;

use ozone_common::Metrics;
use ozone_proto::hdds::DatanodeDetails;

use crate::commands::CommandQueues;
use crate::config::DatanodeConfig;
use crate::container::{ContainerSet, ContainerState};
use crate::identity::DirLock;

/// One ReplicateContainer command, queued for the replication supervisor.
#[derive(Debug, Clone)]
pub(crate) struct ReplicateTask {
    pub container_id: u64,
    pub sources: Vec<DatanodeDetails>,
}

/// The queues to the background tasks.
pub(crate) struct Queues {
    pub replication_tx: tokio::sync::mpsc::UnboundedSender<ReplicateTask>,
    pub scrub_tx: tokio::sync::mpsc::UnboundedSender<u64>,
    pub commands: CommandQueues,
}

/// The datanode's link to SCM, as shown on the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScmConnection {
    /// Not registered yet.
    Connecting,
    Registered {
        cluster_id: String,
    },
    /// The last attempt failed (SCM down or refusing); retried every heartbeat interval.
    Unreachable {
        error: String,
    },
}

impl std::fmt::Display for ScmConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScmConnection::Connecting => f.write_str("connecting"),
            ScmConnection::Registered { cluster_id } => {
                write!(f, "registered (cluster {cluster_id})")
            }
            ScmConnection::Unreachable { error } => write!(f, "unreachable: {error}"),
        }
    }
}

/// State shared by the RPC handlers, the heartbeat loop and the status page.
pub(crate) struct Datanode {
    pub(crate) config: DatanodeConfig,
    pub(crate) details: DatanodeDetails,
    pub(crate) containers: ContainerSet,
    pub(crate) metrics: Metrics,
    /// Channels to other datanodes (container copies).
    pub(crate) clients: datanode_client::DatanodeClients,
    scm: Mutex<ScmConnection>,
    lock: Mutex<Option<DirLock>>,
    replication_tx: tokio::sync::mpsc::UnboundedSender<ReplicateTask>,
    scrub_tx: tokio::sync::mpsc::UnboundedSender<u64>,
    /// Queues to the workers that carry out SCM's close and delete commands.
    pub(crate) commands: CommandQueues,
    /// Deleted-block transactions done and not yet acknowledged to SCM.
    delete_acks: Mutex<Vec<u64>>,
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
        Datanode {
            config,
            details,
            containers,
            metrics,
            clients: datanode_client::DatanodeClients::new(),
            scm: Mutex::new(ScmConnection::Connecting),
            lock: Mutex::new(Some(lock)),
            replication_tx,
            scrub_tx,
            commands,
            delete_acks: Mutex::new(Vec::new()),
        }
    }

    /// Releases the lock on the data directory (the last step of stopping).
    pub(crate) fn release_dir(&self) {
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// Queues a container copy for the replication supervisor.
    pub(crate) fn request_replication(&self, container_id: u64, sources: Vec<DatanodeDetails>) {
        if self
            .replication_tx
            .send(ReplicateTask {
                container_id,
                sources,
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

    pub(crate) fn ack_delete(&self, tx: u64) {
        self.delete_acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
    }

    pub(crate) fn take_delete_acks(&self) -> Vec<u64> {
        std::mem::take(&mut *self.delete_acks.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Gives back acknowledgements whose heartbeat did not reach SCM.
    pub(crate) fn restore_delete_acks(&self, acks: Vec<u64>) {
        self.delete_acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(acks);
    }

    pub(crate) fn set_scm(&self, state: ScmConnection) {
        *self.scm.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub(crate) fn scm(&self) -> ScmConnection {
        self.scm.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn status_rows(&self) -> Vec<(String, String)> {
        let reports = self.containers.reports();
        let count =
            |state: ContainerState| reports.iter().filter(|r| r.state == state.as_str()).count();
        vec![
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
            ("SCM".into(), self.config.scm_address.clone()),
            ("SCM connection".into(), self.scm().to_string()),
        ]
    }
}
