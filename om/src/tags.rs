//! S3 tags of keys and buckets: the limits OM enforces (the gateway checks them first and
//! answers InvalidTag; these guard every other client).

use std::collections::{BTreeMap, HashMap};

use crate::error::OmError;

/// Most tags of one key (S3's limit).
pub const MAX_KEY_TAGS: usize = 10;
/// Most tags of one bucket (S3's limit).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters.
pub const MAX_TAG_KEY: usize = 128;
/// Longest tag value, in Unicode characters.
pub const MAX_TAG_VALUE: usize = 256;

/// The tags of a request, checked against the limits, as stored.
pub fn check_tags(
    tags: HashMap<String, String>,
    max: usize,
) -> Result<BTreeMap<String, String>, OmError> {
    if tags.len() > max {
        return Err(OmError::invalid(format!(
            "{} tags; at most {max} are allowed",
            tags.len()
        )));
    }
    for (k, v) in &tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(OmError::invalid(format!(
                "tag key {k:?} must be 1 to {MAX_TAG_KEY} characters"
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(OmError::invalid(format!(
                "the value of tag {k:?} is longer than {MAX_TAG_VALUE} characters"
            )));
        }
    }
    Ok(tags.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let tags = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert_eq!(
            check_tags(tags(10), MAX_KEY_TAGS).map(|t| t.len()).ok(),
            Some(10)
        );
        assert!(check_tags(tags(11), MAX_KEY_TAGS).is_err());
        assert!(check_tags(tags(50), MAX_BUCKET_TAGS).is_ok());
        let one = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(check_tags(one(&"k".repeat(128), &"v".repeat(256)), 10).is_ok());
        assert!(check_tags(one(&"k".repeat(129), "v"), 10).is_err());
        assert!(check_tags(one("k", &"v".repeat(257)), 10).is_err());
        assert!(check_tags(one("", "v"), 10).is_err());
    }
}
