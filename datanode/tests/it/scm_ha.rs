//! The datanode against an SCM HA service of three scripted SCMs (real gRPC servers on free
//! ports): one leads, one refuses as a follower naming the leader, one is down. Leadership then
//! moves; the datanode registers with the new leader with a full report, obeys only the
//! highest term, and keeps heartbeating every SCM.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datanode_client::DatanodeClients;
use ozone_common::config::keys;
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
struct ScmState {
    /// Some(term): leads (or believes it leads) in that term; None: a follower naming `hint`.
    term: Option<u64>,
    hint: String,
    /// Whether the datanode registered since this SCM took the lead.
    registered: bool,
    registrations: Vec<RegisterRequest>,
    heartbeats: Vec<HeartbeatRequest>,
    refused: usize,
    /// Sent with every heartbeat reply while set.
    commands: Vec<ScmCommand>,
}

/// An SCM whose role the test decides.
#[derive(Clone, Default)]
struct ScriptedScm(Arc<Mutex<ScmState>>);

impl ScriptedScm {
    fn state(&self) -> std::sync::MutexGuard<'_, ScmState> {
        self.0.lock().unwrap()
    }

    fn lead(&self, term: u64) {
        let mut s = self.state();
        s.term = Some(term);
        s.registered = false;
    }

    fn follow(&self, leader: &str) {
        let mut s = self.state();
        s.term = None;
        s.hint = leader.to_string();
    }

    fn refusal(s: &mut ScmState) -> Status {
        s.refused += 1;
        let mut status = Status::unavailable(format!("not the leader (leader: {})", s.hint));
        status
            .metadata_mut()
            .insert(scm_client::LEADER_HEADER, s.hint.parse().unwrap());
        status
    }

    /// Serves on a free port; returns the address.
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ScmDatanodeServiceServer::new(self.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }
}

#[tonic::async_trait]
impl ScmDatanodeService for ScriptedScm {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let mut s = self.state();
        let Some(term) = s.term else {
            return Err(Self::refusal(&mut s));
        };
        s.registered = true;
        s.registrations.push(request.into_inner());
        Ok(Response::new(RegisterResponse {
            secret_keys: Default::default(),
            cluster_id: "ha-cluster".into(),
            term,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let mut s = self.state();
        let Some(term) = s.term else {
            return Err(Self::refusal(&mut s));
        };
        if !s.registered {
            // The contract of a leader that just took over: reports come with a registration.
            return Ok(Response::new(HeartbeatResponse {
                reregister: true,
                term,
                ..Default::default()
            }));
        }
        s.heartbeats.push(request.into_inner());
        Ok(Response::new(HeartbeatResponse {
            secret_keys: Default::default(),
            commands: s.commands.clone(),
            reregister: false,
            term,
        }))
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

fn close(id: u64) -> ScmCommand {
    ScmCommand {
        command: Some(Command::CloseContainer(CloseContainerCommand {
            container_id: id,
        })),
    }
}

fn free_port_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn state_of(node: &ozone_datanode::DatanodeHandle, addr: &str) -> ScmConnection {
    node.scm_connections()
        .into_iter()
        .find(|(a, _)| a == addr)
        .map(|(_, s)| s)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_every_scm_and_follows_the_leader() {
    let (a, b) = (ScriptedScm::default(), ScriptedScm::default());
    let (a_addr, b_addr) = (a.serve().await, b.serve().await);
    // Their client addresses, as hints name them (nothing listens there).
    let (a_client, b_client) = ("127.0.0.1:19860", "127.0.0.1:29860");
    let c_addr = free_port_address();
    a.lead(1);
    b.follow(a_client);

    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), NO_SCM);
    cfg.set(keys::OZONE_SCM_SERVICE_IDS, "scmsvc")
        .set(keys::OZONE_SCM_NODES_SERVICEID.with([&"scmsvc"]), "a,b,c");
    for (id, client, datanode) in [
        ("a", a_client, a_addr.as_str()),
        ("b", b_client, b_addr.as_str()),
        ("c", "127.0.0.1:39860", c_addr.as_str()),
    ] {
        cfg.set(
            keys::OZONE_SCM_ADDRESS_SERVICEID_NODEID.with([&"scmsvc", &id]),
            client,
        )
        .set(
            keys::OZONE_SCM_DATANODE_ADDRESS_SERVICEID_NODEID.with([&"scmsvc", &id]),
            datanode,
        );
    }
    let node = ozone_datanode::start(cfg).await.unwrap();

    wait_for(
        "registration with the leader, refusals by the follower",
        || {
            !a.state().registrations.is_empty()
                && a.state().heartbeats.len() >= 2
                && b.state().refused >= 2
                && matches!(state_of(&node, &c_addr), ScmConnection::Unreachable { .. })
        },
    )
    .await;
    assert_eq!(
        state_of(&node, &a_addr),
        ScmConnection::Leader {
            cluster_id: "ha-cluster".into(),
            term: 1
        }
    );
    assert_eq!(
        state_of(&node, &b_addr),
        ScmConnection::Follower {
            leader: a_client.into()
        }
    );
    assert_eq!(node.scm_term(), 1);
    let status = ozone_common::probe::get_async(node.http_addr(), "/")
        .await
        .unwrap()
        .text();
    assert!(
        status.contains("follower, refusing (leader: 127.0.0.1:19860)"),
        "{status}"
    );
    assert!(
        status.contains("leader, registered (cluster ha-cluster), term 1"),
        "{status}"
    );

    // A container appears; the leader hears of it incrementally.
    let clients = DatanodeClients::new();
    let bytes = data(5_000, 40);
    let details = vec![node.details()];
    write_block(&clients, details.clone(), block_id(40, 1), &bytes, &[])
        .await
        .unwrap();
    wait_for("the leader to hear of container 40", || {
        a.state().heartbeats.iter().any(|h| {
            h.incremental_container_report && h.containers.iter().any(|c| c.container_id == 40)
        })
    })
    .await;

    // Failover: b leads in term 2, a follows.
    a.follow(b_client);
    b.lead(2);
    wait_for("a registration with the new leader", || {
        !b.state().registrations.is_empty() && b.state().heartbeats.len() >= 2
    })
    .await;
    {
        let s = b.state();
        let full = &s.registrations[0];
        assert!(
            full.containers
                .iter()
                .any(|c| c.container_id == 40 && c.block_count == 1),
            "the registration carries the full report: {:?}",
            full.containers
        );
    }
    wait_for("the old leader to refuse", || a.state().refused >= 2).await;
    assert_eq!(node.scm_term(), 2);
    assert!(matches!(
        state_of(&node, &b_addr),
        ScmConnection::Leader { term: 2, .. }
    ));
    assert!(matches!(
        state_of(&node, &a_addr),
        ScmConnection::Follower { .. }
    ));

    // a, deposed but unaware, answers again in term 1 and orders a close: ignored.
    a.state().commands = vec![close(40)];
    a.lead(1);
    wait_for("the deposed leader to send its command a few times", || {
        a.state().heartbeats.len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        node.containers()[0].state,
        "OPEN",
        "a command of term 1 after term 2 is not obeyed"
    );
    assert_eq!(node.scm_term(), 2);

    // The real leader's command is.
    b.state().commands = vec![close(40)];
    wait_for("the container to close on the leader's command", || {
        node.containers()[0].state == "CLOSED"
    })
    .await;

    // Every SCM keeps being heartbeated, the one down included (its state says so).
    let (a_seen, b_seen) = (a.state().heartbeats.len(), b.state().heartbeats.len());
    wait_for("more heartbeats to both SCMs", || {
        a.state().heartbeats.len() > a_seen + 2 && b.state().heartbeats.len() > b_seen + 2
    })
    .await;
    assert!(matches!(
        state_of(&node, &c_addr),
        ScmConnection::Unreachable { .. }
    ));
    assert_eq!(
        node.scm_connection(),
        state_of(&node, &b_addr),
        "the leader of the highest term is the datanode's SCM"
    );
    node.stop().await.unwrap();
}
