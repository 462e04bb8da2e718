//! The datanode's side of the SCM protocol: register, then heartbeat every
//! `hdds.heartbeat.interval` with a node report (capacity and remaining from statvfs of the data
//! directory; used = the committed block bytes of this datanode's containers, as Ozone reports
//! the space its own data takes), a container report and the deleted-block transactions
//! carried out since the last heartbeat SCM answered, and queue the commands that ride on the
//! replies: close container, delete blocks and delete container go to the command workers
//! (`commands`), replicate container to the replication supervisor, so a heartbeat never waits
//! for the disk.
//!
//! SCM HA (as Ozone): one loop per SCM of the service, each with its own link state. Only the
//! leader answers; a follower refuses every call with UNAVAILABLE and the `x-scm-leader` hint.
//! A link refused so drops what waited for that SCM and starts over unregistered, so the
//! first call that SCM answers (once it leads) is a registration with a full container report.
//! Every answer carries the leader's raft term; the datanode keeps the highest term seen and
//! acts only on commands of an answer of that term, so a deposed leader that has not noticed
//! yet cannot command it.
//!
//! Container reports: registration carries a full one, and so does a heartbeat every
//! `hdds.container.report.interval` (60 s by default); the heartbeats in between are
//! incremental (`incremental_container_report`): only the replicas changed since the last
//! report that SCM answered (changes are tracked per link), and `removed_containers`, at most
//! 1,000 replicas each (the rest go with the next heartbeat). A heartbeat that fails (SCM down)
//! gives its changes and acknowledgements back, so the next one carries them; once a full
//! report is due anyway, or too much waits, the changes are dropped and the next heartbeat
//! carries a full report, so nothing grows without bound for an SCM that never answers.
//!
//! SCM being down is normal (it may start later or restart): each loop keeps retrying at the
//! heartbeat interval and logs once when its SCM goes away and once when it is back.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ozone_proto::scm::scm_command::Command;
use ozone_proto::scm::scm_datanode_service_client::ScmDatanodeServiceClient;
use ozone_proto::scm::{HeartbeatRequest, NodeReport, RegisterRequest, ScmCommand};
use tokio::sync::watch;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::commands::Work;
use crate::node::{Datanode, ScmConnection};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between rounds of every link while no SCM answers as leader.
const LEADERLESS_RETRY: Duration = Duration::from_millis(500);
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Replicas one incremental report names at most (changed plus removed); the rest wait for
/// the next heartbeat.
const MAX_INCREMENTAL_REPLICAS: usize = 1000;
/// Changes kept for an SCM that does not answer; beyond, its next heartbeat is a full report.
const MAX_PENDING_CHANGES: usize = 50 * MAX_INCREMENTAL_REPLICAS;

type ScmClient = ScmDatanodeServiceClient<Channel>;

/// Runs one heartbeat loop per SCM until `shutdown` turns true.
pub(crate) async fn run(node: Arc<Datanode>, shutdown: watch::Receiver<bool>) {
    let mut loops = tokio::task::JoinSet::new();
    for (index, address) in node.config.scm_addresses.iter().enumerate() {
        loops.spawn(run_link(
            node.clone(),
            index,
            address.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    tracing::debug!("heartbeat loops stopped");
}

/// How an SCM answered the last round.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Served,
    /// A follower refusing, naming the leader.
    Follower(String),
    /// Down, electing or in safe mode: why.
    Failed(String),
}

/// The loop of the link to the SCM at `address` (`link` in `config.scm_addresses`).
async fn run_link(
    node: Arc<Datanode>,
    index: usize,
    address: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = format!("http://{address}");
    let endpoint = match Endpoint::from_shared(url) {
        Ok(e) => e.connect_timeout(CONNECT_TIMEOUT).timeout(RPC_TIMEOUT),
        Err(e) => {
            tracing::error!(scm = %address, error = %e, "invalid SCM address; the datanode will not register with it");
            node.set_scm(
                index,
                ScmConnection::Unreachable {
                    error: format!("invalid address: {e}"),
                },
            );
            return;
        }
    };
    let channel = ozone_common::tls::channel(endpoint, ozone_common::tls::NodeRole::Scm);
    let mut client = ScmDatanodeServiceClient::new(channel)
        .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES);
    let mut link = Link {
        index,
        address,
        registered: false,
        last_full: None,
        cluster_id: String::new(),
    };
    let mut last = Answer::Served;
    loop {
        let result = tokio::select! {
            r = beat(&node, &mut client, &mut link) => r,
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        let answer = match result {
            Ok(()) => Answer::Served,
            Err(status) => refused(&node, &mut link, &status),
        };
        match (&last, &answer) {
            (Answer::Served, Answer::Served) => {}
            (_, Answer::Served) => {
                tracing::info!(scm = %link.address, "SCM answers (it leads)");
            }
            (Answer::Follower(_), Answer::Follower(_)) | (Answer::Failed(_), Answer::Failed(_)) => {
            }
            (_, Answer::Follower(leader)) => {
                tracing::info!(scm = %link.address, %leader, "SCM is a follower; heartbeating to it until it leads");
            }
            (_, Answer::Failed(error)) => {
                tracing::warn!(scm = %link.address, %error,
                    "cannot reach SCM; retrying every heartbeat interval");
            }
        }
        last = answer;
        // While no SCM answers as leader (a failover), every link tries again sooner, so
        // the new leader has this datanode's registration within a moment of taking over.
        let leaderless = !node
            .scm_links()
            .iter()
            .any(|(_, s)| matches!(s, ScmConnection::Leader { .. }));
        let pause = if leaderless {
            node.config.heartbeat_interval.min(LEADERLESS_RETRY)
        } else {
            node.config.heartbeat_interval
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait_for(|&stop| stop) => break,
        }
    }
    tracing::debug!(scm = %link.address, "heartbeat loop stopped");
}

/// Handles a failed round: a follower's refusal starts the link over, anything else keeps
/// what waits (within bounds) for the next round.
fn refused(node: &Datanode, link: &mut Link, status: &Status) -> Answer {
    let leader = (status.code() == tonic::Code::Unavailable)
        .then(|| status.metadata().get(scm_client::LEADER_HEADER))
        .flatten()
        .map(|v| v.to_str().unwrap_or("?").to_string());
    if let Some(leader) = leader {
        tracing::debug!(scm = %link.address, %leader, "refused by a follower SCM");
        link.registered = false;
        link.last_full = None;
        node.containers.take_all_changes(link.index);
        node.drop_delete_acks(link.index);
        node.set_scm(
            link.index,
            ScmConnection::Follower {
                leader: leader.clone(),
            },
        );
        return Answer::Follower(leader);
    }
    tracing::debug!(scm = %link.address, code = ?status.code(), error = %status.message(), "SCM did not answer");
    let full_due = link.full_due(node);
    if full_due || node.containers.pending_changes(link.index) > MAX_PENDING_CHANGES {
        // The next heartbeat it answers carries a full report, which covers these.
        node.containers.take_all_changes(link.index);
        link.last_full = None;
    }
    let error = format!("{:?}: {}", status.code(), status.message());
    node.set_scm(
        link.index,
        ScmConnection::Unreachable {
            error: error.clone(),
        },
    );
    Answer::Failed(error)
}

/// What a loop remembers between heartbeats.
struct Link {
    index: usize,
    address: String,
    registered: bool,
    /// When SCM last answered a full container report (register or heartbeat).
    last_full: Option<Instant>,
    /// The cluster SCM named at registration.
    cluster_id: String,
}

impl Link {
    fn full_due(&self, node: &Datanode) -> bool {
        self.last_full
            .is_none_or(|t| t.elapsed() >= node.config.container_report_interval)
    }
}

/// One round: register if needed, heartbeat, queue the commands of the reply.
async fn beat(node: &Arc<Datanode>, client: &mut ScmClient, link: &mut Link) -> Result<(), Status> {
    if !link.registered {
        register(node, client, link).await?;
    }
    let full = link.full_due(node);
    let index = link.index;
    // Taken before the report is built, so nothing that changes meanwhile is missed; given
    // back if SCM does not get the report.
    let (batch, containers) = if full {
        (
            node.containers.take_all_changes(index),
            container_report(node),
        )
    } else {
        let batch = node
            .containers
            .take_changes(index, MAX_INCREMENTAL_REPLICAS);
        let containers = batch
            .changed
            .iter()
            .filter_map(|&id| node.containers.report(id))
            .collect();
        (batch, containers)
    };
    let acks = node.take_delete_acks(index);
    let request = HeartbeatRequest {
        datanode: Some(node.details.clone()),
        node_report: Some(node_report(node).await),
        containers,
        deleted_block_txs: acks.clone(),
        incremental_container_report: !full,
        removed_containers: if full {
            Vec::new()
        } else {
            batch.removed.clone()
        },
    };
    let reply = match client.heartbeat(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            node.containers.restore_changes(index, batch);
            node.restore_delete_acks(index, acks);
            return Err(status);
        }
    };
    if full {
        link.last_full = Some(Instant::now());
    }
    // Answered (again): the status page shows the link as it is.
    node.set_scm(
        index,
        ScmConnection::Leader {
            cluster_id: link.cluster_id.clone(),
            term: reply.term,
        },
    );
    if node.observe_scm_term(reply.term) {
        node.set_secret_keys(reply.secret_keys);
        for command in reply.commands {
            submit(node, command);
        }
    } else if !reply.commands.is_empty() {
        tracing::warn!(scm = %link.address, term = reply.term, highest = node.scm_term(),
            commands = reply.commands.len(), "ignoring the commands of a deposed SCM leader");
    }
    if reply.reregister {
        tracing::info!(scm = %link.address, "SCM does not know this datanode; registering again");
        link.registered = false;
        register(node, client, link).await?;
    }
    Ok(())
}

/// Registers with a full container report; notes the cluster id and the term.
async fn register(
    node: &Arc<Datanode>,
    client: &mut ScmClient,
    link: &mut Link,
) -> Result<(), Status> {
    let batch = node.containers.take_all_changes(link.index);
    let request = RegisterRequest {
        datanode: Some(node.details.clone()),
        node_report: Some(node_report(node).await),
        containers: container_report(node),
    };
    let mut reply = match client.register(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            node.containers.restore_changes(link.index, batch);
            return Err(status);
        }
    };
    if node.observe_scm_term(reply.term) {
        node.set_secret_keys(std::mem::take(&mut reply.secret_keys));
    }
    // Every SCM of a service shares the cluster id; another one means a misconfigured service.
    let others: Vec<String> = node
        .scm_links()
        .into_iter()
        .filter_map(|(_, s)| match s {
            ScmConnection::Leader { cluster_id, .. } if cluster_id != reply.cluster_id => {
                Some(cluster_id)
            }
            _ => None,
        })
        .collect();
    if !others.is_empty() {
        tracing::warn!(scm = %link.address, cluster_id = %reply.cluster_id, other = ?others,
            "SCMs name different clusters: check the SCM service configuration");
    }
    tracing::info!(uuid = %node.details.uuid, scm = %link.address, cluster_id = %reply.cluster_id,
        term = reply.term, "registered with SCM");
    link.cluster_id = reply.cluster_id;
    link.registered = true;
    link.last_full = Some(Instant::now());
    node.set_scm(
        link.index,
        ScmConnection::Leader {
            cluster_id: link.cluster_id.clone(),
            term: reply.term,
        },
    );
    Ok(())
}

/// Hands a command to the worker that carries it out; never waits for it.
fn submit(node: &Arc<Datanode>, command: ScmCommand) {
    match command.command {
        Some(Command::CloseContainer(close)) => {
            node.commands.submit(Work::Close(close.container_id));
        }
        Some(Command::ReplicateContainer(r)) => {
            let sources: Vec<_> = r.sources.into_iter().collect();
            tracing::info!(
                container = r.container_id,
                sources = sources.len(),
                "SCM asks for a copy of a container"
            );
            node.request_replication(r.container_id, sources, r.token);
        }
        Some(Command::DeleteBlocks(d)) => {
            for tx in d.transactions {
                node.commands.submit(Work::DeleteBlocks(tx));
            }
        }
        Some(Command::DeleteContainer(d)) => {
            node.commands.submit(Work::DeleteContainer {
                id: d.container_id,
                force: d.force,
            });
        }
        None => tracing::warn!("SCM sent an empty or unknown command; ignored"),
    }
}

fn container_report(node: &Datanode) -> Vec<ozone_proto::scm::ContainerReplicaReport> {
    let reports = node.containers.reports();
    node.metrics.set_gauge("containers", reports.len() as i64);
    node.metrics.set_gauge(
        "used_bytes",
        reports.iter().map(|r| r.used_bytes).sum::<u64>() as i64,
    );
    node.metrics.set_gauge(
        "blocks",
        reports.iter().map(|r| r.block_count).sum::<u64>() as i64,
    );
    reports
}

/// Capacity, used and remaining bytes of the file system holding the data directory.
async fn node_report(node: &Arc<Datanode>) -> NodeReport {
    let dir = node.config.dir.clone();
    let used: u64 = node.containers.reports().iter().map(|r| r.used_bytes).sum();
    match tokio::task::spawn_blocking(move || disk_usage(&dir)).await {
        Ok(Ok(report)) => NodeReport { used, ..report },
        Ok(Err(e)) => {
            tracing::warn!(dir = %node.config.dir.display(), error = %e, "statvfs failed; reporting no capacity");
            NodeReport::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "statvfs task failed; reporting no capacity");
            NodeReport::default()
        }
    }
}

pub(crate) fn disk_usage(dir: &Path) -> std::io::Result<NodeReport> {
    let st = rustix::fs::statvfs(dir)?;
    let frsize = st.f_frsize;
    Ok(NodeReport {
        capacity: st.f_blocks.saturating_mul(frsize),
        used: st
            .f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(frsize),
        remaining: st.f_bavail.saturating_mul(frsize),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn disk_usage_is_consistent() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = super::disk_usage(tmp.path()).expect("statvfs");
        assert!(r.capacity > 0);
        assert!(r.used <= r.capacity && r.remaining <= r.capacity);
    }
}
