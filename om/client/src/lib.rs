//! Typed gRPC client of the Ozone Manager, for the S3 gateway, the CLI and tests.
//!
//! [`OmClient::connect`] takes every OM address (lazy channels: nothing connects until the first
//! call). Each RPC has a typed async method. Failures are [`OmClientError`]: a
//! [`OmClientError::Status`] carries the [`OmStatus`] OM sent in `x-om-status` (map it to S3
//! errors with [`OmClientError::status`]), [`OmClientError::Unavailable`] means no OM could be
//! reached or it did not answer in time.
//!
//! Leader handling: on NOT_LEADER with `x-om-leader` the call is retried against that address;
//! on an unreachable OM (or NOT_LEADER without a hint) against the next address, with a growing
//! backoff, until [`OmClientOptions::failover_timeout`] has passed since the call began (long
//! enough for the OMs to elect a new leader). A call that timed out is not retried (it may have
//! been applied), nor is OM_UNAVAILABLE (the OM already waited for a quorum).
//!
//! Writes are idempotent across retries: each write call gets a request id, the client's id
//! (random, one per [`OmClient`] and its clones) and a fresh call id, sent in the metadata
//! ([`CLIENT_ID_HEADER`], [`CALL_ID_HEADER`]) of every attempt of that call. OM applies a write
//! once and answers a retry with the first result, also after a leader change (its retry cache
//! is replicated), so a CommitKey whose answer was lost is not answered KEY_NOT_FOUND when
//! retried through the new leader (an attempt cut by the old leader's death is retried, as
//! any unreachable OM is).
//!
//! CreateBucket on an existing bucket answers BUCKET_ALREADY_EXISTS with the bucket's current
//! owner in [`OmClientError::Status::owner`] (metadata `x-om-owner`): equal to the caller means
//! S3's BucketAlreadyOwnedByYou, else BucketAlreadyExists.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ozone_proto::om as proto;
pub use ozone_proto::om::OmStatus;
use ozone_proto::om::om_service_client::OmServiceClient;
use ozone_proto::om::*;
use percent_encoding::percent_decode_str;
use tonic::transport::{Channel, Endpoint};

/// Metadata key of the OmStatus name of a failed call.
pub const STATUS_HEADER: &str = "x-om-status";
/// Metadata key of a bucket's owner on BUCKET_ALREADY_EXISTS (percent-encoded).
pub const OWNER_HEADER: &str = "x-om-owner";
/// Metadata key of the leader's address on NOT_LEADER (percent-encoded).
pub const LEADER_HEADER: &str = "x-om-leader";
/// Metadata key of a write's client id (see [`RequestId`]).
pub const CLIENT_ID_HEADER: &str = "x-om-client-id";
/// Metadata key of a write's call id (decimal).
pub const CALL_ID_HEADER: &str = "x-om-call-id";

/// The id of one write call, the same on each of its attempts: OM applies it once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    /// The client instance (random).
    pub client_id: String,
    /// The call, never reused by this client.
    pub call_id: u64,
}

impl RequestId {
    /// Puts the id into a request's metadata.
    pub fn attach<T>(&self, req: &mut tonic::Request<T>) {
        let md = req.metadata_mut();
        if let Ok(v) = self.client_id.parse() {
            md.insert(CLIENT_ID_HEADER, v);
        }
        md.insert(CALL_ID_HEADER, self.call_id.into());
    }
}

/// Timeouts and retry bounds.
#[derive(Clone, Debug)]
pub struct OmClientOptions {
    pub connect_timeout: Duration,
    /// Longest wait for one attempt of a call.
    pub request_timeout: Duration,
    /// Attempts per call; 0: no limit but [`Self::failover_timeout`].
    pub max_attempts: usize,
    /// Pause before retrying after an unreachable OM or a stale leader hint (grows linearly per
    /// attempt, at most [`MAX_BACKOFF`]).
    pub retry_backoff: Duration,
    /// How long a call keeps looking for the leader before it gives up (unavailable).
    pub failover_timeout: Duration,
}

/// Longest pause between two attempts of a call.
pub const MAX_BACKOFF: Duration = Duration::from_millis(500);

impl Default for OmClientOptions {
    fn default() -> Self {
        OmClientOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(30),
            max_attempts: 0,
            retry_backoff: Duration::from_millis(100),
            failover_timeout: Duration::from_secs(8),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OmClientError {
    /// OM answered with an error status.
    #[error("OM {}: {message}", status.as_str_name())]
    Status {
        status: OmStatus,
        message: String,
        /// BUCKET_ALREADY_EXISTS: the bucket's current owner.
        owner: Option<String>,
        /// NOT_LEADER: the leader's address, when known.
        leader: Option<String>,
    },
    /// No OM could be reached, or it did not answer in time.
    #[error("OM unavailable: {0}")]
    Unavailable(String),
    /// A channel could not be set up (bad address).
    #[error("OM client transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("invalid OM address list: {0}")]
    InvalidAddress(String),
}

impl OmClientError {
    /// The OM status: the one OM sent, else INTERNAL_ERROR (also for [`Self::Unavailable`];
    /// check [`Self::is_unavailable`] to answer 503).
    pub fn status(&self) -> OmStatus {
        match self {
            OmClientError::Status { status, .. } => *status,
            _ => OmStatus::InternalError,
        }
    }

    /// True when the service (OM, or SCM behind it) is unavailable: retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OmClientError::Unavailable(_))
            || self.status() == OmStatus::ScmUnavailable
            || self.status() == OmStatus::NotLeader
            || self.status() == OmStatus::OmUnavailable
    }

    /// On BUCKET_ALREADY_EXISTS: the bucket's current owner.
    pub fn owner(&self) -> Option<&str> {
        match self {
            OmClientError::Status { owner, .. } => owner.as_deref(),
            _ => None,
        }
    }

    /// Interprets a gRPC status from OM.
    pub fn from_status(st: tonic::Status) -> Self {
        let md = st.metadata();
        let header = |k: &str| {
            md.get(k)
                .and_then(|v| v.to_str().ok())
                .map(|v| percent_decode_str(v).decode_utf8_lossy().into_owned())
        };
        match header(STATUS_HEADER).and_then(|n| OmStatus::from_str_name(&n)) {
            Some(status) => OmClientError::Status {
                status,
                message: st.message().to_string(),
                owner: header(OWNER_HEADER),
                leader: header(LEADER_HEADER),
            },
            // No x-om-status: the call failed below OM (connection refused or reset, the OM
            // died mid-call): the service is unavailable from here.
            None => match st.code() {
                tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
                | tonic::Code::Cancelled => {
                    OmClientError::Unavailable(format!("{:?}: {}", st.code(), st.message()))
                }
                // Refused by the port's certificate check (security on) before OM saw it.
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                    OmClientError::Status {
                        status: OmStatus::PermissionDenied,
                        message: st.message().to_string(),
                        owner: None,
                        leader: None,
                    }
                }
                _ => OmClientError::Status {
                    status: OmStatus::InternalError,
                    message: format!("{:?}: {}", st.code(), st.message()),
                    owner: None,
                    leader: None,
                },
            },
        }
    }
}

type Result<T, E = OmClientError> = std::result::Result<T, E>;

struct Target {
    address: String,
    client: OmServiceClient<Channel>,
}

struct Inner {
    targets: Mutex<Vec<Target>>,
    current: AtomicUsize,
    opts: OmClientOptions,
    /// This client's id in the request ids of its writes.
    client_id: String,
    next_call: AtomicU64,
}

/// A client of an OM service (1 or more OM nodes). Cheap to clone.
#[derive(Clone)]
pub struct OmClient {
    inner: Arc<Inner>,
}

/// `host:port` of an address given as `host:port` or `http://host:port[/]`.
fn normalize(address: &str) -> String {
    let a = address.trim();
    let a = a
        .strip_prefix("http://")
        .or_else(|| a.strip_prefix("https://"))
        .unwrap_or(a);
    a.trim_end_matches('/').to_string()
}

fn make_target(address: &str, opts: &OmClientOptions) -> Result<Target> {
    let address = normalize(address);
    if address.is_empty() {
        return Err(OmClientError::InvalidAddress("empty address".into()));
    }
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true);
    let channel = ozone_common::tls::channel(endpoint, ozone_common::tls::NodeRole::Om);
    Ok(Target {
        address,
        client: OmServiceClient::new(channel)
            .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES),
    })
}

impl OmClient {
    /// A client of the OMs at `addresses` (`host:port`), with default timeouts. Lazy: connects
    /// on first use. Must be called inside a tokio runtime.
    pub fn connect(addresses: Vec<String>) -> Result<Self> {
        Self::connect_with(addresses, OmClientOptions::default())
    }

    pub fn connect_with(addresses: Vec<String>, opts: OmClientOptions) -> Result<Self> {
        if addresses.is_empty() {
            return Err(OmClientError::InvalidAddress("no OM address given".into()));
        }
        let targets = addresses
            .iter()
            .map(|a| make_target(a, &opts))
            .collect::<Result<Vec<_>>>()?;
        Ok(OmClient {
            inner: Arc::new(Inner {
                targets: Mutex::new(targets),
                current: AtomicUsize::new(0),
                opts,
                client_id: uuid::Uuid::new_v4().simple().to_string(),
                next_call: AtomicU64::new(1),
            }),
        })
    }

    /// The address calls go to first (the last known leader).
    pub fn current_address(&self) -> String {
        let targets = self.targets();
        let i = self.inner.current.load(Ordering::Relaxed) % targets.len();
        targets[i].address.clone()
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, Vec<Target>> {
        self.inner
            .targets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pick(&self) -> (usize, String, OmServiceClient<Channel>) {
        let targets = self.targets();
        let i = self.inner.current.load(Ordering::Relaxed) % targets.len();
        (i, targets[i].address.clone(), targets[i].client.clone())
    }

    /// Moves on from target `from` (unless another call already did).
    fn rotate(&self, from: usize) {
        let n = self.targets().len();
        let _ = self.inner.current.compare_exchange(
            from,
            (from + 1) % n,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Makes `leader` the current target, adding it if it is not known yet.
    fn follow_leader(&self, leader: &str) -> Result<()> {
        let leader = normalize(leader);
        let mut targets = self.targets();
        let i = match targets.iter().position(|t| t.address == leader) {
            Some(i) => i,
            None => {
                targets.push(make_target(&leader, &self.inner.opts)?);
                targets.len() - 1
            }
        };
        self.inner.current.store(i, Ordering::Relaxed);
        Ok(())
    }

    /// This client's id in the request ids of its writes.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// A request id for a new write call.
    pub fn next_request_id(&self) -> RequestId {
        RequestId {
            client_id: self.inner.client_id.clone(),
            call_id: self.inner.next_call.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Runs one read RPC with redirects and retries.
    async fn call<Req, Resp, F, Fut>(&self, op: &'static str, req: Req, f: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(OmServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.attempts(op, req, None, f).await
    }

    /// Runs one write RPC with redirects and retries, all under one new request id.
    async fn write<Req, Resp, F, Fut>(&self, op: &'static str, req: Req, f: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(OmServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let id = self.next_request_id();
        self.attempts(op, req, Some(&id), f).await
    }

    /// The attempts of one call: redirected to the leader, moved on from unreachable OMs;
    /// with a request id (a write) every attempt carries it.
    async fn attempts<Req, Resp, F, Fut>(
        &self,
        op: &'static str,
        req: Req,
        id: Option<&RequestId>,
        f: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(OmServiceClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let opts = &self.inner.opts;
        let deadline = tokio::time::Instant::now() + opts.failover_timeout;
        let mut attempt = 0;
        let mut last_hint: Option<String> = None;
        loop {
            attempt += 1;
            let (idx, address, client) = self.pick();
            let mut request = tonic::Request::new(req.clone());
            if let Some(id) = id {
                id.attach(&mut request);
            }
            let err = match tokio::time::timeout(opts.request_timeout, f(client, request)).await {
                Ok(Ok(resp)) => return Ok(resp.into_inner()),
                Ok(Err(status)) => OmClientError::from_status(status),
                Err(_) => {
                    return Err(OmClientError::Unavailable(format!(
                        "{op} to OM {address} timed out after {:?}",
                        opts.request_timeout
                    )));
                }
            };
            let backoff = (opts.retry_backoff * attempt as u32).min(MAX_BACKOFF);
            let out_of_time = tokio::time::Instant::now() + backoff > deadline;
            if out_of_time || (opts.max_attempts > 0 && attempt >= opts.max_attempts) {
                return Err(err);
            }
            match &err {
                OmClientError::Status {
                    status: OmStatus::NotLeader,
                    leader: Some(leader),
                    ..
                } if normalize(leader) != address => {
                    tracing::debug!(op, from = %address, leader = %leader, "OM redirect to leader");
                    // The same hint twice in a row: that leader may be gone; give the OMs time.
                    if last_hint.as_deref() == Some(leader.as_str()) {
                        tokio::time::sleep(backoff).await;
                    }
                    last_hint = Some(leader.clone());
                    self.follow_leader(leader)?;
                }
                OmClientError::Status {
                    status: OmStatus::NotLeader,
                    ..
                }
                | OmClientError::Unavailable(_) => {
                    tracing::debug!(op, om = %address, error = %err, attempt, "OM not usable; trying the next");
                    self.rotate(idx);
                    tokio::time::sleep(backoff).await;
                }
                _ => return Err(err),
            }
        }
    }

    // ---- volumes ----

    pub async fn create_volume(&self, volume: &str, owner: &str) -> Result<VolumeInfo> {
        let req = CreateVolumeRequest {
            volume: volume.to_string(),
            owner: owner.to_string(),
        };
        self.write("CreateVolume", req, |mut c, r| async move {
            c.create_volume(r).await
        })
        .await
    }

    pub async fn info_volume(&self, volume: &str) -> Result<VolumeInfo> {
        let req = VolumeRef {
            volume: volume.to_string(),
        };
        self.call("InfoVolume", req, |mut c, r| async move {
            c.info_volume(r).await
        })
        .await
    }

    pub async fn list_volumes(&self, req: ListVolumesRequest) -> Result<ListVolumesResponse> {
        self.call("ListVolumes", req, |mut c, r| async move {
            c.list_volumes(r).await
        })
        .await
    }

    pub async fn delete_volume(&self, volume: &str) -> Result<()> {
        let req = VolumeRef {
            volume: volume.to_string(),
        };
        self.write("DeleteVolume", req, |mut c, r| async move {
            c.delete_volume(r).await
        })
        .await
        .map(|_| ())
    }

    // ---- buckets ----

    /// A link bucket `/volume/bucket` pointing at `/source_volume/source_bucket`.
    pub async fn create_bucket_link(&self, req: CreateBucketLinkRequest) -> Result<BucketInfo> {
        self.write("CreateBucketLink", req, |mut c, r| async move {
            c.create_bucket_link(r).await
        })
        .await
    }

    /// The bucket `/volume/bucket` stands for, links followed (BUCKET_NOT_FOUND for a dangling
    /// link, DETECTED_LOOP_IN_BUCKET_LINKS for a loop).
    pub async fn resolve_bucket(&self, volume: &str, bucket: &str) -> Result<BucketInfo> {
        let req = BucketRef {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
        };
        self.call("ResolveBucket", req, |mut c, r| async move {
            c.resolve_bucket(r).await
        })
        .await
    }

    /// On an existing bucket: BUCKET_ALREADY_EXISTS with [`OmClientError::owner`].
    pub async fn create_bucket(&self, req: CreateBucketRequest) -> Result<BucketInfo> {
        self.write("CreateBucket", req, |mut c, r| async move {
            c.create_bucket(r).await
        })
        .await
    }

    pub async fn info_bucket(&self, volume: &str, bucket: &str) -> Result<BucketInfo> {
        let req = BucketRef {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
        };
        self.call("InfoBucket", req, |mut c, r| async move {
            c.info_bucket(r).await
        })
        .await
    }

    pub async fn list_buckets(&self, req: ListBucketsRequest) -> Result<ListBucketsResponse> {
        self.call("ListBuckets", req, |mut c, r| async move {
            c.list_buckets(r).await
        })
        .await
    }

    pub async fn delete_bucket(&self, volume: &str, bucket: &str) -> Result<()> {
        let req = BucketRef {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
        };
        self.write("DeleteBucket", req, |mut c, r| async move {
            c.delete_bucket(r).await
        })
        .await
        .map(|_| ())
    }

    // ---- security ----

    pub async fn get_s3_secret(&self, req: S3SecretRequest) -> Result<S3Secret> {
        self.write("GetS3Secret", req, |mut c, r| async move {
            c.get_s3_secret(r).await
        })
        .await
    }

    pub async fn revoke_s3_secret(&self, req: S3SecretRequest) -> Result<()> {
        self.write("RevokeS3Secret", req, |mut c, r| async move {
            c.revoke_s3_secret(r).await
        })
        .await
        .map(|_| ())
    }

    pub async fn verify_s3_signature(
        &self,
        req: VerifyS3SignatureRequest,
    ) -> Result<VerifyS3SignatureResponse> {
        self.call("VerifyS3Signature", req, |mut c, r| async move {
            c.verify_s3_signature(r).await
        })
        .await
    }

    pub async fn set_bucket_acl(&self, req: SetBucketAclRequest) -> Result<BucketInfo> {
        self.write("SetBucketAcl", req, |mut c, r| async move {
            c.set_bucket_acl(r).await
        })
        .await
    }

    // ---- keys ----

    pub async fn open_key(&self, req: OpenKeyRequest) -> Result<OpenKeyResponse> {
        self.write(
            "OpenKey",
            req,
            |mut c, r| async move { c.open_key(r).await },
        )
        .await
    }

    /// One more block for an open key.
    pub async fn allocate_block(&self, req: AllocateKeyBlockRequest) -> Result<KeyLocation> {
        let resp = self
            .write("AllocateBlock", req, |mut c, r| async move {
                c.allocate_block(r).await
            })
            .await?;
        resp.location.ok_or_else(|| OmClientError::Status {
            status: OmStatus::InternalError,
            message: "AllocateBlock answered without a location".into(),
            owner: None,
            leader: None,
        })
    }

    pub async fn commit_key(&self, req: CommitKeyRequest) -> Result<KeyInfo> {
        self.write(
            "CommitKey",
            req,
            |mut c, r| async move { c.commit_key(r).await },
        )
        .await
    }

    pub async fn lookup_key(&self, volume: &str, bucket: &str, key: &str) -> Result<KeyInfo> {
        let req = KeyRef {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        self.call(
            "LookupKey",
            req,
            |mut c, r| async move { c.lookup_key(r).await },
        )
        .await
    }

    pub async fn list_keys(&self, req: ListKeysRequest) -> Result<ListKeysResponse> {
        self.call(
            "ListKeys",
            req,
            |mut c, r| async move { c.list_keys(r).await },
        )
        .await
    }

    /// Deleting a missing key succeeds.
    pub async fn delete_key(&self, volume: &str, bucket: &str, key: &str) -> Result<()> {
        let req = KeyRef {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        self.write(
            "DeleteKey",
            req,
            |mut c, r| async move { c.delete_key(r).await },
        )
        .await
        .map(|_| ())
    }

    /// Deletes up to 1000 keys; one result per key (status OK when deleted or absent).
    pub async fn delete_keys(
        &self,
        volume: &str,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<DeleteKeyResult>> {
        let req = DeleteKeysRequest {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
            keys,
        };
        self.write("DeleteKeys", req, |mut c, r| async move {
            c.delete_keys(r).await
        })
        .await
        .map(|r| r.results)
    }

    // ---- multipart uploads ----

    pub async fn initiate_multipart_upload(
        &self,
        req: InitiateMultipartUploadRequest,
    ) -> Result<MultipartUploadInfo> {
        self.write("InitiateMultipartUpload", req, |mut c, r| async move {
            c.initiate_multipart_upload(r).await
        })
        .await
    }

    pub async fn complete_multipart_upload(
        &self,
        req: CompleteMultipartUploadRequest,
    ) -> Result<KeyInfo> {
        self.write("CompleteMultipartUpload", req, |mut c, r| async move {
            c.complete_multipart_upload(r).await
        })
        .await
    }

    pub async fn abort_multipart_upload(
        &self,
        volume: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        let req = MultipartUploadRef {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
        };
        self.write("AbortMultipartUpload", req, |mut c, r| async move {
            c.abort_multipart_upload(r).await
        })
        .await
        .map(|_| ())
    }

    pub async fn list_parts(&self, req: ListPartsRequest) -> Result<ListPartsResponse> {
        self.call(
            "ListParts",
            req,
            |mut c, r| async move { c.list_parts(r).await },
        )
        .await
    }

    pub async fn list_multipart_uploads(
        &self,
        req: ListMultipartUploadsRequest,
    ) -> Result<ListMultipartUploadsResponse> {
        self.call("ListMultipartUploads", req, |mut c, r| async move {
            c.list_multipart_uploads(r).await
        })
        .await
    }

    // ---- admin ----

    /// Open keys (writes not committed yet), oldest first; pages with `next_token`.
    pub async fn admin_list_open_keys(
        &self,
        req: AdminListOpenKeysRequest,
    ) -> Result<AdminListOpenKeysResponse> {
        self.call("AdminListOpenKeys", req, |mut c, r| async move {
            c.admin_list_open_keys(r).await
        })
        .await
    }

    /// Incomplete multipart uploads of every bucket (or one volume / bucket); pages with
    /// `next_token`.
    pub async fn admin_list_multipart_uploads(
        &self,
        req: AdminListMultipartUploadsRequest,
    ) -> Result<AdminListMultipartUploadsResponse> {
        self.call("AdminListMultipartUploads", req, |mut c, r| async move {
            c.admin_list_multipart_uploads(r).await
        })
        .await
    }

    // ---- tags ----

    /// Replaces a key's tags (empty: deletes them); answers the key without locations.
    pub async fn set_key_tags(&self, req: SetKeyTagsRequest) -> Result<KeyInfo> {
        self.write("SetKeyTags", req, |mut c, r| async move {
            c.set_key_tags(r).await
        })
        .await
    }

    /// Replaces a bucket's tags (empty: deletes them).
    pub async fn set_bucket_tags(&self, req: SetBucketTagsRequest) -> Result<BucketInfo> {
        self.write("SetBucketTags", req, |mut c, r| async move {
            c.set_bucket_tags(r).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status(code: tonic::Code, om: Option<&'static str>) -> tonic::Status {
        let mut st = tonic::Status::new(code, "msg");
        if let Some(name) = om {
            st.metadata_mut()
                .insert(STATUS_HEADER, MetadataValue::from_static(name));
        }
        st
    }

    #[test]
    fn parses_statuses() {
        let mut st = status(tonic::Code::AlreadyExists, Some("BUCKET_ALREADY_EXISTS"));
        st.metadata_mut()
            .insert(OWNER_HEADER, MetadataValue::from_static("j%C3%BCrgen"));
        let e = OmClientError::from_status(st);
        assert_eq!(e.status(), OmStatus::BucketAlreadyExists);
        assert_eq!(e.owner(), Some("jürgen"));

        let e = OmClientError::from_status(status(tonic::Code::Unavailable, None));
        assert!(matches!(e, OmClientError::Unavailable(_)));
        assert!(e.is_unavailable());
        assert_eq!(e.status(), OmStatus::InternalError);

        let e = OmClientError::from_status(status(tonic::Code::Unknown, None));
        assert!(e.is_unavailable(), "a reset connection");

        let e = OmClientError::from_status(status(tonic::Code::Internal, None));
        assert_eq!(e.status(), OmStatus::InternalError);
        assert!(!e.is_unavailable());

        let e =
            OmClientError::from_status(status(tonic::Code::Unavailable, Some("SCM_UNAVAILABLE")));
        assert_eq!(e.status(), OmStatus::ScmUnavailable);
        assert!(e.is_unavailable());
    }

    #[test]
    fn normalizes_addresses() {
        assert_eq!(normalize("http://om:9862/"), "om:9862");
        assert_eq!(normalize(" om:9862 "), "om:9862");
    }

    /// The (client id, call id) of each attempt seen.
    type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

    /// What one attempt of a call carried: (client id, call id) from its metadata.
    fn ids_of<T>(r: &tonic::Request<T>) -> (Option<String>, Option<String>) {
        let get = |k| {
            r.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        (get(CLIENT_ID_HEADER), get(CALL_ID_HEADER))
    }

    /// Every attempt of a write carries the same request id (so OM answers a retry with the
    /// first result); the next write gets a new call id; reads carry none.
    #[tokio::test]
    async fn a_write_keeps_its_request_id_across_attempts() {
        let client = OmClient::connect_with(
            vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            OmClientOptions {
                retry_backoff: Duration::from_millis(1),
                failover_timeout: Duration::from_secs(5),
                ..Default::default()
            },
        )
        .expect("client");
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Fails twice (a reset connection, then NOT_LEADER without a hint), then answers.
        let flaky = |seen: Seen| {
            move |_c: OmServiceClient<Channel>, r: tonic::Request<u32>| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock().expect("lock");
                    seen.push(ids_of(&r));
                    match seen.len() {
                        1 => Err(tonic::Status::unavailable("connection reset")),
                        2 => Err(status(tonic::Code::FailedPrecondition, Some("NOT_LEADER"))),
                        _ => Ok(tonic::Response::new(*r.get_ref())),
                    }
                }
            }
        };
        let got = client
            .write("CommitKey", 7u32, flaky(seen.clone()))
            .await
            .expect("third attempt answers");
        assert_eq!(got, 7);
        let attempts = std::mem::take(&mut *seen.lock().expect("lock"));
        assert_eq!(attempts.len(), 3);
        let first = attempts[0].clone();
        assert_eq!(first.0.as_deref(), Some(client.client_id()));
        assert!(first.1.is_some());
        assert!(attempts.iter().all(|a| *a == first), "{attempts:?}");

        client
            .write("CommitKey", 8u32, flaky(seen.clone()))
            .await
            .expect("answers");
        let next = seen.lock().expect("lock")[0].clone();
        assert_eq!(next.0, first.0);
        assert_ne!(next.1, first.1, "a new call gets a new call id");

        seen.lock().expect("lock").clear();
        client
            .call("LookupKey", 9u32, flaky(seen.clone()))
            .await
            .expect("answers");
        let reads = seen.lock().expect("lock").clone();
        assert_eq!(reads, vec![(None, None); 3], "a read carries no request id");
    }

    #[tokio::test]
    async fn unreachable_om_is_unavailable_after_bounded_retries() {
        // A port nobody listens on: bind, then drop.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        drop(l);
        let client = OmClient::connect_with(
            vec![addr.clone(), addr],
            OmClientOptions {
                retry_backoff: Duration::from_millis(1),
                failover_timeout: Duration::from_secs(1),
                ..Default::default()
            },
        )
        .expect("client");
        let e = client.info_volume("s3v").await.expect_err("nobody listens");
        assert!(matches!(e, OmClientError::Unavailable(_)), "{e:?}");
    }
}
