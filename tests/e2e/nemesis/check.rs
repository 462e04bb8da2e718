//! The checks after the faults are healed: every container has its replicas and they hold the
//! same committed blocks; every acknowledged object reads back byte-identical; no acknowledged
//! delete came back; the bucket's listing agrees with what was acknowledged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{self, Body};
use super::load::{self, KeyRec, Read, State, Stats};

/// What the final reads found.
#[derive(Debug, Default)]
pub struct Reads {
    pub keys: usize,
    pub objects: usize,
    /// Acknowledged objects answered 404, or an older version (their acknowledged write lost).
    pub lost: Vec<String>,
    /// Acknowledged deletes undone: the key reads back as an object.
    pub undeleted: Vec<String>,
    /// Reads that served bytes other than the object's.
    pub wrong: Vec<String>,
    /// Keys that still failed to read after retrying (a minute each, three in all).
    pub unreadable: Vec<String>,
}

/// Reads every key back (retrying errors up to a minute per key) and judges it.
pub fn read_all(addr: &str, bucket: &str, keys: &[KeyRec], stats: &Stats) -> Reads {
    let mut out = Reads {
        keys: keys.len(),
        ..Default::default()
    };
    // Time spent retrying failed reads, over all keys: a cluster that does not serve at all
    // must not keep the check busy for a minute per key.
    let mut retrying = Duration::ZERO;
    for k in keys {
        let start = Instant::now();
        let read = loop {
            match load::read_key(addr, bucket, k, stats) {
                Read::Failed(_)
                    if start.elapsed() < Duration::from_secs(60)
                        && retrying + start.elapsed() < Duration::from_secs(180) =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                r => break r,
            }
        };
        if !matches!(read, Read::Good(_) | Read::Absent) {
            retrying += start.elapsed();
        }
        match read {
            Read::Good(st) if k.allows(st) => out.objects += 1,
            Read::Absent if k.allows(State::Absent) => {}
            Read::Good(st) if k.acked == State::Absent => out.undeleted.push(format!(
                "{}: deleted (acknowledged) but reads back {st:?}",
                k.name
            )),
            Read::Good(st) => out.lost.push(format!(
                "{}: acknowledged {:?} but reads back {st:?}",
                k.name, k.acked
            )),
            Read::Absent => out.lost.push(format!(
                "{}: acknowledged {:?} but 404 (maybe {:?})",
                k.name, k.acked, k.maybe
            )),
            Read::Wrong(why) => out.wrong.push(why),
            Read::Failed(why) => out.unreadable.push(format!("{}: {why}", k.name)),
        }
    }
    out
}

/// Every key of `bucket` by ListObjectsV2 (paginated), retrying errors for a minute.
pub fn list_keys(addr: &str, bucket: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let start = Instant::now();
    loop {
        let mut path = format!("/{bucket}?list-type=2&max-keys=1000");
        if let Some(t) = &token {
            path.push_str(&format!("&continuation-token={}", encode(t)));
        }
        match http::small(addr, "GET", &path, &[], Body::Empty) {
            Ok(r) if r.head.status == 200 => {
                keys.extend(http::xml_fields(&r.body, "Key").into_iter().map(unescape));
                match http::xml_field(&r.body, "NextContinuationToken") {
                    Some(t) if http::xml_field(&r.body, "IsTruncated") == Some("true") => {
                        token = Some(unescape(t))
                    }
                    _ => return Ok(keys),
                }
            }
            other if start.elapsed() > Duration::from_secs(60) => {
                return Err(format!("list {bucket}: {other:?}"));
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Compares the listing with the keys: a listed key must be allowed to exist, an acknowledged
/// object must be listed (unless a maybe-delete followed it).
pub fn check_listing(listed: &[String], keys: &[KeyRec], probe_prefix: &str) -> Vec<String> {
    let by_name: BTreeMap<&str, &KeyRec> = keys.iter().map(|k| (k.name.as_str(), k)).collect();
    let mut bad = Vec::new();
    for name in listed {
        if name.starts_with(probe_prefix) {
            continue;
        }
        match by_name.get(name.as_str()) {
            None => bad.push(format!("{name}: listed, never written")),
            Some(k) if k.acked == State::Absent && !matches!(k.maybe, Some(State::Obj { .. })) => {
                bad.push(format!("{name}: listed, but its delete was acknowledged"))
            }
            Some(_) => {}
        }
    }
    let listed: std::collections::BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    for k in keys {
        if matches!(k.acked, State::Obj { .. })
            && k.maybe != Some(State::Absent)
            && !listed.contains(k.name.as_str())
        {
            bad.push(format!(
                "{}: acknowledged {:?}, not listed",
                k.name, k.acked
            ));
        }
    }
    bad
}

/// What the replica check found on one pass.
#[derive(Debug, Default, Clone)]
pub struct Replicas {
    /// Containers checked (not DELETING/DELETED).
    pub containers: usize,
    /// CLOSED containers no block ever reached: no replica anywhere and no commit SCM ever
    /// saw (BCSID 0); blocks were allocated in them but their writers moved on before writing.
    /// Nothing in them can be lost; they are counted, not judged.
    pub never_written: usize,
    /// Whether replicas report a BCSID (a field named `bcsid`); without it only block counts
    /// are compared.
    pub bcsid_reported: bool,
    /// Containers not (yet) as they should be, with why.
    pub problems: Vec<String>,
}

/// Judges `ozone admin container list --all --json`: every live container has exactly as many
/// replicas as its replication, each CLOSED (or OPEN while the container is), all with the same
/// block count and, where reported, the same BCSID; except a CLOSED container that no
/// replica holds and SCM never saw a commit in (see [`Replicas::never_written`]).
pub fn replicas(list_json: &str) -> Result<Replicas, String> {
    let v: Value = serde_json::from_str(list_json).map_err(|e| format!("{e}: {list_json}"))?;
    let cts = v
        .as_array()
        .ok_or_else(|| format!("not an array: {list_json}"))?;
    let mut out = Replicas::default();
    for ct in cts {
        let id = &ct["id"];
        let state = ct["state"].as_str().unwrap_or("?");
        if state == "DELETING" || state == "DELETED" {
            continue;
        }
        let want = ct["replication"].as_u64().unwrap_or(3) as usize;
        let reps = ct["replicas"].as_array().cloned().unwrap_or_default();
        if state == "CLOSED" && reps.is_empty() && ct["bcsid"].as_u64() == Some(0) {
            out.never_written += 1;
            continue;
        }
        out.containers += 1;
        let mut why = Vec::new();
        if reps.len() != want {
            why.push(format!("{} replicas, want {want}", reps.len()));
        }
        for r in &reps {
            let rs = r["state"].as_str().unwrap_or("?");
            if !(rs == "CLOSED" || (rs == "OPEN" && state == "OPEN")) {
                why.push(format!("replica on {} is {rs}", r["datanode"]["uuid"]));
            }
        }
        let counts: Vec<u64> = reps
            .iter()
            .filter_map(|r| r["block_count"].as_u64())
            .collect();
        if counts.windows(2).any(|w| w[0] != w[1]) {
            let each: Vec<String> = reps
                .iter()
                .map(|r| {
                    let uuid = r["datanode"]["uuid"].as_str().unwrap_or("?");
                    format!(
                        "{} {} {} blocks {} B",
                        &uuid[..uuid.len().min(8)],
                        r["state"].as_str().unwrap_or("?"),
                        r["block_count"],
                        r["used_bytes"]
                    )
                })
                .collect();
            why.push(format!("block counts differ: {}", each.join("; ")));
        }
        let bcsids: Vec<u64> = reps.iter().filter_map(|r| r["bcsid"].as_u64()).collect();
        if !bcsids.is_empty() {
            out.bcsid_reported = true;
            if bcsids.len() != reps.len() || bcsids.windows(2).any(|w| w[0] != w[1]) {
                why.push(format!("BCSIDs differ: {bcsids:?}"));
            }
        }
        if !why.is_empty() {
            out.problems
                .push(format!("container {id} {state}: {}", why.join(", ")));
        }
    }
    Ok(out)
}

/// Polls `list` (the container list as JSON) until [`replicas`] finds nothing wrong or
/// `timeout` passes; returns the last pass and how long it took (None: not within timeout).
pub fn wait_replicas(
    mut list: impl FnMut() -> Result<String, String>,
    timeout: Duration,
) -> (Replicas, Option<Duration>) {
    let start = Instant::now();
    let mut last = Replicas::default();
    loop {
        match list().and_then(|j| replicas(&j)) {
            Ok(r) if r.problems.is_empty() => return (r, Some(start.elapsed())),
            Ok(r) => last = r,
            Err(e) => last.problems = vec![format!("container list: {e}")],
        }
        if start.elapsed() > timeout {
            return (last, None);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(state: &str, blocks: u64) -> Value {
        serde_json::json!({"datanode": {"uuid": "u"}, "state": state, "block_count": blocks})
    }

    #[test]
    fn replica_check_wants_three_closed_replicas_with_the_same_blocks() {
        let good = serde_json::json!([
            {"id": 1, "state": "CLOSED", "replication": 3,
             "replicas": [rep("CLOSED", 5), rep("CLOSED", 5), rep("CLOSED", 5)]},
            {"id": 2, "state": "DELETED", "replication": 3, "replicas": []},
            {"id": 4, "state": "CLOSED", "replication": 3, "bcsid": 0, "replicas": []},
            {"id": 3, "state": "OPEN", "replication": 3,
             "replicas": [rep("OPEN", 1), rep("OPEN", 1), rep("OPEN", 1)]},
        ]);
        let r = replicas(&good.to_string()).unwrap();
        assert_eq!(
            (
                r.containers,
                r.never_written,
                r.problems.len(),
                r.bcsid_reported
            ),
            (2, 1, 0, false)
        );

        let bad = serde_json::json!([
            {"id": 1, "state": "CLOSED", "replication": 3,
             "replicas": [rep("CLOSED", 5), rep("CLOSED", 4), rep("CLOSED", 5)]},
            {"id": 2, "state": "CLOSED", "replication": 3,
             "replicas": [rep("CLOSED", 5), rep("CLOSED", 5)]},
            {"id": 3, "state": "CLOSED", "replication": 3,
             "replicas": [rep("CLOSED", 5), rep("QUASI_CLOSED", 5), rep("CLOSED", 5)]},
            // Lost: blocks were committed, no replica is left.
            {"id": 4, "state": "CLOSED", "replication": 3, "bcsid": 7, "replicas": []},
        ]);
        let r = replicas(&bad.to_string()).unwrap();
        assert_eq!(r.problems.len(), 4, "{:?}", r.problems);
    }

    #[test]
    fn listing_check_finds_undeleted_and_missing_keys() {
        let key = |name: &str, acked| KeyRec {
            name: name.into(),
            acked,
            maybe: None,
            versions: vec![],
        };
        let obj = State::Obj {
            version: 1,
            size: 1,
        };
        let keys = vec![key("a", obj), key("b", State::Absent), key("c", obj)];
        let listed = vec!["a".to_string(), "b".to_string(), "probe/x".to_string()];
        let bad = check_listing(&listed, &keys, "probe/");
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("b:") && bad[1].starts_with("c:"));
    }
}
