//! Security on (`ozone.security.enabled=true`): secrets managed with `ozone s3`, SigV4 checked
//! (header, presigned, streaming chunks), ownership and ACLs, revocation at once, the aws CLI.

use ozone_common::config::{ENV_PREFIX, keys};
use ozone_tests::{Cluster, ClusterOpts, ok};

fn secure_cluster() -> Cluster {
    Cluster::start(ClusterOpts {
        set: vec![(keys::OZONE_SECURITY_ENABLED.name().into(), "true".into())],
        ..Default::default()
    })
}

#[test]
fn security_sigv4_acls_and_secrets() {
    let c = secure_cluster();

    // The admin credential is in the conf dir, readable by its owner only.
    let file = c.conf_dir().join("admin.secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());

    // Without (or with a wrong) admin credential, secrets cannot be managed.
    for (k, v) in [
        ("OZONE_ADMIN_SECRET", "wrong"),
        ("OZONE-SITE.XML_ozone.om.admin.secret.file", ""),
    ] {
        for cmd in ["getsecret", "revokesecret"] {
            let out = std::process::Command::new(ozone_tests::ozone_bin())
                .args(["s3", cmd, "-u", "mallory"])
                .env("OZONE_CONF_DIR", c.conf_dir())
                .env_remove("OZONE_ADMIN_SECRET")
                .env(k, v)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{cmd} with {k}={v:?} succeeded");
            assert!(
                err.contains("PERMISSION_DENIED") || err.contains("admin credential"),
                "{err}"
            );
        }
    }

    let (ak_a, sk_a) = c.getsecret("alice");
    let (ak_b, sk_b) = c.getsecret("bob");
    assert_eq!(ak_a, "alice");
    // Asking again shows the same secret.
    assert_eq!(c.getsecret("alice"), (ak_a.clone(), sk_a.clone()));

    c.pytest(
        &["security.py", "-k", "not revoked"],
        &[
            ("OZONE_TEST_ALICE_KEY", &ak_a),
            ("OZONE_TEST_ALICE_SECRET", &sk_a),
            ("OZONE_TEST_BOB_KEY", &ak_b),
            ("OZONE_TEST_BOB_SECRET", &sk_b),
        ],
    );

    // The aws CLI: a ~20 MiB multipart upload (signed) and download.
    let src = c.dir().join("big.bin");
    ozone_tests::write_random_file(&src, 20 * 1024 * 1024 + 12345, 7);
    let dst = c.dir().join("big.back");
    ok(c.aws_as(
        &ak_a,
        &sk_a,
        &[
            "s3",
            "cp",
            src.to_str().unwrap(),
            "s3://alice-bucket/big.bin",
        ],
    ));
    ok(c.aws_as(
        &ak_a,
        &sk_a,
        &[
            "s3",
            "cp",
            "s3://alice-bucket/big.bin",
            dst.to_str().unwrap(),
        ],
    ));
    assert!(ozone_tests::same_file(&src, &dst), "bytes differ");
    let out = c.aws_as(&ak_a, "not-the-secret", &["s3", "ls", "s3://alice-bucket/"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"));
    // Bob's READ grant was replaced by WRITE: he cannot read the big object.
    let out = c.aws_as(
        &ak_b,
        &sk_b,
        &[
            "s3",
            "cp",
            "s3://alice-bucket/big.bin",
            dst.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());

    // rclone (aws-sdk-go) signs its own way: copy up and back.
    let rclone = |ak: &str, sk: &str, args: &[&str]| {
        let mut cmd = c.client("rclone");
        cmd.env("RCLONE_CONFIG_OZ_TYPE", "s3")
            .env("RCLONE_CONFIG_OZ_PROVIDER", "Other")
            .env("RCLONE_CONFIG_OZ_ENDPOINT", &c.endpoint)
            .env("RCLONE_CONFIG_OZ_ACCESS_KEY_ID", ak)
            .env("RCLONE_CONFIG_OZ_SECRET_ACCESS_KEY", sk)
            .env("RCLONE_CONFIG", c.dir().join("rclone.conf"))
            .args(args);
        cmd.output().unwrap()
    };
    ok(rclone(
        &ak_a,
        &sk_a,
        &[
            "copyto",
            src.to_str().unwrap(),
            "oz:alice-bucket/rclone.bin",
        ],
    ));
    let back = c.dir().join("rclone.back");
    ok(rclone(
        &ak_a,
        &sk_a,
        &[
            "copyto",
            "oz:alice-bucket/rclone.bin",
            back.to_str().unwrap(),
        ],
    ));
    assert!(ozone_tests::same_file(&src, &back), "rclone bytes differ");
    assert!(
        !rclone(&ak_b, &sk_b, &["ls", "oz:alice-bucket"])
            .status
            .success()
    );

    // A revoked secret stops working at once.
    ok(c.aws_as(&ak_b, &sk_b, &["s3", "ls", "s3://bob-bucket/"]));
    let out = ok(c.ozone(&["s3", "revokesecret", "-u", "bob"]));
    assert!(out.contains("revoked"), "{out}");
    c.pytest(
        &["security.py::test_revoked_secret_is_refused"],
        &[
            ("OZONE_TEST_REVOKED_KEY", &ak_b),
            ("OZONE_TEST_REVOKED_SECRET", &sk_b),
        ],
    );
    // Alice is unaffected; a new secret for Bob works and differs from the old one.
    ok(c.aws_as(&ak_a, &sk_a, &["s3", "ls", "s3://alice-bucket/"]));
    let (_, sk_b2) = c.getsecret("bob");
    assert_ne!(sk_b2, sk_b);
    ok(c.aws_as(&ak_b, &sk_b2, &["s3", "ls", "s3://bob-bucket/"]));
}

/// Secrets live in the replicated OM state: with 3 OMs a secret keeps working after the OM
/// leader dies, and a revocation on the new leader takes effect at once.
#[test]
fn security_secrets_survive_om_leader_loss() {
    let mut c = Cluster::start(ClusterOpts {
        oms: 3,
        set: vec![(keys::OZONE_SECURITY_ENABLED.name().into(), "true".into())],
        ..Default::default()
    });
    let (ak, sk) = c.getsecret("carol");
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://carol-bucket"]));
    let leader = c.om_leader(std::time::Duration::from_secs(30));
    c.kill_role(&leader);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = c.aws_as(&ak, &sk, &["s3", "ls", "s3://carol-bucket/"]);
        if out.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "secret not usable after the leader died: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(c.getsecret("carol").1, sk);
    ok(c.ozone(&["s3", "revokesecret", "-u", "carol"]));
    let out = c.aws_as(&ak, &sk, &["s3", "ls", "s3://carol-bucket/"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidAccessKeyId"));
}

/// `cluster up` takes `OZONE-SITE.XML_<key>` environment variables as it takes `--set`: security
/// turned on that way is in `DIR/conf`, with the admin credential beside it.
#[test]
fn security_turned_on_by_the_environment_of_cluster_up() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 1,
        env: vec![(
            format!("{ENV_PREFIX}{}", keys::OZONE_SECURITY_ENABLED),
            "true".into(),
        )],
        ..Default::default()
    });
    assert!(c.conf_dir().join("admin.secret").is_file());
    let on = ok(c.ozone(&["getconf", "confKey", keys::OZONE_SECURITY_ENABLED.name()]));
    assert_eq!(on.trim(), "true");
    let (ak, sk) = c.getsecret("dave");
    assert_eq!(ak, "dave");
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://dave-bucket"]));
    let out = c.aws_as(&ak, "not-the-secret", &["s3", "ls", "s3://dave-bucket/"]);
    assert!(!out.status.success(), "a wrong secret was accepted");
}

/// SIGCONTs a SIGSTOPped process when dropped, so a failing test leaves nothing stopped.
struct Stopped(i32);

impl Stopped {
    fn stop(pid: i32) -> Stopped {
        signal(pid, rustix::process::Signal::STOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, rustix::process::Signal::CONT);
    }
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Authorization fails closed: with the OM SIGSTOPped (it accepts connections but answers
/// nothing), a signed request and an anonymous one on a public bucket are answered 503
/// ServiceUnavailable once the gateway's OM call times out, never served or let through;
/// after SIGCONT both are served again.
#[test]
fn security_om_stopped_during_authorization_gives_503() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 1,
        set: vec![
            (keys::OZONE_SECURITY_ENABLED.name().into(), "true".into()),
            (
                keys::OZONE_SERVER_DEFAULT_REPLICATION.name().into(),
                "1".into(),
            ),
        ],
        ..Default::default()
    });
    let (ak, sk) = c.getsecret("erin");
    // One attempt (the CLI would retry a 503) and a read timeout past the gateway's OM
    // request timeout (30 s).
    let aws = |args: &[&str]| {
        let mut cmd = c.client("aws");
        cmd.env("AWS_ACCESS_KEY_ID", &ak)
            .env("AWS_SECRET_ACCESS_KEY", &sk)
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_RETRY_MODE", "standard")
            .args(["--cli-read-timeout", "120", "--endpoint-url", &c.endpoint])
            .args(args);
        cmd.output().unwrap()
    };
    let src = c.dir().join("doc.txt");
    std::fs::write(&src, "erin's data").unwrap();
    let back = c.dir().join("doc.back");
    ok(aws(&["s3api", "create-bucket", "--bucket", "erin-bucket"]));
    ok(aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "erin-bucket",
        "--key",
        "doc.txt",
        "--body",
        src.to_str().unwrap(),
    ]));
    ok(aws(&[
        "s3api",
        "put-bucket-acl",
        "--bucket",
        "erin-bucket",
        "--acl",
        "public-read",
    ]));
    let get = || {
        aws(&[
            "s3api",
            "get-object",
            "--bucket",
            "erin-bucket",
            "--key",
            "doc.txt",
            back.to_str().unwrap(),
        ])
    };
    let anonymous_get = || {
        ozone_common::probe::request(
            &c.s3_addr(),
            "GET",
            "/erin-bucket/doc.txt",
            b"",
            std::time::Duration::from_secs(120),
        )
        .unwrap()
    };
    ok(get());
    let r = anonymous_get();
    assert_eq!((r.status, r.text().as_str()), (200, "erin's data"));

    let om_dir = c.om_leader(std::time::Duration::from_secs(30));
    let om = c
        .role_pids()
        .into_iter()
        .find(|(name, _)| *name == om_dir)
        .unwrap_or_else(|| panic!("no pid of {om_dir} in {:?}", c.role_pids()))
        .1;
    let stopped = Stopped::stop(om);
    let out = get();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a signed GET was served with OM stopped"
    );
    assert!(err.contains("ServiceUnavailable"), "{err}");
    let r = anonymous_get();
    assert_eq!(r.status, 503, "anonymous GET with OM stopped: {}", r.text());
    assert!(
        r.text().contains("<Code>ServiceUnavailable</Code>"),
        "{}",
        r.text()
    );
    drop(stopped);

    ok(get());
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "erin's data");
    let r = anonymous_get();
    assert_eq!((r.status, r.text().as_str()), (200, "erin's data"));
}
