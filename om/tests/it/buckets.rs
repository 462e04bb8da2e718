//! Volumes and buckets: creation, ownership on duplicates, listing, deletion rules.

use om_client::OmStatus;
use om_client::proto::*;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_and_volumes() {
    let c = cluster().await;
    let om = &c.client;

    // The S3 volume exists from the first start.
    let s3v = om.info_volume(VOL).await.expect("s3v exists");
    assert_eq!(s3v.owner, "admin");

    let b = om
        .create_bucket(CreateBucketRequest {
            volume: VOL.into(),
            bucket: "photos".into(),
            owner: "alice".into(),
            replication: 0,
        })
        .await
        .expect("create bucket");
    assert_eq!((b.owner.as_str(), b.replication), ("alice", 3));

    // Duplicate by the same owner: BucketAlreadyOwnedByYou.
    let dup = |owner: &str| CreateBucketRequest {
        volume: VOL.into(),
        bucket: "photos".into(),
        owner: owner.into(),
        replication: 0,
    };
    let e = assert_status(
        om.create_bucket(dup("alice")).await,
        OmStatus::BucketAlreadyExists,
    );
    assert_eq!(e.owner(), Some("alice"));
    assert!(e.to_string().contains("owned by you"), "{e}");
    // By another owner: BucketAlreadyExists.
    let e = assert_status(
        om.create_bucket(dup("bob")).await,
        OmStatus::BucketAlreadyExists,
    );
    assert_eq!(e.owner(), Some("alice"));
    assert!(e.to_string().contains("another user"), "{e}");

    assert_status(
        om.create_bucket(CreateBucketRequest {
            volume: VOL.into(),
            bucket: "Bad_Name".into(),
            ..Default::default()
        })
        .await,
        OmStatus::InvalidRequest,
    );
    assert_status(
        om.create_bucket(CreateBucketRequest {
            volume: "novol".into(),
            bucket: "abc".into(),
            ..Default::default()
        })
        .await,
        OmStatus::VolumeNotFound,
    );
    assert_status(om.info_bucket(VOL, "nope").await, OmStatus::BucketNotFound);

    for name in ["alpha", "beta", "gamma"] {
        create_bucket(om, name, "carol").await;
    }
    let listed = om
        .list_buckets(ListBucketsRequest {
            volume: VOL.into(),
            prefix: String::new(),
            start_after: "beta".into(),
            max: 2,
        })
        .await
        .expect("list buckets");
    let names: Vec<_> = listed.buckets.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["gamma", "photos"]);

    // A bucket with a key cannot be deleted; its volume neither.
    put_key(om, "alpha", "k", 10, "etag").await;
    assert_status(
        om.delete_bucket(VOL, "alpha").await,
        OmStatus::BucketNotEmpty,
    );
    assert_status(om.delete_volume(VOL).await, OmStatus::VolumeNotEmpty);

    // A bucket with only an incomplete upload (and a committed part) can: the upload is aborted.
    let up = om
        .initiate_multipart_upload(InitiateMultipartUploadRequest {
            volume: VOL.into(),
            bucket: "beta".into(),
            key: "big".into(),
            ..Default::default()
        })
        .await
        .expect("initiate");
    let open = om
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "beta".into(),
            key: "big".into(),
            size_hint: 10,
            upload_id: up.upload_id.clone(),
            part_number: 1,
            ..Default::default()
        })
        .await
        .expect("open part");
    let part_block = open.locations[0].block_id.as_ref().expect("block").local_id;
    om.commit_key(CommitKeyRequest {
        volume: VOL.into(),
        bucket: "beta".into(),
        key: "big".into(),
        client_id: open.client_id,
        locations: vec![KeyLocation {
            length: 10,
            ..open.locations[0].clone()
        }],
        size: 10,
        etag: "e".into(),
        upload_id: up.upload_id.clone(),
        part_number: 1,
        ..Default::default()
    })
    .await
    .expect("commit part");
    om.delete_bucket(VOL, "beta")
        .await
        .expect("delete bucket with upload");
    assert_status(om.info_bucket(VOL, "beta").await, OmStatus::BucketNotFound);
    assert!(deleted_blocks(&c.om).contains(&part_block));

    // Volumes of their own.
    om.create_volume("vol1", "dave")
        .await
        .expect("create volume");
    assert_status(
        om.create_volume("vol1", "dave").await,
        OmStatus::VolumeAlreadyExists,
    );
    let vols = om
        .list_volumes(ListVolumesRequest::default())
        .await
        .expect("list volumes");
    let names: Vec<_> = vols.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["s3v", "vol1"]);
    om.delete_volume("vol1").await.expect("delete empty volume");
    assert_status(om.info_volume("vol1").await, OmStatus::VolumeNotFound);

    // Metrics and status page.
    let prom = ozone_common::probe::get_async(c.om.http_address(), "/prom")
        .await
        .expect("GET /prom")
        .text();
    assert!(
        prom.contains("ozone_om_requests_total{op=\"CreateBucket\",outcome=\"failure\"}"),
        "{prom}"
    );
    let page = ozone_common::probe::get_async(c.om.http_address(), "/")
        .await
        .expect("GET /")
        .text();
    assert!(page.contains("applied index"), "{page}");
    c.om.stop().await.expect("stop");
}
