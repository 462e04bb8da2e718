//! Containers on local disk and the set of them a datanode holds.
//!
//! Layout of one container, `<dir>/containers/<id>/`:
//! - `chunks/<localId>.block`: the block's bytes, each chunk written at its offset;
//! - `metadata/container.json`: id and state (OPEN, CLOSED, UNHEALTHY);
//! - `metadata/blocks.redb`: committed blocks, localId -> prost-encoded `hdds::BlockData`.
//!
//! A container is built in a temporary directory and renamed into place, so a crash never leaves
//! a half-made one. Chunk I/O uses positional reads and writes on per-request file handles; the
//! only lock on that path is the container's own state lock, shared by all writers and taken
//! exclusively just to commit a block or change the state, so that a CLOSED container and a
//! committed block never change again. All functions here block: call them from
//! `spawn_blocking`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ozone_common::fsync_dir;
use ozone_proto::hdds::{BlockData, BlockId};
use ozone_proto::scm::ContainerReplicaReport;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::DatanodeError;

/// Committed blocks of a container: localId -> prost-encoded `BlockData`.
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
/// redb page cache per container; block metadata is small and mostly read once.
const DB_CACHE_BYTES: usize = 4 * 1024 * 1024;
const CONTAINER_FILE: &str = "container.json";
const DB_FILE: &str = "blocks.redb";

/// Lifecycle state of a container replica, as reported to SCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerState {
    Open,
    Closed,
    Unhealthy,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Open => "OPEN",
            ContainerState::Closed => "CLOSED",
            ContainerState::Unhealthy => "UNHEALTHY",
        }
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata/container.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ContainerFile {
    id: u64,
    state: ContainerState,
    #[serde(default)]
    created_ms: u64,
}

/// One container replica on disk.
pub struct Container {
    id: u64,
    dir: PathBuf,
    db: Database,
    state: RwLock<ContainerState>,
    created_ms: u64,
    used_bytes: AtomicU64,
    block_count: AtomicU64,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DatanodeError {
    let context = context.into();
    move |e| DatanodeError::io(context, e)
}

/// Writes `value` as JSON to `path` atomically and durably (temp file, fsync, rename, fsync dir).
fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), DatanodeError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| DatanodeError::BadFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        fsync_dir(dir)
    };
    write().map_err(io_err(format!("writing {}", path.display())))
}

impl Container {
    /// Creates container `id` under `root` (`<dir>/containers`) durably and opens it, OPEN.
    fn create(root: &Path, id: u64) -> Result<Container, DatanodeError> {
        let final_dir = root.join(id.to_string());
        let tmp = root.join(format!(".tmp-{id}-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            let chunks = tmp.join("chunks");
            let metadata = tmp.join("metadata");
            std::fs::create_dir_all(&chunks)
                .map_err(io_err(format!("creating {}", chunks.display())))?;
            std::fs::create_dir_all(&metadata)
                .map_err(io_err(format!("creating {}", metadata.display())))?;
            write_json_atomic(
                &metadata.join(CONTAINER_FILE),
                &ContainerFile {
                    id,
                    state: ContainerState::Open,
                    created_ms: ozone_common::now_ms(),
                },
            )?;
            let db = Database::builder()
                .set_cache_size(DB_CACHE_BYTES)
                .create(metadata.join(DB_FILE))
                .map_err(|e| DatanodeError::metadata(id, e))?;
            let txn = db
                .begin_write()
                .map_err(|e| DatanodeError::metadata(id, e))?;
            txn.open_table(BLOCKS)
                .map_err(|e| DatanodeError::metadata(id, e))?;
            txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
            drop(db);
            for d in [&chunks, &metadata, &tmp] {
                fsync_dir(d).map_err(io_err(format!("syncing {}", d.display())))?;
            }
            std::fs::rename(&tmp, &final_dir)
                .map_err(io_err(format!("renaming {} into place", tmp.display())))?;
            fsync_dir(root).map_err(io_err(format!("syncing {}", root.display())))
        })();
        if let Err(e) = result {
            if let Err(cleanup) = std::fs::remove_dir_all(&tmp) {
                tracing::warn!(path = %tmp.display(), error = %cleanup, "cannot remove a failed container creation");
            }
            return Err(e);
        }
        tracing::info!(container = id, "created container");
        Container::load(&final_dir, id)
    }

    /// Opens container `id` stored in `dir`, counting its committed blocks.
    fn load(dir: &Path, id: u64) -> Result<Container, DatanodeError> {
        let json_path = dir.join("metadata").join(CONTAINER_FILE);
        let text = std::fs::read(&json_path)
            .map_err(io_err(format!("reading {}", json_path.display())))?;
        let file: ContainerFile =
            serde_json::from_slice(&text).map_err(|e| DatanodeError::BadFile {
                path: json_path.clone(),
                message: e.to_string(),
            })?;
        if file.id != id {
            return Err(DatanodeError::BadFile {
                path: json_path,
                message: format!("names container {} but lives in directory {id}", file.id),
            });
        }
        let path = dir.join("metadata").join(DB_FILE);
        let db = ozone_common::db::open_waiting(|| {
            Database::builder()
                .set_cache_size(DB_CACHE_BYTES)
                .open(&path)
        })
        .map_err(|e| DatanodeError::metadata(id, e))?;
        let container = Container {
            id,
            dir: dir.to_path_buf(),
            db,
            state: RwLock::new(file.state),
            created_ms: file.created_ms,
            used_bytes: AtomicU64::new(0),
            block_count: AtomicU64::new(0),
        };
        let (mut used, mut count, mut undecodable) = (0u64, 0u64, 0u64);
        let txn = container
            .db
            .begin_read()
            .map_err(|e| DatanodeError::metadata(id, e))?;
        let table = txn
            .open_table(BLOCKS)
            .map_err(|e| DatanodeError::metadata(id, e))?;
        for entry in table.iter().map_err(|e| DatanodeError::metadata(id, e))? {
            let (_, value) = entry.map_err(|e| DatanodeError::metadata(id, e))?;
            match BlockData::decode(value.value()) {
                Ok(block) => {
                    used += block.size;
                    count += 1;
                }
                Err(_) => undecodable += 1,
            }
        }
        drop(table);
        drop(txn);
        container.used_bytes.store(used, Ordering::Relaxed);
        container.block_count.store(count, Ordering::Relaxed);
        if undecodable > 0 {
            tracing::error!(
                container = id,
                undecodable,
                "block metadata entries cannot be decoded; container marked UNHEALTHY"
            );
            *container.write_state() = ContainerState::Unhealthy;
        }
        Ok(container)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn state(&self) -> ContainerState {
        *self.read_state()
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    pub fn block_count(&self) -> u64 {
        self.block_count.load(Ordering::Relaxed)
    }

    fn read_state(&self) -> RwLockReadGuard<'_, ContainerState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, ContainerState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn report(&self) -> ContainerReplicaReport {
        ContainerReplicaReport {
            container_id: self.id,
            state: self.state().as_str().to_string(),
            used_bytes: self.used_bytes(),
            block_count: self.block_count(),
        }
    }

    /// Every committed block, in local id order.
    pub fn blocks(&self) -> Result<Vec<BlockData>, DatanodeError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        let table = txn
            .open_table(BLOCKS)
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        let mut out = Vec::new();
        for entry in table
            .iter()
            .map_err(|e| DatanodeError::metadata(self.id, e))?
        {
            let (key, value) = entry.map_err(|e| DatanodeError::metadata(self.id, e))?;
            let block = BlockData::decode(value.value()).map_err(|e| DatanodeError::BadFile {
                path: self.dir.join("metadata").join(DB_FILE),
                message: format!("block {}: {e}", key.value()),
            })?;
            out.push(block);
        }
        Ok(out)
    }

    /// Deletes blocks (SCM's deleted-block log): their metadata goes in one durable commit,
    /// then their files. Blocks this replica does not have are fine (deleting is idempotent);
    /// an uncommitted block file of a released block is removed too. Returns the bytes freed.
    pub fn delete_blocks(&self, local_ids: &[u64]) -> Result<u64, DatanodeError> {
        let (mut freed, mut removed) = (0u64, 0u64);
        {
            let _state = self.write_state();
            let txn = self
                .db
                .begin_write()
                .map_err(|e| DatanodeError::metadata(self.id, e))?;
            {
                let mut table = txn
                    .open_table(BLOCKS)
                    .map_err(|e| DatanodeError::metadata(self.id, e))?;
                for id in local_ids {
                    let old = table
                        .remove(*id)
                        .map_err(|e| DatanodeError::metadata(self.id, e))?
                        .map(|v| BlockData::decode(v.value()).map(|b| b.size));
                    match old {
                        Some(Ok(size)) => {
                            freed += size;
                            removed += 1;
                        }
                        // Undecodable metadata was never counted in the totals.
                        Some(Err(_)) => {}
                        None => {}
                    }
                }
            }
            txn.commit()
                .map_err(|e| DatanodeError::metadata(self.id, e))?;
            self.used_bytes.fetch_sub(
                freed.min(self.used_bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            self.block_count.fetch_sub(
                removed.min(self.block_count.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
        }
        for id in local_ids {
            let path = self.block_path(*id);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DatanodeError::io(format!("removing {}", path.display()), e)),
            }
        }
        let chunks = self.dir.join("chunks");
        fsync_dir(&chunks).map_err(io_err(format!("syncing {}", chunks.display())))?;
        Ok(freed)
    }

    pub fn block_path(&self, local_id: u64) -> PathBuf {
        self.dir.join("chunks").join(format!("{local_id}.block"))
    }

    /// The committed metadata of block `local_id`, if any.
    pub fn get_block(&self, local_id: u64) -> Result<Option<BlockData>, DatanodeError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        let table = txn
            .open_table(BLOCKS)
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        let Some(value) = table
            .get(local_id)
            .map_err(|e| DatanodeError::metadata(self.id, e))?
        else {
            return Ok(None);
        };
        BlockData::decode(value.value())
            .map(Some)
            .map_err(|e| DatanodeError::BadFile {
                path: self.dir.join("metadata").join(DB_FILE),
                message: format!("block {local_id}: {e}"),
            })
    }

    fn is_committed(&self, local_id: u64) -> Result<bool, DatanodeError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        let table = txn
            .open_table(BLOCKS)
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        Ok(table
            .get(local_id)
            .map_err(|e| DatanodeError::metadata(self.id, e))?
            .is_some())
    }

    /// Fails unless the container takes writes of a new (uncommitted) block `local_id`.
    pub fn check_writable(&self, local_id: u64) -> Result<(), DatanodeError> {
        let state = self.read_state();
        self.check_writable_locked(*state, local_id)
    }

    fn check_writable_locked(
        &self,
        state: ContainerState,
        local_id: u64,
    ) -> Result<(), DatanodeError> {
        if state != ContainerState::Open {
            return Err(DatanodeError::ContainerNotOpen { id: self.id, state });
        }
        if self.is_committed(local_id)? {
            return Err(DatanodeError::BlockCommitted(BlockId {
                container_id: self.id,
                local_id,
            }));
        }
        Ok(())
    }

    /// Opens (creating if needed) the block file for positional writes.
    pub fn open_block_for_write(&self, local_id: u64) -> Result<File, DatanodeError> {
        let path = self.block_path(local_id);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))
    }

    /// Opens a committed block's file for reading; a missing file is lost data.
    pub fn open_block_for_read(&self, local_id: u64) -> Result<File, DatanodeError> {
        let path = self.block_path(local_id);
        File::open(&path).map_err(|e| {
            let block_id = BlockId {
                container_id: self.id,
                local_id,
            };
            if e.kind() == std::io::ErrorKind::NotFound {
                DatanodeError::DataLoss {
                    block_id,
                    message: format!("block file {} is missing", path.display()),
                }
            } else {
                DatanodeError::io(format!("opening {}", path.display()), e)
            }
        })
    }

    /// Writes `data` at `offset` of block `local_id`'s file, while the container is OPEN and
    /// the block uncommitted (checked under the state lock, so a commit or close cannot slip in).
    pub fn write_chunk(
        &self,
        local_id: u64,
        file: &File,
        offset: u64,
        data: &[u8],
    ) -> Result<(), DatanodeError> {
        let state = self.read_state();
        self.check_writable_locked(*state, local_id)?;
        file.write_all_at(data, offset).map_err(io_err(format!(
            "writing {} bytes at {offset} of {}",
            data.len(),
            self.block_path(local_id).display()
        )))
    }

    /// Makes block `block` durable: fsyncs its file (at least `size` long) and directory, then
    /// records it in the block table with a durable commit. Committing the same block data again
    /// is a no-op; different data for a committed block is refused.
    pub fn commit_block(&self, block: &BlockData, block_id: BlockId) -> Result<(), DatanodeError> {
        let path = self.block_path(block_id.local_id);
        let file = match OpenOptions::new().write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && block.size == 0 => {
                self.open_block_for_write(block_id.local_id)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DatanodeError::BlockIncomplete {
                    block_id,
                    expected: block.size,
                    actual: 0,
                });
            }
            Err(e) => return Err(DatanodeError::io(format!("opening {}", path.display()), e)),
        };
        let actual = file
            .metadata()
            .map_err(io_err(format!("inspecting {}", path.display())))?
            .len();
        if actual < block.size {
            return Err(DatanodeError::BlockIncomplete {
                block_id,
                expected: block.size,
                actual,
            });
        }
        file.sync_all()
            .map_err(io_err(format!("syncing {}", path.display())))?;
        let chunks = self.dir.join("chunks");
        fsync_dir(&chunks).map_err(io_err(format!("syncing {}", chunks.display())))?;

        let encoded = block.encode_to_vec();
        let state = self.write_state();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        {
            let mut table = txn
                .open_table(BLOCKS)
                .map_err(|e| DatanodeError::metadata(self.id, e))?;
            let existing = table
                .get(block_id.local_id)
                .map_err(|e| DatanodeError::metadata(self.id, e))?
                .map(|v| v.value().to_vec());
            if let Some(existing) = existing {
                return if existing == encoded {
                    Ok(())
                } else {
                    Err(DatanodeError::BlockCommitted(block_id))
                };
            }
            if *state != ContainerState::Open {
                return Err(DatanodeError::ContainerNotOpen {
                    id: self.id,
                    state: *state,
                });
            }
            table
                .insert(block_id.local_id, encoded.as_slice())
                .map_err(|e| DatanodeError::metadata(self.id, e))?;
        }
        txn.commit()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        drop(state);
        self.used_bytes.fetch_add(block.size, Ordering::Relaxed);
        self.block_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Changes the state durably (container.json is rewritten before the change is visible).
    pub fn set_state(&self, new: ContainerState) -> Result<(), DatanodeError> {
        let mut state = self.write_state();
        if *state == new {
            return Ok(());
        }
        write_json_atomic(
            &self.dir.join("metadata").join(CONTAINER_FILE),
            &ContainerFile {
                id: self.id,
                state: new,
                created_ms: self.created_ms,
            },
        )?;
        tracing::info!(container = self.id, from = %*state, to = %new, "container state changed");
        *state = new;
        Ok(())
    }
}

/// A container replica being copied in from another datanode: built in a temporary directory
/// and renamed into place only once every block is on disk and verified, so a crash or a failed
/// copy never leaves a partial container. Dropping it unfinished removes the directory.
pub struct Import {
    id: u64,
    root: PathBuf,
    tmp: PathBuf,
    blocks: Vec<BlockData>,
    done: bool,
}

impl Import {
    fn begin(root: &Path, id: u64) -> Result<Import, DatanodeError> {
        let tmp = root.join(format!(".tmp-import-{id}-{}", uuid::Uuid::new_v4()));
        for d in [tmp.join("chunks"), tmp.join("metadata")] {
            std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        Ok(Import {
            id,
            root: root.to_path_buf(),
            tmp,
            blocks: Vec::new(),
            done: false,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Creates the file of block `local_id` for positional writes.
    pub fn create_block_file(&self, local_id: u64) -> Result<File, DatanodeError> {
        let path = self.tmp.join("chunks").join(format!("{local_id}.block"));
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("creating {}", path.display())))
    }

    /// Records a fully written (and verified) block; its file is synced now.
    pub fn add_block(
        &mut self,
        block: BlockData,
        file: Option<&File>,
    ) -> Result<(), DatanodeError> {
        if let Some(f) = file {
            f.sync_all().map_err(io_err(format!(
                "syncing an imported block of container {}",
                self.id
            )))?;
        }
        self.blocks.push(block);
        Ok(())
    }

    /// Writes the block table and `container.json` (CLOSED), syncs everything and renames the
    /// container into place.
    fn commit(mut self) -> Result<Container, DatanodeError> {
        let id = self.id;
        let metadata = self.tmp.join("metadata");
        write_json_atomic(
            &metadata.join(CONTAINER_FILE),
            &ContainerFile {
                id,
                state: ContainerState::Closed,
                created_ms: ozone_common::now_ms(),
            },
        )?;
        let db = Database::builder()
            .set_cache_size(DB_CACHE_BYTES)
            .create(metadata.join(DB_FILE))
            .map_err(|e| DatanodeError::metadata(id, e))?;
        let txn = db
            .begin_write()
            .map_err(|e| DatanodeError::metadata(id, e))?;
        {
            let mut table = txn
                .open_table(BLOCKS)
                .map_err(|e| DatanodeError::metadata(id, e))?;
            for b in &self.blocks {
                let local_id = b.block_id.map(|i| i.local_id).unwrap_or_default();
                table
                    .insert(local_id, b.encode_to_vec().as_slice())
                    .map_err(|e| DatanodeError::metadata(id, e))?;
            }
        }
        txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
        drop(db);
        let chunks = self.tmp.join("chunks");
        for d in [&chunks, &metadata, &self.tmp] {
            fsync_dir(d).map_err(io_err(format!("syncing {}", d.display())))?;
        }
        let final_dir = self.root.join(id.to_string());
        std::fs::rename(&self.tmp, &final_dir).map_err(io_err(format!(
            "renaming {} into place",
            self.tmp.display()
        )))?;
        self.done = true;
        fsync_dir(&self.root).map_err(io_err(format!("syncing {}", self.root.display())))?;
        Container::load(&final_dir, id)
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = std::fs::remove_dir_all(&self.tmp)
        {
            tracing::warn!(path = %self.tmp.display(), error = %e, "cannot remove an unfinished container import");
        }
    }
}

/// Every container of a datanode, by id. The map lock is held only to look up or insert.
pub struct ContainerSet {
    root: PathBuf,
    containers: RwLock<HashMap<u64, Arc<Container>>>,
    /// Containers found on disk that could not be opened, with the reason.
    broken: RwLock<HashMap<u64, String>>,
    create_lock: tokio::sync::Mutex<()>,
    stopped: AtomicBool,
}

impl ContainerSet {
    /// Opens every container under `root` (`<dir>/containers`), creating `root` if needed.
    /// A container that cannot be opened is kept aside and reported UNHEALTHY.
    pub fn load(root: &Path) -> Result<ContainerSet, DatanodeError> {
        std::fs::create_dir_all(root).map_err(io_err(format!("creating {}", root.display())))?;
        let mut containers = HashMap::new();
        let mut broken = HashMap::new();
        let entries =
            std::fs::read_dir(root).map_err(io_err(format!("listing {}", root.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("listing {}", root.display())))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.starts_with(".tmp-") {
                tracing::info!(path = %path.display(), "removing an unfinished container creation");
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished container");
                }
                continue;
            }
            let Ok(id) = name.parse::<u64>() else {
                tracing::warn!(path = %path.display(), "ignoring a foreign entry in the containers directory");
                continue;
            };
            match Container::load(&path, id) {
                Ok(c) => {
                    containers.insert(id, Arc::new(c));
                }
                Err(e) => {
                    tracing::error!(container = id, error = %e, "cannot open container; reporting it UNHEALTHY");
                    broken.insert(id, e.to_string());
                }
            }
        }
        tracing::info!(
            containers = containers.len(),
            unhealthy = broken.len(),
            "loaded containers"
        );
        Ok(ContainerSet {
            root: root.to_path_buf(),
            containers: RwLock::new(containers),
            broken: RwLock::new(broken),
            create_lock: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
        })
    }

    /// Container `id`: `ContainerNotFound` or `ContainerUnhealthy` (could not be opened) otherwise.
    pub fn get(&self, id: u64) -> Result<Arc<Container>, DatanodeError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(DatanodeError::ShuttingDown);
        }
        if let Some(c) = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(c.clone());
        }
        if let Some(reason) = self
            .broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Err(DatanodeError::ContainerUnhealthy {
                id,
                reason: reason.clone(),
            });
        }
        Err(DatanodeError::ContainerNotFound(id))
    }

    /// Container `id`, created (OPEN, durably) if this datanode does not have it yet.
    pub async fn get_or_create(&self, id: u64) -> Result<Arc<Container>, DatanodeError> {
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            other => return other,
        }
        let _guard = self.create_lock.lock().await;
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            other => return other,
        }
        let root = self.root.clone();
        let container =
            Arc::new(tokio::task::spawn_blocking(move || Container::create(&root, id)).await??);
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, container.clone());
        Ok(container)
    }

    /// Every open container (not the ones that could not be opened).
    pub fn list(&self) -> Vec<Arc<Container>> {
        let mut out: Vec<_> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Starts importing container `id`; fails if this datanode already has it.
    pub async fn begin_import(&self, id: u64) -> Result<Import, DatanodeError> {
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            Ok(_) | Err(DatanodeError::ContainerUnhealthy { .. }) => {
                return Err(DatanodeError::ContainerExists(id));
            }
            Err(e) => return Err(e),
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || Import::begin(&root, id)).await?
    }

    /// Puts a finished import in place (durably) and serves it.
    pub async fn finish_import(&self, import: Import) -> Result<Arc<Container>, DatanodeError> {
        let id = import.id;
        let _guard = self.create_lock.lock().await;
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            Ok(_) | Err(DatanodeError::ContainerUnhealthy { .. }) => {
                return Err(DatanodeError::ContainerExists(id));
            }
            Err(e) => return Err(e),
        }
        let container = Arc::new(tokio::task::spawn_blocking(move || import.commit()).await??);
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, container.clone());
        tracing::info!(
            container = id,
            blocks = container.block_count(),
            bytes = container.used_bytes(),
            "imported container"
        );
        Ok(container)
    }

    /// Removes container `id` from disk. Without `force`, only a replica that is not OPEN and
    /// holds no block is removed.
    pub async fn delete_container(&self, id: u64, force: bool) -> Result<(), DatanodeError> {
        let _guard = self.create_lock.lock().await;
        let broken = self
            .broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id);
        if !broken {
            let container = self.get(id)?;
            if !force && (container.block_count() > 0 || container.state() == ContainerState::Open)
            {
                return Err(DatanodeError::ContainerNotEmpty {
                    id,
                    blocks: container.block_count(),
                });
            }
        }
        // Moved away first, then forgotten: a failure leaves the container as it was.
        let root = self.root.clone();
        let trash = tokio::task::spawn_blocking(move || {
            let dir = root.join(id.to_string());
            let trash = root.join(format!(".tmp-deleted-{id}-{}", uuid::Uuid::new_v4()));
            std::fs::rename(&dir, &trash)
                .map_err(io_err(format!("moving {} away", dir.display())))?;
            fsync_dir(&root).map_err(io_err(format!("syncing {}", root.display())))?;
            Ok::<_, DatanodeError>(trash)
        })
        .await??;
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.broken
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        tracing::info!(container = id, force, "deleted container replica");
        tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&trash).map_err(io_err(format!("removing {}", trash.display())))
        })
        .await?
    }

    /// Marks container `id` CLOSED (durably). An UNHEALTHY container stays UNHEALTHY.
    pub async fn close_container(&self, id: u64) -> Result<(), DatanodeError> {
        let container = self.get(id)?;
        if container.state() != ContainerState::Open {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || container.set_state(ContainerState::Closed)).await?
    }

    /// One report per container, by id, including the ones that could not be opened.
    pub fn reports(&self) -> Vec<ContainerReplicaReport> {
        let mut reports: Vec<_> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| c.report())
            .collect();
        reports.extend(
            self.broken
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .map(|&id| ContainerReplicaReport {
                    container_id: id,
                    state: ContainerState::Unhealthy.as_str().to_string(),
                    used_bytes: 0,
                    block_count: 0,
                }),
        );
        reports.sort_by_key(|r| r.container_id);
        reports
    }

    /// Refuses further requests and hands over every open container; each one's database
    /// closes when the last handle (the returned one, or an in-flight request's) is dropped.
    pub fn shutdown(&self) -> Vec<Arc<Container>> {
        self.stopped.store(true, Ordering::Release);
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, c)| c)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(local_id: u64, size: u64) -> (BlockData, BlockId) {
        let id = BlockId {
            container_id: 7,
            local_id,
        };
        (
            BlockData {
                block_id: Some(id),
                chunks: vec![],
                size,
            },
            id,
        )
    }

    #[tokio::test]
    async fn containers_are_created_committed_closed_and_reloaded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        assert!(matches!(
            set.get(7),
            Err(DatanodeError::ContainerNotFound(7))
        ));
        let c = set.get_or_create(7).await.expect("create");
        let f = c.open_block_for_write(1).expect("open");
        c.write_chunk(1, &f, 0, b"hello").expect("write");
        let (b, id) = block(1, 5);
        c.commit_block(&b, id).expect("commit");
        c.commit_block(&b, id)
            .expect("same commit again is a no-op");
        assert!(matches!(
            c.commit_block(&block(1, 4).0, id),
            Err(DatanodeError::BlockCommitted(_))
        ));
        assert!(matches!(
            c.write_chunk(1, &f, 5, b"!"),
            Err(DatanodeError::BlockCommitted(_))
        ));
        let (b2, id2) = block(2, 10);
        assert!(matches!(
            c.commit_block(&b2, id2),
            Err(DatanodeError::BlockIncomplete { .. })
        ));
        set.close_container(7).await.expect("close");
        assert!(matches!(
            c.check_writable(3),
            Err(DatanodeError::ContainerNotOpen { .. })
        ));
        drop((c, f));
        drop(set.shutdown());
        drop(set);
        // A leftover of an interrupted creation is cleaned up at load.
        std::fs::create_dir_all(root.join(".tmp-9-x/chunks")).expect("mkdir");
        let set = ContainerSet::load(&root).expect("reload");
        assert!(!root.join(".tmp-9-x").exists());
        let c = set.get(7).expect("reloaded");
        assert_eq!(c.state(), ContainerState::Closed);
        assert_eq!((c.block_count(), c.used_bytes()), (1, 5));
        assert_eq!(c.get_block(1).expect("read"), Some(b));
        let reports = set.reports();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].state, "CLOSED");
    }

    #[tokio::test]
    async fn blocks_are_deleted_imports_land_whole_and_containers_go() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        let c = set.get_or_create(7).await.expect("create");
        for (local, data) in [(1u64, &b"hello"[..]), (2, &b"world!"[..])] {
            let f = c.open_block_for_write(local).expect("open");
            c.write_chunk(local, &f, 0, data).expect("write");
            let (b, id) = block(local, data.len() as u64);
            c.commit_block(&b, id).expect("commit");
        }
        assert_eq!((c.block_count(), c.used_bytes()), (2, 11));
        assert_eq!(c.blocks().expect("blocks").len(), 2);
        assert_eq!(c.delete_blocks(&[1, 99]).expect("delete"), 5);
        assert_eq!(c.delete_blocks(&[1]).expect("again"), 0, "idempotent");
        assert!(!c.block_path(1).exists());
        assert_eq!((c.block_count(), c.used_bytes()), (1, 6));
        assert!(matches!(
            set.delete_container(7, false).await,
            Err(DatanodeError::ContainerNotEmpty { .. })
        ));

        // An import is invisible until finished, and an abandoned one leaves nothing.
        let imp = set.begin_import(8).await.expect("begin");
        drop(imp);
        assert_eq!(std::fs::read_dir(&root).expect("ls").count(), 1);
        let mut imp = set.begin_import(8).await.expect("begin");
        assert!(set.begin_import(7).await.is_err(), "exists");
        let f = imp.create_block_file(3).expect("file");
        std::os::unix::fs::FileExt::write_all_at(&f, b"abc", 0).expect("write");
        let (mut b, _) = block(3, 3);
        b.block_id = Some(BlockId {
            container_id: 8,
            local_id: 3,
        });
        imp.add_block(b, Some(&f)).expect("add");
        let imported = set.finish_import(imp).await.expect("finish");
        assert_eq!(imported.state(), ContainerState::Closed);
        assert_eq!((imported.block_count(), imported.used_bytes()), (1, 3));

        set.delete_container(7, true).await.expect("forced");
        assert!(matches!(
            set.get(7),
            Err(DatanodeError::ContainerNotFound(7))
        ));
        assert!(!root.join("7").exists());
    }

    #[tokio::test]
    async fn an_unreadable_container_is_reported_unhealthy() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        std::fs::create_dir_all(root.join("3/metadata")).expect("mkdir");
        std::fs::write(root.join("3/metadata/container.json"), "{").expect("write");
        let set = ContainerSet::load(&root).expect("load");
        assert!(matches!(
            set.get(3),
            Err(DatanodeError::ContainerUnhealthy { .. })
        ));
        assert!(set.get_or_create(3).await.is_err(), "never recreated over");
        assert_eq!(set.reports()[0].state, "UNHEALTHY");
    }
}
