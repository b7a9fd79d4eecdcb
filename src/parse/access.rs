//! Access-log lines → events, through the compiled `log_format`.

use std::borrow::BorrowMut;
use std::sync::LazyLock;

use super::format::{Escape, TimeVar};
use super::json::{Key, ObjectWriter};
use super::time::{parse_msec, parse_time_iso8601, parse_time_local};
use super::{LogEvent, OutputFormat, ParseSettings, unparsed_message};

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
    match locate(settings, line, spans) {
        Ok(found) => {
            let message = match settings.output {
                OutputFormat::Raw => line.to_string(),
                OutputFormat::Json => {
                    // Messages run to about 2.3× the line (keys, the request split out). Room
                    // for that and a little more: too little doubles the buffer (events wait
                    // in batches, and memory is what they hold, not what they use).
                    let mut w = ObjectWriter::with_capacity(line.len() * 5 / 2 + 64);
                    write_fields(settings, line, spans, found.tail, &mut w);
                    w.finish()
                }
            };
            LogEvent {
                timestamp: found.timestamp.unwrap_or(fallback_ts),
                message,
                line: line_no,
                offset: 0,
                parse_failed: false,
            }
        }
        Err(reason) => unparsed_event(settings, line, line_no, fallback_ts, &reason),
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
        message: unparsed_message(settings.output, line, reason),
        line: line_no,
        offset: 0,
        parse_failed: true,
    }
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

/// The key under which text after the end of the format is kept.
pub const UNPARSED_TAIL: &str = "unparsed_tail";

/// The keys access messages have besides the format's variables.
struct Keys {
    request_method: Key,
    request_uri: Key,
    server_protocol: Key,
    unparsed_tail: Key,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    request_method: Key::new("request_method"),
    request_uri: Key::new("request_uri"),
    server_protocol: Key::new("server_protocol"),
    unparsed_tail: Key::new(UNPARSED_TAIL),
});

fn value<'l>(line: &'l str, spans: &[(usize, usize)], i: usize) -> &'l str {
    let (a, b) = spans[i];
    &line[a..b]
}

/// Writes the fields of a line that [`locate`] split into `w`: one per variable in format
/// order (`-` means no value and is left out), the request split into its parts, and any text
/// after the format. The second half of [`parse_line_with`].
pub fn write_fields<B: BorrowMut<String>>(
    settings: &ParseSettings,
    line: &str,
    spans: &[(usize, usize)],
    tail: usize,
    w: &mut ObjectWriter<B>,
) {
    let fmt = &settings.access_format;
    for (var, &(a, b)) in fmt.vars().iter().zip(spans) {
        let raw = &line[a..b];
        if raw == "-" {
            continue; // nginx writes `-` for "no value"
        }
        let unescaped;
        let value = if fmt.escape() == Escape::Json && raw.contains('\\') {
            unescaped = unescape_json(raw);
            unescaped.as_str()
        } else {
            raw
        };
        if var.numeric {
            w.num_field_at(&var.key, value);
        } else {
            w.str_field_at(&var.key, value);
        }
        if var.request
            && let Some((method, uri, proto)) = split_request(value)
        {
            let keys = &*KEYS;
            w.str_field_at(&keys.request_method, method);
            w.str_field_at(&keys.request_uri, uri);
            if let Some(p) = proto {
                w.str_field_at(&keys.server_protocol, p);
            }
        }
    }
    let tail = line[tail..].trim();
    if !tail.is_empty() {
        w.str_field_at(&KEYS.unparsed_tail, tail);
    }
}

/// `GET /path HTTP/1.1` → (method, uri, protocol); `GET /` (HTTP/0.9) has no protocol. Anything
/// else (TLS handshakes written as `\x16\x03…`, `-`, empty) is not a request line.
pub fn split_request(req: &str) -> Option<(&str, &str, Option<&str>)> {
    let (method, rest) = req.split_once(' ')?;
    let token = |upper_only: bool| {
        !method.is_empty()
            && method.len() <= 32
            && method.bytes().all(|c| {
                c.is_ascii_uppercase()
                    || c == b'-'
                    || c == b'_'
                    || (!upper_only && c.is_ascii_alphanumeric())
            })
    };
    // With an HTTP version the line has the request shape even when the method is bogus
    // (`geti / HTTP/1.1`, which nginx answers with 400); without one, only an upper-case method
    // makes it an HTTP/0.9 request rather than junk.
    if let Some((uri, proto)) = rest.rsplit_once(' ')
        && proto.starts_with("HTTP/")
        && !uri.is_empty()
        && token(false)
    {
        return Some((method, uri, Some(proto)));
    }
    (token(true) && !rest.is_empty() && !rest.contains(' ')).then_some((method, rest, None))
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
            serde_json::from_str(&ev.message).unwrap(),
            ev.parse_failed,
        )
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
            (ev.message.as_str(), ev.timestamp, ev.line),
            (line, 1_795_514_401_000, 7)
        );
        let ev = parse_line(&s, "junk", 8, 5);
        assert_eq!(
            (ev.message.as_str(), ev.timestamp, ev.parse_failed),
            ("junk", 5, true)
        );
    }

    #[test]
    fn request_shapes() {
        assert_eq!(
            split_request("GET / HTTP/1.1"),
            Some(("GET", "/", Some("HTTP/1.1")))
        );
        assert_eq!(
            split_request("GET /a[ ]b HTTP/1.1"),
            Some(("GET", "/a[ ]b", Some("HTTP/1.1")))
        );
        assert_eq!(split_request("GET /"), Some(("GET", "/", None)));
        assert_eq!(
            split_request("PRI * HTTP/2.0"),
            Some(("PRI", "*", Some("HTTP/2.0")))
        );
        assert_eq!(
            split_request("geti /p HTTP/1.1"),
            Some(("geti", "/p", Some("HTTP/1.1")))
        );
        for bad in [
            "",
            "-",
            "hello",
            "\\x16\\x03\\x01",
            "get /",
            "GET  HTTP/1.1 x y",
            "G\\x00T / HTTP/1.1",
        ] {
            assert_eq!(split_request(bad), None, "{bad}");
        }
    }
}
