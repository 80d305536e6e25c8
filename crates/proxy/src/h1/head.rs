//! Request heads: parsed with `httparse` into offsets of the connection's
//! buffer (no allocation per request) and validated strictly (RFC 9112), so
//! that the proxy and the backend can never disagree on where a request
//! ends. Anything ambiguous is refused with the status the RFC asks for:
//!
//! - `Transfer-Encoding` with `Content-Length`, in an HTTP/1.0 request, or
//!   whose codings are not exactly `chunked`: 400 (other codings: 501);
//! - `Content-Length` not plain digits, or repeated with different values: 400;
//! - obs-fold, a bare CR or LF, NUL or another control character in the
//!   head, whitespace between a field name and its colon, `_` spellings of
//!   the framing fields: 400;
//! - a missing `Host` (HTTP/1.1), two `Host` fields, an absolute-form target
//!   whose authority differs from `Host`: 400; `CONNECT`: 405;
//! - a head line over `max_line` (request line: 414) or a head over
//!   `max_head` bytes or 128 fields: 431; any version but 1.0/1.1: 505.

use std::ops::Range;

/// Most fields in one head.
pub const MAX_FIELDS: usize = 128;

/// Size limits of a head.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest whole head, bytes.
    pub max_head: usize,
    /// Largest line of the head (request line or field line), bytes.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_line: 16 * 1024,
        }
    }
}

/// Fields the proxy reads or rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Passed on as is.
    Other,
    /// `Host`.
    Host,
    /// `Content-Length`.
    ContentLength,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// `Connection`.
    Connection,
    /// `Upgrade`.
    Upgrade,
    /// Other hop-by-hop fields (`Keep-Alive`, `TE`, `Trailer`, `Proxy-*`,
    /// `HTTP2-Settings`).
    HopByHop,
    /// `x-hifi-slot`.
    Slot,
    /// `x-hifi-preview-token`.
    PreviewToken,
    /// `x-forwarded-for`.
    ForwardedFor,
    /// `x-forwarded-proto` and `x-forwarded-host` (replaced by the proxy's).
    ForwardedOther,
    /// `Expect`.
    Expect,
    /// `Cookie`.
    Cookie,
}

/// What the proxy makes of a field name.
pub(crate) fn kind_of_name(name: &[u8]) -> Kind {
    let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match name.len() {
        4 if eq("host") => Kind::Host,
        6 if eq("cookie") => Kind::Cookie,
        6 if eq("expect") => Kind::Expect,
        14 if eq("content-length") => Kind::ContentLength,
        17 if eq("transfer-encoding") => Kind::TransferEncoding,
        10 if eq("connection") => Kind::Connection,
        7 if eq("upgrade") => Kind::Upgrade,
        11 if eq("x-hifi-slot") => Kind::Slot,
        20 if eq("x-hifi-preview-token") => Kind::PreviewToken,
        15 if eq("x-forwarded-for") => Kind::ForwardedFor,
        17 if eq("x-forwarded-proto") => Kind::ForwardedOther,
        16 if eq("x-forwarded-host") => Kind::ForwardedOther,
        2 if eq("te") => Kind::HopByHop,
        7 if eq("trailer") => Kind::HopByHop,
        10 if eq("keep-alive") => Kind::HopByHop,
        16 if eq("proxy-connection") => Kind::HopByHop,
        19 if eq("proxy-authorization") => Kind::HopByHop,
        18 if eq("proxy-authenticate") => Kind::HopByHop,
        14 if eq("http2-settings") => Kind::HopByHop,
        _ => Kind::Other,
    }
}

/// One field of the head: offsets into the buffer.
#[derive(Debug, Clone)]
pub struct Field {
    /// The name.
    pub name: Range<usize>,
    /// The value, without surrounding whitespace.
    pub value: Range<usize>,
    /// What the proxy makes of it.
    pub kind: Kind,
    /// Not passed on to the backend (hop-by-hop, named by `Connection`,
    /// rewritten by the proxy).
    pub drop: bool,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed and validated request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Bytes of the head in the buffer (leading empty lines included).
    pub len: usize,
    /// The method.
    pub method: Range<usize>,
    /// The request target as received.
    pub target: Range<usize>,
    /// The path of the target (origin form: up to `?`; absolute form: after
    /// the authority).
    pub path: Range<usize>,
    /// The target from the path on (what the backend receives).
    pub origin: Range<usize>,
    /// The authority of an absolute-form target.
    pub authority: Option<Range<usize>>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The fields, in order.
    pub fields: Vec<Field>,
    /// Body framing.
    pub body: BodyKind,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// A WebSocket upgrade (`Connection: upgrade` and `Upgrade: websocket`).
    pub websocket: bool,
    /// The `Host` field's value.
    pub host: Option<Range<usize>>,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The method is `HEAD` (no response body).
    pub is_head: bool,
    /// The method may be retried: `GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`,
    /// `TRACE`.
    pub idempotent: bool,
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead {
            len: 0,
            method: 0..0,
            target: 0..0,
            path: 0..0,
            origin: 0..0,
            authority: None,
            minor: 1,
            fields: Vec::with_capacity(32),
            body: BodyKind::None,
            keep_alive: true,
            websocket: false,
            host: None,
            expect_continue: false,
            is_head: false,
            idempotent: false,
        }
    }
}

/// Why a head is not (yet) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// More bytes are needed.
    Partial,
    /// Refused with this status and reason.
    Invalid(u16, &'static str),
}

fn bad(why: &'static str) -> HeadError {
    HeadError::Invalid(400, why)
}

fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Comma-separated tokens of a field value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|c| *c == b',').map(trim).filter(|t| !t.is_empty())
}

/// Check the raw bytes of a (complete or partial) head: every line ends in
/// CRLF (no bare CR or LF), no control character but HTAB, no line longer
/// than `max_line`. `complete` says whether `head` ends the head.
fn check_bytes(head: &[u8], max_line: usize) -> Result<(), HeadError> {
    let mut line_start = 0;
    let mut first_line = true;
    let n = head.len();
    let mut i = 0;
    while i < n {
        let c = head[i];
        if c == b'\r' {
            if i + 1 < n && head[i + 1] != b'\n' {
                return Err(bad("bare CR in the request head"));
            }
        } else if c == b'\n' {
            if i == 0 || head[i - 1] != b'\r' {
                return Err(bad("bare LF in the request head"));
            }
            if i - line_start > max_line {
                return Err(line_too_long(first_line));
            }
            if i > line_start + 1 {
                first_line = false;
            }
            line_start = i + 1;
        } else if (c < 0x20 && c != b'\t') || c == 0x7f {
            return Err(bad("control character in the request head"));
        }
        i += 1;
    }
    if n - line_start > max_line {
        return Err(line_too_long(first_line));
    }
    Ok(())
}

fn line_too_long(request_line: bool) -> HeadError {
    if request_line {
        HeadError::Invalid(414, "request line too long")
    } else {
        HeadError::Invalid(431, "header line too long")
    }
}

fn valid_host(h: &[u8]) -> bool {
    h.iter().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b':'
                    | b'['
                    | b']'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    })
}

/// Parse the head at the start of `buf` into `head` (its field list is
/// re-used). `Partial` when `buf` holds only part of a head within limits.
pub fn parse(buf: &[u8], limits: Limits, head: &mut RequestHead) -> Result<(), HeadError> {
    // Left uninitialised: httparse fills what it parses (zeroing 4 KiB of
    // fields for every request showed in the proxy's profile).
    let mut raw = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            check_bytes(buf, limits.max_line)?;
            if buf.len() > limits.max_head {
                return Err(HeadError::Invalid(431, "request head too large"));
            }
            return Err(HeadError::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Invalid(431, "too many header fields"));
        }
        Err(httparse::Error::Version) => {
            return Err(HeadError::Invalid(505, "HTTP version not supported"));
        }
        Err(httparse::Error::HeaderName) => {
            return Err(bad(
                "invalid field name (whitespace before the colon, obs-fold?)",
            ));
        }
        Err(_) => return Err(bad("malformed request head")),
    };
    if len > limits.max_head {
        return Err(HeadError::Invalid(431, "request head too large"));
    }
    check_bytes(&buf[..len], limits.max_line)?;
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let minor = req.version.unwrap_or(1);

    let h = head;
    h.fields.clear();
    h.len = len;
    h.method = offset(buf, method.as_bytes());
    h.target = offset(buf, path.as_bytes());
    h.minor = minor;
    h.body = BodyKind::None;
    h.websocket = false;
    h.host = None;
    h.expect_continue = false;
    h.authority = None;
    h.is_head = method == "HEAD";
    h.idempotent = matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    );
    if method == "CONNECT" {
        return Err(HeadError::Invalid(405, "CONNECT is not supported"));
    }

    // The target: origin form, `*` for OPTIONS, or absolute form.
    let t = path.as_bytes();
    let (path_part, origin_part) = if t.first() == Some(&b'/') {
        let p = t.split(|c| *c == b'?').next().unwrap_or(t);
        (p, t)
    } else if t == b"*" && method == "OPTIONS" {
        (t, t)
    } else if let Some(rest) = strip_scheme(t) {
        let end = rest
            .iter()
            .position(|c| matches!(c, b'/' | b'?'))
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || authority.contains(&b'@') || !valid_host(authority) {
            return Err(bad("invalid authority in the request target"));
        }
        h.authority = Some(offset(buf, authority));
        let origin = &rest[end..];
        let p = origin.split(|c| *c == b'?').next().unwrap_or(origin);
        (p, origin)
    } else {
        return Err(bad("invalid request target"));
    };
    h.path = offset(buf, path_part);
    h.origin = offset(buf, origin_part);

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut te_unknown = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut upgrade_token = false;
    let mut upgrade_ws = false;
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        let value = trim(f.value);
        let kind = kind_of_name(name);
        if kind == Kind::Other
            && name.contains(&b'_')
            && (name.eq_ignore_ascii_case(b"content_length")
                || name.eq_ignore_ascii_case(b"transfer_encoding"))
        {
            return Err(bad("framing field spelled with '_'"));
        }
        let mut drop = false;
        match kind {
            Kind::Host => {
                if h.host.is_some() {
                    return Err(bad("two Host fields"));
                }
                if !valid_host(value) {
                    return Err(bad("invalid Host"));
                }
                h.host = Some(offset(buf, value));
            }
            Kind::ContentLength => {
                if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                    return Err(bad("Content-Length is not a number"));
                }
                let n: u64 = value
                    .iter()
                    .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(bad("Content-Length fields disagree"));
                }
                content_length = Some(n);
                drop = true;
            }
            Kind::TransferEncoding => {
                te_seen = true;
                if value.is_empty() {
                    return Err(bad("empty Transfer-Encoding"));
                }
                for coding in value.split(|c| *c == b',').map(trim) {
                    if chunked {
                        // Anything after `chunked`: the body cannot be framed.
                        return Err(bad("Transfer-Encoding does not end with chunked"));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        chunked = true;
                    } else {
                        te_unknown = true;
                    }
                }
                drop = true;
            }
            Kind::Connection => {
                for t in tokens(value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive = true;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        upgrade_token = true;
                    }
                }
                drop = true;
            }
            Kind::Upgrade => {
                upgrade_ws = tokens(value)
                    .next()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"websocket"));
                drop = true;
            }
            Kind::HopByHop | Kind::Slot | Kind::PreviewToken | Kind::ForwardedOther => drop = true,
            Kind::ForwardedFor => drop = true,
            Kind::Expect => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    h.expect_continue = true;
                    drop = true;
                }
            }
            Kind::Other | Kind::Cookie => {}
        }
        h.fields.push(Field {
            name: offset(buf, name),
            value: offset(buf, value),
            kind,
            drop,
        });
    }
    if te_seen {
        if content_length.is_some() {
            return Err(bad("both Transfer-Encoding and Content-Length"));
        }
        if minor == 0 {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if !chunked {
            return Err(bad("Transfer-Encoding does not end with chunked"));
        }
        if te_unknown {
            return Err(HeadError::Invalid(501, "transfer coding not implemented"));
        }
        h.body = BodyKind::Chunked;
    } else if let Some(n) = content_length.filter(|n| *n > 0) {
        h.body = BodyKind::Length(n);
    }
    match (&h.host, &h.authority) {
        (None, _) if minor == 1 => return Err(bad("HTTP/1.1 request without Host")),
        (Some(host), Some(auth))
            if !host_part(&buf[host.clone()])
                .eq_ignore_ascii_case(host_part(&buf[auth.clone()])) =>
        {
            return Err(bad("Host differs from the request target's authority"));
        }
        _ => {}
    }
    h.keep_alive = !close && (minor == 1 || keep_alive);
    h.websocket = upgrade_token && upgrade_ws && minor == 1;
    // Fields named by Connection are hop-by-hop too.
    if let Some(conn) = h.fields.iter().position(|f| f.kind == Kind::Connection) {
        let listed: Vec<Range<usize>> = h
            .fields
            .iter()
            .filter(|f| f.kind == Kind::Connection)
            .flat_map(|f| tokens(&buf[f.value.clone()]).map(|t| offset(buf, t)))
            .collect();
        let _ = conn;
        for f in h.fields.iter_mut() {
            if !f.drop
                && f.kind != Kind::Host
                && listed
                    .iter()
                    .any(|t| buf[t.clone()].eq_ignore_ascii_case(&buf[f.name.clone()]))
            {
                f.drop = true;
            }
        }
    }
    Ok(())
}

/// The host of an authority or `Host` value, without its port.
fn host_part(a: &[u8]) -> &[u8] {
    if a.first() == Some(&b'[') {
        return a.split(|c| *c == b']').next().unwrap_or(a);
    }
    match a.iter().rposition(|c| *c == b':') {
        Some(i) => &a[..i],
        None => a,
    }
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &[u8]) -> Result<RequestHead, HeadError> {
        let mut h = RequestHead::default();
        parse(s, Limits::default(), &mut h).map(|()| h)
    }

    fn status(s: &[u8]) -> u16 {
        match parse_str(s) {
            Ok(_) => 200,
            Err(HeadError::Partial) => 0,
            Err(HeadError::Invalid(code, _)) => code,
        }
    }

    #[test]
    fn ordinary_heads_parse() {
        let buf = b"\r\nGET /a/b?x=1 HTTP/1.1\r\nHost: shop.test\r\nConnection: x-secret\r\nX-Secret: 1\r\nAccept: */*\r\n\r\nrest";
        let h = parse_str(buf).expect("valid");
        assert_eq!(&buf[h.path.clone()], b"/a/b");
        assert_eq!(&buf[h.origin.clone()], b"/a/b?x=1");
        assert_eq!(h.len, buf.len() - 4);
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive && h.idempotent);
        let kept: Vec<&[u8]> = h
            .fields
            .iter()
            .filter(|f| !f.drop)
            .map(|f| &buf[f.name.clone()])
            .collect();
        assert_eq!(kept, [&b"Host"[..], b"Accept"]);
        let h = parse_str(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        )
        .expect("same length twice");
        assert_eq!(h.body, BodyKind::Length(5));
        let h = parse_str(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .expect("chunked");
        assert_eq!(h.body, BodyKind::Chunked);
        let h = parse_str(b"GET http://a:80/x HTTP/1.1\r\nHost: a:80\r\n\r\n").expect("absolute");
        assert_eq!(h.origin, 15..17);
        // The same host with or without its port agrees.
        parse_str(b"GET http://A:80/x HTTP/1.1\r\nHost: a\r\n\r\n").expect("same host");
        let h = parse_str(b"GET / HTTP/1.0\r\n\r\n").expect("1.0 without host");
        assert!(!h.keep_alive);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n"), 0);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for (bad, want) in [
            (&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..], 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 34\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\nHost: a\n\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET /\r\n\r\n", 400),
            (b"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ] {
            assert_eq!(status(bad), want, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn limits_give_431_and_414() {
        let limits = Limits {
            max_head: 200,
            max_line: 64,
        };
        let mut h = RequestHead::default();
        let long_field = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(80));
        assert_eq!(
            parse(long_field.as_bytes(), limits, &mut h),
            Err(HeadError::Invalid(431, "header line too long"))
        );
        // Partial heads are refused as soon as a line is too long.
        assert_eq!(
            parse(&long_field.as_bytes()[..100], limits, &mut h),
            Err(HeadError::Invalid(431, "header line too long"))
        );
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "p".repeat(80));
        assert!(matches!(
            parse(long_target.as_bytes(), limits, &mut h),
            Err(HeadError::Invalid(414, _))
        ));
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{}", "X: y\r\n".repeat(40));
        assert!(matches!(
            parse(many.as_bytes(), limits, &mut h),
            Err(HeadError::Invalid(431, _))
        ));
    }
}
