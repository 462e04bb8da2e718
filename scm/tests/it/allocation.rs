//! Block allocation: unique ids, container filling and closing, exclusions, validation.

use std::collections::{BTreeSet, HashSet};

use scm_client::ScmClientError;

use crate::harness::{closed_containers, config, start};
use ozone_common::config::keys;

#[actix_rt::test]
async fn block_ids_are_unique_across_many_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    scm.register_datanodes(3).await;
    let mut ids = HashSet::new();
    let mut pipelines = BTreeSet::new();
    let mut containers = BTreeSet::new();
    for _ in 0..100 {
        let blocks = scm
            .client
            .allocate_block(1 << 20, 7, 3, "test", &[])
            .await
            .expect("allocate");
        assert_eq!(blocks.len(), 7);
        for b in blocks {
            let id = b.block_id.expect("block id");
            assert!(
                ids.insert(id.local_id),
                "local id {} handed out twice",
                id.local_id
            );
            containers.insert(id.container_id);
            pipelines.insert(b.pipeline.expect("pipeline").id);
        }
    }
    assert_eq!(ids.len(), 700);
    // Round robin over both factor-THREE pipelines, each with owner.container.count (3) open
    // containers.
    assert_eq!(pipelines.len(), 2);
    assert_eq!(containers.len(), 6);
    let listed = scm.client.list_containers(0, 0).await.expect("list");
    assert_eq!(listed.len(), 6);
    assert!(
        listed
            .iter()
            .all(|c| c.state == "OPEN" && c.replication == 3)
    );
    let total: u64 = listed.iter().map(|c| c.allocated_bytes).sum();
    assert_eq!(total, 700 << 20);
    // Paging: after the second container, at most two.
    let page = scm
        .client
        .list_containers(listed[1].id, 2)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![listed[2].id, listed[3].id]
    );
    scm.stop().await;
}

#[actix_rt::test]
async fn containers_fill_close_and_replicas_get_the_close_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = config(dir.path());
    cfg.set(keys::OZONE_SCM_CONTAINER_SIZE, "4MB")
        .set(keys::OZONE_SCM_BLOCK_SIZE, "1MB")
        .set(keys::OZONE_SCM_PIPELINE_OWNER_CONTAINER_COUNT, "1")
        .set(keys::OZONE_SCM_DATANODE_PIPELINE_LIMIT, "1");
    let scm = start(&cfg).await;
    let dns = scm.register_datanodes(3).await;

    // size 0: the configured 1MB block size.
    let first = scm
        .client
        .allocate_block(0, 3, 0, "test", &[])
        .await
        .expect("allocate");
    let cid = first[0].block_id.expect("id").container_id;
    assert!(
        first
            .iter()
            .all(|b| b.block_id.expect("id").container_id == cid)
    );
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!((c.state.as_str(), c.allocated_bytes), ("OPEN", 3 << 20));
    for dn in &dns {
        assert!(closed_containers(&dn.heartbeat().await).is_empty());
    }

    let fourth = scm
        .client
        .allocate_block(0, 1, 0, "test", &[])
        .await
        .expect("allocate");
    assert_eq!(fourth[0].block_id.expect("id").container_id, cid);
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!((c.state.as_str(), c.allocated_bytes), ("CLOSED", 4 << 20));
    for dn in &dns {
        assert_eq!(closed_containers(&dn.heartbeat().await), vec![cid]);
        // Delivered once; repeated only while a report shows the replica open.
        assert!(closed_containers(&dn.heartbeat().await).is_empty());
    }
    let mut dn = dns[0].clone();
    dn.containers = vec![scm_client::pb::ContainerReplicaReport {
        container_id: cid,
        state: "OPEN".into(),
        used_bytes: 4 << 20,
        block_count: 4,
    }];
    assert_eq!(closed_containers(&dn.heartbeat().await), vec![cid]);
    dn.containers[0].state = "CLOSED".into();
    assert!(closed_containers(&dn.heartbeat().await).is_empty());

    let next = scm
        .client
        .allocate_block(0, 1, 0, "test", &[])
        .await
        .expect("allocate");
    let next_cid = next[0].block_id.expect("id").container_id;
    assert!(next_cid > cid);
    assert_eq!(
        scm.client.get_container(next_cid).await.expect("c").state,
        "OPEN"
    );
    scm.stop().await;
}

#[actix_rt::test]
async fn excluded_datanodes_are_honoured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    let dns = scm.register_datanodes(4).await;
    let open_three: Vec<BTreeSet<String>> = scm
        .client
        .list_pipelines()
        .await
        .expect("pipelines")
        .into_iter()
        .filter(|p| p.replication == 3 && p.state == "OPEN")
        .map(|p| p.nodes.into_iter().map(|n| n.uuid).collect())
        .collect();
    assert!(
        open_three.len() >= 2,
        "four datanodes, limit 2: {open_three:?}"
    );
    let mut served = 0;
    for dn in &dns {
        let exclude = vec![dn.uuid().to_string()];
        let possible = open_three.iter().any(|p| !p.contains(dn.uuid()));
        match scm
            .client
            .allocate_block(1 << 20, 6, 3, "t", &exclude)
            .await
        {
            Ok(blocks) => {
                assert!(possible);
                served += 1;
                for b in blocks {
                    let p = b.pipeline.expect("pipeline");
                    assert!(
                        p.nodes.iter().all(|n| n.uuid != dn.uuid()),
                        "excluded node used"
                    );
                }
            }
            Err(ScmClientError::Unavailable(m)) => {
                assert!(!possible, "a pipeline without {} exists: {m}", dn.uuid());
                assert!(m.contains("excluded"), "{m}");
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(served > 0);

    // Factor ONE: excluding three datanodes leaves the fourth.
    let exclude: Vec<String> = dns[..3].iter().map(|d| d.uuid().to_string()).collect();
    let blocks = scm
        .client
        .allocate_block(1 << 20, 5, 1, "t", &exclude)
        .await
        .expect("factor one");
    for b in blocks {
        let p = b.pipeline.expect("pipeline");
        assert_eq!(p.nodes.len(), 1);
        assert_eq!(p.nodes[0].uuid, dns[3].uuid());
    }
    scm.stop().await;
}

#[actix_rt::test]
async fn bad_requests_are_invalid_arguments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    scm.register_datanodes(3).await;
    for (size, n, repl) in [(1 << 20, 1, 2), (1 << 20, 0, 3), (u64::MAX, 1, 3)] {
        let e = scm
            .client
            .allocate_block(size, n, repl, "t", &[])
            .await
            .expect_err("invalid");
        assert!(matches!(e, ScmClientError::InvalidArgument(_)), "{e}");
    }
    let e = scm
        .client
        .get_container(999)
        .await
        .expect_err("no such container");
    assert!(matches!(e, ScmClientError::NotFound(_)), "{e}");
    // A datanode without a uuid is refused.
    let mut dn = scm.datanode(20009);
    dn.details.uuid.clear();
    let e = dn
        .client
        .register(scm_client::pb::RegisterRequest {
            datanode: Some(dn.details.clone()),
            ..Default::default()
        })
        .await
        .expect_err("no uuid");
    assert!(matches!(e, ScmClientError::InvalidArgument(_)), "{e}");
    scm.stop().await;
}
