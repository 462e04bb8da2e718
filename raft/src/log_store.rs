//! The raft log and vote of one node in redb (`raft.db` in the role's db dir, beside its state
//! machine's database).
//!
//! Tables: `raft_log` (index -> JSON entry) and `raft_state` (vote, last purged log id).
//!
//! [`LogStore::append`] does not write the disk itself: it puts the entries in an in-memory
//! overlay (readable at once, as openraft requires) and queues them for the log's writer
//! thread, which takes every queued operation, writes them in one redb transaction with one
//! fsync, and only then reports them durable (`LogFlushed`). Vote, truncate and purge go through
//! the same queue, in order, and wait for their fsync. [`LogStats`] counts fsynced appends and
//! entries. (openraft 0.9 waits for each append's flush before it takes the next client write,
//! so concurrent writes share an fsync by sharing an entry: see [`crate::proposer`].)
// openraft's error types (`StorageError`, `RPCError`) are large; they are its API.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogId, RaftLogReader, StorageError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::{Entry, Error, NodeId, Role, TypeConfig, storage_error};

const LOG: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("raft_log");
const STATE: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("raft_state");
const VOTE: &str = "vote";
const PURGED: &str = "last_purged";

/// redb page cache of `raft.db`: the log is written once, read back by followers' replication
/// near its tail, and purged behind snapshots.
const LOG_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Name of the raft log file inside the role's db directory.
pub const LOG_FILE: &str = "raft.db";

/// How the log has been written: fsynced transactions and entries.
#[derive(Debug, Default)]
pub struct LogStats {
    pub appends: AtomicU64,
    pub entries: AtomicU64,
}

/// One queued write of the log.
enum Op<R: Role> {
    Append {
        rows: Vec<(LogId<NodeId>, Vec<u8>)>,
        callback: LogFlushed<TypeConfig<R>>,
    },
    /// Deletes entries from this index on.
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Deletes entries up to this log id and records it as purged.
    Purge {
        upto: LogId<NodeId>,
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    State {
        key: &'static str,
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The raft log store of role `R`; cheap to clone (the log reader is a clone).
pub struct LogStore<R: Role> {
    db: Arc<Database>,
    /// Entries appended but not yet known durable, by index.
    pending: Arc<Mutex<BTreeMap<u64, Entry<R>>>>,
    queue: mpsc::Sender<Op<R>>,
    stats: Arc<LogStats>,
    /// Gone once the writer thread ended (every clone of the store dropped): the file is closed.
    writer_alive: std::sync::Weak<()>,
}

impl<R: Role> Clone for LogStore<R> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            pending: self.pending.clone(),
            queue: self.queue.clone(),
            stats: self.stats.clone(),
            writer_alive: self.writer_alive.clone(),
        }
    }
}

type SResult<T> = Result<T, StorageError<NodeId>>;

fn read_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    storage_error(ErrorVerb::Read, ErrorSubject::Logs, e)
}

fn write_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    storage_error(ErrorVerb::Write, ErrorSubject::Logs, e)
}

/// The writer thread: batches every queued op into one fsynced transaction.
fn writer<R: Role>(
    db: Arc<Database>,
    rx: mpsc::Receiver<Op<R>>,
    pending: Arc<Mutex<BTreeMap<u64, Entry<R>>>>,
    stats: Arc<LogStats>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let result = write_batch(&db, &batch).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "raft log write failed");
        }
        let mut entries = 0u64;
        {
            let mut p = pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for op in &batch {
                if let Op::Append { rows, .. } = op {
                    entries += rows.len() as u64;
                    if result.is_ok() {
                        for (log_id, _) in rows {
                            if p.get(&log_id.index).is_some_and(|e| e.log_id == *log_id) {
                                p.remove(&log_id.index);
                            }
                        }
                    }
                }
            }
        }
        if result.is_ok() && entries > 0 {
            stats.appends.fetch_add(1, Ordering::Relaxed);
            stats.entries.fetch_add(entries, Ordering::Relaxed);
        }
        for op in batch {
            match op {
                Op::Append { callback, .. } => {
                    callback.log_io_completed(result.clone().map_err(std::io::Error::other))
                }
                Op::Truncate { done, .. } | Op::Purge { done, .. } | Op::State { done, .. } => {
                    let _ = done.send(result.clone());
                }
            }
        }
    }
}

fn write_batch<R: Role>(db: &Database, batch: &[Op<R>]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut log = txn.open_table(LOG)?;
        let mut state = txn.open_table(STATE)?;
        for op in batch {
            match op {
                Op::Append { rows, .. } => {
                    for (log_id, bytes) in rows {
                        log.insert(log_id.index, bytes.as_slice())?;
                    }
                }
                Op::Truncate { from, .. } => log.retain_in::<u64, _>(*from.., |_, _| false)?,
                Op::Purge { upto, bytes, .. } => {
                    state.insert(PURGED, bytes.as_slice())?;
                    log.retain_in::<u64, _>(
                        (Bound::Unbounded, Bound::Included(upto.index)),
                        |_, _| false,
                    )?;
                }
                Op::State { key, bytes, .. } => {
                    state.insert(*key, bytes.as_slice())?;
                }
            }
        }
    }
    // Durability::Immediate (the default): one fsync for the whole batch.
    txn.commit()?;
    Ok(())
}

impl<R: Role> LogStore<R> {
    /// Opens (or creates) `<dir>/raft.db` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {} db dir {}", R::NAME, dir.display()), e))?;
        let path = dir.join(LOG_FILE);
        let db = Arc::new(ozone_common::db::create_with_cache(&path, LOG_CACHE_BYTES)?);
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(STATE)?;
        txn.commit()?;
        let (queue, rx) = mpsc::channel();
        let pending = Arc::new(Mutex::new(BTreeMap::new()));
        let stats = Arc::new(LogStats::default());
        let (d, p, st) = (db.clone(), pending.clone(), stats.clone());
        let alive = Arc::new(());
        let writer_alive = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name(format!("{}-raft-log", R::NAME.to_ascii_lowercase()))
            .spawn(move || {
                writer(d, rx, p, st);
                drop(alive);
            })
            .map_err(|e| Error::io("starting the raft log writer", e))?;
        Ok(LogStore {
            db,
            pending,
            queue,
            stats,
            writer_alive,
        })
    }

    pub fn stats(&self) -> Arc<LogStats> {
        self.stats.clone()
    }

    /// Upgradable while the log file is open.
    pub fn writer_alive(&self) -> std::sync::Weak<()> {
        self.writer_alive.clone()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry<R>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get_state<T: DeserializeOwned>(db: &Database, key: &str) -> SResult<Option<T>> {
        let txn = db.begin_read().map_err(read_err)?;
        let t = txn.open_table(STATE).map_err(read_err)?;
        match t.get(key).map_err(read_err)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(v.value())
                .map(Some)
                .map_err(read_err),
        }
    }

    fn send(&self, op: Op<R>) -> SResult<()> {
        self.queue
            .send(op)
            .map_err(|_| write_err("the raft log writer stopped"))
    }

    /// Queues `op` (made with a completion sender) and waits until it is durable.
    async fn durable(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Op<R>,
    ) -> SResult<()> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await
            .map_err(|_| write_err("the raft log writer stopped"))?
            .map_err(write_err)
    }

    async fn put_state<T: Serialize>(&self, key: &'static str, value: &T) -> SResult<()> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        self.durable(|done| Op::State { key, bytes, done }).await
    }
}

impl<R: Role> RaftLogReader<TypeConfig<R>> for LogStore<R> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<Entry<R>>> {
        let start = range.start_bound().cloned();
        let end = range.end_bound().cloned();
        let mut out = BTreeMap::new();
        {
            let txn = self.db.begin_read().map_err(read_err)?;
            let t = txn.open_table(LOG).map_err(read_err)?;
            for item in t.range::<u64>((start, end)).map_err(read_err)? {
                let (k, v) = item.map_err(read_err)?;
                out.insert(
                    k.value(),
                    serde_json::from_slice::<Entry<R>>(v.value()).map_err(read_err)?,
                );
            }
        }
        // Entries not yet durable (or durable but not yet dropped from the overlay) win.
        for (i, e) in self.pending().range((start, end)) {
            out.insert(*i, e.clone());
        }
        Ok(out.into_values().collect())
    }
}

impl<R: Role> RaftLogStorage<TypeConfig<R>> for LogStore<R> {
    type LogReader = LogStore<R>;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig<R>>> {
        let last_purged: Option<LogId<NodeId>> = Self::get_state(&self.db, PURGED)?;
        let pending_last = self.pending().last_key_value().map(|(_, e)| e.log_id);
        let stored_last = {
            let txn = self.db.begin_read().map_err(read_err)?;
            let t = txn.open_table(LOG).map_err(read_err)?;
            match t.last().map_err(read_err)? {
                Some((_, v)) => Some(
                    serde_json::from_slice::<Entry<R>>(v.value())
                        .map_err(read_err)?
                        .log_id,
                ),
                None => None,
            }
        };
        let last = match (pending_last, stored_last) {
            (Some(p), Some(s)) => Some(if p.index >= s.index { p } else { s }),
            (p, s) => p.or(s).or(last_purged),
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> SResult<()> {
        self.put_state(VOTE, vote).await
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<NodeId>>> {
        Self::get_state(&self.db, VOTE)
    }

    /// Readable at once (overlay), durable when the writer's next fsync completes; openraft
    /// learns that through `callback`.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig<R>>) -> SResult<()>
    where
        I: IntoIterator<Item = Entry<R>> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        {
            let mut p = self.pending();
            for e in entries {
                rows.push((e.log_id, serde_json::to_vec(&e).map_err(write_err)?));
                p.insert(e.log_id.index, e);
            }
        }
        self.send(Op::Append { rows, callback })
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> SResult<()> {
        self.pending().retain(|i, _| *i < log_id.index);
        self.durable(|done| Op::Truncate {
            from: log_id.index,
            done,
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> SResult<()> {
        let bytes = serde_json::to_vec(&log_id).map_err(write_err)?;
        self.pending().retain(|i, _| *i > log_id.index);
        self.durable(|done| Op::Purge {
            upto: log_id,
            bytes,
            done,
        })
        .await?;
        tracing::debug!(upto = log_id.index, "raft log purged");
        Ok(())
    }
}
