//! Fast S3 gateway tests: SCM, OM, a datanode and the gateway run in this process, started
//! from their roles' own `start` functions, and every case talks to the gateway over real HTTP.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod buckets;
mod cluster;
mod s3;
