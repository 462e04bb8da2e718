//! Key streaming, shared by the S3 gateway and `ozone sh key put|get` (Ozone's `ozone-client`
//! `RpcClient` / `KeyOutputStream` / `KeyInputStream` in one small crate).
//!
//! - [`KeyWriter`]: OM opens the key with preallocated blocks; bytes pushed with
//!   [`KeyWriter::write`] are cut into pieces and streamed to every replica of the current block
//!   (replicated by `datanode_client::BlockWriter`), committed with PutBlock every
//!   `ozone.client.stream.buffer.flush.size` bytes and when full, then the next block is taken
//!   (or asked from OM); when a block's container closes or its replicas fail, the block keeps
//!   its committed length and the bytes since go on in a new block. [`KeyWriter::finish`]
//!   returns the block list. The caller commits the key with OM (after checking its own body), so nothing is
//!   visible for a write that failed.
//! - [`read_key`]: streams a byte range of a key from its blocks, verified and failed over
//!   between replicas, asking SCM where a container's replicas are now when none of the recorded
//!   ones can serve it.
//!
//! Only clients use it (s3g, the CLI): server crates never depend on each other.

mod error;
mod reader;
mod writer;

pub use error::KeyIoError;
pub use reader::read_key;
pub use writer::{KeyWriter, WriteSettings, WrittenKey};
