//! Secrets at rest (security on): an S3 secret is sealed by the OM leader before it reaches
//! the raft log, so neither `om.db`, nor `raft.db`, nor a snapshot holds it in clear, and
//! signing with it still works; every file the roles create is theirs alone (0600 in 0700
//! directories).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, files_under, ok};

/// Files under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir, |_| true)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn secrets_are_sealed_at_rest_and_role_files_are_private() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 1,
        set: vec![
            (keys::OZONE_SECURITY_ENABLED.name().into(), "true".into()),
            // Snapshots after a few entries, so one holds the secret's table.
            (
                keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD
                    .name()
                    .into(),
                "5".into(),
            ),
        ],
        ..Default::default()
    });
    let om = c.dir().join("om-1");
    // Every OM of the cluster is given the one key file, made 0600 by cluster up.
    let key_file = c.conf_dir().join("om.key");
    assert_eq!(
        c.conf_value("om-1", keys::OZONE_OM_SECRET_KEY_FILE.name()),
        key_file.display().to_string()
    );

    let (ak, sk) = c.getsecret("erin");
    assert_eq!(sk.len(), 64);
    // The raft log holds the CreateS3Secret entry now: sealed.
    let raft_db = files_under(&om, |p| p.ends_with("raft.db"));
    assert_eq!(raft_db.len(), 1, "{raft_db:?}");
    let om_db = files_under(&om, |p| p.ends_with("om.db"));
    assert_eq!(om_db.len(), 1, "{om_db:?}");
    for f in raft_db.iter().chain(&om_db) {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            bytes.windows(8).any(|w| w == b"aesgcm1:"),
            "{} holds no sealed secret",
            f.display()
        );
    }
    assert_eq!(files_holding(c.dir(), sk.as_bytes()), Vec::<PathBuf>::new());

    // Signing with it works: enough writes for the OM to take a snapshot.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("obj");
    ozone_tests::write_random_file(&src, 100_000, 3);
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://erin-bucket"]));
    for i in 0..6 {
        ok(c.aws_as(
            &ak,
            &sk,
            &[
                "s3",
                "cp",
                src.to_str().unwrap(),
                &format!("s3://erin-bucket/k{i}"),
            ],
        ));
    }
    let back = tmp.path().join("back");
    ok(c.aws_as(
        &ak,
        &sk,
        &["s3", "cp", "s3://erin-bucket/k5", back.to_str().unwrap()],
    ));
    assert!(ozone_tests::same_file(&src, &back));
    let out = c.aws_as(&ak, "not-the-secret", &["s3", "ls", "s3://erin-bucket/"]);
    assert!(!out.status.success(), "a wrong secret was accepted");

    let snapshot_dir = om.join("data").join("snapshot");
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshots = loop {
        let files = files_under(&snapshot_dir, |p| {
            !p.extension().is_some_and(|e| e == "json" || e == "tmp")
        });
        if !files.is_empty() {
            break files;
        }
        assert!(
            Instant::now() < deadline,
            "no OM snapshot in {}",
            snapshot_dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Neither the secret nor the admin credential is in clear in any file of the cluster
    // but the credential's own (the OM keeps only an HMAC of it).
    assert_eq!(files_holding(c.dir(), sk.as_bytes()), Vec::<PathBuf>::new());
    let admin = std::fs::read_to_string(c.conf_dir().join("admin.secret")).unwrap();
    let admin = admin.trim();
    assert_eq!(
        files_holding(&om, admin.as_bytes()),
        Vec::<PathBuf>::new(),
        "the admin credential is stored by OM"
    );
    for f in &snapshots {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            bytes.windows(8).any(|w| w == b"aesgcm1:"),
            "snapshot {} holds no sealed secret",
            f.display()
        );
    }

    // Every file and directory the roles and cluster up made is their owner's alone.
    let mut checked = 0;
    let mut open = Vec::new();
    for entry in std::fs::read_dir(c.dir()).unwrap().flatten() {
        let path = entry.path();
        // The harness's own log of cluster up.
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("cluster-up-"))
        {
            continue;
        }
        let mut all = vec![path.clone()];
        if path.is_dir() {
            all.extend(walk(&path));
        }
        for p in all {
            let mode = std::fs::symlink_metadata(&p).unwrap().permissions().mode();
            checked += 1;
            if mode & 0o077 != 0 {
                open.push(format!("{:o} {}", mode & 0o777, p.display()));
            }
        }
    }
    assert!(open.is_empty(), "readable by others: {open:#?}");
    for role in ["scm", "om-1", "datanode-1", "s3g"] {
        assert!(c.dir().join(role).join("pid").is_file(), "{role}");
    }
    assert!(checked > 20, "only {checked} paths checked");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// Every path under `dir` (files and directories).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.clone());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&p));
            }
        }
    }
    out
}
