//! `ozone admin om roles|transfer`: the OM service's raft roles, over each OM's
//! `RaftService` (addresses from `ozone.om.service.ids` / `ozone.om.nodes.<id>` /
//! `ozone.om.address.<id>.<node>`, or the single `ozone.om.address`).

use std::time::Duration;

use clap::Subcommand;
use ozone_common::OzoneConfig;
use ozone_common::config::OmNodeAddress;
use ozone_proto::raft::raft_service_client::RaftServiceClient;
use ozone_proto::raft::{NodeStatusRequest, NodeStatusResponse, TransferLeaderRequest};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error>;

/// How long one OM may take to answer a status call.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a leadership transfer may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum OmCmd {
    /// Every OM of the service: node id, address, role (LEADER / FOLLOWER), term and applied
    /// index. An OM that does not answer shows as UNREACHABLE.
    Roles {
        /// Print JSON: an array of {"id", "address", "role", "term", "applied_index",
        /// "last_log_index", "snapshot_index", "purged_index", "leader"}.
        #[arg(long)]
        json: bool,
    },
    /// Moves leadership to the OM with node id `id` (e.g. om2).
    Transfer {
        /// Node id of the new leader.
        id: String,
    },
    /// Open keys: writes (and multipart parts) begun and never committed, oldest first. OM
    /// removes those older than ozone.om.open.key.expire.threshold and frees their blocks.
    ListOpenKeys {
        /// Only open keys created at least this long ago (e.g. 1d, 2h, 30m).
        #[arg(long, value_parser = crate::admin_leaks::duration_arg)]
        older_than: Option<Duration>,
        /// Print at most this many.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Print JSON: an array of {"volume", "bucket", "key", "client_id",
        /// "creation_time_ms", "owner", "blocks", "upload_id", "part_number"}.
        #[arg(long)]
        json: bool,
    },
}

async fn client(
    address: &str,
    timeout: Duration,
) -> Result<RaftServiceClient<tonic::transport::Channel>, BoxError> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await?;
    Ok(RaftServiceClient::new(channel))
}

/// The status of one OM, or why it could not be had.
async fn status(node: &OmNodeAddress) -> Result<NodeStatusResponse, String> {
    let mut c = client(&node.address, STATUS_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    c.node_status(NodeStatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.message().to_string())
}

pub async fn run(cfg: &OzoneConfig, cmd: OmCmd) -> Result<String, BoxError> {
    let nodes = cfg.om_nodes()?;
    match cmd {
        OmCmd::Roles { json } => {
            let mut rows = Vec::new();
            for n in &nodes {
                rows.push((n.clone(), status(n).await));
            }
            Ok(if json {
                let v: Vec<Value> = rows.iter().map(|(n, s)| role_json(n, s)).collect();
                format!("{}\n", serde_json::to_string_pretty(&Value::Array(v))?)
            } else {
                roles_text(&rows)
            })
        }
        OmCmd::ListOpenKeys {
            older_than,
            limit,
            json,
        } => crate::admin_leaks::list_open_keys(cfg, older_than, limit, json).await,
        OmCmd::Transfer { id } => {
            if !nodes.iter().any(|n| n.node_id == id) {
                return Err(format!("{id} is not an OM of the service").into());
            }
            let mut leader = None;
            for n in &nodes {
                if let Ok(s) = status(n).await
                    && s.role == "LEADER"
                {
                    leader = Some(n.clone());
                }
            }
            let leader = leader.ok_or("no OM is leader now; try again shortly")?;
            if leader.node_id == id {
                return Ok(format!("{id} is already the leader\n"));
            }
            let mut c = client(&leader.address, TRANSFER_TIMEOUT).await?;
            let r = c
                .transfer_leader(TransferLeaderRequest {
                    target_node_id: id.clone(),
                })
                .await
                .map_err(|e| format!("transfer failed: {}", e.message()))?;
            Ok(format!(
                "leadership moved from {} to {}\n",
                leader.node_id,
                r.into_inner().leader_node_id
            ))
        }
    }
}

fn role_json(n: &OmNodeAddress, s: &Result<NodeStatusResponse, String>) -> Value {
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

fn roles_text(rows: &[(OmNodeAddress, Result<NodeStatusResponse, String>)]) -> String {
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
mod tests {
    use super::*;

    #[test]
    fn roles_text_and_json() {
        let n = OmNodeAddress {
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
        assert!(text.contains("LEADER"), "{text}");
        assert!(text.contains("UNREACHABLE"), "{text}");
        let v = role_json(&n, &Ok(s));
        assert_eq!(v["applied_index"], 42);
        assert_eq!(v["role"], "LEADER");
    }
}
