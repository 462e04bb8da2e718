//! The nemesis: from a seeded schedule, one fault at a time on one role, then healed. On the
//! process cluster ([`Processes`]) a fault SIGKILLs the role and starts it again after a while,
//! or SIGSTOPs it and sends SIGCONT; on the Docker cluster (`super::docker`) it also cuts a
//! container off the network and connects it again. Targets are any datanode, the OM leader (an
//! OM if there is one only), SCM and the gateway.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ozone_tests::Cluster;

use super::data::Rng;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// SIGKILL, down for the fault's duration, started again.
    Kill,
    /// SIGSTOP for the fault's duration, then SIGCONT.
    Stop,
    /// Off the network (`docker network disconnect`) for the duration, then connected again.
    NetCut,
}

/// Which role a fault hits (resolved to a process or container when it happens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Datanode(u32),
    OmLeader,
    Scm,
    Gateway,
}

/// A fault as drawn from the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Quiet time before it.
    pub gap: Duration,
    pub target: Target,
    pub kind: Kind,
    pub duration: Duration,
}

/// The seeded schedule: an endless sequence of [`Planned`] faults over `targets` and `kinds`.
pub struct Schedule {
    rng: Rng,
    targets: Vec<(Target, u64)>,
    kinds: Vec<(Kind, u64)>,
    gap: (u64, u64),
    duration: (u64, u64),
}

impl Schedule {
    /// `targets` and `kinds` with their weights; gaps and durations in ms.
    pub fn new(
        seed: u64,
        targets: Vec<(Target, u64)>,
        kinds: Vec<(Kind, u64)>,
        gap_ms: (u64, u64),
        duration_ms: (u64, u64),
    ) -> Schedule {
        Schedule {
            rng: Rng::fork(seed, 1),
            targets,
            kinds,
            gap: gap_ms,
            duration: duration_ms,
        }
    }

    pub fn next_fault(&mut self) -> Planned {
        let gap = Duration::from_millis(self.rng.range(self.gap.0, self.gap.1));
        let t = self
            .rng
            .weighted(&self.targets.iter().map(|(_, w)| *w).collect::<Vec<_>>());
        let k = self
            .rng
            .weighted(&self.kinds.iter().map(|(_, w)| *w).collect::<Vec<_>>());
        let duration = Duration::from_millis(self.rng.range(self.duration.0, self.duration.1));
        Planned {
            gap,
            target: self.targets[t].0,
            kind: self.kinds[k].0,
            duration,
        }
    }
}

/// Something the nemesis can break and mend.
pub trait Faults {
    /// The process or container a target is now (the OM leader is asked for).
    fn resolve(&mut self, target: Target) -> Result<String, String>;
    fn inject(&mut self, kind: Kind, name: &str) -> Result<(), String>;
    fn heal(&mut self, kind: Kind, name: &str) -> Result<(), String>;
}

/// What the nemesis did.
#[derive(Debug, Default, Clone)]
pub struct Done {
    /// Faults injected and healed, by kind and role (`Kill datanode-2`, ...).
    pub by_kind: BTreeMap<String, u32>,
    pub total: u32,
    /// Faults that could not be injected or healed, with why.
    pub errors: Vec<String>,
    /// When the last fault was healed.
    pub last_healed: Option<Instant>,
}

/// Runs faults from `schedule` on `faults` until `stop` is set (the fault under way is healed
/// first); prints each with its time since `t0`.
pub fn run(
    faults: &mut dyn Faults,
    schedule: &mut Schedule,
    stop: &AtomicBool,
    t0: Instant,
) -> Done {
    let mut done = Done::default();
    let sleep = |d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let f = schedule.next_fault();
        sleep(f.gap);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let name = match faults.resolve(f.target) {
            Ok(n) => n,
            Err(e) => {
                done.errors.push(format!("resolve {:?}: {e}", f.target));
                continue;
            }
        };
        let at = t0.elapsed().as_secs_f64();
        if let Err(e) = faults.inject(f.kind, &name) {
            println!(
                "[nemesis {at:7.1}s] {:?} {name}: FAILED to inject: {e}",
                f.kind
            );
            done.errors.push(format!("{:?} {name}: {e}", f.kind));
            continue;
        }
        println!(
            "[nemesis {at:7.1}s] {:?} {name} ({:?}) for {:.1}s",
            f.kind,
            f.target,
            f.duration.as_secs_f64()
        );
        // The fault lasts its duration even when the run is ending, so its heal is exercised.
        std::thread::sleep(f.duration);
        let healed = faults.heal(f.kind, &name);
        let at = t0.elapsed().as_secs_f64();
        match healed {
            Ok(()) => println!("[nemesis {at:7.1}s] healed {name}"),
            Err(e) => {
                println!("[nemesis {at:7.1}s] FAILED to heal {name}: {e}");
                done.errors.push(format!("heal {:?} {name}: {e}", f.kind));
            }
        }
        // `datanode-2` -> datanode, `<project>_om3_1` -> om.
        let role = name
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '_')
            .rsplit('_')
            .next()
            .unwrap_or(&name);
        *done
            .by_kind
            .entry(format!("{:?} {role}", f.kind))
            .or_default() += 1;
        done.total += 1;
        done.last_healed = Some(Instant::now());
    }
    done
}

/// Faults on the processes of a [`Cluster`] (`ozone cluster up`).
pub struct Processes<'a> {
    pub cluster: &'a mut Cluster,
    pub oms: u32,
    rng: Rng,
}

impl<'a> Processes<'a> {
    pub fn new(cluster: &'a mut Cluster, oms: u32, seed: u64) -> Processes<'a> {
        Processes {
            cluster,
            oms,
            rng: Rng::fork(seed, 2),
        }
    }

    fn pid(&self, name: &str) -> Result<i32, String> {
        let file = self.cluster.dir().join(name).join("pid");
        std::fs::read_to_string(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    fn signal(&self, name: &str, sig: rustix::process::Signal) -> Result<(), String> {
        let pid = self.pid(name)?;
        let pid = rustix::process::Pid::from_raw(pid).ok_or("pid 0")?;
        rustix::process::kill_process(pid, sig).map_err(|e| format!("signal {name}: {e}"))
    }

    /// The OM leader's role directory (`om-2`), asked of the OMs; if none answers in 10 s, an
    /// OM drawn from the seed.
    fn om_leader(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self.cluster.ozone(&["admin", "om", "roles", "--json"]);
            if let Ok(serde_json::Value::Array(roles)) =
                serde_json::from_slice::<serde_json::Value>(&out.stdout)
                && let Some(id) = roles
                    .iter()
                    .find(|r| r["role"] == "LEADER")
                    .and_then(|r| r["id"].as_str())
            {
                return ozone_tests::om_dir(id);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        format!("om-{}", self.rng.range(1, self.oms as u64))
    }
}

impl Faults for Processes<'_> {
    fn resolve(&mut self, target: Target) -> Result<String, String> {
        Ok(match target {
            Target::Datanode(n) => format!("datanode-{n}"),
            Target::OmLeader if self.oms == 1 => "om-1".to_string(),
            Target::OmLeader => self.om_leader(),
            Target::Scm => "scm".to_string(),
            Target::Gateway => "s3g".to_string(),
        })
    }

    fn inject(&mut self, kind: Kind, name: &str) -> Result<(), String> {
        match kind {
            Kind::Kill => {
                self.pid(name)?;
                self.cluster.kill_role(name);
                Ok(())
            }
            Kind::Stop => self.signal(name, rustix::process::Signal::STOP),
            Kind::NetCut => Err("network cuts need the Docker cluster".into()),
        }
    }

    fn heal(&mut self, kind: Kind, name: &str) -> Result<(), String> {
        match kind {
            Kind::Kill => {
                self.cluster.start_role(name);
                Ok(())
            }
            Kind::Stop => self.signal(name, rustix::process::Signal::CONT),
            Kind::NetCut => Ok(()),
        }
    }
}
