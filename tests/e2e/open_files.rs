//! Open-file exhaustion on one datanode is a fault, not corruption (issue 12, item 3), against
//! real processes: datanode-1's soft `RLIMIT_NOFILE` is lowered under what it already holds
//! (`prlimit`, a real limit of the running process), so every file its scrubber opens fails
//! with EMFILE. No replica turns UNHEALTHY; once the limit is back the faults clear, and with
//! the other two datanodes killed every object reads back from datanode-1 alone.

use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, ok, same_file, write_random_file};
use rustix::process::{Pid, Resource, Rlimit, getrlimit, prlimit};

const FAULTED: &str = r#"ozone_datanode_state{name="scrub_faulted_containers"}"#;
const SCANNED_OK: &str = r#"ozone_datanode_requests_total{op="ScrubContainer",outcome="success"}"#;
const OBJECTS: usize = 12;

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + within;
    loop {
        match done() {
            Ok(()) => return,
            Err(why) if Instant::now() >= deadline => panic!("{what} within {within:?}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Every container blocks were allocated in has 3 CLOSED replicas, one on `uuid`; none is
/// UNHEALTHY.
fn closed_everywhere(c: &Cluster, uuid: &str) -> Result<(), String> {
    for ct in c.containers() {
        let replicas = ct["replicas"].as_array().cloned().unwrap_or_default();
        if let Some(r) = replicas.iter().find(|r| r["state"] == "UNHEALTHY") {
            panic!("a replica turned UNHEALTHY: {r} of {ct}");
        }
        if ct["allocated_bytes"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let fine = ct["state"] == "CLOSED"
            && replicas.len() == 3
            && replicas.iter().all(|r| r["state"] == "CLOSED")
            && replicas.iter().any(|r| r["datanode"]["uuid"] == uuid);
        if !fine {
            return Err(format!("{ct}"));
        }
    }
    Ok(())
}

#[test]
fn open_file_exhaustion_on_a_datanode_makes_nothing_unhealthy() {
    let mut c = Cluster::start(ClusterOpts {
        set: vec![
            (
                keys::HDDS_CONTAINER_SCRUB_ENABLED.name().into(),
                "true".into(),
            ),
            (
                keys::HDDS_CONTAINER_SCRUB_DATA_SCAN_INTERVAL.name().into(),
                "1s".into(),
            ),
            (
                keys::HDDS_CONTAINER_SCRUB_VOLUME_BYTES_PER_SECOND
                    .name()
                    .into(),
                "100MB".into(),
            ),
        ],
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..OBJECTS {
        write_random_file(
            &src.join(format!("obj-{i:02}")),
            50_000 + i * 70_001,
            i as u64,
        );
    }
    ok(c.aws(&["s3", "mb", "s3://nofile"]));
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        src.to_str().unwrap(),
        "s3://nofile/",
    ]));
    for ct in c.containers() {
        // SCM's own count: the datanodes' reports may not be in yet.
        if ct["state"] == "OPEN" && ct["allocated_bytes"].as_u64().unwrap_or(0) > 0 {
            ok(c.ozone(&["admin", "container", "close", &ct["id"].to_string()]));
        }
    }
    let uuid = std::fs::read_to_string(c.dir().join("datanode-1/data/datanode.id"))
        .unwrap()
        .trim()
        .to_string();
    wait_for("every container closed", Duration::from_secs(60), || {
        closed_everywhere(&c, &uuid)
    });
    wait_for(
        "a clean scan on datanode-1",
        Duration::from_secs(60),
        || match c.datanode_metric("datanode-1", SCANNED_OK) {
            Some(v) if v >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // No new file descriptor: the lowest free one is above a soft limit of 3.
    let pid = c
        .role_pids()
        .into_iter()
        .find(|(name, _)| name == "datanode-1")
        .map(|(_, pid)| Pid::from_raw(pid).unwrap())
        .unwrap();
    let before = prlimit(Some(pid), Resource::Nofile, getrlimit(Resource::Nofile)).unwrap();
    prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(3),
            maximum: before.maximum,
        },
    )
    .unwrap();
    let log = c.dir().join("datanode-1/datanode-1.log");
    let mut restored = false;
    let restore = |restored: &mut bool| {
        if !*restored {
            prlimit(Some(pid), Resource::Nofile, before).unwrap();
            *restored = true;
        }
    };
    let faults_seen = Instant::now();
    let met = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("scrubber met an I/O fault") && text.contains("Too many open files") {
            break true;
        }
        if faults_seen.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    if !met {
        restore(&mut restored);
        panic!(
            "datanode-1 never met EMFILE in its scrubber; log in {}",
            log.display()
        );
    }
    // Several scan rounds under the limit; SCM sees nothing UNHEALTHY meanwhile.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_secs(1));
        for ct in c.containers() {
            for r in ct["replicas"].as_array().cloned().unwrap_or_default() {
                if r["state"] == "UNHEALTHY" {
                    restore(&mut restored);
                    panic!("a replica turned UNHEALTHY under EMFILE: {ct}");
                }
            }
        }
    }
    restore(&mut restored);

    // The retries scan every container clean: no fault left, all replicas CLOSED.
    wait_for("the faults cleared", Duration::from_secs(120), || {
        match c.datanode_metric("datanode-1", FAULTED) {
            Some(0.0) => Ok(()),
            other => Err(format!("{FAULTED} = {other:?}")),
        }
    });
    wait_for("every replica CLOSED", Duration::from_secs(60), || {
        closed_everywhere(&c, &uuid)
    });

    // Datanode-1's replicas are whole: every object reads back from it alone.
    c.kill_role("datanode-2");
    c.kill_role("datanode-3");
    let back = work.path().join("back");
    ok(c.aws(&[
        "s3",
        "cp",
        "--recursive",
        "--only-show-errors",
        "s3://nofile/",
        back.to_str().unwrap(),
    ]));
    for i in 0..OBJECTS {
        let name = format!("obj-{i:02}");
        assert!(
            same_file(&src.join(&name), &back.join(&name)),
            "{name} reads back identical from datanode-1"
        );
    }
}
