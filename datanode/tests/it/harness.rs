//! Test harness: a few in-process datanodes, deterministic test data and read helpers.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use datanode_client::{
    BlockWriter, DatanodeClientError, DatanodeClients, WriterOptions, read_block,
};
use futures::StreamExt;
use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_datanode::DatanodeHandle;
use ozone_proto::hdds::{BlockId, DatanodeDetails};
use tempfile::TempDir;

/// A loopback port nothing listens on: heartbeats fail fast and keep retrying.
pub const NO_SCM: &str = "127.0.0.1:1";

pub fn config(dir: &Path, scm: &str) -> OzoneConfig {
    let mut cfg = OzoneConfig::default();
    cfg.set(keys::HDDS_DATANODE_DIR, dir.display().to_string())
        .set(keys::HDDS_CONTAINER_IPC_PORT, "0")
        .set(keys::HDDS_DATANODE_HOSTNAME, "127.0.0.1")
        .set(keys::HDDS_DATANODE_HTTP_ADDRESS, "127.0.0.1:0")
        .set(keys::OZONE_SCM_DATANODE_ADDRESS, scm)
        .set(keys::HDDS_HEARTBEAT_INTERVAL, "100ms");
    cfg
}

/// Datanodes `0..n`, each with its own directory; any can be stopped and restarted.
pub struct Cluster {
    _tmp: TempDir,
    pub dirs: Vec<PathBuf>,
    pub nodes: Vec<Option<DatanodeHandle>>,
    /// Last known details of each node (kept when it is stopped, like SCM's view of a dead node).
    pub details: Vec<DatanodeDetails>,
    scm: String,
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_with_scm(n, NO_SCM).await
    }

    pub async fn start_with_scm(n: usize, scm: &str) -> Cluster {
        ozone_common::telemetry::init("warn");
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            dirs: (0..n).map(|i| tmp.path().join(format!("dn{i}"))).collect(),
            _tmp: tmp,
            nodes: Vec::new(),
            details: Vec::new(),
            scm: scm.to_string(),
        };
        for i in 0..n {
            let h = ozone_datanode::start(config(&c.dirs[i], &c.scm))
                .await
                .unwrap();
            c.details.push(h.details());
            c.nodes.push(Some(h));
        }
        c
    }

    pub fn node(&self, i: usize) -> &DatanodeHandle {
        self.nodes[i].as_ref().unwrap()
    }

    pub async fn stop(&mut self, i: usize) {
        self.nodes[i].take().unwrap().stop().await.unwrap();
    }

    pub async fn restart(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].take() {
            h.stop().await.unwrap();
        }
        let h = ozone_datanode::start(config(&self.dirs[i], &self.scm))
            .await
            .unwrap();
        self.details[i] = h.details();
        self.nodes[i] = Some(h);
    }

    /// Where node `i` keeps the bytes of `block`.
    pub fn block_file(&self, i: usize, block: BlockId) -> PathBuf {
        self.dirs[i]
            .join("containers")
            .join(block.container_id.to_string())
            .join("chunks")
            .join(format!("{}.block", block.local_id))
    }
}

pub fn block_id(container_id: u64, local_id: u64) -> BlockId {
    BlockId {
        container_id,
        local_id,
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Small chunks so that a few MiB make a multi-chunk block.
pub fn options() -> WriterOptions {
    WriterOptions {
        bytes_per_checksum: 16 * 1024,
        chunk_size: 1024 * 1024,
        queue_depth: 2,
    }
}

/// Writes `bytes` as one block in the given piece sizes (the rest in one last piece).
pub async fn write_block(
    clients: &DatanodeClients,
    nodes: Vec<DatanodeDetails>,
    block: BlockId,
    bytes: &[u8],
    pieces: &[usize],
) -> Result<datanode_client::FinishedBlock, DatanodeClientError> {
    let all = Bytes::copy_from_slice(bytes);
    let mut w = BlockWriter::open(clients, block, nodes, options())?;
    let mut at = 0;
    for &p in pieces {
        let end = (at + p).min(all.len());
        w.write(all.slice(at..end)).await?;
        at = end;
    }
    if at < all.len() {
        w.write(all.slice(at..)).await?;
    }
    w.finish_detailed().await
}

/// Reads a range through `read_block`, concatenated.
pub async fn read_range(
    clients: &DatanodeClients,
    nodes: &[DatanodeDetails],
    block: BlockId,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, DatanodeClientError> {
    let mut out = Vec::new();
    let mut stream = Box::pin(read_block(clients, nodes, block, offset, len));
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}
