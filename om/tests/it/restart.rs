//! A restarted OM keeps its whole namespace and applied index.

use om_client::OmStatus;
use om_client::proto::*;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_everything() {
    let c = cluster().await;
    create_bucket(&c.client, "keep", "alice").await;
    let k = put_key(&c.client, "keep", "a/b", 3 * MIB, "e1").await;
    let up = c
        .client
        .initiate_multipart_upload(InitiateMultipartUploadRequest {
            volume: VOL.into(),
            bucket: "keep".into(),
            key: "mp".into(),
            ..Default::default()
        })
        .await
        .expect("initiate");
    put_key(&c.client, "keep", "gone", 1, "x").await;
    c.client
        .delete_key(VOL, "keep", "gone")
        .await
        .expect("delete");
    let before =
        c.om.state_machine()
            .snapshot()
            .expect("snap")
            .dump()
            .expect("dump");
    let applied = c.om.state_machine().applied_index().expect("index");
    let deleted = deleted_blocks(&c.om);
    assert!(!deleted.is_empty());
    c.om.stop().await.expect("stop");

    let (om, client) = start_om(c.dir.path(), &c.scm.addr.to_string()).await;
    assert_eq!(om.state_machine().applied_index().expect("index"), applied);
    assert_eq!(
        om.state_machine()
            .snapshot()
            .expect("snap")
            .dump()
            .expect("dump"),
        before
    );
    assert_eq!(
        client.lookup_key(VOL, "keep", "a/b").await.expect("lookup"),
        k
    );
    assert_status(
        client.lookup_key(VOL, "keep", "gone").await,
        OmStatus::KeyNotFound,
    );
    assert_eq!(deleted_blocks(&om), deleted);
    let parts = client
        .list_parts(ListPartsRequest {
            volume: VOL.into(),
            bucket: "keep".into(),
            key: "mp".into(),
            upload_id: up.upload_id.clone(),
            ..Default::default()
        })
        .await
        .expect("upload survives");
    assert!(parts.parts.is_empty());
    assert_status(
        client
            .create_bucket(CreateBucketRequest {
                volume: VOL.into(),
                bucket: "keep".into(),
                owner: "alice".into(),
                replication: 0,
            })
            .await,
        OmStatus::BucketAlreadyExists,
    );
    // Writes continue after the restored index.
    put_key(&client, "keep", "after", 1, "y").await;
    assert!(om.state_machine().applied_index().expect("index") > applied);
    om.stop().await.expect("stop");
}
