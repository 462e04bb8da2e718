//! Replicated block writes: one client-streaming `WriteChunk` per replica fed from bounded
//! channels, and `PutBlock` on every replica that accepted every chunk, each time the writer
//! flushes and once at the end.
//!
//! Each chunk's checksums are computed once and the same `Bytes` is handed to every replica's
//! stream (reference counted, never copied). A replica that errors, stalls past the RPC timeout or
//! acknowledges the wrong length is dropped from the write; the write goes on while a majority is
//! left and fails, naming the dropped datanodes, as soon as it is not.
//!
//! [`BlockWriter::start_flush`] commits the block as written so far (Ozone's BlockOutputStream
//! flush): the replicas' streams are closed and every byte acknowledged, then PutBlock with all
//! chunks so far goes to each live replica while the next writes already go to new streams;
//! [`BlockWriter::wait_for_commit`] (Ozone's watchForCommit) waits for the answers, and at most
//! one commit is in flight. The datanode accepts a PutBlock that extends the block's committed
//! chunks while its container is OPEN. [`BlockWriter::committed_len`] is the prefix a majority of
//! the replicas holds durably: after a failure the caller writes the bytes after it elsewhere.
//!
//! Slow is not dead, hung is: each step (a chunk accepted, the stream acknowledged, PutBlock)
//! runs on every live replica at once ([`run_step`]); once a majority has finished it, the
//! others get `ozone.client.write.lag.timeout` more, then are dropped as hung and reported as
//! suspects to the pool (key writers then ask for blocks without them). When all replicas are
//! slow alike, a step waits up to `ozone.client.request.timeout`.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ozone_common::OzoneConfig;
use ozone_proto::datanode::{PutBlockRequest, WriteChunkRequest, WriteChunkResponse};
use ozone_proto::hdds::{BlockData, BlockId, ChunkInfo, DatanodeDetails};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::checksum;
use crate::error::{DatanodeClientError, ReplicaFailure};
use crate::miss::{Misses, ReplicaMiss};
use crate::pool::DatanodeClients;
use ozone_common::config::keys;

/// Writes smaller than this are gathered (copied) into one chunk, so that many tiny writes do not
/// turn into a block with thousands of chunks; larger writes are sent as they are, without a copy.
const COALESCE_BYTES: usize = 256 * 1024;

/// Replicas that must succeed for a write to `replicas` datanodes to count: a strict majority
/// (1 of 1, 2 of 2, 2 of 3).
pub fn write_quorum(replicas: usize) -> usize {
    replicas / 2 + 1
}

/// How a [`BlockWriter`] cuts and checksums data.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Bytes covered by one CRC32C (`ozone.client.bytes.per.checksum`).
    pub bytes_per_checksum: u32,
    /// Largest chunk, i.e. the most bytes in one `WriteChunk` message (`ozone.scm.chunk.size`).
    pub chunk_size: usize,
    /// Messages queued per replica before a write waits for that replica (backpressure).
    pub queue_depth: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            bytes_per_checksum: 16 * 1024,
            chunk_size: 4 * 1024 * 1024,
            queue_depth: 2,
        }
    }
}

impl WriterOptions {
    /// Reads `ozone.client.bytes.per.checksum` and `ozone.scm.chunk.size`.
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, DatanodeClientError> {
        let bpc = cfg.get_bytes(keys::OZONE_CLIENT_BYTES_PER_CHECKSUM)?;
        let chunk = cfg.get_bytes(keys::OZONE_SCM_CHUNK_SIZE)?;
        let options = WriterOptions {
            bytes_per_checksum: u32::try_from(bpc).unwrap_or(u32::MAX),
            chunk_size: usize::try_from(chunk).unwrap_or(usize::MAX),
            ..WriterOptions::default()
        };
        options.validate()?;
        Ok(options)
    }

    fn validate(&self) -> Result<(), DatanodeClientError> {
        if self.bytes_per_checksum == 0
            || self.bytes_per_checksum > checksum::MAX_BYTES_PER_CHECKSUM
        {
            return Err(DatanodeClientError::InvalidArgument(format!(
                "bytes per checksum {} is not in 1..={}",
                self.bytes_per_checksum,
                checksum::MAX_BYTES_PER_CHECKSUM
            )));
        }
        // Leave room for the message's other fields and the checksums.
        let max_chunk = ozone_proto::MAX_MESSAGE_BYTES / 2;
        if self.chunk_size == 0 || self.chunk_size > max_chunk {
            return Err(DatanodeClientError::InvalidArgument(format!(
                "chunk size {} is not in 1..={max_chunk}",
                self.chunk_size
            )));
        }
        if self.queue_depth == 0 {
            return Err(DatanodeClientError::InvalidArgument(
                "queue depth must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Runs one step of a write on several replicas at once: `steps` holds each replica's index and
/// the step's future. Every step may take `timeout`; once `quorum` of them finished with an
/// outcome `ok` accepts, the others get `lag` more (a replica that far behind a majority is
/// hung, not slow). Returns the outcomes of the steps that finished and the indices of those
/// that did not (their futures are dropped, cancelling them).
async fn run_step<F, R>(
    steps: Vec<(usize, F)>,
    quorum: usize,
    timeout: Duration,
    lag: Duration,
    ok: impl Fn(&R) -> bool,
) -> (Vec<(usize, R)>, Vec<usize>)
where
    F: Future<Output = R>,
{
    let mut pending: Vec<usize> = steps.iter().map(|(i, _)| *i).collect();
    let mut running: FuturesUnordered<_> = steps
        .into_iter()
        .map(|(i, f)| async move { (i, f.await) })
        .collect();
    let mut deadline = tokio::time::Instant::now() + timeout;
    let mut finished = Vec::with_capacity(pending.len());
    let mut succeeded = 0;
    while let Ok(Some((i, outcome))) = tokio::time::timeout_at(deadline, running.next()).await {
        pending.retain(|p| *p != i);
        if ok(&outcome) {
            succeeded += 1;
            if succeeded >= quorum {
                deadline = deadline.min(tokio::time::Instant::now() + lag);
            }
        }
        finished.push((i, outcome));
    }
    (finished, pending)
}

/// A block written and committed on a majority of its replicas.
#[derive(Debug, Clone)]
pub struct FinishedBlock {
    /// What the replicas committed: give this to OM.
    pub block: BlockData,
    /// Replicas that failed along the way (the write succeeded without them).
    pub failed: Vec<ReplicaFailure>,
}

type CallResult = Result<WriteChunkResponse, tonic::Status>;

/// A PutBlock sent to the live replicas and not yet waited for.
struct InFlightCommit {
    /// The length it commits.
    size: u64,
    /// Each target replica's index and outcome (the BCSID it answered).
    task: JoinHandle<Vec<(usize, Result<u64, String>)>>,
}

/// Sends one PutBlock and checks the length the replica committed; returns the replica's BCSID.
async fn put_block(
    clients: &DatanodeClients,
    node: &DatanodeDetails,
    request: PutBlockRequest,
    expected: u64,
    timeout: std::time::Duration,
) -> Result<u64, String> {
    let mut client = clients.client(node).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(timeout, client.put_block(request))
        .await
        .map_err(|_| format!("PutBlock got no answer within {timeout:?}"))?
        .map_err(|s| format!("PutBlock: {}", status_text(&s)))?
        .into_inner();
    if resp.committed_length != expected {
        return Err(format!(
            "PutBlock committed {} bytes of {expected}",
            resp.committed_length
        ));
    }
    Ok(resp.bcsid)
}

/// One replica's side of the write.
struct Replica {
    node: DatanodeDetails,
    /// Feeds the replica's WriteChunk stream; `None` before the first write after a flush, and
    /// once closed or failed.
    tx: Option<mpsc::Sender<WriteChunkRequest>>,
    /// The WriteChunk call, which ends when the stream is closed or the datanode gives up.
    call: Option<JoinHandle<CallResult>>,
    failure: Option<String>,
}

impl Replica {
    fn live(&self) -> bool {
        self.failure.is_none()
    }

    /// Opens a WriteChunk stream to the replica (the call runs on its own task).
    fn open_stream(&mut self, clients: &DatanodeClients, queue_depth: usize) -> Result<(), String> {
        let mut client = clients.client(&self.node).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(queue_depth);
        let call = tokio::spawn(async move {
            client
                .write_chunk(ReceiverStream::new(rx))
                .await
                .map(tonic::Response::into_inner)
        });
        self.tx = Some(tx);
        self.call = Some(call);
        Ok(())
    }

    fn fail(&mut self, block_id: BlockId, reason: String) {
        tracing::warn!(block = %block_id, datanode = %self.node.uuid, endpoint = %self.node.endpoint(),
            %reason, "replica dropped from block write");
        self.tx = None;
        if let Some(call) = self.call.take() {
            call.abort();
        }
        self.failure = Some(reason);
    }

    /// Closes the stream and waits for the datanode's answer to it.
    async fn close_stream(&mut self, timeout: std::time::Duration) -> Result<u64, String> {
        self.tx = None;
        let Some(mut call) = self.call.take() else {
            return Err("write stream already gone".into());
        };
        match tokio::time::timeout(timeout, &mut call).await {
            Ok(Ok(Ok(resp))) => Ok(resp.bytes_written),
            Ok(Ok(Err(status))) => Err(status_text(&status)),
            Ok(Err(join)) => Err(format!("write stream task failed: {join}")),
            Err(_) => {
                call.abort();
                Err(format!("no answer to the write stream within {timeout:?}"))
            }
        }
    }
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Streams one block to all replicas of a pipeline. Call [`BlockWriter::write`] with the
/// block's bytes in order, [`BlockWriter::flush`] to commit what was written so far, then
/// [`BlockWriter::finish`] (or [`BlockWriter::finish_detailed`]). Dropping the writer without
/// finishing cancels the streams; only what was flushed is committed.
pub struct BlockWriter {
    clients: DatanodeClients,
    block_id: BlockId,
    options: WriterOptions,
    replicas: Vec<Replica>,
    /// Bytes handed to the replicas so far.
    len: u64,
    /// `len` when the current streams were opened (bytes each must acknowledge: `len - this`).
    stream_start: u64,
    /// The length of the last PutBlock a majority took (0 before any).
    committed: u64,
    /// Whether a PutBlock has succeeded yet.
    put_done: bool,
    /// The commit sent by the last flush, until it is waited for.
    in_flight: Option<InFlightCommit>,
    chunks: Vec<ChunkInfo>,
    /// Small writes gathered into the next chunk.
    pending: BytesMut,
    failed: bool,
    /// Replicas that missed a commit that counted.
    misses: Misses,
    /// The block token OM gave for the block (security on; empty otherwise), sent with every
    /// WriteChunk and PutBlock.
    token: Bytes,
}

impl BlockWriter {
    /// Opens a WriteChunk stream to every node of the pipeline. Connection problems show up as
    /// replica failures on the following writes, not here; streams are opened again on the
    /// first write after each flush.
    pub fn open(
        clients: &DatanodeClients,
        block_id: BlockId,
        nodes: Vec<DatanodeDetails>,
        options: WriterOptions,
    ) -> Result<BlockWriter, DatanodeClientError> {
        options.validate()?;
        if nodes.is_empty() {
            return Err(DatanodeClientError::NoReplicas { block_id });
        }
        let mut replicas = Vec::with_capacity(nodes.len());
        for node in nodes {
            let mut replica = Replica {
                node,
                tx: None,
                call: None,
                failure: None,
            };
            if let Err(reason) = replica.open_stream(clients, options.queue_depth) {
                replica.fail(block_id, reason);
            }
            replicas.push(replica);
        }
        let mut writer = BlockWriter {
            clients: clients.clone(),
            block_id,
            options,
            replicas,
            len: 0,
            stream_start: 0,
            committed: 0,
            put_done: false,
            in_flight: None,
            chunks: Vec::new(),
            pending: BytesMut::new(),
            failed: false,
            misses: Misses::default(),
            token: Bytes::new(),
        };
        writer.check_quorum()?;
        Ok(writer)
    }

    /// Sets the block token the datanodes are shown (before the first write).
    pub fn with_token(mut self, token: impl Into<Bytes>) -> Self {
        self.token = token.into();
        self
    }

    pub fn block_id(&self) -> BlockId {
        self.block_id
    }

    /// Bytes written so far (including bytes gathered but not yet sent).
    pub fn len(&self) -> u64 {
        self.len + self.pending.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes committed by the last successful [`BlockWriter::flush`]: durable on a majority of
    /// the replicas, whatever happens to the write afterwards.
    pub fn committed_len(&self) -> u64 {
        self.committed
    }

    /// The digest OM records of this block's first `length` bytes
    /// ([`checksum::block_digest`] over the chunks this writer cut and checksummed); `None`
    /// when `length` is not the end of a chunk it sent (a committed length always is).
    pub fn block_digest(&self, length: u64) -> Option<Vec<u8>> {
        checksum::block_digest(&self.chunks, length)
    }

    /// Leaves the replicas on datanodes in `uuids` out of the write from the start (they hung
    /// or failed earlier), as long as a majority of the replicas is left; returns how many were
    /// left out.
    pub fn skip_datanodes(&mut self, uuids: &[String], why: &str) -> usize {
        let quorum = write_quorum(self.replicas.len());
        let mut skipped = 0;
        for i in 0..self.replicas.len() {
            let live = self.replicas.iter().filter(|r| r.live()).count();
            let r = &mut self.replicas[i];
            if live > quorum && r.live() && uuids.contains(&r.node.uuid) {
                r.fail(self.block_id, why.to_string());
                skipped += 1;
            }
        }
        skipped
    }

    /// Replicas dropped so far.
    pub fn failed_replicas(&self) -> Vec<ReplicaFailure> {
        self.replicas
            .iter()
            .filter_map(|r| {
                r.failure.as_ref().map(|reason| ReplicaFailure {
                    uuid: r.node.uuid.clone(),
                    endpoint: r.node.endpoint(),
                    reason: reason.clone(),
                })
            })
            .collect()
    }

    /// Appends `data` to the block. Waits while the slowest live replica is `queue_depth`
    /// messages behind. Fails once fewer than a majority of replicas are left.
    pub async fn write(&mut self, data: Bytes) -> Result<(), DatanodeClientError> {
        self.settle_finished_commit().await?;
        self.check_quorum()?;
        if data.len() >= COALESCE_BYTES {
            self.flush_pending().await?;
            self.send_chunks(data).await
        } else {
            self.pending.extend_from_slice(&data);
            if self.pending.len() >= COALESCE_BYTES {
                self.flush_pending().await?;
            }
            Ok(())
        }
    }

    /// Closes the streams, commits the block with `PutBlock` on every replica that took all of
    /// it, and returns what was committed. Failed replicas (if a majority still succeeded) are
    /// logged; use [`BlockWriter::finish_detailed`] to get them.
    pub async fn finish(self) -> Result<BlockData, DatanodeClientError> {
        Ok(self.finish_detailed().await?.block)
    }

    /// Like [`BlockWriter::finish`], also returning the replicas that failed.
    pub async fn finish_detailed(mut self) -> Result<FinishedBlock, DatanodeClientError> {
        self.flush().await?;
        Ok(FinishedBlock {
            block: self.block_data(),
            failed: self.failed_replicas(),
        })
    }

    /// What a PutBlock of everything sent so far says.
    fn block_data(&self) -> BlockData {
        BlockData {
            block_id: Some(self.block_id),
            chunks: self.chunks.clone(),
            size: self.len,
        }
    }

    /// Commits everything written so far and waits for it: [`BlockWriter::start_flush`], then
    /// [`BlockWriter::wait_for_commit`]; returns the committed length. Does nothing when nothing
    /// was written since the last flush. On an error [`BlockWriter::committed_len`] still says
    /// what an earlier flush committed.
    pub async fn flush(&mut self) -> Result<u64, DatanodeClientError> {
        self.start_flush().await?;
        self.wait_for_commit().await
    }

    /// Starts committing everything written so far: waits for the previous commit, closes the
    /// streams and makes every live replica acknowledge every byte, then sends PutBlock with all
    /// the chunks so far to each of them without waiting for the answers; the next write opens
    /// new streams. At most one commit is in flight: see [`BlockWriter::wait_for_commit`].
    pub async fn start_flush(&mut self) -> Result<(), DatanodeClientError> {
        self.flush_pending().await?;
        self.wait_for_commit().await?;
        if self.put_done && self.len == self.committed {
            return Ok(());
        }
        let timeout = self.clients.rpc_timeout();
        let expected = self.len;
        let in_stream = self.len - self.stream_start;
        let block_id = self.block_id;

        let quorum = write_quorum(self.replicas.len());
        let lag = self.clients.timeouts().write_lag;
        // 1. Every live replica must acknowledge all it was sent since the last flush.
        let closes = self
            .replicas
            .iter_mut()
            .enumerate()
            .filter(|(_, r)| r.live())
            .map(|(i, r)| {
                (i, async move {
                    if r.call.is_none() {
                        if in_stream != 0 {
                            r.fail(block_id, "write stream already gone".into());
                            return false;
                        }
                        return true;
                    }
                    match r.close_stream(timeout).await {
                        Ok(n) if n == in_stream => true,
                        Ok(n) => {
                            r.fail(
                                block_id,
                                format!(
                                    "acknowledged {n} bytes of {in_stream} written since the last flush"
                                ),
                            );
                            false
                        }
                        Err(reason) => {
                            r.fail(block_id, reason);
                            false
                        }
                    }
                })
            })
            .collect();
        let (_, lagging) = run_step(closes, quorum, timeout, lag, |ok: &bool| *ok).await;
        self.drop_lagging(&lagging, "acknowledged the write stream");
        self.stream_start = expected;
        self.check_quorum()?;

        // 2. Commit on every replica that has all the bytes.
        let block = self.block_data();
        let targets: Vec<(usize, DatanodeDetails)> = self
            .replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.live())
            .map(|(i, r)| (i, r.node.clone()))
            .collect();
        let clients = self.clients.clone();
        let quorum = write_quorum(self.replicas.len());
        let lag = self.clients.timeouts().write_lag;
        let token = self.token.clone();
        let task = tokio::spawn(async move {
            let puts = targets
                .iter()
                .map(|(i, node)| {
                    let request = PutBlockRequest {
                        block: Some(block.clone()),
                        token: token.clone(),
                    };
                    let clients = clients.clone();
                    (*i, async move {
                        put_block(&clients, node, request, expected, timeout).await
                    })
                })
                .collect();
            let (mut results, lagging) =
                run_step(puts, quorum, timeout, lag, |r: &Result<u64, String>| {
                    r.is_ok()
                })
                .await;
            for i in lagging {
                if let Some((_, node)) = targets.iter().find(|(t, _)| *t == i) {
                    clients.suspect(&node.uuid);
                }
                results.push((
                    i,
                    Err(format!(
                        "PutBlock not answered {lag:?} after a majority of the replicas took it"
                    )),
                ));
            }
            results
        });
        self.in_flight = Some(InFlightCommit {
            size: expected,
            task,
        });
        Ok(())
    }

    /// Waits for the commit [`BlockWriter::start_flush`] sent, if any; returns the committed
    /// length. The commit counts when a majority of the replicas took the PutBlock (replicas
    /// dropped from the streams since then included: what they committed is durable); the
    /// replicas that refused it are dropped. Fails, after recording a commit that counted, when
    /// fewer than a majority of the replicas are left.
    pub async fn wait_for_commit(&mut self) -> Result<u64, DatanodeClientError> {
        if let Some(commit) = self.in_flight.take() {
            let results = match commit.task.await {
                Ok(results) => results,
                Err(join) => {
                    let reason = format!("PutBlock task failed: {join}");
                    (0..self.replicas.len())
                        .map(|i| (i, Err(reason.clone())))
                        .collect()
                }
            };
            let took = results.iter().filter(|(_, r)| r.is_ok()).count();
            for (i, result) in results.iter().cloned() {
                if let (Err(reason), Some(r)) = (result, self.replicas.get_mut(i))
                    && r.live()
                {
                    r.fail(self.block_id, reason);
                }
            }
            if took >= write_quorum(self.replicas.len()) {
                self.committed = commit.size;
                self.put_done = true;
                self.note_misses(&results);
            }
        }
        self.check_quorum()?;
        Ok(self.committed)
    }

    /// After a commit that counted: notes every replica that did not take it (dropped before,
    /// or refusing the PutBlock) as having missed it, with the highest BCSID the others
    /// answered.
    fn note_misses(&mut self, results: &[(usize, Result<u64, String>)]) {
        let bcsid = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().copied())
            .max()
            .unwrap_or(0);
        for (i, replica) in self.replicas.iter().enumerate() {
            let took = results.iter().any(|(j, r)| *j == i && r.is_ok());
            if !took {
                self.misses
                    .note(self.block_id.container_id, &replica.node.uuid, bcsid);
            }
        }
    }

    /// Replicas that missed a commit that counted, since the last call (each replica once per
    /// block): tell SCM (`ReportReplicaMiss`) so that it replaces them.
    pub fn take_misses(&mut self) -> Vec<ReplicaMiss> {
        self.misses.take()
    }

    /// Settles a commit in flight whose answers are all in, without waiting.
    async fn settle_finished_commit(&mut self) -> Result<(), DatanodeClientError> {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|c| c.task.is_finished())
        {
            self.wait_for_commit().await?;
        }
        Ok(())
    }

    async fn flush_pending(&mut self) -> Result<(), DatanodeClientError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let data = self.pending.split().freeze();
        self.send_chunks(data).await
    }

    /// Cuts `data` into chunks of at most `chunk_size`, checksums each once and sends it to
    /// every live replica.
    async fn send_chunks(&mut self, data: Bytes) -> Result<(), DatanodeClientError> {
        let mut start = 0;
        while start < data.len() {
            let end = data.len().min(start + self.options.chunk_size);
            let piece = data.slice(start..end);
            let chunk = ChunkInfo {
                offset: self.len,
                len: piece.len() as u64,
                checksum: Some(checksum::compute(&piece, self.options.bytes_per_checksum)),
            };
            let request = WriteChunkRequest {
                block_id: Some(self.block_id),
                chunk: Some(chunk.clone()),
                data: piece,
                token: self.token.clone(),
            };
            self.fan_out(request).await?;
            self.len += chunk.len;
            self.chunks.push(chunk);
            start = end;
        }
        Ok(())
    }

    async fn fan_out(&mut self, request: WriteChunkRequest) -> Result<(), DatanodeClientError> {
        let timeout = self.clients.rpc_timeout();
        let block_id = self.block_id;
        let queue_depth = self.options.queue_depth;
        let quorum = write_quorum(self.replicas.len());
        let lag = self.clients.timeouts().write_lag;
        let clients = &self.clients;
        let sends = self
            .replicas
            .iter_mut()
            .enumerate()
            .filter(|(_, r)| r.live())
            .map(|(i, r)| {
                let request = request.clone();
                (i, async move {
                    if r.tx.is_none()
                        && r.call.is_none()
                        && let Err(reason) = r.open_stream(clients, queue_depth)
                    {
                        r.fail(block_id, reason);
                        return false;
                    }
                    let Some(tx) = r.tx.clone() else {
                        r.fail(block_id, "write stream closed".into());
                        return false;
                    };
                    match tokio::time::timeout(timeout, tx.send(request)).await {
                        Ok(Ok(())) => true,
                        // The call ended (the datanode answered early, so with an error): get why.
                        Ok(Err(_)) => {
                            let reason = match r.close_stream(timeout).await {
                                Ok(n) => format!("write stream ended early after {n} bytes"),
                                Err(reason) => reason,
                            };
                            r.fail(block_id, reason);
                            false
                        }
                        Err(_) => {
                            r.fail(
                                block_id,
                                format!("replica accepted no data for {timeout:?}"),
                            );
                            false
                        }
                    }
                })
            })
            .collect();
        let (_, lagging) = run_step(sends, quorum, timeout, lag, |ok: &bool| *ok).await;
        self.drop_lagging(&lagging, "accepted the chunk");
        self.check_quorum()
    }

    /// Drops the replicas at `lagging` (a majority finished a step they did not) as hung.
    fn drop_lagging(&mut self, lagging: &[usize], step: &str) {
        let t = self.clients.timeouts();
        for &i in lagging {
            if let Some(r) = self.replicas.get_mut(i)
                && r.live()
            {
                self.clients.suspect(&r.node.uuid);
                r.fail(
                    self.block_id,
                    format!(
                        "hung: not {step} {:?} after a majority of the replicas (or within {:?})",
                        t.write_lag, t.request
                    ),
                );
            }
        }
    }

    fn check_quorum(&mut self) -> Result<(), DatanodeClientError> {
        let live = self.replicas.iter().filter(|r| r.live()).count();
        if live >= write_quorum(self.replicas.len()) && !self.failed {
            return Ok(());
        }
        if !self.failed {
            self.failed = true;
            // Stop the survivors too: without a majority nothing of this block will be committed.
            for r in &mut self.replicas {
                r.tx = None;
                if let Some(call) = r.call.take() {
                    call.abort();
                }
            }
        }
        Err(DatanodeClientError::WriteFailed {
            block_id: self.block_id,
            replicas: self.replicas.len(),
            failed: self.failed_replicas(),
        })
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        if let Some(commit) = self.in_flight.take() {
            commit.task.abort();
        }
        for r in &mut self.replicas {
            r.tx = None;
            if let Some(call) = r.call.take() {
                call.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(write_quorum(1), 1);
        assert_eq!(write_quorum(2), 2);
        assert_eq!(write_quorum(3), 2);
    }

    #[test]
    fn options_from_config_use_ozone_keys() {
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_CLIENT_BYTES_PER_CHECKSUM, "8KB");
        cfg.set(keys::OZONE_SCM_CHUNK_SIZE, "1MB");
        let o = WriterOptions::from_config(&cfg).expect("valid options");
        assert_eq!(o.bytes_per_checksum, 8192);
        assert_eq!(o.chunk_size, 1 << 20);
        cfg.set(keys::OZONE_CLIENT_BYTES_PER_CHECKSUM, "0");
        assert!(WriterOptions::from_config(&cfg).is_err());
    }

    #[tokio::test]
    async fn a_pipeline_without_reachable_majority_fails_naming_the_nodes() {
        let clients = DatanodeClients::with_timeouts(
            std::time::Duration::from_millis(500),
            std::time::Duration::from_secs(2),
        );
        let node = |uuid: &str, port: u32| DatanodeDetails {
            uuid: uuid.into(),
            host: "127.0.0.1".into(),
            port,
            http_port: 0,
        };
        // Port 1 on loopback refuses connections.
        let block_id = BlockId {
            container_id: 1,
            local_id: 1,
        };
        let mut w = BlockWriter::open(
            &clients,
            block_id,
            vec![node("a", 1), node("b", 1)],
            WriterOptions::default(),
        )
        .expect("open does not connect");
        let mut result = Ok(());
        for _ in 0..8 {
            result = w.write(Bytes::from(vec![1u8; 300_000])).await;
            if result.is_err() {
                break;
            }
        }
        let err = match result {
            Err(e) => e,
            Ok(()) => w.finish().await.expect_err("nothing is reachable"),
        };
        let mut failed = err.failed_datanodes();
        failed.sort();
        assert_eq!(failed, vec!["a".to_string(), "b".to_string()], "{err}");
    }
}
