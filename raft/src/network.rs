//! The raft network: openraft's RPCs to the other OMs over their `RaftService` (tonic, on
//! the OM gRPC port), carried as serde JSON. One lazy channel per peer, shared by every stream.
// openraft's error types (`StorageError`, `RPCError`) are large; they are its API.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::marker::PhantomData;
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
use ozone_proto::raft::raft_service_client::RaftServiceClient;
use ozone_proto::raft::{RaftMessage, SnapshotChunk};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::{NodeId, Peer, Role, TypeConfig};

/// How long a connection attempt to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Makes clients for peers; resolves a peer's address from the configuration first (so a
/// changed address takes effect), else from the membership.
pub struct Network<R> {
    me: NodeId,
    configured: Arc<HashMap<NodeId, String>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    role: PhantomData<fn() -> R>,
}

impl<R> Clone for Network<R> {
    fn clone(&self) -> Self {
        Network {
            me: self.me,
            configured: self.configured.clone(),
            channels: self.channels.clone(),
            role: PhantomData,
        }
    }
}

impl<R: Role> Network<R> {
    /// The network of node `me`; `configured` are the peers' addresses from the configuration.
    pub fn new(me: NodeId, configured: HashMap<NodeId, String>) -> Self {
        Network {
            me,
            configured: Arc::new(configured),
            channels: Arc::default(),
            role: PhantomData,
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
        let endpoint = Endpoint::from_shared(format!("http://{address}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        // With mutual TLS the peer must hold a certificate of this role.
        let c = ozone_common::tls::channel(endpoint, R::NODE_ROLE);
        channels.insert(address.to_string(), c.clone());
        Ok(c)
    }

    /// A `RaftService` client of the node at `address` (on the shared channel).
    pub fn client(&self, address: &str) -> Result<RaftServiceClient<Channel>, crate::Error> {
        Ok(RaftServiceClient::new(self.channel(address)?)
            .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES))
    }
}

impl<R: Role> RaftNetworkFactory<TypeConfig<R>> for Network<R> {
    type Network = PeerClient<R>;

    async fn new_client(&mut self, target: NodeId, node: &Peer) -> PeerClient<R> {
        let address = self
            .configured
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.address.clone());
        let client = self.client(&address);
        if let Err(e) = &client {
            tracing::warn!(role = R::NAME, %address, error = %e, "bad peer address");
        }
        PeerClient {
            me: self.me,
            target,
            address,
            client: client.ok(),
            role: PhantomData,
        }
    }
}

/// The connection to one peer.
pub struct PeerClient<R> {
    me: NodeId,
    target: NodeId,
    address: String,
    client: Option<RaftServiceClient<Channel>>,
    role: PhantomData<fn() -> R>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Peer, RaftError<NodeId, E>>>;

fn to_json<T: Serialize, E: std::error::Error>(
    v: &T,
) -> Result<Vec<u8>, RPCError<NodeId, Peer, E>> {
    serde_json::to_vec(v).map_err(|e| RPCError::Network(NetworkError::new(&e)))
}

impl<R> PeerClient<R> {
    fn client<E: std::error::Error>(
        &self,
    ) -> Result<RaftServiceClient<Channel>, RPCError<NodeId, Peer, E>> {
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
    ) -> Result<Resp, RPCError<NodeId, Peer, RaftError<NodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        F: FnOnce(RaftServiceClient<Channel>) -> Fut,
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

impl<R: Role> RaftNetwork<TypeConfig<R>> for PeerClient<R> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig<R>>,
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
        rpc: InstallSnapshotRequest<TypeConfig<R>>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let done = rpc.done;
        let chunk = SnapshotChunk {
            vote_json: to_json(&rpc.vote)?,
            meta_json: to_json(&rpc.meta)?,
            offset: rpc.offset,
            data: rpc.data,
            done,
        };
        let answer = self
            .call(
                &option,
                openraft::network::RPCTypes::InstallSnapshot,
                |mut c| async move { c.install_snapshot(chunk).await },
            )
            .await;
        if done {
            // Sending a snapshot of hundreds of MiB in chunks leaves freed buffers behind.
            ozone_common::heap::trim("snapshot sent");
        }
        answer
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
