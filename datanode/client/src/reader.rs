//! Verified reads with failover: [`read_block`] streams a byte range of a block from one replica,
//! checks every response against its CRC32C checksums, trims to the range, and on any problem
//! moves to the next replica, resuming at the first byte not yet returned. [`get_block`] fetches
//! a block's committed metadata from the first replica that has it.
//!
//! End to end: given what OM recorded of the block ([`BlockRecord`]: its length and the
//! writer's digest of its chunk checksums), [`read_block_checked`] first asks each replica for its
//! chunk list (GetBlock), trusts the replica only if the list's digest over the recorded length
//! is OM's, and then checks every byte against those chunk checksums rather than the ones the
//! replica sends with the data: a replica whose data and checksums were both rewritten is never
//! served. A step that a replica does not answer within `ozone.client.read.timeout` while others
//! are left moves the read on (the last replica gets `ozone.client.request.timeout`).

use bytes::Bytes;
use futures::Stream;
use ozone_proto::datanode::{GetBlockRequest, ReadChunkRequest, ReadChunkResponse};
use ozone_proto::hdds::{BlockData, BlockId, ChecksumData, ChunkInfo, DatanodeDetails};
use tonic::Streaming;

use crate::checksum;
use crate::error::{DatanodeClientError, ReplicaFailure};
use crate::pool::DatanodeClients;

/// Streams bytes `offset..offset+len` of `block_id`, trying the replicas in `nodes` (starting at a
/// rotating one). The concatenated items are exactly the requested bytes: every piece is verified
/// before it is yielded, and a replica that fails mid-way (connection, status, checksum, early end)
/// is replaced by the next one starting where the last left off. The stream ends with an error
/// only when every replica has failed.
pub fn read_block(
    clients: &DatanodeClients,
    nodes: &[DatanodeDetails],
    block_id: BlockId,
    offset: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, DatanodeClientError>> + Send + use<> {
    read_block_checked(clients, nodes, block_id, offset, len, None, Bytes::new())
}

/// What OM recorded of a committed block: a replica serves it only if its chunk checksums over
/// the first `length` bytes have this digest ([`checksum::block_digest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    pub length: u64,
    pub digest: Vec<u8>,
}

/// [`read_block`], checking every replica against `record` first when there is one (see the
/// module documentation), showing the datanodes `token` (the block token OM gave with the
/// block's location; empty with security off).
pub fn read_block_checked(
    clients: &DatanodeClients,
    nodes: &[DatanodeDetails],
    block_id: BlockId,
    offset: u64,
    len: u64,
    record: Option<BlockRecord>,
    token: Bytes,
) -> impl Stream<Item = Result<Bytes, DatanodeClientError>> + Send + use<> {
    let end = offset.checked_add(len);
    let state = ReadState {
        token,
        clients: clients.clone(),
        record,
        order: clients.read_order(nodes),
        next: 0,
        block_id,
        pos: offset,
        end: end.unwrap_or(offset),
        current: None,
        failed: Vec::new(),
        done: false,
        invalid: end.is_none(),
    };
    futures::stream::unfold(state, |mut st| async move {
        let item = st.next_piece().await?;
        Some((item, st))
    })
}

struct ReadState {
    /// The block token (security on).
    token: Bytes,
    clients: DatanodeClients,
    /// OM's record of the block, if it has one.
    record: Option<BlockRecord>,
    order: Vec<DatanodeDetails>,
    /// Index in `order` of the next replica to try.
    next: usize,
    block_id: BlockId,
    /// Next byte to yield.
    pos: u64,
    end: u64,
    /// The replica being read, its stream, and its chunks when checked against `record`.
    current: Option<(
        DatanodeDetails,
        Streaming<ReadChunkResponse>,
        Option<Vec<ChunkInfo>>,
    )>,
    failed: Vec<ReplicaFailure>,
    done: bool,
    invalid: bool,
}

impl ReadState {
    async fn next_piece(&mut self) -> Option<Result<Bytes, DatanodeClientError>> {
        if self.invalid {
            self.invalid = false;
            self.done = true;
            return Some(Err(DatanodeClientError::InvalidArgument(format!(
                "range at offset {} overflows",
                self.pos
            ))));
        }
        loop {
            if self.done || self.pos >= self.end {
                return None;
            }
            let timeout = self.step_timeout();
            let Some((node, stream, chunks)) = self.current.as_mut() else {
                let Some(node) = self.order.get(self.next).cloned() else {
                    self.done = true;
                    if self.order.is_empty() {
                        return Some(Err(DatanodeClientError::NoReplicas {
                            block_id: self.block_id,
                        }));
                    }
                    return Some(Err(DatanodeClientError::ReadFailed {
                        block_id: self.block_id,
                        failed: std::mem::take(&mut self.failed),
                    }));
                };
                self.next += 1;
                let timeout = self.step_timeout();
                let checked = match self.check_replica(&node, timeout).await {
                    Ok(chunks) => chunks,
                    Err(reason) => {
                        self.fail(&node, reason);
                        continue;
                    }
                };
                match self.open(&node, timeout).await {
                    Ok(stream) => self.current = Some((node, stream, checked)),
                    Err(reason) => self.fail(&node, reason),
                }
                continue;
            };
            let outcome = match tokio::time::timeout(timeout, stream.message()).await {
                Err(_) => {
                    self.clients.suspect(&node.uuid);
                    Err(format!("no data for {timeout:?}"))
                }
                Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
                Ok(Ok(None)) => Err(format!(
                    "stream ended at byte {} before the end of the range at {}",
                    self.pos, self.end
                )),
                Ok(Ok(Some(resp))) => match chunks {
                    Some(chunks) => accept_checked(&resp, chunks, self.pos, self.end),
                    None => accept(&resp, self.pos, self.end),
                },
            };
            match outcome {
                Ok(Some(bytes)) => {
                    self.pos += bytes.len() as u64;
                    return Some(Ok(bytes));
                }
                Ok(None) => {}
                Err(reason) => {
                    let node = node.clone();
                    self.current = None;
                    self.fail(&node, reason);
                }
            }
        }
    }

    /// The deadline of the next step: short while another replica is left to try.
    fn step_timeout(&self) -> std::time::Duration {
        let t = self.clients.timeouts();
        if self.next < self.order.len() {
            t.read.min(t.request)
        } else {
            t.request
        }
    }

    /// With OM's record of the block: the replica's chunk list (GetBlock), if its digest over
    /// the recorded length is the recorded one. Without a record: nothing to check (`None`).
    async fn check_replica(
        &self,
        node: &DatanodeDetails,
        timeout: std::time::Duration,
    ) -> Result<Option<Vec<ChunkInfo>>, String> {
        let Some(record) = &self.record else {
            return Ok(None);
        };
        let mut client = self.clients.client(node).map_err(|e| e.to_string())?;
        let request = GetBlockRequest {
            block_id: Some(self.block_id),
            token: self.token.clone(),
        };
        let block = match tokio::time::timeout(timeout, client.get_block(request)).await {
            Err(_) => {
                self.clients.suspect(&node.uuid);
                return Err(format!("GetBlock got no answer within {timeout:?}"));
            }
            Ok(Err(status)) => {
                return Err(format!(
                    "GetBlock: {:?}: {}",
                    status.code(),
                    status.message()
                ));
            }
            Ok(Ok(resp)) => resp
                .into_inner()
                .block
                .ok_or_else(|| "GetBlock answer has no block".to_string())?,
        };
        match checksum::block_digest(&block.chunks, record.length) {
            Some(digest) if digest == record.digest => Ok(Some(block.chunks)),
            Some(_) => Err(format!(
                "the replica's chunk checksums over the block's {} bytes differ from OM's record",
                record.length
            )),
            None => Err(format!(
                "the replica's chunks ({} bytes committed) do not end at the recorded length {}",
                block.size, record.length
            )),
        }
    }

    async fn open(
        &self,
        node: &DatanodeDetails,
        timeout: std::time::Duration,
    ) -> Result<Streaming<ReadChunkResponse>, String> {
        let mut client = self.clients.client(node).map_err(|e| e.to_string())?;
        let request = ReadChunkRequest {
            block_id: Some(self.block_id),
            offset: self.pos,
            length: self.end - self.pos,
            token: self.token.clone(),
        };
        match tokio::time::timeout(timeout, client.read_chunk(request)).await {
            Err(_) => {
                self.clients.suspect(&node.uuid);
                Err(format!("ReadChunk got no answer within {timeout:?}"))
            }
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
        }
    }

    fn fail(&mut self, node: &DatanodeDetails, reason: String) {
        tracing::warn!(block = %self.block_id, datanode = %node.uuid, endpoint = %node.endpoint(),
            position = self.pos, %reason, "block read failed on a replica; trying the next one");
        self.failed.push(ReplicaFailure {
            uuid: node.uuid.clone(),
            endpoint: node.endpoint(),
            reason,
        });
    }
}

/// Verifies one response and returns the part of it in `pos..end` (`None` if it holds nothing new).
fn accept(resp: &ReadChunkResponse, pos: u64, end: u64) -> Result<Option<Bytes>, String> {
    let cs = resp
        .checksum
        .as_ref()
        .ok_or_else(|| format!("response at offset {} has no checksums", resp.offset))?;
    checksum::verify(&resp.data, cs)
        .map_err(|fault| format!("response at offset {}: {fault}", resp.offset))?;
    let start = resp.offset;
    let stop = start + resp.data.len() as u64;
    if start > pos {
        return Err(format!(
            "response starts at {start}, after the next expected byte {pos}"
        ));
    }
    if stop <= pos {
        return Ok(None);
    }
    let from = (pos - start) as usize;
    let to = (stop.min(end) - start) as usize;
    Ok(Some(resp.data.slice(from..to)))
}

/// [`accept`] for a replica checked against OM's record: `resp` must hold whole slices of one of
/// the replica's verified `chunks` and match their checksums (whatever checksums it carries).
fn accept_checked(
    resp: &ReadChunkResponse,
    chunks: &[ChunkInfo],
    pos: u64,
    end: u64,
) -> Result<Option<Bytes>, String> {
    let at = resp.offset;
    let idx = chunks.partition_point(|c| c.offset + c.len <= at);
    let chunk = chunks
        .get(idx)
        .filter(|c| c.offset <= at)
        .ok_or_else(|| format!("response at offset {at} is outside the checked chunks"))?;
    let cs = chunk
        .checksum
        .as_ref()
        .ok_or_else(|| format!("the chunk at {} has no checksums", chunk.offset))?;
    let bpc = u64::from(cs.bytes_per_checksum.max(1));
    let rel = at - chunk.offset;
    let len = resp.data.len() as u64;
    if !rel.is_multiple_of(bpc) || rel + len > chunk.len {
        return Err(format!(
            "response of {len} bytes at offset {at} is not whole slices of the chunk at {}",
            chunk.offset
        ));
    }
    let first = (rel / bpc) as usize;
    let count = checksum::slice_count(len, cs.bytes_per_checksum) as usize;
    let expected = ChecksumData {
        bytes_per_checksum: cs.bytes_per_checksum,
        checksums: cs
            .checksums
            .get(first..first + count)
            .ok_or_else(|| format!("the chunk at {} has too few checksums", chunk.offset))?
            .to_vec(),
    };
    // A short last slice is checked as one: the slice boundaries are the chunk's.
    let last_slice_short = rel + len < chunk.len && !len.is_multiple_of(bpc);
    if last_slice_short {
        return Err(format!(
            "response at offset {at} ends inside a slice of the chunk at {}",
            chunk.offset
        ));
    }
    let mut checked = resp.clone();
    checked.checksum = Some(expected);
    accept(&checked, pos, end)
}

/// The committed metadata of `block_id` from the first replica (in rotating order) that has it.
pub async fn get_block(
    clients: &DatanodeClients,
    nodes: &[DatanodeDetails],
    block_id: BlockId,
) -> Result<BlockData, DatanodeClientError> {
    get_block_with_token(clients, nodes, block_id, Bytes::new()).await
}

/// [`get_block`], showing the datanodes `token` (the block token; security on).
pub async fn get_block_with_token(
    clients: &DatanodeClients,
    nodes: &[DatanodeDetails],
    block_id: BlockId,
    token: Bytes,
) -> Result<BlockData, DatanodeClientError> {
    if nodes.is_empty() {
        return Err(DatanodeClientError::NoReplicas { block_id });
    }
    let timeout = clients.rpc_timeout();
    let mut failed = Vec::new();
    let mut not_found = 0;
    for node in clients.read_order(nodes) {
        let result = async {
            let mut client = clients.client(&node).map_err(|e| e.to_string())?;
            let request = GetBlockRequest {
                block_id: Some(block_id),
                token: token.clone(),
            };
            tokio::time::timeout(timeout, client.get_block(request))
                .await
                .map_err(|_| format!("GetBlock got no answer within {timeout:?}"))?
                .map_err(|s| {
                    if s.code() == tonic::Code::NotFound {
                        String::new()
                    } else {
                        format!("{:?}: {}", s.code(), s.message())
                    }
                })?
                .into_inner()
                .block
                .ok_or_else(|| "GetBlock answer has no block".to_string())
        }
        .await;
        match result {
            Ok(block) => return Ok(block),
            Err(reason) if reason.is_empty() => {
                not_found += 1;
                failed.push(ReplicaFailure {
                    uuid: node.uuid.clone(),
                    endpoint: node.endpoint(),
                    reason: "block not found".into(),
                });
            }
            Err(reason) => {
                tracing::warn!(block = %block_id, datanode = %node.uuid, %reason, "GetBlock failed on a replica");
                failed.push(ReplicaFailure {
                    uuid: node.uuid.clone(),
                    endpoint: node.endpoint(),
                    reason,
                });
            }
        }
    }
    if not_found == nodes.len() {
        return Err(DatanodeClientError::BlockNotFound { block_id });
    }
    Err(DatanodeClientError::ReadFailed { block_id, failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(offset: u64, data: &[u8]) -> ReadChunkResponse {
        ReadChunkResponse {
            offset,
            data: Bytes::copy_from_slice(data),
            checksum: Some(checksum::compute(data, 4)),
        }
    }

    #[test]
    fn trims_responses_to_the_unread_part_of_the_range() {
        let data: Vec<u8> = (0..16).collect();
        let r = response(8, &data[8..16]);
        assert_eq!(
            accept(&r, 10, 13).expect("valid").as_deref(),
            Some(&data[10..13])
        );
        assert_eq!(accept(&r, 16, 20).expect("valid"), None);
        assert!(accept(&r, 4, 20).is_err(), "a gap is an error");
    }

    #[test]
    fn checked_reads_use_the_recorded_checksums_not_the_replicas() {
        let data: Vec<u8> = (0..24u8).collect();
        let chunks = vec![
            ChunkInfo {
                offset: 0,
                len: 16,
                checksum: Some(checksum::compute(&data[..16], 4)),
            },
            ChunkInfo {
                offset: 16,
                len: 8,
                checksum: Some(checksum::compute(&data[16..], 4)),
            },
        ];
        let good = response(4, &data[4..16]);
        assert_eq!(
            accept_checked(&good, &chunks, 6, 24)
                .expect("valid")
                .as_deref(),
            Some(&data[6..16])
        );
        // Wrong bytes with checksums of their own that match them: refused.
        let mut wrong = data[16..24].to_vec();
        wrong[1] ^= 0xff;
        let forged = response(16, &wrong);
        assert!(accept(&forged, 16, 24).is_ok(), "self-consistent");
        assert!(accept_checked(&forged, &chunks, 16, 24).is_err());
        // Not slice-aligned, or past the checked chunks: refused.
        assert!(accept_checked(&response(2, &data[2..6]), &chunks, 2, 6).is_err());
        assert!(accept_checked(&response(24, &[1, 2]), &chunks, 24, 26).is_err());
    }

    #[test]
    fn rejects_corrupt_or_unchecksummed_responses() {
        let mut r = response(0, b"abcdefgh");
        r.data = Bytes::from_static(b"abcdefgX");
        assert!(accept(&r, 0, 8).is_err());
        r.checksum = None;
        assert!(accept(&r, 0, 8).is_err());
        r.checksum = Some(ChecksumData {
            bytes_per_checksum: 4,
            checksums: vec![],
        });
        assert!(accept(&r, 0, 8).is_err());
    }
}
