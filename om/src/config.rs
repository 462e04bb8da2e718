//! OM's runtime settings, read and validated from the Ozone configuration
//! (keys and defaults are declared in `ozone_common::config`).

use std::path::PathBuf;
use std::time::Duration;

use ozone_common::OzoneConfig;

use crate::error::OmError;
use crate::model::validate_resource_name;
use crate::secret_key::{AdminVerifier, SECRET_KEY_FILE, SecretKey};
use ozone_common::config::keys;

/// How long OM waits for SCM to allocate blocks before answering SCM_UNAVAILABLE.
pub const SCM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long OM waits to connect to SCM.
pub const SCM_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Owner of the S3 volume created at first start.
pub const S3_VOLUME_OWNER: &str = "admin";
/// Name of the admin credential file in the OM db directory (when not configured).
pub const ADMIN_SECRET_FILE: &str = "admin.secret";

#[derive(Clone, Debug)]
pub struct OmConfig {
    /// Directory of `om.db`: `ozone.om.db.dirs` (first entry), else `ozone.metadata.dirs`.
    pub db_dir: PathBuf,
    /// `ozone.om.address`: the (single) OM's gRPC address. An OM binds `config::bind_address`
    /// of its own node's address ([`ozone_raft::Settings::me`]), which is this one for a
    /// single OM.
    pub address: String,
    /// `ozone.om.http-address`.
    pub http_address: String,
    /// Client gRPC address (`host:port`) of every SCM of the service (one without SCM HA).
    pub scm_addresses: Vec<String>,
    /// `ozone.scm.block.size`.
    pub block_size: u64,
    /// `ozone.server.default.replication` (1 or 3).
    pub default_replication: u32,
    /// `ozone.key.preallocation.max.blocks` (at least 1).
    pub max_prealloc_blocks: u64,
    /// `ozone.s3g.volume.name`: created at first start, owner [`S3_VOLUME_OWNER`].
    pub s3_volume: String,
    pub scm_timeout: Duration,
    /// `ozone.om.ratis.server.retrycache.timeout`: how long results stay in the retry cache.
    pub retry_cache_timeout: Duration,
    /// `ozone.security.enabled`.
    pub security: bool,
    /// `ozone.om.admin.secret.file`, else `<db_dir>/admin.secret`.
    pub admin_secret_file: PathBuf,
    /// `ozone.om.secret.key.file`, else `<db_dir>/om.key`.
    pub secret_key_file: PathBuf,
    /// The OM secret key (sealing S3 secrets), read (or created) at start when security is on.
    pub secret_key: Option<SecretKey>,
    /// What OM keeps of the admin credential (read or created at start when security is on):
    /// its HMAC under the secret key, never the credential.
    pub admin: Option<AdminVerifier>,
    /// Block tokens (`hdds.block.token.*`, with security on).
    pub tokens: ozone_common::token::TokenSettings,
}

impl OmConfig {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, OmError> {
        let dirs = cfg
            .get_opt(keys::OZONE_OM_DB_DIRS)
            .unwrap_or_else(|| cfg.get(keys::OZONE_METADATA_DIRS));
        let db_dir = dirs.split(',').next().unwrap_or("").trim().to_string();
        if db_dir.is_empty() {
            return Err(invalid(
                keys::OZONE_OM_DB_DIRS,
                "no OM db directory configured",
            ));
        }
        let block_size = cfg.get_bytes(keys::OZONE_SCM_BLOCK_SIZE)?;
        if block_size == 0 {
            return Err(invalid(keys::OZONE_SCM_BLOCK_SIZE, "must be above 0"));
        }
        let default_replication = cfg.get_u64(keys::OZONE_SERVER_DEFAULT_REPLICATION)?;
        if default_replication != 1 && default_replication != 3 {
            return Err(invalid(
                keys::OZONE_SERVER_DEFAULT_REPLICATION,
                "must be 1 or 3",
            ));
        }
        let max_prealloc_blocks = cfg.get_u64(keys::OZONE_KEY_PREALLOCATION_MAX_BLOCKS)?;
        if max_prealloc_blocks == 0 {
            return Err(invalid(
                keys::OZONE_KEY_PREALLOCATION_MAX_BLOCKS,
                "must be at least 1",
            ));
        }
        let s3_volume = cfg.get(keys::OZONE_S3G_VOLUME_NAME);
        validate_resource_name("volume", &s3_volume)
            .map_err(|e| invalid(keys::OZONE_S3G_VOLUME_NAME, &e.to_string()))?;
        let admin_secret_file = match cfg.get_opt(keys::OZONE_OM_ADMIN_SECRET_FILE) {
            Some(f) => PathBuf::from(f),
            None => PathBuf::from(&db_dir).join(ADMIN_SECRET_FILE),
        };
        let secret_key_file = match cfg.get_opt(keys::OZONE_OM_SECRET_KEY_FILE) {
            Some(f) => PathBuf::from(f),
            None => PathBuf::from(&db_dir).join(SECRET_KEY_FILE),
        };
        Ok(OmConfig {
            tokens: ozone_common::token::TokenSettings::from_config(cfg)?,
            security: cfg.get_bool(keys::OZONE_SECURITY_ENABLED)?,
            admin_secret_file,
            secret_key_file,
            secret_key: None,
            admin: None,
            db_dir: PathBuf::from(db_dir),
            address: cfg.get(keys::OZONE_OM_ADDRESS),
            http_address: cfg.get(keys::OZONE_OM_HTTP_ADDRESS),
            scm_addresses: cfg.scm_nodes()?.into_iter().map(|n| n.client).collect(),
            block_size,
            default_replication: default_replication as u32,
            max_prealloc_blocks,
            s3_volume,
            scm_timeout: SCM_TIMEOUT,
            retry_cache_timeout: cfg
                .get_duration(keys::OZONE_OM_RATIS_SERVER_RETRYCACHE_TIMEOUT)?,
        })
    }

    /// Blocks to preallocate for a key of `size_hint` bytes:
    /// clamp(ceil(size_hint / block_size), 1, max_prealloc_blocks).
    pub fn blocks_for(&self, size_hint: u64) -> u32 {
        let n = size_hint.div_ceil(self.block_size);
        n.clamp(1, self.max_prealloc_blocks).min(u32::MAX as u64) as u32
    }

    /// The bytes SCM is told to expect in each block of a write of `size` bytes (0: unknown):
    /// at most a block, a whole block when unknown. SCM counts them against the container
    /// until the datanodes report what was really written.
    pub fn declared_block_bytes(&self, size: u64) -> u64 {
        if size == 0 {
            self.block_size
        } else {
            size.min(self.block_size)
        }
    }
}

/// An OM error for an invalid configuration value of `key`.
pub(crate) fn invalid(key: impl ozone_common::config::ConfKey, message: &str) -> OmError {
    OmError::Config(ozone_common::ConfigError::invalid(key, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_and_counts_blocks() {
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_METADATA_DIRS, "/tmp/meta")
            .set(keys::OZONE_SCM_BLOCK_SIZE, "1MB")
            .set(keys::OZONE_KEY_PREALLOCATION_MAX_BLOCKS, "4");
        let s = OmConfig::from_config(&cfg).expect("valid");
        assert_eq!(s.db_dir, PathBuf::from("/tmp/meta"));
        assert_eq!(s.s3_volume, "s3v");
        assert_eq!(s.blocks_for(0), 1);
        assert_eq!(s.blocks_for(1), 1);
        assert_eq!(s.blocks_for(1 << 20), 1);
        assert_eq!(s.blocks_for((1 << 20) + 1), 2);
        assert_eq!(s.blocks_for(100 << 20), 4);
        // SCM is told a block's expected bytes: the size up to a block, a block if unknown.
        assert_eq!(s.declared_block_bytes(4096), 4096);
        assert_eq!(s.declared_block_bytes(0), 1 << 20);
        assert_eq!(s.declared_block_bytes(100 << 20), 1 << 20);
        cfg.set(keys::OZONE_OM_DB_DIRS, "/tmp/om1,/tmp/om2");
        assert_eq!(
            OmConfig::from_config(&cfg).expect("valid").db_dir,
            PathBuf::from("/tmp/om1")
        );
        cfg.set(keys::OZONE_SERVER_DEFAULT_REPLICATION, "2");
        assert!(OmConfig::from_config(&cfg).is_err());
    }
}
