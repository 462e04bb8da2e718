//! The OM database (one redb file, `om.db`): table definitions, key encoding and every read.
//!
//! Keys are bytes that sort so each listing is a range scan:
//! - volumes `/vol`, buckets `/vol/bucket`, keys `/vol/bucket/key`;
//! - open keys `/vol/bucket/key\0<client id, 20 digits>`;
//! - multipart uploads `/vol/bucket/key\0<upload id>`, their parts
//!   `/vol/bucket/key\0<upload id>\0<part number, 5 digits>`;
//! - open keys by creation time `<creation ms, 8 bytes BE><open key's db key>` (empty values):
//!   the open-key cleanup and `ozone admin om list-open-keys` read the oldest first without
//!   scanning the namespace (see `expiry.rs`);
//! - the retry cache `<client id>\0<call id, 8 bytes BE>` and its expiry index
//!   `<time ms, 8 bytes BE><retry cache key>` (see `retry.rs`);
//! - deleted blocks by the applied index of the command that released them (with openraft:
//!   `log index << 16 | position of the command in the entry`);
//! - `meta`: the applied index; `raft_meta`: the applied raft log id and membership.
//!
//! Volume and bucket names have no `/` and key names no NUL (see [`crate::model`]), so these
//! encodings are unambiguous. Values are JSON-encoded [`crate::model`] records.
//! Writes happen only in the state machine's apply; reads go through a [`Snapshot`].

use std::ops::Bound;
use std::path::Path;

use ozone_proto::om::OmStatus;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::OmError;
use crate::model::{
    BucketRecord, DeletedBlocks, KeyRecord, OpenKeyRecord, PartRecord, S3SecretRecord,
    UploadRecord, VolumeRecord, page_size,
};
use crate::secret_key::SecretKey;

pub(crate) type BytesTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

pub(crate) const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
pub(crate) const VOLUMES: BytesTable = TableDefinition::new("volumes");
pub(crate) const BUCKETS: BytesTable = TableDefinition::new("buckets");
pub(crate) const KEYS: BytesTable = TableDefinition::new("keys");
pub(crate) const OPEN_KEYS: BytesTable = TableDefinition::new("open_keys");
pub(crate) const UPLOADS: BytesTable = TableDefinition::new("multipart_uploads");
pub(crate) const PARTS: BytesTable = TableDefinition::new("multipart_parts");
/// S3 secrets by user (security on): key the user name, value [`S3SecretRecord`].
pub(crate) const S3_SECRETS: BytesTable = TableDefinition::new("s3_secrets");
/// Index of [`OPEN_KEYS`] by creation time: key [`open_key_time_key`], empty value.
pub(crate) const OPEN_KEY_TIMES: BytesTable = TableDefinition::new("open_keys_by_time");
/// Results of writes by client request id (see `retry.rs`).
pub(crate) const RETRY_CACHE: BytesTable = TableDefinition::new("retry_cache");
/// Index of [`RETRY_CACHE`] by the time the result was recorded, for its expiry.
pub(crate) const RETRY_CACHE_TIMES: BytesTable = TableDefinition::new("retry_cache_by_time");
pub(crate) const DELETED: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("deleted_blocks");

/// Raft bookkeeping of the state machine (JSON values).
pub(crate) const RAFT_META: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("raft_meta");
/// `raft_meta` key of the [`RaftApplied`] record.
pub(crate) const RAFT_APPLIED: &str = "applied";

/// The last applied raft log id and the membership in effect, stored with the state.
pub type RaftApplied = ozone_raft::state_machine::Applied;

/// `meta` key of the index of the last applied command.
pub(crate) const APPLIED_INDEX: &str = "applied_index";

/// Name of the database file inside the OM db directory.
pub const DB_FILE: &str = "om.db";

/// redb's page cache of `om.db` (its default is 1 GiB). The operating system's page cache
/// still holds the rest of a large namespace; this bounds OM's own memory so that reading the
/// whole database (a snapshot, a long listing) does not grow OM with the namespace. redb's
/// cache costs well over its nominal size in resident memory: one OM with 150,000 keys,
/// after one snapshot export, held 268 MiB with 128 MiB here and 108 MiB with 32 MiB, at the
/// same write rate (an alternating run, session 6).
const DB_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Opens (or creates) the database and makes sure every table exists.
pub(crate) fn open_db(path: &Path) -> Result<Database, OmError> {
    let db = ozone_common::db::create_with_cache(path, DB_CACHE_BYTES)?;
    let txn = db.begin_write()?;
    {
        txn.open_table(META)?;
        for (_, t) in SNAPSHOT_TABLES {
            txn.open_table(t)?;
        }
        txn.open_table(DELETED)?;
        txn.open_table(RAFT_META)?;
        ensure_open_key_index(&txn)?;
    }
    txn.commit()?;
    Ok(db)
}

/// Rebuilds the index of open keys by creation time when it does not cover the open keys (a
/// database or snapshot written before the index existed). Derived from the open keys alone,
/// so every replica builds the same index.
pub(crate) fn ensure_open_key_index(txn: &redb::WriteTransaction) -> Result<(), OmError> {
    let open = txn.open_table(OPEN_KEYS)?;
    let mut index = txn.open_table(OPEN_KEY_TIMES)?;
    if open.len()? == index.len()? {
        return Ok(());
    }
    index.retain(|_, _| false)?;
    let mut n = 0u64;
    for item in open.iter()? {
        let (k, v) = item?;
        let rec: OpenKeyRecord = decode("open_keys", v.value())?;
        index.insert(
            open_key_time_key(rec.creation_time_ms, k.value()).as_slice(),
            [].as_slice(),
        )?;
        n += 1;
    }
    tracing::info!(
        open_keys = n,
        "rebuilt the index of open keys by creation time"
    );
    Ok(())
}

// ---- key encoding ----

pub(crate) fn volume_key(volume: &str) -> Vec<u8> {
    format!("/{volume}").into_bytes()
}

pub(crate) fn bucket_key(volume: &str, bucket: &str) -> Vec<u8> {
    format!("/{volume}/{bucket}").into_bytes()
}

/// Prefix of every key, open key and upload of a bucket.
pub(crate) fn bucket_prefix(volume: &str, bucket: &str) -> Vec<u8> {
    format!("/{volume}/{bucket}/").into_bytes()
}

pub(crate) fn key_key(volume: &str, bucket: &str, key: &str) -> Vec<u8> {
    format!("/{volume}/{bucket}/{key}").into_bytes()
}

pub(crate) fn open_key_key(volume: &str, bucket: &str, key: &str, client_id: u64) -> Vec<u8> {
    format!("/{volume}/{bucket}/{key}\0{client_id:020}").into_bytes()
}

pub(crate) fn upload_key(volume: &str, bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    format!("/{volume}/{bucket}/{key}\0{upload_id}").into_bytes()
}

/// The [`OPEN_KEY_TIMES`] key of the open key `open_key` (its db key) created at `time_ms`.
pub(crate) fn open_key_time_key(time_ms: u64, open_key: &[u8]) -> Vec<u8> {
    [time_ms.to_be_bytes().as_slice(), open_key].concat()
}

/// Prefix of every part of an upload.
pub(crate) fn parts_prefix(volume: &str, bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    format!("/{volume}/{bucket}/{key}\0{upload_id}\0").into_bytes()
}

pub(crate) fn part_key(
    volume: &str,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part: u32,
) -> Vec<u8> {
    format!("/{volume}/{bucket}/{key}\0{upload_id}\0{part:05}").into_bytes()
}

/// The smallest byte string greater than every string starting with `prefix` (`None`: no bound).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut v = prefix.to_vec();
    while let Some(last) = v.pop() {
        if last < u8::MAX {
            v.push(last + 1);
            return Some(v);
        }
    }
    None
}

// ---- values ----

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("OM records have string map keys and always serialize")
}

pub(crate) fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, OmError> {
    serde_json::from_slice(bytes).map_err(|e| OmError::Corrupt {
        table,
        message: e.to_string(),
    })
}

pub(crate) fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, OmError> {
    match table.get(key)? {
        None => Ok(None),
        Some(v) => decode(name, v.value()).map(Some),
    }
}

/// Records of a scan with their db keys, and whether more follow.
pub(crate) type Scanned<T> = (Vec<(Vec<u8>, T)>, bool);

/// One entry of a table dump: (table, key, value).
pub type DumpEntry = (&'static str, Vec<u8>, Vec<u8>);

/// Every record of `table` whose key starts with `prefix`, from `start` on, at most `limit`
/// (plus whether more follow).
pub(crate) fn scan<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &'static str,
    prefix: &[u8],
    start: Bound<&[u8]>,
    limit: usize,
) -> Result<Scanned<T>, OmError> {
    let mut out = Vec::new();
    for item in table.range::<&[u8]>((start, Bound::Unbounded))? {
        let (k, v) = item?;
        let k = k.value();
        if !k.starts_with(prefix) {
            break;
        }
        if out.len() == limit {
            return Ok((out, true));
        }
        out.push((k.to_vec(), decode(name, v.value())?));
    }
    Ok((out, false))
}

/// The start of a prefix scan: `prefix`, or after `start_after` when that sorts later.
fn scan_start<'a>(prefix: &'a [u8], start_after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match start_after {
        Some(s) if s >= prefix => Bound::Excluded(s),
        _ => Bound::Included(prefix),
    }
}

/// The bucket, or VOLUME_NOT_FOUND / BUCKET_NOT_FOUND.
pub(crate) fn require_bucket(
    volumes: &impl ReadableTable<&'static [u8], &'static [u8]>,
    buckets: &impl ReadableTable<&'static [u8], &'static [u8]>,
    volume: &str,
    bucket: &str,
) -> Result<BucketRecord, OmError> {
    if let Some(b) = get(buckets, "buckets", &bucket_key(volume, bucket))? {
        return Ok(b);
    }
    if volumes.get(volume_key(volume).as_slice())?.is_none() {
        return Err(OmError::reject(
            OmStatus::VolumeNotFound,
            format!("volume {volume} not found"),
        ));
    }
    Err(OmError::reject(
        OmStatus::BucketNotFound,
        format!("bucket /{volume}/{bucket} not found"),
    ))
}

/// A ListKeys query (already validated).
#[derive(Clone, Debug, Default)]
pub struct ListKeysQuery {
    pub prefix: String,
    pub start_after: String,
    pub delimiter: String,
    pub max_keys: u32,
}

/// One page of ListKeys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyListing {
    pub keys: Vec<KeyRecord>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_start_after: String,
}

/// A ListMultipartUploads query.
#[derive(Clone, Debug, Default)]
pub struct UploadsQuery {
    pub prefix: String,
    pub delimiter: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub max: u32,
}

/// One page of ListMultipartUploads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadListing {
    pub uploads: Vec<UploadRecord>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key (or common prefix) and upload id returned.
    pub next_key_marker: String,
    pub next_upload_id_marker: String,
}

/// Sizes of the tables, for the status page and gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied_index: u64,
    pub volumes: u64,
    pub buckets: u64,
    pub keys: u64,
    pub open_keys: u64,
    pub multipart_uploads: u64,
    pub deleted_block_batches: u64,
}

/// A consistent read view of the database.
pub struct Snapshot {
    txn: ReadTransaction,
    /// Opens sealed S3 secrets (security on).
    secret_key: Option<SecretKey>,
}

impl Snapshot {
    pub(crate) fn new(db: &Database, secret_key: Option<SecretKey>) -> Result<Self, OmError> {
        Ok(Snapshot {
            txn: db.begin_read()?,
            secret_key,
        })
    }

    pub fn applied_index(&self) -> Result<u64, OmError> {
        let t = self.txn.open_table(META)?;
        Ok(t.get(APPLIED_INDEX)?.map(|v| v.value()).unwrap_or(0))
    }

    /// The last applied raft log id and membership (defaults before the first entry).
    pub fn raft_applied(&self) -> Result<RaftApplied, OmError> {
        let t = self.txn.open_table(RAFT_META)?;
        match t.get(RAFT_APPLIED)? {
            Some(v) => decode("raft_meta", v.value()),
            None => Ok(Default::default()),
        }
    }

    pub fn volume(&self, volume: &str) -> Result<Option<VolumeRecord>, OmError> {
        get(
            &self.txn.open_table(VOLUMES)?,
            "volumes",
            &volume_key(volume),
        )
    }

    /// The volume, or VOLUME_NOT_FOUND.
    pub fn require_volume(&self, volume: &str) -> Result<VolumeRecord, OmError> {
        self.volume(volume)?.ok_or_else(|| {
            OmError::reject(
                OmStatus::VolumeNotFound,
                format!("volume {volume} not found"),
            )
        })
    }

    /// The bucket, or VOLUME_NOT_FOUND / BUCKET_NOT_FOUND.
    pub fn require_bucket(&self, volume: &str, bucket: &str) -> Result<BucketRecord, OmError> {
        require_bucket(
            &self.txn.open_table(VOLUMES)?,
            &self.txn.open_table(BUCKETS)?,
            volume,
            bucket,
        )
    }

    /// `user`'s S3 secret, if any, in clear: a sealed one is opened with the OM secret key
    /// (see [`crate::secret_key`]).
    pub fn s3_secret(&self, user: &str) -> Result<Option<S3SecretRecord>, OmError> {
        let rec = self.s3_secret_stored(user)?;
        match (rec, &self.secret_key) {
            (Some(mut rec), Some(key)) => {
                rec.secret = key.open(&rec.user, &rec.secret)?;
                Ok(Some(rec))
            }
            (rec, _) => Ok(rec),
        }
    }

    /// `user`'s S3 secret record as stored (sealed, or clear from before sealing).
    pub fn s3_secret_stored(&self, user: &str) -> Result<Option<S3SecretRecord>, OmError> {
        get(
            &self.txn.open_table(S3_SECRETS)?,
            "s3_secrets",
            user.as_bytes(),
        )
    }

    pub fn key(&self, volume: &str, bucket: &str, key: &str) -> Result<Option<KeyRecord>, OmError> {
        get(
            &self.txn.open_table(KEYS)?,
            "keys",
            &key_key(volume, bucket, key),
        )
    }

    pub fn open_key(
        &self,
        volume: &str,
        bucket: &str,
        key: &str,
        client_id: u64,
    ) -> Result<Option<OpenKeyRecord>, OmError> {
        get(
            &self.txn.open_table(OPEN_KEYS)?,
            "open_keys",
            &open_key_key(volume, bucket, key, client_id),
        )
    }

    pub fn upload(
        &self,
        volume: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, OmError> {
        get(
            &self.txn.open_table(UPLOADS)?,
            "multipart_uploads",
            &upload_key(volume, bucket, key, upload_id),
        )
    }

    /// The upload, or NO_SUCH_MULTIPART_UPLOAD (BUCKET_NOT_FOUND when the bucket is gone).
    pub fn require_upload(
        &self,
        volume: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, OmError> {
        if let Some(u) = self.upload(volume, bucket, key, upload_id)? {
            return Ok(u);
        }
        self.require_bucket(volume, bucket)?;
        Err(no_such_upload(volume, bucket, key, upload_id))
    }

    pub fn list_volumes(
        &self,
        prefix: &str,
        start_after: &str,
        max: u32,
    ) -> Result<Vec<VolumeRecord>, OmError> {
        let p = volume_key(prefix);
        let s = (!start_after.is_empty()).then(|| volume_key(start_after));
        let t = self.txn.open_table(VOLUMES)?;
        let (rows, _) = scan(
            &t,
            "volumes",
            &p,
            scan_start(&p, s.as_deref()),
            page_size(max),
        )?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    pub fn list_buckets(
        &self,
        volume: &str,
        prefix: &str,
        start_after: &str,
        max: u32,
    ) -> Result<Vec<BucketRecord>, OmError> {
        self.require_volume(volume)?;
        let p = bucket_key(volume, prefix);
        let s = (!start_after.is_empty()).then(|| bucket_key(volume, start_after));
        let t = self.txn.open_table(BUCKETS)?;
        let (rows, _) = scan(
            &t,
            "buckets",
            &p,
            scan_start(&p, s.as_deref()),
            page_size(max),
        )?;
        Ok(rows.into_iter().map(|(_, b)| b).collect())
    }

    /// ListKeys: a range scan from `prefix` / `start_after`. With a delimiter, keys whose rest
    /// after the prefix contains it are rolled into one common prefix; the scan then jumps past
    /// every key under that prefix, so a folder of any size costs one seek.
    pub fn list_keys(
        &self,
        volume: &str,
        bucket: &str,
        q: &ListKeysQuery,
    ) -> Result<KeyListing, OmError> {
        self.require_bucket(volume, bucket)?;
        let table = self.txn.open_table(KEYS)?;
        let base = bucket_prefix(volume, bucket);
        let full_prefix = [base.as_slice(), q.prefix.as_bytes()].concat();
        let max = page_size(q.max_keys);
        let delim = q.delimiter.as_bytes();

        // Where the scan starts: the prefix, or after start_after when that sorts later; after
        // every key under start_after when it is a common prefix.
        let mut lower: Bound<Vec<u8>> = Bound::Included(full_prefix.clone());
        if !q.start_after.is_empty() && q.start_after.as_bytes() >= q.prefix.as_bytes() {
            let sa = [base.as_slice(), q.start_after.as_bytes()].concat();
            let rest = &q.start_after.as_bytes()[q.prefix.len().min(q.start_after.len())..];
            let is_common_prefix = !delim.is_empty()
                && q.start_after.starts_with(&q.prefix)
                && find(rest, delim).map(|i| i + delim.len()) == Some(rest.len());
            lower = if is_common_prefix {
                match prefix_end(&sa) {
                    Some(end) => Bound::Included(end),
                    None => return Ok(KeyListing::default()),
                }
            } else {
                Bound::Excluded(sa)
            };
        }

        let mut out = KeyListing::default();
        let mut emitted = 0usize;
        'scan: loop {
            let bounds = (lower.as_ref().map(Vec::as_slice), Bound::Unbounded);
            let mut jump: Option<Vec<u8>> = None;
            for item in table.range::<&[u8]>(bounds)? {
                let (k, v) = item?;
                let k = k.value();
                if !k.starts_with(&full_prefix) {
                    break 'scan;
                }
                if emitted == max {
                    out.truncated = true;
                    break 'scan;
                }
                emitted += 1;
                let name = &k[base.len()..];
                let rest = &name[q.prefix.len()..];
                let rolled = find(rest, delim).map(|i| &name[..q.prefix.len() + i + delim.len()]);
                match rolled {
                    Some(cp) => {
                        // Continue after every key under this common prefix.
                        let cp_full = [base.as_slice(), cp].concat();
                        let cp = String::from_utf8(cp.to_vec()).map_err(|e| OmError::Corrupt {
                            table: "keys",
                            message: format!("key is not UTF-8: {e}"),
                        })?;
                        out.next_start_after = cp.clone();
                        out.common_prefixes.push(cp);
                        match prefix_end(&cp_full) {
                            Some(end) => jump = Some(end),
                            None => break 'scan,
                        }
                        break;
                    }
                    None => {
                        let rec: KeyRecord = decode("keys", v.value())?;
                        out.next_start_after = rec.key.clone();
                        out.keys.push(KeyRecord {
                            locations: Vec::new(),
                            ..rec
                        });
                    }
                }
            }
            match jump {
                Some(j) => lower = Bound::Included(j),
                None => break,
            }
        }
        Ok(out)
    }

    /// Parts of an upload after `marker`, at most `max` (capped), and whether more follow.
    pub fn list_parts(
        &self,
        upload: &UploadRecord,
        marker: u32,
        max: u32,
    ) -> Result<(Vec<PartRecord>, bool), OmError> {
        let (v, b, k, u) = (
            &upload.volume,
            &upload.bucket,
            &upload.key,
            &upload.upload_id,
        );
        let prefix = parts_prefix(v, b, k, u);
        let start = part_key(v, b, k, u, marker.saturating_add(1));
        let t = self.txn.open_table(PARTS)?;
        let (rows, more) = scan(
            &t,
            "multipart_parts",
            &prefix,
            Bound::Included(start.as_slice()),
            page_size(max),
        )?;
        Ok((rows.into_iter().map(|(_, p)| p).collect(), more))
    }

    /// ListMultipartUploads: uploads in progress whose key starts with the prefix, in key (then
    /// upload id) order, after the markers; with a delimiter, keys whose rest after the prefix
    /// contains it are rolled into one common prefix and the scan jumps past all of them.
    pub fn list_uploads(
        &self,
        volume: &str,
        bucket: &str,
        q: &UploadsQuery,
    ) -> Result<UploadListing, OmError> {
        self.require_bucket(volume, bucket)?;
        let t = self.txn.open_table(UPLOADS)?;
        let base = bucket_prefix(volume, bucket);
        let full_prefix = [base.as_slice(), q.prefix.as_bytes()].concat();
        let max = page_size(q.max);
        let delim = q.delimiter.as_bytes();

        let mut lower: Bound<Vec<u8>> = Bound::Included(full_prefix.clone());
        if !q.key_marker.is_empty() {
            let km = [base.as_slice(), q.key_marker.as_bytes()].concat();
            let rest = q
                .key_marker
                .strip_prefix(q.prefix.as_str())
                .map(str::as_bytes);
            let is_common_prefix = !delim.is_empty()
                && rest.is_some_and(|r| find(r, delim).map(|i| i + delim.len()) == Some(r.len()));
            let (start, excluded) = if is_common_prefix {
                match prefix_end(&km) {
                    Some(end) => (end, false),
                    None => return Ok(UploadListing::default()),
                }
            } else if !q.upload_id_marker.is_empty() {
                // After this upload of the marker key.
                let at = [km.as_slice(), b"\0", q.upload_id_marker.as_bytes()].concat();
                (at, true)
            } else {
                // After every upload of the marker key ("key\0id" < "key\x01").
                ([km.as_slice(), b"\x01"].concat(), false)
            };
            if start >= full_prefix {
                lower = if excluded {
                    Bound::Excluded(start)
                } else {
                    Bound::Included(start)
                };
            }
        }

        let mut out = UploadListing::default();
        let mut emitted = 0usize;
        'scan: loop {
            let bounds = (lower.as_ref().map(Vec::as_slice), Bound::Unbounded);
            let mut jump: Option<Vec<u8>> = None;
            for item in t.range::<&[u8]>(bounds)? {
                let (k, v) = item?;
                if !k.value().starts_with(&full_prefix) {
                    break 'scan;
                }
                if emitted == max {
                    out.truncated = true;
                    break 'scan;
                }
                emitted += 1;
                let u: UploadRecord = decode("multipart_uploads", v.value())?;
                let rest = u.key.get(q.prefix.len()..).unwrap_or("");
                match find(rest.as_bytes(), delim) {
                    Some(i) if !delim.is_empty() => {
                        let cp = u.key[..q.prefix.len() + i + delim.len()].to_string();
                        let cp_full = [base.as_slice(), cp.as_bytes()].concat();
                        out.next_key_marker = cp.clone();
                        out.next_upload_id_marker = String::new();
                        out.common_prefixes.push(cp);
                        match prefix_end(&cp_full) {
                            Some(end) => jump = Some(end),
                            None => break 'scan,
                        }
                        break;
                    }
                    _ => {
                        out.next_key_marker = u.key.clone();
                        out.next_upload_id_marker = u.upload_id.clone();
                        out.uploads.push(u);
                    }
                }
            }
            match jump {
                Some(j) => lower = Bound::Included(j),
                None => break,
            }
        }
        Ok(out)
    }

    /// Open keys created at or before `created_before_ms`, oldest first, at most `limit`,
    /// from the index by creation time (no scan of the namespace).
    pub fn open_keys_created_before(
        &self,
        created_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<OpenKeyRecord>, OmError> {
        Ok(self.open_keys_by_time(created_before_ms, &[], limit)?.0)
    }

    /// [`Self::open_keys_created_before`] after the index key `start_after` (empty: from the
    /// oldest), and the index key of the last one returned when the page is full (where the
    /// next page starts; empty: no more).
    pub fn open_keys_by_time(
        &self,
        created_before_ms: u64,
        start_after: &[u8],
        limit: usize,
    ) -> Result<(Vec<OpenKeyRecord>, Vec<u8>), OmError> {
        let index = self.txn.open_table(OPEN_KEY_TIMES)?;
        let open = self.txn.open_table(OPEN_KEYS)?;
        let start = if start_after.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Excluded(start_after)
        };
        let mut out: Vec<(Vec<u8>, OpenKeyRecord)> = Vec::new();
        for item in index.range::<&[u8]>((start, Bound::Unbounded))? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let k = k.value();
            let corrupt = |message: &str| OmError::Corrupt {
                table: "open_keys_by_time",
                message: message.to_string(),
            };
            let time = k
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| corrupt("key shorter than 8 bytes"))?;
            if time > created_before_ms {
                return Ok((out.into_iter().map(|(_, r)| r).collect(), Vec::new()));
            }
            let rec = get::<OpenKeyRecord>(&open, "open_keys", &k[8..])?
                .ok_or_else(|| corrupt("indexes an open key that does not exist"))?;
            out.push((k.to_vec(), rec));
        }
        let next = if out.len() >= limit {
            out.last().map(|(k, _)| k.clone()).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok((out.into_iter().map(|(_, r)| r).collect(), next))
    }

    /// Incomplete multipart uploads of every bucket (of `volume` / `bucket` when not empty),
    /// initiated at or before `created_before_ms`, in key order after `start_after` (a db
    /// key from an earlier page): at most `limit`, and where the next page starts (empty: no
    /// more). Looks at most `scan_limit` uploads, so an admin listing with an age filter costs
    /// a bounded read per page.
    pub fn admin_uploads(
        &self,
        volume: &str,
        bucket: &str,
        created_before_ms: u64,
        start_after: &[u8],
        limit: usize,
        scan_limit: usize,
    ) -> Result<(Vec<UploadRecord>, Vec<u8>), OmError> {
        let prefix = match (volume.is_empty(), bucket.is_empty()) {
            (true, _) => b"/".to_vec(),
            (false, true) => format!("/{volume}/").into_bytes(),
            (false, false) => bucket_prefix(volume, bucket),
        };
        let t = self.txn.open_table(UPLOADS)?;
        let start = if start_after.is_empty() {
            Bound::Included(prefix.as_slice())
        } else {
            Bound::Excluded(start_after)
        };
        let mut out = Vec::new();
        let mut last = Vec::new();
        for (scanned, item) in t.range::<&[u8]>((start, Bound::Unbounded))?.enumerate() {
            let (k, v) = item?;
            let k = k.value();
            if !k.starts_with(&prefix) {
                return Ok((out, Vec::new()));
            }
            if out.len() >= limit || scanned >= scan_limit {
                return Ok((out, last));
            }
            last = k.to_vec();
            let u: UploadRecord = decode("multipart_uploads", v.value())?;
            if u.creation_time_ms <= created_before_ms {
                out.push(u);
            }
        }
        Ok((out, Vec::new()))
    }

    /// Every batch of deleted blocks, by the applied index that released it.
    pub fn deleted_blocks(&self) -> Result<Vec<(u64, DeletedBlocks)>, OmError> {
        self.deleted_blocks_first(usize::MAX)
    }

    /// The first `limit` deleted-block records, oldest first.
    pub fn deleted_blocks_first(&self, limit: usize) -> Result<Vec<(u64, DeletedBlocks)>, OmError> {
        let t = self.txn.open_table(DELETED)?;
        let mut out = Vec::new();
        for item in t.iter()?.take(limit) {
            let (k, v) = item?;
            out.push((k.value(), decode("deleted_blocks", v.value())?));
        }
        Ok(out)
    }

    pub fn counts(&self) -> Result<Counts, OmError> {
        Ok(Counts {
            applied_index: self.applied_index()?,
            volumes: self.txn.open_table(VOLUMES)?.len()?,
            buckets: self.txn.open_table(BUCKETS)?.len()?,
            keys: self.txn.open_table(KEYS)?.len()?,
            open_keys: self.txn.open_table(OPEN_KEYS)?.len()?,
            multipart_uploads: self.txn.open_table(UPLOADS)?.len()?,
            deleted_block_batches: self.txn.open_table(DELETED)?.len()?,
        })
    }

    /// Every entry of every table as (table, key, value) bytes, in order: the whole state, for
    /// comparing replicas in tests (snapshots stream it with [`Self::for_each_row`]).
    pub fn dump(&self) -> Result<Vec<DumpEntry>, OmError> {
        let mut out = Vec::new();
        self.for_each_row(true, |table, key, value| {
            out.push((table, key.to_vec(), value.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every entry of every table as (table, key, value) bytes, in table then
    /// key order, from this one read transaction; the `meta` table (the applied index) only
    /// with `with_meta`. Holds one row at a time.
    pub fn for_each_row(
        &self,
        with_meta: bool,
        mut f: impl FnMut(&'static str, &[u8], &[u8]) -> Result<(), OmError>,
    ) -> Result<(), OmError> {
        if with_meta {
            let t = self.txn.open_table(META)?;
            for item in t.iter()? {
                let (k, v) = item?;
                f("meta", k.value().as_bytes(), &v.value().to_be_bytes())?;
            }
        }
        for (name, def) in SNAPSHOT_TABLES {
            let t = self.txn.open_table(def)?;
            for item in t.iter()? {
                let (k, v) = item?;
                f(name, k.value(), v.value())?;
            }
        }
        let t = self.txn.open_table(DELETED)?;
        for item in t.iter()? {
            let (k, v) = item?;
            f(DELETED_BLOCKS, &k.value().to_be_bytes(), v.value())?;
        }
        Ok(())
    }
}

/// The byte-keyed namespace tables, by the names snapshots and dumps give them.
pub(crate) const SNAPSHOT_TABLES: [(&str, BytesTable); 10] = [
    ("volumes", VOLUMES),
    ("buckets", BUCKETS),
    ("keys", KEYS),
    ("open_keys", OPEN_KEYS),
    ("multipart_uploads", UPLOADS),
    ("multipart_parts", PARTS),
    ("s3_secrets", S3_SECRETS),
    ("open_keys_by_time", OPEN_KEY_TIMES),
    ("retry_cache", RETRY_CACHE),
    ("retry_cache_by_time", RETRY_CACHE_TIMES),
];

/// The name snapshots and dumps give the deleted-blocks table (its keys are 8 big-endian
/// bytes).
pub(crate) const DELETED_BLOCKS: &str = "deleted_blocks";

pub(crate) fn no_such_upload(volume: &str, bucket: &str, key: &str, upload_id: &str) -> OmError {
    OmError::reject(
        OmStatus::NoSuchMultipartUpload,
        format!("no multipart upload {upload_id} of /{volume}/{bucket}/{key}"),
    )
}

/// Position of `needle` in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(find(b"a/b/c", b"/"), Some(1));
        assert_eq!(find(b"abc", b""), None);
    }
}
