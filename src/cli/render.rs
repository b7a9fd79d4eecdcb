//! The `parse` command's output: one `{"timestamp":…,"message":…}` line per event.
//!
//! The input goes through the forwarder's work stage ([`crate::forward::work`]): read in blocks
//! of whole lines, parsed on every core, results in input order. This file only writes them.
//! Access logs are written by the workers straight into output text, each message already
//! escaped as a JSON string ([`ObjectWriter::nested`]) instead of being built and then escaped a
//! second time; error logs become events on the Lambda's own road (continuation lines join
//! across block edges there). Either way the output is what line-by-line parsing writes.

use std::io::{self, Write};
use std::sync::Arc;

use crate::batch::{MAX_EVENT_MESSAGE_BYTES, fitting_parts};
pub use crate::forward::work::Plan;
use crate::forward::work::{self, Block, QUEUE_PER_WORKER, WorkError};
use crate::lines::{LineReader, pieces};
use crate::parse::access::{self, locate, unparsed_event, write_fields};
use crate::parse::json::{self, ObjectWriter, push_escaped};
use crate::parse::{LogEvent, OutputFormat, Parsing};
use crate::route::LogKind;
use crate::spare::Spare;

/// Lines up to this long are written by the fast road: their JSON message (at worst every byte
/// escaped as `\u00XX`, the request written twice, plus the keys) cannot exceed one event.
const FAST_LINE_MAX: usize = MAX_EVENT_MESSAGE_BYTES / 16;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("read failed after {bytes} bytes: {source}")]
    Read { bytes: u64, source: io::Error },
    #[error("cannot write the output: {0}")]
    Write(io::Error),
    #[error("a parsing thread stopped: {0}")]
    Thread(String),
}

/// Writes every event of `reader`'s object to `out`, the blocks parsed on `plan.threads`
/// workers by the forwarder's work stage ([`work::ordered`]) and written in input order.
/// Returns `out` (flushed). On a read error what was read before it is written first.
pub async fn render<W: Write + Send + 'static>(
    reader: LineReader,
    settings: Parsing<'_>,
    kind: LogKind,
    fallback_ts: i64,
    mut out: W,
    plan: Plan,
) -> Result<W, RenderError> {
    let read_error = match kind {
        LogKind::Access => write_access(reader, settings, fallback_ts, &mut out, plan).await?,
        LogKind::Error => {
            write_events_of(reader, settings, kind, fallback_ts, &mut out, plan).await?
        }
    };
    out.flush().map_err(RenderError::Write)?;
    match read_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// What a failed block means for the command: a read error is reported after what was read
/// before it is written; a worker that stopped ends the work.
fn failed(e: WorkError) -> Result<RenderError, RenderError> {
    match e {
        WorkError::Read { offset, source, .. } => Ok(RenderError::Read {
            bytes: offset,
            source,
        }),
        e @ WorkError::Worker { .. } => Err(RenderError::Thread(e.to_string())),
    }
}

/// Access logs: each block's lines written as output text by the workers ([`render_block`]);
/// here only the lines before a block's first time get the time before the block.
async fn write_access<W: Write>(
    reader: LineReader,
    settings: Parsing<'_>,
    fallback_ts: i64,
    out: &mut W,
    plan: Plan,
) -> Result<Option<RenderError>, RenderError> {
    let fixed_ts = settings
        .access_format
        .time_var()
        .is_none()
        .then_some(fallback_ts);
    let (shared, object) = (settings.shared.clone(), settings.object.clone());
    // Output buffers go back to the workers once written.
    let spare = Arc::new(Spare::new(plan.threads.max(1) * QUEUE_PER_WORKER + 2));
    let texts = Arc::clone(&spare);
    let mut blocks = work::ordered(reader, plan, move |block: &Block| {
        let mut text: String = texts.take().unwrap_or_default();
        text.reserve(block.bytes.len() * 5 / 2 + 64);
        let mut rendered = Rendered {
            text,
            ..Rendered::default()
        };
        render_block(
            Parsing::new(&shared, &object),
            &block.bytes,
            block.max_line,
            fixed_ts,
            &mut Vec::new(),
            &mut rendered,
        );
        rendered
    });
    let mut before = fallback_ts;
    let mut leading = String::new();
    while let Some(next) = blocks.next().await {
        let rendered = match next {
            Ok(done) => done.output,
            Err(e) => return failed(e).map(Some),
        };
        leading.clear();
        for mut ev in rendered.leading {
            ev.timestamp = before;
            write_event(&mut leading, ev, settings.shared.output);
        }
        out.write_all(leading.as_bytes())
            .and_then(|()| out.write_all(rendered.text.as_bytes()))
            .map_err(RenderError::Write)?;
        before = rendered.last_ts.unwrap_or(before);
        let mut text = rendered.text;
        text.clear();
        spare.give(text);
    }
    Ok(None)
}

/// Any log kind through the forwarder's own road: blocks parsed into events
/// ([`work::parse_block`]), finished in input order ([`work::Joiner`]: error-log continuation
/// lines join across block edges), each written as an output line.
async fn write_events_of<W: Write>(
    reader: LineReader,
    settings: Parsing<'_>,
    kind: LogKind,
    fallback_ts: i64,
    out: &mut W,
    plan: Plan,
) -> Result<Option<RenderError>, RenderError> {
    let shared = Arc::new(settings.shared.clone());
    let job = work::Job::new(shared, settings.object.clone(), kind, fallback_ts, 0);
    let mut blocks = work::ordered(reader, plan, move |block| work::parse_block(&job, block));
    let mut joiner = work::Joiner::new(fallback_ts);
    let (mut events, mut text) = (Vec::new(), String::new());
    let mut read_error = None;
    while let Some(next) = blocks.next().await {
        match next {
            Ok(done) => joiner.join(settings, done.output, &mut events),
            Err(e) => {
                read_error = Some(failed(e)?);
                break;
            }
        }
        write_events(&mut events, &mut text, settings.shared.output, out)?;
    }
    joiner.finish(settings, &mut events);
    write_events(&mut events, &mut text, settings.shared.output, out)?;
    Ok(read_error)
}

/// The plain road, one line at a time through [`LineParser`]: what the block road must write.
#[cfg(test)]
pub async fn render_lines<W: Write>(
    mut reader: LineReader,
    settings: Parsing<'_>,
    kind: LogKind,
    fallback_ts: i64,
    out: W,
) -> Result<W, RenderError> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut parser = crate::parse::LineParser::new(settings, kind, fallback_ts);
    let mut events = Vec::new();
    let mut text = String::new();
    let mut read_error = None;
    loop {
        match reader.next_line().await {
            Ok(Some((n, line))) if !line.trim().is_empty() => parser.push(&line, n, &mut events),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(source) => {
                read_error = Some(RenderError::Read {
                    bytes: reader.bytes(),
                    source,
                });
                break;
            }
        }
        write_events(&mut events, &mut text, settings.shared.output, &mut out)?;
    }
    parser.finish(&mut events);
    write_events(&mut events, &mut text, settings.shared.output, &mut out)?;
    let out = out
        .into_inner()
        .map_err(|e| RenderError::Write(e.into_error()))?;
    match read_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Writes (and drains) `events` through the reused `text` buffer.
fn write_events(
    events: &mut Vec<LogEvent>,
    text: &mut String,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), RenderError> {
    text.clear();
    for ev in events.drain(..) {
        write_event(text, ev, output);
    }
    out.write_all(text.as_bytes()).map_err(RenderError::Write)
}

/// One output line, the message split into parts first if it is too big for one event.
fn write_event(text: &mut String, ev: LogEvent, output: OutputFormat) {
    for part in fitting_parts(ev, output) {
        push_head(text, part.timestamp);
        text.push_str(part.message.escaped());
        text.push_str("\"}\n");
    }
}

/// `{"timestamp":<ms>,"message":"` — the message's text follows, then `"}`.
fn push_head(text: &mut String, timestamp: i64) {
    text.push_str("{\"timestamp\":");
    json::push_i64(text, timestamp);
    text.push_str(",\"message\":\"");
}

/// One block's output.
#[derive(Default)]
struct Rendered {
    /// Unparsable lines before the block's first line with a time of its own: their timestamp
    /// is the one before the block, which only the writer knows.
    leading: Vec<LogEvent>,
    text: String,
    /// The timestamp of the block's last event (what an unparsable line after it gets).
    last_ts: Option<i64>,
}

/// Parses one block of access lines. `fixed_ts` is the timestamp every line gets when the
/// format has no time variable.
fn render_block(
    settings: Parsing<'_>,
    block: &[u8],
    max_line: usize,
    fixed_ts: Option<i64>,
    spans: &mut Vec<(usize, usize)>,
    out: &mut Rendered,
) {
    out.leading.clear();
    out.text.clear();
    out.last_ts = None;
    // Checked once for the block; each line is then a slice of it (a piece cut inside a
    // character, at the line-length cap, is checked again on its own).
    let text = std::str::from_utf8(block).ok();
    let has_nul = memchr::memchr(0, block).is_some();
    let mut cleaned = Vec::new();
    for range in pieces(block, max_line) {
        let nul = has_nul && memchr::memchr(0, &block[range.clone()]).is_some();
        let line = work::piece_text(block, text, range, nul, &mut cleaned);
        if line.trim().is_empty() {
            continue;
        }
        let fallback = out.last_ts.or(fixed_ts);
        if line.len() > FAST_LINE_MAX {
            let ev = access::parse_line_with(settings, &line, 0, fallback.unwrap_or(0), spans);
            out.push_slow(ev, fallback.is_some(), settings.shared.output);
            continue;
        }
        match locate(settings, &line, spans) {
            Ok(found) => {
                let ts = found.timestamp.or(fixed_ts).unwrap_or(0);
                out.last_ts = Some(ts);
                push_head(&mut out.text, ts);
                match settings.shared.output {
                    OutputFormat::Json => {
                        let mut w = ObjectWriter::nested(&mut out.text);
                        write_fields(settings, &line, spans, found.tail, &mut w);
                        w.finish();
                    }
                    OutputFormat::Raw => push_escaped(&mut out.text, &line),
                }
                out.text.push_str("\"}\n");
            }
            Err(reason) => {
                let ev = unparsed_event(settings, &line, 0, fallback.unwrap_or(0), &reason);
                out.push_slow(ev, fallback.is_some(), settings.shared.output);
            }
        }
    }
}

impl Rendered {
    /// An event built whole (a long line, or one that did not parse). Without a time of its own
    /// and none known yet in the block (`fallback_known` false), it waits in `leading` for the
    /// writer to give it the time before the block.
    fn push_slow(&mut self, ev: LogEvent, fallback_known: bool, output: OutputFormat) {
        if ev.parse_failed && !fallback_known {
            self.leading.push(ev);
        } else {
            self.last_ts = Some(ev.timestamp);
            write_event(&mut self.text, ev, output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::MAX_LINE_BYTES;
    use crate::parse::{LogFormat, ParseSettings};

    async fn both_roads(
        settings: &ParseSettings,
        kind: LogKind,
        data: &[u8],
        plan: Plan,
        max_line: usize,
    ) -> (String, String) {
        let open = || async {
            LineReader::open(Box::new(std::io::Cursor::new(data.to_vec())))
                .await
                .unwrap()
                .with_max_line(max_line)
        };
        let slow = render_lines(open().await, settings.into(), kind, 42, Vec::new())
            .await
            .unwrap();
        let fast = render(open().await, settings.into(), kind, 42, Vec::new(), plan)
            .await
            .unwrap();
        (
            String::from_utf8(slow).unwrap(),
            String::from_utf8(fast).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_fast_road_writes_what_the_plain_one_does() {
        let combined = ParseSettings::default();
        let raw = ParseSettings {
            output: OutputFormat::Raw,
            ..ParseSettings::default()
        };
        let timeless = ParseSettings {
            access_format: LogFormat::parse_config(r#"'$remote_addr "$request" $status'"#).unwrap(),
            ..ParseSettings::default()
        };
        let json_escaped = ParseSettings {
            access_format: LogFormat::parse_config(
                r#"escape=json '$remote_addr [$time_local] "$request" $status "$http_user_agent"'"#,
            )
            .unwrap(),
            ..ParseSettings::default()
        };
        let lines = concat!(
            "junk before any time\n",
            "\n",
            "93.184.216.34 - - [24/Nov/2026:10:00:01 +0000] \"GET /a HTTP/1.1\" 200 612 \"-\" \"Mozilla \\x22q\\x22\"\n",
            "10.0.0.1 \"GET / HTTP/1.1\" 200\r\n",
            "more junk \"quoted\" \\ \t\x01 \u{e9}\n",
            "10.0.0.9 [24/Nov/2026:10:00:02 +0000] \"GET /b HTTP/1.1\" 404 \"agent \\\"x\\\"\\u0001\"\n",
            "2001:db8::1 - alice [24/Nov/2026:11:00:03 +0100] \"POST /c?x=1 HTTP/2.0\" 201 0 \"https://e/a b\" \"curl/8\" extra\n",
            "\0\0\0\n",
            "bad \u{fffd} time [99/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n",
            "tail without newline",
        );
        let mut data = lines.as_bytes().to_vec();
        data.extend_from_slice(b"\n\xff\xfe invalid utf-8\n");
        data.extend_from_slice(lines.as_bytes());
        for settings in [&combined, &raw, &timeless, &json_escaped] {
            for threads in [1, 2, 3] {
                for block_bytes in [1, 7, 64, 1 << 20] {
                    for max_line in [5, 40, MAX_LINE_BYTES] {
                        let plan = Plan {
                            threads,
                            block_bytes,
                        };
                        let (slow, fast) =
                            both_roads(settings, LogKind::Access, &data, plan, max_line).await;
                        assert!(slow.lines().count() > 10, "{slow}");
                        assert_eq!(
                            fast,
                            slow,
                            "{plan:?} cap {max_line} {:?}",
                            settings.access_format.source()
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn an_oversize_line_is_split_on_both_roads() {
        let line = format!(
            "1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] \"GET /{} HTTP/1.1\" 200 1 \"-\" \"-\"\n",
            "\"".repeat(300_000)
        );
        let data = format!("{line}not a line {}\n{line}", "\\".repeat(600_000));
        let (slow, fast) = both_roads(
            &ParseSettings::default(),
            LogKind::Access,
            data.as_bytes(),
            Plan::default(),
            MAX_LINE_BYTES,
        )
        .await;
        assert!(slow.lines().count() > 3);
        assert!(slow.contains("parts"));
        assert_eq!(fast, slow);
    }

    #[tokio::test]
    async fn error_logs_join_continuation_lines_across_block_edges() {
        let lines = concat!(
            "stray text before any record\n",
            "  and its second line\n",
            "2026/11/24 10:00:01 [error] 12#12: *5 open() \"/x\" failed (2: No such file), client: 1.2.3.4, server: a, request: \"GET /x HTTP/1.1\", host: \"a\"\n",
            "PHP message: PHP Fatal error:  Uncaught Exception in /srv/a.php:3\n",
            "Stack trace:\n",
            "\n",
            "#0 {main}\r\n",
            "2026/11/24 10:00:02 [warn] 12#12: a warning\n",
            "2026/11/24 10:00:03 [nonsense] not a header\n",
            "\u{0}\u{0}continued after NULs \u{e9}\n",
            "2026/11/24 10:00:04 [crit] 12#13: *6 last one",
        );
        let mut data = lines.as_bytes().to_vec();
        data.extend_from_slice(b"\n\xff\xfe continued, invalid utf-8\n");
        data.extend_from_slice(lines.as_bytes());
        for output in [OutputFormat::Json, OutputFormat::Raw] {
            let settings = ParseSettings {
                output,
                ..ParseSettings::default()
            };
            for threads in [1, 2, 3] {
                for block_bytes in [1, 7, 64, 1 << 20] {
                    for max_line in [5, 40, MAX_LINE_BYTES] {
                        let plan = Plan {
                            threads,
                            block_bytes,
                        };
                        let (slow, fast) =
                            both_roads(&settings, LogKind::Error, &data, plan, max_line).await;
                        // (Pieces shorter than a timestamp make one event of everything.)
                        assert!(max_line < 19 || slow.lines().count() >= 8, "{slow}");
                        assert_eq!(fast, slow, "{plan:?} cap {max_line} {output:?}");
                    }
                }
            }
        }
    }

    /// A writer that fails after a few bytes, like stdout piped into `head`.
    #[derive(Debug)]
    struct Broken(usize);

    impl Write for Broken {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 < buf.len() {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failing_output_stops_the_work_with_its_error() {
        let line =
            "1.2.3.4 - - [24/Nov/2026:10:00:01 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"\n";
        let data = line.repeat(50_000).into_bytes();
        let reader = LineReader::open(Box::new(std::io::Cursor::new(data)))
            .await
            .unwrap();
        let plan = Plan {
            threads: 2,
            block_bytes: 4096,
        };
        let err = render(
            reader,
            (&ParseSettings::default()).into(),
            LogKind::Access,
            0,
            Broken(10_000),
            plan,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, RenderError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe),
            "{err}"
        );
    }
}
