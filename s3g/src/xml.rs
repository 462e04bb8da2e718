//! S3 XML: request bodies parsed and responses written with quick-xml's serde support, as typed
//! structs. Knows nothing of S3 errors: a body that does not parse is an [`XmlError`], which
//! [`crate::error`] answers as MalformedXML.

use serde::{Deserialize, Serialize};

pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// A request body that is not the expected document.
#[derive(Debug, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(String);

/// Writes `value` as the document `<root>`, after the XML declaration, escaping text as S3 does
/// (all five XML entities; control characters XML 1.0 cannot carry as character references).
pub fn to_xml<T: Serialize>(root: &str, value: &T) -> String {
    let mut out = String::from(DECLARATION);
    let mut ser = quick_xml::se::Serializer::with_root(&mut out, Some(root))
        .expect("response roots are valid XML names");
    ser.set_quote_level(quick_xml::se::QuoteLevel::Full);
    ser.expand_empty_elements(true);
    value
        .serialize(ser)
        .expect("response shapes are plain structs of strings and numbers");
    if !out.chars().any(is_control) {
        return out;
    }
    let mut escaped = String::with_capacity(out.len() + 16);
    for c in out.chars() {
        if is_control(c) {
            escaped.push_str(&format!("&#x{:X};", c as u32));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

fn is_control(c: char) -> bool {
    (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r'
}

/// The S3 namespace, as the `xmlns` attribute of a response root.
fn s3_ns() -> &'static str {
    S3_NS
}

/// `<Error>`: the body of every S3 error answer (no namespace, as S3 sends it).
#[derive(Debug, Serialize)]
pub struct ErrorResponse<'a> {
    #[serde(rename = "Code")]
    pub code: &'a str,
    #[serde(rename = "Message")]
    pub message: &'a str,
    #[serde(rename = "Resource", skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    #[serde(rename = "RequestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

/// `<DeleteResult>` of DeleteObjects: the deleted keys (unless quiet), then each failed key with
/// its own error code.
#[derive(Debug, Default, Serialize)]
pub struct DeleteResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "$value")]
    pub entries: Vec<DeleteEntry>,
}

#[derive(Debug, Serialize)]
pub enum DeleteEntry {
    Deleted {
        #[serde(rename = "Key")]
        key: String,
    },
    Error {
        #[serde(rename = "Key")]
        key: String,
        #[serde(rename = "Code")]
        code: &'static str,
        #[serde(rename = "Message")]
        message: String,
    },
}

fn ns<S: serde::Serializer>(_: &(), s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(s3_ns())
}

/// `<Owner>` of listings and ACLs: the user's name as both id and display name.
#[derive(Debug, Serialize)]
pub struct Owner {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

impl Owner {
    pub fn user(name: &str) -> Self {
        Owner {
            id: name.to_string(),
            display_name: name.to_string(),
        }
    }
}

/// `<ListAllMyBucketsResult>` of ListBuckets.
#[derive(Debug, Serialize)]
pub struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "Buckets")]
    pub buckets: Buckets,
}

#[derive(Debug, Serialize)]
pub struct Buckets {
    #[serde(rename = "Bucket")]
    pub bucket: Vec<BucketEntry>,
}

#[derive(Debug, Serialize)]
pub struct BucketEntry {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "CreationDate")]
    pub creation_date: String,
}

/// An empty S3 document with only the namespace (`<LocationConstraint>` of the default region,
/// `<VersioningConfiguration>` of a bucket that never had versioning).
#[derive(Debug, Default, Serialize)]
pub struct Empty {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
}

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

/// Parses a request body; anything that is not the expected document is an [`XmlError`].
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError(e.to_string()))?;
    quick_xml::de::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "malformed request XML");
        XmlError(e.to_string())
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
    fn typed_output_matches_the_writer() {
        let mut w = XmlWriter::new();
        w.open("Error");
        w.elem("Code", "NoSuchKey");
        w.elem("Message", "it's <gone> & \"away\"\u{1}");
        w.elem("Resource", "/b/k");
        w.close("Error");
        let typed = to_xml(
            "Error",
            &ErrorResponse {
                code: "NoSuchKey",
                message: "it's <gone> & \"away\"\u{1}",
                resource: Some("/b/k"),
                request_id: None,
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("DeleteResult");
        w.open("Deleted");
        w.elem("Key", "a");
        w.close("Deleted");
        w.open("Error");
        w.elem("Key", "b");
        w.elem("Code", "AccessDenied");
        w.elem("Message", "");
        w.close("Error");
        w.close("DeleteResult");
        let typed = to_xml(
            "DeleteResult",
            &DeleteResult {
                xmlns: (),
                entries: vec![
                    DeleteEntry::Deleted { key: "a".into() },
                    DeleteEntry::Error {
                        key: "b".into(),
                        code: "AccessDenied",
                        message: String::new(),
                    },
                ],
            },
        );
        assert_eq!(typed, w.finish());
        let mut w = XmlWriter::new();
        w.root("DeleteResult");
        w.close("DeleteResult");
        assert_eq!(to_xml("DeleteResult", &DeleteResult::default()), w.finish());

        let mut w = XmlWriter::new();
        w.root("ListAllMyBucketsResult");
        w.open("Owner");
        w.elem("ID", "u");
        w.elem("DisplayName", "u");
        w.close("Owner");
        w.open("Buckets");
        w.open("Bucket");
        w.elem("Name", "b1");
        w.elem("CreationDate", "2024-01-01T00:00:00.000Z");
        w.close("Bucket");
        w.close("Buckets");
        w.close("ListAllMyBucketsResult");
        let typed = to_xml(
            "ListAllMyBucketsResult",
            &ListAllMyBucketsResult {
                xmlns: (),
                owner: Owner::user("u"),
                buckets: Buckets {
                    bucket: vec![BucketEntry {
                        name: "b1".into(),
                        creation_date: "2024-01-01T00:00:00.000Z".into(),
                    }],
                },
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("ListAllMyBucketsResult");
        w.open("Owner");
        w.elem("ID", "u");
        w.elem("DisplayName", "u");
        w.close("Owner");
        w.open("Buckets");
        w.close("Buckets");
        w.close("ListAllMyBucketsResult");
        let typed = to_xml(
            "ListAllMyBucketsResult",
            &ListAllMyBucketsResult {
                xmlns: (),
                owner: Owner::user("u"),
                buckets: Buckets { bucket: vec![] },
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("LocationConstraint");
        w.close("LocationConstraint");
        assert_eq!(to_xml("LocationConstraint", &Empty::default()), w.finish());
    }

    #[test]
    fn escapes_text() {
        let mut w = XmlWriter::new();
        w.elem("Key", "a<b>&\u{1}");
        assert!(w.finish().ends_with("<Key>a&lt;b&gt;&amp;&#x1;</Key>"));
    }
}
