//! CRC32C checksums of fixed-size slices of a chunk, as carried by `hdds::ChecksumData`.
//!
//! A chunk of `len` bytes has `ceil(len / bytes_per_checksum)` checksums; the last slice may be
//! shorter. Both the writer (computes once per chunk) and the datanode (verifies before it writes
//! and again when it reads) use these functions, as does the reader (verifies every response).

use ozone_proto::hdds::{ChecksumData, ChunkInfo};
use sha2::{Digest, Sha256};

/// Largest `bytes_per_checksum` accepted: a slice must fit comfortably in one gRPC message.
pub const MAX_BYTES_PER_CHECKSUM: u32 = 16 * 1024 * 1024;

/// What is wrong with a piece of data and its checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumFault {
    /// The checksum description itself is unusable (bad slice size, wrong number of checksums).
    Malformed(String),
    /// The slice starting at this offset (relative to the data) does not match its checksum.
    Mismatch { offset: u64 },
}

impl std::fmt::Display for ChecksumFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChecksumFault::Malformed(m) => write!(f, "malformed checksum data: {m}"),
            ChecksumFault::Mismatch { offset } => {
                write!(
                    f,
                    "CRC32C mismatch in the slice at relative offset {offset}"
                )
            }
        }
    }
}

/// Number of slices (and so checksums) of `len` bytes.
pub fn slice_count(len: u64, bytes_per_checksum: u32) -> u64 {
    len.div_ceil(u64::from(bytes_per_checksum.max(1)))
}

/// CRC32C of every `bytes_per_checksum` slice of `data`. `bytes_per_checksum` of 0 is treated as 1.
pub fn compute(data: &[u8], bytes_per_checksum: u32) -> ChecksumData {
    let bpc = bytes_per_checksum.max(1);
    ChecksumData {
        bytes_per_checksum: bpc,
        checksums: data.chunks(bpc as usize).map(crc32c::crc32c).collect(),
    }
}

/// Checks that `checksum` is well formed for `data` and that every slice matches.
pub fn verify(data: &[u8], checksum: &ChecksumData) -> Result<(), ChecksumFault> {
    check_shape(data.len() as u64, checksum)?;
    let bpc = checksum.bytes_per_checksum as usize;
    for (i, (slice, expected)) in data.chunks(bpc).zip(&checksum.checksums).enumerate() {
        if crc32c::crc32c(slice) != *expected {
            return Err(ChecksumFault::Mismatch {
                offset: (i * bpc) as u64,
            });
        }
    }
    Ok(())
}

/// Checks that `checksum` describes `len` bytes: a sane slice size and one checksum per slice.
pub fn check_shape(len: u64, checksum: &ChecksumData) -> Result<(), ChecksumFault> {
    let bpc = checksum.bytes_per_checksum;
    if bpc == 0 || bpc > MAX_BYTES_PER_CHECKSUM {
        return Err(ChecksumFault::Malformed(format!(
            "bytes_per_checksum {bpc} is not in 1..={MAX_BYTES_PER_CHECKSUM}"
        )));
    }
    let expected = slice_count(len, bpc);
    if checksum.checksums.len() as u64 != expected {
        return Err(ChecksumFault::Malformed(format!(
            "{} checksums for {len} bytes at {bpc} bytes per checksum (expected {expected})",
            checksum.checksums.len()
        )));
    }
    Ok(())
}

/// Bytes of a [`block_digest`].
pub const BLOCK_DIGEST_BYTES: usize = 32;

/// What OM records of a committed block (`KeyLocation.block_checksum`) so that readers check
/// a replica against the writer rather than against the replica's own metadata: SHA-256 over
/// the chunks that make up the block's first `length` bytes, each as its length (u64 LE), its
/// `bytes_per_checksum` (u32 LE) and its CRC32C checksums (u32 LE each). `None` when those
/// chunks do not end exactly at `length` or lack checksums: such a list cannot be the one the
/// writer committed. Chunks after `length` (a later commit that reached only some replicas)
/// are not part of it.
pub fn block_digest(chunks: &[ChunkInfo], length: u64) -> Option<Vec<u8>> {
    let mut hasher = Sha256::new();
    let mut covered = 0u64;
    for chunk in chunks {
        if covered == length {
            break;
        }
        if chunk.offset != covered {
            return None;
        }
        let cs = chunk.checksum.as_ref()?;
        hasher.update(chunk.len.to_le_bytes());
        hasher.update(cs.bytes_per_checksum.to_le_bytes());
        for c in &cs.checksums {
            hasher.update(c.to_le_bytes());
        }
        covered = covered.checked_add(chunk.len)?;
    }
    (covered == length).then(|| hasher.finalize().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], lens: &[usize], bpc: u32) -> Vec<ChunkInfo> {
        let mut offset = 0;
        lens.iter()
            .map(|&len| {
                let c = ChunkInfo {
                    offset: offset as u64,
                    len: len as u64,
                    checksum: Some(compute(&data[offset..offset + len], bpc)),
                };
                offset += len;
                c
            })
            .collect()
    }

    #[test]
    fn block_digest_covers_exactly_the_committed_prefix() {
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 253) as u8).collect();
        let all = chunks(&data, &[10_000, 10_000, 10_000], 4096);
        let two = block_digest(&all, 20_000).expect("ends on a chunk boundary");
        assert_eq!(two.len(), BLOCK_DIGEST_BYTES);
        assert_eq!(block_digest(&all[..2], 20_000), Some(two.clone()));
        assert_ne!(block_digest(&all, 30_000), Some(two.clone()));
        assert_eq!(block_digest(&all, 15_000), None, "not a chunk boundary");
        assert_eq!(block_digest(&all[..1], 20_000), None, "too few chunks");
        assert_eq!(
            block_digest(&[], 0).map(|d| d.len()),
            Some(BLOCK_DIGEST_BYTES)
        );
        // Same length, other bytes (and their own, consistent checksums): another digest.
        let mut other = data.clone();
        other[12_345] ^= 1;
        let wrong = chunks(&other, &[10_000, 10_000, 10_000], 4096);
        assert_ne!(block_digest(&wrong, 20_000), Some(two));
    }

    #[test]
    fn computes_one_checksum_per_slice_with_a_short_tail() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let cs = compute(&data, 4096);
        assert_eq!(cs.checksums.len(), 3);
        assert_eq!(cs.checksums[2], crc32c::crc32c(&data[8192..]));
        assert_eq!(verify(&data, &cs), Ok(()));
        assert_eq!(slice_count(0, 4096), 0);
        assert_eq!(verify(&[], &compute(&[], 4096)), Ok(()));
    }

    #[test]
    fn detects_a_flipped_byte_and_malformed_descriptions() {
        let mut data = vec![7u8; 9000];
        let cs = compute(&data, 4096);
        data[5000] ^= 1;
        assert_eq!(
            verify(&data, &cs),
            Err(ChecksumFault::Mismatch { offset: 4096 })
        );
        let short = ChecksumData {
            bytes_per_checksum: 4096,
            checksums: vec![1, 2],
        };
        assert!(matches!(
            verify(&data, &short),
            Err(ChecksumFault::Malformed(_))
        ));
        let zero = ChecksumData {
            bytes_per_checksum: 0,
            checksums: vec![],
        };
        assert!(matches!(
            verify(&data, &zero),
            Err(ChecksumFault::Malformed(_))
        ));
    }
}
