//! The replicated unit of change: an [`OmCommand`] is a mutation fully decided by the leader's
//! prepare step (ids, timestamps and SCM block allocations are written into it), so applying it
//! on any replica gives the same [`OmResponse`] and the same state.
//!
//! Commands are grouped by the resource they change ([`VolumeCommand`], [`KeyCommand`], ...);
//! each resource file of the crate prepares its commands on the leader and applies them.
//! Each command is a struct of its own (e.g. [`CommitKey`]).
//!
//! Both types are serde so they can ride in a raft log entry. A command keeps the flat form
//! it has always had in the raft log and in snapshots (`{"CommitKey":{..}}`): the nesting by
//! resource is not part of the stored bytes, so logs written before it still load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::model::{
    AclGrant, BucketRecord, CommittedBlock, KeyRecord, Location, PartTarget, S3SecretRecord,
    UploadRecord, VolumeRecord, WriteCondition,
};

/// A mutation of the namespace, ready to apply, by resource.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "WireCommand")]
pub enum OmCommand {
    Volume(VolumeCommand),
    Bucket(BucketCommand),
    Key(KeyCommand),
    Multipart(MultipartCommand),
    Tags(TagCommand),
    Security(SecurityCommand),
    DeletedBlocks(DeletedBlocksCommand),
    /// A client's write tagged with its request id: applied once, a retry answers the first
    /// result (`retry.rs`).
    Tracked(Tracked),
}

/// Volumes (`volume.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeCommand {
    Create(CreateVolume),
    Delete(DeleteVolume),
}

/// Buckets and bucket links (`bucket.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketCommand {
    Create(CreateBucket),
    Delete(DeleteBucket),
}

/// Keys: open, add a block, commit, delete (`key.rs`); expire open keys (`expiry.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCommand {
    Open(OpenKey),
    AllocateBlock(AllocateBlock),
    Commit(CommitKey),
    Delete(DeleteKeys),
    Expire(ExpireOpenKeys),
}

/// Multipart uploads (`multipart.rs`); parts are written as keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartCommand {
    Initiate(InitiateMultipartUpload),
    Complete(CompleteMultipartUpload),
    Abort(AbortMultipartUpload),
}

/// Tags of keys and buckets (`tags.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagCommand {
    SetKeyTags(SetKeyTags),
    SetBucketTags(SetBucketTags),
}

/// S3 secrets and bucket ACLs (`security.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityCommand {
    CreateS3Secret(CreateS3Secret),
    RevokeS3Secret(RevokeS3Secret),
    SetBucketAcl(SetBucketAcl),
    ReplaceS3Secret(ReplaceS3Secret),
}

/// The deleted-block records handed to SCM (`deletion.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletedBlocksCommand {
    Purge(PurgeDeletedBlocks),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVolume {
    pub volume: String,
    pub owner: String,
    pub now_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteVolume {
    pub volume: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBucket {
    pub volume: String,
    pub bucket: String,
    pub owner: String,
    /// Already resolved (1 or 3).
    pub replication: u32,
    pub now_ms: u64,
    /// Set: the bucket is a link to this `(volume, bucket)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteBucket {
    pub volume: String,
    pub bucket: String,
}

/// Records an open key with the blocks SCM allocated for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenKey {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub client_id: u64,
    /// Empty: the bucket's (or upload's) owner.
    pub owner: String,
    /// 0: the bucket's replication (for a part: the upload's).
    pub replication: u32,
    pub locations: Vec<Location>,
    pub part: Option<PartTarget>,
    pub block_size: u64,
    pub now_ms: u64,
}

/// Adds a block SCM allocated to an open key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateBlock {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub client_id: u64,
    pub location: Location,
}

/// Makes an open key visible (or records it as a multipart part).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitKey {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub client_id: u64,
    pub blocks: Vec<CommittedBlock>,
    pub size: u64,
    pub etag: String,
    pub metadata: BTreeMap<String, String>,
    /// The part the client says it commits; must match the open key's.
    pub part: Option<PartTarget>,
    pub now_ms: u64,
    /// Tags of the new key (not of a part).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Checked against the current key when committing (not for a part).
    #[serde(default)]
    pub condition: Option<WriteCondition>,
}

/// Names one open key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenKeyId {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub client_id: u64,
}

/// Removes the open keys the leader found older than `ozone.om.open.key.expire.threshold`
/// and releases their blocks; one already committed or gone is skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireOpenKeys {
    pub open_keys: Vec<OpenKeyId>,
    /// Only open keys created at or before this time are removed.
    pub created_before_ms: u64,
}

/// A client's request id, as Ozone's retry cache keys it: the client (one id per client
/// instance) and its call counter. A retry of a call carries the same id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub client_id: String,
    pub call_id: u64,
}

/// A write with its client request id. Applying it the first time applies `command` and
/// records the result under the id; applying it again (a client's retry, maybe through a new
/// leader) answers that result and changes nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub request: RequestId,
    /// When the leader prepared it (the recorded result's time).
    pub now_ms: u64,
    /// Recorded results older than this are forgotten
    /// (`now_ms - ozone.om.ratis.server.retrycache.timeout`).
    pub expire_before_ms: u64,
    pub command: Box<OmCommand>,
}

impl OmCommand {
    /// The command itself and, when it is [`Tracked`], its tag.
    pub fn untracked(&self) -> (&OmCommand, Option<&Tracked>) {
        match self {
            OmCommand::Tracked(t) => (t.command.as_ref(), Some(t)),
            other => (other, None),
        }
    }
}

/// Deletes keys; missing keys are fine. Used by DeleteKey (one key) and DeleteKeys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteKeys {
    pub volume: String,
    pub bucket: String,
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiateMultipartUpload {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub owner: String,
    /// 0: the bucket's replication.
    pub replication: u32,
    pub metadata: BTreeMap<String, String>,
    pub now_ms: u64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteMultipartUpload {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// (part number, etag) in the order the client listed them.
    pub parts: Vec<(u32, String)>,
    pub now_ms: u64,
    #[serde(default)]
    pub condition: Option<WriteCondition>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortMultipartUpload {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

/// Replaces a key's tags (empty: none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetKeyTags {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub tags: BTreeMap<String, String>,
}

/// Replaces a bucket's tags (empty: none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBucketTags {
    pub volume: String,
    pub bucket: String,
    pub tags: BTreeMap<String, String>,
}

/// Removes deleted-block records (by the index that released them) that SCM has taken
/// over into its deleted-block log (see `deletion.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeDeletedBlocks {
    pub indexes: Vec<u64>,
}

/// Stores `user`'s S3 secret (generated and sealed by the leader, see
/// [`crate::secret_key`]) unless the user already has one; answers the stored secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateS3Secret {
    pub user: String,
    pub secret: String,
    pub now_ms: u64,
}

/// Replaces the stored form of `user`'s S3 secret, if the user has one: the leader seals a
/// clear secret written before secrets were sealed (the secret itself stays the same).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceS3Secret {
    pub user: String,
    pub secret: String,
    pub creation_time_ms: u64,
}

/// Removes `user`'s S3 secret (fine when absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeS3Secret {
    pub user: String,
}

/// Replaces a bucket's ACL grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBucketAcl {
    pub volume: String,
    pub bucket: String,
    pub acl: Vec<AclGrant>,
}

/// Declares, from one list of `WireName => Resource(ResourceCommand::Variant)`:
/// the flat stored form [`WireCommand`] (variants in the order the log has always had),
/// loading it into an [`OmCommand`], writing an [`OmCommand`] in it without copying the command
/// (a borrowed twin of the flat enum), [`OmCommand::name`] (the wire name) and
/// `From<each command>`.
macro_rules! commands {
    ($($wire:ident => $outer:ident($inner:ident::$variant:ident)),* $(,)?) => {
        /// The stored (raft log, snapshot, network) form of an [`OmCommand`]: one flat enum,
        /// externally tagged by the command's name.
        #[derive(Deserialize)]
        #[serde(rename = "OmCommand")]
        enum WireCommand {
            $($wire($wire),)*
            Tracked(Tracked),
        }

        /// [`WireCommand`] borrowing its command: what [`OmCommand`] serializes as.
        #[derive(Serialize)]
        #[serde(rename = "OmCommand")]
        enum WireCommandRef<'a> {
            $($wire(&'a $wire),)*
            Tracked(&'a Tracked),
        }

        impl Serialize for OmCommand {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(OmCommand::$outer($inner::$variant(c)) => WireCommandRef::$wire(c),)*
                    OmCommand::Tracked(t) => WireCommandRef::Tracked(t),
                }
                .serialize(s)
            }
        }

        impl From<WireCommand> for OmCommand {
            fn from(w: WireCommand) -> Self {
                match w {
                    $(WireCommand::$wire(c) => OmCommand::$outer($inner::$variant(c)),)*
                    WireCommand::Tracked(t) => OmCommand::Tracked(t),
                }
            }
        }

        impl OmCommand {
            /// Operation name for logs and the deleted-blocks table (the stored name; of a
            /// [`Tracked`] command, the name of the command it carries).
            pub fn name(&self) -> &'static str {
                match self {
                    $(OmCommand::$outer($inner::$variant(_)) => stringify!($wire),)*
                    OmCommand::Tracked(t) => t.command.name(),
                }
            }
        }

        $(impl From<$wire> for OmCommand {
            fn from(c: $wire) -> Self {
                OmCommand::$outer($inner::$variant(c))
            }
        })*
    };
}

commands! {
    CreateVolume => Volume(VolumeCommand::Create),
    DeleteVolume => Volume(VolumeCommand::Delete),
    CreateBucket => Bucket(BucketCommand::Create),
    DeleteBucket => Bucket(BucketCommand::Delete),
    OpenKey => Key(KeyCommand::Open),
    AllocateBlock => Key(KeyCommand::AllocateBlock),
    CommitKey => Key(KeyCommand::Commit),
    DeleteKeys => Key(KeyCommand::Delete),
    ExpireOpenKeys => Key(KeyCommand::Expire),
    InitiateMultipartUpload => Multipart(MultipartCommand::Initiate),
    CompleteMultipartUpload => Multipart(MultipartCommand::Complete),
    AbortMultipartUpload => Multipart(MultipartCommand::Abort),
    SetKeyTags => Tags(TagCommand::SetKeyTags),
    SetBucketTags => Tags(TagCommand::SetBucketTags),
    PurgeDeletedBlocks => DeletedBlocks(DeletedBlocksCommand::Purge),
    CreateS3Secret => Security(SecurityCommand::CreateS3Secret),
    RevokeS3Secret => Security(SecurityCommand::RevokeS3Secret),
    SetBucketAcl => Security(SecurityCommand::SetBucketAcl),
    ReplaceS3Secret => Security(SecurityCommand::ReplaceS3Secret),
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
    /// How many open keys an ExpireOpenKeys removed.
    Expired(u64),
    Upload(UploadRecord),
    S3Secret(S3SecretRecord),
    /// Done, nothing to return.
    Done,
    /// The namespace refused the command; nothing but the applied index changed.
    Rejected(Rejection),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raft log entries and snapshots hold commands in the flat form written before commands
    /// were grouped by resource: each still loads, as its nested command, and serializes back
    /// to the same bytes.
    #[test]
    fn flat_stored_commands_load_as_nested_commands() {
        let loc = r#"{"block":{"container_id":1,"local_id":2},"offset":0,"length":5,"pipeline":{"id":"p","nodes":[{"uuid":"d","host":"h","port":1,"http_port":2}],"replication":1,"state":"OPEN"},"part_number":0}"#;
        let stored = [
            r#"{"CreateVolume":{"volume":"v","owner":"o","now_ms":1}}"#.to_string(),
            r#"{"DeleteVolume":{"volume":"v"}}"#.to_string(),
            r#"{"CreateBucket":{"volume":"v","bucket":"b","owner":"o","replication":3,"now_ms":1}}"#.to_string(),
            r#"{"CreateBucket":{"volume":"v","bucket":"l","owner":"o","replication":3,"now_ms":1,"link":["v","b"]}}"#.to_string(),
            r#"{"DeleteBucket":{"volume":"v","bucket":"b"}}"#.to_string(),
            format!(r#"{{"OpenKey":{{"volume":"v","bucket":"b","key":"k","client_id":7,"owner":"","replication":0,"locations":[{loc}],"part":{{"upload_id":"u","part_number":1}},"block_size":4,"now_ms":1}}}}"#),
            format!(r#"{{"AllocateBlock":{{"volume":"v","bucket":"b","key":"k","client_id":7,"location":{loc}}}}}"#),
            r#"{"CommitKey":{"volume":"v","bucket":"b","key":"k","client_id":7,"blocks":[{"block":{"container_id":1,"local_id":2},"length":5}],"size":5,"etag":"e","metadata":{"a":"b"},"part":null,"now_ms":1,"tags":{"t":"v"},"condition":{"if_none_match":true,"if_match":null}}}"#.to_string(),
            r#"{"DeleteKeys":{"volume":"v","bucket":"b","keys":["k"]}}"#.to_string(),
            r#"{"InitiateMultipartUpload":{"volume":"v","bucket":"b","key":"k","upload_id":"u","owner":"o","replication":0,"metadata":{},"now_ms":1,"tags":{}}}"#.to_string(),
            r#"{"CompleteMultipartUpload":{"volume":"v","bucket":"b","key":"k","upload_id":"u","parts":[[1,"e"]],"now_ms":1,"condition":null}}"#.to_string(),
            r#"{"AbortMultipartUpload":{"volume":"v","bucket":"b","key":"k","upload_id":"u"}}"#.to_string(),
            r#"{"SetKeyTags":{"volume":"v","bucket":"b","key":"k","tags":{"a":"b"}}}"#.to_string(),
            r#"{"SetBucketTags":{"volume":"v","bucket":"b","tags":{}}}"#.to_string(),
            r#"{"PurgeDeletedBlocks":{"indexes":[1,65536]}}"#.to_string(),
            r#"{"CreateS3Secret":{"user":"u","secret":"s","now_ms":1}}"#.to_string(),
            r#"{"RevokeS3Secret":{"user":"u"}}"#.to_string(),
            r#"{"SetBucketAcl":{"volume":"v","bucket":"b","acl":[{"grantee":"g","permission":"READ"}]}}"#.to_string(),
            r#"{"ReplaceS3Secret":{"user":"u","secret":"aesgcm1:00","creation_time_ms":1}}"#.to_string(),
        ];
        for json in &stored {
            let cmd: OmCommand = serde_json::from_str(json).expect(json);
            assert_eq!(&serde_json::to_string(&cmd).expect("serialize"), json);
            assert!(
                json.starts_with(&format!("{{\"{}\":", cmd.name())),
                "{json}"
            );
        }
        let nested: Vec<OmCommand> = stored
            .iter()
            .map(|j| serde_json::from_str(j).expect("load"))
            .collect();
        assert!(matches!(
            &nested[3],
            OmCommand::Bucket(BucketCommand::Create(CreateBucket { link: Some(l), .. }))
                if l == &("v".to_string(), "b".to_string())
        ));
        assert!(matches!(
            &nested[7],
            OmCommand::Key(KeyCommand::Commit(CommitKey { size: 5, condition: Some(c), .. }))
                if c.if_none_match
        ));
        assert!(matches!(
            &nested[14],
            OmCommand::DeletedBlocks(DeletedBlocksCommand::Purge(PurgeDeletedBlocks { indexes }))
                if indexes == &[1, 65536]
        ));
        // Open-key expiry and a tracked write (its name is its command's).
        let expire = r#"{"ExpireOpenKeys":{"open_keys":[{"volume":"v","bucket":"b","key":"k","client_id":7}],"created_before_ms":5}}"#;
        let cmd: OmCommand = serde_json::from_str(expire).expect("expire");
        assert_eq!(serde_json::to_string(&cmd).expect("serialize"), expire);
        assert_eq!(cmd.name(), "ExpireOpenKeys");
        let tracked = format!(
            r#"{{"Tracked":{{"request":{{"client_id":"c1","call_id":3}},"now_ms":9,"expire_before_ms":1,"command":{}}}}}"#,
            stored[7]
        );
        let cmd: OmCommand = serde_json::from_str(&tracked).expect("tracked");
        assert_eq!(serde_json::to_string(&cmd).expect("serialize"), tracked);
        assert_eq!(cmd.name(), "CommitKey");
        let (inner, tag) = cmd.untracked();
        assert_eq!(inner, &nested[7]);
        assert_eq!(tag.map(|t| t.request.call_id), Some(3));

        // Fields added later still default when an older entry lacks them.
        let old: OmCommand = serde_json::from_str(
            r#"{"CommitKey":{"volume":"v","bucket":"b","key":"k","client_id":7,"blocks":[],"size":0,"etag":"e","metadata":{},"part":null,"now_ms":1}}"#,
        )
        .expect("entry without tags and condition");
        assert!(matches!(
            old,
            OmCommand::Key(KeyCommand::Commit(CommitKey { condition: None, ref tags, .. }))
                if tags.is_empty()
        ));
    }
}
