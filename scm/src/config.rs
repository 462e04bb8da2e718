//! SCM's runtime configuration, read from [`OzoneConfig`] and validated once at start.

use std::path::PathBuf;
use std::time::Duration;

use ozone_common::OzoneConfig;

use crate::error::ScmError;
use crate::factor::Factor;
use ozone_common::config::keys;

/// Everything SCM reads from the configuration, validated.
#[derive(Clone, Debug)]
pub struct ScmConfig {
    /// Directory of `scm.db` (`ozone.scm.db.dirs`, else `ozone.metadata.dirs`).
    pub db_dir: PathBuf,
    /// Advertised client address (`ozone.scm.client.address`); SCM binds its port.
    pub client_address: String,
    /// Advertised datanode address (`ozone.scm.datanode.address`); SCM binds its port.
    pub datanode_address: String,
    /// `ozone.scm.http-address`.
    pub http_address: String,
    /// `ozone.server.default.replication`.
    pub default_factor: Factor,
    /// `ozone.scm.container.size`: a block goes into a container only while the container's
    /// fill (reported used bytes plus blocks in flight) plus the block fit in it.
    pub container_size: u64,
    /// `ozone.scm.container.close.threshold` x `container_size`: a container whose replicas
    /// report this many used bytes is closed, and one whose fill reaches it takes no more blocks.
    pub close_bytes: u64,
    /// `ozone.scm.block.size`: the block size used when a request gives none.
    pub block_size: u64,
    /// `ozone.scm.pipeline.owner.container.count`: most open containers per pipeline.
    pub owner_container_count: usize,
    /// `ozone.scm.datanode.pipeline.limit`: open pipelines of each factor a datanode may join.
    pub pipeline_limit: usize,
    /// `hdds.scm.safemode.min.datanode`, with 0 replaced by the default factor's node count.
    pub safemode_min_datanodes: u32,
    /// `ozone.scm.stale.node.interval`.
    pub stale_interval: Duration,
    /// `ozone.scm.dead.node.interval`.
    pub dead_interval: Duration,
    /// Security: secret keys, container tokens ([`ozone_common::token::TokenSettings`]).
    pub tokens: ozone_common::token::TokenSettings,
    /// `hdds.scm.replication.thread.interval`: how often the ReplicationManager runs.
    pub replication_interval: Duration,
    /// `hdds.scm.replication.event.timeout`: how long a replication or replica deletion the
    /// ReplicationManager asked for counts as in flight.
    pub replication_timeout: Duration,
    /// `hdds.scm.block.deletion.per-interval.max`: blocks per DeleteBlocks command.
    pub deletion_blocks_per_heartbeat: usize,
    /// `hdds.scm.block.deletion.missing.container.timeout`: how long the deleted-block
    /// records of a container without any replica stay in the log.
    pub deletion_missing_container_timeout: Duration,
    /// `hdds.heartbeat.interval`: a deleted-block transaction not acknowledged within a few of
    /// these is sent again.
    pub heartbeat_interval: Duration,
}

impl ScmConfig {
    pub fn from_ozone(cfg: &OzoneConfig) -> Result<Self, ScmError> {
        // This SCM's addresses: its node of the SCM service, or the single SCM's keys.
        let me = crate::ha::ha_settings(cfg)?.me.node_id;
        let me = cfg
            .scm_nodes()?
            .into_iter()
            .find(|n| n.node_id == me)
            .ok_or_else(|| ScmError::InvalidConfig(format!("SCM node {me} not configured")))?;
        let db_dir = cfg
            .get_opt(keys::OZONE_SCM_DB_DIRS)
            .or_else(|| cfg.get_opt(keys::OZONE_METADATA_DIRS))
            .ok_or_else(|| {
                ScmError::InvalidConfig(
                    "ozone.scm.db.dirs and ozone.metadata.dirs are unset".into(),
                )
            })?;
        // Ozone allows a comma-separated list; SCM keeps one database, in the first directory.
        let db_dir = db_dir.split(',').next().unwrap_or_default().trim();
        let replication = cfg.get_u64(keys::OZONE_SERVER_DEFAULT_REPLICATION)?;
        let default_factor = Factor::from_count(replication).ok_or_else(|| {
            ScmError::InvalidConfig(format!(
                "ozone.server.default.replication must be 1 or 3, got {replication}"
            ))
        })?;
        let container_size = cfg.get_bytes(keys::OZONE_SCM_CONTAINER_SIZE)?;
        let block_size = cfg.get_bytes(keys::OZONE_SCM_BLOCK_SIZE)?;
        if container_size == 0 || block_size == 0 {
            return Err(ScmError::InvalidConfig(
                "ozone.scm.container.size and ozone.scm.block.size must be positive".into(),
            ));
        }
        if block_size > container_size {
            return Err(ScmError::InvalidConfig(format!(
                "ozone.scm.block.size ({block_size}) exceeds ozone.scm.container.size ({container_size})"
            )));
        }
        let threshold_text = cfg.get(keys::OZONE_SCM_CONTAINER_CLOSE_THRESHOLD);
        let threshold: f64 = threshold_text
            .parse()
            .ok()
            .filter(|t: &f64| *t > 0.0 && *t <= 1.0)
            .ok_or_else(|| {
                ScmError::InvalidConfig(format!(
                    "ozone.scm.container.close.threshold must be a fraction in (0, 1], got {threshold_text:?}"
                ))
            })?;
        // Exact enough: container sizes are far below 2^53 bytes.
        let close_bytes = ((container_size as f64) * threshold).ceil() as u64;
        let owner_container_count = cfg.get_u64(keys::OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT)?;
        let pipeline_limit = cfg.get_u64(keys::OZONE_SCM_DATANODE_PIPELINE_LIMIT)?;
        if owner_container_count == 0 || pipeline_limit == 0 {
            return Err(ScmError::InvalidConfig(
                "ozone.scm.pipeline.owner.container.count and ozone.scm.datanode.pipeline.limit must be at least 1"
                    .into(),
            ));
        }
        let min = cfg.get_u64(keys::HDDS_SCM_SAFEMODE_MIN_DATANODE)?;
        let safemode_min_datanodes = if min == 0 {
            default_factor.as_u32()
        } else {
            u32::try_from(min).map_err(|_| {
                ScmError::InvalidConfig(format!("hdds.scm.safemode.min.datanode too large: {min}"))
            })?
        };
        let stale_interval = cfg.get_duration(keys::OZONE_SCM_STALE_NODE_INTERVAL)?;
        let dead_interval = cfg.get_duration(keys::OZONE_SCM_DEAD_NODE_INTERVAL)?;
        if stale_interval.is_zero() || dead_interval <= stale_interval {
            return Err(ScmError::InvalidConfig(format!(
                "need 0 < ozone.scm.stale.node.interval ({stale_interval:?}) < ozone.scm.dead.node.interval ({dead_interval:?})"
            )));
        }
        let replication_interval = cfg.get_duration(keys::HDDS_SCM_REPLICATION_THREAD_INTERVAL)?;
        let replication_timeout = cfg.get_duration(keys::HDDS_SCM_REPLICATION_EVENT_TIMEOUT)?;
        if replication_interval.is_zero() || replication_timeout.is_zero() {
            return Err(ScmError::InvalidConfig(
                "hdds.scm.replication.thread.interval and hdds.scm.replication.event.timeout must be positive".into(),
            ));
        }
        let per_heartbeat = cfg
            .get_u64(keys::HDDS_SCM_BLOCK_DELETION_PER_INTERVAL_MAX)?
            .max(1);
        let tokens = ozone_common::token::TokenSettings::from_config(cfg)?;
        if tokens.any()
            && (tokens.rotate.is_zero()
                || tokens.key_lifetime <= tokens.rotate
                || tokens.token_lifetime.is_zero())
        {
            return Err(ScmError::InvalidConfig(format!(
                "need 0 < hdds.secret.key.rotate.duration ({:?}) < hdds.secret.key.expiry.duration ({:?}) and a positive hdds.block.token.expiry.time",
                tokens.rotate, tokens.key_lifetime
            )));
        }
        Ok(ScmConfig {
            tokens,
            replication_interval,
            replication_timeout,
            deletion_blocks_per_heartbeat: usize::try_from(per_heartbeat).unwrap_or(usize::MAX),
            deletion_missing_container_timeout: cfg
                .get_duration(keys::HDDS_SCM_BLOCK_DELETION_MISSING_CONTAINER_TIMEOUT)?,
            heartbeat_interval: cfg.get_duration(keys::HDDS_HEARTBEAT_INTERVAL)?,
            db_dir: PathBuf::from(db_dir),
            client_address: me.client,
            datanode_address: me.datanode,
            http_address: me.http,
            default_factor,
            container_size,
            close_bytes: close_bytes.clamp(1, container_size),
            block_size,
            owner_container_count: usize::try_from(owner_container_count).unwrap_or(usize::MAX),
            pipeline_limit: usize::try_from(pipeline_limit).unwrap_or(usize::MAX),
            safemode_min_datanodes,
            stale_interval,
            dead_interval,
        })
    }

    /// How often the state actor re-evaluates node health, pipelines and flushes state.
    pub fn tick_interval(&self) -> Duration {
        (self.stale_interval / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_checked() {
        let mut cfg = OzoneConfig::default();
        let scm = ScmConfig::from_ozone(&cfg).expect("defaults are valid");
        assert_eq!(scm.default_factor, Factor::Three);
        assert_eq!(scm.safemode_min_datanodes, 3);
        assert_eq!(scm.container_size, 5 << 30);
        assert_eq!(scm.close_bytes, (5u64 << 30) / 10 * 9);
        cfg.set(keys::OZONE_SCM_CONTAINER_CLOSE_THRESHOLD, "1.5");
        assert!(ScmConfig::from_ozone(&cfg).is_err());
        cfg.set(keys::OZONE_SCM_CONTAINER_CLOSE_THRESHOLD, "0.5");
        assert_eq!(
            ScmConfig::from_ozone(&cfg).expect("valid").close_bytes,
            5u64 << 29
        );
        cfg.set(keys::OZONE_SERVER_DEFAULT_REPLICATION, "2");
        assert!(ScmConfig::from_ozone(&cfg).is_err());
        cfg.set(keys::OZONE_SERVER_DEFAULT_REPLICATION, "1");
        cfg.set(keys::OZONE_SCM_DEAD_NODE_INTERVAL, "10s");
        assert!(ScmConfig::from_ozone(&cfg).is_err());
        cfg.set(keys::OZONE_SCM_DEAD_NODE_INTERVAL, "60s");
        let scm = ScmConfig::from_ozone(&cfg).expect("valid");
        assert_eq!(scm.safemode_min_datanodes, 1);
    }
}
