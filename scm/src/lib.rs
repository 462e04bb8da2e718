//! Storage Container Manager: datanodes and their health, pipelines, containers and their
//! replicas, and block allocation for OM.
//!
//! The `ozone scm` command calls [`run`]; tests call [`start`] (with port 0 addresses) and get
//! the bound addresses back in a [`ScmServer`]. Both must run inside an actix `System`.
//!
//! # Shape
//! - One actix actor, [`manager::ScmManager`], owns all state ([`state::ScmState`]): node
//!   manager, pipeline manager and container manager together, so a block allocation sees
//!   nodes, pipelines and containers consistently without cross-actor messages. It is fed typed
//!   messages by the two tonic services in [`grpc`] and ticks on a timer
//!   (`ozone.scm.stale.node.interval / 4`, 50 ms to 1 s).
//! - Durable state ([`store`], redb file `scm.db` in `ozone.scm.db.dirs`, else
//!   `ozone.metadata.dirs`): datanodes, pipelines, containers, the cluster id and the id
//!   sequences. Block local ids are reserved in batches of [`state::LOCAL_ID_BATCH`] with a
//!   durable commit before any of them is handed out; a restart continues after the last
//!   reserved batch, so ids are never reused even after SIGKILL. Container ids are committed
//!   with the container before the block naming it is returned.
//! - Two gRPC servers: `ScmClientService` on `ozone.scm.client.address` (9860) and
//!   `ScmDatanodeService` on `ozone.scm.datanode.address` (9861); plus `/prom` and a status
//!   page on `ozone.scm.http-address` (9876).
//!
//! - Replication ([`ha`]): the SCMs of a service form a raft group; only the leader runs the
//!   state actor's state, and what it persists is replicated as rows before it answers.
//!
//! - Replication ([`ha`]): the SCMs of a service form a raft group; only the leader runs the
//!   state actor's state, and what it persists is replicated as rows before it answers.
//!
//! # Rules
//! - Health: HEALTHY, STALE after `ozone.scm.stale.node.interval` without a heartbeat, DEAD
//!   after `ozone.scm.dead.node.interval`. A heartbeat from an unknown uuid is answered with
//!   `reregister`. A datanode that registers again with a new host/port is updated everywhere
//!   (pipelines name members by uuid). Datanodes loaded from the database after a restart take
//!   part in nothing until they heartbeat again.
//! - Replicas: Register carries a full container report that replaces the datanode's replica
//!   list; a heartbeat carries a full one too, or an incremental one (the replicas new or
//!   changed, and those removed) that changes only what it names, so a heartbeat costs the size
//!   of its report. `GetContainer` shows them. A DEAD datanode's replicas are forgotten.
//! - Pipelines: a factor-ONE pipeline per healthy datanode, and factor-THREE pipelines of three
//!   distinct healthy datanodes with each datanode in at most `ozone.scm.datanode.pipeline.limit`
//!   open pipelines of a factor; formed on register, heartbeat and every tick. A pipeline with a
//!   STALE or DEAD member is CLOSED for good and its open containers are closed.
//! - Safe mode: no allocation until `hdds.scm.safemode.min.datanode` (0: the default factor)
//!   datanodes are healthy and a healthy pipeline of the default factor exists; once left,
//!   safe mode stays off until SCM restarts.
//! - Allocation: round robin over the OPEN pipelines of the factor whose members are all
//!   healthy and none excluded. A container's fill is the used bytes its replicas report plus
//!   an expiring estimate for the blocks in flight (the size the writer declared, capped by the
//!   block size); a pipeline fills one container at a time (the fullest with room below the
//!   close threshold) and opens another only when none has room, up to
//!   `ozone.scm.pipeline.owner.container.count` (at that limit a container with room by its
//!   reported bytes takes the block, else the fullest is closed). See
//!   `state::containers` for the details. A container whose replicas report
//!   `ozone.scm.container.close.threshold` (0.9) of `ozone.scm.container.size` is CLOSED, and
//!   its replicas get a CloseContainerCommand in their next heartbeat responses (sent again
//!   when a report shows the replica open, and by the ReplicationManager each round). An OPEN
//!   container one of whose replicas is reported in any other state (closed or unhealthy on the
//!   datanode) is closed the same way, and so is one an administrator closes
//!   (`CloseContainer`, `ozone admin container close`).
//!
//! - Replication: a second actor, [`replication::ReplicationManager`], runs every
//!   `hdds.scm.replication.thread.interval` on a snapshot from the state actor, decides with
//!   the pure function [`planner::plan`] and sends back commands (replicate, delete replica);
//!   see the [`planner`] module doc for the rules.
//! - Deletion: OM hands the blocks of deleted keys to `DeleteBlocks`; they are appended
//!   durably to the deleted-block log (one transaction per container), sent in DeleteBlocks
//!   commands to every datanode holding a replica of the container, sent again until the
//!   datanode acknowledges in a heartbeat, and dropped once every holder did. The log is
//!   indexed by container and each datanode's outstanding work is kept apart, so a heartbeat
//!   looks only at what that datanode has to do.
//! - Decommission: a DECOMMISSIONING datanode takes no new pipelines or replicas, its
//!   pipelines close, its replicas stop counting (so they are copied elsewhere) and it turns
//!   DECOMMISSIONED once every container it holds has its full count of CLOSED replicas on
//!   healthy in-service datanodes. Recommission puts it back IN_SERVICE.
//!
//! # Not done yet
//! - Closed pipelines are never re-opened or destroyed while they hold containers; there is no
//!   CLOSING container state (SCM marks a container CLOSED when it asks replicas to close) and
//!   no QUASI_CLOSED handling.
//! - No maintenance mode, no topology awareness (placement is least-loaded), and safe
//!   mode does not wait for container reports.

pub mod access;
pub mod ca;
pub mod config;
pub mod error;
pub mod factor;
pub mod grpc;
pub mod ha;
pub mod manager;
pub mod model;
pub mod planner;
pub mod replication;
pub mod state;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use ozone_common::{Metrics, OzoneConfig, config::bind_address};
use ozone_proto::raft::raft_service_server::RaftServiceServer;
use ozone_proto::scm::scm_client_service_server::ScmClientServiceServer;
use ozone_proto::scm::scm_datanode_service_server::ScmDatanodeServiceServer;
use ozone_proto::scm::scm_security_service_server::ScmSecurityServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::ScmConfig;
pub use error::ScmError;
use manager::ScmManager;

/// How long [`ScmServer::stop`] waits for in-flight RPCs before dropping the servers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Directory of the raft log and snapshots under the SCM db dir (Ozone's `scm-ha`), apart
/// from an OM's sharing the same metadata directory.
pub const RAFT_DIR: &str = "scm-ha";

/// A running SCM (started by [`start`]).
pub struct ScmServer {
    /// Bound address of `ScmClientService`.
    pub client_addr: SocketAddr,
    /// Bound address of `ScmDatanodeService`.
    pub datanode_addr: SocketAddr,
    /// Bound address of the http server (`/prom`, status page).
    pub http_addr: SocketAddr,
    manager: Addr<ScmManager>,
    replication: Addr<replication::ReplicationManager>,
    node: Arc<ha::RaftNode>,
    store: std::sync::Weak<store::Store>,
    stop_tx: watch::Sender<bool>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
}

/// Runs SCM until `shutdown` resolves, then stops it cleanly. Must be called inside an actix
/// `System` (the `ozone` binary runs every role in one).
pub async fn run(
    cfg: OzoneConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ScmError> {
    let server = start(&cfg).await?;
    tracing::info!(
        client = %server.client_addr,
        datanode = %server.datanode_addr,
        http = %server.http_addr,
        "SCM started"
    );
    shutdown.await;
    tracing::info!("SCM shutting down");
    server.stop().await
}

/// Opens the database, starts the state actor, binds both gRPC servers and the http server.
/// Port 0 in any address picks a free port; the bound addresses are in the result.
pub async fn start(cfg: &OzoneConfig) -> Result<ScmServer, ScmError> {
    let scm_cfg = ScmConfig::from_ozone(cfg)?;
    let client_listener = bind(&scm_cfg.client_address).await?;
    let datanode_listener = bind(&scm_cfg.datanode_address).await?;
    let client_addr = local_addr(&client_listener)?;
    let datanode_addr = local_addr(&datanode_listener)?;

    let http_address = scm_cfg.http_address.clone();
    let (rm_interval, rm_timeout) = (scm_cfg.replication_interval, scm_cfg.replication_timeout);
    let mut settings = ha::ha_settings(cfg)?;
    let single = settings.peers.len() == 1;
    if single && settings.me.address.ends_with(":0") {
        // A single SCM on a free port advertises the port it got.
        settings.me.address = client_addr.to_string();
        settings.peers.insert(settings.my_id(), settings.me.clone());
    }
    let request_timeout = settings.request_timeout;
    let scm_ids: Vec<String> = settings.peers.values().map(|p| p.node_id.clone()).collect();
    // Security on, started by the `ozone` binary: the CA and this SCM's certificate first, so
    // that raft and both ports speak mutual TLS from the start.
    let security = if cfg.get_bool(ozone_common::config::keys::OZONE_SECURITY_ENABLED)?
        && ozone_common::tls::mutual_tls_enabled()
    {
        let s = ca::SecuritySettings::from_config(cfg, &scm_cfg.db_dir)?;
        let authority = ca::prepare(&s, &scm_cfg.db_dir).await?;
        Some(ca::SecurityGrpc::new(authority, &s, cfg)?)
    } else {
        None
    };
    let store = Arc::new(store::Store::open(&scm_cfg.db_dir)?);
    let node = ha::RaftNode::start(
        settings,
        &scm_cfg.db_dir.join(RAFT_DIR),
        Arc::new(ha::ScmMachine::new(store.clone())),
    )
    .await?;
    let metrics = Metrics::new("scm");
    let status: manager::StatusRows = Arc::new(Mutex::new(Vec::new()));
    let weak_store = Arc::downgrade(&store);
    let manager = ScmManager::new(
        scm_cfg,
        store,
        node.clone(),
        metrics.clone(),
        status.clone(),
    )
    .start();
    let replication = replication::ReplicationManager::new(
        manager.clone(),
        rm_interval,
        rm_timeout,
        metrics.clone(),
    )
    .start();
    if single {
        // A single SCM serves once it leads, as it did before it was a raft group.
        wait_serving(&manager, request_timeout.max(Duration::from_secs(10))).await?;
    }

    let status_fn: ozone_common::http::StatusFn = Arc::new(move || {
        let mut rows = vec![
            ("client rpc".to_string(), client_addr.to_string()),
            ("datanode rpc".to_string(), datanode_addr.to_string()),
        ];
        match status.lock() {
            Ok(s) => rows.extend(s.iter().cloned()),
            Err(poisoned) => rows.extend(poisoned.into_inner().iter().cloned()),
        }
        rows
    });
    let http_addr = match ozone_common::http::serve(&http_address, metrics.clone(), status_fn).await
    {
        Ok(a) => a,
        Err(source) => {
            // Release the database before failing so a retry in this process can open it.
            replication.do_send(replication::StopReplication);
            if let Err(e) = manager.send(manager::Shutdown).await {
                tracing::warn!(error = %e, "stopping the SCM state actor failed");
            }
            node.shutdown().await;
            return Err(ScmError::Io {
                what: format!("binding SCM http address {http_address}"),
                source,
            });
        }
    };

    let services = grpc::Services::new(manager.clone(), metrics);
    let (stop_tx, stop_rx) = watch::channel(false);
    let client_server = tonic::transport::Server::builder()
        .layer(ozone_common::tls::Guard::new(access::client_port(scm_ids)))
        .add_service(
            ScmClientServiceServer::new(services.clone())
                .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES),
        )
        .add_service(
            RaftServiceServer::new(ha::RaftGrpc::new(node.clone(), ha::status_of))
                .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES),
        )
        .add_optional_service(security.map(ScmSecurityServiceServer::new))
        .serve_with_incoming_shutdown(
            ozone_common::tls::incoming(client_listener)?,
            stopped(stop_rx.clone()),
        );
    let datanode_server = tonic::transport::Server::builder()
        .layer(ozone_common::tls::Guard::new(access::datanode_port()))
        .add_service(
            ScmDatanodeServiceServer::new(services)
                .max_decoding_message_size(ozone_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(ozone_proto::MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(
            ozone_common::tls::incoming(datanode_listener)?,
            stopped(stop_rx),
        );
    let servers = vec![tokio::spawn(client_server), tokio::spawn(datanode_server)];
    Ok(ScmServer {
        client_addr,
        datanode_addr,
        http_addr,
        manager,
        replication,
        node,
        store: weak_store,
        stop_tx,
        servers,
    })
}

/// Waits until the state actor serves (this SCM leads and has loaded its state).
async fn wait_serving(manager: &Addr<ScmManager>, within: Duration) -> Result<(), ScmError> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match manager.send(manager::SafeModeStatus).await? {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(ScmError::Unavailable(format!(
                    "the single SCM did not start serving within {within:?}: {e}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl ScmServer {
    /// Stops the gRPC servers (waiting up to a few seconds for in-flight calls), flushes the
    /// state and releases the database. The http server keeps serving until the process ends.
    pub async fn stop(self) -> Result<(), ScmError> {
        // Receivers may already be gone if a server died; then there is nothing to signal.
        let _ = self.stop_tx.send(true);
        for mut handle in self.servers {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "SCM gRPC server failed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "SCM gRPC server task failed"),
                Err(_) => {
                    tracing::warn!("SCM gRPC server did not stop in time; aborting it");
                    handle.abort();
                }
            }
        }
        if let Err(e) = self.replication.send(replication::StopReplication).await {
            tracing::debug!(error = %e, "replication manager already stopped");
        }
        let r = self.manager.send(manager::Shutdown).await?;
        self.node.shutdown().await;
        // A restart in this process opens the database again: wait until raft's tasks and
        // the state actor have let go of it.
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while (self.store.strong_count() > 0 || self.node.storage_in_use(0))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.store.strong_count() > 0 {
            tracing::warn!("SCM database still in use after shutdown");
        }
        r
    }
}

async fn bind(advertised: &str) -> Result<TcpListener, ScmError> {
    let addr = bind_address(advertised);
    TcpListener::bind(&addr)
        .await
        .map_err(|source| ScmError::Io {
            what: format!("binding {addr} (advertised {advertised})"),
            source,
        })
}

fn local_addr(l: &TcpListener) -> Result<SocketAddr, ScmError> {
    l.local_addr().map_err(|source| ScmError::Io {
        what: "reading a bound address".into(),
        source,
    })
}

/// Resolves when `rx` turns true or its sender is dropped.
async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}
