//! Who may call what on SCM's two ports when they serve mutual TLS (security on): the
//! policies of [`ozone_common::tls::Guard`], decided from the caller's certificate before any
//! service sees the call. Unknown methods are refused (fail closed).

use std::sync::Arc;

use ozone_common::tls::{self, NodeRole, Policy};

/// The client port (9860): OMs, gateways, datanodes, administrators and the other SCMs.
pub fn client_port(scm_nodes: Vec<String>) -> Policy {
    use NodeRole::*;
    Arc::new(move |path, caller, _headers| {
        let (service, method) = tls::split_path(path);
        match (service, method) {
            // Checked by the service itself: a bootstrap proof or the caller's own identity.
            ("ozone.scm.ScmSecurityService", "SignCertificate") => Ok(()),
            ("ozone.scm.ScmSecurityService", "ListCertificates") => {
                tls::require_role(method, caller, &[Admin, Scm])
            }
            ("ozone.raft.RaftService", _) => tls::raft_call(method, caller, Scm, &scm_nodes),
            // Only OMs allocate and delete blocks.
            ("ozone.scm.ScmClientService", "AllocateBlock" | "DeleteBlocks") => {
                tls::require_role(method, caller, &[Om])
            }
            // Writers and readers (through OM's gateway clients) report and look up replicas.
            ("ozone.scm.ScmClientService", "ReportReplicaMiss" | "GetContainer") => {
                tls::require_role(method, caller, &[Om, S3g, Datanode, Admin])
            }
            // Block-token keys: for the OMs that sign and the datanodes that check.
            ("ozone.scm.ScmClientService", "GetSecretKeys") => {
                tls::require_role(method, caller, &[Om, Datanode])
            }
            (
                "ozone.scm.ScmClientService",
                "ListDatanodes" | "ListContainers" | "ListPipelines" | "SafeModeStatus",
            ) => tls::require_role(method, caller, &[Om, S3g, Datanode, Admin, Scm]),
            (
                "ozone.scm.ScmClientService",
                "DecommissionDatanode" | "RecommissionDatanode" | "CloseContainer",
            ) => tls::require_role(method, caller, &[Admin]),
            _ => Err(tls::not_served(path)),
        }
    })
}

/// The datanode port (9861): only datanodes, each as itself (the service compares the uuid it
/// reports with the caller's identity).
pub fn datanode_port() -> Policy {
    Arc::new(|path, caller, _headers| {
        let (service, method) = tls::split_path(path);
        match (service, method) {
            ("ozone.scm.ScmDatanodeService", "Register" | "Heartbeat") => {
                tls::require_role(method, caller, &[NodeRole::Datanode])
            }
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
    fn only_configured_scms_speak_raft_and_only_oms_delete_blocks() {
        let p = client_port(vec!["scm1".into(), "scm2".into()]);
        let ae = "/ozone.raft.RaftService/AppendEntries";
        assert_eq!(call(&p, ae, Some((NodeRole::Scm, "scm2"))), Code::Ok);
        assert_eq!(
            call(&p, ae, Some((NodeRole::Scm, "scm9"))),
            Code::PermissionDenied
        );
        assert_eq!(
            call(&p, ae, Some((NodeRole::Om, "scm1"))),
            Code::PermissionDenied
        );
        assert_eq!(call(&p, ae, None), Code::Unauthenticated);
        let del = "/ozone.scm.ScmClientService/DeleteBlocks";
        assert_eq!(call(&p, del, Some((NodeRole::Om, "om1"))), Code::Ok);
        assert_eq!(
            call(&p, del, Some((NodeRole::Datanode, "u"))),
            Code::PermissionDenied
        );
        assert_eq!(call(&p, del, None), Code::Unauthenticated);
        assert_eq!(
            call(
                &p,
                "/ozone.scm.ScmClientService/CloseContainer",
                Some((NodeRole::Om, "om1"))
            ),
            Code::PermissionDenied
        );
        assert_eq!(
            call(&p, "/ozone.scm.ScmSecurityService/SignCertificate", None),
            Code::Ok
        );
        assert_eq!(
            call(&p, "/ozone.scm.Other/X", Some((NodeRole::Admin, "a"))),
            Code::PermissionDenied
        );
        let d = datanode_port();
        assert_eq!(
            call(
                &d,
                "/ozone.scm.ScmDatanodeService/Heartbeat",
                Some((NodeRole::Datanode, "u"))
            ),
            Code::Ok
        );
        assert_eq!(
            call(
                &d,
                "/ozone.scm.ScmDatanodeService/Register",
                Some((NodeRole::Om, "om1"))
            ),
            Code::PermissionDenied
        );
    }
}
