//! Ozone Manager (OM): the namespace of volumes, buckets, keys, open keys and multipart
//! uploads, persisted in one redb file and served over gRPC (`ozone.om.OmService`).
//!
//! Layout, from the wire inwards:
//! - [`service`]: the gRPC service, metrics per RPC, errors as `x-om-status` statuses;
//! - [`manager`]: the leader side: validates a request, asks SCM for blocks ([`scm`]), picks
//!   ids and timestamps and writes them into an [`command::OmCommand`]; serves reads;
//! - [`raft`]: replication on openraft: the raft log in redb, the network between OMs, snapshots,
//!   the HA admin service; every command goes through the log before it is applied;
//! - [`state_machine`]: the deterministic apply of commands, one redb transaction each, with the
//!   applied raft log id;
//! - [`store`]: tables, key encoding and reads; [`model`]: the stored records;
//! - [`tags`]: the S3 tag limits;
//! - [`security`]: S3 secrets, SigV4 verification and bucket ACLs (`ozone.security.enabled`);
//! - [`links`]: bucket links, resolved before every key call;
//! - [`deletion`]: hands the blocks of deleted keys to SCM's deleted-block log.
//!
//! The `ozone` binary calls [`run`]; tests call [`start`] with port 0 and use
//! [`OmServer::address`].

pub mod command;
pub mod config;
pub mod deletion;
pub mod error;
pub mod links;
pub mod manager;
pub mod model;
pub mod raft;
pub mod scm;
pub mod security;
pub mod server;
pub mod service;
pub mod state_machine;
pub mod store;
pub mod tags;

pub use command::{OmCommand, OmResponse};
pub use config::OmConfig;
pub use error::{OmError, Rejection};
pub use server::{OmServer, run, start};
pub use state_machine::StateMachine;
