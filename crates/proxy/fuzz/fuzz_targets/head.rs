//! Request heads: the parser never panics, and what it accepts is coherent
//! (offsets inside the head, one framing, no byte the RFC forbids).
#![no_main]

use hifi_proxy::fuzzing::{HeadError, Limits, RequestHead, parse_head};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut head = RequestHead::default();
    let limits = Limits {
        max_head: 4096,
        max_line: 1024,
    };
    match parse_head(data, limits, &mut head) {
        Ok(()) => {
            assert!(head.len <= data.len());
            let bytes = &data[..head.len];
            for r in [&head.method, &head.target, &head.path, &head.origin] {
                assert!(r.end <= head.len);
            }
            for f in &head.fields {
                assert!(f.name.end <= head.len && f.value.end <= head.len);
                assert!(!data[f.value.clone()].contains(&0));
            }
            // Every LF ends a CRLF; no CR stands alone.
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'\n' {
                    assert!(i > 0 && bytes[i - 1] == b'\r');
                }
                if *b == b'\r' {
                    assert!(bytes.get(i + 1) == Some(&b'\n'));
                }
            }
            // Parsing again gives the same head.
            let mut again = RequestHead::default();
            assert!(parse_head(data, limits, &mut again).is_ok());
            assert_eq!(again.len, head.len);
            assert_eq!(again.body, head.body);
        }
        Err(HeadError::Partial) => assert!(data.len() <= limits.max_head),
        Err(HeadError::Invalid(status, _)) => {
            assert!(matches!(status, 400 | 405 | 414 | 431 | 501 | 505));
        }
    }
});
