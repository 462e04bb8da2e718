//! `ScmClient` against scripted SCMs (real gRPC servers on free ports): a follower refusing
//! with the leader hint, a leader, an SCM in safe mode, one down. Calls land on the serving
//! SCM and the time spent looking for it is bounded.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scm_client::pb::scm_client_service_server::{ScmClientService, ScmClientServiceServer};
use scm_client::{FailoverOptions, LEADER_HEADER, ScmClient, ScmClientError, pb};
use tonic::{Request, Response, Status};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Serve,
    /// Refuses naming this leader.
    Follow(String),
    /// Refuses without a hint (a new leader in safe mode) this many more calls, then serves.
    SafeMode(usize),
}

#[derive(Debug)]
struct State {
    role: Role,
    served: usize,
    refused: usize,
}

#[derive(Clone)]
struct FakeScm(Arc<Mutex<State>>);

impl FakeScm {
    fn new(role: Role) -> Self {
        FakeScm(Arc::new(Mutex::new(State {
            role,
            served: 0,
            refused: 0,
        })))
    }

    fn set(&self, role: Role) {
        self.0.lock().unwrap().role = role;
    }

    fn counts(&self) -> (usize, usize) {
        let s = self.0.lock().unwrap();
        (s.served, s.refused)
    }

    /// Serves, or refuses as the role says.
    fn gate(&self) -> Result<(), Status> {
        let mut s = self.0.lock().unwrap();
        match s.role.clone() {
            Role::Serve => {
                s.served += 1;
                Ok(())
            }
            Role::Follow(leader) => {
                s.refused += 1;
                let mut status =
                    Status::unavailable(format!("SCM is not the leader (leader: {leader})"));
                status
                    .metadata_mut()
                    .insert(LEADER_HEADER, leader.parse().unwrap());
                Err(status)
            }
            Role::SafeMode(0) => {
                s.role = Role::Serve;
                s.served += 1;
                Ok(())
            }
            Role::SafeMode(n) => {
                s.refused += 1;
                s.role = Role::SafeMode(n - 1);
                Err(Status::unavailable("SCM is in safe mode"))
            }
        }
    }

    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(ScmClientServiceServer::new(self.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }
}

/// Every method: the gate, then an empty answer.
macro_rules! gated {
    ($($method:ident($req:ty) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl ScmClientService for FakeScm {
            $(
                async fn $method(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                    self.gate()?;
                    Ok(Response::new(<$resp>::default()))
                }
            )*
        }
    };
}

gated! {
        allocate_block(pb::AllocateBlockRequest) -> pb::AllocateBlockResponse;
        list_datanodes(pb::ListDatanodesRequest) -> pb::ListDatanodesResponse;
        list_containers(pb::ListContainersRequest) -> pb::ListContainersResponse;
        get_container(pb::GetContainerRequest) -> pb::ContainerInfo;
        list_pipelines(pb::ListPipelinesRequest) -> pb::ListPipelinesResponse;
        safe_mode_status(pb::SafeModeStatusRequest) -> pb::SafeModeStatusResponse;
        delete_blocks(pb::DeleteBlocksRequest) -> pb::DeleteBlocksResponse;
        decommission_datanode(pb::DatanodeAdminRequest) -> pb::DatanodeAdminResponse;
        recommission_datanode(pb::DatanodeAdminRequest) -> pb::DatanodeAdminResponse;
        close_container(pb::CloseContainerRequest) -> pb::CloseContainerResponse;
        report_replica_miss(pb::ReportReplicaMissRequest) -> pb::ReportReplicaMissResponse;
        get_secret_keys(pb::GetSecretKeysRequest) -> pb::GetSecretKeysResponse;
}

fn down_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn options(window: Duration) -> FailoverOptions {
    FailoverOptions {
        connect_timeout: Duration::from_secs(1),
        call_timeout: Duration::from_secs(5),
        window,
        pause: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_leader_hint_and_remembers_the_leader() {
    let leader = FakeScm::new(Role::Serve);
    let l_addr = leader.serve().await;
    let follower = FakeScm::new(Role::Follow(l_addr.clone()));
    let f_addr = follower.serve().await;
    let down = down_address();
    let client =
        ScmClient::with_options(&[f_addr.clone(), down, l_addr.clone()], options(FAILOVER))
            .unwrap();

    let started = Instant::now();
    client.list_pipelines().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a hint is followed at once"
    );
    assert_eq!(follower.counts(), (0, 1));
    assert_eq!(leader.counts(), (1, 0));
    assert_eq!(client.current_address(), l_addr);
    // The next calls go straight to the leader, also from a clone.
    client.clone().safe_mode_status().await.unwrap();
    client
        .close_container(1)
        .await
        .expect_err("no container in the answer");
    assert_eq!(follower.counts(), (0, 1));
    assert_eq!(leader.counts(), (3, 0));

    // Leadership moves: the old leader names the new one, which serves the retry.
    leader.set(Role::Follow(f_addr.clone()));
    follower.set(Role::Serve);
    client.delete_blocks(vec![(1, vec![1])]).await.unwrap();
    assert_eq!(leader.counts(), (3, 1));
    assert_eq!(follower.counts(), (1, 1));
    assert_eq!(client.current_address(), f_addr);

    // A single-address client follows a hint to an SCM it was not given.
    let single = ScmClient::connect(&l_addr).unwrap();
    single.list_datanodes().await.unwrap();
    assert_eq!(single.current_address(), f_addr);
    assert_eq!(follower.counts(), (2, 1));
}

const FAILOVER: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hint_tries_the_next_scm_within_the_window() {
    // The first SCM is down, the second a new leader in safe mode for its first 3 answers.
    let new_leader = FakeScm::new(Role::SafeMode(3));
    let n_addr = new_leader.serve().await;
    let client =
        ScmClient::with_options(&[down_address(), n_addr.clone()], options(FAILOVER)).unwrap();
    let started = Instant::now();
    client.list_containers(0, 0).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(new_leader.counts(), (1, 3));
    assert_eq!(client.current_address(), n_addr);

    // Nobody serves: the call fails as unavailable once the window has passed.
    new_leader.set(Role::SafeMode(usize::MAX));
    let window = Duration::from_millis(800);
    let client = ScmClient::with_options(&[down_address(), n_addr], options(window)).unwrap();
    let started = Instant::now();
    let e = client.list_pipelines().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(e, ScmClientError::Unavailable(ref m) if m.contains("no SCM leader")),
        "{e}"
    );
    assert!(e.is_retryable());
    // It gives up when a pause would end past the window.
    let pause = options(window).pause;
    assert!(
        took >= window - pause && took < window + Duration::from_secs(2),
        "{took:?}"
    );

    // A hint that is no address counts as none: the call waits out the window.
    let follower_of_nobody = FakeScm::new(Role::Follow("not an address".into()));
    let addr = follower_of_nobody.serve().await;
    let client = ScmClient::with_options(&[addr], options(window)).unwrap();
    let started = Instant::now();
    client.list_pipelines().await.unwrap_err();
    assert!(started.elapsed() >= window - pause);
    assert!(
        follower_of_nobody.counts().1 > 1,
        "asked again after each pause"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_scm_answers_at_once_as_before() {
    let scm = FakeScm::new(Role::SafeMode(usize::MAX));
    let addr = scm.serve().await;
    let client = ScmClient::connect(&addr).unwrap();
    let started = Instant::now();
    let e = client.safe_mode_status().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        matches!(e, ScmClientError::Unavailable(ref m) if m == "SCM is in safe mode"),
        "{e}"
    );
    assert_eq!(scm.counts(), (0, 1));
    let e = ScmClient::connect(&down_address())
        .unwrap()
        .list_pipelines()
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(ScmClient::connect_service(&[]).is_err());
}
