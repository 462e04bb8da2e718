//! Finding the SCM leader among the SCMs of a service, for [`crate::ScmClient`].
//!
//! A call goes first to the SCM that served last. An answer UNAVAILABLE with the
//! [`crate::LEADER_HEADER`] hint (a follower naming the leader) sends the call there at once,
//! and that SCM becomes the first to try from then on. An answer UNAVAILABLE without a hint (the
//! SCM is down, an election is on, or a new leader is still in safe mode) moves to the next SCM
//! of the list after [`FAILOVER_PAUSE`], round and round, until the failover window has passed;
//! then the call fails as unavailable with the last refusal. Any other answer is final. A call
//! that timed out is not sent again (it may have been carried out).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::pb::scm_client_service_client::ScmClientServiceClient;
use crate::{CALL_TIMEOUT, CONNECT_TIMEOUT, LEADER_HEADER, Result, ScmClientError, channel};
use tonic::transport::Channel;

/// How long a call keeps looking for the SCM leader of an HA service: a little more than a new
/// SCM leader needs to be elected and leave its safe mode after a failover.
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(30);
/// Pause before trying the next SCM when one refused without naming the leader or is down.
pub const FAILOVER_PAUSE: Duration = Duration::from_millis(200);
/// Hints followed in a row without a pause: a follower naming a stale leader that names the
/// first follower back must not keep the call spinning.
const MAX_HOPS: usize = 4;
/// Leader addresses learned from hints and not in the configured list, at most.
const MAX_EXTRA_NODES: usize = 8;

/// Timeouts and failover window of a [`crate::ScmClient`].
#[derive(Clone, Copy, Debug)]
pub struct FailoverOptions {
    /// Time allowed to establish a connection to one SCM.
    pub connect_timeout: Duration,
    /// Time allowed for one call to one SCM.
    pub call_timeout: Duration,
    /// How long a call keeps trying SCMs that refuse without a hint or are down (zero: one
    /// round, no waiting).
    pub window: Duration,
    /// Pause between two SCMs tried without a hint.
    pub pause: Duration,
}

impl Default for FailoverOptions {
    fn default() -> Self {
        FailoverOptions {
            connect_timeout: CONNECT_TIMEOUT,
            call_timeout: CALL_TIMEOUT,
            window: FAILOVER_WINDOW,
            pause: FAILOVER_PAUSE,
        }
    }
}

type Client = ScmClientServiceClient<Channel>;

#[derive(Clone, Debug)]
struct Node {
    address: String,
    client: Client,
}

#[derive(Debug)]
struct Shared {
    nodes: RwLock<Vec<Node>>,
    /// Index in `nodes` of the SCM that served last (or was named leader).
    leader: AtomicUsize,
    configured: usize,
    options: FailoverOptions,
}

/// The SCMs of a service and the one believed to lead. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Failover {
    shared: Arc<Shared>,
}

/// `host:port` of an address given as `host:port` or `http://host:port`.
fn bare(addr: &str) -> &str {
    addr.split_once("://").map_or(addr, |(_, rest)| rest)
}

fn node(address: &str, options: &FailoverOptions) -> Result<Node> {
    let client = ScmClientServiceClient::new(channel(
        address,
        options.connect_timeout,
        options.call_timeout,
    )?)
    .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
    .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES);
    Ok(Node {
        address: bare(address).to_string(),
        client,
    })
}

/// The leader a refusal names, if it is a follower's refusal.
fn leader_hint(status: &tonic::Status) -> Option<String> {
    if status.code() != tonic::Code::Unavailable {
        return None;
    }
    let hint = status.metadata().get(LEADER_HEADER)?.to_str().ok()?.trim();
    (!hint.is_empty()).then(|| bare(hint).to_string())
}

impl Failover {
    pub(crate) fn new(addrs: &[String], options: FailoverOptions) -> Result<Self> {
        let nodes = addrs
            .iter()
            .map(|a| node(a, &options))
            .collect::<Result<Vec<_>>>()?;
        if nodes.is_empty() {
            return Err(ScmClientError::InvalidAddress {
                addr: String::new(),
                message: "no SCM address given".into(),
            });
        }
        Ok(Failover {
            shared: Arc::new(Shared {
                configured: nodes.len(),
                nodes: RwLock::new(nodes),
                leader: AtomicUsize::new(0),
                options,
            }),
        })
    }

    fn nodes(&self) -> std::sync::RwLockReadGuard<'_, Vec<Node>> {
        self.shared.nodes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The node at `index` (wrapped round the list) with its index.
    fn node_at(&self, index: usize) -> (usize, Node) {
        let nodes = self.nodes();
        // `new` refuses an empty list and nodes are never removed.
        let index = index % nodes.len();
        (index, nodes[index].clone())
    }

    pub(crate) fn current_address(&self) -> String {
        self.node_at(self.shared.leader.load(Ordering::Relaxed))
            .1
            .address
    }

    /// Index of the SCM at `address`, added to the list if it is a new one (at most
    /// [`MAX_EXTRA_NODES`] such).
    fn index_of(&self, address: &str) -> Option<usize> {
        if let Some(i) = self.nodes().iter().position(|n| n.address == address) {
            return Some(i);
        }
        let mut nodes = self.shared.nodes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = nodes.iter().position(|n| n.address == address) {
            return Some(i);
        }
        if nodes.len() >= self.shared.configured + MAX_EXTRA_NODES {
            return None;
        }
        let n = node(address, &self.shared.options).ok()?;
        nodes.push(n);
        Some(nodes.len() - 1)
    }

    /// Sends `request` with `send` to the SCM leader (see the module doc).
    pub(crate) async fn call<Req, T, F, Fut>(&self, request: Req, mut send: F) -> Result<T>
    where
        Req: Clone,
        F: FnMut(Client, Req) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let options = self.shared.options;
        let deadline = tokio::time::Instant::now() + options.window;
        let (mut index, _) = self.node_at(self.shared.leader.load(Ordering::Relaxed));
        let mut hops = 0;
        // Tried without a hint since the last hint: one round of the list at least, even with
        // no window.
        let mut tried = 0;
        loop {
            let (i, node) = self.node_at(index);
            index = i;
            let status = match send(node.client, request.clone()).await {
                Ok(reply) => {
                    self.shared.leader.store(index, Ordering::Relaxed);
                    return Ok(reply.into_inner());
                }
                Err(status) if status.code() == tonic::Code::Unavailable => status,
                Err(status) => return Err(status.into()),
            };
            if hops < MAX_HOPS
                && let Some(leader) = leader_hint(&status)
                && let Some(next) = self.index_of(&leader)
                && next != index
            {
                hops += 1;
                tried = 0;
                index = next;
                self.shared.leader.store(index, Ordering::Relaxed);
                continue;
            }
            hops = 0;
            tried += 1;
            let round_done = tried >= self.nodes().len();
            if round_done && tokio::time::Instant::now() + options.pause > deadline {
                if options.window.is_zero() {
                    // Not waiting for a leader: the SCM's own answer, as it is.
                    return Err(status.into());
                }
                let message = format!(
                    "{} (SCM {}; no SCM leader answered within {:?})",
                    status.message(),
                    node.address,
                    options.window
                );
                return Err(ScmClientError::Unavailable(message));
            }
            tokio::time::sleep(options.pause).await;
            index += 1;
        }
    }
}
