//! The S3 gateway (`ozone s3g`): an actix-web server speaking the S3 REST API, turning each
//! request into OM metadata calls and datanode block I/O. Stateless: any number of gateways can
//! serve one cluster.
//!
//! [`server`] starts the gateway with its [`config::S3gConfig`] and a shared [`gateway::Gateway`].
//! Request flow: [`router::Endpoint::parse`] picks the operation once, [`auth`] names the user
//! (with security on, [`security`] checks the SigV4 signature with OM and the bucket's ACL against
//! [`router::Endpoint::permission`]),
//! a thin handler in [`handlers`] reads headers and writes XML, [`object_io`] streams bodies to
//! and from the datanodes, and every error is rendered by [`error::S3Error`]. [`browser`] serves
//! the bucket browser page (`?browser=true`).

pub mod auth;
pub mod body;
pub mod browser;
pub mod checksum;
pub mod chunked;
pub mod config;
pub mod error;
pub mod gateway;
pub mod handlers;
pub mod object_io;
pub mod preconditions;
pub mod router;
pub mod security;
pub mod server;
pub mod sigv4;
#[cfg(test)]
mod test_support;
pub mod xml;
