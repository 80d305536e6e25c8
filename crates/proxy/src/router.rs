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
    fn host_port_is_stripped() {
        assert_eq!(host_without_port("shop.test:8500"), "shop.test");
        assert_eq!(host_without_port("shop.test"), "shop.test");
        assert_eq!(host_without_port("[::1]:80"), "::1");
    }
}
