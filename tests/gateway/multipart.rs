//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts.

use crate::s3::{S3, USER};

/// Starts an upload of `/bucket/key` and returns its id.
pub async fn create(s3: &S3, bucket: &str, key: &str) -> String {
    let r = s3.post(&format!("/{bucket}/{key}?uploads")).send().await;
    r.expect(200, "CreateMultipartUpload");
    r.text("UploadId").expect("an UploadId")
}

/// Uploads part `n` and returns its ETag.
async fn part(s3: &S3, bucket: &str, key: &str, id: &str, n: u32, body: &str) -> String {
    let r = s3
        .put(&format!("/{bucket}/{key}?partNumber={n}&uploadId={id}"))
        .body(body.to_string())
        .send()
        .await;
    r.expect(200, &format!("UploadPart {n}"));
    r.header("etag").expect("UploadPart answers an ETag")
}

fn complete_xml(parts: &[(u32, &str)]) -> String {
    let parts: String = parts
        .iter()
        .map(|(n, etag)| format!("<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"))
        .collect();
    format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>")
}

case!(create_multipart_upload, |s3| {
    let b = s3.bucket("mpu").await;
    let r = s3
        .post(&format!("/{b}/big?uploads"))
        .header("x-amz-meta-a", "1")
        .header("x-amz-tagging", "t=1")
        .send()
        .await;
    r.expect(200, "CreateMultipartUpload");
    assert!(
        r.body.contains("<InitiateMultipartUploadResult"),
        "{}",
        r.body
    );
    assert_eq!(r.text("Bucket").as_deref(), Some(b.as_str()));
    assert_eq!(r.text("Key").as_deref(), Some("big"));
    let id = r.text("UploadId").unwrap();
    assert!(!id.is_empty());
    // Two uploads of one key are distinct.
    assert_ne!(create(&s3, &b, "big").await, id);
});

case!(create_multipart_upload_errors, |s3| {
    s3.post("/no-such-bucket/k?uploads")
        .send()
        .await
        .expect_error(
            404,
            "NoSuchBucket",
            "CreateMultipartUpload in a missing bucket",
        );
    let b = s3.bucket("mpu").await;
    s3.post(&format!("/{b}/k?uploads"))
        .header("x-amz-tagging", "aws:reserved=1")
        .send()
        .await
        .expect_error(400, "InvalidTag", "CreateMultipartUpload with an aws: tag");
});

case!(upload_part, |s3| {
    let b = s3.bucket("mpu").await;
    let id = create(&s3, &b, "k").await;
    let etag = part(&s3, &b, "k", &id, 1, "hello").await;
    assert_eq!(etag, "\"5d41402abc4b2a76b9719d911017c592\"");
    // A part uploaded again replaces the first.
    part(&s3, &b, "k", &id, 1, "hello world").await;
    let r = s3.get(&format!("/{b}/k?uploadId={id}")).send().await;
    r.expect(200, "ListParts");
    assert_eq!(r.texts("Size"), ["11"]);
});

case!(upload_part_errors, |s3| {
    let b = s3.bucket("mpu").await;
    s3.put(&format!("/{b}/k?partNumber=1&uploadId=no-such-upload"))
        .body("x")
        .send()
        .await
        .expect_error(404, "NoSuchUpload", "UploadPart to an unknown upload");
    let id = create(&s3, &b, "k").await;
    for n in ["0", "10001", "x"] {
        s3.put(&format!("/{b}/k?partNumber={n}&uploadId={id}"))
            .body("x")
            .send()
            .await
            .expect_error(400, "InvalidArgument", &format!("part number {n}"));
    }
});

case!(upload_part_copy, |s3| {
    let b = s3.bucket("mpu").await;
    s3.object(&b, "src", "0123456789").await;
    let id = create(&s3, &b, "k").await;
    let r = s3
        .put(&format!("/{b}/k?partNumber=1&uploadId={id}"))
        .header("x-amz-copy-source", &format!("/{b}/src"))
        .header("x-amz-copy-source-range", "bytes=2-5")
        .send()
        .await;
    r.expect(200, "UploadPartCopy");
    assert!(r.body.contains("<CopyPartResult"), "{}", r.body);
    let etag = r.text("ETag").unwrap();
    assert!(r.text("LastModified").is_some());
    let r = s3
        .post(&format!("/{b}/k?uploadId={id}"))
        .body(complete_xml(&[(1, &etag)]))
        .send()
        .await;
    r.expect(200, "CompleteMultipartUpload");
    assert_eq!(s3.get(&format!("/{b}/k")).send().await.body, "2345");
});

case!(upload_part_copy_errors, |s3| {
    let b = s3.bucket("mpu").await;
    s3.object(&b, "src", "0123456789").await;
    let id = create(&s3, &b, "k").await;
    s3.put(&format!("/{b}/k?partNumber=1&uploadId={id}"))
        .header("x-amz-copy-source", &format!("/{b}/src"))
        .header("x-amz-copy-source-range", "bytes=5-10")
        .send()
        .await
        .expect_error(400, "InvalidArgument", "a copy range past the source's end");
    s3.put(&format!("/{b}/k?partNumber=1&uploadId={id}"))
        .header("x-amz-copy-source", &format!("/{b}/missing"))
        .send()
        .await
        .expect_error(404, "NoSuchKey", "UploadPartCopy of a missing source");
    s3.put(&format!("/{b}/k?partNumber=1&uploadId=no-such-upload"))
        .header("x-amz-copy-source", &format!("/{b}/src"))
        .send()
        .await
        .expect_error(404, "NoSuchUpload", "UploadPartCopy to an unknown upload");
});

case!(complete_multipart_upload, |s3| {
    let b = s3.bucket("mpu").await;
    let id = create(&s3, &b, "k").await;
    // Every part but the last must be at least 5 MiB.
    let first = "a".repeat(5 << 20);
    let e1 = part(&s3, &b, "k", &id, 1, &first).await;
    let e2 = part(&s3, &b, "k", &id, 2, "tail").await;
    let r = s3
        .post(&format!("/{b}/k?uploadId={id}"))
        .body(complete_xml(&[(1, &e1), (2, &e2)]))
        .send()
        .await;
    r.expect(200, "CompleteMultipartUpload");
    assert!(
        r.body.contains("<CompleteMultipartUploadResult"),
        "{}",
        r.body
    );
    assert_eq!(r.text("Key").as_deref(), Some("k"));
    assert_eq!(r.text("Bucket").as_deref(), Some(b.as_str()));
    let etag = r.text("ETag").unwrap();
    assert!(etag.ends_with("-2\""), "multipart ETag {etag}");
    let r = s3.head(&format!("/{b}/k")).send().await;
    r.expect(200, "HeadObject");
    assert_eq!(r.header("etag"), Some(etag));
    assert_eq!(
        r.header("content-length"),
        Some(((5 << 20) + 4).to_string())
    );
    assert_eq!(r.header("x-amz-mp-parts-count").as_deref(), Some("2"));
    let r = s3.get(&format!("/{b}/k?partNumber=2")).send().await;
    r.expect(206, "GetObject of part 2");
    assert_eq!(r.body, "tail");
    // The upload is gone.
    s3.get(&format!("/{b}/k?uploadId={id}"))
        .send()
        .await
        .expect_error(404, "NoSuchUpload", "ListParts after completion");
});

case!(complete_multipart_upload_errors, |s3| {
    let b = s3.bucket("mpu").await;
    let id = create(&s3, &b, "k").await;
    let e1 = part(&s3, &b, "k", &id, 1, "small").await;
    let e2 = part(&s3, &b, "k", &id, 2, "tail").await;
    let complete = |body: String| {
        let s3 = s3.clone();
        let path = format!("/{b}/k?uploadId={id}");
        async move { s3.post(&path).body(body).send().await }
    };
    complete("<CompleteMultipartUpload><Part>".into())
        .await
        .expect_error(400, "MalformedXML", "broken XML");
    complete("<CompleteMultipartUpload></CompleteMultipartUpload>".into())
        .await
        .expect_error(400, "MalformedXML", "no parts");
    complete(complete_xml(&[(1, "\"0123456789abcdef0123456789abcdef\"")]))
        .await
        .expect_error(400, "InvalidPart", "a wrong ETag");
    complete(complete_xml(&[(3, &e1)])).await.expect_error(
        400,
        "InvalidPart",
        "a part never uploaded",
    );
    complete(complete_xml(&[(2, &e2), (1, &e1)]))
        .await
        .expect_error(400, "InvalidPartOrder", "parts out of order");
    complete(complete_xml(&[(1, &e1), (2, &e2)]))
        .await
        .expect_error(400, "EntityTooSmall", "a first part under 5 MiB");
    s3.post(&format!("/{b}/k?uploadId=no-such-upload"))
        .body(complete_xml(&[(1, &e1)]))
        .send()
        .await
        .expect_error(404, "NoSuchUpload", "an unknown upload");
    s3.head(&format!("/{b}/k"))
        .send()
        .await
        .expect(404, "no object after refused completions");
    // The upload is still there and can complete.
    complete(complete_xml(&[(1, &e1)]))
        .await
        .expect(200, "completing with the first part only");
});

case!(abort_multipart_upload, |s3| {
    let b = s3.bucket("mpu").await;
    let id = create(&s3, &b, "k").await;
    part(&s3, &b, "k", &id, 1, "hello").await;
    s3.delete(&format!("/{b}/k?uploadId={id}"))
        .send()
        .await
        .expect(204, "AbortMultipartUpload");
    let r = s3.get(&format!("/{b}?uploads")).send().await;
    assert!(r.texts("UploadId").is_empty(), "{}", r.body);
    s3.head(&format!("/{b}/k"))
        .send()
        .await
        .expect(404, "no object after an abort");
});

case!(abort_multipart_upload_unknown, |s3| {
    let b = s3.bucket("mpu").await;
    s3.delete(&format!("/{b}/k?uploadId=no-such-upload"))
        .send()
        .await
        .expect_error(
            404,
            "NoSuchUpload",
            "AbortMultipartUpload of an unknown upload",
        );
    let id = create(&s3, &b, "k").await;
    s3.delete(&format!("/{b}/k?uploadId={id}"))
        .send()
        .await
        .expect(204, "AbortMultipartUpload");
    s3.delete(&format!("/{b}/k?uploadId={id}"))
        .send()
        .await
        .expect_error(404, "NoSuchUpload", "aborting twice");
});

case!(list_parts, |s3| {
    let b = s3.bucket("mpu").await;
    let id = create(&s3, &b, "k").await;
    let e1 = part(&s3, &b, "k", &id, 1, "one").await;
    let e3 = part(&s3, &b, "k", &id, 3, "three").await;
    let r = s3.get(&format!("/{b}/k?uploadId={id}")).send().await;
    r.expect(200, "ListParts");
    assert!(r.body.contains("<ListPartsResult"), "{}", r.body);
    assert_eq!(r.text("UploadId").as_deref(), Some(id.as_str()));
    assert_eq!(r.texts("PartNumber"), ["1", "3"]);
    assert_eq!(r.texts("ETag"), [e1, e3]);
    assert_eq!(r.texts("Size"), ["3", "5"]);
    assert_eq!(r.text("ID").as_deref(), Some(USER));
    assert_eq!(r.text("IsTruncated").as_deref(), Some("false"));
    let r = s3
        .get(&format!("/{b}/k?uploadId={id}&max-parts=1"))
        .send()
        .await;
    r.expect(200, "ListParts, one a page");
    assert_eq!(r.texts("PartNumber"), ["1"]);
    assert_eq!(r.text("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.text("NextPartNumberMarker").as_deref(), Some("1"));
    let r = s3
        .get(&format!("/{b}/k?uploadId={id}&part-number-marker=1"))
        .send()
        .await;
    assert_eq!(r.texts("PartNumber"), ["3"]);
});

case!(list_parts_errors, |s3| {
    let b = s3.bucket("mpu").await;
    s3.get(&format!("/{b}/k?uploadId=no-such-upload"))
        .send()
        .await
        .expect_error(404, "NoSuchUpload", "ListParts of an unknown upload");
    let id = create(&s3, &b, "k").await;
    s3.get(&format!("/{b}/k?uploadId={id}&max-parts=abc"))
        .send()
        .await
        .expect_error(400, "InvalidArgument", "max-parts=abc");
});
