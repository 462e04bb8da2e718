//! The block-deleting service: every `ozone.block.deleting.service.interval` it reads the
//! deleted-blocks table (blocks of deleted and overwritten keys, refused opens and unlisted
//! parts), hands up to `ozone.key.deleting.limit.per.task` records to SCM's deleted-block log
//! (`DeleteBlocks`, answered once durable there) and then removes exactly those records with an
//! [`PurgeDeletedBlocks`] applied through the state machine, so every replica of the
//! namespace stays identical. A crash between the two steps sends the same blocks again, which
//! is harmless: deleting a block twice deletes it once.
//!
//! With a replicated OM only the leader runs a round; followers skip theirs.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use ozone_common::OzoneConfig;

use crate::apply::Writer;
use crate::command::{DeletedBlocksCommand, OmResponse, PurgeDeletedBlocks};
use crate::error::OmError;
use crate::manager::OzoneManager;
use crate::scm::ScmBlocks;
use crate::store;
use ozone_common::config::keys;

/// Settings of the service.
#[derive(Debug, Clone, Copy)]
pub struct DeletionConfig {
    /// `ozone.block.deleting.service.interval`.
    pub interval: Duration,
    /// `ozone.key.deleting.limit.per.task`: records per round.
    pub limit: usize,
}

impl DeletionConfig {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, OmError> {
        let interval = cfg.get_duration(keys::OZONE_BLOCK_DELETING_SERVICE_INTERVAL)?;
        let limit = cfg.get_u64(keys::OZONE_KEY_DELETING_LIMIT_PER_TASK)?;
        if interval.is_zero() || limit == 0 {
            return Err(OmError::Internal(
                "ozone.block.deleting.service.interval and ozone.key.deleting.limit.per.task must be positive"
                    .into(),
            ));
        }
        Ok(DeletionConfig {
            interval,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        })
    }
}

/// Runs until the OM is dropped.
pub async fn run(om: Weak<OzoneManager>, scm: ScmBlocks, cfg: DeletionConfig) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + cfg.interval, cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let Some(om) = om.upgrade() else { return };
        if !om.raft_node().is_leader() {
            continue;
        }
        match round(&om, &scm, cfg.limit).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(records = n, "handed deleted blocks to SCM");
                if failing {
                    tracing::info!("block deletion works again");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "handing deleted blocks to SCM failed; retrying every interval");
                }
                failing = true;
            }
        }
    }
}

/// One round: returns the number of records handed over and purged.
pub async fn round(om: &OzoneManager, scm: &ScmBlocks, limit: usize) -> Result<usize, OmError> {
    let sm = om.state_machine().clone();
    let records = tokio::task::spawn_blocking(move || sm.snapshot()?.deleted_blocks_first(limit))
        .await
        .map_err(|e| OmError::Internal(format!("database task failed: {e}")))??;
    if records.is_empty() {
        return Ok(0);
    }
    let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (_, rec) in &records {
        for b in &rec.blocks {
            groups.entry(b.container_id).or_default().push(b.local_id);
        }
    }
    let blocks: usize = groups.values().map(Vec::len).sum();
    if blocks > 0 {
        scm.delete_blocks(groups.into_iter().collect()).await?;
    }
    let indexes: Vec<u64> = records.iter().map(|(i, _)| *i).collect();
    let n = indexes.len();
    om.submit(PurgeDeletedBlocks { indexes }).await?;
    tracing::debug!(records = n, blocks, "deleted-block records purged");
    Ok(n)
}

impl Writer<'_> {
    pub(crate) fn apply_deleted_blocks(
        &mut self,
        cmd: &DeletedBlocksCommand,
    ) -> Result<OmResponse, OmError> {
        match cmd {
            DeletedBlocksCommand::Purge(c) => {
                let mut t = self.txn.open_table(store::DELETED)?;
                for i in &c.indexes {
                    t.remove(*i)?;
                }
                Ok(OmResponse::Done)
            }
        }
    }
}
