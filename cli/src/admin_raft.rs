//! `ozone admin om|scm roles|transfer`: the raft roles of a role's service (the OMs of
//! `ozone.om.service.ids`, the SCMs of `ozone.scm.service.ids`, or the single node of either),
//! over each node's `RaftService`. OM and SCM serve the same service on their client gRPC port,
//! so one implementation answers for both; [`Service`] names the role in messages.

use std::time::Duration;

use clap::Subcommand;
use ozone_common::OzoneConfig;
use ozone_common::config::ConfigError;
use ozone_proto::raft::raft_service_client::RaftServiceClient;
use ozone_proto::raft::{NodeStatusRequest, NodeStatusResponse, TransferLeaderRequest};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error>;

/// How long one node may take to answer a status call.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a leadership transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

/// The raft commands every replicated role has (`ozone admin om ...`, `ozone admin scm ...`).
#[derive(Debug, Subcommand)]
pub enum RaftCmd {
    /// Every node of the service: node id, address, role (LEADER / FOLLOWER), term and applied
    /// index. A node that does not answer shows as UNREACHABLE.
    Roles {
        /// Print JSON: an array of {"id", "address", "role", "term", "applied_index",
        /// "last_log_index", "snapshot_index", "purged_index", "leader"}.
        #[arg(long)]
        json: bool,
    },
    /// Moves leadership to the node with node id `id` (e.g. om2, scm2).
    Transfer {
        /// Node id of the new leader.
        id: String,
    },
}

/// One node of a raft service: its node id and the address of its `RaftService`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub node_id: String,
    pub address: String,
}

/// The nodes of one role's raft service.
#[derive(Clone, Debug)]
pub struct Service {
    /// The role, as messages name it: `OM` or `SCM`.
    pub role: &'static str,
    pub nodes: Vec<Node>,
}

impl Service {
    /// The OMs: [`OzoneConfig::om_nodes`].
    pub fn om(cfg: &OzoneConfig) -> Result<Service, ConfigError> {
        Ok(Service {
            role: "OM",
            nodes: cfg
                .om_nodes()?
                .into_iter()
                .map(|n| Node {
                    node_id: n.node_id,
                    address: n.address,
                })
                .collect(),
        })
    }

    /// The SCMs, at their client addresses: [`OzoneConfig::scm_nodes`].
    pub fn scm(cfg: &OzoneConfig) -> Result<Service, ConfigError> {
        Ok(Service {
            role: "SCM",
            nodes: cfg
                .scm_nodes()?
                .into_iter()
                .map(|n| Node {
                    node_id: n.node_id,
                    address: n.client,
                })
                .collect(),
        })
    }

    /// The node that says it leads, with its status; `None` while no node does (or none
    /// answers).
    pub async fn leader(&self) -> Option<(Node, NodeStatusResponse)> {
        for n in &self.nodes {
            if let Ok(s) = status(self.role, &n.address).await
                && s.role == "LEADER"
            {
                return Some((n.clone(), s));
            }
        }
        None
    }
}

async fn client(
    role: &str,
    address: &str,
    timeout: Duration,
) -> Result<RaftServiceClient<tonic::transport::Channel>, BoxError> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let role = ozone_common::tls::NodeRole::parse(&role.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown role {role}"))?;
    Ok(RaftServiceClient::new(ozone_common::tls::channel(
        endpoint, role,
    )))
}

/// The raft status of the node of `role` (`OM`, `SCM`) at `address`, or why it could not be
/// had.
pub async fn status(role: &str, address: &str) -> Result<NodeStatusResponse, String> {
    let mut c = client(role, address, STATUS_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    c.node_status(NodeStatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.message().to_string())
}

/// Runs `cmd` against `service`; returns what to print.
pub async fn run(service: &Service, cmd: RaftCmd) -> Result<String, BoxError> {
    match cmd {
        RaftCmd::Roles { json } => {
            let mut rows = Vec::new();
            for n in &service.nodes {
                rows.push((n.clone(), status(service.role, &n.address).await));
            }
            Ok(if json {
                let v: Vec<Value> = rows.iter().map(|(n, s)| role_json(n, s)).collect();
                format!("{}\n", serde_json::to_string_pretty(&Value::Array(v))?)
            } else {
                roles_text(&rows)
            })
        }
        RaftCmd::Transfer { id } => transfer(service, &id).await,
    }
}

async fn transfer(service: &Service, id: &str) -> Result<String, BoxError> {
    let role = service.role;
    if !service.nodes.iter().any(|n| n.node_id == id) {
        return Err(format!("{id} is not an {role} of the service").into());
    }
    let (leader, _) = service
        .leader()
        .await
        .ok_or_else(|| format!("no {role} is leader now; try again shortly"))?;
    if leader.node_id == id {
        return Ok(format!("{id} is already the leader\n"));
    }
    let mut c = client(service.role, &leader.address, TRANSFER_TIMEOUT).await?;
    let r = c
        .transfer_leader(TransferLeaderRequest {
            target_node_id: id.to_string(),
        })
        .await
        .map_err(|e| format!("transfer failed: {}", e.message()))?;
    Ok(format!(
        "leadership moved from {} to {}\n",
        leader.node_id,
        r.into_inner().leader_node_id
    ))
}

fn role_json(n: &Node, s: &Result<NodeStatusResponse, String>) -> Value {
    match s {
        Ok(s) => json!({
            "id": n.node_id,
            "address": n.address,
            "role": s.role,
            "term": s.term,
            "applied_index": s.applied_index,
            "last_log_index": s.last_log_index,
            "snapshot_index": s.snapshot_index,
            "purged_index": s.purged_index,
            "leader": s.leader_node_id,
        }),
        Err(e) => json!({
            "id": n.node_id,
            "address": n.address,
            "role": "UNREACHABLE",
            "error": e,
        }),
    }
}

fn roles_text(rows: &[(Node, Result<NodeStatusResponse, String>)]) -> String {
    let mut out = format!(
        "{:<10} {:<24} {:<12} {:>6} {:>14}\n",
        "ID", "ADDRESS", "ROLE", "TERM", "APPLIED INDEX"
    );
    for (n, s) in rows {
        match s {
            Ok(s) => out.push_str(&format!(
                "{:<10} {:<24} {:<12} {:>6} {:>14}\n",
                n.node_id, n.address, s.role, s.term, s.applied_index
            )),
            Err(e) => out.push_str(&format!(
                "{:<10} {:<24} {:<12} {:>6} {:>14}  ({e})\n",
                n.node_id, n.address, "UNREACHABLE", "-", "-"
            )),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ozone_common::config::keys;

    #[test]
    fn roles_text_and_json() {
        let n = Node {
            node_id: "om1".into(),
            address: "127.0.0.1:9862".into(),
        };
        let s = NodeStatusResponse {
            node_id: "om1".into(),
            role: "LEADER".into(),
            term: 3,
            applied_index: 42,
            ..Default::default()
        };
        let text = roles_text(&[(n.clone(), Ok(s.clone())), (n.clone(), Err("down".into()))]);
        assert_eq!(
            text,
            "ID         ADDRESS                  ROLE           TERM  APPLIED INDEX\n\
             om1        127.0.0.1:9862           LEADER            3             42\n\
             om1        127.0.0.1:9862           UNREACHABLE       -              -  (down)\n"
        );
        let v = role_json(&n, &Ok(s));
        assert_eq!(v["applied_index"], 42);
        assert_eq!(v["role"], "LEADER");
    }

    #[test]
    fn services_come_from_the_role_keys() {
        let mut cfg = OzoneConfig::default();
        cfg.set(keys::OZONE_OM_ADDRESS, "127.0.0.1:1")
            .set(keys::OZONE_SCM_CLIENT_ADDRESS, "127.0.0.1:2");
        let om = Service::om(&cfg).unwrap();
        assert_eq!((om.role, om.nodes.len()), ("OM", 1));
        assert_eq!(om.nodes[0].address, "127.0.0.1:1");
        let scm = Service::scm(&cfg).unwrap();
        assert_eq!(scm.role, "SCM");
        assert_eq!(
            scm.nodes,
            vec![Node {
                node_id: "scm1".into(),
                address: "127.0.0.1:2".into()
            }]
        );

        cfg.set(keys::OZONE_SCM_SERVICE_IDS, "scmservice")
            .set(
                keys::OZONE_SCM_NODES_SERVICEID.with([&"scmservice"]),
                "scm1,scm2,scm3",
            )
            .set(keys::OZONE_SCM_DATANODE_ADDRESS, "127.0.0.1:9");
        for i in 1..=3 {
            let id = format!("scm{i}");
            cfg.set(
                keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"scmservice", &id]),
                format!("127.0.0.1:{}", 100 + i),
            )
            .set(
                keys::OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID.with([&"scmservice", &id]),
                format!("127.0.0.1:{}", 200 + i),
            );
        }
        // The client address (where RaftService is served), not the datanode one.
        let scm = Service::scm(&cfg).unwrap();
        let got: Vec<(&str, &str)> = scm
            .nodes
            .iter()
            .map(|n| (n.node_id.as_str(), n.address.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("scm1", "127.0.0.1:101"),
                ("scm2", "127.0.0.1:102"),
                ("scm3", "127.0.0.1:103")
            ]
        );
    }

    /// A port nothing listens on (bound, then released).
    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    fn dead_service(role: &'static str, ids: &[&str]) -> Service {
        Service {
            role,
            nodes: ids
                .iter()
                .map(|id| Node {
                    node_id: id.to_string(),
                    address: closed_port(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn unreachable_nodes_show_as_such_and_transfer_names_the_role() {
        let svc = dead_service("SCM", &["scm1", "scm2", "scm3"]);
        let out = run(&svc, RaftCmd::Roles { json: true }).await.unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        for (row, n) in rows.iter().zip(&svc.nodes) {
            assert_eq!(row["id"], n.node_id.as_str());
            assert_eq!(row["address"], n.address.as_str());
            assert_eq!(row["role"], "UNREACHABLE");
        }
        let text = run(&svc, RaftCmd::Roles { json: false }).await.unwrap();
        assert_eq!(text.matches("UNREACHABLE").count(), 3, "{text}");

        let err = run(&svc, RaftCmd::Transfer { id: "scm9".into() })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "scm9 is not an SCM of the service");
        let err = run(&svc, RaftCmd::Transfer { id: "scm2".into() })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no SCM is leader now; try again shortly");
        let om = dead_service("OM", &["om1"]);
        let err = run(&om, RaftCmd::Transfer { id: "om2".into() })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "om2 is not an OM of the service");
    }
}
