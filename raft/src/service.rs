//! The server side of `ozone.raft.RaftService`: the raft RPCs the other nodes of the group send
//! to this one, and the HA admin calls (`ozone admin om|scm roles|transfer`). The role serves
//! it on its gRPC port and says how an [`Error`] reaches its clients (its own status codes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::SnapshotSegmentId;
use openraft::error::{InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{InstallSnapshotRequest, InstallSnapshotResponse};
use ozone_proto::raft::raft_service_server::RaftService;
use ozone_proto::raft::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::node::RaftNode;
use crate::{Error, NodeId, Role, TypeConfig};

/// How long a leadership transfer may take before it is reported as failed.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(20);

/// Largest snapshot a node receives (256 GiB: some 300 million OM keys); a bigger one is
/// refused before it is written.
pub const MAX_SNAPSHOT_BYTES: u64 = 256 << 30;

/// How the role answers an [`Error`] of the node (transfer, election) to a gRPC client.
pub type StatusOf = fn(Error) -> Status;

/// `RaftService` over the node of role `R`.
pub struct RaftGrpc<R: Role> {
    node: Arc<RaftNode<R>>,
    receiving: ChunkGuard,
    status_of: StatusOf,
}

impl<R: Role> RaftGrpc<R> {
    /// Serves `node`; the node's errors reach clients as `status_of` makes them.
    pub fn new(node: Arc<RaftNode<R>>, status_of: StatusOf) -> Self {
        RaftGrpc {
            node,
            receiving: ChunkGuard::default(),
            status_of,
        }
    }
}

/// The snapshot being received: its id and how many bytes of it were written.
#[derive(Default)]
struct ChunkGuard(Mutex<Option<(String, u64)>>);

impl ChunkGuard {
    /// Checks a snapshot chunk before openraft writes it: it must start within what was
    /// received of its snapshot (a gap is answered as openraft answers a chunk of a stream it
    /// does not know: the leader starts over at 0) and end within [`MAX_SNAPSHOT_BYTES`].
    fn check_chunk(
        &self,
        id: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<InstallSnapshotError>, Status> {
        let received = match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((current, end)) if current == id => *end,
            _ => 0,
        };
        if offset > received {
            tracing::warn!(
                snapshot = id,
                offset,
                received,
                "snapshot chunk after a gap"
            );
            return Ok(Some(InstallSnapshotError::SnapshotMismatch(
                SnapshotMismatch {
                    expect: SnapshotSegmentId {
                        id: id.to_string(),
                        offset: received,
                    },
                    got: SnapshotSegmentId {
                        id: id.to_string(),
                        offset,
                    },
                },
            )));
        }
        match offset.checked_add(len as u64) {
            Some(end) if end <= MAX_SNAPSHOT_BYTES => Ok(None),
            _ => {
                tracing::warn!(snapshot = id, offset, len, "snapshot over the size limit");
                Err(Status::resource_exhausted(format!(
                    "snapshot {id} is over {MAX_SNAPSHOT_BYTES} bytes"
                )))
            }
        }
    }

    /// Records a chunk openraft wrote (`end` is where it ended); forgets a finished snapshot.
    fn received_chunk(&self, id: &str, end: u64, done: bool) {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *r = match r.take() {
            _ if done => None,
            Some((current, e)) if current == id => Some((current, e.max(end))),
            _ => Some((id.to_string(), end)),
        };
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
impl<R: Role> RaftService for RaftGrpc<R> {
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
        let req: InstallSnapshotRequest<TypeConfig<R>> = InstallSnapshotRequest {
            vote: decode("vote", &c.vote_json)?,
            meta: decode("snapshot meta", &c.meta_json)?,
            offset: c.offset,
            data: c.data,
            done: c.done,
        };
        let id = req.meta.snapshot_id.clone();
        if let Some(mismatch) = self
            .receiving
            .check_chunk(&id, req.offset, req.data.len())?
        {
            let refused: Result<InstallSnapshotResponse<NodeId>, _> =
                Err(RaftError::<NodeId, _>::APIError(mismatch));
            return reply(&refused);
        }
        let (end, done) = (req.offset + req.data.len() as u64, req.done);
        let result = self.node.raft().install_snapshot(req).await;
        if result.is_ok() {
            self.receiving.received_chunk(&id, end, done);
        }
        reply(&result)
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
            .map_err(self.status_of)?;
        Ok(Response::new(TransferLeaderResponse {
            leader_node_id: leader,
        }))
    }

    async fn start_election(
        &self,
        _: Request<StartElectionRequest>,
    ) -> Result<Response<StartElectionResponse>, Status> {
        self.node.start_election().await.map_err(self.status_of)?;
        Ok(Response::new(StartElectionResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_must_follow_what_was_received_and_stay_under_the_limit() {
        let g = ChunkGuard::default();
        assert!(matches!(g.check_chunk("s1", 0, 10), Ok(None)));
        // A chunk far ahead (a huge offset) is refused as a mismatch: the leader restarts.
        assert!(matches!(
            g.check_chunk("s1", 1 << 50, 10),
            Ok(Some(InstallSnapshotError::SnapshotMismatch(m))) if m.expect.offset == 0
        ));
        g.received_chunk("s1", 10, false);
        // The next chunk, or a resent one, is fine; one after a gap is not.
        assert!(matches!(g.check_chunk("s1", 10, 10), Ok(None)));
        assert!(matches!(g.check_chunk("s1", 0, 10), Ok(None)));
        assert!(matches!(g.check_chunk("s1", 11, 10), Ok(Some(_))));
        // Another snapshot starts from 0.
        assert!(matches!(g.check_chunk("s2", 10, 10), Ok(Some(_))));
        // Nothing ends past the limit, and an offset + length overflow is refused.
        assert!(g.check_chunk("s1", 10, usize::MAX).is_err());
        g.received_chunk("s1", MAX_SNAPSHOT_BYTES, false);
        assert!(matches!(
            g.check_chunk("s1", MAX_SNAPSHOT_BYTES - 1, 1),
            Ok(None)
        ));
        assert!(g.check_chunk("s1", MAX_SNAPSHOT_BYTES, 1).is_err());
        // A finished snapshot is forgotten.
        g.received_chunk("s1", 20, true);
        assert!(matches!(g.check_chunk("s1", 10, 1), Ok(Some(_))));
    }
}
