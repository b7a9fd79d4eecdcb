//! CloudWatch Logs as a [`LogSink`].
//!
//! PutLogEvents without sequence tokens (ignored since January 2023). A missing group or stream
//! is created on `ResourceNotFoundException` — `ResourceAlreadyExistsException` counts as
//! success, because another invocation may win the race — and the put is sent again. We never
//! call DescribeLogStreams: its quota (25 requests/s per account) cannot serve a hot path.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
//!
//! CloudWatch detects no duplicate puts, so a put whose outcome is unknown (the request went
//! out and no answer came back: a timeout, a reset or dropped connection) is not retried by the
//! SDK ([`OutcomeUnknownIsNotRetried`]): the stream is read back over the batch's time range
//! (GetLogEvents, only in that case: its quota is low) and only what is missing is sent again.
//! Throttling and 5xx answers say the batch was not stored; the SDK retries those as before.

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::interceptors::InterceptorContext;
use aws_sdk_cloudwatchlogs::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_cloudwatchlogs::error::{ConnectorError, DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError;
use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use ncf_core::batch::{MAX_BATCH_BYTES, ReadBack};
use ncf_core::config::LogGroupClass;
use ncf_core::ports::{Entity, LogSink, PutReport, Rejected, SinkError};
use ncf_core::spare::Spare;
use ncf_parse::{LogEvent, Message, json};

/// After creating a group and stream, puts that failed with ResourceNotFound before the create
/// finished only repeat their put for this long instead of creating again.
const RECENTLY_CREATED: Duration = Duration::from_secs(60);

/// The configuration owns the default (`AMBIGUOUS_PUT_WAIT_MS`); the sink only uses it.
pub use ncf_core::config::AMBIGUOUS_PUT_WAIT;
/// Unknown outcomes one batch may meet (each checked) before it fails; its object is then
/// retried later from its progress record.
const MAX_UNKNOWN_OUTCOMES: u64 = 3;
/// GetLogEvents returns at most 10,000 events (1 MB) per call.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html>
const GET_LOG_EVENTS_LIMIT: i32 = 10_000;
/// Pages read back for one check at most (a guard against a token that never repeats).
const MAX_READ_BACK_PAGES: usize = 1_000;
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

    async fn put_once(
        &self,
        group: &str,
        stream: &str,
        body: &Bytes,
    ) -> Result<Rejected, SdkError<PutLogEventsError>> {
        let (body, len) = (body.clone(), body.len().to_string());
        let out = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
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
            warn!(group, stream, error_type = %e.error_type(),
                  "CloudWatch Logs did not take the entity sent with the events (the events were stored)");
        }
        Ok(rejected)
    }

    /// Creates the group and stream unless this process just did (a parallel put got there
    /// first); `force` creates regardless.
    async fn ensure(&self, group: &str, stream: &str, force: bool) -> Result<(), SinkError> {
        let key = (group.to_string(), stream.to_string());
        // Held across the create calls, so that concurrent puts wait for the one creating.
        let mut created = self.created.lock().await;
        if !force
            && created
                .get(&key)
                .is_some_and(|t| t.elapsed() < RECENTLY_CREATED)
        {
            return Ok(());
        }
        self.create(group, stream).await?;
        created.insert(key, Instant::now());
        Ok(())
    }

    /// Creates the group (with retention) and the stream; "already exists" is success.
    async fn create(&self, group: &str, stream: &str) -> Result<(), SinkError> {
        let fail = |what: &str, detail: String| SinkError::Failed {
            group: group.to_string(),
            stream: stream.to_string(),
            detail: format!("{what}: {detail}"),
        };
        match self
            .client
            .create_log_group()
            .log_group_name(group)
            .set_log_group_class(match self.group_class {
                // Omitted: CloudWatch's default, and what every emulator understands.
                LogGroupClass::Standard => None,
                LogGroupClass::InfrequentAccess => {
                    Some(aws_sdk_cloudwatchlogs::types::LogGroupClass::InfrequentAccess)
                }
            })
            .send()
            .await
        {
            Ok(_) => {
                info!(group, "created log group");
                if let Some(days) = self.retention_days {
                    self.client
                        .put_retention_policy()
                        .log_group_name(group)
                        .retention_in_days(days)
                        .send()
                        .await
                        .map_err(|e| {
                            fail("PutRetentionPolicy", DisplayErrorContext(&e).to_string())
                        })?;
                }
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateLogGroupError::ResourceAlreadyExistsException(_))
                ) => {}
            Err(e) => return Err(fail("CreateLogGroup", DisplayErrorContext(&e).to_string())),
        }
        match self
            .client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => info!(group, stream, "created log stream"),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateLogStreamError::ResourceAlreadyExistsException(_))
                ) => {}
            Err(e) => return Err(fail("CreateLogStream", DisplayErrorContext(&e).to_string())),
        }
        Ok(())
    }
}

impl CloudWatchSink {
    /// One put of `body`, creating the group and stream when they are missing.
    async fn put_creating(
        &self,
        group: &str,
        stream: &str,
        body: &Bytes,
    ) -> Result<Rejected, PutFailure> {
        match self.put_once(group, stream, body).await {
            Ok(r) => Ok(r),
            Err(e) if is_not_found(&e) => {
                self.ensure(group, stream, false)
                    .await
                    .map_err(PutFailure::Sink)?;
                match self.put_once(group, stream, body).await {
                    // Deleted since we created it: create once more, then give up.
                    Err(e) if is_not_found(&e) => {
                        self.ensure(group, stream, true)
                            .await
                            .map_err(PutFailure::Sink)?;
                        Ok(self.put_once(group, stream, body).await?)
                    }
                    other => Ok(other?),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What of `sent` is missing from the stream, looking again while CloudWatch's reads may lag
    /// (for [`AMBIGUOUS_PUT_WAIT`] at most; the trait's `find_missing` reads once).
    async fn missing_after_lag(
        &self,
        group: &str,
        stream: &str,
        sent: &[(i64, String)],
    ) -> Result<Vec<usize>, SdkError<GetLogEventsError>> {
        let until = Instant::now() + self.ambiguous_wait;
        let mut pause = self.ambiguous_wait / 16;
        loop {
            tokio::time::sleep(pause).await;
            let mut found = ReadBack::new(sent);
            self.read_back(group, stream, &mut found).await?;
            let left = until.saturating_duration_since(Instant::now());
            if found.all_found() || left.is_zero() {
                return Ok(found.missing());
            }
            pause = (pause * 2).min(left);
        }
    }

    /// Reads the stream over the batch's time range (oldest first) into `found`; a stream that
    /// does not exist holds nothing.
    async fn read_back(
        &self,
        group: &str,
        stream: &str,
        found: &mut ReadBack<'_>,
    ) -> Result<(), SdkError<GetLogEventsError>> {
        let Some((start, end)) = found.range() else {
            return Ok(());
        };
        let mut token: Option<String> = None;
        for _ in 0..MAX_READ_BACK_PAGES {
            let page = match self
                .client
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .start_time(start)
                .end_time(end)
                .start_from_head(true)
                .limit(GET_LOG_EVENTS_LIMIT)
                .set_next_token(token.clone())
                .send()
                .await
            {
                Ok(page) => page,
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(GetLogEventsError::ResourceNotFoundException(_))
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            for e in page.events() {
                found.saw(e.timestamp().unwrap_or(i64::MIN), e.message().unwrap_or(""));
            }
            // The end of the stream: the token we sent comes back.
            let next = page.next_forward_token().map(str::to_string);
            if found.all_found() || next.is_none() || next == token {
                break;
            }
            token = next;
        }
        Ok(())
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
        group: &str,
        stream: &str,
        entity: Option<&Entity>,
        body: &mut Bytes,
        total: usize,
    ) -> Result<PutReport, SinkError> {
        let to_sink_error = |e: SdkError<PutLogEventsError>| {
            let detail = DisplayErrorContext(&e).to_string();
            match e {
                SdkError::ServiceError(_) => SinkError::Rejected {
                    group: group.into(),
                    stream: stream.into(),
                    detail,
                },
                _ => SinkError::Failed {
                    group: group.into(),
                    stream: stream.into(),
                    detail,
                },
            }
        };
        let failed = |detail: String| SinkError::Failed {
            group: group.into(),
            stream: stream.into(),
            detail,
        };
        // How many events the body being sent carries (fewer once only what was missing is).
        let mut part = total;
        let mut report = PutReport::default();
        loop {
            let e = match self.put_creating(group, stream, body).await {
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
                Err(PutFailure::Call(e)) if outcome_unknown(&e) => e,
                Err(PutFailure::Call(e)) => return Err(to_sink_error(*e)),
            };
            report.ambiguous += 1;
            let lost = DisplayErrorContext(&e).to_string();
            if report.ambiguous > MAX_UNKNOWN_OUTCOMES {
                return Err(failed(format!(
                    "{MAX_UNKNOWN_OUTCOMES} puts of this batch got no answer, the last: {lost}"
                )));
            }
            warn!(group, stream, error = %lost,
                  "a put got no answer: reading the stream back before sending anything again");
            let sent =
                sent_events(body).map_err(|e| failed(format!("re-reading our own body: {e}")))?;
            let missing = self
                .missing_after_lag(group, stream, &sent)
                .await
                .map_err(|check| {
                    let check = DisplayErrorContext(&check).to_string();
                    // Such a group serves no GetLogEvents: nothing can be checked there.
                    let why = if check.contains("INFREQUENT_ACCESS") {
                        " (the group is of the Infrequent Access class, which serves no \
                         GetLogEvents: see LOG_GROUP_CLASS in docs/user-guide.md)"
                    } else {
                        ""
                    };
                    failed(format!(
                        "a put got no answer ({lost}) and reading the stream back to see whether \
                         it was stored failed too ({check}){why}; not sent again: the object fails, \
                         and its next attempt sends this batch again (a duplicate if the lost put \
                         was stored)"
                    ))
                })?;
            if missing.is_empty() {
                info!(
                    group,
                    stream,
                    events = sent.len(),
                    "the put without an answer was stored"
                );
                return Ok(report);
            }
            report.resent_after_check += 1;
            warn!(
                group,
                stream,
                missing = missing.len(),
                of = sent.len(),
                "the put without an answer was not (completely) stored: sending what is missing"
            );
            let again: Vec<LogEvent> = missing
                .iter()
                .map(|&i| LogEvent {
                    timestamp: sent[i].0,
                    message: Message::new(&sent[i].1),
                    line: 0,
                    offset: 0,
                    parse_failed: false,
                    filtered: None,
                })
                .collect();
            part = again.len();
            *body = Bytes::from(put_log_events_body(group, stream, entity, &again));
        }
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
        let result = self.put_body(group, stream, entity, &mut body, total).await;
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
        let mut found = ReadBack::new(events);
        self.read_back(group, stream, &mut found)
            .await
            .map_err(|e| SinkError::Failed {
                group: group.into(),
                stream: stream.into(),
                detail: format!("reading the stream back: {}", DisplayErrorContext(&e)),
            })?;
        Ok(found.missing())
    }
}

/// Rejected ranges of a resent part (`part` events) as ranges of the whole batch (`total`)
/// with the same counts: only the counts are used.
fn rejected_counts_over(rejected: Rejected, part: usize, total: usize) -> Rejected {
    let c = rejected.counts(part);
    let (old, expired, new) = (c.too_old as usize, c.expired as usize, c.too_new as usize);
    Rejected {
        too_old_end: (old > 0).then_some(old),
        expired_end: (expired > 0).then_some(old + expired),
        too_new_start: (new > 0).then(|| total - new),
        entity_rejected: rejected.entity_rejected,
    }
}

/// The events of a body this sink wrote (for a check, which is rare: the events themselves
/// were freed when the body was written).
fn sent_events(body: &[u8]) -> Result<Vec<(i64, String)>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "logEvents")]
        events: Vec<Event>,
    }
    #[derive(serde::Deserialize)]
    struct Event {
        timestamp: i64,
        message: String,
    }
    let b: Body = serde_json::from_slice(body)?;
    Ok(b.events
        .into_iter()
        .map(|e| (e.timestamp, e.message))
        .collect())
}

/// Whether the put may have been stored although no answer says so: the request went out and
/// the answer was lost (a timeout, a reset or dropped connection, an unreadable answer). A
/// connection refused or a request that could not be built was never sent.
fn outcome_unknown(e: &SdkError<PutLogEventsError>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => d.as_connector_error().is_some_and(maybe_sent),
        _ => false,
    }
}

fn maybe_sent(e: &ConnectorError) -> bool {
    if e.is_user() {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return false;
        }
        cause = c.source();
    }
    true
}

/// Forbids the SDK's retry of a PutLogEvents attempt whose outcome is unknown (see
/// [`outcome_unknown`]): the sink checks what was stored instead. Throttling, 5xx answers and
/// refused connections are left to the standard classifiers, which retry them.
#[derive(Debug)]
struct OutcomeUnknownIsNotRetried;

impl ClassifyRetry for OutcomeUnknownIsNotRetried {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(e))
                if e.is_timeout_error()
                    || e.is_response_error()
                    || e.as_connector_error().is_some_and(maybe_sent) =>
            {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "PutLogEventsOutcomeUnknown"
    }
}

fn is_not_found(e: &SdkError<PutLogEventsError>) -> bool {
    matches!(
        e.as_service_error(),
        Some(PutLogEventsError::ResourceNotFoundException(_))
    )
}

/// The PutLogEvents request body (awsJson1.1), copied together from messages the parser's
/// workers already wrote escaped ([`ncf_parse::Message`]): no message is escaped here, and
/// consecutive events that a worker wrote one after another as whole event objects
/// ([`ncf_parse::Message::frame`]) are copied as one run. The
/// SDK would escape each message byte by byte, about a third of the CPU a forwarded gigabyte
/// cost; so the request is built without events and this body replaces the SDK's just before
/// signing (`mutate_request`, on every attempt). The SDK still resolves the endpoint, signs,
/// retries and parses the answer.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html#API_PutLogEvents_RequestSyntax>
pub fn put_log_events_body(
    group: &str,
    stream: &str,
    entity: Option<&Entity>,
    events: &[LogEvent],
) -> Vec<u8> {
    put_log_events_body_in(Vec::new(), group, stream, entity, events)
}

/// [`put_log_events_body`] written into `buffer` (cleared first; a body of an earlier put, so
/// that its memory is reused).
pub fn put_log_events_body_in(
    mut buffer: Vec<u8>,
    group: &str,
    stream: &str,
    entity: Option<&Entity>,
    events: &[LogEvent],
) -> Vec<u8> {
    const EVENT_FRAME: &str = r#"{"timestamp":-9223372036854775808,"message":""},"#;
    let size: usize = events
        .iter()
        .map(|e| e.message.escaped().len() + EVENT_FRAME.len())
        .sum();
    buffer.clear();
    // Empty, so valid UTF-8.
    let mut out = String::from_utf8(buffer).unwrap_or_default();
    out.push_str("{\"logGroupName\":");
    json::push_str(&mut out, group);
    out.push_str(",\"logStreamName\":");
    json::push_str(&mut out, stream);
    if let Some(entity) = entity {
        out.push_str(",\"entity\":{\"keyAttributes\":");
        push_map(&mut out, &entity.key_attributes);
        out.push_str(",\"attributes\":");
        push_map(&mut out, &entity.attributes);
        out.push('}');
    }
    out.push_str(",\"logEvents\":[");
    // Room for the events and the end at once (`size` is an upper bound), and exactly: a kept
    // buffer then stays the size of the bodies it held (see `KEPT_BODY_MAX_CAPACITY`).
    out.reserve_exact(size + "]}".len());
    // Consecutive events whose objects the worker wrote one after another (with a comma
    // between) are copied as one run.
    let mut body = EventList {
        out: &mut out,
        first: true,
    };
    let mut run: Option<(&Arc<String>, Range<usize>)> = None;
    for e in events {
        match e.message.frame() {
            // The frame is the event's only while it carries the event's timestamp.
            Some(f) if f.timestamp == e.timestamp => {
                run = match run {
                    Some((arena, r))
                        if Arc::ptr_eq(arena, f.arena) && f.range.start == r.end + 1 =>
                    {
                        Some((arena, r.start..f.range.end))
                    }
                    before => {
                        body.run(before);
                        Some((f.arena, f.range))
                    }
                };
            }
            _ => {
                body.run(run.take());
                body.event(e);
            }
        }
    }
    body.run(run);
    out.push_str("]}");
    out.into_bytes()
}

/// The `logEvents` list of a request body being written.
struct EventList<'a> {
    out: &'a mut String,
    first: bool,
}

impl EventList<'_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
    }

    /// Events written one after another in an arena, commas between them.
    fn run(&mut self, run: Option<(&Arc<String>, Range<usize>)>) {
        if let Some(text) = run.and_then(|(arena, range)| arena.get(range)) {
            self.comma();
            self.out.push_str(text);
        }
    }

    fn event(&mut self, e: &LogEvent) {
        self.comma();
        json::open_event(self.out, e.timestamp);
        self.out.push_str(e.message.escaped());
        self.out.push_str(json::CLOSE_EVENT);
    }
}

/// A JSON object of string values.
fn push_map(out: &mut String, map: &[(&str, String)]) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, k);
        out.push(':');
        json::push_str(out, v);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_body_is_the_api_request_syntax() {
        let ev = |timestamp, message: &str| LogEvent {
            timestamp,
            message: Message::new(message),
            line: 1,
            offset: 0,
            parse_failed: false,
            filtered: None,
        };
        let events = [
            ev(
                1_795_514_401_000,
                r#"{"remote_addr":"1.2.3.4","status":200}"#,
            ),
            ev(
                -1,
                "quote \" backslash \\ nl \n tab \t nul \u{0} é ✓ \u{1F600}",
            ),
            ev(0, ""),
        ];
        let body = put_log_events_body("nginx-access", "i-0abc/x \"y\"", None, &events);
        let got: Value = serde_json::from_slice(&body).unwrap();
        let want = json!({
            "logGroupName": "nginx-access",
            "logStreamName": "i-0abc/x \"y\"",
            "logEvents": events.iter().map(|e| json!({"timestamp": e.timestamp, "message": e.message.text()})).collect::<Vec<_>>(),
        });
        assert_eq!(got, want);
        // A reused buffer (an earlier, longer body) gives the same bytes.
        let reused = b"{\"logGroupName\":\"an earlier body, longer than this one\"}".repeat(9);
        assert_eq!(
            put_log_events_body_in(reused, "nginx-access", "i-0abc/x \"y\"", None, &events),
            body
        );
        let empty: Value =
            serde_json::from_slice(&put_log_events_body("g", "s", None, &[])).unwrap();
        assert_eq!(empty["logEvents"], json!([]));
        let entity = Entity::ec2_instance("i-0abc");
        // Sized once, entity included, and not much over: a kept buffer keeps its size.
        let fresh = put_log_events_body("g", "s", Some(&entity), &events);
        let slack = fresh.capacity() - fresh.len();
        assert!(slack <= 20 * events.len(), "{slack} bytes over");
        let capacity = fresh.capacity();
        let again = put_log_events_body_in(fresh, "g", "s", Some(&entity), &events);
        assert_eq!(again.capacity(), capacity);
        let with: Value =
            serde_json::from_slice(&put_log_events_body("g", "s", Some(&entity), &events)).unwrap();
        assert_eq!(
            with["entity"],
            json!({
                "keyAttributes": {"Type": "AWS::Resource", "ResourceType": "AWS::EC2::Instance",
                                  "Identifier": "i-0abc"},
                "attributes": {"PlatformType": "AWS::EC2", "EC2.InstanceId": "i-0abc"},
            })
        );
        assert_eq!(with["logEvents"], want["logEvents"]);
    }

    /// Events a worker wrote into one arena are copied in runs; the body is byte for byte the
    /// one written event by event, whatever the batch holds: all of a block, a gap, a changed
    /// timestamp, another order, another arena, an owned message between them.
    #[test]
    fn runs_of_a_blocks_events_give_the_same_body_as_event_by_event() {
        use ncf_parse::access::{Buffers, parse_line_into};
        use ncf_parse::{OutputFormat, ParseSettings};
        let lines = [
            r#"203.0.113.7 - - [24/Nov/2026:10:00:01 +0000] "GET /a?q="x" HTTP/1.1" 200 612 "-" "curl/8.5.0""#,
            r#"203.0.113.8 - alice [24/Nov/2026:10:00:02 +0000] "POST /b HTTP/2.0" 201 0 "https://example.com/" "Mozilla/5.0 (X11) é""#,
            "not an access line",
            r#"198.51.100.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 304 0 "-" "-""#,
            r#"198.51.100.2 - - [24/Nov/2026:10:00:03 +0000] "GET /c HTTP/1.1" 404 153 "-" "-""#,
        ];
        for output in [OutputFormat::Json, OutputFormat::Raw] {
            let settings = ParseSettings {
                output,
                ..ParseSettings::default()
            };
            let block = |lines: &[&str]| {
                let (mut buffers, mut placed) = (Buffers::default(), Vec::new());
                let mut events: Vec<LogEvent> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| {
                        let (ev, at) =
                            parse_line_into(&settings, line, i as u64 + 1, 7, &mut buffers);
                        placed.push(at);
                        ev
                    })
                    .collect();
                let arena = Arc::new(buffers.arena);
                for (ev, at) in events.iter_mut().zip(placed) {
                    if let Some(at) = at {
                        ev.message = Message::in_arena(&arena, at);
                    }
                }
                events
            };
            let one = block(&lines);
            let two = block(&lines[..2]);
            // The frame is the event object of the request syntax around the message.
            let f = one[0].message.frame().expect("a frame");
            let framed: Value = serde_json::from_str(&f.arena[f.range.clone()]).unwrap();
            assert_eq!(
                framed,
                json!({"timestamp": one[0].timestamp, "message": one[0].message.text()})
            );
            assert!(
                one[2].message.frame().is_none(),
                "an unparsed line is its own"
            );
            let mut retimed = one[1].clone();
            retimed.timestamp += 1;
            let batches: Vec<Vec<LogEvent>> = vec![
                one.clone(),
                vec![
                    one[0].clone(),
                    one[1].clone(),
                    one[3].clone(),
                    one[4].clone(),
                ],
                vec![
                    one[3].clone(),
                    one[0].clone(),
                    one[1].clone(),
                    one[4].clone(),
                ],
                vec![one[0].clone(), retimed, one[3].clone(), one[4].clone()],
                vec![
                    one[0].clone(),
                    two[1].clone(),
                    one[3].clone(),
                    two[0].clone(),
                ],
                vec![one[0].clone(), one[0].clone(), one[1].clone()],
                vec![one[4].clone()],
            ];
            for events in batches {
                let owned: Vec<LogEvent> = events
                    .iter()
                    .map(|e| LogEvent {
                        message: Message::new(&e.message.text()),
                        ..e.clone()
                    })
                    .collect();
                assert!(owned.iter().all(|e| e.message.frame().is_none()));
                let got = put_log_events_body("g", "s", None, &events);
                let want = put_log_events_body("g", "s", None, &owned);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{output:?}"
                );
                let parsed: Value = serde_json::from_slice(&got).unwrap();
                assert_eq!(
                    parsed["logEvents"].as_array().map(Vec::len),
                    Some(events.len())
                );
            }
        }
    }
}
