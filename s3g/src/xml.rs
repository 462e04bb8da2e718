//! S3 XML: request bodies parsed and responses written with quick-xml's serde support, as typed
//! structs. Knows nothing of S3 errors: a body that does not parse is an [`XmlError`], which
//! the error module answers as MalformedXML.

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

/// `<Owner>` of listings and ACLs: the user's name as both id and display name. As a request
/// body may carry it (in an `AccessControlPolicy`), either part may be missing.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Owner {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "DisplayName", default)]
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
    /// Where the next page starts, when the listing is truncated (`max-buckets`).
    #[serde(rename = "ContinuationToken", skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(rename = "Prefix", skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
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

/// `<Tagging>`: the body of PutObjectTagging / PutBucketTagging and the answer of the Gets.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tagging {
    #[serde(rename = "@xmlns", serialize_with = "ns", skip_deserializing)]
    pub xmlns: (),
    #[serde(rename = "TagSet")]
    pub tag_set: TagSet,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TagSet {
    #[serde(rename = "Tag", default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

/// `<ListBucketResult>` of ListObjects (v1: `Marker`/`NextMarker`) and ListObjectsV2
/// (`ContinuationToken`, `StartAfter`, `KeyCount`, `NextContinuationToken`). Keys and prefixes
/// are already url-encoded when `encoding-type=url` was asked.
#[derive(Debug, Serialize)]
pub struct ListBucketResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "ContinuationToken", skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(rename = "StartAfter", skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    #[serde(rename = "KeyCount", skip_serializing_if = "Option::is_none")]
    pub key_count: Option<usize>,
    #[serde(rename = "Marker", skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    #[serde(rename = "MaxKeys")]
    pub max_keys: u32,
    #[serde(rename = "Delimiter", skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(rename = "EncodingType", skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<&'static str>,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(
        rename = "NextContinuationToken",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_continuation_token: Option<String>,
    #[serde(rename = "NextMarker", skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(rename = "Contents")]
    pub contents: Vec<ObjectEntry>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefix>,
}

#[derive(Debug, Serialize)]
pub struct ObjectEntry {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "Owner", skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
}

#[derive(Debug, Serialize)]
pub struct CommonPrefix {
    #[serde(rename = "Prefix")]
    pub prefix: String,
}

/// `<InitiateMultipartUploadResult>` of CreateMultipartUpload.
#[derive(Debug, Serialize)]
pub struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
}

/// `<CompleteMultipartUploadResult>`.
#[derive(Debug, Serialize)]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "Location")]
    pub location: String,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// `<CopyObjectResult>` of CopyObject and `<CopyPartResult>` of UploadPartCopy.
#[derive(Debug, Serialize)]
pub struct CopyResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
}

/// `<ListPartsResult>` of ListParts.
#[derive(Debug, Serialize)]
pub struct ListPartsResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
    #[serde(rename = "Initiator")]
    pub initiator: Owner,
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
    #[serde(rename = "PartNumberMarker")]
    pub part_number_marker: u32,
    #[serde(rename = "NextPartNumberMarker")]
    pub next_part_number_marker: u32,
    #[serde(rename = "MaxParts")]
    pub max_parts: u32,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Part")]
    pub parts: Vec<PartEntry>,
}

#[derive(Debug, Serialize)]
pub struct PartEntry {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// `<ListMultipartUploadsResult>` of ListMultipartUploads.
#[derive(Debug, Serialize)]
pub struct ListMultipartUploadsResult {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "KeyMarker")]
    pub key_marker: String,
    #[serde(rename = "UploadIdMarker")]
    pub upload_id_marker: String,
    #[serde(rename = "NextKeyMarker", skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker", skip_serializing_if = "Option::is_none")]
    pub next_upload_id_marker: Option<String>,
    #[serde(rename = "Delimiter", skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "MaxUploads")]
    pub max_uploads: u32,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "EncodingType", skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<&'static str>,
    #[serde(rename = "Upload")]
    pub uploads: Vec<UploadEntry>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<CommonPrefix>,
}

#[derive(Debug, Serialize)]
pub struct UploadEntry {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
    #[serde(rename = "Initiator")]
    pub initiator: Owner,
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "StorageClass")]
    pub storage_class: &'static str,
    #[serde(rename = "Initiated")]
    pub initiated: String,
}

/// `<GetObjectAttributesResponse>`: only the attributes asked for.
#[derive(Debug, Default, Serialize)]
pub struct GetObjectAttributesResponse {
    #[serde(rename = "@xmlns", serialize_with = "ns")]
    pub xmlns: (),
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(rename = "Checksum", skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksums>,
    #[serde(rename = "ObjectParts", skip_serializing_if = "Option::is_none")]
    pub object_parts: Option<ObjectParts>,
    #[serde(rename = "StorageClass", skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<&'static str>,
    #[serde(rename = "ObjectSize", skip_serializing_if = "Option::is_none")]
    pub object_size: Option<u64>,
}

/// The stored full-object checksums, in [`crate::checksum::ChecksumAlgo::ALL`] order.
#[derive(Debug, Default, Serialize)]
pub struct Checksums {
    #[serde(rename = "ChecksumCRC32", skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C", skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME", skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1", skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256", skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ObjectParts {
    #[serde(rename = "PartsCount")]
    pub parts_count: u32,
    #[serde(rename = "PartNumberMarker")]
    pub part_number_marker: u32,
    #[serde(rename = "NextPartNumberMarker")]
    pub next_part_number_marker: u32,
    #[serde(rename = "MaxParts")]
    pub max_parts: u32,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Part")]
    pub parts: Vec<ObjectPart>,
}

#[derive(Debug, Serialize)]
pub struct ObjectPart {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// `<AccessControlPolicy>`: the body of PutBucketAcl and the answer of GetBucketAcl /
/// GetObjectAcl, one shape both ways.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AccessControlPolicy {
    #[serde(rename = "@xmlns", serialize_with = "ns", skip_deserializing)]
    pub xmlns: (),
    #[serde(rename = "Owner", default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(rename = "AccessControlList", default)]
    pub acl: Option<AccessControlList>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AccessControlList {
    #[serde(rename = "Grant", default)]
    pub grants: Vec<Grant>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "Grantee")]
    pub grantee: Grantee,
    #[serde(rename = "Permission")]
    pub permission: String,
}

/// A grantee: a user (`ID`, `xsi:type="CanonicalUser"`) or a group (`URI`, `xsi:type="Group"`).
/// The `xsi` attributes are written, not read.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Grantee {
    #[serde(
        rename = "@xmlns:xsi",
        default,
        skip_deserializing,
        skip_serializing_if = "Option::is_none"
    )]
    pub xmlns_xsi: Option<&'static str>,
    #[serde(
        rename = "@xsi:type",
        default,
        skip_deserializing,
        skip_serializing_if = "Option::is_none"
    )]
    pub xsi_type: Option<&'static str>,
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        rename = "DisplayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    #[serde(rename = "URI", default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(
        rename = "EmailAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
}

/// Parses a request body; anything that is not the expected document is an [`XmlError`].
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError(e.to_string()))?;
    quick_xml::de::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "malformed request XML");
        XmlError(e.to_string())
    })
}

/// The hand-written writer the responses used before their typed shapes: kept for tests, which
/// check that each typed response is written exactly as it was.
#[cfg(test)]
pub struct XmlWriter {
    out: String,
}

#[cfg(test)]
impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter {
            out: String::from(DECLARATION),
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

#[cfg(test)]
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
                continuation_token: None,
                prefix: None,
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
                continuation_token: None,
                prefix: None,
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("LocationConstraint");
        w.close("LocationConstraint");
        assert_eq!(to_xml("LocationConstraint", &Empty::default()), w.finish());
    }

    #[test]
    fn listings_match_the_writer() {
        let entry = |owner: bool| ObjectEntry {
            key: "a%2Fb".into(),
            last_modified: "2024-01-01T00:00:00.000Z".into(),
            etag: "\"e\"".into(),
            size: 5,
            owner: owner.then(|| Owner::user("u")),
            storage_class: "STANDARD",
        };
        let mut w = XmlWriter::new();
        w.root("ListBucketResult");
        w.elem("Name", "b");
        w.elem("Prefix", "");
        w.elem("ContinuationToken", "t");
        w.elem("KeyCount", "2");
        w.elem("MaxKeys", "1000");
        w.elem("Delimiter", "/");
        w.elem("EncodingType", "url");
        w.elem("IsTruncated", "true");
        w.elem("NextContinuationToken", "n");
        w.open("Contents");
        w.elem("Key", "a%2Fb");
        w.elem("LastModified", "2024-01-01T00:00:00.000Z");
        w.elem("ETag", "\"e\"");
        w.elem("Size", "5");
        w.elem("StorageClass", "STANDARD");
        w.close("Contents");
        w.open("CommonPrefixes");
        w.elem("Prefix", "p/");
        w.close("CommonPrefixes");
        w.close("ListBucketResult");
        let typed = to_xml(
            "ListBucketResult",
            &ListBucketResult {
                xmlns: (),
                name: "b".into(),
                prefix: String::new(),
                continuation_token: Some("t".into()),
                start_after: None,
                key_count: Some(2),
                marker: None,
                max_keys: 1000,
                delimiter: Some("/".into()),
                encoding_type: Some("url"),
                is_truncated: true,
                next_continuation_token: Some("n".into()),
                next_marker: None,
                contents: vec![entry(false)],
                common_prefixes: vec![CommonPrefix {
                    prefix: "p/".into(),
                }],
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("ListBucketResult");
        w.elem("Name", "b");
        w.elem("Prefix", "x");
        w.elem("Marker", "");
        w.elem("MaxKeys", "0");
        w.elem("IsTruncated", "false");
        w.open("Contents");
        w.elem("Key", "a%2Fb");
        w.elem("LastModified", "2024-01-01T00:00:00.000Z");
        w.elem("ETag", "\"e\"");
        w.elem("Size", "5");
        w.open("Owner");
        w.elem("ID", "u");
        w.elem("DisplayName", "u");
        w.close("Owner");
        w.elem("StorageClass", "STANDARD");
        w.close("Contents");
        w.close("ListBucketResult");
        let typed = to_xml(
            "ListBucketResult",
            &ListBucketResult {
                xmlns: (),
                name: "b".into(),
                prefix: "x".into(),
                continuation_token: None,
                start_after: None,
                key_count: None,
                marker: Some(String::new()),
                max_keys: 0,
                delimiter: None,
                encoding_type: None,
                is_truncated: false,
                next_continuation_token: None,
                next_marker: None,
                contents: vec![entry(true)],
                common_prefixes: vec![],
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("ListPartsResult");
        w.elem("Bucket", "b");
        w.elem("Key", "k");
        w.elem("UploadId", "up");
        for tag in ["Initiator", "Owner"] {
            w.open(tag);
            w.elem("ID", "u");
            w.elem("DisplayName", "u");
            w.close(tag);
        }
        w.elem("StorageClass", "STANDARD");
        w.elem("PartNumberMarker", "0");
        w.elem("NextPartNumberMarker", "1");
        w.elem("MaxParts", "1000");
        w.elem("IsTruncated", "false");
        w.open("Part");
        w.elem("PartNumber", "1");
        w.elem("LastModified", "t");
        w.elem("ETag", "\"e\"");
        w.elem("Size", "7");
        w.close("Part");
        w.close("ListPartsResult");
        let typed = to_xml(
            "ListPartsResult",
            &ListPartsResult {
                xmlns: (),
                bucket: "b".into(),
                key: "k".into(),
                upload_id: "up".into(),
                initiator: Owner::user("u"),
                owner: Owner::user("u"),
                storage_class: "STANDARD",
                part_number_marker: 0,
                next_part_number_marker: 1,
                max_parts: 1000,
                is_truncated: false,
                parts: vec![PartEntry {
                    part_number: 1,
                    last_modified: "t".into(),
                    etag: "\"e\"".into(),
                    size: 7,
                }],
            },
        );
        assert_eq!(typed, w.finish());

        let mut w = XmlWriter::new();
        w.root("Tagging");
        w.open("TagSet");
        w.open("Tag");
        w.elem("Key", "k");
        w.elem("Value", "");
        w.close("Tag");
        w.close("TagSet");
        w.close("Tagging");
        let typed = to_xml(
            "Tagging",
            &Tagging {
                xmlns: (),
                tag_set: TagSet {
                    tags: vec![Tag {
                        key: "k".into(),
                        value: String::new(),
                    }],
                },
            },
        );
        assert_eq!(typed, w.finish());
        let mut w = XmlWriter::new();
        w.root("Tagging");
        w.open("TagSet");
        w.close("TagSet");
        w.close("Tagging");
        assert_eq!(to_xml("Tagging", &Tagging::default()), w.finish());

        let mut w = XmlWriter::new();
        w.root("GetObjectAttributesResponse");
        w.elem("ETag", "e");
        w.open("Checksum");
        w.elem("ChecksumCRC32", "c");
        w.close("Checksum");
        w.open("ObjectParts");
        w.elem("PartsCount", "2");
        w.elem("PartNumberMarker", "0");
        w.elem("NextPartNumberMarker", "1");
        w.elem("MaxParts", "1");
        w.elem("IsTruncated", "true");
        w.open("Part");
        w.elem("PartNumber", "1");
        w.elem("Size", "5");
        w.close("Part");
        w.close("ObjectParts");
        w.elem("StorageClass", "STANDARD");
        w.elem("ObjectSize", "9");
        w.close("GetObjectAttributesResponse");
        let typed = to_xml(
            "GetObjectAttributesResponse",
            &GetObjectAttributesResponse {
                xmlns: (),
                etag: Some("e".into()),
                checksum: Some(Checksums {
                    crc32: Some("c".into()),
                    ..Checksums::default()
                }),
                object_parts: Some(ObjectParts {
                    parts_count: 2,
                    part_number_marker: 0,
                    next_part_number_marker: 1,
                    max_parts: 1,
                    is_truncated: true,
                    parts: vec![ObjectPart {
                        part_number: 1,
                        size: 5,
                    }],
                }),
                storage_class: Some("STANDARD"),
                object_size: Some(9),
            },
        );
        assert_eq!(typed, w.finish());
    }

    #[test]
    fn escapes_text() {
        let mut w = XmlWriter::new();
        w.elem("Key", "a<b>&\u{1}");
        assert!(w.finish().ends_with("<Key>a&lt;b&gt;&amp;&#x1;</Key>"));
    }
}
