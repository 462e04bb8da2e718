//! Faults are not corruption: an I/O error met by the scrubber leaves the replica as it is
//! (retried, reported as a gauge) and a clean scan later clears it; a write arriving after SCM
//! had the container deleted never re-creates it.

use std::time::Duration;

use datanode_client::DatanodeClients;
use ozone_common::config::keys;
use ozone_proto::scm::DeleteContainerCommand;
use ozone_proto::scm::scm_command::Command;
use ozone_proto::scm::scm_datanode_service_server::ScmDatanodeServiceServer;

use crate::harness::*;
use crate::replication::{ScriptedScm, state_of, wait_for};

/// The value of the datanode's `ozone_datanode_state{name="..."}` gauge, or of the
/// `ozone_datanode_requests_total{op="...",outcome="..."}` counter, from `/prom`.
async fn metric(cluster: &Cluster, line_prefix: &str) -> u64 {
    let addr = cluster.node(0).http_addr();
    let body = ozone_common::probe::get_async(addr, "/prom")
        .await
        .unwrap()
        .text();
    body.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

const FAULTED: &str = r#"ozone_datanode_state{name="scrub_faulted_containers"}"#;
const SCANNED_OK: &str = r#"ozone_datanode_requests_total{op="ScrubContainer",outcome="success"}"#;

async fn wait_metric(cluster: &Cluster, what: &str, prefix: &str, cond: impl Fn(u64) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = metric(cluster, prefix).await;
        if cond(v) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} (now {v})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_fault_on_a_datanode_makes_nothing_unhealthy() {
    let mut cluster = Cluster::start(1).await;
    // Scan every container each second.
    let mut cfg = config(&cluster.dirs[0], NO_SCM);
    cfg.set(keys::HDDS_CONTAINER_SCRUB_ENABLED, "true")
        .set(keys::HDDS_CONTAINER_SCRUB_DATA_SCAN_INTERVAL, "1s")
        .set(keys::HDDS_CONTAINER_SCRUB_VOLUME_BYTES_PER_SECOND, "100MB");
    cluster.stop(0).await;
    cluster.nodes[0] = Some(ozone_datanode::start(cfg).await.unwrap());
    cluster.details[0] = cluster.node(0).details();
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let (id, bytes) = (block_id(60, 1), data(300_000, 6));
    write_block(&clients, nodes.clone(), id, &bytes, &[])
        .await
        .unwrap();
    cluster.node(0).close_container(60).await.unwrap();
    wait_metric(&cluster, "a clean scan", SCANNED_OK, |v| v >= 1).await;

    // The block file cannot be opened (ELOOP: a symlink loop stands in its place), as with
    // EMFILE or EIO: an I/O error, not a sign of bad data.
    let path = cluster.block_file(0, id);
    let aside = path.with_extension("aside");
    std::fs::rename(&path, &aside).unwrap();
    std::os::unix::fs::symlink(&path, &path).unwrap();
    wait_metric(&cluster, "the fault reported", FAULTED, |v| v == 1).await;
    assert_eq!(state_of(&cluster, 0, 60), Some(("CLOSED".into(), 1)));
    assert!(
        read_range(&clients, &nodes, id, 0, 10).await.is_err(),
        "nothing to read while the fault lasts"
    );

    // The fault goes away: the retry (after a backoff) scans it clean; still CLOSED, served.
    let clean = metric(&cluster, SCANNED_OK).await;
    std::fs::remove_file(&path).unwrap();
    std::fs::rename(&aside, &path).unwrap();
    wait_metric(&cluster, "the fault cleared", FAULTED, |v| v == 0).await;
    assert!(metric(&cluster, SCANNED_OK).await > clean);
    assert_eq!(state_of(&cluster, 0, 60), Some(("CLOSED".into(), 1)));
    assert_eq!(
        read_range(&clients, &nodes, id, 0, bytes.len() as u64)
            .await
            .unwrap(),
        bytes
    );

    // Corruption, by contrast, marks the replica UNHEALTHY; it is still read as a last
    // resort, verified: the intact block reads back, the corrupt one fails.
    let other = block_id(61, 1);
    write_block(&clients, nodes.clone(), other, &bytes, &[])
        .await
        .unwrap();
    write_block(&clients, nodes.clone(), block_id(61, 2), &bytes, &[])
        .await
        .unwrap();
    cluster.node(0).close_container(61).await.unwrap();
    let bad = cluster.block_file(0, block_id(61, 2));
    let mut flipped = std::fs::read(&bad).unwrap();
    flipped[1000] ^= 1;
    std::fs::write(&bad, flipped).unwrap();
    wait_for("the corrupt replica UNHEALTHY", || {
        state_of(&cluster, 0, 61).is_some_and(|(s, _)| s == "UNHEALTHY")
    })
    .await;
    assert_eq!(
        read_range(&clients, &nodes, other, 0, bytes.len() as u64)
            .await
            .unwrap(),
        bytes
    );
    assert!(
        read_range(&clients, &nodes, block_id(61, 2), 0, 10)
            .await
            .is_err()
    );
    assert_eq!(state_of(&cluster, 0, 60), Some(("CLOSED".into(), 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_write_after_delete_does_not_re_create_the_container() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scm_addr = listener.local_addr().unwrap().to_string();
    let scm = ScriptedScm::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ScmDatanodeServiceServer::new(scm.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut cluster = Cluster::start_with_scm(1, &scm_addr).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let bytes = data(70_000, 7);
    write_block(&clients, nodes.clone(), block_id(70, 1), &bytes, &[])
        .await
        .unwrap();
    cluster.node(0).close_container(70).await.unwrap();
    scm.send(
        &cluster.details[0].uuid,
        Command::DeleteContainer(DeleteContainerCommand {
            container_id: 70,
            force: true,
        }),
    );
    wait_for("the replica deleted", || {
        state_of(&cluster, 0, 70).is_none()
    })
    .await;

    // A writer that was slow sends its chunks and PutBlock now.
    let late = write_block(&clients, nodes.clone(), block_id(70, 2), &bytes, &[]).await;
    let err = late.expect_err("the late write is refused").to_string();
    assert!(err.contains("deleted"), "{err}");
    assert_eq!(state_of(&cluster, 0, 70), None, "not re-created");
    assert!(!cluster.dirs[0].join("containers/70").exists());
    // Still so after a restart.
    cluster.restart(0).await;
    let nodes = cluster.details.clone();
    assert!(
        write_block(&clients, nodes.clone(), block_id(70, 3), &bytes, &[])
            .await
            .is_err()
    );
    assert_eq!(state_of(&cluster, 0, 70), None);
    // Other containers are created as before.
    write_block(&clients, nodes, block_id(71, 1), &bytes, &[])
        .await
        .unwrap();
    server.abort();
}
