//! The multi-process test harness: starts `ozone cluster up` (the release binary, built by
//! `.ci/run`) on a temp dir with free ports, waits until it accepts writes, and drives it with
//! real clients (the aws CLI, the pytest suites of tests/py, `ozone admin`). It can SIGKILL
//! every process and start the cluster again on the same directory. Dropping a [`Cluster`]
//! kills what is left; the directory (logs included) is kept when the test failed.
//! Non-destructive tests use [`Cluster::shared`] instead: one cluster for the whole test run
//! (see [`shared`]).

use ozone_common::config::keys;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod shared;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The release build made by `compose/build.sh` (and `.ci/run`): statically linked, so the
/// same binary runs here and in the `FROM scratch` image.
pub fn static_ozone_bin() -> PathBuf {
    workspace().join("target/x86_64-unknown-linux-gnu/release/ozone")
}

/// The `ozone` binary under test: `$OZONE_BIN`, else the newer of target/release/ozone and the
/// static release build ([`static_ozone_bin`]).
pub fn ozone_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OZONE_BIN") {
        return PathBuf::from(p);
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let candidates = [workspace().join("target/release/ozone"), static_ozone_bin()];
    candidates
        .iter()
        .filter_map(|p| modified(p).map(|t| (t, p)))
        .max_by_key(|(t, _)| *t)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| {
            panic!(
                "no release binary: run `bash compose/build.sh --binary-only` (.ci/run does) \
                 or `cargo build --release --bin ozone` first"
            )
        })
}

/// A tool from the project's test virtualenv (`.venv`, made by .ci/setup), else from PATH.
pub fn tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("OZONE_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv"));
    let p = venv.join("bin").join(name);
    if p.exists() { p } else { PathBuf::from(name) }
}

pub struct ClusterOpts {
    pub datanodes: u32,
    /// OMs: 1, or 3 (an HA OM service, `om-1..3`).
    pub oms: u32,
    /// SCMs: 1 (`scm`), or 3 (an HA SCM service, `scm-1..3`).
    pub scms: u32,
    /// Extra `--set KEY=VALUE` configuration.
    pub set: Vec<(String, String)>,
    /// Environment variables of `ozone cluster up` (e.g. `OZONE-SITE.XML_<key>`).
    pub env: Vec<(String, String)>,
    /// Open-file limit (soft and hard, as `ulimit -n`) of `ozone cluster up` and so of every
    /// role it starts; `None` keeps the test's own.
    pub nofile: Option<u64>,
    /// `cluster up --https`: the gateway serves HTTPS too ([`Cluster::https_endpoint`], with
    /// the CA of [`Cluster::ca_file`]).
    pub https: bool,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        ClusterOpts {
            datanodes: 3,
            oms: 1,
            scms: 1,
            set: Vec::new(),
            env: Vec::new(),
            nofile: None,
            https: false,
        }
    }
}

pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    opts: ClusterOpts,
    up: Option<Child>,
    /// The run directory of the shared cluster ([`Cluster::shared`]); `None` for an own one.
    shared: Option<PathBuf>,
    /// Roles started again by [`Cluster::start_role`] (not children of `cluster up`): name
    /// and pid.
    restarted: Vec<(String, i32)>,
    pub endpoint: String,
    /// The S3 credentials of [`Cluster::aws`], [`Cluster::pytest`] and [`Cluster::client`].
    credentials: std::sync::OnceLock<(String, String)>,
    /// `https://127.0.0.1:<port>` with [`ClusterOpts::https`], else empty.
    pub https_endpoint: String,
}

impl Cluster {
    pub fn start(opts: ClusterOpts) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("ozone-it-")
            .tempdir()
            .expect("temp dir");
        let path = dir.path().to_path_buf();
        let mut c = Cluster {
            dir: Some(dir),
            path,
            opts,
            up: None,
            shared: None,
            restarted: Vec::new(),
            endpoint: String::new(),
            credentials: std::sync::OnceLock::new(),
            https_endpoint: String::new(),
        };
        c.launch();
        c
    }

    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.path.join("conf")
    }

    /// The CA that signed the gateway's HTTPS certificate (`cluster up --https`).
    pub fn ca_file(&self) -> PathBuf {
        self.path.join("tls").join("ca.pem")
    }

    /// The arguments of `ozone cluster up` for a cluster in `path`.
    fn up_args(path: &Path, opts: &ClusterOpts) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["cluster".into(), "up".into(), "--data-dir".into()];
        args.push(path.into());
        for (flag, value) in [
            ("--datanodes", opts.datanodes.to_string()),
            ("--oms", opts.oms.to_string()),
            ("--scms", opts.scms.to_string()),
            ("--s3g-port", "0".to_string()),
        ] {
            args.push(flag.into());
            args.push(value.into());
        }
        if opts.https {
            args.extend(["--https".into(), "--https-port".into(), "0".into()]);
        }
        // Short heartbeats so replica reports arrive quickly.
        let mut set = vec![(
            keys::HDDS_HEARTBEAT_INTERVAL.name().to_string(),
            "1s".to_string(),
        )];
        set.extend(opts.set.iter().cloned());
        for (k, v) in &set {
            args.push("--set".into());
            args.push(format!("{k}={v}").into());
        }
        args
    }

    /// Panics on the shared cluster, which other tests are using.
    #[track_caller]
    fn own(&self, what: &str) {
        assert!(
            self.shared.is_none(),
            "{what} on the shared cluster: use Cluster::start for a test that needs it"
        );
    }

    fn launch(&mut self) {
        let mut cmd = match self.opts.nofile {
            // The shell sets both limits, then becomes `ozone cluster up`.
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(ozone_bin());
                c
            }
            None => Command::new(ozone_bin()),
        };
        cmd.args(Cluster::up_args(&self.path, &self.opts));
        cmd.envs(self.opts.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::File::create(self.path.join(format!(
            "cluster-up-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        )))
        .expect("cluster log");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start ozone cluster up");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.up = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(ep) = line.strip_prefix("S3 endpoint: ") {
                        self.endpoint = ep.trim().to_string();
                        if !self.opts.https {
                            break;
                        }
                    }
                    if let Some(ep) = line.strip_prefix("S3 HTTPS endpoint: ") {
                        let ep = ep.split_whitespace().next().unwrap_or_default();
                        self.https_endpoint = ep.to_string();
                        break;
                    }
                }
                Err(_) => panic!(
                    "cluster did not print its S3 endpoint in time; logs in {}",
                    self.path.display()
                ),
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in rx {});
    }

    /// Pids of every role process, from their `pid` files.
    pub fn role_pids(&self) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for e in entries.flatten() {
                let pid_file = e.path().join("pid");
                if let Ok(text) = std::fs::read_to_string(&pid_file)
                    && let Ok(pid) = text.trim().parse()
                {
                    out.push((e.file_name().to_string_lossy().into_owned(), pid));
                }
            }
        }
        out.sort();
        out
    }

    /// SIGKILLs `ozone cluster up` and every role process.
    pub fn kill_all(&mut self) {
        self.own("kill_all");
        if let Some(mut up) = self.up.take() {
            let _ = up.kill();
            let _ = up.wait();
        }
        // Roles restarted by start_role are not children of `cluster up`, and their pid files
        // may be gone with it.
        for (_, pid) in std::mem::take(&mut self.restarted) {
            if !is_zombie(pid) {
                signal(pid, rustix::process::Signal::KILL);
            }
        }
        for (_, pid) in self.role_pids() {
            signal(pid, rustix::process::Signal::KILL);
        }
        // Wait until every pid is gone so ports are free for a restart.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self
                .role_pids()
                .iter()
                .any(|(_, pid)| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(*pid))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs one role process (`scm`, `scm-2`, `om-1`, `datanode-2`, `s3g`, ...) and waits
    /// until it is gone. `cluster up` notices and leaves it down.
    pub fn kill_role(&mut self, name: &str) {
        self.own("kill_role");
        self.end_role(name, rustix::process::Signal::KILL, Duration::from_secs(10));
    }

    /// SIGTERMs one role process, which shuts down in order, and waits until it is gone
    /// (SIGKILL after 30 s). `cluster up` notices and leaves it down.
    pub fn stop_role(&mut self, name: &str) {
        self.own("stop_role");
        if !self.end_role(name, rustix::process::Signal::TERM, Duration::from_secs(30)) {
            self.end_role(name, rustix::process::Signal::KILL, Duration::from_secs(10));
        }
    }

    /// Sends `sig` to role `name` and waits up to `within` for it to exit; whether it did (its
    /// pid file is then removed).
    fn end_role(&self, name: &str, sig: rustix::process::Signal, within: Duration) -> bool {
        let pid_file = self.path.join(name).join("pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("no pid file for {name}: {e}"))
            .trim()
            .parse()
            .expect("pid file holds a pid");
        signal(pid, sig);
        let deadline = Instant::now() + within;
        let gone = || !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid);
        while Instant::now() < deadline && !gone() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let gone = gone();
        if gone {
            let _ = std::fs::remove_file(pid_file);
        }
        gone
    }

    /// Starts one role process again with its own configuration (`DIR/<name>/conf`), appending
    /// to its log and writing its pid file, as `cluster up` does.
    pub fn start_role(&mut self, name: &str) {
        self.own("start_role");
        let role = name.split('-').next().unwrap_or(name);
        let dir = self.path.join(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .expect("role log");
        let child = Command::new(ozone_bin())
            .arg(role)
            .env("OZONE_CONF_DIR", dir.join("conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start role");
        std::fs::write(dir.join("pid"), format!("{}\n", child.id())).expect("pid file");
        self.restarted.push((name.to_string(), child.id() as i32));
        // The process is reaped by the kernel's init once this handle is dropped; kill_all
        // finds it by its pid file.
        drop(child);
    }

    /// Starts `ozone cluster up` again on the same directory.
    pub fn restart(&mut self) {
        self.own("restart");
        self.launch();
    }

    /// SIGTERM to `cluster up`, which stops its children; waits for it. Roles started again
    /// by [`Cluster::start_role`] are not its children: they are stopped the same way.
    pub fn stop(&mut self) {
        self.own("stop");
        if let Some(mut up) = self.up.take() {
            signal(up.id() as i32, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut exited = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = up.try_wait() {
                    exited = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !exited {
                let _ = up.kill();
                let _ = up.wait();
            }
        }
        for (name, pid) in std::mem::take(&mut self.restarted) {
            if Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
                std::fs::write(self.path.join(&name).join("pid"), format!("{pid}\n"))
                    .expect("pid file");
                self.stop_role(&name);
            }
        }
    }

    /// Runs `ozone <args>` against this cluster.
    pub fn ozone(&self, args: &[&str]) -> Output {
        Command::new(ozone_bin())
            .args(args)
            .env("OZONE_CONF_DIR", self.conf_dir())
            .output()
            .expect("run ozone")
    }

    /// Runs `ozone <args>` against this cluster with the test S3 credentials in its
    /// environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`), as freon's S3 generators
    /// read them.
    pub fn ozone_s3(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(ozone_bin());
        cmd.args(args).env("OZONE_CONF_DIR", self.conf_dir());
        self.client_env(&mut cmd);
        cmd.output().expect("run ozone")
    }

    /// `ozone admin <service> roles --json` (`service`: `om` or `scm`): one object per node
    /// (`id`, `address`, `role`, `term`, `applied_index`, `snapshot_index`, `purged_index`,
    /// ...).
    fn raft_roles(&self, service: &str) -> Vec<serde_json::Value> {
        let out = ok(self.ozone(&["admin", service, "roles", "--json"]));
        match serde_json::from_str(&out) {
            Ok(serde_json::Value::Array(v)) => v,
            other => panic!("{service} roles --json printed {out:?}: {other:?}"),
        }
    }

    /// The node id of the node of `service` (`om`, `scm`) that leads, waiting up to `within`.
    fn raft_leader(&self, service: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self
                .raft_roles(service)
                .iter()
                .find(|r| r["role"] == "LEADER")
                .and_then(|r| r["id"].as_str())
            {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {service} leader within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `ozone admin om roles --json`: one object per OM (`id`, `address`, `role`, `term`,
    /// `applied_index`, `snapshot_index`, `purged_index`, ...).
    pub fn om_roles(&self) -> Vec<serde_json::Value> {
        self.raft_roles("om")
    }

    /// The role directory (`om-2`) of the OM that leads, waiting up to `within`.
    pub fn om_leader(&self, within: Duration) -> String {
        om_dir(&self.raft_leader("om", within))
    }

    /// `ozone admin scm roles --json`: one object per SCM, as [`Cluster::om_roles`].
    pub fn scm_roles(&self) -> Vec<serde_json::Value> {
        self.raft_roles("scm")
    }

    /// The role directory (`scm-2`; `scm` for a single SCM) of the SCM that leads, waiting up
    /// to `within`.
    pub fn scm_leader(&self, within: Duration) -> String {
        let id = self.raft_leader("scm", within);
        if self.opts.scms > 1 {
            scm_dir(&id)
        } else {
            "scm".to_string()
        }
    }

    /// The role directory of SCM `i` (1-based): `scm-i`, or `scm` for a single SCM.
    pub fn scm_role(&self, i: u32) -> String {
        assert!(
            (1..=self.opts.scms).contains(&i),
            "the cluster has {} SCM(s), not an SCM {i}",
            self.opts.scms
        );
        if self.opts.scms > 1 {
            format!("scm-{i}")
        } else {
            "scm".to_string()
        }
    }

    /// SIGKILLs SCM `i` (1-based; see [`Cluster::kill_role`]).
    pub fn kill_scm(&mut self, i: u32) {
        let name = self.scm_role(i);
        self.kill_role(&name);
    }

    /// SIGTERMs SCM `i` (1-based) and waits until it has exited (see [`Cluster::stop_role`]).
    pub fn stop_scm(&mut self, i: u32) {
        let name = self.scm_role(i);
        self.stop_role(&name);
    }

    /// Starts SCM `i` (1-based) again after [`Cluster::kill_scm`] or [`Cluster::stop_scm`].
    pub fn start_scm(&mut self, i: u32) {
        let name = self.scm_role(i);
        self.start_role(&name);
    }

    /// Every container SCM knows, from `ozone admin container list --all --json`.
    pub fn containers(&self) -> Vec<serde_json::Value> {
        let out = ok(self.ozone(&["admin", "container", "list", "--all", "--json"]));
        match serde_json::from_str(&out) {
            Ok(serde_json::Value::Array(v)) => v,
            other => panic!("container list --json printed {out:?}: {other:?}"),
        }
    }

    /// The value of `key` in the configuration `cluster up` wrote for `role` (`datanode-1`).
    pub fn conf_value(&self, role: &str, key: &str) -> String {
        let path = self.path.join(role).join("conf/ozone-site.xml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let needle = format!("<name>{key}</name><value>");
        let start = text
            .find(&needle)
            .unwrap_or_else(|| panic!("{key} not in {role} conf"))
            + needle.len();
        text[start..].split('<').next().unwrap_or("").to_string()
    }

    /// The value of the first line of a datanode's `/prom` that starts with `line_prefix`
    /// (e.g. `ozone_datanode_state{name="scrub_faulted_containers"}`); `None` if there is no
    /// such line or the datanode does not answer.
    pub fn datanode_metric(&self, role: &str, line_prefix: &str) -> Option<f64> {
        let addr = self.conf_value(role, keys::HDDS_DATANODE_HTTP_ADDRESS.name());
        let body = ozone_common::probe::get(&addr, "/prom").ok()?.text();
        body.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// `host:port` of the S3 endpoint.
    pub fn s3_addr(&self) -> String {
        self.endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }

    /// Runs the aws CLI with this cluster's endpoint and test credentials.
    pub fn aws(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(tool("aws"));
        cmd.arg("--endpoint-url").arg(&self.endpoint).args(args);
        self.client_env(&mut cmd);
        cmd.output().expect("run aws CLI")
    }

    /// Runs pytest in tests/py on `args` (modules, `module::case` ids, options such as `-k`)
    /// against this cluster's gateway (`OZONE_S3_ENDPOINT`), with the test credentials,
    /// `OZONE_TEST_SECURE` (`1` when the cluster runs with security on, else `0`) and `env` in
    /// its environment. Every case is its own result, each named in the summary
    /// (`-rA`). Fails, showing the output, unless every case that ran passed (none failed,
    /// errored or was skipped); returns the output.
    #[track_caller]
    pub fn pytest(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut cmd = Command::new(tool("python3"));
        cmd.args(["-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"])
            .args(args)
            .current_dir(workspace().join("tests/py"));
        self.client_env(&mut cmd);
        cmd.env("OZONE_S3_ENDPOINT", &self.endpoint)
            .env("OZONE_TEST_SECURE", if self.secure() { "1" } else { "0" })
            .env("PYTHONDONTWRITEBYTECODE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = ok(cmd
            .output()
            .expect("run pytest (in the test virtualenv: bash .ci/setup.sh)"));
        let summary = out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        assert!(
            summary.contains(" passed")
                && !["failed", "error", "skipped", "xfail", "xpass"]
                    .iter()
                    .any(|bad| summary.contains(bad)),
            "pytest {args:?}: not every case passed ({summary}):\n{out}"
        );
        out
    }

    /// A command for any S3 client, with the test credentials in its environment.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(tool(program));
        self.client_env(&mut cmd);
        cmd
    }

    /// Runs the aws CLI with the credentials `access_key` / `secret` (security on).
    pub fn aws_as(&self, access_key: &str, secret: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(tool("aws"));
        cmd.arg("--endpoint-url").arg(&self.endpoint).args(args);
        self.client_env_as(&mut cmd, access_key, secret);
        cmd.output().expect("run aws CLI")
    }

    /// `ozone s3 getsecret -u user` with the cluster's admin credential: (access key, secret).
    pub fn getsecret(&self, user: &str) -> (String, String) {
        let out = ok(self.ozone(&["s3", "getsecret", "-u", user]));
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {out:?}"))
                .trim()
                .to_string()
        };
        (field("awsAccessKey="), field("awsSecret="))
    }

    /// The key and certificate (security on) a role keeps under its directory (`certs/`), e.g.
    /// `datanode-1`, `om-1`, `scm`.
    pub fn node_cert(&self, role: &str) -> ozone_common::tls::NodeCert {
        let dir = self.path.join(role);
        let cert = files_under(&dir, |p| p.ends_with("certs/cert.pem"));
        let cert_dir = cert
            .first()
            .and_then(|p| p.parent())
            .unwrap_or_else(|| panic!("no certificate under {}", dir.display()));
        ozone_common::tls::NodeCert::load(cert_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", cert_dir.display()))
            .unwrap_or_else(|| panic!("incomplete certificate files in {}", cert_dir.display()))
    }

    /// Whether this cluster runs with `ozone.security.enabled=true`.
    pub fn secure(&self) -> bool {
        let key = keys::OZONE_SECURITY_ENABLED.name();
        self.opts
            .set
            .iter()
            .any(|(k, v)| k == key && v.eq_ignore_ascii_case("true"))
    }

    /// The test credentials (access key, secret): any key with security off; on the shared
    /// cluster with security on (`OZONE_TEST_SECURE=1`), the real secret of user `testuser`.
    /// Own clusters with security on keep the unknown `testuser`/`testsecret`, which their
    /// tests expect to be refused.
    pub fn credentials(&self) -> (String, String) {
        self.credentials
            .get_or_init(|| {
                if self.shared.is_some() && self.secure() {
                    self.getsecret("testuser")
                } else {
                    ("testuser".into(), "testsecret".into())
                }
            })
            .clone()
    }

    fn client_env(&self, cmd: &mut Command) {
        let (key, secret) = self.credentials();
        self.client_env_as(cmd, &key, &secret);
    }

    fn client_env_as(&self, cmd: &mut Command, access_key: &str, secret: &str) {
        cmd.env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.path.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // A CA bundle from the environment makes some clients (rclone) refuse plain http.
            .env_remove("AWS_CA_BUNDLE")
            .env("PYTHONUNBUFFERED", "1");
    }
}

/// The role directory of OM node `om2`: `om-2`.
pub fn om_dir(node_id: &str) -> String {
    node_dir("om", node_id)
}

/// The role directory of SCM node `scm2` of an SCM service: `scm-2`.
pub fn scm_dir(node_id: &str) -> String {
    node_dir("scm", node_id)
}

/// `<role><n>` -> `<role>-<n>`, as `cluster up` names the directories of a service's nodes.
fn node_dir(role: &str, node_id: &str) -> String {
    match node_id.strip_prefix(role) {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            format!("{role}-{n}")
        }
        _ => node_id.to_string(),
    }
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Whether `pid` has exited entirely. Its main thread turns zombie first; the process still
/// holds its files (and so its database locks) until its other threads have exited too.
fn is_zombie(pid: i32) -> bool {
    let leader_dead = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true);
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    leader_dead && threads <= 1
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(run) = &self.shared {
            // Other tests go on using it; its supervisor stops it at the end of the run and
            // keeps the directory if a test failed.
            if std::thread::panicking() {
                let _ = std::fs::write(run.join("keep"), b"");
                eprintln!(
                    "test failed; the shared cluster's directory with logs is kept at {}",
                    run.display()
                );
            }
            return;
        }
        self.kill_all();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "test failed; cluster directory with logs kept at {}",
                kept.display()
            );
        }
    }
}

/// Asserts a command succeeded, showing its output otherwise; returns stdout.
#[track_caller]
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Writes `len` bytes of repeatable pseudo-random data to `path`.
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create file"));
    let mut x = seed | 1;
    let mut left = len;
    let mut buf = [0u8; 8];
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.copy_from_slice(&x.to_le_bytes());
        let n = left.min(8);
        f.write_all(&buf[..n]).expect("write file");
        left -= n;
    }
    f.flush().expect("flush file");
}

/// Every block file (`*.block`) under `dir`, e.g. one datanode's directory, sorted.
pub fn block_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, |p| p.extension().is_some_and(|x| x == "block"))
}

/// Every file under `dir` (at any depth) for which `keep` holds, sorted.
pub fn files_under(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether two files have identical bytes.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(x), Ok(y)) = (std::fs::read(a), std::fs::read(b)) else {
        return false;
    };
    x == y
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_ids_name_role_directories() {
        assert_eq!(super::om_dir("om2"), "om-2");
        assert_eq!(super::scm_dir("scm3"), "scm-3");
        // Not `<role><n>`: the node id itself.
        assert_eq!(super::scm_dir("scm"), "scm");
        assert_eq!(super::om_dir("omx"), "omx");
        assert_eq!(super::om_dir("scm1"), "scm1");
    }
}
