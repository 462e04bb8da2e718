//! Three SCMs of one service in one process: one leads and serves, the others refuse with
//! its address; after the leader stops, another takes over with the replicated state (cluster
//! id, pipelines, containers, id sequences) and never hands out an id twice.

use std::collections::HashSet;
use std::time::Duration;

use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use scm_client::ScmClient;

use crate::harness::FakeDatanode;

const SERVICE: &str = "scmservice";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The configuration of node `me` (0-based) of a three-SCM service at `ports`.
fn node_config(dir: &std::path::Path, ports: &[u16], me: usize) -> OzoneConfig {
    let mut cfg = OzoneConfig::default();
    let ids: Vec<String> = (1..=ports.len()).map(|i| format!("scm{i}")).collect();
    cfg.set(
        keys::OZONE_SCM_DB_DIRS,
        dir.join(&ids[me]).to_string_lossy().to_string(),
    )
    .set(keys::OZONE_SCM_HTTP_ADDRESS, "127.0.0.1:0")
    .set(keys::OZONE_SCM_SERVICE_IDS, SERVICE)
    .set(
        keys::OZONE_SCM_NODES_SERVICEID.with([&SERVICE]),
        ids.join(","),
    )
    .set(keys::OZONE_SCM_NODE_ID, &ids[me])
    .set(keys::OZONE_SCM_HA_RATIS_LEADER_ELECTION_TIMEOUT, "300ms");
    for (id, port) in ids.iter().zip(ports) {
        cfg.set(
            keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&SERVICE, id]),
            format!("127.0.0.1:{port}"),
        )
        .set(
            keys::OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID.with([&SERVICE, id]),
            "127.0.0.1:0",
        );
    }
    cfg
}

/// How the SCM at `addr` itself answers (no client-side leader following, unlike
/// [`ScmClient`]): Ok if it serves, else its status.
async fn own_answer(addr: &str) -> Result<(), tonic::Status> {
    let mut raw = scm_client::pb::scm_client_service_client::ScmClientServiceClient::connect(
        format!("http://{addr}"),
    )
    .await
    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    raw.safe_mode_status(scm_client::pb::SafeModeStatusRequest {})
        .await
        .map(|_| ())
}

/// The index of the SCM that serves (the others refuse), waiting for one.
async fn leader(scms: &[Option<ozone_scm::ScmServer>]) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for (i, s) in scms.iter().enumerate() {
            let Some(s) = s else { continue };
            if own_answer(&s.client_addr.to_string()).await.is_ok() {
                return i;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no SCM leader serves"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn a_new_leader_takes_over_the_replicated_state_and_never_repeats_an_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut scms = Vec::new();
    for i in 0..3 {
        let cfg = node_config(dir.path(), &ports, i);
        scms.push(Some(ozone_scm::start(&cfg).await.expect("SCM starts")));
    }
    // Followers refuse and name the leader (retried while a first election settles: a
    // node elected in an early term may serve until it hears of a later one).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (first, leader_addr) = loop {
        let first = leader(&scms).await;
        let leader_addr = scms[first].as_ref().expect("up").client_addr.to_string();
        let mut settled = true;
        for (i, s) in scms.iter().enumerate() {
            if i == first {
                continue;
            }
            match own_answer(&s.as_ref().expect("up").client_addr.to_string()).await {
                Err(st)
                    if st.code() == tonic::Code::Unavailable
                        && st
                            .metadata()
                            .get(ozone_scm::error::LEADER_HEADER)
                            .and_then(|v| v.to_str().ok())
                            == Some(leader_addr.as_str()) => {}
                other => {
                    settled = false;
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "follower {i} answered {other:?} with {first} leading"
                    );
                }
            }
        }
        if settled {
            break (first, leader_addr);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Three datanodes register with the leader; blocks are allocated.
    let dn_addr = scms[first].as_ref().expect("up").datanode_addr;
    let mut dns = Vec::new();
    let mut cluster_ids = HashSet::new();
    for i in 0..3 {
        let dn = FakeDatanode::new(dn_addr, 21001 + i);
        let r = dn.register().await;
        assert!(r.term >= 1, "the answer carries the leader's term");
        cluster_ids.insert(r.cluster_id);
        dns.push(dn);
    }
    let client = ScmClient::connect(&leader_addr).expect("client");
    let mut ids = HashSet::new();
    for _ in 0..20 {
        for b in client
            .allocate_block(1 << 20, 5, 3, "test", &[])
            .await
            .expect("allocate")
        {
            let id = b.block_id.expect("id");
            assert!(ids.insert(id.local_id), "{id:?} twice");
        }
    }
    let containers_before = client.list_containers(0, 0).await.expect("list");
    assert!(!containers_before.is_empty());

    // The leader stops; another takes over.
    scms[first].take().expect("up").stop().await.expect("stops");
    let second = leader(&scms).await;
    assert_ne!(second, first);
    let new = scms[second].as_ref().expect("up");
    let client = ScmClient::connect(&new.client_addr.to_string()).expect("client");
    let hb = dns[0].reconnect(new.datanode_addr).heartbeat().await;
    assert!(hb.reregister, "a new leader wants a full report first");
    let mut term = 0;
    for dn in &dns {
        let r = dn.reconnect(new.datanode_addr).register().await;
        term = r.term;
        cluster_ids.insert(r.cluster_id);
    }
    assert_eq!(cluster_ids.len(), 1, "one cluster id across leaders");
    assert!(term >= 2, "a later term: {term}");
    let containers_after = client.list_containers(0, 0).await.expect("list");
    for c in &containers_before {
        assert!(
            containers_after.iter().any(|a| a.id == c.id),
            "container {} replicated to the new leader",
            c.id
        );
    }
    for _ in 0..20 {
        for b in client
            .allocate_block(1 << 20, 5, 3, "test", &[])
            .await
            .expect("allocate after failover")
        {
            let id = b.block_id.expect("id");
            assert!(
                ids.insert(id.local_id),
                "{id:?} handed out again after the failover"
            );
        }
    }
    assert_eq!(ids.len(), 200);
    // The leader first, so the follower does not wait for a quorum at shutdown.
    scms[second]
        .take()
        .expect("up")
        .stop()
        .await
        .expect("stops");
    for s in scms.into_iter().flatten() {
        s.stop().await.expect("stops");
    }
}

#[actix_rt::test]
async fn a_single_scm_directory_from_before_replication_starts_as_a_one_node_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = crate::harness::config(dir.path());
    // Written as SCM wrote before it was a raft group: straight into scm.db, no raft log.
    let scm_cfg = ozone_scm::ScmConfig::from_ozone(&cfg).expect("config");
    let state = ozone_scm::state::ScmState::open(scm_cfg, std::time::Instant::now()).expect("open");
    let cluster_id = state.cluster_id().to_string();
    state.close().expect("close");
    assert!(!dir.path().join(ozone_scm::RAFT_DIR).exists());

    let scm = crate::harness::start(&cfg).await;
    let dns = scm.register_datanodes(3).await;
    let r = dns[0].register().await;
    assert_eq!(r.cluster_id, cluster_id, "the old database's cluster id");
    assert!(r.term >= 1);
    assert!(
        dir.path()
            .join(ozone_scm::RAFT_DIR)
            .join("raft.db")
            .exists()
    );
    let blocks = scm
        .client
        .allocate_block(1 << 20, 1, 3, "test", &[])
        .await
        .expect("allocate");
    assert_eq!(blocks.len(), 1);
    scm.stop().await;
    // And once more, now from its raft log.
    let scm = crate::harness::start(&cfg).await;
    let r = scm.datanode(20001).register().await;
    assert_eq!(r.cluster_id, cluster_id);
    assert_eq!(
        scm.client.list_containers(0, 0).await.expect("list").len(),
        1
    );
    scm.stop().await;
}
