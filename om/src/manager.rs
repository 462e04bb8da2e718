//! The leader side of OM: every RPC, as domain logic.
//!
//! A mutation is *prepared* here: validated, given its ids (client ids, upload ids), timestamp
//! and SCM block allocations, and turned into an [`OmCommand`]; then *submitted* to the raft
//! log (openraft `client_write`), answered once a majority of OMs holds it and this OM applied
//! it to its [`StateMachine`].
//!
//! Reads (Info*, List*, Lookup, and the reads a prepare step makes) are linearizable by
//! read-index: openraft's `ensure_linearizable` confirms this OM still leads with a heartbeat
//! round to a majority and waits until everything committed before the read is applied; then
//! the read runs on a redb snapshot. A follower answers NOT_LEADER with the leader's address;
//! no quorum within `ozone.om.ratis.server.request.timeout` answers OM_UNAVAILABLE.

use std::collections::BTreeMap;
use std::sync::Arc;

use ozone_common::now_ms;
use ozone_proto::om::{self, OmStatus};

use openraft::error::{CheckIsLeaderError, RaftError};

use crate::command::{OmCommand, OmResponse};
use crate::config::{OmConfig, S3_VOLUME_OWNER};
use crate::error::OmError;
use crate::links;
use crate::model::{
    CommittedBlock, MAX_PART_NUMBER, PartTarget, WriteCondition, page_size, resolve_replication,
    validate_key_name, validate_resource_name,
};
use crate::raft::node::RaftNode;
use crate::raft::proposer::{ProposeError, Proposer};
use crate::scm::ScmBlocks;
use crate::state_machine::StateMachine;
use crate::store::{Counts, ListKeysQuery, Snapshot, UploadsQuery};
use crate::tags::{MAX_BUCKET_TAGS, MAX_KEY_TAGS, check_tags};

/// Pause before retrying a read whose heartbeat round missed a quorum.
const READ_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Most keys one DeleteKeys call may name (S3's DeleteObjects limit).
pub const MAX_DELETE_KEYS: usize = 1000;

pub struct OzoneManager {
    sm: Arc<StateMachine>,
    node: Arc<RaftNode>,
    proposer: Proposer,
    scm: ScmBlocks,
    config: OmConfig,
}

/// Runs blocking database work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OmError> + Send + 'static,
) -> Result<T, OmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OmError::Internal(format!("database task failed: {e}")))?
}

fn unexpected(op: &str, resp: OmResponse) -> OmError {
    OmError::Internal(format!("{op} applied with an unexpected result {resp:?}"))
}

fn check_bucket_ref(volume: &str, bucket: &str) -> Result<(), OmError> {
    validate_resource_name("volume", volume)?;
    validate_resource_name("bucket", bucket)
}

fn check_key_ref(volume: &str, bucket: &str, key: &str) -> Result<(), OmError> {
    check_bucket_ref(volume, bucket)?;
    validate_key_name(key)
}

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
    pub fn new(
        sm: Arc<StateMachine>,
        node: Arc<RaftNode>,
        scm: ScmBlocks,
        config: OmConfig,
    ) -> Self {
        let proposer = Proposer::start(node.raft().clone(), node.settings().request_timeout);
        OzoneManager {
            sm,
            node,
            proposer,
            scm,
            config,
        }
    }

    pub fn raft_node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// NOT_LEADER naming the leader `leader` (a raft id), when known.
    fn not_leader(&self, leader: Option<u64>) -> OmError {
        let leader = leader
            .and_then(|id| self.node.settings().peers.get(&id))
            .map(|n| n.address.clone());
        OmError::NotLeader { leader }
    }

    pub fn state_machine(&self) -> &Arc<StateMachine> {
        &self.sm
    }

    pub fn config(&self) -> &OmConfig {
        &self.config
    }

    /// Replicates a prepared command through the raft log (sharing an entry with the commands
    /// submitted at the same time, see [`Proposer`]) and returns the result of applying it; a
    /// rejection becomes an error. NOT_LEADER on a follower; OM_UNAVAILABLE when it does
    /// not commit in time (it may still commit later: the caller sees a failure, never a false
    /// success).
    pub async fn submit(&self, cmd: OmCommand) -> Result<OmResponse, OmError> {
        let op = cmd.name();
        let resp = match self.proposer.propose(cmd).await {
            Ok(r) => r,
            Err(ProposeError::NotLeader(leader)) => return Err(self.not_leader(leader)),
            Err(ProposeError::Unavailable(m)) => {
                return Err(OmError::Unavailable(format!("{op}: {m}")));
            }
        };
        match resp {
            OmResponse::Rejected(r) => Err(OmError::Rejected(r)),
            other => Ok(other),
        }
    }

    /// Confirms this OM leads and has applied everything committed before now (read-index).
    /// A heartbeat round that misses a quorum (slow followers under load) is retried until
    /// `ozone.om.ratis.server.request.timeout`.
    pub async fn ensure_linearizable(&self) -> Result<(), OmError> {
        let timeout = self.node.settings().request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = tokio::time::timeout_at(deadline, self.node.raft().ensure_linearizable()).await;
            let last = match r {
                Err(_) => "no answer".to_string(),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    return Err(self.not_leader(f.leader_id));
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                    e.to_string()
                }
                Ok(Err(e)) => return Err(OmError::Unavailable(format!("read: {e}"))),
            };
            if tokio::time::Instant::now() + READ_RETRY_PAUSE >= deadline {
                return Err(OmError::Unavailable(format!(
                    "leadership not confirmed by a quorum within {timeout:?}: {last}"
                )));
            }
            tokio::time::sleep(READ_RETRY_PAUSE).await;
        }
    }

    /// A linearizable read: [`Self::ensure_linearizable`], then `f` on a database snapshot.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Snapshot) -> Result<T, OmError> + Send + 'static,
    ) -> Result<T, OmError> {
        self.ensure_linearizable().await?;
        let sm = self.sm.clone();
        blocking(move || f(&sm.snapshot()?)).await
    }

    /// Counts of this OM's local state (not linearizable: for gauges and status pages).
    pub async fn local_counts(&self) -> Result<Counts, OmError> {
        let sm = self.sm.clone();
        blocking(move || sm.snapshot()?.counts()).await
    }

    pub async fn counts(&self) -> Result<Counts, OmError> {
        self.read(|s| s.counts()).await
    }

    /// Creates the S3 volume (owner `admin`) unless it exists.
    pub async fn ensure_s3_volume(&self) -> Result<(), OmError> {
        let volume = self.config.s3_volume.clone();
        let v = volume.clone();
        if self.read(move |s| s.volume(&v)).await?.is_some() {
            return Ok(());
        }
        let cmd = OmCommand::CreateVolume {
            volume: volume.clone(),
            owner: S3_VOLUME_OWNER.to_string(),
            now_ms: now_ms(),
        };
        match self.submit(cmd).await {
            Ok(_) => {
                tracing::info!(volume = %volume, "created the S3 volume");
                Ok(())
            }
            Err(e) if e.status() == OmStatus::VolumeAlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    // ---- volumes ----

    /// An empty owner means `admin`.
    pub async fn create_volume(
        &self,
        req: om::CreateVolumeRequest,
    ) -> Result<om::VolumeInfo, OmError> {
        validate_resource_name("volume", &req.volume)?;
        let owner = if req.owner.is_empty() {
            S3_VOLUME_OWNER.to_string()
        } else {
            req.owner
        };
        let cmd = OmCommand::CreateVolume {
            volume: req.volume,
            owner,
            now_ms: now_ms(),
        };
        match self.submit(cmd).await? {
            OmResponse::Volume(v) => Ok((&v).into()),
            other => Err(unexpected("CreateVolume", other)),
        }
    }

    pub async fn info_volume(&self, req: om::VolumeRef) -> Result<om::VolumeInfo, OmError> {
        self.read(move |s| s.require_volume(&req.volume).map(|v| (&v).into()))
            .await
    }

    pub async fn list_volumes(
        &self,
        req: om::ListVolumesRequest,
    ) -> Result<om::ListVolumesResponse, OmError> {
        self.read(move |s| {
            let vols = s.list_volumes(&req.prefix, &req.start_after, req.max)?;
            Ok(om::ListVolumesResponse {
                volumes: vols.iter().map(Into::into).collect(),
            })
        })
        .await
    }

    pub async fn delete_volume(&self, req: om::VolumeRef) -> Result<om::Empty, OmError> {
        self.submit(OmCommand::DeleteVolume { volume: req.volume })
            .await?;
        Ok(om::Empty {})
    }

    // ---- buckets ----

    /// An empty owner means the volume's owner; replication 0 the server default.
    pub async fn create_bucket(
        &self,
        req: om::CreateBucketRequest,
    ) -> Result<om::BucketInfo, OmError> {
        check_bucket_ref(&req.volume, &req.bucket)?;
        let replication = resolve_replication(req.replication, self.config.default_replication)?;
        let cmd = OmCommand::CreateBucket {
            volume: req.volume,
            bucket: req.bucket,
            owner: req.owner,
            replication,
            now_ms: now_ms(),
            link: None,
        };
        match self.submit(cmd).await? {
            OmResponse::Bucket(b) => Ok((&b).into()),
            other => Err(unexpected("CreateBucket", other)),
        }
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
        let replication = resolve_replication(0, self.config.default_replication)?;
        let cmd = OmCommand::CreateBucket {
            volume: req.volume,
            bucket: req.bucket,
            owner: req.owner,
            replication,
            now_ms: now_ms(),
            link: Some((req.source_volume, req.source_bucket)),
        };
        match self.submit(cmd).await? {
            OmResponse::Bucket(b) => Ok((&b).into()),
            other => Err(unexpected("CreateBucketLink", other)),
        }
    }

    /// The bucket a name stands for, links followed.
    pub async fn resolve_bucket(&self, req: om::BucketRef) -> Result<om::BucketInfo, OmError> {
        self.read(move |s| links::resolve(s, &req.volume, &req.bucket).map(|b| (&b).into()))
            .await
    }

    /// Resolves links on this OM's applied state for a mutation about to be prepared (no
    /// read-index round: a write must not pay for a second one). When the names do not resolve
    /// here (this leader may not have applied the newest entries yet), they go unchanged and
    /// apply decides; apply refuses a link, so a key is never stored under one.
    async fn resolve_for_write(
        &self,
        volume: String,
        bucket: String,
    ) -> Result<(String, String), OmError> {
        let sm = self.sm.clone();
        blocking(
            move || match links::resolve_names(&sm.snapshot()?, &volume, &bucket) {
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
        self.submit(OmCommand::DeleteBucket {
            volume: req.volume,
            bucket: req.bucket,
        })
        .await?;
        Ok(om::Empty {})
    }

    // ---- keys ----

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
                let bucket = links::resolve(s, &v, &b)?;
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
        let count = self.config.blocks_for(req.size_hint);
        let block_size = self.config.block_size;
        let locations = self
            .scm
            .allocate(count, block_size, replication, &owner, Vec::new())
            .await?;
        let cmd = OmCommand::OpenKey {
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
            } => Ok(om::OpenKeyResponse {
                client_id,
                locations: locations.iter().map(Into::into).collect(),
                block_size,
            }),
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
                let (v, b) = links::resolve_names(s, &v, &b)?;
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
                self.config.block_size,
                open.replication,
                &open.owner,
                req.exclude_datanodes,
            )
            .await?;
        let location = blocks.swap_remove(0);
        let cmd = OmCommand::AllocateBlock {
            volume,
            bucket,
            key: req.key,
            client_id: req.client_id,
            location,
        };
        match self.submit(cmd).await? {
            OmResponse::Block(l) => Ok(om::AllocateKeyBlockResponse {
                location: Some((&l).into()),
            }),
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
        let cmd = OmCommand::CommitKey {
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
        self.read(move |s| {
            let (volume, bucket) = links::resolve_names(s, &req.volume, &req.bucket)?;
            match s.key(&volume, &bucket, &req.key)? {
                Some(k) => Ok(k.to_proto(true)),
                None => Err(OmError::reject(
                    OmStatus::KeyNotFound,
                    format!("key /{}/{}/{} not found", req.volume, req.bucket, req.key),
                )),
            }
        })
        .await
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
            let (volume, bucket) = links::resolve_names(s, &req.volume, &req.bucket)?;
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
        let cmd = OmCommand::DeleteKeys {
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
        let cmd = OmCommand::DeleteKeys {
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

    // ---- multipart uploads ----

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
        let cmd = OmCommand::InitiateMultipartUpload {
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
        let cmd = OmCommand::CompleteMultipartUpload {
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
        let cmd = OmCommand::AbortMultipartUpload {
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
            let (volume, bucket) = links::resolve_names(s, &req.volume, &req.bucket)?;
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
            let (volume, bucket) = links::resolve_names(s, &req.volume, &req.bucket)?;
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

    // ---- tags ----

    pub async fn set_key_tags(&self, req: om::SetKeyTagsRequest) -> Result<om::KeyInfo, OmError> {
        check_key_ref(&req.volume, &req.bucket, &req.key)?;
        let (volume, bucket) = self.resolve_for_write(req.volume, req.bucket).await?;
        let cmd = OmCommand::SetKeyTags {
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
        let cmd = OmCommand::SetBucketTags {
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
