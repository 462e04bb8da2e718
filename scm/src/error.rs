//! The one error type of the SCM crate and its mapping to gRPC statuses.

use crate::factor::Factor;

#[derive(Debug, thiserror::Error)]
pub enum ScmError {
    #[error(transparent)]
    Config(#[from] ozone_common::ConfigError),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("SCM database: {0}")]
    Db(#[from] redb::Error),
    #[error("SCM database holds a bad record: {0}")]
    Corrupt(String),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Block allocation refused until enough datanodes and a pipeline are healthy.
    #[error(
        "SCM is in safe mode: {healthy} of {required} required healthy datanodes registered{}",
        if *has_pipeline { "" } else { ", no healthy pipeline of the default factor yet" }
    )]
    SafeMode {
        healthy: u32,
        required: u32,
        has_pipeline: bool,
    },
    /// No OPEN pipeline of the factor has only healthy, non-excluded members.
    #[error("no healthy pipeline with replication {factor} ({detail})")]
    NoPipeline { factor: Factor, detail: String },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// The request does not fit the object's state (e.g. closing a container that is not
    /// OPEN).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The SCM state actor has stopped (shutdown in progress).
    #[error("SCM is shutting down")]
    Stopped,
}

impl ScmError {
    /// A redb error of any of its kinds.
    pub(crate) fn db(e: impl Into<redb::Error>) -> ScmError {
        ScmError::Db(e.into())
    }
}

impl From<ScmError> for tonic::Status {
    fn from(e: ScmError) -> Self {
        match &e {
            ScmError::SafeMode { .. } | ScmError::NoPipeline { .. } | ScmError::Stopped => {
                tonic::Status::unavailable(e.to_string())
            }
            ScmError::InvalidArgument(_) => tonic::Status::invalid_argument(e.to_string()),
            ScmError::NotFound(_) => tonic::Status::not_found(e.to_string()),
            ScmError::FailedPrecondition(_) => tonic::Status::failed_precondition(e.to_string()),
            _ => {
                tracing::error!(error = %e, "SCM request failed");
                tonic::Status::internal(e.to_string())
            }
        }
    }
}

impl From<actix::MailboxError> for ScmError {
    fn from(_: actix::MailboxError) -> Self {
        ScmError::Stopped
    }
}
