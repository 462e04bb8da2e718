//! Multipart uploads: initiate, parts, list, complete (ETag as AWS computes it), errors, abort.

use md5::{Digest, Md5};
use om_client::proto::*;
use om_client::{OmClient, OmStatus};

use crate::common::*;

const PART: u64 = 5 * MIB;

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

async fn initiate(om: &OmClient, key: &str) -> MultipartUploadInfo {
    om.initiate_multipart_upload(InitiateMultipartUploadRequest {
        volume: VOL.into(),
        bucket: "mpu".into(),
        key: key.into(),
        owner: "alice".into(),
        replication: 0,
        metadata: [("Content-Type".to_string(), "video/mp4".to_string())].into(),
        ..Default::default()
    })
    .await
    .expect("initiate")
}

/// Opens and commits part `n` of `size` bytes with `etag`; returns the part's block ids.
async fn put_part(
    om: &OmClient,
    up: &MultipartUploadInfo,
    n: u32,
    size: u64,
    etag: &str,
) -> Result<Vec<u64>, om_client::OmClientError> {
    let open = om
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: up.key.clone(),
            size_hint: size,
            upload_id: up.upload_id.clone(),
            part_number: n,
            ..Default::default()
        })
        .await?;
    // Preallocation is capped: ask for more blocks while the part does not fit.
    let mut blocks = open.locations.clone();
    while (blocks.len() as u64) * open.block_size < size {
        blocks.push(
            om.allocate_block(AllocateKeyBlockRequest {
                volume: VOL.into(),
                bucket: "mpu".into(),
                key: up.key.clone(),
                client_id: open.client_id,
                exclude_datanodes: Vec::new(),
                size: 0,
            })
            .await?,
        );
    }
    let mut left = size;
    let mut locations = Vec::new();
    for l in &blocks {
        let len = left.min(open.block_size);
        locations.push(KeyLocation {
            length: len,
            ..l.clone()
        });
        left -= len;
    }
    let ids = locations
        .iter()
        .map(|l| l.block_id.as_ref().map_or(0, |b| b.local_id))
        .collect();
    om.commit_key(CommitKeyRequest {
        volume: VOL.into(),
        bucket: "mpu".into(),
        key: up.key.clone(),
        client_id: open.client_id,
        locations,
        size,
        etag: etag.into(),
        upload_id: up.upload_id.clone(),
        part_number: n,
        ..Default::default()
    })
    .await?;
    Ok(ids)
}

fn complete_req(up: &MultipartUploadInfo, parts: &[(u32, &str)]) -> CompleteMultipartUploadRequest {
    CompleteMultipartUploadRequest {
        volume: VOL.into(),
        bucket: "mpu".into(),
        key: up.key.clone(),
        upload_id: up.upload_id.clone(),
        parts: parts
            .iter()
            .map(|(n, e)| CompletePart {
                part_number: *n,
                etag: e.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload() {
    let c = cluster().await;
    let om = &c.client;
    create_bucket(om, "mpu", "alice").await;
    let up = initiate(om, "movie.mp4").await;
    assert_eq!(up.owner, "alice");
    assert!(!up.upload_id.is_empty());

    let (e1, e2, e3) = (md5_hex(b"one"), md5_hex(b"two"), md5_hex(b"three"));
    let p1_first = put_part(om, &up, 1, PART, "stale").await.expect("part 1");
    // Re-uploading a part replaces it; the old blocks are released.
    let p1 = put_part(om, &up, 1, PART, &e1).await.expect("part 1 again");
    assert!(p1_first.iter().all(|b| deleted_blocks(&c.om).contains(b)));
    let p2 = put_part(om, &up, 2, PART + 3, &e2).await.expect("part 2");
    let p4 = put_part(om, &up, 4, 100, &e3).await.expect("part 4");
    assert_eq!(p1.len(), 5);

    // ListParts pages.
    let page = om
        .list_parts(ListPartsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: up.key.clone(),
            upload_id: up.upload_id.clone(),
            part_number_marker: 0,
            max_parts: 2,
        })
        .await
        .expect("list parts");
    let nums: Vec<u32> = page.parts.iter().map(|p| p.part_number).collect();
    assert_eq!(nums, [1, 2]);
    assert!(page.truncated);
    assert_eq!(page.next_part_number_marker, 2);
    assert_eq!(
        page.upload.as_ref().map(|u| u.owner.as_str()),
        Some("alice")
    );
    assert_eq!(page.parts[1].etag, e2);
    assert_eq!(page.parts[1].size, PART + 3);
    let page = om
        .list_parts(ListPartsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: up.key.clone(),
            upload_id: up.upload_id.clone(),
            part_number_marker: 2,
            max_parts: 2,
        })
        .await
        .expect("list parts");
    assert_eq!(page.parts.len(), 1);
    assert!(!page.truncated);

    let uploads = om
        .list_multipart_uploads(ListMultipartUploadsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            prefix: "movie".into(),
            max_uploads: 0,
            ..Default::default()
        })
        .await
        .expect("list uploads");
    assert_eq!(uploads.uploads.len(), 1);
    assert_eq!(uploads.uploads[0].upload_id, up.upload_id);

    // Errors.
    assert_status(
        om.complete_multipart_upload(complete_req(&up, &[(2, &e2), (1, &e1)]))
            .await,
        OmStatus::InvalidPartOrder,
    );
    assert_status(
        om.complete_multipart_upload(complete_req(&up, &[(1, &e1), (1, &e1)]))
            .await,
        OmStatus::InvalidPartOrder,
    );
    assert_status(
        om.complete_multipart_upload(complete_req(&up, &[(1, &e2), (2, &e2)]))
            .await,
        OmStatus::InvalidPart,
    );
    assert_status(
        om.complete_multipart_upload(complete_req(&up, &[(1, &e1), (3, &e2)]))
            .await,
        OmStatus::InvalidPart,
    );
    // Part 4 (100 bytes) is fine only as the last part.
    assert_status(
        om.complete_multipart_upload(complete_req(&up, &[(1, &e1), (4, &e3), (5, &e3)]))
            .await,
        OmStatus::InvalidPart,
    );
    assert_status(
        om.complete_multipart_upload(complete_req(&up, &[])).await,
        OmStatus::InvalidRequest,
    );

    // Complete with parts 1 and 2 (quoted ETags are fine); part 4 is left out.
    let q1 = format!("\"{e1}\"");
    let key = om
        .complete_multipart_upload(complete_req(&up, &[(1, &q1), (2, &e2)]))
        .await
        .expect("complete");
    let mut h = Md5::new();
    h.update(hex::decode(&e1).expect("hex"));
    h.update(hex::decode(&e2).expect("hex"));
    assert_eq!(key.etag, format!("{}-2", hex::encode(h.finalize())));
    assert_eq!(key.size, 2 * PART + 3);
    assert_eq!(key.parts_count, 2);
    assert_eq!(key.owner, "alice");
    assert_eq!(
        key.metadata.get("Content-Type").map(String::as_str),
        Some("video/mp4")
    );
    assert_eq!(local_ids(&key), [p1.clone(), p2.clone()].concat());
    let mut expect_offset = 0;
    for l in &key.locations {
        assert_eq!(l.offset, expect_offset);
        expect_offset += l.length;
    }
    assert_eq!(expect_offset, key.size);
    assert!(key.locations[..5].iter().all(|l| l.part_number == 1));
    assert!(key.locations[5..].iter().all(|l| l.part_number == 2));
    assert_eq!(
        om.lookup_key(VOL, "mpu", "movie.mp4")
            .await
            .expect("lookup"),
        key
    );
    assert!(
        deleted_blocks(&c.om).contains(&p4[0]),
        "unlisted part released"
    );

    // The upload is gone; completing it again answers the same key, as S3 does.
    assert_eq!(
        om.complete_multipart_upload(complete_req(&up, &[(1, &e1)]))
            .await
            .expect("complete again"),
        key
    );
    assert_status(
        put_part(om, &up, 3, 1, &e1).await,
        OmStatus::NoSuchMultipartUpload,
    );

    // ENTITY_TOO_SMALL: a small part that is not the last.
    let small = initiate(om, "small").await;
    put_part(om, &small, 1, 1000, &e1).await.expect("part");
    put_part(om, &small, 2, 1000, &e2).await.expect("part");
    assert_status(
        om.complete_multipart_upload(complete_req(&small, &[(1, &e1), (2, &e2)]))
            .await,
        OmStatus::EntityTooSmall,
    );

    // A part still being written when the upload is aborted: its blocks are released and its
    // commit answers NO_SUCH_MULTIPART_UPLOAD.
    let racing = om
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: "small".into(),
            size_hint: 10,
            upload_id: small.upload_id.clone(),
            part_number: 3,
            ..Default::default()
        })
        .await
        .expect("open part 3");
    let racing_block = racing.locations[0]
        .block_id
        .as_ref()
        .expect("block")
        .local_id;

    // Abort: parts released; then the upload is unknown.
    let small_parts = om
        .list_parts(ListPartsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: "small".into(),
            upload_id: small.upload_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list parts");
    assert_eq!(small_parts.parts.len(), 2);
    om.abort_multipart_upload(VOL, "mpu", "small", &small.upload_id)
        .await
        .expect("abort");
    assert_status(
        om.abort_multipart_upload(VOL, "mpu", "small", &small.upload_id)
            .await,
        OmStatus::NoSuchMultipartUpload,
    );
    assert_status(
        om.list_parts(ListPartsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: "small".into(),
            upload_id: small.upload_id.clone(),
            ..Default::default()
        })
        .await,
        OmStatus::NoSuchMultipartUpload,
    );
    assert!(deleted_blocks(&c.om).contains(&racing_block));
    assert_status(
        om.commit_key(CommitKeyRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: "small".into(),
            client_id: racing.client_id,
            locations: vec![KeyLocation {
                length: 10,
                ..racing.locations[0].clone()
            }],
            size: 10,
            etag: e1.clone(),
            upload_id: small.upload_id.clone(),
            part_number: 3,
            ..Default::default()
        })
        .await,
        OmStatus::NoSuchMultipartUpload,
    );
    assert_eq!(c.om.manager().counts().await.expect("counts").open_keys, 0);
    assert_status(
        om.abort_multipart_upload(VOL, "mpu", "small", "no-such-id")
            .await,
        OmStatus::NoSuchMultipartUpload,
    );
    assert_status(
        om.open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            key: "small".into(),
            upload_id: small.upload_id.clone(),
            part_number: 1,
            ..Default::default()
        })
        .await,
        OmStatus::NoSuchMultipartUpload,
    );
    let uploads = om
        .list_multipart_uploads(ListMultipartUploadsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            ..Default::default()
        })
        .await
        .expect("list uploads");
    assert!(uploads.uploads.is_empty());
    c.om.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_uploads_with_delimiter_and_markers() {
    let c = cluster().await;
    let om = &c.client;
    create_bucket(om, "mpu", "alice").await;
    let mut ups = Vec::new();
    for k in ["a/1", "a/2", "b", "c/x/1", "c/y", "d", "d"] {
        ups.push(initiate(om, k).await);
    }
    // Two uploads of one key list in the order they were started.
    assert!(
        ups[5].upload_id < ups[6].upload_id || ups[5].creation_time_ms == ups[6].creation_time_ms
    );
    let list = |prefix: &str, delimiter: &str, key_marker: &str, id_marker: &str, max: u32| {
        om.list_multipart_uploads(ListMultipartUploadsRequest {
            volume: VOL.into(),
            bucket: "mpu".into(),
            prefix: prefix.into(),
            max_uploads: max,
            delimiter: delimiter.into(),
            key_marker: key_marker.into(),
            upload_id_marker: id_marker.into(),
        })
    };
    let keys = |r: &ListMultipartUploadsResponse| {
        r.uploads.iter().map(|u| u.key.clone()).collect::<Vec<_>>()
    };
    let r = list("", "/", "", "", 0).await.expect("list");
    assert_eq!(r.common_prefixes, ["a/", "c/"]);
    assert_eq!(keys(&r), ["b", "d", "d"]);
    assert!(!r.truncated);
    let r = list("c/", "/", "", "", 0).await.expect("list");
    assert_eq!(
        (r.common_prefixes.clone(), keys(&r)),
        (vec!["c/x/".to_string()], vec!["c/y".to_string()])
    );
    // Paging: 2 entries (uploads or prefixes) a page, markers from the previous page.
    let r = list("", "/", "", "", 2).await.expect("page 1");
    assert!(r.truncated);
    assert_eq!(
        (r.common_prefixes.clone(), keys(&r)),
        (vec!["a/".to_string()], vec!["b".to_string()])
    );
    assert_eq!(r.next_key_marker, "b");
    let r = list("", "/", &r.next_key_marker, &r.next_upload_id_marker, 2)
        .await
        .expect("page 2");
    assert_eq!(
        (r.common_prefixes.clone(), keys(&r)),
        (vec!["c/".to_string()], vec!["d".to_string()])
    );
    assert_eq!(
        (r.next_key_marker.as_str(), r.next_upload_id_marker.as_str()),
        ("d", ups[5].upload_id.as_str())
    );
    let r = list("", "/", &r.next_key_marker, &r.next_upload_id_marker, 2)
        .await
        .expect("page 3");
    assert_eq!(keys(&r), ["d"]);
    assert_eq!(r.uploads[0].upload_id, ups[6].upload_id);
    assert!(!r.truncated);
    // A common prefix as key marker skips everything under it; a key marker alone skips its uploads.
    let r = list("", "/", "a/", "", 0).await.expect("list");
    assert_eq!(
        (r.common_prefixes.clone(), keys(&r)),
        (
            vec!["c/".to_string()],
            vec!["b".to_string(), "d".to_string(), "d".to_string()]
        )
    );
    let r = list("", "", "d", "", 0).await.expect("list");
    assert!(r.uploads.is_empty() && !r.truncated);
    assert_status(
        om.list_multipart_uploads(ListMultipartUploadsRequest {
            volume: VOL.into(),
            bucket: "nope".into(),
            ..Default::default()
        })
        .await,
        OmStatus::BucketNotFound,
    );
    c.om.stop().await.expect("stop");
}
