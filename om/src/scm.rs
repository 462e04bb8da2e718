//! OM's use of SCM: block allocation over `ScmClientService.AllocateBlock`, with a timeout.
//! Any failure to get blocks (SCM down, slow, in safe mode, out of space) is
//! [`OmError::ScmUnavailable`], which clients see as SCM_UNAVAILABLE.

use std::time::Duration;

use ozone_proto::scm::scm_client_service_client::ScmClientServiceClient;
use ozone_proto::scm::{AllocateBlockRequest, BlockGroup, DeleteBlocksRequest};
use tonic::transport::{Channel, Endpoint};

use crate::error::OmError;
use crate::model::Location;

/// A lazily connected SCM client.
#[derive(Clone)]
pub struct ScmBlocks {
    client: ScmClientServiceClient<Channel>,
    address: String,
    timeout: Duration,
}

impl ScmBlocks {
    /// A client of SCM at `address` (`host:port` or a URL). Connects on first use; must be
    /// called inside a tokio runtime.
    pub fn new(
        address: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, OmError> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(url)?
            .connect_timeout(connect_timeout)
            .timeout(timeout);
        Ok(ScmBlocks {
            client: ScmClientServiceClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES),
            address: address.to_string(),
            timeout,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Hands blocks to delete, as (container id, local ids), to SCM's deleted-block log;
    /// returns once SCM holds them durably.
    pub async fn delete_blocks(&self, groups: Vec<(u64, Vec<u64>)>) -> Result<u32, OmError> {
        let req = DeleteBlocksRequest {
            groups: groups
                .into_iter()
                .map(|(container_id, local_ids)| BlockGroup {
                    container_id,
                    local_ids,
                })
                .collect(),
        };
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.delete_blocks(req)).await {
            Err(_) => Err(OmError::ScmUnavailable(format!(
                "SCM at {} did not answer within {:?}",
                self.address, self.timeout
            ))),
            Ok(Err(status)) => Err(OmError::ScmUnavailable(format!(
                "SCM at {} refused deleted blocks: {:?}: {}",
                self.address,
                status.code(),
                status.message()
            ))),
            Ok(Ok(r)) => Ok(r.into_inner().transactions),
        }
    }

    /// Allocates `count` blocks on pipelines of `replication`, each expected to receive
    /// `block_bytes` (see [`crate::config::OmConfig::declared_block_bytes`]).
    pub async fn allocate(
        &self,
        count: u32,
        block_bytes: u64,
        replication: u32,
        owner: &str,
        exclude_datanodes: Vec<String>,
    ) -> Result<Vec<Location>, OmError> {
        let req = AllocateBlockRequest {
            size: block_bytes,
            num_blocks: count,
            replication,
            owner: owner.to_string(),
            exclude_datanodes,
        };
        let mut client = self.client.clone();
        let call = client.allocate_block(req);
        let resp = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(OmError::ScmUnavailable(format!(
                    "SCM at {} did not answer within {:?}",
                    self.address, self.timeout
                )));
            }
            Ok(Err(status)) => {
                return Err(OmError::ScmUnavailable(format!(
                    "SCM at {} refused to allocate blocks: {:?}: {}",
                    self.address,
                    status.code(),
                    status.message()
                )));
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        if resp.blocks.is_empty() {
            return Err(OmError::BadScmResponse(format!(
                "SCM allocated no blocks (asked for {count})"
            )));
        }
        resp.blocks.into_iter().map(Location::try_from).collect()
    }
}
