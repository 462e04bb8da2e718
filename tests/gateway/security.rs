//! Security on (`ozone.security.enabled=true`): SigV4 signatures checked against the secrets
//! OM keeps, bucket owners and ACLs enforced. Requests are signed by this crate's own signer.

use reqwest::Method;

use crate::sigv4::{Opts, sha256_hex};

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

/// `yyyyMMdd` of the day `shift_secs` from now.
fn day(shift_secs: i64) -> String {
    let fmt = time::macros::format_description!("[year][month][day]");
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(shift_secs))
        .format(&fmt)
        .unwrap()
}

const DAY: i64 = 24 * 3600;

case_secure!(
    /// A presigned PUT used with an added, unsigned `x-amz-copy-source` would copy anything
    /// the signer may read: refused (403), and nothing is written. Signed, it is a copy.
    presigned_put_with_unsigned_copy_source_is_refused,
    |users| {
        let alice = users.user("alice").await;
        alice.bucket("alices").await;
        alice.object("alices", "secret", "alice's secret").await;
        let url = alice.presign(Method::PUT, "/alices/upload", &[], 300, &Opts::default());
        let anyone = &users.anonymous;
        anyone
            .anonymous(Method::PUT, &url)
            .header("x-amz-copy-source", "/alices/secret")
            .send()
            .await
            .expect_error(403, "AccessDenied", "presigned PUT + unsigned copy source");
        alice.get("/alices/upload").send().await.expect_error(
            404,
            "NoSuchKey",
            "nothing written by the refused request",
        );
        // The URL as signed works (a real client's presigned PUT).
        anyone
            .anonymous(Method::PUT, &url)
            .body("uploaded")
            .send()
            .await
            .expect(200, "presigned PUT");
        assert_eq!(alice.get("/alices/upload").send().await.body, "uploaded");
        // A copy source the signer signed is a copy.
        let url = alice.presign(
            Method::PUT,
            "/alices/copy",
            &[("x-amz-copy-source", "/alices/secret")],
            300,
            &Opts::default(),
        );
        anyone
            .anonymous(Method::PUT, &url)
            .header("x-amz-copy-source", "/alices/secret")
            .send()
            .await
            .expect(200, "presigned CopyObject with the copy source signed");
        assert_eq!(alice.get("/alices/copy").send().await.body, "alice's secret");
        // Any other unsigned x-amz-* header is refused the same way, in the header form too.
        alice
            .put("/alices/meta")
            .unsigned_header("x-amz-meta-note", "added on the way")
            .body("x")
            .send()
            .await
            .expect_error(403, "AccessDenied", "an unsigned x-amz-meta header");
        alice
            .put("/alices/meta")
            .header("x-amz-meta-note", "signed")
            .body("x")
            .send()
            .await
            .expect(200, "a signed x-amz-meta header");
    }
);

case_secure!(
    /// A signing key is of one day: a request signed with yesterday's scope is refused, dated
    /// today (400 AuthorizationHeaderMalformed, as AWS answers a scope date that is not the
    /// request's) or yesterday (403 RequestTimeTooSkewed); also in a presigned URL.
    scope_of_yesterday_is_refused,
    |users| {
        let alice = users.user("alice").await;
        alice.bucket("alices").await;
        alice.object("alices", "doc", "hello").await;
        let yesterday = Opts {
            scope_date: Some(day(-DAY)),
            ..Default::default()
        };
        alice
            .get("/alices/doc")
            .opts(yesterday.clone())
            .send()
            .await
            .expect_error(400, "AuthorizationHeaderMalformed", "scope of yesterday");
        alice
            .get("/alices/doc")
            .opts(Opts {
                shift_secs: -DAY,
                ..Default::default()
            })
            .send()
            .await
            .expect_error(403, "RequestTimeTooSkewed", "signed yesterday, scope of yesterday");
        alice
            .get("/alices/doc")
            .opts(Opts {
                shift_secs: -20 * 60,
                ..Default::default()
            })
            .send()
            .await
            .expect_error(403, "RequestTimeTooSkewed", "dated 20 minutes ago");
        let anyone = &users.anonymous;
        let url = alice.presign(Method::GET, "/alices/doc", &[], 300, &yesterday);
        anyone.anonymous(Method::GET, &url).send().await.expect_error(
            400,
            "AuthorizationQueryParametersError",
            "presigned with a scope of yesterday",
        );
        // Signed yesterday for two days: still valid, as AWS keeps it (its scope is its day).
        let signed_yesterday = Opts {
            shift_secs: -DAY,
            ..Default::default()
        };
        let url = alice.presign(Method::GET, "/alices/doc", &[], 2 * DAY as u64, &signed_yesterday);
        let r = anyone.anonymous(Method::GET, &url).send().await;
        r.expect(200, "presigned yesterday for two days");
        assert_eq!(r.body, "hello");
        let url = alice.presign(Method::GET, "/alices/doc", &[], 3600, &signed_yesterday);
        anyone.anonymous(Method::GET, &url).send().await.expect_error(
            403,
            "AccessDenied",
            "presigned yesterday for an hour",
        );
    }
);

case_secure!(
    /// The scope must name this gateway's region (`ozone.s3g.region`, us-east-1) and `s3`.
    scope_of_another_region_or_service_is_refused,
    |users| {
        let alice = users.user("alice").await;
        alice.bucket("alices").await;
        for (opts, what) in [
            (
                Opts {
                    region: Some("eu-west-1".into()),
                    ..Default::default()
                },
                "region eu-west-1",
            ),
            (
                Opts {
                    service: Some("iam".into()),
                    ..Default::default()
                },
                "service iam",
            ),
        ] {
            alice.get("/alices").opts(opts.clone()).send().await.expect_error(
                400,
                "AuthorizationHeaderMalformed",
                what,
            );
            let url = alice.presign(Method::GET, "/alices", &[], 300, &opts);
            users
                .anonymous
                .anonymous(Method::GET, &url)
                .send()
                .await
                .expect_error(400, "AuthorizationQueryParametersError", what);
        }
        alice.head("/alices").send().await.expect(200, "HeadBucket");
    }
);

case_secure!(
    /// A payload digest the signature covers is checked against the body (header form and
    /// presigned `X-Amz-Content-Sha256`); Content-MD5 only ever checks the body, signed or not.
    signed_payload_digests_are_checked,
    |users| {
        let alice = users.user("alice").await;
        alice.bucket("alices").await;
        let signed_for = |body: &str| Opts {
            payload: Some(sha256_hex(body.as_bytes())),
            ..Default::default()
        };
        // A body swapped on the way, with an unsigned Content-MD5 made to match it.
        let md5_of_evil = "QDSjRszuFSktgjQW91EKLw=="; // base64(md5("evil"))
        alice
            .put("/alices/doc")
            .opts(signed_for("good"))
            .unsigned_header("content-md5", md5_of_evil)
            .body("evil")
            .send()
            .await
            .expect_error(400, "XAmzContentSHA256Mismatch", "body not the signed one");
        alice.get("/alices/doc").send().await.expect_error(
            404,
            "NoSuchKey",
            "nothing stored for a mismatching body",
        );
        alice
            .put("/alices/doc")
            .opts(signed_for("good"))
            .body("good")
            .send()
            .await
            .expect(200, "the signed body");
        // An unsigned Content-MD5 that does not match: BadDigest, nothing replaced.
        alice
            .put("/alices/doc")
            .unsigned_header("content-md5", md5_of_evil)
            .body("other")
            .send()
            .await
            .expect_error(400, "BadDigest", "a Content-MD5 of another body");
        assert_eq!(alice.get("/alices/doc").send().await.body, "good");
        // Presigned with the payload's digest: only that body goes.
        let url = alice.presign(Method::PUT, "/alices/pre", &[], 300, &signed_for("good"));
        let anyone = &users.anonymous;
        anyone
            .anonymous(Method::PUT, &url)
            .body("evil")
            .send()
            .await
            .expect_error(400, "XAmzContentSHA256Mismatch", "presigned, another body");
        anyone
            .anonymous(Method::PUT, &url)
            .body("good")
            .send()
            .await
            .expect(200, "presigned, the signed body");
    }
);

case_secure!(
    /// `response-*` overrides are for authenticated requests: anonymous ones get 400
    /// InvalidRequest, as from AWS, even on a public object.
    response_overrides_need_a_signature,
    |users| {
        let alice = users.user("alice").await;
        let bob = users.user("bob").await;
        alice.bucket("alices").await;
        alice.object("alices", "doc", "<b>hi</b>").await;
        alice
            .put("/alices?acl")
            .header("x-amz-acl", "public-read")
            .send()
            .await
            .expect(200, "PutBucketAcl public-read");
        let path = "/alices/doc?response-content-type=text%2Fhtml";
        let anyone = &users.anonymous;
        anyone
            .anonymous(Method::GET, path)
            .send()
            .await
            .expect_error(400, "InvalidRequest", "anonymous GET with response-*");
        let r = anyone.anonymous(Method::GET, "/alices/doc").send().await;
        r.expect(200, "anonymous GET of a public object");
        let r = bob.get(path).send().await;
        r.expect(200, "signed GET with response-*");
        assert_eq!(r.header("content-type").as_deref(), Some("text/html"));
    }
);
