//! Starting and stopping an OM: open the database and the raft log, join the OM service's
//! raft group, serve gRPC (`OmService` and `RaftService` on one port) and the http status
//! server, create the S3 volume whenever this OM becomes leader, keep state gauges fresh.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ozone_common::config::bind_address;
use ozone_common::{Metrics, OzoneConfig, http};
use ozone_proto::om::om_service_server::OmServiceServer;
use ozone_proto::raft::raft_service_server::RaftServiceServer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{OmConfig, SCM_CONNECT_TIMEOUT};
use crate::error::OmError;
use crate::manager::OzoneManager;
use crate::raft::ha_settings;
use crate::raft::{RaftGrpc, RaftNode};
use crate::scm::ScmBlocks;
use crate::service::OmGrpc;
use crate::state_machine::StateMachine;

/// How long stopping waits for raft's tasks to close the log and the database.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How often the state gauges (`ozone_om_state{name=...}`) are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(5);

/// A running OM.
pub struct OmServer {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    om: Arc<OzoneManager>,
    stop_tx: Option<oneshot::Sender<()>>,
    grpc_task: JoinHandle<Result<(), tonic::transport::Error>>,
    gauge_task: JoinHandle<()>,
    volume_task: JoinHandle<()>,
    deletion_task: JoinHandle<()>,
    expiry_task: JoinHandle<()>,
}

/// Starts an OM from `cfg` and returns once it serves. Port 0 in `ozone.om.address` /
/// `ozone.om.http-address` picks free ports (single OM only); see [`OmServer::address`].
/// A single OM also waits until it leads its one-node group and the S3 volume exists; an OM of
/// a 3-node service returns once it serves (its peers may not be up yet).
pub async fn start(cfg: OzoneConfig) -> Result<OmServer, OmError> {
    let mut config = OmConfig::from_config(&cfg)?;
    crate::security::load_security(&mut config)?;
    let mut ha = ha_settings(&cfg)?;
    let dir = config.db_dir.clone();
    let sm = tokio::task::spawn_blocking(move || StateMachine::open(&dir))
        .await
        .map_err(|e| OmError::Internal(format!("opening the database: {e}")))??;
    if let Some(key) = &config.secret_key {
        sm.set_secret_key(key.clone());
    }
    let sm = Arc::new(sm);
    tracing::info!(db = %sm.path().display(), applied_index = sm.applied_index()?, "OM database open");

    let bind = bind_address(&ha.me.address);
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| OmError::io(format!("binding OM gRPC address {bind}"), e))?;
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| OmError::io("reading the bound OM address", e))?;
    let single = ha.peers.len() == 1;
    if single && ha.me.address.ends_with(":0") {
        // A single OM on a free port advertises the port it got.
        ha.me.address = grpc_addr.to_string();
        let id = ha.my_id();
        ha.peers.insert(id, ha.me.clone());
    }
    let om_ids: Vec<String> = ha.peers.values().map(|p| p.node_id.clone()).collect();
    if ozone_common::tls::wanted(&cfg)? {
        // Mutual TLS on raft, the client port and the calls to SCM and datanodes.
        let certs = scm_client::certs::NodeCertSettings::from_config(
            &cfg,
            ozone_common::tls::Identity::new(
                ozone_common::tls::NodeRole::Om,
                ha.me.node_id.clone(),
            ),
            std::slice::from_ref(&ha.me.address),
            &config.db_dir,
        )
        .map_err(|e| OmError::Internal(e.to_string()))?;
        scm_client::certs::prepare_node(&certs)
            .await
            .map_err(|e| OmError::Internal(e.to_string()))?;
    }
    let node = RaftNode::start(ha.clone(), &config.db_dir, sm.clone()).await?;
    let scm = ScmBlocks::new(
        &config.scm_addresses,
        SCM_CONNECT_TIMEOUT,
        config.scm_timeout,
    )?;
    let om = Arc::new(OzoneManager::new(sm, node.clone(), scm, config.clone()));

    let metrics = Metrics::new("om");
    let weak = Arc::downgrade(&om);
    let status: http::StatusFn = Arc::new(move || status_rows(&weak, grpc_addr));
    let http_addr = http::serve(&config.http_address, metrics.clone(), status)
        .await
        .map_err(|e| {
            OmError::io(
                format!("binding OM http address {}", config.http_address),
                e,
            )
        })?;

    let svc = OmServiceServer::new(OmGrpc::new(om.clone(), metrics.clone()))
        .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES);
    let raft_svc = RaftServiceServer::new(RaftGrpc::new(node.clone(), crate::raft::status_of))
        .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES);
    // Small responses must not wait for Nagle's algorithm (set on every accepted connection).
    let incoming = ozone_common::tls::incoming(listener)?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let grpc_task = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(ozone_common::tls::Guard::new(crate::access::om_port(
                om_ids,
            )))
            .add_service(svc)
            .add_service(raft_svc)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            }),
    );
    if single {
        let wait = ha.request_timeout.max(Duration::from_secs(10));
        node.raft()
            .wait(Some(wait))
            .metrics(|m| m.current_leader == Some(m.id), "single OM leads")
            .await
            .map_err(|e| OmError::Internal(format!("the single OM did not become leader: {e}")))?;
        om.ensure_s3_volume().await?;
    }
    let volume_task = tokio::spawn(s3_volume_on_leadership(Arc::downgrade(&om)));
    let gauge_task = tokio::spawn(refresh_gauges(Arc::downgrade(&om), metrics));
    let deletion_task = tokio::spawn(crate::deletion::run(
        Arc::downgrade(&om),
        ScmBlocks::new(
            &config.scm_addresses,
            SCM_CONNECT_TIMEOUT,
            config.scm_timeout,
        )?,
        crate::deletion::DeletionConfig::from_config(&cfg)?,
    ));
    let expiry_task = tokio::spawn(crate::expiry::run(
        Arc::downgrade(&om),
        crate::expiry::ExpiryConfig::from_config(&cfg)?,
    ));
    tracing::info!(%grpc_addr, %http_addr, node = %ha.me.node_id, oms = ha.peers.len(), scm = ?config.scm_addresses, "OM serving");
    Ok(OmServer {
        grpc_addr,
        http_addr,
        om,
        stop_tx: Some(stop_tx),
        grpc_task,
        gauge_task,
        volume_task,
        deletion_task,
        expiry_task,
    })
}

/// Makes sure the S3 volume exists each time this OM becomes leader (in a new term).
async fn s3_volume_on_leadership(om: Weak<OzoneManager>) {
    let Some(rx) = om.upgrade().map(|o| o.raft_node().raft().metrics()) else {
        return;
    };
    let mut rx = rx;
    let mut done_term = None;
    loop {
        let (leading, term) = {
            let m = rx.borrow_and_update();
            (m.current_leader == Some(m.id), m.current_term)
        };
        if leading && done_term != Some(term) {
            let Some(o) = om.upgrade() else { return };
            match o.ensure_s3_volume().await {
                Ok(()) => done_term = Some(term),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the S3 volume yet; retrying");
                    drop(o);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Runs an OM until `shutdown` resolves (or the gRPC server fails).
pub async fn run(
    cfg: OzoneConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OmError> {
    start(cfg).await?.run_until(shutdown).await
}

impl OmServer {
    /// The bound gRPC address.
    pub fn address(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound http address (`/prom`, status page).
    pub fn http_address(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn manager(&self) -> &Arc<OzoneManager> {
        &self.om
    }

    pub fn state_machine(&self) -> &Arc<StateMachine> {
        self.om.state_machine()
    }

    /// Serves until `shutdown` resolves, then stops.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), OmError> {
        tokio::select! {
            _ = shutdown => {
                tracing::info!("OM shutting down");
                self.stop().await
            }
            r = &mut self.grpc_task => {
                self.gauge_task.abort();
                self.volume_task.abort();
                self.deletion_task.abort();
                self.expiry_task.abort();
                self.om.raft_node().shutdown().await;
                match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(OmError::Internal(format!("gRPC server task: {e}"))),
                }
            }
        }
    }

    /// Stops serving gRPC, waits for requests in flight and closes the database.
    /// (The http status server keeps its port until the process ends.)
    pub async fn stop(mut self) -> Result<(), OmError> {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        self.gauge_task.abort();
        self.volume_task.abort();
        self.deletion_task.abort();
        self.expiry_task.abort();
        let r = match (&mut self.grpc_task).await {
            Ok(r) => r.map_err(OmError::from),
            Err(e) => Err(OmError::Internal(format!("gRPC server task: {e}"))),
        };
        let node = self.om.raft_node().clone();
        node.shutdown().await;
        // Wait until raft's tasks let go of the log and the database (a restart in the same
        // process opens them again); the OzoneManager itself holds the state machine once.
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        while node.storage_in_use(1) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if node.storage_in_use(1) {
            tracing::warn!("OM storage still in use after shutdown");
        }
        r
    }
}

fn status_rows(om: &Weak<OzoneManager>, grpc_addr: SocketAddr) -> Vec<(String, String)> {
    let Some(om) = om.upgrade() else {
        return vec![("state".into(), "stopped".into())];
    };
    let node = om.raft_node();
    let st = node.status();
    let stats = node.log_stats();
    let mut rows = vec![
        ("gRPC address".to_string(), grpc_addr.to_string()),
        ("SCM".to_string(), om.config().scm_addresses.join(", ")),
        ("OM node".to_string(), st.node_id.clone()),
        ("role".to_string(), st.role.to_string()),
        ("term".to_string(), st.term.to_string()),
        (
            "leader".to_string(),
            st.leader
                .map(|l| format!("{} ({})", l.node_id, l.address))
                .unwrap_or_else(|| "unknown".into()),
        ),
        ("last log index".to_string(), st.last_log_index.to_string()),
        ("snapshot index".to_string(), st.snapshot_index.to_string()),
        (
            "log appends (fsyncs) / entries".to_string(),
            format!(
                "{} / {}",
                stats.appends.load(std::sync::atomic::Ordering::Relaxed),
                stats.entries.load(std::sync::atomic::Ordering::Relaxed)
            ),
        ),
    ];
    match om.state_machine().snapshot().and_then(|s| s.counts()) {
        Ok(c) => rows.extend([
            ("applied index".to_string(), c.applied_index.to_string()),
            ("volumes".to_string(), c.volumes.to_string()),
            ("buckets".to_string(), c.buckets.to_string()),
            ("keys".to_string(), c.keys.to_string()),
            ("open keys".to_string(), c.open_keys.to_string()),
            (
                "multipart uploads".to_string(),
                c.multipart_uploads.to_string(),
            ),
            (
                "deleted block batches".to_string(),
                c.deleted_block_batches.to_string(),
            ),
        ]),
        Err(e) => {
            tracing::warn!(error = %e, "status page cannot read the database");
            rows.push(("error".to_string(), e.to_string()));
        }
    }
    rows
}

async fn refresh_gauges(om: Weak<OzoneManager>, metrics: Metrics) {
    let mut tick = tokio::time::interval(GAUGE_INTERVAL);
    loop {
        tick.tick().await;
        let Some(om) = om.upgrade() else { return };
        let st = om.raft_node().status();
        let stats = om.raft_node().log_stats();
        for (name, v) in [
            ("raft_term", st.term),
            ("raft_is_leader", u64::from(st.role == "LEADER")),
            ("raft_last_log_index", st.last_log_index),
            ("raft_snapshot_index", st.snapshot_index),
            (
                "raft_log_appends",
                stats.appends.load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "raft_log_entries",
                stats.entries.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ] {
            metrics.set_gauge(name, v.min(i64::MAX as u64) as i64);
        }
        match om.local_counts().await {
            Ok(c) => {
                for (name, v) in [
                    ("applied_index", c.applied_index),
                    ("volumes", c.volumes),
                    ("buckets", c.buckets),
                    ("keys", c.keys),
                    ("open_keys", c.open_keys),
                    ("multipart_uploads", c.multipart_uploads),
                    ("deleted_block_batches", c.deleted_block_batches),
                ] {
                    metrics.set_gauge(name, v.min(i64::MAX as u64) as i64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh OM gauges"),
        }
    }
}
