//! nginx error-log lines → events.
//!
//! Layout (ngx_log_error_core): `YYYY/MM/DD HH:MM:SS [level] pid#tid: *cid message`, where the
//! HTTP module appends `, client: …, server: …, request: "…", upstream: "…", host: "…",
//! referrer: "…"` as far as known. A line that does not start with a timestamp continues the
//! event before it (multi-line FastCGI stderr, stack traces) and is joined with `\n`.

use super::json::ObjectWriter;
use super::time::parse_error_time;
use super::{LineParser, LogEvent, OutputFormat, ParseSettings, unparsed_message};

pub const LEVELS: [&str; 8] = [
    "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg",
];

/// The context nginx appends to a message, in the order it appends them.
const SUFFIX_KEYS: [&str; 10] = [
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

/// A parsed error-log header + message, still open for continuation lines.
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
    pub fn first_line(&self) -> u64 {
        self.first_line
    }

    pub fn first_offset(&self) -> u64 {
        self.first_offset
    }

    pub fn into_event(self, settings: &ParseSettings) -> LogEvent {
        let message = if self.failed {
            unparsed_message(
                settings.output,
                &self.text,
                "line does not start with an nginx error-log timestamp",
            )
        } else {
            match settings.output {
                OutputFormat::Raw => self.text,
                OutputFormat::Json => to_json(&self.text, self.head_len),
            }
        };
        LogEvent {
            timestamp: self.timestamp,
            message,
            line: self.first_line,
            offset: self.first_offset,
            parse_failed: self.failed,
        }
    }
}

/// Feeds one line; returns the previous event once this line starts a new one.
pub(super) fn push_line(
    p: &mut LineParser<'_>,
    line: &str,
    line_no: u64,
    offset: u64,
) -> Option<LogEvent> {
    let ts = line
        .get(..19)
        .and_then(|t| parse_error_time(t, &p.settings.error_zone));
    match (ts, p.pending.as_mut()) {
        (None, Some(open)) => {
            open.text.push('\n');
            open.text.push_str(line);
            None
        }
        (ts, _) => {
            let next = Pending {
                timestamp: ts.unwrap_or(p.last_ts),
                first_line: line_no,
                first_offset: offset,
                text: line.to_string(),
                head_len: line.len(),
                failed: ts.is_none() || header(line).is_none(),
            };
            // A line without a timestamp and nothing to continue is an event of its own.
            let prev = p.pending.replace(next);
            prev.map(|e| e.into_event(p.settings))
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
    })
}

/// Splits `message, client: a, server: b, request: "c"` into the message and its context.
fn split_context(msg: &str) -> (&str, Vec<(&'static str, &str)>) {
    let mut search_from = 0;
    while let Some(rel) = msg[search_from..].find(", client: ") {
        let at = search_from + rel;
        if let Some(fields) = parse_context(&msg[at..]) {
            return (&msg[..at], fields);
        }
        search_from = at + 1;
    }
    (msg, Vec::new())
}

/// Parses `, key: value, key: "value"…` to the end of the text, keys in nginx's order.
fn parse_context(mut s: &str) -> Option<Vec<(&'static str, &str)>> {
    let mut fields = Vec::new();
    let mut next_key = 0;
    while !s.is_empty() {
        s = s.strip_prefix(", ")?;
        let (k_idx, key) = SUFFIX_KEYS
            .iter()
            .enumerate()
            .skip(next_key)
            .find(|(_, k)| s.starts_with(*k) && s[k.len()..].starts_with(": "))?;
        s = &s[key.len() + 2..];
        next_key = k_idx + 1;
        let (value, rest) = if let Some(q) = s.strip_prefix('"') {
            // A quoted value ends at a `"` followed by the next key or the end of the line.
            let end = q
                .match_indices('"')
                .map(|(i, _)| i)
                .find(|&i| ends_value(&q[i + 1..], next_key))?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = s
                .match_indices(", ")
                .map(|(i, _)| i)
                .find(|&i| ends_value(&s[i..], next_key))
                .unwrap_or(s.len());
            (&s[..end], &s[end..])
        };
        fields.push((*key, value));
        s = rest;
    }
    Some(fields)
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

fn to_json(text: &str, head_len: usize) -> String {
    let first = &text[..head_len];
    let Some(h) = header(first) else {
        return unparsed_message(OutputFormat::Json, text, "not an nginx error-log line");
    };
    // Continuation lines belong to the message, before nginx's context suffix can be known.
    let msg_start = head_len - h.message.len();
    let full_message = &text[msg_start..];
    let (message, ctx) = split_context(full_message);
    let mut w = ObjectWriter::with_capacity(text.len() + 96);
    w.str_field("time", h.time);
    w.str_field("level", h.level);
    w.num_field("pid", h.pid);
    w.num_field("tid", h.tid);
    if let Some(c) = h.connection {
        w.num_field("connection", c);
    }
    w.str_field("message", message);
    if let Some((excess, zone)) = limit_req(message) {
        w.num_field("excess", excess);
        w.str_field("zone", zone);
    }
    for (k, v) in ctx {
        w.str_field(k, v);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::LogKind;
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
        serde_json::from_str(&ev[0].message).unwrap()
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
        let v: Value = serde_json::from_str(&ev[0].message).unwrap();
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
        let v: Value = serde_json::from_str(&ev[1].message).unwrap();
        assert_eq!(v["raw"], "2026/11/24 10:00:06 [bogus] 1#1: x");
    }
}
