//! Domain types of SCM: datanodes, pipelines, containers and replica reports (the replication
//! [`Factor`] has its own module), with the validating conversions from the generated protobuf
//! types that the gRPC services use and the serde form in which the store persists them.

use ozone_proto::{hdds, scm as pb};
use serde::{Deserialize, Serialize};

use crate::error::ScmError;
use crate::factor::Factor;

/// Health of a datanode, derived from the time since its last heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeHealth {
    Healthy,
    Stale,
    Dead,
}

impl NodeHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeHealth::Healthy => "HEALTHY",
            NodeHealth::Stale => "STALE",
            NodeHealth::Dead => "DEAD",
        }
    }
}

/// Lifecycle of a pipeline: OPEN takes new containers and blocks; CLOSED never again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PipelineState {
    #[serde(rename = "OPEN")]
    Open,
    #[serde(rename = "CLOSED")]
    Closed,
}

impl PipelineState {
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Open => "OPEN",
            PipelineState::Closed => "CLOSED",
        }
    }
}

/// Lifecycle of a container as SCM sees it: OPEN takes new blocks; CLOSED never again (its
/// replicas are told to close on their next heartbeat); an empty CLOSED container turns
/// DELETING while its replicas are removed, then DELETED once no datanode reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    #[serde(rename = "OPEN")]
    Open,
    #[serde(rename = "CLOSED")]
    Closed,
    #[serde(rename = "DELETING")]
    Deleting,
    #[serde(rename = "DELETED")]
    Deleted,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Open => "OPEN",
            ContainerState::Closed => "CLOSED",
            ContainerState::Deleting => "DELETING",
            ContainerState::Deleted => "DELETED",
        }
    }
}

/// Operational state of a datanode, set by an administrator (Ozone's `NodeOperationalState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpState {
    /// Takes pipelines, blocks and replicas.
    #[default]
    #[serde(rename = "IN_SERVICE")]
    InService,
    /// Takes nothing new; its replicas are copied elsewhere (they no longer count).
    #[serde(rename = "DECOMMISSIONING")]
    Decommissioning,
    /// Every container it held has its full replica count on in-service datanodes.
    #[serde(rename = "DECOMMISSIONED")]
    Decommissioned,
}

impl OpState {
    pub fn as_str(self) -> &'static str {
        match self {
            OpState::InService => "IN_SERVICE",
            OpState::Decommissioning => "DECOMMISSIONING",
            OpState::Decommissioned => "DECOMMISSIONED",
        }
    }
}

/// State of one container replica as its datanode reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    Open,
    Closing,
    QuasiClosed,
    Closed,
    Unhealthy,
}

impl ReplicaState {
    pub fn parse(s: &str) -> Option<ReplicaState> {
        Some(match s {
            "OPEN" => ReplicaState::Open,
            "CLOSING" => ReplicaState::Closing,
            "QUASI_CLOSED" => ReplicaState::QuasiClosed,
            "CLOSED" => ReplicaState::Closed,
            "UNHEALTHY" => ReplicaState::Unhealthy,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Open => "OPEN",
            ReplicaState::Closing => "CLOSING",
            ReplicaState::QuasiClosed => "QUASI_CLOSED",
            ReplicaState::Closed => "CLOSED",
            ReplicaState::Unhealthy => "UNHEALTHY",
        }
    }

    /// Whether the replica still accepts writes and so must be told to close when SCM has
    /// closed its container.
    pub fn is_open(self) -> bool {
        matches!(self, ReplicaState::Open | ReplicaState::Closing)
    }
}

/// A datanode's identity and address, as it registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeDetails {
    pub uuid: String,
    pub host: String,
    pub port: u16,
    pub http_port: u16,
}

/// Longest datanode uuid accepted.
const MAX_UUID_LEN: usize = 128;

impl TryFrom<hdds::DatanodeDetails> for DatanodeDetails {
    type Error = ScmError;

    fn try_from(d: hdds::DatanodeDetails) -> Result<Self, ScmError> {
        let uuid = d.uuid.trim().to_string();
        if uuid.is_empty() || uuid.len() > MAX_UUID_LEN || uuid.contains(char::is_whitespace) {
            return Err(ScmError::InvalidArgument(format!(
                "datanode uuid {:?} is empty, too long or has spaces",
                d.uuid
            )));
        }
        let host = d.host.trim().to_string();
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(ScmError::InvalidArgument(format!(
                "datanode {uuid}: host {:?} is empty or has spaces",
                d.host
            )));
        }
        let port = u16::try_from(d.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                ScmError::InvalidArgument(format!("datanode {uuid}: bad port {}", d.port))
            })?;
        let http_port = u16::try_from(d.http_port).map_err(|_| {
            ScmError::InvalidArgument(format!("datanode {uuid}: bad http port {}", d.http_port))
        })?;
        Ok(DatanodeDetails {
            uuid,
            host,
            port,
            http_port,
        })
    }
}

impl From<&DatanodeDetails> for hdds::DatanodeDetails {
    fn from(d: &DatanodeDetails) -> Self {
        hdds::DatanodeDetails {
            uuid: d.uuid.clone(),
            host: d.host.clone(),
            port: u32::from(d.port),
            http_port: u32::from(d.http_port),
        }
    }
}

/// Space figures of a datanode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeReport {
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
}

impl From<pb::NodeReport> for NodeReport {
    fn from(r: pb::NodeReport) -> Self {
        NodeReport {
            capacity: r.capacity,
            used: r.used,
            remaining: r.remaining,
        }
    }
}

impl From<NodeReport> for pb::NodeReport {
    fn from(r: NodeReport) -> Self {
        pb::NodeReport {
            capacity: r.capacity,
            used: r.used,
            remaining: r.remaining,
        }
    }
}

/// One container replica held by a datanode, from its latest container report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaReport {
    pub container_id: u64,
    pub state: ReplicaState,
    pub used_bytes: u64,
    pub block_count: u64,
    /// Block commits the replica applied (Ozone's BCSID).
    pub bcsid: u64,
}

impl TryFrom<pb::ContainerReplicaReport> for ReplicaReport {
    type Error = ScmError;

    fn try_from(r: pb::ContainerReplicaReport) -> Result<Self, ScmError> {
        if r.container_id == 0 {
            return Err(ScmError::InvalidArgument(
                "container report with container id 0".into(),
            ));
        }
        let state = ReplicaState::parse(&r.state).ok_or_else(|| {
            ScmError::InvalidArgument(format!(
                "container {}: unknown replica state {:?}",
                r.container_id, r.state
            ))
        })?;
        Ok(ReplicaReport {
            container_id: r.container_id,
            state,
            used_bytes: r.used_bytes,
            block_count: r.block_count,
            bcsid: r.bcsid,
        })
    }
}

/// What a datanode sends in Register and Heartbeat, validated.
#[derive(Clone, Debug)]
pub struct NodeUpdate {
    pub details: DatanodeDetails,
    pub report: Option<NodeReport>,
    /// Every replica the datanode holds (a full report), or with `incremental` only those new
    /// or changed.
    pub replicas: Vec<ReplicaReport>,
    /// `replicas` is incremental: replicas it does not name are unchanged.
    pub incremental: bool,
    /// With `incremental`: containers whose replicas the datanode no longer holds.
    pub removed: Vec<u64>,
    /// Deleted-block transactions the datanode carried out.
    pub deleted_block_txs: Vec<u64>,
}

impl NodeUpdate {
    pub fn from_parts(
        datanode: Option<hdds::DatanodeDetails>,
        report: Option<pb::NodeReport>,
        containers: Vec<pb::ContainerReplicaReport>,
    ) -> Result<Self, ScmError> {
        let details = datanode
            .ok_or_else(|| ScmError::InvalidArgument("datanode details missing".into()))?
            .try_into()?;
        let replicas = containers
            .into_iter()
            .map(ReplicaReport::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NodeUpdate {
            details,
            report: report.map(NodeReport::from),
            replicas,
            incremental: false,
            removed: Vec::new(),
            deleted_block_txs: Vec::new(),
        })
    }

    /// Makes the update an incremental report with `removed` containers (ignored, as
    /// meaningless, when `incremental` is false: a full report replaces everything).
    pub fn with_increment(mut self, incremental: bool, removed: Vec<u64>) -> Self {
        self.incremental = incremental;
        self.removed = if incremental { removed } else { Vec::new() };
        self
    }
}

/// One transaction of the deleted-block log: blocks of one container to delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTx {
    pub tx_id: u64,
    pub container_id: u64,
    pub local_ids: Vec<u64>,
}

/// A deleted-block transaction every holder carried out: when (ms since the epoch) and who.
/// Kept a while after (see `state::deleted_blocks`) for holders that show up later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneMark {
    pub done_ms: u64,
    pub acked: Vec<String>,
}

/// A command for a datanode, delivered in its next heartbeat response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CloseContainer(u64),
    /// Copy the container from one of the sources (tried in order).
    ReplicateContainer {
        container_id: u64,
        sources: Vec<DatanodeDetails>,
    },
    DeleteBlocks(Vec<DeleteTx>),
    /// Remove the replica; without `force` only if it holds no blocks.
    DeleteContainer {
        container_id: u64,
        force: bool,
    },
}

impl Command {
    /// The container the command is about (None for a batch of block deletions).
    pub fn container_id(&self) -> Option<u64> {
        match self {
            Command::CloseContainer(id) => Some(*id),
            Command::ReplicateContainer { container_id, .. }
            | Command::DeleteContainer { container_id, .. } => Some(*container_id),
            Command::DeleteBlocks(_) => None,
        }
    }
}

impl From<Command> for pb::ScmCommand {
    fn from(c: Command) -> Self {
        use pb::scm_command::Command as C;
        let command = match c {
            Command::CloseContainer(container_id) => {
                C::CloseContainer(pb::CloseContainerCommand { container_id })
            }
            Command::ReplicateContainer {
                container_id,
                sources,
            } => C::ReplicateContainer(pb::ReplicateContainerCommand {
                container_id,
                sources: sources.iter().map(Into::into).collect(),
                // Signed per heartbeat response (security on): see `grpc`.
                token: Vec::new(),
            }),
            Command::DeleteBlocks(txs) => C::DeleteBlocks(pb::DeleteBlocksCommand {
                transactions: txs
                    .into_iter()
                    .map(|t| pb::DeletedBlocksTransaction {
                        tx_id: t.tx_id,
                        container_id: t.container_id,
                        local_ids: t.local_ids,
                    })
                    .collect(),
            }),
            Command::DeleteContainer {
                container_id,
                force,
            } => C::DeleteContainer(pb::DeleteContainerCommand {
                container_id,
                force,
            }),
        };
        pb::ScmCommand {
            command: Some(command),
        }
    }
}

/// A persisted datanode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub details: DatanodeDetails,
    /// When SCM first saw the datanode (ms since the epoch).
    pub registered_ms: u64,
    #[serde(default)]
    pub op_state: OpState,
}

/// A persisted pipeline: its members by uuid, in order (the first is the primary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub id: String,
    pub factor: Factor,
    pub nodes: Vec<String>,
    pub state: PipelineState,
    pub created_ms: u64,
}

/// A persisted container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: u64,
    pub pipeline_id: String,
    pub factor: Factor,
    pub state: ContainerState,
    /// Bytes handed out as blocks in this container: the sizes their writers declared (capped
    /// by the block size). Shown to admins; how full the container is comes from the reports.
    pub allocated_bytes: u64,
    pub created_ms: u64,
    /// The highest BCSID a replica reported or a writer saw committed (written with the next
    /// commit, like `allocated_bytes`).
    #[serde(default)]
    pub bcsid: u64,
    /// Datanodes whose replica a writer reported missing a commit: lagging until it is gone.
    #[serde(default)]
    pub missed: std::collections::BTreeSet<String>,
}

/// A validated AllocateBlock request.
#[derive(Clone, Debug)]
pub struct AllocateRequest {
    /// Bytes the writer declares per block (capped by the block size); 0 means unknown,
    /// counted as the block size.
    pub size: u64,
    pub num_blocks: u32,
    /// None means the server default.
    pub factor: Option<Factor>,
    pub owner: String,
    pub exclude: Vec<String>,
}

/// Most blocks one AllocateBlock call may ask for.
pub const MAX_BLOCKS_PER_CALL: u32 = 1024;

impl TryFrom<pb::AllocateBlockRequest> for AllocateRequest {
    type Error = ScmError;

    fn try_from(r: pb::AllocateBlockRequest) -> Result<Self, ScmError> {
        if r.num_blocks == 0 || r.num_blocks > MAX_BLOCKS_PER_CALL {
            return Err(ScmError::InvalidArgument(format!(
                "num_blocks must be 1..={MAX_BLOCKS_PER_CALL}, got {}",
                r.num_blocks
            )));
        }
        let factor = match r.replication {
            0 => None,
            n => Some(Factor::from_count(u64::from(n)).ok_or_else(|| {
                ScmError::InvalidArgument(format!("replication must be 0, 1 or 3, got {n}"))
            })?),
        };
        Ok(AllocateRequest {
            size: r.size,
            num_blocks: r.num_blocks,
            factor,
            owner: r.owner,
            exclude: r.exclude_datanodes,
        })
    }
}

/// One allocated block and the pipeline (with current addresses) that holds its container.
#[derive(Clone, Debug)]
pub struct AllocatedBlock {
    pub container_id: u64,
    pub local_id: u64,
    pub pipeline: PipelineView,
}

/// A pipeline with its members' current details.
#[derive(Clone, Debug)]
pub struct PipelineView {
    pub id: String,
    pub factor: Factor,
    pub state: PipelineState,
    pub nodes: Vec<DatanodeDetails>,
}

/// A datanode as ListDatanodes shows it.
#[derive(Clone, Debug)]
pub struct DatanodeView {
    pub details: DatanodeDetails,
    pub health: NodeHealth,
    pub op_state: OpState,
    pub report: NodeReport,
    pub millis_since_heartbeat: u64,
    pub container_count: u32,
    /// Ids of the OPEN pipelines the datanode belongs to.
    pub pipelines: Vec<String>,
}

/// A container with the replicas its datanodes last reported.
#[derive(Clone, Debug)]
pub struct ContainerView {
    pub record: ContainerRecord,
    /// Largest used bytes among the replicas.
    pub used_bytes: u64,
    /// Largest block count among the replicas.
    pub block_count: u64,
    pub replicas: Vec<ReplicaView>,
}

#[derive(Clone, Debug)]
pub struct ReplicaView {
    pub datanode: DatanodeDetails,
    pub report: ReplicaReport,
    /// Missing committed blocks (see [`crate::planner::lagging`]).
    pub lagging: bool,
}

/// Safe-mode state: SCM hands out no blocks while `in_safe_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SafeModeView {
    pub in_safe_mode: bool,
    pub healthy_datanodes: u32,
    pub required_datanodes: u32,
    /// Whether an OPEN pipeline of the default factor with only healthy members exists.
    pub has_pipeline: bool,
}
