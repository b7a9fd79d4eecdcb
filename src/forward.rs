//! One object: read → split lines → parse → batch → sink.
//!
//! Puts run in their own tasks so reading and parsing go on while batches are in flight; a
//! semaphore shared by the whole invocation bounds the puts in flight (`MAX_CONCURRENT_PUTS`),
//! which also bounds memory: reading waits for a free slot before it fills another batch.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::batch::{Batch, Batcher, Window, window};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::lines::LineReader;
use crate::parse::{LineParser, LogEvent};
use crate::ports::{LogSink, ObjectSource, Rejected, SinkError};
use crate::route::Route;
use crate::summary::{Counters, ObjectReport, Outcome};

/// How many lines per object and reason are logged by line number (the rest are counted).
const LOG_SAMPLE: u64 = 5;

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error(
        "read failed after {offset} decompressed bytes (line {line}): {source}; the lines before it were delivered"
    )]
    Read {
        offset: u64,
        line: u64,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("a put task failed: {0}")]
    Task(String),
}

/// Milliseconds since the Unix epoch; tests pin it, production reads the system clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// What an invocation shares between its objects.
pub struct Shared<K> {
    pub sink: Arc<K>,
    /// Permits for PutLogEvents calls in flight, across all objects of the invocation.
    pub puts: Arc<Semaphore>,
    pub clock: Clock,
}

impl<K> Clone for Shared<K> {
    fn clone(&self) -> Self {
        Self {
            sink: self.sink.clone(),
            puts: self.puts.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// Forwards one object and reports what happened. Never panics on input; an error here affects
/// only this object.
pub async fn forward_object<S: ObjectSource, K: LogSink + 'static>(
    source: &S,
    shared: &Shared<K>,
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
    let fallback_ts = opened.last_modified_ms.unwrap_or_else(|| (shared.clock)());
    let mut pump = Pump::new(shared, config, &route, obj);
    let result = pump.run(opened.body, fallback_ts).await;
    counters = pump.counters.take().unwrap_or(counters);
    match result {
        Ok(()) => {
            info!(bucket = %obj.bucket, key = %obj.key.escape_debug(), group = %route.log_group,
                  stream = %route.log_stream, events = counters.events, batches = counters.batches,
                  "object delivered");
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

/// A put's result with what is needed to account for it.
type PutResult = Result<(Vec<LogEvent>, Rejected), SinkError>;

struct Pump<'a, K> {
    shared: &'a Shared<K>,
    config: &'a Config,
    route: &'a Route,
    obj: &'a ObjectRef,
    counters: Option<Counters>,
    in_flight: JoinSet<PutResult>,
    now: i64,
}

impl<'a, K: LogSink + 'static> Pump<'a, K> {
    fn new(
        shared: &'a Shared<K>,
        config: &'a Config,
        route: &'a Route,
        obj: &'a ObjectRef,
    ) -> Self {
        Self {
            shared,
            config,
            route,
            obj,
            counters: Some(Counters::default()),
            in_flight: JoinSet::new(),
            now: (shared.clock)(),
        }
    }

    fn c(&mut self) -> &mut Counters {
        self.counters.get_or_insert_with(Counters::default)
    }

    async fn run(
        &mut self,
        body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        fallback_ts: i64,
    ) -> Result<(), ForwardError> {
        let result = self.read_all(body, fallback_ts).await;
        // Whatever happened, wait for the puts already in flight and account for them.
        let drained = self.drain(0).await;
        result.and(drained)
    }

    async fn read_all(
        &mut self,
        body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        fallback_ts: i64,
    ) -> Result<(), ForwardError> {
        let config = self.config;
        let mut reader = LineReader::open(body)
            .await
            .map_err(|source| ForwardError::Read {
                offset: 0,
                line: 1,
                source,
            })?;
        let mut parser = LineParser::new(&config.parse, self.route.kind, fallback_ts);
        let mut batcher = Batcher::new(config.parse.output);
        let mut events: Vec<LogEvent> = Vec::new();
        let mut batches: Vec<Batch> = Vec::new();
        let mut read_error = None;
        loop {
            match reader.next_line().await {
                Ok(Some((line_no, line))) => {
                    self.c().lines += 1;
                    if line.trim().is_empty() {
                        self.c().blank_lines += 1;
                    } else {
                        parser.push(&line, line_no, &mut events);
                    }
                }
                Ok(None) => break,
                Err(source) => {
                    // Deliver what was decoded before the damage, then fail this object.
                    let (offset, line) = (reader.bytes(), self.c().lines + 1);
                    read_error = Some(ForwardError::Read {
                        offset,
                        line,
                        source,
                    });
                    break;
                }
            }
            self.c().bytes = reader.bytes();
            self.absorb(&mut events, &mut batcher, &mut batches);
            for batch in batches.drain(..) {
                self.send(batch).await?;
            }
        }
        self.c().bytes = reader.bytes();
        parser.finish(&mut events);
        self.absorb(&mut events, &mut batcher, &mut batches);
        batcher.finish(&mut batches);
        for batch in batches.drain(..) {
            self.send(batch).await?;
        }
        read_error.map_or(Ok(()), Err)
    }

    /// Counts and filters events, then hands them to the batcher.
    fn absorb(
        &mut self,
        events: &mut Vec<LogEvent>,
        batcher: &mut Batcher,
        batches: &mut Vec<Batch>,
    ) {
        let (now, retention) = (self.now, self.config.retention_days);
        for ev in events.drain(..) {
            if ev.parse_failed {
                self.c().parse_errors += 1;
                if self.c().parse_errors <= LOG_SAMPLE {
                    warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), line = ev.line,
                          "line did not parse; forwarded raw");
                }
            }
            let verdict = window(ev.timestamp, now, retention);
            let count = match verdict {
                Window::Accepted => {
                    batcher.push(ev, batches);
                    continue;
                }
                Window::TooOld => &mut self.c().rejected_too_old,
                Window::TooNew => &mut self.c().rejected_too_new,
                Window::Expired => &mut self.c().rejected_expired,
            };
            *count += 1;
            if *count <= LOG_SAMPLE {
                warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), line = ev.line,
                      timestamp = ev.timestamp, "event not sent: CloudWatch Logs would reject it ({verdict:?})");
            }
        }
    }

    /// Starts a put once a slot is free; collects finished puts on the way.
    async fn send(&mut self, batch: Batch) -> Result<(), ForwardError> {
        let permit = self
            .shared
            .puts
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ForwardError::Task(e.to_string()))?;
        while let Some(done) = self.in_flight.try_join_next() {
            self.account(done)?;
        }
        let sink = self.shared.sink.clone();
        let (group, stream) = (self.route.log_group.clone(), self.route.log_stream.clone());
        self.in_flight.spawn(async move {
            let result = sink.put(&group, &stream, &batch.events).await;
            drop(permit);
            result.map(|rejected| (batch.events, rejected))
        });
        Ok(())
    }

    /// Waits until at most `keep` puts are in flight.
    async fn drain(&mut self, keep: usize) -> Result<(), ForwardError> {
        let mut first_error = Ok(());
        while self.in_flight.len() > keep {
            let Some(done) = self.in_flight.join_next().await else {
                break;
            };
            if let Err(e) = self.account(done) {
                first_error = first_error.and(Err(e));
            }
        }
        first_error
    }

    fn account(
        &mut self,
        done: Result<PutResult, tokio::task::JoinError>,
    ) -> Result<(), ForwardError> {
        let (events, rejected) = done.map_err(|e| ForwardError::Task(e.to_string()))??;
        let counts = rejected.counts(events.len());
        let c = self.c();
        c.batches += 1;
        c.events += events.len() as u64 - counts.too_old - counts.too_new - counts.expired;
        c.add_rejected(counts);
        if counts.too_old + counts.too_new + counts.expired > 0 {
            warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), too_old = counts.too_old,
                  too_new = counts.too_new, expired = counts.expired,
                  first_line = events.first().map_or(0, |e| e.line),
                  "CloudWatch Logs rejected events of this batch (outside its time window)");
        }
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
