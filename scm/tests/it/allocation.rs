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
    // Round robin over both factor-THREE pipelines; 700MB fit in one 5GB container of each
    // (a pipeline fills one container at a time).
    assert_eq!(pipelines.len(), 2);
    assert_eq!(containers.len(), 2);
    let listed = scm.client.list_containers(0, 0).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|c| c.state == "OPEN" && c.replication == 3)
    );
    let total: u64 = listed.iter().map(|c| c.allocated_bytes).sum();
    assert_eq!(total, 700 << 20);
    // Paging: the first one, then after it at most five.
    let page = scm.client.list_containers(0, 1).await.expect("page");
    assert_eq!(
        page.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![listed[0].id]
    );
    let page = scm
        .client
        .list_containers(listed[0].id, 5)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![listed[1].id]
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

    // The fourth block fills the container; it stays OPEN (no block may go there any more)
    // until its replicas report the bytes.
    let fourth = scm
        .client
        .allocate_block(0, 1, 0, "test", &[])
        .await
        .expect("allocate");
    assert_eq!(fourth[0].block_id.expect("id").container_id, cid);
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!((c.state.as_str(), c.allocated_bytes), ("OPEN", 4 << 20));
    for dn in &dns {
        assert!(closed_containers(&dn.heartbeat().await).is_empty());
    }
    // A replica reporting 3.6MB used (ozone.scm.container.close.threshold 0.9) closes it:
    // every member is told once, and again while a report shows its replica open.
    let report = |state: &str| scm_client::pb::ContainerReplicaReport {
        container_id: cid,
        state: state.into(),
        used_bytes: 4 << 20,
        block_count: 4,
        bcsid: 4,
    };
    assert_eq!(
        closed_containers(
            &dns[0]
                .heartbeat_incremental(vec![report("OPEN")], vec![])
                .await
        ),
        vec![cid]
    );
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!((c.state.as_str(), c.used_bytes), ("CLOSED", 4 << 20));
    for dn in &dns[1..] {
        assert_eq!(closed_containers(&dn.heartbeat().await), vec![cid]);
        assert!(closed_containers(&dn.heartbeat().await).is_empty());
    }
    let mut dn = dns[0].clone();
    dn.containers = vec![report("OPEN")];
    assert_eq!(closed_containers(&dn.heartbeat().await), vec![cid]);
    dn.containers[0].state = "CLOSED".into();
    assert!(closed_containers(&dn.heartbeat().await).is_empty());
    // Incremental reports: unchanged replicas stay, removed ones go.
    assert!(
        dn.heartbeat_incremental(vec![], vec![])
            .await
            .commands
            .is_empty()
    );
    let c = scm.client.get_container(cid).await.expect("container");
    assert_eq!(c.replicas.len(), 1);
    dn.heartbeat_incremental(vec![], vec![cid]).await;
    let c = scm.client.get_container(cid).await.expect("container");
    assert!(c.replicas.is_empty());

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
    for (size, n, repl) in [(1 << 20, 1, 2), (1 << 20, 0, 3)] {
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
    let e = scm
        .client
        .close_container(999)
        .await
        .expect_err("no such container");
    assert!(matches!(e, ScmClientError::NotFound(_)), "{e}");
    // A declared size above the block size is capped, not refused.
    scm.client
        .allocate_block(u64::MAX, 1, 3, "t", &[])
        .await
        .expect("capped");
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

#[actix_rt::test]
async fn an_administrator_closes_an_open_container() {
    let dir = tempfile::tempdir().expect("temp dir");
    let scm = start(&config(dir.path())).await;
    let dns = scm.register_datanodes(3).await;
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "test", &[])
        .await
        .expect("allocate");
    let cid = b[0].block_id.expect("id").container_id;
    let c = scm.client.close_container(cid).await.expect("close");
    assert_eq!((c.id, c.state.as_str()), (cid, "CLOSED"));
    for dn in &dns {
        assert_eq!(closed_containers(&dn.heartbeat().await), vec![cid]);
    }
    // As Ozone: closing a container that is not OPEN is refused.
    let e = scm
        .client
        .close_container(cid)
        .await
        .expect_err("already closed");
    assert!(
        matches!(e, ScmClientError::FailedPrecondition(ref m) if m == "Cannot close a CLOSED container."),
        "{e}"
    );
    // New blocks go elsewhere.
    let b = scm
        .client
        .allocate_block(1 << 20, 1, 3, "test", &[])
        .await
        .expect("allocate");
    assert_ne!(b[0].block_id.expect("id").container_id, cid);
    scm.stop().await;
}
