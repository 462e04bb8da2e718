//! A pool of gRPC channels to datanodes, keyed by endpoint, connected lazily and shared by every
//! writer and reader of a process. Cloning the pool is cheap (one `Arc`).
//!
//! The pool also holds the deadlines of datanode calls ([`Timeouts`]: Ozone-like
//! `ozone.client.*` keys) and remembers, for [`SUSPECT_FOR`], the datanodes that recently missed
//! one (hung, e.g. SIGSTOPped, or far slower than their peers): reads try them last and key
//! writers ask for blocks elsewhere. Slow is not dead: nothing else is decided from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_common::{ConfigError, OzoneConfig};
use ozone_proto::MAX_MESSAGE_BYTES;
use ozone_proto::datanode::datanode_service_client::DatanodeServiceClient;
use ozone_proto::hdds::DatanodeDetails;
use tonic::transport::{Channel, Endpoint};

use crate::error::DatanodeClientError;

/// Default time allowed to open a TCP connection to a datanode.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time allowed for any single step of a request: a unary call, one streamed message
/// accepted by a replica, or one streamed response arriving, when no other replica can take over.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a read waits for one step on a replica while another replica could serve it.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Default time a replica of a block write may lag behind a majority that finished a step.
pub const DEFAULT_WRITE_LAG_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a datanode that missed a deadline stays suspected (read last, avoided by writers).
pub const SUSPECT_FOR: Duration = Duration::from_secs(30);

/// Deadlines of datanode calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a TCP connection (`ozone.client.connection.timeout`).
    pub connect: Duration,
    /// One step when no other replica can take over (`ozone.client.request.timeout`).
    pub request: Duration,
    /// One step of a read while another replica could serve it (`ozone.client.read.timeout`).
    pub read: Duration,
    /// How long a write replica may lag behind a majority that finished a step
    /// (`ozone.client.write.lag.timeout`).
    pub write_lag: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            request: DEFAULT_RPC_TIMEOUT,
            read: DEFAULT_READ_TIMEOUT,
            write_lag: DEFAULT_WRITE_LAG_TIMEOUT,
        }
    }
}

impl Timeouts {
    /// The four `ozone.client.*` deadline keys of `cfg`.
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, ConfigError> {
        let get = |key: ozone_common::config::Key| -> Result<Duration, ConfigError> {
            let d = cfg.get_duration(key)?;
            if d.is_zero() {
                return Err(ConfigError::invalid(key, "must be above 0"));
            }
            Ok(d)
        };
        Ok(Timeouts {
            connect: get(keys::OZONE_CLIENT_CONNECTION_TIMEOUT)?,
            request: get(keys::OZONE_CLIENT_REQUEST_TIMEOUT)?,
            read: get(keys::OZONE_CLIENT_READ_TIMEOUT)?,
            write_lag: get(keys::OZONE_CLIENT_WRITE_LAG_TIMEOUT)?,
        })
    }
}

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
    timeouts: Timeouts,
    /// Rotates the first replica tried by reads, to spread load.
    next_replica: AtomicUsize,
    /// Datanode uuid -> when it last missed a deadline.
    suspects: Mutex<HashMap<String, Instant>>,
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
        Self::with(Timeouts {
            connect: connect_timeout,
            request: rpc_timeout,
            read: rpc_timeout.min(DEFAULT_READ_TIMEOUT),
            write_lag: rpc_timeout.min(DEFAULT_WRITE_LAG_TIMEOUT),
        })
    }

    /// A pool with these deadlines.
    pub fn with(timeouts: Timeouts) -> Self {
        DatanodeClients {
            inner: Arc::new(Inner {
                channels: Mutex::new(HashMap::new()),
                timeouts,
                next_replica: AtomicUsize::new(0),
                suspects: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A pool with the deadlines of `cfg` ([`Timeouts::from_config`]).
    pub fn from_config(cfg: &OzoneConfig) -> Result<Self, ConfigError> {
        Ok(Self::with(Timeouts::from_config(cfg)?))
    }

    /// Time allowed for one step of a request when no other replica can take over (see
    /// [`DEFAULT_RPC_TIMEOUT`]).
    pub fn rpc_timeout(&self) -> Duration {
        self.inner.timeouts.request
    }

    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    /// Records that `uuid` missed a deadline: for [`SUSPECT_FOR`] reads try it last and key
    /// writers ask for blocks without it.
    pub fn suspect(&self, uuid: &str) {
        self.lock_suspects()
            .insert(uuid.to_string(), Instant::now());
    }

    /// Datanodes that missed a deadline within [`SUSPECT_FOR`].
    pub fn suspects(&self) -> Vec<String> {
        let mut suspects = self.lock_suspects();
        suspects.retain(|_, at| at.elapsed() < SUSPECT_FOR);
        suspects.keys().cloned().collect()
    }

    fn lock_suspects(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.inner
            .suspects
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let settings = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| DatanodeClientError::InvalidEndpoint {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?
            .connect_timeout(self.inner.timeouts.connect)
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20));
        let channel = ozone_common::tls::channel(settings, ozone_common::tls::NodeRole::Datanode);
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

    /// The order in which a read tries `nodes`: [`DatanodeClients::rotated`], with the
    /// suspected datanodes moved to the end.
    pub(crate) fn read_order(&self, nodes: &[DatanodeDetails]) -> Vec<DatanodeDetails> {
        let mut order = self.rotated(nodes);
        let suspects = self.suspects();
        if !suspects.is_empty() {
            // Stable: the rotation is kept among the trusted and among the suspected.
            order.sort_by_key(|n| suspects.contains(&n.uuid));
        }
        order
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uuid: &str) -> DatanodeDetails {
        DatanodeDetails {
            uuid: uuid.into(),
            host: "127.0.0.1".into(),
            port: 1,
            http_port: 0,
        }
    }

    #[test]
    fn suspected_datanodes_are_read_last() {
        let pool = DatanodeClients::new();
        let nodes = vec![node("a"), node("b"), node("c")];
        pool.suspect("a");
        for _ in 0..3 {
            let order: Vec<String> = pool
                .read_order(&nodes)
                .into_iter()
                .map(|n| n.uuid)
                .collect();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], "a", "{order:?}");
        }
        assert_eq!(pool.suspects(), vec!["a".to_string()]);
    }

    #[test]
    fn timeouts_come_from_the_ozone_client_keys() {
        let mut cfg = OzoneConfig::default();
        assert_eq!(
            Timeouts::from_config(&cfg).expect("defaults"),
            Timeouts::default()
        );
        cfg.set(keys::OZONE_CLIENT_READ_TIMEOUT, "750ms");
        cfg.set(keys::OZONE_CLIENT_WRITE_LAG_TIMEOUT, "1s");
        let t = Timeouts::from_config(&cfg).expect("valid");
        assert_eq!(t.read, Duration::from_millis(750));
        assert_eq!(t.write_lag, Duration::from_secs(1));
        cfg.set(keys::OZONE_CLIENT_REQUEST_TIMEOUT, "0s");
        assert!(Timeouts::from_config(&cfg).is_err());
    }
}
