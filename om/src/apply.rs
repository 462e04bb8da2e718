//! The writer of one apply transaction: the open tables, the blocks the command releases, and
//! the dispatch of a command to the resource that applies it. Each resource file holds an
//! `impl Writer` block with the deterministic apply of its commands (`volume.rs`, `bucket.rs`,
//! `key.rs`, `multipart.rs`, `tags.rs`, `security.rs`, `deletion.rs`); `state_machine.rs`
//! owns the transaction around it.

use std::ops::Bound;

use ozone_proto::om::OmStatus;
use redb::{ReadableTable, Table, WriteTransaction};

use crate::command::{KeyCommand, OmCommand, OmResponse};
use crate::error::OmError;
use crate::model::{BlockRef, BucketRecord, DeletedBlocks, OpenKeyRecord};
use crate::store::{
    self, BUCKETS, DELETED, KEYS, OPEN_KEY_TIMES, OPEN_KEYS, PARTS, S3_SECRETS, UPLOADS, VOLUMES,
    open_key_time_key,
};

pub(crate) type BytesTable<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// The open tables of one apply transaction, and the blocks it releases.
pub(crate) struct Writer<'t> {
    pub(crate) txn: &'t WriteTransaction,
    pub(crate) index: u64,
    pub(crate) volumes: BytesTable<'t>,
    pub(crate) buckets: BytesTable<'t>,
    pub(crate) keys: BytesTable<'t>,
    pub(crate) open_keys: BytesTable<'t>,
    /// The index of `open_keys` by creation time; change open keys through
    /// [`Writer::put_open_key`] and [`Writer::remove_open_key`], which keep it.
    pub(crate) open_key_times: BytesTable<'t>,
    pub(crate) uploads: BytesTable<'t>,
    pub(crate) parts: BytesTable<'t>,
    pub(crate) s3_secrets: BytesTable<'t>,
    pub(crate) released: Vec<BlockRef>,
}

impl<'t> Writer<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction, index: u64) -> Result<Self, OmError> {
        Ok(Writer {
            txn,
            index,
            volumes: txn.open_table(VOLUMES)?,
            buckets: txn.open_table(BUCKETS)?,
            keys: txn.open_table(KEYS)?,
            open_keys: txn.open_table(OPEN_KEYS)?,
            open_key_times: txn.open_table(OPEN_KEY_TIMES)?,
            uploads: txn.open_table(UPLOADS)?,
            parts: txn.open_table(PARTS)?,
            s3_secrets: txn.open_table(S3_SECRETS)?,
            released: Vec::new(),
        })
    }

    /// Records the released blocks under this command's index.
    pub(crate) fn finish(self, reason: &str) -> Result<(), OmError> {
        if self.released.is_empty() {
            return Ok(());
        }
        let rec = DeletedBlocks {
            reason: reason.to_string(),
            blocks: self.released,
        };
        self.txn
            .open_table(DELETED)?
            .insert(self.index, store::encode(&rec).as_slice())?;
        Ok(())
    }

    pub(crate) fn put<T: serde::Serialize>(
        table: &mut BytesTable<'t>,
        key: &[u8],
        value: &T,
    ) -> Result<(), OmError> {
        table.insert(key, store::encode(value).as_slice())?;
        Ok(())
    }

    /// Records a new open key (db key `k`) and indexes it by creation time.
    pub(crate) fn put_open_key(&mut self, k: &[u8], rec: &OpenKeyRecord) -> Result<(), OmError> {
        Self::put(&mut self.open_keys, k, rec)?;
        self.open_key_times.insert(
            open_key_time_key(rec.creation_time_ms, k).as_slice(),
            [].as_slice(),
        )?;
        Ok(())
    }

    /// Removes the open key `rec` (db key `k`) and its index entry; its blocks are the
    /// caller's to keep or release.
    pub(crate) fn remove_open_key(&mut self, k: &[u8], rec: &OpenKeyRecord) -> Result<(), OmError> {
        self.open_keys.remove(k)?;
        self.open_key_times
            .remove(open_key_time_key(rec.creation_time_ms, k).as_slice())?;
        Ok(())
    }

    /// Applies `cmd` through its resource's apply.
    pub(crate) fn execute(&mut self, cmd: &OmCommand) -> Result<OmResponse, OmError> {
        match cmd {
            OmCommand::Volume(c) => self.apply_volume(c),
            OmCommand::Bucket(c) => self.apply_bucket(c),
            OmCommand::Key(c) => self.apply_key(c),
            OmCommand::Multipart(c) => self.apply_multipart(c),
            OmCommand::Tags(c) => self.apply_tags(c),
            OmCommand::Security(c) => self.apply_security(c),
            OmCommand::DeletedBlocks(c) => self.apply_deleted_blocks(c),
            // The state machine looks the request id up before it gets here.
            OmCommand::Tracked(t) => self.execute(&t.command),
        }
    }

    /// A bucket that holds keys: a link is refused (the leader resolves links before it
    /// prepares a key command, so one here means the names changed in between).
    pub(crate) fn require_bucket(
        &self,
        volume: &str,
        bucket: &str,
    ) -> Result<BucketRecord, OmError> {
        let b = store::require_bucket(&self.volumes, &self.buckets, volume, bucket)?;
        if b.is_link() {
            return reject(
                OmStatus::BucketNotFound,
                format!("bucket /{volume}/{bucket} is a link; resolve it first"),
            );
        }
        Ok(b)
    }
}

/// Blocks a command brings from SCM; if the command is refused nothing refers to them.
pub(crate) fn allocated_blocks(cmd: &OmCommand) -> Vec<BlockRef> {
    match cmd {
        OmCommand::Key(KeyCommand::Open(c)) => c.locations.iter().map(|l| l.block).collect(),
        OmCommand::Key(KeyCommand::AllocateBlock(c)) => vec![c.location.block],
        OmCommand::Tracked(t) => allocated_blocks(&t.command),
        _ => Vec::new(),
    }
}

pub(crate) fn reject<T>(status: OmStatus, message: impl Into<String>) -> Result<T, OmError> {
    Err(OmError::reject(status, message))
}

/// Whether any key of `table` starts with `prefix`.
pub(crate) fn has_prefix(table: &BytesTable<'_>, prefix: &[u8]) -> Result<bool, OmError> {
    let mut it = table.range::<&[u8]>((Bound::Included(prefix), Bound::Unbounded))?;
    match it.next() {
        Some(item) => Ok(item?.0.value().starts_with(prefix)),
        None => Ok(false),
    }
}

/// Removes and returns every record whose key starts with `prefix`.
pub(crate) fn drain_prefix<T: serde::de::DeserializeOwned>(
    table: &mut BytesTable<'_>,
    name: &'static str,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, T)>, OmError> {
    let (rows, _) = store::scan::<T>(table, name, prefix, Bound::Included(prefix), usize::MAX)?;
    for (k, _) in &rows {
        table.remove(k.as_slice())?;
    }
    Ok(rows)
}
