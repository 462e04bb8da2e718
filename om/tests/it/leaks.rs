//! Nothing leaks: open keys never committed expire and their blocks go to SCM; an admin lists
//! and aborts incomplete multipart uploads and sees open keys; opening a key preallocates at
//! most what the configuration allows (by default one block), the rest comes as it is written.

use std::time::{Duration, Instant};

use om_client::OmStatus;
use om_client::proto::*;
use ozone_common::OzoneConfig;
use ozone_common::config::keys;

use crate::common::*;

async fn open(om: &om_client::OmClient, bucket: &str, key: &str, hint: u64) -> OpenKeyResponse {
    om.open_key(OpenKeyRequest {
        volume: VOL.into(),
        bucket: bucket.into(),
        key: key.into(),
        size_hint: hint,
        ..Default::default()
    })
    .await
    .expect("open")
}

fn ids(locations: &[KeyLocation]) -> Vec<u64> {
    locations
        .iter()
        .map(|l| l.block_id.as_ref().map_or(0, |b| b.local_id))
        .collect()
}

/// Every local id the fake SCM was asked to delete.
fn sent_to_scm(c: &Cluster) -> Vec<u64> {
    c.scm
        .scm
        .deleted
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|(_, ids)| ids.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_keys_older_than_the_threshold_expire_and_their_blocks_go_to_scm() {
    let c = cluster_with(|cfg| {
        cfg.set(keys::OZONE_OM_OPEN_KEY_EXPIRE_THRESHOLD, "1s")
            .set(keys::OZONE_OM_OPEN_KEY_CLEANUP_SERVICE_INTERVAL, "200ms")
            .set(keys::OZONE_OM_OPEN_KEY_CLEANUP_LIMIT_PER_TASK, "2")
            .set(keys::OZONE_BLOCK_DELETING_SERVICE_INTERVAL, "200ms");
    })
    .await;
    let om = &c.client;
    create_bucket(om, "leaky", "alice").await;

    // Three abandoned writes (more than one cleanup command takes), one with an extra block.
    let mut abandoned = Vec::new();
    for k in ["a", "b", "c"] {
        let o = open(om, "leaky", k, 3 * MIB).await;
        abandoned.extend(ids(&o.locations));
        if k == "a" {
            let extra = om
                .allocate_block(AllocateKeyBlockRequest {
                    volume: VOL.into(),
                    bucket: "leaky".into(),
                    key: "a".into(),
                    client_id: o.client_id,
                    ..Default::default()
                })
                .await
                .expect("allocate");
            abandoned.extend(ids(std::slice::from_ref(&extra)));
        }
    }
    let first = open(om, "leaky", "a", MIB).await;
    let committed = put_key(om, "leaky", "kept", MIB, "e").await;

    // Within a few intervals after the threshold the abandoned open keys are gone, and their
    // blocks were handed to SCM (and left OM's deleted-blocks table).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sent = sent_to_scm(&c);
        let open_keys =
            c.om.state_machine()
                .snapshot()
                .expect("snap")
                .counts()
                .expect("counts")
                .open_keys;
        if open_keys == 0 && abandoned.iter().all(|b| sent.contains(b)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "open keys {open_keys}, abandoned {abandoned:?}, sent to SCM {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The committed key and its blocks are untouched.
    let sent = sent_to_scm(&c);
    assert!(local_ids(&committed).iter().all(|b| !sent.contains(b)));
    assert_eq!(
        om.lookup_key(VOL, "leaky", "kept").await.expect("kept"),
        committed
    );
    // Committing an expired open key: KEY_NOT_FOUND.
    assert_status(
        om.commit_key(CommitKeyRequest {
            volume: VOL.into(),
            bucket: "leaky".into(),
            key: "a".into(),
            client_id: first.client_id,
            locations: vec![KeyLocation {
                length: 1,
                ..first.locations[0].clone()
            }],
            size: 1,
            etag: "e".into(),
            ..Default::default()
        })
        .await,
        OmStatus::KeyNotFound,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_key_preallocates_one_block_by_default() {
    let default = OzoneConfig::default().get(keys::OZONE_KEY_PREALLOCATION_MAX_BLOCKS);
    let c = cluster_with(|cfg| {
        cfg.set(keys::OZONE_KEY_PREALLOCATION_MAX_BLOCKS, default);
    })
    .await;
    let om = &c.client;
    create_bucket(om, "pre", "alice").await;
    // A 100 MiB write with 1 MiB blocks: one block up front, the others as it asks.
    let o = open(om, "pre", "big", 100 * MIB).await;
    assert_eq!(o.locations.len(), 1);
    let more = om
        .allocate_block(AllocateKeyBlockRequest {
            volume: VOL.into(),
            bucket: "pre".into(),
            key: "big".into(),
            client_id: o.client_id,
            size: 99 * MIB,
            ..Default::default()
        })
        .await
        .expect("allocate");
    let info = om
        .commit_key(CommitKeyRequest {
            volume: VOL.into(),
            bucket: "pre".into(),
            key: "big".into(),
            client_id: o.client_id,
            locations: vec![
                KeyLocation {
                    length: MIB,
                    ..o.locations[0].clone()
                },
                KeyLocation { length: 7, ..more },
            ],
            size: MIB + 7,
            etag: "e".into(),
            ..Default::default()
        })
        .await
        .expect("commit");
    assert_eq!(info.locations.len(), 2);
    // Nothing was allocated that the key does not use.
    assert!(deleted_blocks(&c.om).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_lists_and_aborts_incomplete_multipart_uploads() {
    let c = cluster().await;
    let om = &c.client;
    create_bucket(om, "mpa", "alice").await;
    create_bucket(om, "mpb", "bob").await;
    let initiate = |bucket: &'static str, key: &'static str| {
        om.initiate_multipart_upload(InitiateMultipartUploadRequest {
            volume: VOL.into(),
            bucket: bucket.into(),
            key: key.into(),
            ..Default::default()
        })
    };
    let u1 = initiate("mpa", "one").await.expect("initiate");
    let u2 = initiate("mpb", "two").await.expect("initiate");
    // A part committed and a part whose write never finished.
    let part = |n: u32| OpenKeyRequest {
        volume: VOL.into(),
        bucket: "mpa".into(),
        key: "one".into(),
        size_hint: 10,
        upload_id: u1.upload_id.clone(),
        part_number: n,
        ..Default::default()
    };
    let p1 = om.open_key(part(1)).await.expect("open part 1");
    om.commit_key(CommitKeyRequest {
        volume: VOL.into(),
        bucket: "mpa".into(),
        key: "one".into(),
        client_id: p1.client_id,
        locations: vec![KeyLocation {
            length: 10,
            ..p1.locations[0].clone()
        }],
        size: 10,
        etag: "0cc175b9c0f1b6a831c399e269772661".into(),
        upload_id: u1.upload_id.clone(),
        part_number: 1,
        ..Default::default()
    })
    .await
    .expect("commit part 1");
    let p2 = om.open_key(part(2)).await.expect("open part 2");

    let list = |volume: &str, bucket: &str, older_than_ms: u64| AdminListMultipartUploadsRequest {
        volume: volume.into(),
        bucket: bucket.into(),
        older_than_ms,
        ..Default::default()
    };
    let all = om
        .admin_list_multipart_uploads(list("", "", 0))
        .await
        .expect("list");
    let names: Vec<(String, String)> = all
        .uploads
        .iter()
        .map(|u| (u.bucket.clone(), u.upload_id.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("mpa".to_string(), u1.upload_id.clone()),
            ("mpb".to_string(), u2.upload_id.clone())
        ]
    );
    assert!(all.next_token.is_empty());
    let one = om
        .admin_list_multipart_uploads(list(VOL, "mpb", 0))
        .await
        .expect("list");
    assert_eq!(one.uploads.len(), 1);
    assert_eq!(one.uploads[0].key, "two");
    let none = om
        .admin_list_multipart_uploads(list("", "", 3_600_000))
        .await
        .expect("list");
    assert!(none.uploads.is_empty(), "none is an hour old");
    // Pages of one.
    let page = om
        .admin_list_multipart_uploads(AdminListMultipartUploadsRequest {
            max: 1,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(page.uploads.len(), 1);
    let rest = om
        .admin_list_multipart_uploads(AdminListMultipartUploadsRequest {
            max: 1,
            start_after: page.next_token.clone(),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(rest.uploads[0].upload_id, u2.upload_id);
    assert_status(
        om.admin_list_multipart_uploads(list("", "mpa", 0)).await,
        OmStatus::InvalidRequest,
    );

    // The unfinished part shows among the open keys, oldest first.
    let open_keys = om
        .admin_list_open_keys(AdminListOpenKeysRequest::default())
        .await
        .expect("open keys");
    assert_eq!(open_keys.open_keys.len(), 1);
    let k = &open_keys.open_keys[0];
    assert_eq!(
        (
            k.key.as_str(),
            k.upload_id.as_str(),
            k.part_number,
            k.client_id
        ),
        ("one", u1.upload_id.as_str(), 2, p2.client_id)
    );

    // Aborting removes the upload, its parts and the unfinished part's open key; their blocks
    // are released.
    om.abort_multipart_upload(VOL, "mpa", "one", &u1.upload_id)
        .await
        .expect("abort");
    let after = om
        .admin_list_multipart_uploads(list("", "", 0))
        .await
        .expect("list");
    assert_eq!(after.uploads.len(), 1);
    assert_eq!(after.uploads[0].upload_id, u2.upload_id);
    assert!(
        om.admin_list_open_keys(AdminListOpenKeysRequest::default())
            .await
            .expect("open keys")
            .open_keys
            .is_empty()
    );
    let released = deleted_blocks(&c.om);
    for b in ids(&p1.locations).into_iter().chain(ids(&p2.locations)) {
        assert!(released.contains(&b), "{b} in {released:?}");
    }
}
