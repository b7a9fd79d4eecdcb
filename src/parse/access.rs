//! Access-log lines → events, through the compiled `log_format`.

use std::borrow::BorrowMut;
use std::sync::Arc;

use super::format::{Escape, TimeVar};
use super::json::{CLOSE_EVENT, InArena, ObjectWriter, open_event, push_message};
use super::time::{parse_msec, parse_time_iso8601, parse_time_local};
use super::{LogEvent, Message, OutputFormat, ParseSettings, unparsed_message};

/// Parses one access line. Never fails: a line that does not match the format is forwarded raw.
pub fn parse_line(
    settings: &ParseSettings,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
) -> LogEvent {
    parse_line_with(settings, line, line_no, fallback_ts, &mut Vec::new())
}

/// [`parse_line`] with a reusable buffer for the field ranges (no allocation per line but the
/// message itself).
pub fn parse_line_with(
    settings: &ParseSettings,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    spans: &mut Vec<(usize, usize)>,
) -> LogEvent {
    let mut arena = String::new();
    let (mut ev, at) = parse_line_into(settings, line, line_no, fallback_ts, spans, &mut arena);
    if let Some(at) = at {
        ev.message = Message::in_arena(&Arc::new(arena), at);
    }
    ev
}

/// [`parse_line_with`] writing the message into `arena`, the buffer a worker shares between the
/// messages of a block: the event's message is left empty and the second value says where its
/// text is ([`Message::in_arena`] makes it the event's once the block is done). `None`: the
/// event has its message already (a line that did not parse) or none (filtered).
pub fn parse_line_into(
    settings: &ParseSettings,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    spans: &mut Vec<(usize, usize)>,
    arena: &mut String,
) -> (LogEvent, Option<InArena>) {
    match locate(settings, line, spans) {
        Ok(found) => {
            let timestamp = found.timestamp.unwrap_or(fallback_ts);
            let event = |filtered| LogEvent {
                timestamp,
                message: Message::default(),
                line: line_no,
                offset: 0,
                parse_failed: false,
                filtered,
            };
            if let Some(filtered) = filtered(settings, line, spans, line_no) {
                // Counted, never sent: no message is written.
                return (event(Some(filtered)), None);
            }
            // Inside the event object of a request body, with a comma after it: consecutive
            // events of a batch are then one run of the arena ([`Message::frame`]).
            let frame = arena.len();
            open_event(arena, timestamp);
            let mut at = match settings.output {
                OutputFormat::Raw => push_message(arena, line),
                OutputFormat::Json => {
                    let start = arena.len();
                    let mut w = ObjectWriter::nested(arena);
                    write_fields(settings, line, spans, found.tail, &mut w);
                    w.finish_in_arena(start)
                }
            };
            arena.push_str(CLOSE_EVENT);
            arena.push(',');
            at.frame = Some((frame, timestamp));
            (event(None), Some(at))
        }
        Err(reason) => (
            unparsed_event(settings, line, line_no, fallback_ts, &reason),
            None,
        ),
    }
}

/// The event of a line that did not parse: forwarded raw with `reason`, at `fallback_ts`.
pub fn unparsed_event(
    settings: &ParseSettings,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    reason: &str,
) -> LogEvent {
    LogEvent {
        timestamp: fallback_ts,
        message: unparsed_message(settings.output, line, reason, &settings.extra),
        line: line_no,
        offset: 0,
        parse_failed: true,
        filtered: None,
    }
}

/// What `FILTER_RULES` does to a line that parsed (`spans` located): the fields are the
/// format's variables as logged (`-` is no value) and the parts of `$request`.
pub fn filtered(
    settings: &ParseSettings,
    line: &str,
    spans: &[(usize, usize)],
    line_no: u64,
) -> Option<crate::parse::filter::Filtered> {
    if !settings.rules.any_for(crate::route::LogKind::Access) {
        return None;
    }
    let fmt = &settings.access_format;
    let logged = |i: usize| Some(value(line, spans, i)).filter(|v| *v != "-");
    let parts = std::cell::OnceCell::new();
    let parts = || {
        *parts.get_or_init(|| {
            let request = fmt.vars().iter().position(|v| v.request).and_then(logged);
            request.map(|r| logged_request_parts(fmt, line, spans, r))
        })
    };
    let [method, uri, protocol] = fmt.derived_keys();
    settings.rules.decide(
        crate::route::LogKind::Access,
        |field| {
            if let Some(i) = fmt
                .vars()
                .iter()
                .position(|v| v.write && v.key.name() == field)
            {
                return logged(i);
            }
            let p: RequestParts<'_> = parts()?;
            if field == method.name() {
                p.method
            } else if field == uri.name() {
                p.uri
            } else if field == protocol.name() {
                p.protocol
            } else {
                None
            }
        },
        settings.sample_seed,
        line_no,
    )
}

/// Where a matching line's parts are: its time, and where the text after the format starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// `None` when the format has no time variable (the caller's fallback applies).
    pub timestamp: Option<i64>,
    pub tail: usize,
}

/// Splits `line` by the format into `spans` and reads its time; `Err` gives why the line does
/// not parse (it is then forwarded raw). The first half of [`parse_line_with`], for callers that
/// write the message themselves ([`write_fields`]).
pub fn locate(
    settings: &ParseSettings,
    line: &str,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Located, String> {
    let fmt = &settings.access_format;
    let tail = fmt
        .split_spans(line, spans)
        .map_err(|m| format!("line does not match ACCESS_LOG_FORMAT: {}", m.reason))?;
    let Some(i) = fmt.time_var() else {
        return Ok(Located {
            timestamp: None,
            tail,
        });
    };
    let var = &fmt.vars()[i];
    let text = value(line, spans, i);
    let parsed = match var.time {
        Some(TimeVar::Local) => parse_time_local(text),
        Some(TimeVar::Iso8601) => parse_time_iso8601(text),
        Some(TimeVar::Msec) => parse_msec(text),
        None => None,
    };
    match parsed {
        Some(ts) => Ok(Located {
            timestamp: Some(ts),
            tail,
        }),
        None => Err(format!("bad ${} value {text:?}", var.name)),
    }
}

/// The key under which text after the end of the format is kept (unless the format has a
/// variable of that name: then [`LogFormat::tail_key`](super::LogFormat::tail_key)).
pub use super::format::UNPARSED_TAIL;

fn value<'l>(line: &'l str, spans: &[(usize, usize)], i: usize) -> &'l str {
    let (a, b) = spans[i];
    &line[a..b]
}

/// Writes the fields of a line that [`locate`] split into `w`: one per variable name in format
/// order (the first occurrence of a name the format repeats; `-` means no value and is left
/// out), after `$request` what nginx's `$request_method`, `$request_uri` and `$server_protocol`
/// held for it when the format does not have them itself ([`request_parts`]), and any text
/// after the format. Every key is written at most once. The second half of
/// [`parse_line_with`].
pub fn write_fields<B: BorrowMut<String>>(
    settings: &ParseSettings,
    line: &str,
    spans: &[(usize, usize)],
    tail: usize,
    w: &mut ObjectWriter<B>,
) {
    let fmt = &settings.access_format;
    let derived = fmt.derived();
    // json-compact: the event's timestamp carries the time variable it was read from.
    let time_var = fmt.time_var().filter(|_| settings.compact);
    for (i, (var, &(a, b))) in fmt.vars().iter().zip(spans).enumerate() {
        let raw = &line[a..b];
        if !var.write || raw == "-" {
            continue; // a repeated name, or nginx's `-` for "no value"
        }
        let unescaped;
        let value = if fmt.escape() == Escape::Json && raw.contains('\\') {
            unescaped = unescape_json(raw);
            unescaped.as_str()
        } else {
            raw
        };
        if time_var == Some(i) {
            if let Some(offset) = var.time.and_then(|t| nonzero_offset(t, value)) {
                w.str_field("time_offset", offset);
            }
            continue;
        }
        let parts = (var.request && (derived.any() || settings.compact))
            .then(|| logged_request_parts(fmt, line, spans, value));
        // json-compact: `request` is left out when its parts, in the message, rebuild it.
        let rebuilt = settings.compact && parts.is_some_and(|p| p.rebuild_exactly(value));
        if var.request && (!fmt.writes_request() || rebuilt) {
            // Only its parts (td-agent's names, or json-compact).
        } else if var.numeric {
            w.num_field_at(&var.key, value);
        } else {
            w.str_field_at(&var.key, value);
        }
        if let Some(parts) = parts.filter(|_| derived.any()) {
            let [method, uri, protocol] = fmt.derived_keys();
            for (wanted, key, v) in [
                (derived.request_method, method, parts.method),
                (derived.request_uri, uri, parts.uri),
                (derived.server_protocol, protocol, parts.protocol),
            ] {
                if let (true, Some(v)) = (wanted, v) {
                    w.str_field_at(key, v);
                }
            }
        }
    }
    let tail = line[tail..].trim();
    if !tail.is_empty() {
        w.str_field_at(fmt.tail_key(), tail);
    }
    settings.extra.write_to(w);
}

/// [`request_parts`] of `request` (the line's `$request`), with what the line's own `$status`,
/// `$request_method`, `$request_uri` and `$server_protocol` say, as logged.
fn logged_request_parts<'r>(
    fmt: &super::LogFormat,
    line: &str,
    spans: &[(usize, usize)],
    request: &'r str,
) -> RequestParts<'r> {
    let logged = |i: Option<usize>| i.map(|i| value(line, spans, i));
    let [m, u, p] = fmt.request_part_vars();
    let own = RequestParts {
        method: logged(m),
        uri: logged(u),
        protocol: logged(p),
    };
    request_parts(request, fmt.escape(), logged(fmt.status_var()), own)
}

/// A time variable's UTC offset when it is not zero (`+0100` of `$time_local`, `+01:00` of
/// `$time_iso8601`); `$msec` has none.
fn nonzero_offset(time: TimeVar, value: &str) -> Option<&str> {
    let offset = match time {
        TimeVar::Local => value.get(value.len().checked_sub(5)?..)?,
        TimeVar::Iso8601 => value.get(value.len().checked_sub(6)?..)?,
        TimeVar::Msec => return None,
    };
    (!matches!(offset, "+0000" | "+00:00" | "-0000" | "-00:00")).then_some(offset)
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
///   answered at once, without reading headers or a body that could fail.
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
pub fn request_parts<'a>(
    request: &'a str,
    escape: Escape,
    status: Option<&str>,
    own: RequestParts<'_>,
) -> RequestParts<'a> {
    let Some(parts) = split_request(request, escape) else {
        return RequestParts::default();
    };
    let parsed = match status {
        Some("414" | "505") => false,
        Some("400" | "408") | None => parts.protocol.is_some(),
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

/// nginx's reading of a request line, as a pure function of `$request` as logged with `escape`
/// (`\xHH` stands for the byte nginx escaped under `escape=default`; under `escape=json` the
/// caller unescapes first). `None` when nginx rejected the line: it then sets none of
/// `$request_method`, `$request_uri`, `$server_protocol`. The values are slices of `req`, so
/// they read as nginx would log those variables with the same escaping.
///
/// From nginx 1.22.1:
/// - ngx_http_parse_request_line (src/http/ngx_http_parse.c): the method is `[A-Z_-]+` (any
///   such token: unknown methods pass, lower case does not), then one or more spaces. The URI
///   starts with `/` (origin form) or a letter (absolute form `scheme://host[:port]`, scheme
///   `[A-Za-z][A-Za-z0-9+.-]*`, host `[A-Za-z0-9.-]*` or `[IPv6 literal]`); anything else
///   (`*` of `OPTIONS *`, `PRI * HTTP/2.0`, TLS bytes) is rejected. In the URI, bytes below
///   0x20 and 0x7f are rejected, bytes from 0x80 pass, and a space ends it: since 1.21.1 what
///   follows one or more spaces must be `HTTP/` or the end, so a space inside the URI is a 400.
///   The version is `HTTP/1.` plus 1 to 3 digits (`HTTP/0.9`, `HTTP/2.0` in a line are rejected:
///   400 and 505), then spaces only.
/// - No version: HTTP/0.9, which nginx accepts for `GET` only (NGX_HTTP_PARSE_INVALID_09_METHOD).
/// - ngx_http_process_request_line (src/http/ngx_http_request.c) sets `r->method_name` (the
///   method without the spaces) and `r->http_protocol` (from `H` to the end of the line, so
///   with any trailing spaces) once the line parsed, and only then calls
///   ngx_http_process_request_uri, which sets `r->unparsed_uri` after
///   ngx_http_parse_complex_uri accepted the path: a `..` above the root, a `%` not followed by
///   two hex digits, or `%00` is a 400 with `$request_method` and `$server_protocol` set and
///   `$request_uri` not ([`complex_uri_ok`]; `merge_slashes on`, nginx's default, assumed).
/// - `$request_uri` of an absolute-form line is from the path on: `/abs/path?rid=19` for
///   `http://front.test/abs/path?rid=19`, `?x` for `http://h?x`, and `/` (the first slash of
///   `://`) for `http://host` with no path.
/// - `$server_protocol` is not set for HTTP/0.9 (`r->http_protocol.data` stays NULL: `-`).
/// - HTTP/2 (and HTTP/3) requests are logged as built by ngx_http_v2_construct_request_line
///   (src/http/v2/ngx_http_v2.c): `method SP :path SP HTTP/2.0`, only once `:method`
///   (`[A-Z_-]+`, ngx_http_v2_parse_method) and `:path` (ngx_http_parse_uri: starts with `/`,
///   no byte up to 0x20 nor 0x7f, then ngx_http_process_request_uri) were accepted.
pub fn split_request(req: &str, escape: Escape) -> Option<RequestParts<'_>> {
    if let Some(parts) = split_plain(req) {
        return Some(parts);
    }
    let escaped = escape == Escape::Default;
    if let Some(head) = req
        .strip_suffix(" HTTP/2.0")
        .or_else(|| req.strip_suffix(" HTTP/3.0"))
    {
        let (method, path) = head.split_once(' ')?;
        let path_ok = path.starts_with('/')
            && Decoded::new(path, escaped).all(|(c, _)| c > b' ' && c != 0x7f)
            && complex_uri_ok(path, escaped, false);
        return (is_method(method) && path_ok).then_some(RequestParts {
            method: Some(method),
            uri: Some(path),
            protocol: Some(&req[head.len() + 1..]),
        });
    }
    parse_http1(req, escaped)
}

/// The common shape, `METHOD /uri HTTP/1.x` with single spaces and nothing escaped or unusual
/// in the URI, read without the byte-by-byte state machine of [`parse_http1`]; `None` for any
/// other line (which `parse_http1` then reads), never a different answer.
fn split_plain(req: &str) -> Option<RequestParts<'_>> {
    let sp = memchr::memchr(b' ', req.as_bytes())?;
    let (method, rest) = (&req[..sp], &req[sp + 1..]);
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

/// ngx_http_parse_request_line for HTTP/1.x and HTTP/0.9 lines; see [`split_request`].
fn parse_http1(req: &str, escaped: bool) -> Option<RequestParts<'_>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum St {
        Method,
        SpacesBeforeUri,
        Schema,
        SchemaSlash,
        SchemaSlashSlash,
        HostStart,
        Host,
        IpLiteral,
        HostEnd,
        Port,
        Uri,
        Http09,
        Protocol,
    }
    let mut st = St::Method;
    let mut method_end = 0;
    let mut schema_end = 0;
    let (mut uri_start, mut uri_end) = (0, 0);
    let mut empty_path = false;
    let mut proto_start = 0;
    // sw_host_end and sw_port: what may follow the host (`:` only once, before a port).
    let after_host = |c: u8, at: usize, st: St| match c {
        b':' if st != St::Port => Some((St::Port, None)),
        b'/' => Some((St::Uri, Some((at, false)))),
        b'?' => Some((St::Uri, Some((at, true)))), // r->empty_path_in_uri
        b' ' => Some((St::Http09, None)),
        _ => None,
    };
    for (c, at) in Decoded::new(req, escaped) {
        let letter = (c | 0x20).is_ascii_lowercase();
        match st {
            St::Method => match c {
                b' ' if at > 0 => {
                    method_end = at;
                    st = St::SpacesBeforeUri;
                }
                b'A'..=b'Z' | b'_' | b'-' => {}
                _ => return None,
            },
            St::SpacesBeforeUri => match c {
                b'/' => {
                    uri_start = at;
                    st = St::Uri;
                }
                b' ' => {}
                _ if letter => st = St::Schema,
                _ => return None,
            },
            St::Schema => match c {
                b':' => {
                    schema_end = at;
                    st = St::SchemaSlash;
                }
                b'0'..=b'9' | b'+' | b'-' | b'.' => {}
                _ if letter => {}
                _ => return None,
            },
            St::SchemaSlash | St::SchemaSlashSlash if c != b'/' => return None,
            St::SchemaSlash => st = St::SchemaSlashSlash,
            St::SchemaSlashSlash => st = St::HostStart,
            St::HostStart if c == b'[' => st = St::IpLiteral,
            St::HostStart | St::Host if letter || c.is_ascii_digit() || c == b'.' || c == b'-' => {
                st = St::Host;
            }
            St::IpLiteral => match c {
                b']' => st = St::HostEnd,
                b'0'..=b'9' | b':' | b'-' | b'.' | b'_' | b'~' => {}
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => {}
                _ if letter => {}
                _ => return None,
            },
            St::Port if c.is_ascii_digit() => {}
            St::HostStart | St::Host | St::HostEnd | St::Port => {
                let (next, uri) = after_host(c, at, st)?;
                st = next;
                match uri {
                    Some((start, empty)) => (uri_start, empty_path) = (start, empty),
                    // No path: nginx points the URI at the `/` after `scheme:`.
                    None if next == St::Http09 => {
                        (uri_start, uri_end) = (schema_end + 1, schema_end + 2)
                    }
                    None => {}
                }
            }
            St::Uri => match c {
                b' ' => {
                    uri_end = at;
                    st = St::Http09;
                }
                0..0x20 | 0x7f => return None,
                _ => {}
            },
            St::Http09 => match c {
                b' ' => {}
                b'H' => {
                    proto_start = at;
                    st = St::Protocol;
                    break;
                }
                _ => return None,
            },
            St::Protocol => break,
        }
    }
    let protocol = match st {
        St::Uri => {
            uri_end = req.len();
            None
        }
        St::Http09 => None,
        St::Protocol if http1_version(&req[proto_start..]) => Some(&req[proto_start..]),
        _ => return None,
    };
    let method = &req[..method_end];
    if protocol.is_none() && method != "GET" {
        return None; // NGX_HTTP_PARSE_INVALID_09_METHOD
    }
    let uri = &req[uri_start..uri_end];
    Some(RequestParts {
        method: Some(method),
        uri: complex_uri_ok(uri, escaped, empty_path).then_some(uri),
        protocol,
    })
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

fn unescape_json(raw: &str) -> String {
    let mut quoted = String::with_capacity(raw.len() + 2);
    quoted.push('"');
    quoted.push_str(raw);
    quoted.push('"');
    serde_json::from_str(&quoted).unwrap_or_else(|_| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::LogFormat;
    use serde_json::{Value, json};

    fn settings(fmt: &str) -> ParseSettings {
        ParseSettings {
            access_format: LogFormat::parse_config(fmt).unwrap(),
            ..ParseSettings::default()
        }
    }

    fn parse(fmt: &str, line: &str) -> (i64, Value, bool) {
        let ev = parse_line(&settings(fmt), line, 1, 42);
        (
            ev.timestamp,
            serde_json::from_str(&ev.message.text()).unwrap(),
            ev.parse_failed,
        )
    }

    /// A compact message's value for a variable, rebuilt as nginx wrote it: the field, else the
    /// time from the event's timestamp (and `time_offset`), `request` from its parts, or `-`.
    fn rebuild(var: &super::super::format::Var, ts: i64, msg: &Value) -> String {
        if let Some(v) = msg.get(var.key.name()) {
            return v.as_str().map_or_else(|| v.to_string(), str::to_string);
        }
        if var.time == Some(TimeVar::Local) {
            let off = msg["time_offset"].as_str().unwrap_or("+0000");
            let sign = if off.starts_with('-') { -1 } else { 1 };
            let secs: i32 =
                off[1..3].parse::<i32>().unwrap() * 3600 + off[3..5].parse::<i32>().unwrap() * 60;
            let offset = jiff::tz::Offset::from_seconds(sign * secs).unwrap();
            let t = offset.to_datetime(jiff::Timestamp::from_millisecond(ts).unwrap());
            return format!("{} {off}", t.strftime("%d/%b/%Y:%H:%M:%S"));
        }
        let part = |k: &str| msg.get(k).and_then(Value::as_str);
        if let (true, Some(m), Some(u), Some(p)) = (
            var.request,
            part("request_method"),
            part("request_uri"),
            part("server_protocol"),
        ) {
            return format!("{m} {u} {p}");
        }
        "-".to_string()
    }

    /// json-compact writes nothing twice, and loses nothing: every variable of the line is
    /// rebuilt exactly from the event (timestamp and message), for `combined` and `main`.
    #[test]
    fn compact_messages_rebuild_the_line() {
        let fixture = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/access.log"
        ))
        .unwrap();
        let more = [
            r#"203.0.113.9 - bob [24/Nov/2026:11:00:01 +0100] "GET /a%20b?q=\x22x\x22 HTTP/1.1" 304 0 "-" "Mozilla/5.0" "10.0.0.1, 10.0.0.2""#,
            r#"203.0.113.9 - - [24/Nov/2026:04:00:01 -0600] "GET /" 200 5 "-" "-" "-""#,
            r#"203.0.113.9 - - [24/Nov/2026:10:00:01 +0000] "GET  /two-spaces HTTP/1.1" 400 0 "-" "-" "-""#,
            r#"203.0.113.9 - - [24/Nov/2026:10:00:01 +0530] "-" 400 0 "-" "-" "-""#,
        ];
        for fmt in ["combined", "main"] {
            let mut s = settings(fmt);
            s.compact = true;
            let mut spans = Vec::new();
            let lines: Vec<String> = fixture
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with("this line"))
                .map(|l| {
                    if fmt == "main" {
                        format!("{l} \"-\"")
                    } else {
                        l.to_string()
                    }
                })
                .chain(more.iter().map(|l| {
                    if fmt == "main" {
                        l.to_string()
                    } else {
                        l[..l.rfind(" \"").unwrap()].to_string()
                    }
                }))
                .collect();
            let mut omitted = 0;
            for line in &lines {
                let ev = parse_line(&s, line, 1, 42);
                assert!(!ev.parse_failed, "{fmt}: {line}");
                let msg: Value = serde_json::from_str(&ev.message.text()).unwrap();
                assert!(msg.get("time_local").is_none(), "{msg}");
                omitted += usize::from(msg.get("request").is_none());
                locate(&s, line, &mut spans).unwrap();
                for (var, &(a, b)) in s.access_format.vars().iter().zip(&spans) {
                    assert_eq!(
                        rebuild(var, ev.timestamp, &msg),
                        line[a..b],
                        "{fmt}: ${} of {line}\n{msg}",
                        var.name
                    );
                }
            }
            // Every well-formed request (the fixture's nine and the `+0100` one); not the TLS
            // bytes nor the HTTP/0.9 shape, which their parts do not rebuild.
            assert!(
                omitted >= 10 && omitted <= lines.len() - 2,
                "{fmt}: {omitted}"
            );
        }
        // Offsets: kept when not zero; none for UTC.
        let mut s = settings("combined");
        s.compact = true;
        let msg = |line: &str| {
            serde_json::from_str::<Value>(&parse_line(&s, line, 1, 0).message.text()).unwrap()
        };
        let line =
            r#"1.2.3.4 - - [24/Nov/2026:11:00:01 +0100] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0""#;
        assert_eq!(
            msg(line),
            json!({"remote_addr":"1.2.3.4","time_offset":"+0100","request_method":"GET","request_uri":"/",
                   "server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":5,"http_user_agent":"curl/8.5.0"})
        );
        assert!(
            msg(&line.replace("+0100", "+0000"))
                .get("time_offset")
                .is_none()
        );
    }

    #[test]
    fn combined_lines() {
        let cases = [
            (
                r#"93.184.216.34 - - [24/Nov/2026:10:00:01 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "Mozilla/5.0 (X11; Linux x86_64)""#,
                1_795_514_401_000,
                json!({"remote_addr":"93.184.216.34","time_local":"24/Nov/2026:10:00:01 +0000",
                       "request":"GET /index.html HTTP/1.1","request_method":"GET","request_uri":"/index.html",
                       "server_protocol":"HTTP/1.1","status":200,"body_bytes_sent":612,
                       "http_user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}),
            ),
            (
                r#"2001:db8::1 - alice@example.com [24/Nov/2026:11:00:01 +0100] "POST /api/v1/items?x=1 HTTP/2.0" 201 0 "https://example.com/a b" "curl/8.5.0""#,
                1_795_514_401_000,
                json!({"remote_addr":"2001:db8::1","remote_user":"alice@example.com","time_local":"24/Nov/2026:11:00:01 +0100",
                       "request":"POST /api/v1/items?x=1 HTTP/2.0","request_method":"POST","request_uri":"/api/v1/items?x=1",
                       "server_protocol":"HTTP/2.0","status":201,"body_bytes_sent":0,
                       "http_referer":"https://example.com/a b","http_user_agent":"curl/8.5.0"}),
            ),
            (
                // A TLS handshake on a plain-HTTP port: nginx escapes the bytes; request is not split.
                r#"10.0.0.9 - - [24/Nov/2026:10:00:01 +0000] "\x16\x03\x01\x02\x00\x01\x00\x01\xFC\x03\x03" 400 157 "-" "-""#,
                1_795_514_401_000,
                json!({"remote_addr":"10.0.0.9","time_local":"24/Nov/2026:10:00:01 +0000",
                       "request":"\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03","status":400,"body_bytes_sent":157}),
            ),
            (
                r#"10.0.0.9 - - [24/Nov/2026:10:00:01 +0000] "" 400 0 "" "Agent \x22quoted\x22""#,
                1_795_514_401_000,
                json!({"remote_addr":"10.0.0.9","time_local":"24/Nov/2026:10:00:01 +0000","request":"",
                       "status":400,"body_bytes_sent":0,"http_referer":"","http_user_agent":"Agent \\x22quoted\\x22"}),
            ),
        ];
        for (line, ts, want) in cases {
            let (got_ts, got, failed) = parse("combined", line);
            assert!(!failed, "{line}");
            assert_eq!(got_ts, ts, "{line}");
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn keys_follow_format_order() {
        let ev = parse_line(
            &settings("combined"),
            r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
            1,
            0,
        );
        assert!(
            ev.message
                .text()
                .starts_with(r#"{"remote_addr":"1.2.3.4","time_local":"#),
            "{}",
            ev.message
        );
    }

    #[test]
    fn text_beyond_the_format_is_kept() {
        let (_, v, failed) = parse(
            "combined",
            r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x" "10.0.0.1, 10.0.0.2""#,
        );
        assert!(!failed);
        assert_eq!(v["http_user_agent"], "x");
        assert_eq!(v[UNPARSED_TAIL], r#""10.0.0.1, 10.0.0.2""#);
    }

    #[test]
    fn unparsable_line_is_forwarded_raw_with_fallback_time() {
        let (ts, v, failed) = parse("combined", "this is not nginx");
        assert!(failed);
        assert_eq!(ts, 42);
        assert_eq!(v["raw"], "this is not nginx");
        assert!(
            v["parse_error"]
                .as_str()
                .unwrap()
                .contains("ACCESS_LOG_FORMAT")
        );
        let (_, v, failed) = parse(
            "combined",
            r#"1.2.3.4 - - [99/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#,
        );
        assert!(failed);
        assert!(
            v["parse_error"].as_str().unwrap().contains("$time_local"),
            "{v}"
        );
    }

    #[test]
    fn timing_format_with_lists_and_msec() {
        let fmt = r#"'$remote_addr [$msec] "$request" $status $request_time "$upstream_response_time" $upstream_status'"#;
        let (ts, v, failed) = parse(
            fmt,
            r#"10.1.1.1 [1795514401.123] "GET /x HTTP/1.1" 502 0.004 "0.002, 0.001" 502, 502"#,
        );
        assert!(!failed);
        assert_eq!(ts, 1_795_514_401_123);
        assert_eq!(v["request_time"], json!(0.004));
        assert_eq!(v["upstream_response_time"], "0.002, 0.001");
        assert_eq!(v["upstream_status"], "502, 502");
    }

    #[test]
    fn raw_output_is_the_line() {
        let s = ParseSettings {
            output: OutputFormat::Raw,
            ..ParseSettings::default()
        };
        let line = r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#;
        let ev = parse_line(&s, line, 7, 0);
        assert_eq!(
            (ev.message.text().as_str(), ev.timestamp, ev.line),
            (line, 1_795_514_401_000, 7)
        );
        let ev = parse_line(&s, "junk", 8, 5);
        assert_eq!(
            (ev.message.text().as_str(), ev.timestamp, ev.parse_failed),
            ("junk", 5, true)
        );
    }

    /// A message as a map, failing on a key that appears twice (serde_json keeps the last).
    fn unique_keys(message: &str) -> Result<serde_json::Map<String, Value>, String> {
        use serde::de::{Deserializer, Error, MapAccess, Visitor};
        struct Unique;
        impl<'de> Visitor<'de> for Unique {
            type Value = serde_json::Map<String, Value>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    if out.contains_key(&k) {
                        return Err(A::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        let mut de = serde_json::Deserializer::from_str(message);
        de.deserialize_map(Unique).map_err(|e| e.to_string())
    }

    #[test]
    fn unique_keys_helper_rejects_repeats() {
        assert!(unique_keys(r#"{"a":1,"b":2}"#).is_ok());
        assert!(unique_keys(r#"{"a":1,"b":2,"a":3}"#).is_err());
    }

    #[test]
    fn one_key_per_name() {
        // (why, format, line, expected message)
        let cases = [
            (
                "the issue's example: $request_uri in the format is not derived again (nginx \
                 rejected the space in the URI: 400, $request_uri not set → `\"\"` as logged)",
                r#"escape=json '$remote_addr "$request" "$request_uri" $status'"#,
                r#"127.0.0.1 "GET /files/annual report.pdf HTTP/1.1" "" 400"#,
                json!({"remote_addr":"127.0.0.1","request":"GET /files/annual report.pdf HTTP/1.1",
                       "request_uri":"","status":400}),
            ),
            (
                "all three in the format: nothing derived, each key once with nginx's value",
                r#"'$request|$request_method|$request_uri|$server_protocol|$status'"#,
                "GET http://front.test/abs/path?rid=19 HTTP/1.1|GET|/abs/path?rid=19|HTTP/1.1|200",
                json!({"request":"GET http://front.test/abs/path?rid=19 HTTP/1.1","request_method":"GET",
                       "request_uri":"/abs/path?rid=19","server_protocol":"HTTP/1.1","status":200}),
            ),
            (
                "$request_method in the format (before $request): only uri and protocol derived",
                r#"'$request_method "$request" $status'"#,
                r#"POST "POST /api HTTP/1.1" 201"#,
                json!({"request_method":"POST","request":"POST /api HTTP/1.1","request_uri":"/api",
                       "server_protocol":"HTTP/1.1","status":201}),
            ),
            (
                "$server_protocol in the format as nginx logs it for a 505 (empty): kept, not derived",
                r#"'"$request" "$server_protocol" $status'"#,
                r#""GET / HTTP/2.0" "" 505"#,
                json!({"request":"GET / HTTP/2.0","server_protocol":"","status":505}),
            ),
            (
                "a variable listed twice is written once, from its first occurrence",
                r#"'$remote_addr [$time_local] "$request" $status $remote_addr $status'"#,
                r#"10.0.0.1 [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 10.0.0.1 200"#,
                json!({"remote_addr":"10.0.0.1","time_local":"24/Nov/2026:10:00:01 +0000",
                       "request":"GET / HTTP/1.1","request_method":"GET","request_uri":"/",
                       "server_protocol":"HTTP/1.1","status":200}),
            ),
            (
                "$request twice: derived fields once, from the first",
                r#"'"$request" "$request" $status'"#,
                r#""GET /a HTTP/1.1" "GET /a HTTP/1.1" 200"#,
                json!({"request":"GET /a HTTP/1.1","request_method":"GET","request_uri":"/a",
                       "server_protocol":"HTTP/1.1","status":200}),
            ),
            (
                "a variable named like the tail key: the tail gets another key",
                r#"'$remote_addr $unparsed_tail'"#,
                "10.0.0.1 x",
                json!({"remote_addr":"10.0.0.1","unparsed_tail":"x"}),
            ),
        ];
        for (why, fmt, line, want) in cases {
            let ev = parse_line(&settings(fmt), line, 1, 0);
            assert!(!ev.parse_failed, "{why}: {}", ev.message);
            let got = unique_keys(&ev.message.text())
                .unwrap_or_else(|e| panic!("{why}: {e}: {}", ev.message));
            assert_eq!(Value::Object(got), want, "{why}");
        }
        // The format's own unparsed_tail variable and the text after the format: two keys.
        let ev = parse_line(
            &settings("'$remote_addr $unparsed_tail'"),
            "10.0.0.1 x",
            1,
            0,
        );
        assert!(unique_keys(&ev.message.text()).is_ok(), "{}", ev.message);
        let s = settings(r#"'$unparsed_tail "$status"'"#);
        let ev = parse_line(&s, r#"x "200" extra"#, 1, 0);
        let got = unique_keys(&ev.message.text()).unwrap_or_else(|e| panic!("{e}: {}", ev.message));
        assert_eq!(
            Value::Object(got),
            json!({"unparsed_tail":"x","status":200,"_unparsed_tail":"extra"})
        );
    }

    #[test]
    fn every_message_has_unique_keys() {
        // Lines of every shape through formats that name derived fields or repeat variables.
        let formats = [
            "combined",
            "main",
            r#"'$remote_addr "$request" "$request_uri" $status'"#,
            r#"escape=json '$remote_addr "$request" "$request_uri" "$request_method" "$server_protocol" $status'"#,
            r#"'$remote_addr "$request" $remote_addr "$request" $status $status'"#,
        ];
        let requests = [
            "GET / HTTP/1.1",
            "GET /",
            "GET /../x HTTP/1.1",
            "geti / HTTP/1.1",
            "",
            "-",
            "GET / HTTP/2.0",
        ];
        for fmt in formats {
            let s = settings(fmt);
            for req in requests {
                let line = match fmt {
                    "combined" | "main" => format!(
                        r#"10.0.0.1 - - [24/Nov/2026:10:00:01 +0000] "{req}" 200 5 "-" "x" "-""#
                    ),
                    _ if fmt.contains("$request_method") => {
                        format!(r#"10.0.0.1 "{req}" "/" "GET" "HTTP/1.1" 200"#)
                    }
                    _ if fmt.contains("$request_uri") => format!(r#"10.0.0.1 "{req}" "/" 200"#),
                    _ => format!(r#"10.0.0.1 "{req}" 10.0.0.1 "{req}" 200 200"#),
                };
                let ev = parse_line(&s, &line, 1, 0);
                assert!(!ev.parse_failed, "{fmt} {line}: {}", ev.message);
                if let Err(e) = unique_keys(&ev.message.text()) {
                    panic!("{fmt} {line}: {e}: {}", ev.message);
                }
            }
        }
    }

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
            let got = split_request(req, escape).map(|p| {
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
                let full = parse_http1(req, escape == Escape::Default);
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
                request_parts(req, Escape::Default, status, own),
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
                request_parts(req, Escape::Default, Some("400"), own),
                want,
                "{why}"
            );
        }
    }

    #[test]
    fn derived_fields_in_messages() {
        let fmt = r#"'$remote_addr "$request" $status'"#;
        // (why, line, expected message)
        let cases = [
            (
                "414 cut line: no derived fields",
                r#"127.1.1.107 "GET /long?pad=AAAAAAAA" 414"#,
                json!({"remote_addr":"127.1.1.107","request":"GET /long?pad=AAAAAAAA","status":414}),
            ),
            (
                "complex URI rejected: no request_uri",
                r#"127.0.0.1 "GET /../etc/passwd HTTP/1.1" 400"#,
                json!({"remote_addr":"127.0.0.1","request":"GET /../etc/passwd HTTP/1.1","request_method":"GET",
                    "server_protocol":"HTTP/1.1","status":400}),
            ),
            (
                "HTTP/0.9 answered",
                r#"127.0.0.1 "GET /" 200"#,
                json!({"remote_addr":"127.0.0.1","request":"GET /","request_method":"GET","request_uri":"/","status":200}),
            ),
            (
                "escaped quote in the URI stays escaped as logged",
                r#"127.0.0.1 "GET /a\x22q HTTP/1.1" 404"#,
                json!({"remote_addr":"127.0.0.1","request":"GET /a\\x22q HTTP/1.1","request_method":"GET",
                    "request_uri":"/a\\x22q","server_protocol":"HTTP/1.1","status":404}),
            ),
        ];
        for (why, line, want) in cases {
            let ev = parse_line(&settings(fmt), line, 1, 0);
            let got = unique_keys(&ev.message.text()).unwrap_or_else(|e| panic!("{why}: {e}"));
            assert_eq!(Value::Object(got), want, "{why}");
        }
        let json_fmt = r#"escape=json '$remote_addr "$request" $status'"#;
        let ev = parse_line(
            &settings(json_fmt),
            r#"127.0.0.1 "GET /a\"q\u0001 HTTP/1.1" 400"#,
            1,
            0,
        );
        let got = unique_keys(&ev.message.text()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Object(got),
            json!({"remote_addr":"127.0.0.1","request":"GET /a\"q\u{1} HTTP/1.1","status":400}),
            "escape=json: a control byte in the URI is a rejected line"
        );
    }

    #[test]
    fn fluentd_names_rename_what_td_agents_parser_has_and_keep_the_rest() {
        use crate::parse::FieldNames;
        let fluentd = |fmt: &str, line: &str| {
            let s = settings(fmt).with_names(FieldNames::Fluentd);
            let ev = parse_line(&s, line, 1, 42);
            assert!(!ev.parse_failed, "{fmt}: {}", ev.message);
            (ev.timestamp, unique_keys(&ev.message.text()).unwrap())
        };
        let main = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time'"#;
        let line = r#"10.0.0.1 - alice [24/Nov/2026:10:00:01 +0000] "GET /a?b=1 HTTP/1.1" 404 12 "https://r/" "curl/8" "1.2.3.4, 5.6.7.8" 0.003"#;
        let (ts, got) = fluentd(main, line);
        assert_eq!(ts, 1_795_514_401_000);
        assert_eq!(
            Value::Object(got),
            json!({"remote": "10.0.0.1", "user": "alice", "method": "GET", "path": "/a?b=1",
                   "code": 404, "size": 12, "referer": "https://r/", "agent": "curl/8",
                   "forwarder": "1.2.3.4, 5.6.7.8", "request_time": 0.003})
        );
        // The format's own $request_uri and $request_method get the names; a name the format
        // uses for a variable of its own keeps the nginx name beside it; a second time
        // variable is a field like any other.
        let own = r#"'$msec $request_method $request_uri $status $code "$request" $time_local'"#;
        let line =
            r#"1795514401.123 POST /x 201 abc "POST /x HTTP/2.0" 24/Nov/2026:10:00:01 +0000"#;
        let (ts, got) = fluentd(own, line);
        assert_eq!(ts, 1_795_514_401_123);
        assert_eq!(
            Value::Object(got),
            json!({"method": "POST", "path": "/x", "status": 201, "code": "abc",
                   "time_local": "24/Nov/2026:10:00:01 +0000"})
        );
        // nginx names are the default and unchanged.
        let (_, got) = {
            let ev = parse_line(
                &settings(main),
                r#"10.0.0.1 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 1 "-" "-" "-" 0.1"#,
                1,
                0,
            );
            (ev.timestamp, unique_keys(&ev.message.text()).unwrap())
        };
        assert!(
            got.contains_key("remote_addr")
                && got.contains_key("request")
                && got.contains_key("time_local")
        );
    }

    #[test]
    fn extra_fields_end_every_json_message_parsed_or_not() {
        use crate::parse::extra::ExtraFields;
        let mut s = settings("combined");
        s.extra = ExtraFields::parse("instance_id={instance_id},site=shop", &["instance_id"], &[])
            .unwrap()
            .render(|_| Some("i-0abc"), |_| None);
        let good = r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#;
        for line in [good, "junk"] {
            let ev = parse_line(&s, line, 1, 0);
            let v = unique_keys(&ev.message.text()).unwrap();
            let last: Vec<_> = v.iter().rev().take(2).collect();
            assert_eq!(
                last,
                [
                    (&"site".to_string(), &json!("shop")),
                    (&"instance_id".to_string(), &json!("i-0abc"))
                ],
                "{line}"
            );
        }
        s.output = OutputFormat::Raw;
        assert_eq!(parse_line(&s, good, 1, 0).message.text(), good);
    }
}
