//! Safe mode and pipeline formation.

use std::collections::BTreeSet;

use scm_client::ScmClientError;

use crate::harness::{config, start};
use ozone_common::config::keys;

#[actix_rt::test]
async fn safe_mode_until_three_healthy_then_a_factor_three_pipeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    let s = scm.client.safe_mode_status().await.expect("status");
    assert!(s.in_safe_mode);
    assert_eq!((s.healthy_datanodes, s.required_datanodes), (0, 3));

    let mut dns = scm.register_datanodes(2).await;
    let err = scm
        .client
        .allocate_block(1 << 20, 1, 0, "test", &[])
        .await
        .expect_err("no allocation in safe mode");
    assert!(
        matches!(err, ScmClientError::Unavailable(ref m) if m.contains("safe mode")),
        "{err}"
    );
    assert!(scm.client.safe_mode_status().await.expect("s").in_safe_mode);
    assert!(
        scm.client
            .list_pipelines()
            .await
            .expect("pipelines")
            .iter()
            .all(|p| p.replication == 1)
    );

    let third = scm.datanode(20003);
    let cluster_id = third.register().await.cluster_id;
    assert!(cluster_id.starts_with("CID-"));
    dns.push(third);
    let s = scm.client.safe_mode_status().await.expect("status");
    assert!(!s.in_safe_mode);
    assert_eq!(s.healthy_datanodes, 3);

    let pipelines = scm.client.list_pipelines().await.expect("pipelines");
    let three: Vec<_> = pipelines.iter().filter(|p| p.replication == 3).collect();
    // ozone.scm.datanode.pipeline.limit defaults to 2: two pipelines over the three nodes.
    assert_eq!(three.len(), 2);
    let all: BTreeSet<&str> = dns.iter().map(|d| d.uuid()).collect();
    for p in &three {
        assert_eq!(p.state, "OPEN");
        let members: BTreeSet<&str> = p.nodes.iter().map(|n| n.uuid.as_str()).collect();
        assert_eq!(members, all, "three distinct datanodes");
    }
    assert_eq!(pipelines.iter().filter(|p| p.replication == 1).count(), 3);

    let nodes = scm.client.list_datanodes().await.expect("datanodes");
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert_eq!(n.health, "HEALTHY");
        assert_eq!(n.operational_state, "IN_SERVICE");
        assert_eq!(n.node_report.expect("report").capacity, 100 << 30);
        // One ONE pipeline and two THREE pipelines.
        assert_eq!(n.pipelines.len(), 3);
    }

    let blocks = scm
        .client
        .allocate_block(1 << 20, 2, 0, "test", &[])
        .await
        .expect("allocation out of safe mode");
    assert_eq!(blocks.len(), 2);
    for b in &blocks {
        let p = b.pipeline.as_ref().expect("pipeline");
        assert_eq!((p.replication, p.nodes.len()), (3, 3));
        assert!(
            p.nodes
                .iter()
                .all(|n| n.port > 20000 && n.host == "127.0.0.1")
        );
    }
    scm.stop().await;
}

#[actix_rt::test]
async fn min_datanode_and_replication_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = config(dir.path());
    cfg.set(keys::OZONE_SERVER_DEFAULT_REPLICATION, "1")
        .set(keys::HDDS_SCM_SAFEMODE_MIN_DATANODE, "1");
    let scm = start(&cfg).await;
    let dn = scm.datanode(20001);
    dn.register().await;
    let s = scm.client.safe_mode_status().await.expect("status");
    assert!(!s.in_safe_mode);
    assert_eq!(s.required_datanodes, 1);
    let b = scm
        .client
        .allocate_block(0, 1, 0, "test", &[])
        .await
        .expect("default factor ONE");
    let p = b[0].pipeline.as_ref().expect("pipeline");
    assert_eq!(p.replication, 1);
    assert_eq!(p.nodes[0].uuid, dn.uuid());
    let err = scm
        .client
        .allocate_block(0, 1, 3, "test", &[])
        .await
        .expect_err("no factor THREE pipeline with one datanode");
    assert!(
        matches!(err, ScmClientError::Unavailable(ref m) if m.contains("no healthy pipeline")),
        "{err}"
    );
    scm.stop().await;
}
