//! Block-level rules shared by the RPC handlers: validating a block's chunk list before it is
//! committed, and planning a verified read of a byte range in bounded pieces.

use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::BytesMut;
use datanode_client::checksum::{self, ChecksumFault};
use ozone_proto::datanode::ReadChunkResponse;
use ozone_proto::hdds::{BlockData, BlockId, ChecksumData};

use crate::error::DatanodeError;

/// Upper bound of the data in one ReadChunk response (whole slices; at least one slice).
pub const READ_PIECE_BYTES: u64 = 1024 * 1024;

/// Checks that a block's chunks tile `0..size` in order, each with well-formed checksums.
pub fn validate(block: &BlockData) -> Result<BlockId, DatanodeError> {
    let block_id = block
        .block_id
        .ok_or_else(|| DatanodeError::InvalidArgument("block has no block_id".into()))?;
    let mut expected = 0u64;
    for (i, chunk) in block.chunks.iter().enumerate() {
        if chunk.offset != expected {
            return Err(DatanodeError::InvalidArgument(format!(
                "block {block_id}: chunk {i} starts at {} instead of {expected}",
                chunk.offset
            )));
        }
        if chunk.len == 0 {
            return Err(DatanodeError::InvalidArgument(format!(
                "block {block_id}: chunk {i} is empty"
            )));
        }
        let cs = chunk.checksum.as_ref().ok_or_else(|| {
            DatanodeError::InvalidArgument(format!("block {block_id}: chunk {i} has no checksums"))
        })?;
        checksum::check_shape(chunk.len, cs).map_err(|fault| {
            DatanodeError::InvalidArgument(format!("block {block_id}: chunk {i}: {fault}"))
        })?;
        expected = expected.checked_add(chunk.len).ok_or_else(|| {
            DatanodeError::InvalidArgument(format!("block {block_id}: length overflows"))
        })?;
    }
    if expected != block.size {
        return Err(DatanodeError::InvalidArgument(format!(
            "block {block_id}: chunks hold {expected} bytes but the size is {}",
            block.size
        )));
    }
    Ok(block_id)
}

/// One bounded, slice-aligned read: `len` bytes at block offset `offset`, and their checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub len: u64,
    pub checksum: ChecksumData,
}

/// The pieces covering `offset..offset+length` of a committed (validated) block, expanded to
/// checksum-slice boundaries. A piece never spans two chunks, so its slices are its chunk's.
pub fn plan_read(block: &BlockData, offset: u64, length: u64) -> Result<Vec<Piece>, DatanodeError> {
    let block_id = block.block_id.unwrap_or_default();
    let out_of_range = || DatanodeError::OutOfRange {
        block_id,
        offset,
        length,
        size: block.size,
    };
    let end = offset.checked_add(length).ok_or_else(out_of_range)?;
    if end > block.size {
        return Err(out_of_range());
    }
    let mut pieces = Vec::new();
    if length == 0 {
        return Ok(pieces);
    }
    for chunk in &block.chunks {
        let chunk_end = chunk.offset + chunk.len;
        if chunk_end <= offset || chunk.offset >= end {
            continue;
        }
        let Some(cs) = chunk.checksum.as_ref() else {
            return Err(DatanodeError::DataLoss {
                block_id,
                message: format!("chunk at {} has no checksums", chunk.offset),
            });
        };
        let bpc = u64::from(cs.bytes_per_checksum.max(1));
        let first = (offset.max(chunk.offset) - chunk.offset) / bpc;
        let last = (end.min(chunk_end) - chunk.offset).div_ceil(bpc);
        let per_piece = (READ_PIECE_BYTES / bpc).max(1);
        let mut s = first;
        while s < last {
            let e = (s + per_piece).min(last);
            let start = chunk.offset + s * bpc;
            let stop = (chunk.offset + e * bpc).min(chunk_end);
            let checksums = cs
                .checksums
                .get(s as usize..e as usize)
                .ok_or_else(|| DatanodeError::DataLoss {
                    block_id,
                    message: format!("chunk at {} has too few checksums", chunk.offset),
                })?
                .to_vec();
            pieces.push(Piece {
                offset: start,
                len: stop - start,
                checksum: ChecksumData {
                    bytes_per_checksum: cs.bytes_per_checksum,
                    checksums,
                },
            });
            s = e;
        }
    }
    Ok(pieces)
}

/// Reads `piece` from the block file and verifies it against the stored checksums.
pub fn read_piece(
    file: &File,
    block_id: BlockId,
    piece: Piece,
) -> Result<ReadChunkResponse, DatanodeError> {
    let mut buf = BytesMut::zeroed(piece.len as usize);
    file.read_exact_at(&mut buf, piece.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            DatanodeError::DataLoss {
                block_id,
                message: format!(
                    "block file ends before {} (committed data is missing)",
                    piece.offset + piece.len
                ),
            }
        } else {
            DatanodeError::io(
                format!(
                    "reading {} bytes at {} of block {block_id}",
                    piece.len, piece.offset
                ),
                e,
            )
        }
    })?;
    match checksum::verify(&buf, &piece.checksum) {
        Ok(()) => {}
        Err(ChecksumFault::Mismatch { offset }) => {
            return Err(DatanodeError::ChecksumMismatch {
                block_id,
                offset: piece.offset + offset,
            });
        }
        Err(fault @ ChecksumFault::Malformed(_)) => {
            return Err(DatanodeError::DataLoss {
                block_id,
                message: fault.to_string(),
            });
        }
    }
    Ok(ReadChunkResponse {
        offset: piece.offset,
        data: buf.freeze(),
        checksum: Some(piece.checksum),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ozone_proto::hdds::ChunkInfo;

    /// A block of chunks with the given lengths, checksummed at `bpc` over `data`.
    fn block(data: &[u8], lens: &[u64], bpc: u32) -> BlockData {
        let mut chunks = Vec::new();
        let mut off = 0u64;
        for &len in lens {
            let piece = &data[off as usize..(off + len) as usize];
            chunks.push(ChunkInfo {
                offset: off,
                len,
                checksum: Some(checksum::compute(piece, bpc)),
            });
            off += len;
        }
        BlockData {
            block_id: Some(BlockId {
                container_id: 1,
                local_id: 2,
            }),
            chunks,
            size: off,
        }
    }

    #[test]
    fn validation_requires_contiguous_checksummed_chunks() {
        let data = vec![3u8; 100];
        let b = block(&data, &[40, 60], 16);
        assert!(validate(&b).is_ok());
        let mut gap = b.clone();
        gap.chunks[1].offset = 41;
        assert!(validate(&gap).is_err());
        let mut size = b.clone();
        size.size = 99;
        assert!(validate(&size).is_err());
        let mut sums = b.clone();
        if let Some(cs) = sums.chunks[0].checksum.as_mut() {
            cs.checksums.pop();
        }
        assert!(validate(&sums).is_err());
        let mut no_id = b;
        no_id.block_id = None;
        assert!(validate(&no_id).is_err());
    }

    #[test]
    fn reads_expand_to_slices_and_never_cross_chunks() {
        let data: Vec<u8> = (0..100u8).collect();
        let b = block(&data, &[40, 60], 16);
        // 30..50 touches chunk 0 slice 1 (16..32, 32..40 short) and chunk 1 slice 0 (40..56).
        let pieces = plan_read(&b, 30, 20).expect("in range");
        let spans: Vec<(u64, u64)> = pieces.iter().map(|p| (p.offset, p.len)).collect();
        assert_eq!(spans, vec![(16, 24), (40, 16)]);
        assert_eq!(pieces[0].checksum.checksums.len(), 2);
        assert!(plan_read(&b, 0, 0).expect("empty").is_empty());
        assert!(plan_read(&b, 100, 0).expect("empty at end").is_empty());
        assert!(matches!(
            plan_read(&b, 90, 11),
            Err(DatanodeError::OutOfRange { .. })
        ));
        assert!(plan_read(&b, u64::MAX, 2).is_err());
    }

    #[test]
    fn large_chunks_are_read_in_bounded_pieces() {
        let data = vec![9u8; 3 * 1024 * 1024 + 5];
        let b = block(&data, &[data.len() as u64], 16 * 1024);
        let pieces = plan_read(&b, 1, data.len() as u64 - 1).expect("in range");
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().all(|p| p.len <= READ_PIECE_BYTES));
        assert_eq!(pieces.iter().map(|p| p.len).sum::<u64>(), data.len() as u64);
    }

    #[test]
    fn read_piece_verifies_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("b");
        let mut data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        std::fs::write(&path, &data).expect("write");
        let b = block(&data, &[5000], 1024);
        let file = File::open(&path).expect("open");
        let id = b.block_id.unwrap_or_default();
        for p in plan_read(&b, 0, 5000).expect("plan") {
            let r = read_piece(&file, id, p.clone()).expect("verified");
            assert_eq!(
                &r.data[..],
                &data[p.offset as usize..(p.offset + p.len) as usize]
            );
        }
        data[3000] ^= 0xff;
        std::fs::write(&path, &data).expect("write");
        let file = File::open(&path).expect("open");
        let err = plan_read(&b, 0, 5000)
            .expect("plan")
            .into_iter()
            .map(|p| read_piece(&file, id, p))
            .find_map(Result::err)
            .expect("corruption is found");
        assert!(matches!(
            err,
            DatanodeError::ChecksumMismatch { offset: 2048, .. }
        ));
        std::fs::write(&path, &data[..4000]).expect("truncate");
        let file = File::open(&path).expect("open");
        let last = plan_read(&b, 4500, 1).expect("plan").remove(0);
        assert!(matches!(
            read_piece(&file, id, last),
            Err(DatanodeError::DataLoss { .. })
        ));
    }
}
