//! openraft's state machine over [`crate::StateMachine`]: applies committed batches (one fsync
//! per batch), and makes, keeps and installs snapshots.
//!
//! A snapshot is the namespace itself, exported from one redb read transaction (as Ozone's OM
//! snapshot is its RocksDB) row by row through a buffer into a file of `<db dir>/snapshot/`
//! (format: [`crate::state_machine::SNAPSHOT_MAGIC`]), fsynced, then published: renamed to
//! `snapshot-<n>.bin` and named with its meta (last log id, membership) in `current.json`
//! (written to a temporary file, fsynced and renamed over), after which older snapshot files are
//! removed. [`RaftStateMachine::get_current_snapshot`] opens the published file; openraft's
//! chunked sender reads it `snapshot_max_chunk_size` bytes at a time, so neither side holds
//! the namespace in memory.
//!
//! A follower writes the chunks into a `recv-<n>.tmp` file of the same directory; installing
//! streams its rows into the tables in one write transaction (replacing them all), then
//! publishes the received file as its current snapshot. Publishing never replaces a snapshot
//! with an older one (a build and an install may finish in either order).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{Entry, NodeId, OmNode, TypeConfig, storage_error};
use crate::command::OmResponse;
use crate::error::OmError;
use crate::state_machine::StateMachine;
use crate::store::RaftApplied;

type SResult<T> = Result<T, StorageError<NodeId>>;

/// The snapshot directory under the OM db dir (Ozone's `ozone.om.ratis.snapshot.dir` default).
pub const SNAPSHOT_DIR: &str = "snapshot";

/// The file naming the published snapshot.
const CURRENT: &str = "current.json";

/// Write buffer of a snapshot being built, read buffer of one being installed.
const IO_BUFFER: usize = 1 << 20;

/// What `current.json` holds: the published snapshot's meta and file name.
#[derive(Serialize, Deserialize)]
struct Current {
    meta: SnapshotMeta<NodeId, OmNode>,
    file: String,
}

/// A snapshot's meta.
type Meta = SnapshotMeta<NodeId, OmNode>;

/// The snapshot files of one OM.
struct SnapshotFiles {
    dir: PathBuf,
    /// Next number for a file name (starts at the clock, skips names that exist).
    seq: AtomicU64,
    /// Serializes publishing and reading `current.json`.
    publish: Mutex<()>,
    /// The file the snapshot being received is written to.
    receiving: Mutex<Option<PathBuf>>,
}

fn io_err(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> OmError {
    let context = format!("{context} {}", path.display());
    move |e| OmError::io(context, e)
}

impl SnapshotFiles {
    /// Opens (creates) `dir`, removing the temporary files an interrupted build or receive
    /// left.
    fn open(dir: &Path) -> Result<Self, OmError> {
        std::fs::create_dir_all(dir).map_err(io_err("creating snapshot dir", dir))?;
        for entry in std::fs::read_dir(dir).map_err(io_err("listing snapshot dir", dir))? {
            let path = entry.map_err(io_err("listing snapshot dir", dir))?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(SnapshotFiles {
            dir: dir.to_path_buf(),
            seq: AtomicU64::new(now),
            publish: Mutex::new(()),
            receiving: Mutex::new(None),
        })
    }

    /// A file name of this directory not taken yet.
    fn fresh(&self, prefix: &str, ext: &str) -> (String, PathBuf) {
        loop {
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let name = format!("{prefix}-{n}.{ext}");
            let path = self.dir.join(&name);
            if !path.exists() {
                return (name, path);
            }
        }
    }

    fn sync_dir(&self) -> Result<(), OmError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", &self.dir))
    }

    fn read_current(&self) -> Result<Option<Current>, OmError> {
        let path = self.dir.join(CURRENT);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| OmError::Corrupt {
                table: "snapshot",
                message: format!("{}: {e}", path.display()),
            })
    }

    /// The published snapshot, opened for reading.
    fn current(&self) -> Result<Option<(Meta, File)>, OmError> {
        let _serial = self
            .publish
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(c) = self.read_current()? else {
            return Ok(None);
        };
        let path = self.dir.join(&c.file);
        match File::open(&path) {
            Ok(f) => Ok(Some((c.meta, f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "the published OM snapshot file is gone");
                Ok(None)
            }
            Err(e) => Err(io_err("opening", &path)(e)),
        }
    }

    /// Makes the complete, fsynced file at `tmp` the current snapshot with `meta`, unless the
    /// current one is newer (then `tmp` is removed: open handles keep reading it). Removes the
    /// older snapshot files.
    fn publish(&self, meta: &SnapshotMeta<NodeId, OmNode>, tmp: &Path) -> Result<(), OmError> {
        let _serial = self
            .publish
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = self.read_current()?
            && c.meta.last_log_id > meta.last_log_id
        {
            tracing::info!(
                built = ?meta.last_log_id,
                current = ?c.meta.last_log_id,
                "an OM snapshot finished after a newer one; dropped"
            );
            return std::fs::remove_file(tmp).map_err(io_err("removing", tmp));
        }
        let (name, path) = self.fresh("snapshot", "bin");
        std::fs::rename(tmp, &path).map_err(io_err("renaming to", &path))?;
        self.sync_dir()?;
        let current = Current {
            meta: meta.clone(),
            file: name.clone(),
        };
        let json = serde_json::to_vec(&current)
            .map_err(|e| OmError::Internal(format!("encoding the snapshot meta: {e}")))?;
        let (_, tmp_current) = self.fresh("current", "tmp");
        let mut f = File::create_new(&tmp_current).map_err(io_err("creating", &tmp_current))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(io_err("writing", &tmp_current))?;
        let current_path = self.dir.join(CURRENT);
        std::fs::rename(&tmp_current, &current_path)
            .map_err(io_err("renaming to", &current_path))?;
        self.sync_dir()?;
        for entry in std::fs::read_dir(&self.dir).map_err(io_err("listing", &self.dir))? {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let old = entry.file_name();
            let old = old.to_string_lossy();
            if old.starts_with("snapshot-") && old.ends_with(".bin") && old != name {
                let old = entry.path();
                std::fs::remove_file(&old).map_err(io_err("removing", &old))?;
            }
        }
        Ok(())
    }

    /// Exports the state of `sm` into a new snapshot file and publishes it; returns its meta
    /// and the file, positioned at its start.
    fn build(&self, sm: &StateMachine) -> Result<(SnapshotMeta<NodeId, OmNode>, File), OmError> {
        let (_, tmp) = self.fresh("build", "tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        let written = (|| {
            let mut w = BufWriter::with_capacity(IO_BUFFER, file);
            let (applied, bytes) = sm.export_to(&mut w)?;
            let mut file = w
                .into_inner()
                .map_err(|e| io_err("writing", &tmp)(e.into_error()))?;
            file.sync_all().map_err(io_err("syncing", &tmp))?;
            file.seek(SeekFrom::Start(0))
                .map_err(io_err("seeking", &tmp))?;
            Ok::<_, OmError>((applied, bytes, file))
        })();
        let (applied, bytes, file) = match written {
            Ok(w) => w,
            Err(e) => {
                if let Err(rm) = std::fs::remove_file(&tmp) {
                    tracing::warn!(path = %tmp.display(), error = %rm, "removing a failed snapshot");
                }
                return Err(e);
            }
        };
        let snapshot_id = match applied.last_applied {
            Some(l) => format!("{}-{}-{bytes}", l.leader_id.term, l.index),
            None => format!("0-0-{bytes}"),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id,
        };
        self.publish(&meta, &tmp)?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes, "OM snapshot built");
        Ok((meta, file))
    }

    /// A new file to receive a snapshot into; the one an earlier, abandoned receive used is
    /// removed.
    fn begin_receiving(&self) -> Result<File, OmError> {
        let (_, path) = self.fresh("recv", "tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("creating", &path))?;
        let old = self
            .receiving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(path);
        if let Some(old) = old
            && let Err(e) = std::fs::remove_file(&old)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %old.display(), error = %e, "removing an abandoned snapshot");
        }
        Ok(file)
    }

    /// Installs the received snapshot `file` into `sm` (one transaction), then publishes it.
    fn install(
        &self,
        sm: &StateMachine,
        meta: &SnapshotMeta<NodeId, OmNode>,
        mut file: File,
    ) -> Result<u64, OmError> {
        let what = Path::new("received snapshot");
        file.sync_all().map_err(io_err("syncing", what))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(io_err("seeking", what))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("seeking", what))?;
        let applied = RaftApplied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        sm.install_from(&applied, BufReader::with_capacity(IO_BUFFER, &file), len)?;
        // The file is the installed state: keep it as this node's snapshot (it is the one
        // begin_receiving made, unless openraft handed another; then export the state anew).
        let received = file.metadata().map_err(io_err("reading", what))?;
        let path = self
            .receiving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .filter(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.dev() == received.dev() && m.ino() == received.ino())
            });
        match path {
            Some(p) => self.publish(meta, &p)?,
            None => {
                tracing::warn!("the installed snapshot's file is unknown; exporting the state");
                self.build(sm)?;
            }
        }
        Ok(len)
    }
}

/// The raft side of the OM state machine; cheap to clone.
#[derive(Clone)]
pub struct OmStateMachine {
    sm: Arc<StateMachine>,
    files: Arc<SnapshotFiles>,
}

impl OmStateMachine {
    /// Keeps its snapshots in `snapshot_dir` (see [`SNAPSHOT_DIR`]).
    pub fn open(sm: Arc<StateMachine>, snapshot_dir: &Path) -> Result<Self, OmError> {
        Ok(OmStateMachine {
            sm,
            files: Arc::new(SnapshotFiles::open(snapshot_dir)?),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        verb: ErrorVerb,
        f: impl FnOnce(&StateMachine, &SnapshotFiles) -> Result<T, OmError> + Send + 'static,
    ) -> SResult<T> {
        let (sm, files) = (self.sm.clone(), self.files.clone());
        tokio::task::spawn_blocking(move || f(&sm, &files))
            .await
            .map_err(|e| storage_error(verb, ErrorSubject::StateMachine, e))?
            .map_err(|e| storage_error(verb, ErrorSubject::StateMachine, e))
    }
}

fn snapshot(meta: SnapshotMeta<NodeId, OmNode>, file: File) -> Snapshot<TypeConfig> {
    Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for OmStateMachine {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let (meta, file) = self
            .run(ErrorVerb::Write, |sm, files| files.build(sm))
            .await?;
        Ok(snapshot(meta, file))
    }
}

impl RaftStateMachine<TypeConfig> for OmStateMachine {
    type SnapshotBuilder = OmStateMachine;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, OmNode>)> {
        let a = self.run(ErrorVerb::Read, |sm, _| sm.raft_applied()).await?;
        Ok((a.last_applied, a.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<Vec<OmResponse>>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.run(ErrorVerb::Write, move |sm, _| sm.apply_entries(entries))
            .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<tokio::fs::File>> {
        let file = self
            .run(ErrorVerb::Write, |_, files| files.begin_receiving())
            .await?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, OmNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> SResult<()> {
        let file = snapshot.into_std().await;
        let m = meta.clone();
        let bytes = self
            .run(ErrorVerb::Write, move |sm, files| {
                files.install(sm, &m, file)
            })
            .await?;
        tracing::info!(last_log_id = ?meta.last_log_id, bytes, "OM snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        let current = self
            .run(ErrorVerb::Read, |_, files| files.current())
            .await?;
        Ok(current
            .filter(|(meta, _)| meta.last_log_id.is_some())
            .map(|(meta, file)| snapshot(meta, file)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use openraft::{CommittedLeaderId, EntryPayload};
    use redb::ReadableDatabase;

    use super::*;
    use crate::state_machine::tests::script;
    use crate::store::{KEYS, key_key};

    /// The test script's namespace plus `extra` keys (copies of a real key record), with a
    /// raft log id: `(term, index)` = (2, script length + 1).
    fn namespace(dir: &Path, extra: usize) -> StateMachine {
        let sm = StateMachine::open(dir).expect("open");
        for (i, c) in script().iter().enumerate() {
            sm.apply(i as u64 + 1, c).expect("apply");
        }
        let record = {
            let txn = sm.db().begin_read().expect("read");
            let t = txn.open_table(KEYS).expect("keys");
            let v = t.get(key_key("vol", "bkt", "a/1").as_slice()).expect("get");
            v.expect("a/1 exists").value().to_vec()
        };
        let txn = sm.db().begin_write().expect("write");
        {
            let mut t = txn.open_table(KEYS).expect("keys");
            for i in 0..extra {
                let k = key_key("vol", "bkt", &format!("many/{i:08}"));
                t.insert(k.as_slice(), record.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let log_id = LogId::new(CommittedLeaderId::new(2, 1), script().len() as u64 + 1);
        sm.apply_entries(vec![Entry {
            log_id,
            payload: EntryPayload::Blank,
        }])
        .expect("blank entry");
        sm
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_large_namespace_streams_through_snapshot_files() {
        const KEYS_N: usize = 50_000;
        let (d1, d2) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let leader = namespace(d1.path(), KEYS_N);
        let files1 = SnapshotFiles::open(&d1.path().join(SNAPSHOT_DIR)).expect("open");
        assert!(files1.current().expect("current").is_none());

        // Built twice: one snapshot file is kept, named in current.json.
        files1.build(&leader).expect("build");
        let (meta, mut built) = files1.build(&leader).expect("build again");
        let applied = leader.raft_applied().expect("applied");
        assert_eq!(meta.last_log_id, applied.last_applied);
        assert_eq!(meta.last_membership, applied.membership);
        let names = files_in(&files1.dir);
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0], CURRENT);
        assert!(names[1].starts_with("snapshot-") && names[1].ends_with(".bin"));
        let (current_meta, mut current) = files1.current().expect("current").expect("some");
        assert_eq!(current_meta, meta);
        let len = current.metadata().expect("meta").len();
        assert!(len > (KEYS_N * 100) as u64, "{len} bytes");
        assert_eq!(meta.snapshot_id, format!("2-{}-{len}", script().len() + 1));

        // A follower with other state receives it in chunks and installs it.
        let follower = StateMachine::open(d2.path()).expect("open");
        for (i, c) in script()[..4].iter().enumerate() {
            follower.apply(i as u64 + 1, c).expect("apply");
        }
        let files2 = SnapshotFiles::open(&d2.path().join(SNAPSHOT_DIR)).expect("open");
        // An abandoned receive is replaced (its file removed) by the next one.
        files2.begin_receiving().expect("begin");
        let mut recv = files2.begin_receiving().expect("begin");
        assert_eq!(files_in(&files2.dir).len(), 1);
        let mut chunk = vec![0u8; 3 << 20];
        let mut sent = 0;
        loop {
            let n = current.read(&mut chunk).expect("read");
            if n == 0 {
                break;
            }
            recv.write_all(&chunk[..n]).expect("write");
            sent += n as u64;
        }
        assert_eq!(sent, len);
        let installed = files2.install(&follower, &meta, recv).expect("install");
        assert_eq!(installed, len);
        assert_eq!(
            follower.snapshot().expect("snap").dump().expect("dump"),
            leader.snapshot().expect("snap").dump().expect("dump")
        );
        assert_eq!(follower.raft_applied().expect("applied"), applied);
        assert_eq!(
            follower
                .snapshot()
                .expect("snap")
                .counts()
                .expect("counts")
                .keys,
            KEYS_N as u64 + 2
        );
        // The received file is the follower's snapshot now; no temporary file is left.
        let names = files_in(&files2.dir);
        assert_eq!(names.len(), 2, "{names:?}");
        let (m2, mut f2) = files2.current().expect("current").expect("some");
        assert_eq!(m2, meta);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        f2.read_to_end(&mut a).expect("read");
        built.read_to_end(&mut b).expect("read");
        assert_eq!(a, b);

        // A snapshot that finishes after a newer one was published is dropped.
        let older = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 3)),
            ..meta.clone()
        };
        let (_, tmp) = files2.fresh("build", "tmp");
        std::fs::write(&tmp, b"x").expect("write");
        files2.publish(&older, &tmp).expect("publish");
        assert_eq!(files2.current().expect("current").expect("some").0, meta);
        assert_eq!(files_in(&files2.dir), names);
    }

    #[test]
    fn damaged_snapshots_are_refused_without_changing_state() {
        let (d1, d2) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let leader = namespace(d1.path(), 10);
        let mut data = Vec::new();
        let (applied, bytes) = leader.export_to(&mut data).expect("export");
        assert_eq!(bytes, data.len() as u64);
        let follower = namespace(d2.path(), 3);
        let before = follower.snapshot().expect("snap").dump().expect("dump");
        let install = |d: &[u8]| follower.install_from(&applied, d, d.len() as u64);

        assert!(install(&data[..data.len() - 1]).is_err(), "truncated");
        assert!(install(b"OZONE-OM-SNAPSHOT-0\n").is_err(), "other magic");
        // A row claiming a 4 GiB key in a few bytes is refused before it is allocated.
        let mut huge = crate::state_machine::SNAPSHOT_MAGIC.to_vec();
        huge.extend_from_slice(b"\x04keys\xff\xff\xff\xffabc");
        assert!(matches!(install(&huge), Err(OmError::Corrupt { .. })));
        let mut unknown = crate::state_machine::SNAPSHOT_MAGIC.to_vec();
        unknown.extend_from_slice(b"\x04nope\x00\x00\x00\x01k\x00\x00\x00\x01v");
        assert!(install(&unknown).is_err(), "unknown table");
        // Claiming more bytes than the reader has.
        assert!(
            follower
                .install_from(&applied, data.as_slice(), data.len() as u64 + 1)
                .is_err()
        );
        assert_eq!(
            follower.snapshot().expect("snap").dump().expect("dump"),
            before
        );
        install(&data).expect("install");
        assert_eq!(
            follower.snapshot().expect("snap").dump().expect("dump"),
            leader.snapshot().expect("snap").dump().expect("dump")
        );
    }
}
