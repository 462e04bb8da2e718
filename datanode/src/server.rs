//! Starting and stopping a datanode: the data directory (lock, identity, containers), the shared
//! [`Datanode`] state, the gRPC server, the SCM heartbeat loop, the command workers, the
//! replication supervisor, the scrubber and the http server with `/prom` and the status page.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ozone_common::http::StatusFn;
use ozone_common::{Metrics, OzoneConfig, config::bind_address};
use ozone_proto::MAX_MESSAGE_BYTES;
use ozone_proto::datanode::datanode_service_server::DatanodeServiceServer;
use ozone_proto::hdds::DatanodeDetails;
use ozone_proto::scm::ContainerReplicaReport;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::DatanodeConfig;
use crate::container::ContainerSet;
use crate::error::DatanodeError;
use crate::identity;
use crate::node::{Datanode, Queues, ScmConnection};
use crate::service::DatanodeGrpc;
use crate::{address, commands, heartbeat, replication, scrubber};

/// How long `stop` waits for in-flight requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// HTTP/2 windows large enough that a 4 MiB chunk is not throttled by flow control.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

fn status_fn(target: Arc<OnceLock<Weak<Datanode>>>) -> StatusFn {
    Arc::new(move || match target.get().and_then(Weak::upgrade) {
        Some(node) => node.status_rows(),
        None => vec![("state".into(), "stopped".into())],
    })
}

/// A running datanode started with [`start`].
pub struct DatanodeHandle {
    node: Arc<Datanode>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    heartbeat: Option<JoinHandle<()>>,
}

/// Every container report interval, tries again to load the containers that could not be
/// loaded at start (kept aside, never deleted); publishes how many are still aside.
async fn retry_kept_aside(node: Arc<Datanode>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let aside = node.containers.kept_aside().len();
        node.metrics.set_gauge(
            "containers_kept_aside",
            i64::try_from(aside).unwrap_or(i64::MAX),
        );
        tokio::select! {
            _ = tokio::time::sleep(node.config.container_report_interval) => {}
            _ = shutdown.wait_for(|&stop| stop) => return,
        }
        if aside == 0 {
            continue;
        }
        match node.containers.retry_kept_aside().await {
            Ok(0) => {}
            Ok(loaded) => tracing::info!(loaded, "containers kept aside at start loaded"),
            Err(DatanodeError::ShuttingDown) => return,
            Err(e) => tracing::warn!(error = %e, "cannot retry loading the containers kept aside"),
        }
    }
}

/// Starts a datanode: locks and loads its directory, binds its gRPC port (0 picks a free one) and
/// http address, and starts heartbeating to SCM. Returns once it serves requests.
pub async fn start(cfg: OzoneConfig) -> Result<DatanodeHandle, DatanodeError> {
    let config = DatanodeConfig::from_ozone(&cfg)?;
    let hostname = if config.hostname.is_empty() {
        // The first SCM stands for all: they share a network.
        let scm = config
            .scm_addresses
            .first()
            .map_or("127.0.0.1:9861", String::as_str);
        address::advertised_host(scm, config.use_hostname).await?
    } else {
        config.hostname.clone()
    };
    let config = config.with_hostname(hostname);
    let dir = config.dir.clone();
    let (lock, uuid, containers) = tokio::task::spawn_blocking(move || {
        let lock = identity::lock_dir(&dir)?;
        let uuid = identity::load_or_create_uuid(&dir)?;
        let containers = ContainerSet::load(&dir.join("containers"))?;
        Ok::<_, DatanodeError>((lock, uuid, containers))
    })
    .await??;
    if ozone_common::tls::wanted(&cfg)? {
        // Mutual TLS on the gRPC port and on the calls to SCM and other datanodes.
        let tls_err = |e: scm_client::ScmClientError| ozone_common::ConfigError::Tls {
            what: "this datanode's certificate".into(),
            message: e.to_string(),
        };
        let certs = scm_client::certs::NodeCertSettings::from_config(
            &cfg,
            ozone_common::tls::Identity::new(ozone_common::tls::NodeRole::Datanode, uuid.clone()),
            std::slice::from_ref(&config.hostname),
            &config.dir,
        )
        .map_err(tls_err)?;
        scm_client::certs::prepare_node(&certs)
            .await
            .map_err(tls_err)?;
    }

    let bind = bind_address(&format!("{}:{}", config.hostname, config.grpc_port));
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| DatanodeError::io(format!("binding the gRPC port {bind}"), e))?;
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| DatanodeError::io("reading the bound gRPC address", e))?;

    let metrics = Metrics::new("datanode");
    let status_target: Arc<OnceLock<Weak<Datanode>>> = Arc::default();
    let http_addr = ozone_common::http::serve(
        &config.http_address,
        metrics.clone(),
        status_fn(status_target.clone()),
    )
    .await
    .map_err(|e| {
        DatanodeError::io(
            format!("binding the http address {}", config.http_address),
            e,
        )
    })?;

    let details = DatanodeDetails {
        uuid,
        host: config.hostname.clone(),
        port: u32::from(grpc_addr.port()),
        http_port: u32::from(http_addr.port()),
    };
    let (replication_tx, replication_rx) = tokio::sync::mpsc::unbounded_channel();
    let (scrub_tx, scrub_rx) = tokio::sync::mpsc::unbounded_channel();
    let (command_queues, command_rx) = commands::queues(commands::QUEUE_DEPTH);
    let node = Arc::new(Datanode::new(
        config,
        details,
        containers,
        metrics,
        lock,
        Queues {
            replication_tx,
            scrub_tx,
            commands: command_queues,
        },
    ));
    // Only fails if already set, and it was just created.
    let _ = status_target.set(Arc::downgrade(&node));

    let (shutdown, shutdown_rx) = watch::channel(false);
    let service = DatanodeServiceServer::new(DatanodeGrpc { node: node.clone() })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    // TCP_NODELAY on every connection; TLS with security on.
    let incoming = ozone_common::tls::incoming(listener)?;
    let mut stop_rx = shutdown_rx.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(ozone_common::tls::Guard::new(crate::access::datanode_port()))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop_rx.wait_for(|&stop| stop).await;
            }),
    );
    tokio::spawn(replication::run(
        node.clone(),
        replication_rx,
        shutdown_rx.clone(),
    ));
    if node.config.scrub_enabled {
        tokio::spawn(scrubber::run(node.clone(), scrub_rx, shutdown_rx.clone()));
    }
    commands::run(node.clone(), command_rx, shutdown_rx.clone());
    tokio::spawn(retry_kept_aside(node.clone(), shutdown_rx.clone()));
    let heartbeat = tokio::spawn(heartbeat::run(node.clone(), shutdown_rx));
    tracing::info!(uuid = %node.details.uuid, grpc = %grpc_addr, http = %http_addr,
        advertised = %node.details.endpoint(), dir = %node.config.dir.display(), scm = ?node.config.scm_addresses,
        "datanode started");
    Ok(DatanodeHandle {
        node,
        grpc_addr,
        http_addr,
        shutdown,
        server: Some(server),
        heartbeat: Some(heartbeat),
    })
}

/// Runs a datanode until `shutdown` resolves (or its gRPC server fails), then stops it.
pub async fn run(
    cfg: OzoneConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DatanodeError> {
    let mut handle = start(cfg).await?;
    let Some(mut server) = handle.server.take() else {
        return handle.stop().await;
    };
    let ended = tokio::select! {
        () = shutdown => None,
        r = &mut server => Some(r),
    };
    match ended {
        None => {
            tracing::info!("datanode shutting down");
            handle.server = Some(server);
            handle.stop().await
        }
        Some(result) => {
            let err = match result {
                Ok(Ok(())) => DatanodeError::Task("the gRPC server stopped by itself".into()),
                Ok(Err(e)) => e.into(),
                Err(join) => join.into(),
            };
            tracing::error!(error = %err, "gRPC server ended; stopping the datanode");
            if let Err(e) = handle.stop().await {
                tracing::warn!(error = %e, "error while stopping after the server failure");
            }
            Err(err)
        }
    }
}

impl DatanodeHandle {
    /// The bound gRPC address (the real port when configured with 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// What the datanode tells SCM and clients about itself.
    pub fn details(&self) -> DatanodeDetails {
        self.node.details.clone()
    }

    pub fn uuid(&self) -> &str {
        &self.node.details.uuid
    }

    /// The link to the SCM leader (of the highest term) if one answers, else to the first SCM.
    pub fn scm_connection(&self) -> ScmConnection {
        self.node.scm()
    }

    /// Every SCM link: its datanode-protocol address and state.
    pub fn scm_connections(&self) -> Vec<(String, ScmConnection)> {
        self.node.scm_links()
    }

    /// The highest SCM raft term this datanode has seen.
    pub fn scm_term(&self) -> u64 {
        self.node.scm_term()
    }

    /// The container report sent to SCM.
    pub fn containers(&self) -> Vec<ContainerReplicaReport> {
        self.node.containers.reports()
    }

    /// Closes a container (as SCM's CloseContainerCommand does): it takes no more writes.
    pub async fn close_container(&self, container_id: u64) -> Result<(), DatanodeError> {
        self.node.containers.close_container(container_id).await
    }

    /// Stops serving: refuses new connections, lets in-flight requests finish (up to a grace
    /// period), stops heartbeats, closes the containers and releases the data directory.
    pub async fn stop(mut self) -> Result<(), DatanodeError> {
        let _ = self.shutdown.send(true);
        let mut result = Ok(());
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(e.into()),
                Ok(Err(join)) => result = Err(join.into()),
                Err(_) => {
                    tracing::warn!(
                        "in-flight requests did not finish within {SHUTDOWN_GRACE:?}; cutting them off"
                    );
                    server.abort();
                }
            }
        }
        if let Some(mut heartbeat) = self.heartbeat.take()
            && tokio::time::timeout(Duration::from_secs(2), &mut heartbeat)
                .await
                .is_err()
        {
            heartbeat.abort();
        }
        // A request still finishing on the blocking pool keeps its container's database open;
        // give it a moment, so that a restart in this process can open the databases again.
        let containers = self.node.containers.shutdown();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while containers.iter().any(|c| Arc::strong_count(c) > 1) {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "containers still in use after shutdown; their databases close when released"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(containers);
        self.node.release_dir();
        tracing::info!(uuid = %self.node.details.uuid, "datanode stopped");
        result
    }
}

impl Drop for DatanodeHandle {
    fn drop(&mut self) {
        // Not stopped explicitly: let the tasks wind down on their own.
        let _ = self.shutdown.send(true);
    }
}
