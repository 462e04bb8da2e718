//! Domain records of the namespace as OM stores them (serde, in redb) and replicates them (inside
//! commands), with the conversions to and from the generated proto types and the name rules.
//!
//! Maps are `BTreeMap` so a record always serializes to the same bytes.

use std::collections::BTreeMap;

use ozone_proto::{hdds, om, scm};
use serde::{Deserialize, Serialize};

use crate::error::OmError;

/// Smallest size of every multipart part but the last (S3's limit).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part number S3 allows.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Largest key name in bytes (S3's limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest page any list call returns.
pub const MAX_LIST: u32 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    pub container_id: u64,
    pub local_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub uuid: String,
    pub host: String,
    pub port: u32,
    pub http_port: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub id: String,
    pub nodes: Vec<NodeRecord>,
    pub replication: u32,
    pub state: String,
}

/// One block of a key (or of an open key, or of a part).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub block: BlockRef,
    /// Offset of the block's first byte inside the key (or part).
    pub offset: u64,
    /// Bytes stored in the block; 0 until committed.
    pub length: u64,
    pub pipeline: PipelineRecord,
    /// For keys completed from a multipart upload: the part of this block.
    pub part_number: u32,
    /// The writer's digest of the block's chunk checksums over `length` bytes (see
    /// `om.proto` `KeyLocation.block_checksum`); empty for blocks committed before OM kept it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksum: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub owner: String,
    pub creation_time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub volume: String,
    pub name: String,
    pub owner: String,
    pub creation_time_ms: u64,
    pub replication: u32,
    /// S3 bucket tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// ACL grants beyond the owner's FULL_CONTROL (S3 bucket ACLs).
    #[serde(default)]
    pub acl: Vec<AclGrant>,
    /// A link bucket: the `(volume, bucket)` it points at (which need not exist). Keys are
    /// never stored under a link; every key call resolves it first (see `bucket.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<(String, String)>,
}

impl BucketRecord {
    pub fn is_link(&self) -> bool {
        self.source.is_some()
    }
}

/// One bucket ACL grant: `grantee` is a user, `*` (everyone) or `@authenticated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclGrant {
    pub grantee: String,
    /// READ, WRITE, READ_ACP, WRITE_ACP or FULL_CONTROL.
    pub permission: String,
}

/// Permissions a bucket ACL grant may carry.
pub const ACL_PERMISSIONS: &[&str] = &["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"];

/// A user's S3 secret (security on). The access key is the user name, as in Ozone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3SecretRecord {
    pub user: String,
    pub secret: String,
    pub creation_time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub creation_time_ms: u64,
    pub modification_time_ms: u64,
    pub locations: Vec<Location>,
    pub metadata: BTreeMap<String, String>,
    pub owner: String,
    pub replication: u32,
    pub parts_count: u32,
    /// S3 object tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The multipart upload this key was completed from (empty for a plain write): completing
    /// that upload again answers this key, as S3 does.
    #[serde(default)]
    pub upload_id: String,
}

/// An S3 conditional write (`If-None-Match: *`, `If-Match: <etag>`), checked in apply against
/// the key as it is when the write commits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCondition {
    /// The key must not exist.
    pub if_none_match: bool,
    /// The key must exist with this ETag.
    pub if_match: Option<String>,
}

impl WriteCondition {
    /// From the proto form; `None` when it asks for nothing.
    pub fn from_proto(c: Option<&om::WriteCondition>) -> Option<Self> {
        let c = c?;
        let cond = WriteCondition {
            if_none_match: c.if_none_match,
            if_match: (!c.if_match.is_empty()).then(|| unquote(&c.if_match).to_string()),
        };
        (cond != WriteCondition::default()).then_some(cond)
    }

    /// Whether the condition holds for the current key `current`.
    pub fn holds(&self, current: Option<&KeyRecord>) -> Result<(), String> {
        if self.if_none_match && current.is_some() {
            return Err("the key exists (If-None-Match: *)".into());
        }
        if let Some(want) = &self.if_match {
            match current {
                None => return Err("the key does not exist (If-Match)".into()),
                Some(k) if want != "*" && unquote(&k.etag) != unquote(want) => {
                    return Err(format!("the key's ETag is {} (If-Match: {want})", k.etag));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The multipart part an open key will become when committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartTarget {
    pub upload_id: String,
    pub part_number: u32,
}

/// A key being written: blocks allocated but not yet visible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenKeyRecord {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub client_id: u64,
    pub owner: String,
    pub replication: u32,
    pub locations: Vec<Location>,
    pub part: Option<PartTarget>,
    pub creation_time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub volume: String,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub owner: String,
    pub replication: u32,
    pub metadata: BTreeMap<String, String>,
    pub creation_time_ms: u64,
    /// Tags the key gets on completion.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    /// Offsets are relative to the part's first byte.
    pub locations: Vec<Location>,
    pub modification_time_ms: u64,
}

/// Blocks no key refers to any more, recorded for deletion by SCM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedBlocks {
    /// The operation that released them (for operators).
    pub reason: String,
    pub blocks: Vec<BlockRef>,
}

/// A block the client says it wrote, as given in CommitKey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedBlock {
    pub block: BlockRef,
    pub length: u64,
    /// The writer's digest of the block's chunk checksums (empty: none given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksum: Vec<u8>,
}

/// Bytes of a block checksum (SHA-256), when one is given.
pub const BLOCK_CHECKSUM_BYTES: usize = 32;

// ---- name rules ----

/// Ozone's volume/bucket name rule (as S3's bucket rule): 3-63 of `a-z 0-9 . -`, starting and
/// ending with a letter or digit, no `..`, `.-` or `-.`.
pub fn validate_resource_name(kind: &str, name: &str) -> Result<(), OmError> {
    let bad = |why: &str| {
        Err(OmError::invalid(format!(
            "invalid {kind} name {name:?}: {why}"
        )))
    };
    if name.len() < 3 || name.len() > 63 {
        return bad("must be 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return bad("only lowercase letters, digits, '.' and '-' are allowed");
    }
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    if !edge_ok(bytes[0]) || !edge_ok(bytes[bytes.len() - 1]) {
        return bad("must start and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return bad("no '..', '.-' or '-.'");
    }
    Ok(())
}

/// A key name: 1 to 1024 bytes of UTF-8 without NUL (NUL separates fields in OM's db keys).
pub fn validate_key_name(key: &str) -> Result<(), OmError> {
    if key.is_empty() {
        return Err(OmError::invalid("key name is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(OmError::invalid(format!(
            "key name is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(OmError::invalid("key name contains NUL"));
    }
    Ok(())
}

/// Replication factor of a request: 0 means `default`; else 1 or 3.
pub fn resolve_replication(requested: u32, default: u32) -> Result<u32, OmError> {
    match requested {
        0 => Ok(default),
        1 | 3 => Ok(requested),
        other => Err(OmError::invalid(format!(
            "replication must be 1 or 3, got {other}"
        ))),
    }
}

/// The page size of a list call: 0 or above [`MAX_LIST`] means [`MAX_LIST`].
pub fn page_size(requested: u32) -> usize {
    if requested == 0 || requested > MAX_LIST {
        MAX_LIST as usize
    } else {
        requested as usize
    }
}

/// An ETag without surrounding quotes.
pub fn unquote(etag: &str) -> &str {
    let t = etag.trim();
    t.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(t)
}

// ---- proto conversions ----

impl From<&hdds::DatanodeDetails> for NodeRecord {
    fn from(d: &hdds::DatanodeDetails) -> Self {
        NodeRecord {
            uuid: d.uuid.clone(),
            host: d.host.clone(),
            port: d.port,
            http_port: d.http_port,
        }
    }
}

impl From<&NodeRecord> for hdds::DatanodeDetails {
    fn from(n: &NodeRecord) -> Self {
        hdds::DatanodeDetails {
            uuid: n.uuid.clone(),
            host: n.host.clone(),
            port: n.port,
            http_port: n.http_port,
        }
    }
}

impl From<&PipelineRecord> for hdds::Pipeline {
    fn from(p: &PipelineRecord) -> Self {
        hdds::Pipeline {
            id: p.id.clone(),
            nodes: p.nodes.iter().map(Into::into).collect(),
            replication: p.replication,
            state: p.state.clone(),
        }
    }
}

impl From<BlockRef> for hdds::BlockId {
    fn from(b: BlockRef) -> Self {
        hdds::BlockId {
            container_id: b.container_id,
            local_id: b.local_id,
        }
    }
}

impl From<&hdds::BlockId> for BlockRef {
    fn from(b: &hdds::BlockId) -> Self {
        BlockRef {
            container_id: b.container_id,
            local_id: b.local_id,
        }
    }
}

impl std::fmt::Display for BlockRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.container_id, self.local_id)
    }
}

impl From<&Location> for om::KeyLocation {
    fn from(l: &Location) -> Self {
        om::KeyLocation {
            block_id: Some(l.block.into()),
            offset: l.offset,
            length: l.length,
            pipeline: Some((&l.pipeline).into()),
            part_number: l.part_number,
            block_checksum: l.checksum.clone(),
            // Signed per response (security on): see `crate::tokens`.
            token: Vec::new(),
        }
    }
}

/// A block SCM allocated; it must name a block and a pipeline with at least one datanode.
impl TryFrom<scm::AllocatedBlock> for Location {
    type Error = OmError;

    fn try_from(b: scm::AllocatedBlock) -> Result<Self, OmError> {
        let block =
            b.block_id.as_ref().map(BlockRef::from).ok_or_else(|| {
                OmError::BadScmResponse("allocated block without block id".into())
            })?;
        let p = b.pipeline.ok_or_else(|| {
            OmError::BadScmResponse(format!("allocated block {block} without pipeline"))
        })?;
        if p.nodes.is_empty() {
            return Err(OmError::BadScmResponse(format!(
                "pipeline {} of block {block} has no datanodes",
                p.id
            )));
        }
        Ok(Location {
            block,
            offset: 0,
            length: 0,
            pipeline: PipelineRecord {
                id: p.id,
                nodes: p.nodes.iter().map(Into::into).collect(),
                replication: p.replication,
                state: p.state,
            },
            part_number: 0,
            checksum: Vec::new(),
        })
    }
}

/// A committed block as the client reports it: it must name its block.
impl TryFrom<&om::KeyLocation> for CommittedBlock {
    type Error = OmError;

    fn try_from(l: &om::KeyLocation) -> Result<Self, OmError> {
        let block = l
            .block_id
            .as_ref()
            .map(BlockRef::from)
            .ok_or_else(|| OmError::invalid("committed location without block id"))?;
        if !l.block_checksum.is_empty() && l.block_checksum.len() != BLOCK_CHECKSUM_BYTES {
            return Err(OmError::invalid(format!(
                "block {block}: a block checksum has {BLOCK_CHECKSUM_BYTES} bytes, not {}",
                l.block_checksum.len()
            )));
        }
        Ok(CommittedBlock {
            block,
            length: l.length,
            checksum: l.block_checksum.clone(),
        })
    }
}

impl From<&VolumeRecord> for om::VolumeInfo {
    fn from(v: &VolumeRecord) -> Self {
        om::VolumeInfo {
            name: v.name.clone(),
            owner: v.owner.clone(),
            creation_time_ms: v.creation_time_ms,
        }
    }
}

impl From<&BucketRecord> for om::BucketInfo {
    fn from(b: &BucketRecord) -> Self {
        om::BucketInfo {
            volume: b.volume.clone(),
            name: b.name.clone(),
            owner: b.owner.clone(),
            creation_time_ms: b.creation_time_ms,
            replication: b.replication,
            tags: b.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            acl: b
                .acl
                .iter()
                .map(|g| om::BucketGrant {
                    grantee: g.grantee.clone(),
                    permission: g.permission.clone(),
                })
                .collect(),
            source_volume: b.source.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            source_bucket: b.source.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
        }
    }
}

impl KeyRecord {
    /// The proto form; `with_locations` false for listings.
    pub fn to_proto(&self, with_locations: bool) -> om::KeyInfo {
        om::KeyInfo {
            volume: self.volume.clone(),
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            size: self.size,
            etag: self.etag.clone(),
            creation_time_ms: self.creation_time_ms,
            modification_time_ms: self.modification_time_ms,
            locations: if with_locations {
                self.locations.iter().map(Into::into).collect()
            } else {
                Vec::new()
            },
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            owner: self.owner.clone(),
            replication: self.replication,
            parts_count: self.parts_count,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn blocks(&self) -> impl Iterator<Item = BlockRef> + '_ {
        self.locations.iter().map(|l| l.block)
    }
}

impl From<&UploadRecord> for om::MultipartUploadInfo {
    fn from(u: &UploadRecord) -> Self {
        om::MultipartUploadInfo {
            volume: u.volume.clone(),
            bucket: u.bucket.clone(),
            key: u.key.clone(),
            upload_id: u.upload_id.clone(),
            creation_time_ms: u.creation_time_ms,
            owner: u.owner.clone(),
        }
    }
}

impl From<&PartRecord> for om::PartInfo {
    fn from(p: &PartRecord) -> Self {
        om::PartInfo {
            part_number: p.part_number,
            etag: p.etag.clone(),
            size: p.size,
            modification_time_ms: p.modification_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        for ok in ["s3v", "my-bucket.1", "abc", &"a".repeat(63)] {
            assert!(validate_resource_name("bucket", ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "a.-b",
            "a/bc",
            &"a".repeat(64),
        ] {
            assert!(validate_resource_name("bucket", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_written_before_tags_still_load() {
        let key: KeyRecord = serde_json::from_str(
            r#"{"volume":"v","bucket":"b","key":"k","size":1,"etag":"e","creation_time_ms":1,
            "modification_time_ms":2,"locations":[],"metadata":{},"owner":"o","replication":3,
            "parts_count":0}"#,
        )
        .expect("old key record");
        assert!(key.tags.is_empty() && key.upload_id.is_empty());
        let bucket: BucketRecord = serde_json::from_str(
            r#"{"volume":"v","name":"b","owner":"o","creation_time_ms":1,"replication":3}"#,
        )
        .expect("old bucket record");
        assert!(bucket.tags.is_empty());
        let upload: UploadRecord = serde_json::from_str(
            r#"{"volume":"v","bucket":"b","key":"k","upload_id":"u","owner":"o","replication":3,
            "metadata":{},"creation_time_ms":1}"#,
        )
        .expect("old upload record");
        assert!(upload.tags.is_empty());
        // A raft log entry written before conditions and tags.
        let cmd: crate::command::OmCommand = serde_json::from_str(
            r#"{"CompleteMultipartUpload":{"volume":"v","bucket":"b","key":"k","upload_id":"u",
            "parts":[[1,"e"]],"now_ms":5}}"#,
        )
        .expect("old command");
        assert!(matches!(
            cmd,
            crate::command::OmCommand::Multipart(crate::command::MultipartCommand::Complete(
                crate::command::CompleteMultipartUpload {
                    condition: None,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn write_conditions() {
        let key = |etag: &str| KeyRecord {
            volume: "v".into(),
            bucket: "b".into(),
            key: "k".into(),
            size: 0,
            etag: etag.into(),
            creation_time_ms: 0,
            modification_time_ms: 0,
            locations: Vec::new(),
            metadata: BTreeMap::new(),
            owner: "o".into(),
            replication: 3,
            parts_count: 0,
            tags: BTreeMap::new(),
            upload_id: String::new(),
        };
        let none_match = WriteCondition {
            if_none_match: true,
            if_match: None,
        };
        assert!(none_match.holds(None).is_ok());
        assert!(none_match.holds(Some(&key("e"))).is_err());
        let if_match = WriteCondition::from_proto(Some(&om::WriteCondition {
            if_none_match: false,
            if_match: "\"e\"".into(),
        }))
        .expect("a condition");
        assert!(if_match.holds(Some(&key("e"))).is_ok());
        assert!(if_match.holds(Some(&key("f"))).is_err());
        assert!(if_match.holds(None).is_err());
        assert_eq!(
            WriteCondition::from_proto(Some(&om::WriteCondition::default())),
            None
        );
    }

    #[test]
    fn key_names_and_helpers() {
        assert!(validate_key_name("a/b/c ü").is_ok());
        assert!(validate_key_name("").is_err());
        assert!(validate_key_name("a\0b").is_err());
        assert!(validate_key_name(&"k".repeat(1025)).is_err());
        assert_eq!(unquote("\"abc\""), "abc");
        assert_eq!(unquote("abc"), "abc");
        assert_eq!(page_size(0), 1000);
        assert_eq!(page_size(5000), 1000);
        assert_eq!(page_size(7), 7);
        assert_eq!(resolve_replication(0, 3).ok(), Some(3));
        assert!(resolve_replication(2, 3).is_err());
    }
}
