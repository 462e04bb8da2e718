//! The replicated unit of change: an [`OmCommand`] is a mutation fully decided by the leader's
//! prepare step (ids, timestamps and SCM block allocations are written into it), so applying it
//! on any replica gives the same [`OmResponse`] and the same state.
//!
//! Both types are serde so they can ride in a raft log entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::model::{
    BucketRecord, CommittedBlock, KeyRecord, Location, PartTarget, UploadRecord, VolumeRecord,
};

/// A mutation of the namespace, ready to apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OmCommand {
    CreateVolume {
        volume: String,
        owner: String,
        now_ms: u64,
    },
    DeleteVolume {
        volume: String,
    },
    CreateBucket {
        volume: String,
        bucket: String,
        owner: String,
        /// Already resolved (1 or 3).
        replication: u32,
        now_ms: u64,
        /// Set: the bucket is a link to this `(volume, bucket)`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<(String, String)>,
    },
    DeleteBucket {
        volume: String,
        bucket: String,
    },
    /// Records an open key with the blocks SCM allocated for it.
    OpenKey {
        volume: String,
        bucket: String,
        key: String,
        client_id: u64,
        /// Empty: the bucket's (or upload's) owner.
        owner: String,
        /// 0: the bucket's replication (for a part: the upload's).
        replication: u32,
        locations: Vec<Location>,
        part: Option<PartTarget>,
        block_size: u64,
        now_ms: u64,
    },
    /// Adds a block SCM allocated to an open key.
    AllocateBlock {
        volume: String,
        bucket: String,
        key: String,
        client_id: u64,
        location: Location,
    },
    /// Makes an open key visible (or records it as a multipart part).
    CommitKey {
        volume: String,
        bucket: String,
        key: String,
        client_id: u64,
        blocks: Vec<CommittedBlock>,
        size: u64,
        etag: String,
        metadata: BTreeMap<String, String>,
        /// The part the client says it commits; must match the open key's.
        part: Option<PartTarget>,
        now_ms: u64,
    },
    /// Deletes keys; missing keys are fine. Used by DeleteKey (one key) and DeleteKeys.
    DeleteKeys {
        volume: String,
        bucket: String,
        keys: Vec<String>,
    },
    InitiateMultipartUpload {
        volume: String,
        bucket: String,
        key: String,
        upload_id: String,
        owner: String,
        /// 0: the bucket's replication.
        replication: u32,
        metadata: BTreeMap<String, String>,
        now_ms: u64,
    },
    CompleteMultipartUpload {
        volume: String,
        bucket: String,
        key: String,
        upload_id: String,
        /// (part number, etag) in the order the client listed them.
        parts: Vec<(u32, String)>,
        now_ms: u64,
    },
    AbortMultipartUpload {
        volume: String,
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// Removes deleted-block records (by the index that released them) that SCM has taken
    /// over into its deleted-block log (see [`crate::deletion`]).
    PurgeDeletedBlocks {
        indexes: Vec<u64>,
    },
}

impl OmCommand {
    /// Operation name for logs and the deleted-blocks table.
    pub fn name(&self) -> &'static str {
        match self {
            OmCommand::CreateVolume { .. } => "CreateVolume",
            OmCommand::DeleteVolume { .. } => "DeleteVolume",
            OmCommand::CreateBucket { .. } => "CreateBucket",
            OmCommand::DeleteBucket { .. } => "DeleteBucket",
            OmCommand::OpenKey { .. } => "OpenKey",
            OmCommand::AllocateBlock { .. } => "AllocateBlock",
            OmCommand::CommitKey { .. } => "CommitKey",
            OmCommand::DeleteKeys { .. } => "DeleteKeys",
            OmCommand::InitiateMultipartUpload { .. } => "InitiateMultipartUpload",
            OmCommand::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            OmCommand::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            OmCommand::PurgeDeletedBlocks { .. } => "PurgeDeletedBlocks",
        }
    }
}

/// The outcome of one key of a DeleteKeys command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOutcome {
    pub key: String,
    /// `None`: deleted or already absent.
    pub error: Option<Rejection>,
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OmResponse {
    Volume(VolumeRecord),
    Bucket(BucketRecord),
    OpenKey {
        client_id: u64,
        locations: Vec<Location>,
        block_size: u64,
    },
    Block(Location),
    /// A committed or completed key; for a committed part, the part seen as a key.
    Key(KeyRecord),
    Deleted(Vec<DeleteOutcome>),
    Upload(UploadRecord),
    /// Done, nothing to return.
    Done,
    /// The namespace refused the command; nothing but the applied index changed.
    Rejected(Rejection),
}
