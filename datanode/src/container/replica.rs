//! One container replica: its block metadata (rows of the volume database), its chunk files,
//! block commits and state changes.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ozone_common::fsync_dir;
use ozone_proto::hdds::{BlockData, BlockId};
use ozone_proto::scm::ContainerReplicaReport;
use prost::Message;
use redb::{ReadableTable, WriteTransaction};

use super::changes::Changes;
use super::disk::{BLOCKS, Record, VolumeDb, block_range, io_err, put_record};
use super::state::ContainerState;
use crate::error::DatanodeError;

/// One container replica: chunk files in its directory, metadata in the volume database.
pub struct Container {
    id: u64,
    dir: PathBuf,
    db: Arc<VolumeDb>,
    changes: Arc<Changes>,
    state: RwLock<ContainerState>,
    created_ms: u64,
    used_bytes: AtomicU64,
    block_count: AtomicU64,
    /// Block commits applied (Ozone's BCSID); changes only under the exclusive state lock.
    bcsid: AtomicU64,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("id", &self.id)
            .field("state", &self.state())
            .finish()
    }
}

/// Whether `new` extends the committed `old`: the same leading chunks, then more.
fn extends(old: &BlockData, new: &BlockData) -> bool {
    new.size > old.size
        && new.chunks.len() > old.chunks.len()
        && new.chunks[..old.chunks.len()] == old.chunks[..]
}

impl Container {
    /// Container `id` in `dir` as its summary row describes it (no block is read).
    pub(super) fn from_record(
        db: Arc<VolumeDb>,
        changes: Arc<Changes>,
        dir: &Path,
        id: u64,
        record: Record,
    ) -> Container {
        Container {
            id,
            dir: dir.to_path_buf(),
            db,
            changes,
            state: RwLock::new(record.state),
            created_ms: record.created_ms,
            used_bytes: AtomicU64::new(record.used_bytes),
            block_count: AtomicU64::new(record.block_count),
            bcsid: AtomicU64::new(record.bcsid),
        }
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

    /// The block commit sequence id: how many block commits this replica applied.
    pub fn bcsid(&self) -> u64 {
        self.bcsid.load(Ordering::Relaxed)
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
            bcsid: self.bcsid(),
        }
    }

    fn meta_err(&self) -> impl Fn(redb::Error) -> DatanodeError {
        let id = self.id;
        move |e| DatanodeError::metadata(id, e)
    }

    fn bad_row(&self, local_id: u64, e: prost::DecodeError) -> DatanodeError {
        DatanodeError::BadFile {
            path: self.db.path().to_path_buf(),
            message: format!("block {local_id} of container {}: {e}", self.id),
        }
    }

    /// Writes this container's summary (`state` and the totals given) in `txn`.
    fn put_summary(
        &self,
        txn: &WriteTransaction,
        state: ContainerState,
        used_bytes: u64,
        block_count: u64,
    ) -> Result<(), DatanodeError> {
        self.put_summary_at(txn, state, used_bytes, block_count, self.bcsid())
    }

    /// [`Self::put_summary`] with the BCSID given.
    fn put_summary_at(
        &self,
        txn: &WriteTransaction,
        state: ContainerState,
        used_bytes: u64,
        block_count: u64,
        bcsid: u64,
    ) -> Result<(), DatanodeError> {
        put_record(
            txn,
            self.id,
            &Record {
                state,
                created_ms: self.created_ms,
                used_bytes,
                block_count,
                bcsid,
                building: false,
            },
        )
    }

    /// Every committed block, in local id order.
    pub fn blocks(&self) -> Result<Vec<BlockData>, DatanodeError> {
        let err = self.meta_err();
        let txn = self.db.begin_read(self.id)?;
        let table = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for entry in table
            .range(block_range(self.id))
            .map_err(|e| err(e.into()))?
        {
            let (key, value) = entry.map_err(|e| err(e.into()))?;
            let block =
                BlockData::decode(value.value()).map_err(|e| self.bad_row(key.value().1, e))?;
            out.push(block);
        }
        Ok(out)
    }

    /// Deletes blocks (SCM's deleted-block log): their rows and the container's new totals go
    /// in one durable commit, then their files. Blocks this replica does not have are fine
    /// (deleting is idempotent); an uncommitted block file of a released block is removed too.
    /// Returns the bytes freed.
    pub fn delete_blocks(&self, local_ids: &[u64]) -> Result<u64, DatanodeError> {
        let err = self.meta_err();
        let (mut freed, mut removed) = (0u64, 0u64);
        {
            let state = self.write_state();
            let txn = self.db.begin_write(self.id)?;
            {
                let mut table = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
                for local in local_ids {
                    let old = table
                        .remove((self.id, *local))
                        .map_err(|e| err(e.into()))?
                        .map(|v| BlockData::decode(v.value()).map(|b| b.size));
                    // Undecodable metadata was never counted in the totals.
                    if let Some(Ok(size)) = old {
                        freed += size;
                        removed += 1;
                    }
                }
            }
            let used = self.used_bytes().saturating_sub(freed);
            let count = self.block_count().saturating_sub(removed);
            if removed > 0 {
                self.put_summary(&txn, *state, used, count)?;
            }
            txn.commit().map_err(|e| err(e.into()))?;
            self.used_bytes.store(used, Ordering::Relaxed);
            self.block_count.store(count, Ordering::Relaxed);
        }
        if removed > 0 {
            self.changes.changed(self.id);
        }
        for local in local_ids {
            let path = self.block_path(*local);
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
        let err = self.meta_err();
        let txn = self.db.begin_read(self.id)?;
        let table = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
        let Some(value) = table.get((self.id, local_id)).map_err(|e| err(e.into()))? else {
            return Ok(None);
        };
        BlockData::decode(value.value())
            .map(Some)
            .map_err(|e| self.bad_row(local_id, e))
    }

    /// Fails unless the container takes writes to block `local_id`: it must be OPEN. Whether
    /// the offsets written are past a committed block's length is checked by `write_chunk`.
    pub fn check_writable(&self, local_id: u64) -> Result<(), DatanodeError> {
        let state = self.read_state();
        self.check_writable_locked(*state, local_id, None)
    }

    /// With `offset`: fails if block `local_id` is committed and `offset` lies inside its
    /// committed length (a committed block only grows, while its container is OPEN).
    fn check_writable_locked(
        &self,
        state: ContainerState,
        local_id: u64,
        offset: Option<u64>,
    ) -> Result<(), DatanodeError> {
        if state != ContainerState::Open {
            return Err(DatanodeError::ContainerNotOpen { id: self.id, state });
        }
        if let Some(offset) = offset
            && let Some(committed) = self.get_block(local_id)?
            && offset < committed.size
        {
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
    /// `offset` is at or past the block's committed length, if it has one (checked under the
    /// state lock, so a commit or close cannot slip in).
    pub fn write_chunk(
        &self,
        local_id: u64,
        file: &File,
        offset: u64,
        data: &[u8],
    ) -> Result<(), DatanodeError> {
        let state = self.read_state();
        self.check_writable_locked(*state, local_id, Some(offset))?;
        file.write_all_at(data, offset).map_err(io_err(format!(
            "writing {} bytes at {offset} of {}",
            data.len(),
            self.block_path(local_id).display()
        )))
    }

    /// Makes block `block` durable: fsyncs its file (at least `size` long) and directory, then
    /// records it and the container's new totals in one durable commit. Committing the same
    /// block data again is a no-op; while the container is OPEN, block data that extends the
    /// committed one (the same leading chunks, then more) replaces it; anything else for a
    /// committed block is refused. Each commit that changes the block takes the container's
    /// next BCSID, stored in the same transaction; returns the container's BCSID after it.
    pub fn commit_block(&self, block: &BlockData, block_id: BlockId) -> Result<u64, DatanodeError> {
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

        let err = self.meta_err();
        let encoded = block.encode_to_vec();
        let state = self.write_state();
        let txn = self.db.begin_write(self.id)?;
        let (used, count) = {
            let mut table = txn.open_table(BLOCKS).map_err(|e| err(e.into()))?;
            let key = (self.id, block_id.local_id);
            let existing = table
                .get(key)
                .map_err(|e| err(e.into()))?
                .map(|v| v.value().to_vec());
            let (used, count) = match existing {
                Some(existing) if existing == encoded => return Ok(self.bcsid()),
                Some(existing) => {
                    let old = BlockData::decode(existing.as_slice())
                        .map_err(|e| self.bad_row(block_id.local_id, e))?;
                    if !extends(&old, block) {
                        return Err(DatanodeError::BlockCommitted(block_id));
                    }
                    // A writer going on after its container closed moves to a new block.
                    if *state != ContainerState::Open {
                        return Err(DatanodeError::ContainerNotOpen {
                            id: self.id,
                            state: *state,
                        });
                    }
                    (
                        self.used_bytes() + (block.size - old.size),
                        self.block_count(),
                    )
                }
                None => {
                    if *state != ContainerState::Open {
                        return Err(DatanodeError::ContainerNotOpen {
                            id: self.id,
                            state: *state,
                        });
                    }
                    (self.used_bytes() + block.size, self.block_count() + 1)
                }
            };
            table
                .insert(key, encoded.as_slice())
                .map_err(|e| err(e.into()))?;
            (used, count)
        };
        let bcsid = self.bcsid() + 1;
        self.put_summary_at(&txn, *state, used, count, bcsid)?;
        txn.commit().map_err(|e| err(e.into()))?;
        self.used_bytes.store(used, Ordering::Relaxed);
        self.block_count.store(count, Ordering::Relaxed);
        self.bcsid.store(bcsid, Ordering::Relaxed);
        drop(state);
        self.changes.changed(self.id);
        Ok(bcsid)
    }

    /// Changes the state durably (the summary row is committed before the change is visible).
    pub fn set_state(&self, new: ContainerState) -> Result<(), DatanodeError> {
        let mut state = self.write_state();
        if *state == new {
            return Ok(());
        }
        let txn = self.db.begin_write(self.id)?;
        self.put_summary(&txn, new, self.used_bytes(), self.block_count())?;
        txn.commit()
            .map_err(|e| DatanodeError::metadata(self.id, e))?;
        tracing::info!(container = self.id, from = %*state, to = %new, "container state changed");
        *state = new;
        drop(state);
        self.changes.changed(self.id);
        Ok(())
    }
}
