//! Writing a key: blocks from OM, bytes to every replica of each block, committed as they go,
//! continued on a new block when a block's container closes or its replicas fail.
//!
//! This is Ozone's KeyOutputStream/BlockOutputStream scheme. Every
//! [`WriteSettings::flush_size`] bytes (`ozone.client.stream.buffer.flush.size`) the writer
//! flushes the current block: every replica acknowledges every byte sent and PutBlock commits
//! the chunks so far on each of them (a majority must take it). The PutBlock is answered while
//! the next bytes are sent, one at a time, when [`WriteSettings::buffer_max`]
//! (`ozone.client.stream.buffer.max.size`) has room for two flushes. The writer holds only the
//! bytes written since the last commit it knows of (shared `Bytes`, no copies; at most
//! `buffer_max`), so its memory per upload is bounded whatever the block size.
//!
//! When a write or flush fails (no majority left: datanodes died, or the container was closed
//! under the write, e.g. because it filled up) the block keeps the length of its last successful
//! flush, which a majority holds durably: the key records the block with that length (a block
//! with nothing committed is left out). The held bytes go to a new block that OM asks SCM for,
//! excluding the datanodes that failed for reasons other than a closed container, and the key
//! continues there. Nothing is ever reported written that is not on a majority of some block's
//! replicas, and the key's locations cover its bytes exactly, in order.
//!
//! Like Ozone's ExcludeList, the writer remembers the datanodes that failed or hung during the
//! key (and those the datanode pool suspects of hanging lately): a next block whose pipeline
//! holds one is swapped for a new block OM allocates without them; when SCM has no such
//! pipeline, the block is written without the ones that failed in this key (a majority left),
//! so a hung datanode costs one `ozone.client.write.lag.timeout`, not one per block.
//!
//! Each block recorded carries the digest of the chunk checksums the writer computed
//! (`KeyLocation.block_checksum`), which OM keeps and readers check replicas against.
//!
//! A replica that missed a commit which counted (the block is on the others only) is reported
//! to SCM at once (`ReportReplicaMiss`, when the writer was given SCM with
//! [`KeyWriter::with_scm`]): SCM closes the container and has that replica replaced by a copy
//! of a complete one.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use datanode_client::{
    BlockWriter, DatanodeClientError, DatanodeClients, ReplicaFailure, WriterOptions,
};
use om_client::OmClient;
use ozone_proto::om::{AllocateKeyBlockRequest, KeyLocation, OpenKeyRequest};
use scm_client::ScmClient;

use crate::error::KeyIoError;
use ozone_common::config::keys;

type Result<T, E = KeyIoError> = std::result::Result<T, E>;

/// Consecutive failures of the key's current block (each moving it to a new block) without a
/// successful flush in between, before the write gives up.
const MAX_BLOCK_ATTEMPTS: u32 = 5;

/// Pause before moving to a new block again after that many failures in a row: SCM may not
/// know yet that a container its datanodes closed is closed.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Longest wait for SCM to take a report of a replica that missed a commit.
const MISS_REPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// How bytes are cut and kept.
#[derive(Clone, Debug)]
pub struct WriteSettings {
    /// Bytes gathered before they go to the datanodes.
    pub piece_size: usize,
    /// `ozone.scm.chunk.size`.
    pub chunk_size: usize,
    /// `ozone.client.bytes.per.checksum`.
    pub bytes_per_checksum: u32,
    /// Bytes written to a block between two flushes (PutBlock of what was written so far,
    /// `ozone.client.stream.buffer.flush.size`).
    pub flush_size: u64,
    /// Most uncommitted bytes the writer holds (`ozone.client.stream.buffer.max.size`, at least
    /// `flush_size`). With room for two flushes' worth, a flush's PutBlock is answered while the
    /// next bytes are sent; otherwise each flush waits for its answer.
    pub buffer_max: u64,
}

impl WriteSettings {
    /// The client keys of `cfg`; `piece_size` is the chunk size. Fails when the flush size is 0
    /// or above `ozone.client.stream.buffer.max.size`.
    pub fn from_config(cfg: &ozone_common::OzoneConfig) -> Result<Self, ozone_common::ConfigError> {
        let chunk_size = cfg
            .get_bytes(keys::OZONE_SCM_CHUNK_SIZE)?
            .clamp(64 * 1024, 32 << 20) as usize;
        let bytes_per_checksum = cfg
            .get_bytes(keys::OZONE_CLIENT_BYTES_PER_CHECKSUM)?
            .clamp(512, chunk_size as u64) as u32;
        let flush_size = cfg.get_bytes(keys::OZONE_CLIENT_STREAM_BUFFER_FLUSH_SIZE)?;
        let max_size = cfg.get_bytes(keys::OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE)?;
        if flush_size == 0 || flush_size > max_size {
            return Err(ozone_common::ConfigError::invalid(
                keys::OZONE_CLIENT_STREAM_BUFFER_FLUSH_SIZE,
                format!(
                    "{flush_size} bytes is not in 1..={max_size} ({})",
                    keys::OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE
                ),
            ));
        }
        Ok(WriteSettings {
            piece_size: chunk_size,
            chunk_size,
            bytes_per_checksum,
            flush_size,
            buffer_max: max_size,
        })
    }
}

/// The blocks of a written (not yet committed) key.
#[derive(Clone, Debug)]
pub struct WrittenKey {
    /// OM's id of the open key: pass it to CommitKey.
    pub client_id: u64,
    /// The blocks written, with their final offsets and lengths, in key order.
    pub locations: Vec<KeyLocation>,
    /// Bytes written.
    pub size: u64,
}

/// The block being written and what has been written to it.
struct OpenBlock {
    location: KeyLocation,
    writer: BlockWriter,
    /// Bytes handed to this block.
    written: u64,
    /// The bytes written after the block's last known commit, in order; a commit always ends
    /// at a boundary between two of them.
    held: VecDeque<Bytes>,
    held_len: u64,
    /// Block offset of the first held byte (the last known commit).
    held_start: u64,
    /// Bytes written since the last flush was started.
    unflushed: u64,
    /// Failures in a row without a new commit.
    failures: u32,
}

impl OpenBlock {
    /// Drops the held bytes the block's last commit covers.
    fn release_committed(&mut self) -> Result<()> {
        let committed = self.writer.committed_len();
        if committed > self.held_start {
            self.failures = 0;
        }
        while self.held_start < committed {
            let Some(front) = self.held.pop_front() else {
                break;
            };
            let len = front.len() as u64;
            if self.held_start + len > committed {
                return Err(KeyIoError::Internal(format!(
                    "commit at {committed} splits the piece at {} of the block",
                    self.held_start
                )));
            }
            self.held_start += len;
            self.held_len -= len;
        }
        Ok(())
    }
}

/// Streams bytes into a new version of a key (or a multipart part) opened with OM.
pub struct KeyWriter {
    om: OmClient,
    dn: DatanodeClients,
    settings: WriteSettings,
    volume: String,
    bucket: String,
    key: String,
    client_id: u64,
    block_size: u64,
    /// The key's expected size (OpenKey's hint; 0: unknown).
    size_hint: u64,
    preallocated: VecDeque<KeyLocation>,
    /// Blocks done, in key order, with their final offsets and lengths.
    committed: Vec<KeyLocation>,
    current: Option<OpenBlock>,
    /// Key offset of the current block's first byte (the bytes of the blocks done).
    key_offset: u64,
    buf: BytesMut,
    /// Datanodes that failed or hung while writing this key (not for a closed container).
    failed_nodes: BTreeSet<String>,
    /// Where replicas that missed a commit are reported (none: only logged).
    scm: Option<ScmClient>,
}

impl KeyWriter {
    /// Opens the key with OM (`req` names it, with the size hint that decides how many blocks
    /// are preallocated).
    pub async fn open(
        om: &OmClient,
        dn: &DatanodeClients,
        settings: WriteSettings,
        req: OpenKeyRequest,
    ) -> Result<Self> {
        let (volume, bucket, key) = (req.volume.clone(), req.bucket.clone(), req.key.clone());
        let size_hint = req.size_hint;
        let open = om.open_key(req).await?;
        let piece_size = settings.piece_size.max(1);
        Ok(KeyWriter {
            om: om.clone(),
            dn: dn.clone(),
            settings,
            volume,
            bucket,
            key,
            client_id: open.client_id,
            block_size: open.block_size.max(1),
            size_hint,
            preallocated: open.locations.into(),
            committed: Vec::new(),
            current: None,
            key_offset: 0,
            buf: BytesMut::with_capacity(piece_size),
            failed_nodes: BTreeSet::new(),
            scm: None,
        })
    }

    /// Reports replicas that miss a commit to `scm` (see the module doc).
    pub fn with_scm(mut self, scm: Option<ScmClient>) -> Self {
        self.scm = scm;
        self
    }

    /// Tells SCM about the replicas of `writer`'s block that missed a commit which counted,
    /// waiting at most [`MISS_REPORT_TIMEOUT`] (a lost report leaves the replica to SCM's
    /// BCSID comparison when its container closes).
    async fn report_misses(&self, writer: &mut BlockWriter) {
        for miss in writer.take_misses() {
            tracing::warn!(container = miss.container_id, datanode = %miss.datanode, bcsid = miss.bcsid,
                "a replica missed a committed block; telling SCM");
            let Some(scm) = &self.scm else { continue };
            let call = scm.report_replica_miss(miss.container_id, &miss.datanode, miss.bcsid);
            match tokio::time::timeout(MISS_REPORT_TIMEOUT, call).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(container = miss.container_id, error = %e, "SCM did not take the missed-commit report")
                }
                Err(_) => {
                    tracing::warn!(
                        container = miss.container_id,
                        "SCM did not answer the missed-commit report in time"
                    )
                }
            }
        }
    }

    /// OM's id of the open key.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Appends `bytes`; whole pieces go to the datanodes now, the rest waits for more (or
    /// [`Self::finish`]).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        let piece_size = self.settings.piece_size.max(1);
        while self.buf.len() >= piece_size {
            let chunk = self.buf.split_to(piece_size).freeze();
            self.write_chunk(chunk).await?;
        }
        Ok(())
    }

    /// Writes what is left and commits the last block with PutBlock; the key itself is for the
    /// caller to commit with OM.
    pub async fn finish(mut self) -> Result<WrittenKey> {
        if !self.buf.is_empty() {
            let rest = self.buf.split().freeze();
            self.write_chunk(rest).await?;
        }
        if let Some(last) = self.current.take() {
            self.finish_block(last).await?;
        }
        Ok(WrittenKey {
            client_id: self.client_id,
            locations: std::mem::take(&mut self.committed),
            size: self.key_offset,
        })
    }

    async fn write_chunk(&mut self, mut chunk: Bytes) -> Result<()> {
        let flush_size = self.settings.flush_size.max(1);
        while !chunk.is_empty() {
            if self.current.is_none() {
                let location = self.next_location().await?;
                self.current = Some(self.open_block(location)?);
            }
            let mut block = self.current.take().expect("a block was opened above");
            // A part ends at the block's end and at the next flush point.
            let room = (self.block_size - block.written)
                .min(flush_size.saturating_sub(block.unflushed).max(1));
            let part = chunk.split_to((room as usize).min(chunk.len()));
            self.write_part(&mut block, part).await?;
            if block.written >= self.block_size {
                self.finish_block(block).await?;
            } else {
                if block.unflushed >= flush_size {
                    self.flush_point(&mut block).await?;
                }
                self.current = Some(block);
            }
        }
        Ok(())
    }

    /// Datanodes the next block should not use: those that failed in this key and those the
    /// pool suspects of hanging.
    fn avoided(&self) -> Vec<String> {
        let mut avoid = self.failed_nodes.clone();
        avoid.extend(self.dn.suspects());
        avoid.into_iter().collect()
    }

    /// The next block: the next preallocated one, or a new one; if its pipeline holds a datanode
    /// to avoid, a new one from OM without those when SCM has one.
    async fn next_location(&mut self) -> Result<KeyLocation> {
        let avoid = self.avoided();
        let next = self.preallocated.pop_front();
        let touches = |l: &KeyLocation| {
            l.pipeline
                .as_ref()
                .is_some_and(|p| p.nodes.iter().any(|n| avoid.contains(&n.uuid)))
        };
        if avoid.is_empty() || next.as_ref().is_some_and(|l| !touches(l)) {
            return match next {
                Some(l) => Ok(l),
                None => self.allocate(Vec::new()).await,
            };
        }
        match self.allocate(avoid.clone()).await {
            Ok(l) => Ok(l),
            Err(e) => {
                tracing::info!(error = %e, avoided = ?avoid,
                    "no block without the datanodes to avoid; writing to one with them");
                match next {
                    Some(l) => Ok(l),
                    None => self.allocate(Vec::new()).await,
                }
            }
        }
    }

    /// Remembers the datanodes of `failed` that failed for reasons of their own.
    fn note_failures(&mut self, failed: &[ReplicaFailure]) {
        self.failed_nodes
            .extend(node_faults(failed).map(|f| f.uuid.clone()));
    }

    async fn allocate(&self, exclude_datanodes: Vec<String>) -> Result<KeyLocation> {
        Ok(self
            .om
            .allocate_block(AllocateKeyBlockRequest {
                volume: self.volume.clone(),
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                client_id: self.client_id,
                exclude_datanodes,
                // What is left of the expected size (0: unknown); OM caps it at a block.
                size: self.size_hint.saturating_sub(self.key_offset),
            })
            .await?)
    }

    fn open_block(&self, location: KeyLocation) -> Result<OpenBlock> {
        let block_id = location
            .block_id
            .ok_or_else(|| KeyIoError::Internal("OM returned a block without an id".into()))?;
        let nodes = location
            .pipeline
            .as_ref()
            .map(|p| p.nodes.clone())
            .unwrap_or_default();
        if nodes.is_empty() {
            return Err(KeyIoError::Internal(
                "OM returned a block without datanodes".into(),
            ));
        }
        let options = WriterOptions {
            bytes_per_checksum: self.settings.bytes_per_checksum,
            chunk_size: self.settings.chunk_size,
            ..WriterOptions::default()
        };
        let mut writer = BlockWriter::open(&self.dn, block_id, nodes, options)?
            .with_token(location.token.clone());
        if !self.failed_nodes.is_empty() {
            let failed: Vec<String> = self.failed_nodes.iter().cloned().collect();
            writer.skip_datanodes(&failed, "left out: it failed or hung earlier in this key");
        }
        Ok(OpenBlock {
            location,
            writer,
            written: 0,
            held: VecDeque::new(),
            held_len: 0,
            held_start: 0,
            unflushed: 0,
            failures: 0,
        })
    }

    /// Appends `part` to the block, moving on to a new block if this one fails.
    async fn write_part(&mut self, block: &mut OpenBlock, part: Bytes) -> Result<()> {
        let len = part.len() as u64;
        block.written += len;
        block.unflushed += len;
        block.held_len += len;
        block.held.push_back(part.clone());
        let result = block.writer.write(part).await;
        self.report_misses(&mut block.writer).await;
        match result {
            Ok(()) => block.release_committed(),
            Err(e) => self.move_block(block, e).await,
        }
    }

    /// Starts committing what was written to the block so far; waits for the answer too when
    /// the held bytes could otherwise outgrow [`WriteSettings::buffer_max`].
    async fn flush_point(&mut self, block: &mut OpenBlock) -> Result<()> {
        let pipelined = self.settings.flush_size.saturating_mul(2) <= self.settings.buffer_max;
        let result = if pipelined {
            block.writer.start_flush().await
        } else {
            block.writer.flush().await.map(|_| ())
        };
        self.report_misses(&mut block.writer).await;
        match result {
            Ok(()) => {
                block.unflushed = 0;
                block.release_committed()
            }
            Err(e) => self.move_block(block, e).await,
        }
    }

    /// Commits what was written to the block and waits for it; the held bytes are then dropped.
    async fn flush(&mut self, block: &mut OpenBlock) -> Result<()> {
        loop {
            match block.writer.flush().await {
                Ok(committed) => {
                    block.unflushed = 0;
                    block.release_committed()?;
                    if committed != block.written || block.held_len != 0 {
                        return Err(KeyIoError::Internal(format!(
                            "block committed {committed} bytes, {} written",
                            block.written
                        )));
                    }
                    return Ok(());
                }
                Err(e) => self.move_block(block, e).await?,
            }
        }
    }

    /// After `err` on `block`: records the block's committed prefix as a block of the key (if
    /// any), then writes the held bytes to a new block from OM (avoiding the datanodes that
    /// failed) and makes `block` that one. Gives up with the last error after
    /// [`MAX_BLOCK_ATTEMPTS`] failures in a row.
    async fn move_block(
        &mut self,
        block: &mut OpenBlock,
        mut err: DatanodeClientError,
    ) -> Result<()> {
        loop {
            block.failures += 1;
            if block.failures >= MAX_BLOCK_ATTEMPTS {
                return Err(err.into());
            }
            // A commit in flight may still have reached a majority: its bytes stay here.
            if let Err(e) = block.writer.wait_for_commit().await {
                tracing::debug!(error = %e, "block write already failed");
            }
            self.report_misses(&mut block.writer).await;
            let failures = block.failures;
            block.release_committed()?;
            block.failures = failures;
            let committed = block.writer.committed_len();
            let exclude = exclusions(&err);
            self.failed_nodes.extend(exclude.iter().cloned());
            let dropped = block.writer.failed_replicas();
            self.note_failures(&dropped);
            tracing::warn!(error = %err, excluded = ?exclude, attempt = block.failures,
                committed, moved = block.held_len,
                "block write failed; the block keeps its committed bytes and the rest goes to a new block");
            if committed > 0 {
                let mut done = block.location.clone();
                done.offset = self.key_offset;
                done.length = committed;
                done.block_checksum = digest_of(&block.writer, committed)?;
                self.key_offset += committed;
                self.committed.push(done);
            }
            if block.failures > 1 {
                tokio::time::sleep(RETRY_PAUSE * (block.failures - 1)).await;
            }
            let location = self.allocate(exclude).await?;
            let fresh = self.open_block(location)?;
            block.location = fresh.location;
            // The old writer goes (cancelling its streams); what it committed stays committed.
            block.writer = fresh.writer;
            block.written = block.held_len;
            block.held_start = 0;
            block.unflushed = block.held_len;
            let mut result = Ok(());
            for piece in &block.held {
                result = block.writer.write(piece.clone()).await;
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok() && block.unflushed >= self.settings.flush_size {
                result = block.writer.flush().await.map(|_| ());
                if result.is_ok() {
                    block.unflushed = 0;
                    block.release_committed()?;
                }
            }
            match result {
                Ok(()) => return Ok(()),
                Err(e) => err = e,
            }
        }
    }

    /// Commits the rest of the block and records it as the key's next block.
    async fn finish_block(&mut self, mut block: OpenBlock) -> Result<()> {
        self.flush(&mut block).await?;
        self.report_misses(&mut block.writer).await;
        let failed = block.writer.failed_replicas();
        for f in &failed {
            tracing::warn!(datanode = %f.uuid, reason = %f.reason, "replica failed; block kept on the rest");
        }
        self.note_failures(&failed);
        if block.written == 0 {
            return Ok(());
        }
        let mut location = block.location;
        location.offset = self.key_offset;
        location.length = block.written;
        location.block_checksum = digest_of(&block.writer, block.written)?;
        self.key_offset += block.written;
        self.committed.push(location);
        Ok(())
    }
}

/// The checksum OM records for the first `length` bytes of the block `writer` wrote.
fn digest_of(writer: &BlockWriter, length: u64) -> Result<Vec<u8>> {
    writer.block_digest(length).ok_or_else(|| {
        KeyIoError::Internal(format!(
            "block {} committed {length} bytes, not at the end of a chunk it wrote",
            writer.block_id()
        ))
    })
}

/// Datanodes to avoid after `err`: those that failed, except for refusing a write to a closed
/// container (SCM allocates no blocks there anyway, and the datanode itself is fine).
fn exclusions(err: &DatanodeClientError) -> Vec<String> {
    match err {
        DatanodeClientError::WriteFailed { failed, .. } => {
            node_faults(failed).map(|f| f.uuid.clone()).collect()
        }
        _ => Vec::new(),
    }
}

/// The failures of `failed` that say something about the datanode: all but refusing a write to
/// a closed container.
fn node_faults(failed: &[ReplicaFailure]) -> impl Iterator<Item = &ReplicaFailure> {
    failed
        .iter()
        .filter(|f| !f.reason.contains("FailedPrecondition"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_size_must_be_within_the_buffer_max() {
        let mut cfg = ozone_common::OzoneConfig::default();
        let s = WriteSettings::from_config(&cfg).expect("defaults are valid");
        assert_eq!(s.flush_size, 4 << 20);
        cfg.set(keys::OZONE_CLIENT_STREAM_BUFFER_FLUSH_SIZE, "16MB");
        assert!(WriteSettings::from_config(&cfg).is_err());
        cfg.set(keys::OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE, "32MB");
        let s = WriteSettings::from_config(&cfg).expect("16MB of 32MB");
        assert_eq!(s.flush_size, 16 << 20);
        cfg.set(keys::OZONE_CLIENT_STREAM_BUFFER_FLUSH_SIZE, "0");
        assert!(WriteSettings::from_config(&cfg).is_err());
    }
}
