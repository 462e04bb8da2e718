//! The SCM state actor: on the leader, owns the one [`ScmState`] (node manager, pipeline
//! manager and container manager together, see the crate doc), processes typed messages from
//! the gRPC services one at a time, and on a timer re-evaluates health, publishes gauges and
//! flushes. The batches a message persisted go to the term's [`Writer`]; its answer waits
//! until they (and all staged before them) have applied (see [`crate::ha`]).
//!
//! Leadership: a task watches the raft node. When this SCM becomes leader it confirms with a
//! quorum that it has applied everything committed (read index) and then loads the state from
//! `scm.db` ([`Acquired`]); when it stops leading, or a batch fails to commit, the state is
//! dropped ([`Deposed`]) and every request is refused with the leader's address.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use openraft::ServerState;
use ozone_common::Metrics;

use crate::config::ScmConfig;
use crate::error::ScmError;
use crate::ha::RaftNode;
use crate::ha::writer::{self, Writer};
use crate::model::{
    AllocateRequest, AllocatedBlock, ContainerView, DatanodeDetails, DatanodeView, NodeUpdate,
    OpState, PipelineView, SafeModeView,
};
use crate::planner::{ClusterView, RmAction};
use crate::state::{HeartbeatOutcome, ScmState};
use crate::store::Store;

/// Rows of the http status page, refreshed by the actor on every tick.
pub type StatusRows = Arc<Mutex<Vec<(String, String)>>>;

/// Pause between read-index attempts of a new leader.
const ACQUIRE_RETRY: Duration = Duration::from_millis(100);

/// What the leader holds for its term.
struct Lead {
    term: u64,
    state: ScmState,
    writer: Writer,
    /// Sequence number of the last batch staged.
    staged: u64,
}

impl Lead {
    /// Hands what `state` persisted to the writer; resolves once all of it, and everything
    /// staged before, has applied.
    fn flush(&mut self) -> impl Future<Output = Result<(), ScmError>> + Send + 'static {
        for batch in self.state.take_staged() {
            self.staged += 1;
            self.writer.stage(self.staged, batch);
        }
        writer::applied(self.writer.progress(), self.staged)
    }
}

pub struct ScmManager {
    cfg: ScmConfig,
    store: Arc<Store>,
    node: Arc<RaftNode>,
    lead: Option<Lead>,
    metrics: Metrics,
    status: StatusRows,
    tick: Duration,
}

type Reply<T> = ResponseFuture<Result<T, ScmError>>;

impl ScmManager {
    pub fn new(
        cfg: ScmConfig,
        store: Arc<Store>,
        node: Arc<RaftNode>,
        metrics: Metrics,
        status: StatusRows,
    ) -> Self {
        let tick = cfg.tick_interval();
        ScmManager {
            cfg,
            store,
            node,
            lead: None,
            metrics,
            status,
            tick,
        }
    }

    /// The refusal of a node that does not (yet) serve as leader.
    fn refusal(&self) -> ScmError {
        match self.node.leader() {
            Some((id, _)) if id == self.node.settings().my_id() => {
                ScmError::Unavailable("this SCM is taking over as leader".into())
            }
            Some((_, peer)) => ScmError::NotLeader {
                leader: Some(peer.address),
            },
            None => ScmError::NotLeader { leader: None },
        }
    }

    /// Runs `f` on the leader's state; the answer waits for what it persisted to apply.
    fn serve<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut ScmState, Instant) -> Result<T, ScmError>,
    ) -> Reply<T> {
        let Some(lead) = self.lead.as_mut() else {
            let e = self.refusal();
            return Box::pin(async move { Err(e) });
        };
        let r = f(&mut lead.state, Instant::now());
        let applied = lead.flush();
        Box::pin(async move {
            applied.await?;
            r
        })
    }

    /// The leader's term, for answers datanodes weigh commands by.
    fn term(&self) -> u64 {
        self.lead.as_ref().map_or(0, |l| l.term)
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if let Some(lead) = self.lead.as_mut() {
            if let Err(e) = lead.state.tick(now) {
                tracing::warn!(error = %e, "SCM periodic check failed; retrying on the next tick");
            }
            // Nothing waits on a tick's changes; a failure deposes the state.
            drop(lead.flush());
        }
        self.publish(now);
    }

    fn publish(&mut self, now: Instant) {
        let me = self.node.settings().me.node_id.clone();
        let leader = self
            .node
            .leader()
            .map_or_else(|| "unknown".to_string(), |(_, p)| p.node_id);
        let mut rows = vec![
            ("scm node".to_string(), me),
            ("scm leader".to_string(), leader),
        ];
        self.metrics
            .set_gauge("is_leader", i64::from(self.lead.is_some()));
        if let Some(lead) = self.lead.as_mut() {
            let state = &mut lead.state;
            let g = state.gauges(now);
            let gauges = [
                ("healthy_nodes", g.healthy_nodes),
                ("stale_nodes", g.stale_nodes),
                ("dead_nodes", g.dead_nodes),
                ("open_pipelines", g.open_pipelines),
                ("closed_pipelines", g.closed_pipelines),
                ("open_containers", g.open_containers),
                ("closed_containers", g.closed_containers),
                ("safe_mode", i64::from(g.in_safe_mode)),
                (
                    "deleted_block_transactions",
                    i64::try_from(state.delete_log_len()).unwrap_or(i64::MAX),
                ),
            ];
            for (name, v) in gauges {
                self.metrics.set_gauge(name, v);
            }
            rows.push(("cluster id".to_string(), state.cluster_id().to_string()));
            rows.push((
                "safe mode".to_string(),
                if g.in_safe_mode { "ON" } else { "OFF" }.to_string(),
            ));
            rows.extend(
                gauges[..7]
                    .iter()
                    .map(|(k, v)| (k.replace('_', " "), v.to_string())),
            );
        }
        match self.status.lock() {
            Ok(mut s) => *s = rows,
            Err(poisoned) => *poisoned.into_inner() = rows,
        }
    }

    /// Drops the leader's state (its writer stops with it).
    fn depose(&mut self, why: &str) {
        if let Some(lead) = self.lead.take() {
            tracing::info!(term = lead.term, why, "SCM stopped serving as leader");
        }
    }
}

impl Actor for ScmManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish(Instant::now());
        ctx.run_interval(self.tick, |act, _| act.on_tick());
        let me = ctx.address();
        let node = self.node.clone();
        ctx.spawn(actix::fut::wrap_future(watch_leadership(node, me)));
    }
}

/// Follows the raft node's leadership and tells the actor: a new term as leader starts an
/// acquisition, losing it deposes.
async fn watch_leadership(node: Arc<RaftNode>, actor: Addr<ScmManager>) {
    let mut metrics = node.raft().metrics();
    let mut leading: Option<u64> = None;
    loop {
        let (state, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term)
        };
        let now_leading = (state == ServerState::Leader).then_some(term);
        if now_leading != leading {
            if leading.is_some() {
                actor.do_send(Deposed {
                    why: "raft leadership lost".into(),
                });
            }
            if let Some(term) = now_leading {
                tokio::spawn(acquire(node.clone(), actor.clone(), term));
            }
            leading = now_leading;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Confirms with a quorum that this node leads in `term` and has applied everything
/// committed, then hands over to the actor.
async fn acquire(node: Arc<RaftNode>, actor: Addr<ScmManager>, term: u64) {
    loop {
        let m = node.raft().metrics().borrow().clone();
        if m.state != ServerState::Leader || m.current_term != term {
            return;
        }
        match node.raft().ensure_linearizable().await {
            Ok(_) => {
                actor.do_send(Acquired { term });
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, term, "SCM leader not confirmed yet");
                tokio::time::sleep(ACQUIRE_RETRY).await;
            }
        }
    }
}

/// This node leads in `term` and has applied everything committed: load the state.
#[derive(Message)]
#[rtype(result = "()")]
struct Acquired {
    term: u64,
}

/// Stop serving as leader.
#[derive(Message)]
#[rtype(result = "()")]
struct Deposed {
    why: String,
}

/// A batch of `term` did not commit.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteFailed {
    term: u64,
    why: String,
}

impl Handler<Acquired> for ScmManager {
    type Result = ();
    fn handle(&mut self, msg: Acquired, ctx: &mut Context<Self>) {
        let m = self.node.raft().metrics().borrow().clone();
        if m.state != ServerState::Leader || m.current_term != msg.term {
            return;
        }
        if self.lead.as_ref().is_some_and(|l| l.term == msg.term) {
            return;
        }
        let started = Instant::now();
        let state = match ScmState::lead(self.cfg.clone(), self.store.clone(), started) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "loading SCM state as the new leader failed");
                return;
            }
        };
        let me = ctx.address();
        let term = msg.term;
        let proposer = ozone_raft::proposer::Proposer::start(
            self.node.raft().clone(),
            self.node.settings().request_timeout,
        );
        let writer = Writer::start(proposer, move |why| me.do_send(WriteFailed { term, why }));
        let mut lead = Lead {
            term,
            state,
            writer,
            staged: 0,
        };
        drop(lead.flush());
        tracing::info!(
            term,
            took_ms = started.elapsed().as_millis() as u64,
            "SCM serving as leader"
        );
        self.lead = Some(lead);
        self.publish(Instant::now());
    }
}

impl Handler<Deposed> for ScmManager {
    type Result = ();
    fn handle(&mut self, msg: Deposed, _: &mut Context<Self>) {
        self.depose(&msg.why);
    }
}

impl Handler<WriteFailed> for ScmManager {
    type Result = ();
    fn handle(&mut self, msg: WriteFailed, ctx: &mut Context<Self>) {
        if self.term() != msg.term {
            return;
        }
        self.depose(&msg.why);
        // Still leading: take over again from what did commit.
        tokio::spawn(acquire(self.node.clone(), ctx.address(), msg.term));
    }
}

/// A datanode registers; answers the cluster id and the leader's term.
#[derive(Message)]
#[rtype(result = "Result<(String, u64, Vec<ozone_common::token::SecretKey>), ScmError>")]
pub struct Register(pub NodeUpdate);

#[derive(Message)]
#[rtype(result = "Result<HeartbeatOutcome, ScmError>")]
pub struct Heartbeat(pub NodeUpdate);

#[derive(Message)]
#[rtype(result = "Result<Vec<AllocatedBlock>, ScmError>")]
pub struct Allocate(pub AllocateRequest);

#[derive(Message)]
#[rtype(result = "Result<Vec<DatanodeView>, ScmError>")]
pub struct ListDatanodes;

#[derive(Message)]
#[rtype(result = "Result<Vec<ContainerView>, ScmError>")]
pub struct ListContainers {
    pub start: u64,
    pub count: usize,
}

#[derive(Message)]
#[rtype(result = "Result<ContainerView, ScmError>")]
pub struct GetContainer(pub u64);

#[derive(Message)]
#[rtype(result = "Result<Vec<PipelineView>, ScmError>")]
pub struct ListPipelines;

#[derive(Message)]
#[rtype(result = "Result<SafeModeView, ScmError>")]
pub struct SafeModeStatus;

/// OM hands over blocks to delete: (container id, local ids).
#[derive(Message)]
#[rtype(result = "Result<u32, ScmError>")]
pub struct DeleteBlocks(pub Vec<(u64, Vec<u64>)>);

/// Starts decommissioning a datanode (uuid, host:port or host).
#[derive(Message)]
#[rtype(result = "Result<(DatanodeDetails, OpState), ScmError>")]
pub struct Decommission(pub String);

/// Puts a datanode back in service.
#[derive(Message)]
#[rtype(result = "Result<(DatanodeDetails, OpState), ScmError>")]
pub struct Recommission(pub String);

/// An administrator closes an OPEN container; answers the container after the close.
#[derive(Message)]
#[rtype(result = "Result<ContainerView, ScmError>")]
pub struct CloseContainer(pub u64);

/// A writer reports a replica that missed a committed block (container, datanode, BCSID).
#[derive(Message)]
#[rtype(result = "Result<(), ScmError>")]
pub struct ReportReplicaMiss {
    pub container_id: u64,
    pub datanode: String,
    pub bcsid: u64,
}

/// Security on: the unexpired secret keys and the id of the one to sign with.
#[derive(Message)]
#[rtype(result = "Result<(Vec<ozone_common::token::SecretKey>, String), ScmError>")]
pub struct GetSecretKeys;

/// From the ReplicationManager: a snapshot to decide from.
#[derive(Message)]
#[rtype(result = "Result<ClusterView, ScmError>")]
pub struct GetClusterView;

/// From the ReplicationManager: carry out its decisions.
#[derive(Message)]
#[rtype(result = "Result<(), ScmError>")]
pub struct ApplyReplication(pub Vec<RmAction>);

/// Flushes, releases the database and stops the actor.
#[derive(Message)]
#[rtype(result = "Result<(), ScmError>")]
pub struct Shutdown;

impl Handler<Register> for ScmManager {
    type Result = Reply<(String, u64, Vec<ozone_common::token::SecretKey>)>;
    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        let term = self.term();
        self.serve(move |s, now| {
            let cluster_id = s.register(msg.0, now)?;
            let keys = if s.config().tokens.any() {
                s.live_secret_keys(ozone_common::now_ms())
            } else {
                Vec::new()
            };
            Ok((cluster_id, term, keys))
        })
    }
}

impl Handler<Heartbeat> for ScmManager {
    type Result = Reply<HeartbeatOutcome>;
    fn handle(&mut self, msg: Heartbeat, _: &mut Context<Self>) -> Self::Result {
        let term = self.term();
        self.serve(move |s, now| {
            let mut outcome = s.heartbeat(msg.0, now)?;
            outcome.term = term;
            Ok(outcome)
        })
    }
}

impl Handler<Allocate> for ScmManager {
    type Result = Reply<Vec<AllocatedBlock>>;
    fn handle(&mut self, msg: Allocate, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, now| s.allocate(msg.0, now))
    }
}

impl Handler<ListDatanodes> for ScmManager {
    type Result = Reply<Vec<DatanodeView>>;
    fn handle(&mut self, _: ListDatanodes, _: &mut Context<Self>) -> Self::Result {
        self.serve(|s, now| Ok(s.datanodes(now)))
    }
}

impl Handler<ListContainers> for ScmManager {
    type Result = Reply<Vec<ContainerView>>;
    fn handle(&mut self, msg: ListContainers, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| Ok(s.containers(msg.start, msg.count)))
    }
}

impl Handler<GetContainer> for ScmManager {
    type Result = Reply<ContainerView>;
    fn handle(&mut self, msg: GetContainer, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| s.container(msg.0))
    }
}

impl Handler<ListPipelines> for ScmManager {
    type Result = Reply<Vec<PipelineView>>;
    fn handle(&mut self, _: ListPipelines, _: &mut Context<Self>) -> Self::Result {
        self.serve(|s, _| Ok(s.pipelines()))
    }
}

impl Handler<SafeModeStatus> for ScmManager {
    type Result = Reply<SafeModeView>;
    fn handle(&mut self, _: SafeModeStatus, _: &mut Context<Self>) -> Self::Result {
        self.serve(|s, now| Ok(s.safe_mode(now)))
    }
}

impl Handler<DeleteBlocks> for ScmManager {
    type Result = Reply<u32>;
    fn handle(&mut self, msg: DeleteBlocks, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| s.add_deleted_blocks(msg.0))
    }
}

impl Handler<Decommission> for ScmManager {
    type Result = Reply<(DatanodeDetails, OpState)>;
    fn handle(&mut self, msg: Decommission, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| s.decommission(&msg.0))
    }
}

impl Handler<Recommission> for ScmManager {
    type Result = Reply<(DatanodeDetails, OpState)>;
    fn handle(&mut self, msg: Recommission, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| s.recommission(&msg.0))
    }
}

impl Handler<CloseContainer> for ScmManager {
    type Result = Reply<ContainerView>;
    fn handle(&mut self, msg: CloseContainer, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| {
            s.close_container_by_admin(msg.0)?;
            s.container(msg.0)
        })
    }
}

impl Handler<ReportReplicaMiss> for ScmManager {
    type Result = Reply<()>;
    fn handle(&mut self, msg: ReportReplicaMiss, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| s.report_replica_miss(msg.container_id, &msg.datanode, msg.bcsid))
    }
}

impl Handler<GetSecretKeys> for ScmManager {
    type Result = Reply<(Vec<ozone_common::token::SecretKey>, String)>;
    fn handle(&mut self, _: GetSecretKeys, _: &mut Context<Self>) -> Self::Result {
        self.serve(|s, _| s.secret_keys(ozone_common::now_ms()))
    }
}

impl Handler<GetClusterView> for ScmManager {
    type Result = Reply<ClusterView>;
    fn handle(&mut self, _: GetClusterView, _: &mut Context<Self>) -> Self::Result {
        self.serve(|s, now| Ok(s.cluster_view(now)))
    }
}

impl Handler<ApplyReplication> for ScmManager {
    type Result = Reply<()>;
    fn handle(&mut self, msg: ApplyReplication, _: &mut Context<Self>) -> Self::Result {
        self.serve(move |s, _| {
            let r = s.apply_replication(msg.0);
            if let Err(e) = &r {
                tracing::warn!(error = %e, "applying replication decisions failed");
            }
            r
        })
    }
}

impl Handler<Shutdown> for ScmManager {
    type Result = Reply<()>;
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        let Some(mut lead) = self.lead.take() else {
            return Box::pin(async { Ok(()) });
        };
        // What is pending (allocated-bytes counters) and what the last messages persisted
        // gets its chance to commit.
        if let Err(e) = lead.state.persist() {
            tracing::warn!(error = %e, "persisting SCM state at shutdown failed");
        }
        let applied = lead.flush();
        Box::pin(async move {
            // Nothing left is acknowledged to anyone: a failure costs at most the counters.
            if let Err(e) = applied.await {
                tracing::warn!(error = %e, "SCM state at shutdown not replicated");
            }
            drop(lead);
            Ok(())
        })
    }
}
