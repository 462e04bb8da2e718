//! The one error type of the datanode client, with the per-replica failures callers act on
//! (a failed write names the datanodes to exclude when asking for a new block).

use ozone_proto::hdds::BlockId;

/// Why one replica (datanode) failed during a write or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaFailure {
    /// Datanode uuid.
    pub uuid: String,
    /// `http://host:port` of its gRPC service.
    pub endpoint: String,
    pub reason: String,
}

impl std::fmt::Display for ReplicaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.uuid, self.endpoint, self.reason)
    }
}

fn list(failures: &[ReplicaFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum DatanodeClientError {
    #[error("no datanodes given for block {block_id}")]
    NoReplicas { block_id: BlockId },
    #[error("invalid datanode endpoint {endpoint}: {message}")]
    InvalidEndpoint { endpoint: String, message: String },
    #[error(transparent)]
    Config(#[from] ozone_common::ConfigError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Too few replicas accepted the block; `failed` lists the datanodes that did not.
    #[error(
        "write of block {block_id} failed: {} of {replicas} replicas failed, a majority is needed: {}",
        failed.len(),
        list(failed)
    )]
    WriteFailed {
        block_id: BlockId,
        replicas: usize,
        failed: Vec<ReplicaFailure>,
    },
    /// Every replica failed to serve (part of) the read.
    #[error("read of block {block_id} failed on every replica: {}", list(failed))]
    ReadFailed {
        block_id: BlockId,
        failed: Vec<ReplicaFailure>,
    },
    /// Every replica answered that it does not hold the block.
    #[error("block {block_id} not found on any replica")]
    BlockNotFound { block_id: BlockId },
}

impl DatanodeClientError {
    /// Uuids of the datanodes that failed (empty unless the error is about replicas).
    pub fn failed_datanodes(&self) -> Vec<String> {
        match self {
            DatanodeClientError::WriteFailed { failed, .. }
            | DatanodeClientError::ReadFailed { failed, .. } => {
                failed.iter().map(|f| f.uuid.clone()).collect()
            }
            _ => Vec::new(),
        }
    }
}
