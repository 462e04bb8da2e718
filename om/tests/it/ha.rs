//! Three OMs in one process (a raft group over real gRPC on loopback) against a fake SCM:
//! replication, linearizable reads, NOT_LEADER redirects, leadership transfer, leader loss,
//! a stopped and a wiped follower catching up by snapshot, group commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use om_client::{OmClient, OmClientOptions, OmStatus};
use ozone_common::OzoneConfig;
use ozone_om::OmServer;

use crate::common::*;
use ozone_common::config::keys;

const NODES: [&str; 3] = ["om1", "om2", "om3"];
const SNAPSHOT_THRESHOLD: u64 = 40;
const PURGE_GAP: u64 = 5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Group {
    scm: ScmHandle,
    root: tempfile::TempDir,
    addrs: Vec<String>,
    oms: Vec<Option<OmServer>>,
}

impl Group {
    fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(NODES[i])
    }

    fn config(&self, i: usize) -> OzoneConfig {
        ha_config(&self.dir(i), &self.scm.addr.to_string(), &self.addrs, i)
    }

    async fn start(&mut self, i: usize) {
        let om = ozone_om::start(self.config(i)).await.expect("OM starts");
        self.oms[i] = Some(om);
    }

    async fn stop(&mut self, i: usize) {
        if let Some(om) = self.oms[i].take() {
            om.stop().await.expect("stop");
        }
    }

    fn om(&self, i: usize) -> &OmServer {
        self.oms[i].as_ref().expect("running")
    }

    fn client(&self) -> OmClient {
        OmClient::connect_with(
            self.addrs.clone(),
            OmClientOptions {
                request_timeout: Duration::from_secs(10),
                retry_backoff: Duration::from_millis(50),
                ..Default::default()
            },
        )
        .expect("client")
    }

    /// Index of the running OM that leads, waiting up to 10 s.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for (i, om) in self.oms.iter().enumerate() {
                if let Some(om) = om
                    && om.manager().raft_node().is_leader()
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no leader within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running OM applied the same index; returns it.
    async fn converge(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let applied: Vec<u64> = self
                .oms
                .iter()
                .flatten()
                .map(|o| o.manager().raft_node().status().applied_index)
                .collect();
            if applied.windows(2).all(|w| w[0] == w[1]) {
                return applied[0];
            }
            assert!(
                Instant::now() < deadline,
                "OMs did not converge: {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn dump(&self, i: usize) -> Vec<ozone_om::store::DumpEntry> {
        self.om(i)
            .state_machine()
            .snapshot()
            .expect("snapshot")
            .dump()
            .expect("dump")
    }
}

fn ha_config(dir: &Path, scm: &str, addrs: &[String], me: usize) -> OzoneConfig {
    let mut cfg = om_config(dir, scm);
    cfg.set(keys::OZONE_OM_SERVICE_IDS, "omservice")
        .set(
            keys::OZONE_OM_NODES_SERVICEID.with([&"omservice"]),
            NODES.join(","),
        )
        .set(keys::OZONE_OM_NODE_ID, NODES[me])
        .set(keys::OZONE_OM_RATIS_MINIMUM_TIMEOUT, "500ms")
        .set(keys::OZONE_OM_RATIS_SERVER_REQUEST_TIMEOUT, "3s")
        .set(
            keys::OZONE_OM_RATIS_SNAPSHOT_AUTO_TRIGGER_THRESHOLD,
            SNAPSHOT_THRESHOLD.to_string(),
        )
        .set(keys::OZONE_OM_RATIS_LOG_PURGE_GAP, PURGE_GAP.to_string());
    for (i, a) in addrs.iter().enumerate() {
        cfg.set(
            keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"omservice", &NODES[i]]),
            a.clone(),
        );
    }
    cfg
}

async fn group() -> Group {
    // The raft decisions (votes and why they were refused) are captured and shown when a test
    // fails; RUST_LOG chooses others.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("openraft=info,ozone_raft=info,ozone_om=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let scm = start_fake_scm().await;
    let root = tempfile::tempdir().expect("temp dir");
    let addrs = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut g = Group {
        scm,
        root,
        addrs,
        oms: vec![None, None, None],
    };
    let cfgs: Vec<OzoneConfig> = (0..3).map(|i| g.config(i)).collect();
    let started = futures_join(cfgs).await;
    g.oms = started.into_iter().map(Some).collect();
    g
}

async fn futures_join(cfgs: Vec<OzoneConfig>) -> Vec<OmServer> {
    let handles: Vec<_> = cfgs
        .into_iter()
        .map(|c| tokio::spawn(async move { ozone_om::start(c).await.expect("OM starts") }))
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("start task"));
    }
    out
}

/// Creates `bucket`, retrying while the group elects its first leader and makes the S3 volume.
async fn create_bucket_when_ready(c: &OmClient, bucket: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c
            .create_bucket(om_client::proto::CreateBucketRequest {
                volume: VOL.into(),
                bucket: bucket.into(),
                owner: "alice".into(),
                replication: 0,
            })
            .await;
        match r {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                tracing_free_sleep(&e).await;
            }
            Err(e) => panic!("bucket not created: {e}"),
        }
    }
}

async fn tracing_free_sleep(_e: &om_client::OmClientError) {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_oms_replicate_transfer_fail_over_and_catch_up_by_snapshot() {
    let mut g = group().await;
    let client = g.client();
    create_bucket_when_ready(&client, "hab").await;

    // Concurrent writes share log appends (group commit) and land on every OM.
    let leader = g.leader().await;
    let stats = g.om(leader).manager().raft_node().log_stats().clone();
    let (a0, e0) = (
        stats.appends.load(Ordering::Relaxed),
        stats.entries.load(Ordering::Relaxed),
    );
    let mut tasks = Vec::new();
    for t in 0..16 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..5 {
                put_key(&c, "hab", &format!("k{t:02}-{k}"), 1, "e").await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let (appends, entries) = (
        stats.appends.load(Ordering::Relaxed) - a0,
        stats.entries.load(Ordering::Relaxed) - e0,
    );
    // 80 keys are 160 commands (OpenKey + CommitKey): concurrent ones share entries.
    assert!(
        entries < 160 && appends <= entries,
        "group commit: {appends} log fsyncs, {entries} entries for 160 commands"
    );
    let index = g.converge().await;
    assert!(index > 0);
    let d = g.dump(0);
    assert_eq!(g.dump(1), d);
    assert_eq!(g.dump(2), d);

    // A follower answers NOT_LEADER naming the leader, for writes and reads.
    let follower = (leader + 1) % 3;
    let direct = OmClient::connect_with(
        vec![g.addrs[follower].clone()],
        OmClientOptions {
            max_attempts: 1,
            ..Default::default()
        },
    )
    .expect("client");
    let e = assert_status(direct.info_bucket(VOL, "hab").await, OmStatus::NotLeader);
    match e {
        om_client::OmClientError::Status { leader: l, .. } => {
            assert_eq!(l.as_deref(), Some(g.addrs[leader].as_str()))
        }
        other => panic!("{other:?}"),
    }

    // Leadership transfer to a follower.
    let target = NODES[follower];
    let moved = g
        .om(leader)
        .manager()
        .raft_node()
        .transfer_leader(target, Duration::from_secs(15))
        .await
        .expect("transfer");
    assert_eq!(moved, target);
    assert_eq!(g.leader().await, follower);
    put_key(&client, "hab", "after-transfer", 1, "e").await;

    // A stopped follower misses more than the snapshot threshold; it catches up by snapshot
    // (the leader purged the entries it lacks).
    let leader = g.leader().await;
    let down = (leader + 1) % 3;
    let down_applied = g.om(down).manager().raft_node().status().applied_index;
    g.stop(down).await;
    for k in 0..(SNAPSHOT_THRESHOLD * 2) {
        put_key(&client, "hab", &format!("while-down-{k}"), 1, "e").await;
    }
    let st = g.om(leader).manager().raft_node().status();
    assert!(
        st.purged_index > down_applied,
        "leader purged up to {} (follower had {down_applied})",
        st.purged_index
    );
    g.start(down).await;
    let index = g.converge().await;
    let st = g.om(down).manager().raft_node().status();
    assert_eq!(st.applied_index, index);
    assert!(
        st.snapshot_index > down_applied,
        "installed a snapshot: {st:?}"
    );
    let d = g.dump(leader);
    assert_eq!(g.dump(down), d);

    // A wiped follower catches up the same way.
    g.stop(down).await;
    std::fs::remove_dir_all(g.dir(down)).expect("wipe");
    put_key(&client, "hab", "after-wipe", 1, "e").await;
    g.start(down).await;
    g.converge().await;
    assert_eq!(g.dump(down), g.dump(leader));
    assert_eq!(g.om(down).manager().raft_node().status().role, "FOLLOWER");

    // Leader lost: a new one takes over, every committed key is still there.
    g.stop(leader).await;
    let t0 = Instant::now();
    put_key(&client, "hab", "after-leader-loss", 1, "e").await;
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let new_leader = g.leader().await;
    assert_ne!(new_leader, leader);
    for t in 0..16 {
        client
            .lookup_key(VOL, "hab", &format!("k{t:02}-4"))
            .await
            .expect("committed key survives");
    }

    // One OM of three: writes fail with OM_UNAVAILABLE (or unreachable), never succeed.
    let other = (0..3)
        .find(|i| *i != leader && *i != new_leader)
        .expect("third");
    g.stop(other).await;
    let lonely = OmClient::connect_with(
        g.addrs.clone(),
        OmClientOptions {
            request_timeout: Duration::from_secs(10),
            retry_backoff: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .expect("client");
    let t0 = Instant::now();
    let e = lonely
        .create_bucket(om_client::proto::CreateBucketRequest {
            volume: VOL.into(),
            bucket: "lonely".into(),
            ..Default::default()
        })
        .await
        .expect_err("no quorum");
    assert!(e.is_unavailable(), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    // A second OM back: writes work again. (The refused write may still commit now: it was
    // reported as failed, never as done.)
    g.start(other).await;
    create_bucket_when_ready(&client, "back-again").await;
    for i in 0..3 {
        g.stop(i).await;
    }
}

/// A CommitKey whose answer was lost (its leader died right after applying it), retried with
/// the same request id through the new leader, answers the key it committed: OM's retry cache
/// is replicated state. A new call (another request id) finds no open key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_retried_after_a_leader_change_answers_its_first_result() {
    use om_client::proto::om_service_client::OmServiceClient;
    use om_client::proto::{CommitKeyRequest, KeyLocation, OpenKeyRequest};

    let mut g = group().await;
    let client = g.client();
    create_bucket_when_ready(&client, "retry").await;
    let open = client
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: "retry".into(),
            key: "k".into(),
            size_hint: 3,
            ..Default::default()
        })
        .await
        .expect("open");
    let commit = CommitKeyRequest {
        volume: VOL.into(),
        bucket: "retry".into(),
        key: "k".into(),
        client_id: open.client_id,
        locations: vec![KeyLocation {
            length: 3,
            ..open.locations[0].clone()
        }],
        size: 3,
        etag: "e".into(),
        ..Default::default()
    };
    let id = client.next_request_id();
    // One attempt of the call to the OM at `address`, carrying the request id.
    let send = |address: String| {
        let (commit, id) = (commit.clone(), id.clone());
        async move {
            let mut c = OmServiceClient::connect(format!("http://{address}"))
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            let mut req = tonic::Request::new(commit);
            id.attach(&mut req);
            c.commit_key(req).await.map(tonic::Response::into_inner)
        }
    };
    let leader = g.leader().await;
    let first = send(g.addrs[leader].clone()).await.expect("commit");
    assert_eq!(first.size, 3);

    g.stop(leader).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let again = loop {
        let new_leader = g.leader().await;
        match send(g.addrs[new_leader].clone()).await {
            Ok(k) => break k,
            Err(e) if Instant::now() < deadline => {
                tracing::info!(error = %e, "retry not answered yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the retry failed: {e}"),
        }
    };
    assert_eq!(again, first, "the retry answers the first result");
    assert_eq!(
        client.lookup_key(VOL, "retry", "k").await.expect("stored"),
        first
    );
    // A new call is a new write: the open key is gone.
    assert_status(client.commit_key(commit).await, OmStatus::KeyNotFound);
    for i in 0..3 {
        g.stop(i).await;
    }
}
