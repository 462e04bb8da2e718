//! End-to-end integrity and slow datanodes (issue 12, items 2 and 6), against real processes:
//! a replica whose data and chunk checksums were both rewritten (consistent, but wrong) is never
//! served; a SIGSTOPped datanode delays a PUT and a GET of several blocks by seconds, not by
//! 30 s per block; a GET whose blocks are deleted under it ends with an error the client sees
//! (a body shorter than its Content-Length), never a short body passed off as complete.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datanode_client::checksum;
use ozone_common::config::keys;
use ozone_proto::hdds::BlockData;
use ozone_tests::{
    Cluster, ClusterOpts, block_files, files_under, ok, same_file, write_random_file,
};
use prost::Message;
use redb::{ReadableTable, TableDefinition};

/// The datanode's block table (datanode/src/container/disk.rs): (container, local id) ->
/// prost-encoded `BlockData`.
const BLOCKS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("blocks");

fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    files_under(dir, |p| p.file_name().is_some_and(|n| n == name))
}

/// Rewrites every block a (stopped) datanode holds: each byte flipped, and each chunk's
/// checksums recomputed over the new bytes and stored, so the replica is consistent with itself
/// and its own scrubber finds nothing. Returns how many blocks were rewritten.
fn rewrite_replica_consistently(dn_dir: &Path) -> usize {
    let blocks = block_files(dn_dir);
    let mut rewritten = 0;
    for db_path in files_named(dn_dir, "container.db") {
        let db = redb::Database::open(&db_path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(BLOCKS).unwrap();
            let rows: Vec<((u64, u64), Vec<u8>)> = table
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value(), v.value().to_vec())
                })
                .collect();
            for ((container, local), value) in rows {
                let mut block = BlockData::decode(value.as_slice()).unwrap();
                let file = blocks
                    .iter()
                    .find(|p| {
                        p.file_name().and_then(|n| n.to_str()) == Some(&format!("{local}.block"))
                            && p.parent()
                                .and_then(Path::parent)
                                .and_then(Path::file_name)
                                .and_then(|n| n.to_str())
                                == Some(&container.to_string())
                    })
                    .unwrap_or_else(|| panic!("no file for block {container}:{local}"));
                let mut data = std::fs::read(file).unwrap();
                for b in data.iter_mut().take(block.size as usize) {
                    *b ^= 0x5a;
                }
                for chunk in &mut block.chunks {
                    let bpc = chunk.checksum.as_ref().unwrap().bytes_per_checksum;
                    let range = chunk.offset as usize..(chunk.offset + chunk.len) as usize;
                    chunk.checksum = Some(checksum::compute(&data[range], bpc));
                }
                std::fs::write(file, &data).unwrap();
                table
                    .insert((container, local), block.encode_to_vec().as_slice())
                    .unwrap();
                rewritten += 1;
            }
        }
        txn.commit().unwrap();
    }
    rewritten
}

fn s3g_log(c: &Cluster) -> String {
    files_named(&c.dir().join("s3g"), "s3g.log")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

#[test]
fn consistent_but_wrong_replica_is_never_served() {
    let mut c = Cluster::start(ClusterOpts {
        set: set(&[(keys::OZONE_SCM_BLOCK_SIZE.name(), "1MB")]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src.bin");
    write_random_file(&src, 3 << 20, 12);
    ok(c.aws(&["s3", "mb", "s3://integrity"]));
    ok(c.aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "integrity",
        "--key",
        "obj",
        "--body",
        src.to_str().unwrap(),
    ]));
    let verify = c.ozone(&["admin", "verify-etags", "integrity"]);
    let out = ok(verify);
    assert!(out.contains("checked 1 objects"), "{out}");

    // datanode-1's replicas: data and checksums rewritten alike while it is down.
    c.kill_role("datanode-1");
    let n = rewrite_replica_consistently(&c.dir().join("datanode-1"));
    assert!(
        n >= 3,
        "the object's 3 blocks are on every datanode, rewrote {n}"
    );
    c.start_role("datanode-1");

    // Reads start at a rotating replica: keep reading until the gateway has met the wrong
    // replica (its log says so); every read returns the right bytes.
    let started = Instant::now();
    let mut reads = 0;
    loop {
        let back = work.path().join(format!("back{reads}"));
        ok(c.aws(&["s3", "cp", "s3://integrity/obj", back.to_str().unwrap()]));
        assert!(same_file(&src, &back), "GET {reads} returned wrong bytes");
        reads += 1;
        if s3g_log(&c).contains("differ from OM's record") && reads >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the rewritten replica was never offered in {reads} reads"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("{reads} reads, all right; the rewritten replica was refused");
    let out = ok(c.ozone(&["admin", "verify-etags", "integrity"]));
    assert!(out.contains("0 mismatched, 0 unreadable"), "{out}");

    // Only the wrong replica left: reads fail, they never serve its bytes.
    c.kill_role("datanode-2");
    c.kill_role("datanode-3");
    let back = work.path().join("only-wrong");
    let got = c.aws(&["s3", "cp", "s3://integrity/obj", back.to_str().unwrap()]);
    assert!(
        !got.status.success(),
        "GET served something from the wrong replica alone"
    );
    assert!(!back.exists() || std::fs::metadata(&back).unwrap().len() < (3 << 20));
    let verify = c.ozone(&["admin", "verify-etags", "integrity"]);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(!verify.status.success(), "{out}");
    assert!(out.contains("UNREADABLE obj"), "{out}");
}

fn role_pid(c: &Cluster, name: &str) -> i32 {
    std::fs::read_to_string(c.dir().join(name).join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn send_signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Resumes a SIGSTOPped process when dropped, so a failing test leaves nothing stopped.
struct Stopped(i32);

impl Drop for Stopped {
    fn drop(&mut self) {
        send_signal(self.0, rustix::process::Signal::CONT);
    }
}

#[test]
fn hung_datanode_delays_put_and_get_by_seconds() {
    let c = Cluster::start(ClusterOpts {
        set: set(&[(keys::OZONE_SCM_BLOCK_SIZE.name(), "1MB")]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let before = work.path().join("before.bin");
    let during = work.path().join("during.bin");
    write_random_file(&before, 6 << 20, 5);
    write_random_file(&during, 6 << 20, 6);
    ok(c.aws(&["s3", "mb", "s3://hung"]));
    let put = |name: &str, file: &Path| {
        c.aws(&[
            "s3api",
            "put-object",
            "--bucket",
            "hung",
            "--key",
            name,
            "--body",
            file.to_str().unwrap(),
        ])
    };
    ok(put("before", &before));

    let stopped = Stopped(role_pid(&c, "datanode-2"));
    send_signal(stopped.0, rustix::process::Signal::STOP);

    // Timed over plain HTTP (security is off), so the figures are the gateway's, not the
    // aws CLI's start-up on a loaded machine.
    let addr = c.s3_addr();
    let during_bytes = std::fs::read(&during).unwrap();
    let t = Instant::now();
    http_put(&addr, "/hung/during", &during_bytes);
    let put_took = t.elapsed();

    let t = Instant::now();
    let (_, got) = get_with_pause(&addr, "/hung/before", 0, || {});
    let get_old_took = t.elapsed();
    assert!(
        got == std::fs::read(&before).unwrap(),
        "wrong bytes for the object written before"
    );

    let t = Instant::now();
    let (_, got) = get_with_pause(&addr, "/hung/during", 0, || {});
    let get_new_took = t.elapsed();
    assert!(
        got == during_bytes,
        "wrong bytes for the object written during"
    );

    let total = put_took + get_old_took + get_new_took;
    eprintln!(
        "one datanode SIGSTOPped, 6 blocks of 1 MiB each: PUT {put_took:?}, GET (written before) \
         {get_old_took:?}, GET (written during) {get_new_took:?}, total {total:?}"
    );
    assert!(
        total < Duration::from_secs(15),
        "a hung datanode cost {total:?} (PUT {put_took:?}, GETs {get_old_took:?} and {get_new_took:?})"
    );
    drop(stopped);
}

/// A PUT over a raw connection (security off: no signature needed); asserts a 200.
fn http_put(addr: &str, path: &str, body: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut status = String::new();
    BufReader::new(s).read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "PUT {path}: {status}");
}

/// A GET answered over a raw connection: (Content-Length, the body bytes received until the
/// server closed), reading `first` bytes, then calling `meanwhile`, then the rest.
fn get_with_pause(
    addr: &str,
    path: &str,
    first: usize,
    meanwhile: impl FnOnce(),
) -> (u64, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut len = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = Some(v.trim().parse::<u64>().unwrap());
        }
    }
    let len = len.expect("a Content-Length");
    let mut body = vec![0u8; first];
    r.read_exact(&mut body).unwrap();
    meanwhile();
    let mut rest = Vec::new();
    // The server closing the connection early is the error a client sees: the body ends
    // before its Content-Length (an abort may also show as a reset).
    let _ = r.read_to_end(&mut rest);
    body.extend_from_slice(&rest);
    (len, body)
}

#[test]
fn read_cut_by_a_delete_fails_instead_of_ending_short() {
    let c = Cluster::start(ClusterOpts {
        set: set(&[
            (keys::OZONE_SCM_BLOCK_SIZE.name(), "1MB"),
            (keys::OZONE_BLOCK_DELETING_SERVICE_INTERVAL.name(), "1s"),
        ]),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src.bin");
    let size = 32usize << 20;
    write_random_file(&src, size, 9);
    ok(c.aws(&["s3", "mb", "s3://cut"]));
    ok(c.aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "cut",
        "--key",
        "big",
        "--body",
        src.to_str().unwrap(),
    ]));
    let expected = std::fs::read(&src).unwrap();
    let dns: Vec<PathBuf> = (1..=3)
        .map(|i| c.dir().join(format!("datanode-{i}")))
        .collect();
    let (len, body) = get_with_pause(&c.s3_addr(), "/cut/big", 64 * 1024, || {
        ok(c.aws(&["s3", "rm", "s3://cut/big"]));
        let t = Instant::now();
        while dns.iter().any(|d| !block_files(d).is_empty()) {
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "the deleted object's blocks are still on the datanodes"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        eprintln!("blocks deleted {:?} after the DELETE", t.elapsed());
    });
    assert_eq!(len, size as u64);
    eprintln!("GET cut by the delete: {} of {len} bytes", body.len());
    assert!(
        (body.len() as u64) < len,
        "the read finished although its blocks were deleted under it"
    );
    // What did arrive is the object's prefix: a cut, never wrong bytes.
    assert_eq!(&body[..], &expected[..body.len()]);
}
