//! Connections: the TLS (or plain) connections a gRPC server accepts, with the peer's
//! identity in every request, and the channels clients connect with.

use super::*;

/// What a server knows of the other end of a connection; in every request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The identity of a verified client certificate; `None` on plain connections and for TLS
    /// clients without one.
    pub identity: Option<Identity>,
    pub tls: bool,
}

/// The verified identity of the caller of a gRPC request, if it presented a certificate.
pub fn caller<T>(request: &tonic::Request<T>) -> Option<&Identity> {
    request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|p| p.identity.as_ref())
}

/// An accepted connection: plain TCP (security off) or TLS.
pub enum ServerConn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for ServerConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            ServerConn::Plain(s) => PeerInfo {
                remote: s.peer_addr().ok(),
                identity: None,
                tls: false,
            },
            ServerConn::Tls(s) => {
                let (tcp, conn) = s.get_ref();
                let identity = conn
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| cert_info(c).ok())
                    .and_then(|i| i.identity);
                PeerInfo {
                    remote: tcp.peer_addr().ok(),
                    identity,
                    tls: true,
                }
            }
        }
    }
}

impl AsyncRead for ServerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerConn::Plain(s) => s.is_write_vectored(),
            ServerConn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections a gRPC server accepts on `listener` (TCP_NODELAY set): TLS with the
/// process's context when one is installed, plain TCP otherwise. TLS handshakes run
/// concurrently, each bounded by 10 s; one that fails is logged and dropped. The listener is
/// closed when the server drops the stream.
pub fn incoming(
    listener: TcpListener,
) -> Result<Pin<Box<dyn Stream<Item = io::Result<ServerConn>> + Send>>, ConfigError> {
    use futures::StreamExt;
    let Some(ctx) = context() else {
        let plain = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
            let conn = conn?;
            let _ = conn.set_nodelay(true);
            Ok(ServerConn::Plain(conn))
        });
        return Ok(Box::pin(plain));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(ctx.server_config()?);
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<ServerConn>>(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(ServerConn::Tls(Box::new(tls)))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake refused"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

/// A lazily connecting channel to `endpoint`, a server of role `expect`: TLS with the
/// process's context when one is installed (the server's certificate must name a node of
/// that role), plain TCP otherwise.
pub fn channel(endpoint: Endpoint, expect: NodeRole) -> Channel {
    match context() {
        Some(ctx) => channel_with(&ctx, endpoint, expect),
        None => endpoint.connect_lazy(),
    }
}

/// A lazily connecting TLS channel with an explicit context (a tool or a test acting as a
/// given node) rather than the process's.
pub fn channel_with(ctx: &Arc<TlsContext>, endpoint: Endpoint, expect: NodeRole) -> Channel {
    let config = match ctx.client_config(expect) {
        Ok(c) => c,
        Err(e) => {
            // Cannot happen with a context that was built; fail every call rather than
            // falling back to plain text.
            tracing::error!(error = %e, "cannot build the TLS client configuration");
            return endpoint.connect_with_connector_lazy(tower::service_fn(
                move |_: tonic::codegen::http::Uri| {
                    let message = e.to_string();
                    async move {
                        Err::<hyper_util::rt::TokioIo<TcpStream>, io::Error>(io::Error::other(
                            message,
                        ))
                    }
                },
            ));
        }
    };
    endpoint.connect_with_connector_lazy(tls_connector(config))
}

/// A channel for asking SCM for a first certificate: TLS that accepts any server certificate
/// and presents none. The answer must be checked by the caller.
pub fn bootstrap_channel(endpoint: Endpoint) -> Channel {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    endpoint.connect_with_connector_lazy(tls_connector(Arc::new(config)))
}

type TlsIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

fn tls_connector(
    config: Arc<ClientConfig>,
) -> impl tower::Service<
    tonic::codegen::http::Uri,
    Response = TlsIo,
    Error = io::Error,
    Future = Pin<Box<dyn std::future::Future<Output = io::Result<TlsIo>> + Send>>,
> + Clone
+ Send
+ 'static {
    let connector = tokio_rustls::TlsConnector::from(config);
    tower::service_fn(move |uri: tonic::codegen::http::Uri| {
        let connector = connector.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::other(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            // Names are not checked (see the module notes); SNI carries a fixed one.
            let name = ServerName::try_from("ozone").expect("a valid DNS name");
            let tls = connector.connect(name, tcp).await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        }) as Pin<Box<dyn std::future::Future<Output = io::Result<TlsIo>> + Send>>
    })
}
