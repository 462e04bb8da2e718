//! The nemesis on the Docker cluster (`compose/ozone-ha`: three SCMs, three OMs, three datanodes, the
//! gateway, each a `FROM scratch` container): faults are network cuts (`docker network
//! disconnect`, later `connect` with the container's aliases and address), SIGSTOP/SIGCONT of
//! the container's process (`docker kill --signal STOP`) and kills (`docker kill`, later
//! `docker start`) of a datanode or the OM leader. The compose file's intervals are shortened by
//! an override file. Without a Docker Engine the run is skipped (None).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ozone_tests::{ozone_bin, workspace};

use super::data::Rng;
use super::faults::{self, Faults, Kind, Target};
use super::{Opts, Report};

/// Runs `program args` with a time limit; stdout on success, else why.
fn exec(
    secs: u32,
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    dir: Option<&Path>,
) -> Result<String, String> {
    let mut cmd = Command::new("timeout");
    cmd.arg(secs.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}: {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    exec(120, "docker", args, &[], None)
}

/// The compose project: its command, directory, name, environment; removed when dropped.
struct Project {
    compose: Vec<String>,
    dir: PathBuf,
    override_file: tempfile::NamedTempFile,
    env: Vec<(&'static str, String)>,
    name: String,
    /// The image tag this run built (removed at the end), if it built one.
    built_image: Option<String>,
}

impl Project {
    fn compose(&self, args: &[&str]) -> Result<String, String> {
        let ovr = self.override_file.path().to_string_lossy().into_owned();
        let mut full: Vec<&str> = self.compose[1..].iter().map(String::as_str).collect();
        full.extend(["-f", "docker-compose.yaml", "-f", &ovr]);
        full.extend_from_slice(args);
        exec(300, &self.compose[0], &full, &self.env, Some(&self.dir))
    }

    /// Container names of a service, sorted.
    fn containers(&self, service: &str) -> Result<Vec<String>, String> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={}", self.name),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
            "--format",
            "{{.Names}}",
        ])?;
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        Ok(v)
    }

    fn network(&self) -> String {
        format!("{}_default", self.name)
    }

    /// Waits until every container is running and healthy, 3 datanodes among them.
    fn wait_healthy(&self, within: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let out = docker(&[
                "ps",
                "-a",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.name),
                "--format",
                "{{.Names}} {{.Status}}",
            ])?;
            let lines: Vec<&str> = out.lines().collect();
            let dns = lines
                .iter()
                .filter(|l| l.contains("datanode") && l.contains("(healthy)"))
                .count();
            if !lines.is_empty() && dns >= 3 && lines.iter().all(|l| l.contains("(healthy)")) {
                return Ok(());
            }
            if start.elapsed() > within {
                return Err(format!("not healthy within {within:?}: {lines:?}"));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self
                .compose(&["logs", "--no-color", "--tail=30"])
                .map(|l| println!("{l}"));
        }
        let _ = self.compose(&["kill"]);
        let _ = self.compose(&["down", "-v", "--remove-orphans", "-t", "1"]);
        if let Some(img) = &self.built_image {
            let _ = docker(&["rmi", img]);
        }
    }
}

/// The compose override: short intervals as on the process cluster, for every service.
fn override_yaml() -> String {
    let env = [
        ("hdds.heartbeat.interval", "1s"),
        ("ozone.scm.stale.node.interval", "6s"),
        ("ozone.scm.dead.node.interval", "12s"),
        ("hdds.scm.replication.thread.interval", "1s"),
        ("hdds.scm.replication.event.timeout", "20s"),
        ("ozone.block.deleting.service.interval", "2s"),
        ("ozone.scm.container.size", "128MB"),
    ];
    let mut y = String::from("version: \"2.4\"\nservices:\n");
    for svc in [
        "scm1", "scm2", "scm3", "om1", "om2", "om3", "datanode", "s3g",
    ] {
        y.push_str(&format!("  {svc}:\n    environment:\n"));
        for (k, v) in env {
            y.push_str(&format!("      OZONE-SITE.XML_{k}: \"{v}\"\n"));
        }
    }
    y
}

/// Faults on the compose project's containers.
struct Containers<'a> {
    p: &'a Project,
    rng: Rng,
    /// Aliases and address of a container cut off, to connect it as it was.
    cut: Vec<(String, Vec<String>, String)>,
}

impl Containers<'_> {
    /// The container of the leader of `role`'s service (`om`: om1..om3, `scm`: scm1..scm3).
    fn leader(&mut self, role: &str) -> Result<String, String> {
        for i in 1..=3 {
            for c in self.p.containers(&format!("{role}{i}"))? {
                if let Ok(out) = docker(&["exec", &c, "ozone", "admin", role, "roles", "--json"])
                    && let Ok(serde_json::Value::Array(roles)) =
                        serde_json::from_str::<serde_json::Value>(&out)
                    && let Some(id) = roles
                        .iter()
                        .find(|r| r["role"] == "LEADER")
                        .and_then(|r| r["id"].as_str())
                    && let Some(name) = self.p.containers(id)?.into_iter().next()
                {
                    return Ok(name);
                }
            }
        }
        // No node answers with a leader: one drawn from the seed.
        let node = format!("{role}{}", self.rng.range(1, 3));
        self.p
            .containers(&node)?
            .into_iter()
            .next()
            .ok_or(format!("no {node} container"))
    }
}

impl Faults for Containers<'_> {
    fn resolve(&mut self, target: Target) -> Result<String, String> {
        match target {
            Target::Datanode(n) => self
                .p
                .containers("datanode")?
                .get(n as usize - 1)
                .cloned()
                .ok_or(format!("no datanode {n}")),
            Target::OmLeader => self.leader("om"),
            Target::Scm => self.leader("scm"),
            Target::Gateway => self
                .p
                .containers("s3g")?
                .into_iter()
                .next()
                .ok_or("no s3g".into()),
        }
    }

    fn inject(&mut self, kind: Kind, name: &str) -> Result<(), String> {
        match kind {
            Kind::Kill => docker(&["kill", name]).map(drop),
            // SIGSTOP to the container's process (`docker pause`, the cgroup freezer, fails
            // here now and then: "unable to freeze").
            Kind::Stop => docker(&["kill", "--signal", "STOP", name]).map(drop),
            Kind::NetCut => {
                let net = self.p.network();
                let js = docker(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", name])?;
                let v: serde_json::Value =
                    serde_json::from_str(&js).map_err(|e| format!("{e}: {js}"))?;
                let n = &v[&net];
                let aliases: Vec<String> = n["Aliases"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let ip = n["IPAddress"].as_str().unwrap_or("").to_string();
                docker(&["network", "disconnect", "-f", &net, name])?;
                self.cut.push((name.to_string(), aliases, ip));
                Ok(())
            }
        }
    }

    fn heal(&mut self, kind: Kind, name: &str) -> Result<(), String> {
        match kind {
            Kind::Kill => docker(&["start", name]).map(drop),
            Kind::Stop => docker(&["kill", "--signal", "CONT", name]).map(drop),
            Kind::NetCut => {
                let net = self.p.network();
                let pos = self
                    .cut
                    .iter()
                    .position(|(n, _, _)| n == name)
                    .ok_or("not cut")?;
                let (_, aliases, ip) = self.cut.remove(pos);
                let mut args: Vec<String> = vec!["network".into(), "connect".into()];
                for a in &aliases {
                    args.push("--alias".into());
                    args.push(a.clone());
                }
                let base = args.clone();
                if !ip.is_empty() {
                    args.push("--ip".into());
                    args.push(ip);
                }
                args.push(net.clone());
                args.push(name.to_string());
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                if docker(&refs).is_ok() {
                    return Ok(());
                }
                // The default network has no configured subnet, so no fixed address: a new one.
                let mut args = base;
                args.push(net);
                args.push(name.to_string());
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                docker(&refs).map(drop)
            }
        }
    }
}

/// A run on the three-OM compose cluster; None when no Docker Engine (or Compose) answers.
pub fn run(opts: &Opts) -> Option<Report> {
    if let Err(why) = docker(&["info", "--format", "{{.ServerVersion}}"]) {
        println!("SKIPPED nemesis on Docker: no Docker Engine answers ({why})");
        return None;
    }
    let compose: Vec<String> = if exec(30, "docker", &["compose", "version"], &[], None).is_ok() {
        vec!["docker".into(), "compose".into()]
    } else if exec(30, "docker-compose", &["version"], &[], None).is_ok() {
        vec!["docker-compose".into()]
    } else {
        println!("SKIPPED nemesis on Docker: no Docker Compose");
        return None;
    };
    let name = format!("ozonenemesis{}", std::process::id());
    let (image, built_image) = match std::env::var("NEMESIS_IMAGE") {
        Ok(img) => (img, None),
        Err(_) => {
            let img = format!("ozone-rs:{name}");
            let ok = Command::new("bash")
                .arg(workspace().join("compose/build.sh"))
                .arg("--image-only")
                .env("OZONE_BIN", ozone_bin())
                .env("OZONE_IMAGE", &img)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "compose/build.sh --image-only failed for {} (needs the static build)",
                ozone_bin().display()
            );
            (img.clone(), Some(img))
        }
    };
    let mut override_file = tempfile::NamedTempFile::new().expect("override file");
    std::io::Write::write_all(&mut override_file, override_yaml().as_bytes())
        .expect("write override");
    let project = Project {
        compose,
        dir: workspace().join("compose/ozone-ha"),
        override_file,
        env: vec![
            ("COMPOSE_PROJECT_NAME", name.clone()),
            ("OZONE_IMAGE", image),
            ("OZONE_S3G_PORT", "127.0.0.1:".into()),
            ("OZONE_S3G_WEBADMIN_PORT", "127.0.0.1:".into()),
        ],
        name,
        built_image,
    };
    println!(
        "[nemesis] seed {} (replay: NEMESIS_SEED={}); Docker project {}, {:?} of load from {} clients",
        opts.seed, opts.seed, project.name, opts.run, opts.clients
    );
    project
        .compose(&["up", "-d", "--scale", "datanode=3"])
        .expect("compose up");
    project
        .wait_healthy(Duration::from_secs(240))
        .expect("compose cluster healthy");
    let port = project.compose(&["port", "s3g", "9878"]).expect("s3g port");
    let addr = format!("127.0.0.1:{}", port.trim().rsplit(':').next().unwrap_or(""));
    println!("[nemesis] S3 on {addr}");
    super::wait_writable(&addr, true, Duration::from_secs(120)).expect("the cluster takes writes");

    let targets: Vec<(Target, u64)> = vec![
        (Target::Datanode(1), 1),
        (Target::Datanode(2), 1),
        (Target::Datanode(3), 1),
        (Target::OmLeader, 3),
    ];
    let mut schedule = faults::Schedule::new(
        opts.seed,
        targets,
        vec![(Kind::NetCut, 4), (Kind::Stop, 1), (Kind::Kill, 1)],
        opts.gap_ms,
        opts.duration_ms,
    );
    let ran = super::load_with_nemesis(opts, &addr, |stop, t0| {
        let mut c = Containers {
            p: &project,
            rng: Rng::fork(opts.seed, 2),
            cut: Vec::new(),
        };
        faults::run(&mut c, &mut schedule, stop, t0)
    });
    let scm = project
        .containers("scm1")
        .ok()
        .and_then(|v| v.into_iter().next())
        .unwrap_or_default();
    let list = || {
        docker(&[
            "exec",
            &scm,
            "ozone",
            "admin",
            "container",
            "list",
            "--all",
            "--json",
        ])
    };
    let report = super::finish(opts, &addr, &ran, list, "docker");
    println!("{report}");
    Some(report)
}
