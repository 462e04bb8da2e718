//! Keys: the leader's preparation (open with SCM blocks, add a block, commit, delete, look up,
//! list) and the apply of [`KeyCommand`]s. A multipart part is written as a key whose open
//! key names the part ([`PartTarget`]).

use std::collections::{BTreeMap, BTreeSet};

use ozone_common::now_ms;
use ozone_common::token::Modes;
use ozone_proto::om::{self, OmStatus};
use redb::ReadableTable;

use crate::apply::{Writer, reject};
use crate::bucket;
use crate::command::{
    AllocateBlock, CommitKey, DeleteKeys, DeleteOutcome, KeyCommand, OmResponse, OpenKey,
};
use crate::error::{OmError, Rejection};
use crate::manager::{OzoneManager, check_bucket_ref, check_key_ref, unexpected};
use crate::model::{
    BlockRef, CommittedBlock, KeyRecord, Location, MAX_PART_NUMBER, OpenKeyRecord, PartRecord,
    PartTarget, WriteCondition, resolve_replication, unquote, validate_key_name,
};
use crate::store::{self, ListKeysQuery, get, key_key, open_key_key, part_key};
use crate::tags::{MAX_KEY_TAGS, check_tags};

/// Most keys one DeleteKeys call may name (S3's DeleteObjects limit).
pub const MAX_DELETE_KEYS: usize = 1000;

/// The part named by `upload_id` / `part_number`: both or neither.
fn part_target(upload_id: &str, part_number: u32) -> Result<Option<PartTarget>, OmError> {
    match (upload_id.is_empty(), part_number) {
        (true, 0) => Ok(None),
        (false, n) if (1..=MAX_PART_NUMBER).contains(&n) => Ok(Some(PartTarget {
            upload_id: upload_id.to_string(),
            part_number: n,
        })),
        (false, n) => Err(OmError::invalid(format!(
            "part number must be 1 to {MAX_PART_NUMBER}, got {n}"
        ))),
        (true, _) => Err(OmError::invalid("a part number needs an upload id")),
    }
}

/// A fresh open-key id: random, non-zero, fits a signed 64-bit (as Ozone's client ids).
fn new_client_id() -> u64 {
    let (hi, _) = uuid::Uuid::new_v4().as_u64_pair();
    (hi & i64::MAX as u64).max(1)
}

impl OzoneManager {
    pub async fn open_key(&self, req: om::OpenKeyRequest) -> Result<om::OpenKeyResponse, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let part = part_target(&req.upload_id, req.part_number)?;
        if req.replication != 0 {
            resolve_replication(req.replication, self.config.default_replication)?;
        }
        // Replication and owner as apply will decide them, for SCM.
        let (v, b, k, p, requested) = (
            req.volume.clone(),
            req.bucket.clone(),
            req.key.clone(),
            part.clone(),
            req.replication,
        );
        let (replication, default_owner, volume, bucket_name) = self
            .read(move |s| {
                let bucket = bucket::resolve(s, &v, &b)?;
                let (v, b) = (bucket.volume.clone(), bucket.name.clone());
                match &p {
                    Some(p) => {
                        let u = s.require_upload(&v, &b, &k, &p.upload_id)?;
                        Ok((u.replication, u.owner, v, b))
                    }
                    None if requested != 0 => Ok((requested, bucket.owner, v, b)),
                    None => Ok((bucket.replication, bucket.owner, v, b)),
                }
            })
            .await?;
        let owner = if req.owner.is_empty() {
            default_owner
        } else {
            req.owner
        };
        let block_size = self.config.block_size;
        // An empty key is metadata only: no block from SCM (Ozone's dataSize 0).
        let locations = if req.empty {
            Vec::new()
        } else {
            let count = self.config.blocks_for(req.size_hint);
            self.scm
                .allocate(
                    count,
                    self.config.declared_block_bytes(req.size_hint),
                    replication,
                    &owner,
                    Vec::new(),
                )
                .await?
        };
        let token_owner = owner.clone();
        let cmd = OpenKey {
            volume,
            bucket: bucket_name,
            key: req.key,
            client_id: new_client_id(),
            owner,
            replication,
            locations,
            part,
            block_size,
            now_ms: now_ms(),
        };
        match self.submit(cmd).await? {
            OmResponse::OpenKey {
                client_id,
                locations,
                block_size,
            } => {
                let mut locations: Vec<om::KeyLocation> =
                    locations.iter().map(Into::into).collect();
                self.sign_blocks(&mut locations, &token_owner, Modes::READ_WRITE)
                    .await?;
                Ok(om::OpenKeyResponse {
                    client_id,
                    locations,
                    block_size,
                })
            }
            other => Err(unexpected("OpenKey", other)),
        }
    }

    pub async fn allocate_block(
        &self,
        req: om::AllocateKeyBlockRequest,
    ) -> Result<om::AllocateKeyBlockResponse, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let (v, b, k, c) = (
            req.volume.clone(),
            req.bucket.clone(),
            req.key.clone(),
            req.client_id,
        );
        let (open, volume, bucket) = self
            .read(move |s| {
                let (v, b) = bucket::resolve_names(s, &v, &b)?;
                let open = s.open_key(&v, &b, &k, c)?.ok_or_else(|| {
                    OmError::reject(
                        OmStatus::KeyNotFound,
                        format!("no open key /{v}/{b}/{k} with client id {c}"),
                    )
                })?;
                Ok((open, v, b))
            })
            .await?;
        let mut blocks = self
            .scm
            .allocate(
                1,
                self.config.declared_block_bytes(req.size),
                open.replication,
                &open.owner,
                req.exclude_datanodes,
            )
            .await?;
        let location = blocks.swap_remove(0);
        let cmd = AllocateBlock {
            volume,
            bucket,
            key: req.key,
            client_id: req.client_id,
            location,
        };
        match self.submit(cmd).await? {
            OmResponse::Block(l) => {
                let mut location = [om::KeyLocation::from(&l)];
                self.sign_blocks(&mut location, &open.owner, Modes::READ_WRITE)
                    .await?;
                let [location] = location;
                Ok(om::AllocateKeyBlockResponse {
                    location: Some(location),
                })
            }
            other => Err(unexpected("AllocateBlock", other)),
        }
    }

    pub async fn commit_key(&self, req: om::CommitKeyRequest) -> Result<om::KeyInfo, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let part = part_target(&req.upload_id, req.part_number)?;
        let blocks = req
            .locations
            .iter()
            .map(CommittedBlock::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = CommitKey {
            volume,
            bucket,
            key: req.key,
            client_id: req.client_id,
            blocks,
            size: req.size,
            etag: req.etag,
            metadata: req.metadata.into_iter().collect::<BTreeMap<_, _>>(),
            part,
            now_ms: now_ms(),
            tags: check_tags(req.tags, MAX_KEY_TAGS)?,
            condition: WriteCondition::from_proto(req.condition.as_ref()),
        };
        match self.submit(cmd).await? {
            OmResponse::Key(k) => Ok(k.to_proto(true)),
            other => Err(unexpected("CommitKey", other)),
        }
    }

    pub async fn lookup_key(&self, req: om::KeyRef) -> Result<om::KeyInfo, OmError> {
        let mut info = self
            .read(move |s| {
                let (volume, bucket) = bucket::resolve_names(s, &req.volume, &req.bucket)?;
                match s.key(&volume, &bucket, &req.key)? {
                    Some(k) => Ok(k.to_proto(true)),
                    None => Err(OmError::reject(
                        OmStatus::KeyNotFound,
                        format!("key /{}/{}/{} not found", req.volume, req.bucket, req.key),
                    )),
                }
            })
            .await?;
        let owner = info.owner.clone();
        self.sign_blocks(&mut info.locations, &owner, Modes::READ)
            .await?;
        Ok(info)
    }

    pub async fn list_keys(
        &self,
        req: om::ListKeysRequest,
    ) -> Result<om::ListKeysResponse, OmError> {
        self.read(move |s| {
            let q = ListKeysQuery {
                prefix: req.prefix,
                start_after: req.start_after,
                delimiter: req.delimiter,
                max_keys: req.max_keys,
            };
            let (volume, bucket) = bucket::resolve_names(s, &req.volume, &req.bucket)?;
            let page = s.list_keys(&volume, &bucket, &q)?;
            Ok(om::ListKeysResponse {
                keys: page.keys.iter().map(|k| k.to_proto(false)).collect(),
                common_prefixes: page.common_prefixes,
                truncated: page.truncated,
                next_start_after: page.next_start_after,
            })
        })
        .await
    }

    /// Deleting a missing key succeeds.
    pub async fn delete_key(&self, req: om::KeyRef) -> Result<om::Empty, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = DeleteKeys {
            volume,
            bucket,
            keys: vec![req.key],
        };
        match self.submit(cmd).await? {
            OmResponse::Deleted(outcomes) => match outcomes.into_iter().find_map(|o| o.error) {
                Some(r) => Err(OmError::Rejected(r)),
                None => Ok(om::Empty {}),
            },
            other => Err(unexpected("DeleteKey", other)),
        }
    }

    pub async fn delete_keys(
        &self,
        req: om::DeleteKeysRequest,
    ) -> Result<om::DeleteKeysResponse, OmError> {
        check_bucket_ref(&req.volume, &req.bucket)?;
        if req.keys.len() > MAX_DELETE_KEYS {
            return Err(OmError::invalid(format!(
                "at most {MAX_DELETE_KEYS} keys per call, got {}",
                req.keys.len()
            )));
        }
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = DeleteKeys {
            volume,
            bucket,
            keys: req.keys,
        };
        match self.submit(cmd).await? {
            OmResponse::Deleted(outcomes) => Ok(om::DeleteKeysResponse {
                results: outcomes
                    .into_iter()
                    .map(|o| match o.error {
                        None => om::DeleteKeyResult {
                            key: o.key,
                            status: OmStatus::Ok as i32,
                            message: String::new(),
                        },
                        Some(r) => om::DeleteKeyResult {
                            key: o.key,
                            status: r.status as i32,
                            message: r.message,
                        },
                    })
                    .collect(),
            }),
            other => Err(unexpected("DeleteKeys", other)),
        }
    }
}

impl Writer<'_> {
    pub(crate) fn apply_key(&mut self, cmd: &KeyCommand) -> Result<OmResponse, OmError> {
        match cmd {
            KeyCommand::Open(c) => {
                let rec = OpenKeyRecord {
                    volume: c.volume.clone(),
                    bucket: c.bucket.clone(),
                    key: c.key.clone(),
                    client_id: c.client_id,
                    owner: c.owner.clone(),
                    replication: c.replication,
                    locations: c.locations.clone(),
                    part: c.part.clone(),
                    creation_time_ms: c.now_ms,
                };
                self.open_key(rec, c.block_size)
            }
            KeyCommand::AllocateBlock(c) => {
                self.allocate_block(&c.volume, &c.bucket, &c.key, c.client_id, &c.location)
            }
            KeyCommand::Commit(c) => self.commit_key(c),
            KeyCommand::Delete(c) => self.delete_keys(&c.volume, &c.bucket, &c.keys),
            KeyCommand::Expire(c) => self.expire_open_keys(c),
        }
    }

    fn open_key(&mut self, mut rec: OpenKeyRecord, block_size: u64) -> Result<OmResponse, OmError> {
        let bucket = self.require_bucket(&rec.volume, &rec.bucket)?;
        validate_key_name(&rec.key)?;
        if let Some(part) = &rec.part {
            let u = self.require_upload(&rec.volume, &rec.bucket, &rec.key, &part.upload_id)?;
            rec.replication = u.replication;
            if rec.owner.is_empty() {
                rec.owner = u.owner;
            }
        } else {
            if rec.replication == 0 {
                rec.replication = bucket.replication;
            }
            if rec.owner.is_empty() {
                rec.owner = bucket.owner;
            }
        }
        let k = open_key_key(&rec.volume, &rec.bucket, &rec.key, rec.client_id);
        if self.open_keys.get(k.as_slice())?.is_some() {
            return reject(
                OmStatus::InvalidRequest,
                format!("client id {} is already in use", rec.client_id),
            );
        }
        self.put_open_key(&k, &rec)?;
        Ok(OmResponse::OpenKey {
            client_id: rec.client_id,
            locations: rec.locations,
            block_size,
        })
    }

    fn require_open_key(
        &self,
        volume: &str,
        bucket: &str,
        key: &str,
        client_id: u64,
    ) -> Result<(Vec<u8>, OpenKeyRecord), OmError> {
        let k = open_key_key(volume, bucket, key, client_id);
        match get::<OpenKeyRecord>(&self.open_keys, "open_keys", &k)? {
            Some(o) => Ok((k, o)),
            None => reject(
                OmStatus::KeyNotFound,
                format!("no open key /{volume}/{bucket}/{key} with client id {client_id}"),
            ),
        }
    }

    fn allocate_block(
        &mut self,
        volume: &str,
        bucket: &str,
        key: &str,
        client_id: u64,
        location: &Location,
    ) -> Result<OmResponse, OmError> {
        let (k, mut open) = self.require_open_key(volume, bucket, key, client_id)?;
        open.locations.push(location.clone());
        Self::put(&mut self.open_keys, &k, &open)?;
        Ok(OmResponse::Block(location.clone()))
    }

    fn commit_key(&mut self, a: &CommitKey) -> Result<OmResponse, OmError> {
        // A part of an upload that is gone (aborted or completed meanwhile).
        if let Some(p) = &a.part {
            self.require_upload(&a.volume, &a.bucket, &a.key, &p.upload_id)?;
        }
        let (ok_key, open) = self.require_open_key(&a.volume, &a.bucket, &a.key, a.client_id)?;
        self.require_bucket(&a.volume, &a.bucket)?;
        if let Some(p) = &a.part
            && open.part.as_ref() != Some(p)
        {
            return reject(
                OmStatus::InvalidRequest,
                format!(
                    "commit names part {} of upload {} but the key was opened for {:?}",
                    p.part_number, p.upload_id, open.part
                ),
            );
        }
        // Only the blocks listed are kept, in the order listed, with offsets recomputed.
        let allocated: BTreeMap<BlockRef, &Location> =
            open.locations.iter().map(|l| (l.block, l)).collect();
        let mut kept = BTreeSet::new();
        let mut locations = Vec::with_capacity(a.blocks.len());
        let mut offset = 0u64;
        for b in &a.blocks {
            let Some(alloc) = allocated.get(&b.block) else {
                return reject(
                    OmStatus::InvalidRequest,
                    format!("block {} was not allocated to this open key", b.block),
                );
            };
            if !kept.insert(b.block) {
                return reject(
                    OmStatus::InvalidRequest,
                    format!("block {} is listed twice", b.block),
                );
            }
            locations.push(Location {
                block: b.block,
                offset,
                length: b.length,
                pipeline: alloc.pipeline.clone(),
                part_number: open.part.as_ref().map_or(0, |p| p.part_number),
                checksum: b.checksum.clone(),
            });
            offset = offset.saturating_add(b.length);
        }
        if offset != a.size {
            return reject(
                OmStatus::InvalidRequest,
                format!(
                    "size {} differs from the committed blocks' total {offset}",
                    a.size
                ),
            );
        }
        let etag = unquote(&a.etag).to_string();
        // The key this commit makes, a part's (returned, not stored as a key) or a whole key's.
        let record = |etag, locations, metadata, tags| KeyRecord {
            volume: a.volume.clone(),
            bucket: a.bucket.clone(),
            key: a.key.clone(),
            size: a.size,
            etag,
            creation_time_ms: open.creation_time_ms,
            modification_time_ms: a.now_ms,
            locations,
            metadata,
            owner: open.owner.clone(),
            replication: open.replication,
            parts_count: 0,
            tags,
            upload_id: String::new(),
        };

        let result = match &open.part {
            Some(part) => {
                self.require_upload(&a.volume, &a.bucket, &a.key, &part.upload_id)?;
                let pk = part_key(
                    &a.volume,
                    &a.bucket,
                    &a.key,
                    &part.upload_id,
                    part.part_number,
                );
                if let Some(old) = get::<PartRecord>(&self.parts, "multipart_parts", &pk)? {
                    self.released.extend(old.locations.iter().map(|l| l.block));
                }
                let rec = PartRecord {
                    part_number: part.part_number,
                    etag: etag.clone(),
                    size: a.size,
                    locations: locations.clone(),
                    modification_time_ms: a.now_ms,
                };
                Self::put(&mut self.parts, &pk, &rec)?;
                record(etag, locations, BTreeMap::new(), BTreeMap::new())
            }
            None => {
                let kk = key_key(&a.volume, &a.bucket, &a.key);
                let old = get::<KeyRecord>(&self.keys, "keys", &kk)?;
                if let Some(c) = &a.condition
                    && let Err(why) = c.holds(old.as_ref())
                {
                    // The write is over: its open key and blocks go, the key stays as it is.
                    self.released.extend(open.locations.iter().map(|l| l.block));
                    self.remove_open_key(&ok_key, &open)?;
                    return Ok(OmResponse::Rejected(Rejection::new(
                        OmStatus::PreconditionFailed,
                        format!("/{}/{}/{}: {why}", &a.volume, &a.bucket, &a.key),
                    )));
                }
                if let Some(old) = old {
                    self.released.extend(old.blocks());
                }
                let rec = record(etag, locations, a.metadata.clone(), a.tags.clone());
                Self::put(&mut self.keys, &kk, &rec)?;
                rec
            }
        };
        // Preallocated blocks the client did not use.
        self.released.extend(
            open.locations
                .iter()
                .map(|l| l.block)
                .filter(|b| !kept.contains(b)),
        );
        self.remove_open_key(&ok_key, &open)?;
        Ok(OmResponse::Key(result))
    }

    fn delete_keys(
        &mut self,
        volume: &str,
        bucket: &str,
        keys: &[String],
    ) -> Result<OmResponse, OmError> {
        self.require_bucket(volume, bucket)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let error = match validate_key_name(key) {
                Err(OmError::Rejected(r)) => Some(r),
                Err(other) => return Err(other),
                Ok(()) => {
                    let removed = self.keys.remove(key_key(volume, bucket, key).as_slice())?;
                    if let Some(v) = removed {
                        let rec: KeyRecord = store::decode("keys", v.value())?;
                        self.released.extend(rec.blocks());
                    }
                    None
                }
            };
            out.push(DeleteOutcome {
                key: key.clone(),
                error,
            });
        }
        Ok(OmResponse::Deleted(out))
    }
}
