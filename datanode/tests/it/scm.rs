//! The datanode against a fake SCM: retries while SCM is down, registers, heartbeats with
//! reports, registers again when asked, and closes containers on command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datanode_client::DatanodeClients;
use ozone_datanode::ScmConnection;
use ozone_proto::scm::scm_command::Command;
use ozone_proto::scm::scm_datanode_service_server::{ScmDatanodeService, ScmDatanodeServiceServer};
use ozone_proto::scm::{
    CloseContainerCommand, HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse,
    ScmCommand,
};
use tonic::{Request, Response, Status};

use crate::harness::*;

#[derive(Default)]
struct ScmLog {
    registrations: Vec<RegisterRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    /// Container to close in the next heartbeat reply.
    close: Option<u64>,
    /// Heartbeats still to refuse (SCM failing), and the ones refused.
    fail: usize,
    refused: Vec<HeartbeatRequest>,
}

#[derive(Clone, Default)]
struct FakeScm(Arc<Mutex<ScmLog>>);

#[tonic::async_trait]
impl ScmDatanodeService for FakeScm {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        self.0
            .lock()
            .unwrap()
            .registrations
            .push(request.into_inner());
        Ok(Response::new(RegisterResponse {
            cluster_id: "test-cluster".into(),
            ..Default::default()
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let mut log = self.0.lock().unwrap();
        if log.fail > 0 {
            log.fail -= 1;
            log.refused.push(request.into_inner());
            return Err(Status::unavailable("SCM is failing"));
        }
        log.heartbeats.push(request.into_inner());
        let mut reply = HeartbeatResponse {
            // Pretend to have lost the datanode once, after its first heartbeat.
            reregister: log.heartbeats.len() == 1,
            ..Default::default()
        };
        if let Some(id) = log.close.take() {
            reply.commands.push(ScmCommand {
                command: Some(Command::CloseContainer(CloseContainerCommand {
                    container_id: id,
                })),
            });
        }
        Ok(Response::new(reply))
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_heartbeats_and_obeys_scm() {
    // SCM's port is chosen now but nothing listens there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scm_addr = format!("127.0.0.1:{port}");
    let cluster = Cluster::start_with_scm(1, &scm_addr).await;
    let node = cluster.node(0);
    wait_for("SCM to be reported unreachable", || {
        matches!(node.scm_connection(), ScmConnection::Unreachable { .. })
    })
    .await;

    let scm = FakeScm::default();
    let listener = tokio::net::TcpListener::bind(&scm_addr).await.unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ScmDatanodeServiceServer::new(scm.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let log = scm.0.clone();
    wait_for("registration, re-registration and heartbeats", || {
        let l = log.lock().unwrap();
        l.registrations.len() >= 2 && l.heartbeats.len() >= 2
    })
    .await;
    {
        let l = log.lock().unwrap();
        let dn = l.registrations[0].datanode.clone().unwrap();
        assert_eq!(dn, node.details());
        let report = l.heartbeats[0].node_report.unwrap();
        assert!(report.capacity > 0 && report.remaining <= report.capacity);
    }
    assert_eq!(
        node.scm_connection(),
        ScmConnection::Leader {
            cluster_id: "test-cluster".into(),
            term: 0
        }
    );

    // A container appears in the reports, then SCM closes it.
    let clients = DatanodeClients::new();
    let bytes = data(10_000, 30);
    write_block(
        &clients,
        cluster.details.clone(),
        block_id(30, 1),
        &bytes,
        &[],
    )
    .await
    .unwrap();
    log.lock().unwrap().close = Some(30);
    wait_for("the container to be closed", || {
        node.containers().first().map(|c| c.state.as_str()) == Some("CLOSED")
    })
    .await;
    // One metadata database for the volume, no per-container metadata files.
    assert!(cluster.dirs[0].join("containers/container.db").exists());
    assert!(!cluster.dirs[0].join("containers/30/metadata").exists());
    let seen = log.lock().unwrap().heartbeats.len();
    wait_for("a heartbeat reporting the closed container", || {
        let l = log.lock().unwrap();
        l.heartbeats[seen..].iter().any(|h| {
            h.containers.iter().any(|c| {
                c.container_id == 30
                    && c.state == "CLOSED"
                    && c.block_count == 1
                    && c.used_bytes == bytes.len() as u64
            })
        })
    })
    .await;
    {
        let l = log.lock().unwrap();
        assert!(
            l.heartbeats[1..]
                .iter()
                .all(|h| h.incremental_container_report),
            "only the registration carries a full report (the interval is 60 s)"
        );
        assert!(
            l.heartbeats[seen..]
                .iter()
                .all(|h| h.containers.iter().all(|c| c.container_id == 30)),
            "only changed replicas"
        );
    }

    // Changes made while SCM fails reach it with the next heartbeat it answers.
    log.lock().unwrap().fail = 2;
    write_block(
        &clients,
        cluster.details.clone(),
        block_id(31, 1),
        &bytes,
        &[],
    )
    .await
    .unwrap();
    let seen = log.lock().unwrap().heartbeats.len();
    wait_for(
        "a heartbeat after two failures reporting the new container",
        || {
            let l = log.lock().unwrap();
            l.refused.len() == 2
                && l.heartbeats[seen..].iter().any(|h| {
                    h.incremental_container_report
                        && h.containers
                            .iter()
                            .any(|c| c.container_id == 31 && c.block_count == 1)
                })
        },
    )
    .await;
    // SCM logs the heartbeat before it answers: the datanode notes the answer just after.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = ozone_common::probe::get_async(node.http_addr(), "/")
            .await
            .expect("GET /")
            .text();
        if status.contains("registered (cluster test-cluster)") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
}
