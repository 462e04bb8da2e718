//! om-client failover: past an unreachable address, and from a follower to the leader it names.

use om_client::{OmClient, OmClientOptions, OmStatus};
use ozone_om::error::to_grpc;
use ozone_proto::om::om_service_server::{OmService, OmServiceServer};
use ozone_proto::om::*;
use tonic::{Request, Response, Status};

use crate::common::*;

/// An OM that is not the leader: answers every call NOT_LEADER naming `leader`.
struct Follower {
    leader: String,
}

macro_rules! not_leader {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        #[tonic::async_trait]
        impl OmService for Follower {
            $(async fn $name(&self, _: Request<$req>) -> Result<Response<$resp>, Status> {
                Err(to_grpc(OmStatus::NotLeader, "not the leader", None, Some(&self.leader)))
            })*
        }
    };
}

not_leader! {
    create_volume(CreateVolumeRequest) -> VolumeInfo;
    info_volume(VolumeRef) -> VolumeInfo;
    list_volumes(ListVolumesRequest) -> ListVolumesResponse;
    delete_volume(VolumeRef) -> Empty;
    create_bucket(CreateBucketRequest) -> BucketInfo;
    info_bucket(BucketRef) -> BucketInfo;
    list_buckets(ListBucketsRequest) -> ListBucketsResponse;
    delete_bucket(BucketRef) -> Empty;
    create_bucket_link(CreateBucketLinkRequest) -> BucketInfo;
    resolve_bucket(BucketRef) -> BucketInfo;
    open_key(OpenKeyRequest) -> OpenKeyResponse;
    allocate_block(AllocateKeyBlockRequest) -> AllocateKeyBlockResponse;
    commit_key(CommitKeyRequest) -> KeyInfo;
    lookup_key(KeyRef) -> KeyInfo;
    list_keys(ListKeysRequest) -> ListKeysResponse;
    delete_key(KeyRef) -> Empty;
    delete_keys(DeleteKeysRequest) -> DeleteKeysResponse;
    initiate_multipart_upload(InitiateMultipartUploadRequest) -> MultipartUploadInfo;
    complete_multipart_upload(CompleteMultipartUploadRequest) -> KeyInfo;
    abort_multipart_upload(MultipartUploadRef) -> Empty;
    list_parts(ListPartsRequest) -> ListPartsResponse;
    list_multipart_uploads(ListMultipartUploadsRequest) -> ListMultipartUploadsResponse;
    set_key_tags(SetKeyTagsRequest) -> KeyInfo;
    set_bucket_tags(SetBucketTagsRequest) -> BucketInfo;
    get_s3_secret(S3SecretRequest) -> S3Secret;
    revoke_s3_secret(S3SecretRequest) -> Empty;
    verify_s3_signature(VerifyS3SignatureRequest) -> VerifyS3SignatureResponse;
    set_bucket_acl(SetBucketAclRequest) -> BucketInfo;
    admin_list_open_keys(AdminListOpenKeysRequest) -> AdminListOpenKeysResponse;
    admin_list_multipart_uploads(AdminListMultipartUploadsRequest) -> AdminListMultipartUploadsResponse;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_skips_dead_oms_and_follows_the_leader() {
    let c = cluster().await;
    let leader = c.om.address().to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind follower");
    let follower = listener.local_addr().expect("addr").to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(OmServiceServer::new(Follower {
                leader: leader.clone(),
            }))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            ),
    );
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };

    // The leader is not in the list: the client learns it from the follower.
    let client = OmClient::connect_with(
        vec![dead, follower],
        OmClientOptions {
            retry_backoff: std::time::Duration::from_millis(10),
            ..Default::default()
        },
    )
    .expect("client");
    create_bucket(&client, "redirected", "alice").await;
    assert_eq!(client.current_address(), leader);
    let b = client.info_bucket(VOL, "redirected").await.expect("info");
    assert_eq!(b.owner, "alice");

    // The only OM is gone: bounded retries, then Unavailable.
    let lonely =
        OmClient::connect_with(vec![c.om.address().to_string()], OmClientOptions::default())
            .expect("client");
    c.om.stop().await.expect("stop");
    let e = lonely.info_volume(VOL).await.expect_err("OM stopped");
    assert!(e.is_unavailable(), "{e}");
    let _ = tx.send(());
}
