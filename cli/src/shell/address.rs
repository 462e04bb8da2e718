//! Ozone shell addresses: `[o3://om-host[:port]/]volume[/bucket[/key]]`, as Ozone's
//! `OzoneAddress`. The host may be an OM service id (`ozone.om.service.ids`), which names every
//! OM of the service; without a host the configuration's OMs are used.

use ozone_common::OzoneConfig;
use ozone_common::config::keys;

/// Ozone's default OM RPC port.
pub const DEFAULT_OM_PORT: u16 = 9862;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `host[:port]` after `o3://`, if given.
    pub authority: Option<String>,
    pub volume: String,
    pub bucket: String,
    pub key: String,
}

impl Address {
    /// Parses an address; the key keeps its slashes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (authority, path) = if let Some(rest) = text.strip_prefix("o3://") {
            match rest.split_once('/') {
                Some((auth, path)) => (Some(auth.to_string()), path),
                None => (Some(rest.to_string()), ""),
            }
        } else if text.contains("://") {
            return Err(format!(
                "invalid address {text}: only o3:// addresses are supported"
            ));
        } else {
            (None, text)
        };
        let authority = authority.filter(|a| !a.is_empty());
        let path = path.trim_start_matches('/');
        let mut parts = path.splitn(3, '/');
        let volume = parts.next().unwrap_or_default().to_string();
        let bucket = parts.next().unwrap_or_default().to_string();
        let key = parts.next().unwrap_or_default().to_string();
        Ok(Address {
            authority,
            volume,
            bucket,
            key,
        })
    }

    /// Requires exactly a volume (`/vol`).
    pub fn volume_only(text: &str) -> Result<Self, String> {
        let a = Self::parse(text)?;
        if a.volume.is_empty() || !a.bucket.is_empty() {
            return Err(format!("invalid volume address {text}: expected /volume"));
        }
        Ok(a)
    }

    /// Requires exactly a volume and a bucket (`/vol/bucket`).
    pub fn bucket_only(text: &str) -> Result<Self, String> {
        let a = Self::parse(text)?;
        if a.volume.is_empty() || a.bucket.trim_end_matches('/').is_empty() || !a.key.is_empty() {
            return Err(format!(
                "invalid bucket address {text}: expected /volume/bucket"
            ));
        }
        let mut a = a;
        a.bucket = a.bucket.trim_end_matches('/').to_string();
        Ok(a)
    }

    /// Requires a volume, a bucket and a key (`/vol/bucket/key`).
    pub fn key(text: &str) -> Result<Self, String> {
        let a = Self::parse(text)?;
        if a.volume.is_empty() || a.bucket.is_empty() || a.key.is_empty() {
            return Err(format!(
                "invalid key address {text}: expected /volume/bucket/key"
            ));
        }
        Ok(a)
    }

    /// The OM addresses to call: the authority (a service id of the configuration, or
    /// `host[:port]`), else the configuration's OMs.
    pub fn om_addresses(&self, cfg: &OzoneConfig) -> Vec<String> {
        let Some(auth) = &self.authority else {
            return cfg.om_addresses();
        };
        let is_service = cfg
            .get_opt(keys::OZONE_OM_SERVICE_IDS)
            .is_some_and(|ids| ids.split(',').any(|id| id.trim() == auth));
        if is_service {
            return cfg.om_addresses();
        }
        if auth.contains(':') {
            vec![auth.clone()]
        } else {
            vec![format!("{auth}:{DEFAULT_OM_PORT}")]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_ozone_accepts() {
        let a = Address::parse("o3://om1:9862/vol1/b1/dir/k.txt").expect("valid");
        assert_eq!(a.authority.as_deref(), Some("om1:9862"));
        assert_eq!(
            (a.volume.as_str(), a.bucket.as_str(), a.key.as_str()),
            ("vol1", "b1", "dir/k.txt")
        );
        let a = Address::parse("/vol1/b1").expect("valid");
        assert_eq!(a.authority, None);
        assert_eq!((a.volume.as_str(), a.bucket.as_str()), ("vol1", "b1"));
        let a = Address::parse("vol1").expect("valid");
        assert_eq!(a.volume, "vol1");
        assert!(Address::parse("s3://x/y").is_err());
        assert!(Address::key("/vol1/b1").is_err());
        assert!(Address::bucket_only("/vol1").is_err());
        assert!(Address::volume_only("/vol1/b").is_err());
        let cfg = OzoneConfig::default();
        assert_eq!(
            Address::parse("o3://omhost/v")
                .expect("valid")
                .om_addresses(&cfg),
            vec!["omhost:9862".to_string()]
        );
        // A service id names every OM of the service.
        let mut ha = OzoneConfig::default();
        ha.set(keys::OZONE_OM_SERVICE_IDS, "omservice").set(
            keys::OZONE_OM_NODES_SERVICEID.with([&"omservice"]),
            "om1,om2,om3",
        );
        for n in 1..=3 {
            ha.set(
                keys::OZONE_OM_ADDRESS_SERVICEID_NODEID.with([&"omservice", &format!("om{n}")]),
                format!("h{n}:986{n}"),
            );
        }
        let all = vec!["h1:9861", "h2:9862", "h3:9863"];
        let a = Address::parse("o3://omservice/vol/b/k").expect("valid");
        assert_eq!(a.om_addresses(&ha), all);
        let a = Address::parse("/vol/b/k").expect("valid");
        assert_eq!(a.om_addresses(&ha), all);
    }
}
