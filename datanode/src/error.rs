//! The one error type of the datanode, and its mapping to gRPC status codes.

use std::path::PathBuf;

use ozone_proto::hdds::BlockId;
use tonic::{Code, Status};

use crate::container::state::ContainerState;

#[derive(Debug, thiserror::Error)]
pub enum DatanodeError {
    #[error(transparent)]
    Config(#[from] ozone_common::ConfigError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container {container_id} block metadata: {source}")]
    Metadata {
        container_id: u64,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("data directory {path} is in use by another datanode")]
    DirLocked { path: PathBuf },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("container {0} not found")]
    ContainerNotFound(u64),
    #[error("container {id} is {state}, not OPEN")]
    ContainerNotOpen { id: u64, state: ContainerState },
    #[error("container {id} is unhealthy: {reason}")]
    ContainerUnhealthy { id: u64, reason: String },
    #[error("container {0} already exists on this datanode")]
    ContainerExists(u64),
    /// A write for a container deleted here (SCM deleted the replica): never re-created.
    #[error("container {0} was deleted on this datanode; a late write does not re-create it")]
    ContainerDeleted(u64),
    /// A container that could not be loaded is kept aside, never deleted on command.
    #[error("container {id} could not be loaded ({reason}); it is kept aside, not deleted")]
    ContainerKeptAside { id: u64, reason: String },
    #[error("container {id} still holds {blocks} blocks (or is OPEN)")]
    ContainerNotEmpty { id: u64, blocks: u64 },
    #[error("copying container {id}: {message}")]
    Copy { id: u64, message: String },
    #[error("block {0} not found")]
    BlockNotFound(BlockId),
    #[error("block {0} is already committed")]
    BlockCommitted(BlockId),
    #[error(
        "block {block_id}: the block file holds {actual} bytes, fewer than the {expected} to commit"
    )]
    BlockIncomplete {
        block_id: BlockId,
        expected: u64,
        actual: u64,
    },
    #[error("range {offset}+{length} is outside block {block_id} of {size} bytes")]
    OutOfRange {
        block_id: BlockId,
        offset: u64,
        length: u64,
        size: u64,
    },
    /// The data does not match its checksum: sent corrupted (write) or corrupted on disk (read).
    #[error("block {block_id}: checksum mismatch in the slice at block offset {offset}")]
    ChecksumMismatch { block_id: BlockId, offset: u64 },
    #[error("block {block_id}: data lost: {message}")]
    DataLoss { block_id: BlockId, message: String },
    #[error("request stream: {0}")]
    Stream(Box<Status>),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("the datanode is shutting down")]
    ShuttingDown,
    /// A block or container token is missing or does not allow the call (security on).
    #[error("{op} refused: {source}")]
    Token {
        op: &'static str,
        source: ozone_common::token::TokenError,
    },
}

impl DatanodeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DatanodeError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn metadata(container_id: u64, source: impl Into<redb::Error>) -> Self {
        DatanodeError::Metadata {
            container_id,
            source: Box::new(source.into()),
        }
    }

    /// The gRPC code a client sees for this error.
    pub fn code(&self) -> Code {
        match self {
            DatanodeError::InvalidArgument(_) => Code::InvalidArgument,
            DatanodeError::ContainerNotFound(_) | DatanodeError::BlockNotFound(_) => Code::NotFound,
            DatanodeError::ContainerNotOpen { .. }
            | DatanodeError::ContainerUnhealthy { .. }
            | DatanodeError::ContainerDeleted(_)
            | DatanodeError::ContainerKeptAside { .. }
            | DatanodeError::BlockIncomplete { .. } => Code::FailedPrecondition,
            DatanodeError::BlockCommitted(_) | DatanodeError::ContainerExists(_) => {
                Code::AlreadyExists
            }
            DatanodeError::ContainerNotEmpty { .. } => Code::FailedPrecondition,
            DatanodeError::Copy { .. } => Code::Unavailable,
            DatanodeError::OutOfRange { .. } => Code::OutOfRange,
            DatanodeError::ChecksumMismatch { .. } | DatanodeError::DataLoss { .. } => {
                Code::DataLoss
            }
            DatanodeError::Stream(status) => status.code(),
            DatanodeError::Token {
                source: ozone_common::token::TokenError::Missing(_),
                ..
            } => Code::Unauthenticated,
            DatanodeError::Token { .. } => Code::PermissionDenied,
            DatanodeError::ShuttingDown | DatanodeError::DirLocked { .. } => Code::Unavailable,
            DatanodeError::Config(_)
            | DatanodeError::Io { .. }
            | DatanodeError::Metadata { .. }
            | DatanodeError::BadFile { .. }
            | DatanodeError::Transport(_)
            | DatanodeError::Task(_) => Code::Internal,
        }
    }

    /// Whether the error is the datanode's problem (logged at warn) rather than the caller's.
    pub(crate) fn is_server_side(&self) -> bool {
        matches!(
            self.code(),
            Code::Internal | Code::DataLoss | Code::Unavailable
        ) && !matches!(self, DatanodeError::Stream(_))
    }
}

impl From<DatanodeError> for Status {
    fn from(e: DatanodeError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<tokio::task::JoinError> for DatanodeError {
    fn from(e: tokio::task::JoinError) -> Self {
        DatanodeError::Task(e.to_string())
    }
}
