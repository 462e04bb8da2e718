//! The two gRPC services of SCM: `ScmDatanodeService` (datanodes register and heartbeat) and
//! `ScmClientService` (OM allocates blocks; admin tools list state). Each handler validates the
//! request into domain types, asks the state actor, converts the answer back and is timed in
//! the role's metrics.

use actix::{Addr, Handler, Message};
use ozone_common::Metrics;
use ozone_proto::{hdds, scm as pb};
use tonic::{Request, Response, Status};

use crate::error::ScmError;
use crate::manager::{self, ScmManager};
use crate::model::{
    AllocateRequest, AllocatedBlock, ContainerView, DatanodeDetails, DatanodeView, NodeUpdate,
    OpState, PipelineView, ReplicaView,
};

/// What both services share: the state actor and the metrics.
#[derive(Clone)]
pub struct Services {
    manager: Addr<ScmManager>,
    metrics: Metrics,
}

impl Services {
    pub fn new(manager: Addr<ScmManager>, metrics: Metrics) -> Self {
        Services { manager, metrics }
    }

    /// Sends a message to the state actor; a stopped actor is `unavailable`.
    async fn ask<M, T>(&self, msg: M) -> Result<T, Status>
    where
        M: Message<Result = Result<T, ScmError>> + Send + 'static,
        T: Send + 'static,
        ScmManager: Handler<M>,
    {
        let r = self.manager.send(msg).await.map_err(ScmError::from)?;
        Ok(r?)
    }
}

/// With mutual TLS a datanode registers and heartbeats only as itself: the uuid it reports
/// must be its certificate's.
fn as_itself<T>(
    request: &Request<T>,
    datanode: Option<&hdds::DatanodeDetails>,
) -> Result<(), ScmError> {
    let Some(peer) = request.extensions().get::<ozone_common::tls::PeerInfo>() else {
        return Ok(());
    };
    if !peer.tls {
        return Ok(());
    }
    let uuid = datanode.map(|d| d.uuid.as_str()).unwrap_or_default();
    match &peer.identity {
        Some(id) if id.role == ozone_common::tls::NodeRole::Datanode && id.id == uuid => Ok(()),
        other => Err(ScmError::PermissionDenied(format!(
            "{} may not speak for datanode {uuid:?}",
            other.as_ref().map_or_else(
                || "a caller without a certificate".to_string(),
                |i| i.to_string()
            )
        ))),
    }
}

#[tonic::async_trait]
impl pb::scm_datanode_service_server::ScmDatanodeService for Services {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        self.metrics
            .time("Register", async {
                as_itself(&request, request.get_ref().datanode.as_ref())?;
                let r = request.into_inner();
                let update = NodeUpdate::from_parts(r.datanode, r.node_report, r.containers)?;
                let (cluster_id, term, keys) = self.ask(manager::Register(update)).await?;
                Ok(Response::new(pb::RegisterResponse {
                    cluster_id,
                    term,
                    secret_keys: keys.iter().map(secret_key).collect(),
                }))
            })
            .await
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.metrics
            .time("Heartbeat", async {
                as_itself(&request, request.get_ref().datanode.as_ref())?;
                let r = request.into_inner();
                let mut update = NodeUpdate::from_parts(r.datanode, r.node_report, r.containers)?
                    .with_increment(r.incremental_container_report, r.removed_containers);
                update.deleted_block_txs = r.deleted_block_txs;
                let outcome = self.ask(manager::Heartbeat(update)).await?;
                let tokens = outcome.container_tokens;
                let commands = outcome
                    .commands
                    .into_iter()
                    .map(|c| {
                        let mut c = pb::ScmCommand::from(c);
                        if let Some(pb::scm_command::Command::ReplicateContainer(r)) =
                            c.command.as_mut()
                            && let Some(t) = tokens.get(&r.container_id)
                        {
                            r.token = t.clone();
                        }
                        c
                    })
                    .collect();
                Ok(Response::new(pb::HeartbeatResponse {
                    commands,
                    reregister: outcome.reregister,
                    term: outcome.term,
                    secret_keys: outcome.secret_keys.iter().map(secret_key).collect(),
                }))
            })
            .await
    }
}

#[tonic::async_trait]
impl pb::scm_client_service_server::ScmClientService for Services {
    async fn allocate_block(
        &self,
        request: Request<pb::AllocateBlockRequest>,
    ) -> Result<Response<pb::AllocateBlockResponse>, Status> {
        self.metrics
            .time("AllocateBlock", async {
                let req = AllocateRequest::try_from(request.into_inner())?;
                let blocks = self.ask(manager::Allocate(req)).await?;
                Ok(Response::new(pb::AllocateBlockResponse {
                    blocks: blocks.into_iter().map(allocated_block).collect(),
                }))
            })
            .await
    }

    async fn list_datanodes(
        &self,
        _: Request<pb::ListDatanodesRequest>,
    ) -> Result<Response<pb::ListDatanodesResponse>, Status> {
        self.metrics
            .time("ListDatanodes", async {
                let nodes = self.ask(manager::ListDatanodes).await?;
                Ok(Response::new(pb::ListDatanodesResponse {
                    datanodes: nodes.into_iter().map(datanode_info).collect(),
                }))
            })
            .await
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        self.metrics
            .time("ListContainers", async {
                let r = request.into_inner();
                let containers = self
                    .ask(manager::ListContainers {
                        start: r.start,
                        count: r.count as usize,
                    })
                    .await?;
                Ok(Response::new(pb::ListContainersResponse {
                    containers: containers.into_iter().map(container_info).collect(),
                }))
            })
            .await
    }

    async fn get_container(
        &self,
        request: Request<pb::GetContainerRequest>,
    ) -> Result<Response<pb::ContainerInfo>, Status> {
        self.metrics
            .time("GetContainer", async {
                let id = request.into_inner().container_id;
                let c = self.ask(manager::GetContainer(id)).await?;
                Ok(Response::new(container_info(c)))
            })
            .await
    }

    async fn list_pipelines(
        &self,
        _: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        self.metrics
            .time("ListPipelines", async {
                let pipelines = self.ask(manager::ListPipelines).await?;
                Ok(Response::new(pb::ListPipelinesResponse {
                    pipelines: pipelines.into_iter().map(pipeline).collect(),
                }))
            })
            .await
    }

    async fn delete_blocks(
        &self,
        request: Request<pb::DeleteBlocksRequest>,
    ) -> Result<Response<pb::DeleteBlocksResponse>, Status> {
        self.metrics
            .time("DeleteBlocks", async {
                let groups = request
                    .into_inner()
                    .groups
                    .into_iter()
                    .map(|g| {
                        if g.container_id == 0 {
                            Err(Status::invalid_argument("block group with container id 0"))
                        } else {
                            Ok((g.container_id, g.local_ids))
                        }
                    })
                    .collect::<Result<Vec<_>, Status>>()?;
                let transactions = self.ask(manager::DeleteBlocks(groups)).await?;
                Ok(Response::new(pb::DeleteBlocksResponse { transactions }))
            })
            .await
    }

    async fn decommission_datanode(
        &self,
        request: Request<pb::DatanodeAdminRequest>,
    ) -> Result<Response<pb::DatanodeAdminResponse>, Status> {
        self.metrics
            .time("DecommissionDatanode", async {
                let name = datanode_name(request.into_inner())?;
                let (d, op) = self.ask(manager::Decommission(name)).await?;
                Ok(Response::new(admin_response(d, op)))
            })
            .await
    }

    async fn recommission_datanode(
        &self,
        request: Request<pb::DatanodeAdminRequest>,
    ) -> Result<Response<pb::DatanodeAdminResponse>, Status> {
        self.metrics
            .time("RecommissionDatanode", async {
                let name = datanode_name(request.into_inner())?;
                let (d, op) = self.ask(manager::Recommission(name)).await?;
                Ok(Response::new(admin_response(d, op)))
            })
            .await
    }

    async fn close_container(
        &self,
        request: Request<pb::CloseContainerRequest>,
    ) -> Result<Response<pb::CloseContainerResponse>, Status> {
        self.metrics
            .time("CloseContainer", async {
                let id = request.into_inner().container_id;
                if id == 0 {
                    return Err(Status::invalid_argument("container id 0"));
                }
                let c = self.ask(manager::CloseContainer(id)).await?;
                Ok(Response::new(pb::CloseContainerResponse {
                    container: Some(container_info(c)),
                }))
            })
            .await
    }

    async fn report_replica_miss(
        &self,
        request: Request<pb::ReportReplicaMissRequest>,
    ) -> Result<Response<pb::ReportReplicaMissResponse>, Status> {
        self.metrics
            .time("ReportReplicaMiss", async {
                let r = request.into_inner();
                let datanode = r.datanode.trim().to_string();
                if r.container_id == 0 || datanode.is_empty() {
                    return Err(Status::invalid_argument(
                        "ReportReplicaMiss needs a container id and a datanode",
                    ));
                }
                self.ask(manager::ReportReplicaMiss {
                    container_id: r.container_id,
                    datanode,
                    bcsid: r.bcsid,
                })
                .await?;
                Ok(Response::new(pb::ReportReplicaMissResponse {}))
            })
            .await
    }

    async fn get_secret_keys(
        &self,
        request: Request<pb::GetSecretKeysRequest>,
    ) -> Result<Response<pb::GetSecretKeysResponse>, Status> {
        self.metrics
            .time("GetSecretKeys", async {
                // Only OMs and datanodes fetch keys: the port's policy (access.rs) refuses
                // every other caller before this runs.
                let _ = &request;
                let (keys, current_key_id) = self.ask(manager::GetSecretKeys).await?;
                Ok(Response::new(pb::GetSecretKeysResponse {
                    keys: keys.iter().map(secret_key).collect(),
                    current_key_id,
                }))
            })
            .await
    }

    async fn safe_mode_status(
        &self,
        _: Request<pb::SafeModeStatusRequest>,
    ) -> Result<Response<pb::SafeModeStatusResponse>, Status> {
        self.metrics
            .time("SafeModeStatus", async {
                let s = self.ask(manager::SafeModeStatus).await?;
                Ok(Response::new(pb::SafeModeStatusResponse {
                    in_safe_mode: s.in_safe_mode,
                    healthy_datanodes: s.healthy_datanodes,
                    required_datanodes: s.required_datanodes,
                }))
            })
            .await
    }
}

fn secret_key(k: &ozone_common::token::SecretKey) -> hdds::SecretKey {
    hdds::SecretKey {
        id: k.id.clone(),
        created_ms: k.created_ms,
        expires_ms: k.expires_ms,
        key: k.key.clone(),
    }
}

fn admin_response(d: DatanodeDetails, op: OpState) -> pb::DatanodeAdminResponse {
    pb::DatanodeAdminResponse {
        datanode: Some((&d).into()),
        operational_state: op.as_str().to_string(),
    }
}

fn datanode_name(r: pb::DatanodeAdminRequest) -> Result<String, Status> {
    let name = r.datanode.trim().to_string();
    if name.is_empty() {
        return Err(Status::invalid_argument("no datanode named"));
    }
    Ok(name)
}

fn pipeline(p: PipelineView) -> hdds::Pipeline {
    hdds::Pipeline {
        id: p.id,
        nodes: p.nodes.iter().map(Into::into).collect(),
        replication: p.factor.as_u32(),
        state: p.state.as_str().to_string(),
    }
}

fn allocated_block(b: AllocatedBlock) -> pb::AllocatedBlock {
    pb::AllocatedBlock {
        block_id: Some(hdds::BlockId {
            container_id: b.container_id,
            local_id: b.local_id,
        }),
        pipeline: Some(pipeline(b.pipeline)),
    }
}

fn datanode_info(d: DatanodeView) -> pb::DatanodeInfo {
    pb::DatanodeInfo {
        datanode: Some((&d.details).into()),
        health: d.health.as_str().to_string(),
        operational_state: d.op_state.as_str().to_string(),
        node_report: Some(d.report.into()),
        millis_since_heartbeat: d.millis_since_heartbeat,
        container_count: d.container_count,
        pipelines: d.pipelines,
    }
}

fn replica(r: ReplicaView) -> pb::ContainerReplica {
    pb::ContainerReplica {
        datanode: Some((&r.datanode).into()),
        state: r.report.state.as_str().to_string(),
        used_bytes: r.report.used_bytes,
        block_count: r.report.block_count,
        bcsid: r.report.bcsid,
        lagging: r.lagging,
    }
}

fn container_info(c: ContainerView) -> pb::ContainerInfo {
    pb::ContainerInfo {
        id: c.record.id,
        state: c.record.state.as_str().to_string(),
        pipeline_id: c.record.pipeline_id,
        replication: c.record.factor.as_u32(),
        allocated_bytes: c.record.allocated_bytes,
        used_bytes: c.used_bytes,
        block_count: c.block_count,
        replicas: c.replicas.into_iter().map(replica).collect(),
        bcsid: c.record.bcsid,
    }
}
