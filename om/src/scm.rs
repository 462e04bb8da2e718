//! OM's use of SCM: block allocation over `ScmClientService.AllocateBlock`, with a timeout,
//! and the hand-over of deleted blocks. With an SCM HA service the client follows the leader
//! (see `scm_client`'s failover: a follower's hint at once, else the next SCM for up to
//! [`scm_client::FAILOVER_WINDOW`]). Any failure to get blocks (SCM down, slow, in safe mode,
//! out of space, no leader found) is [`OmError::ScmUnavailable`], which clients see as
//! SCM_UNAVAILABLE.

use std::time::Duration;

use scm_client::{FAILOVER_PAUSE, FAILOVER_WINDOW, FailoverOptions, ScmClient, ScmClientError};

use ozone_common::token::SecretKey;

use crate::error::OmError;
use crate::model::Location;

/// A lazily connected client of the SCM service.
#[derive(Clone)]
pub struct ScmBlocks {
    client: ScmClient,
    addresses: String,
}

impl ScmBlocks {
    /// A client of the SCMs at `addresses` (`host:port` or URLs; one without SCM HA), each call
    /// to one SCM bounded by `timeout`. Connects on first use; must be called inside a tokio
    /// runtime.
    pub fn new(
        addresses: &[String],
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, OmError> {
        let options = FailoverOptions {
            connect_timeout,
            call_timeout: timeout,
            // A single SCM has nobody to fail over to: its refusal is answered at once.
            window: if addresses.len() > 1 {
                FAILOVER_WINDOW
            } else {
                Duration::ZERO
            },
            pause: FAILOVER_PAUSE,
        };
        let client = ScmClient::with_options(addresses, options)
            .map_err(|e| OmError::Internal(format!("SCM client: {e}")))?;
        Ok(ScmBlocks {
            client,
            addresses: addresses.join(","),
        })
    }

    /// The SCM addresses, comma-separated.
    pub fn address(&self) -> &str {
        &self.addresses
    }

    fn unavailable(&self, what: &str, e: ScmClientError) -> OmError {
        match e {
            ScmClientError::Timeout(_) => {
                OmError::ScmUnavailable(format!("SCM at {} did not answer: {e}", self.addresses))
            }
            e => OmError::ScmUnavailable(format!("SCM at {} refused {what}: {e}", self.addresses)),
        }
    }

    /// Hands blocks to delete, as (container id, local ids), to SCM's deleted-block log;
    /// returns once SCM holds them durably.
    pub async fn delete_blocks(&self, groups: Vec<(u64, Vec<u64>)>) -> Result<u32, OmError> {
        self.client
            .delete_blocks(groups)
            .await
            .map_err(|e| self.unavailable("deleted blocks", e))
    }

    /// Allocates `count` blocks on pipelines of `replication`, each expected to receive
    /// `block_bytes` (see [`crate::config::OmConfig::declared_block_bytes`]).
    pub async fn allocate(
        &self,
        count: u32,
        block_bytes: u64,
        replication: u32,
        owner: &str,
        exclude_datanodes: Vec<String>,
    ) -> Result<Vec<Location>, OmError> {
        let blocks = self
            .client
            .allocate_block(block_bytes, count, replication, owner, &exclude_datanodes)
            .await
            .map_err(|e| self.unavailable("to allocate blocks", e))?;
        if blocks.is_empty() {
            return Err(OmError::BadScmResponse(format!(
                "SCM allocated no blocks (asked for {count})"
            )));
        }
        blocks.into_iter().map(Location::try_from).collect()
    }

    /// Security on: SCM's unexpired secret keys and the one to sign with now.
    pub async fn secret_keys(&self) -> Result<(Vec<SecretKey>, String), OmError> {
        let r = self
            .client
            .get_secret_keys()
            .await
            .map_err(|e| self.unavailable("its secret keys", e))?;
        let keys = r
            .keys
            .into_iter()
            .map(|k| SecretKey {
                id: k.id,
                created_ms: k.created_ms,
                expires_ms: k.expires_ms,
                key: k.key,
            })
            .collect();
        Ok((keys, r.current_key_id))
    }
}
