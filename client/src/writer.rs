//! Writing a key: blocks from OM, bytes to every replica of each block, retried on a new block
//! when a block's replicas fail.
//!
//! A block whose replicas fail (no majority left: datanodes died, or the container was closed
//! under the write because its pipeline lost a member) is written again from its first byte on
//! a new block that OM asks SCM for, excluding the datanodes that failed for reasons other than
//! a closed container, as long as the writer still holds all of the block's bytes: it keeps up
//! to [`WriteSettings::retry_buffer`] of the current block (shared `Bytes`, no copies). A block
//! that fails after more than that was sent fails the write; nothing is ever reported written
//! that is not on a majority of some block's replicas.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use datanode_client::{BlockWriter, DatanodeClientError, DatanodeClients, WriterOptions};
use om_client::OmClient;
use ozone_proto::om::{AllocateKeyBlockRequest, KeyLocation, OpenKeyRequest};

use crate::error::KeyIoError;
use ozone_common::config::keys;

type Result<T, E = KeyIoError> = std::result::Result<T, E>;

/// Attempts at writing one block's bytes (the first and the rewrites on new blocks).
const MAX_BLOCK_ATTEMPTS: u32 = 5;

/// How bytes are cut and kept.
#[derive(Clone, Debug)]
pub struct WriteSettings {
    /// Bytes gathered before they go to the datanodes.
    pub piece_size: usize,
    /// `ozone.scm.chunk.size`.
    pub chunk_size: usize,
    /// `ozone.client.bytes.per.checksum`.
    pub bytes_per_checksum: u32,
    /// Bytes of the current block kept to rewrite it elsewhere if its replicas fail
    /// (`ozone.client.stream.buffer.max.size`).
    pub retry_buffer: u64,
}

impl WriteSettings {
    /// The client keys of `cfg`; `piece_size` is the chunk size.
    pub fn from_config(cfg: &ozone_common::OzoneConfig) -> Result<Self, ozone_common::ConfigError> {
        let chunk_size = cfg
            .get_bytes(keys::OZONE_SCM_CHUNK_SIZE)?
            .clamp(64 * 1024, 32 << 20) as usize;
        let bytes_per_checksum = cfg
            .get_bytes(keys::OZONE_CLIENT_BYTES_PER_CHECKSUM)?
            .clamp(512, chunk_size as u64) as u32;
        Ok(WriteSettings {
            piece_size: chunk_size,
            chunk_size,
            bytes_per_checksum,
            retry_buffer: cfg.get_bytes(keys::OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE)?,
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
    writer: Option<BlockWriter>,
    written: u64,
    /// Every byte written to this block so far, while they fit the retry buffer.
    replay: Option<Vec<Bytes>>,
    attempts: u32,
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
    preallocated: VecDeque<KeyLocation>,
    committed: Vec<KeyLocation>,
    current: Option<OpenBlock>,
    key_offset: u64,
    buf: BytesMut,
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
            preallocated: open.locations.into(),
            committed: Vec::new(),
            current: None,
            key_offset: 0,
            buf: BytesMut::with_capacity(piece_size),
        })
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
            let loc = self.finish_block(last).await?;
            self.committed.push(loc);
        }
        Ok(WrittenKey {
            client_id: self.client_id,
            locations: std::mem::take(&mut self.committed),
            size: self.key_offset,
        })
    }

    async fn write_chunk(&mut self, mut chunk: Bytes) -> Result<()> {
        while !chunk.is_empty() {
            if self.current.is_none() {
                let location = match self.preallocated.pop_front() {
                    Some(l) => l,
                    None => self.allocate(Vec::new()).await?,
                };
                self.current = Some(self.open_block(location)?);
            }
            let mut block = self.current.take().expect("a block was opened above");
            let room = (self.block_size - block.written) as usize;
            let part = chunk.split_to(room.min(chunk.len()));
            self.write_part(&mut block, part).await?;
            if block.written == self.block_size {
                let loc = self.finish_block(block).await?;
                self.committed.push(loc);
            } else {
                self.current = Some(block);
            }
        }
        Ok(())
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
                size: 0,
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
        let writer = BlockWriter::open(&self.dn, block_id, nodes, options)?;
        Ok(OpenBlock {
            location,
            writer: Some(writer),
            written: 0,
            replay: Some(Vec::new()),
            attempts: 1,
        })
    }

    /// Replaces `block`'s location and writer with a new block from OM (avoiding the datanodes
    /// that failed) and writes the kept bytes to it again; fails with the original error when
    /// the bytes are no longer all kept or the attempts are used up.
    async fn rewrite_block(
        &self,
        block: &mut OpenBlock,
        mut err: DatanodeClientError,
    ) -> Result<()> {
        loop {
            let Some(replay) = block.replay.clone() else {
                return Err(err.into());
            };
            if block.attempts >= MAX_BLOCK_ATTEMPTS {
                return Err(err.into());
            }
            block.attempts += 1;
            let exclude = exclusions(&err);
            tracing::warn!(error = %err, excluded = ?exclude, attempt = block.attempts,
                bytes = block.written, "block write failed; writing the block again on a new one");
            block.writer = None;
            let location = self.allocate(exclude).await?;
            let fresh = self.open_block(location)?;
            block.location = fresh.location;
            let mut writer = fresh.writer.expect("open_block sets a writer");
            let mut result = Ok(());
            for piece in replay {
                result = writer.write(piece).await;
                if result.is_err() {
                    break;
                }
            }
            block.writer = Some(writer);
            match result {
                Ok(()) => return Ok(()),
                Err(e) => err = e,
            }
        }
    }

    /// Appends `part` to the block, rewriting the block elsewhere if its replicas fail.
    async fn write_part(&self, block: &mut OpenBlock, part: Bytes) -> Result<()> {
        block.written += part.len() as u64;
        if block.written <= self.settings.retry_buffer {
            if let Some(r) = block.replay.as_mut() {
                r.push(part.clone());
            }
        } else {
            block.replay = None;
        }
        let writer = block
            .writer
            .as_mut()
            .ok_or_else(|| KeyIoError::Internal("block writer missing".into()))?;
        match writer.write(part).await {
            Ok(()) => Ok(()),
            Err(e) => self.rewrite_block(block, e).await,
        }
    }

    async fn finish_block(&mut self, mut block: OpenBlock) -> Result<KeyLocation> {
        let finished = loop {
            let writer = block
                .writer
                .take()
                .ok_or_else(|| KeyIoError::Internal("block writer missing".into()))?;
            match writer.finish_detailed().await {
                Ok(f) => break f,
                Err(e) => self.rewrite_block(&mut block, e).await?,
            }
        };
        for f in &finished.failed {
            tracing::warn!(datanode = %f.uuid, reason = %f.reason, "replica failed; block kept on the rest");
        }
        let data = finished.block;
        let mut location = block.location;
        if data.size != block.written {
            return Err(KeyIoError::Internal(format!(
                "block committed {} bytes, {} written",
                data.size, block.written
            )));
        }
        location.offset = self.key_offset;
        location.length = block.written;
        self.key_offset += block.written;
        Ok(location)
    }
}

/// Datanodes to avoid after `err`: those that failed, except for refusing a write to a closed
/// container (SCM allocates no blocks there anyway, and the datanode itself is fine).
fn exclusions(err: &DatanodeClientError) -> Vec<String> {
    match err {
        DatanodeClientError::WriteFailed { failed, .. } => failed
            .iter()
            .filter(|f| !f.reason.contains("FailedPrecondition"))
            .map(|f| f.uuid.clone())
            .collect(),
        _ => Vec::new(),
    }
}
