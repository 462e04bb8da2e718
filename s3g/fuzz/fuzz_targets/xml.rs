//! Request XML bodies (DeleteObjects, CompleteMultipartUpload, CreateBucket) never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ozone_s3g::xml;

fuzz_target!(|data: &[u8]| {
    let _ = xml::parse::<xml::Delete>(data);
    let _ = xml::parse::<xml::CompleteMultipartUpload>(data);
    let _ = xml::parse::<xml::CreateBucketConfiguration>(data);
});
