//! One object: read → split lines → parse → batch → sink.

use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::batch::{Batch, Batcher};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::lines::LineReader;
use crate::parse::{LineParser, LogEvent};
use crate::ports::{LogSink, ObjectSource, SinkError};
use crate::route::Route;
use crate::summary::{Counters, ObjectReport, Outcome};

/// How many unparsable lines per object are logged by line number (the rest are counted).
const PARSE_ERROR_LOG_SAMPLE: u64 = 5;

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error(
        "read failed after {offset} decompressed bytes (line {line}): {source}; the {delivered} lines before it were delivered"
    )]
    Read {
        offset: u64,
        line: u64,
        delivered: u64,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Forwards one object and reports what happened. Never panics on input; an error here affects
/// only this object.
pub async fn forward_object<S: ObjectSource, K: LogSink>(
    source: &S,
    sink: &K,
    config: &Config,
    obj: &ObjectRef,
) -> ObjectReport {
    let report = |outcome, counters| ObjectReport {
        bucket: obj.bucket.clone(),
        key: obj.key.clone(),
        outcome,
        counters,
    };
    let route = match config.router.route(&obj.key) {
        Ok(r) => r,
        Err(e) => {
            warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), "skipping object: {e}");
            return report(
                Outcome::Skipped {
                    reason: e.to_string(),
                },
                Counters::default(),
            );
        }
    };
    let opened = match source.open(obj).await {
        Ok(o) => o,
        Err(e) => {
            warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), "{e}");
            return report(
                Outcome::Failed {
                    error: e.to_string(),
                },
                Counters::default(),
            );
        }
    };
    let mut counters = Counters::default();
    let fallback_ts = opened.last_modified_ms.unwrap_or_else(now_ms);
    match pump(
        opened.body,
        fallback_ts,
        &route,
        sink,
        config,
        obj,
        &mut counters,
    )
    .await
    {
        Ok(()) => {
            info!(bucket = %obj.bucket, key = %obj.key.escape_debug(), group = %route.log_group,
                  stream = %route.log_stream, events = counters.events, batches = counters.batches, "object delivered");
            report(
                Outcome::Delivered {
                    log_group: route.log_group,
                    log_stream: route.log_stream,
                },
                counters,
            )
        }
        Err(e) => {
            let error = format!("s3://{}/{}: {e}", obj.bucket, obj.key.escape_debug());
            warn!("{error}");
            report(Outcome::Failed { error }, counters)
        }
    }
}

async fn pump<K: LogSink>(
    body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    fallback_ts: i64,
    route: &Route,
    sink: &K,
    config: &Config,
    obj: &ObjectRef,
    c: &mut Counters,
) -> Result<(), ForwardError> {
    let read_err = |source, c: &Counters| ForwardError::Read {
        offset: c.bytes,
        line: c.lines + 1,
        delivered: c.lines,
        source,
    };
    let mut reader = LineReader::open(body).await.map_err(|e| read_err(e, c))?;
    let mut parser = LineParser::new(&config.parse, route.kind, fallback_ts);
    let mut batcher = Batcher::new();
    let mut events: Vec<LogEvent> = Vec::new();
    let mut batches: Vec<Batch> = Vec::new();
    let mut read_error = None;
    loop {
        match reader.next_line().await {
            Ok(Some((line_no, line))) => {
                c.lines += 1;
                if line.trim().is_empty() {
                    c.blank_lines += 1;
                    continue;
                }
                parser.push(&line, line_no, &mut events);
            }
            Ok(None) => break,
            Err(e) => {
                // Deliver what was decoded before the damage, then fail this object.
                read_error = Some(read_err(e, c));
                break;
            }
        }
        c.bytes = reader.bytes();
        absorb(&mut events, &mut batcher, &mut batches, c, obj);
        for batch in batches.drain(..) {
            send(sink, route, batch, c, obj).await?;
        }
    }
    c.bytes = reader.bytes();
    parser.finish(&mut events);
    absorb(&mut events, &mut batcher, &mut batches, c, obj);
    batcher.finish(&mut batches);
    for batch in batches.drain(..) {
        send(sink, route, batch, c, obj).await?;
    }
    match read_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn absorb(
    events: &mut Vec<LogEvent>,
    batcher: &mut Batcher,
    batches: &mut Vec<Batch>,
    c: &mut Counters,
    obj: &ObjectRef,
) {
    for ev in events.drain(..) {
        if ev.parse_failed {
            c.parse_errors += 1;
            if c.parse_errors <= PARSE_ERROR_LOG_SAMPLE {
                warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), line = ev.line, "line did not parse; forwarded raw");
            }
        }
        batcher.push(ev, batches);
    }
}

async fn send<K: LogSink>(
    sink: &K,
    route: &Route,
    batch: Batch,
    c: &mut Counters,
    obj: &ObjectRef,
) -> Result<(), ForwardError> {
    let rejected = sink
        .put(&route.log_group, &route.log_stream, &batch.events)
        .await?;
    c.batches += 1;
    c.events += batch.events.len() as u64;
    let counts = rejected.counts(batch.events.len());
    if counts.too_old + counts.too_new + counts.expired > 0 {
        let first_line = batch.events.first().map_or(0, |e| e.line);
        warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), too_old = counts.too_old, too_new = counts.too_new,
              expired = counts.expired, first_line, "CloudWatch Logs rejected events of this batch (outside its time window)");
    }
    c.add_rejected(counts);
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
