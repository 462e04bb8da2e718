//! End-to-end tests: every test starts a real cluster (`ozone cluster up`: SCM, OM, 3 datanodes,
//! s3g as separate processes) and uses it with real clients.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod aws_cli;
mod boto3;
mod browser;
mod clients;
mod cluster;
mod compose;
mod datanode_loss;
mod durability;
mod om_ha;
mod security;
mod shell;
