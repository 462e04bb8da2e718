//! `ozone admin verify-etags`: the background check of objects stored whole. For every object
//! of a bucket that was stored in one PUT (its ETag is the MD5 of its bytes, S3's rule), reads
//! the object back through the verified, failing-over reader (which also checks each block
//! against OM's record of its chunk checksums), recomputes the MD5 and reports the objects whose
//! bytes no longer match their ETag or cannot be read. Multipart objects (ETag `<md5>-<parts>`)
//! are skipped: their ETag is not a digest of the bytes.

use clap::Args;
use datanode_client::DatanodeClients;
use futures::StreamExt;
use md5::{Digest, Md5};
use om_client::OmClient;
use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_proto::om::{KeyInfo, ListKeysRequest};
use serde_json::json;

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, Args)]
pub struct VerifyEtagsArgs {
    /// The bucket to check.
    pub bucket: String,
    /// Its volume (default: the S3 volume, `ozone.s3g.volume.name`).
    #[arg(long)]
    pub volume: Option<String>,
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Print one JSON document: {"checked", "bytes", "skipped", "mismatched": [..], "unreadable": [..]}.
    #[arg(long)]
    pub json: bool,
}

/// What one object's check found.
enum Verdict {
    Match(u64),
    Mismatch { computed: String },
    Unreadable(String),
    Skipped,
}

/// Runs the check; fails (exit status 1) when an object does not match or cannot be read.
pub async fn run(cfg: &OzoneConfig, args: VerifyEtagsArgs) -> Result<(), BoxError> {
    let volume = args
        .volume
        .clone()
        .unwrap_or_else(|| cfg.get(keys::OZONE_S3G_VOLUME_NAME));
    let om = OmClient::connect(cfg.om_addresses())?;
    let scm = scm_client::ScmClient::connect_service(&cfg.scm_client_addresses()).ok();
    let dn = DatanodeClients::from_config(cfg)?;
    let (mut checked, mut bytes, mut skipped) = (0u64, 0u64, 0u64);
    let (mut mismatched, mut unreadable) = (Vec::new(), Vec::new());
    let mut start_after = String::new();
    loop {
        let page = om
            .list_keys(ListKeysRequest {
                volume: volume.clone(),
                bucket: args.bucket.clone(),
                prefix: args.prefix.clone(),
                start_after: start_after.clone(),
                delimiter: String::new(),
                max_keys: 1000,
            })
            .await?;
        for listed in &page.keys {
            let verdict = match om.lookup_key(&volume, &args.bucket, &listed.key).await {
                // Deleted since it was listed: nothing to check.
                Err(e) if e.status() == om_client::OmStatus::KeyNotFound => Verdict::Skipped,
                Err(e) => Verdict::Unreadable(e.to_string()),
                Ok(info) => check(&dn, scm.clone(), &info).await,
            };
            match verdict {
                Verdict::Match(n) => {
                    checked += 1;
                    bytes += n;
                }
                Verdict::Skipped => skipped += 1,
                Verdict::Mismatch { computed } => {
                    checked += 1;
                    if !args.json {
                        println!(
                            "MISMATCH {}: ETag {} but its bytes have MD5 {computed}",
                            listed.key, listed.etag
                        );
                    }
                    mismatched
                        .push(json!({"key": listed.key, "etag": listed.etag, "md5": computed}));
                }
                Verdict::Unreadable(error) => {
                    checked += 1;
                    if !args.json {
                        println!("UNREADABLE {}: {error}", listed.key);
                    }
                    unreadable.push(json!({"key": listed.key, "error": error}));
                }
            }
        }
        if !page.truncated || page.next_start_after.is_empty() {
            break;
        }
        start_after = page.next_start_after;
    }
    if args.json {
        println!(
            "{}",
            json!({"checked": checked, "bytes": bytes, "skipped": skipped,
                "mismatched": mismatched, "unreadable": unreadable})
        );
    } else {
        println!(
            "checked {checked} objects stored whole ({bytes} bytes) in /{volume}/{}: {} mismatched, {} unreadable; {skipped} skipped (multipart or deleted)",
            args.bucket,
            mismatched.len(),
            unreadable.len()
        );
    }
    if mismatched.is_empty() && unreadable.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} objects do not match their ETag, {} cannot be read",
            mismatched.len(),
            unreadable.len()
        )
        .into())
    }
}

/// Whether `etag` is an MD5 of the bytes: 32 hex digits (a multipart ETag has `-<parts>`).
fn is_md5_etag(etag: &str) -> bool {
    let etag = etag.trim_matches('"');
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn check(
    dn: &DatanodeClients,
    scm: Option<scm_client::ScmClient>,
    info: &KeyInfo,
) -> Verdict {
    if info.parts_count != 0 || !is_md5_etag(&info.etag) {
        return Verdict::Skipped;
    }
    let mut md5 = Md5::new();
    let mut stream = Box::pin(ozone_client::read_key(dn, scm, info, 0, info.size));
    let mut got = 0u64;
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(bytes) => {
                got += bytes.len() as u64;
                md5.update(&bytes);
            }
            Err(e) => return Verdict::Unreadable(e.to_string()),
        }
    }
    if got != info.size {
        return Verdict::Unreadable(format!("read {got} bytes of {}", info.size));
    }
    let computed = hex::encode(md5.finalize());
    if computed.eq_ignore_ascii_case(info.etag.trim_matches('"')) {
        Verdict::Match(got)
    } else {
        Verdict::Mismatch { computed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_md5_etags_are_checked() {
        assert!(is_md5_etag("0cc175b9c0f1b6a831c399e269772661"));
        assert!(is_md5_etag("\"0cc175b9c0f1b6a831c399e269772661\""));
        assert!(!is_md5_etag("0cc175b9c0f1b6a831c399e269772661-2"));
        assert!(!is_md5_etag(""));
        assert!(!is_md5_etag("zzc175b9c0f1b6a831c399e269772661"));
    }
}
