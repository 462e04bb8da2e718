//! A container replica built aside and put in place whole: copied in from another datanode, or
//! a new, empty one.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use ozone_common::fsync_dir;
use ozone_proto::hdds::BlockData;

use super::disk::{io_err, write_metadata};
use super::replica::Container;
use super::state::ContainerState;
use crate::error::DatanodeError;

/// A container replica being built (copied in from another datanode, or created empty): built in
/// a temporary directory and renamed into place only once every block is on disk and verified,
/// so a crash or a failed copy never leaves a partial container. Dropping it unfinished removes
/// the directory.
pub struct Import {
    id: u64,
    root: PathBuf,
    tmp: PathBuf,
    blocks: Vec<BlockData>,
    done: bool,
}

impl Import {
    pub(super) fn begin(root: &Path, id: u64) -> Result<Import, DatanodeError> {
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

    /// Writes the block table and `container.json` (in `state`: CLOSED for a copy, OPEN for a new
    /// container), syncs everything and renames the container into place.
    pub(super) fn commit(mut self, state: ContainerState) -> Result<Container, DatanodeError> {
        let id = self.id;
        let metadata = self.tmp.join("metadata");
        write_metadata(&metadata, id, state, &self.blocks)?;
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
            tracing::warn!(path = %self.tmp.display(), error = %e, "cannot remove an unfinished container build");
        }
    }
}
