//! SCM high availability against real processes: `cluster up --scms 3`, `ozone admin scm
//! roles|transfer`, the SCM leader SIGKILLed, a follower stopped and the whole cluster
//! restarted, with S3 traffic (new objects need new blocks from the SCM leader) throughout.

use std::time::{Duration, Instant};

use ozone_common::probe::request;
use ozone_tests::{Cluster, ClusterOpts, ok, scm_dir};

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
