//! The bucket browser: `GET /?browser=true` (the bucket list) and `GET /<bucket>?browser=true`
//! serve one static HTML page with a script (`browser.html`, embedded at build time).
//!
//! The page talks S3 to this same gateway: ListBuckets, ListObjectsV2 with `delimiter=/` (prefix
//! "folders", 100 objects a page, continuation tokens) and presigned GET URLs for downloads.
//! Its script signs every call with SigV4 using WebCrypto (`crypto.subtle`, available on
//! `http://127.0.0.1`/`localhost` and https), from an access key and secret the user enters in a
//! small form, kept in `sessionStorage`. With security off any key works and the form comes
//! pre-filled; with security on the gateway marks the page `<body data-security="on">`, and the
//! page starts with an empty form and asks for the access key and secret `ozone s3 getsecret`
//! printed before it calls anything (a 403 later, e.g. a wrong secret, asks again).

use actix_web::HttpResponse;

const PAGE: &str = include_str!("browser.html");

/// The region the page's script signs for, as the page is stored.
const PAGE_REGION: &str = "const REGION = \"us-east-1\";";

/// The browser page; `security`: the gateway checks signatures (the page then asks for
/// credentials instead of pre-filling any); `region`: the region its script signs for.
pub fn page(security: bool, region: &str) -> HttpResponse {
    let mut body = if security {
        PAGE.replacen("<body>", "<body data-security=\"on\">", 1)
    } else {
        PAGE.to_string()
    };
    if region != "us-east-1" {
        // A region name is letters, digits and dashes (checked with the configuration).
        body = body.replacen(PAGE_REGION, &format!("const REGION = \"{region}\";"), 1);
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("cache-control", "no-store"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::PAGE;

    #[test]
    fn the_page_has_one_body_tag_to_mark() {
        assert_eq!(PAGE.matches("<body>").count(), 1);
        assert_eq!(PAGE.matches(super::PAGE_REGION).count(), 1);
    }
}
