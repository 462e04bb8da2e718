//! The errors of key streaming.

use om_client::OmClientError;

#[derive(Debug, thiserror::Error)]
pub enum KeyIoError {
    /// OM refused or could not serve a call (open, allocate).
    #[error(transparent)]
    Om(#[from] OmClientError),
    /// The datanodes could not durably store a block (no majority, retries used up).
    #[error("storing the data failed: {0}")]
    Datanode(#[from] datanode_client::DatanodeClientError),
    /// OM's answer or the block bookkeeping made no sense.
    #[error("{0}")]
    Internal(String),
}
