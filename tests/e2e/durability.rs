//! Durability: SIGKILL of every process loses nothing; a corrupted replica never yields wrong
//! bytes.

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, block_files, ok, same_file, write_random_file};

#[test]
fn sigkill_everything_then_restart_serves_every_object() {
    let mut c = Cluster::start(ClusterOpts {
        set: vec![(keys::OZONE_SCM_BLOCK_SIZE.name().into(), "4MB".into())],
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    ok(c.aws(&["s3", "mb", "s3://durable"]));
    let mut files = Vec::new();
    for (i, size) in [0usize, 1, 4096, 4 << 20, (9 << 20) + 123, 20 << 20]
        .iter()
        .enumerate()
    {
        let f = work.path().join(format!("obj{i}"));
        write_random_file(&f, *size, i as u64 + 7);
        ok(c.aws(&[
            "s3",
            "cp",
            f.to_str().unwrap(),
            &format!("s3://durable/obj{i}"),
        ]));
        files.push(f);
    }
    c.kill_all();
    c.restart();
    for (i, f) in files.iter().enumerate() {
        let back = work.path().join(format!("back{i}"));
        ok(c.aws(&[
            "s3",
            "cp",
            &format!("s3://durable/obj{i}"),
            back.to_str().unwrap(),
        ]));
        assert!(same_file(f, &back), "obj{i} differs after restart");
    }
    // And the restarted cluster takes new writes.
    ok(c.aws(&[
        "s3",
        "cp",
        files[2].to_str().unwrap(),
        "s3://durable/after-restart",
    ]));
}

#[test]
fn flipped_byte_in_one_replica_never_yields_wrong_bytes() {
    let c = Cluster::start(ClusterOpts::default());
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src.bin");
    write_random_file(&src, 6 << 20, 99);
    ok(c.aws(&["s3", "mb", "s3://corrupt"]));
    ok(c.aws(&["s3", "cp", src.to_str().unwrap(), "s3://corrupt/obj"]));

    let blocks = block_files(&c.dir().join("datanode-1"));
    assert!(!blocks.is_empty(), "datanode-1 holds no block file");
    for b in &blocks {
        let mut bytes = std::fs::read(b).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        std::fs::write(b, bytes).unwrap();
    }
    // Reads start at varying replicas: every one of them must give the right bytes.
    for i in 0..8 {
        let back = work.path().join(format!("back{i}"));
        ok(c.aws(&["s3", "cp", "s3://corrupt/obj", back.to_str().unwrap()]));
        assert!(same_file(&src, &back), "GET {i} returned wrong bytes");
    }
}
