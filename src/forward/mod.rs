//! One object: checkpoint → read → split lines → parse → batch → sink → checkpoint, one stage a
//! file:
//! - [`read`]: open (a ranged GET when resuming plain text), decompress, cut blocks of lines;
//! - [`work`]: parse blocks on every core, results in input order (also the `parse` command's);
//! - [`deliver`]: window filter, oversize split, batching, puts in flight, accounting;
//! - [`progress`]: what is confirmed, when to save it, where the next attempt resumes.
//!
//! Puts run in their own tasks so reading and parsing go on while batches are in flight; a
//! semaphore shared by the whole invocation bounds the puts in flight (`MAX_CONCURRENT_PUTS`),
//! which also bounds memory: reading waits for a free slot before it fills another batch.
//!
//! Progress is recorded per object version (see [`crate::checkpoint`]): after confirmed puts
//! (one write in flight at a time), and at the end. A delivery of an object that is already
//! fully delivered is skipped; a partly delivered one resumes where the record says.

mod deliver;
pub mod format;
pub mod lease;
mod progress;
mod read;
pub mod work;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::checkpoint::{Progress, Resume, State};
use crate::config::Config;
use crate::event::ObjectRef;
use crate::parse::ParseSettings;
use crate::ports::{
    CheckpointError, CheckpointStore, LogSink, ObjectSource, SinkError, SourceError,
};
use crate::summary::{Counters, ObjectReport, Outcome};
use deliver::Deliver;
use progress::Ledger;

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
    /// No new batch may start: the command was interrupted (ctrl-c).
    #[error(
        "interrupted: {} (the reader was at line {reader_at}); {}",
        delivered_text(*.delivered_through),
        next_attempt_text(*.delivered_through, *.recorded)
    )]
    Interrupted {
        delivered_through: Option<u64>,
        reader_at: u64,
        recorded: bool,
    },
    #[error("content does not look like text: skipped (SKIP_BINARY=true)")]
    Binary,
    /// Another delivery took this object's lease over (it had expired: renewals failed).
    #[error(
        "the lease on this object was lost (it expired and another delivery took it over): stopped sending; {}",
        delivered_text(*.delivered_through)
    )]
    LeaseLost { delivered_through: Option<u64> },
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
    /// Leases that keep two deliveries of one object from forwarding it at the same time
    /// (`None`: no exclusion).
    pub leasing: Option<lease::Leasing>,
    /// The Lambda's deadline, if any: no lease outlasts it.
    pub deadline: Option<Instant>,
    /// Set once the lease store failed in this invocation (warn once, not per object).
    pub lease_warned: Arc<AtomicBool>,
    /// Set by a local command on ctrl-c: like `stop_by` reached, no new batch starts and what
    /// is confirmed is recorded (the Lambda never sets it).
    pub interrupted: Arc<AtomicBool>,
    /// The formats objects named, compiled (kept across the invocations of a warm process).
    pub formats: Arc<format::FormatCache>,
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

/// One attempt at one key; the flag is true when the object does not exist. An object that
/// routes nowhere is skipped before anything else (no lease is taken for it).
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
        lease_error: None,
        filtered_by_rule: Default::default(),
        log_format: None,
        log_formats: Vec::new(),
    };
    let key = obj.key.escape_debug().to_string();
    if crate::parse::object_format::is_format_key(&obj.key) {
        report.outcome = Outcome::Skipped {
            reason: "a log format uploaded by ship, not a log".into(),
        };
        return (report, false);
    }
    if let Some(leasing) = &shared.leasing
        && leasing.store.is_lease_key(&obj.key)
    {
        report.outcome = Outcome::Skipped {
            reason: "a lease object (LEASE_PREFIX), not a log".into(),
        };
        return (report, false);
    }
    let route = match config.route.route(&obj.key) {
        Ok(r) => r,
        Err(e) => {
            warn!(bucket = %obj.bucket, key, "skipping object: {e}");
            report.outcome = Outcome::Skipped {
                reason: e.to_string(),
            };
            return (report, false);
        }
    };
    let Some(leasing) = &shared.leasing else {
        return forward_routed(source, shared, config, obj, route, report, None).await;
    };
    match lease::acquire(
        leasing,
        obj,
        shared.stop_by,
        shared.deadline,
        &shared.interrupted,
    )
    .await
    {
        Ok((held, taken)) => {
            let holding = lease::Holding {
                lost: held.lost.clone(),
                took_over: taken.took_over.is_some(),
            };
            let (mut report, missing) =
                forward_routed(source, shared, config, obj, route, report, Some(holding)).await;
            // After the last progress record: a delivery waiting for this lease reads it next.
            held.release().await;
            report.counters.lease_waits += u64::from(taken.waited);
            report.counters.lease_takeovers += u64::from(taken.took_over.is_some());
            (report, missing)
        }
        Err(lease::NotTaken::Store(e)) => {
            if !shared.lease_warned.swap(true, Ordering::Relaxed) {
                warn!(
                    "{e}; forwarding without leases in this invocation (two deliveries of one object at the same time may both send it)"
                );
            }
            report.lease_error = Some(e.to_string());
            forward_routed(source, shared, config, obj, route, report, None).await
        }
        Err(e @ lease::NotTaken::Busy { .. }) => {
            let error = format!("s3://{}/{}: {e}", obj.bucket, key);
            warn!("{error}");
            report.counters.lease_waits += 1;
            report.outcome = Outcome::Failed { error };
            (report, false)
        }
    }
}

/// Forwards a routed object, holding its lease if leases are used.
async fn forward_routed<S, K, C>(
    source: &S,
    shared: &Shared<K, C>,
    config: &Config,
    obj: &ObjectRef,
    route: crate::route::Route,
    mut report: ObjectReport,
    lease: Option<lease::Holding>,
) -> (ObjectReport, bool)
where
    S: ObjectSource,
    K: LogSink + 'static,
    C: CheckpointStore + 'static,
{
    let key = obj.key.escape_debug().to_string();

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

    let opened = match read::open(source, obj, progress.as_ref()).await {
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
    // The log_formats the object names, if it names any (and the deployment reads them).
    let meta: Vec<(&str, String)> = format::METADATA
        .iter()
        .filter_map(|m| opened.metadata(m).map(|v| (*m, v.to_string())))
        .collect();
    let named =
        match format::object_formats(source, &shared.formats, config, obj, route.kind, |name| {
            meta.iter()
                .find(|(m, _)| *m == name)
                .map(|(_, v)| v.as_str())
        })
        .await
        {
            Ok(named) => named,
            Err(e) => {
                let error = format!(
                    "s3://{}/{}: cannot use its log_format: {e}",
                    obj.bucket, key
                );
                warn!("{error}");
                report.outcome = Outcome::Failed { error };
                return (report, false);
            }
        };
    if let Some(named) = &named {
        report.log_format = named.keys.first().cloned();
        if named.keys.len() > 1 {
            report.log_formats = named.keys.clone();
        }
    }
    let etag = opened.etag.clone();
    let fallback_ts = opened.last_modified_ms.unwrap_or_else(|| (shared.clock)());
    let (start_line, start_offset, earlier) = resume.unwrap_or((1, 0, Resume::default()));
    let mut ledger = Ledger::new(
        shared,
        obj,
        etag,
        stored.filter(|_| report.checkpoint_error.is_none()),
        earlier,
        (start_line, start_offset),
    );
    let mut deliver = Deliver::new(shared, config, &route, obj, lease);
    let mut counters = Counters::default();
    // What this object's events are parsed with: the settings, with the fields about its source,
    // the log_format it names and the request-line rules of the nginx that wrote it.
    let mut settings = ParseSettings {
        extra: config
            .objects
            .extra_fields
            .render(|g| route.group(g), |m| opened.metadata(m)),
        sample_seed: crate::parse::filter::object_seed(&obj.bucket, &obj.key),
        request_line: crate::parse::RequestLineRules::from_metadata(
            opened.metadata(crate::parse::request_line::META_NGINX_VERSION),
        ),
        ..config.parse.clone()
    };
    let deployment = settings.clone();
    if let Some(first) = named.as_ref().and_then(|n| n.formats.first()) {
        settings.access_format = first.clone();
    }
    let mut job = work::Job::new(&settings, route.kind, fallback_ts, start_line);
    if let Some(n) = named.filter(|n| n.formats.len() > 1 || !n.parts.is_empty()) {
        job = job.with_formats(&deployment, &n.formats, &n.parts);
    }
    // The stages over the opened object: read → deliver, with the ledger beside them. Whatever
    // happens, the puts already in flight are waited for and accounted before the last progress
    // record is written.
    let read = read::read_all(
        opened.body,
        (start_line, start_offset),
        ranged,
        fallback_ts,
        job,
        config,
        obj,
        &mut deliver,
        &mut ledger,
        &mut counters,
    )
    .await;
    // Nothing is sent after this: the last record follows the puts in flight.
    ledger.sending_done();
    let drained = deliver.drain(&mut ledger).await;
    let result = read.and(drained);
    let held = deliver.held_lines();
    ledger.finish(result.is_ok(), held.clone()).await;
    let result = match result {
        // Now that the puts in flight are settled and recorded: what is delivered.
        Err(ForwardError::OutOfTime { .. }) => Err(ledger.out_of_time(&held)),
        Err(ForwardError::Interrupted { .. }) => Err(ledger.interrupted(&held)),
        Err(ForwardError::LeaseLost { .. }) => Err(ledger.lease_lost(&held)),
        other => other,
    };
    counters.add(&deliver.counters);
    let names = config.parse.rules.names();
    for (i, n) in deliver.by_rule.iter().enumerate().filter(|(_, n)| **n > 0) {
        if let Some(name) = names.get(i) {
            report.filtered_by_rule.insert(name.clone(), *n);
        }
    }
    report.counters = counters;
    if report.checkpoint_error.is_none() {
        report.checkpoint_error = ledger.checkpoint_error.map(|e| e.to_string());
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

/// Now, in milliseconds since the Unix epoch, by the system clock.
pub(crate) fn now_ms() -> i64 {
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
