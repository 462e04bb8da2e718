//! Nothing leaks: a PUT abandoned mid-body leaves an open key whose bytes are already on the
//! datanodes; OM expires it after `ozone.om.open.key.expire.threshold` and its block files
//! leave the disks. An incomplete multipart upload does not expire: an admin finds it with
//! `ozone admin multipart list` and aborts it with `ozone admin multipart abort`; its parts'
//! block files leave the disks too.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_tests::{Cluster, ClusterOpts, block_files, ok, write_random_file};
use serde_json::Value;

fn all_block_files(c: &Cluster) -> BTreeSet<PathBuf> {
    (1..=3)
        .flat_map(|i| block_files(&c.dir().join(format!("datanode-{i}"))))
        .collect()
}

fn wait_for(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => {
                eprintln!("{what}: after {:?}", start.elapsed());
                return;
            }
            Err(why) if start.elapsed() > timeout => {
                panic!("{what}: not within {timeout:?}: {why}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn json(c: &Cluster, args: &[&str]) -> Vec<Value> {
    let out = ok(c.ozone(args));
    match serde_json::from_str(&out) {
        Ok(Value::Array(v)) => v,
        other => panic!("ozone {args:?}: not a JSON array: {other:?}\n{out}"),
    }
}

#[test]
fn abandoned_uploads_leave_the_disks() {
    let set = [
        (keys::OZONE_OM_OPEN_KEY_EXPIRE_THRESHOLD.name(), "4s"),
        (
            keys::OZONE_OM_OPEN_KEY_CLEANUP_SERVICE_INTERVAL.name(),
            "1s",
        ),
        (keys::OZONE_BLOCK_DELETING_SERVICE_INTERVAL.name(), "1s"),
    ];
    let c = Cluster::start(ClusterOpts {
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    });
    ok(c.aws(&["s3", "mb", "s3://leaky"]));
    let before = all_block_files(&c);

    // A 16 MiB PUT that sends 6 MiB, waits, and hangs up: the gateway has written what it got.
    let addr = c.s3_addr();
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "PUT /leaky/half HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS testuser:unchecked\r\nContent-Length: {}\r\n\r\n",
        16 << 20
    )
    .unwrap();
    s.write_all(&vec![7u8; 6 << 20]).unwrap();
    s.flush().unwrap();
    let mut abandoned = BTreeSet::new();
    wait_for(
        Duration::from_secs(20),
        "the abandoned bytes on the datanodes",
        || {
            abandoned = all_block_files(&c).difference(&before).cloned().collect();
            if abandoned.is_empty() {
                Err("no new block file".into())
            } else {
                Ok(())
            }
        },
    );
    let open = json(&c, &["admin", "om", "list-open-keys", "--json"]);
    assert!(
        open.iter()
            .any(|k| k["key"] == "half" && k["bucket"] == "leaky"),
        "{open:?}"
    );
    drop(s);

    // An incomplete multipart upload with one 5 MiB part.
    let work = tempfile::tempdir().unwrap();
    let part = work.path().join("part");
    write_random_file(&part, 5 << 20, 3);
    let created: Value = serde_json::from_str(&ok(c.aws(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "leaky",
        "--key",
        "mp",
    ])))
    .unwrap();
    let upload_id = created["UploadId"].as_str().unwrap().to_string();
    let with_half = all_block_files(&c);
    ok(c.aws(&[
        "s3api",
        "upload-part",
        "--bucket",
        "leaky",
        "--key",
        "mp",
        "--part-number",
        "1",
        "--upload-id",
        &upload_id,
        "--body",
        part.to_str().unwrap(),
    ]));
    let parts: BTreeSet<PathBuf> = all_block_files(&c)
        .difference(&with_half)
        .filter(|p| !abandoned.contains(*p))
        .cloned()
        .collect();
    assert!(!parts.is_empty(), "the part's block files");

    // The abandoned PUT expires and its block files go; the upload's part stays.
    wait_for(
        Duration::from_secs(60),
        "the abandoned PUT's block files removed",
        || {
            let left: Vec<_> = abandoned.iter().filter(|p| p.exists()).collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        },
    );
    assert!(json(&c, &["admin", "om", "list-open-keys", "--json"]).is_empty());
    assert!(
        parts.iter().all(|p| p.exists()),
        "a part is not an open key"
    );

    // The admin lists the upload (also by age) and aborts it; its part's block files go.
    let listed = json(&c, &["admin", "multipart", "list", "--json"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            &listed[0]["bucket"],
            &listed[0]["key"],
            &listed[0]["upload_id"]
        ),
        (
            &Value::from("leaky"),
            &Value::from("mp"),
            &Value::from(upload_id.clone())
        )
    );
    let s3v = ["--volume", "s3v", "--bucket", "leaky"];
    let mut args = vec!["admin", "multipart", "list", "--json", "--older-than", "1h"];
    assert!(json(&c, &args).is_empty(), "not an hour old");
    args.truncate(4);
    args.extend_from_slice(&s3v);
    assert_eq!(json(&c, &args).len(), 1);
    let out = ok(c.ozone(&["admin", "multipart", "abort", "/s3v/leaky/mp", &upload_id]));
    assert!(out.contains(&upload_id), "{out}");
    assert!(json(&c, &["admin", "multipart", "list", "--json"]).is_empty());
    wait_for(
        Duration::from_secs(60),
        "the aborted part's block files removed",
        || {
            let left: Vec<_> = parts.iter().filter(|p| p.exists()).collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?}"))
            }
        },
    );
}
