//! The headers of a forwarded exchange: hop-by-hop headers removed in both
//! directions (RFC 9110 §7.6.1, and the preview token from requests), and
//! `x-hifi-slot` and the `x-forwarded-*` headers added for the backend.
//!
//! Requests usually carry no hop-by-hop header at all, so one pass over the
//! header names finds which are present and every removal (and its hash
//! lookup) is skipped when none is.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::Authority;

use crate::balancer::{PREVIEW_TOKEN_HEADER, SLOT_HEADER};
use crate::compiled::CompiledSlot;

use super::ConnCtx;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-hifi-slot`, set on requests to backends and on responses.
pub(super) static X_HIFI_SLOT: HeaderName = HeaderName::from_static(SLOT_HEADER);
static X_HIFI_PREVIEW_TOKEN: HeaderName = HeaderName::from_static(PREVIEW_TOKEN_HEADER);
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers (RFC 9110 §7.6.1) present in a header map, found in
/// one pass over its names (most requests carry none, so the removals and
/// their hash lookups are skipped).
const HOP_CONNECTION: u16 = 1;
const HOP_UPGRADE: u16 = 1 << 1;
const HOP_PREVIEW_TOKEN: u16 = 1 << 2;
const HOP_OTHER: u16 = 1 << 3;

fn hop_by_hop_present(headers: &HeaderMap) -> u16 {
    let mut found = 0;
    for name in headers.keys() {
        found |= if name == header::CONNECTION {
            HOP_CONNECTION
        } else if name == header::UPGRADE {
            HOP_UPGRADE
        } else if name == header::TE
            || name == header::TRAILER
            || name == header::TRANSFER_ENCODING
            || name == header::PROXY_AUTHENTICATE
            || name == header::PROXY_AUTHORIZATION
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
        {
            HOP_OTHER
        } else if name == X_HIFI_PREVIEW_TOKEN {
            HOP_PREVIEW_TOKEN
        } else {
            0
        };
    }
    found
}

/// Remove the headers that only concern one hop (RFC 9110 §7.6.1), including
/// those the `Connection` header names. With `keep_upgrade`, the
/// `Upgrade`/`Connection: upgrade` pair is kept for the backend. With
/// `request`, the preview token is removed too.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool, request: bool) {
    let present = hop_by_hop_present(headers);
    if request && present & HOP_PREVIEW_TOKEN != 0 {
        headers.remove(&X_HIFI_PREVIEW_TOKEN);
    }
    if !keep_upgrade && present & !HOP_PREVIEW_TOKEN == 0 {
        return;
    }
    if let Some(conn) = headers.remove(header::CONNECTION)
        && let Ok(listed) = conn.to_str()
    {
        for name in listed.split(',') {
            let name = name.trim();
            let keep = keep_upgrade && name.eq_ignore_ascii_case("upgrade");
            if !name.is_empty() && !keep {
                headers.remove(name);
            }
        }
    }
    if present & HOP_OTHER != 0 {
        headers.remove(&KEEP_ALIVE);
        headers.remove(&PROXY_CONNECTION);
        headers.remove(header::TE);
        headers.remove(header::TRAILER);
        headers.remove(header::TRANSFER_ENCODING);
        headers.remove(header::PROXY_AUTHENTICATE);
        headers.remove(header::PROXY_AUTHORIZATION);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if present & HOP_UPGRADE != 0 {
        headers.remove(header::UPGRADE);
    }
}

/// Turn a client's request headers into the backend's: hop-by-hop headers
/// and the preview token removed (the upgrade pair kept when `upgrade`),
/// `x-hifi-slot`, `Host` (from `:authority` for HTTP/2 clients) and the
/// `x-forwarded-*` headers set.
pub(super) fn prepare_headers(
    headers: &mut HeaderMap,
    conn: &ConnCtx,
    slot: &CompiledSlot,
    upgrade: bool,
    authority: Option<&Authority>,
) {
    strip_hop_by_hop(headers, upgrade, true);
    headers.insert(X_HIFI_SLOT.clone(), slot.header.clone());
    let host = match headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => {
            // HTTP/2 clients send :authority instead of Host.
            let h = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(h) = &h {
                headers.insert(header::HOST, h.clone());
            }
            h
        }
    };
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => conn.peer_ip.clone(),
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + conn.peer_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(conn.peer_ip.as_bytes());
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| conn.peer_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        // Nothing hop-by-hop: untouched.
        let mut h = map(&[("host", "a"), ("accept", "*/*")]);
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["accept", "host"]);

        let mut h = map(&[
            ("host", "a"),
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "x"),
            ("x-hifi-preview-token", "t"),
        ]);
        let mut resp = h.clone();
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["host"]);
        // A response keeps a header that happens to be named like the token.
        strip_hop_by_hop(&mut resp, false, false);
        assert_eq!(names(&resp), ["host", "x-hifi-preview-token"]);

        // Only the token: removed from a request.
        let mut h = map(&[("host", "a"), ("x-hifi-preview-token", "t")]);
        strip_hop_by_hop(&mut h, false, true);
        assert_eq!(names(&h), ["host"]);

        // An upgrade keeps Upgrade and `Connection: upgrade`.
        let mut h = map(&[
            ("connection", "Upgrade, x-secret"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
        ]);
        strip_hop_by_hop(&mut h, true, true);
        assert_eq!(names(&h), ["connection", "upgrade"]);
        assert_eq!(h[header::CONNECTION], "upgrade");
    }
}
