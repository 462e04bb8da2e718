//! Test harness: a fake SCM that hands out block ids, and OM start/stop helpers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use om_client::{OmClient, OmClientOptions, OmStatus};
use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use ozone_om::OmServer;
use ozone_proto::hdds::{BlockId, DatanodeDetails, Pipeline};
use ozone_proto::scm::scm_client_service_server::{ScmClientService, ScmClientServiceServer};
use ozone_proto::scm::*;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

pub const BLOCK_SIZE: u64 = 1 << 20;
pub const MAX_PREALLOC: u64 = 4;
pub const MIB: u64 = 1 << 20;

/// A DeleteBlocks group: (container id, local ids).
pub type BlockGroupIds = (u64, Vec<u64>);

/// Hands out block ids `1:<n>` on a one-node pipeline; can pretend to be in safe mode.
#[derive(Clone, Default)]
pub struct FakeScm {
    next_local_id: Arc<AtomicU64>,
    pub safe_mode: Arc<AtomicBool>,
    pub calls: Arc<AtomicU64>,
    /// Every DeleteBlocks request: (container id, local ids).
    pub deleted: Arc<Mutex<Vec<BlockGroupIds>>>,
}

#[tonic::async_trait]
impl ScmClientService for FakeScm {
    async fn allocate_block(
        &self,
        r: Request<AllocateBlockRequest>,
    ) -> Result<Response<AllocateBlockResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.safe_mode.load(Ordering::SeqCst) {
            return Err(Status::unavailable("SCM is in safe mode"));
        }
        let r = r.into_inner();
        let blocks = (0..r.num_blocks)
            .map(|_| AllocatedBlock {
                block_id: Some(BlockId {
                    container_id: 1,
                    local_id: self.next_local_id.fetch_add(1, Ordering::SeqCst) + 1,
                }),
                pipeline: Some(Pipeline {
                    id: "pipeline-1".into(),
                    nodes: vec![DatanodeDetails {
                        uuid: "dn-1".into(),
                        host: "127.0.0.1".into(),
                        port: 9859,
                        http_port: 9882,
                    }],
                    replication: r.replication,
                    state: "OPEN".into(),
                }),
            })
            .collect();
        Ok(Response::new(AllocateBlockResponse { blocks }))
    }

    async fn list_datanodes(
        &self,
        _: Request<ListDatanodesRequest>,
    ) -> Result<Response<ListDatanodesResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn list_containers(
        &self,
        _: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn get_container(
        &self,
        _: Request<GetContainerRequest>,
    ) -> Result<Response<ContainerInfo>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn list_pipelines(
        &self,
        _: Request<ListPipelinesRequest>,
    ) -> Result<Response<ListPipelinesResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn delete_blocks(
        &self,
        r: Request<DeleteBlocksRequest>,
    ) -> Result<Response<DeleteBlocksResponse>, Status> {
        if self.safe_mode.load(Ordering::SeqCst) {
            return Err(Status::unavailable("SCM is down"));
        }
        let groups = r.into_inner().groups;
        let n = groups.len() as u32;
        self.deleted
            .lock()
            .expect("lock")
            .extend(groups.into_iter().map(|g| (g.container_id, g.local_ids)));
        Ok(Response::new(DeleteBlocksResponse { transactions: n }))
    }

    async fn close_container(
        &self,
        _: Request<ozone_proto::scm::CloseContainerRequest>,
    ) -> Result<Response<ozone_proto::scm::CloseContainerResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn report_replica_miss(
        &self,
        _: Request<ozone_proto::scm::ReportReplicaMissRequest>,
    ) -> Result<Response<ozone_proto::scm::ReportReplicaMissResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn decommission_datanode(
        &self,
        _: Request<DatanodeAdminRequest>,
    ) -> Result<Response<DatanodeAdminResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn recommission_datanode(
        &self,
        _: Request<DatanodeAdminRequest>,
    ) -> Result<Response<DatanodeAdminResponse>, Status> {
        Err(Status::unimplemented("not used by OM"))
    }

    async fn safe_mode_status(
        &self,
        _: Request<SafeModeStatusRequest>,
    ) -> Result<Response<SafeModeStatusResponse>, Status> {
        Ok(Response::new(SafeModeStatusResponse {
            in_safe_mode: self.safe_mode.load(Ordering::SeqCst),
            healthy_datanodes: 1,
            required_datanodes: 1,
        }))
    }
    async fn get_secret_keys(
        &self,
        _: Request<ozone_proto::scm::GetSecretKeysRequest>,
    ) -> Result<Response<ozone_proto::scm::GetSecretKeysResponse>, Status> {
        Err(Status::failed_precondition(
            "the fake SCM keeps no secret keys",
        ))
    }
}

pub struct ScmHandle {
    pub addr: SocketAddr,
    pub scm: FakeScm,
    _stop: oneshot::Sender<()>,
}

pub async fn start_fake_scm() -> ScmHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake SCM");
    let addr = listener.local_addr().expect("fake SCM address");
    let scm = FakeScm::default();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ScmClientServiceServer::new(scm.clone()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            ),
    );
    ScmHandle {
        addr,
        scm,
        _stop: tx,
    }
}

pub fn om_config(db_dir: &Path, scm_addr: &str) -> OzoneConfig {
    let mut cfg = OzoneConfig::default();
    cfg.set(keys::OZONE_OM_DB_DIRS, db_dir.display().to_string())
        .set(keys::OZONE_OM_ADDRESS, "127.0.0.1:0")
        .set(keys::OZONE_OM_HTTP_ADDRESS, "127.0.0.1:0")
        .set(keys::OZONE_SCM_CLIENT_ADDRESS, scm_addr)
        .set(keys::OZONE_SCM_BLOCK_SIZE, BLOCK_SIZE.to_string())
        .set(
            keys::OZONE_KEY_PREALLOCATION_MAX_BLOCKS,
            MAX_PREALLOC.to_string(),
        );
    cfg
}

pub async fn start_om(db_dir: &Path, scm_addr: &str) -> (OmServer, OmClient) {
    start_om_with(om_config(db_dir, scm_addr)).await
}

pub async fn start_om_with(cfg: OzoneConfig) -> (OmServer, OmClient) {
    let server = ozone_om::start(cfg).await.expect("OM starts");
    let client = OmClient::connect_with(
        vec![server.address().to_string()],
        OmClientOptions {
            request_timeout: std::time::Duration::from_secs(20),
            ..Default::default()
        },
    )
    .expect("OM client");
    (server, client)
}

/// A fake SCM, an OM on a fresh directory and a client.
pub struct Cluster {
    pub scm: ScmHandle,
    pub om: OmServer,
    pub client: OmClient,
    pub dir: tempfile::TempDir,
}

pub async fn cluster() -> Cluster {
    cluster_with(|_| {}).await
}

/// [`cluster`] with the OM's configuration changed by `tweak`.
pub async fn cluster_with(tweak: impl FnOnce(&mut OzoneConfig)) -> Cluster {
    let scm = start_fake_scm().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = om_config(dir.path(), &scm.addr.to_string());
    tweak(&mut cfg);
    let (om, client) = start_om_with(cfg).await;
    Cluster {
        scm,
        om,
        client,
        dir,
    }
}

pub const VOL: &str = "s3v";

pub async fn create_bucket(c: &OmClient, bucket: &str, owner: &str) {
    c.create_bucket(om_client::proto::CreateBucketRequest {
        volume: VOL.into(),
        bucket: bucket.into(),
        owner: owner.into(),
        replication: 0,
    })
    .await
    .expect("create bucket");
}

/// Writes a key through OpenKey + CommitKey using the first blocks, `size` bytes over as many
/// blocks as needed. Returns the committed KeyInfo.
pub async fn put_key(
    c: &OmClient,
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
) -> om_client::proto::KeyInfo {
    use om_client::proto::*;
    let open = c
        .open_key(OpenKeyRequest {
            volume: VOL.into(),
            bucket: bucket.into(),
            key: key.into(),
            size_hint: size,
            ..Default::default()
        })
        .await
        .expect("open key");
    let mut locations = Vec::new();
    let mut left = size;
    for l in open.locations.iter() {
        let len = left.min(open.block_size);
        locations.push(KeyLocation {
            length: len,
            ..l.clone()
        });
        left -= len;
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "enough blocks preallocated");
    c.commit_key(CommitKeyRequest {
        volume: VOL.into(),
        bucket: bucket.into(),
        key: key.into(),
        client_id: open.client_id,
        locations,
        size,
        etag: etag.into(),
        ..Default::default()
    })
    .await
    .expect("commit key")
}

/// Every block id recorded in the deleted-blocks table.
pub fn deleted_blocks(om: &OmServer) -> Vec<u64> {
    let mut v: Vec<u64> = om
        .state_machine()
        .snapshot()
        .expect("snapshot")
        .deleted_blocks()
        .expect("deleted blocks")
        .into_iter()
        .flat_map(|(_, d)| d.blocks)
        .map(|b| b.local_id)
        .collect();
    v.sort();
    v
}

pub fn local_ids(k: &om_client::proto::KeyInfo) -> Vec<u64> {
    k.locations
        .iter()
        .map(|l| l.block_id.as_ref().map_or(0, |b| b.local_id))
        .collect()
}

#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    r: Result<T, om_client::OmClientError>,
    want: OmStatus,
) -> om_client::OmClientError {
    match r {
        Ok(v) => panic!("expected {want:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.status(), want, "{e}");
            e
        }
    }
}
