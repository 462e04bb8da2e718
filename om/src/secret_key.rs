//! Secrets at rest: the OM secret key (`ozone.om.secret.key.file`, default
//! `<om db dir>/om.key`) and what it protects. With security on, an S3 secret is sealed with
//! AES-256-GCM by the leader before its `CreateS3Secret` command is proposed, so neither the raft
//! log, nor `om.db`, nor a snapshot holds it in clear; reads of the `s3_secrets` table open it
//! again ([`crate::store::Snapshot::s3_secret`]). The admin credential is kept in memory only as
//! an HMAC-SHA256 under the same key ([`AdminVerifier`]).
//!
//! Only OMs hold the key: a file of 64 hex digits created with mode 0600 at the first start with
//! security on. Every OM of an HA service must be given the same file (as the admin credential).
//!
//! Stored form of a sealed secret: `aesgcm1:` + hex(12-byte nonce ‖ ciphertext ‖ 16-byte tag),
//! the user name as associated data (a sealed secret moved to another user does not open).
//! A stored secret without that prefix is a clear one written before secrets were sealed
//! (accepted as it is, see [`SecretKey::open`]).

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use ozone_common::sigv4;

use crate::error::OmError;

/// Name of the key file in the OM db directory (when not configured).
pub const SECRET_KEY_FILE: &str = "om.key";
/// Prefix of a sealed secret.
const SEALED_PREFIX: &str = "aesgcm1:";
const NONCE_LEN: usize = 12;

/// The OM secret key (AES-256). Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey {
    key: [u8; 32],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let k = Aes256Gcm::generate_key(OsRng);
        let mut key = [0u8; 32];
        key.copy_from_slice(&k);
        SecretKey { key }
    }

    /// Parses the key file's content: 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, OmError> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| OmError::invalid(format!("OM secret key: not hex: {e}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            OmError::invalid(format!("OM secret key: {} bytes, not 32", b.len()))
        })?;
        Ok(SecretKey { key })
    }

    /// Reads the key from `path`, or creates it there (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, OmError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(OmError::io(format!("reading {}", path.display()), e)),
        }
        let key = Self::generate();
        key.write_new(path)
            .map_err(|e| OmError::io(format!("writing {}", path.display()), e))?;
        tracing::info!(file = %path.display(), "created the OM secret key");
        Ok(key)
    }

    /// Writes the key to a new file readable only by its owner, durably.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(format!("{}\n", hex::encode(self.key)).as_bytes())?;
        f.sync_all()?;
        if let Some(dir) = path.parent() {
            ozone_common::fsync_dir(dir)?;
        }
        Ok(())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key))
    }

    /// `secret` of `user` sealed: the stored form (a fresh random nonce each time).
    pub fn seal(&self, user: &str, secret: &str) -> Result<String, OmError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: user.as_bytes(),
                },
            )
            .map_err(|_| OmError::Internal("sealing an S3 secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", hex::encode(out)))
    }

    /// The clear secret of `user` from its stored form: a sealed one is opened (a wrong key,
    /// another user's or a tampered one fails); a clear one (written before secrets were
    /// sealed) is returned as it is.
    pub fn open(&self, user: &str, stored: &str) -> Result<String, OmError> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let bad = || OmError::Corrupt {
            table: "s3_secrets",
            message: format!(
                "the S3 secret of {user} does not open with this OM's secret key \
                 (ozone.om.secret.key.file must be the same file on every OM)"
            ),
        };
        let bytes = hex::decode(sealed).map_err(|_| bad())?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let clear = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: user.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(clear).map_err(|_| bad())
    }

    /// The admin credential's verifier under this key.
    pub fn admin_verifier(&self, token: &str) -> AdminVerifier {
        AdminVerifier {
            key: self.clone(),
            mac: sigv4::hmac_sha256(&self.key, token.as_bytes()),
        }
    }
}

/// Whether a stored secret is sealed (not a clear one from before sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// What OM keeps of the admin credential: its HMAC-SHA256 under the OM secret key, never the
/// credential itself.
#[derive(Clone)]
pub struct AdminVerifier {
    key: SecretKey,
    mac: [u8; 32],
}

impl std::fmt::Debug for AdminVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminVerifier(..)")
    }
}

impl AdminVerifier {
    /// Whether `token` is the admin credential (constant time).
    pub fn verify(&self, token: &str) -> bool {
        let mac = sigv4::hmac_sha256(&self.key.key, token.as_bytes());
        sigv4::constant_time_eq(&mac, &self.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_user() {
        let key = SecretKey::generate();
        let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let sealed = key.seal("alice", secret).expect("seal");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(secret), "the clear secret shows: {sealed}");
        assert_eq!(key.open("alice", &sealed).expect("open"), secret);
        // A fresh nonce each time: two seals of one secret differ, both open.
        let again = key.seal("alice", secret).expect("seal");
        assert_ne!(again, sealed);
        assert_eq!(key.open("alice", &again).expect("open"), secret);

        // The wrong key fails.
        let other = SecretKey::generate();
        assert!(matches!(
            other.open("alice", &sealed),
            Err(OmError::Corrupt { .. })
        ));
        // Another user's record fails (the user is associated data).
        assert!(key.open("bob", &sealed).is_err());
        // Any flipped bit of nonce, ciphertext or tag fails.
        let hex_part = sealed.strip_prefix(SEALED_PREFIX).expect("prefix");
        let bytes = hex::decode(hex_part).expect("hex");
        for i in [0, NONCE_LEN, bytes.len() / 2, bytes.len() - 1] {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            let tampered = format!("{SEALED_PREFIX}{}", hex::encode(t));
            assert!(key.open("alice", &tampered).is_err(), "byte {i} flipped");
        }
        // Truncated and non-hex forms fail.
        assert!(key.open("alice", &sealed[..sealed.len() - 2]).is_err());
        assert!(key.open("alice", "aesgcm1:zz").is_err());
        assert!(key.open("alice", "aesgcm1:00").is_err());
        // A clear secret from before sealing reads as it is.
        assert_eq!(key.open("alice", secret).expect("clear"), secret);
        assert!(!is_sealed(secret));
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("sub").join(SECRET_KEY_FILE);
        let key = SecretKey::load_or_create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let same = SecretKey::load_or_create(&path).expect("read");
        let sealed = key.seal("u", "s").expect("seal");
        assert_eq!(same.open("u", &sealed).expect("open"), "s");
        assert_eq!(format!("{key:?}"), "SecretKey(..)");

        std::fs::write(d.path().join("bad"), "not hex").expect("write");
        assert!(SecretKey::load_or_create(&d.path().join("bad")).is_err());
        std::fs::write(d.path().join("short"), "abcd").expect("write");
        assert!(SecretKey::load_or_create(&d.path().join("short")).is_err());
    }

    #[test]
    fn the_admin_verifier_accepts_only_the_credential() {
        let key = SecretKey::generate();
        let v = key.admin_verifier("token-1");
        assert!(v.verify("token-1"));
        assert!(!v.verify("token-2"));
        assert!(!v.verify(""));
        // Another key's verifier of the same token does not hold the same MAC.
        let other = SecretKey::generate().admin_verifier("token-1");
        assert_ne!(v.mac, other.mac);
        assert_eq!(format!("{v:?}"), "AdminVerifier(..)");
    }
}
