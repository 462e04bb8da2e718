//! `ozone freon`: load generators with Ozone's names, on one runner ([`runner`]: workers,
//! counting, a latency histogram, a progress line and a parseable summary):
//! - `omkg`, `ockg`, `s3kg` ([`keygen`]): keys through OM alone, through the Ozone client, and
//!   objects through the S3 gateway;
//! - `list-probe` ([`list_probe`]): listing page times at the start, middle and end of a bucket;
//! - `s3bench` ([`s3bench`]): large-object MiB/s and small-object ops/s through S3.

mod histogram;
mod keygen;
mod list_probe;
mod runner;
mod s3;
mod s3bench;

use clap::Subcommand;
use ozone_common::OzoneConfig;

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, Subcommand)]
pub enum FreonCmd {
    /// S3 throughput benchmark: large-object MiB/s and small-object ops/s, PUT then GET.
    S3bench(s3bench::S3benchArgs),
    /// OM key generator: empty keys through OM alone (metadata only).
    #[command(name = "omkg", alias = "om-key-generator")]
    Omkg(keygen::OmkgArgs),
    /// Ozone client key generator: keys with data through the Ozone client.
    #[command(name = "ockg", alias = "ozone-client-key-generator")]
    Ockg(keygen::OckgArgs),
    /// S3 key generator: objects through the S3 gateway.
    #[command(name = "s3kg", alias = "s3-key-generator")]
    S3kg(keygen::S3kgArgs),
    /// Times listing pages (ListObjectsV2 with and without a delimiter, ListObjects,
    /// ListMultipartUploads, ListBuckets) at the start, middle and end of a bucket.
    #[command(name = "list-probe", alias = "lp")]
    ListProbe(list_probe::ListProbeArgs),
}

pub async fn run(cfg: &OzoneConfig, cmd: FreonCmd) -> Result<(), BoxError> {
    match cmd {
        FreonCmd::S3bench(args) => s3bench::run(args).await,
        FreonCmd::Omkg(args) => keygen::omkg(cfg, args).await,
        FreonCmd::Ockg(args) => keygen::ockg(cfg, args).await,
        FreonCmd::S3kg(args) => keygen::s3kg(args).await,
        FreonCmd::ListProbe(args) => list_probe::run(args).await,
    }
}
