//! Shared plumbing of every Ozone-RS role: configuration from `ozone-site.xml` and the
//! environment, tracing set-up, Prometheus metrics and the small http server each role runs
//! for `/prom` and its status page, and a minimal HTTP/1.1 client to probe them ([`probe`]).
//! No business logic lives here.

pub mod config;
pub mod db;
pub mod http;
pub mod metrics;
pub mod probe;
pub mod sigv4;
pub mod telemetry;

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
