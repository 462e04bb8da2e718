//! The background scrubber: re-reads every committed block of every container and verifies it
//! against its stored CRC32C checksums, at most `hdds.container.scrub.volume.bytes.per.second`,
//! each container at most once per `hdds.container.scrub.data.scan.interval` (every container
//! once soon after start). A container whose data does not match (checksum mismatch, missing
//! or short block file, unreadable metadata or I/O error) is marked UNHEALTHY durably; the next
//! container report tells SCM, whose ReplicationManager counts it as missing, copies the
//! container from a healthy replica and then deletes this one. A read that meets a checksum
//! mismatch asks for an immediate scan of its container.
//!
//! A tokio task, like the heartbeat loop; its only state is when each container was last
//! scanned (in memory: a restart scans everything again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::spawn_blocking;

use crate::block;
use crate::container::{Container, ContainerState};
use crate::error::DatanodeError;
use crate::node::Datanode;

/// How often to look for a container due for a scan when none is.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Outcome of scanning one container.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScanResult {
    Healthy {
        blocks: u64,
        bytes: u64,
    },
    Corrupt(String),
    /// Stopped early (shutdown, or the container went away).
    Interrupted,
}

/// Runs until `shutdown` turns true.
pub(crate) async fn run(
    node: Arc<Datanode>,
    mut on_demand: mpsc::UnboundedReceiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = node.config.scrub_interval;
    let rate = node.config.scrub_bytes_per_second;
    let mut last_scan: HashMap<u64, Instant> = HashMap::new();
    tracing::info!(?interval, bytes_per_second = rate, "scrubber started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let requested = on_demand.try_recv().ok();
        let due = match requested {
            Some(id) => node.containers.get(id).ok(),
            None => node.containers.list().into_iter().find(|c| {
                c.state() != ContainerState::Unhealthy
                    && last_scan
                        .get(&c.id())
                        .is_none_or(|t| t.elapsed() >= interval)
            }),
        };
        let Some(container) = due else {
            let woken = tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => None,
                Some(id) = on_demand.recv() => Some(id),
                _ = shutdown.wait_for(|&stop| stop) => break,
            };
            if let Some(id) = woken
                && let Ok(c) = node.containers.get(id)
            {
                scrub(&node, &c, rate, &shutdown).await;
                last_scan.insert(id, Instant::now());
            }
            continue;
        };
        if container.state() == ContainerState::Unhealthy {
            continue;
        }
        scrub(&node, &container, rate, &shutdown).await;
        last_scan.insert(container.id(), Instant::now());
        last_scan.retain(|id, _| node.containers.get(*id).is_ok());
    }
    tracing::debug!("scrubber stopped");
}

/// Scans one container and marks it UNHEALTHY if its data is corrupt.
async fn scrub(
    node: &Arc<Datanode>,
    container: &Arc<Container>,
    rate: u64,
    shutdown: &watch::Receiver<bool>,
) {
    let started = Instant::now();
    let id = container.id();
    match scan(container, rate, shutdown).await {
        ScanResult::Healthy { blocks, bytes } => {
            node.metrics
                .observe("ScrubContainer", true, started.elapsed());
            tracing::debug!(container = id, blocks, bytes, elapsed = ?started.elapsed(), "container scrubbed: healthy");
        }
        ScanResult::Corrupt(reason) => {
            node.metrics
                .observe("ScrubContainer", false, started.elapsed());
            if node.containers.get(id).is_err() {
                return;
            }
            tracing::error!(container = id, %reason, "scrubber found corrupt data; marking the replica UNHEALTHY");
            let c = container.clone();
            match spawn_blocking(move || c.set_state(ContainerState::Unhealthy)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(container = id, error = %e, "cannot mark container UNHEALTHY")
                }
                Err(e) => {
                    tracing::error!(container = id, error = %e, "marking container UNHEALTHY failed")
                }
            }
        }
        ScanResult::Interrupted => {}
    }
}

/// Whether block `local_id` stopped being committed since the scan listed it (SCM had it
/// deleted): then its file going away is no corruption.
async fn deleted_meanwhile(container: &Arc<Container>, local_id: u64) -> bool {
    let c = container.clone();
    matches!(
        spawn_blocking(move || c.get_block(local_id)).await,
        Ok(Ok(None))
    )
}

/// Reads and verifies every committed block of `container`, at most `rate` bytes per second.
pub(crate) async fn scan(
    container: &Arc<Container>,
    rate: u64,
    shutdown: &watch::Receiver<bool>,
) -> ScanResult {
    let c = container.clone();
    let blocks = match spawn_blocking(move || c.blocks()).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return ScanResult::Corrupt(format!("reading block metadata: {e}")),
        Err(_) => return ScanResult::Interrupted,
    };
    let started = Instant::now();
    let mut bytes = 0u64;
    for b in &blocks {
        let block_id = b.block_id.unwrap_or_default();
        if b.size == 0 {
            continue;
        }
        let pieces = match block::plan_read(b, 0, b.size) {
            Ok(p) => p,
            Err(e) => return ScanResult::Corrupt(e.to_string()),
        };
        let c = container.clone();
        let local_id = block_id.local_id;
        let file = match spawn_blocking(move || c.open_block_for_read(local_id)).await {
            Ok(Ok(f)) => Arc::new(f),
            Ok(Err(e)) if deleted_meanwhile(container, local_id).await => {
                tracing::debug!(block = %block_id, error = %e, "block deleted during the scan");
                continue;
            }
            Ok(Err(e)) => return ScanResult::Corrupt(e.to_string()),
            Err(_) => return ScanResult::Interrupted,
        };
        for piece in pieces {
            if *shutdown.borrow() {
                return ScanResult::Interrupted;
            }
            let len = piece.len;
            let f = file.clone();
            match spawn_blocking(move || block::read_piece(&f, block_id, piece)).await {
                Ok(Ok(_)) => {}
                Ok(Err(DatanodeError::ShuttingDown)) | Err(_) => return ScanResult::Interrupted,
                Ok(Err(_)) if deleted_meanwhile(container, local_id).await => break,
                Ok(Err(e)) => return ScanResult::Corrupt(e.to_string()),
            }
            bytes += len;
            // Stay under the rate: sleep until the bytes read so far are due.
            let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::time::sleep(due - elapsed).await;
            }
        }
    }
    ScanResult::Healthy {
        blocks: blocks.len() as u64,
        bytes,
    }
}
