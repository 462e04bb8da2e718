//! Datanode health (HEALTHY -> STALE -> DEAD), pipeline closing, re-registration.

use std::time::Duration;

use scm_client::ScmClientError;

use crate::harness::{config, eventually, start};
use ozone_common::config::keys;

#[actix_rt::test]
async fn silent_datanode_goes_stale_then_dead_and_its_pipelines_close() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = config(dir.path());
    cfg.set(keys::OZONE_SCM_STALE_NODE_INTERVAL, "1s")
        .set(keys::OZONE_SCM_DEAD_NODE_INTERVAL, "2s");
    let scm = start(&cfg).await;
    let dns = scm.register_datanodes(3).await;
    let beats: Vec<_> = dns[..2]
        .iter()
        .map(|d| d.heartbeat_loop(Duration::from_millis(200)))
        .collect();
    // One block on each factor-THREE pipeline so they keep a container when closed.
    let blocks = scm
        .client
        .allocate_block(1 << 20, 2, 3, "t", &[])
        .await
        .expect("allocate");
    let silent = dns[2].uuid().to_string();

    let client = scm.client.clone();
    let s = silent.clone();
    eventually(
        Duration::from_secs(5),
        "the silent datanode to be STALE",
        || {
            let client = client.clone();
            let s = s.clone();
            async move {
                let nodes = client.list_datanodes().await.expect("datanodes");
                nodes.iter().any(|n| {
                    n.datanode.as_ref().is_some_and(|d| d.uuid == s) && n.health == "STALE"
                })
            }
        },
    )
    .await;
    // Tick interval is stale/4: give the tick that closes pipelines a moment.
    eventually(Duration::from_secs(2), "pipelines to close", || {
        let client = client.clone();
        async move {
            client
                .list_pipelines()
                .await
                .expect("pipelines")
                .iter()
                .filter(|p| p.replication == 3)
                .all(|p| p.state == "CLOSED")
        }
    })
    .await;
    let pipelines = scm.client.list_pipelines().await.expect("pipelines");
    assert_eq!(pipelines.iter().filter(|p| p.replication == 3).count(), 2);
    for b in &blocks {
        let cid = b.block_id.expect("id").container_id;
        let c = scm.client.get_container(cid).await.expect("container");
        assert_eq!(
            c.state, "CLOSED",
            "containers of a closed pipeline are closed"
        );
    }
    let err = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect_err("no healthy pipeline");
    assert!(
        matches!(err, ScmClientError::Unavailable(ref m) if m.contains("no healthy pipeline")),
        "{err}"
    );
    // Factor ONE still works on the live datanodes.
    let one = scm
        .client
        .allocate_block(1 << 20, 4, 1, "t", &[])
        .await
        .expect("factor one");
    assert!(
        one.iter()
            .all(|b| { b.pipeline.as_ref().expect("p").nodes[0].uuid != silent })
    );

    let s = silent.clone();
    eventually(
        Duration::from_secs(5),
        "the silent datanode to be DEAD",
        || {
            let client = client.clone();
            let s = s.clone();
            async move {
                let nodes = client.list_datanodes().await.expect("datanodes");
                nodes
                    .iter()
                    .any(|n| n.datanode.as_ref().is_some_and(|d| d.uuid == s) && n.health == "DEAD")
            }
        },
    )
    .await;

    // A new datanode lets a new factor-THREE pipeline form without the dead one.
    let fresh = scm.datanode(20010);
    fresh.register().await;
    let fresh_beat = fresh.heartbeat_loop(Duration::from_millis(200));
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect("a new pipeline");
    let p = b[0].pipeline.as_ref().expect("pipeline");
    assert!(p.nodes.iter().all(|n| n.uuid != silent));
    assert!(p.nodes.iter().any(|n| n.uuid == fresh.uuid()));

    // The silent datanode comes back: healthy again.
    dns[2].heartbeat().await;
    let nodes = scm.client.list_datanodes().await.expect("datanodes");
    assert!(nodes.iter().all(|n| n.health == "HEALTHY"), "{nodes:?}");
    for h in beats {
        h.abort();
    }
    fresh_beat.abort();
    scm.stop().await;
}

#[actix_rt::test]
async fn unknown_datanodes_reregister_and_new_addresses_propagate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    let stranger = scm.datanode(20100);
    let hb = stranger.heartbeat().await;
    assert!(hb.reregister);
    assert!(scm.client.list_datanodes().await.expect("dns").is_empty());

    let mut dns = scm.register_datanodes(3).await;
    assert!(!dns[0].heartbeat().await.reregister);
    // Same uuid, new port (e.g. the datanode restarted with port 0).
    dns[0].details.port = 30001;
    dns[0].register().await;
    let nodes = scm.client.list_datanodes().await.expect("dns");
    let me = nodes
        .iter()
        .filter_map(|n| n.datanode.as_ref())
        .find(|d| d.uuid == dns[0].uuid())
        .expect("listed");
    assert_eq!(me.port, 30001);
    for p in scm.client.list_pipelines().await.expect("pipelines") {
        for n in p.nodes.iter().filter(|n| n.uuid == dns[0].uuid()) {
            assert_eq!(n.port, 30001, "pipeline {} has the old port", p.id);
        }
    }
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "t", &[])
        .await
        .expect("allocate");
    let p = b[0].pipeline.as_ref().expect("pipeline");
    assert!(
        p.nodes
            .iter()
            .any(|n| n.uuid == dns[0].uuid() && n.port == 30001)
    );
    scm.stop().await;
}
