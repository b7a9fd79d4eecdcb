//! One object: checkpoint → read → split lines → parse → batch → sink → checkpoint.
//!
//! Puts run in their own tasks so reading and parsing go on while batches are in flight; a
//! semaphore shared by the whole invocation bounds the puts in flight (`MAX_CONCURRENT_PUTS`),
//! which also bounds memory: reading waits for a free slot before it fills another batch.
//!
//! Progress is recorded per object version (see [`crate::checkpoint`]): after confirmed puts
//! (one write in flight at a time), and at the end. A delivery of an object that is already
//! fully delivered is skipped; a partly delivered one resumes where the record says.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tracing::{info, warn};

use crate::batch::{Batch, Batcher, Window, fitting_parts, window};
use crate::checkpoint::{Progress, Resume, State, Tracker};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::lines::{Encoding, LineReader};
use crate::parse::{LineParser, LogEvent};
use crate::ports::{
    CheckpointError, CheckpointStore, LogSink, ObjectSource, OpenRequest, OpenedObject, Rejected,
    SinkError, SourceError, Stored,
};
use crate::route::Route;
use crate::summary::{Counters, ObjectReport, Outcome};

/// How many lines per object and reason are logged by line number (the rest are counted).
const LOG_SAMPLE: u64 = 5;
/// Stop starting new batches when the Lambda has less than this left: in-flight puts finish,
/// the progress is recorded, and the next attempt resumes there. (At most a quarter of the
/// time an invocation starts with, so that short timeouts still make progress.)
pub const TIME_RESERVE: Duration = Duration::from_secs(20);

/// The moment after which no new batch is started, for an invocation that must end by
/// `deadline`.
pub fn stop_by(deadline: Instant, now: Instant) -> Instant {
    let left = deadline.saturating_duration_since(now);
    deadline - TIME_RESERVE.min(left / 4)
}

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
    /// No new batch may start: the invocation's time is nearly up. Names what is confirmed
    /// delivered (every line before the next attempt's resume line), not how far reading got.
    #[error(
        "stopped to finish within the Lambda timeout: {} (the reader was at line {reader_at}); {}",
        delivered_text(*.delivered_through),
        next_attempt_text(*.delivered_through, *.recorded)
    )]
    OutOfTime {
        /// Every line up to this one is delivered (or had nothing to send); `None`: no line yet.
        delivered_through: Option<u64>,
        /// The next line the reader would have handed over.
        reader_at: u64,
        /// Whether the progress record says so (false without a usable progress store).
        recorded: bool,
    },
    #[error("content does not look like text: skipped (SKIP_BINARY=true)")]
    Binary,
}

fn delivered_text(delivered_through: Option<u64>) -> String {
    match delivered_through {
        Some(line) => format!("every line up to {line} is delivered"),
        None => "no line delivered yet".to_string(),
    }
}

fn next_attempt_text(delivered_through: Option<u64>, recorded: bool) -> String {
    match (recorded, delivered_through) {
        (true, Some(line)) => format!(
            "progress is recorded and the next attempt resumes at line {}",
            line + 1
        ),
        (true, None) => "progress is recorded and the next attempt resumes at line 1".to_string(),
        (false, _) => {
            "no progress record is kept (see checkpoint_error), so the next attempt starts over"
                .to_string()
        }
    }
}

/// Milliseconds since the Unix epoch; tests pin it, production reads the system clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// What an invocation shares between its objects.
pub struct Shared<K, C> {
    pub sink: Arc<K>,
    pub checkpoints: Arc<C>,
    /// Permits for PutLogEvents calls in flight, across all objects of the invocation.
    pub puts: Arc<Semaphore>,
    pub clock: Clock,
    /// When to stop starting batches (from the Lambda deadline, see [`stop_by`]), if ever.
    pub stop_by: Option<Instant>,
    /// Set once the checkpoint store failed in this invocation (warn once, not per object).
    pub checkpoint_warned: Arc<AtomicBool>,
}

/// Forwards one object and reports what happened. Never panics on input; an error here affects
/// only this object. When the decoded key does not exist, the key exactly as the trigger gave
/// it is tried (EventBridge does not document its key encoding).
pub async fn forward_object<S, K, C>(
    source: &S,
    shared: &Shared<K, C>,
    config: &Config,
    obj: &ObjectRef,
) -> ObjectReport
where
    S: ObjectSource,
    K: LogSink + 'static,
    C: CheckpointStore + 'static,
{
    let (report, missing) = forward_key(source, shared, config, obj).await;
    if missing && obj.raw_key != obj.key {
        let as_given = ObjectRef {
            key: obj.raw_key.clone(),
            ..obj.clone()
        };
        let (alt, alt_missing) = forward_key(source, shared, config, &as_given).await;
        if !alt_missing {
            return alt;
        }
    }
    report
}

/// One attempt at one key; the flag is true when the object does not exist.
async fn forward_key<S, K, C>(
    source: &S,
    shared: &Shared<K, C>,
    config: &Config,
    obj: &ObjectRef,
) -> (ObjectReport, bool)
where
    S: ObjectSource,
    K: LogSink + 'static,
    C: CheckpointStore + 'static,
{
    let mut report = ObjectReport {
        message_id: obj.message_id.clone(),
        bucket: obj.bucket.clone(),
        key: obj.key.clone(),
        outcome: Outcome::Skipped {
            reason: String::new(),
        },
        counters: Counters::default(),
        resumed_from_line: None,
        checkpoint_error: None,
    };
    let key = obj.key.escape_debug().to_string();
    let route = match config.router.route(&obj.key) {
        Ok(r) => r,
        Err(e) => {
            warn!(bucket = %obj.bucket, key, "skipping object: {e}");
            report.outcome = Outcome::Skipped {
                reason: e.to_string(),
            };
            return (report, false);
        }
    };

    // What earlier deliveries of this object achieved.
    let stored = match shared.checkpoints.load(obj).await {
        Ok(s) => Some(s),
        Err(CheckpointError::NotFound { bucket, key }) => {
            let e = SourceError::NotFound { bucket, key };
            report.outcome = Outcome::Failed {
                error: e.to_string(),
            };
            return (report, true);
        }
        Err(e) => {
            checkpoint_trouble(shared, &e);
            report.checkpoint_error = Some(e.to_string());
            None
        }
    };
    // A record for another version of the object (it was overwritten) does not apply.
    let progress = stored
        .as_ref()
        .and_then(|s| s.progress.clone())
        .filter(|p| obj.etag.as_ref().is_none_or(|e| *e == p.etag));
    if let Some(Progress {
        state: State::Done { .. },
        ..
    }) = &progress
        && obj.etag.is_some()
    {
        info!(bucket = %obj.bucket, key, "already delivered; skipping");
        report.outcome = Outcome::AlreadyDelivered;
        return (report, false);
    }

    let opened = match open(source, obj, progress.as_ref()).await {
        Ok(o) => o,
        Err(SourceError::Changed { .. }) if obj.etag.is_some() => {
            let reason = "superseded: the object was overwritten after this event; the newer object's own event forwards it".to_string();
            info!(bucket = %obj.bucket, key, "{reason}");
            report.outcome = Outcome::Skipped { reason };
            return (report, false);
        }
        Err(e) => {
            let missing = matches!(e, SourceError::NotFound { .. });
            warn!(bucket = %obj.bucket, key, "{e}");
            report.outcome = Outcome::Failed {
                error: e.to_string(),
            };
            return (report, missing);
        }
    };
    let (opened, progress, ranged) = opened;
    if let Some(Progress {
        state: State::Done { .. },
        ..
    }) = &progress
    {
        info!(bucket = %obj.bucket, key, "already delivered; skipping");
        report.outcome = Outcome::AlreadyDelivered;
        return (report, false);
    }

    let resume = match &progress {
        Some(Progress {
            state:
                State::Partial {
                    next_line,
                    next_offset,
                    resume_line,
                    resume_offset,
                    pending,
                    ..
                },
            ..
        }) => {
            report.resumed_from_line = Some(*resume_line);
            let earlier = Resume {
                next_line: *next_line,
                next_offset: *next_offset,
                pending: pending.clone(),
            };
            Some((*resume_line, *resume_offset, earlier))
        }
        _ => None,
    };
    let etag = opened.etag.clone();
    let fallback_ts = opened.last_modified_ms.unwrap_or_else(|| (shared.clock)());
    let mut pump = Pump::new(
        shared,
        config,
        &route,
        obj,
        etag,
        stored.filter(|_| report.checkpoint_error.is_none()),
    );
    let result = pump.run(opened, fallback_ts, resume, ranged).await;
    report.counters = pump.counters;
    if report.checkpoint_error.is_none() {
        report.checkpoint_error = pump.checkpoint_error.map(|e| e.to_string());
    }
    match result {
        Ok(()) => {
            info!(bucket = %obj.bucket, key, group = %route.log_group, stream = %route.log_stream,
                  events = report.counters.events, batches = report.counters.batches, "object delivered");
            report.outcome = Outcome::Delivered {
                log_group: route.log_group,
                log_stream: route.log_stream,
            };
        }
        Err(ForwardError::Binary) => {
            let reason = format!("s3://{}/{}: {}", obj.bucket, key, ForwardError::Binary);
            warn!("{reason}");
            report.outcome = Outcome::Skipped { reason };
        }
        Err(e) => {
            let error = format!("s3://{}/{}: {e}", obj.bucket, key);
            warn!("{error}");
            report.outcome = Outcome::Failed { error };
        }
    }
    (report, false)
}

fn checkpoint_trouble<K, C>(shared: &Shared<K, C>, e: &CheckpointError) {
    if !shared.checkpoint_warned.swap(true, Ordering::Relaxed) {
        warn!(
            "{e}; forwarding without progress records in this invocation (at-least-once: a redelivered object is sent again)"
        );
    }
}

/// Opens the object where the progress record says to resume; returns the progress that
/// applies to the bytes actually opened, and whether they start at the resume offset (a ranged
/// read) rather than at the beginning.
async fn open<S: ObjectSource>(
    source: &S,
    obj: &ObjectRef,
    progress: Option<&Progress>,
) -> Result<(OpenedObject, Option<Progress>, bool), SourceError> {
    let ranged = match progress {
        Some(
            p @ Progress {
                state:
                    State::Partial {
                        gzip: false,
                        resume_offset,
                        ..
                    },
                ..
            },
        ) if *resume_offset > 0 => Some((p, *resume_offset)),
        _ => None,
    };
    if let Some((p, offset)) = ranged {
        let req = OpenRequest {
            from_offset: offset,
            if_match: Some(p.etag.clone()),
        };
        match source.open(obj, &req).await {
            Ok(o) => return Ok((o, Some(p.clone()), true)),
            // The object is no longer the version the record is about: start over.
            Err(SourceError::Changed { .. }) if obj.etag.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    let req = OpenRequest {
        from_offset: 0,
        if_match: obj.etag.clone(),
    };
    let opened = source.open(obj, &req).await?;
    let applies = progress
        .filter(|p| opened.etag.as_deref() == Some(p.etag.as_str()))
        .cloned();
    Ok((opened, applies, false))
}

/// A put's result with what is needed to account for it.
/// A finished put: the line number of each event it carried (the messages are gone with the
/// request), and what CloudWatch rejected.
type PutResult = Result<(Vec<u64>, Rejected), SinkError>;

struct Pump<'a, K, C> {
    shared: &'a Shared<K, C>,
    config: &'a Config,
    route: &'a Route,
    obj: &'a ObjectRef,
    counters: Counters,
    in_flight: JoinSet<PutResult>,
    now: i64,
    /// Checkpointing state; `None` when there is no ETag or no usable store.
    ckpt: Option<Checkpointing>,
    checkpoint_error: Option<CheckpointError>,
    tracker: Tracker,
    earlier: Resume,
    /// Where the reader stands: every line before it has been handed over (line, offset).
    position: (u64, u64),
    gzip: bool,
}

struct Checkpointing {
    etag: String,
    other_tags: Vec<(String, String)>,
    saving: Option<JoinHandle<Result<(), CheckpointError>>>,
    last_saved: Option<State>,
}

impl<'a, K: LogSink + 'static, C: CheckpointStore + 'static> Pump<'a, K, C> {
    fn new(
        shared: &'a Shared<K, C>,
        config: &'a Config,
        route: &'a Route,
        obj: &'a ObjectRef,
        etag: Option<String>,
        stored: Option<Stored>,
    ) -> Self {
        let ckpt = match (etag, stored) {
            (Some(etag), Some(stored)) => Some(Checkpointing {
                etag,
                other_tags: stored.other_tags,
                saving: None,
                last_saved: None,
            }),
            _ => None,
        };
        Self {
            shared,
            config,
            route,
            obj,
            counters: Counters::default(),
            in_flight: JoinSet::new(),
            now: (shared.clock)(),
            ckpt,
            checkpoint_error: None,
            tracker: Tracker::default(),
            earlier: Resume::default(),
            position: (1, 0),
            gzip: false,
        }
    }

    async fn run(
        &mut self,
        opened: OpenedObject,
        fallback_ts: i64,
        resume: Option<(u64, u64, Resume)>,
        ranged: bool,
    ) -> Result<(), ForwardError> {
        let result = self
            .read_all(opened.body, fallback_ts, resume, ranged)
            .await;
        // Whatever happened, wait for the puts already in flight and account for them.
        let drained = self.drain().await;
        let result = result.and(drained);
        self.finish_checkpoint(result.is_ok()).await;
        match result {
            // Now that the puts in flight are settled and recorded: what is delivered.
            Err(ForwardError::OutOfTime { .. }) => Err(self.out_of_time()),
            other => other,
        }
    }

    /// Out of time, saying what is confirmed delivered so far: the lines before the line the
    /// progress record resumes at.
    fn out_of_time(&self) -> ForwardError {
        let resume_line = match self.snapshot() {
            State::Partial { resume_line, .. } => resume_line,
            State::Done { lines } => lines + 1,
        };
        ForwardError::OutOfTime {
            delivered_through: resume_line.checked_sub(1).filter(|&l| l > 0),
            reader_at: self.position.0,
            recorded: self.ckpt.is_some(),
        }
    }

    async fn read_all(
        &mut self,
        body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        fallback_ts: i64,
        resume: Option<(u64, u64, Resume)>,
        ranged: bool,
    ) -> Result<(), ForwardError> {
        let config = self.config;
        let (start_line, start_offset, earlier) = resume.unwrap_or((1, 0, Resume::default()));
        self.earlier = earlier;
        self.position = (start_line, start_offset);
        let mut reader = match ranged {
            // The body starts at the resume line.
            true => LineReader::open_at(body, start_line, start_offset).await,
            false => LineReader::open(body).await,
        }
        .map_err(|source| ForwardError::Read {
            offset: 0,
            line: 1,
            source,
        })?;
        // Compressed (gzip or zstd): a resume decompresses from the start and skips.
        self.gzip = reader.encoding() != Encoding::Plain;
        if reader.is_binary() {
            self.counters.binary_objects = 1;
            if config.skip_binary {
                return Err(ForwardError::Binary);
            }
            warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(),
                  "content does not look like text; forwarding its lines lossily decoded (SKIP_BINARY=true skips such objects)");
        }
        let mut parser = LineParser::new(&config.parse, self.route.kind, fallback_ts);
        let mut batcher = Batcher::new(config.parse.output);
        let mut events: Vec<LogEvent> = Vec::new();
        let mut batches: Vec<Batch> = Vec::new();
        let mut read_error = None;
        loop {
            match reader.next_line_at().await {
                Ok(Some((line_no, line_start, line))) => {
                    self.counters.lines += 1;
                    if line_no < start_line {
                        // Delivered by an earlier run (a gzip resume decompresses from the start).
                    } else if line.trim().is_empty() {
                        self.counters.blank_lines += 1;
                    } else {
                        parser.push_at(&line, line_no, line_start, &mut events);
                    }
                }
                Ok(None) => break,
                Err(source) => {
                    // Deliver what was decoded before the damage, then fail this object.
                    let (offset, line) = (reader.bytes(), reader.next_line_no());
                    read_error = Some(ForwardError::Read {
                        offset,
                        line,
                        source,
                    });
                    break;
                }
            }
            self.counters.bytes = reader.bytes();
            self.absorb(&mut events, &mut batcher, &mut batches);
            self.position = parser
                .held()
                .unwrap_or((reader.next_line_no(), reader.bytes()));
            for batch in batches.drain(..) {
                self.send(batch).await?;
            }
        }
        self.counters.bytes = reader.bytes();
        self.counters.nul_bytes_stripped = reader.nul_bytes();
        parser.finish(&mut events);
        self.absorb(&mut events, &mut batcher, &mut batches);
        self.position = (reader.next_line_no(), reader.bytes());
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
            if !self.earlier.wanted(ev.line) {
                continue; // delivered by an earlier run
            }
            if ev.parse_failed {
                self.counters.parse_errors += 1;
                if self.counters.parse_errors <= LOG_SAMPLE {
                    warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), line = ev.line,
                          "line did not parse; forwarded raw");
                }
            }
            let verdict = window(ev.timestamp, now, retention);
            let count = match verdict {
                Window::Accepted => {
                    for part in fitting_parts(ev, self.config.parse.output) {
                        self.tracker.sent(part.line, part.offset);
                        batcher.push(part, batches);
                    }
                    continue;
                }
                Window::TooOld => &mut self.counters.rejected_too_old,
                Window::TooNew => &mut self.counters.rejected_too_new,
                Window::Expired => &mut self.counters.rejected_expired,
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
        if let Some(stop_by) = self.shared.stop_by
            && Instant::now() >= stop_by
        {
            return Err(self.out_of_time());
        }
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
            let lines: Vec<u64> = batch.events.iter().map(|e| e.line).collect();
            let result = sink.put(&group, &stream, batch.events).await;
            drop(permit);
            result.map(|rejected| (lines, rejected))
        });
        Ok(())
    }

    /// Waits for every put in flight.
    async fn drain(&mut self) -> Result<(), ForwardError> {
        let mut first_error = Ok(());
        while let Some(done) = self.in_flight.join_next().await {
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
        let (lines, rejected) = done.map_err(|e| ForwardError::Task(e.to_string()))??;
        for &line in &lines {
            self.tracker.confirmed(line);
        }
        let counts = rejected.counts(lines.len());
        let c = &mut self.counters;
        c.batches += 1;
        c.events += lines.len() as u64 - counts.too_old - counts.too_new - counts.expired;
        c.add_rejected(counts);
        if counts.too_old + counts.too_new + counts.expired > 0 {
            warn!(bucket = %self.obj.bucket, key = %self.obj.key.escape_debug(), too_old = counts.too_old,
                  too_new = counts.too_new, expired = counts.expired,
                  first_line = lines.first().copied().unwrap_or(0),
                  "CloudWatch Logs rejected events of this batch (outside its time window)");
        }
        self.checkpoint_soon();
        Ok(())
    }

    /// Records progress in the background, one write at a time.
    fn checkpoint_soon(&mut self) {
        let state = self.snapshot();
        let Some(ck) = self.ckpt.as_mut() else { return };
        if let Some(task) = &ck.saving
            && !task.is_finished()
        {
            return; // the next confirmed batch will try again
        }
        if let Some(task) = ck.saving.take()
            && let Some(Err(e)) = task.now_or_never().map(|done| self.saved(done))
        {
            self.checkpoint_failed(e);
            return;
        }
        let Some(ck) = self.ckpt.as_mut() else { return };
        if ck.last_saved.as_ref() == Some(&state) {
            return;
        }
        ck.last_saved = Some(state.clone());
        let store = self.shared.checkpoints.clone();
        let (obj, tags) = (self.obj.clone(), ck.other_tags.clone());
        let progress = Progress {
            etag: ck.etag.clone(),
            state,
        };
        ck.saving = Some(tokio::spawn(async move {
            store.save(&obj, &tags, &progress).await
        }));
    }

    fn snapshot(&self) -> State {
        let (line, offset) = self.position;
        self.tracker
            .snapshot(self.gzip, line, offset, &self.earlier)
    }

    /// The outcome of a background save (a task that panicked counts as a failed save).
    fn saved(
        &self,
        done: Result<Result<(), CheckpointError>, JoinError>,
    ) -> Result<(), CheckpointError> {
        done.unwrap_or_else(|e| {
            Err(CheckpointError::Other {
                bucket: self.obj.bucket.clone(),
                key: self.obj.key.clone(),
                detail: e.to_string(),
            })
        })
    }

    fn checkpoint_failed(&mut self, e: CheckpointError) {
        checkpoint_trouble(self.shared, &e);
        self.checkpoint_error = Some(e);
        self.ckpt = None;
    }

    /// The last record: done, or where the next attempt resumes.
    async fn finish_checkpoint(&mut self, complete: bool) {
        let Some(ck) = self.ckpt.as_mut() else { return };
        if let Some(task) = ck.saving.take()
            && let Err(e) = self.saved(task.await)
        {
            return self.checkpoint_failed(e);
        }
        let state = if complete {
            State::Done {
                lines: self.position.0.saturating_sub(1),
            }
        } else {
            self.snapshot()
        };
        let Some(ck) = self.ckpt.as_mut() else { return };
        let progress = Progress {
            etag: ck.etag.clone(),
            state,
        };
        let (obj, tags) = (self.obj.clone(), ck.other_tags.clone());
        if let Err(e) = self.shared.checkpoints.save(&obj, &tags, &progress).await {
            self.checkpoint_failed(e);
        }
    }
}

fn now_ms() -> i64 {
    epoch_ms(SystemTime::now())
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_by_keeps_a_reserve_but_never_most_of_a_short_timeout() {
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(stop_by(now + s(300), now), now + s(280));
        assert_eq!(stop_by(now + s(40), now), now + s(30));
        assert_eq!(stop_by(now + s(4), now), now + s(3));
        assert_eq!(stop_by(now, now), now);
    }

    #[test]
    fn out_of_time_names_the_last_delivered_line_not_the_read_position() {
        let text = |delivered_through, recorded| {
            ForwardError::OutOfTime {
                delivered_through,
                reader_at: 201,
                recorded,
            }
            .to_string()
        };
        assert_eq!(
            text(None, true),
            "stopped to finish within the Lambda timeout: no line delivered yet (the reader was at \
             line 201); progress is recorded and the next attempt resumes at line 1"
        );
        assert_eq!(
            text(Some(120), true),
            "stopped to finish within the Lambda timeout: every line up to 120 is delivered (the \
             reader was at line 201); progress is recorded and the next attempt resumes at line 121"
        );
        let unrecorded = text(Some(120), false);
        assert!(
            unrecorded.contains("starts over") && !unrecorded.contains("resumes"),
            "{unrecorded}"
        );
    }
}
