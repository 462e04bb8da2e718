//! Bucket links: keys written and read through a link live in the source bucket; chains are
//! followed, loops detected, dangling links answer BUCKET_NOT_FOUND, deleting a link leaves the
//! source alone.

use om_client::OmStatus;
use om_client::proto::*;

use crate::common::*;

fn link(
    volume: &str,
    bucket: &str,
    source_volume: &str,
    source_bucket: &str,
) -> CreateBucketLinkRequest {
    CreateBucketLinkRequest {
        volume: volume.into(),
        bucket: bucket.into(),
        owner: String::new(),
        source_volume: source_volume.into(),
        source_bucket: source_bucket.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_resolve_loop_and_dangle() {
    let c = cluster().await;
    let om = &c.client;
    om.create_volume("vol1", "alice").await.expect("volume");
    om.create_bucket(CreateBucketRequest {
        volume: "vol1".into(),
        bucket: "bucket1".into(),
        ..Default::default()
    })
    .await
    .expect("bucket");

    // s3v/common -> vol1/bucket1; s3v/chain -> s3v/common (a chain of two).
    let info = om
        .create_bucket_link(link(VOL, "common", "vol1", "bucket1"))
        .await
        .expect("link");
    assert_eq!(
        (info.source_volume.as_str(), info.source_bucket.as_str()),
        ("vol1", "bucket1")
    );
    om.create_bucket_link(link(VOL, "chain", VOL, "common"))
        .await
        .expect("chain");
    let shown = om
        .info_bucket(VOL, "common")
        .await
        .expect("info of the link");
    assert_eq!(shown.source_bucket, "bucket1");
    let resolved = om.resolve_bucket(VOL, "chain").await.expect("resolve");
    assert_eq!(
        (resolved.volume.as_str(), resolved.name.as_str()),
        ("vol1", "bucket1")
    );

    // A key written through the chain lands in the source and reads through every name.
    put_key(om, "chain", "dir/k", 1000, "e1").await;
    let k = om
        .lookup_key("vol1", "bucket1", "dir/k")
        .await
        .expect("in source");
    assert_eq!(
        (k.volume.as_str(), k.bucket.as_str(), k.size),
        ("vol1", "bucket1", 1000)
    );
    om.lookup_key(VOL, "common", "dir/k")
        .await
        .expect("through link");
    let listed = om
        .list_keys(ListKeysRequest {
            volume: VOL.into(),
            bucket: "common".into(),
            max_keys: 10,
            ..Default::default()
        })
        .await
        .expect("list through link");
    assert_eq!(listed.keys.len(), 1);

    // A link holds no keys: deleting it leaves the source and its key.
    om.delete_bucket(VOL, "chain").await.expect("delete link");
    om.lookup_key("vol1", "bucket1", "dir/k")
        .await
        .expect("source kept");
    assert_status(om.info_bucket(VOL, "chain").await, OmStatus::BucketNotFound);

    // Loops: a -> b -> a, and a link to itself.
    om.create_bucket_link(link(VOL, "loop-a", VOL, "loop-b"))
        .await
        .expect("a");
    om.create_bucket_link(link(VOL, "loop-b", VOL, "loop-a"))
        .await
        .expect("b");
    assert_status(
        om.resolve_bucket(VOL, "loop-a").await,
        OmStatus::DetectedLoopInBucketLinks,
    );
    assert_status(
        om.lookup_key(VOL, "loop-b", "x").await,
        OmStatus::DetectedLoopInBucketLinks,
    );
    assert_status(
        om.open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "loop-a".into(),
            key: "x".into(),
            ..Default::default()
        })
        .await,
        OmStatus::DetectedLoopInBucketLinks,
    );
    assert_status(
        om.create_bucket_link(link(VOL, "self", VOL, "self")).await,
        OmStatus::DetectedLoopInBucketLinks,
    );

    // Dangling: the source bucket is gone (or never was).
    om.create_bucket_link(link(VOL, "dangling", "vol1", "nope"))
        .await
        .expect("dangling");
    assert_status(
        om.resolve_bucket(VOL, "dangling").await,
        OmStatus::BucketNotFound,
    );
    assert_status(
        om.open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "dangling".into(),
            key: "x".into(),
            ..Default::default()
        })
        .await,
        OmStatus::BucketNotFound,
    );
    assert_status(
        om.delete_key(VOL, "dangling", "x").await,
        OmStatus::BucketNotFound,
    );
}
