//! Writing blocks through `BlockWriter` and reading them back, whole and in ranges.

use bytes::Bytes;
use datanode_client::{DatanodeClients, checksum, get_block};
use ozone_proto::datanode::{PutBlockRequest, ReadChunkRequest, WriteChunkRequest};
use ozone_proto::hdds::{BlockData, ChunkInfo};
use tonic::Code;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_chunk_block_round_trips_whole_and_in_ranges() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let len = 5 * 1024 * 1024 + 12_345;
    let bytes = data(len, 1);
    let id = block_id(1, 100);
    // A big piece, then small ones that get gathered, then unaligned ones.
    let pieces = [4 * 1024 * 1024 - 7, 1000, 70_000, 300_000, 5];
    let done = write_block(&clients, nodes.clone(), id, &bytes, &pieces)
        .await
        .unwrap();
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(done.block.size, len as u64);
    assert!(
        done.block.chunks.len() >= 6,
        "{} chunks",
        done.block.chunks.len()
    );

    assert_eq!(
        read_range(&clients, &nodes, id, 0, len as u64)
            .await
            .unwrap(),
        bytes
    );
    let len64 = len as u64;
    let mib = 1024 * 1024;
    for (off, n) in [
        (0, 1),
        (1, 100),
        (16_383, 2),
        (mib - 5, 10),
        (4 * mib - 10, 2000),
        (123_457, 3 * mib),
        (len64 - 1, 1),
        (len64, 0),
        (17, 0),
    ] {
        let got = read_range(&clients, &nodes, id, off, n).await.unwrap();
        assert_eq!(
            got,
            &bytes[off as usize..(off + n) as usize],
            "range {off}+{n}"
        );
    }
    // Every replica holds the block on its own.
    for node in &nodes {
        let one = std::slice::from_ref(node);
        assert_eq!(
            read_range(&clients, one, id, 0, len64).await.unwrap(),
            bytes
        );
        assert_eq!(get_block(&clients, one, id).await.unwrap(), done.block);
    }
    // A range past the end is refused by every replica.
    let err = read_range(&clients, &nodes, id, len64 - 1, 2)
        .await
        .unwrap_err();
    assert_eq!(err.failed_datanodes().len(), 3, "{err}");
    let mut raw = clients.client(&nodes[0]).unwrap();
    let status = raw
        .read_chunk(ReadChunkRequest {
            token: Default::default(),
            block_id: Some(id),
            offset: len64,
            length: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);

    // Reports, metrics and the status page see the block.
    let report = cluster.node(0).containers();
    assert_eq!(report.len(), 1);
    assert_eq!(
        (
            report[0].container_id,
            report[0].block_count,
            report[0].used_bytes
        ),
        (1, 1, len64)
    );
    let prom = ozone_common::probe::get_async(cluster.node(0).http_addr(), "/prom")
        .await
        .expect("GET /prom")
        .text();
    assert!(prom.contains("ozone_datanode_requests_total"), "{prom}");
    assert!(prom.contains("op=\"WriteChunk\""), "{prom}");
    assert!(prom.contains("op=\"PutBlock\""), "{prom}");
    let status_page = ozone_common::probe::get_async(cluster.node(0).http_addr(), "/")
        .await
        .expect("GET /")
        .text();
    assert!(
        status_page.contains(cluster.node(0).uuid()),
        "{status_page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_blocks_in_one_container() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let writes = (1..=4u64).map(|local| {
        let clients = clients.clone();
        let nodes = cluster.details.clone();
        async move {
            let bytes = data(700_000 + local as usize * 1000, local);
            write_block(&clients, nodes, block_id(5, local), &bytes, &[100_000])
                .await
                .unwrap();
            bytes
        }
    });
    let written = futures::future::join_all(writes).await;
    for (i, bytes) in written.iter().enumerate() {
        let id = block_id(5, i as u64 + 1);
        let got = read_range(&clients, &cluster.details, id, 0, bytes.len() as u64)
            .await
            .unwrap();
        assert_eq!(&got, bytes);
    }
    assert_eq!(cluster.node(1).containers()[0].block_count, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_is_rejected_before_writing() {
    let cluster = Cluster::start(1).await;
    let clients = DatanodeClients::new();
    let node = &cluster.details[0];
    let id = block_id(2, 1);
    let payload = Bytes::from(data(40_000, 2));
    let mut cs = checksum::compute(&payload, 16 * 1024);
    cs.checksums[1] ^= 1;
    let bad = WriteChunkRequest {
        token: Default::default(),
        block_id: Some(id),
        chunk: Some(ChunkInfo {
            offset: 0,
            len: payload.len() as u64,
            checksum: Some(cs),
        }),
        data: payload.clone(),
    };
    let mut raw = clients.client(node).unwrap();
    let status = raw
        .write_chunk(futures::stream::iter(vec![bad]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    let file = cluster.block_file(0, id);
    let on_disk = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert_eq!(on_disk, 0, "nothing of the bad chunk reached the disk");

    // A length that disagrees with the data is refused too.
    let lying = WriteChunkRequest {
        token: Default::default(),
        block_id: Some(id),
        chunk: Some(ChunkInfo {
            offset: 0,
            len: 5,
            checksum: Some(checksum::compute(&payload, 16 * 1024)),
        }),
        data: payload,
    };
    let status = raw
        .write_chunk(futures::stream::iter(vec![lying]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
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
async fn committed_blocks_and_closed_containers_refuse_writes() {
    let cluster = Cluster::start(1).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let id = block_id(3, 1);
    let bytes = data(50_000, 3);
    let done = write_block(&clients, nodes.clone(), id, &bytes, &[])
        .await
        .unwrap();

    let chunk = |payload: Bytes, offset: u64, id| WriteChunkRequest {
        token: Default::default(),
        block_id: Some(id),
        chunk: Some(ChunkInfo {
            offset,
            len: payload.len() as u64,
            checksum: Some(checksum::compute(&payload, 16 * 1024)),
        }),
        data: payload,
    };
    let mut raw = clients.client(&nodes[0]).unwrap();
    // Inside the committed length (after it the writer may go on: see flush.rs).
    let again = chunk(Bytes::from_static(b"more"), 49_998, id);
    let status = raw
        .write_chunk(futures::stream::iter(vec![again]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    // Re-sending the same PutBlock is harmless; a different one is refused.
    let put = |block: BlockData| PutBlockRequest {
        token: Default::default(),
        block: Some(block),
    };
    raw.put_block(put(done.block.clone())).await.unwrap();
    let mut other = done.block.clone();
    other.chunks.truncate(0);
    other.size = 0;
    let status = raw.put_block(put(other)).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    cluster.node(0).close_container(3).await.unwrap();
    let fresh = chunk(Bytes::from_static(b"late"), 0, block_id(3, 2));
    let status = raw
        .write_chunk(futures::stream::iter(vec![fresh]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(cluster.node(0).containers()[0].state, "CLOSED");
    // Committed data stays readable in a closed container.
    assert_eq!(
        read_range(&clients, &nodes, id, 0, bytes.len() as u64)
            .await
            .unwrap(),
        bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_block_commits_and_reads_empty() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let id = block_id(4, 1);
    let done = write_block(&clients, cluster.details.clone(), id, &[], &[])
        .await
        .unwrap();
    assert!(done.failed.is_empty());
    assert_eq!((done.block.size, done.block.chunks.len()), (0, 0));
    assert_eq!(
        get_block(&clients, &cluster.details, id).await.unwrap(),
        done.block
    );
    assert!(
        read_range(&clients, &cluster.details, id, 0, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let err = get_block(&clients, &cluster.details, block_id(4, 2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            datanode_client::DatanodeClientError::BlockNotFound { .. }
        ),
        "{err}"
    );
}
