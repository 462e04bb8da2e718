//! The set of containers a datanode holds: loading them at start (and migrating the older
//! per-container layout), creating, importing, closing and deleting them, and the container
//! reports for SCM (full, and the changes since the last one SCM answered).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ozone_proto::scm::ContainerReplicaReport;

use super::changes::{ChangeBatch, Changes};
use super::disk::{
    DB_FILE, Record, VolumeDb, has_legacy_metadata, io_err, migrate_legacy, remove_container_rows,
    remove_legacy_metadata, set_tombstone,
};
use super::import::Import;
use super::replica::Container;
use super::state::ContainerState;
use crate::error::DatanodeError;

/// Every container of a datanode, by id. The map lock is held only to look up or insert.
pub struct ContainerSet {
    root: PathBuf,
    /// Taken away at shutdown, so the database closes once the last container handle goes.
    db: RwLock<Option<Arc<VolumeDb>>>,
    containers: RwLock<HashMap<u64, Arc<Container>>>,
    /// Containers found that could not be opened, with the reason.
    broken: RwLock<HashMap<u64, String>>,
    changes: Arc<Changes>,
    create_lock: tokio::sync::Mutex<()>,
    stopped: AtomicBool,
}

fn remove_dir_logged(path: &Path, what: &str) {
    tracing::info!(path = %path.display(), "removing {what}");
    if let Err(e) = std::fs::remove_dir_all(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove {what}");
    }
}

impl ContainerSet {
    /// Opens the volume database in `root` (`<dir>/containers`, created if needed) and every
    /// container it records, from the summary rows alone. Also finishes what a crash
    /// interrupted: unfinished builds (rows marked `building`, `.tmp-*` directories) and
    /// directories without a summary are removed; containers of the older layout (their own
    /// `metadata/`) are moved into the database. A container that cannot be opened is kept
    /// aside and reported UNHEALTHY.
    pub fn load(root: &Path) -> Result<ContainerSet, DatanodeError> {
        std::fs::create_dir_all(root).map_err(io_err(format!("creating {}", root.display())))?;
        let db = Arc::new(VolumeDb::open(root)?);
        let changes = Arc::new(Changes::default());
        let mut records = HashMap::new();
        let mut broken = HashMap::new();
        let mut unfinished = Vec::new();
        for (id, record) in db.records()? {
            match record {
                Ok(r) if r.building => unfinished.push(id),
                Ok(r) => {
                    records.insert(id, r);
                }
                Err(reason) => {
                    tracing::error!(container = id, %reason, "cannot decode the container's summary; reporting it UNHEALTHY");
                    broken.insert(id, format!("undecodable summary: {reason}"));
                }
            }
        }
        if !unfinished.is_empty() {
            let txn = db.begin_write(0)?;
            for &id in &unfinished {
                remove_container_rows(&txn, id)?;
            }
            txn.commit().map_err(|e| DatanodeError::metadata(0, e))?;
            tracing::info!(
                containers = unfinished.len(),
                "removed the rows of unfinished container builds"
            );
        }

        let mut dirs = HashSet::new();
        let entries =
            std::fs::read_dir(root).map_err(io_err(format!("listing {}", root.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("listing {}", root.display())))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.starts_with(".tmp-") {
                remove_dir_logged(&path, "an unfinished container build");
                continue;
            }
            if name.starts_with(DB_FILE) {
                continue;
            }
            let Ok(id) = name.parse::<u64>() else {
                tracing::warn!(path = %path.display(), "ignoring a foreign entry in the containers directory");
                continue;
            };
            let legacy = has_legacy_metadata(&path);
            if records.contains_key(&id) || broken.contains_key(&id) {
                dirs.insert(id);
                // Migrated before a crash took the old files away.
                if legacy && let Err(e) = remove_legacy_metadata(&path) {
                    tracing::warn!(container = id, error = %e, "cannot remove migrated metadata");
                }
            } else if legacy {
                dirs.insert(id);
                match migrate_legacy(&db, &path, id) {
                    Ok(r) => {
                        records.insert(id, r);
                    }
                    Err(e) => {
                        tracing::error!(container = id, error = %e, "cannot migrate container; reporting it UNHEALTHY");
                        broken.insert(id, e.to_string());
                    }
                }
            } else {
                // Renamed into place by a build whose summary never committed, or left by a
                // deletion that committed and then stopped: never acknowledged, or gone.
                remove_dir_logged(&path, "a container directory without metadata");
            }
        }
        let mut containers = HashMap::new();
        for (id, record) in records {
            if !dirs.contains(&id) {
                tracing::error!(
                    container = id,
                    "container directory missing; reporting it UNHEALTHY"
                );
                broken.insert(id, "container directory missing".into());
                continue;
            }
            let c = Container::from_record(
                db.clone(),
                changes.clone(),
                &root.join(id.to_string()),
                id,
                record,
            );
            containers.insert(id, Arc::new(c));
        }
        tracing::info!(
            containers = containers.len(),
            unhealthy = broken.len(),
            db = %db.path().display(),
            "loaded containers"
        );
        Ok(ContainerSet {
            root: root.to_path_buf(),
            db: RwLock::new(Some(db)),
            containers: RwLock::new(containers),
            broken: RwLock::new(broken),
            changes,
            create_lock: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
        })
    }

    pub(super) fn db(&self) -> Result<Arc<VolumeDb>, DatanodeError> {
        self.db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(DatanodeError::ShuttingDown)
    }

    /// Container `id`: `ContainerNotFound` or `ContainerUnhealthy` (could not be opened) otherwise.
    pub fn get(&self, id: u64) -> Result<Arc<Container>, DatanodeError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(DatanodeError::ShuttingDown);
        }
        if let Some(c) = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(c.clone());
        }
        if let Some(reason) = self
            .broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Err(DatanodeError::ContainerUnhealthy {
                id,
                reason: reason.clone(),
            });
        }
        Err(DatanodeError::ContainerNotFound(id))
    }

    fn insert(&self, container: Arc<Container>) {
        let id = container.id();
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, container);
        self.changes.changed(id);
    }

    /// Container `id`, created (OPEN, durably) if this datanode does not have it yet.
    pub async fn get_or_create(&self, id: u64) -> Result<Arc<Container>, DatanodeError> {
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            other => return other,
        }
        let _guard = self.create_lock.lock().await;
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            other => return other,
        }
        // Built like a copied-in replica, with no blocks.
        let (root, db, changes) = (self.root.clone(), self.db()?, self.changes.clone());
        let container = Arc::new(
            tokio::task::spawn_blocking(move || {
                Import::begin(&root, db, id, false)?.commit(ContainerState::Open, changes)
            })
            .await??,
        );
        tracing::info!(container = id, "created container");
        self.insert(container.clone());
        Ok(container)
    }

    /// Every open container (not the ones that could not be opened).
    pub fn list(&self) -> Vec<Arc<Container>> {
        let mut out: Vec<_> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by_key(|c| c.id());
        out
    }

    /// Starts importing container `id`; fails if this datanode already has it (or is building
    /// it already).
    pub async fn begin_import(&self, id: u64) -> Result<Import, DatanodeError> {
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            Ok(_) | Err(DatanodeError::ContainerUnhealthy { .. }) => {
                return Err(DatanodeError::ContainerExists(id));
            }
            Err(e) => return Err(e),
        }
        let (root, db) = (self.root.clone(), self.db()?);
        tokio::task::spawn_blocking(move || Import::begin(&root, db, id, true)).await?
    }

    /// Puts a finished import in place (durably) and serves it.
    pub async fn finish_import(&self, import: Import) -> Result<Arc<Container>, DatanodeError> {
        let id = import.id();
        let _guard = self.create_lock.lock().await;
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            Ok(_) | Err(DatanodeError::ContainerUnhealthy { .. }) => {
                return Err(DatanodeError::ContainerExists(id));
            }
            Err(e) => return Err(e),
        }
        let changes = self.changes.clone();
        let container = Arc::new(
            tokio::task::spawn_blocking(move || import.commit(ContainerState::Closed, changes))
                .await??,
        );
        self.insert(container.clone());
        tracing::info!(
            container = id,
            blocks = container.block_count(),
            bytes = container.used_bytes(),
            "imported container"
        );
        Ok(container)
    }

    /// Removes container `id`. Without `force`, only a replica that is not OPEN and holds no
    /// block is removed. A container that could not be loaded is never removed (it is kept
    /// aside, reported and loaded again later: a fault is not a loss). Its summary and block
    /// rows go first, with a tombstone that keeps a late write from re-creating it, in one
    /// durable commit (a failure leaves the container as it was); then its directory, which
    /// the next start removes if a crash comes first.
    pub async fn delete_container(&self, id: u64, force: bool) -> Result<(), DatanodeError> {
        let _guard = self.create_lock.lock().await;
        if let Some(reason) = self
            .broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Err(DatanodeError::ContainerKeptAside {
                id,
                reason: reason.clone(),
            });
        }
        let container = self.get(id)?;
        if !force && (container.block_count() > 0 || container.state() == ContainerState::Open) {
            return Err(DatanodeError::ContainerNotEmpty {
                id,
                blocks: container.block_count(),
            });
        }
        let (root, db) = (self.root.clone(), self.db()?);
        let trash = tokio::task::spawn_blocking(move || {
            let txn = db.begin_write(id)?;
            remove_container_rows(&txn, id)?;
            set_tombstone(&txn, id, true)?;
            txn.commit().map_err(|e| DatanodeError::metadata(id, e))?;
            // The container is gone; its directory goes next (or at the next start).
            let dir = root.join(id.to_string());
            let trash = root.join(format!(".tmp-deleted-{id}-{}", uuid::Uuid::new_v4()));
            match std::fs::rename(&dir, &trash) {
                Ok(()) => Ok(Some(trash)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot move a deleted container's directory away; removed at the next start");
                    Ok::<_, DatanodeError>(None)
                }
            }
        })
        .await??;
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.changes.removed(id);
        tracing::info!(container = id, force, "deleted container replica");
        if let Some(trash) = trash {
            let removed = tokio::task::spawn_blocking(move || {
                std::fs::remove_dir_all(&trash).map_err(|e| (trash, e))
            })
            .await?;
            if let Err((trash, e)) = removed {
                tracing::warn!(path = %trash.display(), error = %e, "cannot remove a deleted container's files; removed at the next start");
            }
        }
        Ok(())
    }

    /// Ids of the containers that could not be loaded (kept aside, reported UNHEALTHY).
    pub fn kept_aside(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Tries again to load every container that could not be loaded (its summary could not
    /// be decoded or migrated, or its directory was missing: an unreadable disk, a full file
    /// table, a volume mounted late); each one that loads now is served and reported as it
    /// is. Returns how many loaded.
    pub async fn retry_kept_aside(&self) -> Result<usize, DatanodeError> {
        let ids = self.kept_aside();
        if ids.is_empty() {
            return Ok(0);
        }
        let _guard = self.create_lock.lock().await;
        let (root, db) = (self.root.clone(), self.db()?);
        let attempts = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|id| (id, load_again(&db, &root, id)))
                .collect::<Vec<_>>()
        })
        .await?;
        let db = self.db()?;
        let mut loaded = 0;
        for (id, attempt) in attempts {
            match attempt {
                Ok(record) => {
                    let c = Container::from_record(
                        db.clone(),
                        self.changes.clone(),
                        &self.root.join(id.to_string()),
                        id,
                        record,
                    );
                    self.broken
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    tracing::info!(container = id, state = %record.state, "a container kept aside loaded now");
                    self.insert(Arc::new(c));
                    loaded += 1;
                }
                Err(reason) => {
                    tracing::debug!(container = id, %reason, "container still cannot be loaded");
                    if let Some(r) = self
                        .broken
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&id)
                    {
                        *r = reason;
                    }
                }
            }
        }
        Ok(loaded)
    }

    /// Marks container `id` CLOSED (durably). An UNHEALTHY container stays UNHEALTHY.
    pub async fn close_container(&self, id: u64) -> Result<(), DatanodeError> {
        let container = self.get(id)?;
        if container.state() != ContainerState::Open {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || container.set_state(ContainerState::Closed)).await?
    }

    /// The report of container `id`, if this datanode holds it (UNHEALTHY if it could not be
    /// opened).
    pub fn report(&self, id: u64) -> Option<ContainerReplicaReport> {
        if let Some(c) = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Some(c.report());
        }
        self.broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
            .then(|| unhealthy_report(id))
    }

    /// One report per container, by id, including the ones that could not be opened.
    pub fn reports(&self) -> Vec<ContainerReplicaReport> {
        let mut reports: Vec<_> = self
            .containers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| c.report())
            .collect();
        reports.extend(
            self.broken
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .map(|&id| unhealthy_report(id)),
        );
        reports.sort_by_key(|r| r.container_id);
        reports
    }

    /// Reports go to `n` SCMs, each with its own incremental reports (see `changes`).
    pub fn set_report_links(&self, n: usize) {
        self.changes.set_links(n);
    }

    /// Takes at most `max` of the replicas changed or removed since the last report the SCM
    /// of `link` got.
    pub fn take_changes(&self, link: usize, max: usize) -> ChangeBatch {
        self.changes.take(link, max)
    }

    /// Takes every change of `link` (a full report is being sent, or the link starts over).
    pub fn take_all_changes(&self, link: usize) -> ChangeBatch {
        self.changes.take_all(link)
    }

    /// Gives back changes whose report did not reach the SCM of `link`.
    pub fn restore_changes(&self, link: usize, batch: ChangeBatch) {
        self.changes.restore(link, batch);
    }

    /// Changes waiting for the next report to the SCM of `link`.
    pub fn pending_changes(&self, link: usize) -> usize {
        self.changes.pending(link)
    }

    /// Refuses further requests and hands over every open container; the volume database
    /// closes when the last handle (the returned ones, or an in-flight request's) is dropped.
    pub fn shutdown(&self) -> Vec<Arc<Container>> {
        self.stopped.store(true, Ordering::Release);
        drop(self.db.write().unwrap_or_else(|p| p.into_inner()).take());
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, c)| c)
            .collect()
    }
}

/// One more attempt at loading container `id` of the volume at `root`: its summary row (or
/// the older layout's files, migrated) and its directory.
fn load_again(db: &VolumeDb, root: &Path, id: u64) -> Result<Record, String> {
    let dir = root.join(id.to_string());
    let row = db
        .record_of(id)
        .map_err(|e| format!("reading the summary: {e}"))?;
    let record = match row {
        Some(Ok(r)) if !r.building => r,
        Some(Ok(_)) => return Err("still being built".into()),
        Some(Err(reason)) => return Err(format!("undecodable summary: {reason}")),
        None if has_legacy_metadata(&dir) => {
            migrate_legacy(db, &dir, id).map_err(|e| e.to_string())?
        }
        None => return Err("no summary and no metadata files".into()),
    };
    if !dir.is_dir() {
        return Err("container directory missing".into());
    }
    Ok(record)
}

fn unhealthy_report(id: u64) -> ContainerReplicaReport {
    ContainerReplicaReport {
        container_id: id,
        state: ContainerState::Unhealthy.as_str().to_string(),
        used_bytes: 0,
        block_count: 0,
        bcsid: 0,
    }
}
