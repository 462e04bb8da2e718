//! Block and container tokens (Ozone's `OzoneBlockTokenIdentifier` and
//! `ContainerTokenIdentifier`, issue 14): short-lived capabilities signed with HMAC-SHA256
//! under one of SCM's rotating secret keys. OM signs block tokens when it hands out block
//! locations, SCM signs container tokens into its replicate commands, and datanodes verify
//! both before they serve a block or a container. Shared here so the signers and the verifier
//! use one format without the server crates depending on each other.
//!
//! Wire form (the `token` bytes of the datanode requests and of `KeyLocation`): the identifier
//! bytes, then the 32-byte HMAC-SHA256 of exactly those bytes under the secret key the
//! identifier names. The identifier is a version byte, a kind byte and length-prefixed fields
//! (see [`Identifier::encode`]); the verifier checks the MAC over the bytes it received, so no
//! re-encoding is involved.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, OzoneConfig, keys};
use crate::sigv4::{constant_time_eq, hmac_sha256};

const VERSION: u8 = 1;
const KIND_BLOCK: u8 = 1;
const KIND_CONTAINER: u8 = 2;
const MAC_LEN: usize = 32;

/// The token keys of a role's configuration.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `ozone.security.enabled` and `hdds.block.token.enabled`.
    pub block_tokens: bool,
    /// `ozone.security.enabled` and `hdds.container.token.enabled`.
    pub container_tokens: bool,
    /// `hdds.block.token.expiry.time`.
    pub token_lifetime: Duration,
    /// `hdds.secret.key.rotate.duration`.
    pub rotate: Duration,
    /// `hdds.secret.key.expiry.duration`.
    pub key_lifetime: Duration,
    /// `hdds.secret.key.rotate.check.duration`.
    pub rotate_check: Duration,
    /// Three heartbeat intervals: a new key signs only once every datanode has had the chance
    /// to learn it (see [`current_key`]).
    pub activation: Duration,
}

impl TokenSettings {
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, ConfigError> {
        let security = cfg.get_bool(keys::OZONE_SECURITY_ENABLED)?;
        Ok(TokenSettings {
            block_tokens: security && cfg.get_bool(keys::HDDS_BLOCK_TOKEN_ENABLED)?,
            container_tokens: security && cfg.get_bool(keys::HDDS_CONTAINER_TOKEN_ENABLED)?,
            token_lifetime: cfg.get_duration(keys::HDDS_BLOCK_TOKEN_EXPIRY_TIME)?,
            rotate: cfg.get_duration(keys::HDDS_SECRET_KEY_ROTATE_DURATION)?,
            key_lifetime: cfg.get_duration(keys::HDDS_SECRET_KEY_EXPIRY_DURATION)?,
            rotate_check: cfg.get_duration(keys::HDDS_SECRET_KEY_ROTATE_CHECK_DURATION)?,
            activation: cfg.get_duration(keys::HDDS_HEARTBEAT_INTERVAL)? * 3,
        })
    }

    /// Whether SCM keeps secret keys at all.
    pub fn any(&self) -> bool {
        self.block_tokens || self.container_tokens
    }
}

/// One of SCM's symmetric secret keys (Ozone's `ManagedSecretKey`, HmacSHA256).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKey {
    /// A UUID.
    pub id: String,
    /// Wall-clock ms since the epoch.
    pub created_ms: u64,
    /// After this (wall-clock ms) the key signs and verifies nothing.
    pub expires_ms: u64,
    /// 32 random bytes, hex in JSON.
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key bytes.
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// The key to sign with among `keys`: the newest unexpired one created at least `activation_ms`
/// ago (so every datanode has had a heartbeat to learn it), else the newest unexpired one.
pub fn current_key(keys: &[SecretKey], now_ms: u64, activation_ms: u64) -> Option<&SecretKey> {
    let live = || keys.iter().filter(|k| !k.is_expired(now_ms));
    live()
        .filter(|k| k.created_ms.saturating_add(activation_ms) <= now_ms)
        .max_by_key(|k| (k.created_ms, k.id.clone()))
        .or_else(|| live().max_by_key(|k| (k.created_ms, k.id.clone())))
}

/// Access modes a block token grants (Ozone's `AccessModeProto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes(u8);

impl Modes {
    pub const READ: Modes = Modes(1);
    pub const WRITE: Modes = Modes(2);
    pub const READ_WRITE: Modes = Modes(3);

    pub fn contains(self, other: Modes) -> bool {
        self.0 & other.0 == other.0
    }

    fn names(self) -> String {
        let mut v = Vec::new();
        if self.contains(Modes::READ) {
            v.push("READ");
        }
        if self.contains(Modes::WRITE) {
            v.push("WRITE");
        }
        v.join("+")
    }
}

/// What a block token says: `owner` may access block `container_id:local_id` with `modes`
/// until `expiry_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTokenId {
    pub owner: String,
    pub container_id: u64,
    pub local_id: u64,
    pub modes: Modes,
    pub expiry_ms: u64,
    pub key_id: String,
}

/// What a container token says: `owner` may copy container `container_id` until `expiry_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTokenId {
    pub owner: String,
    pub container_id: u64,
    pub expiry_ms: u64,
    pub key_id: String,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no {0} token")]
    Missing(&'static str),
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token signed with unknown secret key {0}")]
    UnknownKey(String),
    #[error("token signed with expired secret key {0}")]
    KeyExpired(String),
    #[error("token signature does not match")]
    BadSignature,
    #[error("token expired at {expiry_ms} (now {now_ms})")]
    Expired { expiry_ms: u64, now_ms: u64 },
    #[error("token is for {token}, not {request}")]
    WrongTarget { token: String, request: String },
    #[error("token grants {granted}, the call needs {needed}")]
    WrongMode { granted: String, needed: String },
}

/// A decoded identifier of either kind.
enum Identifier {
    Block(BlockTokenId),
    Container(ContainerTokenId),
}

impl Identifier {
    fn key_id(&self) -> &str {
        match self {
            Identifier::Block(b) => &b.key_id,
            Identifier::Container(c) => &c.key_id,
        }
    }

    fn expiry_ms(&self) -> u64 {
        match self {
            Identifier::Block(b) => b.expiry_ms,
            Identifier::Container(c) => c.expiry_ms,
        }
    }

    /// version, kind, key id, owner, then per kind: block (container id, local id, modes,
    /// expiry) or container (container id, expiry). Integers big-endian, strings u16-length
    /// prefixed.
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        let put_str = |out: &mut Vec<u8>, s: &str| {
            let b = s.as_bytes();
            let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&b[..usize::from(len)]);
        };
        match self {
            Identifier::Block(b) => {
                out.push(KIND_BLOCK);
                put_str(&mut out, &b.key_id);
                put_str(&mut out, &b.owner);
                out.extend_from_slice(&b.container_id.to_be_bytes());
                out.extend_from_slice(&b.local_id.to_be_bytes());
                out.push(b.modes.0);
                out.extend_from_slice(&b.expiry_ms.to_be_bytes());
            }
            Identifier::Container(c) => {
                out.push(KIND_CONTAINER);
                put_str(&mut out, &c.key_id);
                put_str(&mut out, &c.owner);
                out.extend_from_slice(&c.container_id.to_be_bytes());
                out.extend_from_slice(&c.expiry_ms.to_be_bytes());
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Identifier, TokenError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(TokenError::Malformed(format!("version {version}")));
        }
        let kind = r.u8()?;
        let key_id = r.string()?;
        let owner = r.string()?;
        let id = match kind {
            KIND_BLOCK => Identifier::Block(BlockTokenId {
                key_id,
                owner,
                container_id: r.u64()?,
                local_id: r.u64()?,
                modes: Modes(r.u8()?),
                expiry_ms: r.u64()?,
            }),
            KIND_CONTAINER => Identifier::Container(ContainerTokenId {
                key_id,
                owner,
                container_id: r.u64()?,
                expiry_ms: r.u64()?,
            }),
            k => return Err(TokenError::Malformed(format!("kind {k}"))),
        };
        if !r.0.is_empty() {
            return Err(TokenError::Malformed("trailing bytes".into()));
        }
        Ok(id)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], TokenError> {
        if self.0.len() < n {
            return Err(TokenError::Malformed("truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, TokenError> {
        let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes taken");
        Ok(u64::from_be_bytes(b))
    }
    fn string(&mut self) -> Result<String, TokenError> {
        let len: [u8; 2] = self.take(2)?.try_into().expect("2 bytes taken");
        let s = self.take(usize::from(u16::from_be_bytes(len)))?;
        String::from_utf8(s.to_vec()).map_err(|_| TokenError::Malformed("not UTF-8".into()))
    }
}

fn sign(id: &Identifier, key: &SecretKey) -> Vec<u8> {
    let mut out = id.encode();
    let mac = hmac_sha256(&key.key, &out);
    out.extend_from_slice(&mac);
    out
}

/// A signed block token (its `key_id` is replaced by `key`'s id).
pub fn sign_block(id: &BlockTokenId, key: &SecretKey) -> Vec<u8> {
    let mut id = id.clone();
    id.key_id = key.id.clone();
    sign(&Identifier::Block(id), key)
}

/// A signed container token (its `key_id` is replaced by `key`'s id).
pub fn sign_container(id: &ContainerTokenId, key: &SecretKey) -> Vec<u8> {
    let mut id = id.clone();
    id.key_id = key.id.clone();
    sign(&Identifier::Container(id), key)
}

/// The secret keys a verifier knows, by id.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<String, SecretKey>,
}

impl KeyRing {
    pub fn new(keys: impl IntoIterator<Item = SecretKey>) -> Self {
        KeyRing {
            keys: keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Decodes, finds the key (known, not expired), checks the MAC and the token's expiry.
    fn open(
        &self,
        token: &[u8],
        what: &'static str,
        now_ms: u64,
    ) -> Result<Identifier, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing(what));
        }
        if token.len() <= MAC_LEN {
            return Err(TokenError::Malformed("too short".into()));
        }
        let (body, mac) = token.split_at(token.len() - MAC_LEN);
        let id = Identifier::decode(body)?;
        let key = self
            .keys
            .get(id.key_id())
            .ok_or_else(|| TokenError::UnknownKey(id.key_id().to_string()))?;
        if key.is_expired(now_ms) {
            return Err(TokenError::KeyExpired(key.id.clone()));
        }
        if !constant_time_eq(&hmac_sha256(&key.key, body), mac) {
            return Err(TokenError::BadSignature);
        }
        if now_ms >= id.expiry_ms() {
            return Err(TokenError::Expired {
                expiry_ms: id.expiry_ms(),
                now_ms,
            });
        }
        Ok(id)
    }

    /// Checks a block token for a call on block `container_id:local_id` needing `needed`.
    pub fn verify_block(
        &self,
        token: &[u8],
        container_id: u64,
        local_id: u64,
        needed: Modes,
        now_ms: u64,
    ) -> Result<BlockTokenId, TokenError> {
        let Identifier::Block(id) = self.open(token, "block", now_ms)? else {
            return Err(TokenError::Malformed(
                "a container token, not a block token".into(),
            ));
        };
        if (id.container_id, id.local_id) != (container_id, local_id) {
            return Err(TokenError::WrongTarget {
                token: format!("block {}:{}", id.container_id, id.local_id),
                request: format!("block {container_id}:{local_id}"),
            });
        }
        if !id.modes.contains(needed) {
            return Err(TokenError::WrongMode {
                granted: id.modes.names(),
                needed: needed.names(),
            });
        }
        Ok(id)
    }

    /// Checks a container token for a call on container `container_id`.
    pub fn verify_container(
        &self,
        token: &[u8],
        container_id: u64,
        now_ms: u64,
    ) -> Result<ContainerTokenId, TokenError> {
        let Identifier::Container(id) = self.open(token, "container", now_ms)? else {
            return Err(TokenError::Malformed(
                "a block token, not a container token".into(),
            ));
        };
        if id.container_id != container_id {
            return Err(TokenError::WrongTarget {
                token: format!("container {}", id.container_id),
                request: format!("container {container_id}"),
            });
        }
        Ok(id)
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> SecretKey {
        SecretKey {
            id: id.into(),
            created_ms: 1_000,
            expires_ms: 100_000,
            key: vec![byte; 32],
        }
    }

    fn block_id() -> BlockTokenId {
        BlockTokenId {
            owner: "alice".into(),
            container_id: 7,
            local_id: 42,
            modes: Modes::READ_WRITE,
            expiry_ms: 50_000,
            key_id: String::new(),
        }
    }

    #[test]
    fn a_signed_block_token_verifies_for_its_block_and_modes() {
        let k = key("k1", 1);
        let ring = KeyRing::new([k.clone()]);
        let t = sign_block(&block_id(), &k);
        let id = ring
            .verify_block(&t, 7, 42, Modes::WRITE, 2_000)
            .expect("valid");
        assert_eq!(id.owner, "alice");
        assert_eq!(id.key_id, "k1");
        ring.verify_block(&t, 7, 42, Modes::READ, 2_000)
            .expect("read too");
    }

    #[test]
    fn refuses_missing_wrong_block_mode_expired_and_unknown_key() {
        let k = key("k1", 1);
        let ring = KeyRing::new([k.clone()]);
        let t = sign_block(&block_id(), &k);
        assert_eq!(
            ring.verify_block(&[], 7, 42, Modes::READ, 2_000),
            Err(TokenError::Missing("block"))
        );
        assert!(matches!(
            ring.verify_block(&t, 7, 43, Modes::READ, 2_000),
            Err(TokenError::WrongTarget { .. })
        ));
        assert!(matches!(
            ring.verify_block(&t, 8, 42, Modes::READ, 2_000),
            Err(TokenError::WrongTarget { .. })
        ));
        let read_only = sign_block(
            &BlockTokenId {
                modes: Modes::READ,
                ..block_id()
            },
            &k,
        );
        assert!(matches!(
            ring.verify_block(&read_only, 7, 42, Modes::WRITE, 2_000),
            Err(TokenError::WrongMode { .. })
        ));
        assert!(matches!(
            ring.verify_block(&t, 7, 42, Modes::READ, 50_000),
            Err(TokenError::Expired { .. })
        ));
        // Signed with a key the verifier does not know.
        let other = sign_block(&block_id(), &key("k2", 1));
        assert_eq!(
            ring.verify_block(&other, 7, 42, Modes::READ, 2_000),
            Err(TokenError::UnknownKey("k2".into()))
        );
        // The key itself expired.
        assert_eq!(
            ring.verify_block(&t, 7, 42, Modes::READ, 100_000),
            Err(TokenError::KeyExpired("k1".into()))
        );
        // Same id, different key bytes.
        let forged = sign_block(&block_id(), &key("k1", 2));
        assert_eq!(
            ring.verify_block(&forged, 7, 42, Modes::READ, 2_000),
            Err(TokenError::BadSignature)
        );
        // A container token is no block token.
        let ct = sign_container(
            &ContainerTokenId {
                owner: "scm".into(),
                container_id: 7,
                expiry_ms: 50_000,
                key_id: String::new(),
            },
            &k,
        );
        assert!(matches!(
            ring.verify_block(&ct, 7, 42, Modes::READ, 2_000),
            Err(TokenError::Malformed(_))
        ));
        ring.verify_container(&ct, 7, 2_000).expect("valid");
        assert!(matches!(
            ring.verify_container(&ct, 8, 2_000),
            Err(TokenError::WrongTarget { .. })
        ));
        assert!(matches!(
            ring.verify_container(&t, 7, 2_000),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn tampering_with_any_byte_is_refused() {
        let k = key("k1", 1);
        let ring = KeyRing::new([k.clone()]);
        let t = sign_block(&block_id(), &k);
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x01;
            let r = ring.verify_block(&bad, 7, 42, Modes::READ, 2_000);
            assert!(r.is_err(), "flipping byte {i} must be refused, got {r:?}");
        }
        // Every field rewritten to something else, with the original MAC.
        let mac = &t[t.len() - MAC_LEN..];
        let tampered = [
            BlockTokenId {
                owner: "mallory".into(),
                ..block_id()
            },
            BlockTokenId {
                container_id: 8,
                ..block_id()
            },
            BlockTokenId {
                local_id: 1,
                ..block_id()
            },
            BlockTokenId {
                modes: Modes::WRITE,
                ..block_id()
            },
            BlockTokenId {
                expiry_ms: 99_999,
                ..block_id()
            },
        ];
        for id in tampered {
            let mut bytes = Identifier::Block(BlockTokenId {
                key_id: "k1".into(),
                ..id.clone()
            })
            .encode();
            bytes.extend_from_slice(mac);
            assert_eq!(
                ring.verify_block(&bytes, id.container_id, id.local_id, id.modes, 2_000),
                Err(TokenError::BadSignature),
                "{id:?}"
            );
        }
        // A different key id in the identifier: unknown, or a MAC mismatch under that key.
        let ring2 = KeyRing::new([k.clone(), key("k2", 9)]);
        let mut bytes = Identifier::Block(BlockTokenId {
            key_id: "k2".into(),
            ..block_id()
        })
        .encode();
        bytes.extend_from_slice(mac);
        assert_eq!(
            ring2.verify_block(&bytes, 7, 42, Modes::READ, 2_000),
            Err(TokenError::BadSignature)
        );
        assert!(
            ring.verify_block(&t[..t.len() - 1], 7, 42, Modes::READ, 2_000)
                .is_err(),
            "a cut token"
        );
    }

    #[test]
    fn current_key_prefers_the_newest_key_every_datanode_had_time_to_learn() {
        let mut a = key("a", 1);
        a.created_ms = 1_000;
        let mut b = key("b", 2);
        b.created_ms = 5_000;
        let keys = vec![a, b];
        assert_eq!(
            current_key(&keys, 5_500, 1_000).map(|k| k.id.as_str()),
            Some("a")
        );
        assert_eq!(
            current_key(&keys, 6_000, 1_000).map(|k| k.id.as_str()),
            Some("b")
        );
        assert_eq!(
            current_key(&keys[..1], 1_100, 1_000).map(|k| k.id.as_str()),
            Some("a")
        );
        assert!(current_key(&keys, 100_000, 0).is_none(), "all expired");
    }

    #[test]
    fn secret_keys_round_trip_as_json_and_never_print_their_bytes() {
        let k = key("k1", 0xab);
        let json = serde_json::to_string(&k).expect("json");
        let back: SecretKey = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, k);
        assert!(!format!("{k:?}").contains("ab"));
    }
}
