//! The aws CLI with its default settings: mb, cp of a 100 MiB file up and back, ls, rm, rb;
//! and every block replicated on 3 different datanodes.

use std::collections::HashSet;

use ozone_tests::{Cluster, ClusterOpts, ok, same_file, write_random_file};

#[test]
fn aws_cli_round_trip_and_replicas() {
    // 16 MiB blocks: the 100 MiB upload's 8 MiB parts and the object span many blocks.
    let c = Cluster::start(ClusterOpts {
        set: vec![("ozone.scm.block.size".into(), "16MB".into())],
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big.bin");
    let back = work.path().join("back.bin");
    write_random_file(&src, 100 << 20, 42);

    ok(c.aws(&["s3", "mb", "s3://cli-bucket"]));
    let ls = ok(c.aws(&["s3", "ls"]));
    assert!(ls.contains("cli-bucket"), "bucket missing from ls: {ls}");

    ok(c.aws(&[
        "s3",
        "cp",
        src.to_str().unwrap(),
        "s3://cli-bucket/dir/big.bin",
    ]));
    let ls = ok(c.aws(&["s3", "ls", "s3://cli-bucket/dir/"]));
    assert!(
        ls.contains("104857600 big.bin"),
        "object missing from ls: {ls}"
    );
    ok(c.aws(&[
        "s3",
        "cp",
        "s3://cli-bucket/dir/big.bin",
        back.to_str().unwrap(),
    ]));
    assert!(same_file(&src, &back), "downloaded bytes differ");

    // A small object through a single PUT too.
    let small = work.path().join("small.txt");
    std::fs::write(&small, b"hello ozone").unwrap();
    ok(c.aws(&[
        "s3",
        "cp",
        small.to_str().unwrap(),
        "s3://cli-bucket/small.txt",
    ]));
    let out = ok(c.aws(&["s3", "cp", "s3://cli-bucket/small.txt", "-"]));
    assert_eq!(out, "hello ozone");

    // Every container holding data has 3 replicas on 3 different datanodes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let list: serde_json::Value =
            serde_json::from_str(&ok(c.ozone(&["admin", "container", "list", "--json"]))).unwrap();
        let mut all_ok = true;
        let mut checked = 0;
        for container in list.as_array().expect("container list is an array") {
            let id = container["id"].as_u64().expect("container id");
            let info: serde_json::Value = serde_json::from_str(&ok(c.ozone(&[
                "admin",
                "container",
                "info",
                &id.to_string(),
                "--json",
            ])))
            .unwrap();
            let replicas = info["replicas"].as_array().cloned().unwrap_or_default();
            let nodes: HashSet<String> = replicas
                .iter()
                .filter_map(|r| r["datanode"]["uuid"].as_str().map(str::to_string))
                .collect();
            if replicas
                .iter()
                .any(|r| r["block_count"].as_u64().unwrap_or(0) > 0)
            {
                checked += 1;
                if nodes.len() != 3 || replicas.len() != 3 {
                    all_ok = false;
                }
            }
        }
        if all_ok && checked > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "containers without 3 replicas on 3 datanodes: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    ok(c.aws(&["s3", "rm", "s3://cli-bucket/dir/big.bin"]));
    ok(c.aws(&["s3", "rm", "s3://cli-bucket/small.txt"]));
    let ls = ok(c.aws(&["s3", "ls", "s3://cli-bucket/"]));
    assert!(ls.trim().is_empty(), "bucket not empty after rm: {ls}");
    ok(c.aws(&["s3", "rb", "s3://cli-bucket"]));
    let ls = ok(c.aws(&["s3", "ls"]));
    assert!(
        !ls.contains("cli-bucket"),
        "bucket still listed after rb: {ls}"
    );
}
