//! SCM integration tests: a real SCM in-process on port 0 with a temp dir, driven through its
//! gRPC services by `scm-client` and by fake datanodes that register and heartbeat like real
//! ones. One test binary; one module per area.

mod allocation;
mod consistency;
mod ha;
mod harness;
mod health;
mod replicas;
mod restart;
mod safemode;
