//! The replication supervisor: carries out SCM's ReplicateContainer commands by pulling the
//! closed container from one of the source datanodes over `CopyContainer` (a server stream)
//! and importing it. A tokio task fed by an unbounded queue; at most
//! `hdds.datanode.replication.streams.limit` copies run at once, and a container already queued
//! or being copied is not queued twice.
//!
//! Every byte is verified on arrival against the CRC32C checksums of the block metadata that
//! came with it (the metadata's own checksums, not those riding with the piece), and each
//! block must arrive whole and in order; the container is built aside and appears (CLOSED)
//! only once all of it is on disk and synced. A failed source is followed by the next one.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datanode_client::checksum::{self, ChecksumFault};
use ozone_proto::datanode::CopyContainerRequest;
use ozone_proto::datanode::copy_container_response::Item;
use ozone_proto::hdds::{BlockData, DatanodeDetails};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::spawn_blocking;

use crate::block;
use crate::container::{Container, Import};
use crate::error::DatanodeError;
use crate::node::{Datanode, ReplicateTask};

/// Runs until `shutdown` turns true; copies already started finish on their own.
pub(crate) async fn run(
    node: Arc<Datanode>,
    mut tasks: mpsc::UnboundedReceiver<ReplicateTask>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(node.config.replication_streams));
    let queued: Arc<Mutex<HashSet<u64>>> = Arc::default();
    loop {
        let task = tokio::select! {
            t = tasks.recv() => match t {
                Some(t) => t,
                None => break,
            },
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        let id = task.container_id;
        if !queued.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            tracing::debug!(
                container = id,
                "replication of this container already queued"
            );
            continue;
        }
        let (node, limit, queued) = (node.clone(), limit.clone(), queued.clone());
        tokio::spawn(async move {
            let Ok(_permit) = limit.acquire_owned().await else {
                return;
            };
            replicate(&node, &task).await;
            queued.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
    }
    tracing::debug!("replication supervisor stopped");
}

async fn replicate(node: &Arc<Datanode>, task: &ReplicateTask) {
    let id = task.container_id;
    if node.containers.get(id).is_ok() {
        tracing::info!(
            container = id,
            "asked to copy a container this datanode already has"
        );
        return;
    }
    for source in &task.sources {
        if source.uuid == node.details.uuid {
            continue;
        }
        let started = Instant::now();
        match copy_from(node, id, source, &task.token).await {
            Ok(c) => {
                node.metrics
                    .observe("ReplicateContainer", true, started.elapsed());
                tracing::info!(container = id, source = %source.uuid, blocks = c.block_count(),
                    bytes = c.used_bytes(), elapsed = ?started.elapsed(), "container copied");
                return;
            }
            Err(e) => {
                node.metrics
                    .observe("ReplicateContainer", false, started.elapsed());
                tracing::warn!(container = id, source = %source.uuid, error = %e,
                    "copying container failed; trying the next source");
            }
        }
    }
    tracing::error!(
        container = id,
        sources = task.sources.len(),
        "copying container failed from every source; SCM will ask again"
    );
}

/// The block being received.
struct Receiving {
    block: BlockData,
    pieces: Vec<block::Piece>,
    next: usize,
    file: Option<Arc<std::fs::File>>,
}

fn copy_err(id: u64, message: impl Into<String>) -> DatanodeError {
    DatanodeError::Copy {
        id,
        message: message.into(),
    }
}

async fn copy_from(
    node: &Arc<Datanode>,
    id: u64,
    source: &DatanodeDetails,
    token: &[u8],
) -> Result<Arc<Container>, DatanodeError> {
    let timeout = node.clients.rpc_timeout();
    let mut client = node
        .clients
        .client(source)
        .map_err(|e| copy_err(id, e.to_string()))?;
    let call = client.copy_container(CopyContainerRequest {
        container_id: id,
        token: bytes::Bytes::copy_from_slice(token),
    });
    let mut stream = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| copy_err(id, format!("no answer within {timeout:?}")))?
        .map_err(|s| copy_err(id, format!("{:?}: {}", s.code(), s.message())))?
        .into_inner();
    let mut import = node.containers.begin_import(id).await?;
    let mut current: Option<Receiving> = None;
    loop {
        let msg = match tokio::time::timeout(timeout, stream.message()).await {
            Err(_) => return Err(copy_err(id, format!("stream stalled for {timeout:?}"))),
            Ok(Err(s)) => {
                return Err(copy_err(id, format!("{:?}: {}", s.code(), s.message())));
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(m))) => m,
        };
        match msg.item {
            Some(Item::Block(b)) => {
                if let Some(done) = current.take() {
                    finish_block(&mut import, done).await?;
                }
                current = Some(start_block(&import, b).await?);
            }
            Some(Item::Bcsid(bcsid)) => import.set_bcsid(bcsid),
            Some(Item::Piece(p)) => {
                let cur = current
                    .as_mut()
                    .ok_or_else(|| copy_err(id, "data before any block"))?;
                let expected =
                    cur.pieces.get(cur.next).cloned().ok_or_else(|| {
                        copy_err(id, "more data than the block's metadata describes")
                    })?;
                if p.offset != expected.offset || p.data.len() as u64 != expected.len {
                    return Err(copy_err(
                        id,
                        format!(
                            "piece at {}+{} where {}+{} was expected",
                            p.offset,
                            p.data.len(),
                            expected.offset,
                            expected.len
                        ),
                    ));
                }
                let file = cur
                    .file
                    .clone()
                    .ok_or_else(|| copy_err(id, "data for an empty block"))?;
                let block_id = cur.block.block_id.unwrap_or_default();
                spawn_blocking(move || {
                    match checksum::verify(&p.data, &expected.checksum) {
                        Ok(()) => {}
                        Err(ChecksumFault::Mismatch { offset }) => {
                            return Err(DatanodeError::ChecksumMismatch {
                                block_id,
                                offset: expected.offset + offset,
                            });
                        }
                        Err(fault @ ChecksumFault::Malformed(_)) => {
                            return Err(DatanodeError::DataLoss {
                                block_id,
                                message: fault.to_string(),
                            });
                        }
                    }
                    file.write_all_at(&p.data, p.offset).map_err(|e| {
                        DatanodeError::io(format!("writing an imported piece of {block_id}"), e)
                    })
                })
                .await??;
                cur.next += 1;
            }
            None => return Err(copy_err(id, "empty stream message")),
        }
    }
    if let Some(done) = current.take() {
        finish_block(&mut import, done).await?;
    }
    node.containers.finish_import(import).await
}

async fn start_block(import: &Import, b: BlockData) -> Result<Receiving, DatanodeError> {
    let id = import.id();
    let block_id = block::validate(&b)?;
    if block_id.container_id != id {
        return Err(copy_err(
            id,
            format!("the source sent block {block_id} of another container"),
        ));
    }
    let pieces = block::plan_read(&b, 0, b.size)?;
    let file = if b.size > 0 {
        Some(Arc::new(import.create_block_file(block_id.local_id)?))
    } else {
        None
    };
    Ok(Receiving {
        block: b,
        pieces,
        next: 0,
        file,
    })
}

async fn finish_block(import: &mut Import, done: Receiving) -> Result<(), DatanodeError> {
    if done.next != done.pieces.len() {
        return Err(copy_err(
            import.id(),
            format!(
                "block {} ended after {} of {} pieces",
                done.block.block_id.unwrap_or_default(),
                done.next,
                done.pieces.len()
            ),
        ));
    }
    if let Some(file) = done.file {
        spawn_blocking(move || file.sync_all())
            .await?
            .map_err(|e| DatanodeError::io("syncing an imported block", e))?;
    }
    import.add_block(done.block, None)
}
