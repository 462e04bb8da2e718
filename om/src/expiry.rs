//! The open-key cleanup service (Ozone's OpenKeyCleanupService): a write that never commits
//! (the client died, the upload was abandoned, a multipart part was never finished) leaves an
//! open key holding blocks. Every `ozone.om.open.key.cleanup.service.interval` the OM leader
//! reads the open keys created more than `ozone.om.open.key.expire.threshold` ago, oldest
//! first, from the index of open keys by creation time (no scan of the namespace), and
//! proposes an [`ExpireOpenKeys`] of at most `ozone.om.open.key.cleanup.limit.per.task` of
//! them; a round repeats while a full batch was found. Applying it removes each open key that
//! still exists and was created before the cutoff, and records its blocks as deleted: the
//! block-deleting service ([`crate::deletion`]) hands them to SCM, which has the datanodes
//! delete them. Committing an expired open key answers KEY_NOT_FOUND.
//!
//! An expired open key of a multipart part removes only that part's write; the upload itself
//! stays until completed or aborted (`ozone admin multipart list|abort`).

use std::sync::Weak;
use std::time::Duration;

use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_common::now_ms;

use crate::apply::Writer;
use crate::command::{ExpireOpenKeys, OmResponse, OpenKeyId};
use crate::config::invalid;
use crate::error::OmError;
use crate::manager::{OzoneManager, blocking};
use crate::model::OpenKeyRecord;
use crate::store::{get, open_key_key};

/// Most open keys one [`ExpireOpenKeys`] names (keeps a raft entry small).
pub const MAX_PER_COMMAND: usize = 10_000;

/// Settings of the service.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryConfig {
    /// `ozone.om.open.key.expire.threshold`.
    pub threshold: Duration,
    /// `ozone.om.open.key.cleanup.service.interval`.
    pub interval: Duration,
    /// `ozone.om.open.key.cleanup.limit.per.task`: open keys per command.
    pub limit: usize,
}

impl ExpiryConfig {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, OmError> {
        let threshold = cfg.get_duration(keys::OZONE_OM_OPEN_KEY_EXPIRE_THRESHOLD)?;
        let interval = cfg.get_duration(keys::OZONE_OM_OPEN_KEY_CLEANUP_SERVICE_INTERVAL)?;
        let limit = cfg.get_u64(keys::OZONE_OM_OPEN_KEY_CLEANUP_LIMIT_PER_TASK)?;
        if interval.is_zero() {
            return Err(invalid(
                keys::OZONE_OM_OPEN_KEY_CLEANUP_SERVICE_INTERVAL,
                "must be positive",
            ));
        }
        if limit == 0 {
            return Err(invalid(
                keys::OZONE_OM_OPEN_KEY_CLEANUP_LIMIT_PER_TASK,
                "must be at least 1",
            ));
        }
        Ok(ExpiryConfig {
            threshold,
            interval,
            limit: usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(MAX_PER_COMMAND),
        })
    }
}

/// Runs until the OM is dropped; only the leader expires.
pub async fn run(om: Weak<OzoneManager>, cfg: ExpiryConfig) {
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
        let mut total = 0;
        let result = loop {
            match round(&om, cfg.threshold, cfg.limit).await {
                Ok(n) => {
                    total += n;
                    if n < cfg.limit {
                        break Ok(total);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(0) => failing = false,
            Ok(n) => {
                tracing::info!(open_keys = n, threshold = ?cfg.threshold, "expired open keys");
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "expiring open keys failed; retrying every interval");
                }
                failing = true;
            }
        }
    }
}

/// One round: proposes the expiry of at most `limit` open keys created more than `threshold`
/// ago; returns how many the command removed.
pub async fn round(om: &OzoneManager, threshold: Duration, limit: usize) -> Result<usize, OmError> {
    let now = now_ms();
    let cutoff = now.saturating_sub(u64::try_from(threshold.as_millis()).unwrap_or(u64::MAX));
    let sm = om.state_machine().clone();
    let found: Vec<OpenKeyRecord> =
        blocking(move || sm.snapshot()?.open_keys_created_before(cutoff, limit)).await?;
    if found.is_empty() {
        return Ok(0);
    }
    let cmd = ExpireOpenKeys {
        open_keys: found
            .into_iter()
            .map(|o| OpenKeyId {
                volume: o.volume,
                bucket: o.bucket,
                key: o.key,
                client_id: o.client_id,
            })
            .collect(),
        created_before_ms: cutoff,
    };
    match om.submit(cmd).await? {
        OmResponse::Expired(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        other => Err(crate::manager::unexpected("ExpireOpenKeys", other)),
    }
}

impl Writer<'_> {
    pub(crate) fn expire_open_keys(&mut self, c: &ExpireOpenKeys) -> Result<OmResponse, OmError> {
        let mut n = 0u64;
        for id in &c.open_keys {
            let k = open_key_key(&id.volume, &id.bucket, &id.key, id.client_id);
            let Some(open) = get::<OpenKeyRecord>(&self.open_keys, "open_keys", &k)? else {
                continue;
            };
            if open.creation_time_ms > c.created_before_ms {
                continue;
            }
            self.remove_open_key(&k, &open)?;
            self.released.extend(open.locations.iter().map(|l| l.block));
            n += 1;
        }
        Ok(OmResponse::Expired(n))
    }
}
