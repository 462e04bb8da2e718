//! The datanode's side of the SCM protocol: register, then heartbeat every
//! `hdds.heartbeat.interval` with a node report (capacity and remaining from statvfs of the data
//! directory; used = the committed block bytes of this datanode's containers, as Ozone reports
//! the space its own data takes), a container report and the deleted-block transactions
//! carried out since the last heartbeat SCM answered, and queue the commands that ride on the
//! replies: close container, delete blocks and delete container go to the command workers
//! (`commands`), replicate container to the replication supervisor, so a heartbeat never waits
//! for the disk.
//!
//! Container reports: registration carries a full one, and so does a heartbeat every
//! `hdds.container.report.interval` (60 s by default); the heartbeats in between are
//! incremental (`incremental_container_report`): only the replicas changed since the last
//! report SCM answered, and `removed_containers`, at most 1,000 replicas each (the rest go with
//! the next heartbeat). A heartbeat that fails gives its changes and acknowledgements back, so
//! the next one carries them.
//!
//! SCM being down is normal (it may start later or restart): the loop keeps retrying at the
//! heartbeat interval and logs once when SCM goes away and once when it is back.

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
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

type ScmClient = ScmDatanodeServiceClient<Channel>;

/// Runs until `shutdown` turns true.
pub(crate) async fn run(node: Arc<Datanode>, mut shutdown: watch::Receiver<bool>) {
    let address = format!("http://{}", node.config.scm_address);
    let endpoint = match Endpoint::from_shared(address.clone()) {
        Ok(e) => e.connect_timeout(CONNECT_TIMEOUT).timeout(RPC_TIMEOUT),
        Err(e) => {
            tracing::error!(scm = %address, error = %e, "invalid SCM address; the datanode will not register");
            node.set_scm(ScmConnection::Unreachable {
                error: format!("invalid address: {e}"),
            });
            return;
        }
    };
    let mut client = ScmDatanodeServiceClient::new(endpoint.connect_lazy())
        .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES);
    let mut link = Link {
        registered: false,
        last_full: None,
        cluster_id: String::new(),
    };
    let mut reachable = true;
    loop {
        let result = tokio::select! {
            r = beat(&node, &mut client, &mut link) => r,
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        match result {
            Ok(()) => {
                if !reachable {
                    tracing::info!(scm = %address, "SCM is reachable again");
                }
                reachable = true;
            }
            Err(status) => {
                if reachable {
                    tracing::warn!(scm = %address, code = ?status.code(), error = %status.message(),
                        "cannot reach SCM; retrying every heartbeat interval");
                }
                reachable = false;
                node.set_scm(ScmConnection::Unreachable {
                    error: format!("{:?}: {}", status.code(), status.message()),
                });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(node.config.heartbeat_interval) => {}
            _ = shutdown.wait_for(|&stop| stop) => break,
        }
    }
    tracing::debug!("heartbeat loop stopped");
}

/// Replicas one incremental report names at most (changed plus removed); the rest wait for
/// the next heartbeat.
const MAX_INCREMENTAL_REPLICAS: usize = 1000;

/// What the loop remembers between heartbeats.
struct Link {
    registered: bool,
    /// When SCM last answered a full container report (register or heartbeat).
    last_full: Option<Instant>,
    /// The cluster SCM named at registration.
    cluster_id: String,
}

/// One round: register if needed, heartbeat, queue the commands of the reply.
async fn beat(node: &Arc<Datanode>, client: &mut ScmClient, link: &mut Link) -> Result<(), Status> {
    if !link.registered {
        link.cluster_id = register(node, client).await?;
        link.registered = true;
        link.last_full = Some(Instant::now());
    }
    let full = link
        .last_full
        .is_none_or(|t| t.elapsed() >= node.config.container_report_interval);
    // Taken before the report is built, so nothing that changes meanwhile is missed; given
    // back if SCM does not get the report.
    let (batch, containers) = if full {
        (node.containers.take_all_changes(), container_report(node))
    } else {
        let batch = node.containers.take_changes(MAX_INCREMENTAL_REPLICAS);
        let containers = batch
            .changed
            .iter()
            .filter_map(|&id| node.containers.report(id))
            .collect();
        (batch, containers)
    };
    let acks = node.take_delete_acks();
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
            node.containers.restore_changes(batch);
            node.restore_delete_acks(acks);
            return Err(status);
        }
    };
    if full {
        link.last_full = Some(Instant::now());
    }
    // Answered again after a failure: the status page shows the link as it is.
    if matches!(node.scm(), ScmConnection::Unreachable { .. }) {
        node.set_scm(ScmConnection::Registered {
            cluster_id: link.cluster_id.clone(),
        });
    }
    for command in reply.commands {
        submit(node, command);
    }
    if reply.reregister {
        tracing::info!("SCM does not know this datanode; registering again");
        link.registered = false;
        link.cluster_id = register(node, client).await?;
        link.registered = true;
        link.last_full = Some(Instant::now());
    }
    Ok(())
}

/// Registers with a full container report; returns the cluster id.
async fn register(node: &Arc<Datanode>, client: &mut ScmClient) -> Result<String, Status> {
    let batch = node.containers.take_all_changes();
    let request = RegisterRequest {
        datanode: Some(node.details.clone()),
        node_report: Some(node_report(node).await),
        containers: container_report(node),
    };
    let reply = match client.register(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            node.containers.restore_changes(batch);
            return Err(status);
        }
    };
    tracing::info!(uuid = %node.details.uuid, cluster_id = %reply.cluster_id, "registered with SCM");
    node.set_scm(ScmConnection::Registered {
        cluster_id: reply.cluster_id.clone(),
    });
    Ok(reply.cluster_id)
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
            node.request_replication(r.container_id, sources);
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
