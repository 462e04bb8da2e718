//! Verified reads with failover: [`read_block`] streams a byte range of a block from one replica,
//! checks every response against its CRC32C checksums, trims to the range, and on any problem
//! moves to the next replica, resuming at the first byte not yet returned. [`get_block`] fetches
//! a block's committed metadata from the first replica that has it.

use bytes::Bytes;
use futures::Stream;
use ozone_proto::datanode::{GetBlockRequest, ReadChunkRequest, ReadChunkResponse};
use ozone_proto::hdds::{BlockData, BlockId, DatanodeDetails};
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
    let end = offset.checked_add(len);
    let state = ReadState {
        clients: clients.clone(),
        order: clients.rotated(nodes),
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
    clients: DatanodeClients,
    order: Vec<DatanodeDetails>,
    /// Index in `order` of the next replica to try.
    next: usize,
    block_id: BlockId,
    /// Next byte to yield.
    pos: u64,
    end: u64,
    current: Option<(DatanodeDetails, Streaming<ReadChunkResponse>)>,
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
        let timeout = self.clients.rpc_timeout();
        loop {
            if self.done || self.pos >= self.end {
                return None;
            }
            let Some((node, stream)) = self.current.as_mut() else {
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
                match self.open(&node, timeout).await {
                    Ok(stream) => self.current = Some((node, stream)),
                    Err(reason) => self.fail(&node, reason),
                }
                continue;
            };
            let outcome = match tokio::time::timeout(timeout, stream.message()).await {
                Err(_) => Err(format!("no data for {timeout:?}")),
                Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
                Ok(Ok(None)) => Err(format!(
                    "stream ended at byte {} before the end of the range at {}",
                    self.pos, self.end
                )),
                Ok(Ok(Some(resp))) => accept(&resp, self.pos, self.end),
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
        };
        match tokio::time::timeout(timeout, client.read_chunk(request)).await {
            Err(_) => Err(format!("ReadChunk got no answer within {timeout:?}")),
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

/// The committed metadata of `block_id` from the first replica (in rotating order) that has it.
pub async fn get_block(
    clients: &DatanodeClients,
    nodes: &[DatanodeDetails],
    block_id: BlockId,
) -> Result<BlockData, DatanodeClientError> {
    if nodes.is_empty() {
        return Err(DatanodeClientError::NoReplicas { block_id });
    }
    let timeout = clients.rpc_timeout();
    let mut failed = Vec::new();
    let mut not_found = 0;
    for node in clients.rotated(nodes) {
        let result = async {
            let mut client = clients.client(&node).map_err(|e| e.to_string())?;
            let request = GetBlockRequest {
                block_id: Some(block_id),
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
    use ozone_proto::hdds::ChecksumData;

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
