//! Secret keys for block and container tokens (security on; Ozone's `SecretKeyManager` on the
//! SCM leader). The leader makes a random 256-bit key when there is none or the newest is older
//! than `hdds.secret.key.rotate.duration` (checked every `hdds.secret.key.rotate.check.duration`
//! on the tick), and drops keys past `hdds.secret.key.expiry.duration`. Keys are rows of
//! [`crate::store::Batch`] like the rest of the state: replicated before anyone is given them.
//! OM fetches them over `GetSecretKeys` to sign block tokens; datanodes get them with every
//! heartbeat response to verify tokens; the leader signs container tokens into replicate
//! commands itself.

use std::collections::BTreeMap;
use std::time::Instant;

use ozone_common::token::{self, ContainerTokenId, SecretKey};

use super::ScmState;
use crate::error::ScmError;
use crate::model::Command;

impl ScmState {
    /// Security on: drops expired keys and makes a new one when none is current enough.
    /// Answers whether anything changed (persisted by the caller).
    pub(super) fn rotate_secret_keys(&mut self, now: Instant, now_ms: u64) -> bool {
        let t = &self.cfg.tokens;
        if !t.any() {
            return false;
        }
        if let Some(checked) = self.secret_keys_checked
            && now.saturating_duration_since(checked) < t.rotate_check
        {
            return false;
        }
        self.secret_keys_checked = Some(now);
        self.rotate_secret_keys_at(now_ms, false)
    }

    /// The rotation step itself; `force` makes a new key even when the newest is not due.
    pub fn rotate_secret_keys_at(&mut self, now_ms: u64, force: bool) -> bool {
        let t = &self.cfg.tokens;
        let rotate_ms = u64::try_from(t.rotate.as_millis()).unwrap_or(u64::MAX);
        let lifetime_ms = u64::try_from(t.key_lifetime.as_millis()).unwrap_or(u64::MAX);
        let expired: Vec<String> = self
            .secret_keys
            .values()
            .filter(|k| k.is_expired(now_ms))
            .map(|k| k.id.clone())
            .collect();
        let mut changed = false;
        for id in expired {
            tracing::info!(key = %id, "secret key expired: dropped");
            self.secret_keys.remove(&id);
            self.dirty.secret_keys.remove(&id);
            self.dirty.removed_secret_keys.insert(id);
            changed = true;
        }
        let due = self
            .secret_keys
            .values()
            .map(|k| k.created_ms)
            .max()
            .is_none_or(|newest| newest.saturating_add(rotate_ms) <= now_ms);
        if due || force {
            let key = SecretKey {
                id: uuid::Uuid::new_v4().to_string(),
                created_ms: now_ms,
                expires_ms: now_ms.saturating_add(lifetime_ms),
                key: random_key().to_vec(),
            };
            tracing::info!(key = %key.id, expires_ms = key.expires_ms, "new secret key");
            self.dirty.secret_keys.insert(key.id.clone());
            self.secret_keys.insert(key.id.clone(), key);
            changed = true;
        }
        if changed {
            self.dirty.structural = true;
        }
        changed
    }

    /// For `GetSecretKeys`: every unexpired key and the id of the one to sign with. Makes one
    /// first if there is none (persisted before the answer). FAILED_PRECONDITION with tokens off.
    pub fn secret_keys(&mut self, now_ms: u64) -> Result<(Vec<SecretKey>, String), ScmError> {
        if !self.cfg.tokens.any() {
            return Err(ScmError::FailedPrecondition(
                "secret keys need ozone.security.enabled=true with block or container tokens enabled"
                    .into(),
            ));
        }
        if self.live_secret_keys(now_ms).is_empty() {
            self.rotate_secret_keys_at(now_ms, false);
            self.persist()?;
        }
        let keys = self.live_secret_keys(now_ms);
        let activation = u64::try_from(self.cfg.tokens.activation.as_millis()).unwrap_or(0);
        let current = token::current_key(&keys, now_ms, activation)
            .map(|k| k.id.clone())
            .ok_or_else(|| ScmError::Unavailable("no secret key yet".into()))?;
        Ok((keys, current))
    }

    /// The unexpired keys, oldest first.
    pub fn live_secret_keys(&self, now_ms: u64) -> Vec<SecretKey> {
        let mut keys: Vec<SecretKey> = self
            .secret_keys
            .values()
            .filter(|k| !k.is_expired(now_ms))
            .cloned()
            .collect();
        keys.sort_by_key(|k| k.created_ms);
        keys
    }

    /// What a heartbeat response carries with security on: the keys, and a container token
    /// (owner: the datanode told to copy) for each of its ReplicateContainer commands.
    pub(super) fn heartbeat_security(
        &self,
        datanode: &str,
        commands: &[Command],
        now_ms: u64,
    ) -> (Vec<SecretKey>, BTreeMap<u64, Vec<u8>>) {
        let t = &self.cfg.tokens;
        if !t.any() {
            return (Vec::new(), BTreeMap::new());
        }
        let keys = self.live_secret_keys(now_ms);
        let mut tokens = BTreeMap::new();
        if t.container_tokens {
            let activation = u64::try_from(t.activation.as_millis()).unwrap_or(0);
            let lifetime = u64::try_from(t.token_lifetime.as_millis()).unwrap_or(u64::MAX);
            if let Some(key) = token::current_key(&keys, now_ms, activation) {
                for c in commands {
                    if let Command::ReplicateContainer { container_id, .. } = c {
                        let id = ContainerTokenId {
                            owner: datanode.to_string(),
                            container_id: *container_id,
                            expiry_ms: now_ms.saturating_add(lifetime),
                            key_id: String::new(),
                        };
                        tokens.insert(*container_id, token::sign_container(&id, key));
                    }
                }
            }
        }
        (keys, tokens)
    }
}

/// 32 random bytes: HMAC-SHA256 over three v4 UUIDs (366 bits from the OS random source).
fn random_key() -> [u8; 32] {
    let (a, b, c) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let mut data = b.as_bytes().to_vec();
    data.extend_from_slice(c.as_bytes());
    ozone_common::sigv4::hmac_sha256(a.as_bytes(), &data)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ozone_common::config::keys;
    use ozone_common::token::{KeyRing, Modes};

    use super::*;
    use crate::config::ScmConfig;
    use crate::store::Store;

    const DAY: u64 = 86_400_000;

    fn config(dir: &std::path::Path, security: bool) -> ScmConfig {
        let mut cfg = ozone_common::OzoneConfig::default();
        cfg.set(keys::OZONE_SCM_DB_DIRS, dir.to_string_lossy().to_string())
            .set(keys::OZONE_SECURITY_ENABLED, security.to_string());
        ScmConfig::from_ozone(&cfg).expect("valid test config")
    }

    /// A leader's state over `store`, with its staged batches applied straight away (as the
    /// raft state machine would once they commit).
    fn lead(cfg: &ScmConfig, store: &Arc<Store>) -> ScmState {
        let mut s = ScmState::lead(cfg.clone(), store.clone(), Instant::now()).expect("lead");
        apply(&mut s, store);
        s
    }

    fn apply(s: &mut ScmState, store: &Store) {
        for b in s.take_staged() {
            store.write(&b).expect("apply");
        }
    }

    #[test]
    fn keys_rotate_expire_and_survive_a_change_of_leader() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path(), true);
        let store = Arc::new(Store::open(dir.path()).expect("open"));
        let mut s = lead(&cfg, &store);
        let t0 = ozone_common::now_ms();
        let (keys, current) = s.secret_keys(t0).expect("keys");
        assert_eq!(keys.len(), 1, "the first leader makes the first key");
        assert_eq!(current, keys[0].id);
        assert_eq!(keys[0].key.len(), 32);
        assert_eq!(keys[0].expires_ms - keys[0].created_ms, 7 * DAY);
        let first = keys[0].clone();
        let t0 = first.created_ms;

        // Not due yet: nothing changes.
        assert!(!s.rotate_secret_keys_at(t0 + DAY - 1, false));
        // A day on: a new key; the old one still verifies.
        assert!(s.rotate_secret_keys_at(t0 + DAY, false));
        s.persist().expect("persist");
        apply(&mut s, &store);
        let (keys, current) = s.secret_keys(t0 + DAY).expect("keys");
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0].key, keys[1].key, "random keys differ");
        // The new key signs only once datanodes had heartbeats to learn it.
        assert_eq!(current, first.id);
        let (_, current) = s.secret_keys(t0 + DAY + 10_000).expect("keys");
        assert_eq!(current, keys[1].id);

        // A new leader loads the same keys from the replicated rows.
        let mut other = lead(&cfg, &store);
        let (loaded, _) = other.secret_keys(t0 + DAY + 10_000).expect("keys");
        assert_eq!(loaded, keys);

        // Past the first key's expiry it is dropped, from the store too.
        assert!(other.rotate_secret_keys_at(first.expires_ms, false));
        other.persist().expect("persist");
        apply(&mut other, &store);
        let ids: Vec<String> = store
            .load()
            .expect("load")
            .secret_keys
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert!(!ids.contains(&first.id));
        assert!(ids.contains(&keys[1].id));

        // Container tokens in heartbeat responses verify with the keys sent along.
        let cmds = vec![Command::ReplicateContainer {
            container_id: 5,
            sources: vec![],
        }];
        let now = t0 + DAY + 10_000;
        let (sent, tokens) = s.heartbeat_security("dn-1", &cmds, now);
        let ring = KeyRing::new(sent);
        let id = ring
            .verify_container(&tokens[&5], 5, now)
            .expect("valid container token");
        assert_eq!(id.owner, "dn-1");
        assert!(
            ring.verify_block(&tokens[&5], 5, 1, Modes::READ, now)
                .is_err()
        );
    }

    #[test]
    fn security_off_keeps_no_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = config(dir.path(), false);
        let store = Arc::new(Store::open(dir.path()).expect("open"));
        let mut s = lead(&cfg, &store);
        assert!(matches!(
            s.secret_keys(ozone_common::now_ms()),
            Err(ScmError::FailedPrecondition(_))
        ));
        assert!(store.load().expect("load").secret_keys.is_empty());
        let (keys, tokens) = s.heartbeat_security("dn-1", &[], ozone_common::now_ms());
        assert!(keys.is_empty() && tokens.is_empty());
    }
}
