//! Bucket operations.

use crate::cluster;

#[test]
fn create_and_head_bucket() {
    cluster::run(|s3| async move {
        let b = s3.bucket("create-head").await;
        s3.head(&format!("/{b}")).send().await.expect(200, "HeadBucket");
        s3.head("/no-such-bucket")
            .send()
            .await
            .expect_error(404, "NoSuchBucket", "HeadBucket of a missing bucket");
        s3.put(&format!("/{b}"))
            .send()
            .await
            .expect_error(409, "BucketAlreadyOwnedByYou", "CreateBucket again");
    });
}
