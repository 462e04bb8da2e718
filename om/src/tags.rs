//! S3 tags of keys and buckets: the limits OM enforces (the gateway checks them first and
//! answers InvalidTag; these guard every other client), the leader's preparation of
//! SetKeyTags / SetBucketTags and the apply of [`TagCommand`]s.

use std::collections::{BTreeMap, HashMap};

use ozone_proto::om::{self, OmStatus};

use crate::apply::{Writer, reject};
use crate::command::{OmResponse, SetBucketTags, SetKeyTags, TagCommand};
use crate::error::OmError;
use crate::manager::{OzoneManager, check_bucket_ref, check_key_ref, unexpected};
use crate::model::KeyRecord;
use crate::store::{self, bucket_key, get, key_key};

/// Most tags of one key (S3's limit).
pub const MAX_KEY_TAGS: usize = 10;
/// Most tags of one bucket (S3's limit).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in Unicode characters.
pub const MAX_TAG_VALUE: usize = 256;

/// The tags of a request, checked against the limits, as stored.
pub fn check_tags(
    tags: HashMap<String, String>,
    max: usize,
) -> Result<BTreeMap<String, String>, OmError> {
    if tags.len() > max {
        return Err(OmError::invalid(format!(
            "{} tags; at most {max} are allowed",
            tags.len()
        )));
    }
    for (k, v) in &tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(OmError::invalid(format!(
                "tag key {k:?} must be 1 to {MAX_TAG_KEY} characters"
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(OmError::invalid(format!(
                "the value of tag {k:?} is longer than {MAX_TAG_VALUE} characters"
            )));
        }
    }
    Ok(tags.into_iter().collect())
}

impl OzoneManager {
    pub async fn set_key_tags(&self, req: om::SetKeyTagsRequest) -> Result<om::KeyInfo, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = SetKeyTags {
            volume,
            bucket,
            key: req.key,
            tags: check_tags(req.tags, MAX_KEY_TAGS)?,
        };
        match self.submit(cmd).await? {
            OmResponse::Key(k) => Ok(k.to_proto(false)),
            other => Err(unexpected("SetKeyTags", other)),
        }
    }

    pub async fn set_bucket_tags(
        &self,
        req: om::SetBucketTagsRequest,
    ) -> Result<om::BucketInfo, OmError> {
        check_bucket_ref(&req.volume, &req.bucket)?;
        let cmd = SetBucketTags {
            volume: req.volume,
            bucket: req.bucket,
            tags: check_tags(req.tags, MAX_BUCKET_TAGS)?,
        };
        match self.submit(cmd).await? {
            OmResponse::Bucket(b) => Ok((&b).into()),
            other => Err(unexpected("SetBucketTags", other)),
        }
    }
}

impl Writer<'_> {
    pub(crate) fn apply_tags(&mut self, cmd: &TagCommand) -> Result<OmResponse, OmError> {
        match cmd {
            TagCommand::SetKeyTags(c) => self.set_key_tags(c),
            TagCommand::SetBucketTags(c) => self.set_bucket_tags(c),
        }
    }

    fn set_key_tags(&mut self, c: &SetKeyTags) -> Result<OmResponse, OmError> {
        let (volume, bucket, key) = (&c.volume, &c.bucket, &c.key);
        self.require_bucket(volume, bucket)?;
        let kk = key_key(volume, bucket, key);
        let Some(mut rec) = get::<KeyRecord>(&self.keys, "keys", &kk)? else {
            return reject(
                OmStatus::KeyNotFound,
                format!("key /{volume}/{bucket}/{key} not found"),
            );
        };
        rec.tags = c.tags.clone();
        Self::put(&mut self.keys, &kk, &rec)?;
        Ok(OmResponse::Key(rec))
    }

    fn set_bucket_tags(&mut self, c: &SetBucketTags) -> Result<OmResponse, OmError> {
        let (volume, bucket) = (&c.volume, &c.bucket);
        let mut rec = store::require_bucket(&self.volumes, &self.buckets, volume, bucket)?;
        rec.tags = c.tags.clone();
        Self::put(&mut self.buckets, &bucket_key(volume, bucket), &rec)?;
        Ok(OmResponse::Bucket(rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let tags = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert_eq!(
            check_tags(tags(10), MAX_KEY_TAGS).map(|t| t.len()).ok(),
            Some(10)
        );
        assert!(check_tags(tags(11), MAX_KEY_TAGS).is_err());
        assert!(check_tags(tags(50), MAX_BUCKET_TAGS).is_ok());
        let one = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(check_tags(one(&"k".repeat(128), &"v".repeat(256)), 10).is_ok());
        assert!(check_tags(one(&"k".repeat(129), "v"), 10).is_err());
        assert!(check_tags(one("k", &"v".repeat(257)), 10).is_err());
        assert!(check_tags(one("", "v"), 10).is_err());
    }
}
