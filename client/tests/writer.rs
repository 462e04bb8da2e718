//! `KeyWriter` against an in-process cluster (SCM, OM and three datanodes, replication 3, on
//! 127.0.0.1 with free ports): a block is committed flush by flush, and when its container
//! closes mid-block the key goes on in a new block with every byte in place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use datanode_client::DatanodeClients;
use futures::StreamExt;
use om_client::OmClient;
use om_client::proto::{CommitKeyRequest, CreateBucketRequest, KeyInfo, OpenKeyRequest};
use ozone_client::{KeyWriter, WriteSettings, read_key};
use ozone_common::OzoneConfig;
use ozone_common::config::keys;
use scm_client::ScmClient;

const MB: usize = 1024 * 1024;

/// Settings every role reads: small blocks, chunks and flushes (a flush every MB, at most
/// `buffer_max` uncommitted), short timers.
fn base_config(buffer_max: &str) -> OzoneConfig {
    let mut cfg = OzoneConfig::default();
    cfg.set(keys::OZONE_SERVER_DEFAULT_REPLICATION, "3")
        .set(keys::HDDS_SCM_SAFEMODE_MIN_DATANODE, "3")
        .set(keys::OZONE_SCM_BLOCK_SIZE, "4MB")
        .set(keys::OZONE_SCM_CHUNK_SIZE, "256KB")
        .set(keys::OZONE_CLIENT_STREAM_BUFFER_FLUSH_SIZE, "1MB")
        .set(keys::OZONE_CLIENT_STREAM_BUFFER_MAX_SIZE, buffer_max)
        .set(keys::HDDS_HEARTBEAT_INTERVAL, "100ms")
        .set(keys::OZONE_OM_RATIS_MINIMUM_TIMEOUT, "150ms")
        .set(keys::HDDS_CONTAINER_SCRUB_ENABLED, "false");
    cfg
}

struct Cluster {
    buffer_max: &'static str,
    om: OmClient,
    scm: ScmClient,
    dn: DatanodeClients,
    datanodes: Vec<ozone_datanode::DatanodeHandle>,
    om_server: ozone_om::OmServer,
    scm_server: ozone_scm::ScmServer,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(buffer_max: &'static str) -> Cluster {
        ozone_common::telemetry::init("warn,openraft=error");
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let mut cfg = base_config(buffer_max);
        cfg.set(keys::OZONE_SCM_DB_DIRS, path("scm"))
            .set(keys::OZONE_SCM_CLIENT_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_SCM_DATANODE_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_SCM_HTTP_ADDRESS, "127.0.0.1:0");
        let scm_server = ozone_scm::start(&cfg).await.unwrap();
        let scm_client = scm_server.client_addr.to_string();
        let mut datanodes = Vec::new();
        for i in 0..3 {
            let mut cfg = base_config(buffer_max);
            cfg.set(keys::HDDS_DATANODE_DIR, path(&format!("dn{i}")))
                .set(keys::HDDS_CONTAINER_IPC_PORT, "0")
                .set(keys::HDDS_DATANODE_HOSTNAME, "127.0.0.1")
                .set(keys::HDDS_DATANODE_HTTP_ADDRESS, "127.0.0.1:0")
                .set(
                    keys::OZONE_SCM_DATANODE_ADDRESS,
                    scm_server.datanode_addr.to_string(),
                );
            datanodes.push(ozone_datanode::start(cfg).await.unwrap());
        }
        let mut cfg = base_config(buffer_max);
        cfg.set(keys::OZONE_OM_DB_DIRS, path("om"))
            .set(keys::OZONE_OM_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_OM_HTTP_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_SCM_CLIENT_ADDRESS, &scm_client);
        let om_server = ozone_om::start(cfg).await.unwrap();
        let om = OmClient::connect(vec![om_server.address().to_string()]).unwrap();
        om.create_volume("vol", "tester").await.unwrap();
        om.create_bucket(CreateBucketRequest {
            volume: "vol".into(),
            bucket: "bkt".into(),
            owner: "tester".into(),
            replication: 0,
        })
        .await
        .unwrap();
        Cluster {
            buffer_max,
            om,
            scm: ScmClient::connect(&scm_client).unwrap(),
            dn: DatanodeClients::new(),
            datanodes,
            om_server,
            scm_server,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.om_server.stop().await.unwrap();
        for d in self.datanodes {
            d.stop().await.unwrap();
        }
        self.scm_server.stop().await.unwrap();
    }

    fn settings(&self) -> WriteSettings {
        let mut s = WriteSettings::from_config(&base_config(self.buffer_max)).unwrap();
        s.piece_size = 256 * 1024;
        s
    }

    async fn open(&self, key: &str) -> KeyWriter {
        // SCM allocates once the three datanodes registered and it left safe mode.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let req = OpenKeyRequest {
                volume: "vol".into(),
                bucket: "bkt".into(),
                key: key.into(),
                owner: "tester".into(),
                ..Default::default()
            };
            match KeyWriter::open(&self.om, &self.dn, self.settings(), req).await {
                Ok(w) => return w,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no key can be opened: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn commit(&self, key: &str, w: KeyWriter) -> KeyInfo {
        let written = w.finish().await.unwrap();
        self.om
            .commit_key(CommitKeyRequest {
                volume: "vol".into(),
                bucket: "bkt".into(),
                key: key.into(),
                client_id: written.client_id,
                locations: written.locations,
                size: written.size,
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn read(&self, info: &KeyInfo) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = Box::pin(read_key(
            &self.dn,
            Some(self.scm.clone()),
            info,
            0,
            info.size,
        ));
        while let Some(piece) = s.next().await {
            out.extend_from_slice(&piece.unwrap());
        }
        out
    }

    /// The OPEN container holding the part-written block: the one whose committed bytes are
    /// not whole 4 MB blocks.
    fn busy_container(&self) -> u64 {
        let reports = self.datanodes[0].containers();
        let mut ids: Vec<u64> = reports
            .iter()
            .filter(|r| r.state == "OPEN" && r.used_bytes % (4 * MB as u64) != 0)
            .map(|r| r.container_id)
            .collect();
        assert_eq!(ids.len(), 1, "{reports:?}");
        ids.pop().unwrap()
    }

    /// Closes `container` on every datanode and waits until SCM knows it is closed.
    async fn close(&self, container: u64) {
        for d in &self.datanodes {
            d.close_container(container).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.scm.get_container(container).await.unwrap().state != "CLOSED" {
            assert!(
                Instant::now() < deadline,
                "SCM never saw {container} closed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Deterministic pseudo-random bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs `test` on a fresh cluster inside an actix system (SCM's actors need one).
fn run<F, Fut>(buffer_max: &'static str, test: F)
where
    F: FnOnce(Cluster) -> Fut,
    Fut: Future<Output = Cluster> + 'static,
{
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });
    system.block_on(async move {
        let cluster = Cluster::start(buffer_max).await;
        let cluster = test(cluster).await;
        cluster.stop().await;
    });
}

fn assert_tiles(info: &KeyInfo) {
    let mut at = 0;
    for loc in &info.locations {
        assert_eq!(loc.offset, at, "{:?}", info.locations);
        assert!(loc.length > 0, "{:?}", info.locations);
        at += loc.length;
    }
    assert_eq!(at, info.size);
}

#[test]
fn a_key_is_written_in_flushed_blocks_and_reads_back() {
    run("2MB", |c| async move {
        let bytes = data(9 * MB + 12_345, 1);
        let mut w = c.open("plain").await;
        for piece in bytes.chunks(100_000) {
            w.write(piece).await.unwrap();
        }
        let info = c.commit("plain", w).await;
        assert_eq!(info.size, bytes.len() as u64);
        let lengths: Vec<u64> = info.locations.iter().map(|l| l.length).collect();
        assert_eq!(
            lengths,
            vec![4 * MB as u64, 4 * MB as u64, MB as u64 + 12_345]
        );
        assert_tiles(&info);
        assert_eq!(c.read(&info).await, bytes);
        c
    });
}

/// Block 1 is full (4 MB); block 2 has 2.5 MB sent, more than the 2 MB buffer maximum, when
/// its container closes. With a 2 MB buffer the PutBlock of its second MB may still be in flight
/// then; with 1 MB every flush waits for its PutBlock, so 2 MB are committed.
async fn close_mid_block(c: Cluster) -> Cluster {
    let bytes = data(10 * MB + 777, 2);
    let first = 6 * MB + MB / 2;
    let mut w = c.open("moved").await;
    for piece in bytes[..first].chunks(64 * 1024) {
        w.write(piece).await.unwrap();
    }
    let closed = c.busy_container();
    c.close(closed).await;
    for piece in bytes[first..].chunks(64 * 1024) {
        w.write(piece).await.unwrap();
    }
    let info = c.commit("moved", w).await;
    assert_eq!(info.size, bytes.len() as u64);
    assert_tiles(&info);
    let lengths: Vec<u64> = info.locations.iter().map(|l| l.length).collect();
    let mb = MB as u64;
    // The half-written block keeps what was committed in it; the bytes after that go to new
    // blocks in another container.
    let kept = lengths[1];
    if c.buffer_max == "1MB" {
        assert_eq!(kept, 2 * mb, "{lengths:?}");
    } else {
        assert!(kept == 2 * mb || kept == mb, "{lengths:?}");
    }
    let rest = bytes.len() as u64 - 8 * mb - kept;
    assert_eq!(lengths, vec![4 * mb, kept, 4 * mb, rest], "{lengths:?}");
    let containers: Vec<u64> = info
        .locations
        .iter()
        .map(|l| l.block_id.unwrap().container_id)
        .collect();
    assert_eq!(containers[1], closed);
    assert!(
        containers[2..].iter().all(|&id| id != closed),
        "{containers:?}"
    );
    assert_eq!(c.read(&info).await, bytes);
    c
}

#[test]
fn a_container_closed_mid_block_moves_the_rest_of_the_key_to_a_new_block() {
    run("2MB", close_mid_block);
}

#[test]
fn a_container_closed_mid_block_keeps_every_flush_that_was_waited_for() {
    run("1MB", close_mid_block);
}

/// A replica that misses a commit (its datanode is gone) is reported to SCM by the writer at
/// once: the container closes and the replica shows as lagging, before SCM could declare the
/// datanode dead.
#[test]
fn a_replica_that_missed_a_commit_is_reported_to_scm_at_once() {
    run("2MB", |mut c| async move {
        // Keys on every pipeline, so that the next block goes to a container every datanode
        // holds (SCM fills the fullest open container of a pipeline).
        for i in 0..4 {
            let key = format!("warm{i}");
            let mut w = c.open(&key).await;
            w.write(&data(100_000, i)).await.unwrap();
            c.commit(&key, w).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let cs = c.scm.list_containers(0, 0).await.unwrap();
            if cs.iter().all(|ct| ct.replicas.len() == 3) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SCM never saw 3 replicas: {cs:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let gone = c.datanodes.pop().unwrap();
        let gone_uuid = gone.uuid().to_string();
        gone.stop().await.unwrap();

        let second = data(MB + 4321, 4);
        let mut w = c.open("second").await.with_scm(Some(c.scm.clone()));
        w.write(&second).await.unwrap();
        let info = c.commit("second", w).await;
        assert_eq!(c.read(&info).await, second);
        let id = info.locations[0].block_id.unwrap().container_id;
        let ct = c.scm.get_container(id).await.unwrap();
        assert_eq!(ct.state, "CLOSED", "{ct:?}");
        assert!(ct.bcsid > 0, "{ct:?}");
        let lagging: Vec<&str> = ct
            .replicas
            .iter()
            .filter(|r| r.lagging)
            .filter_map(|r| r.datanode.as_ref().map(|d| d.uuid.as_str()))
            .collect();
        assert_eq!(lagging, vec![gone_uuid.as_str()], "{ct:?}");
        c
    });
}
