//! The datanode: containers of block files on disk, CRC32C-verified chunk I/O over gRPC, SCM
//! heartbeats.
//!
//! [`run`] is what `ozone datanode` calls; tests use [`start`], which returns a
//! [`DatanodeHandle`] with the bound addresses and a `stop`. Inside:
//! - `container`: the on-disk containers (block files, `container.json`, `blocks.redb`);
//! - `block`: chunk-list validation and verified, bounded range reads;
//! - `service`: the `DatanodeService` gRPC handlers;
//! - `heartbeat`: registration and heartbeats to SCM, and SCM's commands (close, delete
//!   blocks, delete container, replicate);
//! - `replication`: the replication supervisor (tokio task): verified container copies pulled
//!   from another datanode's `CopyContainer`;
//! - `scrubber`: the background scrubber (tokio task) that re-verifies stored checksums at a
//!   configured rate and marks corrupt replicas UNHEALTHY;
//! - `address`: the host advertised when `hdds.datanode.hostname` is unset (IP towards SCM, or
//!   its DNS name);
//! - `node`: the state all of these share (`Datanode`: config, containers, metrics, queues to
//!   the background tasks, the SCM link); it depends on none of them;
//! - `server`: start/stop, the http server (`/prom`, status page).

mod address;
mod block;
mod config;
mod container;
mod error;
mod heartbeat;
mod identity;
mod node;
mod replication;
mod scrubber;
mod server;
mod service;

pub use config::DatanodeConfig;
pub use container::ContainerState;
pub use error::DatanodeError;
pub use node::ScmConnection;
pub use server::{DatanodeHandle, run, start};
