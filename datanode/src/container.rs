//! Containers on local disk and the set of them a datanode holds: one container replica
//! (`replica`), the set (`set`), a copy coming in from another datanode (`import`), the on-disk
//! format they share (`disk`) and the replica state (`state`).
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

mod disk;
mod import;
mod replica;
mod set;
pub(crate) mod state;

pub use import::Import;
pub use replica::Container;
pub use set::ContainerSet;
pub use state::ContainerState;

#[cfg(test)]
mod tests {
    use ozone_proto::hdds::{BlockData, BlockId};

    use super::*;
    use crate::error::DatanodeError;

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
            c.write_chunk(1, &f, 4, b"!"),
            Err(DatanodeError::BlockCommitted(_))
        ));
        // Past the committed length the block's writer may go on (and extend it later).
        c.write_chunk(1, &f, 5, b"!")
            .expect("a write after the committed length");
        let (b2, id2) = block(2, 10);
        assert!(matches!(
            c.commit_block(&b2, id2),
            Err(DatanodeError::BlockIncomplete { .. })
        ));
        set.close_container(7).await.expect("close");
        assert!(matches!(
            c.check_writable(3, 0),
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
