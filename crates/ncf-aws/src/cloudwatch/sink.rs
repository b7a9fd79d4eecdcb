//! [`CloudWatchSink`]: the put of one batch, the creation of a missing group and stream, and
//! what follows a put without an answer (see the module's documentation).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use tracing::{info, warn};

use ncf_core::batch::{MAX_BATCH_BYTES, ReadBack};
use ncf_core::config::{AMBIGUOUS_PUT_WAIT, LogGroupClass};
use ncf_core::ports::{Entity, LogSink, PutReport, Rejected, SinkError};
use ncf_core::spare::Spare;
use ncf_parse::LogEvent;

use super::body::{put_log_events_body, put_log_events_body_in};
use super::readback::{read_back, rejected_counts_over, unstored};
use super::retry::{OutcomeUnknownIsNotRetried, PutVerdict, classify};
use super::stream::StreamId;

/// After creating a group and stream, puts that failed with ResourceNotFound before the create
/// finished only repeat their put for this long instead of creating again.
const RECENTLY_CREATED: Duration = Duration::from_secs(60);
/// Unknown outcomes one batch may meet (each checked) before it fails; its object is then
/// retried later from its progress record.
const MAX_UNKNOWN_OUTCOMES: u64 = 3;
/// Request bodies kept for the next puts: as many as the puts in flight by default
/// (`MAX_CONCURRENT_PUTS`). A body is about 1.1 MiB, and writing one into a fresh allocation
/// cost a page fault per 4 KiB: 139,000 of the 168,000 page faults of forwarding 600 MB of log
/// text, about 4 % of its CPU.
const KEPT_BODIES: usize = ncf_core::config::DEFAULT_MAX_CONCURRENT_PUTS;
/// Larger bodies are not kept: a batch of messages full of characters that JSON escapes as
/// `\u00XX` can make a body of several MiB, and keeping such bodies would hold their memory
/// after the batch.
const KEPT_BODY_MAX_CAPACITY: usize = 2 * MAX_BATCH_BYTES;

pub struct CloudWatchSink {
    client: Client,
    retention_days: Option<i32>,
    /// The class of the groups this sink creates.
    group_class: LogGroupClass,
    /// See [`AMBIGUOUS_PUT_WAIT`].
    ambiguous_wait: Duration,
    /// Streams this process created, and when: parallel puts to a new stream all get
    /// ResourceNotFound, but only the first creates it. Lives as long as the warm Lambda.
    created: tokio::sync::Mutex<HashMap<(String, String), Instant>>,
    /// Bodies of finished puts, for the next ones (see [`KEPT_BODIES`]).
    bodies: Spare<Vec<u8>>,
}

impl CloudWatchSink {
    pub fn new(client: Client, retention_days: Option<i32>) -> Self {
        Self {
            client,
            retention_days,
            group_class: LogGroupClass::Standard,
            ambiguous_wait: AMBIGUOUS_PUT_WAIT,
            created: tokio::sync::Mutex::new(HashMap::new()),
            bodies: Spare::new(KEPT_BODIES),
        }
    }

    /// The same sink creating groups of `class`.
    pub fn with_group_class(mut self, class: LogGroupClass) -> Self {
        self.group_class = class;
        self
    }

    /// The same sink looking for a batch whose put got no answer for `wait`
    /// ([`AMBIGUOUS_PUT_WAIT`] by default).
    pub fn with_ambiguous_wait(mut self, wait: Duration) -> Self {
        self.ambiguous_wait = wait;
        self
    }
}

impl LogSink for CloudWatchSink {
    async fn put(
        &self,
        group: &str,
        stream: &str,
        entity: Option<&Entity>,
        events: Vec<LogEvent>,
    ) -> Result<PutReport, SinkError> {
        let total = events.len();
        let mut body = Bytes::from(put_log_events_body_in(
            self.bodies.take().unwrap_or_default(),
            group,
            stream,
            entity,
            &events,
        ));
        // The body holds the messages now: no need to keep a second copy during the call.
        drop(events);
        let to = StreamId { group, stream };
        let result = self.put_body(to, entity, &mut body, total).await;
        // The SDK holds no clone of the body once the call returned (else it is dropped).
        if let Ok(buffer) = body.try_into_mut()
            && buffer.capacity() <= KEPT_BODY_MAX_CAPACITY
        {
            self.bodies.give(buffer.into());
        }
        result
    }

    async fn find_missing(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) -> Result<Vec<usize>, SinkError> {
        let to = StreamId { group, stream };
        let mut found = ReadBack::new(events);
        read_back(&self.client, to, &mut found).await.map_err(|e| {
            to.failed(format!(
                "reading the stream back: {}",
                DisplayErrorContext(&e)
            ))
        })?;
        Ok(found.missing())
    }
}

/// Why a put did not succeed: the call's error, or the group/stream could not be created.
enum PutFailure {
    Call(Box<SdkError<PutLogEventsError>>),
    Sink(SinkError),
}

impl From<SdkError<PutLogEventsError>> for PutFailure {
    fn from(e: SdkError<PutLogEventsError>) -> Self {
        Self::Call(Box::new(e))
    }
}

impl CloudWatchSink {
    /// The put of `body` (the batch's `total` events) and what follows a put without an
    /// answer: the stream is read back and only what is missing is sent again (`body` then
    /// holds that).
    async fn put_body(
        &self,
        to: StreamId<'_>,
        entity: Option<&Entity>,
        body: &mut Bytes,
        total: usize,
    ) -> Result<PutReport, SinkError> {
        // How many events the body being sent carries (fewer once only what was missing is).
        let mut part = total;
        let mut report = PutReport::default();
        loop {
            let e = match self.put_creating(to, body).await {
                Ok(rejected) => {
                    report.rejected = if part == total {
                        rejected
                    } else {
                        // The indexes are the resent part's: keep the counts, over the batch.
                        rejected_counts_over(rejected, part, total)
                    };
                    return Ok(report);
                }
                Err(PutFailure::Sink(e)) => return Err(e),
                Err(PutFailure::Call(e)) => {
                    let detail = DisplayErrorContext(&e).to_string();
                    match classify(&e) {
                        PutVerdict::CheckStored => detail,
                        // Still missing after it was created twice.
                        PutVerdict::CreateThenPut | PutVerdict::Refused => {
                            return Err(to.rejected(detail));
                        }
                        PutVerdict::GiveUp => return Err(to.failed(detail)),
                    }
                }
            };
            report.ambiguous += 1;
            if report.ambiguous > MAX_UNKNOWN_OUTCOMES {
                return Err(to.failed(format!(
                    "{MAX_UNKNOWN_OUTCOMES} puts of this batch got no answer, the last: {e}"
                )));
            }
            let again = unstored(&self.client, to, body, &e, self.ambiguous_wait).await?;
            if again.is_empty() {
                return Ok(report);
            }
            report.resent_after_check += 1;
            part = again.len();
            *body = Bytes::from(put_log_events_body(to.group, to.stream, entity, &again));
        }
    }

    /// One put of `body`, creating the group and stream when they are missing.
    async fn put_creating(&self, to: StreamId<'_>, body: &Bytes) -> Result<Rejected, PutFailure> {
        let not_found = |e: &SdkError<PutLogEventsError>| classify(e) == PutVerdict::CreateThenPut;
        match self.put_once(to, body).await {
            Ok(r) => Ok(r),
            Err(e) if not_found(&e) => {
                self.ensure(to, false).await.map_err(PutFailure::Sink)?;
                match self.put_once(to, body).await {
                    // Deleted since we created it: create once more, then give up.
                    Err(e) if not_found(&e) => {
                        self.ensure(to, true).await.map_err(PutFailure::Sink)?;
                        Ok(self.put_once(to, body).await?)
                    }
                    other => Ok(other?),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One PutLogEvents call sending `body`, and what CloudWatch rejected of it.
    async fn put_once(
        &self,
        to: StreamId<'_>,
        body: &Bytes,
    ) -> Result<Rejected, SdkError<PutLogEventsError>> {
        let (body, len) = (body.clone(), body.len().to_string());
        let out = self
            .client
            .put_log_events()
            .log_group_name(to.group)
            .log_stream_name(to.stream)
            .customize()
            .config_override(
                aws_sdk_cloudwatchlogs::config::Builder::default()
                    .retry_classifier(OutcomeUnknownIsNotRetried),
            )
            // Before signing, on every attempt: the body we wrote replaces the SDK's.
            // (`Bytes` clones share the buffer.)
            .mutate_request(move |req| {
                *req.body_mut() = SdkBody::from(body.clone());
                req.headers_mut().insert("content-length", len.clone());
            })
            .send()
            .await?;
        let idx = |v: Option<i32>| v.and_then(|i| usize::try_from(i).ok());
        let mut rejected = out
            .rejected_log_events_info()
            .map_or_else(Rejected::default, |r| Rejected {
                // `*_end_index` is inclusive in the API: events 0..=end were rejected.
                too_old_end: idx(r.too_old_log_event_end_index()).map(|i| i + 1),
                too_new_start: idx(r.too_new_log_event_start_index()),
                expired_end: idx(r.expired_log_event_end_index()).map(|i| i + 1),
                entity_rejected: false,
            });
        if let Some(e) = out.rejected_entity_info() {
            rejected.entity_rejected = true;
            warn!(group = to.group, stream = to.stream, error_type = %e.error_type(),
                  "CloudWatch Logs did not take the entity sent with the events (the events were stored)");
        }
        Ok(rejected)
    }

    /// Creates the group and stream unless this process just did (a parallel put got there
    /// first); `force` creates regardless.
    async fn ensure(&self, to: StreamId<'_>, force: bool) -> Result<(), SinkError> {
        let key = (to.group.to_string(), to.stream.to_string());
        // Held across the create calls, so that concurrent puts wait for the one creating.
        let mut created = self.created.lock().await;
        if !force
            && created
                .get(&key)
                .is_some_and(|t| t.elapsed() < RECENTLY_CREATED)
        {
            return Ok(());
        }
        self.create_group(to).await?;
        self.create_stream(to).await?;
        created.insert(key, Instant::now());
        Ok(())
    }

    /// Creates the group (with retention); "already exists" is success, and keeps the
    /// retention its creator chose.
    async fn create_group(&self, to: StreamId<'_>) -> Result<(), SinkError> {
        let fail = |what: &str, e: &dyn std::error::Error| {
            to.failed(format!("{what}: {}", DisplayErrorContext(e)))
        };
        let class = match self.group_class {
            // Omitted: CloudWatch's default, and what every emulator understands.
            LogGroupClass::Standard => None,
            LogGroupClass::InfrequentAccess => {
                Some(aws_sdk_cloudwatchlogs::types::LogGroupClass::InfrequentAccess)
            }
        };
        let created = self
            .client
            .create_log_group()
            .log_group_name(to.group)
            .set_log_group_class(class)
            .send()
            .await;
        match created {
            Ok(_) => info!(group = to.group, "created log group"),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateLogGroupError::ResourceAlreadyExistsException(_))
                ) =>
            {
                return Ok(());
            }
            Err(e) => return Err(fail("CreateLogGroup", &e)),
        }
        if let Some(days) = self.retention_days {
            self.client
                .put_retention_policy()
                .log_group_name(to.group)
                .retention_in_days(days)
                .send()
                .await
                .map_err(|e| fail("PutRetentionPolicy", &e))?;
        }
        Ok(())
    }

    /// Creates the stream; "already exists" is success.
    async fn create_stream(&self, to: StreamId<'_>) -> Result<(), SinkError> {
        match self
            .client
            .create_log_stream()
            .log_group_name(to.group)
            .log_stream_name(to.stream)
            .send()
            .await
        {
            Ok(_) => info!(group = to.group, stream = to.stream, "created log stream"),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateLogStreamError::ResourceAlreadyExistsException(_))
                ) => {}
            Err(e) => {
                return Err(to.failed(format!("CreateLogStream: {}", DisplayErrorContext(&e))));
            }
        }
        Ok(())
    }
}
