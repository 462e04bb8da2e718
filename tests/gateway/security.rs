//! Security on (`ozone.security.enabled=true`): SigV4 signatures checked against the secrets
//! OM keeps, bucket owners and ACLs enforced. Requests are signed by this crate's own signer.

use reqwest::Method;

case_secure!(signed_requests_are_served, |users| {
    let alice = users.user("alice").await;
    alice.bucket("alices").await;
    alice.object("alices", "doc", "hello").await;
    let r = alice.get("/alices/doc").send().await;
    r.expect(200, "signed GetObject");
    assert_eq!(r.body, "hello");
    let r = alice.get("/").send().await;
    r.expect(200, "signed ListBuckets");
    assert!(
        r.texts("Name").contains(&"alices".to_string()),
        "{}",
        r.body
    );
});

case_secure!(wrong_secret_is_refused, |users| {
    let alice = users.user("alice").await;
    alice.bucket("alices").await;
    let forged = users.anonymous.signed("alice", "not-her-secret");
    forged.get("/alices").send().await.expect_error(
        403,
        "SignatureDoesNotMatch",
        "a request signed with a wrong secret",
    );
    let stranger = users.anonymous.signed("nobody", "whatever");
    stranger.get("/").send().await.expect_error(
        403,
        "InvalidAccessKeyId",
        "a request signed with an unknown access key",
    );
});

case_secure!(acls_decide_who_reads, |users| {
    let alice = users.user("alice").await;
    let bob = users.user("bob").await;
    alice.bucket("alices").await;
    alice.object("alices", "doc", "hello").await;
    bob.get("/alices/doc").send().await.expect_error(
        403,
        "AccessDenied",
        "another user's object without a grant",
    );
    users
        .anonymous
        .anonymous(Method::GET, "/alices/doc")
        .send()
        .await
        .expect_error(403, "AccessDenied", "anonymous read of a private bucket");
    bob.put("/alices/x").body("x").send().await.expect_error(
        403,
        "AccessDenied",
        "another user's write without a grant",
    );
    alice
        .put("/alices?acl")
        .header("x-amz-acl", "public-read")
        .send()
        .await
        .expect(200, "PutBucketAcl public-read");
    let r = bob.get("/alices/doc").send().await;
    r.expect(200, "read after public-read");
    assert_eq!(r.body, "hello");
    let r = users
        .anonymous
        .anonymous(Method::GET, "/alices/doc")
        .send()
        .await;
    r.expect(200, "anonymous read after public-read");
    bob.put("/alices/x").body("x").send().await.expect_error(
        403,
        "AccessDenied",
        "public-read grants no writes",
    );
    bob.delete("/alices").send().await.expect_error(
        403,
        "AccessDenied",
        "only the owner deletes a bucket",
    );
});

case_secure!(
    /// With security on, ListBuckets pages show only the caller's buckets.
    list_buckets_pages_only_own,
    |users| {
        let alice = users.user("alice").await;
        let bob = users.user("bob").await;
        for b in ["own-a1", "own-a2", "own-a3"] {
            alice.bucket(b).await;
        }
        bob.bucket("bob-b1").await;
        let mut seen = Vec::new();
        let mut path = "/?max-buckets=2".to_string();
        loop {
            let r = alice.get(&path).send().await;
            r.expect(200, "ListBuckets page");
            seen.extend(r.texts("Name"));
            match r.text("ContinuationToken") {
                Some(t) => path = format!("/?max-buckets=2&continuation-token={t}"),
                None => break,
            }
        }
        assert_eq!(seen, ["own-a1", "own-a2", "own-a3"]);
    }
);
