//! `ozone freon list-probe`: how long listing pages take at the start, the middle and the end
//! of a bucket, through the S3 gateway. It walks the bucket once with ListObjectsV2 (remembering
//! only the last key of each page), then times each page kind `--samples` times, jumping to the
//! middle and the end with `start-after` (`marker` for ListObjects v1): ListObjectsV2 without
//! and with a delimiter, ListObjects v1, ListMultipartUploads and ListBuckets. A flat listing
//! costs the same per page wherever the page is and however many keys the bucket holds.
//!
//! Output, one stable line per page kind after the walk's:
//! `Page v2-middle: p50=1.234ms p95=2.345ms entries=1000`.

use std::time::Instant;

use super::histogram::Histogram;
use super::keygen::ensure_s3_bucket;
use super::runner::progress_bar;
use super::s3::{S3, S3Opts};

type BoxError = Box<dyn std::error::Error>;

#[derive(Debug, clap::Args)]
pub struct ListProbeArgs {
    #[command(flatten)]
    pub s3: S3Opts,
    /// Bucket to list.
    #[arg(short = 'b', long, default_value = "bucket1")]
    pub bucket: String,
    /// Entries per page (`max-keys`, `max-uploads`, `max-buckets`).
    #[arg(long, default_value_t = 1000)]
    pub max_keys: u32,
    /// Timed requests per page kind.
    #[arg(long, default_value_t = 20)]
    pub samples: u32,
    /// The delimiter of the delimited listings.
    #[arg(short = 'd', long, default_value = "/")]
    pub delimiter: String,
    /// The `prefix` of every listing.
    #[arg(long, default_value = "")]
    pub list_prefix: String,
}

/// The text of the first `<tag>` element after `from` and where it ends.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml[from..].find(&open)? + from + open.len();
    let end = xml[start..].find(&close)? + start;
    Some((&xml[start..end], end + close.len()))
}

fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((text, end)) = element(xml, tag, at) {
        out.push(text);
        at = end;
    }
    out
}

/// XML text with its five entities (and numeric references) resolved.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sends one listing and returns its body (an error unless 200).
async fn get(s3: &S3, path: &str, query: &[(String, String)]) -> Result<String, BoxError> {
    let url = s3.url(path);
    let r = s3.request(reqwest::Method::GET, &url, query).send().await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        return Err(format!("GET {url}?{query:?}: {status}: {body}").into());
    }
    Ok(body)
}

/// One page kind: its name and query (path: the bucket, or "" for ListBuckets).
struct Kind {
    name: String,
    path: String,
    query: Vec<(String, String)>,
    entry_tags: &'static [&'static str],
}

pub async fn run(args: ListProbeArgs) -> Result<(), BoxError> {
    let s3 = S3::new(&args.s3, 4)?;
    ensure_s3_bucket(&s3, &args.bucket).await?;
    let max = args.max_keys.to_string();
    let prefix = args.list_prefix.as_str();

    // The walk: the last key of every page, so any page can be reached with start-after.
    let bar = progress_bar(None, "list-probe walk (keys)");
    let started = Instant::now();
    let mut bounds = vec![String::new()];
    let mut keys = 0u64;
    let mut token: Option<String> = None;
    loop {
        let mut query = q(&[("list-type", "2"), ("max-keys", &max), ("prefix", prefix)]);
        if let Some(t) = &token {
            query.push(("continuation-token".into(), t.clone()));
        }
        let body = get(&s3, &args.bucket, &query).await?;
        let page = elements(&body, "Key");
        keys += page.len() as u64;
        bar.inc(page.len() as u64);
        let truncated = element(&body, "IsTruncated", 0).is_some_and(|(t, _)| t == "true");
        token = element(&body, "NextContinuationToken", 0).map(|(t, _)| unescape(t));
        match (truncated, page.last(), &token) {
            (true, Some(last), Some(_)) => bounds.push(unescape(last)),
            _ => break,
        }
    }
    bar.finish_and_clear();
    let walk = started.elapsed().as_secs_f64();
    println!("Bucket: {}", args.bucket);
    println!("Keys: {keys}");
    println!("Pages: {} (max-keys {max})", bounds.len());
    println!("Walk time (sec): {walk:.3}");

    let middle = bounds[bounds.len() / 2].clone();
    let end = bounds[bounds.len() - 1].clone();
    let delim = args.delimiter.as_str();
    let mut kinds = Vec::new();
    for (pos, after) in [
        ("start", ""),
        ("middle", middle.as_str()),
        ("end", end.as_str()),
    ] {
        let key_tags: &'static [&'static str] = &["Key"];
        let delim_tags: &'static [&'static str] = &["Key", "CommonPrefixes"];
        kinds.push(Kind {
            name: format!("v2-{pos}"),
            path: args.bucket.clone(),
            query: q(&[
                ("list-type", "2"),
                ("max-keys", &max),
                ("prefix", prefix),
                ("start-after", after),
            ]),
            entry_tags: key_tags,
        });
        kinds.push(Kind {
            name: format!("v2-delimiter-{pos}"),
            path: args.bucket.clone(),
            query: q(&[
                ("list-type", "2"),
                ("max-keys", &max),
                ("prefix", prefix),
                ("delimiter", delim),
                ("start-after", after),
            ]),
            entry_tags: delim_tags,
        });
        kinds.push(Kind {
            name: format!("v1-{pos}"),
            path: args.bucket.clone(),
            query: q(&[("max-keys", &max), ("prefix", prefix), ("marker", after)]),
            entry_tags: key_tags,
        });
    }
    kinds.push(Kind {
        name: "uploads-start".into(),
        path: args.bucket.clone(),
        query: q(&[("uploads", ""), ("max-uploads", &max), ("prefix", prefix)]),
        entry_tags: &["UploadId"],
    });
    kinds.push(Kind {
        name: "buckets-start".into(),
        path: String::new(),
        query: q(&[("max-buckets", &max)]),
        entry_tags: &["Name"],
    });

    for kind in &kinds {
        let mut h = Histogram::default();
        let mut entries = 0usize;
        for _ in 0..args.samples.max(1) {
            let t0 = Instant::now();
            let body = get(&s3, &kind.path, &kind.query).await?;
            h.record(t0.elapsed().as_micros() as u64);
            entries = kind
                .entry_tags
                .iter()
                .map(|tag| elements(&body, tag).len())
                .sum();
        }
        println!(
            "Page {}: p50={:.3}ms p95={:.3}ms entries={entries}",
            kind.name,
            h.quantile(0.5) as f64 / 1000.0,
            h.quantile(0.95) as f64 / 1000.0,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_and_entities() {
        let xml =
            "<R><Key>a&amp;b</Key><X/><Key>c&#x41;&lt;</Key><IsTruncated>true</IsTruncated></R>";
        assert_eq!(elements(xml, "Key"), vec!["a&amp;b", "c&#x41;&lt;"]);
        assert_eq!(unescape("a&amp;b"), "a&b");
        assert_eq!(unescape("c&#x41;&lt;&#66;"), "cA<B");
        assert_eq!(unescape("x & y"), "x & y");
        assert_eq!(element(xml, "IsTruncated", 0).map(|e| e.0), Some("true"));
        assert_eq!(element(xml, "Missing", 0), None);
    }
}
