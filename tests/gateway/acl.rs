//! ACLs: GetBucketAcl, PutBucketAcl, GetObjectAcl.

use crate::s3::USER;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

case!(get_bucket_acl, |s3| {
    let b = s3.bucket("acl").await;
    let r = s3.get(&format!("/{b}?acl")).send().await;
    r.expect(200, "GetBucketAcl");
    assert!(r.body.contains("<AccessControlPolicy"), "{}", r.body);
    // The owner, and the owner's FULL_CONTROL grant.
    assert_eq!(r.texts("ID"), [USER, USER]);
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL"]);
    assert!(r.body.contains("xsi:type=\"CanonicalUser\""), "{}", r.body);
});

case!(get_bucket_acl_missing, |s3| {
    s3.get("/no-such-bucket?acl").send().await.expect_error(
        404,
        "NoSuchBucket",
        "GetBucketAcl of a missing bucket",
    );
});

case!(put_bucket_acl, |s3| {
    let b = s3.bucket("acl").await;
    s3.put(&format!("/{b}?acl"))
        .header("x-amz-acl", "public-read")
        .send()
        .await
        .expect(200, "PutBucketAcl canned");
    let r = s3.get(&format!("/{b}?acl")).send().await;
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL", "READ"]);
    assert_eq!(r.texts("URI"), [ALL_USERS]);
    s3.put(&format!("/{b}?acl"))
        .header("x-amz-grant-write", "id=\"bob\"")
        .send()
        .await
        .expect(200, "PutBucketAcl by grant header");
    let r = s3.get(&format!("/{b}?acl")).send().await;
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL", "WRITE"]);
    assert!(r.texts("ID").contains(&"bob".to_string()), "{}", r.body);
    let body = format!(
        "<AccessControlPolicy><Owner><ID>{USER}</ID></Owner><AccessControlList>\
         <Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:type=\"CanonicalUser\"><ID>carol</ID></Grantee><Permission>READ_ACP</Permission>\
         </Grant></AccessControlList></AccessControlPolicy>"
    );
    s3.put(&format!("/{b}?acl"))
        .body(body)
        .send()
        .await
        .expect(200, "PutBucketAcl by policy body");
    let r = s3.get(&format!("/{b}?acl")).send().await;
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL", "READ_ACP"]);
    assert!(r.texts("ID").contains(&"carol".to_string()), "{}", r.body);
    s3.put(&format!("/{b}?acl"))
        .header("x-amz-acl", "private")
        .send()
        .await
        .expect(200, "PutBucketAcl private");
    let r = s3.get(&format!("/{b}?acl")).send().await;
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL"]);
});

case!(put_bucket_acl_errors, |s3| {
    s3.put("/no-such-bucket?acl")
        .header("x-amz-acl", "private")
        .send()
        .await
        .expect_error(404, "NoSuchBucket", "PutBucketAcl of a missing bucket");
    let b = s3.bucket("acl").await;
    s3.put(&format!("/{b}?acl"))
        .header("x-amz-acl", "everyone-please")
        .send()
        .await
        .expect_error(400, "InvalidArgument", "an unknown canned ACL");
    s3.put(&format!("/{b}?acl")).send().await.expect_error(
        400,
        "InvalidRequest",
        "neither headers nor body",
    );
    s3.put(&format!("/{b}?acl"))
        .body("<AccessControlPolicy><AccessControlList>")
        .send()
        .await
        .expect_error(400, "MalformedXML", "broken XML");
    let r = s3.get(&format!("/{b}?acl")).send().await;
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL"], "unchanged");
});

case!(get_object_acl, |s3| {
    let b = s3.bucket("acl").await;
    s3.object(&b, "o", "x").await;
    let r = s3.get(&format!("/{b}/o?acl")).send().await;
    r.expect(200, "GetObjectAcl");
    assert!(r.body.contains("<AccessControlPolicy"), "{}", r.body);
    assert_eq!(r.texts("ID"), [USER, USER]);
    assert_eq!(r.texts("Permission"), ["FULL_CONTROL"]);
});

case!(get_object_acl_errors, |s3| {
    let b = s3.bucket("acl").await;
    s3.get(&format!("/{b}/missing?acl"))
        .send()
        .await
        .expect_error(404, "NoSuchKey", "GetObjectAcl of a missing key");
    s3.object(&b, "o", "x").await;
    s3.put(&format!("/{b}/o?acl"))
        .header("x-amz-acl", "private")
        .send()
        .await
        .expect_error(501, "NotImplemented", "PutObjectAcl");
});
