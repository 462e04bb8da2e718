//! Service and bucket operations: Browser, ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, GetBucketVersioning.

use reqwest::Method;

use crate::s3::USER;

case!(browser_page, |s3| {
    for path in ["/?browser=true", "/some-bucket?browser=true"] {
        let r = s3.anonymous(Method::GET, path).send().await;
        r.expect(200, path);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        assert!(r.body.contains("<title>Ozone-RS bucket browser</title>"));
        // Security is off: the page is not marked.
        assert!(r.body.contains("<body>"));
    }
});

case!(
    /// The browser page is read-only: other methods at its address are not allowed.
    browser_wrong_method,
    |s3| {
        s3.post("/?browser=true").send().await.expect_error(
            405,
            "MethodNotAllowed",
            "POST /?browser",
        );
    }
);

case!(list_buckets, |s3| {
    s3.bucket("list-b").await;
    s3.bucket("list-a").await;
    let r = s3.get("/").send().await;
    r.expect(200, "ListBuckets");
    assert!(r.body.contains("<ListAllMyBucketsResult"), "{}", r.body);
    assert_eq!(r.header("content-type").as_deref(), Some("application/xml"));
    assert_eq!(r.texts("Name"), ["list-a", "list-b"]);
    assert_eq!(r.text("ID").as_deref(), Some(USER));
    assert_eq!(r.texts("CreationDate").len(), 2);
    assert!(r.header("x-amz-request-id").is_some());
});

case!(
    /// `max-buckets`, `continuation-token` and `prefix` (S3 since 2024): pages end with a
    /// token while more buckets follow; the last page carries none.
    list_buckets_pages,
    |s3| {
        for b in ["pg-a", "pg-b", "pg-c", "pg-d", "pg-e", "other"] {
            s3.bucket(b).await;
        }
        let mut seen = Vec::new();
        let mut path = "/?max-buckets=2&prefix=pg-".to_string();
        let mut pages = 0;
        loop {
            let r = s3.get(&path).send().await;
            r.expect(200, "ListBuckets page");
            assert_eq!(r.text("Prefix").as_deref(), Some("pg-"), "{}", r.body);
            let names = r.texts("Name");
            assert!(names.len() <= 2, "{}", r.body);
            seen.extend(names);
            pages += 1;
            match r.text("ContinuationToken") {
                Some(t) => path = format!("/?max-buckets=2&prefix=pg-&continuation-token={t}"),
                None => break,
            }
        }
        assert_eq!(seen, ["pg-a", "pg-b", "pg-c", "pg-d", "pg-e"]);
        assert_eq!(pages, 3);
        // A listing that ends exactly at a page boundary has no token.
        let r = s3.get("/?max-buckets=6").send().await;
        assert_eq!(r.texts("Name").len(), 6, "{}", r.body);
        assert_eq!(r.text("ContinuationToken"), None, "{}", r.body);
        for bad in ["0", "10001", "x"] {
            s3.get(&format!("/?max-buckets={bad}")).send().await.expect_error(
                400,
                "InvalidArgument",
                "max-buckets out of range",
            );
        }
        s3.get("/?continuation-token=%%%").send().await.expect_error(
            400,
            "InvalidArgument",
            "a bad continuation token",
        );
    }
);

case!(
    /// A presigned URL past its expiry is refused, as AWS does.
    list_buckets_expired_presigned,
    |s3| {
        let path = "/?X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=tester%2F20200101%2Fus-east-1%2Fs3%2Faws4_request\
            &X-Amz-Date=20200101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host\
            &X-Amz-Signature=00";
        s3.anonymous(Method::GET, path).send().await.expect_error(
            403,
            "AccessDenied",
            "expired presigned ListBuckets",
        );
    }
);

case!(create_bucket, |s3| {
    let r = s3.put("/created").send().await;
    r.expect(200, "CreateBucket");
    assert_eq!(r.header("location").as_deref(), Some("/created"));
    // A CreateBucketConfiguration body is accepted.
    let body = "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>";
    s3.put("/created-with-body")
        .body(body)
        .send()
        .await
        .expect(200, "CreateBucket with a configuration");
    s3.head("/created-with-body")
        .send()
        .await
        .expect(200, "HeadBucket");
});

case!(create_bucket_errors, |s3| {
    for name in ["Invalid_Bucket", "ab"] {
        s3.put(&format!("/{name}"))
            .send()
            .await
            .expect_error(400, "InvalidBucketName", name);
    }
    s3.bucket("taken").await;
    s3.put("/taken").send().await.expect_error(
        409,
        "BucketAlreadyOwnedByYou",
        "CreateBucket again",
    );
    s3.as_user("someone-else")
        .put("/taken")
        .send()
        .await
        .expect_error(409, "BucketAlreadyExists", "CreateBucket by another user");
    s3.put("/bad-body")
        .body("<CreateBucketConfiguration>")
        .send()
        .await
        .expect_error(400, "MalformedXML", "CreateBucket with broken XML");
    s3.head("/bad-body")
        .send()
        .await
        .expect(404, "no bucket after a refused CreateBucket");
});

case!(head_bucket, |s3| {
    let b = s3.bucket("headed").await;
    let r = s3.head(&format!("/{b}")).send().await;
    r.expect(200, "HeadBucket");
    assert_eq!(
        r.header("x-amz-bucket-region").as_deref(),
        Some("us-east-1")
    );
    assert!(r.bytes.is_empty());
});

case!(head_bucket_missing, |s3| {
    let r = s3.head("/no-such-bucket").send().await;
    r.expect_error(404, "NoSuchBucket", "HeadBucket of a missing bucket");
    assert!(r.bytes.is_empty(), "HEAD answers carry no body");
    // Names that cannot exist are missing buckets too.
    s3.head("/Not_A_Bucket")
        .send()
        .await
        .expect(404, "HeadBucket of an invalid name");
});

case!(delete_bucket, |s3| {
    let b = s3.bucket("deleted").await;
    s3.delete(&format!("/{b}"))
        .send()
        .await
        .expect(204, "DeleteBucket");
    s3.head(&format!("/{b}"))
        .send()
        .await
        .expect(404, "HeadBucket after DeleteBucket");
});

case!(delete_bucket_errors, |s3| {
    let b = s3.bucket("full").await;
    s3.object(&b, "k", "v").await;
    s3.delete(&format!("/{b}")).send().await.expect_error(
        409,
        "BucketNotEmpty",
        "DeleteBucket of a non-empty bucket",
    );
    s3.delete("/no-such-bucket").send().await.expect_error(
        404,
        "NoSuchBucket",
        "DeleteBucket of a missing bucket",
    );
});

case!(get_bucket_location, |s3| {
    let b = s3.bucket("located").await;
    let r = s3.get(&format!("/{b}?location")).send().await;
    r.expect(200, "GetBucketLocation");
    assert!(r.body.contains("<LocationConstraint"), "{}", r.body);
    // us-east-1 is an empty LocationConstraint, as AWS answers it.
    assert_eq!(
        r.text("LocationConstraint").unwrap_or_default(),
        "",
        "{}",
        r.body
    );
});

case!(get_bucket_location_missing, |s3| {
    s3.get("/no-such-bucket?location")
        .send()
        .await
        .expect_error(404, "NoSuchBucket", "GetBucketLocation");
});

case!(get_bucket_versioning, |s3| {
    let b = s3.bucket("unversioned").await;
    let r = s3.get(&format!("/{b}?versioning")).send().await;
    r.expect(200, "GetBucketVersioning");
    assert!(r.body.contains("<VersioningConfiguration"), "{}", r.body);
    // Never versioned: no Status.
    assert_eq!(r.text("Status"), None);
});

case!(get_bucket_versioning_errors, |s3| {
    s3.get("/no-such-bucket?versioning")
        .send()
        .await
        .expect_error(404, "NoSuchBucket", "GetBucketVersioning");
    let b = s3.bucket("unversioned").await;
    s3.put(&format!("/{b}?versioning"))
        .send()
        .await
        .expect_error(501, "NotImplemented", "PutBucketVersioning");
});
