//! The leader side of OM: [`OzoneManager`], the state every RPC works on.
//!
//! A mutation is *prepared* by its resource's `impl OzoneManager` block (`volume.rs`,
//! `bucket.rs`, `key.rs`, `multipart.rs`, `tags.rs`, `security.rs`): validated, given its ids
//! (client ids, upload ids), timestamp and SCM block allocations, and turned into an
//! [`OmCommand`]; then *submitted* here ([`OzoneManager::submit`]) to the raft
//! log (openraft `client_write`), answered once a majority of OMs holds it and this OM applied
//! it to its [`StateMachine`].
//!
//! Reads (Info*, List*, Lookup, and the reads a prepare step makes) are linearizable by
//! read-index: openraft's `ensure_linearizable` confirms this OM still leads with a heartbeat
//! round to a majority and waits until everything committed before the read is applied; then
//! the read runs on a redb snapshot. A follower answers NOT_LEADER with the leader's address;
//! no quorum within `ozone.om.ratis.server.request.timeout` answers OM_UNAVAILABLE.

use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, RaftError};

use crate::command::{OmCommand, OmResponse, Tracked};
use crate::config::OmConfig;
use crate::error::OmError;
use crate::model::{validate_key_name, validate_resource_name};
use crate::raft::{ProposeError, Proposer, RaftNode};
use crate::scm::ScmBlocks;
use crate::state_machine::StateMachine;
use crate::store::{Counts, Snapshot};

/// Pause before retrying a read whose heartbeat round missed a quorum.
const READ_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

pub struct OzoneManager {
    pub(crate) sm: Arc<StateMachine>,
    node: Arc<RaftNode>,
    proposer: Proposer,
    pub(crate) scm: ScmBlocks,
    pub(crate) config: OmConfig,
    /// Signs block tokens into the locations OM hands out (security on).
    pub(crate) signer: Option<crate::tokens::BlockSigner>,
}

/// Runs blocking database work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OmError> + Send + 'static,
) -> Result<T, OmError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OmError::Internal(format!("database task failed: {e}")))?
}

pub(crate) fn unexpected(op: &str, resp: OmResponse) -> OmError {
    OmError::Internal(format!("{op} applied with an unexpected result {resp:?}"))
}

pub(crate) fn check_bucket_ref(volume: &str, bucket: &str) -> Result<(), OmError> {
    validate_resource_name("volume", volume)?;
    validate_resource_name("bucket", bucket)
}

pub(crate) fn check_key_ref(volume: &str, bucket: &str, key: &str) -> Result<(), OmError> {
    check_bucket_ref(volume, bucket)?;
    validate_key_name(key)
}

impl OzoneManager {
    pub fn new(
        sm: Arc<StateMachine>,
        node: Arc<RaftNode>,
        scm: ScmBlocks,
        config: OmConfig,
    ) -> Self {
        let proposer = Proposer::start(node.raft().clone(), node.settings().request_timeout);
        let signer = config
            .tokens
            .block_tokens
            .then(|| crate::tokens::BlockSigner::new(scm.clone(), config.tokens.token_lifetime));
        OzoneManager {
            sm,
            node,
            proposer,
            scm,
            config,
            signer,
        }
    }

    pub fn raft_node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// NOT_LEADER naming the leader `leader` (a raft id), when known.
    fn not_leader(&self, leader: Option<u64>) -> OmError {
        let leader = leader
            .and_then(|id| self.node.settings().peers.get(&id))
            .map(|n| n.address.clone());
        OmError::NotLeader { leader }
    }

    pub fn state_machine(&self) -> &Arc<StateMachine> {
        &self.sm
    }

    pub fn config(&self) -> &OmConfig {
        &self.config
    }

    /// Replicates a prepared command through the raft log (sharing an entry with the commands
    /// submitted at the same time, see [`Proposer`]) and returns the result of applying it; a
    /// rejection becomes an error. NOT_LEADER on a follower; OM_UNAVAILABLE when it does
    /// not commit in time (it may still commit later: the caller sees a failure, never a false
    /// success).
    pub async fn submit(&self, cmd: impl Into<OmCommand>) -> Result<OmResponse, OmError> {
        let cmd = cmd.into();
        let op = cmd.name();
        // Within an RPC that carries a client request id: applied once (see `retry.rs`).
        let cmd = match crate::retry::current() {
            Some(request) => {
                let now = ozone_common::now_ms();
                let ttl =
                    u64::try_from(self.config.retry_cache_timeout.as_millis()).unwrap_or(u64::MAX);
                OmCommand::Tracked(Tracked {
                    request,
                    now_ms: now,
                    expire_before_ms: now.saturating_sub(ttl),
                    command: Box::new(cmd),
                })
            }
            None => cmd,
        };
        let resp = match self.proposer.propose(cmd).await {
            Ok(r) => r,
            Err(ProposeError::NotLeader(leader)) => return Err(self.not_leader(leader)),
            Err(ProposeError::Unavailable(m)) => {
                return Err(OmError::Unavailable(format!("{op}: {m}")));
            }
        };
        match resp {
            OmResponse::Rejected(r) => Err(OmError::Rejected(r)),
            other => Ok(other),
        }
    }

    /// Confirms this OM leads and has applied everything committed before now (read-index).
    /// A heartbeat round that misses a quorum (slow followers under load) is retried until
    /// `ozone.om.ratis.server.request.timeout`.
    pub async fn ensure_linearizable(&self) -> Result<(), OmError> {
        let timeout = self.node.settings().request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let r = tokio::time::timeout_at(deadline, self.node.raft().ensure_linearizable()).await;
            let last = match r {
                Err(_) => "no answer".to_string(),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                    return Err(self.not_leader(f.leader_id));
                }
                Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)))) => {
                    e.to_string()
                }
                Ok(Err(e)) => return Err(OmError::Unavailable(format!("read: {e}"))),
            };
            if tokio::time::Instant::now() + READ_RETRY_PAUSE >= deadline {
                return Err(OmError::Unavailable(format!(
                    "leadership not confirmed by a quorum within {timeout:?}: {last}"
                )));
            }
            tokio::time::sleep(READ_RETRY_PAUSE).await;
        }
    }

    /// A linearizable read: [`Self::ensure_linearizable`], then `f` on a database snapshot.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Snapshot) -> Result<T, OmError> + Send + 'static,
    ) -> Result<T, OmError> {
        self.ensure_linearizable().await?;
        let sm = self.sm.clone();
        blocking(move || f(&sm.snapshot()?)).await
    }

    /// Counts of this OM's local state (not linearizable: for gauges and status pages).
    pub async fn local_counts(&self) -> Result<Counts, OmError> {
        let sm = self.sm.clone();
        blocking(move || sm.snapshot()?.counts()).await
    }

    pub async fn counts(&self) -> Result<Counts, OmError> {
        self.read(|s| s.counts()).await
    }
}
