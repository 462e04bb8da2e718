//! The raft crate's one error type, [`Error`]. A role maps it into its own error (and so into
//! its own gRPC statuses) where it calls the node.

/// Everything that can go wrong in the shared raft plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This node does not lead the group; the leader's address when known.
    #[error("not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// A node name that is not a member of the group (e.g. a transfer target).
    #[error("{0}")]
    UnknownNode(String),
    /// The group cannot do it now (no quorum, no leader yet, a transfer that did not finish).
    #[error("{0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Storage(#[from] redb::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A file of the snapshot directory that cannot be read back (`current.json`).
    #[error("corrupt snapshot file {path}: {message}")]
    Corrupt { path: String, message: String },
    /// The role's state machine failed (apply, export or install).
    #[error("state machine: {0}")]
    State(Box<dyn std::error::Error + Send + Sync>),
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A broken invariant or an openraft failure (a task panicked, raft would not start).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<redb::DatabaseError> for Error {
    fn from(e: redb::DatabaseError) -> Self {
        Error::Storage(e.into())
    }
}

impl From<redb::TransactionError> for Error {
    fn from(e: redb::TransactionError) -> Self {
        Error::Storage(e.into())
    }
}

impl From<redb::TableError> for Error {
    fn from(e: redb::TableError) -> Self {
        Error::Storage(e.into())
    }
}

impl From<redb::CommitError> for Error {
    fn from(e: redb::CommitError) -> Self {
        Error::Storage(e.into())
    }
}
