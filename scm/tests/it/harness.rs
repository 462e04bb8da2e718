//! Starting SCM in-process and fake datanodes that speak the datanode protocol.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_scm::ScmServer;
use scm_client::{ScmClient, ScmDatanodeClient, hdds, pb};

/// A configuration for an SCM on loopback port 0 with its database in `dir`.
pub fn config(dir: &Path) -> OzoneConfig {
    let mut cfg = OzoneConfig::default();
    cfg.set(keys::OZONE_SCM_DB_DIRS, dir.to_string_lossy().to_string())
        .set(keys::OZONE_SCM_CLIENT_ADDRESS, "127.0.0.1:0")
        .set(keys::OZONE_SCM_DATANODE_ADDRESS, "127.0.0.1:0")
        .set(keys::OZONE_SCM_HTTP_ADDRESS, "127.0.0.1:0");
    cfg
}

/// A running SCM and an admin client of it.
pub struct TestScm {
    pub server: ScmServer,
    pub client: ScmClient,
}

pub async fn start(cfg: &OzoneConfig) -> TestScm {
    let server = ozone_scm::start(cfg).await.expect("SCM starts");
    let client = ScmClient::connect(&server.client_addr.to_string()).expect("client");
    TestScm { server, client }
}

impl TestScm {
    /// A fake datanode (not yet registered) advertising `127.0.0.1:<port>`.
    pub fn datanode(&self, port: u32) -> FakeDatanode {
        FakeDatanode::new(self.server.datanode_addr, port)
    }

    pub async fn stop(self) {
        self.server.stop().await.expect("SCM stops cleanly");
    }

    /// Registers `n` fake datanodes on ports 20001.. and returns them.
    pub async fn register_datanodes(&self, n: u32) -> Vec<FakeDatanode> {
        let mut out = Vec::new();
        for i in 0..n {
            let dn = self.datanode(20001 + i);
            dn.register().await;
            out.push(dn);
        }
        out
    }
}

/// A datanode as far as SCM can tell: it registers, heartbeats and reports containers.
#[derive(Clone)]
pub struct FakeDatanode {
    pub details: hdds::DatanodeDetails,
    pub client: ScmDatanodeClient,
    /// The full container report sent with each register and heartbeat.
    pub containers: Vec<pb::ContainerReplicaReport>,
}

impl FakeDatanode {
    pub fn new(scm: SocketAddr, port: u32) -> Self {
        FakeDatanode {
            details: hdds::DatanodeDetails {
                uuid: uuid::Uuid::new_v4().to_string(),
                host: "127.0.0.1".into(),
                port,
                http_port: port + 1000,
            },
            client: ScmDatanodeClient::connect(&scm.to_string()).expect("client"),
            containers: Vec::new(),
        }
    }

    /// The same datanode (uuid, address, report) talking to an SCM at a new address.
    pub fn reconnect(&self, scm: SocketAddr) -> Self {
        FakeDatanode {
            client: ScmDatanodeClient::connect(&scm.to_string()).expect("client"),
            ..self.clone()
        }
    }

    pub fn uuid(&self) -> &str {
        &self.details.uuid
    }

    fn node_report() -> pb::NodeReport {
        pb::NodeReport {
            capacity: 100 << 30,
            used: 1 << 30,
            remaining: 99 << 30,
        }
    }

    pub async fn register(&self) -> pb::RegisterResponse {
        self.client
            .register(pb::RegisterRequest {
                datanode: Some(self.details.clone()),
                node_report: Some(Self::node_report()),
                containers: self.containers.clone(),
            })
            .await
            .expect("register")
    }

    pub async fn heartbeat(&self) -> pb::HeartbeatResponse {
        self.client
            .heartbeat(pb::HeartbeatRequest {
                datanode: Some(self.details.clone()),
                node_report: Some(Self::node_report()),
                containers: self.containers.clone(),
                deleted_block_txs: vec![],
                ..Default::default()
            })
            .await
            .expect("heartbeat")
    }

    /// Heartbeats with an incremental container report: `changed` replicas and `removed`
    /// containers (the stored full report is left as it is).
    pub async fn heartbeat_incremental(
        &self,
        changed: Vec<pb::ContainerReplicaReport>,
        removed: Vec<u64>,
    ) -> pb::HeartbeatResponse {
        self.client
            .heartbeat(pb::HeartbeatRequest {
                datanode: Some(self.details.clone()),
                node_report: Some(Self::node_report()),
                containers: changed,
                incremental_container_report: true,
                removed_containers: removed,
                ..Default::default()
            })
            .await
            .expect("heartbeat")
    }

    /// Heartbeats every `every` in a background task until the handle is aborted.
    pub fn heartbeat_loop(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let dn = self.clone();
        tokio::spawn(async move {
            loop {
                dn.heartbeat().await;
                tokio::time::sleep(every).await;
            }
        })
    }
}

/// Close commands in a heartbeat response.
pub fn closed_containers(hb: &pb::HeartbeatResponse) -> Vec<u64> {
    hb.commands
        .iter()
        .filter_map(|c| match &c.command {
            Some(pb::scm_command::Command::CloseContainer(cc)) => Some(cc.container_id),
            _ => None,
        })
        .collect()
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
