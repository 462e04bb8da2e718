//! Restarting a datanode on the same directory keeps its identity and committed blocks.

use datanode_client::{DatanodeClients, get_block};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_identity_and_committed_blocks() {
    let mut cluster = Cluster::start(1).await;
    let clients = DatanodeClients::new();
    let id = block_id(20, 7);
    let bytes = data(1_500_000, 20);
    let done = write_block(&clients, cluster.details.clone(), id, &bytes, &[])
        .await
        .unwrap();
    let uuid = cluster.node(0).uuid().to_string();
    // A second datanode cannot take the same directory.
    assert!(
        ozone_datanode::start(config(&cluster.dirs[0], NO_SCM))
            .await
            .is_err()
    );

    cluster.restart(0).await;
    assert_eq!(cluster.node(0).uuid(), uuid);
    let nodes = cluster.details.clone();
    assert_eq!(get_block(&clients, &nodes, id).await.unwrap(), done.block);
    assert_eq!(
        read_range(&clients, &nodes, id, 0, bytes.len() as u64)
            .await
            .unwrap(),
        bytes
    );
    let report = cluster.node(0).containers();
    assert_eq!(
        (
            report[0].state.as_str(),
            report[0].block_count,
            report[0].used_bytes
        ),
        ("OPEN", 1, bytes.len() as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_on_shutdown_and_releases_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dn");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(ozone_datanode::run(config(&dir, NO_SCM), async {
        let _ = rx.await;
    }));
    // Wait until it has claimed the directory.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dir.join("datanode.id").exists() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tx.send(()).unwrap();
    running.await.unwrap().unwrap();
    let again = ozone_datanode::start(config(&dir, NO_SCM)).await.unwrap();
    again.stop().await.unwrap();
}
