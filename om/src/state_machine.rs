//! The apply side of OM: [`StateMachine::apply`] executes one [`OmCommand`] in one redb write
//! transaction, committed with the applied index before it returns.
//!
//! Apply is deterministic: it reads only the command and the prior state (no clock, no random,
//! no network), so every replica that applies the same commands in the same order holds the
//! same bytes. A command the namespace refuses changes nothing but the applied index (and, for a
//! refused OpenKey/AllocateBlock, records the blocks SCM allocated for it as deleted); the
//! refusal is returned as [`OmResponse::Rejected`]. An `Err` is a storage fault of this node.
//!
//! openraft's state machine ([`crate::raft`]) calls [`StateMachine::apply_entries`] with a batch
//! of committed log entries: one transaction per entry, and only the last one of the batch is
//! fsynced (redb makes the earlier, non-durable commits durable with it), so a batch costs one
//! fsync. The last applied log id and membership are stored with the state, and the whole
//! namespace is streamed to / installed from a raft snapshot ([`StateMachine::export_to`],
//! [`StateMachine::install_from`]). A standalone use (tests) calls [`StateMachine::apply_next`].

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::{EntryPayload, LogId, StoredMembership};
use redb::{Database, Durability, ReadableTable, WriteTransaction};

use crate::apply::{BytesTable, Writer, allocated_blocks};
use crate::command::{OmCommand, OmResponse};
use crate::error::OmError;
use crate::model::DeletedBlocks;
use crate::raft::{Entry, NodeId, OmNode};
use crate::retry;
use crate::secret_key::SecretKey;
use crate::store::{
    self, APPLIED_INDEX, DELETED, DELETED_BLOCKS, META, RAFT_APPLIED, RAFT_META, RaftApplied,
    SNAPSHOT_TABLES, Snapshot,
};

/// Most commands one raft entry may carry ([`crate::raft::OmRole`]'s).
pub const MAX_BATCH: usize = <crate::raft::OmRole as ozone_raft::Role>::MAX_BATCH;

/// Where a command sits in the raft log: its entry and its position in the entry's batch.
#[derive(Clone, Copy, Debug)]
struct RaftPos {
    log_id: LogId<NodeId>,
    pos: usize,
}

/// Magic first bytes of an exported snapshot. Then come its rows, each
/// `u8 table name length, table name, u32 BE key length, key, u32 BE value length, value`,
/// tables and keys in order; the `meta` table is not in it (the applied log id and membership
/// travel as openraft's snapshot meta).
pub const SNAPSHOT_MAGIC: &[u8] = b"OZONE-OM-SNAPSHOT-1\n";

/// Longest key or value a snapshot row may carry (a key record of a 5 TB object with 16 MB
/// blocks is about 100 MB): a corrupt length is refused before it is allocated.
pub const MAX_SNAPSHOT_ROW_PART: u64 = 256 << 20;

/// The namespace database and the only code that writes it.
pub struct StateMachine {
    db: Arc<Database>,
    path: PathBuf,
    /// Serializes applies (a refused command takes two transactions).
    apply_lock: Mutex<()>,
    /// The OM secret key (security on): reads open sealed S3 secrets with it.
    secret_key: std::sync::OnceLock<SecretKey>,
}

impl StateMachine {
    /// Opens (or creates) `<dir>/om.db`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Self, OmError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| OmError::io(format!("creating OM db dir {}", dir.display()), e))?;
        let path = dir.join(store::DB_FILE);
        let db = store::open_db(&path)?;
        Ok(StateMachine {
            db: Arc::new(db),
            path,
            apply_lock: Mutex::new(()),
            secret_key: std::sync::OnceLock::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// Gives reads the OM secret key, to open sealed S3 secrets (once; later calls are
    /// ignored).
    pub fn set_secret_key(&self, key: SecretKey) {
        let _ = self.secret_key.set(key);
    }

    /// A consistent read view.
    pub fn snapshot(&self) -> Result<Snapshot, OmError> {
        Snapshot::new(&self.db, self.secret_key.get().cloned())
    }

    pub fn applied_index(&self) -> Result<u64, OmError> {
        self.snapshot()?.applied_index()
    }

    /// The last applied raft log id and membership.
    pub fn raft_applied(&self) -> Result<RaftApplied, OmError> {
        self.snapshot()?.raft_applied()
    }

    /// Applies `cmd` as log entry `index`, which must be above the applied index.
    pub fn apply(&self, index: u64, cmd: &OmCommand) -> Result<OmResponse, OmError> {
        self.apply_at(Some(index), cmd, None, Durability::Immediate)
            .map(|(_, r)| r)
    }

    /// Applies `cmd` as the entry after the applied index; returns that index too.
    pub fn apply_next(&self, cmd: &OmCommand) -> Result<(u64, OmResponse), OmError> {
        self.apply_at(None, cmd, None, Durability::Immediate)
    }

    /// Applies committed raft entries in order, one transaction each; only the last is fsynced
    /// (it makes the earlier ones durable too). Blank and membership entries advance the
    /// applied log id (and membership) and answer [`OmResponse::Done`].
    ///
    /// The commands of one entry ([`crate::raft::CommandBatch`]) are applied in order, each in its own
    /// transaction, and all get the entry's index as applied index; the blocks a command
    /// releases are keyed `index << 16 | position in the batch`.
    pub fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<Vec<OmResponse>>, OmError> {
        let n = entries.len();
        let mut out = Vec::with_capacity(n);
        for (i, entry) in entries.into_iter().enumerate() {
            let last_entry = i + 1 == n;
            let durability = |last: bool| {
                if last_entry && last {
                    Durability::Immediate
                } else {
                    Durability::None
                }
            };
            let log_id = entry.log_id;
            let resp = match entry.payload {
                EntryPayload::Normal(ozone_raft::CommandBatch(cmds)) if !cmds.is_empty() => {
                    if cmds.len() > MAX_BATCH {
                        return Err(OmError::Internal(format!(
                            "entry {} holds {} commands (most {MAX_BATCH})",
                            log_id.index,
                            cmds.len()
                        )));
                    }
                    let k = cmds.len();
                    let mut resps = Vec::with_capacity(k);
                    for (pos, cmd) in cmds.iter().enumerate() {
                        let raft = RaftPos { log_id, pos };
                        let d = durability(pos + 1 == k);
                        resps.push(self.apply_at(Some(log_id.index), cmd, Some(raft), d)?.1);
                    }
                    resps
                }
                EntryPayload::Normal(_) | EntryPayload::Blank => {
                    self.apply_meta(log_id, None, durability(true))?;
                    Vec::new()
                }
                EntryPayload::Membership(m) => {
                    let m = StoredMembership::new(Some(log_id), m);
                    self.apply_meta(log_id, Some(m), durability(true))?;
                    Vec::new()
                }
            };
            out.push(resp);
        }
        Ok(out)
    }

    /// Advances the applied log id (and membership) without a command.
    fn apply_meta(
        &self,
        log_id: LogId<NodeId>,
        membership: Option<StoredMembership<NodeId, OmNode>>,
        durability: Durability,
    ) -> Result<(), OmError> {
        let _serial = self
            .apply_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)
            .map_err(|e| OmError::Internal(format!("setting durability: {e}")))?;
        let prev = read_raft_applied(&txn)?;
        check_raft_order(&prev, log_id.index)?;
        write_raft_applied(&txn, prev, log_id, membership)?;
        txn.commit()?;
        Ok(())
    }

    fn apply_at(
        &self,
        index: Option<u64>,
        cmd: &OmCommand,
        raft: Option<RaftPos>,
        durability: Durability,
    ) -> Result<(u64, OmResponse), OmError> {
        let _serial = self
            .apply_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let begin = || -> Result<WriteTransaction, OmError> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)
                .map_err(|e| OmError::Internal(format!("setting durability: {e}")))?;
            Ok(txn)
        };
        let txn = begin()?;
        let applied = read_applied(&txn)?;
        let prev_raft = read_raft_applied(&txn)?;
        let index = match (index, raft) {
            (Some(i), Some(r)) => {
                if r.pos == 0 {
                    check_raft_order(&prev_raft, i)?;
                }
                i
            }
            (None, _) => applied + 1,
            (Some(i), None) if i > applied => i,
            (Some(i), None) => return Err(OmError::OutOfOrder { index: i, applied }),
        };
        let deleted_key = match raft {
            Some(r) => (index << 16) | r.pos as u64,
            None => index,
        };
        let (inner, tracked) = cmd.untracked();
        // A retried write answers its recorded result; blocks SCM gave the retry are released.
        let cached = match tracked {
            Some(t) => retry::lookup(&txn, t)?,
            None => None,
        };
        let replayed = cached.is_some();
        let outcome = {
            let mut w = Writer::open(&txn, deleted_key)?;
            let r = match cached {
                Some(resp) => {
                    w.released = allocated_blocks(inner);
                    Ok(resp)
                }
                None => w.execute(inner),
            };
            if r.is_ok() {
                w.finish(cmd.name())?;
            }
            r
        };
        let finish = |txn: &WriteTransaction, resp: &OmResponse| -> Result<(), OmError> {
            if let Some(t) = tracked
                && !replayed
            {
                retry::record(txn, t, resp)?;
            }
            write_applied(txn, index)?;
            if let Some(r) = raft {
                write_raft_applied(txn, prev_raft.clone(), r.log_id, None)?;
            }
            Ok(())
        };
        match outcome {
            Ok(resp) => {
                finish(&txn, &resp)?;
                txn.commit()?;
                Ok((index, resp))
            }
            Err(OmError::Rejected(rejection)) => {
                txn.abort()?;
                let txn = begin()?;
                let orphans = allocated_blocks(inner);
                if !orphans.is_empty() {
                    let rec = DeletedBlocks {
                        reason: format!("{} rejected", cmd.name()),
                        blocks: orphans,
                    };
                    txn.open_table(DELETED)?
                        .insert(deleted_key, store::encode(&rec).as_slice())?;
                }
                let resp = OmResponse::Rejected(rejection);
                finish(&txn, &resp)?;
                txn.commit()?;
                Ok((index, resp))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the whole namespace to `out` in the snapshot format ([`SNAPSHOT_MAGIC`], then one
    /// row after the other) from one read transaction (a consistent cut), one row at a time;
    /// returns the applied log id and membership it holds and the bytes written. The caller
    /// flushes and syncs `out`.
    pub fn export_to(&self, out: &mut impl Write) -> Result<(RaftApplied, u64), OmError> {
        let snap = self.snapshot()?;
        let applied = snap.raft_applied()?;
        let io = |e| OmError::io("writing an OM snapshot", e);
        out.write_all(SNAPSHOT_MAGIC).map_err(io)?;
        let mut bytes = SNAPSHOT_MAGIC.len() as u64;
        snap.for_each_row(false, |table, key, value| {
            let too_big = |what: &str| {
                OmError::Internal(format!(
                    "{table} {what} of {} bytes",
                    key.len().max(value.len())
                ))
            };
            let key_len = u32::try_from(key.len()).map_err(|_| too_big("key"))?;
            let value_len = u32::try_from(value.len()).map_err(|_| too_big("value"))?;
            out.write_all(&[table.len() as u8]).map_err(io)?;
            out.write_all(table.as_bytes()).map_err(io)?;
            out.write_all(&key_len.to_be_bytes()).map_err(io)?;
            out.write_all(key).map_err(io)?;
            out.write_all(&value_len.to_be_bytes()).map_err(io)?;
            out.write_all(value).map_err(io)?;
            bytes += 1 + table.len() as u64 + 8 + key.len() as u64 + value.len() as u64;
            Ok(())
        })?;
        Ok((applied, bytes))
    }

    /// Replaces the whole namespace with the snapshot `input` holds (see [`Self::export_to`];
    /// `len` bytes) and records `applied` as its applied log id and membership; one durable
    /// transaction. Reads one row at a time: a row part longer than what is left of the
    /// snapshot or than [`MAX_SNAPSHOT_ROW_PART`] is refused before anything is allocated.
    pub fn install_from(
        &self,
        applied: &RaftApplied,
        input: impl Read,
        len: u64,
    ) -> Result<(), OmError> {
        let mut rows = SnapshotRows::new(input, len)?;
        let _serial = self
            .apply_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = self.db.begin_write()?;
        {
            for (_, def) in SNAPSHOT_TABLES {
                txn.delete_table(def)?;
            }
            txn.delete_table(DELETED)?;
            let mut deleted = txn.open_table(DELETED)?;
            let mut open: Vec<(&str, BytesTable<'_>)> = Vec::new();
            for (name, def) in SNAPSHOT_TABLES {
                open.push((name, txn.open_table(def)?));
            }
            while let Some((table, key, value)) = rows.next_row()? {
                if table == DELETED_BLOCKS {
                    let k: [u8; 8] = key
                        .try_into()
                        .map_err(|_| corrupt_snapshot("deleted_blocks key is not 8 bytes"))?;
                    deleted.insert(u64::from_be_bytes(k), value)?;
                    continue;
                }
                let t = open
                    .iter_mut()
                    .find(|(n, _)| *n == table)
                    .ok_or_else(|| corrupt_snapshot(&format!("unknown table {table}")))?;
                t.1.insert(key, value)?;
            }
        }
        // A snapshot from an OM without the index of open keys by time: build it.
        store::ensure_open_key_index(&txn)?;
        let index = applied.last_applied.map_or(0, |l| l.index);
        write_applied(&txn, index)?;
        txn.open_table(RAFT_META)?
            .insert(RAFT_APPLIED, store::encode(applied).as_slice())?;
        txn.commit()?;
        Ok(())
    }
}

/// OM's namespace as the raft role's state ([`ozone_raft::state_machine::Machine`] drives it).
impl ozone_raft::state_machine::StateStore for StateMachine {
    type Role = crate::raft::OmRole;
    type Error = OmError;

    fn applied(&self) -> Result<RaftApplied, OmError> {
        self.raft_applied()
    }

    fn apply_batch(&self, entries: Vec<Entry>) -> Result<Vec<Vec<OmResponse>>, OmError> {
        self.apply_entries(entries)
    }

    fn export(&self, mut out: &mut dyn Write) -> Result<(RaftApplied, u64), OmError> {
        self.export_to(&mut out)
    }

    fn install(
        &self,
        applied: &RaftApplied,
        input: &mut dyn Read,
        len: u64,
    ) -> Result<(), OmError> {
        self.install_from(applied, input, len)
    }
}

fn corrupt_snapshot(message: &str) -> OmError {
    OmError::Corrupt {
        table: "snapshot",
        message: message.to_string(),
    }
}

/// One (table, key, value) row of a snapshot.
type Row<'a> = (&'a str, &'a [u8], &'a [u8]);

/// Reads the rows of a snapshot one at a time into reused buffers.
struct SnapshotRows<R> {
    input: R,
    /// Bytes of the snapshot not read yet.
    left: u64,
    table: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl<R: Read> SnapshotRows<R> {
    /// Checks the magic of a snapshot of `len` bytes.
    fn new(input: R, len: u64) -> Result<Self, OmError> {
        let mut rows = SnapshotRows {
            input,
            left: len,
            table: Vec::new(),
            key: Vec::new(),
            value: Vec::new(),
        };
        let mut magic = Vec::new();
        rows.fill(SNAPSHOT_MAGIC.len() as u64, Part::Magic, &mut magic)?;
        if magic != SNAPSHOT_MAGIC {
            return Err(corrupt_snapshot("not an OM snapshot"));
        }
        Ok(rows)
    }

    /// Reads exactly `n` bytes into `buf` (replacing its contents), once `n` is known to fit
    /// in what is left and under [`MAX_SNAPSHOT_ROW_PART`].
    fn fill(&mut self, n: u64, part: Part, buf: &mut Vec<u8>) -> Result<(), OmError> {
        if n > self.left {
            return Err(corrupt_snapshot(&format!(
                "truncated: a {part:?} of {n} bytes with {} left",
                self.left
            )));
        }
        if n > MAX_SNAPSHOT_ROW_PART {
            return Err(corrupt_snapshot(&format!(
                "a {part:?} of {n} bytes (most {MAX_SNAPSHOT_ROW_PART})"
            )));
        }
        buf.clear();
        // n is at most MAX_SNAPSHOT_ROW_PART, so it fits usize.
        buf.resize(n as usize, 0);
        self.input
            .read_exact(buf)
            .map_err(|e| OmError::io("reading an OM snapshot", e))?;
        self.left -= n;
        Ok(())
    }

    /// A part read into `buf` after its length prefix (`width` bytes, big-endian).
    fn prefixed(&mut self, width: u64, part: Part, buf: &mut Vec<u8>) -> Result<(), OmError> {
        self.fill(width, part, buf)?;
        let n = buf.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        self.fill(n, part, buf)
    }

    /// The next (table, key, value), or `None` at the end.
    fn next_row(&mut self) -> Result<Option<Row<'_>>, OmError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut table = std::mem::take(&mut self.table);
        let mut key = std::mem::take(&mut self.key);
        let mut value = std::mem::take(&mut self.value);
        let read = self
            .prefixed(1, Part::TableName, &mut table)
            .and_then(|()| self.prefixed(4, Part::Key, &mut key))
            .and_then(|()| self.prefixed(4, Part::Value, &mut value));
        (self.table, self.key, self.value) = (table, key, value);
        read?;
        let table = std::str::from_utf8(&self.table)
            .map_err(|_| corrupt_snapshot("table name is not UTF-8"))?;
        Ok(Some((table, &self.key, &self.value)))
    }
}

/// What [`SnapshotRows`] was reading, for errors.
#[derive(Clone, Copy, Debug)]
enum Part {
    Magic,
    TableName,
    Key,
    Value,
}

fn read_raft_applied(txn: &WriteTransaction) -> Result<RaftApplied, OmError> {
    let t = txn.open_table(RAFT_META)?;
    let v = match t.get(RAFT_APPLIED)? {
        Some(v) => store::decode("raft_meta", v.value())?,
        None => RaftApplied::default(),
    };
    Ok(v)
}

fn check_raft_order(prev: &RaftApplied, index: u64) -> Result<(), OmError> {
    match prev.last_applied {
        Some(l) if index <= l.index => Err(OmError::OutOfOrder {
            index,
            applied: l.index,
        }),
        _ => Ok(()),
    }
}

fn write_raft_applied(
    txn: &WriteTransaction,
    prev: RaftApplied,
    log_id: LogId<NodeId>,
    membership: Option<StoredMembership<NodeId, OmNode>>,
) -> Result<(), OmError> {
    let rec = RaftApplied {
        last_applied: Some(log_id),
        membership: membership.unwrap_or(prev.membership),
    };
    txn.open_table(RAFT_META)?
        .insert(RAFT_APPLIED, store::encode(&rec).as_slice())?;
    write_applied(txn, log_id.index)
}

fn read_applied(txn: &WriteTransaction) -> Result<u64, OmError> {
    let t = txn.open_table(META)?;
    let v = t.get(APPLIED_INDEX)?.map(|v| v.value()).unwrap_or(0);
    Ok(v)
}

fn write_applied(txn: &WriteTransaction, index: u64) -> Result<(), OmError> {
    txn.open_table(META)?.insert(APPLIED_INDEX, index)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use md5::{Digest, Md5};
    use ozone_proto::om::OmStatus;

    use crate::command::{
        AllocateBlock, CommitKey, CompleteMultipartUpload, CreateBucket, CreateVolume, DeleteKeys,
        DeleteVolume, ExpireOpenKeys, InitiateMultipartUpload, KeyCommand, OpenKey, OpenKeyId,
        RequestId, SetBucketTags, SetKeyTags, Tracked,
    };
    use crate::model::{
        BlockRef, CommittedBlock, Location, MIN_PART_SIZE, PartTarget, WriteCondition,
    };
    use crate::model::{NodeRecord, PipelineRecord};

    fn loc(local_id: u64) -> Location {
        Location {
            block: BlockRef {
                container_id: 1,
                local_id,
            },
            offset: 0,
            length: 0,
            pipeline: PipelineRecord {
                id: "p1".into(),
                nodes: vec![NodeRecord {
                    uuid: "dn1".into(),
                    host: "127.0.0.1".into(),
                    port: 9859,
                    http_port: 9882,
                }],
                replication: 1,
                state: "OPEN".into(),
            },
            part_number: 0,
            checksum: Vec::new(),
        }
    }

    fn committed(local_id: u64, length: u64) -> CommittedBlock {
        CommittedBlock {
            block: BlockRef {
                container_id: 1,
                local_id,
            },
            length,
            checksum: Vec::new(),
        }
    }

    fn open(key: &str, client_id: u64, blocks: &[u64], part: Option<PartTarget>) -> OmCommand {
        OmCommand::from(OpenKey {
            volume: "vol".into(),
            bucket: "bkt".into(),
            key: key.into(),
            client_id,
            owner: String::new(),
            replication: 0,
            locations: blocks.iter().map(|b| loc(*b)).collect(),
            part,
            block_size: 1 << 20,
            now_ms: 1000 + client_id,
        })
    }

    fn commit(
        key: &str,
        client_id: u64,
        blocks: &[(u64, u64)],
        etag: &str,
        part: Option<PartTarget>,
    ) -> OmCommand {
        OmCommand::from(CommitKey {
            volume: "vol".into(),
            bucket: "bkt".into(),
            key: key.into(),
            client_id,
            blocks: blocks.iter().map(|(b, l)| committed(*b, *l)).collect(),
            size: blocks.iter().map(|(_, l)| l).sum(),
            etag: etag.into(),
            metadata: BTreeMap::from([("Content-Type".to_string(), "text/plain".to_string())]),
            part,
            now_ms: 2000 + client_id,
            tags: BTreeMap::new(),
            condition: None,
        })
    }

    fn part(n: u32) -> Option<PartTarget> {
        Some(PartTarget {
            upload_id: "up-1".into(),
            part_number: n,
        })
    }

    /// A volume, a bucket, keys written, overwritten and deleted, a completed upload.
    pub(crate) fn script() -> Vec<OmCommand> {
        vec![
            OmCommand::from(CreateVolume {
                volume: "vol".into(),
                owner: "admin".into(),
                now_ms: 1,
            }),
            OmCommand::from(CreateBucket {
                volume: "vol".into(),
                bucket: "bkt".into(),
                owner: "alice".into(),
                replication: 3,
                now_ms: 2,
                link: None,
            }),
            open("a/1", 11, &[1, 2], None),
            OmCommand::from(AllocateBlock {
                volume: "vol".into(),
                bucket: "bkt".into(),
                key: "a/1".into(),
                client_id: 11,
                location: loc(3),
            }),
            // Uses blocks 1 and 3; 2 is released.
            commit("a/1", 11, &[(1, 100), (3, 50)], "\"e1\"", None),
            // Overwrite: 1 and 3 are released.
            open("a/1", 12, &[4], None),
            commit("a/1", 12, &[(4, 10)], "e2", None),
            open("b", 13, &[5], None),
            commit("b", 13, &[(5, 7)], "e3", None),
            // Rejected: no such bucket; block 6 is recorded as deleted.
            OmCommand::from(OpenKey {
                volume: "vol".into(),
                bucket: "nope".into(),
                key: "x".into(),
                client_id: 14,
                owner: String::new(),
                replication: 0,
                locations: vec![loc(6)],
                part: None,
                block_size: 1 << 20,
                now_ms: 3,
            }),
            OmCommand::from(DeleteKeys {
                volume: "vol".into(),
                bucket: "bkt".into(),
                keys: vec!["b".into(), "missing".into()],
            }),
            OmCommand::from(InitiateMultipartUpload {
                volume: "vol".into(),
                bucket: "bkt".into(),
                key: "mp".into(),
                upload_id: "up-1".into(),
                owner: String::new(),
                replication: 0,
                metadata: BTreeMap::from([("x-amz-meta-a".to_string(), "1".to_string())]),
                now_ms: 4,
                tags: BTreeMap::from([("t".to_string(), "v".to_string())]),
            }),
            open("mp", 15, &[7], part(1)),
            commit(
                "mp",
                15,
                &[(7, MIN_PART_SIZE)],
                "0cc175b9c0f1b6a831c399e269772661",
                part(1),
            ),
            open("mp", 16, &[8], part(2)),
            commit(
                "mp",
                16,
                &[(8, 3)],
                "92eb5ffee6ae2fec3ad71c777531578f",
                part(2),
            ),
            open("mp", 17, &[9], part(3)),
            commit(
                "mp",
                17,
                &[(9, 3)],
                "4a8a08f09d37b73795649038408b5f33",
                part(3),
            ),
            OmCommand::from(CompleteMultipartUpload {
                volume: "vol".into(),
                bucket: "bkt".into(),
                key: "mp".into(),
                upload_id: "up-1".into(),
                parts: vec![
                    (1, "\"0cc175b9c0f1b6a831c399e269772661\"".into()),
                    (2, "92eb5ffee6ae2fec3ad71c777531578f".into()),
                ],
                now_ms: 5,
                condition: None,
            }),
        ]
    }

    fn run(dir: &Path) -> (StateMachine, Vec<OmResponse>) {
        let sm = StateMachine::open(dir).expect("open");
        let resps = script()
            .iter()
            .enumerate()
            .map(|(i, c)| sm.apply(i as u64 + 1, c).expect("apply"))
            .collect();
        (sm, resps)
    }

    #[test]
    fn commands_and_responses_round_trip_through_serde() {
        let d = tempfile::tempdir().expect("tmp");
        let (_, responses) = run(d.path());
        for c in script() {
            let bytes = serde_json::to_vec(&c).expect("serialize");
            assert_eq!(
                serde_json::from_slice::<OmCommand>(&bytes).expect("deserialize"),
                c
            );
        }
        for r in responses {
            let bytes = serde_json::to_vec(&r).expect("serialize");
            assert_eq!(
                serde_json::from_slice::<OmResponse>(&bytes).expect("deserialize"),
                r
            );
        }
    }

    #[test]
    fn apply_is_deterministic_and_durable() {
        let (d1, d2) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let (sm1, r1) = run(d1.path());
        let (sm2, r2) = run(d2.path());
        assert_eq!(r1, r2);
        let dump1 = sm1.snapshot().expect("snap").dump().expect("dump");
        assert_eq!(dump1, sm2.snapshot().expect("snap").dump().expect("dump"));
        assert_eq!(sm1.applied_index().expect("idx"), script().len() as u64);

        // The rejected OpenKey is a response, not an error.
        assert!(matches!(&r1[9], OmResponse::Rejected(r) if r.status == OmStatus::BucketNotFound));

        let snap = sm1.snapshot().expect("snap");
        let a1 = snap
            .key("vol", "bkt", "a/1")
            .expect("read")
            .expect("exists");
        assert_eq!(
            (a1.size, a1.etag.as_str(), a1.owner.as_str(), a1.replication),
            (10, "e2", "alice", 3)
        );
        assert!(snap.key("vol", "bkt", "b").expect("read").is_none());

        let mp = snap.key("vol", "bkt", "mp").expect("read").expect("exists");
        let mut md5s = Md5::new();
        md5s.update(hex::decode("0cc175b9c0f1b6a831c399e269772661").expect("hex"));
        md5s.update(hex::decode("92eb5ffee6ae2fec3ad71c777531578f").expect("hex"));
        assert_eq!(mp.etag, format!("{}-2", hex::encode(md5s.finalize())));
        assert_eq!(mp.size, MIN_PART_SIZE + 3);
        assert_eq!(mp.parts_count, 2);
        assert_eq!(
            mp.metadata.get("x-amz-meta-a").map(String::as_str),
            Some("1")
        );
        let offs: Vec<(u64, u64, u32)> = mp
            .locations
            .iter()
            .map(|l| (l.block.local_id, l.offset, l.part_number))
            .collect();
        assert_eq!(offs, vec![(7, 0, 1), (8, MIN_PART_SIZE, 2)]);
        assert!(
            snap.upload("vol", "bkt", "mp", "up-1")
                .expect("read")
                .is_none()
        );

        let mut deleted: Vec<u64> = snap
            .deleted_blocks()
            .expect("deleted")
            .into_iter()
            .flat_map(|(_, d)| d.blocks)
            .map(|b| b.local_id)
            .collect();
        deleted.sort();
        // 2 unused, 1+3 overwritten, 6 rejected open, 5 deleted key, 9 unlisted part.
        assert_eq!(deleted, vec![1, 2, 3, 5, 6, 9]);

        drop(snap);
        drop(sm1);
        let reopened = StateMachine::open(d1.path()).expect("reopen");
        assert_eq!(
            reopened.snapshot().expect("snap").dump().expect("dump"),
            dump1
        );
        assert!(matches!(
            reopened.apply(3, &script()[0]),
            Err(OmError::OutOfOrder { index: 3, .. })
        ));
        let (next, _) = reopened
            .apply_next(&OmCommand::from(DeleteVolume {
                volume: "nope".into(),
            }))
            .expect("apply");
        assert_eq!(next, script().len() as u64 + 1);
    }

    fn cond(if_none_match: bool, if_match: Option<&str>) -> Option<WriteCondition> {
        Some(WriteCondition {
            if_none_match,
            if_match: if_match.map(str::to_string),
        })
    }

    fn commit_if(key: &str, client_id: u64, block: u64, c: Option<WriteCondition>) -> OmCommand {
        match commit(key, client_id, &[(block, 5)], "etag-new", None) {
            OmCommand::Key(KeyCommand::Commit(commit)) => CommitKey {
                tags: BTreeMap::from([("k".to_string(), "v".to_string())]),
                condition: c,
                ..commit
            }
            .into(),
            other => other,
        }
    }

    #[test]
    fn commit_keeps_block_checksums_and_records_without_them_load() {
        let d = tempfile::tempdir().expect("tmp");
        let (sm, _) = run(d.path());
        sm.apply_next(&open("sum", 40, &[40, 41], None))
            .expect("apply");
        let cmd = match commit("sum", 40, &[(40, 8), (41, 3)], "e", None) {
            OmCommand::Key(KeyCommand::Commit(mut c)) => {
                c.blocks[0].checksum = vec![7; 32];
                c.into()
            }
            other => other,
        };
        sm.apply_next(&cmd).expect("apply");
        let k = sm
            .snapshot()
            .expect("snap")
            .key("vol", "bkt", "sum")
            .expect("read")
            .expect("exists");
        let sums: Vec<Vec<u8>> = k.locations.iter().map(|l| l.checksum.clone()).collect();
        assert_eq!(sums, vec![vec![7; 32], Vec::new()]);
        let proto = k.to_proto(true);
        assert_eq!(proto.locations[0].block_checksum, vec![7; 32]);
        assert!(proto.locations[1].block_checksum.is_empty());
        // A location stored before OM kept checksums has no such field, and loads without one.
        let json = serde_json::to_value(&k.locations[1]).expect("json");
        assert!(json.get("checksum").is_none(), "{json}");
        let back: Location = serde_json::from_value(json).expect("loads");
        assert!(back.checksum.is_empty());
    }

    #[test]
    fn conditional_writes_tags_and_completing_twice() {
        let d = tempfile::tempdir().expect("tmp");
        let (sm, _) = run(d.path());
        let apply = |c: &OmCommand| sm.apply_next(c).expect("apply").1;
        let status = |r: &OmResponse| match r {
            OmResponse::Rejected(r) => Some(r.status),
            _ => None,
        };
        // If-None-Match: * on an existing key fails; its open key and block are gone.
        apply(&open("a/1", 30, &[30], None));
        let r = apply(&commit_if("a/1", 30, 30, cond(true, None)));
        assert_eq!(status(&r), Some(OmStatus::PreconditionFailed));
        let snap = sm.snapshot().expect("snap");
        assert!(
            snap.open_key("vol", "bkt", "a/1", 30)
                .expect("read")
                .is_none()
        );
        assert!(
            snap.deleted_blocks()
                .expect("deleted")
                .iter()
                .any(|(_, d)| d.blocks.iter().any(|b| b.local_id == 30))
        );
        assert_eq!(
            snap.key("vol", "bkt", "a/1")
                .expect("read")
                .expect("kept")
                .etag,
            "e2"
        );
        // ... and on a fresh key succeeds, with tags; a second one then fails.
        apply(&open("fresh", 31, &[31], None));
        apply(&open("fresh", 32, &[32], None));
        let r = apply(&commit_if("fresh", 31, 31, cond(true, None)));
        assert!(
            matches!(&r, OmResponse::Key(k) if k.tags.get("k").map(String::as_str) == Some("v"))
        );
        let r = apply(&commit_if("fresh", 32, 32, cond(true, None)));
        assert_eq!(status(&r), Some(OmStatus::PreconditionFailed));
        // If-Match: the ETag must be the current one; a missing key fails.
        apply(&open("a/1", 33, &[33], None));
        let r = apply(&commit_if("a/1", 33, 33, cond(false, Some("\"wrong\""))));
        assert_eq!(status(&r), Some(OmStatus::PreconditionFailed));
        apply(&open("a/1", 34, &[34], None));
        let r = apply(&commit_if("a/1", 34, 34, cond(false, Some("\"e2\""))));
        assert!(matches!(&r, OmResponse::Key(k) if k.etag == "etag-new"));
        apply(&open("nokey", 35, &[35], None));
        let r = apply(&commit_if("nokey", 35, 35, cond(false, Some("e2"))));
        assert_eq!(status(&r), Some(OmStatus::PreconditionFailed));

        // Completing the completed upload again answers the same key; tags came from it.
        let again = OmCommand::from(CompleteMultipartUpload {
            volume: "vol".into(),
            bucket: "bkt".into(),
            key: "mp".into(),
            upload_id: "up-1".into(),
            parts: vec![(1, "x".into())],
            now_ms: 9,
            condition: None,
        });
        let before = sm
            .snapshot()
            .expect("snap")
            .key("vol", "bkt", "mp")
            .expect("read")
            .expect("exists");
        assert_eq!(before.tags.get("t").map(String::as_str), Some("v"));
        assert_eq!(before.upload_id, "up-1");
        assert_eq!(apply(&again), OmResponse::Key(before));
        // Not once the key was written over.
        apply(&open("mp", 36, &[36], None));
        apply(&commit("mp", 36, &[(36, 1)], "e", None));
        assert_eq!(
            status(&apply(&again)),
            Some(OmStatus::NoSuchMultipartUpload)
        );

        // Tags of keys and buckets.
        let tags = BTreeMap::from([("a".to_string(), "b".to_string())]);
        let r = apply(&OmCommand::from(SetKeyTags {
            volume: "vol".into(),
            bucket: "bkt".into(),
            key: "mp".into(),
            tags: tags.clone(),
        }));
        assert!(matches!(&r, OmResponse::Key(k) if k.tags == tags));
        let r = apply(&OmCommand::from(SetKeyTags {
            volume: "vol".into(),
            bucket: "bkt".into(),
            key: "missing".into(),
            tags: tags.clone(),
        }));
        assert_eq!(status(&r), Some(OmStatus::KeyNotFound));
        let r = apply(&OmCommand::from(SetBucketTags {
            volume: "vol".into(),
            bucket: "bkt".into(),
            tags: tags.clone(),
        }));
        assert!(matches!(&r, OmResponse::Bucket(b) if b.tags == tags));
        let b = sm
            .snapshot()
            .expect("snap")
            .require_bucket("vol", "bkt")
            .expect("bucket");
        assert_eq!(b.tags, tags);
    }

    /// Every table but `meta` (the applied index): what a command changed.
    fn state(sm: &StateMachine) -> Vec<store::DumpEntry> {
        let mut d = sm.snapshot().expect("snap").dump().expect("dump");
        d.retain(|(t, _, _)| *t != "meta");
        d
    }

    fn deleted_ids(sm: &StateMachine) -> Vec<u64> {
        sm.snapshot()
            .expect("snap")
            .deleted_blocks()
            .expect("deleted")
            .into_iter()
            .flat_map(|(_, d)| d.blocks)
            .map(|b| b.local_id)
            .collect()
    }

    fn tracked(call_id: u64, now_ms: u64, cmd: OmCommand) -> OmCommand {
        OmCommand::Tracked(Tracked {
            request: RequestId {
                client_id: "client-1".into(),
                call_id,
            },
            now_ms,
            expire_before_ms: now_ms.saturating_sub(1000),
            command: Box::new(cmd),
        })
    }

    #[test]
    fn a_tracked_write_applies_once_and_a_retry_answers_the_first_result() {
        let d = tempfile::tempdir().expect("tmp");
        let (sm, _) = run(d.path());
        let apply = |c: &OmCommand| sm.apply_next(c).expect("apply").1;
        apply(&open("r", 40, &[40], None));
        let commit_r = commit("r", 40, &[(40, 5)], "e", None);
        let first = apply(&tracked(1, 5000, commit_r.clone()));
        assert!(
            matches!(&first, OmResponse::Key(k) if k.size == 5),
            "{first:?}"
        );
        let before = state(&sm);
        // The retry (its answer was lost) answers the same key and changes nothing.
        assert_eq!(apply(&tracked(1, 5001, commit_r.clone())), first);
        assert_eq!(state(&sm), before);
        // Without the request id the same commit finds no open key: what retries used to get.
        assert!(matches!(
            apply(&commit_r),
            OmResponse::Rejected(r) if r.status == OmStatus::KeyNotFound
        ));

        // A retried OpenKey answers the first open key; the blocks SCM gave the retry go.
        let o1 = apply(&tracked(2, 5002, open("s", 41, &[41], None)));
        let o2 = apply(&tracked(2, 5003, open("s", 42, &[42], None)));
        assert_eq!(o1, o2);
        let snap = sm.snapshot().expect("snap");
        assert!(
            snap.open_key("vol", "bkt", "s", 41)
                .expect("read")
                .is_some()
        );
        assert!(
            snap.open_key("vol", "bkt", "s", 42)
                .expect("read")
                .is_none()
        );
        drop(snap);
        assert!(deleted_ids(&sm).contains(&42));
        assert!(!deleted_ids(&sm).contains(&41));

        // A rejection is a result too; the same id on another operation is refused.
        let missing = commit("nope", 99, &[(99, 1)], "e", None);
        let r1 = apply(&tracked(3, 5004, missing.clone()));
        assert!(matches!(&r1, OmResponse::Rejected(r) if r.status == OmStatus::KeyNotFound));
        assert_eq!(apply(&tracked(3, 5005, missing)), r1);
        assert!(matches!(
            apply(&tracked(1, 5006, open("u", 43, &[43], None))),
            OmResponse::Rejected(r) if r.status == OmStatus::InvalidRequest
        ));

        // Results older than the timeout are forgotten as new ones are recorded: call 1
        // applies again (and finds no open key).
        apply(&tracked(10, 9000, open("v", 44, &[44], None)));
        apply(&tracked(11, 9000, open("v", 45, &[45], None)));
        assert!(matches!(
            apply(&tracked(1, 9001, commit_r)),
            OmResponse::Rejected(r) if r.status == OmStatus::KeyNotFound
        ));
        let cache: Vec<_> = state(&sm)
            .into_iter()
            .filter(|(t, _, _)| *t == "retry_cache_by_time")
            .map(|(_, k, _)| u64::from_be_bytes(k[..8].try_into().expect("8 bytes")))
            .collect();
        assert!(cache.iter().all(|t| *t >= 8000), "{cache:?}");
    }

    #[test]
    fn open_keys_expire_by_creation_time_and_release_their_blocks() {
        let d = tempfile::tempdir().expect("tmp");
        let (sm, _) = run(d.path());
        let apply = |c: &OmCommand| sm.apply_next(c).expect("apply").1;
        // Created at 1000 + client id.
        apply(&open("x", 50, &[50, 51], None));
        apply(&open("y", 60, &[60], None));
        let snap = sm.snapshot().expect("snap");
        let old: Vec<u64> = snap
            .open_keys_created_before(1055, 10)
            .expect("read")
            .iter()
            .map(|o| o.client_id)
            .collect();
        assert_eq!(old, vec![50]);
        drop(snap);
        let id = |key: &str, client_id| OpenKeyId {
            volume: "vol".into(),
            bucket: "bkt".into(),
            key: key.into(),
            client_id,
        };
        // y was named but is younger than the cutoff: it stays.
        let r = apply(&OmCommand::from(ExpireOpenKeys {
            open_keys: vec![id("x", 50), id("y", 60), id("gone", 7)],
            created_before_ms: 1055,
        }));
        assert_eq!(r, OmResponse::Expired(1));
        let snap = sm.snapshot().expect("snap");
        assert!(
            snap.open_key("vol", "bkt", "x", 50)
                .expect("read")
                .is_none()
        );
        assert!(
            snap.open_key("vol", "bkt", "y", 60)
                .expect("read")
                .is_some()
        );
        drop(snap);
        let deleted = deleted_ids(&sm);
        assert!(deleted.contains(&50) && deleted.contains(&51) && !deleted.contains(&60));
        assert!(matches!(
            apply(&commit("x", 50, &[(50, 1)], "e", None)),
            OmResponse::Rejected(r) if r.status == OmStatus::KeyNotFound
        ));

        // The index follows the open keys; a database without it gets it rebuilt at open.
        let counts = |sm: &StateMachine| {
            let d = state(sm);
            let n = |name: &str| d.iter().filter(|(t, _, _)| *t == name).count();
            (n("open_keys"), n("open_keys_by_time"))
        };
        assert_eq!(counts(&sm), (1, 1));
        {
            let txn = sm.db().begin_write().expect("txn");
            txn.open_table(store::OPEN_KEY_TIMES)
                .expect("table")
                .retain(|_, _| false)
                .expect("clear");
            txn.commit().expect("commit");
        }
        assert_eq!(counts(&sm), (1, 0));
        drop(sm);
        let sm = StateMachine::open(d.path()).expect("reopen");
        assert_eq!(counts(&sm), (1, 1));
        let old = sm
            .snapshot()
            .expect("snap")
            .open_keys_created_before(u64::MAX, 10)
            .expect("read");
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].client_id, 60);
    }
}
