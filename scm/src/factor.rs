//! The replication factor, shared by the domain model, the configuration and the error type
//! (a leaf: it depends on no other module of the crate).

use serde::{Deserialize, Serialize};

/// Replication factor of a pipeline, container and block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Factor {
    #[serde(rename = "ONE")]
    One,
    #[serde(rename = "THREE")]
    Three,
}

impl Factor {
    /// Number of datanodes (replicas) the factor needs.
    pub fn nodes(self) -> usize {
        match self {
            Factor::One => 1,
            Factor::Three => 3,
        }
    }

    /// The factor for a replica count of 1 or 3.
    pub fn from_count(n: u64) -> Option<Factor> {
        match n {
            1 => Some(Factor::One),
            3 => Some(Factor::Three),
            _ => None,
        }
    }

    pub fn as_u32(self) -> u32 {
        self.nodes() as u32
    }
}

impl std::fmt::Display for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Factor::One => "ONE",
            Factor::Three => "THREE",
        })
    }
}
