//! `$request` → what nginx held in `$request_method`, `$request_uri` and `$server_protocol` for
//! it, by the rules of the nginx that wrote the line ([`RequestLineRules`]).
//!
//! nginx's reading of a request line changed over the years (each change below was read in
//! ngx_http_parse_request_line, src/http/ngx_http_parse.c, and ngx_http_process_request_uri,
//! src/http/ngx_http_request.c, at the release tags, and checked against nginx 1.18.0, 1.22.1
//! and 1.30.4 by tests/nginx_oracle.rs, and each rule's lines against 1.20.2 and 1.31.4 too):
//!
//! | nginx | what changed |
//! |---|---|
//! | up to 1.19.5 | a space in the URI is part of it when what follows is not `HTTP/` (`GET /a b HTTP/1.1` is served, `$request_uri` = `/a b`); control bytes other than NUL pass; `http://host?x` (a query right after the host) is rejected |
//! | 1.19.6 | `http://host?x` is read with an empty path (`$request_uri` = `?x`) |
//! | 1.21.1 | a space or a control byte (below 0x20, 0x7f) in the URI is a 400 |
//! | 1.29.3 | `CONNECT host:port HTTP/1.1` (authority form) is parsed (`$request_uri` = `/`, then 405); `CONNECT` with any other target is a 400 |
//! | 1.31.0 | `CONNECT host: HTTP/1.1` (no port digit) is a 400 |
//!
//! The version comes from the object's `nginx-version` metadata (the shippers write it from
//! `nginx -v`). Without it, [`request_parts`] reads a line by what the line itself proves.

use super::format::Escape;

/// The object metadata (`x-amz-meta-nginx-version`) the shippers write from `nginx -v`.
pub const META_NGINX_VERSION: &str = "nginx-version";

/// The request-line rules of one range of nginx versions, oldest first (the order compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestLineRules {
    /// nginx up to 1.19.5 (Ubuntu 20.04 and Debian 11 ship 1.18): spaces and control bytes in
    /// the URI, no query right after the host.
    UpTo1_19_5,
    /// 1.19.6 to 1.21.0: `http://host?x` too.
    From1_19_6,
    /// 1.21.1 to 1.29.2 (Debian 12's 1.22): no space nor control byte in the URI.
    From1_21_1,
    /// 1.29.3 to 1.30.x (the 1.30 stable branch): `CONNECT host:port`.
    From1_29_3,
    /// 1.31.0 on (mainline): `CONNECT host:port` with a port digit.
    From1_31_0,
}

/// Why a text is not a version whose request-line rules are known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an nginx version: give it as `nginx -v` prints it (1.18.0, nginx/1.22.1, openresty/1.21.4.1)"
)]
pub struct UnknownVersion(pub String);

impl RequestLineRules {
    /// Every rule set, newest first.
    pub const NEWEST_FIRST: [Self; 5] = [
        Self::From1_31_0,
        Self::From1_29_3,
        Self::From1_21_1,
        Self::From1_19_6,
        Self::UpTo1_19_5,
    ];

    /// The rules of the nginx whose version `nginx -v` gives as `text`: `1.18.0`,
    /// `nginx/1.22.1`, `1.18.0 (Ubuntu)`, or OpenResty's `openresty/1.21.4.1` (nginx 1.21.4 and
    /// OpenResty's own fourth number). Another product's numbering (Tengine, Angie, …) says
    /// nothing about nginx's parser: an error.
    pub fn for_version(text: &str) -> Result<Self, UnknownVersion> {
        let unknown = || UnknownVersion(text.to_string());
        let word = text.split_whitespace().next().ok_or_else(unknown)?;
        let number = match word.split_once('/') {
            None => word,
            Some(("nginx" | "openresty", n)) => n,
            Some(_) => return Err(unknown()),
        };
        let mut parts = number.split('.').map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u32>().ok())
                .flatten()
        });
        let (Some(Some(major)), Some(Some(minor)), Some(Some(patch))) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(unknown());
        };
        if parts.any(|p| p.is_none()) {
            return Err(unknown());
        }
        let v = (major, minor, patch);
        Ok(if v >= (1, 31, 0) {
            Self::From1_31_0
        } else if v >= (1, 29, 3) {
            Self::From1_29_3
        } else if v >= (1, 21, 1) {
            Self::From1_21_1
        } else if v >= (1, 19, 6) {
            Self::From1_19_6
        } else {
            Self::UpTo1_19_5
        })
    }

    /// The rules for an object's `nginx-version` metadata; `None` (read by what each line
    /// proves) when there is none or it is not a version of nginx's.
    pub fn from_metadata(value: Option<&str>) -> Option<Self> {
        value.and_then(|v| Self::for_version(v).ok())
    }

    /// Since 1.21.1 a space or a control byte in the URI is a 400 ("Disabled spaces in URIs",
    /// "Disabled control characters in URIs"); before, a space followed by anything but `H`
    /// stays in the URI (`r->space_in_uri`) and only NUL is rejected.
    fn strict_uri(self) -> bool {
        self >= Self::From1_21_1
    }

    /// Since 1.19.6 `?` may follow the host of an absolute URI (`r->empty_path_in_uri`).
    fn query_after_host(self) -> bool {
        self >= Self::From1_19_6
    }

    /// Since 1.29.3 `CONNECT` takes only the authority form, `host:port`.
    fn connect_authority(self) -> bool {
        self >= Self::From1_29_3
    }

    /// Since 1.31.0 the port of `CONNECT host:port` has at least one digit (sw_port_start).
    fn connect_port_digit(self) -> bool {
        self >= Self::From1_31_0
    }
}

/// What nginx's `$request_method`, `$request_uri` and `$server_protocol` held for a request
/// whose `$request` is logged as the text it is split from; `None` for a variable nginx had not
/// set (it logs `-` for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestParts<'a> {
    /// `$request_method` (`r->method_name`).
    pub method: Option<&'a str>,
    /// `$request_uri` (`r->unparsed_uri`).
    pub uri: Option<&'a str>,
    /// `$server_protocol` (`r->http_protocol`).
    pub protocol: Option<&'a str>,
}

impl RequestParts<'_> {
    /// True when all three parts are known and `method uri protocol` is `request` exactly.
    pub fn rebuild_exactly(&self, request: &str) -> bool {
        let (Some(m), Some(u), Some(p)) = (self.method, self.uri, self.protocol) else {
            return false;
        };
        request.len() == m.len() + u.len() + p.len() + 2
            && request
                .strip_prefix(m)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|r| r.strip_prefix(u))
                .and_then(|r| r.strip_prefix(' '))
                == Some(p)
    }
}

/// [`split_request`], then what `$status` and the format's own `$request_method`,
/// `$request_uri`, `$server_protocol` (`own`, as logged; `None` for those it does not have) say
/// about it: the parts of a request line nginx parsed, nothing for one it cut short or never
/// parsed.
///
/// The text alone cannot always tell: nginx logs `$request` also for a line it never finished
/// reading, as far as it got (ngx_http_variable_request_line in ngx_http_variables.c reads from
/// `r->request_start` to the first CR/LF). Such a line is cut (`GET /long?pad=AAA…`) and so
/// looks like an HTTP/0.9 request. So, with `$status` in the format:
/// - 414 (`client sent too long URI`, ngx_http_process_request_line: the line filled
///   large_client_header_buffers; `$request` is the buffer's worth) and 505 (HTTP/2+ version on
///   an HTTP/1 connection: NGX_HTTP_PARSE_INVALID_VERSION) mean the line was not parsed;
/// - a line without a protocol (HTTP/0.9 shape) answered 400 or 408 was cut by the client
///   closing the connection (ngx_http_read_request_header: `client prematurely closed
///   connection` → 400) or going quiet (408) before the line ended: a parsed HTTP/0.9 request is
///   answered at once, without reading headers or a body that could fail. Unless its URI is
///   one ngx_http_parse_complex_uri rejects (`GET /%zz`): that 400 comes after the parse, with
///   `$request_method` set (a line cut right inside a `%XX` is then taken for parsed too).
///
/// Without `$status`, a line without a protocol gives nothing: a cut line cannot be told from
/// HTTP/0.9. A complete-looking `HTTP/1.x` line is taken as parsed, also when answered 400 or
/// 408 (bad headers, timeouts reading headers or body), unless a variable the format logs
/// itself shows nginx did not set what it would have for a parsed line: it logged `-` (empty
/// under `escape=json`) for it. `$server_protocol` is then even logged empty under
/// `escape=default`: nginx notes where the protocol starts while parsing, so a line rejected or
/// cut after that point has a protocol of length 0.
/// Without those, a client that sent exactly a whole line, no CRLF, and then closed or went
/// quiet (400, 408) is taken for parsed.
///
/// `rules`: those of the nginx that wrote the line; `None` when its version is not known, and
/// then the line is read by what it proves ([`split_unknown`]).
pub fn request_parts<'a>(
    request: &'a str,
    escape: Escape,
    status: Option<&str>,
    own: RequestParts<'_>,
    rules: Option<RequestLineRules>,
) -> RequestParts<'a> {
    // The common line reads the same by the rules of every version.
    let split = split_plain(request).or_else(|| match rules {
        Some(rules) => split_request(request, escape, rules),
        None => split_unknown(request, escape, status),
    });
    let Some(parts) = split else {
        return RequestParts::default();
    };
    let parsed = match status {
        Some("414" | "505") => false,
        // An HTTP/0.9 line whose URI ngx_http_parse_complex_uri rejects: the 400 is that
        // check's, after the line was read to its end and parsed.
        Some("400") => parts.protocol.is_some() || parts.uri.is_none(),
        Some("408") | None => parts.protocol.is_some(),
        Some(_) => true,
    };
    // A variable nginx did not set is logged `-` (empty under escape=json and escape=none); a
    // parsed line sets all those found here, none of them empty.
    let unset = |own: Option<&str>, ours: Option<&str>| {
        ours.is_some() && own.is_some_and(|v| (v == "-" || v.is_empty()) && ours != Some(v))
    };
    let contradicted = unset(own.method, parts.method)
        || unset(own.uri, parts.uri)
        || unset(own.protocol, parts.protocol);
    if parsed && !contradicted {
        parts
    } else {
        RequestParts::default()
    }
}

/// [`split_request`] when the version of the nginx that wrote the line is not known: what the
/// line itself proves, rather than assuming the newest rules.
/// - Served (`$status` other than 400, 408, 414 and 505): nginx parsed the line, so the rules
///   of some version accepted it, and every version that accepts a line reads it the same way:
///   the newest rules that accept it (`GET /annual report.pdf HTTP/1.1` answered 200 was
///   written by an nginx before 1.21.1).
/// - Answered 400 or 408: a line that some version rejects may have been rejected by the
///   parser (`GET /a b HTTP/1.1` answered 400 by 1.22): nothing, unless every version accepts it.
/// - No `$status`, 414, 505: the newest rules ([`request_parts`] decides on 414 and 505).
pub fn split_unknown<'a>(
    req: &'a str,
    escape: Escape,
    status: Option<&str>,
) -> Option<RequestParts<'a>> {
    let [newest, older @ ..] = RequestLineRules::NEWEST_FIRST;
    let first = split_request(req, escape, newest);
    match status {
        Some("400" | "408") => first.filter(|_| {
            older
                .iter()
                .all(|r| split_request(req, escape, *r).is_some())
        }),
        Some("414" | "505") | None => first,
        Some(_) => first.or_else(|| older.iter().find_map(|r| split_request(req, escape, *r))),
    }
}

/// nginx's reading of a request line, as a pure function of `$request` as logged with `escape`
/// (`\xHH` stands for the byte nginx escaped under `escape=default`; under `escape=json` the
/// caller unescapes first). `None` when nginx rejected the line: it then sets none of
/// `$request_method`, `$request_uri`, `$server_protocol`. The values are slices of `req`, so
/// they read as nginx would log those variables with the same escaping.
///
/// From nginx 1.22.1, with what `rules` changes ([`RequestLineRules`]):
/// - ngx_http_parse_request_line (src/http/ngx_http_parse.c): the method is `[A-Z_-]+` (any
///   such token: unknown methods pass, lower case does not), then one or more spaces. The URI
///   starts with `/` (origin form) or a letter (absolute form `scheme://host[:port]`, scheme
///   `[A-Za-z][A-Za-z0-9+.-]*`, host `[A-Za-z0-9.-]*` or `[IPv6 literal]`); anything else
///   (`*` of `OPTIONS *`, `PRI * HTTP/2.0`, TLS bytes) is rejected. In the URI, bytes below
///   0x20 and 0x7f are rejected, bytes from 0x80 pass, and a space ends it: since 1.21.1 what
///   follows one or more spaces must be `HTTP/` or the end, so a space inside the URI is a 400.
///   Before 1.21.1 only NUL is rejected, and spaces followed by anything but `H` (which starts
///   the version, right or wrong) are part of the URI.
/// - Since 1.29.3 `CONNECT` is followed by `host:port` only (sw_spaces_before_host), and
///   `$request_uri` is then the `/` of `HTTP/`.
///   The version is `HTTP/1.` plus 1 to 3 digits (`HTTP/0.9`, `HTTP/2.0` in a line are rejected:
///   400 and 505), then spaces only.
/// - No version: HTTP/0.9, which nginx accepts for `GET` only (NGX_HTTP_PARSE_INVALID_09_METHOD).
/// - ngx_http_process_request_line (src/http/ngx_http_request.c) sets `r->method_name` (the
///   method without the spaces) and `r->http_protocol` (from `H` to the end of the line, so
///   with any trailing spaces) once the line parsed, and only then calls
///   ngx_http_process_request_uri, which sets `r->unparsed_uri` after
///   ngx_http_parse_complex_uri accepted the path: a `..` above the root, a `%` not followed by
///   two hex digits, or `%00` is a 400 with `$request_method` and `$server_protocol` set and
///   `$request_uri` not (`complex_uri_ok`; `merge_slashes on`, nginx's default, assumed).
/// - `$request_uri` of an absolute-form line is from the path on: `/abs/path?rid=19` for
///   `http://front.test/abs/path?rid=19`, `?x` for `http://h?x`, and `/` (the first slash of
///   `://`) for `http://host` with no path.
/// - `$server_protocol` is not set for HTTP/0.9 (`r->http_protocol.data` stays NULL: `-`).
/// - HTTP/2 (and HTTP/3) requests are logged as built by ngx_http_v2_construct_request_line
///   (src/http/v2/ngx_http_v2.c): `method SP :path SP HTTP/2.0`, only once `:method`
///   (`[A-Z_-]+`, ngx_http_v2_parse_method) and `:path` (ngx_http_parse_uri: starts with `/`,
///   no byte up to 0x20 nor 0x7f, then ngx_http_process_request_uri) were accepted.
pub fn split_request(
    req: &str,
    escape: Escape,
    rules: RequestLineRules,
) -> Option<RequestParts<'_>> {
    if let Some(parts) = split_plain(req) {
        return Some(parts);
    }
    let escaped = escape == Escape::Default;
    if let Some(head) = req
        .strip_suffix(" HTTP/2.0")
        .or_else(|| req.strip_suffix(" HTTP/3.0"))
    {
        let (method, path) = head.split_once(' ')?;
        // ngx_http_parse_uri: before 1.21.1 any byte passes (spaces set r->space_in_uri).
        let path_ok = path.starts_with('/')
            && (!rules.strict_uri()
                || Decoded::new(path, escaped).all(|(c, _)| c > b' ' && c != 0x7f))
            && complex_uri_ok(path, escaped, false);
        return (is_method(method) && path_ok).then_some(RequestParts {
            method: Some(method),
            uri: Some(path),
            protocol: Some(&req[head.len() + 1..]),
        });
    }
    parse_http1(req, escaped, rules)
}

/// The common shape, `METHOD /uri HTTP/1.x` with single spaces and nothing escaped or unusual
/// in the URI, read without the byte-by-byte state machine of [`parse_http1`]; `None` for any
/// other line (which `parse_http1` then reads), never a different answer. Such a line reads
/// the same by the rules of every version; `CONNECT`, which 1.29.3 reads differently, is left
/// to `parse_http1`.
fn split_plain(req: &str) -> Option<RequestParts<'_>> {
    let sp = memchr::memchr(b' ', req.as_bytes())?;
    let (method, rest) = (&req[..sp], &req[sp + 1..]);
    if method == "CONNECT" {
        return None;
    }
    let last = memchr::memrchr(b' ', rest.as_bytes())?;
    let (uri, protocol) = (&rest[..last], &rest[last + 1..]);
    if !(uri.starts_with('/') && is_method(method) && http1_version(protocol)) {
        return None;
    }
    let simple = scan_plain_uri(uri.as_bytes())?;
    Some(RequestParts {
        method: Some(method),
        uri: (simple || complex_uri_ok(uri, false, false)).then_some(uri),
        protocol: Some(protocol),
    })
}

/// Reads a URI 8 bytes at a time (the bit tricks of [`super::json`]): `None` when it has a byte
/// nginx rejects in a URI (below 0x20, 0x7f), a space, or a `\` (an escape to read under
/// `escape=default`); else whether its path (up to the first `?`) is free of `%` and `/.`,
/// which alone can make ngx_http_parse_complex_uri fail.
fn scan_plain_uri(b: &[u8]) -> Option<bool> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // The high bit of each byte of `w` equal to `c`, exactly (no borrow between bytes).
    let eq = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        !(((x & LOW7) + LOW7) | x) & HIGH
    };
    let mut in_path = true;
    let mut simple = true;
    // The high bit of byte 0 set when the byte before this word is a `/`.
    let mut slash_before = 0;
    for c in b.chunks(8) {
        let mut word = [b'a'; 8];
        word[..c.len()].copy_from_slice(c);
        let w = u64::from_le_bytes(word);
        let below_space = w.wrapping_sub(ONES * 0x21) & !w & HIGH;
        if below_space | eq(w, 0x7f) | eq(w, b'\\') != 0 {
            return None;
        }
        if in_path && simple {
            let q = eq(w, b'?');
            // Bytes before the first `?` of this word (all when there is none).
            let path = if q == 0 {
                u64::MAX
            } else {
                in_path = false;
                (q & q.wrapping_neg()) - 1
            };
            let slash = eq(w, b'/');
            let slash_dot = ((slash << 8) | slash_before) & eq(w, b'.');
            simple = (eq(w, b'%') | slash_dot) & path == 0;
            slash_before = slash >> 56;
        }
    }
    Some(simple)
}

/// `[A-Z_-]+`: what nginx takes for a method (sw_start, sw_method; ngx_http_v2_parse_method).
fn is_method(m: &str) -> bool {
    !m.is_empty()
        && m.bytes()
            .all(|c| c.is_ascii_uppercase() || c == b'_' || c == b'-')
}

/// The bytes of a logged value: with `escaped` (nginx's `escape=default`) `\xHH` is the byte
/// 0xHH. Yields each byte with the offset in the text where it starts.
struct Decoded<'a> {
    text: &'a [u8],
    at: usize,
    escaped: bool,
}

impl<'a> Decoded<'a> {
    fn new(text: &'a str, escaped: bool) -> Self {
        Self {
            text: text.as_bytes(),
            at: 0,
            escaped,
        }
    }
}

impl Iterator for Decoded<'_> {
    type Item = (u8, usize);

    fn next(&mut self) -> Option<(u8, usize)> {
        let at = self.at;
        let &c = self.text.get(at)?;
        if self.escaped
            && c == b'\\'
            && let [b'x', h, l, ..] = self.text[at + 1..]
            && let (Some(h), Some(l)) = (hex(h), hex(l))
        {
            self.at += 4;
            return Some((h << 4 | l, at));
        }
        self.at += 1;
        Some((c, at))
    }
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// ngx_http_parse_request_line for HTTP/1.x and HTTP/0.9 lines, by `rules`; see
/// [`split_request`].
fn parse_http1(req: &str, escaped: bool, rules: RequestLineRules) -> Option<RequestParts<'_>> {
    let mut line = Http1Line::new(req, rules);
    for (c, at) in Decoded::new(req, escaped) {
        line.byte(c, at)?;
        if line.st == St::Protocol {
            break; // the version is read from the text (see http1_version)
        }
    }
    line.parts(req, escaped)
}

/// The states of ngx_http_parse_request_line that [`parse_http1`] follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Method,
    SpacesBeforeUri,
    SpacesBeforeHost,
    Schema,
    SchemaSlash,
    SchemaSlashSlash,
    HostStart,
    Host,
    IpLiteral,
    HostEnd,
    PortStart,
    Port,
    Uri,
    /// Spaces after the host: only the version or the end may follow.
    HostHttp09,
    /// Spaces after the URI: the version, the end, or (before 1.21.1) more URI.
    Http09,
    Protocol,
}

/// A request line being read byte by byte: the state, and where the parts found so far are.
struct Http1Line {
    rules: RequestLineRules,
    st: St,
    /// `CONNECT host:port` (since 1.29.3): the target is an authority, nothing else.
    connect: bool,
    /// The state after the host's `:`: sw_port_start (since 1.31.0, a `CONNECT` port has a
    /// first digit) or sw_port.
    port: St,
    method_end: usize,
    schema_end: usize,
    uri_start: usize,
    uri_end: usize,
    empty_path: bool,
    proto_start: usize,
}

impl Http1Line {
    fn new(req: &str, rules: RequestLineRules) -> Self {
        Http1Line {
            rules,
            st: St::Method,
            connect: rules.connect_authority() && req.starts_with("CONNECT "),
            port: if rules.connect_port_digit() {
                St::PortStart
            } else {
                St::Port
            },
            method_end: 0,
            schema_end: 0,
            uri_start: 0,
            uri_end: 0,
            empty_path: false,
            proto_start: 0,
        }
    }

    /// One byte (read or decoded) at offset `at`; `None` when nginx rejects the line there.
    fn byte(&mut self, c: u8, at: usize) -> Option<()> {
        match self.st {
            St::Method => self.method(c, at),
            St::SpacesBeforeUri | St::Schema | St::SchemaSlash | St::SchemaSlashSlash => {
                self.schema(c, at)
            }
            St::SpacesBeforeHost
            | St::HostStart
            | St::Host
            | St::IpLiteral
            | St::HostEnd
            | St::PortStart
            | St::Port => self.host(c, at),
            St::Uri | St::Http09 | St::HostHttp09 => self.uri_or_version(c, at),
            St::Protocol => Some(()),
        }
    }

    /// sw_start, sw_method: upper-case letters, `_` and `-` up to a space.
    fn method(&mut self, c: u8, at: usize) -> Option<()> {
        match c {
            b' ' if at > 0 => {
                self.method_end = at;
                self.st = if self.connect {
                    St::SpacesBeforeHost
                } else {
                    St::SpacesBeforeUri
                };
            }
            b'A'..=b'Z' | b'_' | b'-' => {}
            _ => return None,
        }
        Some(())
    }

    /// sw_spaces_before_uri to sw_schema_slash_slash: a `/` starts the URI, a letter a
    /// `scheme://`.
    fn schema(&mut self, c: u8, at: usize) -> Option<()> {
        let letter = (c | 0x20).is_ascii_lowercase();
        match self.st {
            St::SpacesBeforeUri => match c {
                b'/' => {
                    self.uri_start = at;
                    self.st = St::Uri;
                }
                b' ' => {}
                _ if letter => self.st = St::Schema,
                _ => return None,
            },
            St::Schema => match c {
                b':' => {
                    self.schema_end = at;
                    self.st = St::SchemaSlash;
                }
                b'0'..=b'9' | b'+' | b'-' | b'.' => {}
                _ if letter => {}
                _ => return None,
            },
            _ if c != b'/' => return None,
            St::SchemaSlash => self.st = St::SchemaSlashSlash,
            _ => self.st = St::HostStart,
        }
        Some(())
    }

    /// sw_host_start to sw_port (and the spaces before a `CONNECT`'s host): a name or an
    /// `[ip-literal]`, maybe a port, then what [`Self::after_host`] allows.
    fn host(&mut self, c: u8, at: usize) -> Option<()> {
        let letter = (c | 0x20).is_ascii_lowercase();
        match self.st {
            St::SpacesBeforeHost if c == b' ' => {}
            St::HostStart | St::SpacesBeforeHost if c == b'[' => self.st = St::IpLiteral,
            St::HostStart | St::SpacesBeforeHost | St::Host
                if letter || c.is_ascii_digit() || c == b'.' || c == b'-' =>
            {
                self.st = St::Host;
            }
            St::IpLiteral => match c {
                b']' => self.st = St::HostEnd,
                b'0'..=b'9' | b':' | b'-' | b'.' | b'_' | b'~' => {}
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
                _ if letter => {}
                _ => return None,
            },
            St::Port | St::PortStart if c.is_ascii_digit() => self.st = St::Port,
            _ => {
                let (next, uri) = self.after_host(c, at)?;
                self.st = next;
                match uri {
                    Some((start, empty)) => (self.uri_start, self.empty_path) = (start, empty),
                    // No path: nginx points the URI at the `/` after `scheme:`.
                    None if next == St::HostHttp09 && !self.connect => {
                        (self.uri_start, self.uri_end) = (self.schema_end + 1, self.schema_end + 2)
                    }
                    None => {}
                }
            }
        }
        Some(())
    }

    /// sw_host_end and sw_port: what may follow the host (`:` only once, before a port), and
    /// where the URI starts if that begins it (its offset, and whether the path is empty).
    fn after_host(&self, c: u8, at: usize) -> Option<(St, Option<(usize, bool)>)> {
        match c {
            b':' if !matches!(self.st, St::Port | St::PortStart) => Some((self.port, None)),
            _ if self.connect => {
                (c == b' ' && self.st == St::Port).then_some((St::HostHttp09, None))
            }
            b'/' => Some((St::Uri, Some((at, false)))),
            // r->empty_path_in_uri, since 1.19.6
            b'?' if self.rules.query_after_host() => Some((St::Uri, Some((at, true)))),
            b' ' => Some((St::HostHttp09, None)),
            _ => None,
        }
    }

    /// sw_check_uri, sw_uri and sw_http_09: the URI up to a space, then spaces up to the `H`
    /// of the version.
    fn uri_or_version(&mut self, c: u8, at: usize) -> Option<()> {
        match self.st {
            St::Uri => match c {
                b' ' => {
                    self.uri_end = at;
                    self.st = St::Http09;
                }
                _ if self.uri_byte(c) => {}
                _ => return None,
            },
            _ => match c {
                b' ' => {}
                b'H' => {
                    self.proto_start = at;
                    self.st = St::Protocol;
                }
                // Before 1.21.1: the spaces were part of the URI (r->space_in_uri).
                _ if self.st == St::Http09 && !self.rules.strict_uri() && self.uri_byte(c) => {
                    self.st = St::Uri
                }
                _ => return None,
            },
        }
        Some(())
    }

    /// A byte of the URI (sw_check_uri, sw_uri): NUL never, control bytes not since 1.21.1.
    fn uri_byte(&self, c: u8) -> bool {
        match c {
            0 | b'\r' | b'\n' => false,
            1..0x20 | 0x7f => !self.rules.strict_uri(),
            _ => true,
        }
    }

    /// The parts of the line once read to its end or its version; `None` when nginx rejects it.
    fn parts(mut self, req: &str, escaped: bool) -> Option<RequestParts<'_>> {
        let protocol = match self.st {
            St::Uri => {
                self.uri_end = req.len();
                None
            }
            St::Http09 | St::HostHttp09 => None,
            St::Protocol if http1_version(&req[self.proto_start..]) => {
                Some(&req[self.proto_start..])
            }
            _ => return None,
        };
        let method = &req[..self.method_end];
        if protocol.is_none() && method != "GET" {
            return None; // NGX_HTTP_PARSE_INVALID_09_METHOD
        }
        if self.connect {
            // sw_http_HTTP: the URI of a `CONNECT` is the `/` of `HTTP/`.
            (self.uri_start, self.uri_end) = (self.proto_start + 4, self.proto_start + 5);
        }
        let uri = &req[self.uri_start..self.uri_end];
        Some(RequestParts {
            method: Some(method),
            uri: complex_uri_ok(uri, escaped, self.empty_path).then_some(uri),
            protocol,
        })
    }
}

/// `HTTP/1.` + minor digits, then only spaces (sw_http_H … sw_spaces_after_digit): the major
/// version must be 1 (`HTTP/2.0` is NGX_HTTP_PARSE_INVALID_VERSION) and the minor at most 999.
fn http1_version(p: &str) -> bool {
    let Some(minor) = p.strip_prefix("HTTP/1.") else {
        return false;
    };
    let digits = minor.bytes().take_while(u8::is_ascii_digit).count();
    let mut n: u32 = 0;
    for c in minor[..digits].bytes() {
        if n > 99 {
            return false;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    digits > 0 && minor[digits..].bytes().all(|c| c == b' ')
}

/// Whether ngx_http_parse_complex_uri (src/http/ngx_http_parse.c) accepts the URI, run with
/// `merge_slashes on`: it decodes `%XX` in the path (up to `?` or `#`) and resolves `.` and `..`
/// segments, and fails on a `%` without two hex digits, on `%00`, and on a `..` that would go
/// above the root. Only that is followed here, not the decoded path: the output is tracked by
/// its number of `/` (its length above the root). nginx runs it only for URIs with `%`, `/.`,
/// `//`, `#` or no path; on the others it cannot fail.
fn complex_uri_ok(uri: &str, escaped: bool, empty_path: bool) -> bool {
    #[derive(Clone, Copy)]
    enum St {
        Usual,
        Slash,
        Dot,
        DotDot,
    }
    enum Step {
        Go(St),
        Quoted,
        Done,
        Fail,
    }
    // One byte (read or decoded) in state `st`; `slashes` counts the `/` written so far.
    fn step(st: St, c: u8, slashes: &mut u32) -> Step {
        match (st, c) {
            (St::DotDot, b'/' | b'?' | b'#') => {
                if *slashes <= 1 {
                    return Step::Fail; // `/..` at the root
                }
                *slashes -= 1;
                if c == b'/' {
                    Step::Go(St::Slash)
                } else {
                    Step::Done
                }
            }
            (_, b'?' | b'#') => Step::Done,
            (_, b'%') => Step::Quoted,
            (St::Usual, b'/') => {
                *slashes += 1;
                Step::Go(St::Slash)
            }
            (St::Slash, b'/') | (St::Dot, b'/') => Step::Go(St::Slash), // merged; `.` dropped
            (St::Slash, b'.') => Step::Go(St::Dot),
            (St::Dot, b'.') => Step::Go(St::DotDot),
            _ => Step::Go(St::Usual),
        }
    }
    let mut slashes = u32::from(empty_path);
    let mut st = St::Usual;
    let mut bytes = Decoded::new(uri, escaped).map(|(c, _)| c);
    while let Some(c) = bytes.next() {
        let mut next = step(st, c, &mut slashes);
        if let Step::Quoted = next {
            let (Some(h), Some(l)) = (bytes.next().and_then(hex), bytes.next().and_then(hex))
            else {
                return false; // sw_quoted, sw_quoted_second, or the URI ends inside `%XX`
            };
            next = match h << 4 | l {
                0 => return false,
                b'%' | b'#' | b'?' => Step::Go(St::Usual), // kept as a plain byte
                d => step(st, d, &mut slashes),
            };
        }
        match next {
            Step::Go(s) => st = s,
            Step::Done => return true,
            Step::Fail => return false,
            Step::Quoted => return false, // not reached: a decoded `%` is a plain byte
        }
    }
    match st {
        St::DotDot => slashes > 1,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's nginx 1.22.1, which the rows below were checked against.
    const V1_22: RequestLineRules = RequestLineRules::From1_21_1;

    /// What nginx 1.22.1 holds in `$request_method`, `$request_uri`, `$server_protocol` for a
    /// `$request`; each row checked against /usr/sbin/nginx (1.22.1) with
    /// `log_format '$status|$request|$request_method|$request_uri|$server_protocol'`.
    #[test]
    fn request_line_as_nginx_reads_it() {
        const D: Escape = Escape::Default;
        const J: Escape = Escape::Json;
        // (why, $request as logged, escape, Some((method, uri, protocol)) or None if rejected)
        #[allow(clippy::type_complexity)]
        let cases: [(
            &str,
            &str,
            Escape,
            Option<(&str, Option<&str>, Option<&str>)>,
        ); 44] = [
            (
                "origin form",
                "GET /index.html HTTP/1.1",
                D,
                Some(("GET", Some("/index.html"), Some("HTTP/1.1"))),
            ),
            (
                "HTTP/1.0",
                "HEAD /a?b=c HTTP/1.0",
                D,
                Some(("HEAD", Some("/a?b=c"), Some("HTTP/1.0"))),
            ),
            (
                "runs of spaces around the URI are separators (sw_spaces_before_uri, sw_http_09)",
                "GET  /double-space?rid=251   HTTP/1.1",
                D,
                Some(("GET", Some("/double-space?rid=251"), Some("HTTP/1.1"))),
            ),
            (
                "spaces after the version stay in $server_protocol (request_end - http_protocol.data)",
                "GET / HTTP/1.1  ",
                D,
                Some(("GET", Some("/"), Some("HTTP/1.1  "))),
            ),
            (
                "absolute form: $request_uri is from the path on",
                "GET http://front.test/abs/path?rid=19 HTTP/1.1",
                D,
                Some(("GET", Some("/abs/path?rid=19"), Some("HTTP/1.1"))),
            ),
            (
                "absolute form without a path: nginx points the URI at the `/` of `://`",
                "GET http://host HTTP/1.1",
                D,
                Some(("GET", Some("/"), Some("HTTP/1.1"))),
            ),
            (
                "absolute form with a port and no path",
                "GET http://host:8080 HTTP/1.1",
                D,
                Some(("GET", Some("/"), Some("HTTP/1.1"))),
            ),
            (
                "absolute form with a query and no path: the URI starts at `?` (empty_path_in_uri)",
                "GET http://host?x=1 HTTP/1.1",
                D,
                Some(("GET", Some("?x=1"), Some("HTTP/1.1"))),
            ),
            (
                "IPv6 literal host",
                "GET http://[::1]:80/v6 HTTP/1.1",
                D,
                Some(("GET", Some("/v6"), Some("HTTP/1.1"))),
            ),
            (
                "a host nginx later refuses (validate_host: 400) was parsed: all three set",
                "GET http://a..b/ HTTP/1.1",
                D,
                Some(("GET", Some("/"), Some("HTTP/1.1"))),
            ),
            (
                "`_` is not a host byte in the request line: rejected",
                "GET http://bad_host/ HTTP/1.1",
                D,
                None,
            ),
            (
                "scheme without `//`: rejected (CONNECT's authority form too)",
                "CONNECT example.com:443 HTTP/1.1",
                D,
                None,
            ),
            (
                "HTTP/0.9: GET without a version; no $server_protocol",
                "GET /",
                D,
                Some(("GET", Some("/"), None)),
            ),
            (
                "HTTP/0.9 with a trailing space",
                "GET / ",
                D,
                Some(("GET", Some("/"), None)),
            ),
            (
                "HTTP/0.9 is GET only (NGX_HTTP_PARSE_INVALID_09_METHOD)",
                "HEAD /",
                D,
                None,
            ),
            (
                "lower-case method: NGX_HTTP_PARSE_INVALID_METHOD",
                "geti / HTTP/1.1",
                D,
                None,
            ),
            (
                "unknown upper-case methods pass the parser",
                "FOO / HTTP/1.1",
                D,
                Some(("FOO", Some("/"), Some("HTTP/1.1"))),
            ),
            ("tab after the method", "GET\\x09/ HTTP/1.1", D, None),
            (
                "TLS handshake on a plain port",
                "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03",
                D,
                None,
            ),
            ("empty (a bare CRLF)", "", D, None),
            ("`-`: no request at all", "-", D, None),
            (
                "`OPTIONS *`: `*` cannot start a URI in nginx",
                "OPTIONS * HTTP/1.1",
                D,
                None,
            ),
            (
                "HTTP/2 preface on an HTTP/1 port",
                "PRI * HTTP/2.0",
                D,
                None,
            ),
            (
                "a space inside the URI: 400 since 1.21.1",
                "GET /files/annual report.pdf HTTP/1.1",
                D,
                None,
            ),
            (
                "the same with escape=json",
                "GET /files/annual report.pdf HTTP/1.1",
                J,
                None,
            ),
            ("text after the version", "GET /x HTTP/1.0 extra", D, None),
            (
                "a control byte in the URI (logged \\x01)",
                "GET /a\\x01b HTTP/1.1",
                D,
                None,
            ),
            ("DEL in the URI", "GET /a\\x7Fb HTTP/1.1", D, None),
            (
                "the same control byte under escape=json (unescaped by the caller)",
                "GET /a\u{1}b HTTP/1.1",
                J,
                None,
            ),
            (
                "`\"` and `\\` are allowed in the URI; logged \\x22, \\x5C",
                "GET /a\\x22q\\x5Cb HTTP/1.1",
                D,
                Some(("GET", Some("/a\\x22q\\x5Cb"), Some("HTTP/1.1"))),
            ),
            (
                "bytes from 0x80 are allowed; logged \\xHH",
                "GET /caf\\xC3\\xA9 HTTP/1.1",
                D,
                Some(("GET", Some("/caf\\xC3\\xA9"), Some("HTTP/1.1"))),
            ),
            (
                "the same as raw UTF-8 under escape=json",
                "GET /café HTTP/1.1",
                J,
                Some(("GET", Some("/café"), Some("HTTP/1.1"))),
            ),
            (
                "`..` above the root: ngx_http_parse_complex_uri fails after the method and \
              protocol were set",
                "GET /../etc/passwd HTTP/1.1",
                D,
                Some(("GET", None, Some("HTTP/1.1"))),
            ),
            (
                "encoded `..` above the root",
                "GET /%2e%2e/x HTTP/1.1",
                D,
                Some(("GET", None, Some("HTTP/1.1"))),
            ),
            (
                "`//..` is `/..` with merge_slashes on",
                "GET //../x HTTP/1.1",
                D,
                Some(("GET", None, Some("HTTP/1.1"))),
            ),
            (
                "`..` that stays under the root is fine",
                "GET /a/../b HTTP/1.1",
                D,
                Some(("GET", Some("/a/../b"), Some("HTTP/1.1"))),
            ),
            (
                "bad percent escape in the path",
                "GET /a/%zz HTTP/1.1",
                D,
                Some(("GET", None, Some("HTTP/1.1"))),
            ),
            (
                "%00 in the path",
                "GET /a%00b HTTP/1.1",
                D,
                Some(("GET", None, Some("HTTP/1.1"))),
            ),
            (
                "bad percent escape in the query is not checked",
                "GET /?a=%zz HTTP/1.1",
                D,
                Some(("GET", Some("/?a=%zz"), Some("HTTP/1.1"))),
            ),
            (
                "minor version up to 3 digits",
                "GET / HTTP/1.100",
                D,
                Some(("GET", Some("/"), Some("HTTP/1.100"))),
            ),
            ("minor version of 4 digits", "GET / HTTP/1.1000", D, None),
            (
                "HTTP/2 as nginx logs it (ngx_http_v2_construct_request_line)",
                "POST /api/v1/items?x=1 HTTP/2.0",
                D,
                Some(("POST", Some("/api/v1/items?x=1"), Some("HTTP/2.0"))),
            ),
            (
                "HTTP/2 lines have single spaces: this is an HTTP/1 line with version 2 (505)",
                "GET  / HTTP/2.0",
                D,
                None,
            ),
            (
                "HTTP/0.9-looking cut line (what 414 logs) reads as 0.9 here: $status decides, see \
              request_parts_follow_status",
                "GET /long?pad=AAAA",
                D,
                Some(("GET", Some("/long?pad=AAAA"), None)),
            ),
        ];
        for (why, req, escape, want) in cases {
            let got = split_request(req, escape, V1_22).map(|p| {
                (
                    p.method
                        .unwrap_or_else(|| panic!("{why}: parsed without a method")),
                    p.uri,
                    p.protocol,
                )
            });
            assert_eq!(got, want, "{why}: {req:?}");
            // The shortcut for plain lines answers as the state machine does, or not at all.
            if let Some(plain) = split_plain(req) {
                let full = parse_http1(req, escape == Escape::Default, V1_22);
                assert_eq!(Some(plain), full, "{why}: {req:?}");
            }
        }
    }

    #[test]
    fn plain_uri_scan() {
        // A byte at every offset of every length: (byte, allowed in a plain URI)
        let cases = [
            (0x00, false),
            (0x1f, false),
            (b' ', false),
            (0x7f, false),
            (b'\\', false),
            (b'!', true),
            (b'"', true),
            (b'~', true),
            (0x80, true),
            (0xff, true),
        ];
        for (byte, allowed) in cases {
            for len in 0..24 {
                for at in 0..=len {
                    let mut b = b"/abcdefghijklmnopqrstuvwxyz".to_vec();
                    b.truncate(len);
                    b.insert(at, byte);
                    let got = scan_plain_uri(&b).is_some();
                    assert_eq!(got, allowed, "{byte:#x} at {at} of {len}");
                }
            }
        }
        // (why, URI, whether the path is free of `%` and `/.`)
        let cases = [
            ("a dot inside a segment", "/index.html", true),
            ("a dot starting a segment", "/a/.well-known", false),
            ("`/.` across two words", "/abcdef/.x", false),
            ("`/` ending a word, `x` after", "/abcdef/x.y", true),
            ("`%` in the path", "/caf%C3%A9", false),
            ("`%` only in the query", "/search?q=caf%C3%A9", true),
            ("`/.` only in the query", "/a?next=/../x", true),
            ("`?` in a later word", "/abcdefghijk?q=%zz/.", true),
            ("`%` before `?` in a later word", "/abcdefghij%k?q", false),
            ("`..` at the end", "/a/..", false),
            (
                "`/` then `.` right after a `?` in the same word",
                "/a/?.",
                true,
            ),
        ];
        for (why, uri, simple) in cases {
            assert_eq!(scan_plain_uri(uri.as_bytes()), Some(simple), "{why}: {uri}");
            // The precise check agrees wherever the scan says simple.
            if simple {
                assert!(complex_uri_ok(uri, false, false), "{why}: {uri}");
            }
        }
    }

    #[test]
    fn request_parts_follow_status() {
        let all = |m, u, p| RequestParts {
            method: Some(m),
            uri: Some(u),
            protocol: p,
        };
        // (why, $request, $status if the format has it, expected parts)
        let cases = [
            (
                "414: the line filled large_client_header_buffers and was never parsed",
                "GET /long?pad=AAAA",
                Some("414"),
                RequestParts::default(),
            ),
            (
                "414 even if the cut fell after a version",
                "GET /long HTTP/1.1",
                Some("414"),
                RequestParts::default(),
            ),
            (
                "505: an HTTP/1 line with version 2 (nginx logs $server_protocol as empty)",
                "GET / HTTP/2.0",
                Some("505"),
                RequestParts::default(),
            ),
            (
                "HTTP/2 request answered",
                "GET / HTTP/2.0",
                Some("200"),
                all("GET", "/", Some("HTTP/2.0")),
            ),
            (
                "HTTP/2 request, no $status: taken as HTTP/2",
                "GET / HTTP/2.0",
                None,
                all("GET", "/", Some("HTTP/2.0")),
            ),
            (
                "0.9 shape, 400: the client closed before the line ended (`GET /partial`)",
                "GET /partial",
                Some("400"),
                RequestParts::default(),
            ),
            (
                "0.9 shape, 400, a URI the complex-URI check rejects: parsed, then that 400",
                "GET /bad%zz",
                Some("400"),
                RequestParts {
                    method: Some("GET"),
                    uri: None,
                    protocol: None,
                },
            ),
            (
                "0.9 shape, 408: the client went quiet mid-line",
                "GET /partial",
                Some("408"),
                RequestParts::default(),
            ),
            (
                "0.9 request answered 200: parsed",
                "GET /",
                Some("200"),
                all("GET", "/", None),
            ),
            (
                "0.9 shape without $status: cannot tell it from a cut line",
                "GET /",
                None,
                RequestParts::default(),
            ),
            (
                "HTTP/1.1 answered 400 for a missing Host: parsed, all set",
                "GET / HTTP/1.1",
                Some("400"),
                all("GET", "/", Some("HTTP/1.1")),
            ),
            (
                "rejected by the parser whatever the status",
                "geti / HTTP/1.1",
                Some("400"),
                RequestParts::default(),
            ),
            (
                "complex URI 400: method and protocol only",
                "GET /../x HTTP/1.1",
                Some("400"),
                RequestParts {
                    method: Some("GET"),
                    uri: None,
                    protocol: Some("HTTP/1.1"),
                },
            ),
        ];
        for (why, req, status, want) in cases {
            let own = RequestParts::default();
            assert_eq!(
                request_parts(req, Escape::Default, status, own, Some(V1_22)),
                want,
                "{why}"
            );
        }
        // The format's own variables as logged: (why, $request, $status, own, expected)
        let own = |m, u, p| RequestParts {
            method: m,
            uri: u,
            protocol: p,
        };
        let cases = [
            (
                "a whole line without CRLF, then the client closed (400): nginx logged               $server_protocol empty, so it never parsed the line",
                "GET / HTTP/1.1",
                own(None, None, Some("")),
                RequestParts::default(),
            ),
            (
                "the same seen in $request_uri logged `-`",
                "GET / HTTP/1.1",
                own(None, Some("-"), None),
                RequestParts::default(),
            ),
            (
                "the same under escape=json: $request_uri logged empty",
                "GET / HTTP/1.1",
                own(None, Some(""), None),
                RequestParts::default(),
            ),
            (
                "$request_uri `-` after a complex-URI 400 agrees with the split (no uri): kept",
                "GET /../x HTTP/1.1",
                own(None, Some("-"), None),
                RequestParts {
                    method: Some("GET"),
                    uri: None,
                    protocol: Some("HTTP/1.1"),
                },
            ),
            (
                "$request_method logged: a parsed line",
                "GET / HTTP/1.1",
                own(Some("GET"), None, None),
                all("GET", "/", Some("HTTP/1.1")),
            ),
            (
                "a `-` method is a valid method token",
                "- / HTTP/1.1",
                own(Some("-"), None, None),
                all("-", "/", Some("HTTP/1.1")),
            ),
        ];
        for (why, req, own, want) in cases {
            assert_eq!(
                request_parts(req, Escape::Default, Some("400"), own, Some(V1_22)),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn versions_name_their_rules() {
        use RequestLineRules as R;
        let cases = [
            ("1.18.0", Some(R::UpTo1_19_5)),
            ("1.18.0 (Ubuntu)", Some(R::UpTo1_19_5)),
            ("nginx/1.14.1", Some(R::UpTo1_19_5)),
            ("1.19.5", Some(R::UpTo1_19_5)),
            ("1.19.6", Some(R::From1_19_6)),
            ("1.20.1", Some(R::From1_19_6)),
            ("1.21.0", Some(R::From1_19_6)),
            ("1.21.1", Some(R::From1_21_1)),
            ("1.22.1", Some(R::From1_21_1)),
            ("nginx/1.22.1", Some(R::From1_21_1)),
            ("openresty/1.21.4.1", Some(R::From1_21_1)),
            ("openresty/1.19.3.2", Some(R::UpTo1_19_5)),
            ("1.29.2", Some(R::From1_21_1)),
            ("1.29.3", Some(R::From1_29_3)),
            ("1.30.4", Some(R::From1_29_3)),
            ("1.31.0", Some(R::From1_31_0)),
            ("2.0.0", Some(R::From1_31_0)),
            ("", None),
            ("1.22", None),
            ("1.22.x", None),
            ("1.22.1a", None),
            ("nginx/", None),
            ("tengine/2.3.3", None),
            ("1.22.1.", None),
        ];
        for (text, want) in cases {
            assert_eq!(RequestLineRules::for_version(text).ok(), want, "{text:?}");
            assert_eq!(
                RequestLineRules::from_metadata(Some(text)),
                want,
                "{text:?}"
            );
        }
        assert_eq!(RequestLineRules::from_metadata(None), None);
        assert_eq!(
            RequestLineRules::for_version("tengine/2.3.3")
                .unwrap_err()
                .to_string(),
            "\"tengine/2.3.3\" is not an nginx version: give it as `nginx -v` prints it \
             (1.18.0, nginx/1.22.1, openresty/1.21.4.1)"
        );
    }

    /// What each version's rules read in a `$request` (escape=default): the columns are
    /// [up to 1.19.5, 1.19.6, 1.21.1, 1.29.3, 1.31.0], checked against nginx 1.18.0, 1.20.2,
    /// 1.22.1, 1.30.4 and 1.31.4 (`log_format escape=json` of `$status $request
    /// $request_method $request_uri $server_protocol`; 1.20.2 and 1.31.4 built from nginx's
    /// release tags like the oracles, the others are tests/nginx_oracle.rs's).
    #[test]
    fn request_line_by_version() {
        type Parts = Option<(&'static str, Option<&'static str>, Option<&'static str>)>;
        let get = |u, p| Some(("GET", Some(u), p));
        let h11 = Some("HTTP/1.1");
        let spaced: Parts = get("/a b", h11);
        let connect_root: Parts = Some(("CONNECT", Some("/"), h11));
        let connect_x: Parts = Some(("CONNECT", Some("/x"), h11));
        #[allow(clippy::type_complexity)]
        let cases: [(&str, &str, [Parts; 5]); 18] = [
            ("plain", "GET /a HTTP/1.1", [get("/a", h11); 5]),
            (
                "a space inside the URI",
                "GET /a b HTTP/1.1",
                [spaced, spaced, None, None, None],
            ),
            (
                "two spaces inside the URI",
                "GET /a  b HTTP/1.1",
                [get("/a  b", h11), get("/a  b", h11), None, None, None],
            ),
            (
                "the issue's line: spaces in a file name",
                "GET /files/annual report 2026.pdf HTTP/1.1",
                [
                    get("/files/annual report 2026.pdf", h11),
                    get("/files/annual report 2026.pdf", h11),
                    None,
                    None,
                    None,
                ],
            ),
            (
                "`H` after a space starts the version, right or wrong",
                "GET /a Hb HTTP/1.1",
                [None; 5],
            ),
            ("text after the version", "GET /a b HTTP/1.1 x", [None; 5]),
            (
                "a control byte",
                r"GET /ctl\x01x HTTP/1.1",
                [
                    get(r"/ctl\x01x", h11),
                    get(r"/ctl\x01x", h11),
                    None,
                    None,
                    None,
                ],
            ),
            (
                "DEL and a tab",
                r"GET /del\x7Fx\x09y HTTP/1.1",
                [
                    get(r"/del\x7Fx\x09y", h11),
                    get(r"/del\x7Fx\x09y", h11),
                    None,
                    None,
                    None,
                ],
            ),
            ("NUL, always", r"GET /a\x00b HTTP/1.1", [None; 5]),
            (
                "a space in an absolute URI's path",
                "GET http://h/a b HTTP/1.1",
                [spaced, spaced, None, None, None],
            ),
            (
                "a space after the host",
                "GET http://h b HTTP/1.1",
                [None; 5],
            ),
            (
                "HTTP/0.9 with a space",
                "GET /x y",
                [get("/x y", None), get("/x y", None), None, None, None],
            ),
            (
                "a query right after the host",
                "GET http://h:80?x=1 HTTP/1.1",
                [
                    None,
                    get("?x=1", h11),
                    get("?x=1", h11),
                    get("?x=1", h11),
                    get("?x=1", h11),
                ],
            ),
            (
                "CONNECT host:port",
                "CONNECT front.test:443 HTTP/1.1",
                [None, None, None, connect_root, connect_root],
            ),
            (
                "CONNECT to an IPv6 literal",
                "CONNECT  [::1]:443 HTTP/1.1",
                [None, None, None, connect_root, connect_root],
            ),
            (
                "CONNECT host: without a port",
                "CONNECT front.test: HTTP/1.1",
                [None, None, None, connect_root, None],
            ),
            (
                "CONNECT with an origin-form target",
                "CONNECT /x HTTP/1.1",
                [connect_x, connect_x, connect_x, None, None],
            ),
            (
                "CONNECT with an absolute URI",
                "CONNECT http://h/x HTTP/1.1",
                [connect_x, connect_x, connect_x, None, None],
            ),
        ];
        let oldest_first = {
            let mut r = RequestLineRules::NEWEST_FIRST;
            r.reverse();
            r
        };
        for (why, req, wants) in cases {
            for (rules, want) in oldest_first.into_iter().zip(wants) {
                let got = split_request(req, Escape::Default, rules)
                    .map(|p| (p.method.expect("a method"), p.uri, p.protocol));
                assert_eq!(got, want, "{why}: {req:?} by {rules:?}");
                if let Some(plain) = split_plain(req) {
                    let full = parse_http1(req, true, rules);
                    assert_eq!(Some(plain), full, "{why}: {req:?} by {rules:?}");
                }
            }
        }
    }

    #[test]
    fn without_a_version_a_line_is_read_by_what_it_proves() {
        let parts = |m, u, p| RequestParts {
            method: Some(m),
            uri: Some(u),
            protocol: p,
        };
        let h11 = Some("HTTP/1.1");
        // (why, $request, $status, expected)
        let cases = [
            (
                "served with a space in the URI: an nginx before 1.21.1 wrote it",
                "GET /files/annual report 2026.pdf HTTP/1.1",
                Some("200"),
                parts("GET", "/files/annual report 2026.pdf", h11),
            ),
            (
                "the same answered 400: 1.21.1 and later reject it",
                "GET /files/annual report 2026.pdf HTTP/1.1",
                Some("400"),
                RequestParts::default(),
            ),
            (
                "the same without $status: the newest rules",
                "GET /files/annual report 2026.pdf HTTP/1.1",
                None,
                RequestParts::default(),
            ),
            (
                "a control byte, 404",
                r"GET /ctl\x01x HTTP/1.1",
                Some("404"),
                parts("GET", r"/ctl\x01x", h11),
            ),
            (
                "HTTP/0.9 with a space, served",
                "GET /x y",
                Some("200"),
                parts("GET", "/x y", None),
            ),
            (
                "a query after the host, served",
                "GET http://h?x=1 HTTP/1.1",
                Some("200"),
                parts("GET", "?x=1", h11),
            ),
            (
                "a query after the host, 400: before 1.19.6 the parser rejected it",
                "GET http://h?x=1 HTTP/1.1",
                Some("400"),
                RequestParts::default(),
            ),
            (
                "CONNECT host:port, 405: 1.29.3 or later parsed it",
                "CONNECT front.test:443 HTTP/1.1",
                Some("405"),
                parts("CONNECT", "/", h11),
            ),
            (
                "CONNECT host:port, 400: an older parser rejected it",
                "CONNECT front.test:443 HTTP/1.1",
                Some("400"),
                RequestParts::default(),
            ),
            (
                "CONNECT host: (no port), 405: 1.29.3 to 1.30",
                "CONNECT front.test: HTTP/1.1",
                Some("405"),
                parts("CONNECT", "/", h11),
            ),
            (
                "CONNECT /x, 405: before 1.29.3",
                "CONNECT /x HTTP/1.1",
                Some("405"),
                parts("CONNECT", "/x", h11),
            ),
            (
                "CONNECT /x, 400: 1.29.3 or later rejected it",
                "CONNECT /x HTTP/1.1",
                Some("400"),
                RequestParts::default(),
            ),
            (
                "every version accepts it: 400 for a bad header",
                "GET /x HTTP/1.1",
                Some("400"),
                parts("GET", "/x", h11),
            ),
            (
                "414: never parsed, whatever the version",
                "GET /a b HTTP/1.1",
                Some("414"),
                RequestParts::default(),
            ),
        ];
        for (why, req, status, want) in cases {
            assert_eq!(
                request_parts(req, Escape::Default, status, RequestParts::default(), None),
                want,
                "{why}: {req:?} {status:?}"
            );
        }
    }
}
