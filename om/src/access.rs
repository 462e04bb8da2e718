//! Who may call what on OM's port when it serves mutual TLS (security on): the policy of
//! [`ozone_common::tls::Guard`], decided from the caller's certificate before any service sees
//! the call. Unknown methods are refused (fail closed).
//!
//! Namespace calls come from gateways (acting for the S3 user they authenticated), from the
//! other OMs and from administrators' tools; raft calls only from the configured OMs.

use std::sync::Arc;

use ozone_common::tls::{self, NodeRole, Policy};

pub fn om_port(om_nodes: Vec<String>) -> Policy {
    use NodeRole::*;
    Arc::new(move |path, caller, _headers| {
        let (service, method) = tls::split_path(path);
        match (service, method) {
            ("ozone.raft.RaftService", _) => tls::raft_call(method, caller, Om, &om_nodes),
            // A user's signing key is derived here and never leaves OM, but the answer says
            // whether a signature is good: only for gateways.
            ("ozone.om.OmService", "VerifyS3Signature") => {
                tls::require_role(method, caller, &[S3g, Om])
            }
            // Secrets and the admin listings: administrators only (the secret calls also check
            // the admin credential itself).
            (
                "ozone.om.OmService",
                "GetS3Secret"
                | "RevokeS3Secret"
                | "AdminListOpenKeys"
                | "AdminListMultipartUploads",
            ) => tls::require_role(method, caller, &[Admin, Om]),
            ("ozone.om.OmService", _) => tls::require_role(method, caller, &[S3g, Om, Admin]),
            _ => Err(tls::not_served(path)),
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tonic::Code;

    fn call(p: &Policy, path: &str, who: Option<(NodeRole, &str)>) -> Code {
        tls::decide(p, path, who)
    }

    #[test]
    fn raft_only_from_configured_oms_and_the_namespace_from_gateways_and_admins() {
        let p = om_port(vec!["om1".into(), "om2".into(), "om3".into()]);
        let ae = "/ozone.raft.RaftService/AppendEntries";
        assert_eq!(call(&p, ae, Some((NodeRole::Om, "om3"))), Code::Ok);
        assert_eq!(
            call(&p, ae, Some((NodeRole::Om, "om4"))),
            Code::PermissionDenied
        );
        assert_eq!(
            call(&p, ae, Some((NodeRole::Admin, "root"))),
            Code::PermissionDenied
        );
        assert_eq!(call(&p, ae, None), Code::Unauthenticated);
        let status = "/ozone.raft.RaftService/NodeStatus";
        assert_eq!(call(&p, status, None), Code::Unauthenticated);
        assert_eq!(call(&p, status, Some((NodeRole::Admin, "root"))), Code::Ok);
        let acl = "/ozone.om.OmService/SetBucketAcl";
        assert_eq!(call(&p, acl, Some((NodeRole::S3g, "gw"))), Code::Ok);
        assert_eq!(
            call(&p, acl, Some((NodeRole::Datanode, "u"))),
            Code::PermissionDenied
        );
        assert_eq!(call(&p, acl, None), Code::Unauthenticated);
        let secret = "/ozone.om.OmService/GetS3Secret";
        assert_eq!(
            call(&p, secret, Some((NodeRole::S3g, "gw"))),
            Code::PermissionDenied
        );
        assert_eq!(call(&p, secret, Some((NodeRole::Admin, "root"))), Code::Ok);
        let verify = "/ozone.om.OmService/VerifyS3Signature";
        assert_eq!(
            call(&p, verify, Some((NodeRole::Admin, "root"))),
            Code::PermissionDenied
        );
        assert_eq!(
            call(&p, "/ozone.other.X/Y", Some((NodeRole::Om, "om1"))),
            Code::PermissionDenied
        );
    }
}
