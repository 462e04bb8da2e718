//! The deleted-block log: blocks OM hands over, their transactions sent to the datanodes
//! holding replicas, and the acknowledgements that retire them.

use std::time::Instant;

use super::ScmState;
use crate::error::ScmError;
use crate::model::{Command, DeleteTx};
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

    pub(super) fn remove_delete_tx(&mut self, tx: u64) {
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
    pub(super) fn accept_delete_acks(&mut self, uuid: &str, acks: &[u64]) {
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
    pub(super) fn dispatch_deletes(&mut self, uuid: &str, now: Instant) {
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
}
