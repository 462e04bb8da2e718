//! OM's namespace through the shared snapshot transport ([`ozone_raft::state_machine::Machine`]
//! over [`crate::StateMachine`]): a large namespace streams through snapshot files, and damaged
//! snapshots are refused without changing state.

use std::path::Path;
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use ozone_raft::state_machine::{Machine, SNAPSHOT_DIR};
use redb::ReadableDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Entry;
use crate::error::OmError;
use crate::state_machine::StateMachine;
use crate::state_machine::tests::script;
use crate::store::{KEYS, key_key};

/// The test script's namespace plus `extra` keys (copies of a real key record), with a
/// raft log id: `(term, index)` = (2, script length + 1).
fn namespace(dir: &Path, extra: usize) -> StateMachine {
    let sm = StateMachine::open(dir).expect("open");
    for (i, c) in script().iter().enumerate() {
        sm.apply(i as u64 + 1, c).expect("apply");
    }
    let record = {
        let txn = sm.db().begin_read().expect("read");
        let t = txn.open_table(KEYS).expect("keys");
        let v = t.get(key_key("vol", "bkt", "a/1").as_slice()).expect("get");
        v.expect("a/1 exists").value().to_vec()
    };
    let txn = sm.db().begin_write().expect("write");
    {
        let mut t = txn.open_table(KEYS).expect("keys");
        for i in 0..extra {
            let k = key_key("vol", "bkt", &format!("many/{i:08}"));
            t.insert(k.as_slice(), record.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
    let log_id = LogId::new(CommittedLeaderId::new(2, 1), script().len() as u64 + 1);
    sm.apply_entries(vec![Entry {
        log_id,
        payload: EntryPayload::Blank,
    }])
    .expect("blank entry");
    sm
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_large_namespace_streams_through_snapshot_files() {
    const KEYS_N: usize = 50_000;
    let (d1, d2) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let leader = Arc::new(namespace(d1.path(), KEYS_N));
    let dir1 = d1.path().join(SNAPSHOT_DIR);
    let mut m1 = Machine::open(leader.clone(), &dir1).expect("open");
    assert!(m1.get_current_snapshot().await.expect("current").is_none());

    // Built twice: one snapshot file is kept, named in current.json.
    m1.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    let built = m1
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build again");
    let meta = built.meta.clone();
    let applied = leader.raft_applied().expect("applied");
    assert_eq!(meta.last_log_id, applied.last_applied);
    assert_eq!(meta.last_membership, applied.membership);
    let names = files_in(&dir1);
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[0], "current.json");
    assert!(names[1].starts_with("snapshot-") && names[1].ends_with(".bin"));
    let mut current = m1
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some");
    assert_eq!(current.meta, meta);
    let len = current.snapshot.metadata().await.expect("meta").len();
    assert!(len > (KEYS_N * 100) as u64, "{len} bytes");
    assert_eq!(meta.snapshot_id, format!("2-{}-{len}", script().len() + 1));

    // A follower with other state receives it in chunks and installs it.
    let follower = Arc::new(StateMachine::open(d2.path()).expect("open"));
    for (i, c) in script()[..4].iter().enumerate() {
        follower.apply(i as u64 + 1, c).expect("apply");
    }
    let dir2 = d2.path().join(SNAPSHOT_DIR);
    let mut m2 = Machine::open(follower.clone(), &dir2).expect("open");
    // An abandoned receive is replaced (its file removed) by the next one.
    m2.begin_receiving_snapshot().await.expect("begin");
    let mut recv = m2.begin_receiving_snapshot().await.expect("begin");
    assert_eq!(files_in(&dir2).len(), 1);
    let mut chunk = vec![0u8; 3 << 20];
    let mut sent = 0;
    loop {
        let n = current.snapshot.read(&mut chunk).await.expect("read");
        if n == 0 {
            break;
        }
        recv.write_all(&chunk[..n]).await.expect("write");
        sent += n as u64;
    }
    recv.flush().await.expect("flush");
    assert_eq!(sent, len);
    m2.install_snapshot(&meta, recv).await.expect("install");
    assert_eq!(
        follower.snapshot().expect("snap").dump().expect("dump"),
        leader.snapshot().expect("snap").dump().expect("dump")
    );
    assert_eq!(follower.raft_applied().expect("applied"), applied);
    assert_eq!(
        follower
            .snapshot()
            .expect("snap")
            .counts()
            .expect("counts")
            .keys,
        KEYS_N as u64 + 2
    );
    // The received file is the follower's snapshot now; no temporary file is left.
    let names = files_in(&dir2);
    assert_eq!(names.len(), 2, "{names:?}");
    let mut c2 = m2
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some");
    assert_eq!(c2.meta, meta);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    c2.snapshot.read_to_end(&mut a).await.expect("read");
    let mut again = m1
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some");
    again.snapshot.read_to_end(&mut b).await.expect("read");
    assert_eq!(a, b);
}

#[test]
fn damaged_snapshots_are_refused_without_changing_state() {
    let (d1, d2) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let leader = namespace(d1.path(), 10);
    let mut data = Vec::new();
    let (applied, bytes) = leader.export_to(&mut data).expect("export");
    assert_eq!(bytes, data.len() as u64);
    let follower = namespace(d2.path(), 3);
    let before = follower.snapshot().expect("snap").dump().expect("dump");
    let install = |d: &[u8]| follower.install_from(&applied, d, d.len() as u64);

    assert!(install(&data[..data.len() - 1]).is_err(), "truncated");
    assert!(install(b"OZONE-OM-SNAPSHOT-0\n").is_err(), "other magic");
    // A row claiming a 4 GiB key in a few bytes is refused before it is allocated.
    let mut huge = crate::state_machine::SNAPSHOT_MAGIC.to_vec();
    huge.extend_from_slice(b"\x04keys\xff\xff\xff\xffabc");
    assert!(matches!(install(&huge), Err(OmError::Corrupt { .. })));
    let mut unknown = crate::state_machine::SNAPSHOT_MAGIC.to_vec();
    unknown.extend_from_slice(b"\x04nope\x00\x00\x00\x01k\x00\x00\x00\x01v");
    assert!(install(&unknown).is_err(), "unknown table");
    // Claiming more bytes than the reader has.
    assert!(
        follower
            .install_from(&applied, data.as_slice(), data.len() as u64 + 1)
            .is_err()
    );
    assert_eq!(
        follower.snapshot().expect("snap").dump().expect("dump"),
        before
    );
    install(&data).expect("install");
    assert_eq!(
        follower.snapshot().expect("snap").dump().expect("dump"),
        leader.snapshot().expect("snap").dump().expect("dump")
    );
}
