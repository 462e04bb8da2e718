//! Container reports become replicas; metrics and the status page.

use scm_client::pb;

use crate::harness::{config, eventually, start};

#[actix_rt::test]
async fn get_container_shows_the_reported_replicas() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    let mut dns = scm.register_datanodes(3).await;
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect("allocate");
    let cid = b[0].block_id.expect("id").container_id;
    assert!(
        scm.client
            .get_container(cid)
            .await
            .expect("c")
            .replicas
            .is_empty()
    );

    for (i, dn) in dns.iter_mut().enumerate() {
        let i = i as u64;
        dn.containers = vec![pb::ContainerReplicaReport {
            container_id: cid,
            state: "OPEN".into(),
            used_bytes: 1000 * (i + 1),
            block_count: i + 1,
            bcsid: i + 1,
        }];
        dn.heartbeat().await;
    }
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!(c.replicas.len(), 3);
    assert_eq!((c.used_bytes, c.block_count), (3000, 3));
    for dn in &dns {
        let r = c
            .replicas
            .iter()
            .find(|r| r.datanode.as_ref().is_some_and(|d| d.uuid == dn.uuid()))
            .expect("a replica per datanode");
        let d = r.datanode.as_ref().expect("datanode");
        assert_eq!((d.host.as_str(), d.port), ("127.0.0.1", dn.details.port));
        assert_eq!(r.state, "OPEN");
        assert_eq!(r.used_bytes, dn.containers[0].used_bytes);
    }
    let listed = scm.client.list_containers(0, 0).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .find(|c| c.id == cid)
            .expect("listed")
            .replicas
            .len(),
        3
    );
    let nodes = scm.client.list_datanodes().await.expect("dns");
    assert!(nodes.iter().all(|n| n.container_count == 1));

    // A full report without the container removes the replica.
    dns[0].containers.clear();
    dns[0].heartbeat().await;
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!(c.replicas.len(), 2);
    assert!(
        c.replicas
            .iter()
            .all(|r| r.datanode.as_ref().expect("d").uuid != dns[0].uuid())
    );

    // A report with a state the protocol does not know is refused.
    let mut odd = dns[1].clone();
    odd.containers[0].state = "MELTED".into();
    let e = odd
        .client
        .heartbeat(pb::HeartbeatRequest {
            datanode: Some(odd.details.clone()),
            node_report: None,
            containers: odd.containers.clone(),
            deleted_block_txs: vec![],
            ..Default::default()
        })
        .await
        .expect_err("unknown replica state");
    assert!(
        matches!(e, scm_client::ScmClientError::InvalidArgument(_)),
        "{e}"
    );
    scm.stop().await;
}

#[actix_rt::test]
async fn prom_and_status_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    scm.register_datanodes(3).await;
    scm.client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect("allocate");
    let addr = scm.server.http_addr;
    eventually(std::time::Duration::from_secs(5), "gauges", || async move {
        let prom = ozone_common::probe::get_async(addr, "/prom")
            .await
            .expect("GET /prom")
            .text();
        prom.contains("ozone_scm_state{name=\"healthy_nodes\"} 3")
            && prom.contains("ozone_scm_state{name=\"open_containers\"} 1")
    })
    .await;
    let prom = ozone_common::probe::get_async(addr, "/prom")
        .await
        .expect("GET /prom")
        .text();
    for needle in [
        "ozone_scm_requests_total{op=\"AllocateBlock\",outcome=\"success\"} 1",
        "ozone_scm_requests_total{op=\"Register\",outcome=\"success\"} 3",
        "ozone_scm_request_duration_seconds_bucket{op=\"AllocateBlock\"",
        "ozone_scm_state{name=\"open_containers\"} 1",
        "ozone_scm_state{name=\"safe_mode\"} 0",
    ] {
        assert!(prom.contains(needle), "{needle} missing from\n{prom}");
    }
    let page = ozone_common::probe::get_async(addr, "/")
        .await
        .expect("GET /")
        .text();
    assert!(
        page.contains("cluster id") && page.contains("CID-"),
        "{page}"
    );
    scm.stop().await;
}
