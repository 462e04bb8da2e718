//! S3 XML: a small writer for responses and serde-parsed request bodies.

use serde::Deserialize;

use crate::error::{S3Error, S3ErrorCode, S3Result};

pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds an XML document element by element, escaping text.
pub struct XmlWriter {
    out: String,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        }
    }

    /// Opens the root element with the S3 namespace.
    pub fn root(&mut self, name: &str) {
        self.out.push_str(&format!("<{name} xmlns=\"{S3_NS}\">"));
    }

    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    pub fn elem(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry are written as references S3 clients accept.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {
                out.push_str(&format!("&#x{:X};", c as u32))
            }
            c => out.push(c),
        }
    }
}

/// `<Delete>` body of DeleteObjects.
#[derive(Debug, Deserialize)]
pub struct Delete {
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteObject>,
    #[serde(rename = "Quiet", default)]
    pub quiet: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct DeleteObject {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId", default)]
    pub version_id: Option<String>,
}

/// `<CompleteMultipartUpload>` body.
#[derive(Debug, Deserialize)]
pub struct CompleteMultipartUpload {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletePart>,
}

#[derive(Debug, Deserialize)]
pub struct CompletePart {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// `<CreateBucketConfiguration>` body (the location constraint is accepted and ignored).
#[derive(Debug, Deserialize)]
pub struct CreateBucketConfiguration {
    #[serde(rename = "LocationConstraint", default)]
    pub location_constraint: Option<String>,
}

/// `<Tagging>` body of PutObjectTagging / PutBucketTagging.
#[derive(Debug, Deserialize)]
pub struct Tagging {
    #[serde(rename = "TagSet")]
    pub tag_set: TagSet,
}

#[derive(Debug, Deserialize)]
pub struct TagSet {
    #[serde(rename = "Tag", default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

/// Parses a request body; anything that is not the expected document is MalformedXML.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> S3Result<T> {
    let text = std::str::from_utf8(body).map_err(|_| S3Error::new(S3ErrorCode::MalformedXML))?;
    quick_xml::de::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "malformed request XML");
        S3Error::new(S3ErrorCode::MalformedXML)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_delete_and_rejects_garbage() {
        let d: Delete = parse(
            br#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key></Object><Quiet>true</Quiet></Delete>"#,
        )
        .unwrap();
        assert_eq!(d.objects.len(), 2);
        assert_eq!(d.objects[0].key, "a&b");
        assert_eq!(d.quiet, Some(true));
        assert!(parse::<Delete>(b"<Delete><Object><Key>x</Key>").is_err());
        assert!(parse::<Delete>(b"not xml at all").is_err());
        let c: CompleteMultipartUpload = parse(
            b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"abc\"</ETag></Part></CompleteMultipartUpload>",
        )
        .unwrap();
        assert_eq!(c.parts[0].part_number, 1);
    }

    #[test]
    fn escapes_text() {
        let mut w = XmlWriter::new();
        w.elem("Key", "a<b>&\u{1}");
        assert!(w.finish().ends_with("<Key>a&lt;b&gt;&amp;&#x1;</Key>"));
    }
}
