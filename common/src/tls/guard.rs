//! Who may call what: the per-port [`Policy`], the [`Guard`] layer that applies it before any
//! service sees a call, and the rules the policies are made of.

use super::*;

/// Who may call a method of a server: given the request path (`/package.Service/Method`), the
/// caller's verified identity and the request headers, `Ok` lets the call through.
pub type Policy = Arc<
    dyn Fn(&str, Option<&Identity>, &tonic::codegen::http::HeaderMap) -> Result<(), tonic::Status>
        + Send
        + Sync,
>;

/// A tower layer that applies a [`Policy`] to every call of a gRPC server before any service
/// sees it, when the process serves mutual TLS (with security off it lets everything
/// through, as before). A refused call gets its status and never reaches the service.
#[derive(Clone)]
pub struct Guard(Policy);

impl Guard {
    pub fn new(policy: Policy) -> Guard {
        Guard(policy)
    }
}

impl<S> tower::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            policy: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    policy: Policy,
}

impl<S, B> tower::Service<tonic::codegen::http::Request<B>> for Guarded<S>
where
    S: tower::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
        >,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        futures::future::Either<futures::future::Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        use futures::future::Either;
        let Some(peer) = request.extensions().get::<PeerInfo>() else {
            return Either::Right(self.inner.call(request));
        };
        if !peer.tls {
            return Either::Right(self.inner.call(request));
        }
        match (self.policy)(
            request.uri().path(),
            peer.identity.as_ref(),
            request.headers(),
        ) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(status) => {
                tracing::warn!(
                    path = request.uri().path(),
                    caller = ?peer.identity,
                    remote = ?peer.remote,
                    reason = status.message(),
                    "call refused"
                );
                Either::Left(futures::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The method name of a request path `/package.Service/Method`, with its service.
pub fn split_path(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.rsplit_once('/').unwrap_or((path, ""))
}

/// The refusal of a method no caller may use (fail closed on what a policy does not name).
pub fn not_served(path: &str) -> tonic::Status {
    tonic::Status::permission_denied(format!("{path} is not served to anyone"))
}

/// What `policy` answers a call of `path` by `who` (a role and id, or no certificate): `Ok`
/// or the refusal's code. For the policies' tests and diagnostics.
pub fn decide(policy: &Policy, path: &str, who: Option<(NodeRole, &str)>) -> tonic::Code {
    let id = who.map(|(r, i)| Identity::new(r, i));
    match policy(path, id.as_ref(), &Default::default()) {
        Ok(()) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

/// The refusal of a call without a certificate.
pub fn unauthenticated(method: &str) -> tonic::Status {
    tonic::Status::unauthenticated(format!(
        "{method} needs a client certificate of the cluster"
    ))
}

/// The refusal of a call by a node whose role may not make it.
pub fn denied(method: &str, caller: &Identity) -> tonic::Status {
    tonic::Status::permission_denied(format!("{caller} may not call {method}"))
}

/// Lets `caller` through when its role is one of `roles`.
pub fn require_role(
    method: &str,
    caller: Option<&Identity>,
    roles: &[NodeRole],
) -> Result<(), tonic::Status> {
    match caller {
        None => Err(unauthenticated(method)),
        Some(c) if roles.contains(&c.role) => Ok(()),
        Some(c) => Err(denied(method, c)),
    }
}

/// Lets `caller` through when it is one of the configured peers of a raft group.
pub fn require_peer(
    method: &str,
    caller: Option<&Identity>,
    role: NodeRole,
    peers: &[String],
) -> Result<(), tonic::Status> {
    match caller {
        None => Err(unauthenticated(method)),
        Some(c) if c.role == role && peers.contains(&c.id) => Ok(()),
        Some(c) => Err(denied(method, c)),
    }
}

/// The raft service of a replicated role (`ozone.raft.RaftService`): entries, votes and
/// snapshots only from the configured peers of `role`; status and leadership changes from them
/// or an administrator. Other methods are refused.
pub fn raft_call(
    method: &str,
    caller: Option<&Identity>,
    role: NodeRole,
    peers: &[String],
) -> Result<(), tonic::Status> {
    match method {
        "NodeStatus" | "TransferLeader" | "StartElection"
            if caller.is_some_and(|c| c.role == NodeRole::Admin) =>
        {
            Ok(())
        }
        "AppendEntries" | "Vote" | "InstallSnapshot" | "NodeStatus" | "TransferLeader"
        | "StartElection" => require_peer(method, caller, role, peers),
        _ => Err(not_served(&format!("/ozone.raft.RaftService/{method}"))),
    }
}
