//! HTTPS on the S3 port: `cluster up --https` makes a CA and a certificate for
//! localhost/127.0.0.1, and the gateway serves S3 over HTTPS beside plain HTTP. The aws CLI
//! (`--ca-bundle`) and boto3 (`verify=`) use it with that CA, and refuse it without.

use ozone_tests::{Cluster, ClusterOpts, ok};

#[test]
fn https_with_the_generated_ca_for_aws_cli_and_boto3() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 1,
        https: true,
        ..Default::default()
    });
    let ca = c.ca_file();
    assert!(ca.is_file(), "{}", ca.display());
    assert!(
        c.https_endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        c.https_endpoint
    );
    let aws = |args: &[&str]| {
        let mut cmd = c.client("aws");
        cmd.arg("--endpoint-url")
            .arg(&c.https_endpoint)
            .arg("--ca-bundle")
            .arg(&ca)
            .args(args);
        cmd.output().unwrap()
    };

    // Up and down (12 MiB: a multipart upload) and a listing, over HTTPS.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("obj");
    ozone_tests::write_random_file(&src, 12 * 1024 * 1024 + 321, 11);
    ok(aws(&["s3", "mb", "s3://tls-bucket"]));
    ok(aws(&[
        "s3",
        "cp",
        src.to_str().unwrap(),
        "s3://tls-bucket/dir/obj",
    ]));
    let back = tmp.path().join("back");
    ok(aws(&[
        "s3",
        "cp",
        "s3://tls-bucket/dir/obj",
        back.to_str().unwrap(),
    ]));
    assert!(ozone_tests::same_file(&src, &back), "bytes differ");
    let listed = ok(aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        "tls-bucket",
        "--prefix",
        "dir/",
    ]));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["Contents"][0]["Key"], "dir/obj");
    assert_eq!(listed["Contents"][0]["Size"], 12 * 1024 * 1024 + 321);

    // Without the CA the certificate is not trusted.
    let mut cmd = c.client("aws");
    cmd.arg("--endpoint-url")
        .arg(&c.https_endpoint)
        .args(["s3", "ls", "s3://tls-bucket/"]);
    let out = cmd.output().unwrap();
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SSL") || err.contains("certificate"), "{err}");

    // Plain HTTP still serves the same objects.
    let plain = ok(c.aws(&["s3", "ls", "s3://tls-bucket/dir/"]));
    assert!(plain.contains("obj"), "{plain}");

    // boto3 with verify=<ca>.
    c.pytest(
        &["https.py"],
        &[
            ("OZONE_S3_ENDPOINT", &c.https_endpoint),
            ("OZONE_TEST_CA_BUNDLE", ca.to_str().unwrap()),
        ],
    );
}
