//! Object bytes between the S3 gateway and the datanodes.
//!
//! Write: OM opens the key with preallocated blocks; the body is cut into chunks of
//! `ozone.scm.chunk.size` and streamed to every replica of the current block (replicated by
//! [`BlockWriter`]); a full block is committed with PutBlock and the next one taken (or asked
//! from OM); when the body ended and verified, OM commits the key. Nothing is committed for a
//! body that failed its checks.
//!
//! Read: the blocks overlapping the range are streamed in order, each verified and failed over
//! by the datanode client between the replicas recorded with the key; when none of them can serve
//! it, SCM is asked once where the container's replicas are now (re-replication may have moved
//! them) and the read goes on there.
//!
//! A block whose replicas fail (no majority left: datanodes died, or the container was closed
//! under the write because its pipeline lost a member) is written again from its first byte on
//! a new block that OM asks SCM for, excluding the datanodes that failed for reasons other than
//! a closed container, as long as the gateway still holds all of the block's bytes: it keeps
//! up to `ozone.client.stream.buffer.max.size` of the current block (shared `Bytes`, no
//! copies). A block that fails after more than that was sent fails the upload with an error;
//! nothing is ever reported written that is not on a majority of some block's replicas.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use datanode_client::{BlockWriter, DatanodeClientError, DatanodeClients, WriterOptions};
use futures::{Stream, StreamExt};
use ozone_proto::hdds::{BlockId, DatanodeDetails};
use ozone_proto::om::{
    AllocateKeyBlockRequest, CommitKeyRequest, KeyInfo, KeyLocation, OpenKeyRequest, WriteCondition,
};
use scm_client::ScmClient;

use crate::Gateway;
use crate::body::{Body, BodySpec, BodySummary};
use crate::error::{S3Error, S3ErrorCode, S3Result};

/// Which key a write produces (or which multipart part).
pub struct WriteTarget<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub owner: &'a str,
    pub upload: Option<(String, u32)>,
    pub attrs: KeyAttrs,
}

/// What a new key gets besides its bytes (a multipart part takes none of it).
#[derive(Clone, Debug, Default)]
pub struct KeyAttrs {
    pub metadata: HashMap<String, String>,
    pub tags: HashMap<String, String>,
    /// An S3 conditional write, checked by OM atomically with the commit.
    pub condition: Option<WriteCondition>,
}

impl From<HashMap<String, String>> for KeyAttrs {
    fn from(metadata: HashMap<String, String>) -> Self {
        KeyAttrs {
            metadata,
            ..KeyAttrs::default()
        }
    }
}

fn datanode_error(e: impl std::fmt::Display) -> S3Error {
    tracing::warn!(error = %e, "datanode write failed");
    S3Error::msg(
        S3ErrorCode::ServiceUnavailable,
        format!("storing the data failed: {e}"),
    )
}

/// Attempts at writing one block's bytes (the first and the rewrites on new blocks).
const MAX_BLOCK_ATTEMPTS: u32 = 5;

/// The block being written and what has been written to it.
struct OpenBlock {
    location: KeyLocation,
    writer: Option<BlockWriter>,
    written: u64,
    /// Every byte written to this block so far, while they fit the retry buffer.
    replay: Option<Vec<Bytes>>,
    attempts: u32,
}

/// What is needed to ask OM for a replacement block.
struct KeyCtx<'a> {
    volume: &'a str,
    bucket: &'a str,
    key: &'a str,
    client_id: u64,
    resource: &'a str,
    retry_buffer: u64,
}

/// Streams `body` into a new key version (or part) and commits it once the body verified.
pub async fn write_object<S, E>(
    gw: &Gateway,
    target: WriteTarget<'_>,
    mut body: Body<S>,
    spec: &BodySpec,
) -> S3Result<(BodySummary, KeyInfo)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let volume = gw.settings.volume.clone();
    let resource = format!("/{}/{}", target.bucket, target.key);
    let (upload_id, part_number) = target.upload.clone().unwrap_or_default();
    let open = gw
        .om
        .open_key(OpenKeyRequest {
            volume: volume.clone(),
            bucket: target.bucket.to_string(),
            key: target.key.to_string(),
            size_hint: spec.decoded_length.unwrap_or(0),
            replication: 0,
            owner: target.owner.to_string(),
            upload_id: upload_id.clone(),
            part_number,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &resource))?;
    let block_size = open.block_size.max(1);
    let mut preallocated: VecDeque<KeyLocation> = open.locations.into();
    let mut committed: Vec<KeyLocation> = Vec::new();
    let mut current: Option<OpenBlock> = None;
    let mut key_offset = 0u64;
    let piece_size = gw.settings.buffer_size;
    let mut buf = BytesMut::with_capacity(piece_size);
    let ctx = KeyCtx {
        volume: &volume,
        bucket: target.bucket,
        key: target.key,
        client_id: open.client_id,
        resource: &resource,
        retry_buffer: gw.settings.retry_buffer,
    };

    loop {
        let piece = body.next().await?;
        let at_end = piece.is_none();
        if let Some(p) = piece {
            buf.extend_from_slice(&p);
        }
        while buf.len() >= piece_size || (at_end && !buf.is_empty()) {
            let take = buf.len().min(piece_size);
            let mut chunk = buf.split_to(take).freeze();
            while !chunk.is_empty() {
                if current.is_none() {
                    let location = match preallocated.pop_front() {
                        Some(l) => l,
                        None => gw
                            .om
                            .allocate_block(AllocateKeyBlockRequest {
                                volume: volume.clone(),
                                bucket: target.bucket.to_string(),
                                key: target.key.to_string(),
                                client_id: open.client_id,
                                exclude_datanodes: Vec::new(),
                            })
                            .await
                            .map_err(|e| S3Error::from_om(e, &resource))?,
                    };
                    current = Some(open_block(gw, location)?);
                }
                let block = current.as_mut().expect("a block was opened above");
                let room = (block_size - block.written) as usize;
                let part = chunk.split_to(room.min(chunk.len()));
                write_part(gw, &ctx, block, part).await?;
                if block.written == block_size
                    && let Some(full) = current.take()
                {
                    committed.push(finish_block(gw, &ctx, full, &mut key_offset).await?);
                }
            }
        }
        if at_end {
            break;
        }
    }
    if let Some(last) = current.take() {
        committed.push(finish_block(gw, &ctx, last, &mut key_offset).await?);
    }
    let summary = body.finish(spec)?;
    let KeyAttrs {
        mut metadata,
        tags,
        condition,
    } = target.attrs;
    if let Some((algo, value)) = &summary.checksum {
        metadata.insert(algo.header().to_string(), value.clone());
    }
    let info = gw
        .om
        .commit_key(CommitKeyRequest {
            volume,
            bucket: target.bucket.to_string(),
            key: target.key.to_string(),
            client_id: open.client_id,
            locations: committed,
            size: summary.len,
            etag: hex::encode(summary.md5),
            metadata,
            upload_id,
            part_number,
            tags,
            condition,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &resource))?;
    Ok((summary, info))
}

fn open_block(gw: &Gateway, location: KeyLocation) -> S3Result<OpenBlock> {
    let block_id = location
        .block_id
        .ok_or_else(|| S3Error::internal("OM returned a block without an id"))?;
    let nodes = location
        .pipeline
        .as_ref()
        .map(|p| p.nodes.clone())
        .unwrap_or_default();
    if nodes.is_empty() {
        return Err(S3Error::internal("OM returned a block without datanodes"));
    }
    let options = WriterOptions {
        bytes_per_checksum: gw.settings.bytes_per_checksum,
        chunk_size: gw.settings.chunk_size,
        ..WriterOptions::default()
    };
    let writer = BlockWriter::open(&gw.dn, block_id, nodes, options).map_err(datanode_error)?;
    Ok(OpenBlock {
        location,
        writer: Some(writer),
        written: 0,
        replay: Some(Vec::new()),
        attempts: 1,
    })
}

/// Datanodes to avoid after `err`: those that failed, except for refusing a write to a closed
/// container (SCM allocates no blocks there anyway, and the datanode itself is fine).
fn exclusions(err: &datanode_client::DatanodeClientError) -> Vec<String> {
    match err {
        datanode_client::DatanodeClientError::WriteFailed { failed, .. } => failed
            .iter()
            .filter(|f| !f.reason.contains("FailedPrecondition"))
            .map(|f| f.uuid.clone())
            .collect(),
        _ => Vec::new(),
    }
}

/// Replaces `block`'s location and writer with a new block from OM (avoiding the datanodes
/// that failed) and writes the kept bytes to it again; fails with the original error when the
/// bytes are no longer all kept or the attempts are used up.
async fn rewrite_block(
    gw: &Gateway,
    ctx: &KeyCtx<'_>,
    block: &mut OpenBlock,
    mut err: datanode_client::DatanodeClientError,
) -> S3Result<()> {
    loop {
        let Some(replay) = block.replay.clone() else {
            return Err(datanode_error(err));
        };
        if block.attempts >= MAX_BLOCK_ATTEMPTS {
            return Err(datanode_error(err));
        }
        block.attempts += 1;
        let exclude = exclusions(&err);
        tracing::warn!(error = %err, excluded = ?exclude, attempt = block.attempts,
            bytes = block.written, "block write failed; writing the block again on a new one");
        block.writer = None;
        let location = gw
            .om
            .allocate_block(AllocateKeyBlockRequest {
                volume: ctx.volume.to_string(),
                bucket: ctx.bucket.to_string(),
                key: ctx.key.to_string(),
                client_id: ctx.client_id,
                exclude_datanodes: exclude,
            })
            .await
            .map_err(|e| S3Error::from_om(e, ctx.resource))?;
        let fresh = open_block(gw, location)?;
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
async fn write_part(
    gw: &Gateway,
    ctx: &KeyCtx<'_>,
    block: &mut OpenBlock,
    part: Bytes,
) -> S3Result<()> {
    block.written += part.len() as u64;
    if block.written <= ctx.retry_buffer {
        if let Some(r) = block.replay.as_mut() {
            r.push(part.clone());
        }
    } else {
        block.replay = None;
    }
    let writer = block
        .writer
        .as_mut()
        .ok_or_else(|| S3Error::internal("block writer missing"))?;
    match writer.write(part).await {
        Ok(()) => Ok(()),
        Err(e) => rewrite_block(gw, ctx, block, e).await,
    }
}

async fn finish_block(
    gw: &Gateway,
    ctx: &KeyCtx<'_>,
    mut block: OpenBlock,
    key_offset: &mut u64,
) -> S3Result<KeyLocation> {
    let finished = loop {
        let writer = block
            .writer
            .take()
            .ok_or_else(|| S3Error::internal("block writer missing"))?;
        match writer.finish_detailed().await {
            Ok(f) => break f,
            Err(e) => rewrite_block(gw, ctx, &mut block, e).await?,
        }
    };
    for f in &finished.failed {
        tracing::warn!(datanode = %f.uuid, reason = %f.reason, "replica failed; block kept on the rest");
    }
    let data = finished.block;
    let mut location = block.location;
    if data.size != block.written {
        return Err(S3Error::internal(format!(
            "block committed {} bytes, {} written",
            data.size, block.written
        )));
    }
    location.offset = *key_offset;
    location.length = block.written;
    *key_offset += block.written;
    Ok(location)
}

/// Streams bytes `[start, end)` of a key from its blocks.
pub fn read_object(
    dn: &DatanodeClients,
    scm: Option<ScmClient>,
    info: &KeyInfo,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let mut segments = Vec::new();
    for loc in &info.locations {
        let (lo, hi) = (loc.offset, loc.offset + loc.length);
        if hi <= start || lo >= end || loc.length == 0 {
            continue;
        }
        let from = start.max(lo) - lo;
        let to = end.min(hi) - lo;
        let nodes = loc
            .pipeline
            .as_ref()
            .map(|p| p.nodes.clone())
            .unwrap_or_default();
        if let Some(block_id) = loc.block_id {
            segments.push((nodes, block_id, from, to - from));
        }
    }
    let dn = dn.clone();
    futures::stream::iter(segments)
        .map(move |(nodes, block_id, offset, len)| {
            read_segment(dn.clone(), scm.clone(), nodes, block_id, offset, len)
        })
        .flatten()
}

type BlockStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, DatanodeClientError>> + Send>>;

/// One block's part of a read.
struct Segment {
    dn: DatanodeClients,
    scm: Option<ScmClient>,
    nodes: Vec<DatanodeDetails>,
    block_id: BlockId,
    pos: u64,
    end: u64,
    inner: Option<BlockStream>,
    refreshed: bool,
}

/// Reads `len` bytes of a block at `offset` from the replicas recorded with the key (the
/// datanode client verifies and fails over between them); if none of them can serve it (they
/// died, or their replicas were replaced), asks SCM once where the container's replicas are now
/// and goes on from there, at the first byte not yet returned.
fn read_segment(
    dn: DatanodeClients,
    scm: Option<ScmClient>,
    nodes: Vec<DatanodeDetails>,
    block_id: BlockId,
    offset: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + 'static {
    let st = Segment {
        dn,
        scm,
        nodes,
        block_id,
        pos: offset,
        end: offset.saturating_add(len),
        inner: None,
        refreshed: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.pos >= st.end {
                return None;
            }
            if st.inner.is_none() {
                st.inner = Some(Box::pin(datanode_client::read_block(
                    &st.dn,
                    &st.nodes,
                    st.block_id,
                    st.pos,
                    st.end - st.pos,
                )));
            }
            let next = match st.inner.as_mut() {
                Some(inner) => inner.next().await,
                None => None,
            };
            match next {
                Some(Ok(bytes)) => {
                    st.pos += bytes.len() as u64;
                    return Some((Ok(bytes), st));
                }
                None => return None,
                Some(Err(e)) => {
                    let fresh = match (&st.scm, st.refreshed) {
                        (Some(scm), false) => current_replicas(scm, &st.nodes, st.block_id).await,
                        _ => Vec::new(),
                    };
                    st.refreshed = true;
                    if fresh.is_empty() {
                        st.pos = st.end;
                        return Some((Err(std::io::Error::other(e)), st));
                    }
                    tracing::info!(block = %st.block_id, error = %e, replicas = fresh.len(),
                        "recorded replicas failed; reading from the container's current replicas");
                    st.nodes = fresh;
                    st.inner = None;
                }
            }
        }
    })
}

/// Datanodes SCM says hold a usable replica of the block's container, other than `tried`.
async fn current_replicas(
    scm: &ScmClient,
    tried: &[DatanodeDetails],
    block_id: BlockId,
) -> Vec<DatanodeDetails> {
    match scm.get_container(block_id.container_id).await {
        Ok(info) => info
            .replicas
            .into_iter()
            .filter(|r| r.state == "CLOSED" || r.state == "OPEN")
            .filter_map(|r| r.datanode)
            .filter(|d| !tried.iter().any(|t| t.uuid == d.uuid))
            .collect(),
        Err(e) => {
            tracing::warn!(block = %block_id, error = %e, "cannot ask SCM for the container's replicas");
            Vec::new()
        }
    }
}
