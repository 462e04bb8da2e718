//! SCM high availability against real processes: `cluster up --scms 3`, `ozone admin scm
//! roles|transfer`, the SCM leader SIGKILLed, a follower stopped and the whole cluster
//! restarted, with S3 traffic (new objects need new blocks from the SCM leader) throughout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ozone_common::probe::request;
use ozone_tests::{Cluster, ClusterOpts, block_files, ok, scm_dir};

const T: Duration = Duration::from_secs(30);

fn put(c: &Cluster, path: &str, body: &[u8]) -> Result<u16, String> {
    request(&c.s3_addr(), "PUT", path, body, T)
        .map(|r| r.status)
        .map_err(|e| e.to_string())
}

/// PUTs `path` until it answers 200, for up to `within`; how long that took.
fn put_until_ok(c: &Cluster, path: &str, body: &[u8], within: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        match put(c, path, body) {
            Ok(200) => return t0.elapsed(),
            other => assert!(
                t0.elapsed() < within,
                "PUT {path} did not succeed within {within:?}: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// PUTs the next object `/scm-ha/k<n>` (see [`put_until_ok`]) and counts it.
fn put_next(c: &Cluster, n: &mut usize, within: Duration) -> Duration {
    let took = put_until_ok(
        c,
        &format!("/scm-ha/k{n}"),
        format!("value-{n}").as_bytes(),
        within,
    );
    *n += 1;
    took
}

/// Every object `/<bucket>/k<i>` for `i < n` reads back as `value-<i>`.
fn all_read_back(c: &Cluster, bucket: &str, n: usize) {
    for i in 0..n {
        let r = request(&c.s3_addr(), "GET", &format!("/{bucket}/k{i}"), b"", T)
            .unwrap_or_else(|e| panic!("GET k{i}: {e}"));
        assert_eq!(
            (r.status, r.body),
            (200, format!("value-{i}").into_bytes()),
            "k{i}"
        );
    }
}

/// Waits until every SCM answers, one leads and the others follow it; returns the roles.
fn settled_roles(c: &Cluster, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let roles = c.scm_roles();
        let count = |r: &str| roles.iter().filter(|x| x["role"] == r).count();
        if roles.len() == 3 && count("LEADER") == 1 && count("FOLLOWER") == 2 {
            return roles;
        }
        assert!(
            Instant::now() < deadline,
            "SCM roles not settled within {within:?}: {roles:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn scm_service_survives_leader_loss_transfer_and_restart() {
    let mut c = Cluster::start(ClusterOpts {
        scms: 3,
        ..Default::default()
    });
    let roles = settled_roles(&c, T);
    let ids: Vec<&str> = roles.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["scm1", "scm2", "scm3"]);
    let text = ok(c.ozone(&["admin", "scm", "roles"]));
    println!("{text}");
    assert!(
        text.contains("LEADER") && text.contains("FOLLOWER"),
        "{text}"
    );

    ok(c.aws(&["s3", "mb", "s3://scm-ha"]));
    let mut n = 0;
    for _ in 0..5 {
        put_next(&c, &mut n, T);
    }

    // The leader dies: another SCM leads and hands out blocks.
    let leader = c.scm_leader(T);
    c.kill_role(&leader);
    let took = put_next(&c, &mut n, Duration::from_secs(60));
    println!("a write succeeded {took:?} after SCM leader {leader} was killed");
    let new_leader = c.scm_leader(T);
    assert_ne!(new_leader, leader);
    for _ in 0..5 {
        put_next(&c, &mut n, T);
    }
    all_read_back(&c, "scm-ha", n);

    // It comes back as a follower.
    c.start_role(&leader);
    let roles = settled_roles(&c, Duration::from_secs(60));
    let follower = roles
        .iter()
        .find(|r| r["role"] == "FOLLOWER")
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_string();

    // Leadership moves on request.
    let out = ok(c.ozone(&["admin", "scm", "transfer", &follower]));
    assert!(out.contains(&format!("to {follower}")), "{out}");
    assert_eq!(c.scm_leader(T), scm_dir(&follower));
    put_next(&c, &mut n, T);

    // A follower stopped in order changes nothing for clients.
    let stopped: u32 = (1..=3)
        .find(|i| c.scm_role(*i) != scm_dir(&follower))
        .unwrap();
    c.stop_scm(stopped);
    put_next(&c, &mut n, T);
    c.start_scm(stopped);
    settled_roles(&c, Duration::from_secs(60));

    // The whole cluster stops and starts again on the same directory: every object is there.
    c.stop();
    c.restart();
    settled_roles(&c, T);
    all_read_back(&c, "scm-ha", n);
    put_next(&c, &mut n, T);
}

/// Concurrent PUT loops.
const CLIENTS: usize = 4;

/// (client, sequence number, status or error, sent, answered)
type PutResult = (usize, usize, Result<u16, String>, Instant, Instant);

/// Container id and local id of a block file `.../containers/<id>/chunks/<local>.block`.
fn block_id(block: &Path) -> Option<(u64, u64)> {
    let local = block.file_stem()?.to_str()?.parse().ok()?;
    let container = block
        .parent()?
        .parent()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()?;
    Some((container, local))
}

#[test]
fn scm_leader_sigkill_mid_put_loop_resumes_within_5s_and_block_ids_stay_unique() {
    let mut c = Cluster::start(ClusterOpts {
        scms: 3,
        ..Default::default()
    });
    ok(c.aws(&["s3", "mb", "s3://scm-kill"]));
    let leader = c.scm_leader(T);
    println!("SCM leader before the kill: {leader}");

    let results: Arc<Mutex<Vec<PutResult>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (results, stop) = (results.clone(), stop.clone());
            let addr = c.s3_addr();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let body = format!("value-{w}-{i}");
                    let r = request(
                        &addr,
                        "PUT",
                        &format!("/scm-kill/c{w}/k{i}"),
                        body.as_bytes(),
                        T,
                    )
                    .map(|r| r.status)
                    .map_err(|e| e.to_string());
                    results
                        .lock()
                        .unwrap()
                        .push((w, i, r, sent, Instant::now()));
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    c.kill_role(&leader);
    let killed = Instant::now();
    // Until every client has succeeded again for a while (or 30 s passed).
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let ok_after: BTreeSet<usize> = results
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, r, sent, _)| *sent > killed && *r == Ok(200))
            .map(|(w, ..)| *w)
            .collect();
        if (ok_after.len() == CLIENTS && killed.elapsed() > Duration::from_secs(8))
            || killed.elapsed() > T
        {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    let results = results.lock().unwrap().clone();
    let before = results
        .iter()
        .filter(|(_, _, _, sent, _)| *sent < killed)
        .count();
    let first_ok_after = results
        .iter()
        .filter(|(_, _, r, sent, _)| *sent > killed && *r == Ok(200))
        .map(|(.., done)| *done)
        .min()
        .expect("writes succeed again after the SCM leader was killed");
    let gap = first_ok_after - killed;
    // The longest time no PUT was acknowledged, around the kill.
    let mut acked: Vec<Instant> = results
        .iter()
        .filter(|(_, _, r, ..)| *r == Ok(200))
        .map(|(.., done)| *done)
        .collect();
    acked.sort();
    let longest_silence = acked
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, _, r, ..)| *r != Ok(200))
        .map(|(w, i, r, ..)| (w, i, r))
        .collect();
    println!(
        "SCM leader {leader} SIGKILLed after {before} PUTs from {CLIENTS} clients; a PUT sent \
         after the kill succeeded {:.2} s later; longest time without an acknowledged PUT \
         {:.2} s ({} PUTs in total, {} failed: {failed:?})",
        gap.as_secs_f64(),
        longest_silence.as_secs_f64(),
        results.len(),
        failed.len(),
    );
    assert!(gap < Duration::from_secs(5), "writes resumed after {gap:?}");
    let new_leader = c.scm_leader(T);
    assert_ne!(new_leader, leader);

    // Every acknowledged PUT reads back.
    for (w, i, r, ..) in &results {
        if *r == Ok(200) {
            let got = request(&c.s3_addr(), "GET", &format!("/scm-kill/c{w}/k{i}"), b"", T)
                .unwrap_or_else(|e| panic!("GET c{w}/k{i}: {e}"));
            assert_eq!(
                got.status, 200,
                "c{w}/k{i} was acknowledged but does not read back"
            );
            assert_eq!(got.body, format!("value-{w}-{i}").into_bytes(), "c{w}/k{i}");
        }
    }

    // On the datanodes: a local id names one block of one container, whoever handed it out.
    let mut containers_of: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for dn in 1..=3 {
        for f in block_files(&c.dir().join(format!("datanode-{dn}"))) {
            if let Some((container, local)) = block_id(&f) {
                containers_of.entry(local).or_default().insert(container);
            }
        }
    }
    let twice: Vec<_> = containers_of
        .iter()
        .filter(|(_, cs)| cs.len() > 1)
        .collect();
    let acked = results.iter().filter(|(_, _, r, ..)| *r == Ok(200)).count();
    println!(
        "{} distinct block ids on the datanodes for {acked} acknowledged PUTs",
        containers_of.len()
    );
    assert!(
        twice.is_empty(),
        "local ids in several containers: {twice:?}"
    );
    assert!(
        containers_of.len() >= acked,
        "every acknowledged PUT has its own block"
    );
}
