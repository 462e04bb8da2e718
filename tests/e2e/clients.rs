//! Other S3 clients against the gateway: `aws s3 cp` of 300 MiB and `aws s3 sync` of 500 files
//! both ways, rclone, s3cmd and an s3fs-fuse mount.

use std::path::Path;
use std::process::Command;

use ozone_tests::{Cluster, ok, same_file, write_random_file};

fn same_tree(a: &Path, b: &Path) -> bool {
    let list = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let (la, lb) = (list(a), list(b));
    la == lb && la.iter().all(|n| same_file(&a.join(n), &b.join(n)))
}

#[test]
fn aws_cli_300mib_and_sync_of_500_files() {
    let c = Cluster::shared();
    let work = tempfile::tempdir().unwrap();
    ok(c.aws(&["s3", "mb", "s3://sync-bucket"]));
    let big = work.path().join("big");
    let back = work.path().join("big.back");
    write_random_file(&big, 300 << 20, 3);
    ok(c.aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        big.to_str().unwrap(),
        "s3://sync-bucket/big",
    ]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://sync-bucket/big",
        back.to_str().unwrap(),
    ]));
    assert!(same_file(&big, &back), "300 MiB object differs");

    let src = work.path().join("src");
    let dst = work.path().join("dst");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..500 {
        write_random_file(&src.join(format!("f{i:03}")), 100 + i * 37, i as u64);
    }
    ok(c.aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        src.to_str().unwrap(),
        "s3://sync-bucket/tree",
    ]));
    let ls = ok(c.aws(&["s3", "ls", "s3://sync-bucket/tree/"]));
    assert_eq!(ls.lines().count(), 500, "{ls}");
    ok(c.aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        "s3://sync-bucket/tree",
        dst.to_str().unwrap(),
    ]));
    assert!(same_tree(&src, &dst), "synced tree differs");
    // A second sync has nothing to do.
    let again = ok(c.aws(&["s3", "sync", src.to_str().unwrap(), "s3://sync-bucket/tree"]));
    assert!(!again.contains("upload:"), "{again}");
}

#[test]
fn rclone_s3cmd_and_s3fs() {
    let c = Cluster::shared();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        write_random_file(
            &src.join(format!("r{i:02}")),
            1000 + i * 50_000,
            100 + i as u64,
        );
    }
    ok(c.aws(&["s3", "mb", "s3://clients-bucket"]));
    // Each client is configured with the test credentials (a real secret with security on).
    let (key, secret) = c.credentials();

    // rclone: copy, ls, sync back, delete
    let rclone = |args: &[&str]| {
        let mut cmd = c.client("rclone");
        cmd.env("RCLONE_CONFIG_OZ_TYPE", "s3")
            .env("RCLONE_CONFIG_OZ_PROVIDER", "Other")
            .env("RCLONE_CONFIG_OZ_ENDPOINT", &c.endpoint)
            .env("RCLONE_CONFIG_OZ_ACCESS_KEY_ID", &key)
            .env("RCLONE_CONFIG_OZ_SECRET_ACCESS_KEY", &secret)
            .env("RCLONE_CONFIG", work.path().join("rclone.conf"))
            .args(args);
        ok(cmd.output().unwrap())
    };
    rclone(&["copy", src.to_str().unwrap(), "oz:clients-bucket/rclone"]);
    let ls = rclone(&["ls", "oz:clients-bucket/rclone"]);
    assert_eq!(ls.lines().count(), 20, "{ls}");
    let back = work.path().join("rclone-back");
    rclone(&["sync", "oz:clients-bucket/rclone", back.to_str().unwrap()]);
    assert!(same_tree(&src, &back), "rclone sync differs");
    rclone(&["delete", "oz:clients-bucket/rclone"]);
    assert!(
        rclone(&["ls", "oz:clients-bucket/rclone"])
            .trim()
            .is_empty()
    );

    // s3cmd: put, ls, get
    let host = c.endpoint.trim_start_matches("http://").to_string();
    let cfg = work.path().join("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            "[default]\naccess_key = {key}\nsecret_key = {secret}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
        ),
    )
    .unwrap();
    let s3cmd = |args: &[&str]| {
        let mut cmd = c.client("s3cmd");
        cmd.arg("-c").arg(&cfg).args(args);
        ok(cmd.output().unwrap())
    };
    let f = src.join("r05");
    s3cmd(&["put", f.to_str().unwrap(), "s3://clients-bucket/s3cmd/r05"]);
    let ls = s3cmd(&["ls", "s3://clients-bucket/s3cmd/"]);
    assert!(ls.contains("s3://clients-bucket/s3cmd/r05"), "{ls}");
    let got = work.path().join("s3cmd-r05");
    s3cmd(&[
        "get",
        "s3://clients-bucket/s3cmd/r05",
        got.to_str().unwrap(),
    ]);
    assert!(same_file(&f, &got));

    // s3fs-fuse: mount, write with cp, ls, read back, rm
    if !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED s3fs part: /dev/fuse is missing on this machine");
        return;
    }
    let mnt = work.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let pw = work.path().join("s3fs.pw");
    std::fs::write(&pw, format!("{key}:{secret}\n")).unwrap();
    let mut perms = std::fs::metadata(&pw).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&pw, perms).unwrap();
    let mount = c
        .client("s3fs")
        .arg("clients-bucket")
        .arg(&mnt)
        .args(["-o", &format!("passwd_file={}", pw.display())])
        .args(["-o", &format!("url={}", c.endpoint)])
        .args(["-o", "use_path_request_style", "-o", "dbglevel=warn"])
        .output()
        .unwrap();
    ok(mount);
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let big = work.path().join("fuse-big");
    write_random_file(&big, 12 << 20, 77);
    std::fs::copy(&big, mnt.join("fuse-big")).unwrap();
    let names: Vec<_> = std::fs::read_dir(&mnt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"fuse-big".to_string()), "{names:?}");
    assert!(
        same_file(&big, &mnt.join("fuse-big")),
        "read through s3fs differs"
    );
    let out = ok(c.aws(&["s3", "ls", "s3://clients-bucket/"]));
    assert!(out.contains("fuse-big"), "{out}");
    std::fs::remove_file(mnt.join("fuse-big")).unwrap();
    let out = ok(c.aws(&["s3", "ls", "s3://clients-bucket/"]));
    assert!(!out.contains("fuse-big"), "{out}");
}
