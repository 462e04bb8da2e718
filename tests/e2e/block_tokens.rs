//! Block and container tokens (issue 14 item 3), against real processes with security on:
//! a datanode refuses ReadChunk, GetBlock, WriteChunk and PutBlock without the block token OM
//! gave (missing, for another block, with too few modes, tampered or expired) and serves them
//! with it; it refuses CopyContainer without a container token; S3 PUT/GET through the
//! gateway works, and a SIGKILLed datanode's containers are re-replicated (the copies use the
//! container tokens SCM signs into its replicate commands).

use std::time::{Duration, Instant};

use datanode_client::checksum;
use std::sync::Arc;

use ozone_common::config::keys;
use ozone_common::tls::{self, NodeRole, TlsContext};
use ozone_common::token::{self, BlockTokenId, ContainerTokenId, Modes, SecretKey};
use ozone_proto::datanode::datanode_service_client::DatanodeServiceClient;
use ozone_proto::datanode::{
    CopyContainerRequest, GetBlockRequest, PutBlockRequest, ReadChunkRequest, WriteChunkRequest,
};
use ozone_proto::hdds::{BlockData, BlockId, ChunkInfo};
use ozone_proto::om::{KeyLocation, OpenKeyRequest};
use ozone_tests::{Cluster, ClusterOpts, ok, same_file, write_random_file};
use prost::bytes::Bytes;
use tonic::Code;

fn secure_fast_cluster() -> Cluster {
    let set = [
        (keys::OZONE_SECURITY_ENABLED.name(), "true"),
        (keys::OZONE_SCM_STALE_NODE_INTERVAL.name(), "3s"),
        (keys::OZONE_SCM_DEAD_NODE_INTERVAL.name(), "6s"),
        (keys::HDDS_SCM_REPLICATION_THREAD_INTERVAL.name(), "1s"),
        (keys::HDDS_SCM_REPLICATION_EVENT_TIMEOUT.name(), "30s"),
    ];
    Cluster::start(ClusterOpts {
        datanodes: 4,
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
}

/// The datanode identity this test presents to datanodes (see [`act_as_nodes`]).
static AS_DATANODE: std::sync::OnceLock<Arc<TlsContext>> = std::sync::OnceLock::new();

/// With security on every internal port speaks mutual TLS: this test process presents the
/// OM's certificate to OM and SCM (installed for the whole process: the OM and SCM clients
/// use it) and datanode-4's to the datanodes (which copy containers only to datanodes).
fn act_as_nodes(c: &Cluster) {
    let om = TlsContext::node(&c.node_cert("om-1")).expect("OM certificate");
    tls::install(om).expect("install the OM's certificate");
    let dn = TlsContext::node(&c.node_cert("datanode-4")).expect("datanode certificate");
    let _ = AS_DATANODE.set(dn);
}

async fn dn_client(
    loc: &KeyLocation,
    i: usize,
) -> DatanodeServiceClient<tonic::transport::Channel> {
    let n = &loc.pipeline.as_ref().expect("pipeline").nodes[i];
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}:{}", n.host, n.port))
        .expect("datanode endpoint");
    let ctx = AS_DATANODE.get().expect("act_as_nodes first");
    DatanodeServiceClient::new(tls::channel_with(ctx, endpoint, NodeRole::Datanode))
}

/// The refusal's code and message, or a panic if the call worked.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) -> (Code, String) {
    match r {
        Ok(v) => panic!("{what} was served: {v:?}"),
        Err(s) => {
            eprintln!("{what}: {:?} {}", s.code(), s.message());
            (s.code(), s.message().to_string())
        }
    }
}

fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, tonic::Status>,
    code: Code,
    text: &str,
) {
    let (c, m) = refused(what, r);
    assert_eq!(c, code, "{what}: {m}");
    assert!(m.contains(text), "{what}: {m:?} lacks {text:?}");
}

/// SCM's current secret key, as OM gets it.
async fn current_key(scm_addr: &str) -> SecretKey {
    let scm = scm_client::ScmClient::connect(scm_addr).expect("scm client");
    let r = scm.get_secret_keys().await.expect("GetSecretKeys");
    let k = r
        .keys
        .into_iter()
        .find(|k| k.id == r.current_key_id)
        .expect("the current key is listed");
    SecretKey {
        id: k.id,
        created_ms: k.created_ms,
        expires_ms: k.expires_ms,
        key: k.key,
    }
}

fn block_token(key: &SecretKey, b: BlockId, modes: Modes, expiry_ms: u64) -> Bytes {
    Bytes::from(token::sign_block(
        &BlockTokenId {
            owner: "test".into(),
            container_id: b.container_id,
            local_id: b.local_id,
            modes,
            expiry_ms,
            key_id: String::new(),
        },
        key,
    ))
}

async fn write_chunk(
    dn: &mut DatanodeServiceClient<tonic::transport::Channel>,
    block: BlockId,
    data: &Bytes,
    token: Bytes,
) -> Result<u64, tonic::Status> {
    let req = WriteChunkRequest {
        block_id: Some(block),
        chunk: Some(chunk_of(data)),
        data: data.clone(),
        token,
    };
    dn.write_chunk(futures::stream::iter(vec![req]))
        .await
        .map(|r| r.into_inner().bytes_written)
}

fn chunk_of(data: &Bytes) -> ChunkInfo {
    ChunkInfo {
        offset: 0,
        len: data.len() as u64,
        checksum: Some(checksum::compute(data, 16 * 1024)),
    }
}

async fn read_all(
    dn: &mut DatanodeServiceClient<tonic::transport::Channel>,
    block: BlockId,
    length: u64,
    token: Bytes,
) -> Result<usize, tonic::Status> {
    let mut s = dn
        .read_chunk(ReadChunkRequest {
            block_id: Some(block),
            offset: 0,
            length,
            token,
        })
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await? {
        n += m.data.len();
    }
    Ok(n)
}

#[test]
fn block_and_container_tokens_are_required_with_security_on() {
    let mut c = secure_fast_cluster();
    let (ak, sk) = c.getsecret("alice");
    // S3 PUT and GET through the gateway work with tokens on.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("obj");
    write_random_file(&src, 3 * 1024 * 1024 + 17, 3);
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://tok"]));
    ok(c.aws_as(
        &ak,
        &sk,
        &["s3", "cp", src.to_str().unwrap(), "s3://tok/obj"],
    ));
    let back = work.path().join("back");
    ok(c.aws_as(
        &ak,
        &sk,
        &["s3", "cp", "s3://tok/obj", back.to_str().unwrap()],
    ));
    assert!(same_file(&src, &back), "GET returned other bytes");

    let om_addr = c.conf_value("om-1", keys::OZONE_OM_ADDRESS.name());
    let scm_addr = c.conf_value("scm", keys::OZONE_SCM_CLIENT_ADDRESS.name());
    act_as_nodes(&c);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let container_id = rt.block_on(async {
        let om = om_client::OmClient::connect(vec![om_addr]).unwrap();
        let key = current_key(&scm_addr).await;
        let now = ozone_common::now_ms();

        // ---- reads: the location LookupKey gave ----
        let info = om.lookup_key("s3v", "tok", "obj").await.unwrap();
        let loc = info.locations[0].clone();
        let block = loc.block_id.unwrap();
        let good = Bytes::from(loc.token.clone());
        assert!(!good.is_empty(), "OM signs a token into every location");
        let mut dn = dn_client(&loc, 0).await;
        let n = read_all(&mut dn, block, loc.length, good.clone())
            .await
            .expect("ReadChunk with OM's token");
        assert_eq!(n as u64, loc.length);
        dn.get_block(GetBlockRequest {
            block_id: Some(block),
            token: good.clone(),
        })
        .await
        .expect("GetBlock with OM's token");
        assert_refused(
            "ReadChunk without a token",
            read_all(&mut dn, block, loc.length, Bytes::new()).await,
            Code::Unauthenticated,
            "no block token",
        );
        assert_refused(
            "GetBlock without a token",
            dn.get_block(GetBlockRequest {
                block_id: Some(block),
                token: Bytes::new(),
            })
            .await,
            Code::Unauthenticated,
            "no block token",
        );
        let mut tampered = good.to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_refused(
            "ReadChunk with a tampered token",
            read_all(&mut dn, block, loc.length, Bytes::from(tampered)).await,
            Code::PermissionDenied,
            "signature",
        );
        let other = BlockId {
            local_id: block.local_id + 1,
            ..block
        };
        assert_refused(
            "ReadChunk of another block",
            read_all(&mut dn, other, 1, good.clone()).await,
            Code::PermissionDenied,
            "not block",
        );
        assert_refused(
            "ReadChunk with an expired token",
            read_all(
                &mut dn,
                block,
                loc.length,
                block_token(&key, block, Modes::READ, now - 1_000),
            )
            .await,
            Code::PermissionDenied,
            "expired",
        );
        let forged = SecretKey {
            key: vec![0; 32],
            ..key.clone()
        };
        assert_refused(
            "ReadChunk with a token signed by another key",
            read_all(
                &mut dn,
                block,
                loc.length,
                block_token(&forged, block, Modes::READ, now + 60_000),
            )
            .await,
            Code::PermissionDenied,
            "signature",
        );

        // ---- writes: the location OpenKey gave ----
        let open = om
            .open_key(OpenKeyRequest {
                volume: "s3v".into(),
                bucket: "tok".into(),
                key: "raw".into(),
                size_hint: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        let wloc = open.locations[0].clone();
        let wblock = wloc.block_id.unwrap();
        let wgood = Bytes::from(wloc.token.clone());
        let mut wdn = dn_client(&wloc, 0).await;
        let data = Bytes::from(vec![7u8; 1000]);
        assert_refused(
            "WriteChunk without a token",
            write_chunk(&mut wdn, wblock, &data, Bytes::new()).await,
            Code::Unauthenticated,
            "no block token",
        );
        assert_refused(
            "WriteChunk with a READ token",
            write_chunk(
                &mut wdn,
                wblock,
                &data,
                block_token(&key, wblock, Modes::READ, now + 60_000),
            )
            .await,
            Code::PermissionDenied,
            "needs WRITE",
        );
        assert_refused(
            "WriteChunk with an expired token",
            write_chunk(
                &mut wdn,
                wblock,
                &data,
                block_token(&key, wblock, Modes::READ_WRITE, now - 1),
            )
            .await,
            Code::PermissionDenied,
            "expired",
        );
        assert_refused(
            "WriteChunk with the read token of another block",
            write_chunk(&mut wdn, wblock, &data, good.clone()).await,
            Code::PermissionDenied,
            "not block",
        );
        let written = write_chunk(&mut wdn, wblock, &data, wgood.clone())
            .await
            .expect("WriteChunk with OM's token");
        assert_eq!(written, 1000);
        let put = |token: Bytes| PutBlockRequest {
            block: Some(BlockData {
                block_id: Some(wblock),
                chunks: vec![chunk_of(&data)],
                size: 1000,
            }),
            token,
        };
        assert_refused(
            "PutBlock without a token",
            wdn.put_block(put(Bytes::new())).await,
            Code::Unauthenticated,
            "no block token",
        );
        assert_refused(
            "PutBlock with an expired token",
            wdn.put_block(put(block_token(&key, wblock, Modes::READ_WRITE, now - 1)))
                .await,
            Code::PermissionDenied,
            "expired",
        );
        let r = wdn
            .put_block(put(wgood.clone()))
            .await
            .expect("PutBlock with OM's token");
        assert_eq!(r.into_inner().committed_length, 1000);

        // ---- container copies ----
        let cid = block.container_id;
        assert_refused(
            "CopyContainer without a token",
            dn.copy_container(CopyContainerRequest {
                container_id: cid,
                token: Bytes::new(),
            })
            .await,
            Code::Unauthenticated,
            "no container token",
        );
        assert_refused(
            "CopyContainer with a block token",
            dn.copy_container(CopyContainerRequest {
                container_id: cid,
                token: good.clone(),
            })
            .await,
            Code::PermissionDenied,
            "not a container token",
        );
        let ctoken = |container_id: u64, expiry_ms: u64| {
            Bytes::from(token::sign_container(
                &ContainerTokenId {
                    owner: "test".into(),
                    container_id,
                    expiry_ms,
                    key_id: String::new(),
                },
                &key,
            ))
        };
        assert_refused(
            "CopyContainer with another container's token",
            dn.copy_container(CopyContainerRequest {
                container_id: cid,
                token: ctoken(cid + 1, now + 60_000),
            })
            .await,
            Code::PermissionDenied,
            "not container",
        );
        assert_refused(
            "CopyContainer with an expired token",
            dn.copy_container(CopyContainerRequest {
                container_id: cid,
                token: ctoken(cid, now - 1),
            })
            .await,
            Code::PermissionDenied,
            "expired",
        );
        cid
    });

    // A valid container token passes the check: once the container is CLOSED the copy streams.
    ok(c.ozone(&["admin", "container", "close", &container_id.to_string()]));
    rt.block_on(async {
        let om =
            om_client::OmClient::connect(vec![c.conf_value("om-1", keys::OZONE_OM_ADDRESS.name())])
                .unwrap();
        let loc = om.lookup_key("s3v", "tok", "obj").await.unwrap().locations[0].clone();
        let key = current_key(&scm_addr).await;
        let token = Bytes::from(token::sign_container(
            &ContainerTokenId {
                owner: "test".into(),
                container_id,
                expiry_ms: ozone_common::now_ms() + 600_000,
                key_id: String::new(),
            },
            &key,
        ));
        let mut dn = dn_client(&loc, 0).await;
        let start = Instant::now();
        loop {
            match dn
                .copy_container(CopyContainerRequest {
                    container_id,
                    token: token.clone(),
                })
                .await
            {
                Ok(r) => {
                    let first = r.into_inner().message().await.expect("copy stream");
                    assert!(first.is_some(), "the copy sends the BCSID first");
                    break;
                }
                Err(s)
                    if s.message().contains("not CLOSED")
                        && start.elapsed() < Duration::from_secs(60) =>
                {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(s) => panic!("CopyContainer with a valid container token: {s:?}"),
            }
        }
    });

    // Re-replication after a datanode loss: SCM's replicate commands carry container tokens.
    let victim_uuid = rt.block_on(async {
        let om =
            om_client::OmClient::connect(vec![c.conf_value("om-1", keys::OZONE_OM_ADDRESS.name())])
                .unwrap();
        let loc = om.lookup_key("s3v", "tok", "obj").await.unwrap().locations[0].clone();
        loc.pipeline.unwrap().nodes[0].uuid.clone()
    });
    let victim = (1..=4)
        .map(|i| format!("datanode-{i}"))
        .find(|n| {
            std::fs::read_to_string(c.dir().join(n).join("data/datanode.id"))
                .unwrap()
                .trim()
                == victim_uuid
        })
        .unwrap();
    c.kill_role(&victim);
    let killed = Instant::now();
    loop {
        let cts = c.containers();
        let ct = cts
            .iter()
            .find(|ct| ct["id"] == container_id)
            .expect("container listed");
        let healthy = ct["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["datanode"]["uuid"] != victim_uuid.as_str() && r["state"] == "CLOSED")
            .count();
        if healthy >= 3 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(180),
            "container {container_id} not re-replicated: {ct}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("re-replicated {:?} after the kill", killed.elapsed());
    let again = work.path().join("again");
    ok(c.aws_as(
        &ak,
        &sk,
        &["s3", "cp", "s3://tok/obj", again.to_str().unwrap()],
    ));
    assert!(
        same_file(&src, &again),
        "GET after re-replication returned other bytes"
    );
}

/// With 3 SCMs the secret keys are replicated state: after the SCM leader is SIGKILLed, the new
/// leader serves the same keys (OM's cached token key still verifies on the datanodes, which
/// now learn the keys from the new leader) and writes and reads go on.
#[test]
fn tokens_keep_working_across_an_scm_leader_loss() {
    let mut c = Cluster::start(ClusterOpts {
        scms: 3,
        set: vec![(keys::OZONE_SECURITY_ENABLED.name().into(), "true".into())],
        ..Default::default()
    });
    let (ak, sk) = c.getsecret("alice");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("obj");
    write_random_file(&src, 1024 * 1024 + 5, 9);
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://tok-ha"]));
    ok(c.aws_as(
        &ak,
        &sk,
        &["s3", "cp", src.to_str().unwrap(), "s3://tok-ha/before"],
    ));
    let leader = c.scm_leader(Duration::from_secs(30));
    c.kill_role(&leader);
    let killed = Instant::now();
    loop {
        let out = c.aws_as(
            &ak,
            &sk,
            &["s3", "cp", src.to_str().unwrap(), "s3://tok-ha/after"],
        );
        if out.status.success() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no PUT within 90 s of the SCM leader's death: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_ne!(c.scm_leader(Duration::from_secs(30)), leader);
    for name in ["before", "after"] {
        let back = work.path().join(name);
        ok(c.aws_as(
            &ak,
            &sk,
            &[
                "s3",
                "cp",
                &format!("s3://tok-ha/{name}"),
                back.to_str().unwrap(),
            ],
        ));
        assert!(same_file(&src, &back), "{name} differs");
    }
}
