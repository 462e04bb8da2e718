//! The set of containers a datanode holds: loading them at start, creating, importing, closing
//! and deleting them, and the container report for SCM.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ozone_common::fsync_dir;
use ozone_proto::scm::ContainerReplicaReport;

use super::disk::io_err;
use super::import::Import;
use super::replica::Container;
use super::state::ContainerState;
use crate::error::DatanodeError;

/// Every container of a datanode, by id. The map lock is held only to look up or insert.
pub struct ContainerSet {
    root: PathBuf,
    containers: RwLock<HashMap<u64, Arc<Container>>>,
    /// Containers found on disk that could not be opened, with the reason.
    broken: RwLock<HashMap<u64, String>>,
    create_lock: tokio::sync::Mutex<()>,
    stopped: AtomicBool,
}

impl ContainerSet {
    /// Opens every container under `root` (`<dir>/containers`), creating `root` if needed.
    /// A container that cannot be opened is kept aside and reported UNHEALTHY.
    pub fn load(root: &Path) -> Result<ContainerSet, DatanodeError> {
        std::fs::create_dir_all(root).map_err(io_err(format!("creating {}", root.display())))?;
        let mut containers = HashMap::new();
        let mut broken = HashMap::new();
        let entries =
            std::fs::read_dir(root).map_err(io_err(format!("listing {}", root.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("listing {}", root.display())))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.starts_with(".tmp-") {
                tracing::info!(path = %path.display(), "removing an unfinished container creation");
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished container");
                }
                continue;
            }
            let Ok(id) = name.parse::<u64>() else {
                tracing::warn!(path = %path.display(), "ignoring a foreign entry in the containers directory");
                continue;
            };
            match Container::load(&path, id) {
                Ok(c) => {
                    containers.insert(id, Arc::new(c));
                }
                Err(e) => {
                    tracing::error!(container = id, error = %e, "cannot open container; reporting it UNHEALTHY");
                    broken.insert(id, e.to_string());
                }
            }
        }
        tracing::info!(
            containers = containers.len(),
            unhealthy = broken.len(),
            "loaded containers"
        );
        Ok(ContainerSet {
            root: root.to_path_buf(),
            containers: RwLock::new(containers),
            broken: RwLock::new(broken),
            create_lock: tokio::sync::Mutex::new(()),
            stopped: AtomicBool::new(false),
        })
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
        // Built aside and renamed into place, like a copied-in replica.
        let root = self.root.clone();
        let container = Arc::new(
            tokio::task::spawn_blocking(move || {
                Import::begin(&root, id)?.commit(ContainerState::Open)
            })
            .await??,
        );
        tracing::info!(container = id, "created container");
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, container.clone());
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

    /// Starts importing container `id`; fails if this datanode already has it.
    pub async fn begin_import(&self, id: u64) -> Result<Import, DatanodeError> {
        match self.get(id) {
            Err(DatanodeError::ContainerNotFound(_)) => {}
            Ok(_) | Err(DatanodeError::ContainerUnhealthy { .. }) => {
                return Err(DatanodeError::ContainerExists(id));
            }
            Err(e) => return Err(e),
        }
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || Import::begin(&root, id)).await?
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
        let container = Arc::new(
            tokio::task::spawn_blocking(move || import.commit(ContainerState::Closed)).await??,
        );
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, container.clone());
        tracing::info!(
            container = id,
            blocks = container.block_count(),
            bytes = container.used_bytes(),
            "imported container"
        );
        Ok(container)
    }

    /// Removes container `id` from disk. Without `force`, only a replica that is not OPEN and
    /// holds no block is removed.
    pub async fn delete_container(&self, id: u64, force: bool) -> Result<(), DatanodeError> {
        let _guard = self.create_lock.lock().await;
        let broken = self
            .broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id);
        if !broken {
            let container = self.get(id)?;
            if !force && (container.block_count() > 0 || container.state() == ContainerState::Open)
            {
                return Err(DatanodeError::ContainerNotEmpty {
                    id,
                    blocks: container.block_count(),
                });
            }
        }
        // Moved away first, then forgotten: a failure leaves the container as it was.
        let root = self.root.clone();
        let trash = tokio::task::spawn_blocking(move || {
            let dir = root.join(id.to_string());
            let trash = root.join(format!(".tmp-deleted-{id}-{}", uuid::Uuid::new_v4()));
            std::fs::rename(&dir, &trash)
                .map_err(io_err(format!("moving {} away", dir.display())))?;
            fsync_dir(&root).map_err(io_err(format!("syncing {}", root.display())))?;
            Ok::<_, DatanodeError>(trash)
        })
        .await??;
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.broken
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        tracing::info!(container = id, force, "deleted container replica");
        tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(&trash).map_err(io_err(format!("removing {}", trash.display())))
        })
        .await?
    }

    /// Marks container `id` CLOSED (durably). An UNHEALTHY container stays UNHEALTHY.
    pub async fn close_container(&self, id: u64) -> Result<(), DatanodeError> {
        let container = self.get(id)?;
        if container.state() != ContainerState::Open {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || container.set_state(ContainerState::Closed)).await?
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
                .map(|&id| ContainerReplicaReport {
                    container_id: id,
                    state: ContainerState::Unhealthy.as_str().to_string(),
                    used_bytes: 0,
                    block_count: 0,
                }),
        );
        reports.sort_by_key(|r| r.container_id);
        reports
    }

    /// Refuses further requests and hands over every open container; each one's database
    /// closes when the last handle (the returned one, or an in-flight request's) is dropped.
    pub fn shutdown(&self) -> Vec<Arc<Container>> {
        self.stopped.store(true, Ordering::Release);
        self.containers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, c)| c)
            .collect()
    }
}
