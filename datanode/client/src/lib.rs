//! Typed gRPC client of the datanode: replicated block writes and verified, failing-over reads.
//!
//! Used by the S3 gateway (and by datanodes copying containers) to move block data:
//! - [`DatanodeClients`]: a cheap-to-clone pool of lazily connected channels, one per datanode.
//! - [`BlockWriter`]: streams a block to every replica of a pipeline at once, checksumming each
//!   slice once, and commits it with `PutBlock` at each flush and at the end; a commit counts
//!   only when a majority of the replicas durably holds every byte of it.
//! - [`read_block`]: streams a byte range from one replica, verifies every checksum, and fails over
//!   to the next replica, resuming at the first byte not yet returned.
//! - [`checksum`]: the CRC32C slice checksums shared with the datanode server.

pub mod checksum;
mod error;
mod miss;
mod pool;
mod reader;
mod writer;

pub use error::{DatanodeClientError, ReplicaFailure};
pub use miss::ReplicaMiss;
pub use pool::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RPC_TIMEOUT, DEFAULT_WRITE_LAG_TIMEOUT,
    DatanodeClients, SUSPECT_FOR, Timeouts,
};
pub use reader::{BlockRecord, get_block, get_block_with_token, read_block, read_block_checked};
pub use writer::{BlockWriter, FinishedBlock, WriterOptions, write_quorum};
