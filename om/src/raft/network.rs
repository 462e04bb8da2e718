//! The raft network: openraft's RPCs to the other OMs over their `OmRaftService` (tonic, on
//! the OM gRPC port), carried as serde JSON. One lazy channel per peer, shared by every stream.
// openraft's error types (`StorageError`, `RPCError`) are large; they are its API.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use ozone_proto::om_raft::om_raft_service_client::OmRaftServiceClient;
use ozone_proto::om_raft::{RaftMessage, SnapshotChunk};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use super::{NodeId, OmNode, TypeConfig};

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Makes clients for peers; resolves a peer's address from the configuration first (so a
/// changed address takes effect), else from the membership.
#[derive(Clone)]
pub struct Network {
    me: NodeId,
    configured: Arc<HashMap<NodeId, String>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Network {
    pub fn new(me: NodeId, configured: HashMap<NodeId, String>) -> Self {
        Network {
            me,
            configured: Arc::new(configured),
            channels: Arc::default(),
        }
    }

    /// The shared channel to `address`.
    pub fn channel(&self, address: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{address}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(address.to_string(), c.clone());
        Ok(c)
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &OmNode) -> PeerClient {
        let address = self
            .configured
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.address.clone());
        let client = self.channel(&address).map(|c| {
            OmRaftServiceClient::new(c)
                .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
        });
        if let Err(e) = &client {
            tracing::warn!(%address, error = %e, "bad OM peer address");
        }
        PeerClient {
            me: self.me,
            target,
            address,
            client: client.ok(),
        }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    me: NodeId,
    target: NodeId,
    address: String,
    client: Option<OmRaftServiceClient<Channel>>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, OmNode, RaftError<NodeId, E>>>;

fn to_json<T: Serialize, E: std::error::Error>(
    v: &T,
) -> Result<Vec<u8>, RPCError<NodeId, OmNode, E>> {
    serde_json::to_vec(v).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl PeerClient {
    fn client<E: std::error::Error>(
        &self,
    ) -> Result<OmRaftServiceClient<Channel>, RPCError<NodeId, OmNode, E>> {
        self.client.clone().ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(format!(
                "bad address {}",
                self.address
            ))))
        })
    }

    /// Runs one call with the option's deadline; maps transport failures.
    async fn call<Resp, E, F, Fut>(
        &self,
        option: &RPCOption,
        action: openraft::network::RPCTypes,
        f: F,
    ) -> Result<Resp, RPCError<NodeId, OmNode, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(OmRaftServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<RaftMessage>, tonic::Status>>,
    {
        let client = self.client()?;
        let ttl = option.hard_ttl();
        let reply = match tokio::time::timeout(ttl, f(client)).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.me,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Ok(Err(status)) => {
                return Err(match status.code() {
                    tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
                    _ => RPCError::Network(NetworkError::new(&status)),
                });
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.json)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let json = to_json(&rpc)?;
        self.call(
            &option,
            openraft::network::RPCTypes::AppendEntries,
            |mut c| async move { c.append_entries(RaftMessage { json }).await },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let chunk = SnapshotChunk {
            vote_json: to_json(&rpc.vote)?,
            meta_json: to_json(&rpc.meta)?,
            offset: rpc.offset,
            data: rpc.data,
            done: rpc.done,
        };
        self.call(
            &option,
            openraft::network::RPCTypes::InstallSnapshot,
            |mut c| async move { c.install_snapshot(chunk).await },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let json = to_json(&rpc)?;
        self.call(
            &option,
            openraft::network::RPCTypes::Vote,
            |mut c| async move { c.vote(RaftMessage { json }).await },
        )
        .await
    }
}
