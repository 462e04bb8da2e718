//! The gateway's settings ([`S3gConfig`]), read from `ozone-site.xml` once at start.

use ozone_client::WriteSettings;
use ozone_common::config::keys;
use ozone_common::{ConfigError, OzoneConfig};

/// The gateway's settings, read from the configuration once.
#[derive(Clone, Debug)]
pub struct S3gConfig {
    pub volume: String,
    /// How a body is cut and kept while it is written; its `piece_size` is the body bytes
    /// gathered before they go to the datanodes (`ozone.s3g.client.buffer.size`).
    pub write: WriteSettings,
    pub max_keys: u32,
    pub domains: Vec<String>,
    /// `ozone.security.enabled`: SigV4 checked against OM's secrets, owners and ACLs enforced.
    pub security: bool,
    /// `ozone.s3g.region`: the region SigV4 credential scopes must name (security on).
    pub region: String,
}

impl S3gConfig {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, ConfigError> {
        let mut write = WriteSettings::from_config(cfg)?;
        write.piece_size = cfg
            .get_bytes(keys::OZONE_S3G_CLIENT_BUFFER_SIZE)?
            .clamp(64 * 1024, write.chunk_size as u64) as usize;
        let region = cfg.get(keys::OZONE_S3G_REGION).trim().to_string();
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::invalid(
                keys::OZONE_S3G_REGION,
                "a region name is lower-case letters, digits and dashes",
            ));
        }
        Ok(S3gConfig {
            security: cfg.get_bool(keys::OZONE_SECURITY_ENABLED)?,
            region,
            volume: cfg.get(keys::OZONE_S3G_VOLUME_NAME),
            write,
            max_keys: cfg
                .get_u64(keys::OZONE_S3G_LIST_MAX_KEYS_LIMIT)?
                .clamp(1, 100_000) as u32,
            domains: cfg
                .get(keys::OZONE_S3G_DOMAIN_NAME)
                .split(',')
                .map(|d| d.trim().trim_start_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        })
    }
}
