//! The gRPC face of OM: `OmService` over [`OzoneManager`], with per-RPC metrics. Errors leave
//! as `tonic::Status` with `x-om-status` (see [`crate::error`]); a write's client request id
//! arrives in the metadata (see [`crate::retry`]).

use std::sync::Arc;

use ozone_common::Metrics;
use ozone_proto::om::om_service_server::OmService;
use ozone_proto::om::*;
use tonic::{Request, Response, Status};

use crate::manager::OzoneManager;

pub struct OmGrpc {
    om: Arc<OzoneManager>,
    metrics: Metrics,
}

impl OmGrpc {
    pub fn new(om: Arc<OzoneManager>, metrics: Metrics) -> Self {
        OmGrpc { om, metrics }
    }
}

/// Serves one RPC: the client request id of its metadata (if any) is the id its write is
/// replicated under (see [`crate::retry`]).
macro_rules! rpc {
    ($self:ident, $op:literal, $method:ident, $req:ident) => {{
        let request_id = crate::retry::from_metadata($req.metadata()).map_err(Status::from)?;
        let call = $self.om.$method($req.into_inner());
        $self
            .metrics
            .time($op, crate::retry::scope(request_id, call))
            .await
            .map(Response::new)
            .map_err(Status::from)
    }};
}

#[tonic::async_trait]
impl OmService for OmGrpc {
    async fn create_volume(
        &self,
        r: Request<CreateVolumeRequest>,
    ) -> Result<Response<VolumeInfo>, Status> {
        rpc!(self, "CreateVolume", create_volume, r)
    }

    async fn info_volume(&self, r: Request<VolumeRef>) -> Result<Response<VolumeInfo>, Status> {
        rpc!(self, "InfoVolume", info_volume, r)
    }

    async fn list_volumes(
        &self,
        r: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        rpc!(self, "ListVolumes", list_volumes, r)
    }

    async fn delete_volume(&self, r: Request<VolumeRef>) -> Result<Response<Empty>, Status> {
        rpc!(self, "DeleteVolume", delete_volume, r)
    }

    async fn create_bucket(
        &self,
        r: Request<CreateBucketRequest>,
    ) -> Result<Response<BucketInfo>, Status> {
        rpc!(self, "CreateBucket", create_bucket, r)
    }

    async fn info_bucket(&self, r: Request<BucketRef>) -> Result<Response<BucketInfo>, Status> {
        rpc!(self, "InfoBucket", info_bucket, r)
    }

    async fn list_buckets(
        &self,
        r: Request<ListBucketsRequest>,
    ) -> Result<Response<ListBucketsResponse>, Status> {
        rpc!(self, "ListBuckets", list_buckets, r)
    }

    async fn delete_bucket(&self, r: Request<BucketRef>) -> Result<Response<Empty>, Status> {
        rpc!(self, "DeleteBucket", delete_bucket, r)
    }

    async fn create_bucket_link(
        &self,
        r: Request<CreateBucketLinkRequest>,
    ) -> Result<Response<BucketInfo>, Status> {
        rpc!(self, "CreateBucketLink", create_bucket_link, r)
    }

    async fn resolve_bucket(&self, r: Request<BucketRef>) -> Result<Response<BucketInfo>, Status> {
        rpc!(self, "ResolveBucket", resolve_bucket, r)
    }

    async fn open_key(
        &self,
        r: Request<OpenKeyRequest>,
    ) -> Result<Response<OpenKeyResponse>, Status> {
        rpc!(self, "OpenKey", open_key, r)
    }

    async fn allocate_block(
        &self,
        r: Request<AllocateKeyBlockRequest>,
    ) -> Result<Response<AllocateKeyBlockResponse>, Status> {
        rpc!(self, "AllocateBlock", allocate_block, r)
    }

    async fn commit_key(&self, r: Request<CommitKeyRequest>) -> Result<Response<KeyInfo>, Status> {
        rpc!(self, "CommitKey", commit_key, r)
    }

    async fn lookup_key(&self, r: Request<KeyRef>) -> Result<Response<KeyInfo>, Status> {
        rpc!(self, "LookupKey", lookup_key, r)
    }

    async fn list_keys(
        &self,
        r: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        rpc!(self, "ListKeys", list_keys, r)
    }

    async fn delete_key(&self, r: Request<KeyRef>) -> Result<Response<Empty>, Status> {
        rpc!(self, "DeleteKey", delete_key, r)
    }

    async fn delete_keys(
        &self,
        r: Request<DeleteKeysRequest>,
    ) -> Result<Response<DeleteKeysResponse>, Status> {
        rpc!(self, "DeleteKeys", delete_keys, r)
    }

    async fn initiate_multipart_upload(
        &self,
        r: Request<InitiateMultipartUploadRequest>,
    ) -> Result<Response<MultipartUploadInfo>, Status> {
        rpc!(
            self,
            "InitiateMultipartUpload",
            initiate_multipart_upload,
            r
        )
    }

    async fn complete_multipart_upload(
        &self,
        r: Request<CompleteMultipartUploadRequest>,
    ) -> Result<Response<KeyInfo>, Status> {
        rpc!(
            self,
            "CompleteMultipartUpload",
            complete_multipart_upload,
            r
        )
    }

    async fn abort_multipart_upload(
        &self,
        r: Request<MultipartUploadRef>,
    ) -> Result<Response<Empty>, Status> {
        rpc!(self, "AbortMultipartUpload", abort_multipart_upload, r)
    }

    async fn list_parts(
        &self,
        r: Request<ListPartsRequest>,
    ) -> Result<Response<ListPartsResponse>, Status> {
        rpc!(self, "ListParts", list_parts, r)
    }

    async fn list_multipart_uploads(
        &self,
        r: Request<ListMultipartUploadsRequest>,
    ) -> Result<Response<ListMultipartUploadsResponse>, Status> {
        rpc!(self, "ListMultipartUploads", list_multipart_uploads, r)
    }

    async fn set_key_tags(
        &self,
        r: Request<SetKeyTagsRequest>,
    ) -> Result<Response<KeyInfo>, Status> {
        rpc!(self, "SetKeyTags", set_key_tags, r)
    }

    async fn set_bucket_tags(
        &self,
        r: Request<SetBucketTagsRequest>,
    ) -> Result<Response<BucketInfo>, Status> {
        rpc!(self, "SetBucketTags", set_bucket_tags, r)
    }

    async fn get_s3_secret(
        &self,
        r: Request<S3SecretRequest>,
    ) -> Result<Response<S3Secret>, Status> {
        rpc!(self, "GetS3Secret", get_s3_secret, r)
    }

    async fn revoke_s3_secret(
        &self,
        r: Request<S3SecretRequest>,
    ) -> Result<Response<Empty>, Status> {
        rpc!(self, "RevokeS3Secret", revoke_s3_secret, r)
    }

    async fn verify_s3_signature(
        &self,
        r: Request<VerifyS3SignatureRequest>,
    ) -> Result<Response<VerifyS3SignatureResponse>, Status> {
        rpc!(self, "VerifyS3Signature", verify_s3_signature, r)
    }

    async fn set_bucket_acl(
        &self,
        r: Request<SetBucketAclRequest>,
    ) -> Result<Response<BucketInfo>, Status> {
        rpc!(self, "SetBucketAcl", set_bucket_acl, r)
    }

    async fn admin_list_open_keys(
        &self,
        r: Request<AdminListOpenKeysRequest>,
    ) -> Result<Response<AdminListOpenKeysResponse>, Status> {
        rpc!(self, "AdminListOpenKeys", admin_list_open_keys, r)
    }

    async fn admin_list_multipart_uploads(
        &self,
        r: Request<AdminListMultipartUploadsRequest>,
    ) -> Result<Response<AdminListMultipartUploadsResponse>, Status> {
        rpc!(
            self,
            "AdminListMultipartUploads",
            admin_list_multipart_uploads,
            r
        )
    }
}
