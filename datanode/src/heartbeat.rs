//! The datanode's side of the SCM protocol: register, then heartbeat every
//! `hdds.heartbeat.interval` with a node report (capacity and remaining from statvfs of the data
//! directory; used = the committed block bytes of this datanode's containers, as Ozone reports
//! the space its own data takes), a full container report and the deleted-block transactions
//! carried out since the last heartbeat, and carry out the commands that ride on the replies:
//! close container, delete blocks and delete container here; replicate container is handed to
//! the replication supervisor so a copy never delays a heartbeat.
//!
//! SCM being down is normal (it may start later or restart): the loop keeps retrying at the
//! heartbeat interval and logs once when SCM goes away and once when it is back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ozone_proto::scm::scm_command::Command;
use ozone_proto::scm::scm_datanode_service_client::ScmDatanodeServiceClient;
use ozone_proto::scm::{HeartbeatRequest, NodeReport, RegisterRequest, ScmCommand};
use tokio::sync::watch;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::error::DatanodeError;
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
    let mut registered = false;
    let mut reachable = true;
    loop {
        let result = tokio::select! {
            r = beat(&node, &mut client, &mut registered) => r,
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

/// One round: register if needed, heartbeat, act on the reply.
async fn beat(
    node: &Arc<Datanode>,
    client: &mut ScmClient,
    registered: &mut bool,
) -> Result<(), Status> {
    if !*registered {
        register(node, client).await?;
        *registered = true;
    }
    let request = HeartbeatRequest {
        datanode: Some(node.details.clone()),
        node_report: Some(node_report(node).await),
        containers: container_report(node),
        deleted_block_txs: node.take_delete_acks(),
        ..Default::default()
    };
    let reply = client.heartbeat(request).await?.into_inner();
    for command in reply.commands {
        execute(node, command).await;
    }
    if reply.reregister {
        tracing::info!("SCM does not know this datanode; registering again");
        *registered = false;
        register(node, client).await?;
        *registered = true;
    }
    Ok(())
}

async fn register(node: &Arc<Datanode>, client: &mut ScmClient) -> Result<(), Status> {
    let request = RegisterRequest {
        datanode: Some(node.details.clone()),
        node_report: Some(node_report(node).await),
        containers: container_report(node),
    };
    let reply = client.register(request).await?.into_inner();
    tracing::info!(uuid = %node.details.uuid, cluster_id = %reply.cluster_id, "registered with SCM");
    node.set_scm(ScmConnection::Registered {
        cluster_id: reply.cluster_id,
    });
    Ok(())
}

async fn execute(node: &Arc<Datanode>, command: ScmCommand) {
    match command.command {
        Some(Command::CloseContainer(close)) => {
            let id = close.container_id;
            match node.containers.close_container(id).await {
                Ok(()) => tracing::info!(container = id, "closed container on SCM's command"),
                Err(DatanodeError::ContainerNotFound(_)) => {
                    tracing::warn!(
                        container = id,
                        "SCM asked to close a container this datanode does not have"
                    )
                }
                Err(e) => tracing::error!(container = id, error = %e, "cannot close container"),
            }
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
                let (id, count) = (tx.container_id, tx.local_ids.len());
                let result = match node.containers.get(id) {
                    Ok(c) => {
                        let ids = tx.local_ids;
                        tokio::task::spawn_blocking(move || c.delete_blocks(&ids))
                            .await
                            .map_err(DatanodeError::from)
                            .and_then(|r| r)
                    }
                    // Nothing of it here (any more): nothing to delete.
                    Err(DatanodeError::ContainerNotFound(_)) => Ok(0),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(freed) => {
                        tracing::debug!(
                            container = id,
                            blocks = count,
                            freed,
                            tx = tx.tx_id,
                            "deleted blocks"
                        );
                        node.ack_delete(tx.tx_id);
                    }
                    Err(e) => {
                        tracing::warn!(container = id, tx = tx.tx_id, error = %e, "cannot delete blocks; SCM will ask again")
                    }
                }
            }
        }
        Some(Command::DeleteContainer(d)) => {
            let id = d.container_id;
            match node.containers.delete_container(id, d.force).await {
                Ok(()) => tracing::info!(
                    container = id,
                    force = d.force,
                    "deleted container on SCM's command"
                ),
                Err(DatanodeError::ContainerNotFound(_)) => {}
                Err(e) => tracing::warn!(container = id, error = %e, "cannot delete container"),
            }
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
