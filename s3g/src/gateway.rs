//! [`Gateway`]: the clients and settings every request handler shares.

use datanode_client::DatanodeClients;
use om_client::OmClient;
use ozone_common::Metrics;

use crate::config::S3gConfig;

/// Everything a request handler needs; shared by all workers.
pub struct Gateway {
    pub om: OmClient,
    pub dn: DatanodeClients,
    /// SCM (`ozone.scm.client.address`), asked where a container's replicas are now when none
    /// of the replicas recorded with a key can serve a read.
    pub scm: Option<scm_client::ScmClient>,
    pub config: S3gConfig,
    pub metrics: Metrics,
}
