//! The on-disk format shared by a container and an import: file names, `container.json`, the
//! block table, and durable atomic JSON writes.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use ozone_common::fsync_dir;
use ozone_proto::hdds::BlockData;
use prost::Message;
use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

use super::state::ContainerState;
use crate::error::DatanodeError;

/// Committed blocks of a container: localId -> prost-encoded `BlockData`.
pub(super) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
/// redb page cache per container; block metadata is small and mostly read once.
pub(super) const DB_CACHE_BYTES: usize = 4 * 1024 * 1024;
pub(super) const CONTAINER_FILE: &str = "container.json";
pub(super) const DB_FILE: &str = "blocks.redb";

/// `metadata/container.json`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ContainerFile {
    pub(super) id: u64,
    pub(super) state: ContainerState,
    #[serde(default)]
    pub(super) created_ms: u64,
}

pub(super) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DatanodeError {
    let context = context.into();
    move |e| DatanodeError::io(context, e)
}

/// Writes `value` as JSON to `path` atomically and durably (temp file, fsync, rename, fsync dir).
pub(super) fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), DatanodeError> {
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

/// Lays down a new container's metadata in `metadata`: `container.json` in `state` and a block
/// table holding `blocks`, committed durably. Shared by a new container and an import.
pub(super) fn write_metadata(
    metadata: &Path,
    id: u64,
    state: ContainerState,
    blocks: &[BlockData],
) -> Result<(), DatanodeError> {
    write_json_atomic(
        &metadata.join(CONTAINER_FILE),
        &ContainerFile {
            id,
            state,
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
        for b in blocks {
            let local_id = b.block_id.map(|i| i.local_id).unwrap_or_default();
            table
                .insert(local_id, b.encode_to_vec().as_slice())
                .map_err(|e| DatanodeError::metadata(id, e))?;
        }
    }
    txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
    drop(db);
    Ok(())
}
