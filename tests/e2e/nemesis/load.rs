//! The load: several clients, each owning its own keys (so the operations on one key are
//! sequential and the checker knows what each key must hold), doing PUT, GET, DELETE and
//! multipart uploads of 0 B to 64 MiB, overwrites included. A request that fails is retried
//! with the same content until it is acknowledged; if it never is (within [`OP_DEADLINE`]) the
//! key's outcome is "maybe" (the old state or the new one) and the client moves to a new key.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::data::{self, Rng};
use super::http::{self, Body};

/// How long one operation is retried before its outcome is left as "maybe".
pub const OP_DEADLINE: Duration = Duration::from_secs(120);
/// The user-metadata header naming the version an object holds.
pub const VERSION_HEADER: &str = "x-amz-meta-nemesis-version";
/// Multipart part size (S3's least for all but the last part).
const PART: u64 = 5 * 1024 * 1024;

/// What a key holds: nothing, or object version `version` of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Absent,
    Obj { version: u64, size: u64 },
}

/// One key of one client.
#[derive(Debug, Clone)]
pub struct KeyRec {
    pub name: String,
    /// The state of the last acknowledged operation (`Absent` before the first).
    pub acked: State,
    /// The state of an operation never acknowledged (the key was left after it).
    pub maybe: Option<State>,
    /// Every version ever sent for this key, with its size: to name what a read returned.
    pub versions: Vec<(u64, u64)>,
}

impl KeyRec {
    pub fn size_of(&self, version: u64) -> Option<u64> {
        self.versions
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, s)| *s)
    }

    /// Whether a read returning `got` is allowed now.
    pub fn allows(&self, got: State) -> bool {
        got == self.acked || self.maybe == Some(got)
    }
}

/// Counters shared by the clients (printed while running and in the report).
#[derive(Default)]
pub struct Stats {
    pub puts: AtomicU64,
    pub multiparts: AtomicU64,
    pub gets: AtomicU64,
    pub deletes: AtomicU64,
    /// Attempts that failed and were retried (or left as maybe).
    pub failed_attempts: AtomicU64,
    /// Operations never acknowledged within the deadline (their keys are "maybe").
    pub maybes: AtomicU64,
    /// GETs that failed (errors during faults are expected; the key is read again later).
    pub get_errors: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Reads served wrong bytes (or a version that key never had).
    pub wrong: AtomicU64,
    /// Reads of an acknowledged object answered 404, or an older version, during the run.
    pub stale_reads: AtomicU64,
    /// What went wrong, one line each (wrong bytes, stale reads, unexpected answers).
    pub problems: Mutex<Vec<String>>,
}

impl Stats {
    pub fn problem(&self, line: String) {
        println!("[nemesis] PROBLEM: {line}");
        if let Ok(mut p) = self.problems.lock() {
            p.push(line);
        }
    }

    pub fn ops(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
            + self.multiparts.load(Ordering::Relaxed)
            + self.gets.load(Ordering::Relaxed)
            + self.deletes.load(Ordering::Relaxed)
    }
}

/// What a GET found.
#[derive(Debug)]
pub enum Read {
    /// 200 and the body of `state`, every byte as it should be.
    Good(State),
    /// 404 NoSuchKey.
    Absent,
    /// 200 but bytes that are not those of any version of the key (or of the version named).
    Wrong(String),
    /// An error (5xx, connection, a body cut short with an error): says nothing about the data.
    Failed(String),
}

/// GETs `key` and checks every byte against the version the object names.
pub fn read_key(addr: &str, bucket: &str, key: &KeyRec, stats: &Stats) -> Read {
    let path = format!("/{bucket}/{}", key.name);
    let (head, mut r) = match http::send(addr, "GET", &path, &[], Body::Empty) {
        Ok(x) => x,
        Err(e) => return Read::Failed(e.to_string()),
    };
    match head.status {
        200 => {}
        404 => {
            let _ = http::read_body(&head, &mut r, |_| {});
            return Read::Absent;
        }
        s => {
            let mut body = Vec::new();
            let _ = http::read_body(&head, &mut r, |b| body.extend_from_slice(b));
            return Read::Failed(format!("{s}: {}", String::from_utf8_lossy(&body)));
        }
    }
    let named = head
        .header(VERSION_HEADER)
        .and_then(|v| u64::from_str_radix(v, 16).ok());
    // Without the header, compare against the acknowledged version.
    let version = match (named, key.acked) {
        (Some(v), _) => v,
        (None, State::Obj { version, .. }) => version,
        (None, State::Absent) => {
            return Read::Wrong(format!(
                "{}: 200 without {VERSION_HEADER} for a key acknowledged absent",
                key.name
            ));
        }
    };
    let Some(size) = key.size_of(version) else {
        return Read::Wrong(format!(
            "{}: served version {version:x}, never written to this key",
            key.name
        ));
    };
    let mut scratch = Vec::new();
    let mut offset = 0u64;
    let mut first_bad: Option<u64> = None;
    let res = http::read_body(&head, &mut r, |b| {
        if first_bad.is_none() && offset + b.len() as u64 <= size {
            first_bad = data::first_difference(version, offset, b, &mut scratch);
        } else if first_bad.is_none() {
            first_bad = Some(offset.max(size));
        }
        offset += b.len() as u64;
    });
    stats.bytes_read.fetch_add(offset, Ordering::Relaxed);
    if let Some(at) = first_bad {
        return Read::Wrong(format!(
            "{}: version {version:x} ({size} B) differs at byte {at}",
            key.name
        ));
    }
    match res {
        Err(e) => Read::Failed(format!("body: {e}")),
        Ok(n) if n != size => Read::Wrong(format!(
            "{}: version {version:x} is {size} B but the body ended cleanly after {n} B",
            key.name
        )),
        Ok(_) => Read::Good(State::Obj { version, size }),
    }
}

/// The answer to one attempt of a mutation.
enum Attempt {
    Acked,
    /// Not acknowledged: the reason; try again.
    Retry(String),
}

/// One client thread: its own keys and choices from its own seeded generator.
pub struct Client<'a> {
    pub id: usize,
    pub addr: String,
    pub bucket: String,
    pub max_size: u64,
    pub rng: Rng,
    pub keys: Vec<KeyRec>,
    /// Indexes of keys still in use (a key left "maybe" is not used again).
    live: Vec<usize>,
    next_key: usize,
    pub stats: &'a Stats,
    pub stop: &'a AtomicBool,
}

/// What every client of a run shares.
pub struct Setup<'a> {
    pub addr: String,
    pub bucket: String,
    pub seed: u64,
    pub max_size: u64,
    /// Keys each client starts with.
    pub keys: usize,
    pub stats: &'a Stats,
    pub stop: &'a AtomicBool,
}

impl<'a> Client<'a> {
    pub fn new(id: usize, setup: &Setup<'a>) -> Client<'a> {
        let mut c = Client {
            id,
            addr: setup.addr.clone(),
            bucket: setup.bucket.clone(),
            max_size: setup.max_size,
            rng: Rng::fork(setup.seed, 1000 + id as u64),
            keys: Vec::new(),
            live: Vec::new(),
            next_key: 0,
            stats: setup.stats,
            stop: setup.stop,
        };
        for _ in 0..setup.keys {
            c.new_key();
        }
        c
    }

    fn new_key(&mut self) {
        self.keys.push(KeyRec {
            name: format!("c{}/k{}", self.id, self.next_key),
            acked: State::Absent,
            maybe: None,
            versions: Vec::new(),
        });
        self.next_key += 1;
        self.live.push(self.keys.len() - 1);
    }

    /// Runs operations until `stop` is set; the operation under way is finished first.
    pub fn run(mut self) -> Vec<KeyRec> {
        while !self.stop.load(Ordering::Relaxed) {
            let slot = self.rng.below(self.live.len() as u64) as usize;
            let k = self.live[slot];
            let op = match self.keys[k].acked {
                State::Absent => self.rng.weighted(&[85, 10, 5, 0]),
                State::Obj { .. } => self.rng.weighted(&[25, 5, 55, 15]),
            };
            let outcome = match op {
                0 => self.put(k),
                1 => self.multipart(k),
                2 => {
                    self.get(k);
                    continue;
                }
                _ => self.delete(k),
            };
            if !outcome {
                // Left as maybe: this key is not touched again; a fresh one takes its place.
                self.stats.maybes.fetch_add(1, Ordering::Relaxed);
                self.live.swap_remove(slot);
                self.new_key();
            }
        }
        self.keys
    }

    fn path(&self, k: usize) -> String {
        format!("/{}/{}", self.bucket, self.keys[k].name)
    }

    fn new_version(&mut self, k: usize, size: u64) -> u64 {
        let version = self.rng.next_u64();
        self.keys[k].versions.push((version, size));
        version
    }

    /// Retries `attempt` until acknowledged or [`OP_DEADLINE`]; records the outcome on key `k`
    /// (true: acknowledged, `new` is its state; false: `new` is a maybe).
    fn settle(&mut self, k: usize, new: State, mut attempt: impl FnMut(&Self) -> Attempt) -> bool {
        let start = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match attempt(self) {
                Attempt::Acked => {
                    self.keys[k].acked = new;
                    return true;
                }
                Attempt::Retry(why) => {
                    self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                    if start.elapsed() > OP_DEADLINE {
                        self.stats.problem(format!(
                            "client {}: {} not acknowledged within {OP_DEADLINE:?} ({why}); left as maybe",
                            self.id, self.keys[k].name
                        ));
                        self.keys[k].maybe = Some(new);
                        return false;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn put(&mut self, k: usize) -> bool {
        let size = data::object_size(&mut self.rng, self.max_size);
        let version = self.new_version(k, size);
        let path = self.path(k);
        let headers = [(VERSION_HEADER, format!("{version:x}"))];
        let ok = self.settle(k, State::Obj { version, size }, |c| {
            let body = Body::Object {
                version,
                offset: 0,
                len: size,
            };
            match http::small(&c.addr, "PUT", &path, &headers, body) {
                Ok(r) if r.head.status == 200 => Attempt::Acked,
                Ok(r) => Attempt::Retry(format!("PUT {}: {}", r.head.status, r.body)),
                Err(e) => Attempt::Retry(format!("PUT: {e}")),
            }
        });
        if ok {
            self.stats.puts.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes_written.fetch_add(size, Ordering::Relaxed);
        }
        ok
    }

    fn delete(&mut self, k: usize) -> bool {
        let path = self.path(k);
        let ok = self.settle(k, State::Absent, |c| {
            match http::small(&c.addr, "DELETE", &path, &[], Body::Empty) {
                Ok(r) if r.head.status == 204 || r.head.status == 200 => Attempt::Acked,
                Ok(r) => Attempt::Retry(format!("DELETE {}: {}", r.head.status, r.body)),
                Err(e) => Attempt::Retry(format!("DELETE: {e}")),
            }
        });
        if ok {
            self.stats.deletes.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// A multipart upload of 5 MiB+1 .. 40 MiB (capped by `max_size`) in 5 MiB parts. A failed
    /// step is retried; an upload gone (NoSuchUpload after an unknown outcome) starts again
    /// with the same content.
    fn multipart(&mut self, k: usize) -> bool {
        let size = self
            .rng
            .range(PART + 1, 40 * 1024 * 1024)
            .min(self.max_size.max(1));
        let version = self.new_version(k, size);
        let path = self.path(k);
        let ok = self.settle(k, State::Obj { version, size }, |c| {
            match c.multipart_once(&path, version, size) {
                Ok(()) => Attempt::Acked,
                Err(why) => Attempt::Retry(why),
            }
        });
        if ok {
            self.stats.multiparts.fetch_add(1, Ordering::Relaxed);
            self.stats.bytes_written.fetch_add(size, Ordering::Relaxed);
        }
        ok
    }

    fn multipart_once(&self, path: &str, version: u64, size: u64) -> Result<(), String> {
        let headers = [(VERSION_HEADER, format!("{version:x}"))];
        let created = http::small(
            &self.addr,
            "POST",
            &format!("{path}?uploads"),
            &headers,
            Body::Empty,
        )
        .map_err(|e| format!("create upload: {e}"))?;
        let upload = match (
            created.head.status,
            http::xml_field(&created.body, "UploadId"),
        ) {
            (200, Some(id)) => id.to_string(),
            (s, _) => return Err(format!("create upload {s}: {}", created.body)),
        };
        let mut etags = Vec::new();
        let parts = size.div_ceil(PART);
        for n in 1..=parts {
            let offset = (n - 1) * PART;
            let len = PART.min(size - offset);
            let mut tries = 0;
            let etag = loop {
                tries += 1;
                let body = Body::Object {
                    version,
                    offset,
                    len,
                };
                let r = http::small(
                    &self.addr,
                    "PUT",
                    &format!("{path}?partNumber={n}&uploadId={upload}"),
                    &[],
                    body,
                );
                match r {
                    Ok(r) if r.head.status == 200 => match r.head.header("etag") {
                        Some(e) => break e.to_string(),
                        None => return Err(format!("part {n}: no ETag")),
                    },
                    Ok(r) if r.head.status == 404 => {
                        return Err(format!("part {n}: upload gone: {}", r.body));
                    }
                    other if tries < 20 => {
                        self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                        let _ = other;
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Ok(r) => return Err(format!("part {n}: {}: {}", r.head.status, r.body)),
                    Err(e) => return Err(format!("part {n}: {e}")),
                }
            };
            etags.push(etag);
        }
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, e) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                i + 1
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let done = http::small(
            &self.addr,
            "POST",
            &format!("{path}?uploadId={upload}"),
            &[],
            Body::Bytes(xml.as_bytes()),
        )
        .map_err(|e| format!("complete: {e}"))?;
        if done.head.status == 200 && !done.body.contains("<Error>") {
            Ok(())
        } else {
            Err(format!("complete {}: {}", done.head.status, done.body))
        }
    }

    /// GETs key `k` and checks it against what was acknowledged.
    fn get(&mut self, k: usize) {
        let key = &self.keys[k];
        match read_key(&self.addr, &self.bucket, key, self.stats) {
            Read::Good(st) if st == key.acked => {
                self.stats.gets.fetch_add(1, Ordering::Relaxed);
            }
            Read::Good(st) => {
                self.stats.gets.fetch_add(1, Ordering::Relaxed);
                self.stats.stale_reads.fetch_add(1, Ordering::Relaxed);
                self.stats.problem(format!(
                    "stale read: {} read {st:?}, acknowledged {:?}",
                    key.name, key.acked
                ));
            }
            Read::Absent if key.acked == State::Absent => {
                self.stats.gets.fetch_add(1, Ordering::Relaxed);
            }
            Read::Absent => {
                self.stats.gets.fetch_add(1, Ordering::Relaxed);
                self.stats.stale_reads.fetch_add(1, Ordering::Relaxed);
                self.stats.problem(format!(
                    "stale read: {} answered 404, acknowledged {:?}",
                    key.name, key.acked
                ));
            }
            Read::Wrong(why) => {
                self.stats.gets.fetch_add(1, Ordering::Relaxed);
                self.stats.wrong.fetch_add(1, Ordering::Relaxed);
                self.stats.problem(format!("wrong bytes served: {why}"));
            }
            Read::Failed(_) => {
                self.stats.get_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
