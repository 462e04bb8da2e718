//! Replicas that missed a commit: a block committed on a majority of its replicas (so the
//! write succeeded) but not on this one, whose container replica now lacks a committed block.
//! The writer notes each such replica once; its caller tells SCM (`ReportReplicaMiss`), which
//! has the replica replaced by a copy of a complete one.

use std::collections::HashSet;

/// One replica that missed a commit of a block of `container_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaMiss {
    pub container_id: u64,
    /// Uuid of the datanode holding the replica.
    pub datanode: String,
    /// The highest BCSID the replicas that took the commit answered.
    pub bcsid: u64,
}

/// Misses noted by one block writer, each replica once, until taken.
#[derive(Debug, Default)]
pub(crate) struct Misses {
    noted: HashSet<String>,
    pending: Vec<ReplicaMiss>,
}

impl Misses {
    pub(crate) fn note(&mut self, container_id: u64, datanode: &str, bcsid: u64) {
        if self.noted.insert(datanode.to_string()) {
            self.pending.push(ReplicaMiss {
                container_id,
                datanode: datanode.to_string(),
                bcsid,
            });
        }
    }

    pub(crate) fn take(&mut self) -> Vec<ReplicaMiss> {
        std::mem::take(&mut self.pending)
    }
}
