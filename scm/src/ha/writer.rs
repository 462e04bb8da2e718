//! The leader's writer: proposes the batches the state actor stages, in the order it staged
//! them, one raft entry at a time; batches staged while an entry is in flight share the next
//! one. Order matters (a later batch may rewrite a row of an earlier one), which is why SCM
//! does not hand its batches to the group-commit proposer concurrently.
//!
//! Each batch gets a sequence number from the actor; [`Writer::applied`] says up to which
//! one everything has applied. After a failure (leadership lost, no quorum in time) nothing
//! more is proposed: the in-memory state the actor holds may be ahead of the replicated one,
//! so the actor drops it and loads it again from `scm.db` if it still leads.

use tokio::sync::{mpsc, watch};

use super::{ScmCommand, ScmRole};
use crate::error::ScmError;
use crate::store::Batch;

/// How far the writer got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Every batch up to this sequence number has applied.
    pub applied: u64,
    /// Why the writer stopped, once it has.
    pub failed: Option<String>,
}

/// Handle of one leadership term's writer task; dropping it ends the task.
pub struct Writer {
    tx: mpsc::UnboundedSender<(u64, Batch)>,
    progress: watch::Receiver<Progress>,
}

impl Writer {
    /// Starts the task; it proposes through `proposer` and calls `on_failure` once if a
    /// proposal fails.
    pub fn start(
        proposer: ozone_raft::proposer::Proposer<ScmRole>,
        on_failure: impl FnOnce(String) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (progress_tx, progress) = watch::channel(Progress::default());
        tokio::spawn(run(proposer, rx, progress_tx, on_failure));
        Writer { tx, progress }
    }

    /// Queues batch number `seq` (numbers increase by one per batch).
    pub fn stage(&self, seq: u64, batch: Batch) {
        // The task only ends with this handle, so the send cannot fail while we hold it.
        let _ = self.tx.send((seq, batch));
    }

    /// A watch on the progress, for waiting.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }
}

/// Resolves once every batch up to `seq` has applied; fails if the writer stopped first.
pub async fn applied(mut progress: watch::Receiver<Progress>, seq: u64) -> Result<(), ScmError> {
    let p = progress
        .wait_for(|p| p.applied >= seq || p.failed.is_some())
        .await
        .map_err(|_| ScmError::Unavailable("the SCM leader stepped down".into()))?;
    if p.applied >= seq {
        return Ok(());
    }
    Err(ScmError::Unavailable(format!(
        "a change of SCM's state did not commit: {}",
        p.failed.as_deref().unwrap_or("unknown")
    )))
}

async fn run(
    proposer: ozone_raft::proposer::Proposer<ScmRole>,
    mut rx: mpsc::UnboundedReceiver<(u64, Batch)>,
    progress: watch::Sender<Progress>,
    on_failure: impl FnOnce(String),
) {
    while let Some((mut last, first)) = rx.recv().await {
        let mut batches = vec![first];
        while let Ok((seq, b)) = rx.try_recv() {
            last = seq;
            batches.push(b);
        }
        match proposer.propose(ScmCommand::Write(batches)).await {
            Ok(_) => {
                progress.send_modify(|p| p.applied = last);
            }
            Err(e) => {
                let why = match e {
                    ozone_raft::proposer::ProposeError::NotLeader(_) => {
                        "this SCM lost the leadership".to_string()
                    }
                    ozone_raft::proposer::ProposeError::Unavailable(m) => m,
                };
                tracing::warn!(error = %why, "SCM state change did not commit; reloading the state");
                progress.send_modify(|p| p.failed = Some(why.clone()));
                on_failure(why);
                return;
            }
        }
    }
}
