//! openraft's state machine over [`crate::StateMachine`]: applies committed batches (one fsync
//! per batch), and makes and installs snapshots.
//!
//! A snapshot is the namespace itself, exported from one redb read transaction (as Ozone's OM
//! snapshot is its RocksDB): [`RaftStateMachine::get_current_snapshot`] exports the current
//! state, so no snapshot file can go stale; a follower installs it by replacing its tables in
//! one transaction.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};

use super::{Entry, NodeId, OmNode, TypeConfig, storage_error};
use crate::command::OmResponse;
use crate::error::OmError;
use crate::state_machine::StateMachine;
use crate::store::RaftApplied;

type SResult<T> = Result<T, StorageError<NodeId>>;

/// The raft side of the OM state machine; cheap to clone.
#[derive(Clone)]
pub struct OmStateMachine {
    sm: Arc<StateMachine>,
}

impl OmStateMachine {
    pub fn new(sm: Arc<StateMachine>) -> Self {
        OmStateMachine { sm }
    }

    async fn run<T: Send + 'static>(
        &self,
        verb: ErrorVerb,
        f: impl FnOnce(&StateMachine) -> Result<T, OmError> + Send + 'static,
    ) -> SResult<T> {
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || f(&sm))
            .await
            .map_err(|e| storage_error(verb, ErrorSubject::StateMachine, e))?
            .map_err(|e| storage_error(verb, ErrorSubject::StateMachine, e))
    }

    async fn export(&self) -> SResult<Snapshot<TypeConfig>> {
        let (applied, data) = self.run(ErrorVerb::Read, |sm| sm.export()).await?;
        let snapshot_id = match applied.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.len()),
            None => format!("0-0-{}", data.len()),
        };
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership,
                snapshot_id,
            },
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for OmStateMachine {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let s = self.export().await?;
        tracing::info!(
            last_log_id = ?s.meta.last_log_id,
            bytes = s.snapshot.get_ref().len(),
            "OM snapshot built"
        );
        Ok(s)
    }
}

impl RaftStateMachine<TypeConfig> for OmStateMachine {
    type SnapshotBuilder = OmStateMachine;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, OmNode>)> {
        let a = self.run(ErrorVerb::Read, |sm| sm.raft_applied()).await?;
        Ok((a.last_applied, a.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<Vec<OmResponse>>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.run(ErrorVerb::Write, move |sm| sm.apply_entries(entries))
            .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, OmNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> SResult<()> {
        let applied = RaftApplied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let data = snapshot.into_inner();
        let bytes = data.len();
        self.run(ErrorVerb::Write, move |sm| sm.install(&applied, &data))
            .await?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes, "OM snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        let s = self.export().await?;
        Ok(s.meta.last_log_id.is_some().then_some(s))
    }
}
