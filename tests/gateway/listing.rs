//! Listings: ListObjects (v1), ListObjectsV2, ListMultipartUploads.

use crate::multipart::create;
use crate::s3::S3;

/// A bucket holding `a/1`, `a/2`, `b/1` and `c`.
async fn tree(s3: &S3) -> String {
    let b = s3.bucket("listed").await;
    for k in ["a/1", "a/2", "b/1", "c"] {
        s3.object(&b, k, k).await;
    }
    b
}

case!(list_objects_v1, |s3| {
    let b = tree(&s3).await;
    let r = s3.get(&format!("/{b}")).send().await;
    r.expect(200, "ListObjects");
    assert!(r.body.contains("<ListBucketResult"), "{}", r.body);
    assert_eq!(r.text("Name").as_deref(), Some(b.as_str()));
    assert_eq!(r.texts("Key"), ["a/1", "a/2", "b/1", "c"]);
    assert_eq!(r.texts("Size"), ["3", "3", "3", "1"]);
    assert_eq!(r.text("IsTruncated").as_deref(), Some("false"));
    // v1 always names the owner.
    assert_eq!(r.texts("Owner").len(), 4);
    let r = s3.get(&format!("/{b}?delimiter=/")).send().await;
    assert_eq!(r.texts("Key"), ["c"]);
    assert_eq!(r.texts("Prefix"), ["", "a/", "b/"]);
    let r = s3
        .get(&format!("/{b}?max-keys=2&prefix=a/&marker=a/1"))
        .send()
        .await;
    assert_eq!(r.texts("Key"), ["a/2"]);
    assert_eq!(r.text("Marker").as_deref(), Some("a/1"));
    let r = s3.get(&format!("/{b}?max-keys=1")).send().await;
    assert_eq!(r.texts("Key"), ["a/1"]);
    assert_eq!(r.text("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.text("NextMarker").as_deref(), Some("a/1"));
});

case!(list_objects_v1_errors, |s3| {
    s3.get("/no-such-bucket").send().await.expect_error(
        404,
        "NoSuchBucket",
        "ListObjects of a missing bucket",
    );
    let b = s3.bucket("listed").await;
    s3.get(&format!("/{b}?max-keys=-1"))
        .send()
        .await
        .expect_error(400, "InvalidArgument", "max-keys=-1");
    s3.get(&format!("/{b}?encoding-type=base64"))
        .send()
        .await
        .expect_error(400, "InvalidArgument", "encoding-type=base64");
    s3.get(&format!("/{b}?policy"))
        .send()
        .await
        .expect_error(501, "NotImplemented", "?policy");
});

case!(list_objects_v2, |s3| {
    let b = tree(&s3).await;
    let r = s3.get(&format!("/{b}?list-type=2")).send().await;
    r.expect(200, "ListObjectsV2");
    assert_eq!(r.texts("Key"), ["a/1", "a/2", "b/1", "c"]);
    assert_eq!(r.text("KeyCount").as_deref(), Some("4"));
    // v2 names owners only when asked.
    assert!(r.texts("Owner").is_empty());
    let r = s3
        .get(&format!("/{b}?list-type=2&fetch-owner=true"))
        .send()
        .await;
    assert_eq!(r.texts("Owner").len(), 4);
    // Pages of two, by continuation token.
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..3 {
        let mut path = format!("/{b}?list-type=2&max-keys=2");
        if let Some(t) = &token {
            path.push_str(&format!("&continuation-token={t}"));
        }
        let r = s3.get(&path).send().await;
        r.expect(200, "a page of ListObjectsV2");
        keys.extend(r.texts("Key"));
        token = r.text("NextContinuationToken");
        if token.is_none() {
            assert_eq!(r.text("IsTruncated").as_deref(), Some("false"));
            break;
        }
    }
    assert_eq!(keys, ["a/1", "a/2", "b/1", "c"]);
    let r = s3
        .get(&format!("/{b}?list-type=2&delimiter=/&prefix=a/"))
        .send()
        .await;
    assert_eq!(r.texts("Key"), ["a/1", "a/2"]);
    let r = s3
        .get(&format!("/{b}?list-type=2&start-after=b/1"))
        .send()
        .await;
    assert_eq!(r.texts("Key"), ["c"]);
    assert_eq!(r.text("StartAfter").as_deref(), Some("b/1"));
    s3.object(&b, "with space", "x").await;
    let r = s3
        .get(&format!("/{b}?list-type=2&prefix=with&encoding-type=url"))
        .send()
        .await;
    assert_eq!(r.texts("Key"), ["with%20space"]);
    assert_eq!(r.text("EncodingType").as_deref(), Some("url"));
});

case!(list_objects_v2_errors, |s3| {
    s3.get("/no-such-bucket?list-type=2")
        .send()
        .await
        .expect_error(404, "NoSuchBucket", "ListObjectsV2 of a missing bucket");
    let b = s3.bucket("listed").await;
    for q in [
        "max-keys=abc",
        "max-keys=-1",
        "continuation-token=%25%25not-base64",
    ] {
        s3.get(&format!("/{b}?list-type=2&{q}"))
            .send()
            .await
            .expect_error(400, "InvalidArgument", q);
    }
});

case!(list_multipart_uploads, |s3| {
    let b = s3.bucket("uploads").await;
    let id1 = create(&s3, &b, "x/one").await;
    let id2 = create(&s3, &b, "two").await;
    let r = s3.get(&format!("/{b}?uploads")).send().await;
    r.expect(200, "ListMultipartUploads");
    assert!(r.body.contains("<ListMultipartUploadsResult"), "{}", r.body);
    assert_eq!(r.text("Bucket").as_deref(), Some(b.as_str()));
    assert_eq!(r.texts("Key"), ["two", "x/one"]);
    assert_eq!(r.texts("UploadId"), [id2, id1]);
    assert_eq!(r.text("IsTruncated").as_deref(), Some("false"));
    let r = s3.get(&format!("/{b}?uploads&delimiter=/")).send().await;
    assert_eq!(r.texts("Key"), ["two"]);
    assert_eq!(r.texts("Prefix"), ["", "x/"]);
    let r = s3.get(&format!("/{b}?uploads&max-uploads=1")).send().await;
    assert_eq!(r.texts("Key"), ["two"]);
    assert_eq!(r.text("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.text("NextKeyMarker").as_deref(), Some("two"));
});

case!(list_multipart_uploads_errors, |s3| {
    s3.get("/no-such-bucket?uploads").send().await.expect_error(
        404,
        "NoSuchBucket",
        "ListMultipartUploads of a missing bucket",
    );
    let b = s3.bucket("uploads").await;
    s3.get(&format!("/{b}?uploads&max-uploads=abc"))
        .send()
        .await
        .expect_error(400, "InvalidArgument", "max-uploads=abc");
});
