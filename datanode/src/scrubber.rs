//! The background scrubber: re-reads every committed block of every container and verifies it
//! against its stored CRC32C checksums, at most `hdds.container.scrub.volume.bytes.per.second`,
//! each container at most once per `hdds.container.scrub.data.scan.interval` (every container
//! once soon after start). A container whose data is corrupt (checksum mismatch, missing or
//! short block file, undecodable block metadata) is marked UNHEALTHY durably; the next
//! container report tells SCM, whose ReplicationManager counts it as missing, copies the
//! container from a healthy replica and then deletes this one. A read that meets a checksum
//! mismatch asks for an immediate scan of its container.
//!
//! Faults are not corruption: an I/O error (EMFILE, EIO, ENOSPC, a database error) says
//! nothing about the data, so it never marks a container. The container is scanned again
//! after a backoff (doubling from [`FAULT_RETRY_FIRST`] up to [`FAULT_RETRY_MAX`]); the first
//! fault of a container is logged (once, until a scan of it succeeds) and the containers
//! whose last scan met a fault are published as the gauge `scrub_faulted_containers`.
//!
//! A tokio task, like the heartbeat loop; its state is when each container was last scanned
//! and which ones met a fault (in memory: a restart scans everything again).

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
/// First wait before scanning again a container whose scan met an I/O fault.
pub(crate) const FAULT_RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest wait between two scans of a container that keeps meeting faults.
pub(crate) const FAULT_RETRY_MAX: Duration = Duration::from_secs(600);

/// Outcome of scanning one container.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScanResult {
    Healthy {
        blocks: u64,
        bytes: u64,
    },
    /// The data is wrong or missing: the replica is UNHEALTHY.
    Corrupt(String),
    /// An I/O error stopped the scan: nothing is known about the data; scanned again later.
    Fault(String),
    /// Stopped early (shutdown, or the container went away).
    Interrupted,
}

/// Whether an error met while reading a container shows its data corrupt or missing (rather
/// than a fault of the disk, the process or the database, which is retried).
pub(crate) fn is_corruption(e: &DatanodeError) -> bool {
    match e {
        DatanodeError::ChecksumMismatch { .. }
        | DatanodeError::DataLoss { .. }
        | DatanodeError::BadFile { .. }
        | DatanodeError::OutOfRange { .. } => true,
        DatanodeError::Config(_)
        | DatanodeError::Io { .. }
        | DatanodeError::Metadata { .. }
        | DatanodeError::DirLocked { .. }
        | DatanodeError::Transport(_)
        | DatanodeError::InvalidArgument(_)
        | DatanodeError::ContainerNotFound(_)
        | DatanodeError::ContainerNotOpen { .. }
        | DatanodeError::ContainerUnhealthy { .. }
        | DatanodeError::ContainerExists(_)
        | DatanodeError::ContainerDeleted(_)
        | DatanodeError::ContainerKeptAside { .. }
        | DatanodeError::ContainerNotEmpty { .. }
        | DatanodeError::Copy { .. }
        | DatanodeError::BlockNotFound(_)
        | DatanodeError::BlockCommitted(_)
        | DatanodeError::BlockIncomplete { .. }
        | DatanodeError::Stream(_)
        | DatanodeError::Task(_)
        | DatanodeError::ShuttingDown
        | DatanodeError::Token { .. } => false,
    }
}

/// The scan outcome of an error met while reading.
fn failed(e: DatanodeError) -> ScanResult {
    match e {
        DatanodeError::ShuttingDown => ScanResult::Interrupted,
        e if is_corruption(&e) => ScanResult::Corrupt(e.to_string()),
        e => ScanResult::Fault(e.to_string()),
    }
}

/// Containers whose last scan met an I/O fault: how many in a row, and when to scan again.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    by_container: HashMap<u64, (u32, Instant)>,
}

impl Faults {
    /// Records a fault of container `id` at `now`; returns whether it is the first in a row
    /// (to be logged).
    pub(crate) fn record(&mut self, id: u64, now: Instant) -> bool {
        let entry = self.by_container.entry(id).or_insert((0, now));
        entry.0 += 1;
        let shift = entry.0.saturating_sub(1).min(16);
        entry.1 = now + (FAULT_RETRY_FIRST * (1u32 << shift)).min(FAULT_RETRY_MAX);
        entry.0 == 1
    }

    /// Container `id` scanned without a fault: returns the faults it had in a row.
    pub(crate) fn clear(&mut self, id: u64) -> Option<u32> {
        self.by_container.remove(&id).map(|(n, _)| n)
    }

    /// When container `id` (with a fault) may be scanned again.
    pub(crate) fn retry_at(&self, id: u64) -> Option<Instant> {
        self.by_container.get(&id).map(|(_, at)| *at)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_container.len()
    }

    fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        self.by_container.retain(|id, _| keep(*id));
    }
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
    let mut faults = Faults::default();
    tracing::info!(?interval, bytes_per_second = rate, "scrubber started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        let requested = on_demand.try_recv().ok();
        let now = Instant::now();
        let due = match requested {
            Some(id) => node.containers.get(id).ok(),
            None => node.containers.list().into_iter().find(|c| {
                c.state() != ContainerState::Unhealthy
                    && match faults.retry_at(c.id()) {
                        Some(at) => at <= now,
                        None => last_scan
                            .get(&c.id())
                            .is_none_or(|t| t.elapsed() >= interval),
                    }
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
                scrub(&node, &c, rate, &shutdown, &mut faults).await;
                last_scan.insert(id, Instant::now());
            }
            continue;
        };
        if container.state() == ContainerState::Unhealthy {
            continue;
        }
        scrub(&node, &container, rate, &shutdown, &mut faults).await;
        last_scan.insert(container.id(), Instant::now());
        last_scan.retain(|id, _| node.containers.get(*id).is_ok());
        faults.retain(|id| node.containers.get(id).is_ok());
    }
    tracing::debug!("scrubber stopped");
}

/// Scans one container and marks it UNHEALTHY if its data is corrupt; a fault is recorded
/// in `faults` (logged the first time) and leaves the container as it is.
pub(crate) async fn scrub(
    node: &Arc<Datanode>,
    container: &Arc<Container>,
    rate: u64,
    shutdown: &watch::Receiver<bool>,
    faults: &mut Faults,
) {
    let started = Instant::now();
    let id = container.id();
    match scan(container, rate, shutdown).await {
        ScanResult::Healthy { blocks, bytes } => {
            node.metrics
                .observe("ScrubContainer", true, started.elapsed());
            if let Some(n) = faults.clear(id) {
                tracing::info!(
                    container = id,
                    faults = n,
                    "container scrubbed after earlier I/O faults: healthy"
                );
            }
            tracing::debug!(container = id, blocks, bytes, elapsed = ?started.elapsed(), "container scrubbed: healthy");
        }
        ScanResult::Fault(reason) => {
            node.metrics
                .observe("ScrubContainer", false, started.elapsed());
            if faults.record(id, Instant::now()) {
                tracing::warn!(container = id, %reason, "scrubber met an I/O fault (not corruption): the container stays as it is and is scanned again later");
            } else {
                tracing::debug!(container = id, %reason, "scrubber met an I/O fault again");
            }
        }
        ScanResult::Corrupt(reason) => {
            node.metrics
                .observe("ScrubContainer", false, started.elapsed());
            faults.clear(id);
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
    node.metrics.set_gauge(
        "scrub_faulted_containers",
        i64::try_from(faults.len()).unwrap_or(i64::MAX),
    );
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
        Ok(Err(e)) => return failed(e),
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
            Err(e) => return failed(e),
        };
        let c = container.clone();
        let local_id = block_id.local_id;
        let file = match spawn_blocking(move || c.open_block_for_read(local_id)).await {
            Ok(Ok(f)) => Arc::new(f),
            Ok(Err(e)) if deleted_meanwhile(container, local_id).await => {
                tracing::debug!(block = %block_id, error = %e, "block deleted during the scan");
                continue;
            }
            Ok(Err(e)) => return failed(e),
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
                Ok(Err(e)) => return failed(e),
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

#[cfg(test)]
mod tests {
    use datanode_client::checksum;
    use ozone_proto::hdds::{BlockData, BlockId, ChunkInfo};

    use super::*;
    use crate::container::ContainerSet;

    /// A closed container 1 holding block 1 with `data`, checksummed.
    async fn container_with(set: &ContainerSet, data: &[u8]) -> Arc<Container> {
        let c = set.get_or_create(1).await.expect("create");
        let f = c.open_block_for_write(1).expect("open");
        c.write_chunk(1, &f, 0, data).expect("write");
        let id = BlockId {
            container_id: 1,
            local_id: 1,
        };
        let block = BlockData {
            block_id: Some(id),
            chunks: vec![ChunkInfo {
                offset: 0,
                len: data.len() as u64,
                checksum: Some(checksum::compute(data, 1024)),
            }],
            size: data.len() as u64,
        };
        c.commit_block(&block, id).expect("commit");
        set.close_container(1).await.expect("close");
        c
    }

    async fn scan_now(c: &Arc<Container>) -> ScanResult {
        let (_tx, rx) = watch::channel(false);
        scan(c, u64::MAX, &rx).await
    }

    #[tokio::test]
    async fn io_faults_are_not_corruption_but_bad_or_missing_data_is() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let set = ContainerSet::load(&tmp.path().join("containers")).expect("load");
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let c = container_with(&set, &data).await;
        assert!(matches!(
            scan_now(&c).await,
            ScanResult::Healthy { blocks: 1, .. }
        ));
        let path = c.block_path(1);
        let aside = path.with_extension("aside");
        std::fs::rename(&path, &aside).expect("move");

        // Opening fails with ELOOP (a symlink loop stands where the file was): a fault.
        std::os::unix::fs::symlink(&path, &path).expect("symlink");
        assert!(
            matches!(scan_now(&c).await, ScanResult::Fault(_)),
            "an open error is a fault"
        );
        std::fs::remove_file(&path).expect("rm");
        // Reading fails with EISDIR (a directory stands where the file was): a fault.
        std::fs::create_dir(&path).expect("mkdir");
        assert!(
            matches!(scan_now(&c).await, ScanResult::Fault(_)),
            "a read error is a fault"
        );
        std::fs::remove_dir(&path).expect("rmdir");
        // The file missing: data lost.
        assert!(matches!(scan_now(&c).await, ScanResult::Corrupt(_)));
        // Short, then wrong: corrupt.
        std::fs::write(&path, &data[..4000]).expect("short");
        assert!(matches!(scan_now(&c).await, ScanResult::Corrupt(_)));
        let mut bad = data.clone();
        bad[100] ^= 1;
        std::fs::write(&path, &bad).expect("bad");
        assert!(matches!(scan_now(&c).await, ScanResult::Corrupt(_)));
        std::fs::rename(&aside, &path).expect("back");
        assert!(matches!(
            scan_now(&c).await,
            ScanResult::Healthy { blocks: 1, .. }
        ));
        assert_eq!(c.state(), ContainerState::Closed);
    }

    #[test]
    fn faulted_containers_back_off_and_are_logged_once() {
        let mut f = Faults::default();
        let t0 = Instant::now();
        assert!(f.record(4, t0), "the first fault is logged");
        assert_eq!(f.retry_at(4), Some(t0 + FAULT_RETRY_FIRST));
        assert!(!f.record(4, t0), "the next ones are not");
        assert_eq!(f.retry_at(4), Some(t0 + FAULT_RETRY_FIRST * 2));
        for _ in 0..40 {
            f.record(4, t0);
        }
        assert_eq!(f.retry_at(4), Some(t0 + FAULT_RETRY_MAX));
        assert_eq!(f.len(), 1);
        assert_eq!(f.clear(4), Some(42));
        assert_eq!(f.retry_at(4), None);
        assert!(f.record(4, t0), "logged again after a clean scan");
    }

    #[test]
    fn only_bad_or_missing_data_counts_as_corruption() {
        let block_id = BlockId {
            container_id: 1,
            local_id: 2,
        };
        let emfile = std::io::Error::from_raw_os_error(24);
        assert!(!is_corruption(&DatanodeError::io("opening", emfile)));
        let eio = std::io::Error::from_raw_os_error(5);
        assert!(!is_corruption(&DatanodeError::io("reading", eio)));
        assert!(is_corruption(&DatanodeError::ChecksumMismatch {
            block_id,
            offset: 0
        }));
        assert!(is_corruption(&DatanodeError::DataLoss {
            block_id,
            message: "missing".into()
        }));
    }
}
