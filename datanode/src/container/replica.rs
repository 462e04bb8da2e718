//! One container replica on disk: creating and loading it, block metadata, chunk files, block
//! commits and state changes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use ozone_common::fsync_dir;
use ozone_proto::hdds::{BlockData, BlockId};
use ozone_proto::scm::ContainerReplicaReport;
use prost::Message;
use redb::{Database, ReadOnlyTable, ReadableDatabase, ReadableTable};

use super::disk::{
    BLOCKS, CONTAINER_FILE, ContainerFile, DB_CACHE_BYTES, DB_FILE, io_err, write_json_atomic,
};
use super::state::ContainerState;
use crate::error::DatanodeError;

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

impl Container {
    /// Opens container `id` stored in `dir`, counting its committed blocks.
    pub(super) fn load(dir: &Path, id: u64) -> Result<Container, DatanodeError> {
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
        let table = container.read_blocks()?;
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

    /// The committed block table, read in a transaction of its own.
    fn read_blocks(&self) -> Result<ReadOnlyTable<u64, &'static [u8]>, DatanodeError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        txn.open_table(BLOCKS)
            .map_err(|e| DatanodeError::metadata(self.id, e))
    }

    /// Every committed block, in local id order.
    pub fn blocks(&self) -> Result<Vec<BlockData>, DatanodeError> {
        let table = self.read_blocks()?;
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
        let table = self.read_blocks()?;
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

    /// The committed length of block `local_id`, if it is committed.
    fn committed_size(&self, local_id: u64) -> Result<Option<u64>, DatanodeError> {
        Ok(self.get_block(local_id)?.map(|b| b.size))
    }

    /// Fails unless the container takes a write at `offset` of block `local_id`: the container
    /// is OPEN and the block is uncommitted, or committed with at most `offset` bytes (a writer
    /// that flushed part of the block goes on after it).
    pub fn check_writable(&self, local_id: u64, offset: u64) -> Result<(), DatanodeError> {
        let state = self.read_state();
        self.check_writable_locked(*state, local_id, offset)
    }

    fn check_writable_locked(
        &self,
        state: ContainerState,
        local_id: u64,
        offset: u64,
    ) -> Result<(), DatanodeError> {
        if state != ContainerState::Open {
            return Err(DatanodeError::ContainerNotOpen { id: self.id, state });
        }
        match self.committed_size(local_id)? {
            Some(size) if offset < size => Err(DatanodeError::BlockCommitted(BlockId {
                container_id: self.id,
                local_id,
            })),
            _ => Ok(()),
        }
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
    /// `offset` is not inside the block's committed length (checked under the state lock, so a
    /// commit or close cannot slip in).
    pub fn write_chunk(
        &self,
        local_id: u64,
        file: &File,
        offset: u64,
        data: &[u8],
    ) -> Result<(), DatanodeError> {
        let state = self.read_state();
        self.check_writable_locked(*state, local_id, offset)?;
        file.write_all_at(data, offset).map_err(io_err(format!(
            "writing {} bytes at {offset} of {}",
            data.len(),
            self.block_path(local_id).display()
        )))
    }

    /// Makes block `block` durable: fsyncs its file (at least `size` long) and directory, then
    /// records it in the block table with a durable commit.
    ///
    /// A block is committed again as its writer flushes more of it: while the container is OPEN,
    /// new data that extends the committed data (the same leading chunks, then more, so a larger
    /// size) replaces it, and the used bytes grow by the difference (the block is counted once).
    /// Committing the same block data again is a no-op in any state; any other data for a
    /// committed block (shorter, or different chunks) is refused, and so is an extension once
    /// the container is not OPEN.
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
        let previous = {
            let mut table = txn
                .open_table(BLOCKS)
                .map_err(|e| DatanodeError::metadata(self.id, e))?;
            let existing = table
                .get(block_id.local_id)
                .map_err(|e| DatanodeError::metadata(self.id, e))?
                .map(|v| v.value().to_vec());
            if existing.as_deref() == Some(encoded.as_slice()) {
                return Ok(());
            }
            let previous = match existing {
                None => None,
                Some(bytes) => {
                    let old = BlockData::decode(bytes.as_slice()).map_err(|e| {
                        DatanodeError::BadFile {
                            path: self.dir.join("metadata").join(DB_FILE),
                            message: format!("block {}: {e}", block_id.local_id),
                        }
                    })?;
                    if !extends(block, &old) {
                        return Err(DatanodeError::BlockCommitted(block_id));
                    }
                    Some(old.size)
                }
            };
            if *state != ContainerState::Open {
                return Err(DatanodeError::ContainerNotOpen {
                    id: self.id,
                    state: *state,
                });
            }
            table
                .insert(block_id.local_id, encoded.as_slice())
                .map_err(|e| DatanodeError::metadata(self.id, e))?;
            previous
        };
        txn.commit()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        drop(state);
        match previous {
            Some(old_size) => {
                self.used_bytes
                    .fetch_add(block.size - old_size, Ordering::Relaxed);
            }
            None => {
                self.used_bytes.fetch_add(block.size, Ordering::Relaxed);
                self.block_count.fetch_add(1, Ordering::Relaxed);
            }
        }
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

/// Whether `new` extends `old`: it starts with all of `old`'s chunks and has more after them.
fn extends(new: &BlockData, old: &BlockData) -> bool {
    new.block_id == old.block_id
        && new.size > old.size
        && new.chunks.len() > old.chunks.len()
        && new.chunks[..old.chunks.len()] == old.chunks[..]
}
