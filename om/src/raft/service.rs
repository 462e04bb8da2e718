//! `ozone.omraft.OmRaftService`: the raft RPCs other OMs send to this one, and the HA admin
//! calls (`ozone admin om roles|transfer`).

use std::sync::Arc;
use std::time::Duration;

use openraft::raft::InstallSnapshotRequest;
use ozone_proto::om_raft::om_raft_service_server::OmRaftService;
use ozone_proto::om_raft::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::node::RaftNode;
use crate::error::OmError;

/// How long a leadership transfer may take before it is reported as failed.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(20);

pub struct OmRaftGrpc {
    node: Arc<RaftNode>,
}

impl OmRaftGrpc {
    pub fn new(node: Arc<RaftNode>) -> Self {
        OmRaftGrpc { node }
    }
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("bad {what}: {e}")))
}

fn reply<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    serde_json::to_vec(v)
        .map(|json| Response::new(RaftMessage { json }))
        .map_err(|e| Status::internal(format!("encoding a raft reply: {e}")))
}

#[tonic::async_trait]
impl OmRaftService for OmRaftGrpc {
    async fn append_entries(
        &self,
        r: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = decode("AppendEntriesRequest", &r.into_inner().json)?;
        reply(&self.node.raft().append_entries(req).await)
    }

    async fn vote(&self, r: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req = decode("VoteRequest", &r.into_inner().json)?;
        reply(&self.node.raft().vote(req).await)
    }

    async fn install_snapshot(
        &self,
        r: Request<SnapshotChunk>,
    ) -> Result<Response<RaftMessage>, Status> {
        let c = r.into_inner();
        let req = InstallSnapshotRequest {
            vote: decode("vote", &c.vote_json)?,
            meta: decode("snapshot meta", &c.meta_json)?,
            offset: c.offset,
            data: c.data,
            done: c.done,
        };
        reply(&self.node.raft().install_snapshot(req).await)
    }

    async fn node_status(
        &self,
        _: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeStatusResponse>, Status> {
        let s = self.node.status();
        let (leader_node_id, leader_address) =
            s.leader.map(|n| (n.node_id, n.address)).unwrap_or_default();
        Ok(Response::new(NodeStatusResponse {
            node_id: s.node_id,
            raft_id: s.raft_id,
            address: s.address,
            role: s.role.to_string(),
            term: s.term,
            applied_index: s.applied_index,
            last_log_index: s.last_log_index,
            leader_node_id,
            leader_address,
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
        }))
    }

    async fn transfer_leader(
        &self,
        r: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let target = r.into_inner().target_node_id;
        let leader = self
            .node
            .transfer_leader(&target, TRANSFER_DEADLINE)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(TransferLeaderResponse {
            leader_node_id: leader,
        }))
    }

    async fn start_election(
        &self,
        _: Request<StartElectionRequest>,
    ) -> Result<Response<StartElectionResponse>, Status> {
        self.node
            .start_election()
            .await
            .map_err(|e: OmError| Status::from(e))?;
        Ok(Response::new(StartElectionResponse {}))
    }
}
