//! End-to-end tests: real clusters (`ozone cluster up`: SCM, OM, 3 datanodes, s3g as separate
//! processes) used with real clients.
//!
//! Non-destructive suites (aws_cli's s3api tour, boto3, the bucket browser, other clients) make
//! their own buckets and share one cluster per test run ([`ozone_tests::Cluster::shared`]).
//! Tests that kill, stop, restart or corrupt processes, or need their own configuration
//! (security on, HA OMs, small blocks, fast replication), start their own
//! ([`ozone_tests::Cluster::start`]): cluster, datanode_loss, durability, integrity, leaks (a
//! short open-key expiry), om_ha, scm_ha, open_files (an open-file limit lowered on one datanode),
//! replica_consistency, security, at_rest (secrets sealed at rest, file modes), https (`cluster up
//! --https`), compose, scale (small container sizes, an open-file limit,
//! containers closed under uploads), the secure browser test and aws_cli's 16 MiB-block round
//! trip. So does `ozone sh`'s (shell), from before the key writer could go on past a
//! container closed under it; it could now share the cluster. The fault-injection suite
//! (nemesis) runs its own 3-OM cluster, or the Docker one, under load and faults.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod at_rest;
mod aws_cli;
mod block_tokens;
mod boto3;
mod browser;
mod clients;
mod cluster;
mod compose;
mod datanode_loss;
mod durability;
mod freon;
mod https;
mod integrity;
mod leaks;
mod mtls;
mod nemesis;
mod om_ha;
mod open_files;
mod replica_consistency;
mod scale;
mod scm_ha;
mod security;
mod shell;
