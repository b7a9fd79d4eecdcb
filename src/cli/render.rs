//! The `parse` command's output: one `{"timestamp":…,"message":…}` line per event.
//!
//! Access logs take the fast road: the input is read in blocks of whole lines, blocks are
//! parsed on every core, and each message is written straight into its output line, already
//! escaped as a JSON string ([`ObjectWriter::nested`]), instead of being built and then escaped
//! a second time. Blocks are written in input order, so the output is the same as line by line
//! ([`render_lines`], which error logs use: their continuation lines join across blocks).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::batch::{MAX_EVENT_MESSAGE_BYTES, fitting_parts};
use crate::lines::{LineReader, MAX_LINE_BYTES, pieces};
use crate::parse::access::{self, locate, unparsed_event, write_fields};
use crate::parse::json::{self, ObjectWriter, push_escaped};
use crate::parse::{LineParser, LogEvent, OutputFormat, ParseSettings};
use crate::route::LogKind;

/// Input handed to a thread at a time: big enough that hand-offs cost nothing, small enough to
/// stay in cache.
pub const BLOCK_BYTES: usize = 1 << 20;
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

/// How the work is spread; the defaults suit the command, tests make blocks tiny.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub threads: usize,
    pub block_bytes: usize,
    pub max_line: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            block_bytes: BLOCK_BYTES,
            max_line: MAX_LINE_BYTES,
        }
    }
}

/// Writes every event of `reader`'s object to `out`; access logs on `plan.threads` threads,
/// error logs line by line. Returns `out` (flushed). On a read error what was read before it is
/// written first.
pub async fn render<W: Write + Send + 'static>(
    reader: LineReader,
    settings: &ParseSettings,
    kind: LogKind,
    fallback_ts: i64,
    out: W,
    plan: Plan,
) -> Result<W, RenderError> {
    match kind {
        LogKind::Access => render_blocks(reader, settings, fallback_ts, out, plan).await,
        LogKind::Error => render_lines(reader, settings, kind, fallback_ts, out).await,
    }
}

/// The plain road, one line at a time through [`LineParser`].
pub async fn render_lines<W: Write>(
    mut reader: LineReader,
    settings: &ParseSettings,
    kind: LogKind,
    fallback_ts: i64,
    out: W,
) -> Result<W, RenderError> {
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let mut parser = LineParser::new(settings, kind, fallback_ts);
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
        write_events(&mut events, &mut text, settings.output, &mut out)?;
    }
    parser.finish(&mut events);
    write_events(&mut events, &mut text, settings.output, &mut out)?;
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
        push_escaped(text, &part.message);
        text.push_str("\"}\n");
    }
}

/// `{"timestamp":<ms>,"message":"` — the message's text follows, then `"}`.
fn push_head(text: &mut String, timestamp: i64) {
    text.push_str("{\"timestamp\":");
    json::push_i64(text, timestamp);
    text.push_str(",\"message\":\"");
}

/// A block and what became of it; recycled so that buffers are allocated once.
#[derive(Default)]
struct Slot {
    input: Vec<u8>,
    out: Rendered,
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
    settings: &ParseSettings,
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
        let piece = &block[range.clone()];
        let line = if has_nul && memchr::memchr(0, piece).is_some() {
            cleaned.clear();
            cleaned.extend(piece.iter().copied().filter(|&b| b != 0));
            String::from_utf8_lossy(&cleaned)
        } else if let Some(line) = text.and_then(|t| t.get(range)) {
            Cow::Borrowed(line)
        } else {
            String::from_utf8_lossy(piece)
        };
        if line.trim().is_empty() {
            continue;
        }
        let fallback = out.last_ts.or(fixed_ts);
        if line.len() > FAST_LINE_MAX {
            let ev = access::parse_line_with(settings, &line, 0, fallback.unwrap_or(0), spans);
            out.push_slow(ev, fallback.is_some(), settings.output);
            continue;
        }
        match locate(settings, &line, spans) {
            Ok(found) => {
                let ts = found.timestamp.or(fixed_ts).unwrap_or(0);
                out.last_ts = Some(ts);
                push_head(&mut out.text, ts);
                match settings.output {
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
                out.push_slow(ev, fallback.is_some(), settings.output);
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

/// The fast road: a reading task, `plan.threads` parsing threads and a writing thread, with a
/// fixed set of recycled blocks between them (memory stays bounded whatever the input).
async fn render_blocks<W: Write + Send + 'static>(
    mut reader: LineReader,
    settings: &ParseSettings,
    fallback_ts: i64,
    out: W,
    plan: Plan,
) -> Result<W, RenderError> {
    let threads = plan.threads.max(1);
    let slots = threads * 2 + 2;
    let fixed_ts = settings
        .access_format
        .time_var()
        .is_none()
        .then_some(fallback_ts);
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<Slot>(slots);
    for _ in 0..slots {
        // The channel has room for every slot.
        let _ = free_tx.try_send(Slot::default());
    }
    let (job_tx, job_rx) = mpsc::channel::<(u64, Slot)>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    // `None`: the block's parsing panicked. The writer then stops, which stops the reader;
    // a block silently missing would leave the writer waiting for it forever.
    let (done_tx, done_rx) = mpsc::channel::<(u64, Option<Slot>)>();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let jobs = Arc::clone(&job_rx);
            let done = done_tx.clone();
            let settings = settings.clone();
            let max_line = plan.max_line;
            std::thread::spawn(move || {
                let mut spans = Vec::new();
                loop {
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return, // another worker panicked; the join reports it
                    };
                    let Ok((seq, mut slot)) = job else { return };
                    let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        render_block(
                            &settings,
                            &slot.input,
                            max_line,
                            fixed_ts,
                            &mut spans,
                            &mut slot.out,
                        );
                    }));
                    if done.send((seq, parsed.ok().map(|()| slot))).is_err() {
                        return; // the writer stopped (its error is reported)
                    }
                }
            })
        })
        .collect();
    drop(done_tx);
    let output = settings.output;
    let writer = std::thread::spawn(move || -> Result<W, RenderError> {
        let mut out = out;
        let mut before = fallback_ts;
        let mut next = 0u64;
        let mut waiting = BTreeMap::new();
        let mut leading = String::new();
        for (seq, slot) in done_rx {
            let slot = slot.ok_or_else(|| {
                RenderError::Thread(format!("parsing block {seq} of the input panicked"))
            })?;
            waiting.insert(seq, slot);
            while let Some(mut slot) = waiting.remove(&next) {
                leading.clear();
                for mut ev in slot.out.leading.drain(..) {
                    ev.timestamp = before;
                    write_event(&mut leading, ev, output);
                }
                out.write_all(leading.as_bytes())
                    .and_then(|()| out.write_all(slot.out.text.as_bytes()))
                    .map_err(RenderError::Write)?;
                before = slot.out.last_ts.unwrap_or(before);
                next += 1;
                // The reader may have finished; then the slot is simply dropped.
                let _ = free_tx.blocking_send(slot);
            }
        }
        out.flush().map_err(RenderError::Write)?;
        Ok(out)
    });
    let mut read_error = None;
    let mut seq = 0u64;
    // No free slot means the writer has stopped (an error it reports).
    while let Some(mut slot) = free_rx.recv().await {
        match reader.next_block(&mut slot.input, plan.block_bytes).await {
            Ok(true) => {
                if job_tx.send((seq, slot)).is_err() {
                    break;
                }
                seq += 1;
            }
            Ok(false) => break,
            Err(source) => {
                read_error = Some(RenderError::Read {
                    bytes: reader.bytes(),
                    source,
                });
                break;
            }
        }
    }
    drop(job_tx);
    drop(free_rx);
    let joined = tokio::task::spawn_blocking(move || {
        let mut panicked = None;
        for w in workers {
            if w.join().is_err() {
                panicked = Some("a parsing thread panicked".to_string());
            }
        }
        let written = writer.join();
        (panicked, written)
    })
    .await
    .map_err(|e| RenderError::Thread(e.to_string()))?;
    let out = match joined {
        (Some(p), _) => return Err(RenderError::Thread(p)),
        (None, Err(_)) => return Err(RenderError::Thread("the writing thread panicked".into())),
        (None, Ok(written)) => written?,
    };
    match read_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::LogFormat;

    async fn both_roads(settings: &ParseSettings, data: &[u8], plan: Plan) -> (String, String) {
        let open = || async {
            LineReader::open(Box::new(std::io::Cursor::new(data.to_vec())))
                .await
                .unwrap()
                .with_max_line(plan.max_line)
        };
        let slow = render_lines(open().await, settings, LogKind::Access, 42, Vec::new())
            .await
            .unwrap();
        let fast = render(
            open().await,
            settings,
            LogKind::Access,
            42,
            Vec::new(),
            plan,
        )
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
                            max_line,
                        };
                        let (slow, fast) = both_roads(settings, &data, plan).await;
                        assert!(slow.lines().count() > 10, "{slow}");
                        assert_eq!(fast, slow, "{plan:?} {:?}", settings.access_format.source());
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
        let (slow, fast) =
            both_roads(&ParseSettings::default(), data.as_bytes(), Plan::default()).await;
        assert!(slow.lines().count() > 3);
        assert!(slow.contains("parts"));
        assert_eq!(fast, slow);
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
            max_line: MAX_LINE_BYTES,
        };
        let err = render(
            reader,
            &ParseSettings::default(),
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
