//! nginx error-log lines → events.
//!
//! Layout (ngx_log_error_core): `YYYY/MM/DD HH:MM:SS [level] pid#tid: *cid message`, where the
//! HTTP module appends `, client: …, server: …, request: "…", upstream: "…", host: "…",
//! referrer: "…"` as far as known. A line that does not start with a timestamp continues the
//! event before it (multi-line FastCGI stderr, stack traces) and is joined with `\n`. nginx cuts
//! a record at [`NGX_MAX_ERROR_STR`] bytes: the context it did write is kept and the message
//! gets `"truncated": true` (see `parse_context`).

use crate::event::{LogEvent, unparsed_message};
use crate::json::{Message, ObjectWriter};
use crate::names::{FieldNames, LogKind, OutputFormat};
use crate::redact::FieldClass;
use crate::settings::{ParseSettings, Parsing};
use crate::time::parse_error_time;

pub const LEVELS: [&str; 8] = [
    "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg",
];

/// The context nginx appends to a message, in the order it appends them.
pub const SUFFIX_KEYS: [&str; 10] = [
    "client",
    "server",
    "port",
    "login",
    "upstream_addr",
    "request",
    "subrequest",
    "upstream",
    "host",
    "referrer",
];

/// The fields an error-log message may have (besides [`SUFFIX_KEYS`]), under either naming.
pub const KEYS: [&str; 10] = [
    "time",
    "level",
    "log_level",
    "pid",
    "tid",
    "connection",
    "message",
    "excess",
    "zone",
    "truncated",
];

/// A parsed error-log header + message, still open for continuation lines.
#[derive(Debug)]
pub struct Pending {
    timestamp: i64,
    first_line: u64,
    first_offset: u64,
    /// The full text (first line plus continuation lines, joined with `\n`).
    text: String,
    /// Byte length of the first line within `text`.
    head_len: usize,
    failed: bool,
}

impl Pending {
    /// Lines that continue no event (at the start of an object): one unparsable event of their
    /// own at `timestamp`, as `push_line` makes it. `text` is the lines joined with `\n`.
    pub fn unparsed(
        text: String,
        head_len: usize,
        first_line: u64,
        first_offset: u64,
        timestamp: i64,
    ) -> Self {
        Self {
            timestamp,
            first_line,
            first_offset,
            text,
            head_len,
            failed: true,
        }
    }

    /// Appends continuation lines (`text`: one or more lines joined with `\n`).
    pub fn continue_with(&mut self, text: &str) {
        self.text.push('\n');
        self.text.push_str(text);
    }

    pub fn first_line(&self) -> u64 {
        self.first_line
    }

    pub fn first_offset(&self) -> u64 {
        self.first_offset
    }

    /// `settings`: a [`Parsing`], or the deployment's [`ParseSettings`] alone.
    pub fn into_event<'a>(self, settings: impl Into<Parsing<'a>>) -> LogEvent {
        let settings = settings.into();
        let filtered = if self.failed || !settings.shared.rules.any_for(LogKind::Error) {
            None
        } else {
            self.filtered(settings)
        };
        let red = &settings.shared.redaction;
        let (message, redacted) = if filtered.is_some() {
            (Message::new(""), 0)
        } else if self.failed {
            unparsed_message(
                settings,
                &self.text,
                "line does not start with an nginx error-log timestamp",
            )
        } else {
            match settings.shared.output {
                OutputFormat::Raw if red.is_empty() => (Message::new(&self.text), 0),
                OutputFormat::Raw => {
                    let mut hits = 0;
                    let text = red.by_class(FieldClass::Free, &self.text, &mut hits);
                    (Message::new(&text), hits)
                }
                OutputFormat::Json => to_json(&self.text, self.head_len, settings),
            }
        };
        LogEvent {
            timestamp: self.timestamp,
            message,
            line: self.first_line,
            offset: self.first_offset,
            parse_failed: self.failed,
            filtered,
            redacted,
        }
    }

    /// What `FILTER_RULES` does to this event: its fields are the level and the message (the
    /// text after `pid#tid: `, continuation lines included).
    fn filtered(&self, settings: Parsing<'_>) -> Option<crate::filter::Filtered> {
        let h = header(&self.text[..self.head_len])?;
        let message = &self.text[self.head_len - h.message.len()..];
        let level_key = level_key(settings.shared.names);
        settings.shared.rules.decide(
            LogKind::Error,
            |f| {
                if f == level_key {
                    Some(h.level)
                } else if f == "message" {
                    Some(message)
                } else {
                    None
                }
            },
            settings.object.sample_seed,
            self.first_line,
        )
    }
}

/// The key of the error level: `level`, or td-agent's `log_level`.
pub fn level_key(names: FieldNames) -> &'static str {
    match names {
        FieldNames::Nginx => "level",
        FieldNames::Fluentd => "log_level",
    }
}

/// The time at the start of an error-log line: such a line starts an event; any other line
/// continues the one before it.
pub fn line_time(line: &str, settings: &ParseSettings) -> Option<i64> {
    line.get(..19)
        .and_then(|t| parse_error_time(t, &settings.error_zone))
}

/// Where a line is in its object: its 1-based number and the byte offset it starts at.
#[derive(Debug, Clone, Copy)]
pub struct LineAt {
    pub number: u64,
    pub offset: u64,
}

/// Feeds one line to the record being assembled (`pending`); returns the previous record once
/// this line starts a new one. A line without a timestamp of its own gets `last_ts`.
pub(crate) fn push_line(
    pending: &mut Option<Pending>,
    settings: Parsing<'_>,
    last_ts: i64,
    line: &str,
    at: LineAt,
) -> Option<LogEvent> {
    let ts = line_time(line, settings.shared);
    match (ts, pending.as_mut()) {
        (None, Some(open)) => {
            open.text.push('\n');
            open.text.push_str(line);
            None
        }
        (ts, _) => {
            let next = Pending {
                timestamp: ts.unwrap_or(last_ts),
                first_line: at.number,
                first_offset: at.offset,
                text: line.to_string(),
                head_len: line.len(),
                failed: ts.is_none() || header(line).is_none(),
            };
            // A line without a timestamp and nothing to continue is an event of its own.
            let prev = pending.replace(next);
            prev.map(|e| e.into_event(settings))
        }
    }
}

struct Header<'a> {
    time: &'a str,
    level: &'a str,
    pid: &'a str,
    tid: &'a str,
    connection: Option<&'a str>,
    message: &'a str,
    /// Everything after `pid#tid: `: the connection number and the message (td-agent's
    /// `message`).
    body: &'a str,
}

fn header(line: &str) -> Option<Header<'_>> {
    let time = line.get(..19)?;
    let rest = line.get(19..)?.strip_prefix(" [")?;
    let (level, rest) = rest.split_once("] ")?;
    if !LEVELS.contains(&level) {
        return None;
    }
    let (ids, rest) = rest
        .split_once(": ")
        .or_else(|| rest.strip_suffix(':').map(|r| (r, "")))?;
    let (pid, tid) = ids.split_once('#')?;
    if pid.is_empty()
        || tid.is_empty()
        || !(pid.bytes().chain(tid.bytes()).all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let (connection, message) = match rest.strip_prefix('*') {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 && r.as_bytes().get(digits) == Some(&b' ') {
                (Some(&r[..digits]), &r[digits + 1..])
            } else {
                (None, rest)
            }
        }
        None => (None, rest),
    };
    Some(Header {
        time,
        level,
        pid,
        tid,
        connection,
        message,
        body: rest,
    })
}

/// nginx's NGX_MAX_ERROR_STR (src/core/ngx_log.h): ngx_log_error_core formats a record, time
/// header included, into a buffer of this size, and when it is full puts the newline over its
/// last byte. So a record is at most this many bytes with its newline: [`AT_CAP`] before it.
pub const NGX_MAX_ERROR_STR: usize = 2048;
/// The length of a record that filled nginx's buffer (NGX_LINEFEED_SIZE is 1 on Unix). A record
/// this long may have been cut, or may be exactly this long.
pub const AT_CAP: usize = NGX_MAX_ERROR_STR - 1;

/// A message split from its context suffix.
struct Split<'a> {
    message: &'a str,
    fields: Vec<(&'static str, &'a str)>,
    /// The suffix shows the record was cut: a quoted value left open, a key cut short.
    cut: bool,
    /// The suffix parsed to the end and its last value is a closed quoted one.
    ends_closed: bool,
}

/// Splits `message, client: a, server: b, request: "c"` into the message and its context.
/// `at_cap`: the record is [`AT_CAP`] bytes long, so nginx may have cut it anywhere.
fn split_context(msg: &str, at_cap: bool) -> Split<'_> {
    let mut search_from = 0;
    while let Some(rel) = msg[search_from..].find(", client: ") {
        let at = search_from + rel;
        if let Some(mut split) = parse_context(&msg[at..], at_cap) {
            split.message = &msg[..at];
            return split;
        }
        search_from = at + 1;
    }
    Split {
        message: msg,
        fields: Vec::new(),
        cut: false,
        ends_closed: false,
    }
}

/// Whether `s` is a proper beginning of `, key: ` for one of `keys`: where a cut record ends
/// when nginx was writing the next key.
fn key_fragment(s: &str, keys: &[&str]) -> bool {
    let s = s.as_bytes();
    let Some(rest) = s
        .strip_prefix(b", ")
        .or_else(|| (s == b",").then_some(&[][..]))
    else {
        return s.is_empty();
    };
    keys.iter().any(|k| {
        let k = k.as_bytes();
        rest.len() < k.len() + 2 && rest.iter().zip(k.iter().chain(b": ")).all(|(a, b)| a == b)
    })
}

/// Parses `, key: value, key: "value"…` to the end of the text, keys in nginx's order.
///
/// A record nginx cut (ngx_log_error_core stops at [`NGX_MAX_ERROR_STR`]) can end anywhere in
/// its suffix; what it wrote before the cut is kept:
/// - in a quoted value: nginx closes every quote it opens, so a value whose quote is still open
///   at the end was cut; it is kept as far as written (dropped if nothing was);
/// - at the cap, after a key and before its value (`, client: `): the key is dropped;
/// - at the cap, in the middle of the `, key: ` after a value (`, requ`): the fragment is nginx's
///   own text, not part of any value, and is dropped.
fn parse_context(mut s: &str, at_cap: bool) -> Option<Split<'_>> {
    let mut split = Split {
        message: "",
        fields: Vec::new(),
        cut: false,
        ends_closed: false,
    };
    let mut next_key = 0;
    while !s.is_empty() {
        let keys = &SUFFIX_KEYS[next_key..];
        let found = s.strip_prefix(", ").and_then(|a| {
            keys.iter()
                .enumerate()
                .find(|(_, k)| a.starts_with(*k) && a[k.len()..].starts_with(": "))
                .map(|(i, k)| (next_key + i, *k, &a[k.len() + 2..]))
        });
        let Some((k_idx, key, rest)) = found else {
            if at_cap && key_fragment(s, keys) {
                split.cut = true;
                return Some(split);
            }
            return None;
        };
        next_key = k_idx + 1;
        split.ends_closed = false;
        let after = match rest.strip_prefix('"') {
            Some(q) => quoted_value(&mut split, key, q, next_key, at_cap),
            None => plain_value(&mut split, key, rest, next_key, at_cap),
        };
        match after {
            Some(after) => s = after,
            None => return Some(split),
        }
    }
    Some(split)
}

/// Reads the quoted value of `key` (`q`: the text after its opening quote) into `split`; the
/// text after it, or `None` where the record was cut.
fn quoted_value<'a>(
    split: &mut Split<'a>,
    key: &'static str,
    q: &'a str,
    next_key: usize,
    at_cap: bool,
) -> Option<&'a str> {
    // A quoted value ends at a `"` followed by the next key or the end of the line.
    let end = q
        .match_indices('"')
        .map(|(i, _)| i)
        .find(|&i| ends_value(&q[i + 1..], next_key));
    // At the cap, a closing quote may be followed by the start of the next key alone.
    let (end, fragment) = match end {
        Some(end) => (Some(end), false),
        None if at_cap => {
            let keys = &SUFFIX_KEYS[next_key..];
            let at = q
                .match_indices('"')
                .map(|(i, _)| i)
                .find(|&i| key_fragment(&q[i + 1..], keys));
            (at, at.is_some())
        }
        None => (None, false),
    };
    match end {
        Some(end) => {
            split.fields.push((key, &q[..end]));
            if fragment {
                split.cut = true;
                return None;
            }
            split.ends_closed = true;
            Some(&q[end + 1..])
        }
        None => {
            if !q.is_empty() {
                split.fields.push((key, q));
            }
            split.cut = true;
            None
        }
    }
}

/// Reads the unquoted value of `key` (`rest`: the text after `key: `) into `split`; the text
/// after it, or `None` where the record was cut.
fn plain_value<'a>(
    split: &mut Split<'a>,
    key: &'static str,
    rest: &'a str,
    next_key: usize,
    at_cap: bool,
) -> Option<&'a str> {
    let mut end = rest
        .match_indices(", ")
        .map(|(i, _)| i)
        .find(|&i| ends_value(&rest[i..], next_key))
        .unwrap_or(rest.len());
    if at_cap && end == rest.len() {
        if rest.is_empty() {
            split.cut = true; // cut right after `key: `
            return None;
        }
        // A value running to the cut may end in the start of the next key.
        if let Some(i) = rest.rfind(',')
            && key_fragment(&rest[i..], &SUFFIX_KEYS[next_key..])
        {
            end = i;
            split.cut = true;
        }
    }
    split.fields.push((key, &rest[..end]));
    if split.cut {
        return None;
    }
    Some(&rest[end..])
}

fn ends_value(after: &str, next_key: usize) -> bool {
    after.is_empty()
        || after.strip_prefix(", ").is_some_and(|a| {
            SUFFIX_KEYS[next_key..]
                .iter()
                .any(|k| a.starts_with(k) && a[k.len()..].starts_with(": "))
        })
}

/// ngx_http_limit_req_module: `limiting requests, excess: 50.416 by zone "api"` (or
/// `delaying requests, excess: 50.416, by zone "api"`) → (excess, zone).
fn limit_req(message: &str) -> Option<(&str, &str)> {
    let rest = message
        .strip_prefix("limiting requests, excess: ")
        .or_else(|| message.strip_prefix("delaying requests, excess: "))?;
    let (excess, rest) = rest.split_once(' ')?;
    let excess = excess.strip_suffix(',').unwrap_or(excess);
    let zone = rest.strip_prefix("by zone \"")?.strip_suffix('"')?;
    Some((excess, zone))
}

/// The JSON message of a record, its values redacted, with the redaction rules that changed
/// it.
fn to_json(text: &str, head_len: usize, settings: Parsing<'_>) -> (Message, u32) {
    let first = &text[..head_len];
    let Some(h) = header(first) else {
        return unparsed_message(settings, text, "not an nginx error-log line");
    };
    let red = &settings.shared.redaction;
    let mut hits = 0;
    // Continuation lines belong to the message, before nginx's context suffix can be known.
    let msg_start = head_len - h.message.len();
    let full_message = &text[msg_start..];
    let at_cap = text.len() == AT_CAP;
    let Split {
        message,
        fields,
        cut,
        ends_closed,
    } = split_context(full_message, at_cap);
    // Cut where the suffix shows it, or at nginx's cap without the closing quote that ends a
    // whole suffix (`request`, `upstream`, `host` and `referrer` are quoted; a record ends in
    // an unquoted `client` or `server` only when no request line was read).
    let truncated = cut || (at_cap && !ends_closed);
    let mut w = ObjectWriter::message(text.len() + 96);
    w.str_field("time", h.time);
    match settings.shared.names {
        FieldNames::Nginx => w.str_field("level", h.level),
        FieldNames::Fluentd => w.str_field("log_level", h.level),
    }
    w.num_field("pid", h.pid);
    w.num_field("tid", h.tid);
    if let Some(c) = h.connection {
        w.num_field("connection", c);
    }
    let whole = match settings.shared.names {
        FieldNames::Nginx => message,
        // td-agent's regex takes the whole rest of the record, continuation lines included.
        FieldNames::Fluentd => &text[head_len - h.body.len()..],
    };
    if let Some(whole) = red.value("message", FieldClass::Free, whole, &mut hits) {
        w.str_field("message", &whole);
    }
    if let Some((excess, zone)) = limit_req(message) {
        w.num_field("excess", excess);
        w.str_field("zone", zone);
    }
    for (k, v) in fields {
        if let Some(v) = red.value(k, FieldClass::of_error_field(k), v, &mut hits) {
            w.str_field(k, &v);
        }
    }
    if truncated {
        w.bool_field("truncated", true);
    }
    settings.object.extra.write_to(&mut w);
    (w.finish_message(), hits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::LineParser;
    use serde_json::{Value, json};

    fn events(lines: &[&str]) -> Vec<LogEvent> {
        let settings = ParseSettings::default();
        let mut p = LineParser::new(&settings, LogKind::Error, 99);
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            p.push(l, i as u64 + 1, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn one(line: &str) -> Value {
        let ev = events(&[line]);
        assert_eq!(ev.len(), 1);
        serde_json::from_str(&ev[0].message.text()).unwrap()
    }

    #[test]
    fn full_context_suffix() {
        let v = one(
            r#"2026/11/24 10:00:01 [error] 1234#1234: *5678 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 10.0.0.1, server: example.com, request: "GET /favicon.ico HTTP/1.1", host: "example.com", referrer: "https://example.com/""#,
        );
        assert_eq!(
            v,
            json!({
                "time": "2026/11/24 10:00:01", "level": "error", "pid": 1234, "tid": 1234, "connection": 5678,
                "message": "open() \"/usr/share/nginx/html/favicon.ico\" failed (2: No such file or directory)",
                "client": "10.0.0.1", "server": "example.com", "request": "GET /favicon.ico HTTP/1.1",
                "host": "example.com", "referrer": "https://example.com/"
            })
        );
    }

    #[test]
    fn message_with_commas_and_upstream() {
        let v = one(
            r#"2026/11/24 10:00:02 [error] 7#7: *9 upstream prematurely closed connection while reading response header from upstream, client: 10.0.0.2, server: , request: "GET /api?q=a, client: b HTTP/1.1", upstream: "http://127.0.0.1:8080/api?q=a, client: b", host: """#,
        );
        assert_eq!(
            v["message"],
            "upstream prematurely closed connection while reading response header from upstream"
        );
        assert_eq!(v["server"], "");
        assert_eq!(v["request"], "GET /api?q=a, client: b HTTP/1.1");
        assert_eq!(v["upstream"], "http://127.0.0.1:8080/api?q=a, client: b");
        assert_eq!(v["host"], "");
    }

    #[test]
    fn limit_req_excess_and_zone() {
        for sep in ["", ","] {
            let v = one(&format!(
                r#"2022/05/30 20:56:22 [error] 7164#7164: *38068741 limiting requests, excess: 50.416{sep} by zone "api_access_token", client: 10.244.0.0, server: test.local, request: "GET / HTTP/2.0", host: "127.0.0.1:8080""#
            ));
            assert_eq!(v["excess"], json!(50.416));
            assert_eq!(v["zone"], "api_access_token");
            assert_eq!(
                v["message"],
                format!(r#"limiting requests, excess: 50.416{sep} by zone "api_access_token""#)
            );
            assert_eq!(v["host"], "127.0.0.1:8080");
        }
    }

    #[test]
    fn subrequest_and_port_context() {
        let v = one(
            r#"2026/11/24 10:00:07 [error] 9#9: *4 upstream timed out (110: Connection timed out), client: 10.0.0.5, server: api, port: 8443, request: "GET /page HTTP/1.1", subrequest: "/auth", upstream: "http://10.0.4.20:9000/auth", host: "api""#,
        );
        assert_eq!(v["port"], "8443");
        assert_eq!(v["subrequest"], "/auth");
        assert_eq!(v["upstream"], "http://10.0.4.20:9000/auth");
        assert_eq!(
            v["message"],
            "upstream timed out (110: Connection timed out)"
        );
    }

    #[test]
    fn levels_and_no_connection() {
        for level in LEVELS {
            let v = one(&format!(
                "2026/11/24 10:00:03 [{level}] 1#0: signal process started"
            ));
            assert_eq!(v["level"], level);
            assert_eq!(v["tid"], 0);
            assert!(v.get("connection").is_none());
            assert_eq!(v["message"], "signal process started");
        }
    }

    #[test]
    fn continuation_lines_are_joined() {
        let ev = events(&[
            r#"2026/11/24 10:00:04 [error] 5#5: *1 FastCGI sent in stderr: "PHP message: PHP Fatal error:  Uncaught Exception: boom in /var/www/index.php:3"#,
            "Stack trace:",
            r#"#0 {main}" while reading response header from upstream, client: 10.0.0.3, server: app, request: "GET / HTTP/1.1", upstream: "fastcgi://unix:/run/php-fpm/php8.3-fpm.sock:", host: "app""#,
            "2026/11/24 10:00:05 [notice] 5#5: exiting",
        ]);
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[0].line, ev[1].line), (1, 4));
        assert_eq!(ev[0].timestamp, 1_795_514_404_000);
        let v: Value = serde_json::from_str(&ev[0].message.text()).unwrap();
        assert_eq!(
            v["message"],
            "FastCGI sent in stderr: \"PHP message: PHP Fatal error:  Uncaught Exception: boom in /var/www/index.php:3\nStack trace:\n#0 {main}\" while reading response header from upstream"
        );
        assert_eq!(
            v["upstream"],
            "fastcgi://unix:/run/php-fpm/php8.3-fpm.sock:"
        );
        assert_eq!(v["host"], "app");
    }

    #[test]
    fn leading_garbage_and_bad_headers_are_raw() {
        let ev = events(&["no timestamp here", "2026/11/24 10:00:06 [bogus] 1#1: x"]);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| e.parse_failed));
        assert_eq!(ev[0].timestamp, 99);
        let v: Value = serde_json::from_str(&ev[1].message.text()).unwrap();
        assert_eq!(v["raw"], "2026/11/24 10:00:06 [bogus] 1#1: x");
    }

    /// nginx's record for `msg` + `tail`, with `{pad}` in `msg` replaced by as many `x` as make
    /// the record cut at [`AT_CAP`] after `keep` bytes of `tail` (what ngx_log_error_core
    /// writes before the newline when the record does not fit in NGX_MAX_ERROR_STR).
    fn cut_record(msg: &str, tail: &str, keep: usize) -> String {
        let pad = AT_CAP - (msg.len() - "{pad}".len()) - keep;
        let msg = msg.replacen("{pad}", &"x".repeat(pad), 1);
        let mut line = format!("{msg}{tail}");
        line.truncate(AT_CAP);
        assert_eq!(
            line.len() + 1,
            NGX_MAX_ERROR_STR,
            "with its newline: 2048 bytes"
        );
        line
    }

    const HEAD: &str = "2026/11/24 10:00:01 [info] 1234#1234: *725 ";

    /// The message and context fields (everything but the header) of one record.
    fn context_of(line: &str) -> (String, Value) {
        let mut v = one(line);
        let map = v.as_object_mut().unwrap_or_else(|| panic!("{line}"));
        for k in ["time", "level", "pid", "tid", "connection"] {
            map.remove(k);
        }
        let msg = map.remove("message").unwrap_or_default();
        (msg.as_str().unwrap_or_default().to_string(), v)
    }

    #[test]
    fn records_cut_at_nginx_cap() {
        let too_long = format!("{HEAD}client sent too long URI while reading client request line");
        let suffix = r#", client: 127.1.1.107, server: front.test, request: "GET /long?pad="#;
        let long_request = format!("{too_long}{suffix}{}", "A".repeat(4000));
        let open_fail =
            format!(r#"{HEAD}open() "/srv/www/long{{pad}}" failed (2: No such file or directory)"#);
        let full = r#", client: 127.0.0.1, server: front.test, request: "GET /x HTTP/1.1", upstream: "http://10.0.4.20:9000/x", host: "front.test""#;
        let at = |s: &str| full.find(s).unwrap_or_else(|| panic!("{s}"));
        // (why, record, expected end of the message, expected context fields)
        let cases = [
            (
                "the issue's line: cut inside the request line, the quote never closed",
                long_request[..AT_CAP].to_string(),
                "while reading client request line",
                json!({"client":"127.1.1.107","server":"front.test",
                       "request": format!("GET /long?pad={}", "A".repeat(AT_CAP - too_long.len() - suffix.len())),
                       "truncated":true}),
            ),
            (
                "a quote left open is a cut even below the cap (nginx closes what it opens)",
                long_request[..1500].to_string(),
                "while reading client request line",
                json!({"client":"127.1.1.107","server":"front.test",
                       "request": format!("GET /long?pad={}", "A".repeat(1500 - too_long.len() - suffix.len())),
                       "truncated":true}),
            ),
            (
                "cut right after `request: \"`: nothing of the value was written, the key is dropped",
                cut_record(&open_fail, full, at("GET /x")),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test","truncated":true}),
            ),
            (
                "cut inside an unquoted value (seen in nginx: `server: fron`): kept as written",
                cut_record(&open_fail, full, at("ront.test, request")),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"f","truncated":true}),
            ),
            (
                "cut right after `, client: `: the key is dropped",
                cut_record(&open_fail, full, at("127.0.0.1")),
                "(2: No such file or directory)",
                json!({"truncated":true}),
            ),
            (
                "cut inside the next key name: the fragment `, requ` is nginx's, dropped",
                cut_record(&open_fail, full, at("est: \"GET")),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test","truncated":true}),
            ),
            (
                "cut between `,` and ` ` after a value",
                cut_record(&open_fail, full, at(" request:")),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test","truncated":true}),
            ),
            (
                "cut after a closing quote, inside the next key: the closed value is whole",
                cut_record(&open_fail, full, at("stream: \"http")),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test","request":"GET /x HTTP/1.1","truncated":true}),
            ),
            (
                "cut inside `upstream`'s quoted value",
                cut_record(&open_fail, full, at("9000/x\", host")),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test","request":"GET /x HTTP/1.1",
                       "upstream":"http://10.0.4.20:","truncated":true}),
            ),
            (
                "exactly at the cap with the whole suffix (closing quote last): not cut",
                cut_record(&open_fail, full, full.len()),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test","request":"GET /x HTTP/1.1",
                       "upstream":"http://10.0.4.20:9000/x","host":"front.test"}),
            ),
            (
                "one byte below the cap, suffix ending unquoted: not cut",
                cut_record(&open_fail, ", client: 127.0.0.1, server: front.testZ", 40)
                    [..AT_CAP - 1]
                    .to_string(),
                "(2: No such file or directory)",
                json!({"client":"127.0.0.1","server":"front.test"}),
            ),
            (
                "cut inside the `, client: ` marker: no suffix found, the fragment stays in the message",
                cut_record(&open_fail, full, 5),
                "directory), cli",
                json!({"truncated":true}),
            ),
            (
                "a message that filled the cap by itself: no room was left for a suffix",
                format!("{HEAD}{}", "m".repeat(AT_CAP - HEAD.len())),
                "mmmm",
                json!({"truncated":true}),
            ),
        ];
        for (why, line, msg_end, want) in cases {
            let (msg, got) = context_of(&line);
            assert!(msg.ends_with(msg_end), "{why}: message {msg:?}");
            assert!(!msg.contains(", client: "), "{why}: message {msg:?}");
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn cut_record_with_continuation_lines() {
        // FastCGI stderr spans lines; nginx's cap counts the whole record, newlines included.
        let first = format!(r#"{HEAD}FastCGI sent in stderr: "PHP message: boom"#);
        let second = r#"Stack trace" while reading response header from upstream, client: 10.0.0.3, server: app, request: "GET /"#;
        let pad = AT_CAP - first.len() - 1 - second.len();
        let lines = [
            first.as_str(),
            &format!("#0 {}", "y".repeat(pad - 6)),
            second,
        ];
        let joined = lines.join("\n");
        assert_eq!(joined.len(), AT_CAP - 2);
        // Below the cap and the request's quote still open: cut all the same.
        let ev = events(&lines);
        assert_eq!(ev.len(), 1);
        let v: Value = serde_json::from_str(&ev[0].message.text()).unwrap_or_default();
        assert_eq!(v["request"], "GET /");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["server"], "app");
    }

    #[test]
    fn whole_records_have_no_truncated_flag() {
        for line in [
            r#"2026/11/24 10:00:01 [error] 1234#1234: *5678 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 10.0.0.1, server: example.com, request: "GET /favicon.ico HTTP/1.1", host: "example.com""#,
            "2026/11/24 10:00:03 [notice] 1#0: signal process started",
            "2026/11/24 10:00:03 [info] 9#9: *3 client 10.0.0.1 closed keepalive connection",
            "2026/11/24 10:00:03 [info] 9#9: *4 client sent invalid method while reading client request line, client: 10.0.0.1, server: front.test, request: \"geti / HTTP/1.1\"",
        ] {
            let v = one(line);
            assert!(v.get("truncated").is_none(), "{line}: {v}");
        }
    }

    #[test]
    fn fluentd_names_give_log_level_and_the_whole_text_as_message() {
        let settings = ParseSettings::default().with_names(FieldNames::Fluentd);
        let mut p = LineParser::new(&settings, LogKind::Error, 0);
        let mut out = Vec::new();
        let line = r#"2026/11/24 10:00:01 [error] 12#13: *5 open() "/x" failed (2: No such file), client: 1.2.3.4, server: a, request: "GET /x HTTP/1.1", host: "a""#;
        p.push(line, 1, &mut out);
        p.push("second line", 2, &mut out);
        p.finish(&mut out);
        let v: Value = serde_json::from_str(&out[0].message.text()).unwrap();
        assert_eq!(v["log_level"], "error");
        assert!(v.get("level").is_none());
        assert_eq!(
            v["message"],
            format!("{}\nsecond line", &line[line.find("*5").unwrap()..])
        );
        assert_eq!((v["pid"].clone(), v["tid"].clone()), (json!(12), json!(13)));
        assert_eq!(v["client"], "1.2.3.4");
        assert_eq!(v["time"], "2026/11/24 10:00:01");
    }
}
