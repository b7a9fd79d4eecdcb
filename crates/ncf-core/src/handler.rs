//! One invocation: trigger payload → object refs → forward each (bounded concurrency) → summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::config::{Config, DeliverySettings};
use crate::event::ObjectRef;
use crate::event::{Announced, EventError, announced_objects};
use crate::forward::format::FormatCache;
use crate::forward::lease::Leases;
use crate::forward::{
    Clock, Shared, Stages, Stop, TIME_RESERVE, forward_object, stop_by, system_clock,
};
use crate::ports::{CheckpointStore, LeaseStore, LogSink, NoCheckpoints, ObjectSource};
use crate::route::RouteError;
use crate::summary::{ObjectReport, Outcome, Summary};
use crate::trust::{
    KeyOwner, Refusal, TrustSettings, UploaderKind, Verdict, check_test_event, check_uploader,
    refuse_message,
};

/// Built once per cold start; serves every invocation of a warm Lambda.
pub struct Handler<S, K, C = NoCheckpoints> {
    pub source: S,
    pub sink: Arc<K>,
    pub checkpoints: Arc<C>,
    /// The configuration's parts the stages of each object are given.
    stages: Stages,
    /// Objects and puts at once (`MAX_CONCURRENT_OBJECTS`, `MAX_CONCURRENT_PUTS`).
    delivery: DeliverySettings,
    clock: Clock,
    /// Leases on objects while they are forwarded (`None`: no exclusion).
    leasing: Option<Leases>,
    /// The formats objects named, compiled once per warm process.
    formats: Arc<FormatCache>,
    /// Which messages are acted on and whose uploads go where.
    trust: TrustSettings,
}

impl<S: ObjectSource, K: LogSink + 'static> Handler<S, K, NoCheckpoints> {
    /// A handler without progress records (see [`Handler::with_checkpoints`]). `config` is
    /// split here, once: the handler keeps the number of objects and puts at once, and each
    /// stage gets its own part ([`Stages`]); the sink's, the checkpoints' and the leases'
    /// parts are the edges' (read before this).
    pub fn new(source: S, sink: K, config: Config) -> Self {
        Self {
            source,
            sink: Arc::new(sink),
            checkpoints: Arc::new(NoCheckpoints),
            delivery: config.delivery.clone(),
            trust: config.trust.clone(),
            stages: Stages::new(config),
            clock: system_clock(),
            leasing: None,
            formats: Arc::default(),
        }
    }
}

impl<S: ObjectSource, K: LogSink + 'static, C: CheckpointStore + 'static> Handler<S, K, C> {
    /// The same handler keeping per-object progress in `store`.
    pub fn with_checkpoints<C2: CheckpointStore + 'static>(self, store: C2) -> Handler<S, K, C2> {
        Handler {
            source: self.source,
            sink: self.sink,
            checkpoints: Arc::new(store),
            stages: self.stages,
            delivery: self.delivery,
            clock: self.clock,
            leasing: self.leasing,
            formats: self.formats,
            trust: self.trust,
        }
    }

    /// The same handler taking a lease on each object before forwarding it, so that two
    /// deliveries of one object never forward it at the same time.
    pub fn with_leases(mut self, store: Arc<dyn LeaseStore>, term: Duration) -> Self {
        self.leasing = Some(Leases { store, term });
        self
    }

    /// The same handler with a fixed notion of "now" (tests of the time window).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one trigger payload with no deadline (local commands, tests).
    pub async fn handle(&self, payload: &Value) -> Result<Summary, EventError> {
        self.handle_until(payload, None).await
    }

    /// Handles one trigger payload. Each object succeeds or fails on its own; the summary says
    /// which. Only a payload of unknown shape is an error as a whole. With a `deadline` (the
    /// Lambda's), objects stop in time (keeping [`TIME_RESERVE`]) and record where the next
    /// attempt resumes.
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<Instant>,
    ) -> Result<Summary, EventError> {
        let stop = deadline.map(|d| stop_by(d, Instant::now()));
        self.handle_stopping_by(payload, stop, deadline).await
    }

    /// Handles one trigger payload within the time [`budget`] gave for the invocation.
    pub async fn handle_within(
        &self,
        payload: &Value,
        budget: Budget,
    ) -> Result<Summary, EventError> {
        let (stop, deadline) = match budget {
            Budget::Deadline(deadline) => (stop_by(deadline, Instant::now()), Some(deadline)),
            Budget::Fallback { stop_by, .. } => (stop_by, None),
        };
        self.handle_stopping_by(payload, Some(stop), deadline).await
    }

    /// Handles one trigger payload, starting no batch after `stop` (if given); no lease
    /// outlasts `deadline` (if given).
    async fn handle_stopping_by(
        &self,
        payload: &Value,
        stop: Option<Instant>,
        deadline: Option<Instant>,
    ) -> Result<Summary, EventError> {
        let started = Instant::now();
        let announced = announced_objects(payload)?;
        for bad in &announced.invalid {
            warn!("invalid record: {bad}");
        }
        let shared = self.shared(Stop {
            by: stop,
            deadline,
            interrupted: Arc::default(),
        });
        let reports: Vec<_> = futures_util::stream::iter(announced.objects.iter())
            .map(|obj| self.forward_screened(&shared, obj))
            .buffered(self.delivery.max_concurrent_objects)
            .collect()
            .await;
        let mut summary = self.records_summary(announced);
        for r in reports {
            if let (Outcome::Failed { .. }, Some(id)) = (&r.outcome, &r.message_id)
                && !summary.failed_messages.contains(id)
            {
                summary.failed_messages.push(id.clone());
            }
            summary.push(r);
        }
        summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(summary)
    }
}

impl<S, K, C> Handler<S, K, C>
where
    S: ObjectSource,
    K: LogSink + 'static,
    C: CheckpointStore + 'static,
{
    /// Forwards an announced object if the checks of [`crate::trust`] let it through;
    /// otherwise reports why not, having read nothing.
    async fn forward_screened(&self, shared: &Shared<K, C>, obj: &ObjectRef) -> ObjectReport {
        match self.screen(obj) {
            Ok(kind) => {
                let mut report = forward_object(&self.source, shared, &self.stages, obj).await;
                report.uploader_kind = Some(kind);
                report
            }
            Err(outcome) => ObjectReport::new(obj, outcome),
        }
    }

    /// Who uploaded `obj`, if its message is acted on and the uploader may write the stream
    /// its key names; `Err`: why it is refused or untrusted. Format objects and leases pass
    /// (forwarding skips them).
    fn screen(&self, obj: &ObjectRef) -> Result<UploaderKind, Outcome> {
        let refused = |refusal, reason: String| {
            warn!(bucket = %obj.bucket, key = %obj.key.escape_debug(), "refused: {reason}");
            Outcome::Refused { refusal, reason }
        };
        if let Some((refusal, reason)) = refuse_message(obj, &self.trust) {
            return Err(refused(refusal, reason));
        }
        let internal = ncf_parse::object_format::is_format_key(&obj.key)
            || self
                .leasing
                .as_ref()
                .is_some_and(|l| l.store.is_lease_key(&obj.key));
        let route = match self.stages.route.route(&obj.key) {
            Ok(route) if !internal => route,
            // Skipped by forwarding, with the reason.
            Ok(_) | Err(RouteError::BadName { .. }) => return Ok(UploaderKind::Unknown),
            Err(_) if internal => return Ok(UploaderKind::Unknown),
            Err(e) => return Err(refused(Refusal::OutsideKeyPattern, e.to_string())),
        };
        let owner = KeyOwner {
            instance: &route.instance_id,
            role: route.group("role_id"),
        };
        let principal = obj.provenance.principal.as_deref();
        match check_uploader(principal, owner, &self.trust.uploaders) {
            Verdict::Forward(kind) => Ok(kind),
            Verdict::Untrusted {
                reason,
                uploader_instance,
            } => {
                let at = format!("s3://{}/{}", obj.bucket, obj.key.escape_debug());
                warn!(
                    key_instance = %route.instance_id,
                    uploader = principal.unwrap_or_default(),
                    "untrusted upload {at}: {reason}"
                );
                Err(Outcome::Untrusted {
                    reason,
                    key_instance: route.instance_id.clone(),
                    uploader_instance,
                })
            }
        }
    }

    /// The summary of what a payload's records say before any object is forwarded: ignored,
    /// invalid and refused records (test events S3 did not send).
    fn records_summary(&self, announced: Announced) -> Summary {
        let mut summary = Summary {
            records_ignored: announced.ignored,
            records_invalid: announced.invalid,
            failed_messages: announced.invalid_messages,
            from_sqs: announced.from_sqs,
            ..Summary::new()
        };
        for event in &announced.test_events {
            match check_test_event(event, &self.trust) {
                Ok(ignored) => summary.records_ignored.push(ignored),
                Err(reason) => {
                    warn!("refused: {reason}");
                    summary.trust.refuse(Refusal::ForgedTestEvent, reason);
                }
            }
        }
        summary
    }

    /// What the objects of one run (an invocation, a backfill) share.
    fn shared(&self, stop: Stop) -> Shared<K, C> {
        Shared {
            sink: self.sink.clone(),
            checkpoints: self.checkpoints.clone(),
            puts: Arc::new(Semaphore::new(self.delivery.max_concurrent_puts)),
            clock: self.clock.clone(),
            stop,
            leasing: self.leasing.clone(),
            formats: self.formats.clone(),
            warned: Default::default(),
        }
    }

    /// Forwards objects no trigger announced (`backfill`): `MAX_CONCURRENT_OBJECTS` at a time,
    /// each report as soon as its object is done (not in listing order). Once `interrupted` is
    /// set no object starts, and those in flight stop before their next batch with their
    /// progress recorded: the next run resumes them.
    pub fn forward_listed<'a>(
        &'a self,
        objects: impl Iterator<Item = ObjectRef> + Send + 'a,
        interrupted: Arc<AtomicBool>,
    ) -> impl futures_util::Stream<Item = ObjectReport> + Send + 'a
    where
        S: 'a,
    {
        let shared = Arc::new(self.shared(Stop {
            interrupted: interrupted.clone(),
            ..Stop::default()
        }));
        futures_util::stream::iter(objects)
            .take_while(move |_| std::future::ready(!interrupted.load(Ordering::SeqCst)))
            .map(move |obj| {
                let shared = shared.clone();
                async move { forward_object(&self.source, &shared, &self.stages, &obj).await }
            })
            .buffer_unordered(self.delivery.max_concurrent_objects)
    }
}

/// The longest a Lambda invocation can last (the maximum function timeout).
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>
pub const LAMBDA_MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How far beyond [`LAMBDA_MAX_TIMEOUT`] a deadline may lie and still be taken as Lambda's
/// (clock differences between the Lambda service and the sandbox, rounding).
pub const DEADLINE_SLACK: Duration = Duration::from_secs(60);

/// How long an invocation works when the runtime's deadline makes no sense: Lambda's maximum
/// timeout less the reserve a real 15-minute deadline would keep (14 min 40 s). Lambda itself
/// always sends a plausible absolute deadline, so this serves emulators (`cargo lambda watch`
/// sends `Lambda-Runtime-Deadline-Ms: 600000`, a relative time), where it lets any local object
/// finish; and should a real Lambda ever send nonsense, no invocation can outlive this anyway.
pub const FALLBACK_BUDGET: Duration =
    Duration::from_secs(LAMBDA_MAX_TIMEOUT.as_secs() - TIME_RESERVE.as_secs());

/// Why the runtime's deadline cannot be the deadline of an invocation starting now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineProblem {
    #[error("the runtime gave no deadline (Lambda-Runtime-Deadline-Ms: 0)")]
    Missing,
    #[error(
        "the runtime's deadline {deadline_ms} is a duration, not milliseconds since the epoch (an emulator's relative timeout)"
    )]
    Relative { deadline_ms: u64 },
    #[error(
        "the runtime's deadline {deadline_ms} had passed {ago_ms} ms before the invocation started"
    )]
    Past { deadline_ms: u64, ago_ms: u64 },
    #[error(
        "the runtime's deadline {deadline_ms} is {ahead_ms} ms ahead, beyond Lambda's 15-minute maximum timeout"
    )]
    TooFar { deadline_ms: u64, ahead_ms: u64 },
}

/// The time an invocation has, from the runtime's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// A plausible absolute deadline: objects stop in time for it, keeping [`TIME_RESERVE`].
    Deadline(Instant),
    /// The runtime's deadline makes no sense: no batch starts after `stop_by`, which is
    /// [`FALLBACK_BUDGET`] after the start.
    Fallback {
        stop_by: Instant,
        problem: DeadlineProblem,
    },
}

/// Converts the runtime's deadline (`deadline_ms` since the epoch, as lambda_runtime's
/// `Context::deadline` holds it) into the invocation's budget, at the wall-clock time `now_ms`
/// and the monotonic time `now` of the start of the invocation. Pure.
pub fn budget(deadline_ms: u64, now_ms: i64, now: Instant) -> Budget {
    let fallback = |problem| Budget::Fallback {
        stop_by: now + FALLBACK_BUDGET,
        problem,
    };
    let longest = LAMBDA_MAX_TIMEOUT + DEADLINE_SLACK;
    let longest_ms = u64::try_from(longest.as_millis()).unwrap_or(u64::MAX);
    if deadline_ms == 0 {
        return fallback(DeadlineProblem::Missing);
    }
    if deadline_ms <= longest_ms {
        return fallback(DeadlineProblem::Relative { deadline_ms });
    }
    let now_ms = u64::try_from(now_ms).unwrap_or(0);
    if deadline_ms <= now_ms {
        let ago_ms = now_ms - deadline_ms;
        return fallback(DeadlineProblem::Past {
            deadline_ms,
            ago_ms,
        });
    }
    let ahead_ms = deadline_ms - now_ms;
    if ahead_ms > longest_ms {
        return fallback(DeadlineProblem::TooFar {
            deadline_ms,
            ahead_ms,
        });
    }
    Budget::Deadline(now + Duration::from_millis(ahead_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_that_makes_no_sense_gives_the_fallback_budget() {
        // 2026-11-30 03:00:00 UTC.
        let now_ms: i64 = 1_796_007_600_000;
        let at = u64::try_from(now_ms).unwrap();
        let now = Instant::now();
        let (s, min) = (Duration::from_secs, |m: u64| Duration::from_secs(m * 60));
        let fallback = now + FALLBACK_BUDGET;
        let cases: [(&str, u64, Budget); 8] = [
            (
                "5 s past",
                at - 5_000,
                Budget::Fallback {
                    stop_by: fallback,
                    problem: DeadlineProblem::Past {
                        deadline_ms: at - 5_000,
                        ago_ms: 5_000,
                    },
                },
            ),
            (
                "exactly now",
                at,
                Budget::Fallback {
                    stop_by: fallback,
                    problem: DeadlineProblem::Past {
                        deadline_ms: at,
                        ago_ms: 0,
                    },
                },
            ),
            (
                "cargo lambda's relative 600000",
                600_000,
                Budget::Fallback {
                    stop_by: fallback,
                    problem: DeadlineProblem::Relative {
                        deadline_ms: 600_000,
                    },
                },
            ),
            ("30 s ahead", at + 30_000, Budget::Deadline(now + s(30))),
            (
                "14 min ahead",
                at + 840_000,
                Budget::Deadline(now + min(14)),
            ),
            (
                "15 min + slack ahead",
                at + 960_000,
                Budget::Deadline(now + min(16)),
            ),
            (
                "2 days ahead",
                at + 172_800_000,
                Budget::Fallback {
                    stop_by: fallback,
                    problem: DeadlineProblem::TooFar {
                        deadline_ms: at + 172_800_000,
                        ahead_ms: 172_800_000,
                    },
                },
            ),
            (
                "0",
                0,
                Budget::Fallback {
                    stop_by: fallback,
                    problem: DeadlineProblem::Missing,
                },
            ),
        ];
        for (name, deadline_ms, want) in cases {
            assert_eq!(budget(deadline_ms, now_ms, now), want, "{name}");
        }
        assert_eq!(FALLBACK_BUDGET, s(880));
    }

    #[test]
    fn the_reserve_applies_to_a_real_deadline_only() {
        let now = Instant::now();
        let now_ms: i64 = 1_796_007_600_000;
        let at = u64::try_from(now_ms).unwrap();
        // 5 minutes left: stop 20 s before the deadline.
        let Budget::Deadline(d) = budget(at + 300_000, now_ms, now) else {
            panic!("plausible")
        };
        assert_eq!(stop_by(d, now), now + Duration::from_secs(280));
        // Relative 600000: stop at the fallback budget itself, no further reserve taken.
        let Budget::Fallback { stop_by: s, .. } = budget(600_000, now_ms, now) else {
            panic!("implausible")
        };
        assert_eq!(s, now + FALLBACK_BUDGET);
    }

    #[test]
    fn the_problem_says_what_was_wrong() {
        let text = DeadlineProblem::Relative {
            deadline_ms: 600_000,
        }
        .to_string();
        assert!(
            text.contains("600000") && text.contains("relative"),
            "{text}"
        );
        let text = DeadlineProblem::TooFar {
            deadline_ms: 1,
            ahead_ms: 172_800_000,
        }
        .to_string();
        assert!(text.contains("15-minute maximum"), "{text}");
    }
}
