//! SCM's commands against real datanodes with a scripted fake SCM: a container copy that
//! skips a corrupt source and verifies what it receives, the scrubber marking the corrupt
//! replica UNHEALTHY, block deletions acknowledged in heartbeats, replica deletion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datanode_client::DatanodeClients;
use ozone_proto::scm::scm_command::Command;
use ozone_proto::scm::scm_datanode_service_server::{ScmDatanodeService, ScmDatanodeServiceServer};
use ozone_proto::scm::{
    DeleteBlocksCommand, DeleteContainerCommand, DeletedBlocksTransaction, HeartbeatRequest,
    HeartbeatResponse, RegisterRequest, RegisterResponse, ReplicateContainerCommand, ScmCommand,
};
use tonic::{Request, Response, Status};

use crate::harness::*;

/// Hands each datanode (by uuid) the commands queued for it; keeps the acknowledged
/// deleted-block transactions.
#[derive(Clone, Default)]
pub(crate) struct ScriptedScm {
    queued: Arc<Mutex<HashMap<String, Vec<Command>>>>,
    acked: Arc<Mutex<Vec<u64>>>,
}

impl ScriptedScm {
    pub(crate) fn send(&self, uuid: &str, c: Command) {
        self.queued
            .lock()
            .unwrap()
            .entry(uuid.to_string())
            .or_default()
            .push(c);
    }
}

#[tonic::async_trait]
impl ScmDatanodeService for ScriptedScm {
    async fn register(
        &self,
        _: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        Ok(Response::new(RegisterResponse {
            cluster_id: "c".into(),
            ..Default::default()
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let r = request.into_inner();
        self.acked.lock().unwrap().extend(r.deleted_block_txs);
        let uuid = r.datanode.map(|d| d.uuid).unwrap_or_default();
        let commands = self
            .queued
            .lock()
            .unwrap()
            .remove(&uuid)
            .unwrap_or_default()
            .into_iter()
            .map(|c| ScmCommand { command: Some(c) })
            .collect();
        Ok(Response::new(HeartbeatResponse {
            commands,
            ..Default::default()
        }))
    }
}

pub(crate) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn state_of(c: &Cluster, i: usize, id: u64) -> Option<(String, u64)> {
    c.node(i)
        .containers()
        .into_iter()
        .find(|r| r.container_id == id)
        .map(|r| (r.state, r.block_count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_skip_corrupt_sources_scrubber_flags_them_and_deletions_are_acked() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scm_addr = listener.local_addr().unwrap().to_string();
    let scm = ScriptedScm::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ScmDatanodeServiceServer::new(scm.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cluster = Cluster::start_with_scm(3, &scm_addr).await;
    let clients = DatanodeClients::new();
    let pipeline = cluster.details[0..2].to_vec();
    let (a, b) = (data(3 << 20, 1), data(70_000, 2));
    write_block(&clients, pipeline.clone(), block_id(40, 1), &a, &[])
        .await
        .unwrap();
    write_block(&clients, pipeline.clone(), block_id(40, 2), &b, &[])
        .await
        .unwrap();
    write_block(&clients, pipeline, block_id(40, 3), &[], &[])
        .await
        .unwrap();
    for i in 0..2 {
        cluster.node(i).close_container(40).await.unwrap();
    }
    // Node 0's copy of block 1 goes bad on disk.
    let path = cluster.block_file(0, block_id(40, 1));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2_000_000] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    // Node 2 copies from node 0 (corrupt) first, then node 1.
    scm.send(
        &cluster.details[2].uuid,
        Command::ReplicateContainer(ReplicateContainerCommand {
            token: Default::default(),
            container_id: 40,
            sources: cluster.details[0..2].to_vec(),
        }),
    );
    wait_for("the copy on node 2", || {
        state_of(&cluster, 2, 40) == Some(("CLOSED".into(), 3))
    })
    .await;
    // The copy keeps its source's BCSID (one per block commit).
    let bcsid = |i: usize| {
        cluster
            .node(i)
            .containers()
            .into_iter()
            .find(|r| r.container_id == 40)
            .map(|r| r.bcsid)
    };
    assert!(bcsid(1) >= Some(3), "{:?}", bcsid(1));
    assert_eq!(bcsid(2), bcsid(1));
    let only2 = vec![cluster.details[2].clone()];
    assert_eq!(
        read_range(&clients, &only2, block_id(40, 1), 0, a.len() as u64)
            .await
            .unwrap(),
        a
    );
    assert_eq!(
        read_range(&clients, &only2, block_id(40, 2), 0, b.len() as u64)
            .await
            .unwrap(),
        b
    );
    // The failed copy from node 0 had its scrubber look: UNHEALTHY.
    wait_for("node 0's replica UNHEALTHY", || {
        state_of(&cluster, 0, 40).is_some_and(|(s, _)| s == "UNHEALTHY")
    })
    .await;

    // Deleting blocks: done, acknowledged, file gone; a container it does not have is acked too.
    scm.send(
        &cluster.details[2].uuid,
        Command::DeleteBlocks(DeleteBlocksCommand {
            transactions: vec![
                DeletedBlocksTransaction {
                    tx_id: 5,
                    container_id: 40,
                    local_ids: vec![1],
                },
                DeletedBlocksTransaction {
                    tx_id: 6,
                    container_id: 999,
                    local_ids: vec![1],
                },
            ],
        }),
    );
    wait_for("deletions acknowledged", || {
        let acked = scm.acked.lock().unwrap();
        acked.contains(&5) && acked.contains(&6)
    })
    .await;
    assert_eq!(state_of(&cluster, 2, 40), Some(("CLOSED".into(), 2)));
    assert!(!cluster.block_file(2, block_id(40, 1)).exists());

    // A replica with blocks is removed only when forced.
    scm.send(
        &cluster.details[2].uuid,
        Command::DeleteContainer(DeleteContainerCommand {
            container_id: 40,
            force: false,
        }),
    );
    scm.send(
        &cluster.details[0].uuid,
        Command::DeleteContainer(DeleteContainerCommand {
            container_id: 40,
            force: true,
        }),
    );
    wait_for("node 0's replica deleted", || {
        state_of(&cluster, 0, 40).is_none()
    })
    .await;
    assert!(!cluster.dirs[0].join("containers/40").exists());
    assert!(state_of(&cluster, 2, 40).is_some(), "not forced: kept");
    server.abort();
}
