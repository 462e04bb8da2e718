//! State survives an SCM restart, and block ids are never reused, even after SIGKILL.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use scm_client::{ScmClient, ScmClientError};

use crate::harness::{FakeDatanode, config, start};
use ozone_common::config::keys;

/// Allocates `calls` x 5 blocks; returns the local ids and container ids.
async fn allocate(client: &ScmClient, calls: usize) -> (Vec<u64>, BTreeSet<u64>) {
    let mut ids = Vec::new();
    let mut containers = BTreeSet::new();
    for _ in 0..calls {
        for b in client
            .allocate_block(64 << 20, 5, 3, "t", &[])
            .await
            .expect("allocate")
        {
            let id = b.block_id.expect("id");
            ids.push(id.local_id);
            containers.insert(id.container_id);
        }
    }
    (ids, containers)
}

#[actix_rt::test]
async fn pipelines_containers_and_ids_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = config(dir.path());
    // 64MB blocks in 1GB containers: containers fill and close during the test.
    cfg.set(keys::OZONE_SCM_CONTAINER_SIZE, "1GB");
    let scm = start(&cfg).await;
    let dns = scm.register_datanodes(3).await;
    let (before, containers_before) = allocate(&scm.client, 20).await;
    let pipelines_before: BTreeSet<String> = scm
        .client
        .list_pipelines()
        .await
        .expect("pipelines")
        .into_iter()
        .map(|p| p.id)
        .collect();
    let listed_before = scm.client.list_containers(0, 0).await.expect("containers");
    scm.stop().await;

    let scm = start(&cfg).await;
    // Known datanodes have not been heard from since the restart: safe mode again.
    let s = scm.client.safe_mode_status().await.expect("status");
    assert!(s.in_safe_mode);
    let err = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect_err("safe mode");
    assert!(matches!(err, ScmClientError::Unavailable(_)), "{err}");
    let dns: Vec<FakeDatanode> = dns
        .iter()
        .map(|d| d.reconnect(scm.server.datanode_addr))
        .collect();
    for dn in &dns {
        // SCM still knows them, but not their replicas: it asks for a registration (a full
        // container report) once, then takes heartbeats.
        assert!(dn.heartbeat().await.reregister);
        dn.register().await;
        assert!(!dn.heartbeat().await.reregister);
    }
    assert!(!scm.client.safe_mode_status().await.expect("s").in_safe_mode);
    let pipelines_after: BTreeSet<String> = scm
        .client
        .list_pipelines()
        .await
        .expect("pipelines")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pipelines_before, pipelines_after);
    let listed_after = scm.client.list_containers(0, 0).await.expect("containers");
    assert_eq!(listed_before.len(), listed_after.len());
    for (b, a) in listed_before.iter().zip(&listed_after) {
        assert_eq!(
            (b.id, &b.state, b.allocated_bytes),
            (a.id, &a.state, a.allocated_bytes)
        );
    }

    let (after, containers_after) = allocate(&scm.client, 20).await;
    let max_before = before.iter().max().copied().unwrap_or(0);
    assert!(
        after.iter().all(|id| *id > max_before),
        "a local id was reused"
    );
    let max_container = containers_before.iter().max().copied().unwrap_or(0);
    for c in containers_after.difference(&containers_before) {
        assert!(*c > max_container, "container id {c} reused");
    }
    scm.stop().await;
}

/// Environment variable that turns [`child_scm_process`] into an SCM process.
const CHILD_ENV: &str = "OZONE_SCM_IT_CHILD_DIR";

/// Not a test of its own: when started by [`ids_are_not_reused_after_sigkill`] with
/// `OZONE_SCM_IT_CHILD_DIR` set, runs an SCM on that directory until killed, and writes its
/// bound addresses to `<dir>/addrs`. Without the variable it returns at once.
#[actix_rt::test]
async fn child_scm_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let server = ozone_scm::start(&config(&dir))
        .await
        .expect("child SCM starts");
    let tmp = dir.join("addrs.tmp");
    std::fs::write(
        &tmp,
        format!("{}\n{}\n", server.client_addr, server.datanode_addr),
    )
    .expect("write addrs");
    std::fs::rename(&tmp, dir.join("addrs")).expect("publish addrs");
    std::future::pending::<()>().await;
}

/// The child SCM process, SIGKILLed when dropped (also when the test fails).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        // Already dead after the deliberate kill: nothing to do then.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn ids_are_not_reused_after_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Child(
        std::process::Command::new(exe)
            .args(["restart::child_scm_process", "--exact", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the child SCM"),
    );
    let addrs_file = dir.path().join("addrs");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let addrs = loop {
        if let Ok(text) = std::fs::read_to_string(&addrs_file) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "child SCM did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut lines = addrs.lines();
    let client_addr = lines.next().expect("client addr").to_string();
    let datanode_addr: std::net::SocketAddr = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("datanode addr");

    let client = ScmClient::connect(&client_addr).expect("client");
    let mut dns = Vec::new();
    for i in 0..3 {
        let dn = FakeDatanode::new(datanode_addr, 20001 + i);
        dn.register().await;
        dns.push(dn);
    }
    let (before, _) = allocate(&client, 10).await;
    // SIGKILL: no shutdown, no flush.
    child.0.kill().expect("kill the child SCM");
    child.0.wait().expect("reap the child SCM");

    let scm = start(&config(dir.path())).await;
    for dn in &dns {
        let dn = dn.reconnect(scm.server.datanode_addr);
        assert!(dn.heartbeat().await.reregister, "a full report first");
        dn.register().await;
        assert!(!dn.heartbeat().await.reregister);
    }
    let (after, _) = allocate(&scm.client, 10).await;
    let max_before = before.iter().max().copied().unwrap_or(0);
    assert!(
        after.iter().all(|id| *id > max_before),
        "a local id was reused after SIGKILL"
    );
    scm.stop().await;
}
