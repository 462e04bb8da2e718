//! S3 errors: one table of code, HTTP status and default message, rendered once as S3 XML.
//!
//! Lower-layer errors become `InternalError` (or `ServiceUnavailable`) unless a handler maps
//! them on purpose; [`S3Error::from_om`] is that mapping for OM statuses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use om_client::OmClientError;
use ozone_proto::om::OmStatus;

use crate::xml::{self, ErrorResponse, XmlError};

macro_rules! s3_codes {
    ($($name:ident = $status:literal, $msg:literal;)*) => {
        /// Every S3 error code the gateway answers with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum S3ErrorCode { $($name),* }

        impl S3ErrorCode {
            /// The code as it appears in `<Code>`.
            pub fn as_str(self) -> &'static str {
                match self { $(S3ErrorCode::$name => stringify!($name)),* }
            }
            pub fn status(self) -> StatusCode {
                match self {
                    $(S3ErrorCode::$name => StatusCode::from_u16($status).expect("table status is valid")),*
                }
            }
            pub fn default_message(self) -> &'static str {
                match self { $(S3ErrorCode::$name => $msg),* }
            }
        }
    };
}

s3_codes! {
    AccessDenied = 403, "Access Denied";
    AuthorizationHeaderMalformed = 400, "The authorization header is malformed.";
    AuthorizationQueryParametersError = 400, "Error parsing the X-Amz-Credential parameter or the presigned URL's query parameters.";
    BadDigest = 400, "The Content-MD5 or checksum you specified did not match what we received.";
    BucketAlreadyExists = 409, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.";
    BucketAlreadyOwnedByYou = 409, "Your previous request to create the named bucket succeeded and you already own it.";
    BucketNotEmpty = 409, "The bucket you tried to delete is not empty";
    ConditionalRequestConflict = 409, "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part.";
    EntityTooSmall = 400, "Your proposed upload is smaller than the minimum allowed object size.";
    EntityTooLarge = 400, "Your proposed upload exceeds the maximum allowed object size.";
    IncompleteBody = 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    InternalError = 500, "We encountered an internal error. Please try again.";
    InvalidAccessKeyId = 403, "The AWS access key Id you provided does not exist in our records.";
    InvalidArgument = 400, "Invalid Argument";
    InvalidBucketName = 400, "The specified bucket is not valid.";
    InvalidDigest = 400, "The Content-MD5 you specified is not valid.";
    InvalidPart = 400, "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";
    InvalidPartNumber = 416, "The requested partnumber is not satisfiable";
    InvalidPartOrder = 400, "The list of parts was not in ascending order. Parts must be ordered by part number.";
    InvalidRange = 416, "The requested range is not satisfiable";
    InvalidRequest = 400, "Invalid Request";
    InvalidTag = 400, "The tag provided was not a valid tag.";
    InvalidURI = 400, "Couldn't parse the specified URI.";
    KeyTooLongError = 400, "Your key is too long";
    MalformedXML = 400, "The XML you provided was not well-formed or did not validate against our published schema.";
    MetadataTooLarge = 400, "Your metadata headers exceed the maximum allowed metadata size.";
    MethodNotAllowed = 405, "The specified method is not allowed against this resource.";
    MissingContentLength = 411, "You must provide the Content-Length HTTP header.";
    NoSuchBucket = 404, "The specified bucket does not exist";
    NoSuchKey = 404, "The specified key does not exist.";
    NoSuchTagSet = 404, "The TagSet does not exist";
    NoSuchUpload = 404, "The specified multipart upload does not exist. The upload ID might not be valid, or the multipart upload might have been aborted or completed.";
    NotImplemented = 501, "A header or query you provided implies functionality that is not implemented.";
    PreconditionFailed = 412, "At least one of the preconditions you specified did not hold.";
    RequestTimeTooSkewed = 403, "The difference between the request time and the server's time is too large.";
    ServiceUnavailable = 503, "Please reduce your request rate.";
    SignatureDoesNotMatch = 403, "The request signature we calculated does not match the signature you provided.";
    XAmzContentSHA256Mismatch = 400, "The provided 'x-amz-content-sha256' header does not match what was computed.";
}

/// An S3 error answer.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct S3Error {
    pub code: S3ErrorCode,
    pub message: String,
    /// The bucket or object the error is about, for `<Resource>`.
    pub resource: Option<String>,
    /// Set by the request wrapper so the body carries the same id as the header.
    pub request_id: Option<String>,
    /// HEAD responses carry no body.
    pub no_body: bool,
    /// Extra headers (e.g. `Content-Range` on InvalidRange).
    pub headers: Vec<(&'static str, String)>,
    /// What went wrong inside, for the log (InternalError); never sent to the client.
    pub detail: Option<Box<str>>,
}

pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    pub fn new(code: S3ErrorCode) -> Self {
        S3Error {
            code,
            message: code.default_message().to_string(),
            resource: None,
            request_id: None,
            no_body: false,
            headers: Vec::new(),
            detail: None,
        }
    }

    pub fn msg(code: S3ErrorCode, message: impl Into<String>) -> Self {
        let mut e = Self::new(code);
        e.message = message.into();
        e
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// An InternalError; `err` is logged once, with the request id, where the error becomes
    /// the response.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let mut e = Self::new(S3ErrorCode::InternalError);
        e.detail = Some(err.to_string().into());
        e
    }

    /// Maps an OM error; `resource` names the bucket or key the call was about.
    pub fn from_om(err: OmClientError, resource: &str) -> Self {
        let code = match S3ErrorCode::from_om_status(err.status()) {
            Some(code) => code,
            None if err.is_unavailable() => S3ErrorCode::ServiceUnavailable,
            None => return S3Error::internal(err).with_resource(resource),
        };
        if code == S3ErrorCode::ServiceUnavailable {
            tracing::warn!(error = %err, "OM unavailable");
        }
        let mut e = S3Error::new(code).with_resource(resource);
        if matches!(
            code,
            S3ErrorCode::InvalidRequest | S3ErrorCode::EntityTooSmall
        ) {
            e.message = err.to_string();
        }
        e
    }
}

impl S3ErrorCode {
    /// The S3 code of an OM status; `None` for a status that is no fault of the request
    /// (an internal error, or OM unavailable).
    pub fn from_om_status(status: OmStatus) -> Option<S3ErrorCode> {
        Some(match status {
            OmStatus::BucketNotFound | OmStatus::VolumeNotFound => S3ErrorCode::NoSuchBucket,
            OmStatus::KeyNotFound => S3ErrorCode::NoSuchKey,
            OmStatus::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            OmStatus::BucketAlreadyExists => S3ErrorCode::BucketAlreadyExists,
            OmStatus::NoSuchMultipartUpload => S3ErrorCode::NoSuchUpload,
            OmStatus::InvalidPart => S3ErrorCode::InvalidPart,
            OmStatus::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            OmStatus::EntityTooSmall => S3ErrorCode::EntityTooSmall,
            OmStatus::InvalidRequest => S3ErrorCode::InvalidRequest,
            // A bucket link that leads back to itself: the request names an unusable bucket.
            // (Ozone's gateway lets the OMException through as a 500; this is not a server fault.)
            OmStatus::DetectedLoopInBucketLinks => S3ErrorCode::InvalidRequest,
            OmStatus::PermissionDenied => S3ErrorCode::AccessDenied,
            // OM checks a conditional write again when it commits; the gateway checked it before
            // the upload (412 there), so failing now means a concurrent write got there first.
            OmStatus::PreconditionFailed => S3ErrorCode::ConditionalRequestConflict,
            OmStatus::InvalidAccessKey => S3ErrorCode::InvalidAccessKeyId,
            OmStatus::SignatureMismatch => S3ErrorCode::SignatureDoesNotMatch,
            OmStatus::NotLeader | OmStatus::ScmUnavailable | OmStatus::OmUnavailable => {
                S3ErrorCode::ServiceUnavailable
            }
            OmStatus::Ok
            | OmStatus::InternalError
            | OmStatus::VolumeAlreadyExists
            | OmStatus::VolumeNotEmpty => return None,
        })
    }
}

impl From<XmlError> for S3Error {
    fn from(_: XmlError) -> Self {
        S3Error::new(S3ErrorCode::MalformedXML)
    }
}

impl From<std::io::Error> for S3Error {
    fn from(e: std::io::Error) -> Self {
        S3Error::internal(e)
    }
}

impl ResponseError for S3Error {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.code.status());
        for (k, v) in &self.headers {
            resp.insert_header((*k, v.as_str()));
        }
        if self.no_body {
            return resp.finish();
        }
        let body = xml::to_xml(
            "Error",
            &ErrorResponse {
                code: self.code.as_str(),
                message: &self.message,
                resource: self.resource.as_deref(),
                request_id: self.request_id.as_deref(),
            },
        );
        resp.content_type("application/xml").body(body)
    }
}
