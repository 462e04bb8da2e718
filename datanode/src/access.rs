//! Who may call what on a datanode's port when it serves mutual TLS (security on): the policy
//! of [`ozone_common::tls::Guard`]. Block data goes to gateways, OMs, administrators' tools
//! and other datanodes; container copies only to datanodes. Unknown methods are refused.

use std::sync::Arc;

use ozone_common::tls::{self, NodeRole, Policy};

pub fn datanode_port() -> Policy {
    use NodeRole::*;
    Arc::new(|path, caller, _headers| {
        let (service, method) = tls::split_path(path);
        match (service, method) {
            ("ozone.datanode.DatanodeService", "CopyContainer") => {
                tls::require_role(method, caller, &[Datanode])
            }
            ("ozone.datanode.DatanodeService", _) => {
                tls::require_role(method, caller, &[S3g, Om, Datanode, Admin])
            }
            _ => Err(tls::not_served(path)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn containers_are_copied_only_to_datanodes() {
        let p = datanode_port();
        let copy = "/ozone.datanode.DatanodeService/CopyContainer";
        assert_eq!(
            tls::decide(&p, copy, Some((NodeRole::Datanode, "u"))),
            Code::Ok
        );
        assert_eq!(
            tls::decide(&p, copy, Some((NodeRole::S3g, "gw"))),
            Code::PermissionDenied
        );
        let read = "/ozone.datanode.DatanodeService/ReadChunk";
        assert_eq!(tls::decide(&p, read, Some((NodeRole::S3g, "gw"))), Code::Ok);
        assert_eq!(tls::decide(&p, read, None), Code::Unauthenticated);
    }
}
