//! One node of a role's raft group: starts openraft on the log store and the role's state
//! machine, joins (or forms) the group, and answers the HA questions: who leads, this node's
//! status, leadership transfer.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::ServerState;
use openraft::error::{InitializeError, RaftError};
use ozone_proto::raft::StartElectionRequest;

use crate::log_store::{LogStats, LogStore};
use crate::network::Network;
use crate::state_machine::{Machine, SNAPSHOT_DIR, StateStore};
use crate::{Error, NodeId, Peer, Raft, Role, Settings};

/// What `ozone admin om|scm roles` shows of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: String,
    pub raft_id: NodeId,
    pub address: String,
    /// LEADER, FOLLOWER, CANDIDATE or LEARNER.
    pub role: &'static str,
    pub term: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub leader: Option<Peer>,
}

/// A running raft node of role `R`.
pub struct RaftNode<R: Role> {
    raft: Raft<R>,
    settings: Settings,
    network: Network<R>,
    log_stats: Arc<LogStats>,
    log_open: Weak<()>,
    sm: Weak<dyn Any + Send + Sync>,
    /// When this node last became leader (its term and the moment): a transfer waits out the
    /// lease openraft starts at that moment, during which this node refuses every vote.
    leader_since: Arc<std::sync::Mutex<Option<(u64, tokio::time::Instant)>>>,
}

impl<R: Role> RaftNode<R> {
    /// Opens the log in `db_dir`, starts openraft over `sm` (its snapshots in
    /// `<db_dir>/snapshot`) and, when this node's log is empty, initializes the group with
    /// every configured node (every node of a new service does this with the same membership,
    /// which makes the same first entry; the election sorts out the rest). Serving the raft
    /// RPCs is the caller's part ([`crate::service::RaftGrpc`] on its gRPC server).
    pub async fn start<S: StateStore<Role = R>>(
        settings: Settings,
        db_dir: &Path,
        sm: Arc<S>,
    ) -> Result<Arc<Self>, Error> {
        let dir = db_dir.to_path_buf();
        let log = tokio::task::spawn_blocking(move || LogStore::<R>::open(&dir))
            .await
            .map_err(|e| Error::Internal(format!("opening the raft log: {e}")))??;
        let log_stats = log.stats();
        let log_open = log.writer_alive();
        let sm_weak: Weak<dyn Any + Send + Sync> = Arc::downgrade(&sm) as Weak<S>;
        let config = Arc::new(settings.raft_config::<R>()?);
        let configured: HashMap<NodeId, String> = settings
            .peers
            .iter()
            .map(|(id, n)| (*id, n.address.clone()))
            .collect();
        let network = Network::new(settings.my_id(), configured);
        let raft = Raft::<R>::new(
            settings.my_id(),
            config,
            network.clone(),
            log,
            Machine::open(sm, &db_dir.join(SNAPSHOT_DIR))?,
        )
        .await
        .map_err(|e| Error::Internal(format!("starting raft: {e}")))?;
        let members: BTreeMap<NodeId, Peer> = settings.peers.clone();
        match raft.initialize(members).await {
            Ok(()) => {
                tracing::info!(
                    role = R::NAME,
                    nodes = settings.peers.len(),
                    "raft group initialized"
                )
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::debug!("raft log present: joining the existing group")
            }
            Err(e) => return Err(Error::Internal(format!("initializing raft: {e}"))),
        }
        let leader_since = Arc::new(std::sync::Mutex::new(None));
        tokio::spawn(track_leadership(raft.metrics(), leader_since.clone()));
        Ok(Arc::new(RaftNode {
            raft,
            settings,
            network,
            log_stats,
            log_open,
            sm: sm_weak,
            leader_since,
        }))
    }

    pub fn raft(&self) -> &Raft<R> {
        &self.raft
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn log_stats(&self) -> &Arc<LogStats> {
        &self.log_stats
    }

    /// The leader this node knows (maybe itself).
    pub fn leader(&self) -> Option<(NodeId, Peer)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = self
            .settings
            .peers
            .get(&id)
            .cloned()
            .or_else(|| m.membership_config.membership().get_node(&id).cloned())?;
        Some((id, node))
    }

    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(m.id)
    }

    pub fn status(&self) -> NodeStatus {
        let m = self.raft.metrics();
        let m = m.borrow();
        let role = match m.state {
            ServerState::Leader => "LEADER",
            ServerState::Follower => "FOLLOWER",
            ServerState::Candidate => "CANDIDATE",
            ServerState::Learner => "LEARNER",
            ServerState::Shutdown => "SHUTDOWN",
        };
        let leader = m.current_leader.and_then(|id| {
            self.settings
                .peers
                .get(&id)
                .cloned()
                .or_else(|| m.membership_config.membership().get_node(&id).cloned())
        });
        NodeStatus {
            node_id: self.settings.me.node_id.clone(),
            raft_id: m.id,
            address: self.settings.me.address.clone(),
            role,
            term: m.current_term,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            last_log_index: m.last_log_index.unwrap_or(0),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
            leader,
        }
    }

    /// Starts an election here now (a leader transferring leadership asks its target).
    pub async fn start_election(&self) -> Result<(), Error> {
        if self.is_leader() {
            return Ok(());
        }
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Error::Internal(format!("starting an election: {e}")))
    }

    /// Moves leadership from this node (the leader) to `target`: waits until the target holds
    /// every entry of the leader's log, then asks it to stand for election; the leader votes
    /// for it (its log is as long), which makes a majority of 2 of 3. Retried until the
    /// target leads or `deadline` passes. Returns the new leader's node id.
    pub async fn transfer_leader(&self, target: &str, deadline: Duration) -> Result<String, Error> {
        let (target_id, target_node) = self
            .settings
            .node(target)
            .map(|(id, n)| (id, n.clone()))
            .ok_or_else(|| {
                Error::UnknownNode(format!("{target} is not a node of the {} service", R::NAME))
            })?;
        if !self.is_leader() {
            return Err(Error::NotLeader {
                leader: self.leader().map(|(_, n)| n.address),
            });
        }
        if target_id == self.settings.my_id() {
            return Ok(target.to_string());
        }
        let until = tokio::time::Instant::now() + deadline;
        let election = self.settings.election_timeout * 3;
        // openraft grants no vote while the leader lease it keeps since its last vote change
        // runs (election_timeout_max): for a leader that is since it was elected. The other
        // followers refuse as long as heartbeats arrive, so this leader's vote is the one the
        // target needs.
        let lease = self.settings.election_timeout * 2 + Duration::from_millis(20);
        let mut attempt = 0u32;
        while tokio::time::Instant::now() < until {
            attempt += 1;
            let since = self.leader_since.lock().map(|g| *g).unwrap_or(None);
            if let Some((_, since)) = since
                && since + lease > tokio::time::Instant::now()
            {
                tokio::time::sleep_until(since + lease).await;
            }
            // Caught up: the target matched the leader's last log index.
            let caught_up = self
                .raft
                .wait(Some(election))
                .metrics(
                    |m| {
                        let last = m.last_log_index;
                        m.replication
                            .as_ref()
                            .and_then(|r| r.get(&target_id).cloned().flatten())
                            .map(|l| Some(l.index))
                            == Some(last)
                    },
                    "target caught up",
                )
                .await
                .is_ok();
            if !caught_up {
                tracing::info!(target, attempt, "transfer: target not caught up yet");
                continue;
            }
            let mut client = self
                .network
                .client(&target_node.address)
                .map_err(|e| Error::Internal(format!("address of {target}: {e}")))?;
            match tokio::time::timeout(election, client.start_election(StartElectionRequest {}))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(target, error = %e, "transfer: target refused"),
                Err(_) => tracing::warn!(target, "transfer: target did not answer"),
            }
            let moved = self
                .raft
                .wait(Some(election))
                .metrics(|m| m.current_leader == Some(target_id), "leader moved")
                .await
                .is_ok();
            if moved {
                tracing::info!(target, attempt, "leadership transferred");
                return Ok(target.to_string());
            }
            if !self.is_leader()
                && let Some((_, n)) = self.leader()
            {
                return Ok(n.node_id);
            }
        }
        Err(Error::Unavailable(format!(
            "leadership did not move to {target} within {deadline:?}"
        )))
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }

    /// Whether raft's tasks still hold the log file or the state machine (besides `others`
    /// references the caller knows of).
    pub fn storage_in_use(&self, others: usize) -> bool {
        self.log_open.upgrade().is_some() || self.sm.strong_count() > others
    }
}

/// Records when this node becomes leader (per term) until raft stops.
async fn track_leadership(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, Peer>>,
    since: Arc<std::sync::Mutex<Option<(u64, tokio::time::Instant)>>>,
) {
    loop {
        let now = {
            let m = metrics.borrow_and_update();
            (m.state == ServerState::Leader).then_some(m.current_term)
        };
        if let Ok(mut s) = since.lock() {
            match (now, *s) {
                (Some(term), Some((t, _))) if t == term => {}
                (Some(term), _) => *s = Some((term, tokio::time::Instant::now())),
                (None, _) => *s = None,
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use ozone_proto::raft::raft_service_server::RaftServiceServer;
    use tonic::transport::server::TcpIncoming;

    use super::*;
    use crate::proposer::{ProposeError, Proposer};
    use crate::service::RaftGrpc;
    use crate::state_machine::tests::{Kv, KvStore};

    /// Polls `f` until it holds, for up to 10 s.
    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < until, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_of_a_toy_role_replicate_and_transfer_leadership() {
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("tmp")).collect();
        let mut listeners = Vec::new();
        let mut peers = Vec::new();
        for i in 1..=3 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            peers.push(Peer {
                node_id: format!("kv{i}"),
                address: l.local_addr().expect("addr").to_string(),
            });
            listeners.push(l);
        }
        let members = crate::peer_map(peers.clone()).expect("distinct ids");
        let (mut nodes, mut stores) = (Vec::new(), Vec::new());
        for (i, l) in listeners.into_iter().enumerate() {
            let settings = Settings {
                me: peers[i].clone(),
                peers: members.clone(),
                snapshot_threshold: 10_000,
                purge_gap: 100,
                election_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_secs(5),
            };
            let store = Arc::new(KvStore::default());
            let node = RaftNode::<Kv>::start(settings, dirs[i].path(), store.clone())
                .await
                .expect("start");
            let svc = RaftServiceServer::new(RaftGrpc::new(node.clone(), |e| {
                tonic::Status::internal(e.to_string())
            }));
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(TcpIncoming::from(l)),
            );
            nodes.push(node);
            stores.push(store);
        }
        // The three start together and may elect more than once: wait until all agree.
        let agreed = |nodes: &[Arc<RaftNode<Kv>>]| {
            let leaders: Vec<_> = nodes.iter().map(|n| n.leader().map(|(id, _)| id)).collect();
            leaders[0].is_some()
                && leaders.iter().all(|l| *l == leaders[0])
                && nodes.iter().filter(|n| n.is_leader()).count() == 1
        };
        eventually("one leader", || agreed(&nodes)).await;
        let leader = nodes.iter().position(|n| n.is_leader()).expect("leader");

        // Concurrent commands on the leader commit (sharing entries) and reach every node.
        let proposer = Proposer::<Kv>::start(nodes[leader].raft().clone(), Duration::from_secs(5));
        let writes: Vec<_> = (0..40)
            .map(|i| {
                let p = proposer.clone();
                tokio::spawn(async move { p.propose((format!("k{i}"), format!("v{i}"))).await })
            })
            .collect();
        for w in writes {
            assert_eq!(w.await.expect("task").expect("committed"), None);
        }
        eventually("replicated", || stores.iter().all(|s| s.map().len() == 40)).await;
        assert_eq!(stores[0].map(), stores[2].map());

        // A follower's proposer points at the leader.
        let follower = (leader + 1) % 3;
        let p = Proposer::<Kv>::start(nodes[follower].raft().clone(), Duration::from_secs(5));
        match p.propose(("x".into(), "y".into())).await {
            Err(ProposeError::NotLeader(Some(id))) => {
                assert_eq!(id, nodes[leader].settings().my_id())
            }
            other => panic!("expected NOT_LEADER, got {other:?}"),
        }
        let st = nodes[follower].status();
        assert_eq!(st.role, "FOLLOWER");
        assert_eq!(
            st.leader.map(|l| l.node_id),
            Some(peers[leader].node_id.clone())
        );

        // Leadership moves on request; a follower cannot move it, nor to an unknown node.
        assert!(matches!(
            nodes[follower]
                .transfer_leader(&peers[leader].node_id, Duration::from_secs(5))
                .await,
            Err(Error::NotLeader { leader: Some(_) })
        ));
        assert!(matches!(
            nodes[leader]
                .transfer_leader("kv9", Duration::from_secs(5))
                .await,
            Err(Error::UnknownNode(_))
        ));
        let target = &peers[follower].node_id;
        let moved = nodes[leader]
            .transfer_leader(target, Duration::from_secs(20))
            .await
            .expect("transfer");
        assert_eq!(&moved, target);
        eventually("new leader", || nodes[follower].is_leader()).await;
        let p = Proposer::<Kv>::start(nodes[follower].raft().clone(), Duration::from_secs(5));
        p.propose(("k0".into(), "new".into()))
            .await
            .expect("committed");
        eventually("replicated", || {
            stores
                .iter()
                .all(|s| s.map().get("k0").map(String::as_str) == Some("new"))
        })
        .await;
        for n in &nodes {
            n.shutdown().await;
        }
    }
}
