//! `ozone freon s3bench`: PUT/GET throughput of large objects and operations per second of small
//! ones through a real S3 endpoint (unsigned, or SigV4-signed with `--access-key`/`--secret` for
//! a cluster with security on).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use ozone_common::config::parse_bytes;

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, clap::Args)]
pub struct S3benchArgs {
    /// S3 endpoint.
    #[arg(long, short = 'e', default_value = "http://127.0.0.1:9878")]
    endpoint: String,
    /// Bucket to use (created if missing, emptied and removed at the end when created here).
    #[arg(long)]
    bucket: Option<String>,
    /// Large object size.
    #[arg(long, default_value = "64MB")]
    size: String,
    /// Number of large objects (0 skips the large-object phase).
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// Concurrent large-object requests.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Small object size.
    #[arg(long, default_value = "4KB")]
    small_size: String,
    /// Number of small objects (0 skips the small-object phase).
    #[arg(long, default_value_t = 2000)]
    small_count: usize,
    /// Concurrent small-object requests.
    #[arg(long, default_value_t = 32)]
    small_concurrency: usize,
    /// Sign requests (SigV4, UNSIGNED-PAYLOAD) with this access key (security on).
    #[arg(long, requires = "secret")]
    access_key: Option<String>,
    /// The secret of --access-key.
    #[arg(long)]
    secret: Option<String>,
}

/// Signs freon's requests with SigV4 (UNSIGNED-PAYLOAD), with the gateway's own signing code.
type Signer = ozone_s3g::sigv4::ClientSigner;

fn sign(
    signer: &Option<Signer>,
    req: reqwest::RequestBuilder,
    method: &str,
    url: &str,
) -> reqwest::RequestBuilder {
    super::s3::sign(signer, req, method, url, &[])
}

pub async fn run(args: S3benchArgs) -> Result<(), BoxError> {
    {
        let S3benchArgs {
            endpoint,
            bucket,
            size,
            count,
            concurrency,
            small_size,
            small_count,
            small_concurrency,
            access_key,
            secret,
        } = args;
        {
            let signer = access_key.map(|access_key| Signer {
                access_key,
                secret: secret.unwrap_or_default(),
                region: "us-east-1".to_string(),
            });
            let size = parse_bytes(&size).ok_or("invalid --size")?;
            let small_size = parse_bytes(&small_size).ok_or("invalid --small-size")?;
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(3600))
                .build()?;
            let base = endpoint.trim_end_matches('/').to_string();
            let (bucket, created) = match bucket {
                Some(b) => (b, false),
                None => (format!("freon-{}", std::process::id()), true),
            };
            let url = format!("{base}/{bucket}");
            let r = sign(&signer, http.put(&url), "PUT", &url).send().await?;
            if !r.status().is_success() && r.status().as_u16() != 409 {
                return Err(format!("creating bucket {bucket}: {}", r.status()).into());
            }
            let mut ok = 0;
            if count > 0 {
                ok += phase(&http, &signer, &url, "large", size, count, concurrency).await?;
            }
            if small_count > 0 {
                ok += phase(
                    &http,
                    &signer,
                    &url,
                    "small",
                    small_size,
                    small_count,
                    small_concurrency,
                )
                .await?;
            }
            if created {
                let _ = sign(&signer, http.delete(&url), "DELETE", &url)
                    .send()
                    .await;
            }
            println!("Successful executions: {ok}");
            Ok(())
        }
    }
}

/// A repeatable pseudo-random 1 MiB pattern the bodies are made of.
fn pattern() -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(1 << 20);
    while v.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

fn body(size: u64, pattern: &Bytes) -> reqwest::Body {
    let pattern = pattern.clone();
    let pieces = size.div_ceil(pattern.len() as u64);
    let stream = futures::stream::iter(0..pieces).map(move |i| {
        let start = i * pattern.len() as u64;
        let len = (size - start).min(pattern.len() as u64) as usize;
        Ok::<_, std::io::Error>(pattern.slice(..len))
    });
    reqwest::Body::wrap_stream(stream)
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

async fn phase(
    http: &reqwest::Client,
    signer: &Option<Signer>,
    url: &str,
    name: &str,
    size: u64,
    count: usize,
    concurrency: usize,
) -> Result<usize, BoxError> {
    let pattern = pattern();
    let key = |i: usize| format!("{url}/freon-{name}-{i}");
    let started = Instant::now();
    let puts = futures::stream::iter(0..count)
        .map(|i| {
            let req = sign(signer, http.put(key(i)), "PUT", &key(i))
                .header("content-length", size)
                .body(body(size, &pattern));
            async move {
                let r = req.send().await?;
                if !r.status().is_success() {
                    return Err(format!("PUT {}: {}", key(i), r.status()).into());
                }
                Ok::<_, BoxError>(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let put_secs = started.elapsed().as_secs_f64();
    for r in &puts {
        if let Err(e) = r {
            return Err(e.to_string().into());
        }
    }
    let read = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let gets = futures::stream::iter(0..count)
        .map(|i| {
            let req = sign(signer, http.get(key(i)), "GET", &key(i));
            let read = read.clone();
            async move {
                let r = req.send().await?;
                if !r.status().is_success() {
                    return Err(format!("GET {}: {}", key(i), r.status()).into());
                }
                let mut s = r.bytes_stream();
                let mut n = 0u64;
                while let Some(b) = s.next().await {
                    n += b?.len() as u64;
                }
                if n != size {
                    return Err(format!("GET {}: {n} bytes, expected {size}", key(i)).into());
                }
                read.fetch_add(n, Ordering::Relaxed);
                Ok::<_, BoxError>(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let get_secs = started.elapsed().as_secs_f64();
    for r in &gets {
        if let Err(e) = r {
            return Err(e.to_string().into());
        }
    }
    let total_mib = (size * count as u64) as f64 / (1u64 << 20) as f64;
    let label = format!("{} x {count} ({concurrency} concurrent)", human(size));
    println!(
        "PUT {label}: {:.1} MiB/s, {:.1} ops/s, {:.2} s",
        total_mib / put_secs,
        count as f64 / put_secs,
        put_secs
    );
    println!(
        "GET {label}: {:.1} MiB/s, {:.1} ops/s, {:.2} s",
        total_mib / get_secs,
        count as f64 / get_secs,
        get_secs
    );
    futures::stream::iter(0..count)
        .map(|i| sign(signer, http.delete(key(i)), "DELETE", &key(i)).send())
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    Ok(2 * count)
}
