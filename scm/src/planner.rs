//! The ReplicationManager's decisions as a pure function: [`plan`] takes a [`ClusterView`] (a
//! snapshot of datanodes and non-OPEN containers with their replicas) and the work still in
//! flight, and returns [`RmAction`]s. It reads no clock and sends nothing: the actor in
//! `replication` feeds it and carries the decisions to the state actor; tests call it directly.
//!
//! It works on non-OPEN containers only, as Ozone's does. A CLOSED container with a replica
//! still reporting OPEN or CLOSING gets its close command sent again to those replicas and is
//! otherwise left alone until they are closed. Per CLOSED container:
//! - a replica counts when it is CLOSED and complete on an IN_SERVICE datanode that is not DEAD;
//!   UNHEALTHY replicas, lagging ones (missing committed blocks, see [`lagging`]) and replicas
//!   on decommissioning or decommissioned datanodes do not count;
//! - under-replicated (counted + copies in flight < factor): a healthy in-service datanode that
//!   holds no replica of it is told to copy it from the complete CLOSED replicas on HEALTHY
//!   datanodes (decommissioning ones included), least loaded target first;
//! - UNHEALTHY and lagging replicas are deleted once the container has its full count without
//!   them, or earlier, one at a time, when every datanode that could take a healthy copy holds
//!   one of them, a complete replica can be copied and at least two readable copies stay besides
//!   it: the last readable copy of a block is never deleted (an UNHEALTHY replica is still read
//!   as a last resort), and excess deletion never removes a complete replica while a lagging
//!   one is kept;
//! - over-replicated (counted > factor, nothing in flight): the excess is deleted, preferring
//!   replicas outside the container's original pipeline (readers find replicas through it);
//! - empty: when a majority of the original pipeline reports it CLOSED with no blocks, no
//!   replica reports any block and no block deletion for it is pending, it turns DELETING and
//!   every replica is deleted (only if still empty on the datanode); DELETED follows once no
//!   datanode reports it.
//!
//! Copies and deletions it asked for are remembered as in flight until the replica shows up
//! (or goes away) in the reports, or `hdds.scm.replication.event.timeout` passes, after which
//! they may be asked for again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::factor::Factor;
use crate::model::{Command, ContainerState, DatanodeDetails, NodeHealth, OpState, ReplicaState};

/// A datanode as the ReplicationManager sees it.
#[derive(Clone, Debug)]
pub struct RmNode {
    pub uuid: String,
    pub details: DatanodeDetails,
    pub health: NodeHealth,
    pub op_state: OpState,
    /// Healthy, in service and heard from: may receive replicas.
    pub usable: bool,
    pub containers: usize,
    pub used: u64,
}

#[derive(Clone, Debug)]
pub struct RmReplica {
    pub uuid: String,
    pub state: ReplicaState,
    pub block_count: u64,
    pub used_bytes: u64,
    /// Block commits it applied (Ozone's BCSID).
    pub bcsid: u64,
    /// A writer reported that it missed a commit.
    pub missed: bool,
}

/// The replicas missing committed blocks (Ozone: a replica whose BCSID is below the
/// container's is unhealthy): those a writer reported missing a commit, and the CLOSED ones
/// whose BCSID is below the highest BCSID of the CLOSED replicas not so reported. When every
/// CLOSED replica was reported, the reports are set aside (the best copies left must stay)
/// and BCSIDs alone decide.
pub fn lagging(replicas: &[RmReplica]) -> BTreeSet<&str> {
    let closed = || replicas.iter().filter(|r| r.state == ReplicaState::Closed);
    let unreported_max = closed().filter(|r| !r.missed).map(|r| r.bcsid).max();
    let reports_count = unreported_max.is_some() || closed().next().is_none();
    let max = unreported_max
        .or_else(|| closed().map(|r| r.bcsid).max())
        .unwrap_or(0);
    replicas
        .iter()
        .filter(|r| {
            (r.state == ReplicaState::Closed && r.bcsid < max) || (reports_count && r.missed)
        })
        .map(|r| r.uuid.as_str())
        .collect()
}

/// A non-OPEN container with its reported replicas.
#[derive(Clone, Debug)]
pub struct RmContainer {
    pub id: u64,
    pub state: ContainerState,
    pub factor: Factor,
    /// Members of the pipeline the container was written on.
    pub pipeline_nodes: Vec<String>,
    pub replicas: Vec<RmReplica>,
    /// Whether the deleted-block log still holds transactions for it.
    pub has_pending_deletes: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    pub nodes: Vec<RmNode>,
    pub containers: Vec<RmContainer>,
}

/// A decision of the ReplicationManager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RmAction {
    Send { datanode: String, command: Command },
    MarkDeleting(u64),
}

/// Copies and deletions asked for and not yet seen done: container -> datanode -> when asked.
#[derive(Debug, Default)]
pub struct InFlight {
    adds: HashMap<u64, BTreeMap<String, Instant>>,
    deletes: HashMap<u64, BTreeMap<String, Instant>>,
}

impl InFlight {
    pub fn adds(&self) -> usize {
        self.adds.values().map(BTreeMap::len).sum()
    }

    pub fn deletes(&self) -> usize {
        self.deletes.values().map(BTreeMap::len).sum()
    }
}

/// Counts from one run, published as gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RmReport {
    pub under_replicated: usize,
    pub over_replicated: usize,
    pub unhealthy_replicas: usize,
    /// CLOSED replicas missing committed blocks (see [`lagging`]).
    pub lagging_replicas: usize,
    /// Under-replicated containers without any healthy CLOSED replica to copy from.
    pub unrecoverable: usize,
    pub copies_sent: usize,
    pub deletes_sent: usize,
    /// Close commands sent again to replicas of CLOSED containers still open.
    pub closes_sent: usize,
    pub emptied: usize,
}

/// One pass over every container; see the module doc for the rules.
pub fn plan(
    view: &ClusterView,
    inflight: &mut InFlight,
    now: Instant,
    timeout: Duration,
) -> (Vec<RmAction>, RmReport) {
    let nodes: HashMap<&str, &RmNode> = view.nodes.iter().map(|n| (n.uuid.as_str(), n)).collect();
    let mut actions = Vec::new();
    let mut report = RmReport::default();
    // Replicas each datanode will receive in this pass, to spread copies.
    let mut assigned: HashMap<String, usize> = HashMap::new();

    for c in &view.containers {
        let holds = |uuid: &str| c.replicas.iter().any(|r| r.uuid == uuid);
        // Forget in-flight work that is done or timed out.
        if let Some(adds) = inflight.adds.get_mut(&c.id) {
            adds.retain(|uuid, at| !holds(uuid) && now.saturating_duration_since(*at) < timeout);
        }
        if let Some(dels) = inflight.deletes.get_mut(&c.id) {
            dels.retain(|uuid, at| holds(uuid) && now.saturating_duration_since(*at) < timeout);
        }
        let pending_adds = inflight.adds.get(&c.id).map_or(0, BTreeMap::len);
        let deleting = |inflight: &InFlight, uuid: &str| {
            inflight
                .deletes
                .get(&c.id)
                .is_some_and(|d| d.contains_key(uuid))
        };

        if matches!(c.state, ContainerState::Deleting | ContainerState::Deleted) {
            for r in &c.replicas {
                if !deleting(inflight, &r.uuid) {
                    actions.push(delete(&r.uuid, c.id, false));
                    inflight
                        .deletes
                        .entry(c.id)
                        .or_default()
                        .insert(r.uuid.clone(), now);
                    report.deletes_sent += 1;
                }
            }
            continue;
        }
        if c.state != ContainerState::Closed {
            continue;
        }
        // Replicas still open or closing: SCM's close command may have been lost (incremental
        // reports do not repeat an unchanged replica), so it is sent again, as Ozone's
        // ClosingContainerHandler does; the rest is decided once they are closed.
        let still_open: Vec<&RmReplica> = c.replicas.iter().filter(|r| r.state.is_open()).collect();
        if !still_open.is_empty() {
            for r in still_open {
                actions.push(RmAction::Send {
                    datanode: r.uuid.clone(),
                    command: Command::CloseContainer(c.id),
                });
                report.closes_sent += 1;
            }
            continue;
        }

        let node_of = |uuid: &str| nodes.get(uuid).copied();
        let lagging = lagging(&c.replicas);
        report.lagging_replicas += lagging.len();
        let complete =
            |r: &RmReplica| r.state == ReplicaState::Closed && !lagging.contains(r.uuid.as_str());
        let counted: Vec<&RmReplica> = c
            .replicas
            .iter()
            .filter(|r| complete(r))
            .filter(|r| {
                node_of(&r.uuid).is_some_and(|n| {
                    n.op_state == OpState::InService && n.health != NodeHealth::Dead
                })
            })
            .collect();
        let sources: Vec<DatanodeDetails> = c
            .replicas
            .iter()
            .filter(|r| complete(r))
            .filter_map(|r| node_of(&r.uuid))
            .filter(|n| n.health == NodeHealth::Healthy)
            .map(|n| n.details.clone())
            .collect();
        let unhealthy: Vec<&RmReplica> = c
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Unhealthy)
            .collect();
        report.unhealthy_replicas += unhealthy.len();
        // Lagging replicas go the way of UNHEALTHY ones: replaced, then deleted.
        let unhealthy: Vec<&RmReplica> = unhealthy
            .into_iter()
            .chain(c.replicas.iter().filter(|r| {
                r.state != ReplicaState::Unhealthy && lagging.contains(r.uuid.as_str())
            }))
            .collect();
        let factor = c.factor.nodes();

        // Empty: a majority of the original pipeline says so, and nobody has a block.
        let empty_members = c
            .replicas
            .iter()
            .filter(|r| {
                r.state == ReplicaState::Closed
                    && r.block_count == 0
                    && c.pipeline_nodes.contains(&r.uuid)
            })
            .count();
        if !c.has_pending_deletes
            && empty_members > factor / 2
            && c.replicas.iter().all(|r| r.block_count == 0)
        {
            actions.push(RmAction::MarkDeleting(c.id));
            for r in &c.replicas {
                actions.push(delete(&r.uuid, c.id, false));
                inflight
                    .deletes
                    .entry(c.id)
                    .or_default()
                    .insert(r.uuid.clone(), now);
                report.deletes_sent += 1;
            }
            report.emptied += 1;
            continue;
        }

        if counted.len() + pending_adds < factor {
            report.under_replicated += 1;
            if sources.is_empty() {
                report.unrecoverable += 1;
                tracing::warn!(
                    container = c.id,
                    replicas = c.replicas.len(),
                    "under-replicated container has no healthy CLOSED replica to copy from"
                );
            } else {
                let mut targets: Vec<&RmNode> = view
                    .nodes
                    .iter()
                    .filter(|n| n.usable && !holds(&n.uuid))
                    .filter(|n| {
                        !inflight
                            .adds
                            .get(&c.id)
                            .is_some_and(|a| a.contains_key(&n.uuid))
                    })
                    .collect();
                targets.sort_by_key(|n| {
                    (
                        n.containers + assigned.get(&n.uuid).copied().unwrap_or(0),
                        n.used,
                        n.uuid.clone(),
                    )
                });
                let missing = factor - counted.len() - pending_adds;
                if targets.is_empty() {
                    if unhealthy.is_empty() {
                        tracing::warn!(
                            container = c.id,
                            missing,
                            "under-replicated container: no datanode can take a copy"
                        );
                    } else if let Some(r) =
                        room_to_make(counted.len(), &unhealthy, |u| deleting(inflight, u))
                    {
                        // Every candidate holds a replica: make room by removing one
                        // UNHEALTHY replica; the freed datanode takes a healthy copy next round.
                        tracing::info!(container = c.id, datanode = %r.uuid, state = r.state.as_str(),
                            bcsid = r.bcsid, "deleting an UNHEALTHY or lagging replica to make room for a healthy copy");
                        actions.push(delete(&r.uuid, c.id, true));
                        inflight
                            .deletes
                            .entry(c.id)
                            .or_default()
                            .insert(r.uuid.clone(), now);
                        report.deletes_sent += 1;
                    } else {
                        tracing::warn!(
                            container = c.id,
                            missing,
                            healthy = counted.len(),
                            unhealthy = unhealthy.len(),
                            "under-replicated container: no datanode can take a copy, and its UNHEALTHY replicas are kept (still readable)"
                        );
                    }
                }
                for (i, target) in targets.into_iter().take(missing).enumerate() {
                    // Rotate the sources so that copies spread over them.
                    let mut srcs = sources.clone();
                    let shift = (c.id as usize + i) % srcs.len();
                    srcs.rotate_left(shift);
                    tracing::info!(container = c.id, target = %target.uuid, source = %srcs[0].uuid,
                        replicas = counted.len(), factor, "under-replicated container: copying");
                    actions.push(RmAction::Send {
                        datanode: target.uuid.clone(),
                        command: Command::ReplicateContainer {
                            container_id: c.id,
                            sources: srcs,
                        },
                    });
                    inflight
                        .adds
                        .entry(c.id)
                        .or_default()
                        .insert(target.uuid.clone(), now);
                    *assigned.entry(target.uuid.clone()).or_default() += 1;
                    report.copies_sent += 1;
                }
            }
        }

        // UNHEALTHY replicas go once the container is whole without them.
        if counted.len() >= factor && !unhealthy.is_empty() {
            for r in &unhealthy {
                if !deleting(inflight, &r.uuid) {
                    tracing::info!(container = c.id, datanode = %r.uuid, state = r.state.as_str(),
                        bcsid = r.bcsid, "deleting an UNHEALTHY or lagging replica");
                    actions.push(delete(&r.uuid, c.id, true));
                    inflight
                        .deletes
                        .entry(c.id)
                        .or_default()
                        .insert(r.uuid.clone(), now);
                    report.deletes_sent += 1;
                }
            }
        }

        // Excess healthy replicas, once nothing is being copied.
        let being_deleted = counted
            .iter()
            .filter(|r| deleting(inflight, &r.uuid))
            .count();
        if counted.len() > factor && pending_adds == 0 {
            report.over_replicated += 1;
            let excess = (counted.len() - factor).saturating_sub(being_deleted);
            let mut victims: Vec<&RmReplica> = counted
                .iter()
                .copied()
                .filter(|r| !deleting(inflight, &r.uuid))
                .collect();
            victims.sort_by_key(|r| {
                let member = c.pipeline_nodes.contains(&r.uuid);
                let used = node_of(&r.uuid).map_or(0, |n| n.used);
                (member, std::cmp::Reverse(used), r.uuid.clone())
            });
            for r in victims.into_iter().take(excess) {
                tracing::info!(container = c.id, datanode = %r.uuid, replicas = counted.len(), factor,
                    "over-replicated container: deleting a replica");
                actions.push(delete(&r.uuid, c.id, true));
                inflight
                    .deletes
                    .entry(c.id)
                    .or_default()
                    .insert(r.uuid.clone(), now);
                report.deletes_sent += 1;
            }
        }
    }
    inflight.adds.retain(|_, a| !a.is_empty());
    inflight.deletes.retain(|_, d| !d.is_empty());
    (actions, report)
}

/// The UNHEALTHY replica to delete so that its datanode can take a healthy copy (when every
/// datanode that could take one holds a replica). An UNHEALTHY replica is still read as a last
/// resort, so it goes only one at a time, and only while at least two readable copies stay
/// besides it (of which at least one of the `healthy` ones): with one healthy and one
/// UNHEALTHY replica, the UNHEALTHY one stays until a new healthy copy exists.
fn room_to_make<'a>(
    healthy: usize,
    unhealthy: &[&'a RmReplica],
    deleting: impl Fn(&str) -> bool,
) -> Option<&'a RmReplica> {
    if healthy == 0 || unhealthy.iter().any(|r| deleting(&r.uuid)) {
        return None;
    }
    let readable_after = healthy + unhealthy.len() - 1;
    if readable_after < 2 {
        return None;
    }
    unhealthy.first().copied()
}

fn delete(uuid: &str, container_id: u64, force: bool) -> RmAction {
    RmAction::Send {
        datanode: uuid.to_string(),
        command: Command::DeleteContainer {
            container_id,
            force,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u16, health: NodeHealth, op: OpState) -> RmNode {
        RmNode {
            uuid: format!("dn-{n}"),
            details: DatanodeDetails {
                uuid: format!("dn-{n}"),
                host: "127.0.0.1".into(),
                port: 9000 + n,
                http_port: 0,
            },
            health,
            op_state: op,
            usable: health == NodeHealth::Healthy && op == OpState::InService,
            containers: 0,
            used: 0,
        }
    }

    fn replica(n: u16, state: ReplicaState, blocks: u64) -> RmReplica {
        RmReplica {
            uuid: format!("dn-{n}"),
            state,
            block_count: blocks,
            used_bytes: blocks * 10,
            bcsid: blocks,
            missed: false,
        }
    }

    fn container(replicas: Vec<RmReplica>) -> RmContainer {
        RmContainer {
            id: 7,
            state: ContainerState::Closed,
            factor: Factor::Three,
            pipeline_nodes: vec!["dn-1".into(), "dn-2".into(), "dn-3".into()],
            replicas,
            has_pending_deletes: false,
        }
    }

    fn healthy(n: u16) -> RmNode {
        node(n, NodeHealth::Healthy, OpState::InService)
    }

    fn commands(actions: &[RmAction]) -> Vec<(String, Command)> {
        actions
            .iter()
            .filter_map(|a| match a {
                RmAction::Send { datanode, command } => Some((datanode.clone(), command.clone())),
                RmAction::MarkDeleting(_) => None,
            })
            .collect()
    }

    #[test]
    fn under_replicated_copies_once_until_done_or_timed_out() {
        let view = ClusterView {
            nodes: (1..=4).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Closed, 2),
            ])],
        };
        let mut inflight = InFlight::default();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let (actions, report) = plan(&view, &mut inflight, t0, timeout);
        assert_eq!(report.under_replicated, 1);
        let cmds = commands(&actions);
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].0, "dn-3");
        match &cmds[0].1 {
            Command::ReplicateContainer {
                container_id,
                sources,
            } => {
                assert_eq!(*container_id, 7);
                assert_eq!(sources.len(), 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        // In flight: not asked again.
        let (actions, _) = plan(&view, &mut inflight, t0 + Duration::from_secs(1), timeout);
        assert!(actions.is_empty());
        // Timed out: asked again.
        let (actions, _) = plan(&view, &mut inflight, t0 + Duration::from_secs(31), timeout);
        assert_eq!(commands(&actions).len(), 1);
    }

    #[test]
    fn replicas_still_open_of_a_closed_container_are_told_again_to_close() {
        let view = ClusterView {
            nodes: (1..=4).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Open, 2),
                replica(3, ReplicaState::Closing, 2),
            ])],
        };
        let mut inflight = InFlight::default();
        let (actions, report) = plan(
            &view,
            &mut inflight,
            Instant::now(),
            Duration::from_secs(30),
        );
        assert_eq!(report.closes_sent, 2);
        // Nothing else is decided while replicas are still open: no copy for the "missing" two.
        assert_eq!(
            commands(&actions),
            vec![
                ("dn-2".to_string(), Command::CloseContainer(7)),
                ("dn-3".to_string(), Command::CloseContainer(7)),
            ]
        );
    }

    #[test]
    fn unhealthy_counts_as_missing_and_goes_once_replaced() {
        let mut view = ClusterView {
            nodes: (1..=4).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Closed, 2),
                replica(3, ReplicaState::Unhealthy, 2),
            ])],
        };
        let mut inflight = InFlight::default();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        let cmds = commands(&actions);
        assert_eq!(cmds.len(), 1, "{cmds:?}");
        assert_eq!(cmds[0].0, "dn-4", "the unhealthy holder is not a target");
        view.containers[0]
            .replicas
            .push(replica(4, ReplicaState::Closed, 2));
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        assert_eq!(
            commands(&actions),
            vec![(
                "dn-3".to_string(),
                Command::DeleteContainer {
                    container_id: 7,
                    force: true
                }
            )]
        );
    }

    #[test]
    fn over_replicated_deletes_a_non_member_and_decommissioning_replicas_do_not_count() {
        let view = ClusterView {
            nodes: (1..=4).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Closed, 2),
                replica(3, ReplicaState::Closed, 2),
                replica(4, ReplicaState::Closed, 2),
            ])],
        };
        let (actions, report) = plan(
            &view,
            &mut InFlight::default(),
            Instant::now(),
            Duration::from_secs(30),
        );
        assert_eq!(report.over_replicated, 1);
        assert_eq!(
            commands(&actions),
            vec![(
                "dn-4".to_string(),
                Command::DeleteContainer {
                    container_id: 7,
                    force: true
                }
            )]
        );

        let mut nodes: Vec<RmNode> = (1..=4).map(healthy).collect();
        nodes[0] = node(1, NodeHealth::Healthy, OpState::Decommissioning);
        let view = ClusterView {
            nodes,
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Closed, 2),
                replica(3, ReplicaState::Closed, 2),
            ])],
        };
        let (actions, _) = plan(
            &view,
            &mut InFlight::default(),
            Instant::now(),
            Duration::from_secs(30),
        );
        let cmds = commands(&actions);
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].0, "dn-4");
    }

    fn at(n: u16, bcsid: u64) -> RmReplica {
        RmReplica {
            bcsid,
            ..replica(n, ReplicaState::Closed, 2)
        }
    }

    #[test]
    fn lagging_is_a_lower_bcsid_or_a_reported_miss_unless_every_replica_was_reported() {
        let uuids = |rs: &[RmReplica]| -> Vec<String> {
            lagging(rs).into_iter().map(str::to_string).collect()
        };
        assert!(uuids(&[at(1, 5), at(2, 5), at(3, 5)]).is_empty());
        assert_eq!(uuids(&[at(1, 5), at(2, 4), at(3, 5)]), vec!["dn-2"]);
        let missed = RmReplica {
            missed: true,
            ..at(3, 6)
        };
        assert_eq!(
            uuids(&[at(1, 5), at(2, 5), missed.clone()]),
            vec!["dn-3"],
            "a reported miss lags whatever its BCSID"
        );
        // Everyone reported: the best left are kept.
        let all = vec![
            RmReplica {
                missed: true,
                ..at(1, 5)
            },
            missed,
        ];
        assert_eq!(uuids(&all), vec!["dn-1"]);
        // Replicas not CLOSED are not judged by their BCSID, only by a reported miss.
        assert!(uuids(&[at(1, 5), replica(2, ReplicaState::Open, 1)]).is_empty());
        let open_missed = RmReplica {
            missed: true,
            ..replica(2, ReplicaState::Open, 1)
        };
        assert_eq!(
            uuids(&[replica(1, ReplicaState::Open, 1), open_missed]),
            vec!["dn-2"]
        );
    }

    #[test]
    fn a_lagging_replica_is_replaced_from_complete_ones_and_excess_deletion_removes_it() {
        // dn-3 (a pipeline member) missed commits; dn-4 holds nothing.
        let mut view = ClusterView {
            nodes: (1..=4).map(healthy).collect(),
            containers: vec![container(vec![at(1, 5), at(2, 5), at(3, 3)])],
        };
        let mut inflight = InFlight::default();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let (actions, report) = plan(&view, &mut inflight, t0, timeout);
        assert_eq!((report.lagging_replicas, report.under_replicated), (1, 1));
        let cmds = commands(&actions);
        assert_eq!(cmds.len(), 1, "{cmds:?}");
        match &cmds[0] {
            (target, Command::ReplicateContainer { sources, .. }) => {
                assert_eq!(target, "dn-4");
                let mut srcs: Vec<&str> = sources.iter().map(|d| d.uuid.as_str()).collect();
                srcs.sort();
                assert_eq!(srcs, vec!["dn-1", "dn-2"], "complete replicas only");
            }
            other => panic!("unexpected {other:?}"),
        }
        // The copy (dn-4, not a pipeline member) arrives: the lagging member goes, never a
        // complete replica.
        view.containers[0].replicas.push(at(4, 5));
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        assert_eq!(
            commands(&actions),
            vec![(
                "dn-3".to_string(),
                Command::DeleteContainer {
                    container_id: 7,
                    force: true
                }
            )]
        );
        view.containers[0].replicas.retain(|r| r.uuid != "dn-3");
        let (actions, report) = plan(&view, &mut inflight, t0, timeout);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(report.lagging_replicas, 0);
    }

    #[test]
    fn with_no_spare_datanode_the_lagging_replica_makes_room_only_while_a_complete_one_is_healthy()
    {
        let mut view = ClusterView {
            nodes: (1..=3).map(healthy).collect(),
            containers: vec![container(vec![
                at(1, 5),
                at(2, 5),
                RmReplica {
                    missed: true,
                    ..at(3, 5)
                },
            ])],
        };
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let (actions, _) = plan(&view, &mut InFlight::default(), t0, timeout);
        assert_eq!(
            commands(&actions),
            vec![(
                "dn-3".to_string(),
                Command::DeleteContainer {
                    container_id: 7,
                    force: true
                }
            )]
        );
        // The complete replicas' datanodes are not healthy: nothing to copy from, so the
        // lagging replica (the best one can read now) stays.
        view.nodes[0] = node(1, NodeHealth::Stale, OpState::InService);
        view.nodes[1] = node(2, NodeHealth::Stale, OpState::InService);
        let (actions, report) = plan(&view, &mut InFlight::default(), t0, timeout);
        assert!(commands(&actions).is_empty(), "{actions:?}");
        assert_eq!(report.unrecoverable, 1);
        // Gone and copied back: complete again.
        view.nodes = (1..=3).map(healthy).collect();
        view.containers[0].replicas.truncate(2);
        let (actions, _) = plan(&view, &mut InFlight::default(), t0, timeout);
        assert!(matches!(
            &commands(&actions)[..],
            [(t, Command::ReplicateContainer { .. })] if t == "dn-3"
        ));
    }

    #[test]
    fn a_stale_replica_back_from_the_dead_is_deleted_not_the_complete_copy() {
        // dn-3 was declared dead, its replica re-made on dn-4 (not a pipeline member); dn-3
        // comes back with the replica it had, which misses what was committed since.
        let view = ClusterView {
            nodes: (1..=4).map(healthy).collect(),
            containers: vec![container(vec![at(1, 9), at(2, 9), at(3, 4), at(4, 9)])],
        };
        let (actions, report) = plan(
            &view,
            &mut InFlight::default(),
            Instant::now(),
            Duration::from_secs(30),
        );
        assert_eq!(report.over_replicated, 0);
        assert_eq!(
            commands(&actions),
            vec![(
                "dn-3".to_string(),
                Command::DeleteContainer {
                    container_id: 7,
                    force: true
                }
            )]
        );
    }

    #[test]
    fn empty_containers_are_deleted_only_when_a_majority_agrees() {
        let mut view = ClusterView {
            nodes: (1..=3).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 0),
                replica(2, ReplicaState::Closed, 0),
                replica(3, ReplicaState::Closed, 0),
            ])],
        };
        let (actions, report) = plan(
            &view,
            &mut InFlight::default(),
            Instant::now(),
            Duration::from_secs(30),
        );
        assert_eq!(report.emptied, 1);
        assert!(actions.contains(&RmAction::MarkDeleting(7)));
        assert_eq!(commands(&actions).len(), 3);

        // One replica alone is not a majority; a pending deletion also holds it back.
        view.containers[0].replicas.truncate(1);
        let (actions, _) = plan(
            &view,
            &mut InFlight::default(),
            Instant::now(),
            Duration::from_secs(30),
        );
        assert!(!actions.contains(&RmAction::MarkDeleting(7)));
        view.containers[0]
            .replicas
            .push(replica(2, ReplicaState::Closed, 0));
        view.containers[0].has_pending_deletes = true;
        let (actions, _) = plan(
            &view,
            &mut InFlight::default(),
            Instant::now(),
            Duration::from_secs(30),
        );
        assert!(!actions.contains(&RmAction::MarkDeleting(7)));
    }

    #[test]
    fn an_unhealthy_replica_stays_until_a_new_healthy_copy_exists() {
        // One healthy and one UNHEALTHY replica, no datanode free to take a copy.
        let mut view = ClusterView {
            nodes: (1..=2).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Unhealthy, 2),
            ])],
        };
        let mut inflight = InFlight::default();
        let t0 = Instant::now();
        let timeout = Duration::from_secs(30);
        let (actions, report) = plan(&view, &mut inflight, t0, timeout);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!((report.under_replicated, report.unhealthy_replicas), (1, 1));
        // A third datanode: the copy goes there; the UNHEALTHY replica stays meanwhile.
        view.nodes.push(healthy(3));
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        let cmds = commands(&actions);
        assert_eq!(cmds.len(), 1, "{cmds:?}");
        assert_eq!(cmds[0].0, "dn-3");
        assert!(matches!(cmds[0].1, Command::ReplicateContainer { .. }));
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        assert!(actions.is_empty(), "{actions:?}");
        // The new healthy copy exists: now the UNHEALTHY one makes room for the third.
        view.containers[0]
            .replicas
            .push(replica(3, ReplicaState::Closed, 2));
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        assert_eq!(
            commands(&actions),
            vec![(
                "dn-2".to_string(),
                Command::DeleteContainer {
                    container_id: 7,
                    force: true
                }
            )]
        );

        // One healthy and two UNHEALTHY on three datanodes: one UNHEALTHY goes at a time.
        let view = ClusterView {
            nodes: (1..=3).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Closed, 2),
                replica(2, ReplicaState::Unhealthy, 2),
                replica(3, ReplicaState::Unhealthy, 2),
            ])],
        };
        let mut inflight = InFlight::default();
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        assert_eq!(commands(&actions).len(), 1, "{actions:?}");
        let (actions, _) = plan(&view, &mut inflight, t0, timeout);
        assert!(actions.is_empty(), "the next waits: {actions:?}");

        // Only UNHEALTHY replicas: nothing is deleted.
        let view = ClusterView {
            nodes: (1..=3).map(healthy).collect(),
            containers: vec![container(vec![
                replica(1, ReplicaState::Unhealthy, 2),
                replica(2, ReplicaState::Unhealthy, 2),
                replica(3, ReplicaState::Unhealthy, 2),
            ])],
        };
        let (actions, report) = plan(&view, &mut InFlight::default(), t0, timeout);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(report.unrecoverable, 1);
    }
}
