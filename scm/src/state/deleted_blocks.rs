//! The deleted-block log: blocks OM hands over, their transactions sent to the datanodes
//! holding replicas, and the acknowledgements that retire them.
//!
//! The log is indexed by container, and each datanode has the set of its containers with
//! transactions it may not have carried out (`delete_work`): filled when a transaction is
//! added (for the container's holders) and when a datanode reports a new replica of a
//! container with transactions, pruned when dispatching finds nothing left for it. A heartbeat
//! so looks only at that datanode's outstanding work, never at the whole log. The transactions
//! of a container no datanode holds any more (or ever did) drain after
//! `hdds.scm.block.deletion.missing.container.timeout`, so the log does not keep them forever.
//!
//! A transaction every holder carried out leaves the log, but SCM keeps it for a while
//! ([`ScmState::delete_retention`]) with the datanodes that carried it out, in memory and in
//! the database with a done mark (so a restart keeps it too): a holder it learns of later (a
//! replica reported late, or copied from a source exported before it carried the transaction
//! out) gets it sent again, so no replica keeps blocks the others deleted.

use std::time::{Duration, Instant};

use super::{DoneTx, ScmState, TxProgress};
use crate::error::ScmError;
use crate::model::{Command, ContainerState, DeleteTx};
use crate::store::SEQ_DELETE_TX;

/// Most local ids in one deleted-block transaction.
const MAX_TX_BLOCKS: usize = 1000;

impl ScmState {
    /// Appends the blocks to the deleted-block log durably (one transaction per container and
    /// up to [`MAX_TX_BLOCKS`] blocks); returns the number of transactions added.
    pub fn add_deleted_blocks(&mut self, groups: Vec<(u64, Vec<u64>)>) -> Result<u32, ScmError> {
        let mut added = 0u32;
        for (container_id, local_ids) in groups {
            if local_ids.is_empty() {
                continue;
            }
            let Some(c) = self.containers.get(&container_id) else {
                tracing::warn!(
                    container = container_id,
                    blocks = local_ids.len(),
                    "deleted blocks of a container SCM does not know; dropped"
                );
                continue;
            };
            if c.record.state == ContainerState::Deleted {
                tracing::debug!(
                    container = container_id,
                    blocks = local_ids.len(),
                    "deleted blocks of a DELETED container; nothing to do"
                );
                continue;
            }
            for h in &c.holders {
                self.delete_work
                    .entry(h.clone())
                    .or_default()
                    .insert(container_id);
            }
            if c.holders.is_empty() {
                self.holderless.entry(container_id).or_insert(None);
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
                self.delete_by_container
                    .entry(container_id)
                    .or_default()
                    .insert(tx_id);
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

    pub(super) fn remove_delete_tx(&mut self, tx: u64) {
        let Some(t) = self.delete_log.remove(&tx) else {
            return;
        };
        self.dirty.delete_txs.remove(&tx);
        self.dirty.removed_delete_txs.insert(tx);
        self.delete_progress.remove(&tx);
        self.forget_active_tx(tx, t.container_id);
    }

    /// Takes `tx` out of the by-container index, and the container out of its holders' work
    /// once it has no transaction left.
    fn forget_active_tx(&mut self, tx: u64, cid: u64) {
        if let Some(txs) = self.delete_by_container.get_mut(&cid) {
            txs.remove(&tx);
            if txs.is_empty() {
                self.delete_by_container.remove(&cid);
                if let Some(c) = self.containers.get(&cid) {
                    for h in &c.holders {
                        if let Some(work) = self.delete_work.get_mut(h) {
                            work.remove(&cid);
                            if work.is_empty() {
                                self.delete_work.remove(h);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Transaction `tx` was carried out by every holder: it leaves the log and is kept for
    /// [`Self::delete_retention`] in case a holder SCM does not know of yet shows up.
    fn complete_delete_tx(&mut self, tx: u64, now: Instant) {
        let Some(t) = self.delete_log.remove(&tx) else {
            return;
        };
        let acked = self
            .delete_progress
            .remove(&tx)
            .map(|p| p.acked)
            .unwrap_or_default();
        let cid = t.container_id;
        self.forget_active_tx(tx, cid);
        // The row stays, rewritten with its done mark.
        self.dirty.delete_txs.remove(&tx);
        self.dirty.done_delete_txs.insert((cid, tx));
        self.dirty.structural = true;
        self.delete_done.entry(cid).or_default().push(DoneTx {
            tx: t,
            acked,
            done_ms: ozone_common::now_ms(),
            at: now,
        });
        self.delete_done_order.push_back((now, cid, tx));
    }

    /// How long a transaction done by every holder is kept to be sent to holders that show up
    /// later: the longer of `hdds.scm.block.deletion.missing.container.timeout` and twice
    /// `hdds.scm.replication.event.timeout` (a copy asked for lands within that).
    pub(super) fn delete_retention(&self) -> Duration {
        self.cfg
            .deletion_missing_container_timeout
            .max(self.cfg.replication_timeout * 2)
    }

    /// Forgets the done transactions older than [`Self::delete_retention`]; looks only at
    /// those.
    pub(super) fn expire_done_deletes(&mut self, now: Instant) {
        let keep = self.delete_retention();
        while let Some(&(at, cid, tx)) = self.delete_done_order.front() {
            if now.saturating_duration_since(at) < keep {
                break;
            }
            self.delete_done_order.pop_front();
            if let Some(done) = self.delete_done.get_mut(&cid) {
                // A transaction revived and done again since has a later entry of its own.
                let before = done.len();
                done.retain(|d| d.tx.tx_id != tx || d.at != at);
                if done.len() < before {
                    self.dirty.done_delete_txs.remove(&(cid, tx));
                    self.dirty.removed_delete_txs.insert(tx);
                    self.dirty.structural = true;
                }
                if done.is_empty() {
                    self.delete_done.remove(&cid);
                }
            }
        }
    }

    /// `uuid` newly holds `container_id`: the container's done transactions it did not carry
    /// out go back into the log, to be sent to it (and leave again once it has).
    fn revive_done_txs(&mut self, uuid: &str, container_id: u64) {
        let Some(done) = self.delete_done.get_mut(&container_id) else {
            return;
        };
        let (revive, keep): (Vec<DoneTx>, Vec<DoneTx>) =
            done.drain(..).partition(|d| !d.acked.contains(uuid));
        if keep.is_empty() {
            self.delete_done.remove(&container_id);
        } else {
            *done = keep;
        }
        if revive.is_empty() {
            return;
        }
        tracing::info!(
            datanode = %uuid,
            container = container_id,
            transactions = revive.len(),
            "a new holder of the container gets the block deletions the others carried out"
        );
        for d in revive {
            let tx = d.tx.tx_id;
            self.delete_log.insert(tx, d.tx);
            self.delete_by_container
                .entry(container_id)
                .or_default()
                .insert(tx);
            self.delete_progress.insert(
                tx,
                TxProgress {
                    acked: d.acked,
                    sent: Default::default(),
                },
            );
            self.dirty.removed_delete_txs.remove(&tx);
            self.dirty.done_delete_txs.remove(&(container_id, tx));
            self.dirty.delete_txs.insert(tx);
        }
        self.dirty.structural = true;
    }

    /// A datanode now holds a replica of `container_id`: it has that container's
    /// transactions to carry out.
    pub(super) fn note_new_holder(&mut self, uuid: &str, container_id: u64) {
        self.revive_done_txs(uuid, container_id);
        if self.delete_by_container.contains_key(&container_id) {
            self.delete_work
                .entry(uuid.to_string())
                .or_default()
                .insert(container_id);
        }
    }

    /// A datanode no longer holds `container_id`.
    pub(super) fn note_gone_holder(&mut self, uuid: &str, container_id: u64) {
        if let Some(work) = self.delete_work.get_mut(uuid) {
            work.remove(&container_id);
            if work.is_empty() {
                self.delete_work.remove(uuid);
            }
        }
    }

    /// Records a datanode's acknowledgements; a transaction every datanode now holding a
    /// replica of its container has carried out leaves the log (written at the next flush;
    /// a transaction sent again after a crash is harmless).
    pub(super) fn accept_delete_acks(&mut self, uuid: &str, acks: &[u64], now: Instant) {
        for tx in acks {
            let Some(t) = self.delete_log.get(tx) else {
                continue;
            };
            let container_id = t.container_id;
            let p = self.delete_progress.entry(*tx).or_default();
            p.sent.remove(uuid);
            p.acked.insert(uuid.to_string());
            let done = self
                .containers
                .get(&container_id)
                .is_none_or(|c| c.holders.iter().all(|h| p.acked.contains(h)));
            if done {
                tracing::debug!(
                    tx,
                    container = container_id,
                    "deleted-block transaction done"
                );
                self.complete_delete_tx(*tx, now);
            }
        }
    }

    /// A holder of `container_id` went away: its transactions that every remaining holder has
    /// carried out leave the log. With no holder left they stay (the replicas of a DEAD
    /// datanode may come back) until `drain_holderless_deletes` drains them after a timeout.
    /// Costs the container's transactions.
    pub(super) fn retire_done_txs(&mut self, container_id: u64, now: Instant) {
        let Some(c) = self.containers.get(&container_id) else {
            return;
        };
        if c.holders.is_empty() {
            if self.delete_by_container.contains_key(&container_id) {
                self.holderless.entry(container_id).or_insert(None);
            }
            return;
        }
        let done: Vec<u64> = self
            .delete_by_container
            .get(&container_id)
            .into_iter()
            .flatten()
            .copied()
            .filter(|tx| {
                self.delete_progress
                    .get(tx)
                    .is_some_and(|p| c.holders.iter().all(|h| p.acked.contains(h)))
            })
            .collect();
        for tx in done {
            tracing::debug!(
                tx,
                container = container_id,
                "deleted-block transaction done by every remaining holder"
            );
            self.complete_delete_tx(tx, now);
        }
    }

    /// Drains the transactions of containers that have had no replica for
    /// `hdds.scm.block.deletion.missing.container.timeout` (every replica lost, or the blocks
    /// were allocated and never written): nothing holds their blocks, so nothing would ever
    /// acknowledge them. Never in safe mode (the reports are not all in). Looks only at the
    /// containers with transactions that lost their last holder.
    pub(super) fn drain_holderless_deletes(&mut self, now: Instant) {
        if self.holderless.is_empty() {
            return;
        }
        let timeout = self.cfg.deletion_missing_container_timeout;
        let mut drained = Vec::new();
        let (containers, by_container, safe_mode) = (
            &self.containers,
            &self.delete_by_container,
            self.in_safe_mode,
        );
        self.holderless.retain(|id, since| {
            let held = containers.get(id).is_some_and(|c| !c.holders.is_empty());
            if held || !by_container.contains_key(id) {
                return false;
            }
            let since = *since.get_or_insert(now);
            if !safe_mode && now.saturating_duration_since(since) >= timeout {
                drained.push(*id);
                return false;
            }
            true
        });
        for id in drained {
            let txs: Vec<u64> = self
                .delete_by_container
                .get(&id)
                .map(|t| t.iter().copied().collect())
                .unwrap_or_default();
            tracing::warn!(
                container = id,
                transactions = txs.len(),
                ?timeout,
                "no datanode has reported the container for the timeout: its deleted-block records leave the log"
            );
            for tx in txs {
                self.remove_delete_tx(tx);
            }
            self.dirty.structural = true;
        }
    }

    /// How long a sent transaction waits for its acknowledgement before it is sent again.
    fn delete_resend(&self) -> Duration {
        (self.cfg.heartbeat_interval * 5).max(Duration::from_secs(5))
    }

    /// Queues a DeleteBlocks command with the transactions of containers `uuid` holds that
    /// it has not carried out, unless sent recently; at most
    /// `hdds.scm.block.deletion.per-interval.max` blocks. Looks only at the datanode's
    /// outstanding work.
    pub(super) fn dispatch_deletes(&mut self, uuid: &str, now: Instant) {
        let Some(node) = self.nodes.get(uuid) else {
            return;
        };
        let Some(work) = self.delete_work.get(uuid) else {
            return;
        };
        let resend = self.delete_resend();
        let mut txs: Vec<DeleteTx> = Vec::new();
        let mut blocks = 0usize;
        // Containers with nothing left for this datanode (pruned below).
        let mut finished: Vec<u64> = Vec::new();
        'containers: for cid in work {
            let ids = match self.delete_by_container.get(cid) {
                Some(ids) if node.replicas.contains_key(cid) => ids,
                _ => {
                    finished.push(*cid);
                    continue;
                }
            };
            let mut outstanding = false;
            for tx in ids {
                let p = self.delete_progress.get(tx);
                if p.is_some_and(|p| p.acked.contains(uuid)) {
                    continue;
                }
                outstanding = true;
                let recent = p
                    .and_then(|p| p.sent.get(uuid))
                    .is_some_and(|at| now.saturating_duration_since(*at) < resend);
                if recent {
                    continue;
                }
                if blocks >= self.cfg.deletion_blocks_per_heartbeat {
                    break 'containers;
                }
                if let Some(t) = self.delete_log.get(tx) {
                    blocks += t.local_ids.len();
                    txs.push(t.clone());
                }
            }
            if !outstanding {
                finished.push(*cid);
            }
        }
        if let Some(work) = self.delete_work.get_mut(uuid) {
            for cid in finished {
                work.remove(&cid);
            }
            if work.is_empty() {
                self.delete_work.remove(uuid);
            }
        }
        if txs.is_empty() {
            return;
        }
        for t in &txs {
            self.delete_progress
                .entry(t.tx_id)
                .or_default()
                .sent
                .insert(uuid.to_string(), now);
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

    /// Whether the log holds transactions for container `id`.
    pub(super) fn has_pending_deletes(&self, id: u64) -> bool {
        self.delete_by_container.contains_key(&id)
    }

    /// Sizes of the in-memory delete bookkeeping: transactions with progress, and datanodes
    /// with outstanding work (for tests: both must shrink as the log empties).
    #[cfg(test)]
    pub(super) fn delete_bookkeeping(&self) -> (usize, usize) {
        (self.delete_progress.len(), self.delete_work.len())
    }
}
