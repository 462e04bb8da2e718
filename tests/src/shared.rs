//! One cluster shared by the non-destructive end-to-end tests of a test run.
//!
//! cargo-nextest runs every test in its own process, so a per-process `static` would start one
//! cluster per test. Instead the first test of a run to arrive takes a file lock in a run
//! directory (`$TMPDIR/ozone-shared-<run>`, keyed by `$NEXTEST_RUN_ID`, or by the test process's
//! pid under plain `cargo test`, where every test is a thread of one process) and starts
//! `ozone cluster up` there under a small supervisor shell, in its own process group, so that
//! neither the end of that test nor nextest's signals to it touch the cluster. Later tests take
//! the lock, find the cluster and read its endpoint from `cluster up`'s output.
//!
//! The supervisor watches the process that owns the run (nextest, the tests' parent; or the
//! `cargo test` process itself): once it is gone, whether the run passed, failed or was
//! interrupted, the supervisor sends SIGTERM to `cluster up` (which stops its roles), SIGKILLs
//! whatever is left after 30 s, and removes the run directory unless a failed test asked to keep
//! it (it prints where). Every test makes its own buckets, so sharing is safe; tests that kill,
//! stop, corrupt or reconfigure processes use [`Cluster::start`] instead.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Cluster, ClusterOpts, ozone_bin};
use ozone_common::config::keys;

/// The configuration of the shared cluster: the defaults, plus a virtual-host domain
/// (`BUCKET.s3.local`) that only requests with such a Host header use.
/// With `OZONE_TEST_SECURE=1`, security is on as well (mutual TLS inside, SigV4 against real
/// secrets outside): the S3 and shell suites then run as on a secured installation.
fn shared_opts() -> ClusterOpts {
    let mut set = vec![(keys::OZONE_S3G_DOMAIN_NAME.name().into(), "s3.local".into())];
    if std::env::var("OZONE_TEST_SECURE").is_ok_and(|v| v == "1") {
        set.push((keys::OZONE_SECURITY_ENABLED.name().into(), "true".into()));
    }
    ClusterOpts {
        set,
        ..Default::default()
    }
}

/// Stops `cluster up` (`$up`) once the run's owner (`$watch`) has exited; `$@` is the
/// `cluster up` command line.
const SUPERVISOR: &str = r#"
watch=$1; run=$2; shift 2
"$@" >"$run/cluster-up.out" 2>"$run/cluster-up.log" </dev/null &
up=$!
echo "$up" >"$run/up.pid"
while kill -0 "$watch" 2>/dev/null; do sleep 1; done
alive() { [ -d "/proc/$1" ] && ! grep -q ') Z' "/proc/$1/stat" 2>/dev/null; }
kill -TERM "$up" 2>/dev/null
i=0
while alive "$up" && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL "$up" 2>/dev/null
wait "$up" 2>/dev/null
for f in "$run"/cluster/*/pid; do
  [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
done
[ -e "$run/keep" ] || rm -rf "$run"
"#;

/// The run directory and the pid whose exit ends the run.
fn run_key() -> (PathBuf, u32) {
    let (key, owner) = match std::env::var("NEXTEST_RUN_ID") {
        // nextest: one process per test, all children of the nextest process.
        Ok(id) if !id.is_empty() => (
            id,
            rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32),
        ),
        // `cargo test` or the binary run by hand: every test is a thread of this process.
        _ => {
            let me = std::process::id();
            (format!("pid-{me}"), me)
        }
    };
    (
        std::env::temp_dir().join(format!("ozone-shared-{key}")),
        owner,
    )
}

impl Cluster {
    /// The cluster shared by the non-destructive tests of this run, started by whichever test
    /// asks first. Dropping the handle leaves the cluster running; it must not be killed,
    /// stopped or restarted (those methods panic on it).
    pub fn shared() -> Cluster {
        let (run, owner) = run_key();
        std::fs::create_dir_all(&run).expect("shared run dir");
        let lock = std::fs::File::create(run.join("lock")).expect("shared lock file");
        lock.lock().expect("lock the shared run dir");
        let path = run.join("cluster");
        if !path.exists() {
            std::fs::create_dir(&path).expect("shared cluster dir");
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(SUPERVISOR)
                .arg("ozone-shared-supervisor")
                .arg(owner.to_string())
                .arg(&run)
                .arg(ozone_bin())
                .args(Cluster::up_args(&path, &shared_opts()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group: signals to the test that started it do not reach it.
                .process_group(0);
            // Not waited for: it outlives this test, and is reaped by whoever inherits it.
            drop(cmd.spawn().expect("start the shared cluster's supervisor"));
        }
        let endpoint = wait_for_endpoint(&run);
        drop(lock);
        Cluster {
            dir: None,
            path,
            opts: shared_opts(),
            up: None,
            shared: Some(run),
            restarted: Vec::new(),
            endpoint,
            credentials: std::sync::OnceLock::new(),
            https_endpoint: String::new(),
        }
    }
}

/// Reads the S3 endpoint from `cluster up`'s output in `run`, waiting up to two minutes; fails
/// at once when `cluster up` is gone (it crashed, or the directory is left from an old run).
fn wait_for_endpoint(run: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let up_gone = std::fs::read_to_string(run.join("up.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .is_some_and(|pid: i32| crate::is_zombie(pid));
        let out = std::fs::read_to_string(run.join("cluster-up.out")).unwrap_or_default();
        let endpoint = out.lines().find_map(|l| l.strip_prefix("S3 endpoint: "));
        if let (Some(ep), false) = (endpoint, up_gone) {
            return ep.trim().to_string();
        }
        if up_gone || Instant::now() > deadline {
            // Keep the logs for whoever looks.
            let _ = std::fs::write(run.join("keep"), b"");
            panic!(
                "the shared cluster {}; logs in {} (remove it if it is left from an old run)",
                if up_gone {
                    "is gone: its `cluster up` exited"
                } else {
                    "did not print its S3 endpoint within 2 minutes"
                },
                run.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
