//! One object: checkpoint → read → split lines → parse → batch → sink → checkpoint, one stage a
//! file:
//! - `read`: open (a ranged GET when resuming plain text), decompress, cut blocks of lines;
//! - [`work`]: parse blocks on every core, results in input order (also the `parse` command's);
//! - `deliver`: window filter, oversize split, batching, puts in flight, accounting;
//! - `progress`: what is confirmed, when to save it, where the next attempt resumes.
//!
//! Puts run in their own tasks so reading and parsing go on while batches are in flight; a
//! semaphore shared by the whole invocation bounds the puts in flight (`MAX_CONCURRENT_PUTS`),
//! which also bounds memory: reading waits for a free slot before it fills another batch.
//!
//! Progress is recorded per object version (see [`crate::checkpoint`]): after confirmed puts
//! (one write in flight at a time), and at the end. A delivery of an object that is already
//! fully delivered is skipped; a partly delivered one resumes where the record says.

mod clock;
mod deliver;
mod error;
pub mod format;
pub mod lease;
mod progress;
mod read;
mod shared;
mod stop;
pub mod work;

pub use clock::{Clock, epoch_ms, rfc3339, system_clock};
pub use deliver::Delivering;
pub use shared::Shared;
pub use stop::{Stop, StopReason, TIME_RESERVE, stop_by};

use std::sync::Arc;

use tracing::{info, warn};

use crate::checkpoint::ProgressRecord;
use crate::config::{Config, ObjectSettings};
use crate::event::ObjectRef;
use crate::ports::{CheckpointError, CheckpointStore, LogSink, ObjectSource, SourceError, Stored};
use crate::route::{Route, Router};
use crate::summary::{Counters, ObjectReport, Outcome};
use deliver::Deliver;
use error::ForwardError;
use format::{FormatLookup, Named};
use lease::{AcquireError, Lease};
use ncf_parse::{ObjectParse, ParseSettings};
use progress::{Ledger, Starting};
use read::{Opened, Opening, Reading};

/// The configuration's parts the stages of an object are given, split once from [`Config`]
/// (when the handler is built): each stage gets only its own.
#[derive(Debug)]
pub struct Stages {
    /// Where an object's events go.
    pub route: Router,
    /// The deployment's parse settings: every object's work stage shares them (not copied).
    pub parse: Arc<ParseSettings>,
    /// How each object is read, which format parses it and what its messages carry.
    pub objects: ObjectSettings,
    /// The deliver stage's part.
    pub deliver: Delivering,
}

impl Stages {
    /// The stages' parts of `config` (the sink's, the checkpoints' and the leases' are the
    /// edges', the number of objects and puts at once the handler's).
    pub fn new(config: Config) -> Self {
        let deliver = Delivering {
            output: config.parse.output,
            entity: config.delivery.entity,
            max_concurrent_puts: config.delivery.max_concurrent_puts,
            retention_days: config.sink.retention_days,
        };
        Self {
            route: config.route,
            parse: Arc::new(config.parse),
            objects: config.objects,
            deliver,
        }
    }
}

/// Forwards one object and reports what happened. Never panics on input; an error here affects
/// only this object. When the decoded key does not exist, the key exactly as the trigger gave
/// it is tried (EventBridge does not document its key encoding).
pub async fn forward_object<S, K, C>(
    source: &S,
    shared: &Shared<K, C>,
    stages: &Stages,
    obj: &ObjectRef,
) -> ObjectReport
where
    S: ObjectSource,
    K: LogSink + 'static,
    C: CheckpointStore + 'static,
{
    let attempt = |obj| Forwarding {
        source,
        shared,
        stages,
        obj,
    };
    match attempt(obj).forward_key().await {
        Attempt::NotFound(report) if obj.raw_key != obj.key => {
            let as_given = ObjectRef {
                key: obj.raw_key.clone(),
                ..obj.clone()
            };
            match attempt(&as_given).forward_key().await {
                Attempt::Reported(alt) => alt,
                Attempt::NotFound(_) => report,
            }
        }
        Attempt::Reported(report) | Attempt::NotFound(report) => report,
    }
}

/// How one attempt at one key ended.
enum Attempt {
    /// The report says what happened.
    Reported(ObjectReport),
    /// The object does not exist under this key (the report says so too).
    NotFound(ObjectReport),
}

/// Why an object's delivery ended before its lines were read; the report says how.
enum Early {
    Reported,
    NotFound,
}

/// One object and what it is forwarded with.
struct Forwarding<'a, S, K, C> {
    source: &'a S,
    shared: &'a Shared<K, C>,
    stages: &'a Stages,
    obj: &'a ObjectRef,
}

/// What the stages over an opened object leave behind.
struct Run {
    result: Result<(), ForwardError>,
    counters: Counters,
    /// Events each `FILTER_RULES` rule took, by rule index.
    by_rule: Vec<u64>,
    /// Events sent that each redaction rule changed, by rule index.
    redacted_by_rule: Vec<u64>,
    checkpoint_error: Option<CheckpointError>,
}

impl<S, K, C> Forwarding<'_, S, K, C>
where
    S: ObjectSource,
    K: LogSink + 'static,
    C: CheckpointStore + 'static,
{
    /// The key as logs show it.
    fn key(&self) -> String {
        self.obj.key.escape_debug().to_string()
    }

    /// One attempt at one key. An object that routes nowhere is skipped before anything else
    /// (no lease is taken for it).
    async fn forward_key(&self) -> Attempt {
        let obj = self.obj;
        let mut report = ObjectReport::new(
            obj,
            Outcome::Skipped {
                reason: String::new(),
            },
        );
        let route = match self.route() {
            Ok(route) => route,
            Err(reason) => {
                report.outcome = Outcome::Skipped { reason };
                return Attempt::Reported(report);
            }
        };
        let Some(leasing) = &self.shared.leasing else {
            return self.forward_routed(route, report, None).await;
        };
        match lease::acquire(leasing, obj, &self.shared.stop, &self.shared.clock).await {
            Ok(lease) => {
                let (waited, took_over) = (lease.waited, lease.took_over.is_some());
                let mut attempt = self.forward_routed(route, report, Some(&lease)).await;
                // After the last progress record: a delivery waiting for this lease reads it next.
                lease.release().await;
                let (Attempt::Reported(report) | Attempt::NotFound(report)) = &mut attempt;
                report.counters.lease_waits += u64::from(waited);
                report.counters.lease_takeovers += u64::from(took_over);
                attempt
            }
            Err(e @ AcquireError::Store(_)) => {
                self.shared.lease_trouble(&e);
                report.lease_error = Some(e.to_string());
                self.forward_routed(route, report, None).await
            }
            Err(e @ AcquireError::Busy { .. }) => {
                let error = format!("s3://{}/{}: {e}", obj.bucket, self.key());
                warn!("{error}");
                report.counters.lease_waits += 1;
                report.outcome = Outcome::Failed { error };
                Attempt::Reported(report)
            }
        }
    }

    /// Where the object's events go; `Err`: why it is skipped.
    fn route(&self) -> Result<Route, String> {
        let obj = self.obj;
        if ncf_parse::object_format::is_format_key(&obj.key) {
            return Err("a log format uploaded by ship, not a log".into());
        }
        if let Some(leasing) = &self.shared.leasing
            && leasing.store.is_lease_key(&obj.key)
        {
            return Err("a lease object (LEASE_PREFIX), not a log".into());
        }
        self.stages.route.route(&obj.key).map_err(|e| {
            warn!(bucket = %obj.bucket, key = self.key(), "skipping object: {e}");
            e.to_string()
        })
    }

    /// Forwards a routed object, holding its lease if leases are used.
    async fn forward_routed(
        &self,
        route: Route,
        mut report: ObjectReport,
        lease: Option<&Lease>,
    ) -> Attempt {
        match self.deliver_routed(route, &mut report, lease).await {
            Ok(()) | Err(Early::Reported) => Attempt::Reported(report),
            Err(Early::NotFound) => Attempt::NotFound(report),
        }
    }

    /// progress record → open → the object's formats → the stages → the report.
    async fn deliver_routed(
        &self,
        route: Route,
        report: &mut ObjectReport,
        lease: Option<&Lease>,
    ) -> Result<(), Early> {
        let stored = self.load(report).await?;
        // A record for another version of the object (it was overwritten) does not apply.
        let progress = stored
            .as_ref()
            .and_then(|s| s.progress.clone())
            .filter(|p| self.obj.etag.as_ref().is_none_or(|e| *e == p.etag));
        let opened = self.open(report, progress.as_ref()).await?;
        report.resumed_from_line = opened.earlier.is_some().then_some(opened.start.0);
        // (Collected first: a reference to the opened object is not `Send`.)
        let meta: Vec<(&str, String)> = format::METADATA
            .iter()
            .filter_map(|m| opened.object.metadata(m).map(|v| (*m, v.to_string())))
            .collect();
        let named = self.named_formats(&meta, &route, report).await?;
        let job = self.job(&opened, &route, named);
        let ledger = Ledger::new(
            self.shared,
            self.obj,
            Starting {
                etag: opened.object.etag.clone(),
                // Without a usable store no record is written.
                stored: stored.filter(|_| report.checkpoint_error.is_none()),
                earlier: opened.earlier.unwrap_or_default(),
                position: opened.start,
            },
        );
        let reading = Reading {
            body: opened.object.body,
            start: opened.start,
            ranged: opened.ranged,
            job,
            skip_binary: self.stages.objects.skip_binary,
        };
        let run = self.run(reading, ledger, &route, lease).await;
        self.report(report, route, run);
        Ok(())
    }

    /// What earlier deliveries of this object achieved (`None`: no usable store).
    async fn load(&self, report: &mut ObjectReport) -> Result<Option<Stored>, Early> {
        match self.shared.checkpoints.load(self.obj).await {
            Ok(s) => Ok(Some(s)),
            Err(CheckpointError::NotFound { bucket, key }) => {
                let e = SourceError::NotFound { bucket, key };
                report.outcome = Outcome::Failed {
                    error: e.to_string(),
                };
                Err(Early::NotFound)
            }
            Err(e) => {
                self.shared.checkpoint_trouble(&e);
                report.checkpoint_error = Some(e.to_string());
                Ok(None)
            }
        }
    }

    /// Opens the object where `progress` says to resume, unless it is delivered already.
    async fn open(
        &self,
        report: &mut ObjectReport,
        progress: Option<&ProgressRecord>,
    ) -> Result<Opened, Early> {
        let obj = self.obj;
        match read::open(self.source, obj, progress).await {
            Ok(Opening::Ready(opened)) => Ok(opened),
            Ok(Opening::Delivered) => {
                info!(bucket = %obj.bucket, key = self.key(), "already delivered; skipping");
                report.outcome = Outcome::AlreadyDelivered;
                Err(Early::Reported)
            }
            Err(SourceError::Changed { .. }) if obj.etag.is_some() => {
                let reason = "superseded: the object was overwritten after this event; the newer object's own event forwards it".to_string();
                info!(bucket = %obj.bucket, key = self.key(), "{reason}");
                report.outcome = Outcome::Skipped { reason };
                Err(Early::Reported)
            }
            Err(e) => {
                warn!(bucket = %obj.bucket, key = self.key(), "{e}");
                report.outcome = Outcome::Failed {
                    error: e.to_string(),
                };
                match e {
                    SourceError::NotFound { .. } => Err(Early::NotFound),
                    _ => Err(Early::Reported),
                }
            }
        }
    }

    /// The log_formats the object names, if it names any and the deployment reads them;
    /// `meta` is the object's metadata.
    async fn named_formats(
        &self,
        meta: &[(&str, String)],
        route: &Route,
        report: &mut ObjectReport,
    ) -> Result<Option<Named>, Early> {
        let obj = self.obj;
        let lookup = FormatLookup {
            source: self.source,
            cache: &self.shared.formats,
            objects: &self.stages.objects,
            names: self.stages.parse.names,
        };
        let found = lookup
            .object_formats(obj, route.kind, |name| {
                meta.iter()
                    .find(|(m, _)| *m == name)
                    .map(|(_, v)| v.as_str())
            })
            .await;
        let named = found.map_err(|e| {
            let error = format!(
                "s3://{}/{}: cannot use its log_format: {e}",
                obj.bucket,
                self.key()
            );
            warn!("{error}");
            report.outcome = Outcome::Failed { error };
            Early::Reported
        })?;
        if let Some(named) = &named {
            report.log_format = named.keys.first().cloned();
            if named.keys.len() > 1 {
                report.log_formats = named.keys.clone();
            }
        }
        Ok(named)
    }

    /// What the object's events are parsed with: the deployment's settings (shared), and the
    /// object's part: the fields about its source, the log_formats it names and the
    /// request-line rules of the nginx that wrote it.
    fn job(&self, opened: &Opened, route: &Route, named: Option<Named>) -> work::Job {
        let (obj, object) = (self.obj, &opened.object);
        let parse = ObjectParse {
            extra: self
                .stages
                .objects
                .extra_fields
                .render(|g| route.group(g), |m| object.metadata(m)),
            sample_seed: ncf_parse::filter::object_seed(&obj.bucket, &obj.key),
            request_line: ncf_parse::RequestLineRules::from_metadata(
                object.metadata(ncf_parse::request_line::META_NGINX_VERSION),
            ),
            access_format: named.as_ref().and_then(|n| n.formats.first().cloned()),
        };
        let fallback_ts = object
            .last_modified_ms
            .unwrap_or_else(|| (self.shared.clock)());
        let shared = Arc::clone(&self.stages.parse);
        let job = work::Job::new(shared, parse, route.kind, fallback_ts, opened.start.0);
        match named.filter(|n| n.formats.len() > 1 || !n.parts.is_empty()) {
            Some(n) => job.with_formats(n.formats, n.parts),
            None => job,
        }
    }

    /// The stages over the opened object: read → deliver, with the ledger beside them.
    /// Whatever happens, the puts already in flight are waited for and accounted before the
    /// last progress record is written.
    async fn run(
        &self,
        reading: Reading,
        mut ledger: Ledger<'_, K, C>,
        route: &Route,
        lease: Option<&Lease>,
    ) -> Run {
        let (shared, obj) = (self.shared, self.obj);
        let mut deliver = Deliver::new(shared, &self.stages.deliver, route, obj, lease);
        let mut counters = Counters::default();
        let read = read::read_all(reading, obj, &mut deliver, &mut ledger, &mut counters).await;
        // Nothing is sent after this: the last record follows the puts in flight.
        ledger.sending_done();
        let drained = deliver.drain(&mut ledger).await;
        let result = read.and(drained);
        let held = deliver.held_lines();
        ledger.finish(result.is_ok(), held.clone()).await;
        // Now that the puts in flight are settled and recorded: what is delivered.
        let result = result.map_err(|e| match e {
            ForwardError::Stopped(s) => ledger.stopped(s.reason, &held),
            other => other,
        });
        counters.add(&deliver.counters);
        Run {
            result,
            counters,
            by_rule: deliver.by_rule,
            redacted_by_rule: deliver.redacted_by_rule,
            checkpoint_error: ledger.checkpoint_error,
        }
    }

    /// The report of an object whose stages ran.
    fn report(&self, report: &mut ObjectReport, route: Route, run: Run) {
        let (obj, key) = (self.obj, self.key());
        let parse = &self.stages.parse;
        report.filtered_by_rule = by_name(&run.by_rule, &parse.rules.names());
        report.redacted_by_rule = by_name(&run.redacted_by_rule, parse.redaction.names());
        report.counters = run.counters;
        if report.checkpoint_error.is_none() {
            report.checkpoint_error = run.checkpoint_error.map(|e| e.to_string());
        }
        report.outcome = match run.result {
            Ok(()) => {
                info!(bucket = %obj.bucket, key, group = %route.log_group, stream = %route.log_stream,
                      events = report.counters.events, batches = report.counters.batches, "object delivered");
                Outcome::Delivered {
                    log_group: route.log_group,
                    log_stream: route.log_stream,
                }
            }
            Err(ForwardError::Binary) => {
                let reason = format!("s3://{}/{}: {}", obj.bucket, key, ForwardError::Binary);
                warn!("{reason}");
                Outcome::Skipped { reason }
            }
            Err(e) => {
                let error = format!("s3://{}/{}: {e}", obj.bucket, key);
                warn!("{error}");
                Outcome::Failed { error }
            }
        };
    }
}

/// Counts by rule index as counts by rule name (the rules that counted nothing left out).
fn by_name(counts: &[u64], names: &[String]) -> std::collections::BTreeMap<String, u64> {
    counts
        .iter()
        .zip(names)
        .filter(|(n, _)| **n > 0)
        .map(|(n, name)| (name.clone(), *n))
        .collect()
}
