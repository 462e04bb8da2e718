//! A pool of gRPC channels to datanodes, keyed by endpoint, connected lazily and shared by every
//! writer and reader of a process. Cloning the pool is cheap (one `Arc`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ozone_proto::MAX_MESSAGE_BYTES;
use ozone_proto::datanode::datanode_service_client::DatanodeServiceClient;
use ozone_proto::hdds::DatanodeDetails;
use tonic::transport::{Channel, Endpoint};

use crate::error::DatanodeClientError;

/// Default time allowed to open a TCP connection to a datanode.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time allowed for any single step of a request: a unary call, one streamed message
/// accepted by a replica, or one streamed response arriving.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 windows large enough that a 4 MiB chunk is not throttled by flow control.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Shared, lazily connected channels to datanodes.
#[derive(Clone)]
pub struct DatanodeClients {
    inner: Arc<Inner>,
}

struct Inner {
    channels: Mutex<HashMap<String, Channel>>,
    connect_timeout: Duration,
    rpc_timeout: Duration,
    /// Rotates the first replica tried by reads, to spread load.
    next_replica: AtomicUsize,
}

impl Default for DatanodeClients {
    fn default() -> Self {
        Self::new()
    }
}

impl DatanodeClients {
    pub fn new() -> Self {
        Self::with_timeouts(DEFAULT_CONNECT_TIMEOUT, DEFAULT_RPC_TIMEOUT)
    }

    pub fn with_timeouts(connect_timeout: Duration, rpc_timeout: Duration) -> Self {
        DatanodeClients {
            inner: Arc::new(Inner {
                channels: Mutex::new(HashMap::new()),
                connect_timeout,
                rpc_timeout,
                next_replica: AtomicUsize::new(0),
            }),
        }
    }

    /// Time allowed for one step of a request (see [`DEFAULT_RPC_TIMEOUT`]).
    pub fn rpc_timeout(&self) -> Duration {
        self.inner.rpc_timeout
    }

    /// The channel to `node`, created on first use. Connecting happens on the first request;
    /// a broken connection is re-established by the channel itself. Must be called inside a
    /// tokio runtime (the channel's worker task is spawned on it).
    pub fn channel(&self, node: &DatanodeDetails) -> Result<Channel, DatanodeClientError> {
        let endpoint = node.endpoint();
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(ch) = channels.get(&endpoint) {
            return Ok(ch.clone());
        }
        let channel = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| DatanodeClientError::InvalidEndpoint {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?
            .connect_timeout(self.inner.connect_timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .connect_lazy();
        channels.insert(endpoint, channel.clone());
        Ok(channel)
    }

    /// A typed client of `node` with the message size limits of every Ozone-RS service.
    pub fn client(
        &self,
        node: &DatanodeDetails,
    ) -> Result<DatanodeServiceClient<Channel>, DatanodeClientError> {
        Ok(DatanodeServiceClient::new(self.channel(node)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// `nodes` rotated so that successive calls start at successive replicas.
    pub(crate) fn rotated(&self, nodes: &[DatanodeDetails]) -> Vec<DatanodeDetails> {
        if nodes.is_empty() {
            return Vec::new();
        }
        let start = self.inner.next_replica.fetch_add(1, Ordering::Relaxed) % nodes.len();
        nodes[start..]
            .iter()
            .chain(&nodes[..start])
            .cloned()
            .collect()
    }
}
