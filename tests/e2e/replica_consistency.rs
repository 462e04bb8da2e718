//! Replica consistency (issue 12, item 1), against real processes: a datanode SIGSTOPped while
//! writes commit on the other two and their containers close misses committed blocks; once
//! resumed, its replicas are found lagging (the writers reported the misses to SCM, and their
//! BCSIDs are lower) and replaced by copies of complete ones, with no datanode ever declared
//! stale or dead; then the other two datanodes are killed and every object still reads back
//! from it alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, ok, same_file, write_random_file};
use serde_json::Value;

/// PUTs every file named after the endpoint into bucket `consistent` under its file name, all
/// at the same moment, one thread each.
const PUT_AT_ONCE: &str = r#"
import os, sys, threading
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(read_timeout=120))
files = sys.argv[2:]
start = threading.Barrier(len(files))
errors = []
def put(path):
    with open(path, "rb") as f:
        body = f.read()
    start.wait()
    try:
        s3.put_object(Bucket="consistent", Key=os.path.basename(path), Body=body)
    except Exception as e:
        errors.append(f"{path}: {e}")
threads = [threading.Thread(target=put, args=(p,)) for p in files]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit("\n".join(errors))
"#;

fn signal(c: &Cluster, role: &str, sig: rustix::process::Signal) {
    let pid = c
        .role_pids()
        .into_iter()
        .find(|(name, _)| name == role)
        .map(|(_, pid)| pid)
        .unwrap_or_else(|| panic!("no pid for {role}"));
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

fn uuid_of(c: &Cluster, role: &str) -> String {
    std::fs::read_to_string(c.dir().join(role).join("data/datanode.id"))
        .unwrap()
        .trim()
        .to_string()
}

/// Every container with blocks has 3 CLOSED replicas with the same BCSID, none lagging, one
/// of them on `uuid`; else what is not so.
fn settled(containers: &[Value], uuid: &str) -> Result<(), String> {
    for ct in containers {
        if ct["block_count"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let replicas = ct["replicas"].as_array().unwrap();
        let fine = ct["state"] == "CLOSED"
            && replicas.len() == 3
            && replicas.iter().all(|r| {
                r["state"] == "CLOSED" && r["lagging"] == false && r["bcsid"] == ct["bcsid"]
            })
            && replicas.iter().any(|r| r["datanode"]["uuid"] == uuid);
        if !fine {
            return Err(ct.to_string());
        }
    }
    Ok(())
}

#[test]
fn a_datanode_stopped_while_containers_close_under_writes_is_repaired_before_the_others_go() {
    let started = Instant::now();
    let set = [
        (keys::HDDS_HEARTBEAT_INTERVAL.name(), "1s"),
        (keys::HDDS_SCM_REPLICATION_THREAD_INTERVAL.name(), "1s"),
        (keys::HDDS_SCM_REPLICATION_EVENT_TIMEOUT.name(), "20s"),
        // Nobody is declared stale or dead here: the repair must not wait for that.
        (keys::OZONE_SCM_STALE_NODE_INTERVAL.name(), "300s"),
        (keys::OZONE_SCM_DEAD_NODE_INTERVAL.name(), "600s"),
        (keys::OZONE_SCM_BLOCK_SIZE.name(), "1MB"),
    ];
    let mut c = Cluster::start(ClusterOpts {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    ok(c.aws(&["s3", "mb", "s3://consistent"]));
    let mut objects: Vec<(String, PathBuf)> = Vec::new();
    for i in 0..3 {
        let f = work.path().join(format!("before{i}"));
        write_random_file(&f, 700_000 + i * 300_000, i as u64 + 1);
        let key = format!("before{i}");
        ok(c.aws(&[
            "s3",
            "cp",
            f.to_str().unwrap(),
            &format!("s3://consistent/{key}"),
        ]));
        objects.push((key, f));
    }
    let stopped = "datanode-3";
    let stopped_uuid = uuid_of(&c, stopped);
    signal(&c, stopped, rustix::process::Signal::STOP);

    // Writes while it is stopped, all at once (boto3 threads): each commits on the other two
    // after the writer gives up on the stopped one, and the writer reports the miss to SCM,
    // which closes the container.
    let mut during = Vec::new();
    for i in 0..6u64 {
        let key = format!("during{i}");
        let f = work.path().join(&key);
        write_random_file(&f, 100_000 + i as usize * 150_000, 100 + i);
        during.push((key, f));
    }
    let out = c
        .client("python3")
        .arg("-c")
        .arg(PUT_AT_ONCE)
        .arg(&c.endpoint)
        .args(during.iter().map(|(_, f)| f))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "concurrent PUTs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    objects.extend(during);
    // Every container still OPEN closes now, while the datanode is still stopped.
    for ct in c.containers() {
        if ct["state"] == "OPEN" {
            let id = ct["id"].to_string();
            ok(c.ozone(&["admin", "container", "close", &id]));
        }
    }
    let lagging: usize =
        c.containers()
            .iter()
            .filter(|ct| {
                ct["bcsid"].as_u64().unwrap_or(0) > 0
                    && ct["replicas"].as_array().unwrap().iter().any(|r| {
                        r["datanode"]["uuid"] == stopped_uuid.as_str() && r["lagging"] == true
                    })
            })
            .count();
    eprintln!(
        "writes done after {:?}; {lagging} containers know the stopped replica lags",
        started.elapsed()
    );

    // Resumed: its replicas close, are found lagging and are replaced by complete copies.
    signal(&c, stopped, rustix::process::Signal::CONT);
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        match settled(&c.containers(), &stopped_uuid) {
            Ok(()) => break,
            Err(why) => assert!(Instant::now() < deadline, "not repaired within 45 s: {why}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("repaired after {:?}", started.elapsed());
    let health = ok(c.ozone(&["admin", "datanode", "list", "--json"]));
    assert!(
        !health.contains("STALE") && !health.contains("DEAD"),
        "{health}"
    );

    // Only the once-stopped datanode is left: every object reads back from it.
    c.kill_role("datanode-1");
    c.kill_role("datanode-2");
    for (key, f) in &objects {
        let back = work.path().join(format!("{key}.back"));
        ok(c.aws(&[
            "s3",
            "cp",
            &format!("s3://consistent/{key}"),
            back.to_str().unwrap(),
        ]));
        assert!(same_file(f, &back), "{key} differs");
    }
    eprintln!("done after {:?}", started.elapsed());
}
