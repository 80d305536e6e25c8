//! What a service's instances speak, and how a health probe of each
//! protocol is judged.
//!
//! [`Protocol`] is read from a service's `protocol` key, recorded with every
//! release's recipe, and read by the two parts that talk to instances: the
//! proxy (which forwards in it and probes its backends) and the runtimes
//! (whose health checks gate an instance before it takes traffic). The rules
//! both apply to a gRPC health answer live here, beside the type, so the
//! two never disagree about whether a gRPC server is up; the transports stay
//! in their crates (the proxy pools its probe connections, a runtime opens a
//! fresh one per probe).

use crate::names::named;

/// The protocol a service's instances speak on their port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http1,
    /// HTTP/2 over cleartext TCP with prior knowledge (no upgrade).
    H2c,
    /// gRPC: HTTP/2 over cleartext TCP; a `grpc-status` other than 0 in the
    /// trailers (or a trailers-only answer) is an error.
    Grpc,
}

named!(Protocol, "protocol" { Http1 => "http1", H2c => "h2c", Grpc => "grpc" });

impl Protocol {
    /// Whether this is the default, HTTP/1.1.
    pub fn is_http1(&self) -> bool {
        *self == Protocol::Http1
    }

    /// Whether instances are spoken to in HTTP/2 (prior knowledge).
    pub fn is_http2(self) -> bool {
        !self.is_http1()
    }
}

/// The message a gRPC health probe sends to the service's health path: one
/// empty, uncompressed gRPC message (the 5-byte frame header alone), which
/// decodes as the default request of any unary method — for
/// `/grpc.health.v1.Health/Check`, "the server as a whole".
pub const GRPC_PROBE_MESSAGE: [u8; 5] = [0, 0, 0, 0, 0];

/// Whether a gRPC health answer passes: an HTTP 2xx whose `grpc-status`
/// (trailers, or headers of a trailers-only answer; absent counts as 0) is
/// 0 (OK) or 12 (UNIMPLEMENTED: the server is up and speaking gRPC, it just
/// has no such method).
pub fn grpc_probe_passes(http_status: u16, grpc_status: Option<&[u8]>) -> bool {
    (200..300).contains(&http_status) && grpc_status.is_none_or(|g| g == b"0" || g == b"12")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_named_as_in_hifi_toml() {
        for (protocol, name) in [
            (Protocol::Http1, "http1"),
            (Protocol::H2c, "h2c"),
            (Protocol::Grpc, "grpc"),
        ] {
            assert_eq!(protocol.as_str(), name);
            assert_eq!(name.parse::<Protocol>(), Ok(protocol));
        }
        assert_eq!(Protocol::default(), Protocol::Http1);
        assert!("http2".parse::<Protocol>().is_err());
    }

    #[test]
    fn a_grpc_probe_passes_on_ok_or_unimplemented_only() {
        assert!(grpc_probe_passes(200, None));
        assert!(grpc_probe_passes(200, Some(b"0")));
        assert!(grpc_probe_passes(200, Some(b"12")));
        assert!(!grpc_probe_passes(200, Some(b"14")), "UNAVAILABLE");
        assert!(!grpc_probe_passes(200, Some(b"2")), "UNKNOWN");
        assert!(!grpc_probe_passes(503, Some(b"0")));
    }
}
