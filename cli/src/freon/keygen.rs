//! Ozone's key generators, all on the one [`runner`](super::runner):
//! - `omkg` (OmKeyGenerator): empty keys through OM alone (OpenKey asking for no block, then
//!   CommitKey), the namespace load test;
//! - `ockg` (OzoneClientKeyGenerator): keys with data through the Ozone client, the key writer
//!   `ozone sh key put` uses;
//! - `s3kg` (S3KeyGenerator): objects through the S3 gateway, one PUT each.
//!
//! Keys are named `<prefix>/<n>` as Ozone's; volume and bucket are created when missing.

use std::sync::Arc;

use bytes::Bytes;
use datanode_client::DatanodeClients;
use md5::{Digest, Md5};
use om_client::{OmClient, OmClientError, OmStatus};
use ozone_client::{KeyWriter, WriteSettings};
use ozone_common::OzoneConfig;
use ozone_common::config::parse_bytes;
use ozone_proto::om::{CommitKeyRequest, CreateBucketRequest, OpenKeyRequest};

use super::runner::{self, Common, Summary};
use super::s3::{S3, S3Opts};

type BoxError = Box<dyn std::error::Error>;

/// OM channels shared by the workers (each multiplexes many calls).
const OM_CHANNELS: usize = 4;
/// MD5 of nothing: the ETag of an empty key.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The Ozone bucket keys are written to (`omkg`, `ockg`).
#[derive(Debug, clap::Args)]
pub struct KeyBucket {
    /// Volume of the keys (created if missing).
    #[arg(short = 'v', long, default_value = "vol1")]
    pub volume: String,
    /// Bucket of the keys (created if missing).
    #[arg(short = 'b', long, default_value = "bucket1")]
    pub bucket: String,
}

#[derive(Debug, clap::Args)]
pub struct OmkgArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub target: KeyBucket,
}

#[derive(Debug, clap::Args)]
pub struct OckgArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub target: KeyBucket,
    /// Size of each key (`10KB`, `1MB`, bytes).
    #[arg(short = 's', long, default_value = "10240")]
    pub size: String,
}

#[derive(Debug, clap::Args)]
pub struct S3kgArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub s3: S3Opts,
    /// Bucket of the objects (created if missing).
    #[arg(short = 'b', long, default_value = "bucket1")]
    pub bucket: String,
    /// Size of each object (`10KB`, `1MB`, bytes).
    #[arg(short = 's', long, default_value = "10240")]
    pub size: String,
}

/// Prints the summary; an error when anything failed.
pub fn report(summary: &Summary) -> Result<(), BoxError> {
    print!("{}", summary.render());
    match (&summary.first_error, summary.failures) {
        (_, 0) => Ok(()),
        (Some(e), n) => Err(format!("{n} failed; the first: {e}").into()),
        (None, n) => Err(format!("{n} failed").into()),
    }
}

fn om_clients(cfg: &OzoneConfig) -> Result<Vec<OmClient>, BoxError> {
    (0..OM_CHANNELS)
        .map(|_| OmClient::connect(cfg.om_addresses()).map_err(Into::into))
        .collect()
}

fn exists_is_fine(r: Result<impl Sized, OmClientError>, status: OmStatus) -> Result<(), BoxError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.status() == status => Ok(()),
        Err(e) => Err(e.to_string().into()),
    }
}

/// Creates the volume and the bucket unless they exist (as Ozone's freon does).
async fn ensure_bucket(om: &OmClient, volume: &str, bucket: &str) -> Result<(), BoxError> {
    exists_is_fine(
        om.create_volume(volume, "").await,
        OmStatus::VolumeAlreadyExists,
    )?;
    exists_is_fine(
        om.create_bucket(CreateBucketRequest {
            volume: volume.to_string(),
            bucket: bucket.to_string(),
            owner: String::new(),
            replication: 0,
        })
        .await,
        OmStatus::BucketAlreadyExists,
    )
}

/// A repeatable pseudo-random body of `size` bytes.
fn data(size: u64) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(size as usize + 8);
    while (v.len() as u64) < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size as usize);
    Bytes::from(v)
}

fn size_arg(s: &str) -> Result<u64, BoxError> {
    parse_bytes(s).ok_or_else(|| format!("invalid --size {s}").into())
}

pub async fn omkg(cfg: &OzoneConfig, args: OmkgArgs) -> Result<(), BoxError> {
    let clients = Arc::new(om_clients(cfg)?);
    ensure_bucket(&clients[0], &args.target.volume, &args.target.bucket).await?;
    let prefix = args.common.prefix();
    let (volume, bucket) = (args.target.volume, args.target.bucket);
    let summary = runner::run(&args.common, "omkg", 0, move |i| {
        let om = clients[i as usize % clients.len()].clone();
        let key = format!("{prefix}/{i}");
        let (volume, bucket) = (volume.clone(), bucket.clone());
        async move {
            let open = om
                .open_key(OpenKeyRequest {
                    volume: volume.clone(),
                    bucket: bucket.clone(),
                    key: key.clone(),
                    empty: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("open {key}: {e}"))?;
            om.commit_key(CommitKeyRequest {
                volume,
                bucket,
                key: key.clone(),
                client_id: open.client_id,
                size: 0,
                etag: EMPTY_MD5.to_string(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("commit {key}: {e}"))?;
            Ok(())
        }
    })
    .await;
    report(&summary)
}

pub async fn ockg(cfg: &OzoneConfig, args: OckgArgs) -> Result<(), BoxError> {
    let size = size_arg(&args.size)?;
    let clients = Arc::new(om_clients(cfg)?);
    ensure_bucket(&clients[0], &args.target.volume, &args.target.bucket).await?;
    let settings = WriteSettings::from_config(cfg)?;
    let dn = DatanodeClients::from_config(cfg)?;
    let scm = scm_client::ScmClient::connect_service(&cfg.scm_client_addresses()).ok();
    let body = data(size);
    let etag = hex::encode(Md5::digest(&body));
    let prefix = args.common.prefix();
    let (volume, bucket) = (args.target.volume, args.target.bucket);
    let summary = runner::run(&args.common, "ockg", size, move |i| {
        let om = clients[i as usize % clients.len()].clone();
        let key = format!("{prefix}/{i}");
        let (volume, bucket) = (volume.clone(), bucket.clone());
        let (dn, settings, body, etag) = (dn.clone(), settings.clone(), body.clone(), etag.clone());
        let scm = scm.clone();
        async move {
            let fail = |e: &dyn std::fmt::Display| format!("{key}: {e}");
            let mut w = KeyWriter::open(
                &om,
                &dn,
                settings,
                OpenKeyRequest {
                    volume: volume.clone(),
                    bucket: bucket.clone(),
                    key: key.clone(),
                    size_hint: size,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| fail(&e))?
            .with_scm(scm);
            w.write(&body).await.map_err(|e| fail(&e))?;
            let written = w.finish().await.map_err(|e| fail(&e))?;
            om.commit_key(CommitKeyRequest {
                volume,
                bucket,
                key: key.clone(),
                client_id: written.client_id,
                locations: written.locations,
                size: written.size,
                etag,
                ..Default::default()
            })
            .await
            .map_err(|e| fail(&e))?;
            Ok(())
        }
    })
    .await;
    report(&summary)
}

/// Creates the bucket unless it exists (409 from a bucket already there is fine).
pub async fn ensure_s3_bucket(s3: &S3, bucket: &str) -> Result<(), BoxError> {
    let url = s3.url(bucket);
    let r = s3.request(reqwest::Method::PUT, &url, &[]).send().await?;
    if !r.status().is_success() && r.status().as_u16() != 409 {
        return Err(format!("creating bucket {bucket}: {}", r.status()).into());
    }
    Ok(())
}

pub async fn s3kg(args: S3kgArgs) -> Result<(), BoxError> {
    let size = size_arg(&args.size)?;
    let s3 = S3::new(&args.s3, args.common.threads)?;
    ensure_s3_bucket(&s3, &args.bucket).await?;
    let body = data(size);
    let prefix = args.common.prefix();
    let bucket = args.bucket;
    let summary = runner::run(&args.common, "s3kg", size, move |i| {
        let url = s3.url(&format!("{bucket}/{prefix}/{i}"));
        let req = s3
            .request(reqwest::Method::PUT, &url, &[])
            .header("content-length", size)
            .body(body.clone());
        async move {
            let r = req.send().await.map_err(|e| format!("PUT {url}: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("PUT {url}: {}", r.status()));
            }
            Ok(())
        }
    })
    .await;
    report(&summary)
}
