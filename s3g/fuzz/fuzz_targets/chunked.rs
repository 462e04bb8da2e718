//! The aws-chunked decoder never panics, and decodes the same whatever the input's split.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ozone_s3g::chunked::ChunkedDecoder;

fn decode(data: &[u8], piece: usize) -> Result<(Vec<u8>, Vec<(String, String)>), String> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    for p in data.chunks(piece.max(1)) {
        d.feed(Bytes::copy_from_slice(p), &mut out)
            .map_err(|e| e.to_string())?;
    }
    let trailers = d.finish().map_err(|e| e.to_string())?;
    Ok((out.concat(), trailers))
}

fuzz_target!(|input: (u8, &[u8])| {
    let (split, data) = input;
    assert_eq!(decode(data, data.len()), decode(data, split as usize % 13 + 1));
});
