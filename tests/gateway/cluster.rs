//! One in-process cluster: SCM, OM, one datanode (replication factor 1) and the S3 gateway,
//! each started from its role's own `start` function on 127.0.0.1 with free ports and its
//! directory under one temp dir. Nothing runs as a child process.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use om_client::OmClient;
use om_client::proto::S3SecretRequest;
use ozone_common::OzoneConfig;
use tempfile::TempDir;

use crate::s3::{S3, USER};
use ozone_common::config::keys;

/// A running cluster; [`Cluster::stop`] stops every role and removes the directory.
pub struct Cluster {
    /// Requests as [`USER`] (signed when security is on).
    pub s3: S3,
    pub users: Users,
    s3g: ozone_s3g::server::S3gHandle,
    dn: ozone_datanode::DatanodeHandle,
    om: ozone_om::OmServer,
    scm: ozone_scm::ScmServer,
    _dir: TempDir,
}

/// Makes S3 users (security on: OM creates their secrets, as `ozone s3 getsecret` does).
#[derive(Clone)]
pub struct Users {
    /// Requests without credentials.
    pub anonymous: S3,
    om: OmClient,
    /// The admin credential OM's secret calls need (security on).
    admin: Option<String>,
}

impl Users {
    /// A client signing as `user` (its secret created on first use) with security on; with
    /// security off, one that only names `user`.
    pub async fn user(&self, user: &str) -> S3 {
        let Some(admin) = &self.admin else {
            return self.anonymous.as_user(user);
        };
        let secret = self
            .om
            .get_s3_secret(S3SecretRequest {
                user: user.to_string(),
                admin_token: admin.clone(),
                create: true,
            })
            .await
            .expect("OM gives the user a secret");
        self.anonymous.signed(&secret.access_key, &secret.secret)
    }
}

/// Settings every role reads: replication factor 1, small blocks, short timers.
fn base_config(security: bool) -> OzoneConfig {
    let mut cfg = OzoneConfig::default();
    cfg.set(keys::OZONE_SERVER_DEFAULT_REPLICATION, "1")
        .set(keys::HDDS_SCM_SAFEMODE_MIN_DATANODE, "1")
        .set(keys::OZONE_SCM_BLOCK_SIZE, "4MB")
        .set(keys::OZONE_SCM_CHUNK_SIZE, "1MB")
        .set(keys::HDDS_HEARTBEAT_INTERVAL, "100ms")
        .set(keys::OZONE_OM_RATIS_MINIMUM_TIMEOUT, "150ms")
        .set(keys::HDDS_CONTAINER_SCRUB_ENABLED, "false")
        .set(keys::OZONE_SECURITY_ENABLED, security.to_string());
    cfg
}

impl Cluster {
    /// Starts every role; `security`: `ozone.security.enabled` (SigV4 checked, ACLs enforced).
    pub async fn start(security: bool) -> Cluster {
        ozone_common::telemetry::init("warn,openraft=error");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name).display().to_string();

        let mut cfg = base_config(security);
        cfg.set(keys::OZONE_SCM_DB_DIRS, path("scm"))
            .set(keys::OZONE_SCM_CLIENT_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_SCM_DATANODE_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_SCM_HTTP_ADDRESS, "127.0.0.1:0");
        let scm = ozone_scm::start(&cfg).await.expect("SCM starts");
        let scm_client = scm.client_addr.to_string();

        let mut cfg = base_config(security);
        cfg.set(keys::HDDS_DATANODE_DIR, path("dn"))
            .set(keys::HDDS_CONTAINER_IPC_PORT, "0")
            .set(keys::HDDS_DATANODE_HOSTNAME, "127.0.0.1")
            .set(keys::HDDS_DATANODE_HTTP_ADDRESS, "127.0.0.1:0")
            .set(
                keys::OZONE_SCM_DATANODE_ADDRESS,
                scm.datanode_addr.to_string(),
            );
        let dn = ozone_datanode::start(cfg).await.expect("datanode starts");

        let admin_file = path("admin.secret");
        let mut cfg = base_config(security);
        cfg.set(keys::OZONE_OM_DB_DIRS, path("om"))
            .set(keys::OZONE_OM_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_OM_HTTP_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_OM_ADMIN_SECRET_FILE, &admin_file)
            .set(keys::OZONE_SCM_CLIENT_ADDRESS, &scm_client);
        let om = ozone_om::start(cfg).await.expect("OM starts");

        let mut cfg = base_config(security);
        cfg.set(keys::OZONE_OM_ADDRESS, om.address().to_string())
            .set(keys::OZONE_SCM_CLIENT_ADDRESS, &scm_client)
            .set(keys::OZONE_S3G_HTTP_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_S3G_WEBADMIN_HTTP_ADDRESS, "127.0.0.1:0")
            .set(keys::OZONE_S3G_WORKERS, "2");
        let s3g = ozone_s3g::server::start(&cfg)
            .await
            .expect("S3 gateway starts");

        let users = Users {
            anonymous: S3::new(s3g.s3_addr),
            om: OmClient::connect(vec![om.address().to_string()]).expect("OM client"),
            admin: security.then(|| read_admin_secret(Path::new(&admin_file))),
        };
        let s3 = users.user(USER).await;
        wait_writable(&s3).await;
        Cluster {
            s3,
            users,
            s3g,
            dn,
            om,
            scm,
            _dir: dir,
        }
    }

    /// Stops the roles in the reverse order of their start; the temp dir goes with `self`.
    pub async fn stop(self) {
        self.s3g.stop().await;
        self.om.stop().await.expect("OM stops");
        self.dn.stop().await.expect("datanode stops");
        self.scm.stop().await.expect("SCM stops");
    }
}

/// The admin credential OM wrote at its start (security on).
fn read_admin_secret(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("OM writes the admin secret file")
        .trim()
        .to_string()
}

/// Waits until SCM has the datanode and is out of safe mode: a PutObject succeeds.
async fn wait_writable(s3: &S3) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let r = s3.put("/ready-probe").send().await;
    assert_eq!(
        r.status, 200,
        "CreateBucket of the probe bucket: {}",
        r.body
    );
    loop {
        let r = s3.put("/ready-probe/k").body("x").send().await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not accept a write: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = s3.delete("/ready-probe/k").send().await;
    assert_eq!(r.status, 204);
    let r = s3.delete("/ready-probe").send().await;
    assert_eq!(r.status, 204);
}

/// Runs `test` against a fresh cluster with security off.
pub fn run<F, Fut>(test: F)
where
    F: FnOnce(S3) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    run_cluster(false, |c| test(c.s3.clone()));
}

/// Runs `test` against a fresh cluster with security on; it makes its users from [`Users`].
pub fn run_secure<F, Fut>(test: F)
where
    F: FnOnce(Users) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    run_cluster(true, |c| test(c.users.clone()));
}

/// Starts a cluster inside an actix system (SCM's actors need one), runs `test` and stops the
/// cluster afterwards, whether or not `test` panicked.
fn run_cluster<F, Fut>(security: bool, test: F)
where
    F: FnOnce(&Cluster) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    system.block_on(async move {
        let started = Instant::now();
        let cluster = Cluster::start(security).await;
        eprintln!("cluster up in {:?}", started.elapsed());
        let outcome = tokio::task::spawn_local(test(&cluster)).await;
        let stopping = Instant::now();
        cluster.stop().await;
        eprintln!("cluster stopped in {:?}", stopping.elapsed());
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    });
}
