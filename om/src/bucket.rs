//! Buckets and bucket links: the leader's preparation (create, link, delete, info, list,
//! resolving links) and the apply of [`BucketCommand`]s.
//!
//! Bucket links (`ozone sh bucket link /vol1/bucket1 /s3v/common-bucket`): a bucket record
//! that points at another bucket, as Ozone's `sourceVolume`/`sourceBucket`.
//!
//! Links are resolved by the leader before any key call is prepared or read, on the same
//! database snapshot the call reads (so apply never sees a link: it refuses one). A chain of
//! links is followed to its end; a name seen twice is DETECTED_LOOP_IN_BUCKET_LINKS, and a
//! link whose source is missing answers the source's BUCKET_NOT_FOUND / VOLUME_NOT_FOUND.

use std::collections::BTreeMap;

use ozone_common::now_ms;
use ozone_proto::om::{self, OmStatus};

use crate::apply::{Writer, drain_prefix, has_prefix, reject};
use crate::command::{BucketCommand, CreateBucket, DeleteBucket, OmResponse};
use crate::error::{OmError, Rejection};
use crate::manager::{OzoneManager, blocking, check_bucket_ref, unexpected};
use crate::model::{
    BucketRecord, OpenKeyRecord, PartRecord, UploadRecord, VolumeRecord, resolve_replication,
    validate_resource_name,
};
use crate::store::{self, Snapshot, bucket_key, bucket_prefix, get, volume_key};

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

impl OzoneManager {
    /// An empty owner means the volume's owner; replication 0 the server default.
    pub async fn create_bucket(
        &self,
        req: om::CreateBucketRequest,
    ) -> Result<om::BucketInfo, OmError> {
        check_bucket_ref(&req.volume, &req.bucket)?;
        self.submit_create(
            "CreateBucket",
            req.volume,
            req.bucket,
            req.owner,
            req.replication,
            None,
        )
        .await
    }

    /// A link bucket `/volume/bucket` -> `/source_volume/source_bucket` (the source need not
    /// exist: a dangling link answers BUCKET_NOT_FOUND when used).
    pub async fn create_bucket_link(
        &self,
        req: om::CreateBucketLinkRequest,
    ) -> Result<om::BucketInfo, OmError> {
        check_bucket_ref(&req.volume, &req.bucket)?;
        check_bucket_ref(&req.source_volume, &req.source_bucket)?;
        if (req.volume.as_str(), req.bucket.as_str())
            == (req.source_volume.as_str(), req.source_bucket.as_str())
        {
            return Err(OmError::reject(
                OmStatus::DetectedLoopInBucketLinks,
                format!(
                    "bucket /{}/{} cannot link to itself",
                    req.volume, req.bucket
                ),
            ));
        }
        self.submit_create(
            "CreateBucketLink",
            req.volume,
            req.bucket,
            req.owner,
            0,
            Some((req.source_volume, req.source_bucket)),
        )
        .await
    }

    /// Submits the [`CreateBucket`] of a bucket or a link (`link`); `replication` 0 is the
    /// server default.
    async fn submit_create(
        &self,
        op: &str,
        volume: String,
        bucket: String,
        owner: String,
        replication: u32,
        link: Option<(String, String)>,
    ) -> Result<om::BucketInfo, OmError> {
        let replication = resolve_replication(replication, self.config.default_replication)?;
        let cmd = CreateBucket {
            volume,
            bucket,
            owner,
            replication,
            now_ms: now_ms(),
            link,
        };
        match self.submit(cmd).await? {
            OmResponse::Bucket(b) => Ok((&b).into()),
            other => Err(unexpected(op, other)),
        }
    }

    /// The bucket a name stands for, links followed.
    pub async fn resolve_bucket(&self, req: om::BucketRef) -> Result<om::BucketInfo, OmError> {
        self.read(move |s| resolve(s, &req.volume, &req.bucket).map(|b| (&b).into()))
            .await
    }

    /// Resolves links on this OM's applied state for a mutation about to be prepared (no
    /// read-index round: a write must not pay for a second one). When the names do not resolve
    /// here (this leader may not have applied the newest entries yet), they go unchanged and
    /// apply decides; apply refuses a link, so a key is never stored under one.
    pub(crate) async fn resolve_for_write(
        &self,
        volume: String,
        bucket: String,
    ) -> Result<(String, String), OmError> {
        let sm = self.sm.clone();
        blocking(
            move || match resolve_names(&sm.snapshot()?, &volume, &bucket) {
                Ok(names) => Ok(names),
                Err(e) if e.status() == OmStatus::DetectedLoopInBucketLinks => Err(e),
                Err(_) => Ok((volume, bucket)),
            },
        )
        .await
    }

    pub async fn info_bucket(&self, req: om::BucketRef) -> Result<om::BucketInfo, OmError> {
        self.read(move |s| {
            s.require_bucket(&req.volume, &req.bucket)
                .map(|b| (&b).into())
        })
        .await
    }

    pub async fn list_buckets(
        &self,
        req: om::ListBucketsRequest,
    ) -> Result<om::ListBucketsResponse, OmError> {
        self.read(move |s| {
            let buckets = s.list_buckets(&req.volume, &req.prefix, &req.start_after, req.max)?;
            Ok(om::ListBucketsResponse {
                buckets: buckets.iter().map(Into::into).collect(),
            })
        })
        .await
    }

    pub async fn delete_bucket(&self, req: om::BucketRef) -> Result<om::Empty, OmError> {
        self.submit(DeleteBucket {
            volume: req.volume,
            bucket: req.bucket,
        })
        .await?;
        Ok(om::Empty {})
    }
}

impl Writer<'_> {
    pub(crate) fn apply_bucket(&mut self, cmd: &BucketCommand) -> Result<OmResponse, OmError> {
        match cmd {
            BucketCommand::Create(c) => self.create_bucket(
                &c.volume,
                &c.bucket,
                &c.owner,
                c.replication,
                c.now_ms,
                c.link.clone(),
            ),
            BucketCommand::Delete(c) => self.delete_bucket(&c.volume, &c.bucket),
        }
    }

    fn create_bucket(
        &mut self,
        volume: &str,
        bucket: &str,
        owner: &str,
        replication: u32,
        now_ms: u64,
        link: Option<(String, String)>,
    ) -> Result<OmResponse, OmError> {
        validate_resource_name("bucket", bucket)?;
        let vol: VolumeRecord =
            get(&self.volumes, "volumes", &volume_key(volume))?.ok_or_else(|| {
                OmError::reject(
                    OmStatus::VolumeNotFound,
                    format!("volume {volume} not found"),
                )
            })?;
        let owner = if owner.is_empty() {
            vol.owner.as_str()
        } else {
            owner
        };
        let k = bucket_key(volume, bucket);
        if let Some(existing) = get::<BucketRecord>(&self.buckets, "buckets", &k)? {
            let message = if existing.owner == owner {
                format!("bucket /{volume}/{bucket} already exists and is owned by you")
            } else {
                format!("bucket /{volume}/{bucket} already exists and is owned by another user")
            };
            return Err(OmError::Rejected(Rejection {
                status: OmStatus::BucketAlreadyExists,
                message,
                owner: Some(existing.owner),
            }));
        }
        let rec = BucketRecord {
            volume: volume.to_string(),
            name: bucket.to_string(),
            owner: owner.to_string(),
            creation_time_ms: now_ms,
            replication,
            tags: BTreeMap::new(),
            acl: Vec::new(),
            source: link,
        };
        Self::put(&mut self.buckets, &k, &rec)?;
        Ok(OmResponse::Bucket(rec))
    }

    /// Deleting a link removes only the link (it holds no keys).
    fn delete_bucket(&mut self, volume: &str, bucket: &str) -> Result<OmResponse, OmError> {
        store::require_bucket(&self.volumes, &self.buckets, volume, bucket)?;
        let prefix = bucket_prefix(volume, bucket);
        if has_prefix(&self.keys, &prefix)? {
            return reject(
                OmStatus::BucketNotEmpty,
                format!("bucket /{volume}/{bucket} is not empty"),
            );
        }
        // Incomplete uploads and open keys do not keep a bucket alive: abort them.
        for (_, u) in drain_prefix::<UploadRecord>(&mut self.uploads, "multipart_uploads", &prefix)?
        {
            tracing::debug!(upload = %u.upload_id, key = %u.key, "aborting upload of deleted bucket");
        }
        for (_, p) in drain_prefix::<PartRecord>(&mut self.parts, "multipart_parts", &prefix)? {
            self.released.extend(p.locations.iter().map(|l| l.block));
        }
        for (k, o) in drain_prefix::<OpenKeyRecord>(&mut self.open_keys, "open_keys", &prefix)? {
            self.remove_open_key(&k, &o)?;
            self.released.extend(o.locations.iter().map(|l| l.block));
        }
        self.buckets.remove(bucket_key(volume, bucket).as_slice())?;
        Ok(OmResponse::Done)
    }
}
