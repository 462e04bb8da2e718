//! `ozone admin ...`: cluster administration against SCM's client service
//! (`ozone.scm.client.address`): datanodes, containers, pipelines and safe mode; the raft roles
//! of the OM and SCM services (`ozone admin om|scm roles|transfer`, see [`crate::admin_raft`]);
//! open keys and incomplete multipart uploads (`ozone admin om list-open-keys`,
//! `ozone admin multipart`, see [`crate::admin_leaks`]).
//!
//! Every command prints Ozone-style text, or with `--json` one JSON document whose field
//! names (snake_case) are a stable interface for scripts and tests; see [`run`].

use clap::Subcommand;
use ozone_common::OzoneConfig;
use scm_client::{ScmClient, hdds, pb};
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Datanodes known to SCM.
    Datanode {
        #[command(subcommand)]
        cmd: DatanodeCmd,
    },
    /// Containers known to SCM.
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// Pipelines known to SCM.
    Pipeline {
        #[command(subcommand)]
        cmd: PipelineCmd,
    },
    /// SCM safe mode.
    Safemode {
        #[command(subcommand)]
        cmd: SafemodeCmd,
    },
    /// The OM service: roles of the OMs, leadership transfer, open keys.
    Om {
        #[command(subcommand)]
        cmd: OmCmd,
    },
    /// The SCM service: roles of the SCMs, leadership transfer.
    Scm {
        #[command(subcommand)]
        cmd: crate::admin_raft::RaftCmd,
    },
    /// Reads back every object of a bucket stored in one PUT and checks its bytes against its
    /// MD5 ETag (and each block against OM's checksum record); reports mismatches, exit 1 if any.
    VerifyEtags(crate::verify_etags::VerifyEtagsArgs),
    /// Certificates the cluster's CA (SCM) issued (security on): list, info.
    Cert {
        #[command(subcommand)]
        cmd: crate::admin_cert::CertCmd,
    },
    /// Incomplete multipart uploads of every bucket: list, abort.
    Multipart {
        #[command(subcommand)]
        cmd: crate::admin_leaks::MultipartCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum OmCmd {
    #[command(flatten)]
    Raft(crate::admin_raft::RaftCmd),
    /// Open keys: writes (and multipart parts) begun and never committed, oldest first. OM
    /// removes those older than ozone.om.open.key.expire.threshold and frees their blocks.
    ListOpenKeys {
        /// Only open keys created at least this long ago (e.g. 1d, 2h, 30m).
        #[arg(long, value_parser = crate::admin_leaks::duration_arg)]
        older_than: Option<std::time::Duration>,
        /// Print at most this many.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Print JSON: an array of {"volume", "bucket", "key", "client_id",
        /// "creation_time_ms", "owner", "blocks", "upload_id", "part_number"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatanodeCmd {
    /// Lists datanodes with their health, pipelines and space.
    List {
        /// Only datanodes in this health state (HEALTHY, STALE or DEAD).
        #[arg(long, value_name = "STATE")]
        node_state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Starts decommissioning datanodes: their replicas are copied to other datanodes, then
    /// they turn DECOMMISSIONED (watch `datanode list`).
    Decommission {
        /// Datanodes by uuid, host:port or host.
        #[arg(required = true)]
        datanodes: Vec<String>,
    },
    /// Puts decommissioning or decommissioned datanodes back in service.
    Recommission {
        /// Datanodes by uuid, host:port or host.
        #[arg(required = true)]
        datanodes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    /// Lists containers in id order.
    List {
        /// List containers with ids greater than this.
        #[arg(short, long, default_value_t = 0)]
        start: u64,
        /// Most containers to list.
        #[arg(short, long, default_value_t = 20)]
        count: u32,
        /// List every container (ignores --count).
        #[arg(short, long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows one container and its replicas.
    Info {
        /// Container id.
        id: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Closes an OPEN container: it takes no more blocks and its replicas close on their next
    /// heartbeat. Fails for an unknown id or a container that is not OPEN.
    Close {
        /// Container id.
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Lists pipelines with their datanodes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SafemodeCmd {
    /// Whether SCM is in safe mode.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an admin command against the SCM leader among `cfg.scm_client_addresses()` and prints
/// the result.
///
/// JSON documents (`--json`):
/// - `datanode list`: an array of
///   `{"datanode": {"uuid", "host", "port", "http_port"}, "health", "operational_state",
///   "pipelines": [pipeline id], "capacity", "used", "remaining", "container_count",
///   "millis_since_heartbeat"}`; `pipelines` lists the OPEN pipelines the datanode is in.
/// - `container list`: an array of container objects as `container info` prints them.
/// - `container info`: `{"id", "state", "pipeline_id", "replication", "allocated_bytes",
///   "used_bytes", "block_count", "bcsid", "replicas": [{"datanode": {"uuid", "host", "port",
///   "http_port"}, "state", "used_bytes", "block_count", "bcsid", "lagging"}]}`; `replication`
///   is 1 or 3, `used_bytes`/`block_count` are the largest any replica reported, `bcsid` the
///   highest block commit sequence id; a `lagging` replica misses committed blocks.
/// - `pipeline list`: an array of `{"id", "replication", "state", "nodes": [{"uuid", "host",
///   "port", "http_port"}]}`.
/// - `safemode status`: `{"in_safe_mode", "healthy_datanodes", "required_datanodes"}`.
///
/// - `datanode decommission|recommission`: one line per datanode with its new operational
///   state (`IN_SERVICE|DECOMMISSIONING|DECOMMISSIONED`).
/// - `container close ID`: `Container ID is CLOSED` (an error, as in Ozone, when the container
///   does not exist or is not OPEN: `Cannot close a CLOSED container.`).
///
/// States are upper-case strings: health `HEALTHY|STALE|DEAD`, container
/// `OPEN|CLOSED|DELETING|DELETED`,
/// replica `OPEN|CLOSING|QUASI_CLOSED|CLOSED|UNHEALTHY`, pipeline `OPEN|CLOSED`.
pub async fn run(cfg: &OzoneConfig, cmd: AdminCmd) -> Result<(), Box<dyn std::error::Error>> {
    let cmd = match cmd {
        AdminCmd::Om {
            cmd: OmCmd::Raft(cmd),
        } => {
            let service = crate::admin_raft::Service::om(cfg)?;
            print!("{}", crate::admin_raft::run(&service, cmd).await?);
            return Ok(());
        }
        AdminCmd::Om {
            cmd:
                OmCmd::ListOpenKeys {
                    older_than,
                    limit,
                    json,
                },
        } => {
            let out = crate::admin_leaks::list_open_keys(cfg, older_than, limit, json).await?;
            print!("{out}");
            return Ok(());
        }
        AdminCmd::Scm { cmd } => {
            let service = crate::admin_raft::Service::scm(cfg)?;
            print!("{}", crate::admin_raft::run(&service, cmd).await?);
            return Ok(());
        }
        AdminCmd::Multipart { cmd } => {
            print!("{}", crate::admin_leaks::run(cfg, cmd).await?);
            return Ok(());
        }
        AdminCmd::VerifyEtags(args) => return crate::verify_etags::run(cfg, args).await,
        AdminCmd::Cert { cmd } => {
            print!("{}", crate::admin_cert::run(cfg, cmd).await?);
            return Ok(());
        }
        other => other,
    };
    let client = ScmClient::connect_service(&cfg.scm_client_addresses())?;
    print!("{}", output(&client, cmd).await?);
    Ok(())
}

/// What [`run`] prints for `cmd`.
pub async fn output(
    client: &ScmClient,
    cmd: AdminCmd,
) -> Result<String, Box<dyn std::error::Error>> {
    Ok(match cmd {
        AdminCmd::Datanode {
            cmd: DatanodeCmd::List { node_state, json },
        } => {
            let mut nodes = client.list_datanodes().await?;
            if let Some(state) = node_state {
                let state = state.to_ascii_uppercase();
                if !["HEALTHY", "STALE", "DEAD"].contains(&state.as_str()) {
                    return Err(
                        format!("unknown node state {state} (use HEALTHY, STALE or DEAD)").into(),
                    );
                }
                nodes.retain(|n| n.health == state);
            }
            if json {
                to_json(&Value::Array(nodes.iter().map(datanode_json).collect()))?
            } else {
                let pipelines = client.list_pipelines().await?;
                datanodes_text(&nodes, &pipelines)
            }
        }
        AdminCmd::Datanode {
            cmd: DatanodeCmd::Decommission { datanodes },
        } => {
            let mut out = String::new();
            for d in datanodes {
                out.push_str(&operational_state_line(&client.decommission(&d).await?));
            }
            out
        }
        AdminCmd::Datanode {
            cmd: DatanodeCmd::Recommission { datanodes },
        } => {
            let mut out = String::new();
            for d in datanodes {
                out.push_str(&operational_state_line(&client.recommission(&d).await?));
            }
            out
        }
        AdminCmd::Container {
            cmd:
                ContainerCmd::List {
                    start,
                    count,
                    all,
                    json,
                },
        } => {
            let containers = client
                .list_containers(start, if all { 0 } else { count.max(1) })
                .await?;
            if json {
                to_json(&Value::Array(
                    containers.iter().map(container_json).collect(),
                ))?
            } else {
                containers_text(&containers)
            }
        }
        AdminCmd::Container {
            cmd: ContainerCmd::Info { id, json },
        } => {
            let c = client.get_container(id).await?;
            if json {
                to_json(&container_json(&c))?
            } else {
                container_text(&c)
            }
        }
        AdminCmd::Container {
            cmd: ContainerCmd::Close { id },
        } => {
            let c = client.close_container(id).await?;
            format!("Container {} is {}\n", c.id, c.state)
        }
        AdminCmd::Pipeline {
            cmd: PipelineCmd::List { json },
        } => {
            let pipelines = client.list_pipelines().await?;
            if json {
                to_json(&Value::Array(pipelines.iter().map(pipeline_json).collect()))?
            } else {
                pipelines_text(&pipelines)
            }
        }
        AdminCmd::Om { .. }
        | AdminCmd::Scm { .. }
        | AdminCmd::Multipart { .. }
        | AdminCmd::Cert { .. } => {
            return Err(
                "`admin om`, `admin scm` and `admin multipart` talk to raft services or the OMs: use run()"
                    .into(),
            );
        }
        AdminCmd::VerifyEtags(_) => {
            return Err("`admin verify-etags` reads objects, not SCM: use run()".into());
        }
        AdminCmd::Safemode {
            cmd: SafemodeCmd::Status { json },
        } => {
            let s = client.safe_mode_status().await?;
            if json {
                to_json(&safemode_json(&s))?
            } else {
                safemode_text(&s)
            }
        }
    })
}

fn to_json(v: &Value) -> Result<String, serde_json::Error> {
    Ok(format!("{}\n", serde_json::to_string_pretty(v)?))
}

fn node_json(d: Option<&hdds::DatanodeDetails>) -> Value {
    let d = d.cloned().unwrap_or_default();
    json!({"uuid": d.uuid, "host": d.host, "port": d.port, "http_port": d.http_port})
}

fn datanode_json(n: &pb::DatanodeInfo) -> Value {
    let r = n.node_report.unwrap_or_default();
    json!({
        "datanode": node_json(n.datanode.as_ref()),
        "health": n.health,
        "operational_state": n.operational_state,
        "pipelines": n.pipelines,
        "capacity": r.capacity,
        "used": r.used,
        "remaining": r.remaining,
        "container_count": n.container_count,
        "millis_since_heartbeat": n.millis_since_heartbeat,
    })
}

fn container_json(c: &pb::ContainerInfo) -> Value {
    json!({
        "id": c.id,
        "state": c.state,
        "pipeline_id": c.pipeline_id,
        "replication": c.replication,
        "allocated_bytes": c.allocated_bytes,
        "used_bytes": c.used_bytes,
        "block_count": c.block_count,
        "bcsid": c.bcsid,
        "replicas": c.replicas.iter().map(|r| json!({
            "datanode": node_json(r.datanode.as_ref()),
            "state": r.state,
            "used_bytes": r.used_bytes,
            "block_count": r.block_count,
            "bcsid": r.bcsid,
            "lagging": r.lagging,
        })).collect::<Vec<_>>(),
    })
}

fn pipeline_json(p: &hdds::Pipeline) -> Value {
    json!({
        "id": p.id,
        "replication": p.replication,
        "state": p.state,
        "nodes": p.nodes.iter().map(|n| node_json(Some(n))).collect::<Vec<_>>(),
    })
}

fn safemode_json(s: &pb::SafeModeStatusResponse) -> Value {
    json!({
        "in_safe_mode": s.in_safe_mode,
        "healthy_datanodes": s.healthy_datanodes,
        "required_datanodes": s.required_datanodes,
    })
}

/// `ONE` / `THREE` as Ozone names replication factors.
fn factor(replication: u32) -> String {
    match replication {
        1 => "ONE".to_string(),
        3 => "THREE".to_string(),
        n => n.to_string(),
    }
}

/// Bytes in binary units, as Ozone prints them (`1.5 GB`).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn address(d: Option<&hdds::DatanodeDetails>) -> String {
    d.map(|d| format!("{}:{}", d.host, d.port))
        .unwrap_or_else(|| "?".to_string())
}

/// `Datanode <uuid> (<host:port>): <operational state>` after a (re)commission.
fn operational_state_line(r: &pb::DatanodeAdminResponse) -> String {
    format!(
        "Datanode {} ({}): {}\n",
        r.datanode.as_ref().map(|d| d.uuid.as_str()).unwrap_or("?"),
        address(r.datanode.as_ref()),
        r.operational_state
    )
}

const RULE: &str = "--------------------------------------------------";

fn datanodes_text(nodes: &[pb::DatanodeInfo], pipelines: &[hdds::Pipeline]) -> String {
    let mut out = String::new();
    for n in nodes {
        let uuid = n.datanode.as_ref().map(|d| d.uuid.as_str()).unwrap_or("?");
        let r = n.node_report.unwrap_or_default();
        out.push_str(&format!(
            "Datanode: {uuid} ({})\n",
            address(n.datanode.as_ref())
        ));
        out.push_str(&format!("Operational State: {}\n", n.operational_state));
        out.push_str(&format!("Health State: {}\n", n.health));
        out.push_str(&format!(
            "Last heartbeat: {:.1}s ago\n",
            n.millis_since_heartbeat as f64 / 1000.0
        ));
        out.push_str(&format!("Containers: {}\n", n.container_count));
        out.push_str(&format!(
            "Capacity: {}, Used: {}, Remaining: {}\n",
            human_bytes(r.capacity),
            human_bytes(r.used),
            human_bytes(r.remaining)
        ));
        out.push_str("Related pipelines:\n");
        if n.pipelines.is_empty() {
            out.push_str("  No related pipelines.\n");
        }
        for id in &n.pipelines {
            match pipelines.iter().find(|p| &p.id == id) {
                Some(p) => out.push_str(&format!("  {id}/{}/{}\n", factor(p.replication), p.state)),
                None => out.push_str(&format!("  {id}\n")),
            }
        }
        out.push_str(RULE);
        out.push('\n');
    }
    if nodes.is_empty() {
        out.push_str("No datanodes.\n");
    }
    out
}

fn containers_text(containers: &[pb::ContainerInfo]) -> String {
    let mut out = format!(
        "{:>10}  {:<7} {:<6} {:<36}  {:>10} {:>10} {:>7} {:>8}\n",
        "ID", "STATE", "REPL", "PIPELINE", "ALLOCATED", "USED", "BLOCKS", "REPLICAS"
    );
    for c in containers {
        out.push_str(&format!(
            "{:>10}  {:<7} {:<6} {:<36}  {:>10} {:>10} {:>7} {:>8}\n",
            c.id,
            c.state,
            factor(c.replication),
            c.pipeline_id,
            human_bytes(c.allocated_bytes),
            human_bytes(c.used_bytes),
            c.block_count,
            c.replicas.len()
        ));
    }
    out
}

fn container_text(c: &pb::ContainerInfo) -> String {
    let mut out = format!("Container id: {}\n", c.id);
    out.push_str(&format!("Container State: {}\n", c.state));
    out.push_str(&format!("Pipeline id: {}\n", c.pipeline_id));
    out.push_str(&format!("Replication: {}\n", factor(c.replication)));
    out.push_str(&format!(
        "Allocated: {} ({} bytes)\n",
        human_bytes(c.allocated_bytes),
        c.allocated_bytes
    ));
    out.push_str(&format!(
        "Used: {} ({} bytes), Blocks: {}, BCSID: {}\n",
        human_bytes(c.used_bytes),
        c.used_bytes,
        c.block_count,
        c.bcsid
    ));
    out.push_str("Replicas:\n");
    if c.replicas.is_empty() {
        out.push_str("  No replicas reported.\n");
    }
    for r in &c.replicas {
        let uuid = r.datanode.as_ref().map(|d| d.uuid.as_str()).unwrap_or("?");
        out.push_str(&format!(
            "  Datanode: {uuid} ({}); State: {}; Used: {}; Blocks: {}; BCSID: {}{}\n",
            address(r.datanode.as_ref()),
            r.state,
            human_bytes(r.used_bytes),
            r.block_count,
            r.bcsid,
            if r.lagging { " (lagging)" } else { "" }
        ));
    }
    out
}

fn pipelines_text(pipelines: &[hdds::Pipeline]) -> String {
    let mut out = String::new();
    for p in pipelines {
        let nodes: Vec<String> = p
            .nodes
            .iter()
            .map(|n| format!("{}({}:{})", n.uuid, n.host, n.port))
            .collect();
        out.push_str(&format!(
            "Pipeline{{ Id: {}, Nodes: [{}], ReplicationConfig: {}, State: {} }}\n",
            p.id,
            nodes.join(", "),
            factor(p.replication),
            p.state
        ));
    }
    if pipelines.is_empty() {
        out.push_str("No pipelines.\n");
    }
    out
}

fn safemode_text(s: &pb::SafeModeStatusResponse) -> String {
    if s.in_safe_mode {
        format!(
            "SCM is in safe mode. ({} of {} required healthy datanodes)\n",
            s.healthy_datanodes, s.required_datanodes
        )
    } else {
        "SCM is out of safe mode.\n".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AdminCmd,
    }

    fn dn(uuid: &str, port: u32) -> hdds::DatanodeDetails {
        hdds::DatanodeDetails {
            uuid: uuid.into(),
            host: "127.0.0.1".into(),
            port,
            http_port: port + 1,
        }
    }

    #[test]
    fn parses_nested_subcommands() {
        let cli = Cli::try_parse_from(["admin", "container", "info", "3", "--json"])
            .expect("container info");
        assert!(matches!(
            cli.cmd,
            AdminCmd::Container {
                cmd: ContainerCmd::Info { id: 3, json: true }
            }
        ));
        let cli = Cli::try_parse_from(["admin", "container", "list"]).expect("container list");
        assert!(matches!(
            cli.cmd,
            AdminCmd::Container {
                cmd: ContainerCmd::List {
                    start: 0,
                    count: 20,
                    all: false,
                    json: false
                }
            }
        ));
        for args in [
            &["admin", "datanode", "list", "--json"][..],
            &["admin", "pipeline", "list"],
            &["admin", "safemode", "status", "--json"],
            &["admin", "om", "roles", "--json"],
            &["admin", "om", "transfer", "om2"],
            &["admin", "om", "list-open-keys", "--older-than", "1d"],
            &["admin", "scm", "roles"],
            &["admin", "scm", "roles", "--json"],
            &["admin", "scm", "transfer", "scm2"],
        ] {
            Cli::try_parse_from(args).expect("parses");
        }
        assert!(Cli::try_parse_from(["admin", "container", "info"]).is_err());
        // OM and SCM share the raft commands.
        use crate::admin_raft::RaftCmd;
        let cli = Cli::try_parse_from(["admin", "om", "roles", "--json"]).expect("om roles");
        assert!(matches!(
            cli.cmd,
            AdminCmd::Om {
                cmd: OmCmd::Raft(RaftCmd::Roles { json: true })
            }
        ));
        let cli = Cli::try_parse_from(["admin", "scm", "transfer", "scm3"]).expect("scm transfer");
        assert!(matches!(
            cli.cmd,
            AdminCmd::Scm {
                cmd: RaftCmd::Transfer { id }
            } if id == "scm3"
        ));
        assert!(Cli::try_parse_from(["admin", "scm", "list-open-keys"]).is_err());
        let cli = Cli::try_parse_from(["admin", "container", "close", "7"]).expect("close");
        assert!(matches!(
            cli.cmd,
            AdminCmd::Container {
                cmd: ContainerCmd::Close { id: 7 }
            }
        ));
        assert!(Cli::try_parse_from(["admin", "container", "close"]).is_err());
    }

    #[test]
    fn container_json_has_stable_fields() {
        let c = pb::ContainerInfo {
            id: 3,
            state: "OPEN".into(),
            pipeline_id: "p1".into(),
            replication: 3,
            allocated_bytes: 2048,
            used_bytes: 1000,
            block_count: 2,
            replicas: vec![pb::ContainerReplica {
                datanode: Some(dn("u1", 9859)),
                state: "OPEN".into(),
                used_bytes: 1000,
                block_count: 2,
                bcsid: 2,
                lagging: false,
            }],
            bcsid: 2,
        };
        let v: Value =
            serde_json::from_str(&to_json(&container_json(&c)).expect("json")).expect("parse");
        assert_eq!(v["id"], 3);
        assert_eq!(v["state"], "OPEN");
        assert_eq!(v["replication"], 3);
        assert_eq!(v["replicas"][0]["datanode"]["uuid"], "u1");
        assert_eq!(v["replicas"][0]["datanode"]["host"], "127.0.0.1");
        assert_eq!(v["replicas"][0]["datanode"]["port"], 9859);
        assert_eq!(v["replicas"][0]["state"], "OPEN");
        let text = container_text(&c);
        assert!(text.contains("Container id: 3"));
        assert!(text.contains("Datanode: u1 (127.0.0.1:9859); State: OPEN"));
    }

    #[test]
    fn datanode_pipeline_and_safemode_output() {
        let p = hdds::Pipeline {
            id: "p1".into(),
            nodes: vec![dn("u1", 1), dn("u2", 2), dn("u3", 3)],
            replication: 3,
            state: "OPEN".into(),
        };
        let n = pb::DatanodeInfo {
            datanode: Some(dn("u1", 1)),
            health: "HEALTHY".into(),
            operational_state: "IN_SERVICE".into(),
            node_report: Some(pb::NodeReport {
                capacity: 3 << 30,
                used: 1 << 30,
                remaining: 2 << 30,
            }),
            millis_since_heartbeat: 1500,
            container_count: 4,
            pipelines: vec!["p1".into()],
        };
        let v = datanode_json(&n);
        assert_eq!(v["datanode"]["uuid"], "u1");
        assert_eq!(v["health"], "HEALTHY");
        assert_eq!(v["pipelines"][0], "p1");
        assert_eq!(v["capacity"], 3u64 << 30);
        let text = datanodes_text(std::slice::from_ref(&n), std::slice::from_ref(&p));
        assert!(text.contains("Datanode: u1 (127.0.0.1:1)"));
        assert!(text.contains("Health State: HEALTHY"));
        assert!(text.contains("p1/THREE/OPEN"));
        assert!(text.contains("Capacity: 3.0 GB, Used: 1.0 GB"));
        let v = pipeline_json(&p);
        assert_eq!(v["nodes"][2]["port"], 3);
        assert!(pipelines_text(&[p]).contains("ReplicationConfig: THREE, State: OPEN"));
        let s = pb::SafeModeStatusResponse {
            in_safe_mode: true,
            healthy_datanodes: 1,
            required_datanodes: 3,
        };
        assert_eq!(safemode_json(&s)["in_safe_mode"], true);
        assert!(safemode_text(&s).contains("in safe mode"));
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
    }
}
