//! The OM crate's one error type, [`OmError`], and how it travels to clients: a gRPC
//! `tonic::Status` whose metadata `x-om-status` holds the [`OmStatus`] name.
//!
//! Requests the namespace refuses (unknown bucket, part order, ...) are a [`Rejection`]: plain,
//! serializable data, because a rejection decided by `apply` is part of the replicated outcome of
//! a command. Everything else (disk, transport, corrupt records) is a fault of this node.

use ozone_proto::om::OmStatus;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tonic::metadata::MetadataValue;

/// Metadata key holding the [`OmStatus`] name of a failed call.
pub const STATUS_HEADER: &str = "x-om-status";
/// Metadata key holding the current owner of a bucket on BUCKET_ALREADY_EXISTS (percent-encoded
/// UTF-8). The S3 gateway compares it with the caller: equal means BucketAlreadyOwnedByYou.
pub const OWNER_HEADER: &str = "x-om-owner";
/// Metadata key holding the leader's address on NOT_LEADER.
pub const LEADER_HEADER: &str = "x-om-leader";

/// Characters escaped in metadata values: controls and `%` (non-ASCII is always escaped).
const HEADER_ESCAPE: &AsciiSet = &CONTROLS.add(b'%');

/// A request refused by the namespace; deterministic and replicated with the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    #[serde(with = "status_name")]
    pub status: OmStatus,
    pub message: String,
    /// For BUCKET_ALREADY_EXISTS: the bucket's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl Rejection {
    pub fn new(status: OmStatus, message: impl Into<String>) -> Self {
        Rejection {
            status,
            message: message.into(),
            owner: None,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_str_name(), self.message)
    }
}

/// Everything that can go wrong in OM.
#[derive(Debug, thiserror::Error)]
pub enum OmError {
    /// The namespace refuses the request (see [`Rejection::status`]).
    #[error("{0}")]
    Rejected(Rejection),
    /// SCM could not allocate blocks: unreachable, timed out, in safe mode or out of space.
    #[error("SCM unavailable: {0}")]
    ScmUnavailable(String),
    /// This OM is not the leader of the OM service; `leader` is the leader's address if known.
    #[error("not the OM leader (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// The OM service cannot commit or confirm leadership now (no quorum, no leader yet).
    #[error("OM service unavailable: {0}")]
    Unavailable(String),
    /// SCM answered with something OM cannot use.
    #[error("bad SCM response: {0}")]
    BadScmResponse(String),
    #[error("database: {0}")]
    Storage(#[from] redb::Error),
    #[error("corrupt record in table {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    /// A command was applied out of order (its index is not above the applied index).
    #[error("command index {index} is not after the applied index {applied}")]
    OutOfOrder { index: u64, applied: u64 },
    #[error(transparent)]
    Config(#[from] ozone_common::ConfigError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A broken invariant inside OM (a task panicked, an unexpected apply result).
    #[error("internal error: {0}")]
    Internal(String),
}

impl OmError {
    /// A rejection with `status` and `message`.
    pub fn reject(status: OmStatus, message: impl Into<String>) -> Self {
        OmError::Rejected(Rejection::new(status, message))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::reject(OmStatus::InvalidRequest, message)
    }

    /// The status a client sees.
    pub fn status(&self) -> OmStatus {
        match self {
            OmError::Rejected(r) => r.status,
            OmError::ScmUnavailable(_) => OmStatus::ScmUnavailable,
            OmError::NotLeader { .. } => OmStatus::NotLeader,
            OmError::Unavailable(_) => OmStatus::OmUnavailable,
            _ => OmStatus::InternalError,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        OmError::Io {
            context: context.into(),
            source,
        }
    }
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for OmError {
            fn from(e: $t) -> Self {
                OmError::Storage(e.into())
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The shared raft plumbing's errors as OM reports them: a transfer to a node that is not an OM
/// is an invalid request, a follower answers NOT_LEADER, no quorum is OM_UNAVAILABLE.
impl From<ozone_raft::Error> for OmError {
    fn from(e: ozone_raft::Error) -> Self {
        use ozone_raft::Error as E;
        match e {
            E::NotLeader { leader } => OmError::NotLeader { leader },
            E::UnknownNode(m) => OmError::invalid(m),
            E::Unavailable(m) => OmError::Unavailable(m),
            E::Storage(e) => OmError::Storage(e),
            E::Io { context, source } => OmError::Io { context, source },
            E::Transport(e) => OmError::Transport(e),
            E::Internal(m) => OmError::Internal(m),
            e @ (E::Corrupt { .. } | E::State(_)) => OmError::Internal(e.to_string()),
        }
    }
}

/// The gRPC code that goes with each status.
pub fn grpc_code(status: OmStatus) -> Code {
    use OmStatus::*;
    match status {
        Ok => Code::Ok,
        InternalError => Code::Internal,
        InvalidRequest | InvalidPart | InvalidPartOrder | EntityTooSmall => Code::InvalidArgument,
        DetectedLoopInBucketLinks => Code::InvalidArgument,
        VolumeNotFound | BucketNotFound | KeyNotFound | NoSuchMultipartUpload => Code::NotFound,
        VolumeAlreadyExists | BucketAlreadyExists => Code::AlreadyExists,
        VolumeNotEmpty | BucketNotEmpty | NotLeader | PreconditionFailed => {
            Code::FailedPrecondition
        }
        ScmUnavailable | OmUnavailable => Code::Unavailable,
        PermissionDenied | InvalidAccessKey | SignatureMismatch => Code::PermissionDenied,
    }
}

/// Builds the status a client sees for `status`, with the `x-om-*` metadata.
pub fn to_grpc(
    status: OmStatus,
    message: &str,
    owner: Option<&str>,
    leader: Option<&str>,
) -> tonic::Status {
    let mut st = tonic::Status::new(grpc_code(status), message);
    let md = st.metadata_mut();
    md.insert(
        STATUS_HEADER,
        MetadataValue::from_static(status.as_str_name()),
    );
    for (key, value) in [(OWNER_HEADER, owner), (LEADER_HEADER, leader)] {
        if let Some(v) = value {
            let encoded = utf8_percent_encode(v, HEADER_ESCAPE).to_string();
            match MetadataValue::try_from(encoded.as_str()) {
                Ok(v) => {
                    md.insert(key, v);
                }
                Err(e) => tracing::warn!(key, error = %e, "cannot send metadata value"),
            }
        }
    }
    st
}

impl From<OmError> for tonic::Status {
    fn from(e: OmError) -> Self {
        match &e {
            OmError::Rejected(r) => {
                tracing::debug!(status = r.status.as_str_name(), message = %r.message, "request rejected");
                to_grpc(r.status, &r.message, r.owner.as_deref(), None)
            }
            OmError::ScmUnavailable(m) => {
                tracing::warn!(error = %m, "SCM unavailable");
                to_grpc(OmStatus::ScmUnavailable, &e.to_string(), None, None)
            }
            OmError::NotLeader { leader } => {
                tracing::debug!(leader = ?leader, "not the leader");
                to_grpc(OmStatus::NotLeader, &e.to_string(), None, leader.as_deref())
            }
            OmError::Unavailable(m) => {
                tracing::warn!(error = %m, "OM service unavailable");
                to_grpc(OmStatus::OmUnavailable, &e.to_string(), None, None)
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                to_grpc(OmStatus::InternalError, &e.to_string(), None, None)
            }
        }
    }
}

/// Serializes an [`OmStatus`] by its stable proto name.
mod status_name {
    use ozone_proto::om::OmStatus;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &OmStatus, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<OmStatus, D::Error> {
        let name = String::deserialize(de)?;
        OmStatus::from_str_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown OmStatus {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_travels_in_metadata() {
        let st: tonic::Status = OmError::Rejected(Rejection {
            status: OmStatus::BucketAlreadyExists,
            message: "exists".into(),
            owner: Some("jürgen%x".into()),
        })
        .into();
        assert_eq!(st.code(), Code::AlreadyExists);
        assert_eq!(
            st.metadata()
                .get(STATUS_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("BUCKET_ALREADY_EXISTS")
        );
        assert_eq!(
            st.metadata()
                .get(OWNER_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some("j%C3%BCrgen%25x")
        );
    }

    #[test]
    fn rejection_round_trips_through_serde() {
        let r = Rejection::new(OmStatus::InvalidPartOrder, "bad order");
        let json = serde_json::to_string(&r).expect("serializes");
        assert!(json.contains("INVALID_PART_ORDER"));
        let back: Rejection = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, r);
    }
}
