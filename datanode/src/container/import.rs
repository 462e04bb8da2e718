//! A container replica built aside and put in place whole: copied in from another datanode, or
//! a new, empty one.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ozone_common::fsync_dir;
use ozone_proto::hdds::BlockData;
use prost::Message;
use redb::Durability;

use super::changes::Changes;
use super::disk::{
    BLOCKS, Record, VolumeDb, get_record, io_err, is_tombstoned, put_record, remove_container_rows,
    set_tombstone,
};
use super::replica::Container;
use super::state::ContainerState;
use crate::error::DatanodeError;

/// Block rows an import keeps in memory before writing them to the volume database.
const ROWS_PER_FLUSH: usize = 256;

/// A container replica being built (copied in from another datanode, or created empty). Its
/// block files go to a temporary directory; its block rows go to the volume database under
/// a summary marked `building`, which the set ignores (and removes at start). Committing
/// renames the directory into place and then, in one durable transaction, turns the summary
/// into the final one: a crash or a failed copy never leaves a partial container. Dropping
/// it unfinished removes the directory and the rows.
pub struct Import {
    id: u64,
    root: PathBuf,
    tmp: PathBuf,
    db: Arc<VolumeDb>,
    pending: Vec<BlockData>,
    used_bytes: u64,
    block_count: u64,
    /// The source's BCSID (0 for a new container).
    bcsid: u64,
    created_ms: u64,
    done: bool,
}

impl Import {
    /// Claims container `id` in the volume database (failing if it exists there, even as
    /// another build) and makes the temporary directory. A container deleted here before is
    /// only built again as a copy (`copy`): a new, empty one (a write) would re-create it.
    pub(super) fn begin(
        root: &Path,
        db: Arc<VolumeDb>,
        id: u64,
        copy: bool,
    ) -> Result<Import, DatanodeError> {
        let created_ms = ozone_common::now_ms();
        let txn = db.begin_write(id)?;
        if get_record(&txn, id)?.is_some() {
            return Err(DatanodeError::ContainerExists(id));
        }
        if !copy && is_tombstoned(&txn, id)? {
            return Err(DatanodeError::ContainerDeleted(id));
        }
        put_record(
            &txn,
            id,
            &Record {
                state: ContainerState::Closed,
                created_ms,
                used_bytes: 0,
                block_count: 0,
                bcsid: 0,
                building: true,
            },
        )?;
        txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
        let tmp = root.join(format!(".tmp-import-{id}-{}", uuid::Uuid::new_v4()));
        let import = Import {
            id,
            root: root.to_path_buf(),
            tmp,
            db,
            pending: Vec::new(),
            used_bytes: 0,
            block_count: 0,
            bcsid: 0,
            created_ms,
            done: false,
        };
        let chunks = import.tmp.join("chunks");
        std::fs::create_dir_all(&chunks)
            .map_err(io_err(format!("creating {}", chunks.display())))?;
        Ok(import)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sets the BCSID the container gets: its source's.
    pub fn set_bcsid(&mut self, bcsid: u64) {
        self.bcsid = bcsid;
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
        self.pending.push(block);
        if self.pending.len() >= ROWS_PER_FLUSH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending block rows, without waiting for the disk: the commit's durable
    /// transaction makes them durable with it, and a crash before it discards them.
    fn flush(&mut self) -> Result<(), DatanodeError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let id = self.id;
        let mut txn = self.db.begin_write(id)?;
        txn.set_durability(Durability::None)
            .map_err(|e| DatanodeError::Task(format!("container {id}: {e}")))?;
        {
            let mut table = txn
                .open_table(BLOCKS)
                .map_err(|e| DatanodeError::metadata(id, e))?;
            for b in self.pending.drain(..) {
                let local_id = b.block_id.map(|i| i.local_id).unwrap_or_default();
                let old = table
                    .insert((id, local_id), b.encode_to_vec().as_slice())
                    .map_err(|e| DatanodeError::metadata(id, e))?
                    .and_then(|v| BlockData::decode(v.value()).ok());
                match old {
                    Some(old) => {
                        self.used_bytes = self.used_bytes.saturating_sub(old.size) + b.size;
                    }
                    None => {
                        self.used_bytes += b.size;
                        self.block_count += 1;
                    }
                }
            }
        }
        txn.commit().map_err(|e| DatanodeError::metadata(id, e))
    }

    /// Writes the remaining rows, syncs the block files' directory and renames it into place,
    /// then commits the container's summary in `state` (CLOSED for a copy, OPEN for a new
    /// container) durably: only then does the container exist.
    pub(super) fn commit(
        mut self,
        state: ContainerState,
        changes: Arc<Changes>,
    ) -> Result<Container, DatanodeError> {
        let id = self.id;
        self.flush()?;
        let chunks = self.tmp.join("chunks");
        for d in [&chunks, &self.tmp] {
            fsync_dir(d).map_err(io_err(format!("syncing {}", d.display())))?;
        }
        let final_dir = self.root.join(id.to_string());
        std::fs::rename(&self.tmp, &final_dir).map_err(io_err(format!(
            "renaming {} into place",
            self.tmp.display()
        )))?;
        // From here on a failure must also take the renamed directory away.
        self.tmp = final_dir.clone();
        fsync_dir(&self.root).map_err(io_err(format!("syncing {}", self.root.display())))?;
        let record = Record {
            state,
            created_ms: self.created_ms,
            used_bytes: self.used_bytes,
            block_count: self.block_count,
            bcsid: self.bcsid,
            building: false,
        };
        let txn = self.db.begin_write(id)?;
        put_record(&txn, id, &record)?;
        set_tombstone(&txn, id, false)?;
        txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
        self.done = true;
        Ok(Container::from_record(
            self.db.clone(),
            changes,
            &final_dir,
            id,
            record,
        ))
    }
}

#[cfg(test)]
impl Import {
    /// Stops as a crash would: nothing is cleaned up.
    pub(super) fn crash(mut self) {
        self.done = true;
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let id = self.id;
        let rows = self.db.begin_write(id).and_then(|txn| {
            remove_container_rows(&txn, id)?;
            txn.commit().map_err(|e| DatanodeError::metadata(id, e))
        });
        if let Err(e) = rows {
            tracing::warn!(container = id, error = %e, "cannot remove the rows of an unfinished container build; removed at next start");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.tmp) {
            tracing::warn!(path = %self.tmp.display(), error = %e, "cannot remove an unfinished container build");
        }
    }
}
