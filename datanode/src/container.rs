//! Containers on local disk and the set of them a datanode holds: one container replica
//! (`replica`), the set (`set`), a copy coming in from another datanode (`import`), the on-disk
//! format they share (`disk`), the replica state (`state`) and the changes not yet reported to
//! SCM (`changes`).
//!
//! Layout of a volume, `<dir>/containers/` (Ozone's container schema V3: one metadata database
//! per volume, keys prefixed by container id, so open files do not grow with containers):
//! - `container.db` (redb): table `containers`, container id -> summary (state, created,
//!   used bytes, block count, BCSID; a container being built is marked so and ignored), and
//!   table `blocks`, (container id, localId) -> prost-encoded `hdds::BlockData`. A block commit
//!   writes its row and the container's summary, with the next BCSID (block commit sequence
//!   id: the commits applied, which SCM compares across replicas), in one durable transaction;
//!   table `deleted_containers`, container id -> when: tombstones of the containers deleted
//!   here, so a late write never re-creates one (a copy SCM asks for takes the id back);
//! - `<id>/chunks/<localId>.block`: the block's bytes, each chunk written at its offset.
//!
//! A container that cannot be loaded at start (undecodable summary, failed migration,
//! missing directory) is kept aside: reported UNHEALTHY, never deleted (not even forced),
//! and loaded again every container report interval until it loads.
//!
//! A container is built in a temporary directory (its rows under a summary marked as being
//! built), renamed into place, and only then committed, so a crash never leaves a half-made
//! one; a deletion removes the rows first, then the directory. Data directories of older
//! versions (`<id>/metadata/container.json` and `blocks.redb` per container) are migrated at
//! start. Chunk I/O uses positional reads and writes on per-request file handles; the only
//! lock on that path is the container's own state lock, shared by all writers and taken
//! exclusively just to commit a block or change the state, so that a CLOSED container and a
//! committed block never change again (a committed block of an OPEN container may only grow).
//! All functions here block: call them from `spawn_blocking`.

mod changes;
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
        // While OPEN, a committed block grows: writes past its length, then a commit whose
        // chunks extend the committed ones.
        let chunk = |offset, len| ozone_proto::hdds::ChunkInfo {
            offset,
            len,
            checksum: None,
        };
        let mut b1 = b.clone();
        b1.chunks = vec![chunk(0, 5)];
        let (b2, id2) = block(2, 5);
        let f2 = c.open_block_for_write(2).expect("open");
        c.write_chunk(2, &f2, 0, b"hello").expect("write");
        let mut b2 = b2;
        b2.chunks = vec![chunk(0, 5)];
        c.commit_block(&b2, id2).expect("commit");
        c.write_chunk(2, &f2, 5, b"!")
            .expect("append past the committed length");
        let mut longer = b2.clone();
        longer.chunks.push(chunk(5, 1));
        longer.size = 6;
        c.commit_block(&longer, id2).expect("extends");
        assert_eq!((c.block_count(), c.used_bytes()), (2, 11));
        assert!(
            matches!(
                c.commit_block(&b2, id2),
                Err(DatanodeError::BlockCommitted(_))
            ),
            "shorter than committed"
        );
        assert!(
            matches!(
                c.commit_block(&b1, id),
                Err(DatanodeError::BlockCommitted(_))
            ),
            "different chunks"
        );
        let (b, b2) = (b, longer);
        let (b3, id3) = block(3, 10);
        assert!(matches!(
            c.commit_block(&b3, id3),
            Err(DatanodeError::BlockIncomplete { .. })
        ));
        set.close_container(7).await.expect("close");
        assert!(matches!(
            c.check_writable(3),
            Err(DatanodeError::ContainerNotOpen { .. })
        ));
        let mut longer = b2.clone();
        longer.chunks.push(ozone_proto::hdds::ChunkInfo {
            offset: 6,
            len: 0,
            checksum: None,
        });
        longer.size = 6;
        assert!(
            c.commit_block(&longer, id2).is_err(),
            "a CLOSED container's blocks never change"
        );
        drop((c, f, f2));
        drop(set.shutdown());
        drop(set);
        // A leftover of an interrupted creation is cleaned up at load.
        std::fs::create_dir_all(root.join(".tmp-9-x/chunks")).expect("mkdir");
        let set = ContainerSet::load(&root).expect("reload");
        assert!(!root.join(".tmp-9-x").exists());
        let c = set.get(7).expect("reloaded");
        assert_eq!(c.state(), ContainerState::Closed);
        assert_eq!((c.block_count(), c.used_bytes()), (2, 11));
        assert_eq!(c.get_block(1).expect("read"), Some(b));
        assert_eq!(c.get_block(2).expect("read"), Some(b2));
        // One metadata database for the volume; no per-container metadata files.
        assert!(root.join("container.db").exists());
        assert!(!root.join("7/metadata").exists());
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
        // Only `container.db` and container 7.
        assert_eq!(std::fs::read_dir(&root).expect("ls").count(), 2);
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
        // Kept aside: never deleted, even when forced; loaded once it can be.
        assert!(matches!(
            set.delete_container(3, true).await,
            Err(DatanodeError::ContainerKeptAside { id: 3, .. })
        ));
        assert!(root.join("3/metadata/container.json").exists());
        assert_eq!(set.retry_kept_aside().await.expect("retry"), 0);
        assert_eq!(set.kept_aside(), vec![3]);
        std::fs::write(
            root.join("3/metadata/container.json"),
            r#"{"id":3,"state":"CLOSED","created_ms":1}"#,
        )
        .expect("write");
        assert_eq!(set.retry_kept_aside().await.expect("retry"), 1);
        assert!(set.kept_aside().is_empty());
        assert_eq!(set.get(3).expect("loaded").state(), ContainerState::Closed);
        assert_eq!(set.reports()[0].state, "CLOSED");
    }

    #[tokio::test]
    async fn a_container_whose_row_fails_to_load_is_kept_aside_not_deleted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        let c = set.get_or_create(5).await.expect("create");
        commit(&c, 1, b"kept");
        drop(c);
        set.close_container(5).await.expect("close");
        let good = {
            let db = set.db().expect("db");
            let txn = db.begin_read(5).expect("read");
            let t = txn.open_table(disk::CONTAINERS).expect("table");
            t.get(5).expect("get").expect("row").value().to_vec()
        };
        let put_row = |set: &ContainerSet, bytes: &[u8]| {
            let db = set.db().expect("db");
            let txn = db.begin_write(5).expect("write");
            txn.open_table(disk::CONTAINERS)
                .expect("table")
                .insert(5u64, bytes)
                .expect("insert");
            txn.commit().expect("commit");
        };
        put_row(&set, b"not json");
        drop(set.shutdown());
        drop(set);

        let set = ContainerSet::load(&root).expect("reload");
        assert!(matches!(
            set.get(5),
            Err(DatanodeError::ContainerUnhealthy { .. })
        ));
        assert_eq!(set.reports()[0].state, "UNHEALTHY");
        for force in [false, true] {
            assert!(matches!(
                set.delete_container(5, force).await,
                Err(DatanodeError::ContainerKeptAside { id: 5, .. })
            ));
        }
        assert!(root.join("5/chunks/1.block").exists(), "files kept");
        assert_eq!(rows(&set, 5), (true, 1), "rows kept");
        // The fault goes away (here: the row is readable again): loaded and served.
        put_row(&set, &good);
        assert_eq!(set.retry_kept_aside().await.expect("retry"), 1);
        let c = set.get(5).expect("loaded");
        assert_eq!((c.state(), c.block_count()), (ContainerState::Closed, 1));
        assert_eq!(c.get_block(1).expect("block").map(|b| b.size), Some(4));
    }

    #[tokio::test]
    async fn a_late_write_never_re_creates_a_deleted_container() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        let c = set.get_or_create(7).await.expect("create");
        commit(&c, 1, b"gone");
        drop(c);
        set.delete_container(7, true).await.expect("delete");
        assert!(matches!(
            set.get_or_create(7).await,
            Err(DatanodeError::ContainerDeleted(7))
        ));
        assert!(matches!(
            set.get(7),
            Err(DatanodeError::ContainerNotFound(7))
        ));
        assert!(!root.join("7").exists());
        // The tombstone is durable.
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        assert!(matches!(
            set.get_or_create(7).await,
            Err(DatanodeError::ContainerDeleted(7))
        ));
        // A copy SCM asks for takes the id back (CLOSED: still no writes).
        let imp = set.begin_import(7).await.expect("begin");
        let c = set.finish_import(imp).await.expect("finish");
        assert_eq!(c.state(), ContainerState::Closed);
        assert!(matches!(
            set.get_or_create(7).await.map(|c| c.state()),
            Ok(ContainerState::Closed)
        ));
        // Other containers are created as before.
        set.get_or_create(8).await.expect("a new container");
    }

    /// Rows of container `id` in the volume database: its summary and its blocks.
    fn rows(set: &ContainerSet, id: u64) -> (bool, usize) {
        let db = set.db().expect("db");
        let txn = db.begin_read(id).expect("read");
        let summary = txn
            .open_table(disk::CONTAINERS)
            .expect("table")
            .get(id)
            .expect("get")
            .is_some();
        let blocks = txn
            .open_table(disk::BLOCKS)
            .expect("table")
            .range(disk::block_range(id))
            .expect("range")
            .count();
        (summary, blocks)
    }

    fn commit(c: &Container, local: u64, data: &[u8]) {
        let f = c.open_block_for_write(local).expect("open");
        c.write_chunk(local, &f, 0, data).expect("write");
        let mut b = block(local, data.len() as u64).0;
        b.block_id = Some(BlockId {
            container_id: c.id(),
            local_id: local,
        });
        c.commit_block(&b, b.block_id.unwrap_or_default())
            .expect("commit");
    }

    #[tokio::test]
    async fn a_data_dir_of_the_per_container_layout_is_migrated() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        // What the older code wrote: metadata/container.json and metadata/blocks.redb.
        let legacy_blocks: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("blocks");
        for (id, state) in [(4u64, "CLOSED"), (5, "OPEN")] {
            let dir = root.join(id.to_string());
            std::fs::create_dir_all(dir.join("metadata")).expect("mkdir");
            std::fs::create_dir_all(dir.join("chunks")).expect("mkdir");
            std::fs::write(
                dir.join("metadata/container.json"),
                format!(r#"{{"id":{id},"state":"{state}","created_ms":17}}"#),
            )
            .expect("json");
            let db = redb::Database::create(dir.join("metadata/blocks.redb")).expect("db");
            let txn = db.begin_write().expect("txn");
            {
                let mut t = txn.open_table(legacy_blocks).expect("table");
                for local in 1..=3u64 {
                    let b = BlockData {
                        block_id: Some(BlockId {
                            container_id: id,
                            local_id: local,
                        }),
                        chunks: vec![],
                        size: local * 10,
                    };
                    std::fs::write(
                        dir.join(format!("chunks/{local}.block")),
                        vec![0u8; local as usize * 10],
                    )
                    .expect("block");
                    t.insert(local, prost::Message::encode_to_vec(&b).as_slice())
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
        let set = ContainerSet::load(&root).expect("load");
        for (id, state) in [(4u64, ContainerState::Closed), (5, ContainerState::Open)] {
            let c = set.get(id).expect("migrated");
            assert_eq!(c.state(), state);
            assert_eq!((c.block_count(), c.used_bytes()), (3, 60));
            assert_eq!(c.get_block(2).expect("get").map(|b| b.size), Some(20));
            assert!(
                !root.join(format!("{id}/metadata")).exists(),
                "old files removed"
            );
            assert_eq!(rows(&set, id), (true, 3));
        }
        commit(&set.get(5).expect("open"), 4, b"more");
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        let c = set.get(5).expect("reloaded");
        assert_eq!((c.block_count(), c.used_bytes()), (4, 64));
        assert_eq!(c.blocks().expect("blocks").len(), 4);
    }

    #[tokio::test]
    async fn an_interrupted_import_and_deletion_leave_nothing_behind() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        let c = set.get_or_create(1).await.expect("create");
        commit(&c, 1, b"one");
        drop(c);

        // A crash during an import: rows written under a summary marked as being built, the
        // block files in a temporary directory.
        let mut imp = set.begin_import(8).await.expect("begin");
        for local in 1..=300u64 {
            let f = imp.create_block_file(local).expect("file");
            std::os::unix::fs::FileExt::write_all_at(&f, b"abc", 0).expect("write");
            let mut b = block(local, 3).0;
            b.block_id = Some(BlockId {
                container_id: 8,
                local_id: local,
            });
            imp.add_block(b, Some(&f)).expect("add");
        }
        assert!(
            matches!(set.get(8), Err(DatanodeError::ContainerNotFound(8))),
            "invisible"
        );
        assert!(set.begin_import(8).await.is_err(), "one build at a time");
        assert!(set.get_or_create(8).await.is_err());
        assert_eq!(rows(&set, 8), (true, 256), "flushed rows, still building");
        imp.crash();
        // A crash after the rename, before the summary committed: a directory without rows.
        std::fs::create_dir_all(root.join("9/chunks")).expect("mkdir");
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        assert!(matches!(
            set.get(8),
            Err(DatanodeError::ContainerNotFound(8))
        ));
        assert!(matches!(
            set.get(9),
            Err(DatanodeError::ContainerNotFound(9))
        ));
        assert_eq!(rows(&set, 8), (false, 0));
        let mut names: Vec<_> = std::fs::read_dir(&root)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec!["1", "container.db"]);

        // A finished import appears whole.
        let mut imp = set.begin_import(8).await.expect("begin");
        let f = imp.create_block_file(3).expect("file");
        std::os::unix::fs::FileExt::write_all_at(&f, b"abc", 0).expect("write");
        let mut b = block(3, 3).0;
        b.block_id = Some(BlockId {
            container_id: 8,
            local_id: 3,
        });
        imp.add_block(b, Some(&f)).expect("add");
        set.finish_import(imp).await.expect("finish");
        assert_eq!(rows(&set, 8), (true, 1));

        // Deleting: rows first, then the directory.
        set.delete_container(1, true).await.expect("delete");
        assert_eq!(rows(&set, 1), (false, 0));
        assert!(!root.join("1").exists());
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        assert!(matches!(
            set.get(1),
            Err(DatanodeError::ContainerNotFound(1))
        ));
        assert_eq!(set.get(8).expect("imported").used_bytes(), 3);
    }

    #[tokio::test]
    async fn changes_since_the_last_report_are_tracked() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        for id in 1..=3 {
            set.get_or_create(id).await.expect("create");
        }
        let batch = set.take_changes(0, 10);
        assert_eq!((batch.changed, batch.removed), (vec![1, 2, 3], vec![]));
        assert_eq!(set.take_changes(0, 10), changes::ChangeBatch::default());
        commit(&set.get(2).expect("c"), 1, b"x");
        set.close_container(3).await.expect("close");
        set.delete_container(3, false).await.expect("delete");
        let batch = set.take_changes(0, 10);
        assert_eq!(
            (batch.changed.clone(), batch.removed.clone()),
            (vec![2], vec![3])
        );
        set.restore_changes(0, batch);
        assert_eq!(set.report(2).map(|r| r.used_bytes), Some(1));
        assert_eq!(set.report(3), None);
        let batch = set.take_changes(0, 10);
        assert_eq!(
            (batch.changed, batch.removed),
            (vec![2], vec![3]),
            "kept for the next heartbeat"
        );
    }

    #[tokio::test]
    async fn every_block_commit_takes_the_next_bcsid_durably_and_copies_keep_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        let c = set.get_or_create(7).await.expect("create");
        assert_eq!(c.bcsid(), 0);
        let f = c.open_block_for_write(1).expect("open");
        c.write_chunk(1, &f, 0, b"hello").expect("write");
        let chunk = |offset, len| ozone_proto::hdds::ChunkInfo {
            offset,
            len,
            checksum: None,
        };
        let (mut b, id) = block(1, 5);
        b.chunks = vec![chunk(0, 5)];
        assert_eq!(c.commit_block(&b, id).expect("commit"), 1);
        assert_eq!(
            c.commit_block(&b, id).expect("again"),
            1,
            "a repeat is no commit"
        );
        // A commit that extends the block is a commit.
        c.write_chunk(1, &f, 5, b"!").expect("append");
        let mut longer = b.clone();
        longer.chunks.push(chunk(5, 1));
        longer.size = 6;
        assert_eq!(c.commit_block(&longer, id).expect("extend"), 2);
        commit(&c, 2, b"more");
        assert_eq!((c.bcsid(), c.report().bcsid), (3, 3));
        // Deleting blocks does not move it; a refused commit neither.
        c.delete_blocks(&[2]).expect("delete");
        assert!(c.commit_block(&b, id).is_err());
        assert_eq!(c.bcsid(), 3);
        set.close_container(7).await.expect("close");
        drop((c, f));
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        assert_eq!(set.get(7).expect("reloaded").bcsid(), 3, "durable");
        // An import carries its source's BCSID; a new container starts at 0.
        let mut imp = set.begin_import(8).await.expect("begin");
        imp.set_bcsid(42);
        assert_eq!(set.finish_import(imp).await.expect("finish").bcsid(), 42);
        assert_eq!(set.get_or_create(9).await.expect("new").bcsid(), 0);
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        assert_eq!(set.report(8).map(|r| r.bcsid), Some(42));
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").expect("fds").count()
    }

    #[tokio::test]
    async fn open_files_do_not_grow_with_containers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("containers");
        let set = ContainerSet::load(&root).expect("load");
        let c = set.get_or_create(1).await.expect("create");
        commit(&c, 1, b"warm");
        let before = open_fds();
        for id in 2..=501 {
            let c = set.get_or_create(id).await.expect("create");
            commit(&c, 1, b"data");
        }
        let after = open_fds();
        drop(c);
        assert!(
            after <= before + 2,
            "{before} open files before 500 containers, {after} after"
        );
        drop(set.shutdown());
        drop(set);
        let set = ContainerSet::load(&root).expect("reload");
        assert_eq!(set.list().len(), 501);
        assert!(open_fds() <= before + 2);
    }
}
