//! Generated protobuf and gRPC types of every Ozone-RS service.
//!
//! `hdds` holds the types shared by all protocols, `datanode`, `scm` and `om` one service each; `raft` is the replication
//! between the nodes of a replicated role (OM, SCM) and its HA administration.
//! Server crates convert these into their domain types at the service boundary.
#![allow(clippy::all)]

pub mod hdds {
    tonic::include_proto!("ozone.hdds");
}
pub mod datanode {
    tonic::include_proto!("ozone.datanode");
}
pub mod scm {
    tonic::include_proto!("ozone.scm");
}
pub mod om {
    tonic::include_proto!("ozone.om");
}
pub mod raft {
    tonic::include_proto!("ozone.raft");
}

/// Largest gRPC message any Ozone-RS service accepts or sends (a chunk plus headroom).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

impl std::fmt::Display for hdds::BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.container_id, self.local_id)
    }
}

impl hdds::DatanodeDetails {
    /// `http://host:port` of the datanode's gRPC service.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}
