//! CloudWatch Logs as a [`LogSink`].
//!
//! PutLogEvents without sequence tokens (ignored since January 2023). A missing group or stream
//! is created on `ResourceNotFoundException` — `ResourceAlreadyExistsException` counts as
//! success, because another invocation may win the race — and the put is sent again. We never
//! call DescribeLogStreams: its quota (25 requests/s per account) cannot serve a hot path.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::info;

use crate::parse::LogEvent;
use crate::ports::{LogSink, Rejected, SinkError};

/// After creating a group and stream, puts that failed with ResourceNotFound before the create
/// finished only repeat their put for this long instead of creating again.
const RECENTLY_CREATED: Duration = Duration::from_secs(60);

pub struct CloudWatchSink {
    client: Client,
    retention_days: Option<i32>,
    /// Streams this process created, and when: parallel puts to a new stream all get
    /// ResourceNotFound, but only the first creates it. Lives as long as the warm Lambda.
    created: tokio::sync::Mutex<HashMap<(String, String), Instant>>,
}

impl CloudWatchSink {
    pub fn new(client: Client, retention_days: Option<i32>) -> Self {
        Self {
            client,
            retention_days,
            created: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn put_once(
        &self,
        group: &str,
        stream: &str,
        events: Vec<InputLogEvent>,
    ) -> Result<Rejected, SdkError<PutLogEventsError>> {
        let out = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await?;
        let idx = |v: Option<i32>| v.and_then(|i| usize::try_from(i).ok());
        Ok(out
            .rejected_log_events_info()
            .map_or_else(Rejected::default, |r| Rejected {
                // `*_end_index` is inclusive in the API: events 0..=end were rejected.
                too_old_end: idx(r.too_old_log_event_end_index()).map(|i| i + 1),
                too_new_start: idx(r.too_new_log_event_start_index()),
                expired_end: idx(r.expired_log_event_end_index()).map(|i| i + 1),
            }))
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

impl LogSink for CloudWatchSink {
    async fn put(
        &self,
        group: &str,
        stream: &str,
        events: &[LogEvent],
    ) -> Result<Rejected, SinkError> {
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
        match self.put_once(group, stream, input_events(events)).await {
            Ok(r) => Ok(r),
            Err(e) if is_not_found(&e) => {
                self.ensure(group, stream, false).await?;
                match self.put_once(group, stream, input_events(events)).await {
                    // Deleted since we created it: create once more, then give up.
                    Err(e) if is_not_found(&e) => {
                        self.ensure(group, stream, true).await?;
                        self.put_once(group, stream, input_events(events))
                            .await
                            .map_err(to_sink_error)
                    }
                    other => other.map_err(to_sink_error),
                }
            }
            Err(e) => Err(to_sink_error(e)),
        }
    }
}

fn is_not_found(e: &SdkError<PutLogEventsError>) -> bool {
    matches!(
        e.as_service_error(),
        Some(PutLogEventsError::ResourceNotFoundException(_))
    )
}

fn input_events(events: &[LogEvent]) -> Vec<InputLogEvent> {
    // The builder only fails on a missing required field, and both are always set.
    events
        .iter()
        .map(|e| {
            InputLogEvent::builder()
                .timestamp(e.timestamp)
                .message(e.message.clone())
                .build()
        })
        .filter_map(Result::ok)
        .collect()
}
