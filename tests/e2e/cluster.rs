//! `ozone cluster up` itself: its directory layout, every role's `/prom` and status page, the
//! admin views of a healthy cluster, and a clean stop on SIGTERM.

use ozone_common::config::keys;
use ozone_common::probe::get;
use ozone_tests::{Cluster, ClusterOpts, ok};

#[test]
fn cluster_layout_metrics_admin_and_clean_stop() {
    let mut c = Cluster::start(ClusterOpts::default());
    ok(c.aws(&["s3", "mb", "s3://metrics-bucket"]));

    let roles = [
        "scm",
        "om-1",
        "datanode-1",
        "datanode-2",
        "datanode-3",
        "s3g",
    ];
    let pids = c.role_pids();
    for role in roles {
        let dir = c.dir().join(role);
        assert!(
            dir.join("data").is_dir() || role == "s3g",
            "{role} has no data dir"
        );
        assert!(
            dir.join(format!("{role}.log")).is_file(),
            "{role} has no log"
        );
        assert!(
            pids.iter().any(|(r, _)| r == role),
            "{role} has no pid file"
        );
    }

    for (role, key, op) in [
        (
            "scm",
            keys::OZONE_SCM_HTTP_ADDRESS.name(),
            "ozone_scm_requests_total",
        ),
        (
            "om-1",
            keys::OZONE_OM_HTTP_ADDRESS.name(),
            "ozone_om_requests_total",
        ),
        (
            "datanode-1",
            keys::HDDS_DATANODE_HTTP_ADDRESS.name(),
            "ozone_datanode_",
        ),
        (
            "s3g",
            keys::OZONE_S3G_WEBADMIN_HTTP_ADDRESS.name(),
            "ozone_s3g_requests_total{op=\"CreateBucket\"",
        ),
    ] {
        let addr = c.conf_value(role, key);
        let prom = get(&addr, "/prom").unwrap_or_else(|e| panic!("{role} /prom: {e}"));
        let text = prom.text();
        assert_eq!(prom.status, 200, "{role} /prom: {} {text}", prom.head);
        assert!(text.contains(op), "{role} /prom lacks {op}: {text}");
        let page = get(&addr, "/").unwrap_or_else(|e| panic!("{role} status page: {e}"));
        let page = page.text();
        assert!(page.contains("Ozone-RS"), "{role} status page: {page}");
    }

    let nodes: serde_json::Value =
        serde_json::from_str(&ok(c.ozone(&["admin", "datanode", "list", "--json"]))).unwrap();
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    assert!(nodes.iter().all(|n| n["health"] == "HEALTHY"), "{nodes:?}");
    let pipelines: serde_json::Value =
        serde_json::from_str(&ok(c.ozone(&["admin", "pipeline", "list", "--json"]))).unwrap();
    assert!(
        pipelines
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["replication"] == 3 && p["nodes"].as_array().unwrap().len() == 3),
        "{pipelines}"
    );
    let safemode: serde_json::Value =
        serde_json::from_str(&ok(c.ozone(&["admin", "safemode", "status", "--json"]))).unwrap();
    assert_eq!(safemode["in_safe_mode"], false, "{safemode}");
    // Human-readable output works too.
    let text = ok(c.ozone(&["admin", "datanode", "list"]));
    assert!(text.contains("HEALTHY"), "{text}");

    c.stop();
    for (role, pid) in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "{role} (pid {pid}) still running after cluster up stopped"
        );
    }
    assert!(
        c.role_pids().is_empty(),
        "pid files left: {:?}",
        c.role_pids()
    );
}
