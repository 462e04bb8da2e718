//! What unfinished writes leave behind, for the administrator (over OM's `OmService`):
//! `ozone admin om list-open-keys` (writes never committed, oldest first; OM expires them
//! after `ozone.om.open.key.expire.threshold`) and `ozone admin multipart list|abort`
//! (incomplete multipart uploads of every bucket; they do not expire, an admin aborts them).
//! With security on these need the admin credential (`$OZONE_ADMIN_SECRET` or
//! `ozone.om.admin.secret.file`).

use std::time::Duration;

use clap::Subcommand;
use om_client::OmClient;
use om_client::proto::{
    AdminListMultipartUploadsRequest, AdminListOpenKeysRequest, AdminOpenKey, MultipartUploadInfo,
};
use ozone_common::OzoneConfig;
use ozone_common::config::parse_duration;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error>;

/// Most rows asked for per page.
const PAGE: u32 = 1000;

#[derive(Debug, Subcommand)]
pub enum MultipartCmd {
    /// Incomplete multipart uploads, in volume/bucket/key order.
    List {
        /// Only this volume.
        #[arg(long)]
        volume: Option<String>,
        /// Only this bucket (needs --volume; S3 buckets live in the volume s3v).
        #[arg(long, requires = "volume")]
        bucket: Option<String>,
        /// Only uploads initiated at least this long ago (e.g. 7d, 12h, 30m).
        #[arg(long, value_parser = duration_arg)]
        older_than: Option<Duration>,
        /// Print at most this many.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Print JSON: an array of {"volume", "bucket", "key", "upload_id",
        /// "creation_time_ms", "owner"}.
        #[arg(long)]
        json: bool,
    },
    /// Aborts incomplete uploads: one (`/volume/bucket/key UPLOAD_ID`), or with --older-than
    /// every upload initiated at least that long ago (of --volume / --bucket when given).
    /// Their parts' blocks are released.
    Abort {
        /// `/volume/bucket/key` of the upload.
        #[arg(requires = "upload_id", conflicts_with = "older_than")]
        key: Option<String>,
        upload_id: Option<String>,
        #[arg(long)]
        volume: Option<String>,
        #[arg(long, requires = "volume")]
        bucket: Option<String>,
        #[arg(long, value_parser = duration_arg, required_unless_present = "key")]
        older_than: Option<Duration>,
    },
}

pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("not a duration (like 7d, 12h, 30m, 10s): {s}"))
}

fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn client(cfg: &OzoneConfig) -> Result<OmClient, BoxError> {
    Ok(OmClient::connect(cfg.om_addresses())?)
}

fn now_ms() -> u64 {
    ozone_common::now_ms()
}

/// `12d`, `3h`, `5m`, `40s`: the largest unit.
fn age(created_ms: u64) -> String {
    let s = now_ms().saturating_sub(created_ms) / 1000;
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `ozone admin om list-open-keys`.
pub async fn list_open_keys(
    cfg: &OzoneConfig,
    older_than: Option<Duration>,
    limit: usize,
    json: bool,
) -> Result<String, BoxError> {
    let om = client(cfg)?;
    let admin_token = crate::s3::admin_token(cfg)?;
    let mut rows: Vec<AdminOpenKey> = Vec::new();
    let mut start_after = Vec::new();
    while rows.len() < limit {
        let page = om
            .admin_list_open_keys(AdminListOpenKeysRequest {
                admin_token: admin_token.clone(),
                older_than_ms: millis(older_than),
                max: PAGE,
                start_after,
            })
            .await?;
        rows.extend(page.open_keys);
        if page.next_token.is_empty() {
            break;
        }
        start_after = page.next_token;
    }
    rows.truncate(limit);
    if json {
        let v: Vec<Value> = rows
            .iter()
            .map(|k| {
                json!({
                    "volume": k.volume,
                    "bucket": k.bucket,
                    "key": k.key,
                    "client_id": k.client_id,
                    "creation_time_ms": k.creation_time_ms,
                    "owner": k.owner,
                    "blocks": k.blocks,
                    "upload_id": k.upload_id,
                    "part_number": k.part_number,
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
    }
    let mut out = format!(
        "{:<6} {:>6} {:>20}  {:<40} {}\n",
        "AGE", "BLOCKS", "CLIENT ID", "KEY", "PART"
    );
    for k in &rows {
        let part = if k.upload_id.is_empty() {
            String::new()
        } else {
            format!("part {} of upload {}", k.part_number, k.upload_id)
        };
        out.push_str(&format!(
            "{:<6} {:>6} {:>20}  {:<40} {part}\n",
            age(k.creation_time_ms),
            k.blocks,
            k.client_id,
            format!("/{}/{}/{}", k.volume, k.bucket, k.key)
        ));
    }
    out.push_str(&format!("{} open keys\n", rows.len()));
    Ok(out)
}

/// Every upload matching the filters, up to `limit`.
async fn uploads(
    om: &OmClient,
    admin_token: &str,
    volume: Option<String>,
    bucket: Option<String>,
    older_than: Option<Duration>,
    limit: usize,
) -> Result<Vec<MultipartUploadInfo>, BoxError> {
    let mut rows = Vec::new();
    let mut start_after = Vec::new();
    while rows.len() < limit {
        let page = om
            .admin_list_multipart_uploads(AdminListMultipartUploadsRequest {
                admin_token: admin_token.to_string(),
                volume: volume.clone().unwrap_or_default(),
                bucket: bucket.clone().unwrap_or_default(),
                older_than_ms: millis(older_than),
                max: PAGE,
                start_after,
            })
            .await?;
        rows.extend(page.uploads);
        if page.next_token.is_empty() {
            break;
        }
        start_after = page.next_token;
    }
    rows.truncate(limit);
    Ok(rows)
}

/// `/volume/bucket/key` split in three.
fn key_path(path: &str) -> Result<(String, String, String), BoxError> {
    let p = path.strip_prefix('/').unwrap_or(path);
    let mut it = p.splitn(3, '/');
    match (it.next(), it.next(), it.next()) {
        (Some(v), Some(b), Some(k)) if !v.is_empty() && !b.is_empty() && !k.is_empty() => {
            Ok((v.to_string(), b.to_string(), k.to_string()))
        }
        _ => Err(format!("expected /volume/bucket/key, got {path}").into()),
    }
}

pub async fn run(cfg: &OzoneConfig, cmd: MultipartCmd) -> Result<String, BoxError> {
    let om = client(cfg)?;
    let admin_token = crate::s3::admin_token(cfg)?;
    match cmd {
        MultipartCmd::List {
            volume,
            bucket,
            older_than,
            limit,
            json,
        } => {
            let rows = uploads(&om, &admin_token, volume, bucket, older_than, limit).await?;
            if json {
                let v: Vec<Value> = rows
                    .iter()
                    .map(|u| {
                        json!({
                            "volume": u.volume,
                            "bucket": u.bucket,
                            "key": u.key,
                            "upload_id": u.upload_id,
                            "creation_time_ms": u.creation_time_ms,
                            "owner": u.owner,
                        })
                    })
                    .collect();
                return Ok(format!("{}\n", serde_json::to_string_pretty(&v)?));
            }
            let mut out = format!(
                "{:<6} {:<12} {:<56} {}\n",
                "AGE", "OWNER", "UPLOAD ID", "KEY"
            );
            for u in &rows {
                out.push_str(&format!(
                    "{:<6} {:<12} {:<56} /{}/{}/{}\n",
                    age(u.creation_time_ms),
                    u.owner,
                    u.upload_id,
                    u.volume,
                    u.bucket,
                    u.key
                ));
            }
            out.push_str(&format!("{} incomplete uploads\n", rows.len()));
            Ok(out)
        }
        MultipartCmd::Abort {
            key: Some(path),
            upload_id: Some(upload_id),
            ..
        } => {
            let (v, b, k) = key_path(&path)?;
            om.abort_multipart_upload(&v, &b, &k, &upload_id).await?;
            Ok(format!("aborted upload {upload_id} of /{v}/{b}/{k}\n"))
        }
        MultipartCmd::Abort {
            volume,
            bucket,
            older_than,
            ..
        } => {
            let rows = uploads(&om, &admin_token, volume, bucket, older_than, usize::MAX).await?;
            let mut out = String::new();
            for u in &rows {
                om.abort_multipart_upload(&u.volume, &u.bucket, &u.key, &u.upload_id)
                    .await?;
                out.push_str(&format!(
                    "aborted upload {} of /{}/{}/{}\n",
                    u.upload_id, u.volume, u.bucket, u.key
                ));
            }
            out.push_str(&format!("{} uploads aborted\n", rows.len()));
            Ok(out)
        }
    }
}
