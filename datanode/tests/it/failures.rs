//! Replica failures: corruption on disk, dead datanodes, containers closed under a writer.

use std::os::unix::fs::FileExt;

use datanode_client::{DatanodeClientError, DatanodeClients};
use ozone_proto::datanode::ReadChunkRequest;
use tonic::Code;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_replica_answers_data_loss_and_readers_fail_over() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let id = block_id(10, 1);
    let len = 3 * 1024 * 1024 + 777;
    let bytes = data(len, 10);
    write_block(&clients, nodes.clone(), id, &bytes, &[])
        .await
        .unwrap();

    // Flip one byte of node 0's copy, 2.5 MiB in.
    let bad_at = 5 * 512 * 1024 + 3;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(cluster.block_file(0, id))
        .unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, bad_at).unwrap();
    file.write_all_at(&[b[0] ^ 0x40], bad_at).unwrap();
    drop(file);

    // The datanode itself notices: good pieces first, then data_loss.
    let mut raw = clients.client(&nodes[0]).unwrap();
    let mut stream = raw
        .read_chunk(ReadChunkRequest {
            token: Default::default(),
            block_id: Some(id),
            offset: 0,
            length: len as u64,
        })
        .await
        .unwrap()
        .into_inner();
    let mut good = 0u64;
    let status = loop {
        match stream.message().await {
            Ok(Some(resp)) => good += resp.data.len() as u64,
            Ok(None) => panic!("the corrupt replica served the whole block"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert!(
        good > 0 && good <= bad_at,
        "{good} good bytes before the bad one"
    );

    // Readers get the right bytes whichever replica they start with (the rotation covers all
    // three, so one of these starts on the corrupt replica and fails over mid-stream).
    let fresh = DatanodeClients::new();
    for _ in 0..3 {
        assert_eq!(
            read_range(&fresh, &nodes, id, 0, len as u64).await.unwrap(),
            bytes
        );
        let (off, n) = (bad_at - 100_000, 200_000);
        assert_eq!(
            read_range(&fresh, &nodes, id, off, n).await.unwrap(),
            &bytes[off as usize..(off + n) as usize]
        );
    }
    // Alone, the corrupt replica still serves the ranges that are intact, and fails the rest.
    let only_bad = &nodes[..1];
    assert_eq!(
        read_range(&fresh, only_bad, id, 0, 1_000_000)
            .await
            .unwrap(),
        &bytes[..1_000_000]
    );
    let err = read_range(&fresh, only_bad, id, 0, len as u64)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DatanodeClientError::ReadFailed { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_succeeds_on_two_of_three_and_reads_back() {
    let mut cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let dead = cluster.node(2).uuid().to_string();
    cluster.stop(2).await;
    let id = block_id(11, 1);
    let bytes = data(2 * 1024 * 1024 + 99, 11);
    let done = write_block(&clients, nodes.clone(), id, &bytes, &[])
        .await
        .unwrap();
    let failed: Vec<_> = done.failed.iter().map(|f| f.uuid.clone()).collect();
    assert_eq!(failed, vec![dead]);
    for _ in 0..3 {
        assert_eq!(
            read_range(&clients, &nodes, id, 0, bytes.len() as u64)
                .await
                .unwrap(),
            bytes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_fails_with_two_of_three_down_naming_them() {
    let mut cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let mut dead = vec![
        cluster.node(1).uuid().to_string(),
        cluster.node(2).uuid().to_string(),
    ];
    cluster.stop(1).await;
    cluster.stop(2).await;
    let id = block_id(12, 1);
    let bytes = data(1024 * 1024, 12);
    let err = write_block(&clients, nodes.clone(), id, &bytes, &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, DatanodeClientError::WriteFailed { .. }),
        "{err}"
    );
    let mut failed = err.failed_datanodes();
    failed.sort();
    dead.sort();
    assert_eq!(failed, dead, "{err}");
    // The surviving replica did not commit anything.
    let mut raw = clients.client(&nodes[0]).unwrap();
    let status = raw
        .get_block(ozone_proto::datanode::GetBlockRequest {
            token: Default::default(),
            block_id: Some(id),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_refusing_mid_pipeline_drop_out() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let first = data(100_000, 13);
    write_block(&clients, nodes.clone(), block_id(13, 1), &first, &[])
        .await
        .unwrap();
    // SCM closes container 13 on node 1 only (e.g. it was closing when the write started).
    cluster.node(1).close_container(13).await.unwrap();
    let bytes = data(3 * 1024 * 1024, 14);
    let done = write_block(&clients, nodes.clone(), block_id(13, 2), &bytes, &[])
        .await
        .unwrap();
    let failed: Vec<_> = done.failed.iter().map(|f| f.uuid.clone()).collect();
    assert_eq!(failed, vec![cluster.node(1).uuid().to_string()]);
    assert!(
        done.failed[0].reason.contains("FailedPrecondition"),
        "{:?}",
        done.failed
    );
    assert_eq!(
        read_range(&clients, &nodes, block_id(13, 2), 0, bytes.len() as u64)
            .await
            .unwrap(),
        bytes
    );
    cluster.node(2).close_container(13).await.unwrap();
    let err = write_block(&clients, nodes, block_id(13, 3), &bytes, &[])
        .await
        .unwrap_err();
    assert_eq!(err.failed_datanodes().len(), 2, "{err}");
}
