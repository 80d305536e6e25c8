//! The chunked decoder: never panics, and decoding byte by byte gives the
//! same verdict, data and length as decoding at once.
#![no_main]

use hifi_proxy::fuzzing::{ChunkedDecoder, Step, decode_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = decode_all(data);
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut err = false;
    while pos < data.len() && !d.is_done() {
        match d.step(&data[pos..pos + 1]) {
            Ok(Step::Data(n)) => {
                out.extend_from_slice(&data[pos..pos + n]);
                pos += n;
            }
            Ok(Step::Framing(n)) => pos += n,
            Err(_) => {
                err = true;
                break;
            }
        }
    }
    match whole {
        Ok(Some((body, used))) => {
            assert!(!err && d.is_done());
            assert_eq!((body, used), (out, pos));
        }
        Ok(None) => assert!(!err && !d.is_done()),
        Err(_) => assert!(err),
    }
});
