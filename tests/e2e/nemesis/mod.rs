//! The fault-injection suite (issue 12 item 7): mixed S3 load from several clients while a
//! nemesis, from a seeded random schedule, breaks one role at a time and mends it; then checks
//! that nothing acknowledged was lost, no wrong byte was served, and every container is back to
//! three replicas holding the same committed blocks.
//!
//! - [`load`]: the clients (PUT, GET, DELETE, multipart; 0 B to 64 MiB; overwrites), each owning
//!   its keys, retrying until acknowledged; an outcome never acknowledged is a "maybe".
//! - [`faults`]: the schedule and the faults: SIGKILL + restart, SIGSTOP + SIGCONT of a
//!   datanode, the OM leader (3 OMs), SCM or the gateway; network cuts on Docker ([`docker`]).
//! - [`check`]: replicas, final reads, listing.
//!
//! Tests: `nemesis::ci_three_minutes_of_faults_lose_nothing` (in CI: 3 minutes, at least 12
//! faults), and two ignored ones for long runs, driven by `bench/nemesis.sh`:
//! `nemesis::long_run` (process faults, `NEMESIS_SECONDS`) and `nemesis::docker_network_cuts`
//! (the three-OM compose cluster: network cuts, SIGSTOP, kills). Every run prints its seed;
//! `NEMESIS_SEED=<seed>` replays the same schedule of faults and the same client choices
//! (timing still differs between runs).

mod check;
mod data;
mod docker;
mod faults;
mod http;
mod load;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts};

use faults::{Kind, Target};
use load::{KeyRec, Stats};

/// The bucket the load writes to.
const BUCKET: &str = "nemesis";
/// Keys written to see whether the cluster takes writes (not part of the model).
const PROBE: &str = "probe/";

/// What a run does.
#[derive(Debug, Clone)]
pub struct Opts {
    pub seed: u64,
    /// How long load and faults run.
    pub run: Duration,
    pub clients: usize,
    /// Keys each client starts with.
    pub keys_per_client: usize,
    /// Largest object.
    pub max_size: u64,
    pub datanodes: u32,
    /// Longest wait, after the last fault is healed, for every container to be fully replicated.
    pub repair_timeout: Duration,
    /// Quiet time before a fault and its duration, in ms.
    pub gap_ms: (u64, u64),
    pub duration_ms: (u64, u64),
    /// Whether replicas that are not repaired in time fail the run (`NEMESIS_REPLICAS=report`:
    /// only reported).
    pub assert_replicas: bool,
}

impl Opts {
    /// The CI run: 3 minutes, a fault every ~10 s, overridable from the environment.
    pub fn from_env(default_secs: u64) -> Opts {
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let seed = std::env::var("NEMESIS_SEED")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    % 1_000_000_000
            });
        Opts {
            seed,
            run: Duration::from_secs(num("NEMESIS_SECONDS", default_secs)),
            clients: num("NEMESIS_CLIENTS", 4) as usize,
            keys_per_client: num("NEMESIS_KEYS", 30) as usize,
            max_size: num("NEMESIS_MAX_SIZE", 64 << 20),
            datanodes: num("NEMESIS_DATANODES", 4) as u32,
            repair_timeout: Duration::from_secs(num("NEMESIS_REPAIR_TIMEOUT", 120)),
            gap_ms: (
                num("NEMESIS_GAP_MIN_MS", 2000),
                num("NEMESIS_GAP_MAX_MS", 6000),
            ),
            duration_ms: (
                num("NEMESIS_FAULT_MIN_MS", 2000),
                num("NEMESIS_FAULT_MAX_MS", 10000),
            ),
            assert_replicas: std::env::var("NEMESIS_REPLICAS").map_or(true, |v| v != "report"),
        }
    }
}

/// The figures of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub mode: String,
    pub seconds: f64,
    pub puts: u64,
    pub multiparts: u64,
    pub gets: u64,
    pub deletes: u64,
    pub failed_attempts: u64,
    pub maybes: u64,
    pub mib_written: u64,
    pub mib_read: u64,
    pub faults: u32,
    pub faults_by_kind: BTreeMap<String, u32>,
    pub fault_errors: Vec<String>,
    /// Wrong bytes served during the run and in the final reads.
    pub wrong: Vec<String>,
    pub lost: Vec<String>,
    pub undeleted: Vec<String>,
    pub unreadable: Vec<String>,
    pub stale_reads: Vec<String>,
    pub listing: Vec<String>,
    pub keys: usize,
    pub objects: usize,
    pub containers: usize,
    pub never_written: usize,
    pub bcsid_reported: bool,
    /// Seconds from the last heal until every container was fully replicated; None: not within
    /// the timeout, with what was still wrong.
    pub repair_seconds: Option<f64>,
    pub replica_problems: Vec<String>,
    /// Whether `replica_problems` are violations.
    pub assert_replicas: bool,
}

impl Report {
    /// Everything that must be empty for the run to pass, one line each.
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (what, list) in [
            ("acknowledged write lost", &self.lost),
            ("acknowledged delete undone", &self.undeleted),
            ("wrong bytes served", &self.wrong),
            ("acknowledged object unreadable", &self.unreadable),
            ("listing", &self.listing),
        ] {
            v.extend(list.iter().map(|l| format!("{what}: {l}")));
        }
        if self.assert_replicas {
            v.extend(
                self.replica_problems
                    .iter()
                    .map(|l| format!("replicas: {l}")),
            );
        }
        v
    }
}

fn few(list: &[String]) -> String {
    let mut s: Vec<String> = list.iter().take(10).cloned().collect();
    if list.len() > 10 {
        s.push(format!("... and {} more", list.len() - 10));
    }
    s.join("\n    ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "== nemesis report (seed {}, {}) ==",
            self.seed, self.mode
        )?;
        writeln!(f, "run:            {:.0} s", self.seconds)?;
        writeln!(
            f,
            "operations:     {} acknowledged (PUT {}, multipart {}, GET {}, DELETE {}); {} failed attempts retried; {} left maybe",
            self.puts + self.multiparts + self.gets + self.deletes,
            self.puts,
            self.multiparts,
            self.gets,
            self.deletes,
            self.failed_attempts,
            self.maybes
        )?;
        writeln!(
            f,
            "data:           {} MiB written, {} MiB read",
            self.mib_written, self.mib_read
        )?;
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        writeln!(f, "faults:         {} ({})", self.faults, kinds.join(", "))?;
        if !self.fault_errors.is_empty() {
            writeln!(
                f,
                "fault errors:   {}\n    {}",
                self.fault_errors.len(),
                few(&self.fault_errors)
            )?;
        }
        writeln!(
            f,
            "final check:    {} keys, {} objects read back",
            self.keys, self.objects
        )?;
        for (what, list) in [
            ("acknowledged writes lost", &self.lost),
            ("acknowledged deletes undone", &self.undeleted),
            ("wrong bytes served", &self.wrong),
            ("unreadable", &self.unreadable),
            ("listing problems", &self.listing),
            ("stale reads (run)", &self.stale_reads),
        ] {
            writeln!(f, "{what:<28}{}", list.len())?;
            if !list.is_empty() {
                writeln!(f, "    {}", few(list))?;
            }
        }
        let compared = if self.bcsid_reported {
            "block counts and BCSIDs"
        } else {
            "block counts (replicas report no BCSID)"
        };
        match self.repair_seconds {
            Some(s) => writeln!(
                f,
                "replicas:       {} containers, all with 3 replicas agreeing on {compared} ({} allocated, never written); seconds to full repair: {s:.1}",
                self.containers, self.never_written
            )?,
            None => writeln!(
                f,
                "replicas:       NOT repaired ({compared}); {} containers not right:\n    {}",
                self.replica_problems.len(),
                few(&self.replica_problems)
            )?,
        }
        Ok(())
    }
}

/// Config of the process cluster: short heartbeats and health intervals (a stopped datanode
/// turns stale and, for the longer faults, dead), quick replication and deletion, 16 MB blocks
/// and 128 MB containers so containers fill and close under the load.
fn cluster_config() -> Vec<(String, String)> {
    [
        (keys::OZONE_SCM_STALE_NODE_INTERVAL.name(), "4s"),
        (keys::OZONE_SCM_DEAD_NODE_INTERVAL.name(), "8s"),
        (keys::HDDS_SCM_REPLICATION_THREAD_INTERVAL.name(), "1s"),
        (keys::HDDS_SCM_REPLICATION_EVENT_TIMEOUT.name(), "20s"),
        (keys::OZONE_BLOCK_DELETING_SERVICE_INTERVAL.name(), "2s"),
        (keys::OZONE_SCM_BLOCK_SIZE.name(), "16MB"),
        (keys::OZONE_SCM_CONTAINER_SIZE.name(), "128MB"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// PUTs a probe key until one is acknowledged (the bucket is created first when `create`).
fn wait_writable(addr: &str, create: bool, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        if create {
            match http::small(addr, "PUT", &format!("/{BUCKET}"), &[], http::Body::Empty) {
                Ok(r) if r.head.status == 200 || r.body.contains("BucketAlreadyOwnedByYou") => {}
                Ok(r) => {
                    last = format!("create bucket {}: {}", r.head.status, r.body);
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
                Err(e) => {
                    last = format!("create bucket: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            }
        }
        let path = format!("/{BUCKET}/{PROBE}{}", start.elapsed().as_millis());
        match http::small(addr, "PUT", &path, &[], http::Body::Bytes(b"probe")) {
            Ok(r) if r.head.status == 200 => return Ok(start.elapsed()),
            Ok(r) => last = format!("{}: {}", r.head.status, r.body),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("no write acknowledged within {within:?}: {last}"))
}

/// What a run of load and faults left for the checks.
struct Ran {
    stats: Stats,
    keys: Vec<KeyRec>,
    done: faults::Done,
    seconds: f64,
}

/// Load from `opts.clients` clients on `addr` while `nemesis` runs (it gets the stop flag and
/// returns what it did; `t0` is the start), for `opts.run`; then the nemesis is stopped (its
/// fault healed) and the load finishes its operations under way.
fn load_with_nemesis(
    opts: &Opts,
    addr: &str,
    nemesis: impl FnOnce(&AtomicBool, Instant) -> faults::Done + Send,
) -> Ran {
    let stats = Stats::default();
    let load_stop = AtomicBool::new(false);
    let nemesis_stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (keys, done) = std::thread::scope(|s| {
        let setup = load::Setup {
            addr: addr.to_string(),
            bucket: BUCKET.to_string(),
            seed: opts.seed,
            max_size: opts.max_size,
            keys: opts.keys_per_client,
            stats: &stats,
            stop: &load_stop,
        };
        let clients: Vec<_> = (0..opts.clients)
            .map(|id| {
                let c = load::Client::new(id, &setup);
                s.spawn(move || c.run())
            })
            .collect();
        let stats = &stats;
        let nem = s.spawn(|| nemesis(&nemesis_stop, t0));
        let mut next_print = Duration::from_secs(15);
        while t0.elapsed() < opts.run {
            std::thread::sleep(Duration::from_millis(200));
            if t0.elapsed() >= next_print {
                next_print += Duration::from_secs(15);
                println!(
                    "[load {:7.1}s] {} ops, {} failed attempts, {} MiB written, {} MiB read",
                    t0.elapsed().as_secs_f64(),
                    stats.ops(),
                    stats.failed_attempts.load(Ordering::Relaxed),
                    stats.bytes_written.load(Ordering::Relaxed) >> 20,
                    stats.bytes_read.load(Ordering::Relaxed) >> 20,
                );
            }
        }
        nemesis_stop.store(true, Ordering::Relaxed);
        let done = nem.join().expect("nemesis thread");
        load_stop.store(true, Ordering::Relaxed);
        let keys = clients
            .into_iter()
            .flat_map(|c| c.join().expect("client thread"))
            .collect();
        println!(
            "[load {:7.1}s] load and faults stopped",
            t0.elapsed().as_secs_f64()
        );
        (keys, done)
    });
    Ran {
        stats,
        keys,
        done,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// The checks after a run; fills the report.
fn finish(
    opts: &Opts,
    addr: &str,
    ran: &Ran,
    container_list: impl FnMut() -> Result<String, String>,
    mode: &str,
) -> Report {
    let (stats, keys, done, seconds) = (&ran.stats, &ran.keys, &ran.done, ran.seconds);
    let healed = done.last_healed.unwrap_or_else(Instant::now);
    let since_heal = healed.elapsed();
    let (replicas, took) = check::wait_replicas(container_list, opts.repair_timeout);
    let repair_seconds = took.map(|t| (since_heal + t).as_secs_f64());
    println!("[check] replicas: {repair_seconds:?} s to full repair");
    let reads = check::read_all(addr, BUCKET, keys, stats);
    let listing = match check::list_keys(addr, BUCKET) {
        Ok(listed) => check::check_listing(&listed, keys, PROBE),
        Err(e) => vec![e],
    };
    let problems = stats.problems.lock().map(|p| p.clone()).unwrap_or_default();
    let mut wrong: Vec<String> = problems
        .iter()
        .filter(|p| p.starts_with("wrong bytes"))
        .cloned()
        .collect();
    wrong.extend(reads.wrong);
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Report {
        seed: opts.seed,
        mode: mode.to_string(),
        seconds,
        puts: get(&stats.puts),
        multiparts: get(&stats.multiparts),
        gets: get(&stats.gets),
        deletes: get(&stats.deletes),
        failed_attempts: get(&stats.failed_attempts),
        maybes: get(&stats.maybes),
        mib_written: get(&stats.bytes_written) >> 20,
        mib_read: get(&stats.bytes_read) >> 20,
        faults: done.total,
        faults_by_kind: done.by_kind.clone(),
        fault_errors: done.errors.clone(),
        wrong,
        lost: reads.lost,
        undeleted: reads.undeleted,
        unreadable: reads.unreadable,
        stale_reads: problems
            .iter()
            .filter(|p| p.starts_with("stale read"))
            .cloned()
            .collect(),
        listing,
        keys: reads.keys,
        objects: reads.objects,
        containers: replicas.containers,
        never_written: replicas.never_written,
        bcsid_reported: replicas.bcsid_reported,
        repair_seconds,
        replica_problems: if took.is_some() {
            Vec::new()
        } else {
            replicas.problems
        },
        assert_replicas: opts.assert_replicas,
    }
}

/// A run on a process cluster (`ozone cluster up --oms 3`): SIGKILL/restart and
/// SIGSTOP/SIGCONT of datanodes, the OM leader, SCM and the gateway; fails (keeping the cluster
/// directory) unless [`assert_clean`] with `min_faults`.
pub fn run_processes(opts: &Opts, min_faults: u32) -> Report {
    println!(
        "[nemesis] seed {} (replay: NEMESIS_SEED={}); {:?} of load from {} clients, {} datanodes, 3 OMs",
        opts.seed, opts.seed, opts.run, opts.clients, opts.datanodes
    );
    let mut cluster = Cluster::start(ClusterOpts {
        datanodes: opts.datanodes,
        oms: 3,
        set: cluster_config(),
        ..Default::default()
    });
    let addr = cluster.s3_addr();
    println!(
        "[nemesis] cluster in {}, S3 on {addr}",
        cluster.dir().display()
    );
    wait_writable(&addr, true, Duration::from_secs(120)).expect("the cluster takes writes");
    let mut targets: Vec<(Target, u64)> = (1..=opts.datanodes)
        .map(|n| (Target::Datanode(n), 2))
        .collect();
    targets.extend([
        (Target::OmLeader, 3),
        (Target::Scm, 2),
        (Target::Gateway, 2),
    ]);
    let mut schedule = faults::Schedule::new(
        opts.seed,
        targets,
        vec![(Kind::Kill, 1), (Kind::Stop, 1)],
        opts.gap_ms,
        opts.duration_ms,
    );
    let ran = {
        let cluster = &mut cluster;
        load_with_nemesis(opts, &addr, move |stop, t0| {
            let mut procs = faults::Processes::new(cluster, 3, opts.seed);
            faults::run(&mut procs, &mut schedule, stop, t0)
        })
    };
    let list = || {
        let out = cluster.ozone(&["admin", "container", "list", "--all", "--json"]);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    let report = finish(opts, &addr, &ran, list, "processes");
    println!("{report}");
    // Asserted with the cluster still up, so a failed run keeps its directory and logs.
    assert_clean(&report, min_faults);
    report
}

/// Asserts what every run must show: enough faults, nothing lost, nothing wrong, repaired.
#[track_caller]
fn assert_clean(report: &Report, min_faults: u32) {
    assert!(
        report.faults >= min_faults,
        "only {} faults (want at least {min_faults}); seed {}",
        report.faults,
        report.seed
    );
    let v = report.violations();
    assert!(
        v.is_empty(),
        "seed {}: {} violations:\n{}",
        report.seed,
        v.len(),
        few(&v)
    );
}

#[test]
fn ci_three_minutes_of_faults_lose_nothing() {
    let opts = Opts::from_env(180);
    run_processes(&opts, 12);
}

/// A long run: `NEMESIS_SECONDS` (default 900) and the other `NEMESIS_*` knobs; see
/// `bench/nemesis.sh`.
#[test]
#[ignore = "long run: bench/nemesis.sh"]
fn long_run() {
    let opts = Opts::from_env(900);
    run_processes(&opts, (opts.run.as_secs() / 18) as u32);
}

#[test]
#[ignore = "needs a Docker Engine and the static image: bench/nemesis.sh docker"]
fn docker_network_cuts() {
    let opts = Opts::from_env(300);
    let min = (opts.run.as_secs() / 18) as u32;
    let Some(report) = docker::run(&opts) else {
        return;
    };
    assert_clean(&report, min);
}
