//! Incremental block commits: a writer flushes (PutBlock of the chunks so far) and goes on; the
//! datanode takes a PutBlock that extends the committed block while the container is OPEN.

use bytes::Bytes;
use datanode_client::{BlockWriter, DatanodeClientError, DatanodeClients, checksum};
use ozone_proto::datanode::{GetBlockRequest, PutBlockRequest, WriteChunkRequest};
use ozone_proto::hdds::{BlockData, BlockId, ChunkInfo, DatanodeDetails};
use tonic::Code;

use crate::harness::*;

/// The block as node `node` has it committed.
async fn committed(clients: &DatanodeClients, node: &DatanodeDetails, id: BlockId) -> BlockData {
    let mut raw = clients.client(node).unwrap();
    raw.get_block(GetBlockRequest {
        token: Default::default(),
        block_id: Some(id),
    })
    .await
    .unwrap()
    .into_inner()
    .block
    .unwrap()
}

async fn put(
    clients: &DatanodeClients,
    node: &DatanodeDetails,
    block: &BlockData,
) -> Result<u64, tonic::Status> {
    let mut raw = clients.client(node).unwrap();
    raw.put_block(PutBlockRequest {
        token: Default::default(),
        block: Some(block.clone()),
    })
    .await
    .map(|r| r.into_inner().committed_length)
}

/// One WriteChunk stream carrying `data` at `offset`.
async fn write_at(
    clients: &DatanodeClients,
    node: &DatanodeDetails,
    id: BlockId,
    offset: u64,
    data: &[u8],
) -> Result<u64, tonic::Status> {
    let mut raw = clients.client(node).unwrap();
    let msg = WriteChunkRequest {
        token: Default::default(),
        block_id: Some(id),
        chunk: Some(ChunkInfo {
            offset,
            len: data.len() as u64,
            checksum: Some(checksum::compute(data, 16 * 1024)),
        }),
        data: Bytes::copy_from_slice(data),
    };
    raw.write_chunk(tokio_stream::iter(vec![msg]))
        .await
        .map(|r| r.into_inner().bytes_written)
}

/// (used bytes, block count) node `i` reports for `container`.
fn usage(cluster: &Cluster, i: usize, container: u64) -> (u64, u64) {
    let r = cluster
        .node(i)
        .containers()
        .into_iter()
        .find(|r| r.container_id == container)
        .unwrap();
    (r.used_bytes, r.block_count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_committed_flush_by_flush_and_counted_once() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let id = block_id(30, 1);
    let bytes = Bytes::from(data(5 * 1024 * 1024 + 300, 30));
    let mut w = BlockWriter::open(&clients, id, nodes.clone(), options()).unwrap();

    w.write(bytes.slice(..2 * 1024 * 1024)).await.unwrap();
    assert_eq!(w.flush().await.unwrap(), 2 * 1024 * 1024);
    assert_eq!(w.committed_len(), 2 * 1024 * 1024);
    // Flushing again without new bytes commits nothing new.
    assert_eq!(w.flush().await.unwrap(), 2 * 1024 * 1024);
    for node in &nodes {
        assert_eq!(committed(&clients, node, id).await.size, 2 * 1024 * 1024);
    }
    assert_eq!(
        read_range(&clients, &nodes, id, 0, 2 * 1024 * 1024)
            .await
            .unwrap(),
        &bytes[..2 * 1024 * 1024]
    );
    for i in 0..3 {
        assert_eq!(usage(&cluster, i, 30), (2 * 1024 * 1024, 1));
    }

    w.write(bytes.slice(2 * 1024 * 1024..4 * 1024 * 1024 + 5))
        .await
        .unwrap();
    assert_eq!(w.flush().await.unwrap(), 4 * 1024 * 1024 + 5);
    w.write(bytes.slice(4 * 1024 * 1024 + 5..)).await.unwrap();
    let done = w.finish_detailed().await.unwrap();
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    assert_eq!(done.block.size, bytes.len() as u64);
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(committed(&clients, node, id).await, done.block);
        assert_eq!(usage(&cluster, i, 30), (bytes.len() as u64, 1));
    }
    assert_eq!(
        read_range(&clients, &nodes, id, 0, bytes.len() as u64)
            .await
            .unwrap(),
        bytes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_block_extends_a_committed_block_only_while_open() {
    let cluster = Cluster::start(1).await;
    let clients = DatanodeClients::new();
    let node = cluster.details[0].clone();
    let id = block_id(31, 1);
    let bytes = data(3 * 1024 * 1024, 31);
    let mut w = BlockWriter::open(&clients, id, vec![node.clone()], options()).unwrap();
    w.write(Bytes::copy_from_slice(&bytes[..1024 * 1024]))
        .await
        .unwrap();
    w.flush().await.unwrap();
    let first = committed(&clients, &node, id).await;
    w.write(Bytes::copy_from_slice(&bytes[1024 * 1024..]))
        .await
        .unwrap();
    let full = w.finish().await.unwrap();
    assert_eq!(full.chunks[..first.chunks.len()], first.chunks[..]);
    assert_eq!(usage(&cluster, 0, 31), (bytes.len() as u64, 1));

    // The same PutBlock again is a no-op.
    assert_eq!(put(&clients, &node, &full).await.unwrap(), full.size);
    // A shorter one (the earlier flush) is refused.
    let status = put(&clients, &node, &first).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    // So is a different one of the same length.
    let mut other = full.clone();
    let last = other.chunks.last_mut().unwrap();
    last.checksum = Some(checksum::compute(&vec![0u8; last.len as usize], 16 * 1024));
    let status = put(&clients, &node, &other).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(committed(&clients, &node, id).await, full);

    // Writes inside the committed length are refused; after it they are taken.
    let status = write_at(&clients, &node, id, full.size - 1, b"xy")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let tail = data(70_000, 32);
    assert_eq!(
        write_at(&clients, &node, id, full.size, &tail)
            .await
            .unwrap(),
        tail.len() as u64
    );
    let mut longer = full.clone();
    longer.chunks.push(ChunkInfo {
        offset: full.size,
        len: tail.len() as u64,
        checksum: Some(checksum::compute(&tail, 16 * 1024)),
    });
    longer.size += tail.len() as u64;
    // An extension must keep every committed chunk as it is.
    let mut changed = longer.clone();
    let first_len = changed.chunks[0].len as usize;
    changed.chunks[0].checksum = Some(checksum::compute(&vec![7u8; first_len], 16 * 1024));
    let status = put(&clients, &node, &changed).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    // Closed: neither the extension nor more writes are taken; the same commit still is.
    cluster.node(0).close_container(31).await.unwrap();
    let status = put(&clients, &node, &longer).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = write_at(&clients, &node, id, longer.size, b"z")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(put(&clients, &node, &full).await.unwrap(), full.size);
    assert_eq!(committed(&clients, &node, id).await, full);
    assert_eq!(usage(&cluster, 0, 31), (bytes.len() as u64, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_block_extension_while_open_grows_used_bytes_by_the_difference() {
    let cluster = Cluster::start(1).await;
    let clients = DatanodeClients::new();
    let node = cluster.details[0].clone();
    let id = block_id(33, 1);
    let head = data(100_000, 33);
    let tail = data(50_000, 34);
    assert_eq!(
        write_at(&clients, &node, id, 0, &head).await.unwrap(),
        100_000
    );
    let chunk = |offset: u64, d: &[u8]| ChunkInfo {
        offset,
        len: d.len() as u64,
        checksum: Some(checksum::compute(d, 16 * 1024)),
    };
    let first = BlockData {
        block_id: Some(id),
        chunks: vec![chunk(0, &head)],
        size: 100_000,
    };
    put(&clients, &node, &first).await.unwrap();
    assert_eq!(usage(&cluster, 0, 33), (100_000, 1));
    write_at(&clients, &node, id, 100_000, &tail).await.unwrap();
    let mut second = first.clone();
    second.chunks.push(chunk(100_000, &tail));
    second.size = 150_000;
    assert_eq!(put(&clients, &node, &second).await.unwrap(), 150_000);
    assert_eq!(usage(&cluster, 0, 33), (150_000, 1));
    assert_eq!(
        read_range(&clients, &[node], id, 0, 150_000).await.unwrap(),
        [head, tail].concat()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_closed_after_a_flush_keeps_the_flushed_prefix() {
    let cluster = Cluster::start(3).await;
    let clients = DatanodeClients::new();
    let nodes = cluster.details.clone();
    let id = block_id(35, 1);
    let bytes = Bytes::from(data(3 * 1024 * 1024, 35));
    let mut w = BlockWriter::open(&clients, id, nodes.clone(), options()).unwrap();
    w.write(bytes.slice(..1536 * 1024)).await.unwrap();
    w.flush().await.unwrap();
    for i in 0..3 {
        cluster.node(i).close_container(35).await.unwrap();
    }
    let mut err = w.write(bytes.slice(1536 * 1024..)).await.err();
    if err.is_none() {
        err = w.flush().await.err();
    }
    let err = err.expect("a closed container takes no more of the block");
    assert!(
        matches!(err, DatanodeClientError::WriteFailed { .. }),
        "{err}"
    );
    assert_eq!(w.committed_len(), 1536 * 1024);
    drop(w);
    assert_eq!(
        read_range(&clients, &nodes, id, 0, 1536 * 1024)
            .await
            .unwrap(),
        &bytes[..1536 * 1024]
    );
    for i in 0..3 {
        assert_eq!(usage(&cluster, i, 35), (1536 * 1024, 1));
    }
}
