//! Per-request slot choice (sticky canary, tester override, internal slot
//! pinning) and backend choice within a slot.
//!
//! The choice is made for every request, never per connection, so a client's
//! keep-alive connection sees a switch on its very next request (PRIOR-ART
//! pitfall 2). A user's bucket is `FNV-1a-64(key) % 10000`, a pure function
//! of the key: it does not depend on the service, the process or the table,
//! so a user lands on the same slot for every service of the environment and
//! after a proxy restart, and as the candidate weight rises users only ever
//! move from active to candidate.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http::{HeaderMap, HeaderValue, header};

use crate::compiled::{CompiledService, CompiledSlot, CompiledTable};
use crate::table::UserKey;

/// Header naming the slot: set on every request to a backend, honoured on
/// internal listeners, and `candidate` on the public listener for testers.
pub(crate) const SLOT_HEADER: &str = "x-hifi-slot";
/// Header carrying the preview token for the tester override.
pub(crate) const PREVIEW_TOKEN_HEADER: &str = "x-hifi-preview-token";
/// Cookie the proxy sets for users without a key.
pub(crate) const FALLBACK_COOKIE: &str = "hifi-user";

/// Number of buckets users are hashed into; weight 1 % = 100 buckets.
pub(crate) const BUCKETS: u64 = 10_000;

/// FNV-1a, 64 bit: tiny, deterministic across processes and versions.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bucket (0..10000) of a user key.
pub fn bucket(key: &[u8]) -> u32 {
    (fnv1a(key) % BUCKETS) as u32
}

/// Read access to a request's header fields, whatever holds them: hyper's
/// `HeaderMap` on the HTTP/2 path, the parsed head on the HTTP/1 path.
/// Names are given in lower case.
pub(crate) trait Headers {
    /// The first value of field `name`.
    fn first(&self, name: &str) -> Option<&[u8]>;
    /// Every value of field `name`, in order.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
}

impl Headers for HeaderMap {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(HeaderValue::as_bytes)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).into_iter().map(HeaderValue::as_bytes)
    }
}

/// Equality of two secrets in time that does not depend on where they
/// differ (only on their lengths), so the preview token cannot be guessed
/// byte by byte from response times.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

/// Whether the request carries the table's preview token (true when the
/// table has none).
pub(crate) fn preview_token_ok(env: &CompiledTable, headers: &impl Headers) -> bool {
    match &env.preview_token {
        None => true,
        Some(token) => headers
            .first(PREVIEW_TOKEN_HEADER)
            .is_some_and(|got| constant_time_eq(got, token.as_bytes())),
    }
}

/// The value of cookie `name` in the request's `Cookie` header(s).
pub(crate) fn cookie<'a, H: Headers + ?Sized>(headers: &'a H, name: &str) -> Option<&'a [u8]> {
    for value in headers.all(header::COOKIE.as_str()) {
        for pair in value.split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if let Some(rest) = pair.strip_prefix(name.as_bytes())
                && let Some(v) = rest.strip_prefix(b"=")
            {
                let v = v
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v);
                if !v.is_empty() {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// The user key of a request: the configured cookie or header, else the
/// `hifi-user` cookie.
pub(crate) fn user_key<'a, H: Headers + ?Sized>(key: &UserKey, headers: &'a H) -> Option<&'a [u8]> {
    let configured = match key {
        UserKey::Cookie(name) => cookie(headers, name),
        UserKey::Header(name) => headers.first(name.as_str()).filter(|v| !v.is_empty()),
    };
    configured.or_else(|| cookie(headers, FALLBACK_COOKIE))
}

/// Makes ids for users without a key. The ids only need to be unique and
/// evenly spread (they are bucketing keys, not secrets): SipHash with the
/// process's random `RandomState` keys over a counter and the clock.
#[derive(Debug)]
pub(crate) struct IdGen {
    keys: std::collections::hash_map::RandomState,
    counter: AtomicU64,
}

impl IdGen {
    pub(crate) fn new() -> Self {
        IdGen {
            keys: std::collections::hash_map::RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh 32-hex-digit id.
    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Relaxed);
        let nanos = crate::metrics::unix_now().as_nanos();
        let mut a = self.keys.build_hasher();
        a.write_u64(n);
        a.write_u128(nanos);
        let a = a.finish();
        let mut b = self.keys.build_hasher();
        b.write_u64(a);
        b.write_u64(!n);
        format!("{a:016x}{:016x}", b.finish())
    }
}

/// Outcome of the slot choice.
pub(crate) enum Choice {
    /// Send to this slot; set this cookie on the response.
    Slot(Arc<CompiledSlot>, Option<HeaderValue>),
    /// Tester override without the right preview token.
    Forbidden,
    /// Tester override but the service has no candidate.
    NoCandidate,
}

/// Choose the slot for a request to `svc`. `public` is false on the
/// service's internal listener.
pub(crate) fn choose(
    env: &CompiledTable,
    svc: &CompiledService,
    headers: &impl Headers,
    public: bool,
    ids: &IdGen,
) -> Choice {
    if let Some(asked) = headers.first(SLOT_HEADER) {
        if asked.eq_ignore_ascii_case(b"candidate") {
            if public && !preview_token_ok(env, headers) {
                return Choice::Forbidden;
            }
            return match &svc.candidate {
                Some((slot, _)) => Choice::Slot(slot.clone(), None),
                None => Choice::NoCandidate,
            };
        }
        // Internal calls carry the slot of the request that caused them, so
        // one user's request path never mixes releases. From the public side
        // a slot name is not honoured: users cannot pick slots.
        if !public && let Some(slot) = svc.slot_named(asked) {
            return Choice::Slot(slot.clone(), None);
        }
    }
    let Some((candidate, threshold)) = &svc.candidate else {
        return Choice::Slot(svc.active.clone(), None);
    };
    let (b, cookie) = match user_key(&env.user_key, headers) {
        Some(key) => (bucket(key), None),
        None if public => {
            let id = ids.next();
            let cookie = HeaderValue::from_str(&format!(
                "{FALLBACK_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"
            ))
            .ok();
            (bucket(id.as_bytes()), cookie)
        }
        // An internal call without any key (a background job, say) goes to
        // the active slot rather than being spread at random.
        None => return Choice::Slot(svc.active.clone(), None),
    };
    if b < *threshold {
        Choice::Slot(candidate.clone(), cookie)
    } else {
        Choice::Slot(svc.active.clone(), cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_the_reference_function() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert!(bucket(b"user-1") < 10_000);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; hifi-user=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("session=\"s1\""));
        assert_eq!(cookie(&h, "hifi-user"), Some(&b"xyz"[..]));
        assert_eq!(cookie(&h, "session"), Some(&b"s1"[..]));
        assert_eq!(cookie(&h, "hifi"), None);
        let key = UserKey::Header(http::HeaderName::from_static("x-user"));
        assert_eq!(user_key(&key, &h), Some(&b"xyz"[..]));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn ids_are_distinct() {
        let g = IdGen::new();
        let (a, b) = (g.next(), g.next());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
    }
}
