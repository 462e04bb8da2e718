//! Block tokens (security on, `hdds.block.token.enabled`): OM signs one into every block
//! location it hands out (Ozone's `OzoneBlockTokenSecretManager`): READ+WRITE from OpenKey and
//! AllocateBlock, READ from LookupKey, for the key's owner, valid for
//! `hdds.block.token.expiry.time`. The signing key is SCM's current secret key, fetched over
//! `GetSecretKeys` and cached for [`KEY_REFRESH`] (SCM's rotation makes a new key at most
//! daily and only lets it sign once datanodes could learn it, so a minute-old key is fine).
//! The token format is `ozone_common::token`.

use std::time::{Duration, Instant};

use ozone_common::token::{self, BlockTokenId, Modes, SecretKey};
use ozone_proto::om;

use crate::error::OmError;
use crate::scm::ScmBlocks;

/// How long a fetched signing key is used before SCM is asked again.
pub const KEY_REFRESH: Duration = Duration::from_secs(60);

/// Signs block tokens with SCM's current secret key.
pub struct BlockSigner {
    scm: ScmBlocks,
    lifetime: Duration,
    cached: tokio::sync::Mutex<Option<(SecretKey, Instant)>>,
}

impl BlockSigner {
    pub fn new(scm: ScmBlocks, lifetime: Duration) -> Self {
        BlockSigner {
            scm,
            lifetime,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The key to sign with: the cached one while fresh and unexpired, else SCM's current.
    async fn key(&self) -> Result<SecretKey, OmError> {
        let mut cached = self.cached.lock().await;
        let now_ms = ozone_common::now_ms();
        if let Some((k, at)) = cached.as_ref()
            && at.elapsed() < KEY_REFRESH
            && !k.is_expired(now_ms)
        {
            return Ok(k.clone());
        }
        let (keys, current) = self.scm.secret_keys().await?;
        let key = keys.into_iter().find(|k| k.id == current).ok_or_else(|| {
            OmError::BadScmResponse(format!(
                "SCM's current secret key {current} is not among its keys"
            ))
        })?;
        *cached = Some((key.clone(), Instant::now()));
        Ok(key)
    }

    /// Signs a token for each location's block: `owner` may use it with `modes`.
    pub async fn sign(
        &self,
        locations: &mut [om::KeyLocation],
        owner: &str,
        modes: Modes,
    ) -> Result<(), OmError> {
        if locations.is_empty() {
            return Ok(());
        }
        let key = self.key().await?;
        let lifetime = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX);
        let expiry_ms = ozone_common::now_ms().saturating_add(lifetime);
        for l in locations {
            let Some(b) = l.block_id.as_ref() else {
                continue;
            };
            let id = BlockTokenId {
                owner: owner.to_string(),
                container_id: b.container_id,
                local_id: b.local_id,
                modes,
                expiry_ms,
                key_id: String::new(),
            };
            l.token = token::sign_block(&id, &key);
        }
        Ok(())
    }
}

impl crate::manager::OzoneManager {
    /// Signs block tokens into `locations` when block tokens are on; else leaves them bare.
    pub(crate) async fn sign_blocks(
        &self,
        locations: &mut [om::KeyLocation],
        owner: &str,
        modes: Modes,
    ) -> Result<(), OmError> {
        match &self.signer {
            Some(s) => s.sign(locations, owner, modes).await,
            None => Ok(()),
        }
    }
}
