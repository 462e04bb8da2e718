//! Security on, inside the cluster: every OM, SCM and datanode port speaks mutual TLS with
//! certificates from SCM's CA and authorizes each call by the caller's certificate. Strangers
//! (plaintext, or TLS without a certificate) and nodes of the wrong role or identity are
//! refused, and refused calls change nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ozone_common::config::keys;
use ozone_common::tls::{self, NodeRole, TlsContext};
use ozone_proto::raft::raft_service_client::RaftServiceClient;
use ozone_proto::raft::{NodeStatusRequest, RaftMessage, SnapshotChunk};
use ozone_proto::scm::scm_client_service_client::ScmClientServiceClient;
use ozone_proto::scm::scm_datanode_service_client::ScmDatanodeServiceClient;
use ozone_tests::{Cluster, ClusterOpts, files_under, ok};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

fn secure(set: &[(&str, &str)], oms: u32, scms: u32) -> Cluster {
    let mut all = vec![(
        keys::OZONE_SECURITY_ENABLED.name().to_string(),
        "true".to_string(),
    )];
    all.extend(set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Cluster::start(ClusterOpts {
        oms,
        scms,
        set: all,
        ..Default::default()
    })
}

fn endpoint(address: &str) -> Endpoint {
    Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
}

/// A plaintext channel, as a client without TLS would open.
fn plain(address: &str) -> Channel {
    endpoint(address).connect_lazy()
}

/// A TLS channel from `ctx` to a server of role `role`.
fn tls_to(ctx: &Arc<TlsContext>, address: &str, role: NodeRole) -> Channel {
    tls::channel_with(ctx, endpoint(address), role)
}

/// Writes `len` random bytes to `s3://bucket/obj` as `ak` and reads them back identical.
fn round_trip(c: &Cluster, ak: &str, sk: &str, bucket: &str, len: usize, seed: u64) {
    let src = c.dir().join(format!("{bucket}.obj"));
    ozone_tests::write_random_file(&src, len, seed);
    let url = format!("s3://{bucket}/obj");
    let quiet = "--only-show-errors";
    ok(c.aws_as(ak, sk, &["s3", "cp", quiet, src.to_str().unwrap(), &url]));
    let back = c.dir().join(format!("{bucket}.back"));
    ok(c.aws_as(ak, sk, &["s3", "cp", quiet, &url, back.to_str().unwrap()]));
    assert!(
        ozone_tests::same_file(&src, &back),
        "{url} read back other bytes"
    );
}

fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

#[test]
fn mtls_internal_ports_refuse_strangers_and_nodes_of_the_wrong_role() {
    let c = secure(&[], 1, 1);
    let scm = c.conf_value("scm", keys::OZONE_SCM_CLIENT_ADDRESS.name());
    let scm_dn = c.conf_value("scm", keys::OZONE_SCM_DATANODE_ADDRESS.name());
    let om = c.om_roles()[0]["address"].as_str().unwrap().to_string();
    let dn_port = c.conf_value("datanode-1", keys::HDDS_CONTAINER_IPC_PORT.name());
    let dn = format!("127.0.0.1:{dn_port}");
    let ca = std::fs::read_to_string(c.conf_dir().join("ca.pem")).unwrap();
    let stranger = TlsContext::client_only(&ca).unwrap();
    let dn1 = TlsContext::node(&c.node_cert("datanode-1")).unwrap();
    let dn2_uuid = c
        .node_cert("datanode-2")
        .info()
        .unwrap()
        .identity
        .unwrap()
        .id;
    let om_before = c.om_roles()[0].clone();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // 1. Plaintext to each internal port fails.
        let r = RaftServiceClient::new(plain(&om)).node_status(NodeStatusRequest {}).await;
        assert!(r.is_err(), "plaintext OM answered: {r:?}");
        let r = ScmClientServiceClient::new(plain(&scm))
            .safe_mode_status(ozone_proto::scm::SafeModeStatusRequest {})
            .await;
        assert!(r.is_err(), "plaintext SCM answered: {r:?}");
        let r = ScmDatanodeServiceClient::new(plain(&scm_dn))
            .heartbeat(ozone_proto::scm::HeartbeatRequest::default())
            .await;
        assert!(r.is_err(), "plaintext SCM datanode port answered: {r:?}");
        let r = ozone_proto::datanode::datanode_service_client::DatanodeServiceClient::new(plain(&dn))
            .get_block(ozone_proto::datanode::GetBlockRequest::default())
            .await;
        assert!(r.is_err(), "plaintext datanode answered: {r:?}");

        // 2. TLS without a certificate: a forged AppendEntries from a "leader" of term 1000,
        // a NodeStatus and a snapshot chunk at a huge offset are refused.
        let mut raft = RaftServiceClient::new(tls_to(&stranger, &om, NodeRole::Om));
        let forged = r#"{"vote":{"leader_id":{"term":1000,"node_id":99},"committed":true},"prev_log_id":null,"entries":[],"leader_commit":null}"#;
        let r = raft.append_entries(RaftMessage { json: forged.into() }).await;
        assert_eq!(code(r), Code::Unauthenticated);
        assert_eq!(code(raft.node_status(NodeStatusRequest {}).await), Code::Unauthenticated);
        let chunk = SnapshotChunk {
            vote_json: r#"{"leader_id":{"term":1000,"node_id":99},"committed":true}"#.into(),
            meta_json: "{}".into(),
            offset: 1 << 60,
            data: vec![0; 1024],
            done: false,
        };
        assert_eq!(code(raft.install_snapshot(chunk).await), Code::Unauthenticated);
        let mut scm_client = ScmClientServiceClient::new(tls_to(&stranger, &scm, NodeRole::Scm));
        let del = ozone_proto::scm::DeleteBlocksRequest::default();
        assert_eq!(code(scm_client.delete_blocks(del.clone()).await), Code::Unauthenticated);

        // 3. A datanode's certificate: no deleting blocks, no raft, no registering as another.
        let mut scm_client = ScmClientServiceClient::new(tls_to(&dn1, &scm, NodeRole::Scm));
        assert_eq!(code(scm_client.delete_blocks(del).await), Code::PermissionDenied);
        let mut raft = RaftServiceClient::new(tls_to(&dn1, &om, NodeRole::Om));
        let r = raft.append_entries(RaftMessage { json: forged.into() }).await;
        assert_eq!(code(r), Code::PermissionDenied);
        let mut dn_port = ScmDatanodeServiceClient::new(tls_to(&dn1, &scm_dn, NodeRole::Scm));
        let register = ozone_proto::scm::RegisterRequest {
            datanode: Some(ozone_proto::hdds::DatanodeDetails {
                uuid: dn2_uuid.clone(),
                host: "10.9.9.9".into(),
                port: 1,
                http_port: 2,
            }),
            ..Default::default()
        };
        assert_eq!(code(dn_port.register(register).await), Code::PermissionDenied);
        // A client that expects an OM but reaches the SCM port does not talk to it.
        let mut wrong = RaftServiceClient::new(tls_to(&dn1, &scm, NodeRole::Om));
        assert!(wrong.node_status(NodeStatusRequest {}).await.is_err());
    });

    // OM's state is unchanged: same term, nothing applied by the forged calls.
    let om_after = c.om_roles()[0].clone();
    assert_eq!(
        om_after["term"], om_before["term"],
        "{om_before} -> {om_after}"
    );
    assert!(om_after["term"].as_u64().unwrap() < 1000);
    // Datanode 2 still heartbeats from its own address.
    let list = ok(c.ozone(&["admin", "datanode", "list"]));
    assert!(!list.contains("10.9.9.9"), "{list}");

    // The cluster works for its own members: S3 through the gateway.
    let (ak, sk) = c.getsecret("alice");
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://mtls"]));
    round_trip(&c, &ak, &sk, "mtls", 3 << 20, 7);

    // Every role holds a certificate from the CA; keys and secrets are private.
    let certs = ok(c.ozone(&["admin", "cert", "list", "--json"]));
    let certs: serde_json::Value = serde_json::from_str(&certs).unwrap();
    let roles: Vec<&str> = certs
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["role"].as_str().unwrap())
        .collect();
    for role in ["scm", "om", "datanode", "s3g", "admin"] {
        assert!(roles.contains(&role), "no {role} certificate in {roles:?}");
    }
    assert_eq!(
        roles.iter().filter(|r| **r == "datanode").count(),
        3,
        "{roles:?}"
    );
    let scm_cert = certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "scm")
        .unwrap();
    let serial = scm_cert["serial"].as_str().unwrap();
    let info = ok(c.ozone(&["admin", "cert", "info", serial]));
    assert!(
        info.contains("BEGIN CERTIFICATE") && info.contains("Identity: scm/"),
        "{info}"
    );
    assert_eq!(mode(&c.conf_dir().join("bootstrap.secret")), 0o600);
    for key in files_under(c.dir(), |p| {
        p.ends_with("certs/key.pem") || p.ends_with("ca/ca.key")
    }) {
        assert_eq!(mode(&key), 0o600, "{}", key.display());
    }
}

#[test]
fn mtls_certificates_renew_before_expiry_and_the_cluster_keeps_working() {
    // Certificates valid 40 s, renewed 30 s before they expire: every 10 s or so.
    let c = secure(
        &[
            (keys::HDDS_X509_DEFAULT_DURATION.name(), "40s"),
            (keys::HDDS_X509_RENEW_GRACE_DURATION.name(), "30s"),
        ],
        1,
        1,
    );
    let (ak, sk) = c.getsecret("carol");
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://renew"]));
    let first = c.node_cert("datanode-1").info().unwrap();
    let om_first = c.node_cert("om-1").info().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut serials = vec![first.serial.clone()];
    while serials.len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let now = c.node_cert("datanode-1").info().unwrap().serial;
        if serials.last() != Some(&now) {
            serials.push(now);
        }
    }
    assert!(
        serials.len() >= 3,
        "the datanode renewed {} times in 60 s",
        serials.len() - 1
    );
    assert_ne!(c.node_cert("om-1").info().unwrap().serial, om_first.serial);
    // Past the first certificates' expiry, the cluster still reads and writes.
    let wait = first
        .not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    std::thread::sleep(wait + Duration::from_secs(2));
    round_trip(&c, &ak, &sk, "renew", 1 << 20, 9);
}

#[test]
fn mtls_three_scms_share_one_ca_and_three_oms_replicate_over_it() {
    let c = secure(&[], 3, 3);
    let cas: Vec<String> = (1..=3)
        .map(|i| {
            let f = files_under(&c.dir().join(format!("scm-{i}")), |p| {
                p.ends_with("ca/ca.crt")
            });
            std::fs::read_to_string(&f[0]).unwrap()
        })
        .collect();
    assert!(
        cas.iter().all(|ca| *ca == cas[0]),
        "the SCMs hold different CAs"
    );
    c.scm_leader(Duration::from_secs(30));
    c.om_leader(Duration::from_secs(30));
    let (ak, sk) = c.getsecret("dave");
    ok(c.aws_as(&ak, &sk, &["s3", "mb", "s3://ha-bucket"]));
    round_trip(&c, &ak, &sk, "ha-bucket", 2 << 20, 3);
    // Every OM applied the writes: raft among the OMs runs over mutual TLS.
    let roles = c.om_roles();
    let applied: Vec<u64> = roles
        .iter()
        .map(|r| r["applied_index"].as_u64().unwrap_or(0))
        .collect();
    assert!(applied.iter().all(|a| *a > 0), "{roles:?}");
}
