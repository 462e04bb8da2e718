//! Group commit. openraft 0.9 appends one client write at a time and waits for its fsync
//! before it takes the next, so one command per entry would mean one fsync per request. The
//! proposer instead gathers the commands that arrive while earlier entries are in flight into
//! one [`CommandBatch`] entry (at most [`Role::MAX_BATCH`] commands, at most [`IN_FLIGHT`]
//! entries proposed and not yet applied): the busier the role, the more commands share an
//! fsync, on the leader's log, on each follower's log and in the state machine's apply.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{CommandBatch, NodeId, Raft, Role};

/// Entries proposed and not yet applied, at most.
pub const IN_FLIGHT: usize = 4;

/// Why a proposed command did not apply.
#[derive(Clone, Debug)]
pub enum ProposeError {
    /// This node does not lead; the leader's raft id when known.
    NotLeader(Option<NodeId>),
    /// Not committed (no quorum, shutting down, timed out).
    Unavailable(String),
}

type Reply<R> = oneshot::Sender<Result<<R as Role>::Response, ProposeError>>;
type Queue<R> = mpsc::UnboundedSender<(<R as Role>::Command, Reply<R>)>;

/// Handle to the proposer task; cheap to clone.
pub struct Proposer<R: Role> {
    tx: Queue<R>,
}

impl<R: Role> Clone for Proposer<R> {
    fn clone(&self) -> Self {
        Proposer {
            tx: self.tx.clone(),
        }
    }
}

impl<R: Role> Proposer<R> {
    /// Starts the proposer task for `raft`; an entry not applied within `timeout` fails its
    /// commands with [`ProposeError::Unavailable`] (it may still commit later).
    pub fn start(raft: Raft<R>, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx, timeout));
        Proposer { tx }
    }

    /// Proposes `cmd`; resolves once its entry is applied here (or failed).
    pub async fn propose(&self, cmd: R::Command) -> Result<R::Response, ProposeError> {
        let stopping = || ProposeError::Unavailable(format!("the {} is shutting down", R::NAME));
        let (reply, rx) = oneshot::channel();
        self.tx.send((cmd, reply)).map_err(|_| stopping())?;
        rx.await.map_err(|_| stopping())?
    }
}

async fn run<R: Role>(
    raft: Raft<R>,
    mut rx: mpsc::UnboundedReceiver<(R::Command, Reply<R>)>,
    timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut cmds = vec![first.0];
        let mut replies = vec![first.1];
        while cmds.len() < R::MAX_BATCH {
            match rx.try_recv() {
                Ok((c, r)) => {
                    cmds.push(c);
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let n = cmds.len();
            let result = tokio::time::timeout(timeout, raft.client_write(CommandBatch(cmds))).await;
            drop(slot);
            let outcome = match result {
                Err(_) => Err(ProposeError::Unavailable(format!(
                    "not committed within {timeout:?} (no quorum of {}s?)",
                    R::NAME
                ))),
                Ok(Ok(w)) if w.data.len() == n => {
                    tracing::trace!(index = w.log_id.index, commands = n, "entry applied");
                    Ok(w.data)
                }
                Ok(Ok(w)) => Err(ProposeError::Unavailable(format!(
                    "entry {} answered {} results for {n} commands",
                    w.log_id.index,
                    w.data.len()
                ))),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    Err(ProposeError::NotLeader(f.leader_id))
                }
                Ok(Err(e)) => Err(ProposeError::Unavailable(e.to_string())),
            };
            match outcome {
                Ok(resps) => {
                    for (reply, resp) in replies.into_iter().zip(resps) {
                        let _ = reply.send(Ok(resp));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}
