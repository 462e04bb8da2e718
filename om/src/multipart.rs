//! Multipart uploads: the leader's preparation (initiate, complete, abort, list uploads and
//! parts) and the apply of [`MultipartCommand`]s. Parts are written as keys ([`crate::key`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use md5::{Digest, Md5};
use ozone_common::now_ms;
use ozone_proto::om::{self, OmStatus};
use redb::ReadableTable;

use crate::apply::{Writer, drain_prefix, reject};
use crate::bucket;
use crate::command::{
    AbortMultipartUpload, CompleteMultipartUpload, InitiateMultipartUpload, MultipartCommand,
    OmResponse,
};
use crate::error::OmError;
use crate::manager::{OzoneManager, check_key_ref, unexpected};
use crate::model::{
    KeyRecord, Location, MIN_PART_SIZE, OpenKeyRecord, PartRecord, UploadRecord, WriteCondition,
    page_size, resolve_replication, unquote, validate_key_name,
};
use crate::store::{self, UploadsQuery, get, key_key, parts_prefix, upload_key};
use crate::tags::{MAX_KEY_TAGS, check_tags};

impl OzoneManager {
    /// Replication 0: the bucket's. An empty owner: the bucket's owner.
    pub async fn initiate_multipart_upload(
        &self,
        req: om::InitiateMultipartUploadRequest,
    ) -> Result<om::MultipartUploadInfo, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        if req.replication != 0 {
            resolve_replication(req.replication, self.config.default_replication)?;
        }
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        // Upload ids sort by initiation time (then at random within a millisecond), so the
        // uploads of one key list in the order they were started, as S3 lists them.
        let now = now_ms();
        let cmd = InitiateMultipartUpload {
            volume,
            bucket,
            key: req.key,
            upload_id: format!("{now:012x}-{}", uuid::Uuid::new_v4()),
            owner: req.owner,
            replication: req.replication,
            metadata: req.metadata.into_iter().collect(),
            now_ms: now,
            tags: check_tags(req.tags, MAX_KEY_TAGS)?,
        };
        match self.submit(cmd).await? {
            OmResponse::Upload(u) => Ok((&u).into()),
            other => Err(unexpected("InitiateMultipartUpload", other)),
        }
    }

    pub async fn complete_multipart_upload(
        &self,
        req: om::CompleteMultipartUploadRequest,
    ) -> Result<om::KeyInfo, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = CompleteMultipartUpload {
            volume,
            bucket,
            key: req.key,
            upload_id: req.upload_id,
            parts: req
                .parts
                .into_iter()
                .map(|p| (p.part_number, p.etag))
                .collect(),
            now_ms: now_ms(),
            condition: WriteCondition::from_proto(req.condition.as_ref()),
        };
        match self.submit(cmd).await? {
            OmResponse::Key(k) => Ok(k.to_proto(true)),
            other => Err(unexpected("CompleteMultipartUpload", other)),
        }
    }

    pub async fn abort_multipart_upload(
        &self,
        req: om::MultipartUploadRef,
    ) -> Result<om::Empty, OmError> {
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = AbortMultipartUpload {
            volume,
            bucket,
            key: req.key,
            upload_id: req.upload_id,
        };
        self.submit(cmd).await?;
        Ok(om::Empty {})
    }

    pub async fn list_parts(
        &self,
        req: om::ListPartsRequest,
    ) -> Result<om::ListPartsResponse, OmError> {
        self.read(move |s| {
            let (volume, bucket) = bucket::resolve_names(s, &req.volume, &req.bucket)?;
            let upload = s.require_upload(&volume, &bucket, &req.key, &req.upload_id)?;
            let (parts, truncated) =
                s.list_parts(&upload, req.part_number_marker, req.max_parts)?;
            let next = parts
                .last()
                .map_or(req.part_number_marker, |p| p.part_number);
            Ok(om::ListPartsResponse {
                parts: parts.iter().map(Into::into).collect(),
                truncated,
                next_part_number_marker: next,
                upload: Some((&upload).into()),
            })
        })
        .await
    }

    pub async fn list_multipart_uploads(
        &self,
        req: om::ListMultipartUploadsRequest,
    ) -> Result<om::ListMultipartUploadsResponse, OmError> {
        let max = page_size(req.max_uploads) as u32;
        self.read(move |s| {
            let (volume, bucket) = bucket::resolve_names(s, &req.volume, &req.bucket)?;
            let q = UploadsQuery {
                prefix: req.prefix,
                delimiter: req.delimiter,
                key_marker: req.key_marker,
                upload_id_marker: req.upload_id_marker,
                max,
            };
            let page = s.list_uploads(&volume, &bucket, &q)?;
            Ok(om::ListMultipartUploadsResponse {
                uploads: page.uploads.iter().map(Into::into).collect(),
                common_prefixes: page.common_prefixes,
                truncated: page.truncated,
                next_key_marker: page.next_key_marker,
                next_upload_id_marker: page.next_upload_id_marker,
            })
        })
        .await
    }
}

impl Writer<'_> {
    pub(crate) fn apply_multipart(
        &mut self,
        cmd: &MultipartCommand,
    ) -> Result<OmResponse, OmError> {
        match cmd {
            MultipartCommand::Initiate(c) => {
                let bucket_rec = self.require_bucket(&c.volume, &c.bucket)?;
                validate_key_name(&c.key)?;
                let rec = UploadRecord {
                    volume: c.volume.clone(),
                    bucket: c.bucket.clone(),
                    key: c.key.clone(),
                    upload_id: c.upload_id.clone(),
                    owner: if c.owner.is_empty() {
                        bucket_rec.owner.clone()
                    } else {
                        c.owner.clone()
                    },
                    replication: if c.replication == 0 {
                        bucket_rec.replication
                    } else {
                        c.replication
                    },
                    metadata: c.metadata.clone(),
                    creation_time_ms: c.now_ms,
                    tags: c.tags.clone(),
                };
                self.initiate_upload(rec)
            }
            MultipartCommand::Complete(c) => self.complete_upload(
                (&c.volume, &c.bucket, &c.key),
                &c.upload_id,
                &c.parts,
                c.now_ms,
                c.condition.as_ref(),
            ),
            MultipartCommand::Abort(c) => {
                self.abort_upload(&c.volume, &c.bucket, &c.key, &c.upload_id)
            }
        }
    }

    pub(crate) fn require_upload(
        &self,
        volume: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, OmError> {
        match get(
            &self.uploads,
            "multipart_uploads",
            &upload_key(volume, bucket, key, upload_id),
        )? {
            Some(u) => Ok(u),
            None => {
                self.require_bucket(volume, bucket)?;
                Err(store::no_such_upload(volume, bucket, key, upload_id))
            }
        }
    }

    fn initiate_upload(&mut self, rec: UploadRecord) -> Result<OmResponse, OmError> {
        let k = upload_key(&rec.volume, &rec.bucket, &rec.key, &rec.upload_id);
        if self.uploads.get(k.as_slice())?.is_some() {
            return reject(
                OmStatus::InvalidRequest,
                format!("upload id {} is already in use", rec.upload_id),
            );
        }
        Self::put(&mut self.uploads, &k, &rec)?;
        Ok(OmResponse::Upload(rec))
    }

    /// Removes an upload and its parts; returns the parts.
    fn remove_upload(&mut self, upload: &UploadRecord) -> Result<Vec<PartRecord>, OmError> {
        let (v, b, k, u) = (
            &upload.volume,
            &upload.bucket,
            &upload.key,
            &upload.upload_id,
        );
        let parts = drain_prefix::<PartRecord>(
            &mut self.parts,
            "multipart_parts",
            &parts_prefix(v, b, k, u),
        )?;
        self.uploads.remove(upload_key(v, b, k, u).as_slice())?;
        // Parts still being written: their blocks are released now; committing them later
        // answers NO_SUCH_MULTIPART_UPLOAD.
        let open_prefix = [key_key(v, b, k).as_slice(), b"\0"].concat();
        let (open, _) = store::scan::<OpenKeyRecord>(
            &self.open_keys,
            "open_keys",
            &open_prefix,
            Bound::Included(open_prefix.as_slice()),
            usize::MAX,
        )?;
        for (ok, o) in open {
            if o.part.as_ref().is_some_and(|p| &p.upload_id == u) {
                self.remove_open_key(&ok, &o)?;
                self.released.extend(o.locations.iter().map(|l| l.block));
            }
        }
        Ok(parts.into_iter().map(|(_, p)| p).collect())
    }

    fn complete_upload(
        &mut self,
        (volume, bucket, key): (&str, &str, &str),
        upload_id: &str,
        listed: &[(u32, String)],
        now_ms: u64,
        condition: Option<&WriteCondition>,
    ) -> Result<OmResponse, OmError> {
        let kk = key_key(volume, bucket, key);
        let upload = match self.require_upload(volume, bucket, key, upload_id) {
            Ok(u) => u,
            Err(OmError::Rejected(r)) if r.status == OmStatus::NoSuchMultipartUpload => {
                // Completing again while the key is still this upload's result answers it.
                return match get::<KeyRecord>(&self.keys, "keys", &kk)? {
                    Some(k) if k.upload_id == upload_id => Ok(OmResponse::Key(k)),
                    _ => Err(OmError::Rejected(r)),
                };
            }
            Err(e) => return Err(e),
        };
        let current = get::<KeyRecord>(&self.keys, "keys", &kk)?;
        if let Some(c) = condition
            && let Err(why) = c.holds(current.as_ref())
        {
            return reject(
                OmStatus::PreconditionFailed,
                format!("/{volume}/{bucket}/{key}: {why}"),
            );
        }
        if listed.is_empty() {
            return reject(OmStatus::InvalidRequest, "at least one part must be listed");
        }
        for w in listed.windows(2) {
            if w[1].0 <= w[0].0 {
                return reject(
                    OmStatus::InvalidPartOrder,
                    format!(
                        "part {} follows part {}: parts must be in ascending order",
                        w[1].0, w[0].0
                    ),
                );
            }
        }
        let prefix = parts_prefix(volume, bucket, key, upload_id);
        let (stored, _) = store::scan::<PartRecord>(
            &self.parts,
            "multipart_parts",
            &prefix,
            Bound::Included(prefix.as_slice()),
            usize::MAX,
        )?;
        let stored: BTreeMap<u32, PartRecord> = stored
            .into_iter()
            .map(|(_, p)| (p.part_number, p))
            .collect();
        let mut chosen = Vec::with_capacity(listed.len());
        for (n, etag) in listed {
            match stored.get(n) {
                Some(p) if unquote(&p.etag) == unquote(etag) => chosen.push(p),
                Some(_) => {
                    return reject(
                        OmStatus::InvalidPart,
                        format!("part {n}: the ETag does not match the uploaded part"),
                    );
                }
                None => {
                    return reject(OmStatus::InvalidPart, format!("part {n} was not uploaded"));
                }
            }
        }
        for p in &chosen[..chosen.len() - 1] {
            if p.size < MIN_PART_SIZE {
                return reject(
                    OmStatus::EntityTooSmall,
                    format!(
                        "part {} is {} bytes; every part but the last must be at least {MIN_PART_SIZE}",
                        p.part_number, p.size
                    ),
                );
            }
        }

        let mut locations = Vec::new();
        let mut offset = 0u64;
        let mut digests = Md5::new();
        for p in &chosen {
            for l in &p.locations {
                locations.push(Location {
                    offset,
                    part_number: p.part_number,
                    ..l.clone()
                });
                offset = offset.saturating_add(l.length);
            }
            digests.update(part_digest(&p.etag));
        }
        let size = chosen.iter().map(|p| p.size).sum::<u64>();
        let etag = format!("{}-{}", hex::encode(digests.finalize()), chosen.len());
        let listed_numbers: BTreeSet<u32> = listed.iter().map(|(n, _)| *n).collect();

        let parts = self.remove_upload(&upload)?;
        for p in parts
            .iter()
            .filter(|p| !listed_numbers.contains(&p.part_number))
        {
            self.released.extend(p.locations.iter().map(|l| l.block));
        }
        if let Some(old) = current {
            self.released.extend(old.blocks());
        }
        let rec = KeyRecord {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            size,
            etag,
            creation_time_ms: upload.creation_time_ms,
            modification_time_ms: now_ms,
            locations,
            metadata: upload.metadata.clone(),
            owner: upload.owner.clone(),
            replication: upload.replication,
            parts_count: listed.len() as u32,
            tags: upload.tags.clone(),
            upload_id: upload_id.to_string(),
        };
        Self::put(&mut self.keys, &kk, &rec)?;
        Ok(OmResponse::Key(rec))
    }

    fn abort_upload(
        &mut self,
        volume: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<OmResponse, OmError> {
        let upload = self.require_upload(volume, bucket, key, upload_id)?;
        for p in self.remove_upload(&upload)? {
            self.released.extend(p.locations.iter().map(|l| l.block));
        }
        Ok(OmResponse::Done)
    }
}

/// The binary MD5 of a part from its ETag (hex). A part ETag that is not 32 hex digits (written
/// by something other than the S3 gateway) contributes its own bytes instead.
fn part_digest(etag: &str) -> Vec<u8> {
    let e = unquote(etag);
    match hex::decode(e) {
        Ok(d) if d.len() == 16 => d,
        _ => e.as_bytes().to_vec(),
    }
}
