//! Bucket links (`ozone sh bucket link /vol1/bucket1 /s3v/common-bucket`): a bucket record
//! that points at another bucket, as Ozone's `sourceVolume`/`sourceBucket`.
//!
//! Links are resolved by the leader before any key call is prepared or read, on the same
//! database snapshot the call reads (so apply never sees a link: it refuses one). A chain of
//! links is followed to its end; a name seen twice is DETECTED_LOOP_IN_BUCKET_LINKS, and a
//! link whose source is missing answers the source's BUCKET_NOT_FOUND / VOLUME_NOT_FOUND.

use ozone_proto::om::OmStatus;

use crate::error::OmError;
use crate::model::BucketRecord;
use crate::store::Snapshot;

/// Longest chain followed (Ozone stops at the first name seen twice; this also bounds it).
pub const MAX_LINK_DEPTH: usize = 16;

/// The bucket `/volume/bucket` stands for: itself, or the end of its chain of links.
pub fn resolve(s: &Snapshot, volume: &str, bucket: &str) -> Result<BucketRecord, OmError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let (mut v, mut b) = (volume.to_string(), bucket.to_string());
    loop {
        let rec = s.require_bucket(&v, &b)?;
        let Some(source) = rec.source.clone() else {
            return Ok(rec);
        };
        seen.push((v, b));
        if seen.contains(&source) || seen.len() > MAX_LINK_DEPTH {
            return Err(OmError::reject(
                OmStatus::DetectedLoopInBucketLinks,
                format!(
                    "detected loop in bucket links: {}",
                    seen.iter()
                        .chain(std::iter::once(&source))
                        .map(|(v, b)| format!("/{v}/{b}"))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                ),
            ));
        }
        (v, b) = source;
    }
}

/// `(volume, bucket)` after resolving links.
pub fn resolve_names(
    s: &Snapshot,
    volume: &str,
    bucket: &str,
) -> Result<(String, String), OmError> {
    let rec = resolve(s, volume, bucket)?;
    Ok((rec.volume, rec.name))
}
