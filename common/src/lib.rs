//! Shared plumbing of every Ozone-RS role: configuration from `ozone-site.xml` and the
//! environment, tracing set-up, Prometheus metrics and the small http server each role runs
//! for `/prom` and its status page, and a minimal HTTP/1.1 client to probe them ([`probe`]).
//! No business logic lives here.

pub mod config;
pub mod db;
pub mod heap;
pub mod http;
pub mod metrics;
pub mod probe;
pub mod sigv4;
pub mod telemetry;
pub mod tls;
pub mod token;

pub use config::{ConfigError, OzoneConfig};
pub use metrics::Metrics;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates a file's parent directory entries durably: fsyncs `dir` so a file created or renamed
/// in it survives a crash.
pub fn fsync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit, as every server
/// role does at start (children such as `cluster up`'s roles inherit it), and logs both once.
/// Returns the soft limit in force afterwards (`None`: unlimited). A failure is logged and
/// the role runs with the limit it has: it is built to work within a soft limit of 1024.
pub fn raise_nofile_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        tracing::info!(soft = ?before.current, hard = ?before.maximum, "open file limit");
        return before.current;
    }
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::info!(from = ?before.current, soft = ?before.maximum, hard = ?before.maximum,
                "raised the open file limit to its hard limit");
            before.maximum
        }
        Err(e) => {
            tracing::warn!(soft = ?before.current, hard = ?before.maximum, error = %e,
                "cannot raise the open file limit; keeping the soft limit");
            before.current
        }
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; waiting for SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        use rustix::process::{Resource, getrlimit};
        let before = getrlimit(Resource::Nofile);
        let soft = super::raise_nofile_limit();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(after.current, soft);
        assert_eq!(after.maximum, before.maximum);
        assert!(after.current.unwrap_or(u64::MAX) >= before.current.unwrap_or(u64::MAX));
    }
}
