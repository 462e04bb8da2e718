//! Surviving datanode loss (issue 4), against real processes with 4 or 5 datanodes and short
//! intervals: a SIGKILLed datanode's containers are re-replicated while every object stays
//! readable; a datanode killed mid-upload never yields a wrong object; a corrupt replica is
//! found by the scrubber and replaced; deleted objects leave the disks; a decommissioned
//! datanode's replicas are copied before it turns DECOMMISSIONED.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, block_files, ok, same_file, write_random_file};
use serde_json::Value;

/// Short health, replication, scrub and deletion intervals.
fn fast(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        (keys::OZONE_SCM_STALE_NODE_INTERVAL.name(), "3s"),
        (keys::OZONE_SCM_DEAD_NODE_INTERVAL.name(), "6s"),
        (keys::HDDS_SCM_REPLICATION_THREAD_INTERVAL.name(), "1s"),
        (keys::HDDS_SCM_REPLICATION_EVENT_TIMEOUT.name(), "30s"),
        (keys::OZONE_BLOCK_DELETING_SERVICE_INTERVAL.name(), "1s"),
        (keys::HDDS_CONTAINER_SCRUB_DATA_SCAN_INTERVAL.name(), "2s"),
        (
            keys::HDDS_CONTAINER_SCRUB_VOLUME_BYTES_PER_SECOND.name(),
            "64MB",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

fn admin_json(c: &Cluster, args: &[&str]) -> Value {
    let mut full = vec!["admin"];
    full.extend_from_slice(args);
    full.push("--json");
    serde_json::from_str(&ok(c.ozone(&full))).unwrap()
}

fn datanodes(c: &Cluster) -> Vec<Value> {
    admin_json(c, &["datanode", "list"])
        .as_array()
        .unwrap()
        .clone()
}

fn uuid_of(c: &Cluster, name: &str) -> String {
    std::fs::read_to_string(c.dir().join(name).join("data/datanode.id"))
        .unwrap()
        .trim()
        .to_string()
}

/// The `datanode-N` role with this uuid.
fn name_of(c: &Cluster, uuid: &str, datanodes: u32) -> String {
    (1..=datanodes)
        .map(|i| format!("datanode-{i}"))
        .find(|n| uuid_of(c, n) == uuid)
        .unwrap()
}

/// The datanode holding the most container replicas: (role name, uuid).
fn busiest(c: &Cluster, datanodes: u32) -> (String, String) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for ct in c.containers() {
        for (u, _) in replicas(&ct) {
            *count.entry(u).or_default() += 1;
        }
    }
    let uuid = count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(u, _)| u)
        .expect("some datanode holds replicas");
    (name_of(c, &uuid, datanodes), uuid)
}

/// A member of an open replication-THREE pipeline: (role name, uuid).
fn pipeline_member(c: &Cluster, datanodes: u32) -> (String, String) {
    let uuid = admin_json(c, &["pipeline", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "OPEN" && p["replication"] == 3)
        .map(|p| p["nodes"][0]["uuid"].as_str().unwrap().to_string())
        .expect("an open THREE pipeline");
    (name_of(c, &uuid, datanodes), uuid)
}

/// Polls `check` every half second until it returns Ok or `timeout` passes; returns how long
/// it took.
fn wait_for(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        let r = check();
        match r {
            Ok(()) => return start.elapsed(),
            Err(why) if start.elapsed() > timeout => {
                panic!("{what}: not within {timeout:?}: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Replicas of a container: (datanode uuid, state).
fn replicas(container: &Value) -> Vec<(String, String)> {
    container["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["datanode"]["uuid"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Every live container has at least 3 healthy replicas (CLOSED, or OPEN while the container
/// is) on datanodes not in `excluded`.
fn fully_replicated(c: &Cluster, excluded: &[String]) -> Result<(), String> {
    let mut bad = Vec::new();
    for ct in c.containers() {
        let state = ct["state"].as_str().unwrap().to_string();
        if state == "DELETING" || state == "DELETED" {
            continue;
        }
        let good = replicas(&ct)
            .iter()
            .filter(|(u, s)| {
                !excluded.contains(u) && (s == "CLOSED" || (s == "OPEN" && state == "OPEN"))
            })
            .count();
        if good < 3 {
            bad.push(format!("{} {state}: {:?}", ct["id"], replicas(&ct)));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; "))
    }
}

fn all_block_files(c: &Cluster, datanodes: u32) -> Vec<PathBuf> {
    (1..=datanodes)
        .flat_map(|i| block_files(&c.dir().join(format!("datanode-{i}"))))
        .collect()
}

/// Container id of a block file `.../containers/<id>/chunks/<local>.block`.
fn container_of(block: &Path) -> u64 {
    block
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// Compares two files without holding them in memory.
fn same_big_file(a: &Path, b: &Path) -> bool {
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = ra.read(&mut ba).unwrap();
        if n == 0 {
            return rb.read(&mut bb).unwrap() == 0;
        }
        if rb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Sizes from 0 B to 20 MiB.
fn object_size(i: usize) -> usize {
    if i.is_multiple_of(50) {
        return 20 << 20;
    }
    [
        0,
        1,
        1000,
        64 << 10,
        300 << 10,
        (1 << 20) + 7,
        5 << 19,
        100 << 10,
        5000,
        700 << 10,
    ][i % 10]
}

#[test]
fn sigkilled_datanode_is_replaced_and_every_object_stays_readable() {
    let mut c = Cluster::start(ClusterOpts {
        datanodes: 5,
        set: fast(&[
            (keys::OZONE_SCM_BLOCK_SIZE.name(), "4MB"),
            (keys::OZONE_SCM_CONTAINER_SIZE.name(), "32MB"),
        ]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut total = 0;
    for i in 0..200 {
        let size = object_size(i);
        total += size;
        write_random_file(&src.join(format!("obj{i:03}")), size, i as u64 + 1);
    }
    ok(c.aws(&["s3", "mb", "s3://survive"]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        src.to_str().unwrap(),
        "s3://survive/",
    ]));
    eprintln!("stored 200 objects, {} MiB", total >> 20);

    let (name, victim) = busiest(&c, 5);
    c.kill_role(&name);
    eprintln!("killed {name}");
    let killed = Instant::now();

    // Every object reads back identical while the datanode is down.
    let back = work.path().join("back");
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        "s3://survive/",
        back.to_str().unwrap(),
    ]));
    for i in 0..200 {
        let name = format!("obj{i:03}");
        assert!(
            same_file(&src.join(&name), &back.join(&name)),
            "{name} differs"
        );
    }
    eprintln!(
        "all 200 objects read back identical {:?} after the kill",
        killed.elapsed()
    );

    wait_for(Duration::from_secs(30), "datanode DEAD", || {
        let dn = datanodes(&c);
        let v = dn
            .iter()
            .find(|d| d["datanode"]["uuid"] == victim.as_str())
            .ok_or("victim not listed")?;
        if v["health"] == "DEAD" {
            Ok(())
        } else {
            Err(format!("victim is {}", v["health"]))
        }
    });
    let dead_after = killed.elapsed();
    wait_for(
        Duration::from_secs(180),
        "3 healthy replicas of every container",
        || fully_replicated(&c, std::slice::from_ref(&victim)),
    );
    eprintln!(
        "DEAD after {dead_after:?}; every container had 3 healthy replicas on live datanodes {:?} after the kill",
        killed.elapsed()
    );
    // Still every object, now partly from the new replicas.
    let again = work.path().join("again");
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        "s3://survive/",
        again.to_str().unwrap(),
    ]));
    for i in (0..200).step_by(7) {
        let name = format!("obj{i:03}");
        assert!(
            same_file(&src.join(&name), &again.join(&name)),
            "{name} differs"
        );
    }
}

#[test]
fn sigkill_during_a_1gib_upload_never_yields_wrong_data() {
    let mut c = Cluster::start(ClusterOpts {
        datanodes: 5,
        set: fast(&[(keys::OZONE_SCM_BLOCK_SIZE.name(), "8MB")]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("big");
    write_random_file(&src, 1 << 30, 4242);
    ok(c.aws(&["s3", "mb", "s3://big"]));

    let upload = {
        let mut cmd = std::process::Command::new(ozone_tests::tool("aws"));
        cmd.arg("--endpoint-url")
            .arg(&c.endpoint)
            .args(["s3", "cp", "--quiet", src.to_str().unwrap(), "s3://big/obj"])
            .env("AWS_ACCESS_KEY_ID", "testuser")
            .env("AWS_SECRET_ACCESS_KEY", "testsecret")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", c.dir().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                c.dir().join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let started = Instant::now();
    // Kill once about a quarter of the object is on the datanodes (3 replicas each).
    wait_for(Duration::from_secs(300), "upload under way", || {
        let bytes: u64 = all_block_files(&c, 5)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        if bytes > 3 * (256 << 20) {
            Ok(())
        } else {
            Err(format!("{bytes} bytes stored"))
        }
    });
    let (name, _) = pipeline_member(&c, 5);
    c.kill_role(&name);
    eprintln!("killed {name} {:?} into the upload", started.elapsed());
    let out = upload.wait_with_output().unwrap();
    eprintln!("upload ended after {:?}: {}", started.elapsed(), out.status);
    if out.status.success() {
        let back = work.path().join("back");
        ok(c.aws(&[
            "s3",
            "cp",
            "--quiet",
            "s3://big/obj",
            back.to_str().unwrap(),
        ]));
        assert!(
            same_big_file(&src, &back),
            "the upload succeeded but reads back different bytes"
        );
        eprintln!("upload succeeded and reads back identical");
    } else {
        eprintln!(
            "upload failed with an error: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Failed: no (wrong) object may be visible.
        let head = c.aws(&["s3api", "head-object", "--bucket", "big", "--key", "obj"]);
        assert!(
            !head.status.success(),
            "a failed upload left an object behind"
        );
    }
}

#[test]
fn corrupt_replica_is_served_around_then_scrubbed_and_replaced() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 4,
        set: fast(&[(keys::OZONE_SCM_BLOCK_SIZE.name(), "4MB")]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src.bin");
    write_random_file(&src, 6 << 20, 77);
    ok(c.aws(&["s3", "mb", "s3://scrub"]));
    ok(c.aws(&["s3", "cp", src.to_str().unwrap(), "s3://scrub/obj"]));

    let dn1 = uuid_of(&c, "datanode-1");
    let dn1_blocks = block_files(&c.dir().join("datanode-1"));
    // A datanode of the pipeline holds the object's blocks; corrupt one chunk file of one replica.
    let (holder, blocks) = if dn1_blocks.is_empty() {
        ("datanode-2", block_files(&c.dir().join("datanode-2")))
    } else {
        ("datanode-1", dn1_blocks)
    };
    let holder_uuid = if holder == "datanode-1" {
        dn1
    } else {
        uuid_of(&c, holder)
    };
    let victim = &blocks[0];
    let container = container_of(victim);
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();
    let corrupted = Instant::now();

    for i in 0..4 {
        let back = work.path().join(format!("back{i}"));
        ok(c.aws(&["s3", "cp", "s3://scrub/obj", back.to_str().unwrap()]));
        assert!(same_file(&src, &back), "GET {i} returned wrong bytes");
    }
    let took = wait_for(Duration::from_secs(120), "corrupt replica replaced", || {
        let ct = admin_json(&c, &["container", "info", &container.to_string()]);
        let r = replicas(&ct);
        let healthy = r
            .iter()
            .filter(|(u, s)| s == "CLOSED" && *u != holder_uuid)
            .count();
        let corrupt_left = r.iter().any(|(u, _)| *u == holder_uuid);
        if healthy >= 3 && !corrupt_left {
            Ok(())
        } else {
            Err(format!("replicas {r:?}"))
        }
    });
    eprintln!(
        "container {container}: corrupt replica on {holder} replaced {took:?} after the corruption ({:?} total)",
        corrupted.elapsed()
    );
    let back = work.path().join("after");
    ok(c.aws(&["s3", "cp", "s3://scrub/obj", back.to_str().unwrap()]));
    assert!(same_file(&src, &back));

    // Now the same block goes bad on the other two original replicas too: none of the
    // replicas recorded with the key can serve it, and the gateway finds the new copy via SCM.
    let rel = victim
        .strip_prefix(c.dir().join(holder))
        .unwrap()
        .to_path_buf();
    let mut spoiled = 0;
    for i in 1..=4 {
        let name = format!("datanode-{i}");
        let p = c.dir().join(&name).join(&rel);
        if name == holder || !p.exists() {
            continue;
        }
        let new_copy = admin_json(&c, &["container", "info", &container.to_string()]);
        let uuid = uuid_of(&c, &name);
        // Leave the copy made by the replication manager alone: only original members.
        let original = ct_pipeline_members(&c, &new_copy).contains(&uuid);
        if original {
            let mut bytes = std::fs::read(&p).unwrap();
            bytes[mid] ^= 0x40;
            std::fs::write(&p, bytes).unwrap();
            spoiled += 1;
        }
    }
    assert_eq!(spoiled, 2, "two original replicas spoiled");
    let back = work.path().join("from-new-copy");
    ok(c.aws(&["s3", "cp", "s3://scrub/obj", back.to_str().unwrap()]));
    assert!(
        same_file(&src, &back),
        "read via the re-replicated copy differs"
    );
}

/// Uuids of the members of a container's pipeline.
fn ct_pipeline_members(c: &Cluster, container: &Value) -> Vec<String> {
    let id = container["pipeline_id"].as_str().unwrap();
    admin_json(c, &["pipeline", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .map(|p| {
            p["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["uuid"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn deleted_objects_leave_the_disks_and_used_bytes_drop() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 4,
        set: fast(&[
            (keys::OZONE_SCM_BLOCK_SIZE.name(), "2MB"),
            (keys::OZONE_SCM_CONTAINER_SIZE.name(), "8MB"),
        ]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..100 {
        write_random_file(
            &src.join(format!("d{i:03}")),
            (512 << 10) + i * 10_000,
            i as u64 + 5,
        );
    }
    ok(c.aws(&["s3", "mb", "s3://doomed"]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        src.to_str().unwrap(),
        "s3://doomed/",
    ]));
    let used = |c: &Cluster| -> u64 {
        datanodes(c)
            .iter()
            .map(|d| d["used"].as_u64().unwrap())
            .sum()
    };
    // Wait for the reports to show the data.
    wait_for(Duration::from_secs(20), "used bytes reported", || {
        let u = used(&c);
        if u >= 3 * 100 * (512 << 10) {
            Ok(())
        } else {
            Err(format!("used {u}"))
        }
    });
    let used_before = used(&c);
    let files_before = all_block_files(&c, 4);
    let containers_before: BTreeSet<u64> = files_before.iter().map(|p| container_of(p)).collect();
    eprintln!(
        "100 objects: {} block files in {} containers, {} bytes used",
        files_before.len(),
        containers_before.len(),
        used_before
    );

    ok(c.aws(&["s3", "rm", "--recursive", "--quiet", "s3://doomed/"]));
    let deleted = Instant::now();
    let gone = wait_for(Duration::from_secs(90), "block files removed", || {
        let left = files_before.iter().filter(|p| p.exists()).count();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} block files left"))
        }
    });
    let dropped = wait_for(Duration::from_secs(30), "used bytes drop", || {
        let u = used(&c);
        if u < used_before / 20 {
            Ok(())
        } else {
            Err(format!("used {u} of {used_before}"))
        }
    });
    // Empty closed containers are deleted, directories and all.
    let emptied = wait_for(
        Duration::from_secs(60),
        "empty closed containers deleted",
        || {
            let states: BTreeMap<u64, String> = c
                .containers()
                .iter()
                .map(|ct| {
                    (
                        ct["id"].as_u64().unwrap(),
                        ct["state"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let closed_left: Vec<_> = states
                .iter()
                .filter(|(_, s)| *s == "CLOSED" || *s == "DELETING")
                .collect();
            if closed_left.is_empty() && states.values().any(|s| s == "DELETED") {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
    let dirs_left: Vec<PathBuf> = (1..=4)
        .flat_map(|i| {
            let root = c.dir().join(format!("datanode-{i}/data/containers"));
            std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|id| {
                    c.containers()
                        .iter()
                        .any(|ct| ct["id"] == id && ct["state"] == "DELETED")
                })
        })
        .collect();
    assert!(
        dirs_left.is_empty(),
        "deleted containers still on disk: {dirs_left:?}"
    );
    eprintln!(
        "block files gone {gone:?} after the delete; used bytes {used_before} -> {} ({dropped:?} later); empty containers DELETED {emptied:?} later ({:?} in all)",
        used(&c),
        deleted.elapsed()
    );
}

#[test]
fn decommissioned_datanode_hands_its_replicas_over_first() {
    let c = Cluster::start(ClusterOpts {
        datanodes: 5,
        set: fast(&[
            (keys::OZONE_SCM_BLOCK_SIZE.name(), "2MB"),
            (keys::OZONE_SCM_CONTAINER_SIZE.name(), "8MB"),
        ]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..30 {
        write_random_file(
            &src.join(format!("k{i:02}")),
            (300 << 10) + i * 77_777,
            i as u64 + 11,
        );
    }
    ok(c.aws(&["s3", "mb", "s3://decom"]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        src.to_str().unwrap(),
        "s3://decom/",
    ]));
    wait_for(Duration::from_secs(20), "replicas reported", || {
        if c.containers().iter().any(|ct| !replicas(ct).is_empty()) {
            Ok(())
        } else {
            Err("none yet".into())
        }
    });
    let (name, victim) = busiest(&c, 5);
    let held: Vec<u64> = c
        .containers()
        .iter()
        .filter(|ct| replicas(ct).iter().any(|(u, _)| *u == victim))
        .map(|ct| ct["id"].as_u64().unwrap())
        .collect();

    // A reader checks every object over and over while the datanode is decommissioned.
    let stop = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                let out = work.path().join(format!("read{round}"));
                ok(c.aws(&[
                    "s3",
                    "cp",
                    "--recursive",
                    "--quiet",
                    "s3://decom/",
                    out.to_str().unwrap(),
                ]));
                for i in 0..30 {
                    let name = format!("k{i:02}");
                    assert!(
                        same_file(&src.join(&name), &out.join(&name)),
                        "{name} unreadable or wrong during decommission"
                    );
                }
                std::fs::remove_dir_all(&out).unwrap();
                reads.fetch_add(30, Ordering::SeqCst);
                round += 1;
            }
        });
        let started = Instant::now();
        let out = ok(c.ozone(&["admin", "datanode", "decommission", &victim]));
        assert!(out.contains("DECOMMISSIONING"), "{out}");
        let took = wait_for(Duration::from_secs(180), "DECOMMISSIONED", || {
            let dn = datanodes(&c);
            let v = dn
                .iter()
                .find(|d| d["datanode"]["uuid"] == victim.as_str())
                .unwrap();
            let state = v["operational_state"].as_str().unwrap().to_string();
            if state == "DECOMMISSIONED" {
                return Ok(());
            }
            assert_eq!(state, "DECOMMISSIONING");
            Err(state)
        });
        // By the time it is DECOMMISSIONED every container it held has 3 replicas elsewhere.
        let all = c.containers();
        for id in &held {
            let ct = all.iter().find(|ct| ct["id"] == *id).unwrap();
            if ct["state"] == "DELETED" || ct["state"] == "DELETING" {
                continue;
            }
            let elsewhere = replicas(ct)
                .iter()
                .filter(|(u, s)| *u != victim && s == "CLOSED")
                .count();
            assert!(elsewhere >= 3, "container {id}: {:?}", replicas(ct));
        }
        eprintln!(
            "{name} ({} containers) DECOMMISSIONED after {took:?} ({:?} since the command)",
            held.len(),
            started.elapsed()
        );
        // Let the reader finish at least one more full round after the transition.
        let seen = reads.load(Ordering::SeqCst);
        wait_for(
            Duration::from_secs(120),
            "a read round after DECOMMISSIONED",
            || {
                if reads.load(Ordering::SeqCst) > seen {
                    Ok(())
                } else {
                    Err("reading".into())
                }
            },
        );
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap();
    });
    eprintln!(
        "{} verified object reads during the decommission",
        reads.load(Ordering::SeqCst)
    );

    let out = ok(c.ozone(&["admin", "datanode", "recommission", &victim]));
    assert!(out.contains("IN_SERVICE"), "{out}");
    let dn = datanodes(&c);
    let v = dn
        .iter()
        .find(|d| d["datanode"]["uuid"] == victim.as_str())
        .unwrap();
    assert_eq!(v["operational_state"], "IN_SERVICE");
    let status = admin_json(&c, &["safemode", "status"]);
    assert_eq!(status["in_safe_mode"], false);
}

#[test]
fn a_datanode_lost_after_an_scm_failover_is_re_replicated_by_the_new_leader() {
    let mut c = Cluster::start(ClusterOpts {
        datanodes: 4,
        scms: 3,
        set: fast(&[
            (keys::OZONE_SCM_BLOCK_SIZE.name(), "4MB"),
            (keys::OZONE_SCM_CONTAINER_SIZE.name(), "32MB"),
        ]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        write_random_file(
            &src.join(format!("obj{i:03}")),
            object_size(i),
            i as u64 + 7,
        );
    }
    ok(c.aws(&["s3", "mb", "s3://after-failover"]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        src.to_str().unwrap(),
        "s3://after-failover/",
    ]));

    let old = c.scm_leader(Duration::from_secs(30));
    c.kill_role(&old);
    let failed_over = Instant::now();
    let new = c.scm_leader(Duration::from_secs(30));
    assert_ne!(new, old);
    // The new leader learns every replica from the datanodes' registrations.
    let took = wait_for(
        Duration::from_secs(30),
        "replicas known to the new leader",
        || fully_replicated(&c, &[]),
    );
    eprintln!("SCM {old} killed, {new} leads; it knew every replica {took:?} later");

    let (name, victim) = busiest(&c, 4);
    c.kill_role(&name);
    let killed = Instant::now();
    wait_for(
        Duration::from_secs(180),
        "3 healthy replicas of every container on live datanodes",
        || fully_replicated(&c, std::slice::from_ref(&victim)),
    );
    eprintln!(
        "{name} killed {:?} after the SCM failover; every container had 3 healthy replicas \
         on live datanodes {:?} later",
        killed - failed_over,
        killed.elapsed()
    );
    let back = work.path().join("back");
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--quiet",
        "s3://after-failover/",
        back.to_str().unwrap(),
    ]));
    for i in 0..40 {
        let name = format!("obj{i:03}");
        assert!(
            same_file(&src.join(&name), &back.join(&name)),
            "{name} differs"
        );
    }
}
