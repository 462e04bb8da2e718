//! In-process integration tests of the datanode and its client: datanodes on port 0 with
//! temporary directories, no SCM unless a test brings a fake one.
#![allow(clippy::unwrap_used)]

mod failures;
mod faults;
mod flush;
mod harness;
mod replication;
mod restart;
mod scm;
mod scm_ha;
mod write_read;
