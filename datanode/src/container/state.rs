//! The lifecycle state of a container replica, as stored in `container.json` and reported to
//! SCM. A leaf: the error type names it too.

use serde::{Deserialize, Serialize};

/// Lifecycle state of a container replica, as reported to SCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ContainerState {
    Open,
    Closed,
    Unhealthy,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Open => "OPEN",
            ContainerState::Closed => "CLOSED",
            ContainerState::Unhealthy => "UNHEALTHY",
        }
    }
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
