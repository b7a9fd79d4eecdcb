//! The `parse` command's output: one `{"timestamp":…,"message":…}` line per event.
//!
//! The input goes through the forwarder's own engine ([`crate::forward::work`]): read in
//! blocks of whole lines, parsed on every core by [`work::parse_block`] (the Lambda's), results
//! in input order. The workers write each block's access events straight as output lines
//! ([`Sink::Lines`]: the message escaped once, in its line, no event built); the rest (access
//! lines before a block's first time, error-log records, whose continuation lines join across
//! block edges) is finished in input order by [`work::Joiner`] and written here. Either way
//! the output is the events the Lambda would send, one line each.

use std::io::{self, Write};
use std::sync::Arc;

use crate::forward::work::{self, QUEUE_PER_WORKER, Sink, WorkError, write_line};
pub use crate::forward::work::{Job, Plan};
use crate::lines::LineReader;
use crate::parse::{LogEvent, OutputFormat};
use crate::spare::Spare;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("read failed after {bytes} bytes: {source}")]
    Read { bytes: u64, source: io::Error },
    #[error("cannot write the output: {0}")]
    Write(io::Error),
    #[error("a parsing thread stopped: {0}")]
    Thread(String),
}

/// Writes every event of `reader`'s object, parsed as `job` says, to `out`: the blocks parsed
/// on `plan.threads` workers by the forwarder's work stage ([`work::ordered`]) and written in
/// input order. Returns `out` (flushed). On a read error what was read before it is written
/// first.
pub async fn render<W: Write + Send + 'static>(
    reader: LineReader,
    mut job: Job,
    mut out: W,
    plan: Plan,
) -> Result<W, RenderError> {
    // Output buffers go back to the workers once written.
    let spare = Arc::new(Spare::new(plan.threads.max(1) * QUEUE_PER_WORKER + 2));
    job.sink = Sink::Lines(Arc::clone(&spare));
    let job = Arc::new(job);
    let on_workers = Arc::clone(&job);
    let mut blocks = work::ordered(reader, plan, move |block| {
        work::parse_block(&on_workers, block)
    });
    let (settings, mut joiner) = (job.parsing(), work::Joiner::new(job.fallback_ts));
    let (mut events, mut text) = (Vec::new(), String::new());
    let mut read_error = None;
    while let Some(next) = blocks.next().await {
        let mut parsed = match next {
            Ok(done) => done.output,
            Err(e) => {
                read_error = Some(failed(e)?);
                break;
            }
        };
        let mut lines = std::mem::take(&mut parsed.lines);
        // What the Joiner hands out comes before the block's own lines.
        joiner.join(settings, parsed, &mut events);
        write_events(&mut events, &mut text, settings.shared.output, &mut out)?;
        out.write_all(lines.as_bytes())
            .map_err(RenderError::Write)?;
        lines.clear();
        spare.give(lines);
    }
    joiner.finish(settings, &mut events);
    write_events(&mut events, &mut text, settings.shared.output, &mut out)?;
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

/// Writes (and drains) `events` through the reused `text` buffer.
fn write_events(
    events: &mut Vec<LogEvent>,
    text: &mut String,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), RenderError> {
    text.clear();
    for ev in events.drain(..) {
        write_line(text, ev, output);
    }
    out.write_all(text.as_bytes()).map_err(RenderError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::MAX_LINE_BYTES;
    use crate::parse::{LogFormat, ObjectParse, ParseSettings};
    use crate::route::LogKind;

    /// What the Lambda's road gives (events: [`Sink::Events`]) written one line each, the
    /// input read as one block on one worker: what `parse` must write however the input is
    /// cut and shared out.
    async fn as_the_lambda(
        settings: &ParseSettings,
        kind: LogKind,
        reader: LineReader,
        whole: usize,
    ) -> String {
        let plan = Plan {
            threads: 1,
            block_bytes: whole + 1,
        };
        let job = Job::new(
            Arc::new(settings.clone()),
            ObjectParse::default(),
            kind,
            42,
            0,
        );
        let mut blocks = work::ordered(reader, plan, move |block| work::parse_block(&job, block));
        let mut joiner = work::Joiner::new(42);
        let mut events = Vec::new();
        while let Some(done) = blocks.next().await {
            joiner.join(settings, done.unwrap().output, &mut events);
        }
        joiner.finish(settings, &mut events);
        let mut text = String::new();
        for ev in events {
            write_line(&mut text, ev, settings.output);
        }
        text
    }

    /// (The Lambda's events as lines, what `parse` writes by `plan`.)
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
        let slow = as_the_lambda(settings, kind, open().await, data.len()).await;
        let job = Job::new(
            Arc::new(settings.clone()),
            ObjectParse::default(),
            kind,
            42,
            0,
        );
        let fast = render(open().await, job, Vec::new(), plan).await.unwrap();
        (slow, String::from_utf8(fast).unwrap())
    }

    #[tokio::test]
    async fn parse_writes_the_lambdas_events_however_the_input_is_cut() {
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
    async fn an_oversize_line_is_split_as_the_lambda_splits_it() {
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
        let job = Job::new(
            Arc::default(),
            ObjectParse::default(),
            LogKind::Access,
            0,
            0,
        );
        let err = render(reader, job, Broken(10_000), plan).await.unwrap_err();
        assert!(
            matches!(&err, RenderError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe),
            "{err}"
        );
    }
}
