//! `ozone sh`: volumes, buckets, keys and bucket links against a real cluster, and the aws CLI
//! reading and writing through a link in `s3v` (a 50 MiB key put with a progress bar drawn on a
//! terminal: the command runs under a pty made by `script`).

use std::process::{Command, Output};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, ok, ozone_bin, same_file, write_random_file};

/// Runs `ozone <args>` under a pseudo-terminal (`script -qec`), so the shell sees a terminal on
/// stdout and stderr; returns what the terminal showed.
fn ozone_on_tty(c: &Cluster, args: &[&str]) -> String {
    let cmd = std::iter::once(ozone_bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("OZONE_CONF_DIR", c.conf_dir())
        .output()
        .expect("run script (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ozone {args:?} under a pty failed ({}):\n{shown}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    shown
}

/// Fails unless the command failed with `status` (OM's status name) on stderr.
#[track_caller]
fn fails_with(out: Output, status: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected {status}, but it succeeded");
    assert!(
        err.contains(status),
        "expected {status} on stderr, got: {err}"
    );
    err
}

/// Stderr of a command that must have succeeded.
#[track_caller]
fn ok_out(out: &Output) -> Vec<u8> {
    ok(out.clone());
    out.stderr.clone()
}

fn json(out: Output) -> serde_json::Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn shell_volumes_buckets_keys_and_links_through_s3() {
    shell_flow(&Cluster::start(ClusterOpts::default()));
}

/// The same with `ozone.security.enabled=true`: `ozone sh` acts as the administrator (the
/// credential `cluster up` leaves in the conf dir), the links it makes in `s3v` are owned by
/// the administrator (`s3v`'s owner), and the S3 calls through them are made as their owner
/// (with the secret `ozone s3 getsecret` gives). Alice owns the volume and the bucket the link
/// points at, yet is refused through the link until its owner grants her READ and WRITE on it;
/// Bob, without a grant, stays refused.
#[test]
fn shell_volumes_buckets_keys_and_links_through_s3_with_security_on() {
    shell_flow(&Cluster::start(ClusterOpts {
        set: vec![(keys::OZONE_SECURITY_ENABLED.name().into(), "true".into())],
        ..Default::default()
    }));
}

fn shell_flow(c: &Cluster) {
    let dir = c.dir().to_path_buf();
    let sh = |args: &[&str]| {
        let mut all = vec!["sh"];
        all.extend_from_slice(args);
        c.ozone(&all)
    };

    // Volumes and buckets, with JSON info and lists.
    ok(sh(&["volume", "create", "/vol1", "--user", "alice"]));
    let v = json(sh(&["volume", "info", "/vol1"]));
    assert_eq!(v["name"], "vol1");
    assert_eq!(v["owner"], "alice");
    let vols = json(sh(&["volume", "list"]));
    let names: Vec<&str> = vols
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(names.contains(&"vol1") && names.contains(&"s3v"), "{vols}");
    ok(sh(&["bucket", "create", "/vol1/bucket1"]));
    let b = json(sh(&["bucket", "info", "/vol1/bucket1"]));
    assert_eq!(
        (b["volumeName"].as_str(), b["name"].as_str()),
        (Some("vol1"), Some("bucket1"))
    );
    assert_eq!(b["owner"], "alice");
    assert_eq!(b["link"], false);
    let bl = json(sh(&["bucket", "list", "/vol1"]));
    assert_eq!(bl.as_array().unwrap().len(), 1, "{bl}");

    // A 50 MiB key with a progress bar on a terminal.
    let big = dir.join("big.bin");
    write_random_file(&big, 50 << 20, 7);
    let shown = ozone_on_tty(
        c,
        &[
            "sh",
            "key",
            "put",
            "/vol1/bucket1/data/big.bin",
            big.to_str().unwrap(),
        ],
    );
    assert!(
        shown.contains("data/big.bin [")
            && shown.contains("100%")
            && shown.contains("50.0 MiB/50.0 MiB"),
        "no progress bar drawn on the terminal: {shown:?}"
    );
    assert!(shown.contains("MiB/s"), "{shown:?}");
    // Without a terminal no bar is drawn.
    let small = dir.join("small.txt");
    std::fs::write(&small, b"hello from ozone sh\n").unwrap();
    let out = sh(&[
        "key",
        "put",
        "/vol1/bucket1/small.txt",
        small.to_str().unwrap(),
    ]);
    ok(out.clone());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('%'),
        "bar drawn without a tty"
    );
    // ... unless forced.
    let small_back = dir.join("small-back.txt");
    let out = sh(&[
        "key",
        "get",
        "--progress",
        "/vol1/bucket1/small.txt",
        small_back.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&ok_out(&out)).contains("100%"),
        "{out:?}"
    );
    assert!(same_file(&small, &small_back));

    let k = json(sh(&["key", "info", "/vol1/bucket1/data/big.bin"]));
    assert_eq!(k["dataSize"], 50u64 << 20);
    assert_eq!(k["replicationConfig"]["replicationFactor"], "THREE");
    assert!(
        !k["ozoneKeyLocations"].as_array().unwrap().is_empty(),
        "{k}"
    );
    let keys = json(sh(&["key", "list", "/vol1/bucket1"]));
    let names: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(names, vec!["data/big.bin", "small.txt"]);

    // key get, with an o3:// address naming the OM, also under a terminal.
    let om = ok(c.ozone(&["getconf", "confKey", keys::OZONE_OM_ADDRESS.name()]));
    let got = dir.join("got.bin");
    let addr = format!("o3://{}/vol1/bucket1/data/big.bin", om.trim());
    let shown = ozone_on_tty(c, &["sh", "key", "get", &addr, got.to_str().unwrap()]);
    assert!(shown.contains("100%"), "{shown:?}");
    assert!(same_file(&big, &got), "key get returned other bytes");
    fails_with(
        sh(&[
            "key",
            "get",
            "/vol1/bucket1/data/big.bin",
            got.to_str().unwrap(),
        ]),
        "exists",
    );

    // Link the bucket into s3v; the aws CLI reads and writes through the link name.
    ok(sh(&[
        "bucket",
        "link",
        "/vol1/bucket1",
        "/s3v/common-bucket",
    ]));
    let l = json(sh(&["bucket", "info", "/s3v/common-bucket"]));
    assert_eq!(l["link"], true);
    // The S3 user of the calls through links: with security off any key; with it on, the
    // owner of the links the shell makes (with the secret `ozone s3 getsecret` gives).
    let owner = c
        .secure()
        .then(|| c.getsecret(l["owner"].as_str().expect("the link has an owner")));
    let s3 = |args: &[&str]| match &owner {
        Some((key, secret)) => c.aws_as(key, secret, args),
        None => c.aws(args),
    };
    assert_eq!(
        (l["sourceVolume"].as_str(), l["sourceBucket"].as_str()),
        (Some("vol1"), Some("bucket1"))
    );
    if c.secure() {
        // The link is the shell user's (the administrator's), not the source bucket's owner's:
        // Alice, who owns /vol1/bucket1, is refused through it until the link's owner grants
        // her READ and WRITE on it.
        assert_ne!(l["owner"], "alice", "{l}");
        let (ak, sk) = c.getsecret("alice");
        let alice = |args: &[&str]| c.aws_as(&ak, &sk, args);
        let out = alice(&["s3", "ls", "s3://common-bucket/"]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("AccessDenied"),
            "{out:?}"
        );
        ok(s3(&[
            "s3api",
            "put-bucket-acl",
            "--bucket",
            "common-bucket",
            "--grant-read",
            "id=alice",
            "--grant-write",
            "id=alice",
        ]));
        let listing = ok(alice(&["s3", "ls", "s3://common-bucket/"]));
        assert!(listing.contains("small.txt"), "{listing}");
        let alice_up = dir.join("alice.txt");
        std::fs::write(&alice_up, b"alice through the link\n").unwrap();
        ok(alice(&[
            "s3",
            "cp",
            alice_up.to_str().unwrap(),
            "s3://common-bucket/alice.txt",
        ]));
        let back = dir.join("alice-back.txt");
        ok(sh(&[
            "key",
            "get",
            "/vol1/bucket1/alice.txt",
            back.to_str().unwrap(),
        ]));
        assert!(same_file(&alice_up, &back));
        ok(sh(&["key", "delete", "/vol1/bucket1/alice.txt"]));
        // Bob, with no grant, is still refused.
        let (bk, bs) = c.getsecret("bob");
        let out = c.aws_as(&bk, &bs, &["s3", "ls", "s3://common-bucket/"]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("AccessDenied"),
            "{out:?}"
        );
    }
    let path = ok(sh(&["bucket", "path", "common-bucket"]));
    assert!(
        path.contains("Volume name for S3Bucket is : vol1"),
        "{path}"
    );
    assert!(
        path.contains("Bucket name for S3Bucket is : bucket1"),
        "{path}"
    );

    let listing = ok(s3(&["s3", "ls", "--recursive", "s3://common-bucket/"]));
    assert!(
        listing.contains("data/big.bin") && listing.contains("small.txt"),
        "{listing}"
    );
    let via_s3 = dir.join("via-s3.bin");
    ok(s3(&[
        "s3",
        "cp",
        "s3://common-bucket/data/big.bin",
        via_s3.to_str().unwrap(),
    ]));
    assert!(
        same_file(&big, &via_s3),
        "the aws CLI read other bytes through the link"
    );
    let buckets = ok(s3(&["s3api", "list-buckets"]));
    assert!(buckets.contains("common-bucket"), "{buckets}");
    ok(s3(&["s3api", "head-bucket", "--bucket", "common-bucket"]));
    // A multipart upload through the link (the aws CLI sends 50 MiB in 8 MiB parts).
    ok(s3(&[
        "s3",
        "cp",
        big.to_str().unwrap(),
        "s3://common-bucket/mp/big-again.bin",
    ]));
    let mp = json(sh(&["key", "info", "/vol1/bucket1/mp/big-again.bin"]));
    assert_eq!(mp["dataSize"], 50u64 << 20);
    let mp_back = dir.join("mp-back.bin");
    ok(sh(&[
        "key",
        "get",
        "/vol1/bucket1/mp/big-again.bin",
        mp_back.to_str().unwrap(),
    ]));
    assert!(
        same_file(&big, &mp_back),
        "multipart key through the link differs"
    );
    ok(sh(&["key", "delete", "/vol1/bucket1/mp/big-again.bin"]));
    // A write through the link lands in the source bucket.
    let up = dir.join("up.txt");
    std::fs::write(&up, b"written through the link\n").unwrap();
    ok(s3(&[
        "s3",
        "cp",
        up.to_str().unwrap(),
        "s3://common-bucket/up.txt",
    ]));
    let back = dir.join("up-back.txt");
    ok(sh(&[
        "key",
        "get",
        "/vol1/bucket1/up.txt",
        back.to_str().unwrap(),
    ]));
    assert!(same_file(&up, &back));

    // A loop of links and a dangling link.
    ok(sh(&["bucket", "link", "/s3v/loop-b", "/s3v/loop-a"]));
    ok(sh(&["bucket", "link", "/s3v/loop-a", "/s3v/loop-b"]));
    let err =
        String::from_utf8_lossy(&s3(&["s3api", "list-objects-v2", "--bucket", "loop-a"]).stderr)
            .into_owned();
    assert!(
        err.contains("InvalidRequest") && err.contains("loop"),
        "{err}"
    );
    fails_with(
        sh(&["bucket", "path", "loop-b"]),
        "DETECTED_LOOP_IN_BUCKET_LINKS",
    );
    ok(sh(&[
        "bucket",
        "link",
        "/vol1/no-such-bucket",
        "/s3v/dangling",
    ]));
    let out = s3(&["s3api", "list-objects-v2", "--bucket", "dangling"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoSuchBucket"),
        "{out:?}"
    );
    let out = s3(&["s3", "cp", up.to_str().unwrap(), "s3://dangling/x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoSuchBucket"),
        "{out:?}"
    );
    let out = s3(&["s3api", "head-bucket", "--bucket", "dangling"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );

    // Errors as Ozone prints them, with a non-zero exit.
    fails_with(sh(&["volume", "info", "/nope"]), "VOLUME_NOT_FOUND");
    fails_with(sh(&["bucket", "info", "/vol1/nope"]), "BUCKET_NOT_FOUND");
    fails_with(sh(&["key", "info", "/vol1/bucket1/nope"]), "KEY_NOT_FOUND");
    fails_with(
        sh(&["bucket", "delete", "/vol1/bucket1"]),
        "BUCKET_NOT_EMPTY",
    );
    fails_with(sh(&["volume", "delete", "/vol1"]), "VOLUME_NOT_EMPTY");
    fails_with(sh(&["volume", "create", "/vol1"]), "VOLUME_ALREADY_EXISTS");

    // Deleting the link leaves the source bucket and its keys.
    ok(sh(&["bucket", "delete", "/s3v/common-bucket"]));
    let out = s3(&["s3", "ls", "s3://common-bucket/"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoSuchBucket"),
        "{out:?}"
    );
    json(sh(&["key", "info", "/vol1/bucket1/data/big.bin"]));

    // Delete everything, innermost first.
    for key in ["data/big.bin", "small.txt", "up.txt"] {
        ok(sh(&["key", "delete", &format!("/vol1/bucket1/{key}")]));
    }
    fails_with(
        sh(&["key", "info", "/vol1/bucket1/small.txt"]),
        "KEY_NOT_FOUND",
    );
    fails_with(
        sh(&["key", "delete", "/vol1/bucket1/small.txt"]),
        "KEY_NOT_FOUND",
    );
    ok(sh(&["bucket", "delete", "/vol1/bucket1"]));
    ok(sh(&["volume", "delete", "/vol1"]));
    fails_with(sh(&["volume", "info", "/vol1"]), "VOLUME_NOT_FOUND");
}
