//! Keys: open, allocate, commit, lookup, overwrite, delete; SCM failures.

use std::sync::atomic::Ordering;

use om_client::OmStatus;
use om_client::proto::*;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_lifecycle() {
    let c = cluster().await;
    let om = &c.client;
    create_bucket(om, "data", "alice").await;

    // 2.5 MiB with 1 MiB blocks: 3 blocks; offsets and lengths 0 until commit.
    let open = om
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "data".into(),
            key: "dir/obj".into(),
            size_hint: 5 * MIB / 2,
            ..Default::default()
        })
        .await
        .expect("open");
    assert_eq!(open.block_size, BLOCK_SIZE);
    assert_eq!(open.locations.len(), 3);
    assert!(
        open.locations
            .iter()
            .all(|l| l.offset == 0 && l.length == 0)
    );
    assert!(
        open.locations
            .iter()
            .all(|l| l.pipeline.as_ref().is_some_and(|p| p.nodes.len() == 1))
    );
    let pre: Vec<u64> = open
        .locations
        .iter()
        .map(|l| l.block_id.as_ref().expect("block").local_id)
        .collect();

    // A huge hint is capped; no hint still gets one block.
    for (hint, want) in [(100 * MIB, MAX_PREALLOC as usize), (0, 1)] {
        let o = om
            .open_key(OpenKeyRequest {
                volume: VOL.into(),
                bucket: "data".into(),
                key: "other".into(),
                size_hint: hint,
                ..Default::default()
            })
            .await
            .expect("open");
        assert_eq!(o.locations.len(), want);
    }

    let extra = om
        .allocate_block(AllocateKeyBlockRequest {
            volume: VOL.into(),
            bucket: "data".into(),
            key: "dir/obj".into(),
            client_id: open.client_id,
            exclude_datanodes: vec!["dn-2".into()],
            size: 0,
        })
        .await
        .expect("allocate block");
    let extra_id = extra.block_id.as_ref().expect("block").local_id;

    // Commit using blocks 0 and the extra one; block 1 and 2 were not used.
    let commit = CommitKeyRequest {
        volume: VOL.into(),
        bucket: "data".into(),
        key: "dir/obj".into(),
        client_id: open.client_id,
        locations: vec![
            KeyLocation {
                length: MIB,
                ..open.locations[0].clone()
            },
            KeyLocation {
                length: 5,
                ..extra.clone()
            },
        ],
        size: MIB + 5,
        etag: "\"abc\"".into(),
        metadata: [("Content-Type".to_string(), "text/plain".to_string())].into(),
        ..Default::default()
    };
    let info = om.commit_key(commit.clone()).await.expect("commit");
    assert_eq!(info.size, MIB + 5);
    assert_eq!(info.etag, "abc");
    assert_eq!(info.owner, "alice");
    assert_eq!(local_ids(&info), [pre[0], extra_id]);
    assert_eq!(info.locations[1].offset, MIB);
    let mut unused = vec![pre[1], pre[2]];
    unused.sort();
    assert_eq!(deleted_blocks(&c.om), unused);

    // The open key is gone: committing again is KEY_NOT_FOUND.
    assert_status(om.commit_key(commit).await, OmStatus::KeyNotFound);

    let got = om.lookup_key(VOL, "data", "dir/obj").await.expect("lookup");
    assert_eq!(got, info);
    assert_eq!(
        got.metadata.get("Content-Type").map(String::as_str),
        Some("text/plain")
    );

    // Overwrite: the old blocks go to the deleted table.
    let newer = put_key(om, "data", "dir/obj", 10, "def").await;
    assert_eq!(newer.etag, "def");
    let deleted = deleted_blocks(&c.om);
    assert!(
        deleted.contains(&pre[0]) && deleted.contains(&extra_id),
        "{deleted:?}"
    );

    // A commit must use blocks of its own open key and add up to its size.
    let o = om
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "data".into(),
            key: "bad".into(),
            size_hint: 1,
            ..Default::default()
        })
        .await
        .expect("open");
    let mut foreign = commit_for(&o, "bad", 1);
    foreign.locations[0].block_id = newer.locations[0].block_id;
    assert_status(om.commit_key(foreign).await, OmStatus::InvalidRequest);
    let mut wrong_size = commit_for(&o, "bad", 1);
    wrong_size.size = 2;
    assert_status(om.commit_key(wrong_size).await, OmStatus::InvalidRequest);

    // Delete; deleting a missing key succeeds.
    om.delete_key(VOL, "data", "dir/obj").await.expect("delete");
    assert_status(
        om.lookup_key(VOL, "data", "dir/obj").await,
        OmStatus::KeyNotFound,
    );
    assert!(deleted_blocks(&c.om).contains(&local_ids(&newer)[0]));
    om.delete_key(VOL, "data", "dir/obj")
        .await
        .expect("delete missing");
    assert_status(
        om.lookup_key(VOL, "nope", "x").await,
        OmStatus::BucketNotFound,
    );

    put_key(om, "data", "a", 1, "1").await;
    put_key(om, "data", "b", 1, "2").await;
    let results = om
        .delete_keys(VOL, "data", vec!["a".into(), "missing".into(), "b".into()])
        .await
        .expect("delete keys");
    assert_eq!(results.len(), 3);
    assert!(
        results.iter().all(|r| r.status == OmStatus::Ok as i32),
        "{results:?}"
    );
    assert_status(om.lookup_key(VOL, "data", "a").await, OmStatus::KeyNotFound);
    assert_status(om.lookup_key(VOL, "data", "b").await, OmStatus::KeyNotFound);
    c.om.stop().await.expect("stop");
}

fn commit_for(o: &OpenKeyResponse, key: &str, size: u64) -> CommitKeyRequest {
    CommitKeyRequest {
        volume: VOL.into(),
        bucket: "data".into(),
        key: key.into(),
        client_id: o.client_id,
        locations: vec![KeyLocation {
            length: size,
            ..o.locations[0].clone()
        }],
        size,
        etag: "x".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scm_down_or_in_safe_mode_is_scm_unavailable() {
    let c = cluster().await;
    create_bucket(&c.client, "data", "alice").await;
    let req = OpenKeyRequest {
        volume: VOL.into(),
        bucket: "data".into(),
        key: "k".into(),
        size_hint: 1,
        ..Default::default()
    };

    c.scm.scm.safe_mode.store(true, Ordering::SeqCst);
    let e = assert_status(
        c.client.open_key(req.clone()).await,
        OmStatus::ScmUnavailable,
    );
    assert!(e.is_unavailable());
    assert!(e.to_string().contains("safe mode"), "{e}");
    c.scm.scm.safe_mode.store(false, Ordering::SeqCst);
    c.client.open_key(req.clone()).await.expect("SCM back");
    c.om.stop().await.expect("stop");

    // An OM whose SCM address nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = l.local_addr().expect("addr").to_string();
    drop(l);
    let dir = tempfile::tempdir().expect("tmp");
    let (om, client) = start_om(dir.path(), &dead).await;
    create_bucket(&client, "data", "alice").await;
    let started = std::time::Instant::now();
    let e = assert_status(client.open_key(req).await, OmStatus::ScmUnavailable);
    assert!(e.is_unavailable());
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // Nothing was recorded.
    let counts = om.manager().counts().await.expect("counts");
    assert_eq!(counts.open_keys, 0);
    om.stop().await.expect("stop");
}
