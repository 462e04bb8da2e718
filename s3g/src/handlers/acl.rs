//! Bucket ACLs: GetBucketAcl, PutBucketAcl (canned `x-amz-acl`, `x-amz-grant-*` headers or an
//! `AccessControlPolicy` body) and GetObjectAcl (the owner's FULL_CONTROL). Grants are kept by
//! OM with the bucket and enforced by [`crate::security`] when security is on.

use actix_web::{HttpResponse, web};
use ozone_proto::om::{BucketGrant, BucketInfo, SetBucketAclRequest};

use super::{Ctx, xml_ok};
use crate::error::{S3Error, S3ErrorCode, S3Result};
use crate::security::{ALL_USERS, AUTHENTICATED_USERS};
use crate::xml::{self, AccessControlPolicy};

const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

const PERMISSIONS: &[&str] = &["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"];

fn bad(message: impl Into<String>) -> S3Error {
    S3Error::msg(S3ErrorCode::InvalidArgument, message)
}

fn grantee_from_uri(uri: &str) -> S3Result<String> {
    match uri.trim() {
        ALL_USERS_URI => Ok(ALL_USERS.to_string()),
        AUTHENTICATED_URI => Ok(AUTHENTICATED_USERS.to_string()),
        other => Err(bad(format!("unsupported grantee group {other}"))),
    }
}

/// The grants of a canned ACL.
pub fn canned(acl: &str) -> S3Result<Vec<(String, &'static str)>> {
    Ok(match acl.trim() {
        "private" => vec![],
        "public-read" => vec![(ALL_USERS.into(), "READ")],
        "public-read-write" => vec![(ALL_USERS.into(), "READ"), (ALL_USERS.into(), "WRITE")],
        "authenticated-read" => vec![(AUTHENTICATED_USERS.into(), "READ")],
        other => return Err(bad(format!("unsupported canned ACL {other}"))),
    })
}

/// The grants of `x-amz-grant-<perm>: id="u1", uri="..."` headers.
pub fn header_grants(
    value: &str,
    permission: &'static str,
) -> S3Result<Vec<(String, &'static str)>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, v) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("bad grant {item}")))?;
        let v = v.trim().trim_matches('"');
        let grantee = match kind.trim().to_ascii_lowercase().as_str() {
            "id" if !v.is_empty() => v.to_string(),
            "uri" => grantee_from_uri(v)?,
            "emailaddress" => {
                return Err(S3Error::msg(
                    S3ErrorCode::NotImplemented,
                    "grants by e-mail address are not supported",
                ));
            }
            _ => return Err(bad(format!("bad grant {item}"))),
        };
        out.push((grantee, permission));
    }
    Ok(out)
}

async fn bucket_info(ctx: &Ctx<'_>) -> S3Result<BucketInfo> {
    if let Some(b) = &ctx.identity.bucket
        && b.name == ctx.bucket
    {
        return Ok(b.clone());
    }
    ctx.gw
        .om
        .info_bucket(&ctx.volume(), &ctx.bucket)
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))
}

fn grant(grantee: &str, permission: &str) -> xml::Grant {
    let grantee = match grantee {
        ALL_USERS | AUTHENTICATED_USERS => xml::Grantee {
            xmlns_xsi: Some(XSI),
            xsi_type: Some("Group"),
            uri: Some(
                if grantee == ALL_USERS {
                    ALL_USERS_URI
                } else {
                    AUTHENTICATED_URI
                }
                .to_string(),
            ),
            ..xml::Grantee::default()
        },
        user => xml::Grantee {
            xmlns_xsi: Some(XSI),
            xsi_type: Some("CanonicalUser"),
            id: Some(user.to_string()),
            display_name: Some(user.to_string()),
            ..xml::Grantee::default()
        },
    };
    xml::Grant {
        grantee,
        permission: permission.to_string(),
    }
}

fn policy_xml(owner: &str, grants: &[BucketGrant]) -> String {
    let policy = AccessControlPolicy {
        xmlns: (),
        owner: Some(xml::Owner::user(owner)),
        acl: Some(xml::AccessControlList {
            grants: std::iter::once(grant(owner, "FULL_CONTROL"))
                .chain(grants.iter().map(|g| grant(&g.grantee, &g.permission)))
                .collect(),
        }),
    };
    xml::to_xml("AccessControlPolicy", &policy)
}

pub async fn get_bucket_acl(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let b = bucket_info(ctx).await?;
    Ok(xml_ok(policy_xml(&b.owner, &b.acl)))
}

pub async fn get_object_acl(ctx: &Ctx<'_>) -> S3Result<HttpResponse> {
    let info = ctx.lookup_key().await?;
    Ok(xml_ok(policy_xml(&info.owner, &[])))
}

pub async fn put_bucket_acl(ctx: &Ctx<'_>, payload: web::Payload) -> S3Result<HttpResponse> {
    let b = bucket_info(ctx).await?;
    let body = ctx.read_small(payload, 64 * 1024).await?;
    let mut grants: Vec<(String, String)> = Vec::new();
    let mut from_headers = false;
    if let Some(acl) = ctx.header("x-amz-acl") {
        from_headers = true;
        grants.extend(canned(acl)?.into_iter().map(|(g, p)| (g, p.to_string())));
    }
    for (header, perm) in [
        ("x-amz-grant-read", "READ"),
        ("x-amz-grant-write", "WRITE"),
        ("x-amz-grant-read-acp", "READ_ACP"),
        ("x-amz-grant-write-acp", "WRITE_ACP"),
        ("x-amz-grant-full-control", "FULL_CONTROL"),
    ] {
        if let Some(v) = ctx.header(header) {
            from_headers = true;
            grants.extend(
                header_grants(v, perm)?
                    .into_iter()
                    .map(|(g, p)| (g, p.to_string())),
            );
        }
    }
    let has_body = !body.iter().all(u8::is_ascii_whitespace);
    if from_headers && has_body {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidRequest,
            "Specify either an ACL body or x-amz-acl / x-amz-grant-* headers, not both",
        ));
    }
    if has_body {
        let policy: AccessControlPolicy = ctx.parse_xml(&body)?;
        for g in policy.acl.map(|a| a.grants).unwrap_or_default() {
            let grantee = match (g.grantee.id, g.grantee.uri, g.grantee.email) {
                (Some(id), _, _) if !id.trim().is_empty() => id.trim().to_string(),
                (_, Some(uri), _) => grantee_from_uri(&uri)?,
                (_, _, Some(_)) => {
                    return Err(S3Error::msg(
                        S3ErrorCode::NotImplemented,
                        "grants by e-mail address are not supported",
                    ));
                }
                _ => return Err(S3Error::new(S3ErrorCode::MalformedXML)),
            };
            grants.push((grantee, g.permission.trim().to_string()));
        }
    } else if !from_headers {
        return Err(S3Error::msg(
            S3ErrorCode::InvalidRequest,
            "PutBucketAcl needs x-amz-acl, x-amz-grant-* headers or an AccessControlPolicy body",
        ));
    }
    let mut out: Vec<BucketGrant> = Vec::new();
    for (grantee, permission) in grants {
        if !PERMISSIONS.contains(&permission.as_str()) {
            return Err(S3Error::new(S3ErrorCode::MalformedXML));
        }
        // The owner always has FULL_CONTROL.
        if grantee == b.owner {
            continue;
        }
        let g = BucketGrant {
            grantee,
            permission,
        };
        if !out.contains(&g) {
            out.push(g);
        }
    }
    ctx.gw
        .om
        .set_bucket_acl(SetBucketAclRequest {
            volume: ctx.volume(),
            bucket: ctx.bucket.clone(),
            grants: out,
        })
        .await
        .map_err(|e| S3Error::from_om(e, &ctx.resource()))?;
    Ok(HttpResponse::Ok().finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::xml::XmlWriter;

    #[test]
    fn canned_and_header_grants() {
        assert!(canned("private").unwrap().is_empty());
        assert_eq!(
            canned("public-read").unwrap(),
            vec![("*".to_string(), "READ")]
        );
        assert!(canned("nope").is_err());
        assert_eq!(
            header_grants(
                "id=\"bob\", uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
                "READ"
            )
            .unwrap(),
            vec![("bob".to_string(), "READ"), ("*".to_string(), "READ")]
        );
        assert!(header_grants("bob", "READ").is_err());
    }

    // The hand-written writer this module used before its typed shapes.
    fn old_write_grant(w: &mut XmlWriter, grantee: &str, permission: &str) {
        w.open("Grant");
        match grantee {
            ALL_USERS | AUTHENTICATED_USERS => {
                w.open(&format!("Grantee xmlns:xsi=\"{XSI}\" xsi:type=\"Group\""));
                let uri = if grantee == ALL_USERS {
                    ALL_USERS_URI
                } else {
                    AUTHENTICATED_URI
                };
                w.elem("URI", uri);
            }
            user => {
                w.open(&format!(
                    "Grantee xmlns:xsi=\"{XSI}\" xsi:type=\"CanonicalUser\""
                ));
                w.elem("ID", user);
                w.elem("DisplayName", user);
            }
        }
        w.close("Grantee");
        w.elem("Permission", permission);
        w.close("Grant");
    }

    fn old_policy_xml(owner: &str, grants: &[BucketGrant]) -> String {
        let mut w = XmlWriter::new();
        w.root("AccessControlPolicy");
        w.open("Owner");
        w.elem("ID", owner);
        w.elem("DisplayName", owner);
        w.close("Owner");
        w.open("AccessControlList");
        old_write_grant(&mut w, owner, "FULL_CONTROL");
        for g in grants {
            old_write_grant(&mut w, &g.grantee, &g.permission);
        }
        w.close("AccessControlList");
        w.close("AccessControlPolicy");
        w.finish()
    }

    #[test]
    fn policy_output_is_unchanged() {
        let grants = [
            BucketGrant {
                grantee: "bob & co".into(),
                permission: "READ".into(),
            },
            BucketGrant {
                grantee: ALL_USERS.into(),
                permission: "READ".into(),
            },
            BucketGrant {
                grantee: AUTHENTICATED_USERS.into(),
                permission: "WRITE".into(),
            },
        ];
        assert_eq!(
            policy_xml("alice", &grants),
            old_policy_xml("alice", &grants)
        );
        assert_eq!(policy_xml("alice", &[]), old_policy_xml("alice", &[]));
        // And the answer parses back as a request body.
        let p: AccessControlPolicy = xml::parse(policy_xml("alice", &grants).as_bytes()).unwrap();
        assert_eq!(p.acl.unwrap().grants.len(), 4);
    }

    #[test]
    fn parses_policy() {
        let body = br#"<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>alice</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>bob</ID></Grantee><Permission>READ</Permission></Grant><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"#;
        let p: AccessControlPolicy = xml::parse(body).unwrap();
        let grants = p.acl.unwrap().grants;
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].grantee.id.as_deref(), Some("bob"));
        assert_eq!(grants[1].grantee.uri.as_deref(), Some(ALL_USERS_URI));
    }
}
