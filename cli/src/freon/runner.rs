//! The one runner behind every freon generator (Ozone's `BaseFreonGenerator`): `-n` operations
//! spread over `-t` workers (or as many as fit in `--duration`), each timed into a
//! [`Histogram`]; a progress line on a terminal; a summary block at the end, one
//! `Name: value` per line so scripts can parse it.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::histogram::Histogram;

/// Options every generator takes, with Ozone's names and defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Number of operations (keys, objects) to run.
    #[arg(short = 'n', long = "number-of-tests", default_value_t = 1000)]
    pub number: u64,
    /// Operations run at once.
    #[arg(short = 't', long = "threads", alias = "thread", default_value_t = 10)]
    pub threads: usize,
    /// Prefix of the generated names (`<prefix>/<n>`); random when not given, as Ozone's.
    #[arg(short = 'p', long)]
    pub prefix: Option<String>,
    /// Stop after this long (`30s`, `5m`, `1h`) even before `-n` operations.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Go on after a failure and report all of them at the end (default: stop at the first).
    #[arg(short = 'f', long = "fail-at-end")]
    pub fail_at_end: bool,
}

/// `30s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s}"))?;
    let secs = match unit.to_ascii_lowercase().as_str() {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration {s}: a number with s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

impl Common {
    /// The name prefix: given, or ten random lower-case letters and digits (as Ozone's).
    pub fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| {
            let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
            let mut x = a ^ b.rotate_left(17);
            let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
            (0..10)
                .map(|_| {
                    let c = alphabet[(x % alphabet.len() as u64) as usize] as char;
                    x /= alphabet.len() as u64;
                    c
                })
                .collect()
        })
    }
}

/// What a run did.
pub struct Summary {
    pub name: String,
    pub elapsed: Duration,
    pub successes: u64,
    pub failures: u64,
    pub bytes_per_op: u64,
    pub latency: Histogram,
    pub first_error: Option<String>,
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl Summary {
    /// The summary block: stable `Name: value` lines (Ozone's first three, then ours).
    pub fn render(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let h = &self.latency;
        let mut out = String::new();
        let mut line = |k: &str, v: String| {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(&v);
            out.push('\n');
        };
        line("Generator", self.name.clone());
        line("Total execution time (sec)", format!("{secs:.3}"));
        line("Failures", self.failures.to_string());
        line("Successful executions", self.successes.to_string());
        line(
            "Throughput (ops/s)",
            format!("{:.1}", self.successes as f64 / secs),
        );
        if self.bytes_per_op > 0 {
            let mib = (self.successes * self.bytes_per_op) as f64 / f64::from(1u32 << 20);
            line("Throughput (MiB/s)", format!("{:.2}", mib / secs));
        }
        line("Latency mean (ms)", format!("{:.3}", h.mean() / 1000.0));
        line("Latency p50 (ms)", format!("{:.3}", ms(h.quantile(0.50))));
        line("Latency p95 (ms)", format!("{:.3}", ms(h.quantile(0.95))));
        line("Latency p99 (ms)", format!("{:.3}", ms(h.quantile(0.99))));
        line("Latency max (ms)", format!("{:.3}", ms(h.max())));
        out
    }
}

/// A progress line on stderr when it is a terminal, redrawn ten times a second.
pub fn progress_bar(total: Option<u64>, label: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    };
    let template = if total.is_some() {
        "{prefix} [{bar:30}] {percent:>3}% {pos}/{len} {per_sec} {elapsed_precise}"
    } else {
        "{prefix} {pos} {per_sec} {elapsed_precise}"
    };
    ProgressBar::with_draw_target(total, target)
        .with_style(
            ProgressStyle::with_template(template)
                .expect("the progress template is valid")
                .progress_chars("#>-"),
        )
        .with_prefix(label.to_string())
}

/// Runs `op(i)` for i in 0..n on `threads` workers (each takes the next index when done with
/// its last), until n are done, `--duration` passes, or (without `--fail-at-end`) one fails.
pub async fn run<F, Fut>(common: &Common, name: &str, bytes_per_op: u64, op: F) -> Summary
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let n = common.number;
    let deadline = common.duration.map(|d| Instant::now() + d);
    let bar = progress_bar(if deadline.is_some() { None } else { Some(n) }, name);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..common.threads.max(1) {
        let (op, next, stop, failures, first_error, bar) = (
            op.clone(),
            next.clone(),
            stop.clone(),
            failures.clone(),
            first_error.clone(),
            bar.clone(),
        );
        let fail_at_end = common.fail_at_end;
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::default();
            let mut ok = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t0 = Instant::now();
                match op(i).await {
                    Ok(()) => {
                        hist.record(t0.elapsed().as_micros() as u64);
                        ok += 1;
                        bar.inc(1);
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        if first.is_none() {
                            *first = Some(e);
                        }
                        if !fail_at_end {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            (hist, ok)
        }));
    }
    let mut latency = Histogram::default();
    let mut successes = 0;
    for w in workers {
        match w.await {
            Ok((h, ok)) => {
                latency.merge(&h);
                successes += ok;
            }
            Err(e) => {
                failures.fetch_add(1, Ordering::Relaxed);
                let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let first_error = first_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    Summary {
        name: name.to_string(),
        elapsed,
        successes,
        failures: failures.load(Ordering::Relaxed),
        bytes_per_op,
        latency,
        first_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(n: u64, threads: usize, fail_at_end: bool) -> Common {
        Common {
            number: n,
            threads,
            prefix: Some("p".into()),
            duration: None,
            fail_at_end,
        }
    }

    #[tokio::test]
    async fn runs_each_index_once_and_counts() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let s = run(&common(500, 7, false), "t", 0, move |i| {
            let seen = s2.clone();
            async move {
                seen.lock().unwrap().push(i);
                Ok(())
            }
        })
        .await;
        assert_eq!((s.successes, s.failures), (500, 0));
        assert_eq!(s.latency.count(), 500);
        let mut v = seen.lock().unwrap().clone();
        v.sort_unstable();
        assert_eq!(v, (0..500).collect::<Vec<_>>());
        let text = s.render();
        assert!(text.contains("Successful executions: 500\n"), "{text}");
        assert!(text.contains("Latency p99 (ms): "), "{text}");
    }

    #[tokio::test]
    async fn stops_at_the_first_failure_unless_told_otherwise() {
        let fail_odd = |i: u64| async move {
            if i % 2 == 1 {
                Err(format!("op {i} failed"))
            } else {
                Ok(())
            }
        };
        let s = run(&common(100, 1, false), "t", 0, fail_odd).await;
        assert_eq!((s.successes, s.failures), (1, 1));
        assert_eq!(s.first_error.as_deref(), Some("op 1 failed"));
        let s = run(&common(100, 4, true), "t", 0, fail_odd).await;
        assert_eq!((s.successes, s.failures), (50, 50));
    }

    #[test]
    fn durations_and_prefixes() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5x").is_err());
        let mut c = common(1, 1, false);
        c.prefix = None;
        let p = c.prefix();
        assert_eq!(p.len(), 10);
        assert!(
            p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
