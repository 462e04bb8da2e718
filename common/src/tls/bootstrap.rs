//! The cluster's bootstrap secret: the proofs with which a node without a certificate asks
//! SCM for one and checks the answer, and the sealing of the CA key for another SCM.

use super::*;

/// The cluster's bootstrap secret (`ozone.security.bootstrap.secret.file`): a node that
/// holds it may ask SCM for its first certificate. Read from `path`; when `create` (the
/// primordial SCM) and the file is missing, a new random secret is written there (0600).
pub fn load_bootstrap_secret(path: &Path, create: bool) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {
            return Err(tls_error(
                &format!("bootstrap secret {}", path.display()),
                "the file is empty",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && create => {}
        Err(e) => {
            return Err(tls_error(
                &format!("bootstrap secret {}", path.display()),
                format!(
                    "{e}; with security on every node needs the cluster's bootstrap secret \
                     (created by the first SCM at its first start)"
                ),
            ));
        }
    }
    let mut bytes = [0u8; 32];
    rand_bytes(&mut bytes)?;
    let secret = hex::encode(bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| tls_error("bootstrap secret directory", e))?;
    }
    write_private(path, format!("{secret}\n").as_bytes())
        .map_err(|e| tls_error(&format!("writing {}", path.display()), e))?;
    tracing::info!(file = %path.display(), "created the cluster's bootstrap secret");
    Ok(secret)
}

/// Fills `out` from the operating system's random source.
pub fn rand_bytes(out: &mut [u8]) -> Result<(), ConfigError> {
    provider()
        .secure_random
        .fill(out)
        .map_err(|e| tls_error("random bytes", format!("{e:?}")))
}

fn mac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            m.update(b"\n");
        }
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn mac_matches(expected: &[u8], given: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == given.len() && bool::from(expected.ct_eq(given))
}

/// The proof a node without a certificate sends with its certificate request.
pub fn request_proof(secret: &str, role: &str, node_id: &str, csr_pem: &str) -> Vec<u8> {
    mac(
        secret,
        &[
            b"ozone-csr",
            role.as_bytes(),
            node_id.as_bytes(),
            csr_pem.as_bytes(),
        ],
    )
}

pub fn request_proof_matches(
    secret: &str,
    role: &str,
    node_id: &str,
    csr_pem: &str,
    proof: &[u8],
) -> bool {
    mac_matches(&request_proof(secret, role, node_id, csr_pem), proof)
}

/// The proof SCM sends back with a first certificate, which the node checks.
pub fn answer_proof(secret: &str, cert_pem: &str, ca_pem: &str, ca_key_sealed: &[u8]) -> Vec<u8> {
    mac(
        secret,
        &[
            b"ozone-cert",
            cert_pem.as_bytes(),
            ca_pem.as_bytes(),
            ca_key_sealed,
        ],
    )
}

pub fn answer_proof_matches(
    secret: &str,
    cert_pem: &str,
    ca_pem: &str,
    ca_key_sealed: &[u8],
    proof: &[u8],
) -> bool {
    mac_matches(
        &answer_proof(secret, cert_pem, ca_pem, ca_key_sealed),
        proof,
    )
}

fn seal_key(secret: &str) -> aes_gcm::Key<aes_gcm::Aes256Gcm> {
    let k = mac(secret, &[b"ozone-ca-key-seal"]);
    *aes_gcm::Key::<aes_gcm::Aes256Gcm>::from_slice(&k)
}

/// Seals the CA key for another SCM: AES-256-GCM with a key derived from the bootstrap
/// secret; the 12-byte nonce first.
pub fn seal_ca_key(secret: &str, key_pem: &str) -> Result<Vec<u8>, ConfigError> {
    use aes_gcm::aead::{Aead, KeyInit};
    let cipher = aes_gcm::Aes256Gcm::new(&seal_key(secret));
    let mut nonce = [0u8; 12];
    rand_bytes(&mut nonce)?;
    let sealed = cipher
        .encrypt(aes_gcm::Nonce::from_slice(&nonce), key_pem.as_bytes())
        .map_err(|_| tls_error("sealing the CA key", "encryption failed"))?;
    Ok([nonce.as_slice(), &sealed].concat())
}

pub fn open_ca_key(secret: &str, sealed: &[u8]) -> Result<String, ConfigError> {
    use aes_gcm::aead::{Aead, KeyInit};
    if sealed.len() < 12 {
        return Err(tls_error("opening the CA key", "too short"));
    }
    let cipher = aes_gcm::Aes256Gcm::new(&seal_key(secret));
    let plain = cipher
        .decrypt(aes_gcm::Nonce::from_slice(&sealed[..12]), &sealed[12..])
        .map_err(|_| tls_error("opening the CA key", "wrong secret or damaged"))?;
    String::from_utf8(plain).map_err(|e| tls_error("opening the CA key", e))
}
