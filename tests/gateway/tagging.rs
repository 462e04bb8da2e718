//! Tagging: Get/Put/DeleteBucketTagging and Get/Put/DeleteObjectTagging.

fn tagging_xml(tags: &[(&str, &str)]) -> String {
    let tags: String = tags
        .iter()
        .map(|(k, v)| format!("<Tag><Key>{k}</Key><Value>{v}</Value></Tag>"))
        .collect();
    format!("<Tagging><TagSet>{tags}</TagSet></Tagging>")
}

case!(get_bucket_tagging, |s3| {
    let b = s3.bucket("tagged").await;
    s3.put(&format!("/{b}?tagging"))
        .body(tagging_xml(&[("team", "blue"), ("env", "dev")]))
        .send()
        .await
        .expect(204, "PutBucketTagging");
    let r = s3.get(&format!("/{b}?tagging")).send().await;
    r.expect(200, "GetBucketTagging");
    assert!(r.body.contains("<Tagging"), "{}", r.body);
    assert_eq!(r.texts("Key"), ["env", "team"]);
    assert_eq!(r.texts("Value"), ["dev", "blue"]);
});

case!(get_bucket_tagging_errors, |s3| {
    let b = s3.bucket("untagged").await;
    s3.get(&format!("/{b}?tagging")).send().await.expect_error(
        404,
        "NoSuchTagSet",
        "GetBucketTagging of an untagged bucket",
    );
    s3.get("/no-such-bucket?tagging").send().await.expect_error(
        404,
        "NoSuchBucket",
        "GetBucketTagging of a missing bucket",
    );
});

case!(put_bucket_tagging, |s3| {
    let b = s3.bucket("tagged").await;
    s3.put(&format!("/{b}?tagging"))
        .body(tagging_xml(&[("a", "1")]))
        .send()
        .await
        .expect(204, "PutBucketTagging");
    // A second put replaces the set.
    s3.put(&format!("/{b}?tagging"))
        .body(tagging_xml(&[("b", "")]))
        .send()
        .await
        .expect(204, "PutBucketTagging again");
    let r = s3.get(&format!("/{b}?tagging")).send().await;
    assert_eq!(r.texts("Key"), ["b"]);
    assert_eq!(r.text("Value").unwrap_or_default(), "");
});

case!(put_bucket_tagging_errors, |s3| {
    let b = s3.bucket("tagged").await;
    let put = |body: String| {
        let s3 = s3.clone();
        let path = format!("/{b}?tagging");
        async move { s3.put(&path).body(body).send().await }
    };
    put(tagging_xml(&[("aws:x", "1")]))
        .await
        .expect_error(400, "InvalidTag", "an aws: key");
    put(tagging_xml(&[("a", "1"), ("a", "2")]))
        .await
        .expect_error(400, "InvalidTag", "a duplicate key");
    let many: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), String::new())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    put(tagging_xml(&many))
        .await
        .expect_error(400, "InvalidTag", "51 bucket tags");
    put("<Tagging><TagSet><Tag><Key>a</Key>".into())
        .await
        .expect_error(400, "MalformedXML", "broken XML");
    s3.get(&format!("/{b}?tagging")).send().await.expect_error(
        404,
        "NoSuchTagSet",
        "no tags after refused puts",
    );
});

case!(delete_bucket_tagging, |s3| {
    let b = s3.bucket("tagged").await;
    s3.put(&format!("/{b}?tagging"))
        .body(tagging_xml(&[("a", "1")]))
        .send()
        .await
        .expect(204, "PutBucketTagging");
    s3.delete(&format!("/{b}?tagging"))
        .send()
        .await
        .expect(204, "DeleteBucketTagging");
    s3.get(&format!("/{b}?tagging")).send().await.expect_error(
        404,
        "NoSuchTagSet",
        "GetBucketTagging after DeleteBucketTagging",
    );
});

case!(delete_bucket_tagging_missing_bucket, |s3| {
    s3.delete("/no-such-bucket?tagging")
        .send()
        .await
        .expect_error(
            404,
            "NoSuchBucket",
            "DeleteBucketTagging of a missing bucket",
        );
});

case!(get_object_tagging, |s3| {
    let b = s3.bucket("tagged").await;
    let r = s3
        .put(&format!("/{b}/o"))
        .header("x-amz-tagging", "b=2&a=1")
        .body("x")
        .send()
        .await;
    r.expect(200, "PutObject with tags");
    let r = s3.get(&format!("/{b}/o?tagging")).send().await;
    r.expect(200, "GetObjectTagging");
    assert!(r.body.contains("<Tagging"), "{}", r.body);
    assert_eq!(r.texts("Key"), ["a", "b"]);
    assert_eq!(r.texts("Value"), ["1", "2"]);
    // An untagged object has an empty set.
    s3.object(&b, "plain", "x").await;
    let r = s3.get(&format!("/{b}/plain?tagging")).send().await;
    r.expect(200, "GetObjectTagging of an untagged object");
    assert!(r.texts("Tag").is_empty(), "{}", r.body);
});

case!(get_object_tagging_missing, |s3| {
    let b = s3.bucket("tagged").await;
    s3.get(&format!("/{b}/missing?tagging"))
        .send()
        .await
        .expect_error(404, "NoSuchKey", "GetObjectTagging of a missing key");
});

case!(put_object_tagging, |s3| {
    let b = s3.bucket("tagged").await;
    s3.object(&b, "o", "x").await;
    s3.put(&format!("/{b}/o?tagging"))
        .body(tagging_xml(&[("k", "v")]))
        .send()
        .await
        .expect(200, "PutObjectTagging");
    let r = s3.get(&format!("/{b}/o?tagging")).send().await;
    assert_eq!(r.texts("Key"), ["k"]);
    assert_eq!(r.texts("Value"), ["v"]);
    let r = s3.head(&format!("/{b}/o")).send().await;
    assert_eq!(r.header("x-amz-tagging-count").as_deref(), Some("1"));
    // The object's bytes are untouched.
    assert_eq!(s3.get(&format!("/{b}/o")).send().await.body, "x");
});

case!(put_object_tagging_errors, |s3| {
    let b = s3.bucket("tagged").await;
    s3.put(&format!("/{b}/missing?tagging"))
        .body(tagging_xml(&[("a", "1")]))
        .send()
        .await
        .expect_error(404, "NoSuchKey", "PutObjectTagging of a missing key");
    s3.object(&b, "o", "x").await;
    let many: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s3.put(&format!("/{b}/o?tagging"))
        .body(tagging_xml(&many))
        .send()
        .await
        .expect_error(400, "InvalidTag", "11 object tags");
    let long = "v".repeat(257);
    s3.put(&format!("/{b}/o?tagging"))
        .body(tagging_xml(&[("k", &long)]))
        .send()
        .await
        .expect_error(400, "InvalidTag", "a 257-character value");
});

case!(delete_object_tagging, |s3| {
    let b = s3.bucket("tagged").await;
    let r = s3
        .put(&format!("/{b}/o"))
        .header("x-amz-tagging", "a=1")
        .body("x")
        .send()
        .await;
    r.expect(200, "PutObject with tags");
    s3.delete(&format!("/{b}/o?tagging"))
        .send()
        .await
        .expect(204, "DeleteObjectTagging");
    let r = s3.get(&format!("/{b}/o?tagging")).send().await;
    assert!(r.texts("Tag").is_empty(), "{}", r.body);
    s3.head(&format!("/{b}/o"))
        .send()
        .await
        .expect(200, "the object stays");
});

case!(delete_object_tagging_missing, |s3| {
    let b = s3.bucket("tagged").await;
    s3.delete(&format!("/{b}/missing?tagging"))
        .send()
        .await
        .expect_error(404, "NoSuchKey", "DeleteObjectTagging of a missing key");
});
