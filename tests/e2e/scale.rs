//! Containers fill by the bytes written, not by allocations: many small objects share a
//! container, every role works under a small open-file limit, and large objects survive their
//! containers closing under them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, ok, same_file, write_random_file};
use serde_json::Value;

/// The (soft, hard) open-file limits of a process, from `/proc/<pid>/limits`.
fn nofile_limits(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

fn open_files(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn small_objects_share_containers_under_a_256_file_limit() {
    let c = Cluster::start(ClusterOpts {
        set: vec![
            (keys::OZONE_SCM_CONTAINER_SIZE.name().into(), "64MB".into()),
            // A block must fit a container.
            (keys::OZONE_SCM_BLOCK_SIZE.name().into(), "16MB".into()),
        ],
        nofile: Some(256),
        ..Default::default()
    });
    let roles = c.role_pids();
    assert!(roles.len() >= 6, "every role runs: {roles:?}");
    for (name, pid) in &roles {
        assert_eq!(
            nofile_limits(*pid),
            ("256".to_string(), "256".to_string()),
            "{name} runs under ulimit -n 256"
        );
    }

    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    const OBJECTS: usize = 2000;
    for i in 0..OBJECTS {
        // Spread over a few prefixes, with sizes around 4 KiB.
        write_random_file(
            &src.join(format!("d{}-obj{i:05}", i % 7)),
            4096 + i % 97,
            i as u64,
        );
    }
    ok(c.aws(&["s3", "mb", "s3://small"]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        src.to_str().unwrap(),
        "s3://small/",
    ]));

    let mut per_pipeline: BTreeMap<String, usize> = BTreeMap::new();
    for container in c.containers() {
        *per_pipeline
            .entry(container["pipeline_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(!per_pipeline.is_empty());
    assert!(
        per_pipeline.values().all(|n| *n <= 2),
        "at most 2 containers per pipeline for {OBJECTS} small objects: {per_pipeline:?}"
    );
    for (name, pid) in c.role_pids() {
        let fds = open_files(pid);
        eprintln!("{name}: {fds} open files");
        assert!(fds < 200, "{name} holds {fds} open files");
    }

    let back = work.path().join("back");
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "s3://small/",
        back.to_str().unwrap(),
    ]));
    for i in 0..OBJECTS {
        let name = format!("d{}-obj{i:05}", i % 7);
        assert!(
            same_file(&src.join(&name), &back.join(&name)),
            "{name} reads back identical"
        );
    }
}

/// Object sizes: more than one block (256 MB by default), so a container can close in the
/// middle of a block far past what the writer keeps to write again.
const LARGE: usize = 300 << 20;

#[test]
fn large_objects_survive_containers_closing_under_them() {
    let c = Arc::new(Cluster::start(ClusterOpts {
        set: vec![(keys::OZONE_SCM_CONTAINER_SIZE.name().into(), "512MB".into())],
        ..Default::default()
    }));
    ok(c.aws(&["s3", "mb", "s3://large"]));
    let work = tempfile::tempdir().unwrap();

    // Closes every OPEN container that holds data, every second, while the uploads run: most
    // blocks are still being written when their container closes.
    let done = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));
    let closer = {
        let (c, done, closed) = (c.clone(), done.clone(), closed.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                for container in c.containers() {
                    if container["state"] == "OPEN" && container["used_bytes"].as_u64() > Some(0) {
                        let id = container["id"].as_u64().unwrap().to_string();
                        let out = c.ozone(&["admin", "container", "close", &id]);
                        if out.status.success() {
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // Ten single-part PUTs, two at a time.
    const COUNT: usize = 10;
    let files: Vec<_> = (0..COUNT)
        .map(|i| work.path().join(format!("large{i}")))
        .collect();
    for pair in files.chunks(2) {
        let uploads: Vec<_> = pair
            .iter()
            .map(|f| {
                let (c, f) = (c.clone(), f.clone());
                std::thread::spawn(move || {
                    let i: u64 = f
                        .to_str()
                        .unwrap()
                        .rsplit("large")
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    write_random_file(&f, LARGE, 1000 + i);
                    let key = f.file_name().unwrap().to_str().unwrap().to_string();
                    ok(c.aws(&[
                        "s3api",
                        "put-object",
                        "--bucket",
                        "large",
                        "--key",
                        &key,
                        "--body",
                        f.to_str().unwrap(),
                    ]));
                })
            })
            .collect();
        for u in uploads {
            u.join().expect("upload thread");
        }
    }
    done.store(true, Ordering::Release);
    closer.join().unwrap();
    let closes = closed.load(Ordering::Relaxed);
    assert!(
        closes >= 3,
        "containers were closed during the writes ({closes})"
    );

    // Some object went on past a container that closed mid-block: more blocks than its size
    // needs.
    let mut most_blocks = 0;
    for f in &files {
        let key = f.file_name().unwrap().to_str().unwrap();
        let info: Value = serde_json::from_str(&ok(c.ozone(&[
            "sh",
            "key",
            "info",
            &format!("/s3v/large/{key}"),
        ])))
        .unwrap();
        let blocks = info["ozoneKeyLocations"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        assert_eq!(
            info["dataSize"].as_u64(),
            Some(LARGE as u64),
            "{key}: {info}"
        );
        most_blocks = most_blocks.max(blocks);
    }
    assert!(
        most_blocks > 2,
        "an upload continued on a new block when its container closed ({most_blocks} blocks at most)"
    );

    for f in &files {
        let key = f.file_name().unwrap().to_str().unwrap();
        let back = work.path().join(format!("{key}.back"));
        ok(c.aws(&[
            "s3api",
            "get-object",
            "--bucket",
            "large",
            "--key",
            key,
            back.to_str().unwrap(),
        ]));
        assert!(same_file(f, &back), "{key} reads back identical");
        std::fs::remove_file(&back).unwrap();
    }
}
