//! Ozone Manager (OM): the namespace of volumes, buckets, keys, open keys and multipart
//! uploads, persisted in one redb file and served over gRPC (`ozone.om.OmService`).
//!
//! Layout, from the wire inwards:
//! - [`service`]: the gRPC service, metrics per RPC, errors as `x-om-status` statuses;
//! - [`manager`]: the leader side's core: submitting a prepared [`command::OmCommand`] to raft,
//!   linearizable reads;
//! - one file per resource, each with the leader's preparation (an `impl OzoneManager` block:
//!   validates a request, asks SCM for blocks ([`scm`]), picks ids and timestamps and writes them
//!   into a command; serves reads) and the deterministic apply of its commands (an
//!   `impl Writer` block, see [`apply`]): [`volume`], [`bucket`] (with bucket links), [`key`],
//!   [`multipart`], [`tags`], [`security`] (S3 secrets, SigV4 verification, bucket ACLs),
//!   [`deletion`] (hands the blocks of deleted keys to SCM's deleted-block log), [`expiry`]
//!   (open keys never committed expire and free their blocks);
//! - [`secret_key`]: the OM secret key that seals S3 secrets at rest and keys the admin
//!   credential's verifier;
//! - [`admin`]: administrator listings of open keys and incomplete multipart uploads;
//! - [`retry`]: the replicated retry cache: a write retried under the same client request id
//!   answers its first result;
//! - [`command`]: the commands, grouped by resource, and what applying them answers;
//! - [`raft`]: replication on openraft: the raft log in redb, the network between OMs, snapshots,
//!   the HA admin service; every command goes through the log before it is applied;
//! - [`state_machine`]: one redb transaction per command with the applied raft log id, batches
//!   of entries, snapshots; [`apply`] dispatches a command to its resource's apply;
//! - [`store`]: tables, key encoding and reads; [`model`]: the stored records;
//! - [`config`]: [`OmConfig`], OM's settings from the Ozone configuration.
//!
//! The `ozone` binary calls [`run`]; tests call [`start`] with port 0 and use
//! [`OmServer::address`].

pub mod access;
pub mod admin;
pub mod apply;
pub mod bucket;
pub mod command;
pub mod config;
pub mod deletion;
pub mod error;
pub mod expiry;
pub mod key;
pub mod manager;
pub mod model;
pub mod multipart;
pub mod raft;
pub mod retry;
pub mod scm;
pub mod secret_key;
pub mod security;
pub mod server;
pub mod service;
pub mod state_machine;
pub mod store;
pub mod tags;
pub mod tokens;
pub mod volume;

pub use command::{OmCommand, OmResponse};
pub use config::OmConfig;
pub use error::{OmError, Rejection};
pub use server::{OmServer, run, start};
pub use state_machine::StateMachine;
