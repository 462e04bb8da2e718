//! `ozone sh` (alias `shell`): volumes, buckets (and bucket links) and keys, as Ozone's shell.
//!
//! Addresses are `[o3://om-host[:port]/]volume/bucket/key` ([`address`]). Info and list print
//! JSON with Ozone's field names; failures print OM's status and message
//! (`VOLUME_NOT_FOUND volume vol9 not found`) and exit non-zero. `key put` and `key get` stream
//! the file through the same key I/O as the S3 gateway (`ozone-client`): nothing is held
//! whole in memory, and the key is committed only once every block is durably written.

mod address;
mod progress;

use std::path::PathBuf;

use clap::Subcommand;
use datanode_client::DatanodeClients;
use futures::StreamExt;
use md5::{Digest, Md5};
use om_client::{OmClient, OmClientError};
use ozone_client::{KeyIoError, KeyWriter, WriteSettings};
use ozone_common::OzoneConfig;
use ozone_proto::om::{
    BucketInfo, CommitKeyRequest, CreateBucketLinkRequest, CreateBucketRequest, KeyInfo,
    ListBucketsRequest, ListKeysRequest, ListVolumesRequest, OpenKeyRequest, VolumeInfo,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use address::Address;
use ozone_common::config::keys;

/// Bytes read from a local file per write call.
const READ_BUFFER: usize = 1 << 20;
/// Entries a list shows unless `--length` says otherwise (Ozone's default).
const DEFAULT_LIST_LENGTH: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// OM's status name and message, as Ozone's shell prints them.
    #[error("{} {message}", status.as_str_name())]
    Om {
        status: om_client::OmStatus,
        message: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
}

impl From<OmClientError> for ShellError {
    fn from(e: OmClientError) -> Self {
        match e {
            OmClientError::Status {
                status, message, ..
            } => ShellError::Om { status, message },
            other => ShellError::Io(other.to_string()),
        }
    }
}

impl From<KeyIoError> for ShellError {
    fn from(e: KeyIoError) -> Self {
        match e {
            KeyIoError::Om(e) => e.into(),
            other => ShellError::Io(other.to_string()),
        }
    }
}

type Result<T, E = ShellError> = std::result::Result<T, E>;

#[derive(Debug, Subcommand)]
pub enum ShellCmd {
    /// Volume operations.
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
    },
    /// Bucket operations (including links).
    Bucket {
        #[command(subcommand)]
        cmd: BucketCmd,
    },
    /// Key operations.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Creates a volume: `volume create [-u owner] /vol`.
    Create {
        address: String,
        /// Owner of the volume (default: admin).
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
    },
    /// Prints a volume as JSON.
    Info { address: String },
    /// Lists volumes as a JSON array: `volume list [o3://om/]`.
    #[command(alias = "ls")]
    List {
        address: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Deletes an empty volume.
    Delete { address: String },
}

#[derive(Debug, Subcommand)]
pub enum BucketCmd {
    /// Creates a bucket: `bucket create /vol/bucket`.
    Create {
        address: String,
        /// Owner (default: the volume's owner).
        #[arg(short = 'u', long = "user")]
        user: Option<String>,
        /// ONE or THREE (default: the server's).
        #[arg(short = 'r', long)]
        replication: Option<String>,
    },
    /// Prints a bucket (or link) as JSON.
    Info { address: String },
    /// Lists the buckets of a volume as a JSON array.
    #[command(alias = "ls")]
    List {
        address: String,
        #[command(flatten)]
        page: Page,
    },
    /// Deletes an empty bucket; deleting a link leaves its source alone.
    Delete { address: String },
    /// Makes `target` a link to `source`: `bucket link /vol1/bucket1 /s3v/common-bucket`.
    Link { source: String, target: String },
    /// Where an S3 bucket's data lives (its volume and bucket, links followed).
    Path { bucket: String },
}

/// The paging options every `list` takes.
#[derive(Debug, clap::Args)]
pub struct Page {
    /// Only names starting with this.
    #[arg(short = 'p', long)]
    prefix: Option<String>,
    /// List after this name.
    #[arg(short = 's', long)]
    start: Option<String>,
    /// At most this many.
    #[arg(short = 'l', long)]
    length: Option<u32>,
}

impl Page {
    fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_default()
    }

    fn start_after(&self) -> String {
        self.start.clone().unwrap_or_default()
    }

    fn max(&self) -> u32 {
        self.length.unwrap_or(DEFAULT_LIST_LENGTH)
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Uploads a local file: `key put /vol/bucket/key localfile`.
    Put {
        address: String,
        file: PathBuf,
        /// ONE or THREE (default: the bucket's).
        #[arg(short = 'r', long)]
        replication: Option<String>,
        /// Draw the progress bar even when stderr is not a terminal.
        #[arg(long, conflicts_with = "no_progress")]
        progress: bool,
        /// Never draw the progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Downloads a key: `key get /vol/bucket/key localfile` (a directory keeps the key's name).
    Get {
        address: String,
        file: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        #[arg(long, conflicts_with = "no_progress")]
        progress: bool,
        #[arg(long)]
        no_progress: bool,
    },
    /// Prints a key as JSON, with its block locations.
    Info { address: String },
    /// Lists the keys of a bucket as a JSON array.
    #[command(alias = "ls")]
    List {
        address: String,
        #[command(flatten)]
        page: Page,
    },
    /// Deletes a key.
    Delete { address: String },
}

fn om(cfg: &OzoneConfig, addr: &Address) -> Result<OmClient> {
    OmClient::connect(addr.om_addresses(cfg)).map_err(|e| ShellError::Io(e.to_string()))
}

/// Prints a line on stdout; a closed pipe (`| head`) ends the output quietly instead of
/// panicking as `println!` does.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn print_json(v: &Value) {
    say(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
}

/// ISO-8601 in UTC, as Ozone prints instants.
fn instant(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn replication_json(factor: u32) -> Value {
    json!({
        "replicationFactor": if factor == 1 { "ONE" } else { "THREE" },
        "requiredNodes": factor,
        "replicationType": "RATIS",
    })
}

fn parse_replication(r: Option<&str>) -> Result<u32> {
    match r.map(str::to_ascii_uppercase).as_deref() {
        None => Ok(0),
        Some("ONE" | "1") => Ok(1),
        Some("THREE" | "3") => Ok(3),
        Some(other) => Err(ShellError::Usage(format!(
            "invalid replication {other}: ONE or THREE"
        ))),
    }
}

fn volume_json(v: &VolumeInfo) -> Value {
    json!({
        "metadata": {},
        "name": v.name,
        "admin": v.owner,
        "owner": v.owner,
        "quotaInBytes": -1,
        "quotaInNamespace": -1,
        "creationTime": instant(v.creation_time_ms),
        "modificationTime": instant(v.creation_time_ms),
    })
}

fn bucket_json(b: &BucketInfo) -> Value {
    let mut v = json!({
        "metadata": {},
        "volumeName": b.volume,
        "name": b.name,
        "storageType": "DISK",
        "versioning": false,
        "creationTime": instant(b.creation_time_ms),
        "modificationTime": instant(b.creation_time_ms),
        "quotaInBytes": -1,
        "quotaInNamespace": -1,
        "bucketLayout": "OBJECT_STORE",
        "owner": b.owner,
        "link": !b.source_bucket.is_empty(),
    });
    if b.source_bucket.is_empty() {
        v["replicationConfig"] = replication_json(b.replication);
    } else {
        v["sourceVolume"] = json!(b.source_volume);
        v["sourceBucket"] = json!(b.source_bucket);
    }
    v
}

fn key_json(k: &KeyInfo, with_locations: bool) -> Value {
    let mut v = json!({
        "volumeName": k.volume,
        "bucketName": k.bucket,
        "name": k.key,
        "owner": k.owner,
        "dataSize": k.size,
        "creationTime": instant(k.creation_time_ms),
        "modificationTime": instant(k.modification_time_ms),
        "replicationConfig": replication_json(k.replication),
        "eTag": k.etag,
        "metadata": k.metadata,
    });
    if with_locations {
        v["ozoneKeyLocations"] = Value::Array(
            k.locations
                .iter()
                .map(|l| {
                    let id = l.block_id.unwrap_or_default();
                    json!({
                        "containerID": id.container_id,
                        "localID": id.local_id,
                        "length": l.length,
                        "offset": 0,
                        "keyOffset": l.offset,
                    })
                })
                .collect(),
        );
    }
    v
}

pub async fn run(cfg: &OzoneConfig, cmd: ShellCmd) -> Result<()> {
    match cmd {
        ShellCmd::Volume { cmd } => volume(cfg, cmd).await,
        ShellCmd::Bucket { cmd } => bucket(cfg, cmd).await,
        ShellCmd::Key { cmd } => key(cfg, cmd).await,
    }
}

async fn volume(cfg: &OzoneConfig, cmd: VolumeCmd) -> Result<()> {
    match cmd {
        VolumeCmd::Create { address, user } => {
            let a = Address::volume_only(&address).map_err(ShellError::Usage)?;
            om(cfg, &a)?
                .create_volume(&a.volume, user.as_deref().unwrap_or_default())
                .await?;
        }
        VolumeCmd::Info { address } => {
            let a = Address::volume_only(&address).map_err(ShellError::Usage)?;
            print_json(&volume_json(&om(cfg, &a)?.info_volume(&a.volume).await?));
        }
        VolumeCmd::List { address, page } => {
            let a = Address::parse(address.as_deref().unwrap_or("/")).map_err(ShellError::Usage)?;
            let resp = om(cfg, &a)?
                .list_volumes(ListVolumesRequest {
                    prefix: page.prefix(),
                    start_after: page.start_after(),
                    max: page.max(),
                })
                .await?;
            print_json(&Value::Array(
                resp.volumes.iter().map(volume_json).collect(),
            ));
        }
        VolumeCmd::Delete { address } => {
            let a = Address::volume_only(&address).map_err(ShellError::Usage)?;
            om(cfg, &a)?.delete_volume(&a.volume).await?;
            say(&format!("Volume {} is deleted", a.volume));
        }
    }
    Ok(())
}

async fn bucket(cfg: &OzoneConfig, cmd: BucketCmd) -> Result<()> {
    match cmd {
        BucketCmd::Create {
            address,
            user,
            replication,
        } => {
            let a = Address::bucket_only(&address).map_err(ShellError::Usage)?;
            om(cfg, &a)?
                .create_bucket(CreateBucketRequest {
                    volume: a.volume.clone(),
                    bucket: a.bucket.clone(),
                    owner: user.unwrap_or_default(),
                    replication: parse_replication(replication.as_deref())?,
                })
                .await?;
        }
        BucketCmd::Info { address } => {
            let a = Address::bucket_only(&address).map_err(ShellError::Usage)?;
            print_json(&bucket_json(
                &om(cfg, &a)?.info_bucket(&a.volume, &a.bucket).await?,
            ));
        }
        BucketCmd::List { address, page } => {
            let a = Address::volume_only(&address).map_err(ShellError::Usage)?;
            let resp = om(cfg, &a)?
                .list_buckets(ListBucketsRequest {
                    volume: a.volume.clone(),
                    prefix: page.prefix(),
                    start_after: page.start_after(),
                    max: page.max(),
                })
                .await?;
            print_json(&Value::Array(
                resp.buckets.iter().map(bucket_json).collect(),
            ));
        }
        BucketCmd::Delete { address } => {
            let a = Address::bucket_only(&address).map_err(ShellError::Usage)?;
            om(cfg, &a)?.delete_bucket(&a.volume, &a.bucket).await?;
            say(&format!("Bucket {} is deleted", a.bucket));
        }
        BucketCmd::Link { source, target } => {
            let s = Address::bucket_only(&source).map_err(ShellError::Usage)?;
            let t = Address::bucket_only(&target).map_err(ShellError::Usage)?;
            om(cfg, &t)?
                .create_bucket_link(CreateBucketLinkRequest {
                    volume: t.volume.clone(),
                    bucket: t.bucket.clone(),
                    owner: String::new(),
                    source_volume: s.volume.clone(),
                    source_bucket: s.bucket.clone(),
                })
                .await?;
        }
        BucketCmd::Path { bucket } => {
            let volume = cfg.get(keys::OZONE_S3G_VOLUME_NAME);
            let a = Address::parse(&format!("/{volume}/{bucket}")).map_err(ShellError::Usage)?;
            let b = om(cfg, &a)?.resolve_bucket(&volume, &bucket).await?;
            if (b.volume.as_str(), b.name.as_str()) != (volume.as_str(), bucket.as_str()) {
                say(&format!(
                    "S3 bucket {bucket} is a link to /{}/{}",
                    b.volume, b.name
                ));
            }
            say(&format!("Volume name for S3Bucket is : {}", b.volume));
            say(&format!("Bucket name for S3Bucket is : {}", b.name));
            say(&format!(
                "Ozone FileSystem Uri is : ofs://{}/{}",
                b.volume, b.name
            ));
        }
    }
    Ok(())
}

fn progress_flag(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

async fn key(cfg: &OzoneConfig, cmd: KeyCmd) -> Result<()> {
    match cmd {
        KeyCmd::Put {
            address,
            file,
            replication,
            progress,
            no_progress,
        } => {
            let a = Address::key(&address).map_err(ShellError::Usage)?;
            let replication = parse_replication(replication.as_deref())?;
            put(
                cfg,
                &a,
                &file,
                replication,
                progress_flag(progress, no_progress),
            )
            .await
        }
        KeyCmd::Get {
            address,
            file,
            force,
            progress,
            no_progress,
        } => {
            let a = Address::key(&address).map_err(ShellError::Usage)?;
            get(cfg, &a, &file, force, progress_flag(progress, no_progress)).await
        }
        KeyCmd::Info { address } => {
            let a = Address::key(&address).map_err(ShellError::Usage)?;
            let k = om(cfg, &a)?
                .lookup_key(&a.volume, &a.bucket, &a.key)
                .await?;
            print_json(&key_json(&k, true));
            Ok(())
        }
        KeyCmd::List { address, page } => {
            let a = Address::bucket_only(&address).map_err(ShellError::Usage)?;
            list_keys(&om(cfg, &a)?, &a, &page).await
        }
        KeyCmd::Delete { address } => {
            let a = Address::key(&address).map_err(ShellError::Usage)?;
            let om = om(cfg, &a)?;
            // OM's DeleteKey succeeds on a missing key (S3's rule); the shell reports it.
            om.lookup_key(&a.volume, &a.bucket, &a.key).await?;
            om.delete_key(&a.volume, &a.bucket, &a.key).await?;
            Ok(())
        }
    }
}

/// Keys OM returns per ListKeys call at most (its page cap).
const OM_PAGE: u32 = 1000;

/// `key list`: up to `--length` keys, fetched from OM a page at a time and printed as they
/// come, so a long listing never sits whole in memory (a JSON array, as Ozone prints it).
async fn list_keys(om: &OmClient, a: &Address, page: &Page) -> Result<()> {
    let mut remaining = page.max();
    let mut start_after = page.start_after();
    let mut out = JsonArray::new(std::io::stdout());
    while remaining > 0 {
        let want = remaining.min(OM_PAGE);
        let resp = om
            .list_keys(ListKeysRequest {
                volume: a.volume.clone(),
                bucket: a.bucket.clone(),
                prefix: page.prefix(),
                start_after: start_after.clone(),
                delimiter: String::new(),
                max_keys: want,
            })
            .await?;
        for k in &resp.keys {
            out.push(&key_json(k, false));
        }
        remaining -= (resp.keys.len() as u32).min(remaining);
        match resp.keys.last() {
            Some(last) if resp.truncated => start_after = last.key.clone(),
            _ => break,
        }
    }
    out.finish();
    Ok(())
}

/// Writes a JSON array element by element, laid out as `serde_json::to_string_pretty` lays
/// out the whole array. Write errors (a closed pipe: `| head`) end the output quietly.
struct JsonArray<W: std::io::Write> {
    out: W,
    started: bool,
}

impl<W: std::io::Write> JsonArray<W> {
    fn new(out: W) -> Self {
        JsonArray {
            out,
            started: false,
        }
    }

    fn push(&mut self, v: &Value) {
        let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
        let sep = if self.started { ",\n  " } else { "[\n  " };
        let _ = write!(self.out, "{sep}{}", text.replace('\n', "\n  "));
        self.started = true;
    }

    fn finish(mut self) {
        let end = if self.started { "\n]\n" } else { "[]\n" };
        let _ = self
            .out
            .write_all(end.as_bytes())
            .and_then(|()| self.out.flush());
    }
}

fn io_err(what: &str, path: &std::path::Path, e: std::io::Error) -> ShellError {
    ShellError::Io(format!("{what} {}: {e}", path.display()))
}

async fn put(
    cfg: &OzoneConfig,
    a: &Address,
    file: &std::path::Path,
    replication: u32,
    progress: Option<bool>,
) -> Result<()> {
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(|e| io_err("cannot open", file, e))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| io_err("cannot stat", file, e))?
        .len();
    let om = om(cfg, a)?;
    let dn = DatanodeClients::from_config(cfg).map_err(|e| ShellError::Usage(e.to_string()))?;
    let settings = WriteSettings::from_config(cfg).map_err(|e| ShellError::Usage(e.to_string()))?;
    let mut writer = KeyWriter::open(
        &om,
        &dn,
        settings,
        OpenKeyRequest {
            volume: a.volume.clone(),
            bucket: a.bucket.clone(),
            key: a.key.clone(),
            size_hint: len,
            replication,
            owner: String::new(),
            upload_id: String::new(),
            part_number: 0,
            empty: false,
        },
    )
    .await?
    .with_scm(scm_client::ScmClient::connect_service(&cfg.scm_client_addresses()).ok());
    let mut bar = progress::Progress::new(&a.key, len, progress::wanted(progress));
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| io_err("cannot read", file, e))?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        writer.write(&buf[..n]).await?;
        bar.add(n as u64);
    }
    let written = writer.finish().await?;
    bar.finish();
    om.commit_key(CommitKeyRequest {
        volume: a.volume.clone(),
        bucket: a.bucket.clone(),
        key: a.key.clone(),
        client_id: written.client_id,
        locations: written.locations,
        size: written.size,
        etag: hex::encode(md5.finalize()),
        metadata: Default::default(),
        upload_id: String::new(),
        part_number: 0,
        ..Default::default()
    })
    .await?;
    Ok(())
}

async fn get(
    cfg: &OzoneConfig,
    a: &Address,
    file: &std::path::Path,
    force: bool,
    progress: Option<bool>,
) -> Result<()> {
    let mut path = file.to_path_buf();
    if path.is_dir() {
        let name = a.key.rsplit('/').next().unwrap_or(&a.key);
        path.push(name);
    }
    if path.exists() && !force {
        return Err(ShellError::Usage(format!(
            "{} exists. Download would overwrite an existing file. Exiting.",
            path.display()
        )));
    }
    let om = om(cfg, a)?;
    let info = om.lookup_key(&a.volume, &a.bucket, &a.key).await?;
    let scm = scm_client::ScmClient::connect_service(&cfg.scm_client_addresses()).ok();
    let dn = DatanodeClients::from_config(cfg).map_err(|e| ShellError::Usage(e.to_string()))?;
    // Written aside and renamed into place once complete: a failed download leaves no file.
    let part = path.with_file_name(format!(
        ".{}.part-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = download(&dn, scm, &info, &part, &a.key, progress).await;
    match result {
        Ok(()) => tokio::fs::rename(&part, &path)
            .await
            .map_err(|e| io_err("cannot rename into", &path, e)),
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

async fn download(
    dn: &DatanodeClients,
    scm: Option<scm_client::ScmClient>,
    info: &KeyInfo,
    path: &std::path::Path,
    key: &str,
    progress: Option<bool>,
) -> Result<()> {
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(|e| io_err("cannot create", path, e))?;
    let mut bar = progress::Progress::new(key, info.size, progress::wanted(progress));
    let mut stream = Box::pin(ozone_client::read_key(dn, scm, info, 0, info.size));
    let mut got = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| ShellError::Io(format!("reading {key}: {e}")))?;
        out.write_all(&piece)
            .await
            .map_err(|e| io_err("cannot write", path, e))?;
        got += piece.len() as u64;
        bar.add(piece.len() as u64);
    }
    out.sync_all()
        .await
        .map_err(|e| io_err("cannot sync", path, e))?;
    bar.finish();
    if got != info.size {
        return Err(ShellError::Io(format!(
            "read {got} bytes of {key}, expected {}",
            info.size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(items: &[Value]) -> String {
        let mut buf = Vec::new();
        let mut a = JsonArray::new(&mut buf);
        for v in items {
            a.push(v);
        }
        a.finish();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_streamed_array_reads_as_the_pretty_printed_one() {
        for items in [
            vec![],
            vec![json!({"name": "k1", "metadata": {}})],
            vec![json!({"name": "k1", "n": [1, 2]}), json!({"name": "k2"})],
        ] {
            let whole = serde_json::to_string_pretty(&Value::Array(items.clone())).unwrap();
            assert_eq!(streamed(&items), format!("{whole}\n"));
        }
    }
}
