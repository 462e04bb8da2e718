//! The on-disk format shared by a container, an import and the set: the volume's metadata
//! database (`containers/container.db`), file names, and the layout of older versions
//! (`metadata/container.json` + `metadata/blocks.redb` per container) migrated at start.

use std::path::{Path, PathBuf};

use ozone_common::fsync_dir;
use ozone_proto::hdds::BlockData;
use prost::Message;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::state::ContainerState;
use crate::error::DatanodeError;

/// Every container's summary: container id -> JSON [`Record`].
pub(super) const CONTAINERS: TableDefinition<u64, &[u8]> = TableDefinition::new("containers");
/// Every committed block: (container id, local id) -> prost-encoded `BlockData`.
pub(super) const BLOCKS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("blocks");
/// Tombstones of the containers deleted on this datanode: container id -> when (ms since the
/// epoch). A write naming one of them is refused rather than re-creating it; a copy SCM asks
/// for (an import) takes the id back.
pub(super) const DELETED: TableDefinition<u64, u64> = TableDefinition::new("deleted_containers");
/// The volume's metadata database, in the containers directory.
pub(super) const DB_FILE: &str = "container.db";
/// redb page cache of the volume database.
const DB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Files of the per-container layout of older versions.
pub(super) const LEGACY_CONTAINER_FILE: &str = "container.json";
pub(super) const LEGACY_DB_FILE: &str = "blocks.redb";
const LEGACY_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");

/// A container's summary row: what loading it needs, without reading its blocks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) state: ContainerState,
    #[serde(default)]
    pub(super) created_ms: u64,
    #[serde(default)]
    pub(super) used_bytes: u64,
    #[serde(default)]
    pub(super) block_count: u64,
    /// Block commit sequence id (Ozone's BCSID): block commits applied to this replica, each
    /// committed with its block row; a copy keeps its source's.
    #[serde(default)]
    pub(super) bcsid: u64,
    /// Being built (an import or a creation not yet committed): ignored by the set, and
    /// removed with its block rows at the next start.
    #[serde(default)]
    pub(super) building: bool,
}

/// A summary row as read: container id, and the summary or why it cannot be decoded.
pub(super) type RecordRow = (u64, Result<Record, String>);

/// `metadata/container.json` of the older layout.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LegacyContainerFile {
    pub(super) id: u64,
    pub(super) state: ContainerState,
    #[serde(default)]
    pub(super) created_ms: u64,
}

pub(super) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DatanodeError {
    let context = context.into();
    move |e| DatanodeError::io(context, e)
}

/// The key range of container `id`'s blocks.
pub(super) fn block_range(id: u64) -> std::ops::RangeInclusive<(u64, u64)> {
    (id, 0)..=(id, u64::MAX)
}

/// The one metadata database of a volume: every container's summary and block table, keyed
/// by container id (Ozone's container schema V3), so open files do not grow with containers.
/// Each write transaction commits durably (redb's default, `Durability::Immediate`) unless
/// said otherwise.
pub(super) struct VolumeDb {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for VolumeDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeDb")
            .field("path", &self.path)
            .finish()
    }
}

impl VolumeDb {
    /// Opens (creating if needed) `<root>/container.db` with both tables present.
    pub(super) fn open(root: &Path) -> Result<VolumeDb, DatanodeError> {
        let path = root.join(DB_FILE);
        let db = ozone_common::db::create_with_cache(&path, DB_CACHE_BYTES)
            .map_err(|e| DatanodeError::metadata(0, e))?;
        let txn = db
            .begin_write()
            .map_err(|e| DatanodeError::metadata(0, e))?;
        txn.open_table(CONTAINERS)
            .map_err(|e| DatanodeError::metadata(0, e))?;
        txn.open_table(BLOCKS)
            .map_err(|e| DatanodeError::metadata(0, e))?;
        txn.open_table(DELETED)
            .map_err(|e| DatanodeError::metadata(0, e))?;
        txn.commit().map_err(|e| DatanodeError::metadata(0, e))?;
        Ok(VolumeDb { db, path })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn begin_write(&self, id: u64) -> Result<WriteTransaction, DatanodeError> {
        self.db
            .begin_write()
            .map_err(|e| DatanodeError::metadata(id, e))
    }

    pub(super) fn begin_read(&self, id: u64) -> Result<redb::ReadTransaction, DatanodeError> {
        self.db
            .begin_read()
            .map_err(|e| DatanodeError::metadata(id, e))
    }

    /// Every container summary, by id; an undecodable one comes with the reason.
    pub(super) fn records(&self) -> Result<Vec<RecordRow>, DatanodeError> {
        let txn = self.begin_read(0)?;
        let table = txn
            .open_table(CONTAINERS)
            .map_err(|e| DatanodeError::metadata(0, e))?;
        let mut out = Vec::with_capacity(usize::try_from(table.len().unwrap_or(0)).unwrap_or(0));
        for entry in table.iter().map_err(|e| DatanodeError::metadata(0, e))? {
            let (k, v) = entry.map_err(|e| DatanodeError::metadata(0, e))?;
            out.push((
                k.value(),
                serde_json::from_slice::<Record>(v.value()).map_err(|e| e.to_string()),
            ));
        }
        Ok(out)
    }
}

impl VolumeDb {
    /// Container `id`'s summary, if it has one; an undecodable one comes with the reason.
    pub(super) fn record_of(
        &self,
        id: u64,
    ) -> Result<Option<Result<Record, String>>, DatanodeError> {
        let txn = self.begin_read(id)?;
        let table = txn
            .open_table(CONTAINERS)
            .map_err(|e| DatanodeError::metadata(id, e))?;
        let row = table.get(id).map_err(|e| DatanodeError::metadata(id, e))?;
        Ok(row.map(|v| serde_json::from_slice::<Record>(v.value()).map_err(|e| e.to_string())))
    }
}

/// Writes container `id`'s summary in `txn`.
pub(super) fn put_record(
    txn: &WriteTransaction,
    id: u64,
    record: &Record,
) -> Result<(), DatanodeError> {
    let bytes = serde_json::to_vec(record).map_err(|e| DatanodeError::BadFile {
        path: PathBuf::from(DB_FILE),
        message: format!("encoding the record of container {id}: {e}"),
    })?;
    let mut table = txn
        .open_table(CONTAINERS)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    table
        .insert(id, bytes.as_slice())
        .map_err(|e| DatanodeError::metadata(id, e))?;
    Ok(())
}

/// Container `id`'s summary as `txn` sees it.
pub(super) fn get_record(txn: &WriteTransaction, id: u64) -> Result<Option<Record>, DatanodeError> {
    let table = txn
        .open_table(CONTAINERS)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    let Some(v) = table.get(id).map_err(|e| DatanodeError::metadata(id, e))? else {
        return Ok(None);
    };
    serde_json::from_slice(v.value())
        .map(Some)
        .map_err(|e| DatanodeError::BadFile {
            path: PathBuf::from(DB_FILE),
            message: format!("record of container {id}: {e}"),
        })
}

/// Whether container `id` was deleted on this datanode (and not copied back since).
pub(super) fn is_tombstoned(txn: &WriteTransaction, id: u64) -> Result<bool, DatanodeError> {
    let table = txn
        .open_table(DELETED)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    Ok(table
        .get(id)
        .map_err(|e| DatanodeError::metadata(id, e))?
        .is_some())
}

/// Records (`deleted`) or clears the tombstone of container `id` in `txn`.
pub(super) fn set_tombstone(
    txn: &WriteTransaction,
    id: u64,
    deleted: bool,
) -> Result<(), DatanodeError> {
    let mut table = txn
        .open_table(DELETED)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    if deleted {
        table
            .insert(id, ozone_common::now_ms())
            .map_err(|e| DatanodeError::metadata(id, e))?;
    } else {
        table
            .remove(id)
            .map_err(|e| DatanodeError::metadata(id, e))?;
    }
    Ok(())
}

/// Removes container `id`'s summary and every block row in `txn`.
pub(super) fn remove_container_rows(txn: &WriteTransaction, id: u64) -> Result<(), DatanodeError> {
    let mut blocks = txn
        .open_table(BLOCKS)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    blocks
        .retain_in(block_range(id), |_, _| false)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    let mut containers = txn
        .open_table(CONTAINERS)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    containers
        .remove(id)
        .map_err(|e| DatanodeError::metadata(id, e))?;
    Ok(())
}

/// Whether `dir` still holds the metadata of the older per-container layout.
pub(super) fn has_legacy_metadata(dir: &Path) -> bool {
    dir.join("metadata").exists()
}

/// Removes the older layout's `metadata/` directory of a migrated container.
pub(super) fn remove_legacy_metadata(dir: &Path) -> Result<(), DatanodeError> {
    let metadata = dir.join("metadata");
    std::fs::remove_dir_all(&metadata)
        .map_err(io_err(format!("removing {}", metadata.display())))?;
    fsync_dir(dir).map_err(io_err(format!("syncing {}", dir.display())))
}

/// Moves a container of the older layout (`metadata/container.json` and its own
/// `metadata/blocks.redb`) into the volume database in one durable transaction, then removes
/// the old files (a crash in between leaves them beside the committed rows; the next start
/// removes them). Returns its summary.
pub(super) fn migrate_legacy(db: &VolumeDb, dir: &Path, id: u64) -> Result<Record, DatanodeError> {
    let json_path = dir.join("metadata").join(LEGACY_CONTAINER_FILE);
    let text =
        std::fs::read(&json_path).map_err(io_err(format!("reading {}", json_path.display())))?;
    let file: LegacyContainerFile =
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
    let mut record = Record {
        state: file.state,
        created_ms: file.created_ms,
        used_bytes: 0,
        block_count: 0,
        bcsid: 0,
        building: false,
    };
    let legacy_path = dir.join("metadata").join(LEGACY_DB_FILE);
    let txn = db.begin_write(id)?;
    if legacy_path.exists() {
        let legacy = ozone_common::db::open_waiting(|| Database::open(&legacy_path))
            .map_err(|e| DatanodeError::metadata(id, e))?;
        let rtxn = legacy
            .begin_read()
            .map_err(|e| DatanodeError::metadata(id, e))?;
        match rtxn.open_table(LEGACY_BLOCKS) {
            Ok(old) => {
                let mut blocks = txn
                    .open_table(BLOCKS)
                    .map_err(|e| DatanodeError::metadata(id, e))?;
                let mut undecodable = 0u64;
                for entry in old.iter().map_err(|e| DatanodeError::metadata(id, e))? {
                    let (k, v) = entry.map_err(|e| DatanodeError::metadata(id, e))?;
                    match BlockData::decode(v.value()) {
                        Ok(b) => {
                            record.used_bytes += b.size;
                            record.block_count += 1;
                        }
                        Err(_) => undecodable += 1,
                    }
                    blocks
                        .insert((id, k.value()), v.value())
                        .map_err(|e| DatanodeError::metadata(id, e))?;
                }
                if undecodable > 0 {
                    tracing::error!(
                        container = id,
                        undecodable,
                        "block metadata entries cannot be decoded; container marked UNHEALTHY"
                    );
                    record.state = ContainerState::Unhealthy;
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(DatanodeError::metadata(id, e)),
        }
    }
    // Each block was committed at least once.
    record.bcsid = record.block_count;
    put_record(&txn, id, &record)?;
    txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
    remove_legacy_metadata(dir)?;
    tracing::info!(
        container = id,
        blocks = record.block_count,
        "moved a container's metadata into the volume database"
    );
    Ok(record)
}
