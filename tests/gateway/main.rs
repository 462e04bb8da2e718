//! Fast S3 gateway tests: SCM, OM, a datanode and the gateway run in this process, started
//! from their roles' own `start` functions (no child processes), and every case talks to the
//! gateway over real HTTP with security off (the access key names the user), except the few
//! cases of [`security`], which sign their requests. Each case is its own `#[test]` with its
//! own cluster (it starts in about a tenth of a second), so each passes or fails alone.
//! [`coverage`] lists the success and error cases of every gateway `Endpoint` and fails to
//! compile when a variant is added without them.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

/// One test case: a `#[test]` that runs `body` with an [`s3::S3`] client of a fresh cluster.
macro_rules! case {
    ($(#[$doc:meta])* $name:ident, |$s3:ident| $body:block) => {
        $(#[$doc])*
        #[test]
        pub fn $name() {
            $crate::cluster::run(|$s3| async move $body)
        }
    };
}

/// A case with security on: `body` gets the cluster's [`cluster::Users`].
macro_rules! case_secure {
    ($(#[$doc:meta])* $name:ident, |$users:ident| $body:block) => {
        $(#[$doc])*
        #[test]
        pub fn $name() {
            $crate::cluster::run_secure(|$users| async move $body)
        }
    };
}

mod acl;
mod buckets;
mod cluster;
mod coverage;
mod listing;
mod multipart;
mod objects;
mod s3;
mod security;
mod sigv4;
mod tagging;
