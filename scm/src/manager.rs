//! The SCM state actor: owns the one [`ScmState`] (node manager, pipeline manager and
//! container manager together, see the crate doc), processes typed messages from the gRPC
//! services one at a time, and on a timer re-evaluates health, publishes gauges and flushes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};
use ozone_common::Metrics;

use crate::error::ScmError;
use crate::model::{
    AllocateRequest, AllocatedBlock, ContainerView, DatanodeDetails, DatanodeView, NodeUpdate,
    OpState, PipelineView, SafeModeView,
};
use crate::planner::{ClusterView, RmAction};
use crate::state::{HeartbeatOutcome, ScmState};

/// Rows of the http status page, refreshed by the actor on every tick.
pub type StatusRows = Arc<Mutex<Vec<(String, String)>>>;

pub struct ScmManager {
    state: ScmState,
    metrics: Metrics,
    status: StatusRows,
    tick: Duration,
}

impl ScmManager {
    pub fn new(state: ScmState, metrics: Metrics, status: StatusRows) -> Self {
        let tick = state.config().tick_interval();
        ScmManager {
            state,
            metrics,
            status,
            tick,
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        if let Err(e) = self.state.tick(now) {
            tracing::warn!(error = %e, "SCM periodic check failed; retrying on the next tick");
        }
        self.publish(now);
    }

    fn publish(&mut self, now: Instant) {
        let g = self.state.gauges(now);
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
                i64::try_from(self.state.delete_log_len()).unwrap_or(i64::MAX),
            ),
        ];
        for (name, v) in gauges {
            self.metrics.set_gauge(name, v);
        }
        let mut rows = vec![
            (
                "cluster id".to_string(),
                self.state.cluster_id().to_string(),
            ),
            (
                "safe mode".to_string(),
                if g.in_safe_mode { "ON" } else { "OFF" }.to_string(),
            ),
        ];
        rows.extend(
            gauges[..7]
                .iter()
                .map(|(k, v)| (k.replace('_', " "), v.to_string())),
        );
        match self.status.lock() {
            Ok(mut s) => *s = rows,
            Err(poisoned) => *poisoned.into_inner() = rows,
        }
    }
}

impl Actor for ScmManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish(Instant::now());
        ctx.run_interval(self.tick, |act, _| act.on_tick());
    }
}

/// A datanode registers; answers the cluster id.
#[derive(Message)]
#[rtype(result = "Result<String, ScmError>")]
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
    type Result = Result<String, ScmError>;
    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> Self::Result {
        self.state.register(msg.0, Instant::now())
    }
}

impl Handler<Heartbeat> for ScmManager {
    type Result = Result<HeartbeatOutcome, ScmError>;
    fn handle(&mut self, msg: Heartbeat, _: &mut Context<Self>) -> Self::Result {
        self.state.heartbeat(msg.0, Instant::now())
    }
}

impl Handler<Allocate> for ScmManager {
    type Result = Result<Vec<AllocatedBlock>, ScmError>;
    fn handle(&mut self, msg: Allocate, _: &mut Context<Self>) -> Self::Result {
        self.state.allocate(msg.0, Instant::now())
    }
}

impl Handler<ListDatanodes> for ScmManager {
    type Result = Result<Vec<DatanodeView>, ScmError>;
    fn handle(&mut self, _: ListDatanodes, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.datanodes(Instant::now()))
    }
}

impl Handler<ListContainers> for ScmManager {
    type Result = Result<Vec<ContainerView>, ScmError>;
    fn handle(&mut self, msg: ListContainers, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.containers(msg.start, msg.count))
    }
}

impl Handler<GetContainer> for ScmManager {
    type Result = Result<ContainerView, ScmError>;
    fn handle(&mut self, msg: GetContainer, _: &mut Context<Self>) -> Self::Result {
        self.state.container(msg.0)
    }
}

impl Handler<ListPipelines> for ScmManager {
    type Result = Result<Vec<PipelineView>, ScmError>;
    fn handle(&mut self, _: ListPipelines, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.pipelines())
    }
}

impl Handler<SafeModeStatus> for ScmManager {
    type Result = Result<SafeModeView, ScmError>;
    fn handle(&mut self, _: SafeModeStatus, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.safe_mode(Instant::now()))
    }
}

impl Handler<DeleteBlocks> for ScmManager {
    type Result = Result<u32, ScmError>;
    fn handle(&mut self, msg: DeleteBlocks, _: &mut Context<Self>) -> Self::Result {
        self.state.add_deleted_blocks(msg.0)
    }
}

impl Handler<Decommission> for ScmManager {
    type Result = Result<(DatanodeDetails, OpState), ScmError>;
    fn handle(&mut self, msg: Decommission, _: &mut Context<Self>) -> Self::Result {
        self.state.decommission(&msg.0)
    }
}

impl Handler<Recommission> for ScmManager {
    type Result = Result<(DatanodeDetails, OpState), ScmError>;
    fn handle(&mut self, msg: Recommission, _: &mut Context<Self>) -> Self::Result {
        self.state.recommission(&msg.0)
    }
}

impl Handler<CloseContainer> for ScmManager {
    type Result = Result<ContainerView, ScmError>;
    fn handle(&mut self, msg: CloseContainer, _: &mut Context<Self>) -> Self::Result {
        self.state.close_container_by_admin(msg.0)?;
        self.state.container(msg.0)
    }
}

impl Handler<ReportReplicaMiss> for ScmManager {
    type Result = Result<(), ScmError>;
    fn handle(&mut self, msg: ReportReplicaMiss, _: &mut Context<Self>) -> Self::Result {
        self.state
            .report_replica_miss(msg.container_id, &msg.datanode, msg.bcsid)
    }
}

impl Handler<GetClusterView> for ScmManager {
    type Result = Result<ClusterView, ScmError>;
    fn handle(&mut self, _: GetClusterView, _: &mut Context<Self>) -> Self::Result {
        Ok(self.state.cluster_view(Instant::now()))
    }
}

impl Handler<ApplyReplication> for ScmManager {
    type Result = Result<(), ScmError>;
    fn handle(&mut self, msg: ApplyReplication, _: &mut Context<Self>) -> Self::Result {
        let r = self.state.apply_replication(msg.0);
        if let Err(e) = &r {
            tracing::warn!(error = %e, "applying replication decisions failed");
        }
        r
    }
}

impl Handler<Shutdown> for ScmManager {
    type Result = Result<(), ScmError>;
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        self.state.close()
    }
}
