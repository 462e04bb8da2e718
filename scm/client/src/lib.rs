//! Typed gRPC clients of SCM.
//!
//! - [`ScmClient`] speaks `ScmClientService` (port 9860): OM allocates blocks, admin tools list
//!   datanodes, containers and pipelines and read the safe-mode state.
//! - [`ScmDatanodeClient`] speaks `ScmDatanodeService` (port 9861): datanodes register and
//!   heartbeat.
//!
//! Both connect lazily (the first call dials; a broken connection is re-dialled on the next
//! call), apply connect and per-call timeouts, and map gRPC statuses to [`ScmClientError`],
//! where [`ScmClientError::Unavailable`] (SCM down, in safe mode, no healthy pipeline) is the
//! retryable case.
//!
//! SCM HA: [`ScmClient::connect_service`] takes every SCM of the service (see `failover`).
//! Only the leader serves; a follower refuses with UNAVAILABLE and the leader's address in the
//! [`LEADER_HEADER`] metadata, and the client goes there at once and remembers it. Without a
//! hint (SCM down, an election, a new leader still in safe mode) it tries the next SCM after a
//! short pause, round the list, for up to the failover window, then fails as unavailable.

pub mod certs;
mod failover;

use std::time::Duration;

pub use failover::{FAILOVER_PAUSE, FAILOVER_WINDOW, FailoverOptions};

pub use ozone_proto::{hdds, scm as pb};
use pb::scm_datanode_service_client::ScmDatanodeServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Metadata key of a refusing SCM's answer naming the leader's client address: an SCM that is
/// not the leader of its service answers every call with UNAVAILABLE and this hint when it
/// knows the leader.
pub const LEADER_HEADER: &str = "x-scm-leader";

/// Time allowed to establish a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ScmClientError {
    #[error("bad SCM address {addr:?}: {message}")]
    InvalidAddress { addr: String, message: String },
    /// SCM cannot serve the call now: unreachable, shutting down, in safe mode or without a
    /// healthy pipeline. Worth retrying later.
    #[error("SCM unavailable: {0}")]
    Unavailable(String),
    #[error("SCM call timed out: {0}")]
    Timeout(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request does not fit the object's state (e.g. closing a container that is not
    /// OPEN).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Certificates and keys of security on.
    #[error("security: {0}")]
    Security(String),
    /// Any other status.
    #[error("SCM call failed: {0}")]
    Rpc(tonic::Status),
}

impl ScmClientError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ScmClientError::Unavailable(_) | ScmClientError::Timeout(_)
        )
    }
}

impl From<tonic::Status> for ScmClientError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        match s.code() {
            Code::Unavailable => ScmClientError::Unavailable(s.message().to_string()),
            Code::DeadlineExceeded | Code::Cancelled => {
                ScmClientError::Timeout(s.message().to_string())
            }
            Code::NotFound => ScmClientError::NotFound(s.message().to_string()),
            Code::InvalidArgument => ScmClientError::InvalidArgument(s.message().to_string()),
            Code::FailedPrecondition => ScmClientError::FailedPrecondition(s.message().to_string()),
            _ => ScmClientError::Rpc(s),
        }
    }
}

pub type Result<T, E = ScmClientError> = std::result::Result<T, E>;

/// A lazy channel to `addr` (`host:port` or a full `http://host:port` URI).
fn channel(addr: &str, connect_timeout: Duration, call_timeout: Duration) -> Result<Channel> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|e| ScmClientError::InvalidAddress {
        addr: addr.to_string(),
        message: e.to_string(),
    })?;
    let endpoint = endpoint
        .connect_timeout(connect_timeout)
        .timeout(call_timeout)
        .tcp_nodelay(true);
    Ok(ozone_common::tls::channel(
        endpoint,
        ozone_common::tls::NodeRole::Scm,
    ))
}

/// Client of `ScmClientService` over one SCM or the SCMs of an HA service. Cheap to clone;
/// clones share the connections and the current leader.
#[derive(Clone, Debug)]
pub struct ScmClient {
    inner: failover::Failover,
}

impl ScmClient {
    /// A client of the single SCM at `addr` (see `OzoneConfig::scm_client_address`): it still
    /// follows a leader hint, but does not wait for an SCM that refuses or is down. Does not
    /// dial until the first call. Must be called inside a tokio runtime.
    pub fn connect(addr: &str) -> Result<Self> {
        Self::connect_service(&[addr.to_string()])
    }

    /// A client of the SCM service at `addrs` (`OzoneConfig::scm_client_addresses`): with
    /// several SCMs a call looks for the leader for up to [`FAILOVER_WINDOW`]; with one it
    /// fails at once as before (there is nobody to fail over to). Does not dial until the
    /// first call. Must be called inside a tokio runtime.
    pub fn connect_service(addrs: &[String]) -> Result<Self> {
        let window = if addrs.len() > 1 {
            FAILOVER_WINDOW
        } else {
            Duration::ZERO
        };
        Self::with_options(
            addrs,
            FailoverOptions {
                window,
                ..FailoverOptions::default()
            },
        )
    }

    /// A client of the SCMs at `addrs` with explicit timeouts and failover window.
    pub fn with_options(addrs: &[String], options: FailoverOptions) -> Result<Self> {
        Ok(ScmClient {
            inner: failover::Failover::new(addrs, options)?,
        })
    }

    /// The address of the SCM the next call goes to first (the last one that served).
    pub fn current_address(&self) -> String {
        self.inner.current_address()
    }

    /// Allocates `num_blocks` blocks of `size` bytes (0: SCM's block size) with replication 1
    /// or 3 (0: SCM's default), avoiding pipelines with any of `exclude_datanodes` (uuids).
    pub async fn allocate_block(
        &self,
        size: u64,
        num_blocks: u32,
        replication: u32,
        owner: &str,
        exclude_datanodes: &[String],
    ) -> Result<Vec<pb::AllocatedBlock>> {
        let req = pb::AllocateBlockRequest {
            size,
            num_blocks,
            replication,
            owner: owner.to_string(),
            exclude_datanodes: exclude_datanodes.to_vec(),
        };
        Ok(self
            .inner
            .call(req, |mut c, r| async move { c.allocate_block(r).await })
            .await?
            .blocks)
    }

    pub async fn list_datanodes(&self) -> Result<Vec<pb::DatanodeInfo>> {
        Ok(self
            .inner
            .call(pb::ListDatanodesRequest {}, |mut c, r| async move {
                c.list_datanodes(r).await
            })
            .await?
            .datanodes)
    }

    /// Containers with id greater than `start`, ascending, at most `count` (0: all).
    pub async fn list_containers(&self, start: u64, count: u32) -> Result<Vec<pb::ContainerInfo>> {
        Ok(self
            .inner
            .call(
                pb::ListContainersRequest { start, count },
                |mut c, r| async move { c.list_containers(r).await },
            )
            .await?
            .containers)
    }

    /// One container with its replicas; [`ScmClientError::NotFound`] if SCM has no such id.
    pub async fn get_container(&self, container_id: u64) -> Result<pb::ContainerInfo> {
        self.inner
            .call(
                pb::GetContainerRequest { container_id },
                |mut c, r| async move { c.get_container(r).await },
            )
            .await
    }

    pub async fn list_pipelines(&self) -> Result<Vec<hdds::Pipeline>> {
        Ok(self
            .inner
            .call(pb::ListPipelinesRequest {}, |mut c, r| async move {
                c.list_pipelines(r).await
            })
            .await?
            .pipelines)
    }

    /// Appends blocks to delete, as (container id, local ids), to SCM's deleted-block log;
    /// returns once they are durable there.
    pub async fn delete_blocks(&self, groups: Vec<(u64, Vec<u64>)>) -> Result<u32> {
        let req = pb::DeleteBlocksRequest {
            groups: groups
                .into_iter()
                .map(|(container_id, local_ids)| pb::BlockGroup {
                    container_id,
                    local_ids,
                })
                .collect(),
        };
        Ok(self
            .inner
            .call(req, |mut c, r| async move { c.delete_blocks(r).await })
            .await?
            .transactions)
    }

    /// Starts decommissioning the datanode named by uuid, `host:port` or a unique host.
    pub async fn decommission(&self, datanode: &str) -> Result<pb::DatanodeAdminResponse> {
        let req = pb::DatanodeAdminRequest {
            datanode: datanode.to_string(),
        };
        self.inner
            .call(
                req,
                |mut c, r| async move { c.decommission_datanode(r).await },
            )
            .await
    }

    /// Puts a datanode back in service.
    pub async fn recommission(&self, datanode: &str) -> Result<pb::DatanodeAdminResponse> {
        let req = pb::DatanodeAdminRequest {
            datanode: datanode.to_string(),
        };
        self.inner
            .call(
                req,
                |mut c, r| async move { c.recommission_datanode(r).await },
            )
            .await
    }

    /// Closes an OPEN container (CLOSED at once, its replicas close on their next heartbeat);
    /// returns it after the close. [`ScmClientError::NotFound`] for an unknown id,
    /// [`ScmClientError::FailedPrecondition`] for a container that is not OPEN.
    pub async fn close_container(&self, container_id: u64) -> Result<pb::ContainerInfo> {
        let resp = self
            .inner
            .call(
                pb::CloseContainerRequest { container_id },
                |mut c, r| async move { c.close_container(r).await },
            )
            .await?;
        resp.container.ok_or_else(|| {
            ScmClientError::Rpc(tonic::Status::internal(
                "CloseContainer answered without the container",
            ))
        })
    }

    /// Tells SCM that a block of `container_id` was committed on a majority of its replicas
    /// (which answered `bcsid`) but not on `datanode`'s: SCM closes the container and has that
    /// replica replaced.
    pub async fn report_replica_miss(
        &self,
        container_id: u64,
        datanode: &str,
        bcsid: u64,
    ) -> Result<()> {
        let req = pb::ReportReplicaMissRequest {
            container_id,
            datanode: datanode.to_string(),
            bcsid,
        };
        self.inner
            .call(
                req,
                |mut c, r| async move { c.report_replica_miss(r).await },
            )
            .await?;
        Ok(())
    }

    /// Security on: SCM's unexpired secret keys and the id of the one to sign with.
    pub async fn get_secret_keys(&self) -> Result<pb::GetSecretKeysResponse> {
        self.inner
            .call(pb::GetSecretKeysRequest {}, |mut c, r| async move {
                c.get_secret_keys(r).await
            })
            .await
    }

    pub async fn safe_mode_status(&self) -> Result<pb::SafeModeStatusResponse> {
        self.inner
            .call(pb::SafeModeStatusRequest {}, |mut c, r| async move {
                c.safe_mode_status(r).await
            })
            .await
    }
}

/// Client of `ScmDatanodeService`, used by datanodes. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ScmDatanodeClient {
    inner: ScmDatanodeServiceClient<Channel>,
}

impl ScmDatanodeClient {
    /// A client of the SCM datanode service at `addr` (see
    /// `OzoneConfig::scm_datanode_address`). Does not dial until the first call.
    pub fn connect(addr: &str) -> Result<Self> {
        let inner = ScmDatanodeServiceClient::new(channel(addr, CONNECT_TIMEOUT, CALL_TIMEOUT)?)
            .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES);
        Ok(ScmDatanodeClient { inner })
    }

    /// Registers the datanode with its node and full container report; returns the cluster id.
    pub async fn register(&self, req: pb::RegisterRequest) -> Result<pb::RegisterResponse> {
        Ok(self.inner.clone().register(req).await?.into_inner())
    }

    /// Sends a heartbeat (with a full or an incremental container report); the response
    /// carries commands and `reregister` when SCM does not know the datanode.
    pub async fn heartbeat(&self, req: pb::HeartbeatRequest) -> Result<pb::HeartbeatResponse> {
        Ok(self.inner.clone().heartbeat(req).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_statuses() {
        let e = ScmClientError::from(tonic::Status::unavailable("SCM is in safe mode"));
        assert!(matches!(e, ScmClientError::Unavailable(ref m) if m.contains("safe mode")));
        assert!(e.is_retryable());
        let e = ScmClientError::from(tonic::Status::not_found("container 3"));
        assert!(matches!(e, ScmClientError::NotFound(_)));
        assert!(!e.is_retryable());
        let e = ScmClientError::from(tonic::Status::failed_precondition(
            "Cannot close a CLOSED container.",
        ));
        assert_eq!(e.to_string(), "Cannot close a CLOSED container.");
        assert!(!e.is_retryable());
        assert!(matches!(
            ScmClientError::from(tonic::Status::internal("x")),
            ScmClientError::Rpc(_)
        ));
    }

    #[tokio::test]
    async fn connect_is_lazy_and_checks_the_address() {
        assert!(ScmClient::connect("127.0.0.1:1").is_ok());
        assert!(matches!(
            ScmClient::connect("bad address with spaces"),
            Err(ScmClientError::InvalidAddress { .. })
        ));
        // Nothing listens on port 1: the call fails as unavailable.
        let c = ScmClient::connect("127.0.0.1:1").expect("lazy");
        let e = c.safe_mode_status().await.expect_err("nothing listens");
        assert!(e.is_retryable(), "{e:?}");
    }
}
