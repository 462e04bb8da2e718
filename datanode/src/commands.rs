//! SCM's commands that touch the disk, carried out off the heartbeat loop: a heartbeat only
//! queues them. Two workers (tokio tasks), each fed by a bounded queue: one closes containers
//! (quick, and never stuck behind a backlog of deletions), the other deletes blocks and
//! containers. A command already queued is not queued twice; one that finds its queue full
//! is dropped (SCM sends it again: deleted-block transactions until acknowledged, close and
//! delete container commands on its next round). Deleted-block transactions are acknowledged
//! in a later heartbeat, once done.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ozone_proto::scm::DeletedBlocksTransaction;
use tokio::sync::{mpsc, watch};

use crate::error::DatanodeError;
use crate::node::Datanode;

/// Commands a worker queue holds at most.
pub(crate) const QUEUE_DEPTH: usize = 4096;

/// One queued command.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    Close(u64),
    DeleteBlocks(DeletedBlocksTransaction),
    DeleteContainer { id: u64, force: bool },
}

/// What makes two commands the same, for dedup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Close(u64),
    DeleteTx(u64),
    DeleteContainer(u64),
}

impl Work {
    fn key(&self) -> Key {
        match self {
            Work::Close(id) => Key::Close(*id),
            Work::DeleteBlocks(tx) => Key::DeleteTx(tx.tx_id),
            Work::DeleteContainer { id, .. } => Key::DeleteContainer(*id),
        }
    }
}

/// The sending side of both worker queues, held by the shared node state.
pub(crate) struct CommandQueues {
    close: mpsc::Sender<Work>,
    delete: mpsc::Sender<Work>,
    queued: Mutex<HashSet<Key>>,
}

/// The receiving sides, handed to [`run`].
pub(crate) struct CommandReceivers {
    close: mpsc::Receiver<Work>,
    delete: mpsc::Receiver<Work>,
}

pub(crate) fn queues(depth: usize) -> (CommandQueues, CommandReceivers) {
    let (close, close_rx) = mpsc::channel(depth);
    let (delete, delete_rx) = mpsc::channel(depth);
    (
        CommandQueues {
            close,
            delete,
            queued: Mutex::new(HashSet::new()),
        },
        CommandReceivers {
            close: close_rx,
            delete: delete_rx,
        },
    )
}

impl CommandQueues {
    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<Key>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `work` unless the same command is queued or running; returns whether queued.
    pub(crate) fn submit(&self, work: Work) -> bool {
        let key = work.key();
        if !self.queued().insert(key) {
            tracing::debug!(?key, "command already queued");
            return false;
        }
        let queue = match work {
            Work::Close(_) => &self.close,
            Work::DeleteBlocks(_) | Work::DeleteContainer { .. } => &self.delete,
        };
        match queue.try_send(work) {
            Ok(()) => true,
            Err(e) => {
                self.queued().remove(&key);
                tracing::warn!(?key, error = %e, "command queue full or stopped; SCM will send the command again");
                false
            }
        }
    }

    fn done(&self, key: Key) {
        self.queued().remove(&key);
    }
}

/// Starts both workers; they run until `shutdown` turns true.
pub(crate) fn run(node: Arc<Datanode>, rx: CommandReceivers, shutdown: watch::Receiver<bool>) {
    tokio::spawn(worker(node.clone(), rx.close, shutdown.clone()));
    tokio::spawn(worker(node, rx.delete, shutdown));
}

async fn worker(
    node: Arc<Datanode>,
    mut rx: mpsc::Receiver<Work>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let work = tokio::select! {
            w = rx.recv() => match w {
                Some(w) => w,
                None => break,
            },
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        let key = work.key();
        execute(&node, work).await;
        node.commands.done(key);
    }
}

async fn execute(node: &Arc<Datanode>, work: Work) {
    match work {
        Work::Close(id) => match node.containers.close_container(id).await {
            Ok(()) => tracing::info!(container = id, "closed container on SCM's command"),
            Err(DatanodeError::ContainerNotFound(_)) => {
                tracing::warn!(
                    container = id,
                    "SCM asked to close a container this datanode does not have"
                )
            }
            Err(e) => tracing::error!(container = id, error = %e, "cannot close container"),
        },
        Work::DeleteBlocks(tx) => {
            let (id, count) = (tx.container_id, tx.local_ids.len());
            let result = match node.containers.get(id) {
                Ok(c) => {
                    let ids = tx.local_ids;
                    tokio::task::spawn_blocking(move || c.delete_blocks(&ids))
                        .await
                        .map_err(DatanodeError::from)
                        .and_then(|r| r)
                }
                // Nothing of it here (any more): nothing to delete.
                Err(DatanodeError::ContainerNotFound(_)) => Ok(0),
                Err(e) => Err(e),
            };
            match result {
                Ok(freed) => {
                    tracing::debug!(
                        container = id,
                        blocks = count,
                        freed,
                        tx = tx.tx_id,
                        "deleted blocks"
                    );
                    node.ack_delete(tx.tx_id);
                }
                Err(e) => {
                    tracing::warn!(container = id, tx = tx.tx_id, error = %e, "cannot delete blocks; SCM will ask again")
                }
            }
        }
        Work::DeleteContainer { id, force } => {
            match node.containers.delete_container(id, force).await {
                Ok(()) => {
                    tracing::info!(container = id, force, "deleted container on SCM's command")
                }
                Err(DatanodeError::ContainerNotFound(_)) => {}
                Err(e) => tracing::warn!(container = id, error = %e, "cannot delete container"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_are_deduplicated_and_bounded() {
        let (q, mut rx) = queues(2);
        assert!(q.submit(Work::Close(1)));
        assert!(!q.submit(Work::Close(1)), "already queued");
        assert!(q.submit(Work::DeleteContainer {
            id: 1,
            force: false
        }));
        let tx = |tx_id| {
            Work::DeleteBlocks(DeletedBlocksTransaction {
                tx_id,
                container_id: 1,
                local_ids: vec![1],
            })
        };
        assert!(q.submit(tx(7)));
        assert!(!q.submit(tx(8)), "the delete queue is full");
        let taken = rx.delete.recv().await.expect("queued");
        q.done(taken.key());
        assert!(
            q.submit(Work::DeleteContainer {
                id: 1,
                force: false
            }),
            "done, so queued anew"
        );
        assert!(!q.submit(tx(8)), "full again");
        assert!(matches!(rx.close.recv().await, Some(Work::Close(1))));
    }
}
