//! OM high availability against real processes: `cluster up --oms 3`, S3 traffic through s3g,
//! OMs SIGKILLed and restarted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_common::probe::request;
use ozone_tests::{Cluster, ClusterOpts, ok};

const T: Duration = Duration::from_secs(30);

fn ha_cluster(set: &[(&str, &str)]) -> Cluster {
    Cluster::start(ClusterOpts {
        oms: 3,
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

fn put(c: &Cluster, path: &str, body: &[u8]) -> Result<u16, String> {
    request(&c.s3_addr(), "PUT", path, body, T)
        .map(|r| r.status)
        .map_err(|e| e.to_string())
}

fn get(c: &Cluster, path: &str) -> (u16, Vec<u8>) {
    request(&c.s3_addr(), "GET", path, b"", T)
        .map(|r| (r.status, r.body))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// PUTs `n` keys `prefix<i>` (body `value-<i>`) with `threads` concurrent writers; panics on
/// any non-200.
fn put_many(c: &Cluster, bucket: &str, prefix: &str, n: usize, threads: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let next = next.clone();
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body = format!("value-{i}");
                    let st = put(c, &format!("/{bucket}/{prefix}{i}"), body.as_bytes());
                    assert_eq!(st, Ok(200), "PUT {prefix}{i}");
                }
            });
        }
    });
}

/// Every OM reports the same applied index (waiting up to `within`); returns the roles.
fn same_applied_index(c: &Cluster, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let roles = c.om_roles();
        let idx: Vec<Option<u64>> = roles.iter().map(|r| r["applied_index"].as_u64()).collect();
        if idx.len() == 3 && idx[0].is_some() && idx.windows(2).all(|w| w[0] == w[1]) {
            return roles;
        }
        assert!(
            Instant::now() < deadline,
            "applied indexes differ after {within:?}: {roles:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Key index, status (or error), when the PUT was sent, when it was answered.
type PutResult = (usize, Result<u16, String>, Instant, Instant);

#[test]
fn leader_sigkill_mid_put_loop_fails_over_within_10s_and_loses_no_acknowledged_put() {
    let mut c = ha_cluster(&[]);
    ok(c.aws(&["s3", "mb", "s3://ha-kill"]));
    let leader = c.om_leader(T);
    println!("OM leader before the kill: {leader}");

    let results: Arc<Mutex<Vec<PutResult>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (results, stop) = (results.clone(), stop.clone());
        let addr = c.s3_addr();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let body = format!("value-{i}");
                let r = request(&addr, "PUT", &format!("/ha-kill/k{i}"), body.as_bytes(), T)
                    .map(|r| r.status)
                    .map_err(|e| e.to_string());
                results.lock().unwrap().push((i, r, sent, Instant::now()));
                i += 1;
            }
        })
    };
    std::thread::sleep(Duration::from_secs(3));
    c.kill_role(&leader);
    let killed = Instant::now();
    // Run until writes have succeeded again for a while (or 30 s passed).
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let ok_after = results
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r, sent, _)| *sent > killed && *r == Ok(200))
            .count();
        if ok_after >= 20 || killed.elapsed() > T {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let results = results.lock().unwrap().clone();
    let before = results
        .iter()
        .filter(|(_, _, sent, _)| *sent < killed)
        .count();
    let first_ok_after = results
        .iter()
        .filter(|(_, r, sent, _)| *sent > killed && *r == Ok(200))
        .map(|(_, _, _, done)| *done)
        .min()
        .expect("writes succeed again after the leader was killed");
    let gap = first_ok_after - killed;
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r, _, _)| *r != Ok(200))
        .collect();
    println!(
        "leader {leader} SIGKILLed after {before} PUTs; writes succeeded again {:.2} s later \
         ({} PUTs in total, {} failed: {:?})",
        gap.as_secs_f64(),
        results.len(),
        failed.len(),
        failed.iter().map(|(i, r, _, _)| (i, r)).collect::<Vec<_>>()
    );
    assert!(gap < Duration::from_secs(10), "failover took {gap:?}");
    let new_leader = c.om_leader(T);
    assert_ne!(new_leader, leader);

    // Every acknowledged PUT reads back.
    for (i, r, _, _) in &results {
        if *r == Ok(200) {
            let (st, body) = get(&c, &format!("/ha-kill/k{i}"));
            assert_eq!(st, 200, "k{i} was acknowledged but does not read back");
            assert_eq!(body, format!("value-{i}").into_bytes(), "k{i}");
        }
    }
}

#[test]
fn stopped_follower_catches_up_by_snapshot_after_5000_keys() {
    let mut c = ha_cluster(&[
        (
            keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD.name(),
            "1000",
        ),
        (keys::OZONE_OM_RATIS_LOG_PURGE_GAP.name(), "100"),
    ]);
    ok(c.aws(&["s3", "mb", "s3://ha-snap"]));
    let leader = c.om_leader(T);
    let roles = same_applied_index(&c, T);
    let follower_id = roles
        .iter()
        .find(|r| r["role"] == "FOLLOWER")
        .and_then(|r| r["id"].as_str())
        .expect("a follower")
        .to_string();
    let follower = ozone_tests::om_dir(&follower_id);
    let stopped_at = roles[0]["applied_index"].as_u64().unwrap();
    c.kill_role(&follower);

    put_many(&c, "ha-snap", "key-", 5000, 16);
    let roles = c.om_roles();
    let leader_row = roles
        .iter()
        .find(|r| r["role"] == "LEADER")
        .expect("leader row");
    let purged = leader_row["purged_index"].as_u64().unwrap();
    println!(
        "leader {leader}: applied {} purged {purged}; {follower} stopped at {stopped_at}",
        leader_row["applied_index"]
    );
    assert!(
        purged > stopped_at,
        "the leader purged its log past what the stopped follower has"
    );

    c.start_role(&follower);
    let roles = same_applied_index(&c, Duration::from_secs(60));
    println!("after restart: {roles:?}");
    let row = roles
        .iter()
        .find(|r| r["id"] == follower_id.as_str())
        .unwrap();
    assert!(
        row["snapshot_index"].as_u64().unwrap() > stopped_at,
        "{follower} installed a snapshot: {row}"
    );
    let text = ok(c.ozone(&["admin", "om", "roles"]));
    println!("{text}");
    assert!(text.contains("LEADER") && text.contains("FOLLOWER"));

    // The caught-up follower can lead: move leadership there and read everything back.
    ok(c.ozone(&["admin", "om", "transfer", &follower_id]));
    assert_eq!(c.om_leader(T), follower);
    for i in (0..5000).step_by(97) {
        let (st, body) = get(&c, &format!("/ha-snap/key-{i}"));
        assert_eq!((st, body), (200, format!("value-{i}").into_bytes()));
    }
}

/// Every key of a bucket with its size and ETag, via ListObjectsV2 (aws CLI paginates).
fn listing(c: &Cluster, bucket: &str) -> Vec<(String, u64, String)> {
    let out = ok(c.aws(&["s3api", "list-objects-v2", "--bucket", bucket]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut keys: Vec<(String, u64, String)> = v["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["Key"].as_str().unwrap().to_string(),
                o["Size"].as_u64().unwrap(),
                o["ETag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn sigkill_all_three_oms_and_restart_keeps_the_namespace() {
    let mut c = ha_cluster(&[(
        keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD.name(),
        "200",
    )]);
    ok(c.aws(&["s3", "mb", "s3://ha-all"]));
    put_many(&c, "ha-all", "k", 600, 8);
    let before = listing(&c, "ha-all");
    assert_eq!(before.len(), 600);

    for om in ["om-1", "om-2", "om-3"] {
        c.kill_role(om);
    }
    for om in ["om-1", "om-2", "om-3"] {
        c.start_role(om);
    }
    c.om_leader(T);
    let after = listing(&c, "ha-all");
    assert_eq!(after, before, "namespace after restarting every OM");
    for i in 0..600 {
        let (st, body) = get(&c, &format!("/ha-all/k{i}"));
        assert_eq!((st, body), (200, format!("value-{i}").into_bytes()), "k{i}");
    }
    same_applied_index(&c, T);
    // And it takes writes.
    assert_eq!(put(&c, "/ha-all/after", b"x"), Ok(200));
}

#[test]
fn one_om_of_three_answers_503_then_recovers_with_a_second() {
    let mut c = ha_cluster(&[]);
    ok(c.aws(&["s3", "mb", "s3://ha-quorum"]));
    assert_eq!(put(&c, "/ha-quorum/before", b"x"), Ok(200));
    let leader = c.om_leader(T);
    let followers: Vec<String> = ["om-1", "om-2", "om-3"]
        .into_iter()
        .filter(|o| *o != leader)
        .map(String::from)
        .collect();
    for f in &followers {
        c.kill_role(f);
    }
    // The lone OM (the old leader) cannot commit: 503 ServiceUnavailable, never 200.
    for i in 0..3 {
        let t0 = Instant::now();
        let r = request(
            &c.s3_addr(),
            "PUT",
            &format!("/ha-quorum/lonely{i}"),
            b"y",
            T,
        )
        .expect("s3g answers");
        let (st, body) = (r.status, r.body);
        let took = t0.elapsed();
        println!(
            "PUT with one OM of three: {st} in {:.2} s",
            took.as_secs_f64()
        );
        assert_eq!(st, 503, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("ServiceUnavailable"));
        assert!(took < Duration::from_secs(20), "answered in {took:?}");
    }
    // Also when the lone OM is a follower: kill it, start one of the others alone.
    c.kill_role(&leader);
    c.start_role(&followers[0]);
    std::thread::sleep(Duration::from_secs(2));
    let st = request(&c.s3_addr(), "PUT", "/ha-quorum/lonely-follower", b"y", T)
        .expect("s3g answers")
        .status;
    assert_eq!(st, 503);

    // A second OM back: writes succeed again.
    c.start_role(&leader);
    let deadline = Instant::now() + T;
    loop {
        match put(&c, "/ha-quorum/back", b"z") {
            Ok(200) => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "writes did not come back: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    assert_eq!(get(&c, "/ha-quorum/back"), (200, b"z".to_vec()));
    assert_eq!(get(&c, "/ha-quorum/before"), (200, b"x".to_vec()));
}
