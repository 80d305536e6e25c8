//! Longest-prefix routing of a public request to a service.
//!
//! Routes are matched on path-segment boundaries (`/cat` does not match
//! `/catalog`), `/` matches everything, and a route restricted to a host wins
//! over an unrestricted one of the same length. Routes are sorted once when
//! the table is compiled, so a lookup is a short linear scan with no
//! allocation; environments have a handful of services, not thousands.

/// A compiled set of routes.
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// (prefix, host, service index), longest prefix first.
    routes: Vec<(Box<str>, Option<Box<str>>, usize)>,
}

impl Router {
    /// Build from `(route, host, service index)`; routes are already normalised.
    pub(crate) fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, Option<&'a str>, usize)>,
    ) -> Self {
        let mut routes: Vec<_> = routes
            .into_iter()
            .map(|(r, h, i)| (Box::<str>::from(r), h.map(Box::<str>::from), i))
            .collect();
        routes.sort_by(|a, b| {
            b.0.len()
                .cmp(&a.0.len())
                .then_with(|| b.1.is_some().cmp(&a.1.is_some()))
        });
        Router { routes }
    }

    /// The service for `path` on `host` (host already stripped of its port).
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<usize> {
        self.routes.iter().find_map(|(prefix, want_host, idx)| {
            let host_ok = match want_host {
                None => true,
                Some(h) => host.is_some_and(|got| got.eq_ignore_ascii_case(h)),
            };
            (host_ok && prefix_matches(prefix, path)).then_some(*idx)
        })
    }
}

/// `prefix` matches `path` when equal or followed by a `/` in `path`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The form of a request path that routing sees: `%XX` escapes of
/// unreserved characters decoded (`%2e` is `.`), repeated slashes merged and
/// dot segments removed (RFC 3986 §5.2.4), so `/catalog/../admin` routes as
/// `/admin` and cannot reach a service through another's prefix. Escapes of
/// reserved characters (`%2F`) stay as they are. The request is forwarded
/// with its path as received. Borrows when nothing needs changing (the
/// common case).
pub(crate) fn normalise_path(path: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let b = path.as_bytes();
    let needs = b.contains(&b'%')
        || b.windows(2).any(|w| w == b"//" || w == b"/.")
        || !path.starts_with('/');
    if !needs {
        return Cow::Borrowed(path);
    }
    // Decode escapes of unreserved characters only.
    let mut decoded = Vec::with_capacity(b.len() + 1);
    if !path.starts_with('/') {
        decoded.push(b'/');
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                decoded.push(c);
                i += 3;
                continue;
            }
        }
        decoded.push(b[i]);
        i += 1;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = decoded.split(|c| *c == b'/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (n, seg) in segments.iter().enumerate() {
        match *seg {
            b"" => trailing = n == last,
            b"." => trailing = n == last,
            b".." => {
                out.pop();
                trailing = n == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut s = Vec::with_capacity(decoded.len());
    for seg in &out {
        s.push(b'/');
        s.extend_from_slice(seg);
    }
    if s.is_empty() || trailing {
        s.push(b'/');
    }
    // Only ASCII bytes were decoded, so the result is as valid UTF-8 as the input.
    Cow::Owned(String::from_utf8_lossy(&s).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The host part of a `Host` header or authority, without port.
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: keep the brackets' content whole.
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = Router::new([
            ("/", None, 0),
            ("/cat", None, 1),
            ("/catalog", None, 2),
            ("/catalog", Some("shop.test"), 3),
        ]);
        assert_eq!(r.route(None, "/catalog/items"), Some(2));
        assert_eq!(r.route(Some("shop.test"), "/catalog"), Some(3));
        assert_eq!(r.route(None, "/cat"), Some(1));
        assert_eq!(r.route(None, "/cat/1"), Some(1));
        assert_eq!(r.route(None, "/catx"), Some(0));
        assert_eq!(r.route(None, "/catalogue"), Some(0));
        let no_catch_all = Router::new([("/api", None, 0)]);
        assert_eq!(no_catch_all.route(None, "/apix"), None);
    }

    #[test]
    fn paths_are_routed_in_normal_form() {
        for (raw, want) in [
            ("/catalog/items", "/catalog/items"),
            ("/catalog/../admin", "/admin"),
            ("/catalog/%2e%2e/admin", "/admin"),
            ("/catalog/%2E%2E/admin", "/admin"),
            ("//catalog//x", "/catalog/x"),
            ("/a/./b/", "/a/b/"),
            ("/../../etc", "/etc"),
            ("/a/..", "/"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%7euser", "/~user"),
            ("*", "/*"),
        ] {
            assert_eq!(normalise_path(raw), want, "{raw}");
        }
        let r = Router::new([("/", None, 0), ("/catalog", None, 1)]);
        assert_eq!(r.route(None, &normalise_path("/catalog/../admin")), Some(0));
    }

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(host_without_port("shop.test:8500"), "shop.test");
        assert_eq!(host_without_port("shop.test"), "shop.test");
        assert_eq!(host_without_port("[::1]:80"), "::1");
    }
}
