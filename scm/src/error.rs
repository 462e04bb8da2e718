//! The one error type of the SCM crate and its mapping to gRPC statuses.

use crate::factor::Factor;

/// Metadata key of a follower's refusal naming the leader's client address (the SCM client
/// crate reads it under the same name).
pub const LEADER_HEADER: &str = "x-scm-leader";

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
    /// This SCM does not lead its service; the leader's client address when known.
    #[error("this SCM is not the leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// The SCM service cannot decide now: no quorum, leadership just changed, a change that
    /// did not commit in time.
    #[error("SCM unavailable: {0}")]
    Unavailable(String),
    /// The raft node failed otherwise.
    #[error("SCM raft: {0}")]
    Raft(ozone_raft::Error),
    /// Certificates and keys of security on.
    #[error("SCM security: {0}")]
    Security(String),
    /// The caller may not make this call (its certificate's role or identity).
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller presented no identity where one is needed.
    #[error("{0}")]
    Unauthenticated(String),
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

impl From<ozone_raft::Error> for ScmError {
    fn from(e: ozone_raft::Error) -> Self {
        match e {
            ozone_raft::Error::NotLeader { leader } => ScmError::NotLeader { leader },
            ozone_raft::Error::UnknownNode(m) => ScmError::InvalidArgument(m),
            ozone_raft::Error::Unavailable(m) => ScmError::Unavailable(m),
            other => ScmError::Raft(other),
        }
    }
}

impl From<ScmError> for tonic::Status {
    fn from(e: ScmError) -> Self {
        match &e {
            ScmError::NotLeader { leader } => {
                tracing::debug!(?leader, "not the SCM leader");
                let mut status = tonic::Status::unavailable(e.to_string());
                if let Some(value) = leader.as_deref().and_then(|l| l.parse().ok()) {
                    status.metadata_mut().insert(LEADER_HEADER, value);
                }
                status
            }
            ScmError::Unavailable(_) => tonic::Status::unavailable(e.to_string()),
            ScmError::SafeMode { .. } | ScmError::NoPipeline { .. } | ScmError::Stopped => {
                tonic::Status::unavailable(e.to_string())
            }
            ScmError::InvalidArgument(_) => tonic::Status::invalid_argument(e.to_string()),
            ScmError::NotFound(_) => tonic::Status::not_found(e.to_string()),
            ScmError::FailedPrecondition(_) => tonic::Status::failed_precondition(e.to_string()),
            ScmError::PermissionDenied(_) => {
                tracing::warn!(error = %e, "SCM call refused");
                tonic::Status::permission_denied(e.to_string())
            }
            ScmError::Unauthenticated(_) => {
                tracing::warn!(error = %e, "SCM call refused");
                tonic::Status::unauthenticated(e.to_string())
            }
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
