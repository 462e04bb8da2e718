//! openraft's state machine ([`Machine`]) over a role's [`StateStore`]: applies committed
//! batches, and makes, keeps and installs snapshots as files.
//!
//! The role keeps its state and the last applied log id and membership ([`Applied`]) in its own
//! database and says how to apply entries, export its state to a writer and install it from a
//! reader ([`StateStore`]); this module does the rest. A snapshot is the role's state itself
//! (OM: the namespace, exported from one redb read transaction, as Ozone's OM snapshot is its
//! RocksDB) written through a buffer into a file of `<db dir>/snapshot/` ([`SNAPSHOT_DIR`]),
//! fsynced, then published: renamed to
//! `snapshot-<n>.bin` and named with its meta (last log id, membership) in `current.json`
//! (written to a temporary file, fsynced and renamed over), after which older snapshot files are
//! removed. [`RaftStateMachine::get_current_snapshot`] opens the published file; openraft's
//! chunked sender reads it `snapshot_max_chunk_size` bytes at a time, so neither side holds
//! the namespace in memory.
//!
//! A follower writes the chunks into a `recv-<n>.tmp` file of the same directory; installing
//! streams it into the role's state (OM: its rows into the tables in one write transaction,
//! replacing them all), then
//! publishes the received file as its current snapshot. Publishing never replaces a snapshot
//! with an older one (a build and an install may finish in either order).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
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

use crate::{Entry, Error, NodeId, Peer, Role, TypeConfig, storage_error};

type SResult<T> = Result<T, StorageError<NodeId>>;

/// The last applied raft log id and the membership in effect, which the role stores with its
/// state (as JSON: OM in `om.db`'s `raft_meta` table) and a snapshot carries as its meta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, Peer>,
}

/// The responses to a batch of entries: one list per entry, one response per command.
pub type Responses<R> = Vec<Vec<<R as Role>::Response>>;

/// What a role's state machine does for raft. Calls come on blocking threads, one at a time
/// for apply and install; an export may run beside an apply (it reads a consistent cut).
pub trait StateStore: Send + Sync + 'static {
    type Role: Role;
    type Error: std::error::Error + Send + Sync + 'static;

    /// The last applied log id and membership.
    fn applied(&self) -> Result<Applied, Self::Error>;

    /// Applies committed entries in order, durably (at least the last), storing each one's log
    /// id (and a membership entry's membership) with the state; answers one response per
    /// command of each normal entry (one per blank or membership entry too: openraft expects
    /// a response per entry).
    fn apply_batch(
        &self,
        entries: Vec<Entry<Self::Role>>,
    ) -> Result<Responses<Self::Role>, Self::Error>;

    /// Writes the whole state to `out` from a consistent cut; returns the applied log id and
    /// membership of that cut and the bytes written. The caller flushes and syncs `out`.
    fn export(&self, out: &mut dyn Write) -> Result<(Applied, u64), Self::Error>;

    /// Replaces the whole state with what [`Self::export`] wrote (`len` bytes of `input`) and
    /// records `applied`; all or nothing. A damaged snapshot is an error and changes nothing.
    fn install(&self, applied: &Applied, input: &mut dyn Read, len: u64)
    -> Result<(), Self::Error>;
}

fn state_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::State(Box::new(e))
}

/// The snapshot directory under the role's db dir (Ozone's `ozone.om.ratis.snapshot.dir`
/// default).
pub const SNAPSHOT_DIR: &str = "snapshot";

/// The file naming the published snapshot.
const CURRENT: &str = "current.json";

/// Write buffer of a snapshot being built, read buffer of one being installed.
const IO_BUFFER: usize = 1 << 20;

/// What `current.json` holds: the published snapshot's meta and file name.
#[derive(Serialize, Deserialize)]
struct Current {
    meta: Meta,
    file: String,
}

/// A snapshot's meta.
type Meta = SnapshotMeta<NodeId, Peer>;

/// The snapshot files of one node.
pub(crate) struct SnapshotFiles {
    dir: PathBuf,
    /// Next number for a file name (starts at the clock, skips names that exist).
    seq: AtomicU64,
    /// Serializes publishing and reading `current.json`.
    publish: Mutex<()>,
    /// The file the snapshot being received is written to.
    receiving: Mutex<Option<PathBuf>>,
}

fn io_err(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{context} {}", path.display());
    move |e| Error::io(context, e)
}

impl SnapshotFiles {
    /// Opens (creates) `dir`, removing the temporary files an interrupted build or receive
    /// left.
    fn open(dir: &Path) -> Result<Self, Error> {
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

    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", &self.dir))
    }

    fn read_current(&self) -> Result<Option<Current>, Error> {
        let path = self.dir.join(CURRENT);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Corrupt {
                path: path.display().to_string(),
                message: e.to_string(),
            })
    }

    /// The published snapshot, opened for reading.
    fn current(&self) -> Result<Option<(Meta, File)>, Error> {
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
                tracing::warn!(path = %path.display(), "the published snapshot file is gone");
                Ok(None)
            }
            Err(e) => Err(io_err("opening", &path)(e)),
        }
    }

    /// Makes the complete, fsynced file at `tmp` the current snapshot with `meta`, unless the
    /// current one is newer (then `tmp` is removed: open handles keep reading it). Removes the
    /// older snapshot files.
    fn publish(&self, meta: &Meta, tmp: &Path) -> Result<(), Error> {
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
                "a snapshot finished after a newer one; dropped"
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
            .map_err(|e| Error::Internal(format!("encoding the snapshot meta: {e}")))?;
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
    fn build<S: StateStore>(&self, sm: &S) -> Result<(Meta, File), Error> {
        let (_, tmp) = self.fresh("build", "tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_err("creating", &tmp))?;
        let written = (|| {
            let mut w = BufWriter::with_capacity(IO_BUFFER, file);
            let (applied, bytes) = sm.export(&mut w).map_err(state_err)?;
            let mut file = w
                .into_inner()
                .map_err(|e| io_err("writing", &tmp)(e.into_error()))?;
            file.sync_all().map_err(io_err("syncing", &tmp))?;
            file.seek(SeekFrom::Start(0))
                .map_err(io_err("seeking", &tmp))?;
            Ok::<_, Error>((applied, bytes, file))
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
        tracing::info!(role = S::Role::NAME, last_log_id = ?meta.last_log_id, bytes, "snapshot built");
        Ok((meta, file))
    }

    /// A new file to receive a snapshot into; the one an earlier, abandoned receive used is
    /// removed.
    fn begin_receiving(&self) -> Result<File, Error> {
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
    fn install<S: StateStore>(&self, sm: &S, meta: &Meta, mut file: File) -> Result<u64, Error> {
        let what = Path::new("received snapshot");
        file.sync_all().map_err(io_err("syncing", what))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(io_err("seeking", what))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("seeking", what))?;
        let applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let mut input = BufReader::with_capacity(IO_BUFFER, &file);
        sm.install(&applied, &mut input, len).map_err(state_err)?;
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

/// openraft's state machine over the role's store `S`; cheap to clone.
pub struct Machine<S> {
    sm: Arc<S>,
    files: Arc<SnapshotFiles>,
}

impl<S> Clone for Machine<S> {
    fn clone(&self) -> Self {
        Machine {
            sm: self.sm.clone(),
            files: self.files.clone(),
        }
    }
}

impl<S: StateStore> Machine<S> {
    /// Keeps its snapshots in `snapshot_dir` (see [`SNAPSHOT_DIR`]); removes the temporary
    /// files an interrupted build or receive left there.
    pub fn open(sm: Arc<S>, snapshot_dir: &Path) -> Result<Self, Error> {
        Ok(Machine {
            sm,
            files: Arc::new(SnapshotFiles::open(snapshot_dir)?),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        verb: ErrorVerb,
        f: impl FnOnce(&S, &SnapshotFiles) -> Result<T, Error> + Send + 'static,
    ) -> SResult<T> {
        let (sm, files) = (self.sm.clone(), self.files.clone());
        tokio::task::spawn_blocking(move || f(&sm, &files))
            .await
            .map_err(|e| storage_error(verb, ErrorSubject::StateMachine, e))?
            .map_err(|e| storage_error(verb, ErrorSubject::StateMachine, e))
    }
}

fn snapshot<R: Role>(meta: Meta, file: File) -> Snapshot<TypeConfig<R>> {
    Snapshot {
        meta,
        snapshot: Box::new(tokio::fs::File::from_std(file)),
    }
}

impl<S: StateStore> RaftSnapshotBuilder<TypeConfig<S::Role>> for Machine<S> {
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig<S::Role>>> {
        let (meta, file) = self
            .run(ErrorVerb::Write, |sm, files| files.build(sm))
            .await?;
        // Exporting millions of rows leaves freed memory in glibc's arenas (about 30 MiB per
        // snapshot on an OM leader, measured): give it back.
        ozone_common::heap::trim("snapshot build");
        Ok(snapshot::<S::Role>(meta, file))
    }
}

impl<S: StateStore> RaftStateMachine<TypeConfig<S::Role>> for Machine<S> {
    type SnapshotBuilder = Machine<S>;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Peer>)> {
        let a = self
            .run(ErrorVerb::Read, |sm, _| sm.applied().map_err(state_err))
            .await?;
        Ok((a.last_applied, a.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Responses<S::Role>>
    where
        I: IntoIterator<Item = Entry<S::Role>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<S::Role>> = entries.into_iter().collect();
        self.run(ErrorVerb::Write, move |sm, _| {
            sm.apply_batch(entries).map_err(state_err)
        })
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
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> SResult<()> {
        let file = snapshot.into_std().await;
        let m = meta.clone();
        let bytes = self
            .run(ErrorVerb::Write, move |sm, files| {
                files.install(sm, &m, file)
            })
            .await?;
        tracing::info!(role = S::Role::NAME, last_log_id = ?meta.last_log_id, bytes, "snapshot installed");
        ozone_common::heap::trim("snapshot install");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig<S::Role>>>> {
        let current = self
            .run(ErrorVerb::Read, |_, files| files.current())
            .await?;
        Ok(current
            .filter(|(meta, _)| meta.last_log_id.is_some())
            .map(|(meta, file)| snapshot::<S::Role>(meta, file)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use openraft::{CommittedLeaderId, EntryPayload, Membership};

    use super::*;

    /// A toy role: a map of strings; a command sets a key.
    pub(crate) enum Kv {}

    impl Role for Kv {
        const NAME: &'static str = "KV";
        const NODE_ROLE: ozone_common::tls::NodeRole = ozone_common::tls::NodeRole::Om;
        const MAX_BATCH: usize = 8;
        type Command = (String, String);
        type Response = Option<String>;
    }

    /// The toy role's state: the map and what was applied, exported as JSON.
    #[derive(Default)]
    pub(crate) struct KvStore(Mutex<(Applied, BTreeMap<String, String>)>);

    impl KvStore {
        pub(crate) fn map(&self) -> BTreeMap<String, String> {
            self.0.lock().expect("lock").1.clone()
        }
    }

    impl StateStore for KvStore {
        type Role = Kv;
        type Error = std::io::Error;

        fn applied(&self) -> Result<Applied, std::io::Error> {
            Ok(self.0.lock().expect("lock").0.clone())
        }

        fn apply_batch(
            &self,
            entries: Vec<Entry<Kv>>,
        ) -> Result<Vec<Vec<Option<String>>>, std::io::Error> {
            let mut s = self.0.lock().expect("lock");
            let mut out = Vec::new();
            for e in entries {
                s.0.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Normal(crate::CommandBatch(cmds)) => {
                        out.push(cmds.into_iter().map(|(k, v)| s.1.insert(k, v)).collect())
                    }
                    EntryPayload::Membership(m) => {
                        s.0.membership = StoredMembership::new(Some(e.log_id), m);
                        out.push(vec![None]);
                    }
                    EntryPayload::Blank => out.push(vec![None]),
                }
            }
            Ok(out)
        }

        fn export(&self, out: &mut dyn Write) -> Result<(Applied, u64), std::io::Error> {
            let s = self.0.lock().expect("lock");
            let bytes = serde_json::to_vec(&s.1)?;
            out.write_all(&bytes)?;
            Ok((s.0.clone(), bytes.len() as u64))
        }

        fn install(
            &self,
            applied: &Applied,
            input: &mut dyn Read,
            len: u64,
        ) -> Result<(), std::io::Error> {
            let mut bytes = Vec::new();
            input.take(len).read_to_end(&mut bytes)?;
            if bytes.len() as u64 != len {
                return Err(std::io::Error::other("snapshot shorter than its length"));
            }
            let map = serde_json::from_slice(&bytes)?;
            *self.0.lock().expect("lock") = (applied.clone(), map);
            Ok(())
        }
    }

    fn store(keys: usize, index: u64) -> KvStore {
        let s = KvStore::default();
        let membership = Membership::new(
            vec![std::collections::BTreeSet::from([1])],
            BTreeMap::from([(1, Peer::default())]),
        );
        let log_id = LogId::new(CommittedLeaderId::new(2, 1), index);
        let entries = vec![
            Entry::<Kv> {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
                payload: EntryPayload::Membership(membership),
            },
            Entry::<Kv> {
                log_id,
                payload: EntryPayload::Normal(crate::CommandBatch(
                    (0..keys)
                        .map(|i| (format!("k{i:06}"), format!("v{i}")))
                        .collect(),
                )),
            },
        ];
        s.apply_batch(entries).expect("apply");
        s
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
    fn snapshots_are_built_sent_in_chunks_installed_and_kept_as_files() {
        let (d1, d2) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let leader = store(20_000, 7);
        let files1 = SnapshotFiles::open(d1.path()).expect("open");
        assert!(files1.current().expect("current").is_none());

        // Built twice: one snapshot file is kept, named in current.json.
        files1.build(&leader).expect("build");
        let (meta, mut built) = files1.build(&leader).expect("build again");
        let applied = leader.applied().expect("applied");
        assert_eq!(meta.last_log_id, applied.last_applied);
        assert_eq!(meta.last_membership, applied.membership);
        let names = files_in(d1.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0], CURRENT);
        assert!(names[1].starts_with("snapshot-") && names[1].ends_with(".bin"));
        let (current_meta, mut current) = files1.current().expect("current").expect("some");
        assert_eq!(current_meta, meta);
        let len = current.metadata().expect("meta").len();
        assert_eq!(meta.snapshot_id, format!("2-7-{len}"));

        // A follower with other state receives it in chunks and installs it.
        let follower = store(3, 2);
        let files2 = SnapshotFiles::open(d2.path()).expect("open");
        // An abandoned receive is replaced (its file removed) by the next one.
        files2.begin_receiving().expect("begin");
        let mut recv = files2.begin_receiving().expect("begin");
        assert_eq!(files_in(d2.path()).len(), 1);
        let mut chunk = vec![0u8; 64 << 10];
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
        assert_eq!(
            files2.install(&follower, &meta, recv).expect("install"),
            len
        );
        assert_eq!(follower.map(), leader.map());
        assert_eq!(follower.applied().expect("applied"), applied);
        // The received file is the follower's snapshot now; no temporary file is left.
        let names = files_in(d2.path());
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
        assert_eq!(files_in(d2.path()), names);

        // A damaged snapshot is refused: the state and the published snapshot stay.
        let mut bad = files2.begin_receiving().expect("begin");
        bad.write_all(b"{\"k\":").expect("write");
        let newer = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 9)),
            ..meta.clone()
        };
        assert!(matches!(
            files2.install(&follower, &newer, bad),
            Err(Error::State(_))
        ));
        assert_eq!(follower.map(), leader.map());
        assert_eq!(files2.current().expect("current").expect("some").0, meta);

        // Temporary files of an interrupted build or receive are removed on open.
        drop(files2);
        SnapshotFiles::open(d2.path()).expect("reopen");
        assert_eq!(files_in(d2.path()), names);
    }
}
