//! The datanode: containers of block files on disk, CRC32C-verified chunk I/O over gRPC, SCM
//! heartbeats.
//!
//! [`run`] is what `ozone datanode` calls; tests use [`start`], which returns a
//! [`DatanodeHandle`] with the bound addresses and a `stop`. Inside:
//! - `container`: the on-disk containers (block files; one metadata database per volume,
//!   `containers/container.db`, with every container's summary and block table);
//! - `block`: chunk-list validation and verified, bounded range reads;
//! - `service`: the `DatanodeService` gRPC handlers;
//! - `heartbeat`: registration and heartbeats to SCM, and SCM's commands (close, delete
//!   blocks, delete container, replicate), with full and incremental container reports;
//! - `commands`: the workers (tokio tasks, bounded queues) that close containers and delete
//!   blocks and containers on SCM's command, so a heartbeat never waits for the disk;
//! - `replication`: the replication supervisor (tokio task): verified container copies pulled
//!   from another datanode's `CopyContainer`;
//! - `scrubber`: the background scrubber (tokio task) that re-verifies stored checksums at a
//!   configured rate and marks corrupt replicas UNHEALTHY (I/O faults are retried, never
//!   marked);
//! - `address`: the host advertised when `hdds.datanode.hostname` is unset (IP towards SCM, or
//!   its DNS name);
//! - `node`: the state all of these share (`Datanode`: config, containers, metrics, queues to
//!   the background tasks, the SCM link); it depends on none of them;
//! - `server`: start/stop, the http server (`/prom`, status page), and the task that loads
//!   again the containers kept aside at start.

mod access;
mod address;
mod block;
mod commands;
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
