//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
//! CopyObject, GetObjectAttributes.

/// MD5 of `hello` (hex), the ETag of an object holding it.
const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";
/// Content-MD5 (base64) of `other`.
const OTHER_MD5_B64: &str = "eV8yArF8trw9S3cdjGyerw==";

case!(put_object, |s3| {
    let b = s3.bucket("puts").await;
    let r = s3
        .put(&format!("/{b}/dir/hello.txt"))
        .header("content-type", "text/plain")
        .header("x-amz-meta-color", "blue")
        .body("hello")
        .send()
        .await;
    r.expect(200, "PutObject");
    assert_eq!(r.header("etag"), Some(format!("\"{HELLO_MD5}\"")));
    let r = s3.get(&format!("/{b}/dir/hello.txt")).send().await;
    r.expect(200, "GetObject");
    assert_eq!(r.body, "hello");
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.header("x-amz-meta-color").as_deref(), Some("blue"));
    // Overwrite, and a zero-byte object.
    s3.object(&b, "dir/hello.txt", "hello again").await;
    let r = s3.get(&format!("/{b}/dir/hello.txt")).send().await;
    assert_eq!(r.body, "hello again");
    s3.object(&b, "empty", "").await;
    let r = s3.get(&format!("/{b}/empty")).send().await;
    r.expect(200, "GetObject of an empty object");
    assert_eq!(r.header("content-length").as_deref(), Some("0"));
});

case!(put_object_errors, |s3| {
    s3.put("/no-such-bucket/k")
        .body("x")
        .send()
        .await
        .expect_error(404, "NoSuchBucket", "PutObject into a missing bucket");
    let b = s3.bucket("puts").await;
    s3.put(&format!("/{b}/md5"))
        .header("content-md5", OTHER_MD5_B64)
        .body("payload")
        .send()
        .await
        .expect_error(400, "BadDigest", "PutObject with a wrong Content-MD5");
    s3.put(&format!("/{b}/md5"))
        .header("content-md5", "xx")
        .body("payload")
        .send()
        .await
        .expect_error(
            400,
            "InvalidDigest",
            "PutObject with a malformed Content-MD5",
        );
    s3.head(&format!("/{b}/md5"))
        .send()
        .await
        .expect(404, "nothing stored after a refused PutObject");
    s3.object(&b, "exists", "v1").await;
    s3.put(&format!("/{b}/exists"))
        .header("if-none-match", "*")
        .body("v2")
        .send()
        .await
        .expect_error(
            412,
            "PreconditionFailed",
            "If-None-Match: * on an existing key",
        );
    s3.put(&format!("/{b}/missing"))
        .header("if-match", "\"0123\"")
        .body("v")
        .send()
        .await
        .expect_error(404, "NoSuchKey", "If-Match on a missing key");
    s3.put(&format!("/{b}/meta"))
        .header("x-amz-meta-big", &"x".repeat(2100))
        .body("v")
        .send()
        .await
        .expect_error(400, "MetadataTooLarge", "2 KB of user metadata");
    s3.put(&format!("/{b}/{}", "k".repeat(1025)))
        .body("v")
        .send()
        .await
        .expect_error(400, "KeyTooLongError", "a 1025-byte key");
});

case!(get_object, |s3| {
    let b = s3.bucket("gets").await;
    let etag = s3.object(&b, "ten", "0123456789").await;
    let r = s3.get(&format!("/{b}/ten")).send().await;
    r.expect(200, "GetObject");
    assert_eq!(r.body, "0123456789");
    assert_eq!(r.header("etag"), Some(etag.clone()));
    assert_eq!(r.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("binary/octet-stream")
    );
    assert!(r.header("last-modified").is_some());
    let r = s3
        .get(&format!("/{b}/ten"))
        .header("range", "bytes=2-4")
        .send()
        .await;
    r.expect(206, "ranged GetObject");
    assert_eq!(r.body, "234");
    assert_eq!(r.header("content-range").as_deref(), Some("bytes 2-4/10"));
    let r = s3
        .get(&format!("/{b}/ten"))
        .header("range", "bytes=-3")
        .send()
        .await;
    r.expect(206, "suffix range");
    assert_eq!(r.body, "789");
    let r = s3
        .get(&format!("/{b}/ten"))
        .header("if-none-match", &etag)
        .send()
        .await;
    r.expect(304, "If-None-Match with the current ETag");
    let r = s3
        .get(&format!("/{b}/ten?response-content-type=text/csv"))
        .send()
        .await;
    assert_eq!(r.header("content-type").as_deref(), Some("text/csv"));
    let r = s3.get(&format!("/{b}/ten?partNumber=1")).send().await;
    assert!(
        matches!(r.status, 200 | 206),
        "part 1 of a simple object: {}",
        r.status
    );
    assert_eq!(r.body, "0123456789");
});

case!(get_object_errors, |s3| {
    let b = s3.bucket("gets").await;
    s3.get(&format!("/{b}/nope")).send().await.expect_error(
        404,
        "NoSuchKey",
        "GetObject of a missing key",
    );
    s3.get("/no-such-bucket/k").send().await.expect_error(
        404,
        "NoSuchBucket",
        "GetObject in a missing bucket",
    );
    s3.object(&b, "ten", "0123456789").await;
    let r = s3
        .get(&format!("/{b}/ten"))
        .header("range", "bytes=10-20")
        .send()
        .await;
    r.expect_error(416, "InvalidRange", "a range past the end");
    assert_eq!(r.header("content-range").as_deref(), Some("bytes */10"));
    s3.get(&format!("/{b}/ten"))
        .header("if-match", "\"not-the-etag\"")
        .send()
        .await
        .expect_error(412, "PreconditionFailed", "If-Match with another ETag");
    s3.get(&format!("/{b}/ten"))
        .header("if-unmodified-since", "Sat, 01 Jan 2000 00:00:00 GMT")
        .send()
        .await
        .expect_error(412, "PreconditionFailed", "If-Unmodified-Since in the past");
    s3.get(&format!("/{b}/ten?partNumber=2"))
        .send()
        .await
        .expect_error(416, "InvalidPartNumber", "part 2 of a simple object");
    s3.get(&format!("/{b}/ten?retention"))
        .send()
        .await
        .expect_error(501, "NotImplemented", "?retention");
});

case!(head_object, |s3| {
    let b = s3.bucket("heads").await;
    let r = s3
        .put(&format!("/{b}/h"))
        .header("x-amz-meta-a", "1")
        .header("x-amz-tagging", "t=1")
        .body("hello")
        .send()
        .await;
    r.expect(200, "PutObject");
    let r = s3.head(&format!("/{b}/h")).send().await;
    r.expect(200, "HeadObject");
    assert!(r.bytes.is_empty());
    assert_eq!(r.header("content-length").as_deref(), Some("5"));
    assert_eq!(r.header("etag"), Some(format!("\"{HELLO_MD5}\"")));
    assert_eq!(r.header("x-amz-meta-a").as_deref(), Some("1"));
    assert_eq!(r.header("x-amz-tagging-count").as_deref(), Some("1"));
    let r = s3
        .head(&format!("/{b}/h"))
        .header("range", "bytes=0-1")
        .send()
        .await;
    r.expect(206, "ranged HeadObject");
    assert_eq!(r.header("content-length").as_deref(), Some("2"));
});

case!(head_object_errors, |s3| {
    let b = s3.bucket("heads").await;
    let r = s3.head(&format!("/{b}/nope")).send().await;
    r.expect(404, "HeadObject of a missing key");
    assert!(r.bytes.is_empty(), "HEAD answers carry no body");
    s3.object(&b, "h", "hello").await;
    s3.head(&format!("/{b}/h"))
        .header("if-match", "\"other\"")
        .send()
        .await
        .expect(412, "HeadObject with a failing If-Match");
});

case!(delete_object, |s3| {
    let b = s3.bucket("deletes").await;
    s3.object(&b, "gone", "x").await;
    s3.delete(&format!("/{b}/gone"))
        .send()
        .await
        .expect(204, "DeleteObject");
    s3.head(&format!("/{b}/gone"))
        .send()
        .await
        .expect(404, "HeadObject after DeleteObject");
    // Deleting a key that never existed succeeds, as in AWS.
    s3.delete(&format!("/{b}/never-existed"))
        .send()
        .await
        .expect(204, "DeleteObject of a missing key");
});

case!(delete_object_missing_bucket, |s3| {
    s3.delete("/no-such-bucket/k").send().await.expect_error(
        404,
        "NoSuchBucket",
        "DeleteObject in a missing bucket",
    );
});

fn delete_xml(keys: &[&str], quiet: bool) -> String {
    let objects: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    format!("<Delete><Quiet>{quiet}</Quiet>{objects}</Delete>")
}

case!(delete_objects, |s3| {
    let b = s3.bucket("bulk").await;
    for k in ["a", "b", "c"] {
        s3.object(&b, k, k).await;
    }
    let r = s3
        .post(&format!("/{b}?delete"))
        .body(delete_xml(&["a", "b", "never-existed"], false))
        .send()
        .await;
    r.expect(200, "DeleteObjects");
    assert!(r.body.contains("<DeleteResult"), "{}", r.body);
    let mut deleted = r.texts("Key");
    deleted.sort();
    assert_eq!(deleted, ["a", "b", "never-existed"]);
    assert!(!r.body.contains("<Error>"), "{}", r.body);
    let r = s3
        .post(&format!("/{b}?delete"))
        .body(delete_xml(&["c"], true))
        .send()
        .await;
    r.expect(200, "quiet DeleteObjects");
    assert!(
        r.texts("Key").is_empty(),
        "quiet mode lists no keys: {}",
        r.body
    );
    let r = s3.get(&format!("/{b}?list-type=2")).send().await;
    assert_eq!(r.text("KeyCount").as_deref(), Some("0"), "{}", r.body);
});

case!(delete_objects_errors, |s3| {
    let b = s3.bucket("bulk").await;
    for body in [
        "<Delete><Object><Key>x</Key>",
        "this is not xml",
        "<Delete></Delete>",
    ] {
        s3.post(&format!("/{b}?delete"))
            .body(body)
            .send()
            .await
            .expect_error(400, "MalformedXML", body);
    }
    s3.post("/no-such-bucket?delete")
        .body(delete_xml(&["a"], false))
        .send()
        .await
        .expect_error(404, "NoSuchBucket", "DeleteObjects in a missing bucket");
});

case!(copy_object, |s3| {
    let b = s3.bucket("copies").await;
    let r = s3
        .put(&format!("/{b}/src"))
        .header("x-amz-meta-a", "1")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await;
    r.expect(200, "PutObject");
    let r = s3
        .put(&format!("/{b}/dst"))
        .header("x-amz-copy-source", &format!("/{b}/src"))
        .send()
        .await;
    r.expect(200, "CopyObject");
    assert!(r.body.contains("<CopyObjectResult"), "{}", r.body);
    assert_eq!(r.text("ETag"), Some(format!("\"{HELLO_MD5}\"")));
    assert!(r.text("LastModified").is_some());
    let r = s3.get(&format!("/{b}/dst")).send().await;
    assert_eq!(r.body, "hello");
    assert_eq!(r.header("x-amz-meta-a").as_deref(), Some("1"));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    // REPLACE takes the new metadata; copying onto itself that way is allowed.
    s3.put(&format!("/{b}/src"))
        .header("x-amz-copy-source", &format!("{b}/src"))
        .header("x-amz-metadata-directive", "REPLACE")
        .header("x-amz-meta-b", "2")
        .send()
        .await
        .expect(200, "CopyObject onto itself with REPLACE");
    let r = s3.head(&format!("/{b}/src")).send().await;
    assert_eq!(r.header("x-amz-meta-b").as_deref(), Some("2"));
    assert_eq!(r.header("x-amz-meta-a"), None);
});

case!(copy_object_errors, |s3| {
    let b = s3.bucket("copies").await;
    s3.put(&format!("/{b}/dst"))
        .header("x-amz-copy-source", &format!("/{b}/missing"))
        .send()
        .await
        .expect_error(404, "NoSuchKey", "CopyObject of a missing source");
    s3.object(&b, "src", "hello").await;
    s3.put(&format!("/{b}/src"))
        .header("x-amz-copy-source", &format!("/{b}/src"))
        .send()
        .await
        .expect_error(400, "InvalidRequest", "CopyObject onto itself unchanged");
    s3.put(&format!("/{b}/dst"))
        .header("x-amz-copy-source", &format!("/{b}/src"))
        .header("x-amz-copy-source-if-match", "\"other\"")
        .send()
        .await
        .expect_error(412, "PreconditionFailed", "x-amz-copy-source-if-match");
    s3.put(&format!("/{b}/dst"))
        .header("x-amz-copy-source", "no-key-here")
        .send()
        .await
        .expect_error(400, "InvalidArgument", "a copy source without a key");
    s3.head(&format!("/{b}/dst"))
        .send()
        .await
        .expect(404, "no destination after refused copies");
});

case!(get_object_attributes, |s3| {
    let b = s3.bucket("attrs").await;
    s3.object(&b, "o", "hello").await;
    let r = s3
        .get(&format!("/{b}/o?attributes"))
        .header("x-amz-object-attributes", "ETag,ObjectSize,StorageClass")
        .send()
        .await;
    r.expect(200, "GetObjectAttributes");
    assert!(
        r.body.contains("<GetObjectAttributesResponse"),
        "{}",
        r.body
    );
    assert_eq!(r.text("ETag").as_deref(), Some(HELLO_MD5));
    assert_eq!(r.text("ObjectSize").as_deref(), Some("5"));
    assert_eq!(r.text("StorageClass").as_deref(), Some("STANDARD"));
    assert!(r.header("last-modified").is_some());
});

case!(get_object_attributes_errors, |s3| {
    let b = s3.bucket("attrs").await;
    s3.get(&format!("/{b}/nope?attributes"))
        .header("x-amz-object-attributes", "ETag")
        .send()
        .await
        .expect_error(404, "NoSuchKey", "GetObjectAttributes of a missing key");
    s3.object(&b, "o", "hello").await;
    for attrs in ["Colour", ""] {
        s3.get(&format!("/{b}/o?attributes"))
            .header("x-amz-object-attributes", attrs)
            .send()
            .await
            .expect_error(400, "InvalidArgument", &format!("attributes {attrs:?}"));
    }
});
