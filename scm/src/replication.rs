//! The ReplicationManager: an actix actor that every `hdds.scm.replication.thread.interval`
//! asks the state actor for a [`ClusterView`](crate::planner::ClusterView), decides with the pure
//! [`plan`] (see [`crate::planner`] for the rules) and sends the decisions back as
//! [`RmAction`](crate::planner::RmAction)s (commands that ride on heartbeat responses).

use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture,
};
use ozone_common::Metrics;

use crate::error::ScmError;
use crate::manager::{ApplyReplication, GetClusterView, ScmManager};
use crate::planner::{InFlight, RmReport, plan};

/// Stops the ReplicationManager.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopReplication;

pub struct ReplicationManager {
    scm: Addr<ScmManager>,
    interval: Duration,
    timeout: Duration,
    inflight: InFlight,
    metrics: Metrics,
    running: bool,
}

impl ReplicationManager {
    pub fn new(
        scm: Addr<ScmManager>,
        interval: Duration,
        timeout: Duration,
        metrics: Metrics,
    ) -> Self {
        ReplicationManager {
            scm,
            interval,
            timeout,
            inflight: InFlight::default(),
            metrics,
            running: false,
        }
    }

    fn run_once(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let scm = self.scm.clone();
        let fut = async move { scm.send(GetClusterView).await }
            .into_actor(self)
            .map(|result, act, _| {
                act.running = false;
                let view = match result {
                    Ok(Ok(view)) => view,
                    Ok(Err(e @ (ScmError::NotLeader { .. } | ScmError::Unavailable(_)))) => {
                        // Only the leader replicates; what was in flight under another
                        // leader is that leader's (a new one decides again from reports).
                        tracing::debug!(error = %e, "replication manager: not leading");
                        act.inflight = InFlight::default();
                        return;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "replication manager: no cluster view this round");
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "replication manager: SCM state actor gone");
                        return;
                    }
                };
                let (actions, report) = plan(&view, &mut act.inflight, Instant::now(), act.timeout);
                act.publish(&report);
                if !actions.is_empty() {
                    tracing::debug!(actions = actions.len(), ?report, "replication manager round");
                    act.scm.do_send(ApplyReplication(actions));
                }
            });
        ctx.spawn(fut);
    }

    fn publish(&self, r: &RmReport) {
        let gauges = [
            ("replication_manager_running", 1),
            ("under_replicated_containers", r.under_replicated),
            ("over_replicated_containers", r.over_replicated),
            ("unhealthy_replicas", r.unhealthy_replicas),
            ("lagging_replicas", r.lagging_replicas),
            ("unrecoverable_containers", r.unrecoverable),
            ("replications_in_flight", self.inflight.adds()),
            ("replica_deletions_in_flight", self.inflight.deletes()),
        ];
        for (name, v) in gauges {
            self.metrics
                .set_gauge(name, i64::try_from(v).unwrap_or(i64::MAX));
        }
    }
}

impl Actor for ReplicationManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(interval = ?self.interval, timeout = ?self.timeout, "replication manager started");
        ctx.run_interval(self.interval, |act, ctx| act.run_once(ctx));
    }
}

impl Handler<StopReplication> for ReplicationManager {
    type Result = ();
    fn handle(&mut self, _: StopReplication, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
