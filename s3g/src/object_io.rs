//! Object bytes between the S3 gateway and the datanodes, over the shared key streaming of
//! the `ozone-client` crate (also used by `ozone sh key put|get`).
//!
//! Write: [`KeyWriter`] opens the key with OM and streams the body to the replicas of each
//! block (rewriting a block elsewhere when its replicas fail, within
//! `ozone.client.stream.buffer.max.size`); when the body ended and verified, OM commits the key
//! here. Nothing is committed for a body that failed its checks.
//!
//! Read: [`read_object`] is `ozone_client::read_key`: verified, failing-over block reads.

use std::collections::HashMap;

use bytes::Bytes;
use futures::Stream;
use ozone_client::{KeyIoError, KeyWriter};
use ozone_proto::om::{CommitKeyRequest, KeyInfo, OpenKeyRequest, WriteCondition};

pub use ozone_client::read_key as read_object;

use crate::body::{Body, BodySpec, BodySummary};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::gateway::Gateway;

/// Which key a write produces (or which multipart part).
pub struct WriteTarget<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub owner: &'a str,
    pub upload: Option<(String, u32)>,
    pub attrs: KeyAttrs,
}

/// What a new key gets besides its bytes (a multipart part takes none of it).
#[derive(Clone, Debug, Default)]
pub struct KeyAttrs {
    pub metadata: HashMap<String, String>,
    pub tags: HashMap<String, String>,
    /// An S3 conditional write, checked by OM atomically with the commit.
    pub condition: Option<WriteCondition>,
}

impl From<HashMap<String, String>> for KeyAttrs {
    fn from(metadata: HashMap<String, String>) -> Self {
        KeyAttrs {
            metadata,
            ..KeyAttrs::default()
        }
    }
}

/// The S3 answer to a failed key write: OM's statuses mapped, datanode failures 503.
fn key_io_error(e: KeyIoError, resource: &str) -> S3Error {
    match e {
        KeyIoError::Om(e) => S3Error::from_om(e, resource),
        KeyIoError::Datanode(e) => {
            tracing::warn!(error = %e, "datanode write failed");
            S3Error::msg(
                S3ErrorCode::ServiceUnavailable,
                format!("storing the data failed: {e}"),
            )
        }
        KeyIoError::Internal(m) => S3Error::internal(m),
    }
}

/// Streams `body` into a new key version (or part) and commits it once the body verified.
pub async fn write_object<S, E>(
    gw: &Gateway,
    target: WriteTarget<'_>,
    mut body: Body<S>,
    spec: &BodySpec,
) -> S3Result<(BodySummary, KeyInfo)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let volume = gw.config.volume.clone();
    let resource = format!("/{}/{}", target.bucket, target.key);
    let (upload_id, part_number) = target.upload.clone().unwrap_or_default();
    let mut writer = KeyWriter::open(
        &gw.om,
        &gw.dn,
        gw.config.write.clone(),
        OpenKeyRequest {
            volume: volume.clone(),
            bucket: target.bucket.to_string(),
            key: target.key.to_string(),
            size_hint: spec.decoded_length.unwrap_or(0),
            replication: 0,
            owner: target.owner.to_string(),
            upload_id: upload_id.clone(),
            part_number,
            empty: false,
        },
    )
    .await
    .map_err(|e| key_io_error(e, &resource))?
    .with_scm(gw.scm.clone());
    while let Some(piece) = body.next().await? {
        writer
            .write(&piece)
            .await
            .map_err(|e| key_io_error(e, &resource))?;
    }
    let written = writer
        .finish()
        .await
        .map_err(|e| key_io_error(e, &resource))?;
    let summary = body.finish(spec)?;
    let KeyAttrs {
        mut metadata,
        tags,
        condition,
    } = target.attrs;
    if let Some((algo, value)) = &summary.checksum {
        metadata.insert(algo.header().to_string(), value.clone());
    }
    let info = gw
        .om
        .commit_key(CommitKeyRequest {
            volume,
            bucket: target.bucket.to_string(),
            key: target.key.to_string(),
            client_id: written.client_id,
            locations: written.locations,
            size: summary.len,
            etag: hex::encode(summary.md5),
            metadata,
            upload_id,
            part_number,
            tags,
            condition,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &resource))?;
    Ok((summary, info))
}
