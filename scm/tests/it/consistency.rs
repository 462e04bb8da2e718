//! Replica consistency (issue 12): replicas report their BCSIDs; at close a replica missing
//! committed blocks (lower BCSID, or reported by a writer) is lagging: it is replaced by a copy
//! of a complete replica and deleted, and a complete replica never is.

use std::collections::BTreeSet;
use std::time::Duration;

use scm_client::{ScmClientError, pb};

use crate::harness::{FakeDatanode, config, start};
use ozone_common::config::keys;

fn replica(id: u64, state: &str, bcsid: u64) -> pb::ContainerReplicaReport {
    pb::ContainerReplicaReport {
        container_id: id,
        state: state.into(),
        used_bytes: bcsid * 1000,
        block_count: bcsid,
        bcsid,
    }
}

/// What a heartbeat told the datanode about container `id`: copy sources, and a forced
/// deletion.
#[derive(Debug, Default)]
struct Told {
    copy_from: Option<BTreeSet<String>>,
    delete: Option<bool>,
}

async fn heartbeat(dn: &FakeDatanode, id: u64) -> Told {
    let mut told = Told::default();
    for c in dn.heartbeat().await.commands {
        match c.command {
            Some(pb::scm_command::Command::ReplicateContainer(r)) if r.container_id == id => {
                told.copy_from = Some(r.sources.into_iter().map(|d| d.uuid).collect());
            }
            Some(pb::scm_command::Command::DeleteContainer(d)) if d.container_id == id => {
                told.delete = Some(d.force);
            }
            _ => {}
        }
    }
    told
}

fn fast(dir: &std::path::Path) -> ozone_common::OzoneConfig {
    let mut cfg = config(dir);
    cfg.set(keys::HDDS_SCM_REPLICATION_THREAD_INTERVAL, "100ms");
    cfg
}

/// Heartbeats every datanode until `pick` finds what it waits for in one of the answers;
/// fails if a datanode in `never_deleted` is told to delete its replica meanwhile.
async fn until<T>(
    dns: &[FakeDatanode],
    id: u64,
    never_deleted: &[&str],
    mut pick: impl FnMut(&FakeDatanode, &Told) -> Option<T>,
) -> T {
    // Generous: under a loaded CI machine every replicated change waits for two fsyncs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for dn in dns {
            let told = heartbeat(dn, id).await;
            assert!(
                told.delete.is_none() || !never_deleted.contains(&dn.uuid()),
                "a complete replica on {} was deleted",
                dn.uuid()
            );
            if let Some(t) = pick(dn, &told) {
                return t;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lagging_of(scm: &scm_client::ScmClient, id: u64) -> (u64, Vec<(String, u64, bool)>) {
    let c = scm.get_container(id).await.expect("container");
    let mut rs: Vec<_> = c
        .replicas
        .iter()
        .map(|r| {
            let uuid = r
                .datanode
                .as_ref()
                .map(|d| d.uuid.clone())
                .unwrap_or_default();
            (uuid, r.bcsid, r.lagging)
        })
        .collect();
    rs.sort();
    (c.bcsid, rs)
}

#[actix_rt::test]
async fn a_replica_with_a_lower_bcsid_at_close_is_replaced_from_a_complete_one_then_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&fast(dir.path())).await;
    let mut dns = scm.register_datanodes(4).await;
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect("allocate");
    let id = b[0].block_id.expect("id").container_id;
    let members: Vec<String> = b[0]
        .pipeline
        .as_ref()
        .expect("pipeline")
        .nodes
        .iter()
        .map(|d| d.uuid.clone())
        .collect();
    scm.client.close_container(id).await.expect("close");
    // Two members committed 5 blocks; the third missed two of them.
    let lag = members[2].clone();
    let complete: Vec<&str> = vec![&members[0], &members[1]];
    for dn in dns.iter_mut() {
        if members.contains(&dn.details.uuid) {
            let bcsid = if dn.uuid() == lag { 3 } else { 5 };
            dn.containers = vec![replica(id, "CLOSED", bcsid)];
        }
        dn.heartbeat().await;
    }
    let (bcsid, rs) = lagging_of(&scm.client, id).await;
    assert_eq!(bcsid, 5);
    assert!(
        rs.iter().all(|(u, _, lagging)| *lagging == (*u == lag)),
        "{rs:?}"
    );

    // The spare datanode copies from the complete replicas only.
    let spare = dns
        .iter()
        .position(|d| !members.contains(&d.details.uuid))
        .expect("a spare datanode");
    let sources = until(&dns, id, &complete, |dn, told| {
        (dn.uuid() == dns[spare].uuid())
            .then(|| told.copy_from.clone())
            .flatten()
    })
    .await;
    let expected: BTreeSet<String> = complete.iter().map(|s| s.to_string()).collect();
    assert_eq!(sources, expected);

    // The copy arrives (with its source's BCSID): the lagging replica is deleted, forced.
    dns[spare].containers = vec![replica(id, "CLOSED", 5)];
    let force = until(&dns, id, &complete, |dn, told| {
        (dn.uuid() == lag).then_some(told.delete).flatten()
    })
    .await;
    assert!(force);
    let gone = dns.iter().position(|d| d.uuid() == lag).expect("lagging");
    dns[gone].containers.clear();
    dns[gone].heartbeat().await;
    let (_, rs) = lagging_of(&scm.client, id).await;
    assert_eq!(rs.len(), 3);
    assert!(
        rs.iter().all(|(_, b, lagging)| *b == 5 && !lagging),
        "{rs:?}"
    );
    // Settled: nothing more to copy or delete, over several rounds.
    for _ in 0..6 {
        for dn in &dns {
            let told = heartbeat(dn, id).await;
            assert!(
                told.copy_from.is_none() && told.delete.is_none(),
                "{told:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scm.stop().await;
}

#[actix_rt::test]
async fn a_writer_reported_miss_closes_the_container_and_the_replica_is_replaced_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&fast(dir.path())).await;
    let mut dns = scm.register_datanodes(3).await;
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect("allocate");
    let id = b[0].block_id.expect("id").container_id;
    for dn in dns.iter_mut() {
        dn.containers = vec![replica(id, "OPEN", 2)];
        dn.heartbeat().await;
    }
    let e = scm
        .client
        .report_replica_miss(999, dns[2].uuid(), 3)
        .await
        .expect_err("unknown container");
    assert!(matches!(e, ScmClientError::NotFound(_)), "{e}");

    // dn 2 missed a commit the others took (they answered BCSID 3).
    scm.client
        .report_replica_miss(id, dns[2].uuid(), 3)
        .await
        .expect("report");
    let c = scm.client.get_container(id).await.expect("container");
    assert_eq!((c.state.as_str(), c.bcsid), ("CLOSED", 3));
    // Its replicas close; dn 2's has the same BCSID as the others (it took a later commit of
    // another writer), but the writer's report marks it.
    for dn in dns.iter_mut() {
        dn.containers = vec![replica(id, "CLOSED", 3)];
    }
    let lag = dns[2].uuid().to_string();
    let complete = [dns[0].uuid(), dns[1].uuid()];
    // No spare datanode: the lagging replica makes room at once (nobody is dead).
    let force = until(&dns, id, &complete, |dn, told| {
        (dn.uuid() == lag).then_some(told.delete).flatten()
    })
    .await;
    assert!(force);
    let (_, rs) = lagging_of(&scm.client, id).await;
    assert!(
        rs.iter().any(|(u, _, lagging)| *u == lag && *lagging),
        "{rs:?}"
    );
    dns[2].containers.clear();
    let complete = [dns[0].uuid().to_string(), dns[1].uuid().to_string()];
    let sources = until(&dns, id, &[&complete[0], &complete[1]], |dn, told| {
        (dn.uuid() == lag).then(|| told.copy_from.clone()).flatten()
    })
    .await;
    assert_eq!(sources, complete.iter().cloned().collect::<BTreeSet<_>>());
    // The copy is complete: its mark went with the old replica.
    dns[2].containers = vec![replica(id, "CLOSED", 3)];
    dns[2].heartbeat().await;
    let (_, rs) = lagging_of(&scm.client, id).await;
    assert!(rs.iter().all(|(_, _, lagging)| !lagging), "{rs:?}");
    for _ in 0..6 {
        for dn in &dns {
            let told = heartbeat(dn, id).await;
            assert!(told.delete.is_none(), "{told:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    scm.stop().await;
}
