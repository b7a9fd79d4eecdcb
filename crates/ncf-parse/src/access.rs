//! Access-log lines → events, through the compiled `log_format`.

use std::borrow::{BorrowMut, Cow};
use std::sync::Arc;

use super::format::{Escape, TimeVar};
use super::json::{CLOSE_EVENT, InArena, ObjectWriter, open_event, push_message};
pub use super::request_line::{RequestParts, request_parts, split_request};
use super::time::{parse_msec, parse_time_iso8601, parse_time_local};
use crate::event::{LogEvent, unparsed_message};
use crate::json::Message;
use crate::names::OutputFormat;
use crate::redact::FieldClass;
use crate::settings::Parsing;

/// Parses one access line. Never fails: a line that does not match the format is forwarded raw.
pub fn parse_line<'a>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
) -> LogEvent {
    let settings = settings.into();
    parse_line_with(settings, line, line_no, fallback_ts, &mut Vec::new())
}

/// [`parse_line`] with a reusable buffer for the field ranges (no allocation per line but the
/// message itself).
pub fn parse_line_with<'a>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    spans: &mut Vec<(usize, usize)>,
) -> LogEvent {
    let settings = settings.into();
    let mut buffers = Buffers {
        spans: std::mem::take(spans),
        arena: String::new(),
    };
    let (mut ev, at) = parse_line_into(settings, line, line_no, fallback_ts, &mut buffers);
    if let Some(at) = at {
        ev.message = Message::in_arena(&Arc::new(buffers.arena), at);
    }
    *spans = buffers.spans;
    ev
}

/// A worker's buffers for access lines, reused from line to line: the field ranges of the
/// current line, and the arena the event objects of a block are written into one after
/// another ([`write_event`]).
#[derive(Debug, Default)]
pub struct Buffers {
    pub spans: Vec<(usize, usize)>,
    pub arena: String,
}

/// What [`write_event`] made of one access line.
#[derive(Debug)]
pub enum LineOutcome {
    /// It matched: its event object is written at the end of the arena, the message at the
    /// range given and the object's start and timestamp in [`InArena::frame`]; the second
    /// value is the redaction rules that changed it ([`LogEvent::redacted`]).
    Written(InArena, u32),
    /// It matched, and a `FILTER_RULES` rule took it at this timestamp: nothing is written
    /// (counted, never sent).
    Filtered(i64, crate::filter::Filtered),
    /// It did not match the format, for this reason: it is forwarded raw.
    Unparsed(String),
}

/// Parses one access line: a line that matches has its event object
/// (`{"timestamp":…,"message":"…"}`, the request syntax of PutLogEvents and the `parse`
/// command's output line alike) written into `buffers.arena`, the message in it escaped once.
/// Nothing follows the object: the caller writes what separates it from the next. The one
/// place that decides what an access line becomes; [`LineOutcome::into_event`] makes it an event.
#[inline]
pub fn write_event(
    settings: Parsing<'_>,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    buffers: &mut Buffers,
) -> LineOutcome {
    let found = match locate(settings, line, &mut buffers.spans) {
        Ok(found) => found,
        Err(reason) => return LineOutcome::Unparsed(reason),
    };
    let timestamp = found.timestamp.unwrap_or(fallback_ts);
    if let Some(filtered) = filtered(settings, line, &buffers.spans, line_no) {
        return LineOutcome::Filtered(timestamp, filtered);
    }
    let arena = &mut buffers.arena;
    let frame = arena.len();
    open_event(arena, timestamp);
    let mut redacted = 0;
    let mut at = match settings.shared.output {
        OutputFormat::Raw if settings.shared.redaction.is_empty() => push_message(arena, line),
        OutputFormat::Raw => {
            let spans = &buffers.spans;
            let text = redact_raw(settings, line, spans, found.tail, &mut redacted);
            push_message(arena, &text)
        }
        OutputFormat::Json => {
            let start = arena.len();
            let mut w = ObjectWriter::nested(arena);
            redacted = write_fields(settings, line, &buffers.spans, found.tail, &mut w);
            w.finish_in_arena(start)
        }
    };
    arena.push_str(CLOSE_EVENT);
    at.frame = Some((frame, timestamp));
    LineOutcome::Written(at, redacted)
}

impl LineOutcome {
    /// The event of the line [`write_event`] wrote (`fallback_ts` as given there), and where
    /// its message is in the arena (`None`: the event has its message already, a line that
    /// did not parse, or none, filtered); [`Message::in_arena`] makes it the event's.
    pub fn into_event(
        self,
        settings: Parsing<'_>,
        line: &str,
        line_no: u64,
        fallback_ts: i64,
    ) -> (LogEvent, Option<InArena>) {
        let event = |timestamp, filtered, redacted| LogEvent {
            timestamp,
            message: Message::default(),
            line: line_no,
            offset: 0,
            parse_failed: false,
            filtered,
            redacted,
        };
        match self {
            Self::Written(at, redacted) => (
                event(at.frame.map_or(fallback_ts, |f| f.1), None, redacted),
                Some(at),
            ),
            Self::Filtered(timestamp, filtered) => (event(timestamp, Some(filtered), 0), None),
            Self::Unparsed(reason) => (
                unparsed_event(settings, line, line_no, fallback_ts, &reason),
                None,
            ),
        }
    }
}

/// [`parse_line_with`] writing the message into `buffers.arena`, the buffer a worker shares
/// between the messages of a block, inside its event object with a `,` after it: consecutive
/// events of a batch are then one run of the arena ([`Message::frame`]). The event's message is
/// left empty and the second value says where its text is ([`LineOutcome::into_event`]).
pub fn parse_line_into<'a>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    buffers: &mut Buffers,
) -> (LogEvent, Option<InArena>) {
    let settings = settings.into();
    let outcome = write_event(settings, line, line_no, fallback_ts, buffers);
    if matches!(outcome, LineOutcome::Written(..)) {
        buffers.arena.push(',');
    }
    outcome.into_event(settings, line, line_no, fallback_ts)
}

/// The event of a line that did not parse: forwarded raw with `reason`, at `fallback_ts`.
pub fn unparsed_event<'a>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    line_no: u64,
    fallback_ts: i64,
    reason: &str,
) -> LogEvent {
    let settings = settings.into();
    let (message, redacted) = unparsed_message(settings, line, reason);
    LogEvent {
        timestamp: fallback_ts,
        message,
        line: line_no,
        offset: 0,
        parse_failed: true,
        filtered: None,
        redacted,
    }
}

/// What `FILTER_RULES` does to a line that parsed (`spans` located): the fields are the
/// format's variables as logged (`-` is no value) and the parts of `$request`.
#[inline]
pub fn filtered<'a>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    spans: &[(usize, usize)],
    line_no: u64,
) -> Option<crate::filter::Filtered> {
    let settings = settings.into();
    if !settings.shared.rules.any_for(crate::names::LogKind::Access) {
        return None; // the common case, checked where the line is parsed
    }
    decide_filter(settings, line, spans, line_no)
}

/// [`filtered`] once some rule is for access lines.
fn decide_filter(
    settings: Parsing<'_>,
    line: &str,
    spans: &[(usize, usize)],
    line_no: u64,
) -> Option<crate::filter::Filtered> {
    let fmt = settings.access_format;
    let logged = |i: usize| Some(value(line, spans, i)).filter(|v| *v != "-");
    let parts = std::cell::OnceCell::new();
    let parts = || {
        *parts.get_or_init(|| {
            let request = fmt.vars().iter().position(|v| v.request).and_then(logged);
            request.map(|r| logged_request_parts(settings, line, spans, r))
        })
    };
    let [method, uri, protocol] = fmt.derived_keys();
    settings.shared.rules.decide(
        crate::names::LogKind::Access,
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
        settings.object.sample_seed,
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
#[inline]
pub fn locate<'a>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    spans: &mut Vec<(usize, usize)>,
) -> Result<Located, String> {
    let settings = settings.into();
    let fmt = settings.access_format;
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
/// variable of that name: then [`LogFormat::tail_key`](crate::format::LogFormat::tail_key)).
pub use super::format::UNPARSED_TAIL;

fn value<'l>(line: &'l str, spans: &[(usize, usize)], i: usize) -> &'l str {
    let (a, b) = spans[i];
    &line[a..b]
}

/// Writes the fields of a line that [`locate`] split into `w`: one per variable name in format
/// order (the first occurrence of a name the format repeats; `-` means no value and is left
/// out), after `$request` what nginx's `$request_method`, `$request_uri` and `$server_protocol`
/// held for it when the format does not have them itself ([`request_parts`]), and any text
/// after the format. Every key is written at most once, its value redacted
/// ([`ParseSettings::redaction`](crate::ParseSettings::redaction)); the rules that changed a
/// value are returned ([`LogEvent::redacted`]). The second half of [`parse_line_with`].
pub fn write_fields<'a, B: BorrowMut<String>>(
    settings: impl Into<Parsing<'a>>,
    line: &str,
    spans: &[(usize, usize)],
    tail: usize,
    w: &mut ObjectWriter<B>,
) -> u32 {
    let settings = settings.into();
    let red = &settings.shared.redaction;
    let mut hits = 0;
    let fmt = settings.access_format;
    let derived = fmt.derived();
    // json-compact: the event's timestamp carries the time variable it was read from.
    let time_var = fmt.time_var().filter(|_| settings.shared.compact);
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
        let parts = (var.request && (derived.any() || settings.shared.compact))
            .then(|| logged_request_parts(settings, line, spans, value));
        // json-compact: `request` is left out when its parts, in the message, rebuild it.
        let rebuilt = settings.shared.compact && parts.is_some_and(|p| p.rebuild_exactly(value));
        if var.request && (!fmt.writes_request() || rebuilt) {
            // Only its parts (td-agent's names, or json-compact).
        } else if let Some(value) = red.value(var.key.name(), var.class, value, &mut hits) {
            if var.numeric {
                w.num_field_at(&var.key, &value);
            } else {
                w.str_field_at(&var.key, &value);
            }
        }
        if let Some(parts) = parts.filter(|_| derived.any()) {
            let [method, uri, protocol] = fmt.derived_keys();
            for (wanted, key, v, class) in [
                (
                    derived.request_method,
                    method,
                    parts.method,
                    FieldClass::Fixed,
                ),
                (derived.request_uri, uri, parts.uri, FieldClass::Uri),
                (
                    derived.server_protocol,
                    protocol,
                    parts.protocol,
                    FieldClass::Fixed,
                ),
            ] {
                if let (true, Some(v)) = (wanted, v)
                    && let Some(v) = red.value(key.name(), class, v, &mut hits)
                {
                    w.str_field_at(key, &v);
                }
            }
        }
    }
    let tail = line[tail..].trim();
    if !tail.is_empty()
        && let Some(tail) = red.value(fmt.tail_key().name(), FieldClass::Free, tail, &mut hits)
    {
        w.str_field_at(fmt.tail_key(), &tail);
    }
    settings.object.extra.write_to(w);
    hits
}

/// A raw message of a line that [`locate`] split, its values redacted in place: the text
/// between them as nginx wrote it, a dropped field `-`, a value of an `escape=json` format
/// escaped again. Text after the format gets the free-text rules.
fn redact_raw<'l>(
    settings: Parsing<'_>,
    line: &'l str,
    spans: &[(usize, usize)],
    tail: usize,
    hits: &mut u32,
) -> Cow<'l, str> {
    let (red, fmt) = (&settings.shared.redaction, settings.access_format);
    let mut out = String::new();
    let mut copied = 0;
    let mut replace = |out: &mut String, (a, b): (usize, usize), new: &str| {
        out.push_str(&line[copied..a]);
        out.push_str(new);
        copied = b;
    };
    for (var, &(a, b)) in fmt.vars().iter().zip(spans) {
        let raw = &line[a..b];
        if raw == "-" {
            continue;
        }
        let json = fmt.escape() == Escape::Json && raw.contains('\\');
        let value = if json {
            Cow::Owned(unescape_json(raw))
        } else {
            Cow::Borrowed(raw)
        };
        match red.value(var.key.name(), var.class, &value, hits) {
            None => replace(&mut out, (a, b), "-"),
            Some(Cow::Borrowed(_)) => {}
            Some(Cow::Owned(new)) if fmt.escape() == Escape::Json => {
                let quoted = serde_json::to_string(&new).unwrap_or_default();
                replace(
                    &mut out,
                    (a, b),
                    quoted.get(1..quoted.len() - 1).unwrap_or(""),
                );
            }
            Some(Cow::Owned(new)) => replace(&mut out, (a, b), &new),
        }
    }
    if let Cow::Owned(new) = red.by_class(FieldClass::Free, &line[tail..], hits) {
        replace(&mut out, (tail, line.len()), &new);
    }
    if copied == 0 && out.is_empty() {
        return Cow::Borrowed(line);
    }
    out.push_str(&line[copied..]);
    Cow::Owned(out)
}

/// [`request_parts`] of `request` (the line's `$request`), with what the line's own `$status`,
/// `$request_method`, `$request_uri` and `$server_protocol` say, as logged, by the rules of the
/// object's nginx.
fn logged_request_parts<'r>(
    settings: Parsing<'_>,
    line: &str,
    spans: &[(usize, usize)],
    request: &'r str,
) -> RequestParts<'r> {
    let fmt = settings.access_format;
    let logged = |i: Option<usize>| i.map(|i| value(line, spans, i));
    let [m, u, p] = fmt.request_part_vars();
    let own = RequestParts {
        method: logged(m),
        uri: logged(u),
        protocol: logged(p),
    };
    request_parts(
        request,
        fmt.escape(),
        logged(fmt.status_var()),
        own,
        settings.object.request_line,
    )
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
    use crate::{LogFormat, ObjectParse, ParseSettings};
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
            "/../../tests/data/access.log"
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

    /// The issue's line, from an older nginx: its request parts by the object's nginx version,
    /// and without one by what the line proves (nginx answered 200).
    #[test]
    fn older_nginx_lines_keep_their_request_parts() {
        use crate::RequestLineRules;
        let line = r#"198.51.100.7 - - [24/Nov/2026:21:10:26 +0900] "GET /files/annual report 2026.pdf HTTP/1.1" 200 508249 "-" "curl/8.5.0""#;
        let parts = json!({
            "request_method": "GET",
            "request_uri": "/files/annual report 2026.pdf",
            "server_protocol": "HTTP/1.1",
        });
        // (nginx-version metadata, whether the message has the parts)
        for (version, has_parts) in [
            (None, true),
            (Some("1.18.0"), true),
            (Some("1.20.2"), true),
            (Some("1.22.1"), false),
            (Some("1.30.4"), false),
            (Some("tengine/2.3.3"), true),
        ] {
            let object = ObjectParse {
                request_line: RequestLineRules::from_metadata(version),
                ..ObjectParse::default()
            };
            let settings = ParseSettings::default();
            let ev = parse_line(Parsing::new(&settings, &object), line, 1, 0);
            assert!(!ev.parse_failed, "{version:?}");
            let msg: Value = serde_json::from_str(&ev.message.text()).unwrap();
            for (k, v) in parts.as_object().unwrap() {
                let want = has_parts.then_some(v);
                assert_eq!(msg.get(k), want, "{version:?}: {k} in {msg}");
            }
            assert_eq!(
                msg["request"], "GET /files/annual report 2026.pdf HTTP/1.1",
                "{version:?}"
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
        use crate::FieldNames;
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
        use crate::extra::ExtraFields;
        let mut s = settings("combined");
        let object = ObjectParse {
            extra: ExtraFields::parse("instance_id={instance_id},site=shop", &["instance_id"], &[])
                .unwrap()
                .render(|_| Some("i-0abc"), |_| None),
            ..ObjectParse::default()
        };
        let good = r#"1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "x""#;
        for line in [good, "junk"] {
            let ev = parse_line(Parsing::new(&s, &object), line, 1, 0);
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
        let raw = parse_line(Parsing::new(&s, &object), good, 1, 0);
        assert_eq!(raw.message.text(), good);
    }
}
