//! The `DatanodeService` gRPC handlers: WriteChunk, PutBlock, GetBlock, ReadChunk, and
//! CopyContainer (the source side of replication).
//!
//! Handlers turn protobuf messages into checked values, then do the disk work on the blocking
//! pool with positional I/O, so requests for different blocks (and containers) run in parallel.
//! Memory per request is bounded: a write holds one message at a time, a read at most a few
//! pieces of [`crate::block::READ_PIECE_BYTES`].

use std::fs::File;
use std::sync::Arc;

use datanode_client::checksum::{self, ChecksumFault};
use ozone_proto::datanode::copy_container_response::Item;
use ozone_proto::datanode::datanode_service_server::DatanodeService;
use ozone_proto::datanode::{
    CopyContainerRequest, CopyContainerResponse, GetBlockRequest, GetBlockResponse,
    PutBlockRequest, PutBlockResponse, ReadChunkRequest, ReadChunkResponse, WriteChunkRequest,
    WriteChunkResponse,
};
use ozone_proto::hdds::BlockId;
use tokio::sync::mpsc;
use tokio::task::spawn_blocking;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use ozone_common::token::Modes;

use crate::block;
use crate::container::{Container, ContainerState};
use crate::error::DatanodeError;
use crate::node::Datanode;

/// Responses a ReadChunk may read ahead of the client.
const READ_AHEAD: usize = 2;

pub(crate) struct DatanodeGrpc {
    pub(crate) node: Arc<Datanode>,
}

impl DatanodeGrpc {
    /// Logs a failed request once, at a level matching whose fault it is, and converts it.
    fn reject(&self, op: &'static str, e: DatanodeError) -> Status {
        if e.is_server_side() {
            tracing::warn!(op, error = %e, "request failed");
        } else {
            tracing::debug!(op, error = %e, "request refused");
        }
        e.into()
    }

    async fn write(
        &self,
        mut stream: Streaming<WriteChunkRequest>,
    ) -> Result<WriteChunkResponse, DatanodeError> {
        // Set by the first message: the block, its container and its open file.
        let mut target: Option<(BlockId, Arc<Container>, Arc<File>)> = None;
        let mut next_offset = 0u64;
        let mut written = 0u64;
        while let Some(msg) = stream
            .message()
            .await
            .map_err(|s| DatanodeError::Stream(Box::new(s)))?
        {
            let block_id = msg.block_id.ok_or_else(|| {
                DatanodeError::InvalidArgument("WriteChunk without block_id".into())
            })?;
            let chunk = msg
                .chunk
                .ok_or_else(|| DatanodeError::InvalidArgument("WriteChunk without chunk".into()))?;
            if chunk.len != msg.data.len() as u64 {
                return Err(DatanodeError::InvalidArgument(format!(
                    "chunk at {} says {} bytes but carries {}",
                    chunk.offset,
                    chunk.len,
                    msg.data.len()
                )));
            }
            let cs = chunk.checksum.ok_or_else(|| {
                DatanodeError::InvalidArgument(format!(
                    "chunk at {} has no checksums",
                    chunk.offset
                ))
            })?;
            let (container, file) = match &target {
                Some((id, container, file)) => {
                    if *id != block_id {
                        return Err(DatanodeError::InvalidArgument(format!(
                            "one WriteChunk stream names blocks {id} and {block_id}"
                        )));
                    }
                    if chunk.offset < next_offset {
                        return Err(DatanodeError::InvalidArgument(format!(
                            "chunk at {} overlaps the previous one ending at {next_offset}",
                            chunk.offset
                        )));
                    }
                    (container.clone(), file.clone())
                }
                None => {
                    // The stream's first message carries the block token.
                    self.node.check_block_token(
                        "WriteChunk",
                        &msg.token,
                        &block_id,
                        Modes::WRITE,
                    )?;
                    let container = self
                        .node
                        .containers
                        .get_or_create(block_id.container_id)
                        .await?;
                    let c = container.clone();
                    // Offsets inside a committed block's length are refused by write_chunk.
                    let file = spawn_blocking(move || {
                        c.check_writable(block_id.local_id)?;
                        c.open_block_for_write(block_id.local_id)
                    })
                    .await??;
                    let file = Arc::new(file);
                    target = Some((block_id, container.clone(), file.clone()));
                    (container, file)
                }
            };
            chunk
                .offset
                .checked_add(chunk.len)
                .ok_or_else(|| DatanodeError::InvalidArgument("chunk end overflows".into()))?;
            let data = msg.data;
            let offset = chunk.offset;
            spawn_blocking(move || {
                match checksum::verify(&data, &cs) {
                    Ok(()) => {}
                    Err(ChecksumFault::Mismatch { offset: rel }) => {
                        return Err(DatanodeError::ChecksumMismatch {
                            block_id,
                            offset: offset + rel,
                        });
                    }
                    Err(fault @ ChecksumFault::Malformed(_)) => {
                        return Err(DatanodeError::InvalidArgument(format!(
                            "chunk at {offset}: {fault}"
                        )));
                    }
                }
                container.write_chunk(block_id.local_id, &file, offset, &data)
            })
            .await??;
            next_offset = chunk.offset + chunk.len;
            written += chunk.len;
        }
        Ok(WriteChunkResponse {
            bytes_written: written,
        })
    }

    async fn put(&self, request: PutBlockRequest) -> Result<PutBlockResponse, DatanodeError> {
        let block = request
            .block
            .ok_or_else(|| DatanodeError::InvalidArgument("PutBlock without block".into()))?;
        let block_id = block::validate(&block)?;
        self.node
            .check_block_token("PutBlock", &request.token, &block_id, Modes::WRITE)?;
        let container = self
            .node
            .containers
            .get_or_create(block_id.container_id)
            .await?;
        let size = block.size;
        let bcsid = spawn_blocking(move || container.commit_block(&block, block_id)).await??;
        tracing::debug!(block = %block_id, size, bcsid, "committed block");
        Ok(PutBlockResponse {
            committed_length: size,
            bcsid,
        })
    }

    async fn get(&self, request: GetBlockRequest) -> Result<GetBlockResponse, DatanodeError> {
        let block_id = request
            .block_id
            .ok_or_else(|| DatanodeError::InvalidArgument("GetBlock without block_id".into()))?;
        self.node
            .check_block_token("GetBlock", &request.token, &block_id, Modes::READ)?;
        let container = self.node.containers.get(block_id.container_id)?;
        let block = spawn_blocking(move || container.get_block(block_id.local_id))
            .await??
            .ok_or(DatanodeError::BlockNotFound(block_id))?;
        Ok(GetBlockResponse { block: Some(block) })
    }

    /// Everything a read needs before streaming: the plan and the open file.
    async fn prepare_read(
        &self,
        request: ReadChunkRequest,
    ) -> Result<(BlockId, Vec<block::Piece>, Arc<File>), DatanodeError> {
        let block_id = request
            .block_id
            .ok_or_else(|| DatanodeError::InvalidArgument("ReadChunk without block_id".into()))?;
        self.node
            .check_block_token("ReadChunk", &request.token, &block_id, Modes::READ)?;
        let container = self.node.containers.get(block_id.container_id)?;
        let (offset, length) = (request.offset, request.length);
        // An UNHEALTHY replica is still read (a reader's last resort): every piece is verified
        // against its stored checksums, so only its corrupt blocks fail.
        spawn_blocking(move || {
            let block = container
                .get_block(block_id.local_id)?
                .ok_or(DatanodeError::BlockNotFound(block_id))?;
            let pieces = block::plan_read(&block, offset, length)?;
            let file = container.open_block_for_read(block_id.local_id)?;
            Ok((block_id, pieces, Arc::new(file)))
        })
        .await?
    }
}

#[tonic::async_trait]
impl DatanodeService for DatanodeGrpc {
    async fn write_chunk(
        &self,
        request: Request<Streaming<WriteChunkRequest>>,
    ) -> Result<Response<WriteChunkResponse>, Status> {
        let mut timer = self.node.metrics.timer("WriteChunk");
        match self.write(request.into_inner()).await {
            Ok(resp) => {
                timer.success();
                Ok(Response::new(resp))
            }
            Err(e) => Err(self.reject("WriteChunk", e)),
        }
    }

    async fn put_block(
        &self,
        request: Request<PutBlockRequest>,
    ) -> Result<Response<PutBlockResponse>, Status> {
        let r = self
            .node
            .metrics
            .time("PutBlock", self.put(request.into_inner()))
            .await;
        r.map(Response::new).map_err(|e| self.reject("PutBlock", e))
    }

    async fn get_block(
        &self,
        request: Request<GetBlockRequest>,
    ) -> Result<Response<GetBlockResponse>, Status> {
        let r = self
            .node
            .metrics
            .time("GetBlock", self.get(request.into_inner()))
            .await;
        r.map(Response::new).map_err(|e| self.reject("GetBlock", e))
    }

    type ReadChunkStream = ReceiverStream<Result<ReadChunkResponse, Status>>;

    async fn read_chunk(
        &self,
        request: Request<ReadChunkRequest>,
    ) -> Result<Response<Self::ReadChunkStream>, Status> {
        let mut timer = self.node.metrics.timer("ReadChunk");
        let (block_id, pieces, file) = match self.prepare_read(request.into_inner()).await {
            Ok(prepared) => prepared,
            Err(e) => return Err(self.reject("ReadChunk", e)),
        };
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let node = self.node.clone();
        tokio::spawn(async move {
            for piece in pieces {
                let file = file.clone();
                let result =
                    match spawn_blocking(move || block::read_piece(&file, block_id, piece)).await {
                        Ok(r) => r,
                        Err(join) => Err(join.into()),
                    };
                match result {
                    Ok(resp) => {
                        if tx.send(Ok(resp)).await.is_err() {
                            tracing::debug!(block = %block_id, "reader went away");
                            return;
                        }
                    }
                    Err(e) => {
                        if e.is_server_side() {
                            tracing::error!(block = %block_id, error = %e, "read of a committed block failed");
                        }
                        if matches!(
                            e,
                            DatanodeError::ChecksumMismatch { .. } | DatanodeError::DataLoss { .. }
                        ) {
                            node.request_scrub(block_id.container_id);
                        }
                        // The client may already be gone; nothing more to do then.
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
            }
            timer.success();
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type CopyContainerStream = ReceiverStream<Result<CopyContainerResponse, Status>>;

    async fn copy_container(
        &self,
        request: Request<CopyContainerRequest>,
    ) -> Result<Response<Self::CopyContainerStream>, Status> {
        let mut timer = self.node.metrics.timer("CopyContainer");
        let request = request.into_inner();
        let id = request.container_id;
        let prepared = async {
            self.node
                .check_container_token("CopyContainer", &request.token, id)?;
            let container = self.node.containers.get(id)?;
            if container.state() != ContainerState::Closed {
                return Err(DatanodeError::Copy {
                    id,
                    message: format!("the replica here is {}, not CLOSED", container.state()),
                });
            }
            let c = container.clone();
            let blocks = spawn_blocking(move || c.blocks()).await??;
            Ok((container, blocks))
        }
        .await;
        let (container, blocks) = match prepared {
            Ok(p) => p,
            Err(e) => return Err(self.reject("CopyContainer", e)),
        };
        tracing::info!(
            container = id,
            blocks = blocks.len(),
            "sending container to another datanode"
        );
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let node = self.node.clone();
        tokio::spawn(async move {
            match send_container(&container, blocks, &tx).await {
                Ok(()) => timer.success(),
                Err(e) => {
                    tracing::warn!(container = id, error = %e, "sending container failed");
                    if matches!(
                        e,
                        DatanodeError::ChecksumMismatch { .. } | DatanodeError::DataLoss { .. }
                    ) {
                        node.request_scrub(id);
                    }
                    // The receiver may be gone already.
                    let _ = tx.send(Err(e.into())).await;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Streams the container's BCSID, then every block: its metadata, then its verified pieces.
/// Stops quietly when the receiver goes away.
async fn send_container(
    container: &Arc<Container>,
    blocks: Vec<ozone_proto::hdds::BlockData>,
    tx: &mpsc::Sender<Result<CopyContainerResponse, Status>>,
) -> Result<(), DatanodeError> {
    // CLOSED: the BCSID no longer changes.
    let first = CopyContainerResponse {
        item: Some(Item::Bcsid(container.bcsid())),
    };
    if tx.send(Ok(first)).await.is_err() {
        return Ok(());
    }
    for b in blocks {
        let block_id = b.block_id.unwrap_or_default();
        let pieces = block::plan_read(&b, 0, b.size)?;
        let header = CopyContainerResponse {
            item: Some(Item::Block(b)),
        };
        if tx.send(Ok(header)).await.is_err() {
            return Ok(());
        }
        if pieces.is_empty() {
            continue;
        }
        let c = container.clone();
        let file =
            Arc::new(spawn_blocking(move || c.open_block_for_read(block_id.local_id)).await??);
        for piece in pieces {
            let f = file.clone();
            let resp = spawn_blocking(move || block::read_piece(&f, block_id, piece)).await??;
            let msg = CopyContainerResponse {
                item: Some(Item::Piece(resp)),
            };
            if tx.send(Ok(msg)).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
